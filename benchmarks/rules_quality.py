"""How well the rules catch what the simulator injected: recall, false alarms, delay.

    .venv/bin/python benchmarks/rules_quality.py [--days 20] [--seed 1] [--json out.json]

Runs the baseline scenario (``data/scenarios/baseline-ecommerce.toml``, its usual
disruptions switched on) and plays its events into an embedded tower (SQLite file,
in-process bus, the real ingest, projector and rule engine) on a paused clock that
this script moves forward: every ``scan_interval_s`` of simulated time it ingests the
events that happened before that moment, waits for them to be projected (state rules
run on each batch), sets the clock and runs the scheduled scan — exactly what the
worker's scheduler does, without waiting for the wall clock.

Ground truth comes from the simulator (``RunResult.ground_truth``: what it injected, where,
when) and, for stuck parcels, from the parcel scans themselves (a parcel whose next
scan came more than the dwell limit after the last one, or never came, was stuck from
its last scan plus the limit). For each rule it prints:

* recall: truths of the kind the rule is meant to catch that got an exception
  (directly, or grouped under a hub exception);
* false alarms per 1,000 orders: the rule's exceptions that match no truth;
* median and p90 detection delay in simulated hours, from the moment the condition
  was true (the truth's start plus the rule's threshold) to the exception's opening.

Targets (issue 5): recall >= 95 % for parcel_stuck, cold_chain_excursion and
stock_out, median delay within one scan interval of the rule's threshold.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulation.model import simulate  # noqa: E402
from simulation.records import GroundTruth  # noqa: E402
from simulation.scenario import load_scenario  # noqa: E402
from tower.clock import ScaledClock  # noqa: E402
from tower.runtime import Tower, build_tower  # noqa: E402
from tower.settings import load_settings  # noqa: E402
from tower.store.tables import ExceptionRow  # noqa: E402

SCENARIO = ROOT / "data" / "scenarios" / "baseline-ecommerce.toml"
DELIVERED = "delivered"


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value).astimezone(UTC)


# ------------------------------------------------------------------ ground truth


@dataclass(frozen=True)
class Truth:
    """Something the rules should catch: the rule, its scope and when it became true."""

    rule: str
    key: str                 # parcel id, order id or hub id, by rule
    condition_at: datetime   # the moment the rule's condition held (start + threshold)
    until: datetime          # when it stopped being true (or the end of the run)
    detail: str = ""


@dataclass
class ParcelWatch:
    """Stuck parcels from the scans: a gap longer than the dwell limit, not delivered."""

    limit: timedelta
    last: dict[str, tuple[datetime, str]] = field(default_factory=dict)  # parcel -> (scan, status)
    order_of: dict[str, str] = field(default_factory=dict)
    stuck: list[Truth] = field(default_factory=list)

    def scan(self, event: dict[str, Any]) -> None:
        payload = event["payload"]
        parcel, at = payload["parcel_id"], _time(event["occurred_at"])
        self.order_of.setdefault(parcel, event["order_id"])
        before = self.last.get(parcel)
        if before is not None and before[1] != DELIVERED and at - before[0] > self.limit:
            self.stuck.append(Truth("parcel_stuck", parcel, before[0] + self.limit, at))
        self.last[parcel] = (at, payload["status"])

    def close(self, end: datetime) -> None:
        for parcel, (at, status) in self.last.items():
            if status != DELIVERED and end - at > self.limit:
                self.stuck.append(Truth("parcel_stuck", parcel, at + self.limit, end, "open at end"))


def simulator_truths(truth: Iterable[GroundTruth], start: datetime, rules: dict[str, Any]) -> list[Truth]:
    """The simulator's injected disruptions as things a rule should catch."""
    def at(h: float) -> datetime:
        return start + timedelta(hours=h)

    hold_cold = timedelta(seconds=rules.get("cold_chain_hold_s", 600))
    dwell = timedelta(hours=rules.get("dwell_limit_h", 24))
    out: list[Truth] = []
    for t in truth:
        if t.kind == "temperature_excursion":
            # An excursion shorter than the hold-down (a one-reading spike) is what the
            # hold-down is there to ignore: not a truth the rule should catch.
            if timedelta(hours=t.end_h - t.start_h) < hold_cold:
                continue
            out.append(Truth("cold_chain_excursion", t.order_id, at(t.start_h) + hold_cold, at(t.end_h),
                             t.detail))
        elif t.kind == "stock_out":
            out.append(Truth("stock_out", t.order_id or t.where, at(t.start_h), at(t.end_h), t.where))
        elif t.kind == "hub_outage":
            # Retention counts parcels held past the dwell limit: visible a limit after the start.
            out.append(Truth("hub_retention", t.where, at(t.start_h) + dwell, at(t.end_h) + dwell, t.detail))
    return out


