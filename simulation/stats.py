"""Statistics of simulation runs.

- :func:`figures_of` turns one replication's :class:`~simulation.records.RunResult`
  into its figures: per stage wait, work, utilisation, throughput and queue length;
  per flow (and over all flows) lead-time mean and percentiles and the on-time share;
  event counts. It reads the run's streaming tallies (:mod:`simulation.tally`: exact
  counts, sums and integrals; percentiles within 0.5 %), or its flat records when
  asked for exact percentiles or a longer warm-up.
- :func:`run_replications` runs independent replications (replication ``r`` draws
  from the model's ``SeedSequence([seed, r])``), in this process or fanned out over a
  local process pool; the figures do not depend on the pool size.
- :func:`confidence_interval` and the ``*_estimates`` functions give each figure's
  mean and Student-t 95 % interval across replications.
- :func:`erlang_c_wait` and :func:`littles_law` are the queueing formulas the
  simulator is validated against.

Percentiles are numpy's default (linear interpolation between order statistics):
exact from records, within :data:`~simulation.tally.ACCURACY` from a tally.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, fields
from typing import Any, Protocol, TypeVar

import numpy as np
from scipy import stats as scipy_stats

from simulation.records import GroundTruth, OrderOutcome, ResourceUsage, RunResult, StageVisit
from simulation.scenario import Scenario
from simulation.tally import LeadTally, RunTally, StageTally
from tower.flows import FlowBook

HOURS_PER_DAY = 24.0
ALL_FLOWS = "all"
LEVEL = 0.95

EventSink = Callable[[dict[str, Any]], None]
ProgressCallback = Callable[["RunProgress"], None]
STEP_H = 24.0  # the model runs a simulated day at a time, for progress


class Simulate(Protocol):
    """The model's entry point (``simulation.model.simulate``)."""

    def __call__(self, scenario: Scenario, flows: FlowBook, *, seed: int, replication: int = 0,
                 days: float | None = None, warmup_days: float | None = None,
                 sink: EventSink | None = None) -> RunResult: ...


# ---------------------------------------------------------------- one replication


@dataclass(frozen=True, slots=True)
class StageFigures:
    """One stage of one flow over the measured window of a run (None: no visit)."""

    flow: str
    stage: str
    resource: str
    visits: int
    wait_mean_h: float | None
    wait_p90_h: float | None
    work_mean_h: float | None
    utilization: float | None      # busy / on-shift server-hours; None: no resource record
    throughput_per_day: float      # visits finished per day of the window (rework included)
    queue_len_mean: float | None   # time-average number waiting; None: no resource record
    arrivals_per_h: float          # visits arrived per hour of the window (Little's lambda)


@dataclass(frozen=True, slots=True)
class LeadTimeFigures:
    """Orders of one flow (or ``all``) created in the window: counts, lead times of the
    delivered ones and the share of those delivered by their promise."""

    flow: str
    created: int
    delivered: int
    cancelled: int
    lost: int
    in_progress: int
    lead_time_mean_h: float | None
    lead_time_p50_h: float | None
    lead_time_p90_h: float | None
    lead_time_p95_h: float | None
    on_time_share: float | None


@dataclass(frozen=True, slots=True)
class RunFigures:
    """Everything the statistics keep of one replication (small, picklable)."""

    scenario: str
    seed: int
    replication: int
    horizon_h: float
    warmup_h: float
    stages: tuple[StageFigures, ...]
    lead_times: tuple[LeadTimeFigures, ...]  # ``all`` first, then the flows by name
    event_counts: Mapping[str, int]
    ground_truth: tuple[GroundTruth, ...]
    sim_events: int

    @property
    def window_h(self) -> float:
        return self.horizon_h - self.warmup_h

    def stage(self, flow: str, stage: str) -> StageFigures:
        for s in self.stages:
            if s.flow == flow and s.stage == stage:
                return s
        raise KeyError((flow, stage))

    def lead_time(self, flow: str = ALL_FLOWS) -> LeadTimeFigures:
        for lt in self.lead_times:
            if lt.flow == flow:
                return lt
        raise KeyError(flow)


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def _percentiles(values: Sequence[float], qs: Sequence[float]) -> list[float | None]:
    if not values:
        return [None] * len(qs)
    return [float(p) for p in np.percentile(np.asarray(values, dtype=float), qs)]


