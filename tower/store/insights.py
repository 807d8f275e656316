"""Read services of the insights screen: the month under review, carrier and supplier
scorecards, delay causes and response measures, open improvement items.

- **Month**: a calendar month in the tower's zone, ``[since, until)`` in UTC; the trend
  compares it with the month before.
- **Carrier scorecard**: of the orders delivered in the month, per carrier of their
  parcels (``parcels.carrier``, joined through the parcels the order's projection
  lists), the share delivered by the promise (``delivered_at <= promised_at``). An
  order whose parcels went with two carriers counts for each.
- **Supplier scorecard**: no projection names an order's supplier (the simulator puts
  ``supplier_id`` on procurement stage events, which only the raw log holds), so the
  supplier figures are the delays resolved in the month with that supplier named as
  the root cause, against the month before.
- **Causes** and **MTTA/MTTR** are :mod:`tower.exceptions.measures` over the month.

Every read is an aggregate in SQL over an indexed window, or a bounded list.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Table, bindparam, select, text

from tower.exceptions import measures as exception_measures
from tower.store.tables import ExceptionRow, UTCDateTime

EXCEPTIONS = cast(Table, ExceptionRow.__table__)
SCORECARD_ROWS: Final = 20
IMPROVEMENT_ROWS: Final = 50
IMPROVEMENT_RULE: Final = "stage_over_benchmark"


@dataclass(frozen=True)
class Month:
    """A calendar month in the tower's zone: ``[since, until)`` in UTC, and the one before."""

    key: str                # "2025-11"
    since: datetime
    until: datetime
    previous_since: datetime

    @property
    def previous_key(self) -> str:
        return _key(_shift(_parse_key(self.key), -1))


def _parse_key(key: str) -> tuple[int, int]:
    year, month = key.split("-")
    y, m = int(year), int(month)
    if not 1 <= m <= 12 or not 1970 <= y <= 9999:
        raise ValueError(f"not a month: {key!r}")
    return y, m


def _shift(ym: tuple[int, int], months: int) -> tuple[int, int]:
    index = ym[0] * 12 + ym[1] - 1 + months
    return index // 12, index % 12 + 1


def _key(ym: tuple[int, int]) -> str:
    return f"{ym[0]:04d}-{ym[1]:02d}"


def _start(ym: tuple[int, int], zone: ZoneInfo) -> datetime:
    return datetime(ym[0], ym[1], 1, tzinfo=zone).astimezone(UTC)


def month(key: str | None, *, zone: ZoneInfo, now: datetime) -> Month:
    """The month ``key`` (``YYYY-MM``), or the current one in ``zone`` when None or bad."""
    try:
        ym = _parse_key(key) if key else None
    except ValueError:
        ym = None
    if ym is None:
        local = now.astimezone(zone)
        ym = (local.year, local.month)
    return Month(key=_key(ym), since=_start(ym, zone), until=_start(_shift(ym, 1), zone),
                 previous_since=_start(_shift(ym, -1), zone))


def recent_months(*, zone: ZoneInfo, now: datetime, count: int = 12) -> list[str]:
    """The ``count`` months up to the current one, newest first (the month selector)."""
    local = now.astimezone(zone)
    return [_key(_shift((local.year, local.month), -i)) for i in range(count)]


@dataclass(frozen=True)
class Score:
    """One row of a scorecard: this month against the month before."""

    name: str
    count: int                   # deliveries (carrier) or delays caused (supplier)
    good: int | None             # deliveries on time (carrier); None for a supplier
    previous_count: int
    previous_good: int | None

    @property
    def share(self) -> float | None:
        return self.good / self.count if self.good is not None and self.count else None

    @property
    def previous_share(self) -> float | None:
        if self.previous_good is None or not self.previous_count:
            return None
        return self.previous_good / self.previous_count

    @property
    def trend(self) -> float | None:
        """Carriers: change of the on-time share (points, as a share); suppliers: change
        of the delays caused (count). None when either month has nothing."""
        if self.good is None:
            return float(self.count - self.previous_count)
        share, before = self.share, self.previous_share
        return None if share is None or before is None else share - before


