"""Read services of the overview (the wall screen): KPI figures and the exception ticker.

Like :mod:`tower.store.queries`: one connection per call, keyword-only arguments,
typed results. "Open" exceptions are those in any status but resolved, closed and
cancelled (the lifecycle of ADR 0004).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Table, and_, case, func, or_, select

from tower.store.tables import ExceptionRow, Order, OrderStageCount

ORDERS = cast(Table, Order.__table__)
EXCEPTIONS = cast(Table, ExceptionRow.__table__)
STAGE_COUNTS = cast(Table, OrderStageCount.__table__)

IN_PROGRESS = "in_progress"
DELIVERED = "delivered"
CANCELLED = "cancelled"
DONE_EXCEPTION_STATUSES = ("resolved", "closed", "cancelled")
TIERS = ("L1", "L2", "L3")


@dataclass(frozen=True)
class OrderKpis:
    """Order figures of the overview, as of ``now``; "today" is the local day in ``zone``.

    ``on_time_share``: of the orders delivered today, the share delivered by their
    promise. ``otif``: of the orders promised between the start of today and now (not
    cancelled), the share delivered in full (every parcel) by the promise. Both are
    None when there is nothing to divide by.
    """

    in_flight: int
    late: int
    at_risk: int
    delivered_today: int
    on_time_today: int
    due_today: int
    otif_today: int

    @property
    def on_time_share(self) -> float | None:
        return self.on_time_today / self.delivered_today if self.delivered_today else None

    @property
    def otif(self) -> float | None:
        return self.otif_today / self.due_today if self.due_today else None


@dataclass(frozen=True)
class ExceptionTick:
    """One line of the live exception ticker."""

    id: str
    tier: str
    status: str
    title: str
    opened_at: datetime
    respond_by: datetime | None
    order_id: str | None
    hub_id: str | None


@dataclass(frozen=True)
class ExceptionKpis:
    """Open exceptions per tier, and the open exception whose response is due first."""

    open_by_tier: dict[str, int]
    most_urgent: ExceptionTick | None

    @property
    def open_total(self) -> int:
        return sum(self.open_by_tier.values())


def start_of_day(now: datetime, zone: ZoneInfo) -> datetime:
    """Midnight of ``now``'s local day in ``zone``, as UTC."""
    local = now.astimezone(zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def _utc(t: datetime) -> datetime:
    # SQLite hands naive datetimes back; the store keeps UTC.
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def in_flight_count(engine: Engine) -> int:
    """Orders in progress now, from the rollup the projector keeps (``order_stage_counts``,
    summed over flows, stages and shards): a few dozen rows whatever the number of orders."""
    with engine.connect() as conn:
        return int(conn.execute(
            select(func.coalesce(func.sum(STAGE_COUNTS.c.n), 0))
            .where(STAGE_COUNTS.c.status == IN_PROGRESS)
        ).scalar_one())


def order_kpis(engine: Engine, *, zone: ZoneInfo, now: datetime, in_flight: int | None = None
               ) -> OrderKpis:
    """In-flight, late and at-risk orders now; deliveries and promises of today.

    ``in_flight``: the number of orders in progress when the caller has it from the
    rollup (:func:`in_flight_count`, or the funnels' ``by_status`` it already read);
    without it the in-progress orders are counted (an index-only scan of all of them).
    Late and at risk never read every order in progress: those past their promise are a
    range of ``ix_orders_in_progress`` (by promise), and the flagged ones before their
    promise are ``ix_orders_in_progress_flagged`` (migration 0011: only the orders with
    ``late`` or ``at_risk`` set). Today's deliveries: ``ix_orders_delivered_today``
    (delivered ones by delivery time, with the promise), index-only on PostgreSQL.
    """
    day_start = start_of_day(now, zone)
    o = ORDERS.c
    in_progress = o.status == IN_PROGRESS
    with engine.connect() as conn:
        if in_flight is None:
            in_flight = int(conn.execute(select(func.count()).where(in_progress)).scalar_one())
        # Late: past the promise (whatever the flag), or flagged late before it.
        past_promise = conn.execute(
            select(func.count()).where(in_progress, o.promised_at < now)).scalar_one()
        # Late wins over at risk, as in the order view: a late order is no longer "at risk".
        flagged_late, n_risk = conn.execute(
            select(func.coalesce(func.sum(case((o.late, 1), else_=0)), 0),
                   func.coalesce(func.sum(case((and_(o.at_risk, ~o.late), 1), else_=0)), 0))
            .where(in_progress, or_(o.late, o.at_risk), o.promised_at >= now)
        ).one()
        on_time = o.delivered_at <= o.promised_at
        delivered, delivered_on_time = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((on_time, 1), else_=0)), 0))
            .where(o.status == DELIVERED, o.delivered_at >= day_start, o.delivered_at <= now)
        ).one()
        due, due_met = conn.execute(
            select(func.count(),
                   func.coalesce(func.sum(case((and_(o.status == DELIVERED, on_time), 1),
                                               else_=0)), 0))
            .where(o.promised_at >= day_start, o.promised_at <= now, o.status != CANCELLED)
        ).one()
    return OrderKpis(
        in_flight=int(in_flight), late=int(past_promise) + int(flagged_late), at_risk=int(n_risk),
        delivered_today=int(delivered), on_time_today=int(delivered_on_time),
        due_today=int(due), otif_today=int(due_met),
    )


