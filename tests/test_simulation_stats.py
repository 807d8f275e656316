"""Statistics of simulation runs, and the simulator validated against queueing theory.

Exact figures on hand-made records; the Erlang C formula and Student-t intervals; the
replication runner with a tiny stand-in M/M/c (same figures whatever the pool size);
the real model on ``mm3.toml`` (Erlang C over two million customers, Little's law);
the ``tower simulate`` and ``tower scenario`` commands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import simpy

from simulation.records import GroundTruth, OrderOutcome, ResourceUsage, RunResult, StageVisit
from simulation.report import NdjsonEvents, build_report
from simulation.scenario import Scenario, load_scenario
from simulation.stats import (
    RunProgress,
    confidence_interval,
    erlang_c_wait,
    event_count_estimates,
    figures_of,
    lead_time_estimates,
    little_gap,
    littles_law,
    run_replications,
    stage_estimates,
)
from tower.flows import FlowBook
from tower.settings import DEFAULT_DATA_DIR

MM3 = DEFAULT_DATA_DIR / "scenarios" / "mm3.toml"
TOWER = str(Path(sys.executable).parent / "tower")
ERLANG_C_MM3 = 2.724  # h, the figure for lambda 2.7, mu 1, c 3


# ---------------------------------------------------------------- hand-made records


def _visit(arrived: float, started: float, finished: float, *, rework: bool = False) -> StageVisit:
    return StageVisit(order_id=f"o{arrived:g}", flow="f", stage="pick", resource="pickers", rush=False,
                      arrived_h=arrived, started_h=started, finished_h=finished, rework=rework)


def _order(oid: str, created: float, promised: float, done: float | None, status: str,
           flow: str = "f") -> OrderOutcome:
    return OrderOutcome(order_id=oid, flow=flow, rush=False, custom=False, created_h=created,
                        promised_h=promised, done_h=done, status=status)


@pytest.fixture
def run() -> RunResult:
    """Two days, no warm-up: four visits of one stage (waits 1, 0, 3, 4 h; work 2, 1, 3,
    1 h) on two servers, six orders of two flows."""
    return RunResult(
        scenario="hand", seed=5, replication=0, horizon_h=48.0, warmup_h=0.0,
        visits=[_visit(0, 1, 3), _visit(2, 2, 3), _visit(4, 7, 10), _visit(5, 9, 10, rework=True)],
        orders=[
            _order("o1", 0, 24, 20, "delivered"),      # 20 h, on time
            _order("o2", 1, 25, 31, "delivered"),      # 30 h, late
            _order("o3", 2, 26, 12, "delivered"),      # 10 h, on time
            _order("o4", 3, 27, None, "in_progress"),
            _order("o5", 4, 28, 5, "cancelled"),
            _order("o6", 5, 10, 9, "delivered", flow="g"),  # 4 h, on time
        ],
        resources=[ResourceUsage(resource="pickers", flow="f", stage="pick", capacity=2, busy_h=7.0,
                                 available_h=96.0, queue_area_h=8.0, window_h=48.0)],
        ground_truth=[GroundTruth(kind="hub_outage", where="hub-sh", start_h=24.0, end_h=30.0)],
        event_counts={"stage.entered": 4, "order.created": 6},
        sim_events=123,
    )


def test_stage_figures_exact(run: RunResult) -> None:
    (stage,) = figures_of(run).stages
    assert (stage.flow, stage.stage, stage.resource, stage.visits) == ("f", "pick", "pickers", 4)
    assert stage.wait_mean_h == 2.0
    assert stage.wait_p90_h == pytest.approx(3.7)  # linear between 3 and 4
    assert stage.work_mean_h == 1.75
    assert stage.utilization == pytest.approx(7 / 96)
    assert stage.throughput_per_day == 2.0
    assert stage.queue_len_mean == pytest.approx(8 / 48)
    assert stage.arrivals_per_h == pytest.approx(4 / 48)
    assert little_gap(stage) == pytest.approx(0.0)


def test_lead_times_and_on_time_share_exact(run: RunResult) -> None:
    figures = figures_of(run)
    everything, f, g = figures.lead_times
    assert everything.flow == "all" and (f.flow, g.flow) == ("f", "g")
    assert (everything.created, everything.delivered, everything.cancelled, everything.lost,
            everything.in_progress) == (6, 4, 1, 0, 1)
    assert everything.lead_time_mean_h == 16.0
    assert (everything.lead_time_p50_h, everything.lead_time_p90_h,
            everything.lead_time_p95_h) == pytest.approx((15.0, 27.0, 28.5))
    assert everything.on_time_share == 0.75
    assert f.lead_time_mean_h == 20.0 and f.lead_time_p90_h == pytest.approx(28.0)
    assert f.on_time_share == pytest.approx(2 / 3)
    assert g.lead_time_mean_h == 4.0 and g.on_time_share == 1.0
    assert figures.event_counts == {"order.created": 6, "stage.entered": 4}
    assert figures.lead_time("g") is g and figures.stage("f", "pick") is figures.stages[0]


def test_extra_warmup_drops_early_records(run: RunResult) -> None:
    figures = figures_of(run, warmup_h=3.0)
    (stage,) = figures.stages
    assert figures.warmup_h == 3.0 and figures.window_h == 45.0
    assert stage.visits == 2 and stage.wait_mean_h == 3.5
    assert stage.throughput_per_day == pytest.approx(2 / (45 / 24))
    assert figures.lead_time().created == 3
    assert figures_of(run, warmup_h=-1.0).warmup_h == 0.0  # never less than the model's own


def test_empty_stage_and_flow_give_none() -> None:
    empty = RunResult(scenario="e", seed=1, replication=0, horizon_h=24.0, warmup_h=0.0,
                      resources=[ResourceUsage("r", "f", "s", 1, 0.0, 24.0, 0.0, 24.0)])
    figures = figures_of(empty)
    (stage,) = figures.stages
    assert stage.visits == 0 and stage.wait_mean_h is None and stage.wait_p90_h is None
    assert stage.utilization == 0.0 and stage.throughput_per_day == 0.0
    assert figures.lead_time().created == 0 and figures.lead_time().lead_time_mean_h is None


# ---------------------------------------------------------------- formulas and intervals


def test_erlang_c_matches_the_mm3_figure() -> None:
    assert erlang_c_wait(2.7, 1, 3) == pytest.approx(ERLANG_C_MM3, abs=0.001)
    assert erlang_c_wait(0.5, 1, 1) == pytest.approx(1.0)  # M/M/1: rho / (mu - lam)
    assert erlang_c_wait(450, 1, 500) < 0.01  # large c stays finite
    with pytest.raises(ValueError):
        erlang_c_wait(3, 1, 3)


def test_littles_law() -> None:
    assert littles_law(2.7, ERLANG_C_MM3) == pytest.approx(7.3548)


def test_confidence_interval_exact() -> None:
    est = confidence_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert est is not None
    # t(0.975, 4) = 2.776445, s / sqrt(n) = 0.707107
    assert est.mean == 3.0 and est.half_width == pytest.approx(1.963243, abs=1e-6)
    assert est.ci_low == pytest.approx(3 - 1.963243, abs=1e-6) and est.n == 5
    single = confidence_interval([4.0, None])
    assert single is not None and single.half_width is None and single.n == 1
    assert confidence_interval([None, None]) is None
    same = confidence_interval([2.0, 2.0, 2.0])
    assert same is not None and same.half_width == 0.0 and same.contains(2.0)


def test_confidence_intervals_cover_about_95_percent() -> None:
    rng = np.random.default_rng(2024)
    trials, covered = 4000, 0
    for _ in range(trials):
        est = confidence_interval(rng.normal(10.0, 3.0, size=8).tolist())
        assert est is not None
        covered += est.contains(10.0)
    assert 0.94 <= covered / trials <= 0.96  # binomial sd at 95 %: 0.34 %


def test_estimates_across_replications(run: RunResult) -> None:
    other = RunResult(scenario="hand", seed=5, replication=1, horizon_h=48.0, warmup_h=0.0,
                      visits=[_visit(0, 4, 5)],
                      resources=[ResourceUsage("pickers", "f", "pick", 2, 1.0, 96.0, 4.0, 48.0)],
                      event_counts={"order.created": 2})
    runs = [figures_of(run), figures_of(other)]
    waits = stage_estimates(runs)[("f", "pick")]["wait_mean_h"]
    assert waits is not None and waits.mean == 3.0 and waits.n == 2
    # t(0.975, 1) = 12.7062; s = sqrt(2), s / sqrt(2) = 1
    assert waits.half_width == pytest.approx(12.7062, abs=1e-4)
    lead = lead_time_estimates(runs)
    assert list(lead) == ["all", "f", "g"]
    lead_mean = lead["all"]["lead_time_mean_h"]
    assert lead_mean is not None and lead_mean.n == 1  # the second run delivered nothing
    counts = event_count_estimates(runs)
    assert counts["order.created"].mean == 4.0 and counts["stage.entered"].mean == 2.0


def test_report_one_and_many_replications(run: RunResult) -> None:
    scenario, _ = load_scenario(MM3)
    one = build_report(scenario, [figures_of(run)])
    assert one["replications"] == 1 and one["days"] == 2.0 and one["warmup_days"] == 0.0
    assert one["stages"][0]["wait_mean_h"] == 2.0 and one["on_time_share"] == 0.75
    assert one["lead_times"][0]["lead_time_h"] == pytest.approx(
        {"mean": 16.0, "p50": 15.0, "p90": 27.0, "p95": 28.5})
    assert one["orders"]["created"] == 6 and one["events_by_type"]["stage.entered"] == 4
    (truth,) = one["ground_truth"]
    assert truth["kind"] == "hub_outage" and truth["start"] == "2026-01-06T00:00:00+00:00"
    many = build_report(scenario, [figures_of(run), figures_of(run)])
    wait = many["stages"][0]["wait_mean_h"]
    assert wait == {"mean": 2.0, "ci_low": 2.0, "ci_high": 2.0, "half_width": 0.0}
    assert set(many["on_time_share"]) == {"mean", "ci_low", "ci_high", "half_width"}
    assert len(many["ground_truth"]) == 2
    json.dumps(many, allow_nan=False)


def test_ndjson_events_sorted_keys_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "e.ndjson"
    with path.open("wb") as fh:
        sink = NdjsonEvents(fh)
        sink({"type": "b", "event_id": "1", "payload": {"z": 1, "a": 2}})
        sink({"event_id": "2", "type": "a"})
    assert sink.count == 2
    assert path.read_bytes() == (b'{"event_id":"1","payload":{"a":2,"z":1},"type":"b"}\n'
                                 b'{"event_id":"2","type":"a"}\n')


# ---------------------------------------------------------------- replications (stand-in model)


def mmc_standin(scenario: Scenario, flows: FlowBook, *, seed: int, replication: int = 0,
                days: float | None = None, warmup_days: float | None = None,
                sink: Any = None) -> RunResult:
    """A bare M/M/c on the scenario's first stage, with the model's seeding and records."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, replication]))
    model = scenario.stages[0]
    lam = scenario.demand.orders_per_day / 24
    warmup = (warmup_days if warmup_days is not None else scenario.warmup_days) * 24
    horizon = warmup + (days if days is not None else scenario.horizon_days) * 24
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=model.capacity)
    visits: list[StageVisit] = []
    area = {"busy": 0.0, "queue": 0.0, "last": warmup}

    def mark() -> None:
        if env.now > area["last"]:
            dt = env.now - area["last"]
            area["busy"] += servers.count * dt
            area["queue"] += len(servers.queue) * dt
            area["last"] = env.now

    def customer(n: int) -> Any:
        arrived = env.now
        mark()
        with servers.request() as req:
            yield req
            mark()
            started = env.now
            yield env.timeout(model.service.sample(rng))
            mark()
        if arrived >= warmup:
            visits.append(StageVisit(f"c{n}", model.flow, model.stage, model.stage, False,
                                     arrived, started, env.now))
            if sink is not None:
                sink({"type": "stage.completed", "order_id": f"c{n}", "at": env.now})

    def arrivals() -> Any:
        n = 0
        while True:
            yield env.timeout(rng.exponential(1 / lam))
            n += 1
            env.process(customer(n))

    env.process(arrivals())
    env.run(until=horizon)
    mark()
    usage = ResourceUsage(model.stage, model.flow, model.stage, model.capacity, area["busy"],
                          model.capacity * (horizon - warmup), area["queue"], horizon - warmup)
    return RunResult(scenario=scenario.name, seed=seed, replication=replication, horizon_h=horizon,
                     warmup_h=warmup, visits=visits, resources=[usage],
                     event_counts={"stage.completed": len(visits)})


