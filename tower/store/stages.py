"""Read services of the stages screen: a chosen set of orders with their stage visits
(the Gantt across orders), and the distribution of stage durations over a review
window against each stage's benchmark.

Bounded reads only: the chosen orders are at most ``limit`` rows through an index of
``orders``; their visits are read by primary key; the distributions are aggregated in
SQL (count, means and a handful of nearest-rank percentiles per stage, a few rows per
stage) over the window of ``ix_stage_intervals_entered``, never the visits themselves.

The benchmark of a stage is its budget in ``data/flows.toml`` unless the
``stage_over_benchmark`` rule names one (``params.benchmarks_h``); a stage is over its
benchmark when its average exceeds it by the rule's ``over_share`` (the same test the
rule applies, :func:`tower.rules.conditions.over_benchmark`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, cast

from sqlalchemy import Engine, Table, bindparam, func, literal_column, or_, select, text

from tower.flows import FlowBook
from tower.rules.conditions import over_benchmark
from tower.rules.config import RuleBook, StageOverBenchmarkParams
from tower.store.tables import Order, StageInterval, UTCDateTime

ORDERS = cast(Table, Order.__table__)
VISITS = cast(Table, StageInterval.__table__)

IN_PROGRESS = "in_progress"
MAX_ORDERS: Final = 500
#: Quantiles of each stage's durations, as percent (nearest rank from below).
QUANTILES: Final[tuple[int, ...]] = (0, 10, 25, 50, 75, 90, 100)

Choice = Literal["latest", "late", "flow"]
CHOICES: Final[tuple[Choice, ...]] = ("latest", "late", "flow")


@dataclass(frozen=True)
class ChosenOrder:
    """One row of the Gantt across orders."""

    order_id: str
    flow: str
    stage: str
    status: str
    priority: str
    promised_at: datetime
    delivered_at: datetime | None
    late: bool


@dataclass(frozen=True)
class Visit:
    """One stay of an order in a stage (waiting from entry to start, work to completion)."""

    order_id: str
    seq: int
    flow: str
    stage: str
    entered_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


@dataclass(frozen=True)
class StageDistribution:
    """Completed visits of one stage entered in the window: count, means, quantiles (h)."""

    flow: str
    stage: str
    visits: int
    mean_h: float
    wait_mean_h: float | None
    quantiles_h: dict[int, float]


@dataclass(frozen=True)
class StageReview:
    """A stage's distribution against its benchmark; ``over`` as the rule would judge."""

    distribution: StageDistribution
    benchmark_h: float
    limit_h: float          # benchmark x (1 + over_share)
    over: bool

    @property
    def flow(self) -> str:
        return self.distribution.flow

    @property
    def stage(self) -> str:
        return self.distribution.stage

    @property
    def over_share(self) -> float | None:
        """How far the average is above (or below) the benchmark, as a share."""
        b = self.benchmark_h
        return self.distribution.mean_h / b - 1 if b > 0 else None


def _utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def benchmark_params(book: RuleBook) -> StageOverBenchmarkParams | None:
    """The params of the (first enabled) ``stage_over_benchmark`` rule, if there is one."""
    rules = book.of("stage_over_benchmark")
    return cast(StageOverBenchmarkParams, rules[0].params) if rules else None


