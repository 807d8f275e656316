"""The demo feed: seeded, contract-valid, accepted by the ingest, live without future stamps."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simulation.demo_feed import HUBS, DemoFeed
from tower.events import EventRecord, validate_event
from tower.flows import FlowBook
from tower.ingest import Ingestor

START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai


class MemoryDirectory:
    """The store as the ingest sees it, in memory."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.flows: dict[str, str] = {}

    def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        return self.ids & set(event_ids)

    def order_flows(self, order_ids: Sequence[str]) -> dict[str, str]:
        return {o: self.flows[o] for o in order_ids if o in self.flows}


class MemoryPublisher:
    def __init__(self, directory: MemoryDirectory) -> None:
        self.directory = directory
        self.published: list[EventRecord] = []

    def claim(self, event_ids: Sequence[str]) -> set[str]:
        return set(event_ids) - self.directory.ids

    def release(self, event_ids: Sequence[str]) -> None:
        pass

    def publish(self, events: Sequence[EventRecord]) -> None:
        for e in events:
            self.directory.ids.add(e.event_id)
            if e.type == "order.created" and e.order_id:
                self.directory.flows[e.order_id] = e.payload["flow"]
        self.published.extend(events)


@pytest.fixture(scope="module")
def day(flows: FlowBook) -> list[dict[str, Any]]:
    """Twelve simulated hours at the demo's speed."""
    return DemoFeed(flows, seed=7, start=START).generate(12)


@pytest.fixture(scope="module")
def real_pace(flows: FlowBook) -> list[dict[str, Any]]:
    """A day at tempo 1: durations as long as the budgets they are drawn around."""
    return DemoFeed(flows, seed=3, speed=1.0, start=START).generate(24)


def by_order(events: list[dict[str, Any]]) -> dict[str, list[EventRecord]]:
    """Each order's events, validated and in the tower's fold order."""
    orders: dict[str, list[EventRecord]] = defaultdict(list)
    for e in events:
        record = validate_event(e)
        if record.order_id:
            orders[record.order_id].append(record)
    return {o: sorted(evs, key=EventRecord.sort_key) for o, evs in orders.items()}


@pytest.fixture(scope="module")
def day_orders(day: list[dict[str, Any]]) -> dict[str, list[EventRecord]]:
    return by_order(day)


def test_same_seed_same_events(flows: FlowBook, day: list[dict[str, Any]]) -> None:
    again = DemoFeed(flows, seed=7, start=START).generate(12)
    assert again == day
    assert len(day) > 5_000


def test_a_shorter_window_is_a_prefix_and_another_seed_differs(
    flows: FlowBook, day: list[dict[str, Any]]
) -> None:
    first_hours = DemoFeed(flows, seed=7, start=START).generate(2)
    assert first_hours == day[:len(first_hours)]
    assert DemoFeed(flows, seed=8, start=START).generate(2) != first_hours


def test_sorted_within_the_window_with_offsets(day: list[dict[str, Any]]) -> None:
    stamps = [datetime.fromisoformat(e["occurred_at"]) for e in day]
    assert all(s.utcoffset() == timedelta(hours=8) for s in stamps)
    assert stamps == sorted(stamps)
    assert stamps[0] >= START and stamps[-1] < START + timedelta(hours=12)
    assert len({e["event_id"] for e in day}) == len(day)


def test_every_event_is_accepted_by_the_ingest(flows: FlowBook, day: list[dict[str, Any]]) -> None:
    directory = MemoryDirectory()
    publisher = MemoryPublisher(directory)
    ingestor = Ingestor(flows=flows, directory=directory, bus=publisher, future_skew_s=600,
                        max_batch=1000, clock=lambda: START + timedelta(hours=12))
    for i in range(0, len(day), 1000):
        summary = ingestor.ingest(day[i:i + 1000])
        assert summary.rejected == []
        assert summary.duplicates == 0 and summary.held == 0
    assert len(publisher.published) == len(day)


