"""Live mode: the simulator feeding the tower at a scaled wall-clock pace.

The run starts ``warmup_days`` before the real now and plays them as fast as it
can (so the screens are full within seconds), then advances ``speed`` simulated
hours per real minute, handing the events to a sink in batches. The tower's clock
(:class:`tower.clock.ScaledClock`) follows the simulated time, so nothing it
receives is "in the future". Pausing freezes both. The model keeps no per-order
records and no per-order ground truth, so memory stays flat over days.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from simulation.model import Model
from simulation.scenario import Scenario
from tower.clock import ScaledClock
from tower.flows import FlowBook

log = logging.getLogger(__name__)

Sink = Callable[[list[dict[str, Any]]], object]
LIVE_YEARS = 10  # the live horizon: long enough to never end in a demo


def shifted(scenario: Scenario, start: datetime) -> Scenario:
    """The scenario moved in time to ``start``, its peaks and disruptions with it."""
    delta = start - scenario.start
    peaks = tuple(p.model_copy(update={"start": p.start + delta, "end": p.end + delta})
                  for p in scenario.demand.peaks)
    disruptions = tuple(d.model_copy(update={"start": d.start + delta, "end": d.end + delta})
                        for d in scenario.disruptions)
    demand = scenario.demand.model_copy(update={"peaks": peaks})
    return scenario.model_copy(update={"start": start, "demand": demand, "disruptions": disruptions})


class LiveSimulation:
    """Runs a scenario against the wall clock and hands its events to ``sink``."""

    def __init__(self, scenario: Scenario, flows: FlowBook, *, seed: int, sink: Sink,
                 speed: float = 1.0, warmup_days: float = 2.0, batch: int = 2_000,
                 tick_s: float = 0.5, now: datetime | None = None) -> None:
        if speed <= 0 or warmup_days < 0 or batch < 1 or tick_s <= 0:
            raise ValueError("speed, batch and tick_s must be > 0 and warmup_days >= 0")
        real_now = (now or datetime.now(UTC)).replace(microsecond=0)
        self.start = real_now - timedelta(days=warmup_days)
        self.scenario = shifted(scenario, self.start)
        self.sink = sink
        self.batch = batch
        self.tick_s = tick_s
        self.warmup_h = warmup_days * 24
        self._buffer: list[dict[str, Any]] = []
        self.model = Model(self.scenario, flows, seed=seed, days=365 * LIVE_YEARS, warmup_days=0,
                           sink=self._buffer.append, records=False, ground_truth=False)
        #: The tower's clock: simulated "now"; runs speed x 60 times the wall clock.
        #: It stands at the real now during the warm-up, whose events are all older.
        self.clock = ScaledClock(real_now, rate=speed * 60)
        self.clock.pause()
        self.sent = 0
        self.warm = threading.Event()

    # --- control (the demo's pause/resume/speed endpoints) ----------------------------

    @property
    def speed(self) -> float:
        """Simulated hours per real minute."""
        return self.clock.rate / 60

    def set_speed(self, speed: float) -> None:
        if speed <= 0 or speed > 24 * 60:
            raise ValueError("speed must be in (0, 1440] simulated hours per real minute")
        self.clock.set_rate(speed * 60)

    def pause(self) -> None:
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()

    def status(self) -> dict[str, Any]:
        return {"scenario": self.scenario.name, "simulated_now": self.clock.now().isoformat(),
                "speed_sim_h_per_min": self.speed, "paused": self.clock.paused,
                "warm": self.warm.is_set(), "events_sent": self.sent,
                "sim_events": self.model.sim_events()}

    # --- running --------------------------------------------------------------------------

    def _hours(self, moment: datetime) -> float:
        return (moment - self.start).total_seconds() / 3600

    def _flush(self) -> None:
        while self._buffer:
            chunk, self._buffer[:] = self._buffer[: self.batch], self._buffer[self.batch:]
            try:
                self.sink(chunk)
                self.sent += len(chunk)
            except Exception:  # the demo must go on; the tower reports its own errors
                log.exception("live sink failed on %d events; dropped", len(chunk))

    def warm_up(self) -> None:
        """Play the warm-up days as fast as possible, then start the clock."""
        step = 6.0
        t = 0.0
        while t < self.warmup_h:
            t = min(t + step, self.warmup_h)
            self.model.run(until_h=t)
            self._flush()
        self.clock.resume()
        self.warm.set()

    def step(self) -> None:
        """Advance the model to the clock's now and send what happened."""
        self.model.run(until_h=self._hours(self.clock.now()))
        self._flush()

    def run(self, stop: threading.Event) -> None:
        """Warm up, then follow the clock until ``stop`` is set."""
        self.warm_up()
        while not stop.is_set():
            began = time.monotonic()
            self.step()
            stop.wait(max(0.0, self.tick_s - (time.monotonic() - began)))