_CARRIER_SQL: Final = {
    # The order's projection lists its parcels (checkpoint.parcels: id -> delivered at).
    "postgresql": """
        SELECT p.carrier, o.delivered_at >= :since AS this_month,
               COUNT(*) AS delivered,
               SUM(CASE WHEN o.delivered_at <= o.promised_at THEN 1 ELSE 0 END) AS on_time
        FROM (SELECT DISTINCT o.order_id, p.carrier
              FROM orders o
              CROSS JOIN LATERAL jsonb_object_keys(o.checkpoint -> 'parcels') AS k(parcel_id)
              JOIN parcels p ON p.parcel_id = k.parcel_id
              WHERE o.status = 'delivered' AND o.delivered_at >= :previous_since
                AND o.delivered_at < :until AND p.carrier IS NOT NULL) AS p
        JOIN orders o ON o.order_id = p.order_id
        GROUP BY p.carrier, this_month
    """,
    "sqlite": """
        SELECT p.carrier, o.delivered_at >= :since AS this_month,
               COUNT(*) AS delivered,
               SUM(CASE WHEN o.delivered_at <= o.promised_at THEN 1 ELSE 0 END) AS on_time
        FROM (SELECT DISTINCT o.order_id, p.carrier
              FROM orders o, json_each(o.checkpoint, '$.parcels') AS k
              JOIN parcels p ON p.parcel_id = k.key
              WHERE o.status = 'delivered' AND o.delivered_at >= :previous_since
                AND o.delivered_at < :until AND p.carrier IS NOT NULL) AS p
        JOIN orders o ON o.order_id = p.order_id
        GROUP BY p.carrier, this_month
    """,
}


def carrier_scorecard(engine: Engine, *, period: Month, limit: int = SCORECARD_ROWS) -> list[Score]:
    """On-time share of each carrier's deliveries this month and the month before, the
    carriers with the most deliveries this month first (at most ``limit``)."""
    sql = _CARRIER_SQL["postgresql" if engine.dialect.name == "postgresql" else "sqlite"]
    query = text(sql).bindparams(*(bindparam(n, type_=UTCDateTime()) for n in ("since", "until",
                                                                              "previous_since")))
    params = {"since": period.since, "until": period.until, "previous_since": period.previous_since}
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    with engine.connect() as conn:
        for carrier, this_month, delivered, on_time in conn.execute(query, params):
            row = sums[str(carrier)]
            offset = 0 if this_month else 2
            row[offset] += int(delivered)
            row[offset + 1] += int(on_time or 0)
    rows = [Score(name=k, count=v[0], good=v[1], previous_count=v[2], previous_good=v[3])
            for k, v in sums.items()]
    rows.sort(key=lambda s: (-s.count, -s.previous_count, s.name))
    return rows[:limit]


def supplier_scorecard(engine: Engine, *, period: Month, limit: int = SCORECARD_ROWS) -> list[Score]:
    """Delays resolved with each supplier named as the root cause, this month and the
    month before; the suppliers with most delays this month first."""
    with engine.connect() as conn:
        now = exception_measures.root_causes(conn, since=period.since, until=period.until)
        before = exception_measures.root_causes(conn, since=period.previous_since, until=period.since)
    counts = {r["supplier"]: int(r["exceptions"]) for r in now["suppliers"]}
    previous = {r["supplier"]: int(r["exceptions"]) for r in before["suppliers"]}
    rows = [Score(name=k, count=counts.get(k, 0), good=None, previous_count=previous.get(k, 0),
                  previous_good=None) for k in counts.keys() | previous.keys()]
    rows.sort(key=lambda s: (-s.count, -s.previous_count, s.name))
    return rows[:limit]


def month_measures(engine: Engine, *, period: Month, now: datetime) -> dict[str, Any]:
    """MTTA, MTTR, answered in time (per tier and team) of the exceptions opened in the
    month, and the causes of those resolved in it (:func:`tower.exceptions.measures.measures`)."""
    with engine.connect() as conn:
        return exception_measures.measures(conn, since=period.since, until=period.until, now=now)


@dataclass(frozen=True)
class ImprovementItem:
    """An open ``stage_over_benchmark`` improvement item of the exceptions table."""

    id: str
    flow: str | None
    stage: str | None
    title: str
    status: str
    opened_at: datetime
    avg_h: float | None
    benchmark_h: float | None


def open_improvements(engine: Engine, *, limit: int = IMPROVEMENT_ROWS) -> list[ImprovementItem]:
    """The open improvement items (the partial index of open exceptions by rule)."""
    e = EXCEPTIONS
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.c.id, e.c.flow, e.c.stage, e.c.title, e.c.status, e.c.opened_at, e.c.detail)
            .where(e.c.rule == IMPROVEMENT_RULE, e.c.open_key.is_not(None))
            .order_by(e.c.opened_at.desc(), e.c.id).limit(limit)).all()
    out: list[ImprovementItem] = []
    for r in rows:
        detail = r.detail or {}
        opened = r.opened_at if r.opened_at.tzinfo else r.opened_at.replace(tzinfo=UTC)
        out.append(ImprovementItem(
            id=r.id, flow=r.flow, stage=r.stage, title=r.title, status=r.status, opened_at=opened,
            avg_h=_float(detail.get("avg_h")), benchmark_h=_float(detail.get("benchmark_h"))))
    return out


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None