def test_each_order_follows_its_flow(flows: FlowBook, day_orders: dict[str, list[EventRecord]]) -> None:
    for order_id, events in day_orders.items():
        assert events[0].type == "order.created", order_id
        flow = flows.by_id[events[0].payload["flow"]]
        seen: dict[tuple[str, str], datetime] = {}
        last_index = 0
        for e in events:
            if e.type.startswith("stage."):
                assert e.stage is not None
                index = flow.stage_index[e.stage]
                assert index >= last_index, (order_id, e.stage)
                last_index = index
                seen[(e.stage, e.type)] = e.occurred_at
        for stage in flow.stage_ids:
            entered = seen.get((stage, "stage.entered"))
            started = seen.get((stage, "stage.started"))
            completed = seen.get((stage, "stage.completed"))
            if completed is not None:
                assert entered is not None and started is not None
                assert entered <= started <= completed
        if any(e.type == "order.cancelled" for e in events):
            assert events[-1].type == "order.cancelled"


def test_traffic_has_the_promised_mix(real_pace: list[dict[str, Any]]) -> None:
    created = [e["payload"] for e in real_pace if e["type"] == "order.created"]
    flows_seen = Counter(p["flow"] for p in created)
    assert 0.74 < flows_seen["ecommerce"] / len(created) < 0.86
    assert 0.05 < sum(p["priority"] == "rush" for p in created) / len(created) < 0.15
    manufacturing = [p for p in created if p["flow"] == "manufacturing"]
    assert 0.07 < sum(p["custom"] for p in manufacturing) / len(manufacturing) < 0.25
    assert any("cold_chain" in p for p in created)
    scans = [e["payload"] for e in real_pace if e["type"] == "parcel.scanned"]
    assert {s["hub_id"] for s in scans if "hub_id" in s} <= set(HUBS)
    assert {s["carrier"] for s in scans} == {"sf", "jd", "zto", "yto", "ems"}
    kinds = Counter(e["type"] for e in real_pace)
    assert kinds["sensor.reading"] and kinds["stock.level"] and kinds["order.cancelled"]
    assert kinds["handoff.evidence"] > 0


def test_some_stages_run_over_budget(
    flows: FlowBook, real_pace: list[dict[str, Any]]
) -> None:
    heads = {e["order_id"]: e["payload"] for e in real_pace if e["type"] == "order.created"}
    entered: dict[tuple[str, str], datetime] = {}
    over = total = 0
    for e in real_pace:
        if e["type"] not in ("stage.entered", "stage.completed"):
            continue
        key = (e["order_id"], e["payload"]["stage"])
        at = datetime.fromisoformat(e["occurred_at"])
        if e["type"] == "stage.entered":
            entered[key] = at
        elif key in entered:
            head = heads[e["order_id"]]
            budget = flows.budget_h(head["flow"], key[1], custom=head["custom"],
                                    rush=head["priority"] == "rush")
            total += 1
            over += (at - entered[key]).total_seconds() / 3600 > budget
    assert 0.05 < over / total < 0.35


def test_wuhan_is_the_bottleneck_hub(day: list[dict[str, Any]]) -> None:
    """Dwell in model hours (stamped dwell x speed) beyond a day: Wuhan's retention stands out."""
    arrived: dict[tuple[str, str], datetime] = {}
    visits: Counter[str] = Counter()
    retained: Counter[str] = Counter()
    for e in day:
        p = e["payload"]
        if e["type"] == "parcel.scanned" and "hub_id" in p:
            key, at = (p["parcel_id"], p["hub_id"]), datetime.fromisoformat(e["occurred_at"])
            if p["status"] == "arrived_hub":
                arrived[key] = at
            elif p["status"] == "departed_hub":
                visits[p["hub_id"]] += 1
                retained[p["hub_id"]] += (at - arrived[key]) * 60 > timedelta(hours=24)
    share = {hub: retained[hub] / n for hub, n in visits.items() if n >= 30}
    assert share["hub-wuhan"] > 0.1
    assert max(v for hub, v in share.items() if hub != "hub-wuhan") < 0.08


