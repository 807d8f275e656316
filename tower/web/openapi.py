"""The OpenAPI 3.1 document of the HTTP API, with the v1 event schema in it."""

from __future__ import annotations

from typing import Any

from tower.events import json_schema

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
TS = {"type": ["string", "null"], "format": "date-time"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Error"}, description)


def openapi_document(*, version: str) -> dict[str, Any]:
    event = json_schema()
    defs = event.pop("$defs", {})
    event.pop("$schema", None)
    # pydantic writes refs as #/$defs/X; OpenAPI keeps them under components/schemas.
    text_refs = _rewrite_refs(event)
    components: dict[str, Any] = {name: _rewrite_refs(body) for name, body in defs.items()}
    components["Event"] = text_refs
    components["Error"] = ERROR
    components["IngestAnswer"] = {
        "type": "object",
        "required": ["accepted", "duplicates", "rejected"],
        "properties": {
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "held": {"type": "integer", "minimum": 0},
            "rejected": {"type": "array", "items": {
                "type": "object", "required": ["index", "event_id", "error"],
                "properties": {"index": {"type": "integer"},
                               "event_id": {"type": ["string", "null"]},
                               "error": {"type": "string"}}}},
        },
    }
    components["Order"] = {
        "type": "object",
        "required": ["order_id", "flow", "stage", "status", "priority", "promised_at", "stages", "events"],
        "properties": {
            "order_id": {"type": "string"}, "flow": {"type": "string"}, "stage": {"type": "string"},
            "status": {"enum": ["in_progress", "delivered", "cancelled", "frozen"]},
            "priority": {"enum": ["normal", "rush"]}, "promised_at": TS,
            "stages": {"type": "array", "items": {"type": "object", "properties": {
                "stage": {"type": "string"}, "entered_at": TS, "started_at": TS, "completed_at": TS}}},
            "events": {"type": "array", "items": {"type": "object"}},
        },
    }
    components.update(EXCEPTION_SCHEMAS)
    obj = {"type": "object"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Order Tower API", "version": version,
                 "description": "Event ingest (contract v1) and read services of the control tower."},
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "paths": {
            "/api/v1/events": {"post": {
                "summary": "Ingest a batch of events (JSON array, one object, or NDJSON)",
                "security": [{"bearer": []}, {}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": {"oneOf": [
                        {"$ref": "#/components/schemas/Event"},
                        {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}]}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                }},
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/IngestAnswer"}, "per-item outcome"),
                    "400": _error("body is not a JSON array or object"),
                    "401": _error("missing or wrong bearer token"),
                    "413": _error("too many events or too many bytes"),
                    "415": _error("unsupported content type"),
                    "503": _error("the event bus is unavailable"),
                },
            }},
            "/api/v1/orders/{order_id}": {"get": {
                "summary": "One order: current state, stage intervals, event timeline",
                "parameters": [{"name": "order_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}],
                "responses": {"200": _json({"$ref": "#/components/schemas/Order"}, "the order"),
                              "404": _error("unknown order")},
            }},
            "/api/v1/flows": {"get": {"summary": "Flows and their stages, in order",
                                      "responses": {"200": _json(obj, "flows")}}},
            "/api/v1/funnel": {"get": {
                "summary": "Orders per stage now, and entered per day",
                "parameters": [
                    {"name": "flow", "in": "query", "required": True, "schema": {"type": "string"}},
                    {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1,
                                                               "maximum": 31}}],
                "responses": {"200": _json(obj, "funnel"), "400": _error("bad parameter")},
            }},
            "/api/v1/hubs/rollup": {"get": {
                "summary": "Hub x hour arrivals, departures, retention",
                "parameters": [{"name": "since", "in": "query",
                                "schema": {"type": "string", "format": "date-time"}}],
                "responses": {"200": _json(obj, "rollup"), "400": _error("bad parameter")},
            }},
            "/api/v1/dead-letters": {"get": {"summary": "Events that could not be applied",
                                             "responses": {"200": _json(obj, "dead letters")}}},
            "/api/v1/schema/event": {"get": {"summary": "JSON Schema of a v1 event",
                                             "responses": {"200": _json(obj, "schema")}}},
            "/healthz": {"get": {"summary": "Database and bus status",
                                 "responses": {"200": _json(obj, "healthy"),
                                               "503": _json(obj, "unhealthy")}}},
            **exception_paths(),
        },
    }