def _stage_row(flow: str, stage: str, resources: Iterable[str], visits: int, wait_mean_h: float | None,
               wait_p90_h: float | None, work_mean_h: float | None, usage: Sequence[ResourceUsage],
               window_h: float) -> StageFigures:
    available = math.fsum(u.available_h for u in usage)
    busy = math.fsum(u.busy_h for u in usage)
    queue_area = math.fsum(u.queue_area_h for u in usage)
    names = sorted({u.resource for u in usage} | set(resources))
    return StageFigures(
        flow=flow,
        stage=stage,
        resource=",".join(names) or stage,
        visits=visits,
        wait_mean_h=wait_mean_h,
        wait_p90_h=wait_p90_h,
        work_mean_h=work_mean_h,
        utilization=(busy / available if available > 0 else 0.0) if usage else None,
        throughput_per_day=visits / (window_h / HOURS_PER_DAY) if window_h > 0 else 0.0,
        queue_len_mean=(queue_area / window_h if window_h > 0 else 0.0) if usage else None,
        arrivals_per_h=visits / window_h if window_h > 0 else 0.0,
    )


def stage_figures(flow: str, stage: str, visits: Sequence[StageVisit],
                  usage: Sequence[ResourceUsage], *, window_h: float) -> StageFigures:
    """Figures of one stage from its visits and its resources' usage over ``window_h``."""
    waits = [v.wait_h for v in visits]
    return _stage_row(flow, stage, (v.resource for v in visits), len(visits), _mean(waits),
                      _percentiles(waits, [90])[0], _mean([v.work_h for v in visits]), usage, window_h)


def stage_figures_of_tally(tally: StageTally, usage: Sequence[ResourceUsage], *,
                           window_h: float) -> StageFigures:
    """Figures of one stage from its tally and its resources' usage over ``window_h``."""
    n = tally.visits
    return _stage_row(tally.flow, tally.stage, tally.resources, n, tally.wait_sum_h / n if n else None,
                      tally.waits.quantile(0.9), tally.work_sum_h / n if n else None, usage, window_h)


def lead_time_figures(flow: str, orders: Sequence[OrderOutcome]) -> LeadTimeFigures:
    """Counts by status, lead times and on-time share of delivered orders."""
    by_status: dict[str, int] = defaultdict(int)
    for o in orders:
        by_status[o.status] += 1
    delivered = [o for o in orders if o.status == "delivered" and o.done_h is not None]
    leads = [o.done_h - o.created_h for o in delivered if o.done_h is not None]
    p50, p90, p95 = _percentiles(leads, [50, 90, 95])
    on_time = sum(1 for o in delivered if o.on_time)
    return LeadTimeFigures(
        flow=flow,
        created=len(orders),
        delivered=by_status["delivered"],
        cancelled=by_status["cancelled"],
        lost=by_status["lost"],
        in_progress=by_status["in_progress"],
        lead_time_mean_h=_mean(leads),
        lead_time_p50_h=p50,
        lead_time_p90_h=p90,
        lead_time_p95_h=p95,
        on_time_share=on_time / len(delivered) if delivered else None,
    )


def lead_time_figures_of_tally(flow: str, tally: LeadTally) -> LeadTimeFigures:
    """Counts by status, lead times and on-time share of delivered orders, from a tally."""
    delivered = tally.delivered
    p50, p90, p95 = tally.leads.quantiles([0.5, 0.9, 0.95])
    return LeadTimeFigures(
        flow=flow,
        created=tally.created,
        delivered=delivered,
        cancelled=tally.cancelled,
        lost=tally.lost,
        in_progress=tally.in_progress,
        lead_time_mean_h=tally.lead_sum_h / delivered if delivered else None,
        lead_time_p50_h=p50,
        lead_time_p90_h=p90,
        lead_time_p95_h=p95,
        on_time_share=tally.on_time / delivered if delivered else None,
    )