def test_gates_mostly_get_their_evidence(
    flows: FlowBook, day_orders: dict[str, list[EventRecord]]
) -> None:
    needed = have = 0
    for events in day_orders.values():
        flow = flows.by_id[events[0].payload["flow"]]
        entered = {e.stage for e in events if e.type == "stage.entered"}
        evidence = {(e.stage, e.payload["kind"]) for e in events if e.type == "handoff.evidence"}
        for stage in flow.stages:
            if stage.id in entered:
                for gate in stage.gates:
                    needed += 1
                    have += (gate.from_stage, gate.kind) in evidence
    assert needed > 100
    assert 0.9 < have / needed < 1.0


class ListSink:
    """Records each batch with the feed's time it arrived; fails on demand."""

    def __init__(self, clock: Callable[[], datetime], fail_every: int = 0) -> None:
        self.clock = clock
        self.batches: list[tuple[datetime, list[dict[str, Any]]]] = []
        self.calls = 0
        self.fail_every = fail_every

    def __call__(self, batch: list[dict[str, Any]]) -> None:
        self.calls += 1
        if self.fail_every and self.calls % self.fail_every == 0:
            raise RuntimeError("sink down")
        self.batches.append((self.clock(), batch))


def noon_clock() -> Callable[[], datetime]:
    """Real time passing, but from a fixed noon in Shanghai: the intake rate is known."""
    origin, began = datetime(2026, 3, 2, 4, 0, tzinfo=UTC), time.monotonic()
    return lambda: origin + timedelta(seconds=time.monotonic() - began)


def run_briefly(feed: DemoFeed, sink: ListSink, seconds: float) -> float:
    """Run the feed for ``seconds``, stop it; returns how long stopping took."""
    stop = threading.Event()
    thread = threading.Thread(target=feed.run, args=(sink, stop), daemon=True)
    thread.start()
    time.sleep(seconds)
    stopped = time.monotonic()
    stop.set()
    thread.join(timeout=2)
    assert not thread.is_alive()
    return time.monotonic() - stopped


def test_run_emits_history_then_live_and_stops_promptly(flows: FlowBook) -> None:
    clock = noon_clock()
    feed = DemoFeed(flows, seed=5, speed=3600, orders_per_day=300_000, history_h=0.02,
                    tick_s=0.05, batch_size=200, clock=clock)
    sink = ListSink(clock)
    assert run_briefly(feed, sink, 1.0) < 0.5
    assert len(sink.batches) > 2 and all(len(b) <= 200 for _, b in sink.batches)
    first_sent = sink.batches[0][0]
    stamps = [datetime.fromisoformat(e["occurred_at"]) for _, b in sink.batches for e in b]
    assert min(stamps) < first_sent - timedelta(seconds=30)  # the history went out at once
    assert max(stamps) > first_sent  # and live traffic followed
    for sent, batch in sink.batches:  # never stamped ahead of the clock
        assert all(datetime.fromisoformat(e["occurred_at"]) <= sent for e in batch)


def test_run_survives_a_failing_sink(flows: FlowBook) -> None:
    clock = noon_clock()
    feed = DemoFeed(flows, seed=5, history_h=2, tick_s=0.05, batch_size=50, clock=clock)
    sink = ListSink(clock, fail_every=2)
    run_briefly(feed, sink, 0.5)
    assert sink.calls >= 4 and len(sink.batches) >= 2


def test_bad_arguments_fail_early(flows: FlowBook) -> None:
    with pytest.raises(ValueError):
        DemoFeed(flows, seed=1, speed=0)
    with pytest.raises(ValueError):
        DemoFeed(flows, seed=1, start=datetime(2026, 1, 1))


def test_simulation_stays_out_of_the_app_stack() -> None:
    code = ("import sys, simulation.demo_feed; "
            "print(sorted(m for m in ('dash', 'plotly', 'redis', 'sqlalchemy', 'apscheduler') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
