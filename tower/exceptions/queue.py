"""Reading exceptions: filtered lists and the order emergency room queue."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, case, func, select

from tower.exceptions.lifecycle import OPEN_STATUSES
from tower.exceptions.store import EXCEPTIONS, ORDERS, to_json

MAX_PAGE: Final = 500
# The fields of a list item; the full row (with detail and root cause) is on /{id}.
LIST_FIELDS: Final = (
    "id", "rule", "scope_key", "title", "order_id", "parcel_id", "hub_id", "flow", "stage",
    "tier", "status", "team", "assignee", "high_priority", "count", "escalations",
    "opened_at", "respond_by", "acknowledged_at", "resolved_at", "snoozed_until",
    "handling_step", "next_update_at", "parent_id", "raised_by",
)


def list_exceptions(conn: Connection, *, status: str | None = None, tier: str | None = None,
                    team: str | None = None, order_id: str | None = None, limit: int = 100,
                    offset: int = 0) -> list[dict[str, Any]]:
    """Exceptions, newest first. ``status="open"`` means every status but the done ones."""
    query = select(*(EXCEPTIONS.c[f] for f in LIST_FIELDS))
    if status == "open":
        query = query.where(EXCEPTIONS.c.status.in_(sorted(OPEN_STATUSES)))
    elif status is not None:
        query = query.where(EXCEPTIONS.c.status == status)
    if tier is not None:
        query = query.where(EXCEPTIONS.c.tier == tier)
    if team is not None:
        query = query.where(EXCEPTIONS.c.team == team)
    if order_id is not None:
        query = query.where(EXCEPTIONS.c.order_id == order_id)
    query = (query.order_by(EXCEPTIONS.c.opened_at.desc(), EXCEPTIONS.c.id.desc())
             .limit(max(1, min(limit, MAX_PAGE))).offset(max(0, offset)))
    return [to_json(r) for r in conn.execute(query).mappings()]


def emergency_room(conn: Connection, *, now: datetime, team: str | None = None,
                   limit: int = 200, exclude_rules: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The escalated exceptions (L2, L3) that are open, awake and not grouped, in triage order.

    L3 before L2; within a tier the unacknowledged first, nearest response deadline
    first (overdue ones on top), then the acknowledged by their next promised update.
    Each item carries ``seconds_left`` to its response deadline (negative when
    overdue; None once acknowledged), the order's ``promised_at`` and the handling step.
    """
    ex = EXCEPTIONS
    child = ex.alias("child")
    grouped = (select(func.count()).select_from(child)
               .where(child.c.parent_id == ex.c.id, child.c.status.in_(sorted(OPEN_STATUSES)))
               .scalar_subquery())
    query = (
        select(ex, ORDERS.c.promised_at, ORDERS.c.priority.label("order_priority"),
               grouped.label("grouped"))
        .select_from(ex.outerjoin(ORDERS, ORDERS.c.order_id == ex.c.order_id))
        .where(ex.c.status.in_(("triggered", "acknowledged")), ex.c.tier.in_(("L2", "L3")),
               ex.c.parent_id.is_(None))
    )
    if team is not None:
        query = query.where(ex.c.team == team)
    if exclude_rules:
        query = query.where(ex.c.rule.not_in(list(exclude_rules)))
    query = (
        query.order_by(ex.c.tier.desc(), case((ex.c.acknowledged_at.is_(None), 0), else_=1),
                       ex.c.respond_by.asc().nulls_last(), ex.c.next_update_at.asc().nulls_last(),
                       ex.c.opened_at, ex.c.id)
        .limit(max(1, min(limit, MAX_PAGE)))
    )
    items = []
    for r in conn.execute(query).mappings():
        respond_by = r["respond_by"]
        waiting = r["acknowledged_at"] is None and respond_by is not None
        seconds_left = round((respond_by - now).total_seconds()) if waiting else None
        items.append({
            "id": r["id"], "rule": r["rule"], "title": r["title"], "tier": r["tier"],
            "status": r["status"], "team": r["team"], "assignee": r["assignee"],
            "order_id": r["order_id"], "parcel_id": r["parcel_id"], "hub_id": r["hub_id"],
            "promised_at": _iso(r["promised_at"]), "order_priority": r["order_priority"],
            "high_priority": r["high_priority"], "opened_at": _iso(r["opened_at"]),
            "respond_by": _iso(respond_by), "seconds_left": seconds_left,
            "overdue": seconds_left is not None and seconds_left < 0,
            "handling_step": r["handling_step"], "next_update_at": _iso(r["next_update_at"]),
            "count": r["count"], "escalations": r["escalations"], "grouped": r["grouped"],
        })
    return items


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