def _record_rows(run: RunResult, cut: float, window_h: float,
                 usage_by: Mapping[tuple[str, str], Sequence[ResourceUsage]]
                 ) -> tuple[tuple[StageFigures, ...], tuple[LeadTimeFigures, ...]]:
    visits_by: dict[tuple[str, str], list[StageVisit]] = defaultdict(list)
    for v in run.visits:
        if v.arrived_h >= cut:
            visits_by[(v.flow, v.stage)].append(v)
    keys = sorted(set(visits_by) | set(usage_by))
    stages = tuple(stage_figures(f, s, visits_by[(f, s)], usage_by.get((f, s), ()), window_h=window_h)
                   for f, s in keys)
    orders = [o for o in run.orders if o.created_h >= cut]
    orders_by: dict[str, list[OrderOutcome]] = defaultdict(list)
    for o in orders:
        orders_by[o.flow].append(o)
    lead_times = (lead_time_figures(ALL_FLOWS, orders),
                  *(lead_time_figures(f, orders_by[f]) for f in sorted(orders_by)))
    return stages, lead_times


def _tally_rows(tally: RunTally, window_h: float,
                usage_by: Mapping[tuple[str, str], Sequence[ResourceUsage]]
                ) -> tuple[tuple[StageFigures, ...], tuple[LeadTimeFigures, ...]]:
    by_key = {(t.flow, t.stage): t for t in tally.stages}
    keys = sorted(set(by_key) | set(usage_by))
    stages = tuple(stage_figures_of_tally(by_key.get((f, s)) or StageTally(f, s), usage_by.get((f, s), ()),
                                          window_h=window_h) for f, s in keys)
    leads = {t.flow: t for t in tally.leads if t.created}
    everything = LeadTally(ALL_FLOWS)
    for t in leads.values():
        everything.merge(t)
    lead_times = (lead_time_figures_of_tally(ALL_FLOWS, everything),
                  *(lead_time_figures_of_tally(f, leads[f]) for f in sorted(leads)))
    return stages, lead_times


def figures_of(run: RunResult, *, warmup_h: float | None = None, exact: bool = False) -> RunFigures:
    """The figures of one replication.

    They come from the run's tallies (percentiles within
    :data:`~simulation.tally.ACCURACY`), or from its records (exact percentiles) when
    ``exact`` is set or the run has no tally (a stand-in model). The model already
    deleted its warm-up. ``warmup_h`` (hours from the start, larger than the run's
    own warm-up) deletes more, from the records (a tally cannot be re-cut): visits
    that arrived and orders created before it are dropped and rates use the shorter
    window. Utilisation and queue length are integrals the model kept over its own
    window and are not re-cut. Raises ValueError when records are needed and the run
    did not keep them.
    """
    cut = max(run.warmup_h, warmup_h if warmup_h is not None else run.warmup_h)
    window_h = run.horizon_h - cut
    usage_by: dict[tuple[str, str], list[ResourceUsage]] = defaultdict(list)
    for u in run.resources:
        usage_by[(u.flow, u.stage)].append(u)
    if run.tally is not None and not exact and cut == run.warmup_h:
        stages, lead_times = _tally_rows(run.tally, window_h, usage_by)
    elif run.records:
        stages, lead_times = _record_rows(run, cut, window_h, usage_by)
    else:
        raise ValueError("the run kept no records (Model(records=True)): its figures cannot be exact "
                         "or cut after a longer warm-up")
    return RunFigures(
        scenario=run.scenario, seed=run.seed, replication=run.replication,
        horizon_h=run.horizon_h, warmup_h=cut, stages=stages, lead_times=lead_times,
        event_counts=dict(sorted(run.event_counts.items())),
        ground_truth=tuple(run.ground_truth), sim_events=run.sim_events,
    )


# ---------------------------------------------------------------- across replications


@dataclass(frozen=True, slots=True)
class Estimate:
    """A figure's mean across replications and its Student-t confidence interval.

    With one value (or none that vary) the half-width is 0 for identical values and
    None for a single one.
    """

    mean: float
    ci_low: float | None
    ci_high: float | None
    half_width: float | None
    n: int

    def contains(self, value: float) -> bool:
        return self.ci_low is not None and self.ci_high is not None and self.ci_low <= value <= self.ci_high


