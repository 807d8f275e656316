"""Live mode: the simulator feeding the tower on a scaled clock, and its controls."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from simulation.live import LiveSimulation, shifted
from simulation.scenario import load_scenario
from tests.test_demo_feed import MemoryDirectory, MemoryPublisher
from tower.clock import ScaledClock
from tower.ingest import Ingestor
from tower.settings import DEFAULT_DATA_DIR
from tower.web.demo_api import install_demo_api

BASELINE = DEFAULT_DATA_DIR / "scenarios" / "baseline-ecommerce.toml"


def test_scaled_clock_runs_pauses_and_changes_rate() -> None:
    t0 = datetime(2026, 11, 11, tzinfo=UTC)
    clock = ScaledClock(t0, rate=3600)  # an hour per second
    time.sleep(0.05)
    assert clock.now() - t0 >= timedelta(seconds=150)
    clock.pause()
    frozen = clock.now()
    time.sleep(0.05)
    assert clock.now() == frozen and clock.paused
    clock.resume()
    clock.set_rate(0)
    stopped = clock.now()
    time.sleep(0.02)
    assert clock.now() == stopped
    with pytest.raises(ValueError):
        clock.set_rate(-1)


def test_shifted_moves_peaks_and_disruptions_with_the_start() -> None:
    plan, _ = load_scenario(BASELINE)
    moved = shifted(plan, plan.start + timedelta(days=100))
    assert moved.start - plan.start == timedelta(days=100)
    for before, after in zip(plan.disruptions, moved.disruptions, strict=True):
        assert after.start - before.start == timedelta(days=100)
    for before_p, after_p in zip(plan.demand.peaks, moved.demand.peaks, strict=True):
        assert after_p.end - before_p.end == timedelta(days=100)


def test_warm_up_feeds_the_ingest_without_a_single_rejection() -> None:
    plan, flows = load_scenario(BASELINE)
    batches: list[list[dict[str, Any]]] = []
    live = LiveSimulation(plan, flows, seed=3, sink=batches.append, warmup_days=0.5, batch=500)
    directory = MemoryDirectory()
    ingestor = Ingestor(flows=flows, directory=directory, bus=MemoryPublisher(directory),
                        future_skew_s=600, max_batch=5_000, clock=live.clock.now)
    live.warm_up()
    assert live.warm.is_set() and not live.clock.paused
    assert batches and all(len(b) <= 500 for b in batches)
    for batch in batches:
        assert ingestor.ingest(batch).rejected == []
    newest = max(e["occurred_at"] for b in batches for e in b)
    assert datetime.fromisoformat(newest) <= live.clock.now()
    types = {e["type"] for b in batches for e in b}
    assert {"order.created", "stage.started", "stage.completed"} <= types


def test_run_follows_the_clock_pauses_and_stops() -> None:
    plan, flows = load_scenario(BASELINE)
    sent: list[dict[str, Any]] = []
    live = LiveSimulation(plan, flows, seed=3, sink=sent.extend, warmup_days=0.1, speed=120,
                          tick_s=0.05)
    stop = threading.Event()
    runner = threading.Thread(target=live.run, args=(stop,))
    runner.start()
    assert live.warm.wait(30)
    time.sleep(0.5)  # 120 simulated hours per minute: one simulated hour per 0.5 s
    live.pause()
    time.sleep(0.2)
    count = len(sent)
    time.sleep(0.3)
    assert len(sent) == count  # paused: nothing new
    status = live.status()
    assert status["paused"] and status["events_sent"] == count
    live.resume()
    live.set_speed(1.0)
    assert live.speed == pytest.approx(1.0)
    began = time.monotonic()
    stop.set()
    runner.join(5)
    assert not runner.is_alive() and time.monotonic() - began < 2
    assert all(datetime.fromisoformat(e["occurred_at"]) <= live.clock.now() for e in sent)


def test_a_failing_sink_does_not_stop_the_feed() -> None:
    plan, flows = load_scenario(BASELINE)

    def broken(_: list[dict[str, Any]]) -> None:
        raise RuntimeError("tower down")

    live = LiveSimulation(plan, flows, seed=3, sink=broken, warmup_days=0.05)
    live.warm_up()
    assert live.warm.is_set() and live.sent == 0


class FakeLive:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {"paused": False, "speed": 1.0}

    def status(self) -> dict[str, Any]:
        return dict(self.state)

    def pause(self) -> None:
        self.state["paused"] = True

    def resume(self) -> None:
        self.state["paused"] = False

    def set_speed(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("must be > 0")
        self.state["speed"] = speed


@pytest.mark.parametrize("token", [None, "s3"])
def test_demo_controls(token: str | None) -> None:
    server = Flask(__name__)
    live = FakeLive()
    install_demo_api(server, live, token=token)
    client = server.test_client()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if token:
        assert client.post("/api/v1/demo/pause").status_code == 401
    assert client.post("/api/v1/demo/pause", headers=headers).get_json()["paused"] is True
    assert client.get("/api/v1/demo").get_json()["paused"] is True
    assert client.post("/api/v1/demo/resume", headers=headers).get_json()["paused"] is False
    assert client.post("/api/v1/demo/speed?value=4", headers=headers).get_json()["speed"] == 4
    assert client.post("/api/v1/demo/speed?value=-1", headers=headers).status_code == 400
    assert client.post("/api/v1/demo/speed?value=x", headers=headers).status_code == 400
    assert client.post("/api/v1/demo/explode", headers=headers).status_code == 404


def test_demo_scenario_path_exists() -> None:
    assert Path(BASELINE).exists()
