"""Read services: what the API and the screens ask of the projections.

Sessions are opened per call and closed by a context manager; functions take
keyword-only arguments and return plain, JSON-ready data.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Table, case, func, select

from tower.flows import FlowBook
from tower.store.tables import (
    BUCKET_S,
    DeadLetterRow,
    DeliveryCount,
    Event,
    HeldEvent,
    HubVisitRow,
    Order,
    OrderStageCount,
    StageEntryCount,
    StageInterval,
    StageReentry,
)
from tower.store.writes import ANY_IDS, id_list

EVENTS = cast(Table, Event.__table__)
ORDERS = cast(Table, Order.__table__)
VISITS = cast(Table, StageInterval.__table__)
HUB_VISITS = cast(Table, HubVisitRow.__table__)
DEAD = cast(Table, DeadLetterRow.__table__)
HELD = cast(Table, HeldEvent.__table__)
STAGE_COUNTS = cast(Table, OrderStageCount.__table__)
ENTRY_COUNTS = cast(Table, StageEntryCount.__table__)
REENTRIES = cast(Table, StageReentry.__table__)
DELIVERY_COUNTS = cast(Table, DeliveryCount.__table__)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t else None


class StoreDirectory:
    """The ingest's view of the store: known event ids and order flows."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # On PostgreSQL the id list goes as one JSON parameter (see writes.ANY_IDS):
        # a thousand bound parameters cost more to send than the look-up itself.
        self._pg = engine.dialect.name == "postgresql"

    def _lookup(self, sql: str, column: Any, columns: Sequence[Any],
                ids: Sequence[str]) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        with self.engine.connect() as conn:
            if self._pg and ids:
                # Unprepared, like the projector's look-ups: a cached generic plan would
                # keep the plan chosen while the table was small.
                driver: Any = conn.connection.driver_connection
                return [tuple(r) for r in driver.execute(sql, (id_list(ids),), prepare=False).fetchall()]
            for i in range(0, len(ids), 5_000):
                chunk = list(ids[i : i + 5_000])
                rows.extend(tuple(r) for r in conn.execute(select(*columns).where(column.in_(chunk))))
        return rows

    def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        return {r[0] for r in self._lookup(
            f"SELECT event_id FROM events WHERE event_id = {ANY_IDS}",
            EVENTS.c.event_id, [EVENTS.c.event_id], event_ids,
        )}

    def order_flows(self, order_ids: Sequence[str]) -> dict[str, str]:
        return {r[0]: r[1] for r in self._lookup(
            f"SELECT order_id, flow FROM orders WHERE order_id = {ANY_IDS}",
            ORDERS.c.order_id, [ORDERS.c.order_id, ORDERS.c.flow], order_ids,
        )}


