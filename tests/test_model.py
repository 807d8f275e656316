"""The SimPy model: seeded, speaks the v1 contract, and behaves like the operation.

A small two-flow network built here (shifts, breaks, a day off, rework, QC gates,
stock with a backup warehouse, hubs, a lane, two carriers, every kind of
disruption) is simulated for a few days; its events must be accepted by the
tower's ingest and tell a consistent story per order. Queueing checks use simple
one-stage networks (M/M/3, Little's law); Hypothesis throws random small networks
at the model.
"""

from __future__ import annotations

import gc
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulation.calendar import working_windows
from simulation.demand import arrival_times, rate_segments
from simulation.distributions import Exponential
from simulation.emitter import Emitter
from simulation.model import Model, simulate
from simulation.order import Order
from simulation.records import RunResult
from simulation.scenario import Calendar, Interval, Scenario, load_scenario
from simulation.stats import figures_of
from simulation.streams import Streams
from tests.test_demo_feed import MemoryDirectory, MemoryPublisher
from tower.events import EventRecord, validate_event
from tower.flows import FlowBook
from tower.ingest import Ingestor
from tower.settings import DEFAULT_DATA_DIR

SCENARIOS = DEFAULT_DATA_DIR / "scenarios"
ERLANG_C_MM3 = 2.724
Events = list[dict[str, Any]]


# ---------------------------------------------------------------- a small network


def small_network(**changes: Any) -> Scenario:
    """Two flows of ``flows.toml`` on a five-hub network, every disruption switched on."""
    exp = {"kind": "exponential"}
    raw: dict[str, Any] = {
        "name": "small",
        "start": "2026-03-02T00:00:00+08:00",  # a Monday
        "timezone": "Asia/Shanghai",
        "horizon_days": 4,
        "warmup_days": 1,
        "calendars": {
            "office": {"shifts": [{"start": "08:00", "end": "20:00"}],
                       "breaks": [{"start": "12:00", "end": "13:00"}], "days_off": ["sun"]},
            "warehouse": {"shifts": [{"start": "06:00", "end": "14:00"}, {"start": "14:00", "end": "23:00"}],
                          "breaks": [{"start": "18:00", "end": "18:30"}]},
        },
        "stages": [
            {"flow": "ecommerce", "stage": "paid", "capacity": 4, "service": {**exp, "mean_h": 0.05}},
            {"flow": "ecommerce", "stage": "picking", "capacity": 6, "calendar": "warehouse", "picks": True,
             "service": {"kind": "lognormal", "mean_h": 0.3, "cv": 0.5}},
            {"flow": "ecommerce", "stage": "packing", "capacity": 4, "calendar": "warehouse",
             "rework_p": 0.05, "service": {"kind": "gamma", "mean_h": 0.2, "cv": 0.5}},
            {"flow": "ecommerce", "stage": "outbound", "capacity": 3, "calendar": "warehouse",
             "service": {"kind": "triangular", "min_h": 0.05, "mode_h": 0.1, "max_h": 0.3}},
            {"flow": "ecommerce", "stage": "transit", "transit": True},
            {"flow": "manufacturing", "stage": "order_review", "capacity": 8, "calendar": "office",
             "service": {**exp, "mean_h": 1}},
            {"flow": "manufacturing", "stage": "procurement", "capacity": 16, "calendar": "office",
             "service": {"kind": "empirical", "values_h": [1, 2, 4], "weights": [1, 2, 1]}},
            {"flow": "manufacturing", "stage": "scheduling", "capacity": 4, "calendar": "office",
             "service": {**exp, "mean_h": 0.5}},
            {"flow": "manufacturing", "stage": "production", "capacity": 30,
             "service": {"kind": "gamma", "mean_h": 12, "cv": 0.3}},
            {"flow": "manufacturing", "stage": "quality_check", "capacity": 8, "calendar": "office",
             "rework_p": 0.1, "service": {**exp, "mean_h": 1}},
            {"flow": "manufacturing", "stage": "shipping", "capacity": 4, "calendar": "office",
             "service": {**exp, "mean_h": 0.5}},
        ],
        "demand": {
            "orders_per_day": 300, "flow_mix": {"ecommerce": 0.85, "manufacturing": 0.15},
            "rush_share": 0.1, "custom_share": {"manufacturing": 0.3}, "cold_chain_share": 0.1,
            "cold_chain_flows": ["ecommerce"],
            "cancel_share": 0.03,
            "hour_of_day": [0.3] * 7 + [1.0] * 10 + [1.5] * 5 + [0.6] * 2,
            "peaks": [{"name": "flash", "start": "2026-03-04T10:00:00+08:00",
                       "end": "2026-03-04T12:00:00+08:00", "multiplier": 3}],
            "promise_h": {"ecommerce": 72, "manufacturing": 360},
            "qty_per_item": {"manufacturing": [5, 50]},
            "channels": {"ecommerce": ["tmall", "jd"]},
        },
        "warehouses": [
            {"id": "wh-shanghai", "city": "上海", "backup": "wh-wuhan", "stock_per_sku": 150,
             "reorder_point": 60, "restock_qty": 200},
            {"id": "wh-wuhan", "city": "武汉", "backup": "wh-shanghai", "stock_per_sku": 150,
             "reorder_point": 60, "restock_qty": 200},
        ],
        "hubs": [
            {"id": "hub-shanghai", "city": "上海", "lat": 31.23, "lon": 121.47, "capacity": 100},
            {"id": "hub-wuhan", "city": "武汉", "lat": 30.59, "lon": 114.31, "capacity": 60},
            {"id": "hub-beijing", "city": "北京", "lat": 39.90, "lon": 116.41},
            {"id": "hub-guangzhou", "city": "广州", "lat": 23.13, "lon": 113.26},
            {"id": "hub-zhengzhou", "city": "郑州", "lat": 34.75, "lon": 113.63},
        ],
        "lanes": [{"origin": "hub-shanghai", "destination": "hub-beijing",
                   "transit": {"kind": "lognormal", "mean_h": 14, "cv": 0.3}}],
        "carriers": [
            {"id": "sf", "share": 0.6, "loss_p": 0.01, "attempt_fail_p": 0.1},
            {"id": "zto", "share": 0.4, "tracking_delay": {**exp, "mean_h": 1.5}},
        ],
        "disruptions": [
            {"kind": "hub_outage", "hub": "hub-wuhan", "start": "2026-03-03T06:00:00+08:00",
             "end": "2026-03-03T18:00:00+08:00"},
            {"kind": "supplier_delay", "stage": "procurement", "start": "2026-03-03T00:00:00+08:00",
             "end": "2026-03-04T00:00:00+08:00", "extra": {**exp, "mean_h": 24}},
            {"kind": "stock_out", "warehouse": "wh-shanghai", "start": "2026-03-04T08:00:00+08:00",
             "end": "2026-03-04T14:00:00+08:00"},
            {"kind": "compressor_failure", "start": "2026-03-04T00:00:00+08:00",
             "end": "2026-03-04T06:00:00+08:00", "share": 0.5},
        ],
        "evidence": {"late_p": 0.1},
        "master_data": {"customers": 200, "skus": 60, "suppliers": 5},
    }
    raw.update(changes)
    return Scenario.model_validate(raw)