def _rewrite_refs(node: Any) -> Any:
    """Point pydantic's ``#/$defs/X`` refs (and discriminator mappings) at components."""
    if isinstance(node, dict):
        return {k: _rewrite_refs(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v) for v in node]
    if isinstance(node, str) and node.startswith("#/$defs/"):
        return "#/components/schemas/" + node.removeprefix("#/$defs/")
    return node


# --- exceptions and the emergency room (tower/web/api_exceptions.py) -------------------

_S = {"type": "string"}
_NS = {"type": ["string", "null"]}
_ACTOR = {"type": "string", "default": "api", "description": "who did it; kept in the timeline"}
_NOTE = {"type": ["string", "null"], "maxLength": 4000}
_TIER = {"enum": ["L1", "L2", "L3"]}
_STATUS = {"enum": ["triggered", "acknowledged", "snoozed", "resolved", "closed", "cancelled"]}


def _body(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "required": list(required),
            "properties": {"actor": _ACTOR, **properties}}


EXCEPTION_SCHEMAS: dict[str, Any] = {
    "ExceptionItem": {"type": "object", "properties": {
        "id": _S, "rule": _S, "scope_key": _S, "title": _S, "order_id": _NS, "parcel_id": _NS,
        "hub_id": _NS, "flow": _NS, "stage": _NS, "tier": _TIER, "status": _STATUS, "team": _S,
        "assignee": _NS, "high_priority": {"type": "boolean"}, "count": {"type": "integer"},
        "escalations": {"type": "integer"}, "opened_at": TS, "respond_by": TS,
        "acknowledged_at": TS, "resolved_at": TS, "snoozed_until": TS, "handling_step": _NS,
        "next_update_at": TS, "parent_id": _NS, "raised_by": _S}},
    "TimelineEntry": {"type": "object", "properties": {
        "id": {"type": "integer"}, "at": TS, "actor": _S, "action": _S,
        "from_status": _NS, "to_status": _NS, "note": _NS, "data": {"type": ["object", "null"]}}},
    "RootCause": _body({
        "cause": {"type": "string", "description": "a category of data/rules.toml [root_causes]"},
        "note": _NOTE, "whys": {"type": "array", "items": _S, "maxItems": 5},
        "supplier": _NS, "carrier": _NS, "hub": _NS}, ("cause",)),
}
EXCEPTION_SCHEMAS["Exception"] = {"allOf": [
    {"$ref": "#/components/schemas/ExceptionItem"},
    {"type": "object", "properties": {
        "detail": {"type": "object"}, "root_cause": {"type": ["object", "null"]},
        "created": {"type": "boolean", "description": "POST /api/v1/exceptions only"},
        "timeline": {"type": "array", "items": {"$ref": "#/components/schemas/TimelineEntry"}},
        "timeline_next": {"type": ["integer", "null"],
                          "description": "pass as timeline_after for the next page"}}}]}


def _exception(description: str) -> dict[str, Any]:
    return _json({"$ref": "#/components/schemas/Exception"}, description)


def _move(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary, "security": [{"bearer": []}, {}],
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": _S}],
        "requestBody": {"content": {"application/json": {"schema": body}}},
        "responses": {"200": _exception("the exception after the move, with its timeline"),
                      "400": _error("body is not a JSON object"),
                      "401": _error("missing or wrong bearer token"),
                      "404": _error("unknown exception"),
                      "409": _error("the lifecycle refuses this move (the reason is given)"),
                      "422": _error("a field is wrong (the field and why are given)")}}}


