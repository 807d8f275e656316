"""Read services of the order screen (`/orders`): the filtered, sorted, paged order
list, one order's detail (stage visits, parcels, evidence) and its own event history.

Like :mod:`tower.store.overview`: one connection per call, keyword-only arguments,
typed results. Every read is bounded:

- the list is a page (``limit`` at most :data:`MAX_PAGE`) sorted on an indexed column
  (:data:`SORTABLE`), with ``order_id`` breaking ties, so an offset walks an index;
- the count stops at ``cap`` (a screen says "10,000+", not the exact figure);
- the hub filter ("orders whose parcel is or was at hub H") probes, for each order the
  list's index walks, its parcels (the keys of ``checkpoint -> 'parcels'``, kept by the
  projector) in ``hub_visits`` by key, so a page costs ~page / share orders; its count
  stops at :data:`HUB_COUNT_CAP`. On PostgreSQL a hub with few visits goes the other way,
  its parcels to the GIN index on that expression (migration 0007);
- an order's events (:func:`order_events`) are the one read of the event log: that
  order's own history, by ``ix_events_order_id``, ``limit`` at most
  :data:`MAX_EVENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    func,
    literal_column,
    not_,
    or_,
    select,
    text,
)

from tower.store.tables import Event, HubVisitRow, Order, StageInterval

ORDERS = cast(Table, Order.__table__)
VISITS = cast(Table, StageInterval.__table__)
HUB_VISITS = cast(Table, HubVisitRow.__table__)
EVENTS = cast(Table, Event.__table__)

IN_PROGRESS = "in_progress"
FROZEN = "frozen"
STATUSES: Final = ("in_progress", "frozen", "delivered", "cancelled")
PRIORITIES: Final = ("normal", "rush")
Lateness = Literal["late", "at_risk", "on_track"]
LATENESS: Final[tuple[Lateness, ...]] = ("late", "at_risk", "on_track")
#: Columns the list may be sorted on: each has an index (or is the key).
SORTABLE: Final = ("last_event_at", "promised_at", "order_id", "customer_id")
MAX_PAGE: Final = 500
MAX_EVENTS: Final = 2000
COUNT_CAP: Final = 10_000
MAX_HUBS: Final = 500
#: A hub filter answered by walking the orders counts this far ("more than 100 orders"):
#: counting further would walk every order that did not pass the hub.
HUB_COUNT_CAP: Final = 100
#: At most this many visits at a hub: its parcels are looked up in the GIN index
#: rather than the orders walked (PostgreSQL).
FEW_HUB_VISITS: Final = 256


@dataclass(frozen=True)
class OrderFilter:
    """What the list is narrowed to; None means "any"."""

    flow: str | None = None
    stage: str | None = None
    status: str | None = None        # one of STATUSES ("frozen": in progress and frozen)
    priority: str | None = None
    lateness: Lateness | None = None
    customer_id: str | None = None
    hub_id: str | None = None         # a parcel of the order is or was at this hub


@dataclass(frozen=True)
class OrderRow:
    """One line of the order list."""

    order_id: str
    flow: str
    stage: str
    status: str                        # "frozen" for an in-progress order that is frozen
    priority: str
    custom: bool
    customer_id: str | None
    city: str | None
    promised_at: datetime
    created_at: datetime
    last_event_at: datetime
    late: bool
    at_risk: bool
    frozen: bool


@dataclass(frozen=True)
class OrderPage:
    """A page of the list; ``last_row`` is the number of matching orders once the page
    reached the end (None while more may follow)."""

    rows: list[OrderRow]
    last_row: int | None


@dataclass(frozen=True)
class Visit:
    """One stay in a stage: entered -> started is waiting, started -> completed is work."""

    seq: int
    stage: str
    entered_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class OrderDetail:
    """One order as the detail panel shows it."""

    row: OrderRow
    channel: str | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    visits: list[Visit]
    parcels: dict[str, datetime | None] = field(default_factory=dict)   # parcel -> delivered
    evidence: list[tuple[str, str]] = field(default_factory=list)        # (stage, kind)


@dataclass(frozen=True)
class OrderEvent:
    """One event of the order's own history."""

    event_id: str
    type: str
    occurred_at: datetime
    source: str
    parcel_id: str | None
    payload: dict[str, Any]


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _late(now: datetime) -> ColumnElement[bool]:
    # As the order view says it: flagged late, or still open past its promise.
    return or_(ORDERS.c.late.is_(True),
               and_(ORDERS.c.status == IN_PROGRESS, ORDERS.c.promised_at < now))