def one_stage(*, per_h: float, capacity: int, mean_h: float, rush_share: float = 0.0,
              days: float = 30, warmup_days: float = 2, calendar: dict[str, Any] | None = None) -> Scenario:
    """A single 24/7 (or calendared) stage with Poisson arrivals and exponential service."""
    stage: dict[str, Any] = {"flow": "q", "stage": "serve", "capacity": capacity,
                             "service": {"kind": "exponential", "mean_h": mean_h}}
    raw: dict[str, Any] = {
        "name": "queue", "start": "2026-01-05T00:00:00+00:00", "timezone": "UTC",
        "horizon_days": days, "warmup_days": warmup_days, "logistics": False,
        "flows": {"flows": [{"id": "q", "name": "Queue", "stages": [
            {"id": "serve", "name": "Serve", "owner": "servers", "budget_h": 4, "deliverable": "served"}]}]},
        "stages": [stage],
        "demand": {"orders_per_day": per_h * 24, "flow_mix": {"q": 1.0}, "rush_share": rush_share},
    }
    if calendar is not None:
        raw["calendars"] = {"cal": calendar}
        stage["calendar"] = "cal"
    return Scenario.model_validate(raw)


def one_stage_flows(scenario: Scenario) -> FlowBook:
    assert scenario.flows is not None
    return scenario.flows


def run_with_events(scenario: Scenario, flows: FlowBook, seed: int = 3,
                    **kw: Any) -> tuple[RunResult, Events]:
    events: Events = []
    return simulate(scenario, flows, seed=seed, sink=events.append, records=True, **kw), events


@pytest.fixture(scope="module")
def small() -> Scenario:
    return small_network()


@pytest.fixture(scope="module")
def small_run(small: Scenario, flows: FlowBook) -> tuple[RunResult, Events]:
    return run_with_events(small, flows)


@pytest.fixture(scope="module")
def small_events(small_run: tuple[RunResult, Events]) -> Events:
    return small_run[1]


