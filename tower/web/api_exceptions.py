"""`/api/v1/exceptions`, `/api/v1/emergency-room`: the exception lifecycle over HTTP.

Writes need the same bearer token as ingest (``TOWER_API_TOKEN``); reads are open like
the other GETs. "now" is the tower's clock (scaled in the demo). Answers:
400 a body that is not a JSON object or a bad query parameter, 401 a missing or
wrong token, 404 an unknown exception, 409 a move the lifecycle refuses (with the
reason), 422 a body whose fields are wrong (with the field and why).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

import orjson
from flask import Blueprint, Response, jsonify, request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy import Connection

from tower.exceptions import measures as exception_measures
from tower.exceptions import queue, store
from tower.exceptions.lifecycle import STATUSES, TIERS
from tower.exceptions.policy import ResponsePolicy
from tower.runtime import Tower
from tower.web.auth import bearer_ok

MAX_MEASURE_SPAN = timedelta(days=366)
DEFAULT_MEASURE_SPAN = timedelta(days=30)

Text = Field(default=None, max_length=4000)
Name = Field(default=None, min_length=1, max_length=128)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    actor: str = Field(default="api", min_length=1, max_length=128)


class NoteBody(_Body):
    note: str | None = Text


class AssignBody(NoteBody):
    team: str = Field(min_length=1, max_length=48)
    assignee: str | None = Name


class SnoozeBody(NoteBody):
    until: AwareDatetime | None = None
    hours: float | None = Field(default=None, gt=0, le=24 * 31)

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeBody:
        if (self.until is None) == (self.hours is None):
            raise ValueError("give either until (RFC 3339 with an offset) or hours")
        return self


class ResolveBody(_Body):
    cause: str = Field(min_length=1, max_length=64)
    note: str | None = Text
    whys: tuple[str, ...] = Field(default=(), max_length=5)
    supplier: str | None = Name
    carrier: str | None = Name
    hub: str | None = Name


class CommentBody(_Body):
    note: str = Field(min_length=1, max_length=4000)
    step: str | None = Field(default=None, min_length=1, max_length=500)
    next_update_h: float | None = Field(default=None, gt=0, le=24 * 31)


class RaiseBody(_Body):
    title: str = Field(min_length=1, max_length=500)
    team: str = Field(min_length=1, max_length=48)
    tier: Literal["L1", "L2", "L3"] = "L3"
    rule: str = Field(default="manual", min_length=1, max_length=48, pattern=r"^[a-z0-9_.-]+$")
    scope_key: str | None = Field(default=None, min_length=1, max_length=200)
    order_id: str | None = Field(default=None, min_length=1, max_length=64)
    parcel_id: str | None = Field(default=None, min_length=1, max_length=64)
    hub_id: str | None = Field(default=None, min_length=1, max_length=64)
    flow: str | None = Field(default=None, min_length=1, max_length=48)
    stage: str | None = Field(default=None, min_length=1, max_length=48)
    high_priority: bool = False
    note: str | None = Text
    detail: dict[str, Any] = Field(default_factory=dict)

    def scope(self) -> str:
        """What it is about; with nothing named, a scope of its own (never merged)."""
        if self.scope_key:
            return self.scope_key
        for kind, value in (("order", self.order_id), ("parcel", self.parcel_id),
                            ("hub", self.hub_id)):
            if value:
                return f"{kind}:{value}"
        return f"manual:{uuid.uuid4().hex[:12]}"


B = TypeVar("B", bound=_Body)


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status


def _body(model: type[B]) -> B:
    raw = request.get_data(cache=False)
    if raw.strip():
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BadRequest(400, "body is not valid JSON") from None
    else:
        data = {}
    if not isinstance(data, dict):
        raise BadRequest(400, "body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "body"
        raise BadRequest(422, f"{key}: {str(first['msg']).removeprefix('Value error, ')}") from None


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    value = request.args.get(name)
    if value is None:
        return default
    try:
        n = int(value)
    except ValueError:
        raise BadRequest(400, f"{name}: not an integer") from None
    if not low <= n <= high:
        raise BadRequest(400, f"{name}: must be between {low} and {high}")
    return n


def _time_arg(name: str) -> datetime | None:
    value = request.args.get(name)
    if value is None:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(400, f"{name}: not an RFC 3339 timestamp") from None
    if t.tzinfo is None:
        raise BadRequest(400, f"{name}: needs a UTC offset")
    return t


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name)
    if value is not None and value not in allowed:
        raise BadRequest(400, f"{name}: {value!r} is not one of {', '.join(allowed)}")
    return value


def create_exceptions_api(tower: Tower) -> Blueprint:
    """The exceptions blueprint, bound to one tower; the policy is read on first use."""
    api = Blueprint("tower_exceptions_api", __name__)
    settings = tower.settings
    token = settings.api_token.get_secret_value() if settings.api_token else None

    def policy() -> ResponsePolicy:
        return tower.response_policy

    def detail(conn: Connection, ex_id: str) -> dict[str, Any]:
        row = store.get_exception(conn, ex_id)
        if row is None:
            raise store.ExceptionNotFound(f"no exception {ex_id!r}")
        after = _int_arg("timeline_after", 0, 0, 2**62)
        limit = _int_arg("timeline_limit", 200, 1, store.MAX_TIMELINE_PAGE)
        entries = store.timeline(conn, ex_id, after=after, limit=limit + 1)
        more = len(entries) > limit
        entries = entries[:limit]
        return {**store.to_json(row), "timeline": entries,
                "timeline_next": entries[-1]["id"] if more else None}

    def write(ex_id: str, move: Callable[[Connection, datetime, ResponsePolicy], object],
              ) -> tuple[Response, int]:
        pol = policy()
        with tower.engine.begin() as conn:
            move(conn, tower.clock.now(), pol)
            return jsonify(detail(conn, ex_id)), 200

    @api.before_request
    def guard_writes() -> tuple[Response, int] | None:
        # Before the body is read: an unauthorised caller learns nothing about it.
        if request.method == "POST" and not bearer_ok(token):
            resp = jsonify({"error": "missing or wrong bearer token"})
            resp.headers["WWW-Authenticate"] = 'Bearer realm="tower"'
            return resp, 401
        return None

    @api.errorhandler(BadRequest)
    def bad_request(exc: BadRequest) -> tuple[Response, int]:
        return _error(exc.status, exc.message)

    @api.errorhandler(store.ExceptionNotFound)
    def not_found(exc: store.ExceptionNotFound) -> tuple[Response, int]:
        return _error(404, str(exc.args[0]) if exc.args else "no such exception")

    @api.errorhandler(store.TransitionError)
    def refused(exc: store.TransitionError) -> tuple[Response, int]:
        return _error(409, exc.reason)

    @api.errorhandler(store.InvalidInput)
    def invalid(exc: store.InvalidInput) -> tuple[Response, int]:
        return _error(422, str(exc))

    # --- reads ---------------------------------------------------------------------

    @api.get("/api/v1/exceptions")
    def list_exceptions() -> tuple[Response, int]:
        status = _choice("status", ("open", *STATUSES))
        tier = _choice("tier", TIERS)
        team = request.args.get("team") or None
        limit = _int_arg("limit", 100, 1, queue.MAX_PAGE)
        offset = _int_arg("offset", 0, 0, 10**9)
        with tower.engine.connect() as conn:
            items = queue.list_exceptions(conn, status=status, tier=tier, team=team,
                                          order_id=request.args.get("order_id") or None,
                                          limit=limit, offset=offset)
        return jsonify({"items": items,
                        "next_offset": offset + limit if len(items) == limit else None}), 200

    @api.get("/api/v1/exceptions/<ex_id>")
    def get_exception(ex_id: str) -> tuple[Response, int]:
        with tower.engine.connect() as conn:
            return jsonify(detail(conn, ex_id)), 200

    @api.get("/api/v1/emergency-room")
    def emergency_room() -> tuple[Response, int]:
        limit = _int_arg("limit", 200, 1, queue.MAX_PAGE)
        now = tower.clock.now()
        with tower.engine.connect() as conn:
            items = queue.emergency_room(conn, now=now, team=request.args.get("team") or None,
                                         limit=limit, exclude_rules=policy().improvement_rules)
        return jsonify({"now": now.isoformat(), "items": items}), 200

    @api.get("/api/v1/exceptions/measures")
    def get_measures() -> tuple[Response, int]:
        now = tower.clock.now()
        until = _time_arg("until") or now
        since = _time_arg("since") or until - DEFAULT_MEASURE_SPAN
        if since >= until:
            raise BadRequest(400, "since: must be before until")
        if until - since > MAX_MEASURE_SPAN:
            raise BadRequest(400, "since: the window is at most 366 days")
        with tower.engine.connect() as conn:
            return jsonify(exception_measures.measures(conn, since=since, until=until, now=now)), 200

    # --- writes --------------------------------------------------------------------

    @api.post("/api/v1/exceptions")
    def raise_exception() -> tuple[Response, int]:
        body = _body(RaiseBody)
        pol = policy()
        if body.team not in pol.teams:
            raise BadRequest(422, f"team: {body.team!r} is not a team (known: {', '.join(pol.teams)})")
        now = tower.clock.now()
        trigger = store.Trigger(
            rule=body.rule, scope_key=body.scope(), tier=body.tier, team=body.team, title=body.title,
            condition_since=now, order_id=body.order_id, parcel_id=body.parcel_id,
            hub_id=body.hub_id, flow=body.flow, stage=body.stage, high_priority=body.high_priority,
            detail=body.detail)
        with tower.engine.begin() as conn:
            raised = store.raise_or_bump(conn, trigger, now=now, policy=pol, raised_by=body.actor,
                                         note=body.note)
            answer = {**detail(conn, raised.id), "created": raised.created}
        return jsonify(answer), 201 if raised.created else 200

    @api.post("/api/v1/exceptions/<ex_id>/ack")
    def ack(ex_id: str) -> tuple[Response, int]:
        b = _body(NoteBody)
        return write(ex_id, lambda c, now, _p: store.acknowledge(c, ex_id, actor=b.actor, now=now,
                                                                 note=b.note))

    @api.post("/api/v1/exceptions/<ex_id>/assign")
    def assign(ex_id: str) -> tuple[Response, int]:
        b = _body(AssignBody)
        return write(ex_id, lambda c, now, p: store.assign(
            c, ex_id, team=b.team, assignee=b.assignee, actor=b.actor, now=now, policy=p, note=b.note))

    @api.post("/api/v1/exceptions/<ex_id>/snooze")
    def snooze(ex_id: str) -> tuple[Response, int]:
        b = _body(SnoozeBody)

        def move(c: Connection, now: datetime, _p: ResponsePolicy) -> object:
            until = b.until if b.until is not None else now + timedelta(hours=b.hours or 0)
            return store.snooze(c, ex_id, until=until, actor=b.actor, now=now, note=b.note)

        return write(ex_id, move)

    @api.post("/api/v1/exceptions/<ex_id>/resolve")
    def resolve(ex_id: str) -> tuple[Response, int]:
        b = _body(ResolveBody)
        cause = store.RootCause(cause=b.cause, note=b.note, whys=b.whys, supplier=b.supplier,
                                carrier=b.carrier, hub=b.hub)
        return write(ex_id, lambda c, now, p: store.resolve(c, ex_id, cause=cause, actor=b.actor,
                                                            now=now, policy=p))

    @api.post("/api/v1/exceptions/<ex_id>/comment")
    def comment(ex_id: str) -> tuple[Response, int]:
        b = _body(CommentBody)
        return write(ex_id, lambda c, now, _p: store.comment(
            c, ex_id, note=b.note, step=b.step, next_update_h=b.next_update_h, actor=b.actor, now=now))

    @api.post("/api/v1/exceptions/<ex_id>/close")
    def close(ex_id: str) -> tuple[Response, int]:
        b = _body(NoteBody)
        return write(ex_id, lambda c, now, _p: store.close(c, ex_id, actor=b.actor, now=now,
                                                           note=b.note))

    @api.post("/api/v1/exceptions/<ex_id>/cancel")
    def cancel(ex_id: str) -> tuple[Response, int]:
        b = _body(NoteBody)
        return write(ex_id, lambda c, now, _p: store.cancel(c, ex_id, actor=b.actor, now=now,
                                                            note=b.note))

    return api
