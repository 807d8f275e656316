"""Read services of the network page: the hub x hour grid, lanes between hubs, the
load of each hub now and the parcels stuck at a hub.

Everything is read from ``hub_visits`` (one row per stay of a parcel at a hub) and,
for the stuck list, the open ``parcel_stuck`` exceptions; every read is bounded by a
time window on an index or by a limit. Like :mod:`tower.store.overview`: one
connection per call, keyword-only arguments, typed results.

Retention follows :func:`tower.store.queries.hub_rollup`: a parcel that arrived in an
hour is retained when its dwell exceeded the limit, or when it is still there and
arrived more than the limit ago.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

from tower.store.tables import ExceptionRow, HubVisitRow

HUB_VISITS = cast(Table, HubVisitRow.__table__)
EXCEPTIONS = cast(Table, ExceptionRow.__table__)

STUCK_RULE = "parcel_stuck"


def _utc(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _epoch(column: Any, dialect: str) -> Any:
    """Seconds since the epoch of a stored time, in SQL, on either dialect."""
    if dialect == "postgresql":
        return func.extract("epoch", column)
    # SQLite keeps naive UTC text; julianday reads it with its fraction of a second.
    return (func.julianday(column) - literal_column("2440587.5")) * literal_column("86400.0")


@dataclass(frozen=True)
class HubHour:
    """The parcels that arrived at a hub in one hour (``hour``, UTC) and what became of them.

    ``dwell_h_sum`` adds the dwell of those that left and the time so far of those
    still there, so ``mean_dwell_h`` is the mean stay of the hour's arrivals up to now.
    """

    hub_id: str
    hour: datetime
    arrivals: int
    retained: int
    departed: int
    dwell_h_sum: float

    @property
    def retention_rate(self) -> float:
        return self.retained / self.arrivals if self.arrivals else 0.0

    @property
    def mean_dwell_h(self) -> float | None:
        return self.dwell_h_sum / self.arrivals if self.arrivals else None


def hub_hours(engine: Engine, *, since: datetime, now: datetime, dwell_limit_h: float
              ) -> list[HubHour]:
    """Hub x hour since ``since`` (whole hours of UTC), ordered by hub then hour.

    One grouped range scan of ``ix_hub_visits_arrived`` (index-only on PostgreSQL:
    it carries dwell, departure and arrival times, migration 0003).
    """
    h = HUB_VISITS
    since_hour = int(since.timestamp() // 3600)
    limit_s = dwell_limit_h * 3600
    overdue_before = now - timedelta(seconds=limit_s)
    is_open = h.c.departed_at.is_(None)
    retained = case((h.c.dwell_s > limit_s, 1), (is_open & (h.c.arrived_at < overdue_before), 1),
                    else_=0)
    with engine.connect() as conn:
        dialect = conn.dialect.name
        open_since = case((is_open, _epoch(h.c.arrived_at, dialect)), else_=None)
        rows = conn.execute(
            select(h.c.hub_id, h.c.arrived_hour, func.count(), func.sum(retained),
                   func.count(h.c.dwell_s), func.coalesce(func.sum(h.c.dwell_s), 0),
                   func.count(open_since), func.coalesce(func.sum(open_since), 0))
            .where(h.c.arrived_hour >= since_hour)
            .group_by(h.c.arrived_hour, h.c.hub_id)
        ).all()
    now_s = now.timestamp()
    cells = []
    for hub, hour, n, kept, n_departed, dwell_s, n_open, open_since_s in rows:
        # Time so far of the parcels still there: n_open * now - the sum of their arrivals.
        so_far = max(int(n_open) * now_s - float(open_since_s), 0.0)
        cells.append(HubHour(
            hub_id=str(hub), hour=datetime.fromtimestamp(int(hour) * 3600, UTC), arrivals=int(n),
            retained=int(kept or 0), departed=int(n_departed),
            dwell_h_sum=(float(dwell_s) + so_far) / 3600,
        ))
    cells.sort(key=lambda c: (c.hub_id, c.hour))
    return cells


@dataclass(frozen=True)
class HubLoad:
    """A hub now: parcels there (open visits), those past the dwell limit, the oldest arrival."""

    hub_id: str
    at_hub: int
    stuck: int
    oldest_arrived_at: datetime | None


def hub_loads(engine: Engine, *, now: datetime, dwell_limit_h: float) -> list[HubLoad]:
    """Every hub with parcels at it now, by hub id.

    Reads the open visits only (the partial index ``ix_hub_visits_open_arrived``):
    as many rows as parcels sit at hubs, whatever the history.
    """
    h = HUB_VISITS
    cutoff = now - timedelta(hours=dwell_limit_h)
    with engine.connect() as conn:
        rows = conn.execute(
            select(h.c.hub_id, func.count(), func.sum(case((h.c.arrived_at < cutoff, 1), else_=0)),
                   func.min(h.c.arrived_at))
            .where(h.c.departed_at.is_(None))
            .group_by(h.c.hub_id)
            .order_by(h.c.hub_id)
        ).all()
    return [HubLoad(hub_id=str(hub), at_hub=int(n), stuck=int(stuck or 0),
                    oldest_arrived_at=_utc(oldest) if oldest else None)
            for hub, n, stuck, oldest in rows]


@dataclass(frozen=True)
class Lane:
    """Parcels that went from one hub straight to the next and arrived there in the window."""

    from_hub: str
    to_hub: str
    parcels: int


@dataclass(frozen=True)
class LaneSet:
    """The lanes of a window; ``capped`` when the window held more than the moves read."""

    lanes: list[Lane]
    moves: int
    capped: bool


def lanes(engine: Engine, *, since: datetime, limit: int = 200, max_moves: int = 2_000) -> LaneSet:
    """Lanes A -> B: consecutive visits of a parcel (A, then B) with B's arrival in the
    hour of ``since`` or later (whole hours, as the heatmap); the ``limit`` busiest first.

    Bounded: at most the ``max_moves`` latest arrivals of the window are read (a backward
    scan of ``ix_hub_visits_arrived`` that stops there), each one's previous visit by the
    primary key (parcel, seq); past that the set says ``capped``. On PostgreSQL at 30,000
    hub arrivals a day this is a few ms per 1,000 moves, whatever the window.
    """
    h = HUB_VISITS
    prev = h.alias("prev")
    since_hour = int(since.timestamp() // 3600)
    recent = (
        select(h.c.parcel_id, h.c.seq, h.c.hub_id)
        .where(h.c.arrived_hour >= since_hour, h.c.seq > 0)
        .order_by(h.c.arrived_hour.desc())
        .limit(max_moves + 1)
        .subquery()
    )
    with engine.connect() as conn:
        pairs = conn.execute(
            select(prev.c.hub_id, recent.c.hub_id, func.count())
            .select_from(recent.join(prev, and_(prev.c.parcel_id == recent.c.parcel_id,
                                                prev.c.seq == recent.c.seq - 1)))
            .group_by(prev.c.hub_id, recent.c.hub_id)
        ).all()
    moves = sum(int(n) for _, _, n in pairs)
    found = sorted((Lane(from_hub=str(a), to_hub=str(b), parcels=int(n)) for a, b, n in pairs if a != b),
                   key=lambda x: (-x.parcels, x.from_hub, x.to_hub))
    return LaneSet(lanes=found[:limit], moves=min(moves, max_moves), capped=moves > max_moves)


@dataclass(frozen=True)
class StuckParcel:
    """A parcel at a hub past the dwell limit, with its open ``parcel_stuck`` exception if any."""

    parcel_id: str
    hub_id: str
    arrived_at: datetime
    hours_at_hub: float
    order_id: str | None
    exception_id: str | None
    exception_status: str | None


def stuck_parcels(
    engine: Engine, *, now: datetime, dwell_limit_h: float, per_hub: int = 10,
    hub_id: str | None = None, stuck_rule: str = STUCK_RULE,
) -> list[StuckParcel]:
    """The parcels longest at a hub past the dwell limit: at most ``per_hub`` per hub
    (of one hub when ``hub_id`` is given), by hub then longest first.

    Open visits that arrived before the cut-off come from the partial index
    ``ix_hub_visits_open_arrived``; their open exceptions of ``stuck_rule`` (scope
    ``parcel:<id>``) from the partial index ``ix_exceptions_open_rule``. The order id
    is the exception's when it names one, else that of the order holding the parcel
    (``orders.checkpoint -> 'parcels'``: the GIN index ``ix_orders_parcels`` on
    PostgreSQL; on SQLite, the small embedded set-up, each order's parcels are read).
    """
    h = HUB_VISITS
    cutoff = now - timedelta(hours=dwell_limit_h)
    rank = func.row_number().over(partition_by=h.c.hub_id,
                                  order_by=(h.c.arrived_at, h.c.parcel_id)).label("rank")
    where = [h.c.departed_at.is_(None), h.c.arrived_at < cutoff]
    if hub_id is not None:
        where.append(h.c.hub_id == hub_id)
    ranked = select(h.c.parcel_id, h.c.hub_id, h.c.arrived_at, rank).where(*where).subquery()
    with engine.connect() as conn:
        rows = conn.execute(
            select(ranked.c.parcel_id, ranked.c.hub_id, ranked.c.arrived_at)
            .where(ranked.c.rank <= per_hub)
            .order_by(ranked.c.hub_id, ranked.c.arrived_at, ranked.c.parcel_id)
        ).all()
        scopes = [f"parcel:{r.parcel_id}" for r in rows]
        found: dict[str, tuple[str, str, str | None]] = {}
        for i in range(0, len(scopes), 500):
            e = EXCEPTIONS
            for scope, ex_id, status, order_id in conn.execute(
                select(e.c.scope_key, e.c.id, e.c.status, e.c.order_id)
                .where(e.c.open_key.is_not(None), e.c.rule == stuck_rule,
                       e.c.scope_key.in_(scopes[i:i + 500]))
            ):
                found[str(scope)] = (str(ex_id), str(status), order_id)
        holders = _orders_holding(conn, [str(r.parcel_id) for r in rows])
    out = []
    for r in rows:
        arrived = _utc(r.arrived_at)
        ex = found.get(f"parcel:{r.parcel_id}")
        out.append(StuckParcel(
            parcel_id=str(r.parcel_id), hub_id=str(r.hub_id), arrived_at=arrived,
            hours_at_hub=(now - arrived).total_seconds() / 3600,
            order_id=(ex[2] if ex else None) or holders.get(str(r.parcel_id)),
            exception_id=ex[0] if ex else None, exception_status=ex[1] if ex else None,
        ))
    return out


def _orders_holding(conn: Connection, parcel_ids: list[str]) -> dict[str, str]:
    """``parcel -> order`` for the orders holding any of ``parcel_ids``."""
    if not parcel_ids:
        return {}
    if conn.dialect.name == "postgresql":
        sql = text("SELECT o.order_id, k.key FROM orders AS o, "
                   "jsonb_object_keys(o.checkpoint -> 'parcels') AS k(key) "
                   "WHERE (o.checkpoint -> 'parcels') ?| :ids AND k.key = ANY(:ids)")
        sql = sql.bindparams(bindparam("ids", type_=ARRAY(String)))
    else:
        sql = text("SELECT o.order_id, p.key FROM orders AS o, json_each(o.checkpoint, '$.parcels') AS p "
                   "WHERE p.key IN :ids").bindparams(bindparam("ids", expanding=True))
    return {str(parcel): str(order) for order, parcel in conn.execute(sql, {"ids": parcel_ids})}