@pytest.fixture(scope="module")
def by_order(small_events: Events) -> dict[str, list[EventRecord]]:
    orders: dict[str, list[EventRecord]] = defaultdict(list)
    for e in small_events:
        record = validate_event(e)
        if record.order_id is not None:
            orders[record.order_id].append(record)
    return orders  # in emission (= occurred_at) order


def ndjson(events: Events) -> bytes:
    return b"".join(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) + b"\n" for e in events)


def local(e: dict[str, Any] | EventRecord, scenario: Scenario) -> datetime:
    at = e.occurred_at if isinstance(e, EventRecord) else datetime.fromisoformat(e["occurred_at"])
    return at.astimezone(scenario.zone)


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_events_and_another_seed_differs(
    small: Scenario, flows: FlowBook, small_events: Events
) -> None:
    _, again = run_with_events(small, flows, seed=3)
    assert ndjson(again) == ndjson(small_events)
    _, other = run_with_events(small, flows, seed=4)
    assert ndjson(other) != ndjson(small_events)
    _, replication = run_with_events(small, flows, seed=3, replication=1)
    assert ndjson(replication) != ndjson(small_events)


def test_records_do_not_depend_on_the_sink(
    small: Scenario, flows: FlowBook, small_run: tuple[RunResult, Events]
) -> None:
    quiet = simulate(small, flows, seed=3, records=True)
    loud = small_run[0]
    assert quiet.tally == loud.tally
    assert quiet.visits == loud.visits
    assert quiet.orders == loud.orders
    assert quiet.resources == loud.resources
    assert quiet.ground_truth == loud.ground_truth
    assert quiet.event_counts == loud.event_counts == dict(Counter(e["type"] for e in small_run[1]))