@pytest.fixture(scope="module")
def mm3() -> tuple[Scenario, FlowBook]:
    return load_scenario(MM3)


def test_replications_do_not_depend_on_the_pool(mm3: tuple[Scenario, FlowBook]) -> None:
    scenario, flows = mm3
    seen: list[RunProgress] = []
    events: list[dict[str, Any]] = []
    one = run_replications(scenario, flows, seed=3, replications=4, days=20, warmup_days=2,
                           model=mmc_standin, progress=seen.append)
    two = run_replications(scenario, flows, seed=3, replications=4, days=20, warmup_days=2,
                           processes=2, model=mmc_standin, sink=events.append)
    assert one == two
    assert [r.replication for r in one] == [0, 1, 2, 3]
    assert len({r.stage("mm3", "service").wait_mean_h for r in one}) == 4  # independent streams
    assert [(p.replications_done, p.done_h) for p in seen] == [(1, 528.0), (2, 1056.0), (3, 1584.0),
                                                               (4, 2112.0)]
    assert {(p.replications, p.total_h) for p in seen} == {(4, 2112.0)}
    assert len(events) == one[0].stage("mm3", "service").visits  # replication 0 only
    assert one[0].warmup_h == 48.0 and one[0].horizon_h == 528.0


def test_standin_agrees_with_erlang_c(mm3: tuple[Scenario, FlowBook]) -> None:
    """The statistics pipeline itself, on a bare M/M/3 (24 x 10,600 customers): the
    interval holds Erlang C's value and L_q = lambda W_q."""
    scenario, flows = mm3
    runs = run_replications(scenario, flows, seed=11, replications=24, days=164, warmup_days=10,
                            processes=2, model=mmc_standin)
    est = stage_estimates(runs)[("mm3", "service")]
    wait, queue = est["wait_mean_h"], est["queue_len_mean"]
    assert wait is not None and queue is not None
    assert wait.contains(erlang_c_wait(2.7, 1, 3)) and abs(wait.mean / ERLANG_C_MM3 - 1) < 0.1
    assert queue.mean == pytest.approx(littles_law(2.7, wait.mean), rel=0.02)