# ------------------------------------------------------------------ replay


class Replay:
    """Feeds simulated events to a tower interval by interval and runs the scans."""

    def __init__(self, tower: Tower, clock: ScaledClock, rule_engine: Any, *, start: datetime,
                 interval: timedelta, batch: int) -> None:
        self.tower, self.clock, self.rules = tower, clock, rule_engine
        self.interval, self.batch = interval, batch
        self.boundary = start + interval
        self.buffer: list[dict[str, Any]] = []
        self.events = 0
        self.scans = 0
        self.scan_s: list[float] = []
        self.rejected = 0

    def __call__(self, event: dict[str, Any]) -> None:
        at = _time(event["occurred_at"])
        while at >= self.boundary:
            self._tick()
        self.buffer.append(event)

    def _tick(self) -> None:
        self.clock.jump_to(self.boundary)
        for i in range(0, len(self.buffer), self.batch):
            summary = self.tower.ingestor.ingest(self.buffer[i:i + self.batch])
            self.rejected += len(summary.rejected)
        self.events += len(self.buffer)
        self.buffer.clear()
        self.tower.flush(timeout=600)
        began = time.perf_counter()
        self.rules.scan(self.boundary)
        self.scan_s.append(time.perf_counter() - began)
        self.scans += 1
        self.boundary += self.interval

    def finish(self, end: datetime) -> None:
        while self.boundary <= end + self.interval:
            self._tick()


# ------------------------------------------------------------------ scoring


@dataclass
class RuleScore:
    rule: str
    truths: int = 0
    detected: int = 0
    alarms: int = 0
    false_alarms: int = 0
    delays_h: list[float] = field(default_factory=list)

    def row(self, orders: int, interval_h: float) -> dict[str, Any]:
        delays = sorted(self.delays_h)
        p90 = delays[min(len(delays) - 1, int(0.9 * len(delays)))] if delays else None
        return {
            "rule": self.rule,
            "truths": self.truths,
            "detected": self.detected,
            "recall": self.detected / self.truths if self.truths else None,
            "exceptions": self.alarms,
            "false_alarms_per_1000_orders": 1000 * self.false_alarms / orders if orders else None,
            "delay_median_h": statistics.median(delays) if delays else None,
            "delay_p90_h": p90,
            "scan_interval_h": interval_h,
        }


def score(truths: Sequence[Truth], exceptions: Sequence[Any], *, orders: int,
          slack: timedelta) -> dict[str, RuleScore]:
    """Match truths to exceptions by rule and key (parcel, order or hub)."""
    def key_of(x: Any) -> list[str]:
        keys = [k for k in (x.parcel_id, x.order_id, x.hub_id) if k]
        warehouse = (x.detail or {}).get("warehouse_id") or (x.detail or {}).get("warehouse")
        return keys + ([warehouse] if warehouse else [])

    by_rule: dict[str, list[Any]] = defaultdict(list)
    for x in exceptions:
        by_rule[x.rule].append(x)
    scores: dict[str, RuleScore] = {}
    for rule, items in by_rule.items():
        scores[rule] = RuleScore(rule, alarms=len(items))
    used: set[str] = set()
    for t in truths:
        s = scores.setdefault(t.rule, RuleScore(t.rule))
        s.truths += 1
        hits = [x for x in by_rule.get(t.rule, ())
                if t.key in key_of(x) and x.condition_since <= t.until + slack]
        if not hits:
            continue
        first = min(hits, key=lambda x: x.opened_at)
        s.detected += 1
        s.delays_h.append(max(0.0, (first.opened_at - t.condition_at).total_seconds() / 3600))
        used.update(x.id for x in hits)
    for rule, items in by_rule.items():
        if any(t.rule == rule for t in truths):
            scores[rule].false_alarms = sum(1 for x in items if x.id not in used)
    return scores