def _hub_parcels_few(engine: Engine, hub_id: str) -> bool:
    """Whether the hub has seen at most :data:`FEW_HUB_VISITS` parcel visits (counted
    from ``ix_hub_visits_open``, index only, stopping at the limit)."""
    few = (select(func.count()).select_from(
        select(literal_column("1")).select_from(HUB_VISITS).where(HUB_VISITS.c.hub_id == hub_id)
        .limit(FEW_HUB_VISITS + 1).subquery()))
    with engine.connect() as conn:
        return int(conn.execute(few).scalar_one()) <= FEW_HUB_VISITS


def _hub_walks(engine: Engine, f: OrderFilter) -> bool:
    """Whether the hub filter is answered by walking the orders (see :func:`_hub_condition`)."""
    return bool(f.hub_id) and (engine.dialect.name != "postgresql"
                               or not _hub_parcels_few(engine, str(f.hub_id)))


def _hub_condition(engine: Engine, hub_id: str) -> ColumnElement[bool]:
    """A parcel of the order is or was at the hub.

    Walked: for each order the list's index reaches, its parcels (the keys of
    ``checkpoint -> 'parcels'``) are probed in ``hub_visits`` by its key (parcel_id,
    seq): a page of 100 costs ~100 / share orders, whatever the hub's history. On
    PostgreSQL a hub with few visits (a new or quiet one, where a walk would read every
    order to fill a page) goes the other way: its parcels to the GIN index
    ``ix_orders_parcels`` (``?|``, one index look-up per parcel)."""
    if engine.dialect.name == "postgresql":
        if _hub_parcels_few(engine, hub_id):
            clause = text("(orders.checkpoint -> 'parcels') ?| "
                          "ARRAY(SELECT parcel_id FROM hub_visits WHERE hub_id = :hub_id)::text[]")
        else:
            # The scalar test first: most orders walked carry no parcel yet (a third of
            # the cost of the walk at 100,000 orders), the set-returning probe is dearer.
            clause = text("((orders.checkpoint -> 'parcels') <> '{}'::jsonb AND"
                          " EXISTS (SELECT 1 FROM jsonb_object_keys(orders.checkpoint -> 'parcels')"
                          " AS p(parcel_id) JOIN hub_visits AS h"
                          " ON h.parcel_id = p.parcel_id AND h.hub_id = :hub_id))")
    else:
        clause = text("EXISTS (SELECT 1 FROM json_each(orders.checkpoint, '$.parcels') AS p"
                      " JOIN hub_visits AS h ON h.parcel_id = p.key AND h.hub_id = :hub_id)")
    return cast(ColumnElement[bool], clause.bindparams(bindparam("hub_id", hub_id)))


def _where(engine: Engine, query: Select[Any], f: OrderFilter, now: datetime) -> Select[Any]:
    o = ORDERS.c
    if f.flow:
        query = query.where(o.flow == f.flow)
    if f.stage:
        query = query.where(o.stage == f.stage)
    if f.status == FROZEN:
        query = query.where(o.status == IN_PROGRESS, o.frozen.is_(True))
    elif f.status == IN_PROGRESS:
        query = query.where(o.status == IN_PROGRESS, o.frozen.is_not(True))
    elif f.status:
        query = query.where(o.status == f.status)
    if f.priority:
        query = query.where(o.priority == f.priority)
    if f.lateness == "late":
        query = query.where(_late(now))
    elif f.lateness == "at_risk":
        query = query.where(o.at_risk.is_(True), not_(_late(now)))
    elif f.lateness == "on_track":
        query = query.where(o.at_risk.is_not(True), not_(_late(now)))
    if f.customer_id:
        query = query.where(o.customer_id == f.customer_id)
    if f.hub_id:
        query = query.where(_hub_condition(engine, f.hub_id))
    return query


_ROW_COLUMNS = ("order_id", "flow", "stage", "status", "priority", "custom", "customer_id", "city",
                "promised_at", "created_at", "last_event_at", "late", "at_risk", "frozen")


def _row(r: Any, now: datetime) -> OrderRow:
    promised = _utc(r.promised_at)
    frozen = bool(r.frozen)
    status = FROZEN if frozen and r.status == IN_PROGRESS else str(r.status)
    late = bool(r.late) or (r.status == IN_PROGRESS and promised < now)
    return OrderRow(
        order_id=r.order_id, flow=r.flow, stage=r.stage, status=status, priority=r.priority,
        custom=bool(r.custom), customer_id=r.customer_id, city=r.city, promised_at=promised,
        created_at=_utc(r.created_at), last_event_at=_utc(r.last_event_at), late=late,
        at_risk=bool(r.at_risk) and not late, frozen=frozen,
    )