# ---------------------------------------------------------------- the real model on mm3.toml


def test_model_replications_do_not_depend_on_the_pool(mm3: tuple[Scenario, FlowBook]) -> None:
    scenario, flows = mm3
    seen: list[RunProgress] = []
    events: list[dict[str, Any]] = []
    one = run_replications(scenario, flows, seed=9, replications=3, days=20, warmup_days=2,
                           progress=seen.append)
    two = run_replications(scenario, flows, seed=9, replications=3, days=20, warmup_days=2,
                           processes=2, sink=events.append)
    assert one == two and len({r.sim_events for r in one}) == 3
    assert [p.done_h for p in seen[:3]] == [24.0, 48.0, 72.0]  # a simulated day at a time
    assert seen[-1] == RunProgress(3 * 528.0, 3 * 528.0, 3, 3)
    assert sum(one[0].event_counts.values()) == len(events)


@pytest.mark.slow
def test_mm3_mean_wait_matches_erlang_c(mm3: tuple[Scenario, FlowBook]) -> None:
    """20 replications x 110,000 customers (1,698 days each after 10 of warm-up), on two
    processes: the grand mean wait in queue within 3 % of Erlang C, its interval
    containing it, and Little's law L_q = lambda W_q within 2 %."""
    scenario, flows = mm3
    started = time.perf_counter()
    runs = run_replications(scenario, flows, seed=2026, replications=20, days=1698, warmup_days=10,
                            processes=2)
    elapsed = time.perf_counter() - started
    customers = sum(r.stage("mm3", "service").visits for r in runs)
    est = stage_estimates(runs)[("mm3", "service")]
    wait = est["wait_mean_h"]
    assert wait is not None and wait.half_width is not None
    print(f"\nM/M/3: {customers:,} customers in {elapsed:.0f} s; W_q = {wait.mean:.4f} h "
          f"[{wait.ci_low:.4f}, {wait.ci_high:.4f}] vs Erlang C {erlang_c_wait(2.7, 1, 3):.4f} h")
    assert customers >= 2_000_000
    assert abs(wait.mean / erlang_c_wait(2.7, 1, 3) - 1) < 0.03
    assert wait.contains(erlang_c_wait(2.7, 1, 3))
    for r in runs:
        gap = little_gap(r.stage("mm3", "service"))
        assert gap is not None and abs(gap) < 0.02


