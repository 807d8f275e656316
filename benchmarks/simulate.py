"""Simulator benchmark: prints rates and ratios, not a test.

    .venv/bin/python benchmarks/simulate.py [--quick] [--days D] [--seed 1] [--out DIR] [--records]

Everything runs in this one process (one core), and every rate is set against a
bare SimPy M/M/3 measured in the same run, so the ratios hold across machines:

* bare M/M/3: one process per customer, a ``simpy.Resource`` of 3, exponential
  timeouts (lambda 2.7/h, mu 1/h), no records: SimPy events/s and customers/s;
* the baseline scenario, statistics only (no event sink): SimPy events/s of the
  model as a ratio to the bare rate (target >= 0.25);
* ``mm3.toml`` through the model: customers/s as a ratio to the bare model
  (target >= 0.5);
* one simulated year of the baseline with NDJSON output to a file, the way
  ``tower simulate --events`` runs it (streaming statistics, no per-visit records):
  wall and CPU time (target < 5 min), the process's resident memory at 25, 50, 75
  and 100 % of the simulated time and its growth from 25 % to 100 % (flat: target
  < 5 %), and the peak (target < 1 GB). ``--days`` runs fewer (or more) days;
  ``--records`` keeps a record per visit and order as well (``Model(records=True)``),
  to show what they would cost.

Rates are per CPU second of this process (``time.process_time``), so a machine busy
with other work changes them less; wall times are printed too. SimPy events are
counted the same way for both models: the events the environment scheduled
(``Environment._eid``) minus those still queued. The bare model runs before and
after the model runs and the faster of the two is the reference. Model runs have no
warm-up, so every customer simulated counts.

``--quick`` shrinks every run (a month instead of a year) for a smoke check.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from simulation.model import Model, simulate
from simulation.report import NdjsonEvents
from simulation.scenario import Scenario, load_scenario
from simulation.stats import figures_of, run_replications
from tower.flows import FlowBook
from tower.settings import DEFAULT_DATA_DIR

SCENARIOS = DEFAULT_DATA_DIR / "scenarios"
PAGE = os.sysconf("SC_PAGE_SIZE")
QUARTERS = (0.25, 0.5, 0.75, 1.0)
FLAT_GROWTH = 0.05  # RSS may grow this much from 25 % to 100 % of the run and count as flat


@dataclass(frozen=True)
class Rate:
    cpu_s: float
    wall_s: float
    sim_events: int
    customers: int

    @property
    def events_per_s(self) -> float:
        return self.sim_events / self.cpu_s

    @property
    def customers_per_s(self) -> float:
        return self.customers / self.cpu_s


class Clock:
    """CPU and wall seconds since it was made."""

    def __init__(self) -> None:
        gc.collect()
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def rate(self, sim_events: int, customers: int) -> Rate:
        return Rate(time.process_time() - self.cpu, time.perf_counter() - self.wall, sim_events, customers)


def processed_events(env: simpy.Environment) -> int:
    """Events the environment processed: scheduled (its event-id counter) minus still
    queued, as ``simulation.model`` counts them."""
    return int(next(env._eid)) - len(env._queue)


def bare_mm3(customers: int, seed: int) -> Rate:
    """A bare SimPy M/M/3 serving about ``customers`` customers."""
    rng = np.random.default_rng(seed)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=3)
    served = 0

    def customer() -> Generator[simpy.Event, Any, None]:
        nonlocal served
        with servers.request() as request:
            yield request
            yield env.timeout(rng.exponential(1.0))
        served += 1

    def arrivals() -> Generator[simpy.Event, Any, None]:
        while True:
            yield env.timeout(rng.exponential(1 / 2.7))
            env.process(customer())

    env.process(arrivals())
    clock = Clock()
    env.run(until=customers / 2.7)
    return clock.rate(processed_events(env), served)


def model_run(scenario: Scenario, flows: FlowBook, *, days: float, seed: int) -> tuple[Rate, int]:
    """The model over ``days``, statistics only: its rate (customers: stage visits) and the
    orders it created."""
    clock = Clock()
    result = simulate(scenario, flows, seed=seed, days=days, warmup_days=0)
    rate = clock.rate(result.sim_events, 0)
    figures = figures_of(result)
    visits = sum(s.visits for s in figures.stages)
    return Rate(rate.cpu_s, rate.wall_s, rate.sim_events, visits), figures.lead_time().created


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class MemorySampler:
    """Samples resident memory when the run passes each share of ``total_h`` in
    :data:`QUARTERS` (called after every simulated day)."""

    def __init__(self, total_h: float) -> None:
        self.marks = [q * total_h for q in QUARTERS]
        self.started = time.perf_counter()
        self.samples: list[tuple[float, float, float, float]] = []  # (share, simulated day, wall s, RSS MB)

    def __call__(self, done_h: float) -> None:
        while len(self.samples) < len(self.marks) and done_h >= self.marks[len(self.samples)] - 1e-9:
            share = QUARTERS[len(self.samples)]
            self.samples.append((share, done_h / 24, time.perf_counter() - self.started, rss_mb()))

    def growth(self) -> float:
        """Relative growth of RSS from the first sample (25 %) to the last (100 %)."""
        first, last = self.samples[0][3], self.samples[-1][3]
        return (last - first) / first


def year_run(scenario: Scenario, flows: FlowBook, *, days: float, seed: int,
             sink: Callable[[dict[str, Any]], None], memory: MemorySampler,
             records: bool) -> tuple[Rate, int]:
    """``days`` of the scenario with its events to ``sink``: as ``tower simulate`` runs
    it (one replication in this process, its figures from the streaming tallies), or
    keeping a record per visit and order too."""
    clock = Clock()
    if not records:
        (figures,) = run_replications(scenario, flows, seed=seed, days=days, warmup_days=0, sink=sink,
                                      progress=lambda p: memory(p.done_h))
        return clock.rate(figures.sim_events, 0), figures.lead_time().created
    model = Model(scenario, flows, seed=seed, days=days, warmup_days=0, sink=sink, records=True)
    now = 0.0
    while now < model.horizon_h:
        now = min(now + 24, model.horizon_h)
        model.run(until_h=now)
        memory(now)
    result = model.result()
    figures = figures_of(result, exact=True)
    return clock.rate(result.sim_events, 0), figures.lead_time().created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke check")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder of the NDJSON file (default: temp)")
    parser.add_argument("--days", type=float, default=None,
                        help="simulated days of the NDJSON run (default: 365, 30 with --quick)")
    parser.add_argument("--records", action="store_true",
                        help="keep a record per visit and order in the NDJSON run (what flat memory saves)")
    args = parser.parse_args()
    quick: bool = args.quick
    seed: int = args.seed

    baseline, baseline_flows = load_scenario(SCENARIOS / "baseline-ecommerce.toml")
    mm3, mm3_flows = load_scenario(SCENARIOS / "mm3.toml")
    bare_customers = 60_000 if quick else 400_000
    baseline_days = 7 if quick else 60
    mm3_days = 400 if quick else 3_000  # 64.8 customers a day
    year_days: float = args.days if args.days is not None else (30 if quick else 365)

    print(f"simulator benchmark{' (quick)' if quick else ''}, seed {seed}, one process; "
          "rates per CPU second")
    bare_mm3(5_000, seed)  # warm the interpreter's caches
    first = bare_mm3(bare_customers, seed)

    stats, orders = model_run(baseline, baseline_flows, days=baseline_days, seed=seed)
    mm3_rate, _ = model_run(mm3, mm3_flows, days=mm3_days, seed=seed)

    again = bare_mm3(bare_customers, seed)
    bare = min(first, again, key=lambda r: r.cpu_s)
    print(f"bare SimPy M/M/3: {bare.customers:,} customers, {bare.sim_events:,} events in {bare.cpu_s:.2f} s "
          f"= {bare.events_per_s:,.0f} events/s, {bare.customers_per_s:,.0f} customers/s "
          f"(before/after: {first.events_per_s:,.0f} / {again.events_per_s:,.0f} events/s)")
    ratio = stats.events_per_s / bare.events_per_s
    print(f"baseline, statistics only: {baseline_days} days, {orders:,} orders, {stats.sim_events:,} events "
          f"in {stats.cpu_s:.2f} s = {stats.events_per_s:,.0f} events/s -> {ratio:.2f} x bare "
          f"(target >= 0.25) {'OK' if ratio >= 0.25 else 'MISSED'}")
    ratio = mm3_rate.customers_per_s / bare.customers_per_s
    print(f"mm3.toml through the model: {mm3_rate.customers:,} customers in {mm3_rate.cpu_s:.2f} s = "
          f"{mm3_rate.customers_per_s:,.0f} customers/s -> {ratio:.2f} x bare (target >= 0.5) "
          f"{'OK' if ratio >= 0.5 else 'MISSED'}")

    folder = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="bench-sim-"))
    path = folder / f"baseline-{year_days:g}d.ndjson"
    memory = MemorySampler(24 * year_days)
    records: bool = args.records
    before = peak_rss_mb()
    with path.open("wb", buffering=1 << 20) as fh:
        writer = NdjsonEvents(fh)
        year, orders = year_run(baseline, baseline_flows, days=year_days, seed=seed, sink=writer,
                                memory=memory, records=records)
    size_mb = path.stat().st_size / 2**20
    peak = peak_rss_mb()
    how = "records kept too" if records else "streaming statistics, as tower simulate"
    print(f"baseline, {year_days:g} days with NDJSON ({how}): {orders:,} orders, {writer.count:,} events "
          f"({size_mb:,.0f} MB) in {year.wall_s:.1f} s wall, "
          f"{year.cpu_s:.1f} s CPU (target < 300 s) {'OK' if year.wall_s < 300 else 'MISSED'}")
    for share, day, wall, mb in memory.samples:
        print(f"  {share:4.0%} (day {day:5.1f}): {wall:7.1f} s wall, RSS {mb:7.1f} MB")
    growth = memory.growth()
    print(f"  RSS growth 25 % -> 100 %: {growth:+.1%} (flat: target < {FLAT_GROWTH:.0%}) "
          f"{'OK' if growth < FLAT_GROWTH else 'MISSED'}")
    print(f"  peak RSS {peak:,.0f} MB (before this run {before:,.0f} MB; target < 1024 MB) "
          f"{'OK' if peak < 1024 else 'MISSED'}")
    if args.out is None:
        path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
