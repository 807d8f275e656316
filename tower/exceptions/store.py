"""The exception repository: open-or-bump, lifecycle moves, timeline, escalation.

Every function takes the caller's ``Connection`` and works inside the caller's
transaction (``with engine.begin() as conn``), so an exception, its timeline entry,
its outbox notification and an order's frozen flag are committed together or not at
all. "now" is always passed in (the tower's clock, scaled in the demo).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, cast

from sqlalchemy import Connection, RowMapping, Table, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tower.exceptions.lifecycle import (
    DONE_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    TIERS,
    TIMELINE_ACTION,
    Action,
    Status,
    Tier,
    TransitionError,
    next_tier,
    transition,
)
from tower.exceptions.policy import PolicyConfigError, ResponsePolicy, load_policy
from tower.notify import outbox
from tower.store.tables import ExceptionEntry, ExceptionRow, Order

__all__ = [
    "ExceptionNotFound", "InvalidInput", "PolicyConfigError", "Raised", "ResponsePolicy",
    "RootCause", "TransitionError", "Trigger", "acknowledge", "assign", "cancel", "clear",
    "close", "comment", "escalate_overdue", "get_exception", "load_policy", "open_scopes",
    "raise_or_bump", "resolve", "snooze", "timeline", "to_json", "wake_snoozed",
]

EXCEPTIONS = cast(Table, ExceptionRow.__table__)
TIMELINE = cast(Table, ExceptionEntry.__table__)
ORDERS = cast(Table, Order.__table__)

SYSTEM: Final = "system"
# Most rows one escalation or wake-up pass touches; the next pass (30 s later) goes on.
PASS_LIMIT: Final = 500
MAX_TIMELINE_PAGE: Final = 1000


class ExceptionNotFound(LookupError):
    """No exception with that id."""


class InvalidInput(ValueError):
    """A value the policy does not allow (unknown team, cause, a wake-up in the past)."""


@dataclass(frozen=True)
class Trigger:
    """What the rules engine (or a person) reports: a condition on one scope."""

    rule: str
    scope_key: str
    tier: str
    team: str
    title: str
    condition_since: datetime           # event time the condition began
    order_id: str | None = None
    parcel_id: str | None = None
    hub_id: str | None = None
    flow: str | None = None
    stage: str | None = None
    high_priority: bool = False
    detail: Mapping[str, Any] = field(default_factory=dict)
    parent_id: str | None = None        # grouped under it: no deadline or notification of its own
    action: str | None = None           # L1: what the system did (an ``action_taken`` entry)


@dataclass(frozen=True)
class Raised:
    """The open exception a trigger landed on, and whether it was created by it."""

    id: str
    created: bool


@dataclass(frozen=True)
class RootCause:
    """Why it happened: a category of ``[root_causes]``, an optional 5-whys chain, who."""

    cause: str
    note: str | None = None
    whys: tuple[str, ...] = ()
    supplier: str | None = None
    carrier: str | None = None
    hub: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"cause": self.cause, "note": self.note, "whys": list(self.whys),
                "supplier": self.supplier, "carrier": self.carrier, "hub": self.hub}


# --- raising, bumping, clearing (called by tower.rules) ---------------------------------


def raise_or_bump(conn: Connection, trigger: Trigger, *, now: datetime, policy: ResponsePolicy,
                  raised_by: str = SYSTEM, note: str | None = None) -> Raised:
    """Open an exception for ``(rule, scope_key)``, or bump the one already open.

    Race-safe on both dialects: the insert does nothing on the ``open_key`` unique
    index, and then the open row is bumped (``count`` + 1, ``last_seen_at``). A new
    exception of L2/L3 that is not grouped gets a response deadline and an
    ``exception.opened`` notification.
    """
    if trigger.tier not in TIERS:
        raise InvalidInput(f"tier: {trigger.tier!r} is not one of {', '.join(TIERS)}")
    tier: Tier = trigger.tier
    open_key = _open_key(trigger.rule, trigger.scope_key)
    grouped = trigger.parent_id is not None
    improvement = trigger.rule in policy.improvement_rules  # a review finding: no deadline
    for _ in range(3):  # the open row may close between our insert and our bump; try again
        new_id = f"EX-{uuid.uuid4().hex[:12]}"
        values = {
            "id": new_id, "rule": trigger.rule, "scope_key": trigger.scope_key,
            "open_key": open_key, "order_id": trigger.order_id, "parcel_id": trigger.parcel_id,
            "hub_id": trigger.hub_id, "flow": trigger.flow, "stage": trigger.stage,
            "tier": tier, "status": "triggered", "team": trigger.team,
            "high_priority": trigger.high_priority, "title": trigger.title,
            "detail": dict(trigger.detail), "count": 1, "condition_since": trigger.condition_since,
            "opened_at": now, "last_seen_at": now,
            "respond_by": None if grouped or improvement else policy.respond_by(
                tier, high_priority=trigger.high_priority, now=now),
            "parent_id": trigger.parent_id, "raised_by": raised_by, "escalations": 0,
            "updated_at": now,
        }
        stmt = (_insert(conn).values(**values)
                .on_conflict_do_nothing(index_elements=["open_key"]).returning(EXCEPTIONS.c.id))
        if conn.execute(stmt).first() is not None:
            _entry(conn, new_id, at=now, actor=raised_by, action="triggered", to_status="triggered",
                   note=note or trigger.title,
                   data={"rule": trigger.rule, "scope_key": trigger.scope_key, "tier": tier})
            if grouped:
                _entry(conn, new_id, at=now, actor=SYSTEM, action="grouped",
                       note=f"grouped under {trigger.parent_id}", data={"parent_id": trigger.parent_id})
            if trigger.action:
                _entry(conn, new_id, at=now, actor=SYSTEM, action="action_taken", note=trigger.action)
            if tier != "L1" and not grouped:
                row = _row(conn, new_id)
                _notify(conn, "exception.opened", row, at=now)
            return Raised(new_id, True)
        bumped = conn.execute(
            update(EXCEPTIONS).where(EXCEPTIONS.c.open_key == open_key)
            .values(count=EXCEPTIONS.c.count + 1, last_seen_at=now, updated_at=now)
            .returning(EXCEPTIONS.c.id, EXCEPTIONS.c.count, EXCEPTIONS.c.status)
        ).first()
        if bumped is not None:
            ex_id, count, status = bumped
            if count & (count - 1) == 0:  # 2, 4, 8, ...: a trace without flooding the timeline
                _entry(conn, ex_id, at=now, actor=SYSTEM, action="bumped", from_status=status,
                       to_status=status, note=f"seen {count} times", data={"count": count})
            return Raised(ex_id, False)
    raise RuntimeError(f"could not open or bump {open_key}")  # pragma: no cover


def clear(conn: Connection, *, rule: str, scope_key: str, now: datetime,
          note: str = "condition cleared") -> str | None:
    """Auto-resolve the open exception of ``(rule, scope_key)`` if the system raised it.

    Returns its id, or None when none is open or a person raised it (then it is
    theirs to resolve).
    """
    row = conn.execute(
        select(EXCEPTIONS).where(EXCEPTIONS.c.open_key == _open_key(rule, scope_key))
        .with_for_update()
    ).mappings().first()
    if row is None or row["raised_by"] != SYSTEM:
        return None
    _move(conn, row, "auto_resolve", actor=SYSTEM, now=now, note=note,
          changes={"resolved_at": now})
    return str(row["id"])


def open_scopes(conn: Connection, *, rule: str) -> dict[str, str]:
    """``scope_key -> exception id`` of every open exception of ``rule``."""
    rows = conn.execute(
        select(EXCEPTIONS.c.scope_key, EXCEPTIONS.c.id)
        .where(EXCEPTIONS.c.rule == rule, EXCEPTIONS.c.open_key.is_not(None))
    )
    return {scope: ex_id for scope, ex_id in rows}


# --- lifecycle moves by people ---------------------------------------------------------


def acknowledge(conn: Connection, exception_id: str, *, actor: str, now: datetime,
                note: str | None = None) -> RowMapping:
    """First response: the exception is seen and someone is on it."""
    row = _locked(conn, exception_id)
    return _move(conn, row, "acknowledge", actor=actor, now=now, note=note,
                 changes={"acknowledged_at": now, "snoozed_until": None})


def assign(conn: Connection, exception_id: str, *, team: str, assignee: str | None, actor: str,
           now: datetime, policy: ResponsePolicy, note: str | None = None) -> RowMapping:
    """Hand the exception to a team of the emergency room (and optionally a person)."""
    if team not in policy.teams:
        raise InvalidInput(f"team: {team!r} is not a team (known: {', '.join(policy.teams)})")
    row = _locked(conn, exception_id)
    return _move(conn, row, "assign", actor=actor, now=now, note=note,
                 changes={"team": team, "assignee": assignee},
                 data={"from_team": row["team"], "team": team, "assignee": assignee})


def snooze(conn: Connection, exception_id: str, *, until: datetime, actor: str, now: datetime,
           note: str | None = None) -> RowMapping:
    """Put the exception aside until ``until``; it then wakes to the status it had.

    Its response deadline does not move: one still unacknowledged past its deadline
    escalates as soon as it wakes.
    """
    if until <= now:
        raise InvalidInput(f"until: {until.isoformat()} is not in the future (now {now.isoformat()})")
    row = _locked(conn, exception_id)
    return _move(conn, row, "snooze", actor=actor, now=now, note=note,
                 changes={"snoozed_until": until}, data={"until": until.isoformat()})


def comment(conn: Connection, exception_id: str, *, note: str, actor: str, now: datetime,
            step: str | None = None, next_update_h: float | None = None) -> RowMapping:
    """A note in the timeline; with ``step``, also the current handling step.

    ``step`` ("carrier contacted") with ``next_update_h`` (2) shows in the emergency
    room as the step and the time the next update is expected.
    """
    row = _locked(conn, exception_id)
    if step is None:
        if next_update_h is not None:
            raise InvalidInput("next_update_h: only with a step")
        return _move(conn, row, "comment", actor=actor, now=now, note=note)
    next_at = now + timedelta(hours=next_update_h) if next_update_h is not None else None
    return _move(conn, row, "step", actor=actor, now=now, note=note,
                 changes={"handling_step": step, "next_update_at": next_at},
                 data={"step": step, "next_update_at": next_at.isoformat() if next_at else None})


def resolve(conn: Connection, exception_id: str, *, cause: RootCause, actor: str, now: datetime,
            policy: ResponsePolicy) -> RowMapping:
    """Resolved, with its root cause (a category of ``[root_causes]``)."""
    if cause.cause not in policy.root_causes:
        raise InvalidInput(f"cause: {cause.cause!r} is not a root-cause category "
                           f"(known: {', '.join(policy.root_causes)})")
    row = _locked(conn, exception_id)
    return _move(conn, row, "resolve", actor=actor, now=now, note=cause.note,
                 changes={"resolved_at": now, "root_cause": cause.as_json()},
                 data={"root_cause": cause.as_json()})


def close(conn: Connection, exception_id: str, *, actor: str, now: datetime,
          note: str | None = None) -> RowMapping:
    """Closed after resolution: reviewed, nothing more to do."""
    row = _locked(conn, exception_id)
    return _move(conn, row, "close", actor=actor, now=now, note=note, changes={"closed_at": now})


def cancel(conn: Connection, exception_id: str, *, actor: str, now: datetime,
           note: str | None = None) -> RowMapping:
    """Not an exception after all (a false alarm, a duplicate)."""
    row = _locked(conn, exception_id)
    return _move(conn, row, "cancel", actor=actor, now=now, note=note, changes={"cancelled_at": now})


# --- the periodic pass ---------------------------------------------------------------


def wake_snoozed(conn: Connection, *, now: datetime, limit: int = PASS_LIMIT) -> list[str]:
    """Wake every snoozed exception whose ``snoozed_until`` has passed; their ids."""
    rows = conn.execute(
        select(EXCEPTIONS)
        .where(EXCEPTIONS.c.status == "snoozed", EXCEPTIONS.c.snoozed_until <= now)
        .order_by(EXCEPTIONS.c.snoozed_until).limit(limit).with_for_update(skip_locked=True)
    ).mappings().all()
    for row in rows:
        _move(conn, row, "unsnooze", actor=SYSTEM, now=now,
              note=f"snoozed until {row['snoozed_until'].isoformat()}", changes={"snoozed_until": None})
    return [str(r["id"]) for r in rows]


def escalate_overdue(conn: Connection, *, now: datetime, policy: ResponsePolicy,
                     limit: int = PASS_LIMIT) -> list[str]:
    """Move every overdue, unacknowledged exception one tier up; their ids.

    Overdue: open, still ``triggered`` (not acknowledged, not snoozed), not grouped,
    and ``respond_by`` before ``now``. L2 becomes L3; an L3 stays L3 but counts one
    more escalation and notifies management again. Each gets a new deadline of its
    new tier and an ``exception.escalated`` notification.
    """
    if not policy.escalate_unacknowledged:
        return []
    rows = conn.execute(
        select(EXCEPTIONS)
        .where(EXCEPTIONS.c.status == "triggered", EXCEPTIONS.c.parent_id.is_(None),
               EXCEPTIONS.c.acknowledged_at.is_(None), EXCEPTIONS.c.respond_by.is_not(None),
               EXCEPTIONS.c.respond_by < now)
        .order_by(EXCEPTIONS.c.respond_by).limit(limit).with_for_update(skip_locked=True)
    ).mappings().all()
    for row in rows:
        old = cast(Tier, row["tier"])
        new = next_tier(old)
        respond_by = policy.respond_by(new, high_priority=bool(row["high_priority"]), now=now)
        escalations = int(row["escalations"]) + 1
        after = _move(
            conn, row, "escalate", actor=SYSTEM, now=now,
            note=f"not acknowledged by {row['respond_by'].isoformat()}: {old} -> {new}",
            changes={"tier": new, "respond_by": respond_by, "escalations": escalations},
            data={"from_tier": old, "to_tier": new, "escalations": escalations})
        _notify(conn, "exception.escalated", after, at=now,
                extra={"from_tier": old, "notify_team": policy.management_team if new == "L3"
                       else after["team"]})
    return [str(r["id"]) for r in rows]


# --- reads -----------------------------------------------------------------------------


def get_exception(conn: Connection, exception_id: str) -> RowMapping | None:
    return conn.execute(select(EXCEPTIONS).where(EXCEPTIONS.c.id == exception_id)).mappings().first()


def timeline(conn: Connection, exception_id: str, *, after: int = 0,
             limit: int = 100) -> list[dict[str, Any]]:
    """Timeline entries of an exception, oldest first, after entry id ``after``."""
    limit = max(1, min(limit, MAX_TIMELINE_PAGE))
    rows = conn.execute(
        select(TIMELINE).where(TIMELINE.c.exception_id == exception_id, TIMELINE.c.id > after)
        .order_by(TIMELINE.c.id).limit(limit)
    ).mappings()
    return [
        {"id": r["id"], "at": r["at"].isoformat(), "actor": r["actor"], "action": r["action"],
         "from_status": r["from_status"], "to_status": r["to_status"], "note": r["note"],
         "data": r["data"]}
        for r in rows
    ]


def to_json(row: RowMapping) -> dict[str, Any]:
    """An exception row as plain JSON values (times RFC 3339, UTC); ``open_key`` left out."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in row.items() if k != "open_key"}


