"""The tower's notion of "now": the wall clock, or a scaled clock in demo mode.

In the live demo the simulator runs faster than real time, so the ingest's future
check, late flags and rollup windows must follow the simulated clock.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """A clock that runs ``rate`` times faster than the wall clock, and can pause."""

    def __init__(self, start: datetime, *, rate: float = 1.0) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        self._lock = threading.Lock()
        self._anchor_wall = datetime.now(UTC)
        self._anchor = start.astimezone(UTC)
        self._rate = rate
        self._paused = False

    def now(self) -> datetime:
        with self._lock:
            return self._at(datetime.now(UTC))

    def _at(self, wall: datetime) -> datetime:
        rate = 0.0 if self._paused else self._rate
        return self._anchor + (wall - self._anchor_wall) * rate

    def _reanchor(self) -> None:
        wall = datetime.now(UTC)
        self._anchor = self._at(wall)
        self._anchor_wall = wall

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def paused(self) -> bool:
        return self._paused

    def set_rate(self, rate: float) -> None:
        if rate < 0:
            raise ValueError("rate must be >= 0")
        with self._lock:
            self._reanchor()
            self._rate = rate

    def pause(self) -> None:
        with self._lock:
            self._reanchor()
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._reanchor()
            self._paused = False

    def jump_to(self, moment: datetime) -> None:
        """Set the clock (after a fast warm-up) without changing rate or pause."""
        with self._lock:
            self._anchor_wall = datetime.now(UTC)
            self._anchor = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        with self._lock:
            self._anchor += delta