# ------------------------------------------------------------------ main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=20.0,
                        help="simulated days (disruptions fall in days 2-16)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scan-s", type=float, default=900.0,
                        help="scan interval in simulated seconds (production: [rule_engine] scan_interval_s)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args(argv)

    from tower.exceptions.store import load_policy
    from tower.rules.config import load_rules
    from tower.rules.engine import RuleEngine

    scenario, flows = load_scenario(SCENARIO, data_dir=ROOT / "data")
    start = scenario.start.astimezone(UTC)
    with tempfile.TemporaryDirectory(prefix="rules-quality-") as tmp:
        settings = load_settings(DATABASE_URL=f"sqlite:///{tmp}/tower.db", REDIS_URL="",
                                 TOWER_FUTURE_SKEW_S=0, TOWER_MAX_BATCH_EVENTS=5000)
        clock = ScaledClock(start, rate=0.0)
        clock.pause()
        tower = build_tower(settings, clock=clock)
        engine_rules = getattr(tower, "rules", None)
        book = load_rules(settings.rules_path)
        if engine_rules is None:
            engine_rules = RuleEngine(tower.engine, tower.flows, tower.figures, book,
                                      load_policy(settings.rules_path), clock)
            tower.projector.listeners.append(engine_rules.on_batch)
        interval = timedelta(seconds=args.scan_s or book.scan_interval_s)
        watch = ParcelWatch(timedelta(hours=tower.figures.hubs.dwell_limit_h))
        replay = Replay(tower, clock, engine_rules, start=start, interval=interval, batch=2000)

        def sink(event: dict[str, Any]) -> None:
            if event["type"] == "parcel.scanned":
                watch.scan(event)
            replay(event)

        began = time.perf_counter()
        result = simulate(scenario, flows, seed=args.seed, days=args.days, warmup_days=0, sink=sink)
        end = start + timedelta(hours=result.horizon_h)
        replay.finish(end)
        wall = time.perf_counter() - began
        watch.close(end)
        hold = {"cold_chain_hold_s": _hold_s(book, "cold_chain_excursion"),
                "dwell_limit_h": tower.figures.hubs.dwell_limit_h}
        truths = simulator_truths(result.ground_truth, start, hold)
        truths += watch.stuck
        with tower.engine.connect() as conn:
            exceptions = list(conn.execute(select(ExceptionRow)).all())
        orders = result.event_counts.get("order.created", 0)
        scores = score(truths, exceptions, orders=orders, slack=interval)
        tower.close()

    interval_h = interval.total_seconds() / 3600
    rows = [s.row(orders, interval_h) for s in sorted(scores.values(), key=lambda s: s.rule)]
    print(f"baseline, {args.days:g} simulated days, seed {args.seed}: {orders} orders, "
          f"{replay.events} events, {replay.scans} scans (every {interval_h:g} h), {wall:.0f} s wall; "
          f"scan median {1000 * statistics.median(replay.scan_s):.1f} ms; rejected {replay.rejected}")
    print(f"{'rule':28} {'truths':>7} {'found':>6} {'recall':>7} {'exc.':>6} {'FA/1k':>7} "
          f"{'med h':>6} {'p90 h':>6}")

    def fmt(v: float | None, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for r in rows:
        print(f"{r['rule']:28} {r['truths']:>7} {r['detected']:>6} {fmt(r['recall'], '.1%'):>7} "
              f"{r['exceptions']:>6} {fmt(r['false_alarms_per_1000_orders'], '.2f'):>7} "
              f"{fmt(r['delay_median_h'], '.2f'):>6} {fmt(r['delay_p90_h'], '.2f'):>6}")
    if args.json:
        args.json.write_text(json.dumps({"days": args.days, "seed": args.seed, "orders": orders,
                                         "events": replay.events, "rules": rows}, indent=2))
    return 0


def _hold_s(book: Any, rule_id: str) -> float:
    """The rule's hold-down (``for``) in seconds."""
    return float(next(r.hold_down.total_seconds() for r in book.rules if r.id == rule_id))


if __name__ == "__main__":
    raise SystemExit(main())