def chosen_orders(engine: Engine, *, choice: Choice, now: datetime, flow: str | None = None,
                  limit: int = 200) -> list[ChosenOrder]:
    """At most ``limit`` orders (capped at :data:`MAX_ORDERS`):

    - ``latest``: the most recently active (``ix_orders_last_event_at``);
    - ``late``: in progress and late (flagged, or past the promise), most overdue first
      (``ix_orders_promised_at``);
    - ``flow``: the most recently active of ``flow``.
    """
    o = ORDERS
    limit = max(1, min(limit, MAX_ORDERS))
    query = select(o.c.order_id, o.c.flow, o.c.stage, o.c.status, o.c.priority, o.c.promised_at,
                   o.c.delivered_at, o.c.late)
    if choice == "late":
        query = (query.where(o.c.status == IN_PROGRESS, or_(o.c.late.is_(True), o.c.promised_at < now))
                 .order_by(o.c.promised_at, o.c.order_id))
    elif choice == "flow":
        if flow is None:
            raise ValueError("choice 'flow' needs a flow")
        query = query.where(o.c.flow == flow).order_by(o.c.last_event_at.desc(), o.c.order_id)
    else:
        query = query.order_by(o.c.last_event_at.desc(), o.c.order_id)
    with engine.connect() as conn:
        rows = conn.execute(query.limit(limit)).all()
    return [ChosenOrder(order_id=r.order_id, flow=r.flow, stage=r.stage, status=r.status,
                        priority=r.priority, promised_at=cast(datetime, _utc(r.promised_at)),
                        delivered_at=_utc(r.delivered_at), late=bool(r.late)) for r in rows]


def order_visits(engine: Engine, *, order_ids: Sequence[str]) -> list[Visit]:
    """The stage visits of these orders (by primary key), per order in visit order."""
    v = VISITS
    out: list[Visit] = []
    ids = sorted(set(order_ids))
    with engine.connect() as conn:
        for start in range(0, len(ids), MAX_ORDERS):
            part = ids[start:start + MAX_ORDERS]
            rows = conn.execute(
                select(v.c.order_id, v.c.seq, v.c.flow, v.c.stage, v.c.entered_at, v.c.started_at,
                       v.c.completed_at)
                .where(v.c.order_id.in_(part)).order_by(v.c.order_id, v.c.seq))
            out.extend(Visit(order_id=r.order_id, seq=int(r.seq), flow=r.flow, stage=r.stage,
                             entered_at=cast(datetime, _utc(r.entered_at)),
                             started_at=_utc(r.started_at), completed_at=_utc(r.completed_at))
                       for r in rows)
    return out


def _seconds(dialect: str, later: Any, earlier: Any) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", later - earlier)
    return (func.julianday(later) - func.julianday(earlier)) * literal_column("86400.0")