def confidence_interval(values: Iterable[float | None], level: float = LEVEL) -> Estimate | None:
    """Mean and two-sided ``level`` interval (Student t, n - 1 degrees of freedom) of
    the values that are not None; None if there are none."""
    xs = np.asarray([v for v in values if v is not None], dtype=float)
    n = int(xs.size)
    if n == 0:
        return None
    mean = float(xs.mean())
    if n == 1:
        return Estimate(mean=mean, ci_low=None, ci_high=None, half_width=None, n=1)
    sem = float(xs.std(ddof=1)) / math.sqrt(n)
    half = float(scipy_stats.t.ppf(0.5 + level / 2, n - 1)) * sem
    return Estimate(mean=mean, ci_low=mean - half, ci_high=mean + half, half_width=half, n=n)


Row = TypeVar("Row", StageFigures, LeadTimeFigures)


def numeric_fields(row_type: type[StageFigures] | type[LeadTimeFigures]) -> tuple[str, ...]:
    """The figures of a row type (its fields that hold numbers)."""
    return tuple(f.name for f in fields(row_type) if f.type not in ("str",))


def _estimates(rows: Sequence[Row], level: float) -> dict[str, Estimate | None]:
    return {name: confidence_interval((getattr(r, name) for r in rows), level)
            for name in numeric_fields(type(rows[0]))}


def stage_estimates(runs: Sequence[RunFigures], level: float = LEVEL
                    ) -> dict[tuple[str, str], dict[str, Estimate | None]]:
    """Per (flow, stage), each figure's mean and interval across the replications."""
    rows: dict[tuple[str, str], list[StageFigures]] = defaultdict(list)
    for run in runs:
        for s in run.stages:
            rows[(s.flow, s.stage)].append(s)
    return {key: _estimates(rows[key], level) for key in sorted(rows)}


def lead_time_estimates(runs: Sequence[RunFigures], level: float = LEVEL
                        ) -> dict[str, dict[str, Estimate | None]]:
    """Per flow (``all`` first), each lead-time figure's mean and interval."""
    rows: dict[str, list[LeadTimeFigures]] = defaultdict(list)
    for run in runs:
        for lt in run.lead_times:
            rows[lt.flow].append(lt)
    order = sorted(rows, key=lambda f: (f != ALL_FLOWS, f))
    return {flow: _estimates(rows[flow], level) for flow in order}


def event_count_estimates(runs: Sequence[RunFigures], level: float = LEVEL) -> dict[str, Estimate]:
    """Per event type, the count's mean and interval (a type missing from a run counts 0)."""
    types = sorted({t for run in runs for t in run.event_counts})
    out: dict[str, Estimate] = {}
    for t in types:
        est = confidence_interval((float(run.event_counts.get(t, 0)) for run in runs), level)
        assert est is not None  # runs is not empty when there are types
        out[t] = est
    return out


# ---------------------------------------------------------------- queueing formulas


def erlang_c_wait(lam: float, mu: float, c: int) -> float:
    """Mean wait in queue W_q of an M/M/c queue (hours if the rates are per hour).

    Uses the Erlang B recurrence, which stays exact for large ``c``.
    """
    if lam <= 0 or mu <= 0 or c < 1:
        raise ValueError("needs lam > 0, mu > 0 and c >= 1")
    a = lam / mu
    rho = a / c
    if rho >= 1:
        raise ValueError(f"unstable queue: utilisation {rho:.3f} >= 1")
    erlang_b = 1.0
    for k in range(1, c + 1):
        erlang_b = a * erlang_b / (k + a * erlang_b)
    p_wait = erlang_b / (1 - rho * (1 - erlang_b))
    return p_wait / (c * mu - lam)


def littles_law(arrival_rate: float, time_in_system: float) -> float:
    """L = lambda W: the mean number in a system from its arrival rate and mean time."""
    return arrival_rate * time_in_system