def exception_paths() -> dict[str, Any]:
    """The paths of the exceptions API."""
    q = "query"
    note = _body({"note": _NOTE})
    return {
        "/api/v1/exceptions": {
            "get": {
                "summary": "Exceptions, newest first (status=open: all but resolved, closed, cancelled)",
                "parameters": [
                    {"name": "status", "in": q, "schema": {"enum": ["open", *_STATUS["enum"]]}},
                    {"name": "tier", "in": q, "schema": _TIER},
                    {"name": "team", "in": q, "schema": _S},
                    {"name": "order_id", "in": q, "schema": _S},
                    {"name": "limit", "in": q, "schema": {"type": "integer", "minimum": 1,
                                                          "maximum": 500, "default": 100}},
                    {"name": "offset", "in": q, "schema": {"type": "integer", "minimum": 0}}],
                "responses": {"200": _json({"type": "object", "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/ExceptionItem"}},
                    "next_offset": {"type": ["integer", "null"]}}}, "a page of exceptions"),
                    "400": _error("bad parameter")}},
            "post": {
                "summary": "Raise an exception by hand (one open per rule and scope: a repeat bumps it)",
                "security": [{"bearer": []}, {}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _body({
                    "title": _S, "team": {"type": "string", "description": "one of [response].teams"},
                    "tier": {**_TIER, "default": "L3"}, "rule": {"type": "string", "default": "manual"},
                    "scope_key": _S, "order_id": _S, "parcel_id": _S, "hub_id": _S, "flow": _S,
                    "stage": _S, "high_priority": {"type": "boolean"}, "note": _NOTE,
                    "detail": {"type": "object"}}, ("title", "team"))}}},
                "responses": {"201": _exception("raised"),
                              "200": _exception("an open one of the same rule and scope was bumped"),
                              "400": _error("body is not a JSON object"),
                              "401": _error("missing or wrong bearer token"),
                              "422": _error("a field is wrong")}}},
        "/api/v1/exceptions/{id}": {"get": {
            "summary": "One exception with a page of its timeline (oldest first)",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": _S},
                           {"name": "timeline_after", "in": q, "schema": {"type": "integer"}},
                           {"name": "timeline_limit", "in": q,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}],
            "responses": {"200": _exception("the exception"), "404": _error("unknown exception")}}},
        "/api/v1/exceptions/{id}/ack": _move("Acknowledge (the first response)", note),
        "/api/v1/exceptions/{id}/assign": _move("Hand to a team (and a person)", _body({
            "team": _S, "assignee": _NS, "note": _NOTE}, ("team",))),
        "/api/v1/exceptions/{id}/snooze": _move("Put aside until a time (until or hours)", _body({
            "until": {"type": "string", "format": "date-time"},
            "hours": {"type": "number", "exclusiveMinimum": 0}, "note": _NOTE})),
        "/api/v1/exceptions/{id}/resolve": _move("Resolve with the root cause",
                                                 {"$ref": "#/components/schemas/RootCause"}),
        "/api/v1/exceptions/{id}/comment": _move("A note; with step, the current handling step", _body({
            "note": _S, "step": _S, "next_update_h": {"type": "number", "exclusiveMinimum": 0}},
            ("note",))),
        "/api/v1/exceptions/{id}/close": _move("Close a resolved exception", note),
        "/api/v1/exceptions/{id}/cancel": _move("Cancel (a false alarm)", note),
        "/api/v1/emergency-room": {"get": {
            "summary": "Open L2/L3 exceptions in triage order: tier, then time left to respond",
            "parameters": [{"name": "team", "in": q, "schema": _S},
                           {"name": "limit", "in": q, "schema": {"type": "integer", "minimum": 1,
                                                                 "maximum": 500}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "now": TS, "items": {"type": "array", "items": {"type": "object", "properties": {
                    "seconds_left": {"type": ["integer", "null"]}, "overdue": {"type": "boolean"},
                    "promised_at": TS, "handling_step": _NS, "next_update_at": TS,
                    "grouped": {"type": "integer"}}}}}}, "the queue"),
                "400": _error("bad parameter")}}},
        "/api/v1/exceptions/measures": {"get": {
            "summary": "MTTA, MTTR and share answered in time per tier and team; root causes",
            "parameters": [{"name": "since", "in": q, "schema": {"type": "string", "format": "date-time"}},
                           {"name": "until", "in": q, "schema": {"type": "string", "format": "date-time"}}],
            "responses": {"200": _json({"type": "object"}, "measures"), "400": _error("bad parameter")}}},
    }