def _tick(row: object) -> ExceptionTick:
    r = cast(ExceptionRow, row)
    return ExceptionTick(
        id=r.id, tier=r.tier, status=r.status, title=r.title, opened_at=_utc(r.opened_at),
        respond_by=_utc(r.respond_by) if r.respond_by else None,
        order_id=r.order_id, hub_id=r.hub_id,
    )


_TICK_COLUMNS = (EXCEPTIONS.c.id, EXCEPTIONS.c.tier, EXCEPTIONS.c.status, EXCEPTIONS.c.title,
                 EXCEPTIONS.c.opened_at, EXCEPTIONS.c.respond_by, EXCEPTIONS.c.order_id,
                 EXCEPTIONS.c.hub_id)


def exception_kpis(engine: Engine) -> ExceptionKpis:
    """Open exceptions per tier (L1, L2, L3 always present) and the most urgent one."""
    is_open = EXCEPTIONS.c.status.not_in(DONE_EXCEPTION_STATUSES)
    with engine.connect() as conn:
        counts = {str(tier): int(n) for tier, n in conn.execute(
            select(EXCEPTIONS.c.tier, func.count()).where(is_open).group_by(EXCEPTIONS.c.tier)
        )}
        # open_key is set exactly while open: the partial index of the open ones by deadline
        urgent = conn.execute(
            select(*_TICK_COLUMNS)
            .where(is_open, EXCEPTIONS.c.open_key.is_not(None), EXCEPTIONS.c.respond_by.is_not(None))
            .order_by(EXCEPTIONS.c.respond_by, EXCEPTIONS.c.id).limit(1)
        ).first()
    by_tier = {tier: counts.pop(tier, 0) for tier in TIERS}
    by_tier.update(counts)  # a tier outside L1-L3 is still counted, not dropped
    return ExceptionKpis(open_by_tier=by_tier, most_urgent=_tick(urgent) if urgent else None)


def latest_exceptions(engine: Engine, *, limit: int = 10) -> list[ExceptionTick]:
    """The ``limit`` exceptions raised last, newest first, whatever their status."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_TICK_COLUMNS)
            .order_by(EXCEPTIONS.c.opened_at.desc(), EXCEPTIONS.c.id.desc()).limit(limit)
        ).all()
    return [_tick(r) for r in rows]


def age_seconds(last: datetime | None, now: datetime) -> float | None:
    """Seconds from ``last`` to ``now`` (never negative), or None without a ``last``."""
    if last is None:
        return None
    return max((now - _utc(last)) / timedelta(seconds=1), 0.0)