def test_mm3_littles_law_and_utilization(mm3: tuple[Scenario, FlowBook]) -> None:
    """One replication of 200 days: L_q = lambda W_q within 2 % and utilisation near 0.9."""
    scenario, flows = mm3
    (run,) = run_replications(scenario, flows, seed=7, replications=1, days=200, warmup_days=10)
    stage = run.stage("mm3", "service")
    gap = little_gap(stage)
    assert gap is not None and abs(gap) < 0.02
    assert stage.arrivals_per_h == pytest.approx(2.7, rel=0.03)
    assert stage.utilization == pytest.approx(0.9, abs=0.03)
    assert stage.work_mean_h == pytest.approx(1.0, rel=0.03)


# ---------------------------------------------------------------- the commands


def tower(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([TOWER, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_simulate_writes_events_and_report_deterministically(tmp_path: Path) -> None:
    outs = []
    for name in ("a", "b"):
        events, report = tmp_path / f"{name}.ndjson", tmp_path / f"{name}.json"
        result = tower("simulate", "--scenario", str(MM3), "--days", "5", "--seed", "4",
                       "--warmup-days", "1", "--events", str(events), "--json", str(report))
        assert result.returncode == 0, result.stderr
        assert "service" in result.stdout and "wait" in result.stdout
        outs.append((events.read_bytes(), json.loads(report.read_text())))
    (events_a, report_a), (events_b, report_b) = outs
    assert events_a == events_b and report_a == report_b
    lines = events_a.splitlines()
    assert lines and all(orjson.loads(line)["type"] for line in lines)
    assert report_a["scenario"] == "mm3" and report_a["seed"] == 4 and report_a["days"] == 5
    assert report_a["warmup_days"] == 1 and report_a["replications"] == 1
    (stage,) = report_a["stages"]
    assert stage["stage"] == "service" and stage["visits"] > 200
    assert sum(report_a["events_by_type"].values()) == len(lines)


def test_simulate_replications_report_intervals(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    result = tower("simulate", "--scenario", str(MM3), "--days", "10", "--seed", "1",
                   "--replications", "3", "--processes", "2", "--json", str(report))
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert data["replications"] == 3
    wait = data["stages"][0]["wait_mean_h"]
    assert set(wait) == {"mean", "ci_low", "ci_high", "half_width"}
    assert wait["ci_low"] <= wait["mean"] <= wait["ci_high"]
    assert "±" in result.stdout


def test_simulate_bad_scenario_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(MM3.read_text().replace("capacity = 3", "capacity = 0"), encoding="utf-8")
    result = tower("simulate", "--scenario", str(bad), "--days", "1")
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "bad.toml" in lines[0] and "stages.0.capacity" in lines[0]


def test_scenario_check_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "broken.toml"
    bad.write_text(MM3.read_text().replace('timezone = "UTC"', 'timezone = "Nowhere/Land"'),
                   encoding="utf-8")
    result = tower("scenario", "check", str(bad))
    assert result.returncode == 2
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "broken.toml" in lines[0] and "timezone" in lines[0]
    ok = tower("scenario", "check", str(MM3))
    assert ok.returncode == 0 and "OK" in ok.stdout


def test_scenario_schema_is_json_schema() -> None:
    result = tower("scenario", "schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["title"] == "Scenario" and "stages" in schema["properties"]