def stage_distributions(engine: Engine, *, since: datetime, until: datetime) -> list[StageDistribution]:
    """Durations (entry to completion) of the completed visits entered in ``[since, until)``.

    One query, a few values per stage whatever the number of visits: the count, the
    means and the durations at the ranks of :data:`QUANTILES` (nearest rank from below,
    ``floor((n - 1) * q / 100) + 1``). On PostgreSQL one sort per stage in a grouped
    aggregate (``array_agg(... ORDER BY ...)`` of float8 seconds, indexed at those ranks
    in SQL); on SQLite window functions rank the durations (four window passes over
    numeric: 5x slower on PostgreSQL at 225,000 visits). Still one sort of every
    completed visit of the window: ~0.5 s at 100,000 orders (ADR 0005).
    """
    if engine.dialect.name == "postgresql":
        found = _distributions_pg(engine, since=since, until=until)
    else:
        found = _distributions_ranked(engine, since=since, until=until)
    out: list[StageDistribution] = []
    for (flow, stage), e in found.items():
        n = e["n"]
        quantiles = {q: e["by_rank"][(n - 1) * q // 100 + 1] / 3600 for q in QUANTILES}
        out.append(StageDistribution(flow=flow, stage=stage, visits=n, mean_h=e["mean"] / 3600,
                                     wait_mean_h=None if e["wait"] is None else e["wait"] / 3600,
                                     quantiles_h=quantiles))
    return out


def _distributions_pg(engine: Engine, *, since: datetime, until: datetime) -> dict[tuple[str, str], Any]:
    picks = ", ".join(f"ds[(n - 1) * {q} / 100 + 1]" for q in QUANTILES)
    query = text(
        f"SELECT flow, stage, n, mean, wait_mean, ARRAY[{picks}] FROM ("
        " SELECT flow, stage, count(*) AS n, avg(d) AS mean, avg(w) AS wait_mean,"
        "  array_agg(d ORDER BY d) AS ds FROM ("
        "  SELECT flow, stage, date_part('epoch', completed_at - entered_at) AS d,"
        "   date_part('epoch', started_at - entered_at) AS w FROM stage_intervals"
        "   WHERE entered_at >= :since AND entered_at < :until AND completed_at IS NOT NULL) AS v"
        " GROUP BY flow, stage) AS g ORDER BY flow, stage"
    ).bindparams(bindparam("since", type_=UTCDateTime()), bindparam("until", type_=UTCDateTime()))
    found: dict[tuple[str, str], Any] = {}
    with engine.connect() as conn:
        for flow, stage, n, mean, wait_mean, picked in conn.execute(query, {"since": since, "until": until}):
            n = int(n)
            found[(flow, stage)] = {
                "n": n, "mean": round(float(mean or 0), 3),
                "wait": None if wait_mean is None else float(wait_mean),
                "by_rank": {(n - 1) * q // 100 + 1: round(float(d or 0), 3)
                            for q, d in zip(QUANTILES, picked, strict=True)}}
    return found


def _distributions_ranked(engine: Engine, *, since: datetime, until: datetime) -> dict[tuple[str, str], Any]:
    v = VISITS
    dialect = engine.dialect.name
    duration = _seconds(dialect, v.c.completed_at, v.c.entered_at)
    wait = _seconds(dialect, v.c.started_at, v.c.entered_at)
    part = (v.c.flow, v.c.stage)
    ranked = (
        select(v.c.flow, v.c.stage, duration.label("dur"),
               func.row_number().over(partition_by=part, order_by=duration).label("rn"),
               func.count().over(partition_by=part).label("n"),
               func.avg(duration).over(partition_by=part).label("mean"),
               func.avg(wait).over(partition_by=part).label("wait_mean"))
        .where(v.c.entered_at >= since, v.c.entered_at < until, v.c.completed_at.is_not(None))
        .subquery()
    )
    # floor((n - 1) * q / 100) + 1 in integer arithmetic, the same on both dialects
    ranks = [(ranked.c.n - 1) * q // 100 + 1 for q in QUANTILES]
    query = (select(ranked.c.flow, ranked.c.stage, ranked.c.n, ranked.c.rn, ranked.c.dur,
                    ranked.c.mean, ranked.c.wait_mean)
             .where(or_(*[ranked.c.rn == r for r in ranks]))
             .order_by(ranked.c.flow, ranked.c.stage, ranked.c.rn))
    found: dict[tuple[str, str], Any] = {}
    with engine.connect() as conn:
        for flow, stage, n, rn, dur, mean, wait_mean in conn.execute(query):
            entry = found.setdefault((flow, stage), {
                "n": int(n), "mean": round(float(mean or 0), 3),
                "wait": None if wait_mean is None else float(wait_mean), "by_rank": {}})
            entry["by_rank"][int(rn)] = round(float(dur or 0), 3)  # julianday is ~µs off
    return found


def review(distributions: Sequence[StageDistribution], *, flows: FlowBook,
           params: StageOverBenchmarkParams) -> list[StageReview]:
    """Each stage of the flows (flow order, stage order) with its distribution and its
    benchmark; stages without completed visits in the window are left out."""
    by_key = {(d.flow, d.stage): d for d in distributions}
    out: list[StageReview] = []
    for flow in flows.flows:
        for stage in flow.stages:
            d = by_key.get((flow.id, stage.id))
            if d is None:
                continue
            benchmark = params.benchmarks_h.get(f"{flow.id}/{stage.id}", stage.budget_h)
            out.append(StageReview(
                distribution=d, benchmark_h=benchmark, limit_h=benchmark * (1 + params.over_share),
                over=over_benchmark(d.mean_h, benchmark, over_share=params.over_share, visits=d.visits,
                                    min_visits=params.min_visits)))
    return out


def stages_over_benchmark(engine: Engine, *, flows: FlowBook, params: StageOverBenchmarkParams,
                          since: datetime, until: datetime) -> list[StageReview]:
    """The reviewed stages of the window whose average is over the benchmark + over_share."""
    reviews = review(stage_distributions(engine, since=since, until=until), flows=flows, params=params)
    return [r for r in reviews if r.over]

