"""A stage's servers: a priority resource that keeps to a shift calendar and measures itself.

Rush orders are served first: the servers are a ``simpy.PriorityResource`` (lower
priority numbers first, first come first served within a priority). Its queue is
kept sorted by binary insertion instead of SimPy's sort-on-every-append, which
costs O(n log n) per arrival when hundreds of orders wait overnight.

Shifts. Off shift, on breaks, on days off and holidays no server may *start* work.
The calendar process takes servers away by requesting every one of them with a
priority ahead of any order (:class:`OffShift`): an idle server is taken at once, a busy
one as soon as it finishes its current job (work is not cut off mid-way, as on a
real floor), and no queued order can get in first. When the shift starts the
requests are released and the servers go straight to the waiting orders.

Measurement. The station keeps, over ``[warmup_h, now]``, the integrals of servers
busy with orders, of servers on shift (capacity minus servers held by the calendar,
so a server finishing a job after the shift end counts as available overtime) and
of orders waiting. Each is a sum of intervals (an order's wait, its work, a hold)
clipped to the window, added when the interval ends; :meth:`Station.usage` adds the
intervals still open. That is exact and costs no bookkeeping per state change.
"""

from __future__ import annotations

import bisect
import operator
from collections.abc import Generator, Iterator
from typing import Any

import simpy
from simpy.resources.resource import PriorityRequest, SortedQueue

from simulation.calendar import Window
from simulation.records import ResourceUsage

_key = operator.attrgetter("key")  # (priority, time requested, not preempt)


class _SortedQueue(SortedQueue):
    """SimPy's request queue, kept in key order by binary insertion (stable: FIFO on ties)."""

    def append(self, item: Any) -> None:
        bisect.insort_right(self, item, key=_key)


class OffShift(PriorityRequest):
    """A calendar's hold on one server while the stage is off shift."""


class Servers(simpy.PriorityResource):
    """The priority resource of one station."""

    PutQueue = _SortedQueue


class Station:
    """The servers of one stage (one ``[[stages]]`` entry) and their usage integrals."""

    def __init__(self, env: simpy.Environment, *, flow: str, stage: str, resource: str, capacity: int,
                 off_shift_priority: int, warmup_h: float) -> None:
        self.env = env
        self.flow = flow
        self.stage = stage
        self.resource = resource
        self.capacity = capacity
        self.off_shift_priority = off_shift_priority
        self.servers = Servers(env, capacity)
        self.warmup_h = warmup_h
        self.busy_area = 0.0
        self.queue_area = 0.0
        self.held_area = 0.0

    def _clipped(self, begin: float | None, end: float) -> float:
        """Length of ``[begin, end]`` inside the measured window (``begin`` None: from 0)."""
        warm = self.warmup_h
        if end <= warm:
            return 0.0
        return end - (begin if begin is not None and begin > warm else warm)

    def usage(self) -> ResourceUsage:
        """Usage over ``[warmup_h, now]``, open intervals included (call at the end of a run)."""
        now = self.env.now
        busy, queue, held = self.busy_area, self.queue_area, self.held_area
        for request in self.servers.users:
            if type(request) is OffShift:
                held += self._clipped(request.usage_since, now)
            else:
                started = request.usage_since
                assert started is not None
                queue += self._clipped(request.time, started)  # type: ignore[attr-defined]
                busy += self._clipped(started, now)
        for request in self.servers.queue:
            if type(request) is not OffShift:
                queue += self._clipped(request.time, now)
        window = max(now - self.warmup_h, 0.0)
        return ResourceUsage(
            resource=self.resource, flow=self.flow, stage=self.stage, capacity=self.capacity,
            busy_h=busy, available_h=self.capacity * window - held, queue_area_h=queue, window_h=window,
        )

    # --- orders -----------------------------------------------------------------------

    def request(self, priority: int) -> PriorityRequest:
        """Queue an order for a server (granted at once if one is free and on shift)."""
        return self.servers.request(priority)

    def release(self, request: PriorityRequest) -> None:
        """The order's work is done: free its server (and count its wait and its work).

        The same sums as :meth:`_clipped`, written out: this runs once per visit.
        """
        now, warm = self.env.now, self.warmup_h
        if now > warm:
            began, started = request.time, request.usage_since
            assert started is not None
            self.queue_area += started - (began if began > warm else warm) if started > warm else 0.0
            self.busy_area += now - (started if started > warm else warm)
        self.servers.release(request)

    def withdraw(self, request: PriorityRequest) -> None:
        """The order leaves (cancelled): give back its server or its place in the queue."""
        if request in self.servers.users:
            self.release(request)
        else:
            self.queue_area += self._clipped(request.time, self.env.now)
            request.cancel()

    # --- the calendar -------------------------------------------------------------------

    def _take_all(self) -> list[OffShift]:
        return [OffShift(self.servers, self.off_shift_priority, False) for _ in range(self.capacity)]

    def _give_back(self, holds: list[OffShift]) -> None:
        for hold in holds:
            if hold in self.servers.users:
                self.held_area += self._clipped(hold.usage_since, self.env.now)
                self.servers.release(hold)
            else:
                hold.cancel()

    def keep_shifts(self, windows: Iterator[Window]) -> Generator[simpy.Event, Any, None]:
        """Process: servers work only inside the calendar's windows."""
        env = self.env
        holds: list[OffShift] = []
        for on, off in windows:
            if on > env.now:
                if not holds:
                    holds = self._take_all()
                yield env.timeout(on - env.now)
            self._give_back(holds)
            yield env.timeout(off - env.now)
            holds = self._take_all()
        if not holds:
            self._take_all()  # no shift left in the run: off until the end
