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
