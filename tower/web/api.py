"""`/api/v1/...` and `/healthz` as a Flask blueprint bound to one Tower."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from tower.bus.base import BusError
from tower.ingest import BatchTooLarge, BodyError, parse_json_body, parse_ndjson_body
from tower.runtime import Tower
from tower.store import queries
from tower.web.api_exceptions import create_exceptions_api
from tower.web.auth import bearer_ok

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def _parse_time(value: str, name: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{name}: not an RFC 3339 timestamp") from None
    if t.tzinfo is None:
        raise ValueError(f"{name}: needs a UTC offset")
    return t


def create_api(tower: Tower) -> Blueprint:
    """The API blueprint; every handler reads projections through the read services."""
    api = Blueprint("tower_api", __name__)
    settings = tower.settings
    token = settings.api_token.get_secret_value() if settings.api_token else None

    def authorised() -> bool:
        return bearer_ok(token)

    @api.get("/healthz")
    def healthz() -> tuple[Response, int]:
        status = tower.health()
        return jsonify(status), 200 if status["ok"] else 503

    @api.post("/api/v1/events")
    def post_events() -> tuple[Response, int]:
        if not authorised():
            resp = jsonify({"error": "missing or wrong bearer token"})
            resp.headers["WWW-Authenticate"] = 'Bearer realm="tower"'
            return resp, 401
        length = request.content_length
        if length is not None and length > settings.max_body_bytes:
            return _error(413, f"body is {length} bytes; the limit is {settings.max_body_bytes}")
        body = request.stream.read(settings.max_body_bytes + 1)
        if len(body) > settings.max_body_bytes:
            return _error(413, f"body exceeds the limit of {settings.max_body_bytes} bytes")
        kind = (request.mimetype or "").lower()
        try:
            if kind in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
                items = parse_ndjson_body(body)
            elif kind == "application/json" or kind.endswith("+json"):
                items = parse_json_body(body)
            else:
                return _error(415, "use Content-Type application/json or application/x-ndjson")
            summary = tower.ingestor.ingest(items)
        except BodyError as exc:
            return _error(400, str(exc))
        except BatchTooLarge as exc:
            return _error(413, str(exc))
        except BusError as exc:
            log.error("bus refused a batch: %s", exc)
            return _error(503, "the event bus is unavailable; nothing from this batch was taken")
        return jsonify(summary.as_dict()), 200

    @api.get("/api/v1/orders/<order_id>")
    def get_order(order_id: str) -> tuple[Response, int]:
        order = queries.get_order(tower.engine, order_id=order_id, now=tower.clock.now())
        if order is None:
            return _error(404, f"no order {order_id!r}")
        return jsonify(order), 200

    @api.get("/api/v1/flows")
    def get_flows() -> tuple[Response, int]:
        flows: list[dict[str, Any]] = [
            {
                "id": f.id,
                "name": f.name,
                "description": f.description,
                "stages": [
                    {"id": s.id, "name": s.name, "owner": s.owner, "budget_h": s.budget_h,
                     "deliverable": s.deliverable,
                     "gates": [g.model_dump() for g in s.gates]}
                    for s in f.stages
                ],
            }
            for f in tower.flows.flows
        ]
        d = tower.flows.defaults
        return jsonify({"flows": flows, "custom_buffer": d.custom_buffer,
                        "rush_budget_factor": d.rush_budget_factor}), 200

    @api.get("/api/v1/funnel")
    def get_funnel() -> tuple[Response, int]:
        flow = request.args.get("flow", "")
        if flow not in tower.flows.by_id:
            return _error(400, f"flow: unknown flow {flow!r} (known: {', '.join(tower.flows.by_id)})")
        try:
            days = int(request.args.get("days", "2"))
        except ValueError:
            return _error(400, "days: not an integer")
        if not 1 <= days <= 31:
            return _error(400, "days: must be between 1 and 31")
        return jsonify(queries.funnel(tower.engine, flows=tower.flows, flow_id=flow,
                                      zone=settings.zone, days=days, now=tower.clock.now())), 200

    @api.get("/api/v1/hubs/rollup")
    def get_hub_rollup() -> tuple[Response, int]:
        now = tower.clock.now()
        try:
            since = _parse_time(request.args["since"], "since") if "since" in request.args \
                else now - timedelta(hours=24)
        except ValueError as exc:
            return _error(400, str(exc))
        if since < now - timedelta(days=31):
            return _error(400, "since: at most 31 days back")
        return jsonify(queries.hub_rollup(tower.engine, since=since, now=now,
                                          dwell_limit_h=tower.figures.hubs.dwell_limit_h)), 200

    @api.get("/api/v1/dead-letters")
    def get_dead_letters() -> tuple[Response, int]:
        return jsonify({"dead_letters": queries.dead_letters(tower.engine),
                        "held": queries.held_count(tower.engine)}), 200

    @api.get("/api/v1/schema/event")
    def get_event_schema() -> tuple[Response, int]:
        from tower.events import json_schema

        return jsonify(json_schema()), 200

    @api.get("/api/v1/openapi.json")
    def get_openapi() -> tuple[Response, int]:
        from tower import __version__
        from tower.web.openapi import openapi_document

        return jsonify(openapi_document(version=__version__)), 200

    @api.errorhandler(RequestEntityTooLarge)
    def too_large(_exc: HTTPException) -> tuple[Response, int]:
        return _error(413, "body too large")

    return api


def install_api(server: Flask, tower: Tower) -> None:
    """Mount the API on a Flask server (the Dash app's) and close the tower with it."""
    server.register_blueprint(create_api(tower))
    server.register_blueprint(create_exceptions_api(tower))
    server.config["MAX_CONTENT_LENGTH"] = tower.settings.max_body_bytes + 1
    server.extensions["tower"] = tower