def get_order(engine: Engine, *, order_id: str, now: datetime | None = None) -> dict[str, Any] | None:
    """One order with its stage intervals and full event timeline, or None."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        row = conn.execute(select(ORDERS).where(ORDERS.c.order_id == order_id)).first()
        if row is None:
            return None
        visits = conn.execute(
            select(VISITS).where(VISITS.c.order_id == order_id).order_by(VISITS.c.seq)
        ).all()
        events = conn.execute(
            select(EVENTS).where(EVENTS.c.order_id == order_id)
            .order_by(EVENTS.c.occurred_at, EVENTS.c.event_id)
        ).all()
    status = "frozen" if row.frozen and row.status == "in_progress" else row.status
    return {
        "order_id": row.order_id,
        "flow": row.flow,
        "stage": row.stage,
        "status": status,
        "priority": row.priority,
        "custom": row.custom,
        "promised_at": _iso(row.promised_at),
        "created_at": _iso(row.created_at),
        "delivered_at": _iso(row.delivered_at),
        "last_event_at": _iso(row.last_event_at),
        "late": bool(row.late) or (status in ("in_progress", "frozen") and row.promised_at < now),
        "at_risk": bool(row.at_risk),
        "customer_id": row.customer_id,
        "city": row.city,
        "stages": [
            {"seq": v.seq, "stage": v.stage, "entered_at": _iso(v.entered_at),
             "started_at": _iso(v.started_at), "completed_at": _iso(v.completed_at)}
            for v in visits
        ],
        "events": [
            {"event_id": e.event_id, "type": e.type, "occurred_at": _iso(e.occurred_at),
             "source": e.source, "payload": e.payload}
            for e in events
        ],
    }


def funnel(
    engine: Engine, *, flows: FlowBook, flow_id: str, zone: ZoneInfo, days: int = 2,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Orders per stage of one flow now, and orders that entered each stage per day.

    Read from the rollups the projector keeps (a few small index range scans whatever
    the number of orders); "entered" counts distinct orders: first entries from the
    15-minute entry counts plus the orders that came back to the stage that day.
    """
    flow = flows.by_id[flow_id]
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=d) for d in range(days)]
    windows = [(s.astimezone(UTC), (s + timedelta(days=1)).astimezone(UTC)) for s in starts]
    if any(t.timestamp() % BUCKET_S for w in windows for t in w):
        return _funnel_exact(engine, flows=flows, flow_id=flow_id, zone=zone, days=days, now=now)
    f = flow_id
    with engine.connect() as conn:
        current = conn.execute(
            select(STAGE_COUNTS.c.stage, STAGE_COUNTS.c.status, func.sum(STAGE_COUNTS.c.n))
            .where(STAGE_COUNTS.c.flow == f)
            .group_by(STAGE_COUNTS.c.stage, STAGE_COUNTS.c.status)
            .having(func.sum(STAGE_COUNTS.c.n) != 0)
            .order_by(STAGE_COUNTS.c.status, STAGE_COUNTS.c.stage)
        ).all()
        per_day = []
        for start, (lo, hi) in zip(starts, windows, strict=True):
            first, last = int(lo.timestamp()) // BUCKET_S, int(hi.timestamp()) // BUCKET_S
            entered: dict[str, int] = {}
            for stage, count in conn.execute(
                select(ENTRY_COUNTS.c.stage, func.sum(ENTRY_COUNTS.c.n))
                .where(ENTRY_COUNTS.c.flow == f, ENTRY_COUNTS.c.bucket >= first,
                       ENTRY_COUNTS.c.bucket < last)
                .group_by(ENTRY_COUNTS.c.stage)
            ):
                entered[str(stage)] = int(count)
            for stage, count in conn.execute(
                select(REENTRIES.c.stage, func.count(func.distinct(REENTRIES.c.order_id)))
                .where(REENTRIES.c.flow == f, REENTRIES.c.entered_at >= lo, REENTRIES.c.entered_at < hi,
                       REENTRIES.c.first_entered_at < lo)
                .group_by(REENTRIES.c.stage)
            ):
                entered[str(stage)] = entered.get(str(stage), 0) + int(count)
            delivered = conn.execute(
                select(func.coalesce(func.sum(DELIVERY_COUNTS.c.n), 0))
                .where(DELIVERY_COUNTS.c.flow == f, DELIVERY_COUNTS.c.bucket >= first,
                       DELIVERY_COUNTS.c.bucket < last)
            ).scalar_one()
            per_day.append({
                "day": start.date().isoformat(),
                "entered": {s: int(entered.get(s, 0)) for s in flow.stage_ids},
                "delivered": int(delivered),
            })
    return _funnel_result(flows, flow_id, current, per_day)


def _funnel_result(flows: FlowBook, flow_id: str, current: Sequence[Any],
                   per_day: list[dict[str, Any]]) -> dict[str, Any]:
    flow = flows.by_id[flow_id]
    in_stage = {s: 0 for s in flow.stage_ids}
    by_status: dict[str, int] = {}
    for stage, status, count in current:
        by_status[status] = by_status.get(status, 0) + int(count)
        if status == "in_progress" and stage in in_stage:
            in_stage[stage] += int(count)
    return {
        "flow": flow_id,
        "stages": [{"stage": s, "in_stage": in_stage[s]} for s in flow.stage_ids],
        "by_status": by_status,
        "days": per_day,
    }


