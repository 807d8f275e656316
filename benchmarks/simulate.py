"""Simulator benchmark: prints rates and ratios, not a test.

    .venv/bin/python benchmarks/simulate.py [--quick] [--seed 1] [--out DIR]

Everything runs in this one process (one core), and every rate is set against a
bare SimPy M/M/3 measured in the same run, so the ratios hold across machines:

* bare M/M/3: one process per customer, a ``simpy.Resource`` of 3, exponential
  timeouts (lambda 2.7/h, mu 1/h), no records: SimPy events/s and customers/s;
* the baseline scenario, statistics only (no event sink): SimPy events/s of the
  model as a ratio to the bare rate (target >= 0.25);
* ``mm3.toml`` through the model: customers/s as a ratio to the bare model
  (target >= 0.5);
* one simulated year of the baseline with NDJSON output to a file, as
  ``tower simulate --events`` writes it: wall time (target < 5 min), the process's
  resident memory sampled at every simulated month, and its peak (target < 1 GB).

Model runs have no warm-up, so every customer simulated counts.

SimPy events are counted the same way for both models: the events the environment
scheduled (``Environment._eid``) minus those still queued, read after the run. The
bare model runs before and after the model runs; the faster of the two is the
reference (the machine may be busy with something else for a while).

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
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import simpy

from simulation.model import simulate
from simulation.report import NdjsonEvents
from simulation.scenario import Scenario, load_scenario
from tower.flows import FlowBook
from tower.settings import DEFAULT_DATA_DIR

SCENARIOS = DEFAULT_DATA_DIR / "scenarios"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Rate:
    seconds: float
    sim_events: int
    customers: int

    @property
    def events_per_s(self) -> float:
        return self.sim_events / self.seconds

    @property
    def customers_per_s(self) -> float:
        return self.customers / self.seconds


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
    started = time.perf_counter()
    env.run(until=customers / 2.7)
    seconds = time.perf_counter() - started
    return Rate(seconds, processed_events(env), served)


def model_run(scenario: Scenario, flows: FlowBook, *, days: float, seed: int,
              sink: Callable[[dict[str, Any]], None] | None = None) -> tuple[Rate, int]:
    """The model over ``days`` with no warm-up: its rate and the orders it created."""
    gc.collect()
    started = time.perf_counter()
    result = simulate(scenario, flows, seed=seed, days=days, warmup_days=0, sink=sink)
    seconds = time.perf_counter() - started
    return Rate(seconds, result.sim_events, len(result.visits)), len(result.orders)


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class MemorySampler:
    """An event sink wrapper that samples resident memory every ``every`` simulated
    (a month over a year)."""

    CHECK_EVERY = 4096  # events between two looks at the clock

    def __init__(self, sink: Callable[[dict[str, Any]], None], start: datetime, every: timedelta) -> None:
        self._sink = sink
        self._every = every
        self._next = start + every
        self._seen = 0
        self.started = time.perf_counter()
        self.samples: list[tuple[int, float, float]] = []  # (month, wall s, RSS MB)

    def __call__(self, event: dict[str, Any]) -> None:
        self._sink(event)
        self._seen += 1
        if self._seen % self.CHECK_EVERY == 0:
            at = event["occurred_at"]
            moment = datetime.fromisoformat(at) if isinstance(at, str) else at
            if moment >= self._next:
                self._next += self._every
                self.samples.append((len(self.samples) + 1, time.perf_counter() - self.started, rss_mb()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small runs, for a smoke check")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="folder of the NDJSON file (default: temp)")
    args = parser.parse_args()
    quick: bool = args.quick
    seed: int = args.seed

    baseline, baseline_flows = load_scenario(SCENARIOS / "baseline-ecommerce.toml")
    mm3, mm3_flows = load_scenario(SCENARIOS / "mm3.toml")
    bare_customers = 60_000 if quick else 400_000
    baseline_days = 7 if quick else 60
    mm3_days = 400 if quick else 3_000  # 64.8 customers a day
    year_days = 30 if quick else 365

    print(f"simulator benchmark{' (quick)' if quick else ''}, seed {seed}, one process")
    bare_mm3(5_000, seed)  # warm the interpreter's caches
    bare = bare_mm3(bare_customers, seed)
    print(f"bare SimPy M/M/3: {bare.customers:,} customers, {bare.sim_events:,} events "
          f"in {bare.seconds:.2f} s = {bare.events_per_s:,.0f} events/s, "
          f"{bare.customers_per_s:,.0f} customers/s")

    stats, orders = model_run(baseline, baseline_flows, days=baseline_days, seed=seed)
    again = bare_mm3(bare_customers, seed)  # the machine may have changed pace: keep the faster
    print(f"bare SimPy M/M/3 again: {again.events_per_s:,.0f} events/s, {again.customers_per_s:,.0f} "
          f"customers/s; the faster of the two is the reference")
    bare = min(bare, again, key=lambda r: r.seconds)
    ratio = stats.events_per_s / bare.events_per_s
    print(f"baseline, statistics only: {baseline_days} days, {orders:,} orders, {stats.sim_events:,} events "
          f"in {stats.seconds:.2f} s = {stats.events_per_s:,.0f} events/s -> {ratio:.2f} x bare "
          f"(target >= 0.25) {'OK' if ratio >= 0.25 else 'MISSED'}")

    mm3_rate, _ = model_run(mm3, mm3_flows, days=mm3_days, seed=seed)
    ratio = mm3_rate.customers_per_s / bare.customers_per_s
    print(f"mm3.toml through the model: {mm3_rate.customers:,} customers in {mm3_rate.seconds:.2f} s = "
          f"{mm3_rate.customers_per_s:,.0f} customers/s -> {ratio:.2f} x bare (target >= 0.5) "
          f"{'OK' if ratio >= 0.5 else 'MISSED'}")

    folder = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="bench-sim-"))
    path = folder / f"baseline-{year_days}d.ndjson"
    with path.open("wb", buffering=1 << 20) as fh:
        writer = NdjsonEvents(fh)
        memory = MemorySampler(writer, baseline.start, timedelta(days=year_days / 12))
        year, orders = model_run(baseline, baseline_flows, days=year_days, seed=seed, sink=memory)
    size_mb = path.stat().st_size / 2**20
    peak = peak_rss_mb()
    print(f"baseline, {year_days} days with NDJSON: {orders:,} orders, {writer.count:,} events "
          f"({size_mb:,.0f} MB) in {year.seconds:.1f} s (target < 300 s) "
          f"{'OK' if year.seconds < 300 else 'MISSED'}")
    for n, wall, mb in memory.samples:
        print(f"  day {n * year_days / 12:5.1f}: {wall:7.1f} s wall, RSS {mb:7.1f} MB")
    print(f"  peak RSS {peak:,.0f} MB (target < 1024 MB) {'OK' if peak < 1024 else 'MISSED'}")
    if args.out is None:
        path.unlink()
        folder.rmdir()


if __name__ == "__main__":
    main()