def little_gap(stage: StageFigures) -> float | None:
    """Relative gap between the time-average queue length a stage measured and
    lambda W_q from its visits (0 when Little's law holds); None if either is unknown."""
    if stage.queue_len_mean is None or stage.wait_mean_h is None:
        return None
    predicted = littles_law(stage.arrivals_per_h, stage.wait_mean_h)
    if predicted == 0:
        return 0.0 if stage.queue_len_mean == 0 else math.inf
    return (stage.queue_len_mean - predicted) / predicted


# ---------------------------------------------------------------- replications


@dataclass(frozen=True, slots=True)
class RunProgress:
    """How far a set of replications has got, in simulated hours (warm-up included)."""

    done_h: float
    total_h: float
    replications_done: int
    replications: int


@dataclass(frozen=True, slots=True)
class _Replication:
    scenario: Scenario
    flows: FlowBook
    seed: int
    replication: int
    days: float | None
    warmup_days: float | None
    model: Simulate | None


def _replicate(job: _Replication, sink: EventSink | None = None,
               advanced: Callable[[float], None] | None = None) -> RunFigures:
    """Run one replication and keep its figures. The model runs a simulated day at a
    time (wherever the replication runs, so its SimPy event count is the same), and
    ``advanced(hours)`` hears after each day."""
    if job.model is not None:
        result = job.model(job.scenario, job.flows, seed=job.seed, replication=job.replication,
                           days=job.days, warmup_days=job.warmup_days, sink=sink)
        return figures_of(result)
    from simulation.model import Model

    model = Model(job.scenario, job.flows, seed=job.seed, replication=job.replication, days=job.days,
                  warmup_days=job.warmup_days, sink=sink)
    now = 0.0
    while now < model.horizon_h:
        now = min(now + STEP_H, model.horizon_h)
        model.run(until_h=now)
        if advanced is not None:
            advanced(now)
    return figures_of(model.result())


def run_replications(scenario: Scenario, flows: FlowBook, *, seed: int, replications: int = 1,
                     days: float | None = None, warmup_days: float | None = None,
                     processes: int = 1, sink: EventSink | None = None,
                     progress: ProgressCallback | None = None,
                     model: Simulate | None = None) -> list[RunFigures]:
    """Run ``replications`` independent replications and return their figures in
    replication order.

    ``days`` are simulated after ``warmup_days`` (both default to the scenario's).
    Replication ``r`` draws from the model's ``SeedSequence([seed, r])``, so the
    figures are the same whatever ``processes`` is. With ``processes`` > 1 the
    replications run in a pool of spawned processes. ``sink`` receives the events of
    replication 0, which then runs in this process (the events stream to it, they are
    not pickled). ``progress`` hears after every simulated day run here and every
    replication finished elsewhere. ``model`` stands in for
    ``simulation.model.simulate`` (picklable: a module-level function).
    """
    if replications < 1:
        raise ValueError("replications must be at least 1")
    if processes < 1:
        raise ValueError("processes must be at least 1")
    jobs = [_Replication(scenario, flows, seed, r, days, warmup_days, model) for r in range(replications)]
    span_h = HOURS_PER_DAY * ((scenario.warmup_days if warmup_days is None else warmup_days)
                              + (scenario.horizon_days if days is None else days))
    results: dict[int, RunFigures] = {}
    futures: list[Future[RunFigures]] = []

    def report(here_h: float = 0.0) -> None:
        if progress is not None:
            done = sum(1 for r in results if r not in elsewhere) + sum(1 for f in futures if f.done())
            progress(RunProgress(done * span_h + here_h, replications * span_h, done, replications))

    local = jobs[:1] if sink is not None else []
    remote = jobs[len(local):]
    if processes == 1 or (len(remote) <= 1 and not local):
        local, remote = jobs, []
    elsewhere = {job.replication for job in remote}
    pool: ProcessPoolExecutor | None = None
    if remote:
        workers = max(1, min(processes - len(local), len(remote)))
        context = multiprocessing.get_context("spawn")  # safe beside threads (progress bars)
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    try:
        if pool is not None:
            futures = [pool.submit(_replicate, job) for job in remote]
        for job in local:
            figures = _replicate(job, sink if job.replication == 0 else None, report)
            results[job.replication] = figures
            report()
        for future in as_completed(futures):
            figures = future.result()
            results[figures.replication] = figures
            report()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return [results[r] for r in range(replications)]