def _funnel_exact(
    engine: Engine, *, flows: FlowBook, flow_id: str, zone: ZoneInfo, days: int = 2,
    now: datetime | None = None,
) -> dict[str, Any]:
    """:func:`funnel` read from the orders and stage visits themselves (the reference;
    used when a day does not start on a 15-minute boundary of UTC)."""
    flow = flows.by_id[flow_id]
    now = now or datetime.now(UTC)
    today = now.astimezone(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    starts = [today - timedelta(days=d) for d in range(days)]
    with engine.connect() as conn:
        current = conn.execute(
            select(ORDERS.c.stage, ORDERS.c.status, func.count())
            .where(ORDERS.c.flow == flow_id)
            .group_by(ORDERS.c.stage, ORDERS.c.status)
            .order_by(ORDERS.c.status, ORDERS.c.stage)
        ).all()
        per_day = []
        for start in starts:
            end = start + timedelta(days=1)
            rows = conn.execute(
                select(VISITS.c.stage, func.count(func.distinct(VISITS.c.order_id)))
                .where(VISITS.c.entered_at >= start.astimezone(UTC),
                       VISITS.c.entered_at < end.astimezone(UTC), VISITS.c.flow == flow_id)
                .group_by(VISITS.c.stage)
            ).all()
            delivered = conn.execute(
                select(func.count()).select_from(ORDERS)
                .where(ORDERS.c.flow == flow_id, ORDERS.c.delivered_at >= start.astimezone(UTC),
                       ORDERS.c.delivered_at < end.astimezone(UTC))
            ).scalar_one()
            entered: dict[str, int] = {str(s): int(c) for s, c in rows}
            per_day.append({
                "day": start.date().isoformat(),
                "entered": {s: int(entered.get(s, 0)) for s in flow.stage_ids},
                "delivered": int(delivered),
            })
    return _funnel_result(flows, flow_id, current, per_day)


def hub_rollup(
    engine: Engine, *, since: datetime, dwell_limit_h: float, now: datetime | None = None,
) -> dict[str, Any]:
    """Hub x hour: arrivals, departures, retained parcels and retention rate since ``since``.

    Retention rate = parcels whose dwell exceeded the limit (or that are still there
    past it) / parcels that arrived in that hour.
    """
    now = now or datetime.now(UTC)
    since_hour = int(since.timestamp() // 3600)
    limit_s = dwell_limit_h * 3600
    overdue_before = now - timedelta(seconds=limit_s)
    retained = case(
        (HUB_VISITS.c.dwell_s > limit_s, 1),
        (HUB_VISITS.c.departed_at.is_(None) & (HUB_VISITS.c.arrived_at < overdue_before), 1),
        else_=0,
    )
    # Grouped in index order (hour, hub): PostgreSQL aggregates the index-only scans of
    # ix_hub_visits_arrived (which carries the columns "retained" needs, migration 0003)
    # and ix_hub_visits_departed as they come, with no hashing or sorting.
    with engine.connect() as conn:
        arrivals = conn.execute(
            select(HUB_VISITS.c.hub_id, HUB_VISITS.c.arrived_hour, func.count(), func.sum(retained))
            .where(HUB_VISITS.c.arrived_hour >= since_hour)
            .group_by(HUB_VISITS.c.arrived_hour, HUB_VISITS.c.hub_id)
        ).all()
        departures = conn.execute(
            select(HUB_VISITS.c.hub_id, HUB_VISITS.c.departed_hour, func.count())
            .where(HUB_VISITS.c.departed_hour >= since_hour)
            .group_by(HUB_VISITS.c.departed_hour, HUB_VISITS.c.hub_id)
        ).all()
    cells: dict[tuple[str, int], dict[str, Any]] = {}

    def cell(hub: str, hour: int) -> dict[str, Any]:
        return cells.setdefault((hub, hour), {
            "hub_id": hub, "hour": datetime.fromtimestamp(hour * 3600, UTC).isoformat(),
            "arrivals": 0, "departures": 0, "retained": 0, "retention_rate": 0.0,
        })

    for hub, hour, count, kept in arrivals:
        c = cell(hub, int(hour))
        c["arrivals"] = int(count)
        c["retained"] = int(kept or 0)
        c["retention_rate"] = round(c["retained"] / c["arrivals"], 4) if c["arrivals"] else 0.0
    for hub, hour, count in departures:
        cell(hub, int(hour))["departures"] = int(count)
    hubs: dict[str, dict[str, Any]] = {}
    for c in cells.values():
        h = hubs.setdefault(c["hub_id"], {"hub_id": c["hub_id"], "arrivals": 0, "departures": 0,
                                          "retained": 0})
        h["arrivals"] += c["arrivals"]
        h["departures"] += c["departures"]
        h["retained"] += c["retained"]
    for h in hubs.values():
        h["retention_rate"] = round(h["retained"] / h["arrivals"], 4) if h["arrivals"] else 0.0
    return {
        "since": since.astimezone(UTC).isoformat(),
        "dwell_limit_h": dwell_limit_h,
        "cells": sorted(cells.values(), key=lambda c: (c["hub_id"], c["hour"])),
        "hubs": sorted(hubs.values(), key=lambda h: h["hub_id"]),
    }


def dead_letters(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(DEAD).order_by(DEAD.c.recorded_at.desc(), DEAD.c.event_id).limit(limit)
        ).all()
    return [{"event_id": r.event_id, "order_id": r.order_id, "reason": r.reason,
             "recorded_at": _iso(r.recorded_at)} for r in rows]


def held_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(HELD)).scalar_one())


def last_event_time(engine: Engine) -> datetime | None:
    with engine.connect() as conn:
        value = conn.execute(select(func.max(ORDERS.c.last_event_at))).scalar_one()
    return value if isinstance(value, datetime) else None