# --- internals -------------------------------------------------------------------------


def _open_key(rule: str, scope_key: str) -> str:
    return f"{rule}|{scope_key}"


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        return pg_insert(EXCEPTIONS)
    if conn.dialect.name == "sqlite":
        return sqlite_insert(EXCEPTIONS)
    raise RuntimeError(f"unsupported dialect {conn.dialect.name}")  # pragma: no cover


def _row(conn: Connection, exception_id: str) -> RowMapping:
    row = get_exception(conn, exception_id)
    if row is None:
        raise ExceptionNotFound(f"no exception {exception_id!r}")
    return row


def _locked(conn: Connection, exception_id: str) -> RowMapping:
    row = conn.execute(
        select(EXCEPTIONS).where(EXCEPTIONS.c.id == exception_id).with_for_update()
    ).mappings().first()
    if row is None:
        raise ExceptionNotFound(f"no exception {exception_id!r}")
    return row


def _move(conn: Connection, row: RowMapping, action: Action, *, actor: str, now: datetime,
          note: str | None = None, changes: Mapping[str, Any] | None = None,
          data: Mapping[str, Any] | None = None) -> RowMapping:
    """Apply one lifecycle action to a locked row: status, changes, timeline, side effects."""
    old = cast(Status, row["status"])
    new = transition(old, action, acknowledged=row["acknowledged_at"] is not None)
    values: dict[str, Any] = {**(changes or {}), "status": new, "updated_at": now}
    if new in DONE_STATUSES:
        values["open_key"] = None
    done = conn.execute(
        update(EXCEPTIONS).where(EXCEPTIONS.c.id == row["id"], EXCEPTIONS.c.status == old)
        .values(**values)
    )
    if done.rowcount != 1:
        raise TransitionError("the exception changed meanwhile; read it again and retry")
    ex_id = str(row["id"])
    _entry(conn, ex_id, at=now, actor=actor, action=TIMELINE_ACTION[action], from_status=old,
           to_status=new, note=note, data=dict(data) if data else None)
    after = _row(conn, ex_id)
    if new in ("resolved", "cancelled") and old in OPEN_STATUSES:
        _unfreeze_order(conn, after, actor=actor, now=now)
        if new == "resolved" and after["tier"] != "L1" and after["parent_id"] is None:
            _notify(conn, "exception.resolved", after, at=now)
    return after