def list_orders(engine: Engine, *, filters: OrderFilter = OrderFilter(), now: datetime,
                sort: str = "last_event_at", descending: bool = True, offset: int = 0,
                limit: int = 100) -> OrderPage:
    """One page of the orders matching ``filters``, sorted on ``sort`` (one of
    :data:`SORTABLE`; anything else sorts on ``last_event_at``) then ``order_id``."""
    limit = max(1, min(int(limit), MAX_PAGE))
    offset = max(0, int(offset))
    column = ORDERS.c[sort if sort in SORTABLE else "last_event_at"]
    keys = [column.desc(), ORDERS.c.order_id.desc()] if descending else [column, ORDERS.c.order_id]
    if column is ORDERS.c.order_id:
        keys = keys[:1]
    query = _where(engine, select(*(ORDERS.c[c] for c in _ROW_COLUMNS)), filters, now)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(*keys).offset(offset).limit(limit)).all()
    page = [_row(r, now) for r in rows]
    return OrderPage(rows=page, last_row=offset + len(page) if len(page) < limit else None)


def count_orders(engine: Engine, *, filters: OrderFilter = OrderFilter(), now: datetime,
                 cap: int = COUNT_CAP) -> tuple[int, bool]:
    """How many orders match, counted up to ``cap``: (n, exact). ``exact`` is False when
    there are more than ``cap`` (then n == cap). Filtered by a hub that is walked (see
    :func:`_hub_condition`) the cap is at most :data:`HUB_COUNT_CAP`."""
    if filters.hub_id and _hub_walks(engine, filters):
        cap = min(cap, HUB_COUNT_CAP)
    inner = _where(engine, select(literal_column("1").label("one")).select_from(ORDERS), filters, now)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(inner.limit(cap + 1).subquery()))
                .scalar_one())
    return (cap, False) if n > cap else (n, True)


def order_detail(engine: Engine, *, order_id: str, now: datetime) -> OrderDetail | None:
    """The order's header, its stage visits (oldest first), parcels and evidence."""
    with engine.connect() as conn:
        row = conn.execute(select(ORDERS).where(ORDERS.c.order_id == order_id)).first()
        if row is None:
            return None
        visits = conn.execute(
            select(VISITS.c.seq, VISITS.c.stage, VISITS.c.entered_at, VISITS.c.started_at,
                   VISITS.c.completed_at)
            .where(VISITS.c.order_id == order_id).order_by(VISITS.c.seq)
        ).all()
    checkpoint: dict[str, Any] = row.checkpoint or {}
    parcels = {str(p): (_utc(datetime.fromisoformat(t)) if t else None)
               for p, t in (checkpoint.get("parcels") or {}).items()}
    return OrderDetail(
        row=_row(row, now), channel=row.channel,
        delivered_at=_utc(row.delivered_at) if row.delivered_at else None,
        cancelled_at=_utc(row.cancelled_at) if row.cancelled_at else None,
        visits=[Visit(v.seq, v.stage, _utc(v.entered_at),
                      _utc(v.started_at) if v.started_at else None,
                      _utc(v.completed_at) if v.completed_at else None) for v in visits],
        parcels=parcels,
        evidence=[(str(s), str(k)) for s, k in checkpoint.get("evidence") or []],
    )


def order_events(engine: Engine, *, order_id: str, limit: int = 500) -> list[OrderEvent]:
    """The order's own events, oldest first, at most ``limit`` (ix_events_order_id)."""
    limit = max(1, min(int(limit), MAX_EVENTS))
    with engine.connect() as conn:
        rows = conn.execute(
            select(EVENTS.c.event_id, EVENTS.c.type, EVENTS.c.occurred_at, EVENTS.c.source,
                   EVENTS.c.parcel_id, EVENTS.c.payload)
            .where(EVENTS.c.order_id == order_id)
            .order_by(EVENTS.c.occurred_at, EVENTS.c.event_id).limit(limit)
        ).all()
    return [OrderEvent(r.event_id, r.type, _utc(r.occurred_at), r.source, r.parcel_id,
                       dict(r.payload or {})) for r in rows]


def known_hubs(engine: Engine, *, limit: int = MAX_HUBS) -> list[str]:
    """The hubs parcels have visited, sorted, at most ``limit``: a loose index scan of
    ix_hub_visits_open (one index probe per hub, whatever the number of visits)."""
    walk = text(
        "WITH RECURSIVE hubs(hub_id, n) AS ("
        " SELECT (SELECT min(hub_id) FROM hub_visits), 1"
        " UNION ALL"
        " SELECT (SELECT min(h.hub_id) FROM hub_visits h WHERE h.hub_id > hubs.hub_id), n + 1"
        " FROM hubs WHERE hubs.hub_id IS NOT NULL AND n < :limit)"
        " SELECT hub_id FROM hubs WHERE hub_id IS NOT NULL"
    ).bindparams(bindparam("limit", max(1, int(limit))))
    with engine.connect() as conn:
        return [str(h) for (h,) in conn.execute(walk)]
