"""What the rule scans read from the projections: bounded queries on their indexes.

- orders in progress, one (flow, stage) at a time: ``ix_orders_flow_stage_status``,
  joined to their current stage visit by the visit's primary key; the rows read are the
  work in progress, never the delivered history;
- parcels still at a hub since before a cut-off: the partial index
  ``ix_hub_visits_open_arrived`` (migration 0005), which holds open visits only;
- a window of hub arrivals: ``ix_hub_visits_arrived`` (index-only on PostgreSQL);
- a review period of stage visits: ``ix_stage_intervals_entered``;
- open exceptions and hold-downs of the orders of one batch: ``ix_exceptions_order``
  and the primary key of ``rule_pending``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, and_, case, func, literal_column, select

from tower.flows import FlowBook
from tower.projection import IN_PROGRESS
from tower.rules.conditions import OrderView
from tower.store.tables import ExceptionRow, HubVisitRow, Order, Parcel, RulePending, StageInterval

ORDERS = cast(Table, Order.__table__)
VISITS = cast(Table, StageInterval.__table__)
HUB_VISITS = cast(Table, HubVisitRow.__table__)
PARCELS = cast(Table, Parcel.__table__)
EXCEPTIONS = cast(Table, ExceptionRow.__table__)
PENDING = cast(Table, RulePending.__table__)
CHUNK = 1_000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def orders_in_progress(conn: Connection, flows: FlowBook) -> Iterator[OrderView]:
    """Every order in progress with its current stage visit, stage by stage."""
    o, v = ORDERS, VISITS
    columns = (o.c.order_id, o.c.flow, o.c.stage, o.c.priority, o.c.custom, o.c.promised_at,
               o.c.created_at, o.c.last_event_at, v.c.entered_at, v.c.completed_at,
               o.c.checkpoint["parcels"], o.c.checkpoint["evidence"])
    join = o.join(v, and_(v.c.order_id == o.c.order_id, v.c.seq == o.c.stage_seq))
    for flow in flows.flows:
        for stage in flow.stages:
            rows = conn.execute(
                select(*columns).select_from(join)
                .where(o.c.flow == flow.id, o.c.stage == stage.id, o.c.status == IN_PROGRESS)
            )
            for (order_id, flow_id, stage_id, priority, custom, promised_at, created_at,
                 last_event_at, entered_at, completed_at, parcels, evidence) in rows:
                yield OrderView(
                    order_id=order_id, flow=flow_id, stage=stage_id, status=IN_PROGRESS,
                    rush=priority == "rush", custom=bool(custom), promised_at=promised_at,
                    created_at=created_at, last_event_at=last_event_at, entered_at=entered_at,
                    completed_at=completed_at, has_parcels=bool(parcels),
                    evidence=frozenset((s, k) for s, k in evidence or ()),
                )


@dataclass(frozen=True, slots=True)
class OpenVisit:
    parcel_id: str
    hub_id: str
    arrived_at: datetime


def parcels_at_hubs_since(conn: Connection, *, before: datetime) -> list[OpenVisit]:
    """Parcels still at the hub they arrived at before ``before``."""
    h = HUB_VISITS
    rows = conn.execute(
        select(h.c.parcel_id, h.c.hub_id, h.c.arrived_at)
        .where(h.c.departed_at.is_(None), h.c.arrived_at < before)
    )
    return [OpenVisit(p, hub, at) for p, hub, at in rows]


@dataclass(frozen=True, slots=True)
class SilentParcel:
    parcel_id: str
    status: str
    hub_id: str | None
    last_scan_at: datetime


def parcels_silent_since(conn: Connection, *, before: datetime) -> list[SilentParcel]:
    """Undelivered parcels whose last scan, wherever it was, is older than ``before``
    (partial index ``ix_parcels_undelivered_scan``, migration 0008)."""
    p = PARCELS
    rows = conn.execute(
        select(p.c.parcel_id, p.c.status, p.c.hub_id, p.c.last_scan_at)
        .where(p.c.status != "delivered", p.c.last_scan_at < before)
    )
    return [SilentParcel(pid, status, hub, at) for pid, status, hub, at in rows]


@dataclass(frozen=True, slots=True)
class HubCohort:
    hub_id: str
    arrivals: int
    retained: int


def hub_cohorts(conn: Connection, *, start: datetime, end: datetime,
                dwell_limit: timedelta) -> list[HubCohort]:
    """Per hub, the parcels that arrived in ``[start, end)`` and how many of them were
    retained: stayed longer than the dwell limit, or are still there."""
    h = HUB_VISITS
    limit_s = dwell_limit.total_seconds()
    retained = case((h.c.dwell_s > limit_s, 1), (h.c.departed_at.is_(None), 1), else_=0)
    first, last = int(start.timestamp() // 3600), int(end.timestamp() // 3600)
    rows = conn.execute(
        select(h.c.hub_id, func.count(), func.sum(retained))
        .where(h.c.arrived_hour >= first, h.c.arrived_hour <= last,
               h.c.arrived_at >= start, h.c.arrived_at < end)
        .group_by(h.c.hub_id)
    )
    return [HubCohort(hub, int(n), int(kept or 0)) for hub, n, kept in rows]


@dataclass(frozen=True, slots=True)
class StageAverage:
    flow: str
    stage: str
    visits: int
    avg_h: float


def stage_averages(conn: Connection, *, since: datetime, until: datetime) -> list[StageAverage]:
    """Average entered -> completed time of the completed stage visits entered in the period."""
    v = VISITS
    if conn.dialect.name == "postgresql":
        seconds: Any = func.extract("epoch", v.c.completed_at - v.c.entered_at)
    else:
        days = func.julianday(v.c.completed_at) - func.julianday(v.c.entered_at)
        seconds = days * literal_column("86400.0")
    rows = conn.execute(
        select(v.c.flow, v.c.stage, func.count(), func.avg(seconds))
        .where(v.c.entered_at >= since, v.c.entered_at < until, v.c.completed_at.is_not(None))
        .group_by(v.c.flow, v.c.stage)
    )
    return [StageAverage(f, s, int(n), float(avg or 0) / 3600) for f, s, n, avg in rows]


@dataclass(frozen=True, slots=True)
class OpenException:
    id: str
    rule: str
    scope_key: str
    hub_id: str | None


def open_exceptions_of_orders(conn: Connection, order_ids: Sequence[str]) -> list[OpenException]:
    e = EXCEPTIONS
    out: list[OpenException] = []
    for part in chunks(sorted(order_ids)):
        rows = conn.execute(
            select(e.c.id, e.c.rule, e.c.scope_key, e.c.hub_id)
            .where(e.c.order_id.in_(part), e.c.open_key.is_not(None))
        )
        out.extend(OpenException(*r) for r in rows)
    return out


def open_exceptions_by_key(conn: Connection, open_keys: Sequence[str]) -> list[OpenException]:
    """Open exceptions by ``rule|scope_key`` (the unique index of open exceptions)."""
    e = EXCEPTIONS
    out: list[OpenException] = []
    for part in chunks(sorted(open_keys)):
        rows = conn.execute(select(e.c.id, e.c.rule, e.c.scope_key, e.c.hub_id)
                            .where(e.c.open_key.in_(part)))
        out.extend(OpenException(*r) for r in rows)
    return out


@dataclass(slots=True)
class Pending:
    """A condition inside its hold-down."""

    rule: str
    scope_key: str
    since: datetime
    last_seen_at: datetime
    data: dict[str, Any]


def pending_of(conn: Connection, rules: Sequence[str],
               scope_keys: Sequence[str]) -> dict[tuple[str, str], Pending]:
    p = PENDING
    out: dict[tuple[str, str], Pending] = {}
    if not rules or not scope_keys:
        return out
    for part in chunks(sorted(scope_keys)):
        for row in conn.execute(select(p).where(p.c.rule.in_(list(rules)), p.c.scope_key.in_(part))):
            out[(row.rule, row.scope_key)] = Pending(row.rule, row.scope_key, row.since,
                                                     row.last_seen_at, dict(row.data))
    return out


def pending_due(conn: Connection, rule: str, *, since_before: datetime) -> list[Pending]:
    p = PENDING
    rows = conn.execute(select(p).where(p.c.rule == rule, p.c.since <= since_before))
    return [Pending(r.rule, r.scope_key, r.since, r.last_seen_at, dict(r.data)) for r in rows]