def _unfreeze_order(conn: Connection, row: RowMapping, *, actor: str, now: datetime) -> None:
    # Cold chain: the rule froze the order; its end lets the order move again.
    detail = row["detail"] or {}
    if detail.get("froze_order") is not True or row["order_id"] is None:
        return
    conn.execute(update(ORDERS).where(ORDERS.c.order_id == row["order_id"]).values(frozen=False))
    _entry(conn, str(row["id"]), at=now, actor=actor, action="comment",
           note=f"order {row['order_id']} unfrozen", data={"order_id": row["order_id"], "frozen": False})


def _entry(conn: Connection, exception_id: str, *, at: datetime, actor: str, action: str,
           from_status: str | None = None, to_status: str | None = None, note: str | None = None,
           data: Mapping[str, Any] | None = None) -> None:
    conn.execute(insert(TIMELINE).values(
        exception_id=exception_id, at=at, actor=actor, action=action, from_status=from_status,
        to_status=to_status, note=note, data=dict(data) if data is not None else None))


def _notify(conn: Connection, topic: str, row: RowMapping, *, at: datetime,
            extra: Mapping[str, Any] | None = None) -> None:
    keys = ("id", "rule", "scope_key", "tier", "status", "team", "assignee", "title", "order_id",
            "parcel_id", "hub_id", "flow", "stage", "high_priority", "opened_at", "respond_by",
            "escalations", "count", "detail", "root_cause")
    payload = {k: (row[k].isoformat() if isinstance(row[k], datetime) else row[k]) for k in keys}
    outbox.enqueue(conn, topic=topic, payload={**payload, **(extra or {})}, at=at)


# Kept for callers that want to check a status string (API filters).
KNOWN_STATUSES: Final = frozenset(STATUSES)