def test_events_come_in_time_order_with_the_zone_offset_and_unique_sortable_ids(
    small_events: Events,
) -> None:
    stamps = [datetime.fromisoformat(e["occurred_at"]) for e in small_events]
    assert stamps == sorted(stamps)
    assert all(s.utcoffset() == timedelta(hours=8) for s in stamps)
    ids = [e["event_id"] for e in small_events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert ids[0] == "small-3-0-0000000001"


# ---------------------------------------------------------------- the contract


def ingest_all(events: Events, flows: FlowBook) -> list[EventRecord]:
    directory = MemoryDirectory()
    publisher = MemoryPublisher(directory)
    last = datetime.fromisoformat(events[-1]["occurred_at"])
    ingestor = Ingestor(flows=flows, directory=directory, bus=publisher, future_skew_s=600,
                        max_batch=1000, clock=lambda: last)
    for i in range(0, len(events), 1000):
        summary = ingestor.ingest(events[i:i + 1000])
        assert summary.rejected == [], summary.rejected[:3]
        assert summary.duplicates == 0 and summary.held == 0
    return publisher.published


def test_every_event_validates_and_the_ingest_accepts_them_all(
    small_events: Events, flows: FlowBook
) -> None:
    for e in small_events:
        validate_event(e)
    assert len(ingest_all(small_events, flows)) == len(small_events)


def test_every_kind_of_event_is_there(small_events: Events) -> None:
    kinds = Counter(e["type"] for e in small_events)
    assert set(kinds) == {"order.created", "stage.entered", "stage.started", "stage.completed",
                          "handoff.evidence", "tracking.assigned", "parcel.scanned", "sensor.reading",
                          "stock.level", "order.cancelled"}
    statuses = Counter(e["payload"]["status"] for e in small_events if e["type"] == "parcel.scanned")
    assert {"info_received", "arrived_hub", "departed_hub", "out_for_delivery", "attempt_fail",
            "delivered", "exception"} <= set(statuses)


def test_no_event_names_an_unknown_order_stage_or_hub(
    small: Scenario, flows: FlowBook, small_events: Events
) -> None:
    created: dict[str, str] = {}
    hubs = {h.id for h in small.hubs}
    warehouses = {w.id for w in small.warehouses}
    for e in small_events:
        p = e["payload"]
        if e["type"] == "order.created":
            created[e["order_id"]] = p["flow"]
        elif e["type"] == "stock.level":
            assert p["warehouse_id"] in warehouses
            continue
        assert e["order_id"] in created
        if "stage" in p:
            assert p["stage"] in flows.by_id[created[e["order_id"]]].stage_index
        if "hub_id" in p:
            assert p["hub_id"] in hubs
        if "site" in p:
            assert p["site"] in warehouses


# ---------------------------------------------------------------- the story of each order


def test_each_order_goes_through_its_flow_in_order(
    flows: FlowBook, by_order: dict[str, list[EventRecord]]
) -> None:
    delivered = 0
    for order_id, events in by_order.items():
        assert events[0].type == "order.created", order_id
        flow = flows.by_id[events[0].payload["flow"]]
        last = 0
        first: dict[tuple[str, str], datetime] = {}
        for e in events:
            if e.type.startswith("stage."):
                assert e.stage is not None
                index = flow.stage_index[e.stage]
                assert index >= last, (order_id, e.stage)
                last = index
                first.setdefault((e.stage, e.type), e.occurred_at)
        for stage in flow.stage_ids:
            entered, started, completed = (first.get((stage, t)) for t in
                                           ("stage.entered", "stage.started", "stage.completed"))
            if completed is not None:
                assert entered is not None and started is not None
                assert entered <= started <= completed
            if started is not None:
                assert entered is not None and entered <= started
        if any(e.type == "order.cancelled" for e in events):
            assert events[-1].type == "order.cancelled"
            assert not any(e.type == "tracking.assigned" for e in events)
        if any(e.type == "parcel.scanned" and e.payload["status"] == "delivered" for e in events):
            delivered += 1
            if flow.id == "ecommerce":
                assert (flow.stages[-1].id, "stage.completed") in first
    assert delivered > 50


def test_a_stage_is_entered_once_and_rework_restarts_the_work(
    flows: FlowBook, by_order: dict[str, list[EventRecord]], small_run: tuple[RunResult, Events]
) -> None:
    reworked = 0
    for events in by_order.values():
        entries = Counter(e.stage for e in events if e.type == "stage.entered")
        assert max(entries.values(), default=1) == 1
        starts = Counter(e.stage for e in events if e.type == "stage.started")
        redone = [e for e in events if e.type == "stage.started" and e.payload.get("rework")]
        reworked += len(redone)
        for stage, n in starts.items():
            assert n == 1 + sum(1 for e in redone if e.stage == stage)
    assert reworked > 5
    assert sum(v.rework for v in small_run[0].visits) > 5


def test_gated_stages_are_entered_only_after_their_evidence(
    flows: FlowBook, by_order: dict[str, list[EventRecord]], small_run: tuple[RunResult, Events]
) -> None:
    checked = held = 0
    for events in by_order.values():
        flow = flows.by_id[events[0].payload["flow"]]
        evidence = {(e.stage, e.payload["kind"]): e.occurred_at
                    for e in events if e.type == "handoff.evidence"}
        done = {e.stage: e.occurred_at for e in events if e.type == "stage.completed"}
        for e in events:
            if e.type == "stage.entered" and e.stage is not None:
                for gate in flow.stage(e.stage).gates:
                    uploaded = evidence[(gate.from_stage, gate.kind)]
                    assert uploaded <= e.occurred_at
                    checked += 1
                    held += uploaded > done[gate.from_stage]
    truth = [t for t in small_run[0].ground_truth if t.kind == "missing_evidence"]
    assert checked > 100 and held > 3 and truth


def test_no_work_starts_off_shift_on_a_break_or_on_a_day_off(
    small: Scenario, small_events: Events, small_run: tuple[RunResult, Events]
) -> None:
    calendar_of = {(s.flow, s.stage): s.calendar for s in small.stages}
    flow_of = {e["order_id"]: e["payload"]["flow"] for e in small_events if e["type"] == "order.created"}
    checked = 0
    for e in small_events:
        if e["type"] != "stage.started":
            continue
        name = calendar_of[(flow_of[e["order_id"]], e["payload"]["stage"])]
        if name is None:
            continue
        at = local(e, small)
        assert on_shift(small.calendars[name], at), (name, at)
        checked += 1
    assert checked > 1000
    sunday = [e for e in small_events if e["type"] == "stage.started" and local(e, small).weekday() == 6
              and calendar_of[(flow_of[e["order_id"]], e["payload"]["stage"])] == "office"]
    assert sunday == []
    # The office works 11 h a day but Sundays: Tuesday to Friday in the measured window.
    # A server that finishes its job after the shift end or into a break adds that
    # overtime (at most a few jobs of about an hour per server and day here).
    review = next(u for u in small_run[0].resources if u.stage == "order_review")
    assert 8 * 11 * 4 <= review.available_h < 8 * 11 * 4 * 1.25


def on_shift(calendar: Calendar, at: datetime) -> bool:
    """Is a local moment inside a shift, outside its breaks, on a working day (edges count)?"""
    def inside(iv: Interval, t: time) -> bool:
        if iv.end <= iv.start:
            return t >= iv.start or t <= iv.end
        return iv.start <= t <= iv.end

    def strictly_inside(iv: Interval, t: time) -> bool:
        return iv.start < t < iv.end

    t = at.time()
    if at.strftime("%a").lower() in calendar.days_off:
        return False
    working = any(inside(s, t) for s in calendar.shifts)
    return working and not any(strictly_inside(b, t) for b in calendar.breaks)


def test_the_calendar_windows_of_a_night_shift_with_a_break() -> None:
    cal = Calendar(shifts=(Interval(start=time(22), end=time(6)),),
                   breaks=(Interval(start=time(2), end=time(2, 30)),), days_off=("sat",))
    start = datetime.fromisoformat("2026-03-02T00:00:00+00:00")  # Monday
    windows = list(working_windows(cal, ZoneInfo("UTC"), start, 24 * 7))
    # Sunday night's shift runs into Monday; Friday night's is the last before Saturday off.
    assert windows[0] == (-2.0, 2.0)
    assert windows[1] == (2.5, 6.0)
    assert windows[2] == (22.0, 26.0)
    assert all(b > a for a, b in windows)
    assert (4 * 24 + 22.0, 4 * 24 + 26.0) in windows          # Friday night
    assert not any(5 * 24 + 12 < a < 6 * 24 + 12 for a, _ in windows)  # no Saturday shift


# ---------------------------------------------------------------- stock, parcels, ground truth


def test_a_stock_out_reroutes_to_the_backup_warehouse_and_says_so(
    small_events: Events, small_run: tuple[RunResult, Events]
) -> None:
    rerouted = [e for e in small_events if e["type"] == "stage.entered" and "rerouted_from" in e["payload"]]
    assert rerouted
    for e in rerouted[:20]:
        assert e["payload"]["site"] != e["payload"]["rerouted_from"]
        before = [s for s in small_events if s["type"] == "stock.level"
                  and s["payload"]["warehouse_id"] == e["payload"]["rerouted_from"]
                  and s["occurred_at"] == e["occurred_at"]]
        assert before and min(s["payload"]["on_hand"] for s in before) >= 0
    truth = [t for t in small_run[0].ground_truth if t.kind == "stock_out"]
    assert any(t.detail == "injected" and t.where == "wh-shanghai" for t in truth)
    assert any("rerouted to" in t.detail and t.order_id for t in truth)


def test_ground_truth_records_every_kind_of_disruption(small_run: tuple[RunResult, Events]) -> None:
    result = small_run[0]
    kinds = Counter(t.kind for t in result.ground_truth)
    assert {"hub_outage", "supplier_delay", "stock_out", "compressor_failure", "temperature_excursion",
            "missing_evidence", "tracking_delay", "lost_parcel"} <= set(kinds)
    outage = next(t for t in result.ground_truth if t.kind == "hub_outage")
    assert outage.where == "hub-wuhan" and outage.end_h - outage.start_h == pytest.approx(12)
    assert int(outage.detail.split(": ")[1]) > 0  # it held parcels
    status = {o.order_id: o.status for o in result.orders}
    for t in result.ground_truth:
        assert t.end_h >= result.warmup_h
        if t.kind == "lost_parcel" and t.order_id in status:
            assert status[t.order_id] == "lost"


def test_parcels_wait_out_a_hub_outage(small: Scenario, small_events: Events) -> None:
    start = small.disruptions[0].start
    end = small.disruptions[0].end
    for e in small_events:
        p = e["payload"]
        if e["type"] == "parcel.scanned" and p.get("hub_id") == "hub-wuhan" and p["status"] == "departed_hub":
            assert not start < datetime.fromisoformat(e["occurred_at"]) < end


def test_cold_chain_parcels_report_temperature_while_in_transit(
    small: Scenario, by_order: dict[str, list[EventRecord]]
) -> None:
    every = timedelta(minutes=small.sensors.interval_min)
    cold = [evs for evs in by_order.values() if "cold_chain" in evs[0].payload]
    assert cold and all(evs[0].payload["flow"] == "ecommerce" for evs in cold)
    for events in cold:
        readings = [e for e in events if e.type == "sensor.reading"]
        scans = [e for e in events if e.type == "parcel.scanned"]
        if not scans:
            continue
        assert readings and readings[0].occurred_at == scans[0].occurred_at  # from pick-up
        gaps = {b.occurred_at - a.occurred_at for a, b in itertools.pairwise(readings)}
        assert all(abs(g - every) < timedelta(milliseconds=2) for g in gaps)
        end = [s for s in scans if s.payload["status"] in ("delivered", "exception")]
        if end:
            assert readings[-1].occurred_at <= end[0].occurred_at


def test_lost_parcels_end_their_order_lost(by_order: dict[str, list[EventRecord]],
                                            small_run: tuple[RunResult, Events]) -> None:
    lost_orders = {o.order_id for o in small_run[0].orders if o.status == "lost"}
    for order_id in lost_orders:
        scans = [e for e in by_order[order_id] if e.type == "parcel.scanned"]
        assert scans[-1].payload["status"] == "exception"


# ---------------------------------------------------------------- records and conservation


def test_conservation_of_orders(small: Scenario, small_run: tuple[RunResult, Events]) -> None:
    result, events = small_run
    status = Counter(o.status for o in result.orders)
    assert sum(status.values()) == len(result.orders)
    assert set(status) <= {"delivered", "cancelled", "lost", "in_progress"}
    created_after_warmup = [e for e in events if e["type"] == "order.created"
                            and datetime.fromisoformat(e["occurred_at"]) >= small.start + timedelta(days=1)]
    assert len(created_after_warmup) == len(result.orders)
    assert status["delivered"] > 100 and status["cancelled"] > 0 and status["lost"] >= 0
    for o in result.orders:
        assert (o.done_h is None) == (o.status == "in_progress")
        assert o.created_h >= result.warmup_h


def test_warm_up_is_left_out_of_the_records(small_run: tuple[RunResult, Events]) -> None:
    result = small_run[0]
    assert result.warmup_h == 24 and result.horizon_h == 24 * 5
    assert min(v.arrived_h for v in result.visits) >= 24
    assert all(v.arrived_h <= v.started_h <= v.finished_h <= result.horizon_h for v in result.visits)
    for u in result.resources:
        assert u.window_h == pytest.approx(24 * 4)
        assert 0 <= u.busy_h <= u.capacity * u.window_h * (1 + 1e-9)
        assert 0 < u.available_h <= u.capacity * u.window_h * (1 + 1e-9)


def test_finished_orders_leave_nothing_behind(flows: FlowBook) -> None:
    """Memory stays flat: only orders in flight (and a few pending callbacks) are alive."""
    model = Model(small_network(horizon_days=12, disruptions=[]), flows, seed=1, records=False,
                  ground_truth=False)
    for day in (4, 8, 13):
        model.run(day * 24)
        gc.collect()
        alive = sum(1 for o in gc.get_objects() if type(o) is Order)
        assert len(model.open) <= alive <= len(model.open) + 30
        assert len(model.open) < 1000  # the network is stable: work in progress does not pile up
    assert model.order_no > 3000
    assert model.visits == [] and model.orders == [] and model.truth == []


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/St_Johns"])
def test_stamps_are_the_zone_local_time_to_the_millisecond_across_dst(zone: str) -> None:
    start = datetime.fromisoformat("2026-03-01T00:07:13.5+00:00")
    emitter = Emitter(run_tag="t", start=start, zone=ZoneInfo(zone), sink=None)
    rng = Streams(1, 0).generator("stamps")
    for h in sorted(rng.uniform(0, 24 * 400, 4_000).tolist()) + [24 * k + 0.9999999 for k in range(30)]:
        text = emitter.stamp(h)
        expected = (start + timedelta(hours=h)).astimezone(ZoneInfo(zone))
        got = datetime.fromisoformat(text)
        assert abs(got - expected) < timedelta(milliseconds=1.5) and got.utcoffset() == expected.utcoffset()
        assert len(text) == len("2026-03-01T00:07:13.500+00:00")


def test_sim_events_counts_what_simpy_processed(small: Scenario, flows: FlowBook) -> None:
    model = Model(small, flows, seed=3, days=1, warmup_days=0)
    steps = 0
    step = model.env.step

    def counting_step() -> None:
        nonlocal steps
        steps += 1
        step()

    model.env.step = counting_step  # type: ignore[method-assign]
    model.run()
    assert model.result().sim_events == steps


# ---------------------------------------------------------------- demand


def test_arrivals_follow_the_hour_of_day_shape_and_the_peak(small: Scenario) -> None:
    segments = list(rate_segments(small.demand, small.zone, small.start, 24 * 5))
    assert segments[0][0] == 0 and segments[-1][1] == 24 * 5
    assert all(a[1] == b[0] for a, b in itertools.pairwise(segments))
    # 300 a day, and the peak triples two hours of weight 1.0 (the weights' mean is 20.8 / 24)
    peak_rate = 300 / 24 * 1.0 / (20.8 / 24)
    assert sum((b - a) * r for a, b, r in segments) == pytest.approx(300 * 5 + 2 * 2 * peak_rate)
    unit = Streams(1, 0).draws("arrivals", Exponential(mean_h=1.0))
    times = list(arrival_times(iter(segments), unit))
    by_hour = Counter((small.start + timedelta(hours=t)).astimezone(small.zone).hour for t in times)
    night = sum(by_hour[h] for h in range(7)) / 7
    evening = sum(by_hour[h] for h in range(17, 22)) / 5
    assert 3.5 < evening / night < 6.5  # 1.5 / 0.3 = 5
    peak = [t for t in times if 2 * 24 + 10 <= t < 2 * 24 + 12]  # 10:00-12:00 on Wednesday
    same_hours_other_days = [t for t in times if any(d * 24 + 10 <= t < d * 24 + 12 for d in (0, 1, 3, 4))]
    assert 2.0 < len(peak) / (len(same_hours_other_days) / 4) < 4.2


def test_flat_demand_is_one_segment_and_a_poisson_count() -> None:
    sc = one_stage(per_h=2.7, capacity=3, mean_h=1.0, days=100)
    segments = list(rate_segments(sc.demand, sc.zone, sc.start, 24 * 100))
    assert segments == [(0.0, 2400.0, pytest.approx(2.7))]
    times = list(arrival_times(iter(segments), Streams(5, 0).draws("arrivals", Exponential(mean_h=1.0))))
    assert abs(len(times) - 6480) < 4 * math.sqrt(6480)  # Poisson(2.7 x 2400)


# ---------------------------------------------------------------- queueing behaviour


def test_rush_orders_wait_less_under_load() -> None:
    sc = one_stage(per_h=2.7, capacity=3, mean_h=1.0, rush_share=0.2, days=60)
    result = simulate(sc, one_stage_flows(sc), seed=11, records=True)
    rush = [v.wait_h for v in result.visits if v.rush]
    normal = [v.wait_h for v in result.visits if not v.rush]
    assert len(rush) > 500 and len(normal) > 2000
    assert sum(rush) / len(rush) < 0.5 * sum(normal) / len(normal)


def test_littles_law_holds_per_stage(flows: FlowBook) -> None:
    sc = small_network(disruptions=[], horizon_days=20, warmup_days=3,
                       demand={**small_network().demand.model_dump(mode="json"), "cancel_share": 0})
    result = simulate(sc, flows, seed=5, records=True)
    window = result.horizon_h - result.warmup_h
    by_stage: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for v in result.visits:
        by_stage[(v.flow, v.stage)].append(v)
    checked = 0
    for u in result.resources:
        visits = by_stage[(u.flow, u.stage)]
        if len(visits) < 300:
            continue
        lam = len(visits) / window
        in_stage = (u.queue_area_h + u.busy_h) / window
        mean_time = sum(v.finished_h - v.arrived_h for v in visits) / len(visits)
        assert in_stage == pytest.approx(lam * mean_time, rel=0.10), (u.flow, u.stage)
        checked += 1
    assert checked >= 5


@pytest.mark.slow
def test_mm3_mean_wait_is_near_erlang_c(flows: FlowBook) -> None:
    scenario, mm3_flows = load_scenario(SCENARIOS / "mm3.toml")
    visits, wait_sum = 0, 0.0
    for replication in range(4):
        result = simulate(scenario, mm3_flows, seed=1, replication=replication, days=700, warmup_days=10)
        stage = figures_of(result).stage("mm3", "service")
        assert stage.wait_mean_h is not None
        visits += stage.visits
        wait_sum += stage.wait_mean_h * stage.visits
        usage = result.resources[0]
        assert usage.utilization == pytest.approx(0.9, abs=0.03)
    assert visits > 150_000
    assert wait_sum / visits == pytest.approx(ERLANG_C_MM3, rel=0.15)


def test_a_variant_keeps_the_random_numbers_of_everything_it_did_not_change(flows: FlowBook) -> None:
    base = small_network(horizon_days=2)
    stages = [s.model_dump() for s in base.stages]
    stages[2]["capacity"] = 1  # packing short of staff
    variant = base.model_copy(update={"stages": Scenario.model_validate(
        {**base.model_dump(), "stages": stages}).stages})

    def created(scenario: Scenario) -> list[tuple[str, str, Any]]:
        _, events = run_with_events(scenario, flows, seed=9)
        return [(e["order_id"], e["occurred_at"], e["payload"])
                for e in events if e["type"] == "order.created"]

    assert created(variant) == created(base)


# ---------------------------------------------------------------- random networks


@st.composite
def networks(draw: st.DrawFn) -> Scenario:
    distributions = st.one_of(
        st.builds(lambda m: {"kind": "exponential", "mean_h": m}, st.floats(0.01, 3)),
        st.builds(lambda m, cv: {"kind": "lognormal", "mean_h": m, "cv": cv}, st.floats(0.01, 3),
                  st.floats(0.1, 2)),
        st.builds(lambda m, cv: {"kind": "gamma", "mean_h": m, "cv": cv}, st.floats(0.01, 3),
                  st.floats(0.2, 2)),
        st.builds(lambda a, b: {"kind": "triangular", "min_h": 0, "mode_h": a, "max_h": a + b},
                  st.floats(0, 2), st.floats(0.01, 2)),
        st.builds(lambda vs: {"kind": "empirical", "values_h": vs}, st.lists(st.floats(0, 3), min_size=1,
                                                                             max_size=4)),
    )
    base = small_network()
    stages = []
    for s in base.stages:
        raw = s.model_dump(exclude_defaults=True)
        if not s.transit:
            raw["capacity"] = draw(st.integers(1, 6))
            raw["service"] = draw(distributions)
            raw["rework_p"] = draw(st.sampled_from([0.0, 0.1, 0.5]))
            raw["calendar"] = draw(st.sampled_from([None, "office", "warehouse"]))
        stages.append(raw)
    share = st.floats(0, 1)
    demand = {**base.demand.model_dump(mode="json"),
              "orders_per_day": draw(st.floats(5, 400)),
              "flow_mix": {"ecommerce": draw(st.floats(0, 1)), "manufacturing": draw(st.floats(0.01, 1))},
              "rush_share": draw(share), "cold_chain_share": draw(share), "cancel_share": draw(share),
              "custom_share": {"manufacturing": draw(share)}}
    carriers = [{"id": "sf", "share": draw(st.floats(0.01, 1)), "loss_p": draw(st.floats(0, 0.5)),
                 "attempt_fail_p": draw(share)},
                {"id": "zto", "share": draw(st.floats(0, 1))}]
    warehouses = [{**w.model_dump(mode="json"), "stock_per_sku": draw(st.integers(0, 30)),
                   "reorder_point": draw(st.integers(0, 10)), "restock_qty": draw(st.integers(1, 30))}
                  for w in base.warehouses]
    return small_network(stages=stages, demand=demand, carriers=carriers, warehouses=warehouses,
                         horizon_days=draw(st.floats(0.5, 2)), warmup_days=draw(st.floats(0, 1)),
                         evidence={"late_p": draw(share)})


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks(), st.integers(0, 2**32 - 1))
def test_random_networks_run_and_conserve_orders(scenario: Scenario, seed: int) -> None:
    flows = small_network_flows()
    events: Events = []
    result = simulate(scenario, flows, seed=seed, sink=events.append, records=True)
    status = Counter(o.status for o in result.orders)
    warm = scenario.start + timedelta(hours=result.warmup_h)
    created = sum(1 for e in events
                  if e["type"] == "order.created" and datetime.fromisoformat(e["occurred_at"]) >= warm)
    assert created == sum(status.values()) == len(result.orders)
    # The streaming tallies conserve the orders and visits the records hold.
    assert result.tally is not None
    tallied = Counter[str]()
    for lead in result.tally.leads:
        tallied.update({"delivered": lead.delivered, "cancelled": lead.cancelled, "lost": lead.lost,
                        "in_progress": lead.in_progress})
    assert +tallied == +status
    assert sum(t.visits for t in result.tally.stages) == len(result.visits)
    ended = Counter(e["type"] for e in events)
    delivered_parcels = sum(1 for e in events if e["type"] == "parcel.scanned"
                            and e["payload"]["status"] == "delivered")
    assert delivered_parcels <= ended["order.created"]
    assert ended["order.cancelled"] <= ended["order.created"]
    for e in events[:2000]:
        validate_event(e)


def small_network_flows() -> FlowBook:
    from tower.flows import load_flows

    return load_flows(DEFAULT_DATA_DIR / "flows.toml")


# ---------------------------------------------------------------- shipped scenarios


def shipped() -> Iterator[Path]:
    for name in ("baseline-ecommerce", "manufacturing", "double-11"):
        yield SCENARIOS / f"{name}.toml"


@pytest.mark.parametrize("path", list(shipped()), ids=lambda p: p.stem)
def test_shipped_scenarios_feed_the_tower_cleanly(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} is not there yet")
    scenario, flows = load_scenario(path)
    result, events = run_with_events(scenario, flows, seed=1, days=1, warmup_days=0.5)
    assert events and result.orders
    assert len(ingest_all(events, flows)) == len(events)

