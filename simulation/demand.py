"""Order arrivals: a non-homogeneous Poisson process with daily, weekly and promotion shape.

The rate is piecewise constant: it can change only at a local hour boundary (the
hour-of-day and day-of-week weights, in the scenario zone) or at a promotion peak's
start or end. :func:`rate_segments` lists the pieces (merging equal neighbours, so a
flat demand is one piece). :func:`arrival_times` then draws a Poisson process in
each piece at its rate: thinning against a piecewise-constant majorant equal to the
rate itself, so every candidate is accepted and no draw is wasted, and at a piece's
end the clock restarts at the boundary (the exponential gap is memoryless). This is
exact for the piecewise-constant rate, however large a Double-11 peak is.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from simulation.calendar import hours_since
from simulation.scenario import Demand

Segment = tuple[float, float, float]  # (from_h, to_h, orders per hour)


def _normalised(weights: tuple[float, ...]) -> list[float]:
    mean = sum(weights) / len(weights)
    return [w / mean for w in weights]


def rate_segments(demand: Demand, zone: ZoneInfo, start: datetime, horizon_h: float) -> Iterator[Segment]:
    """Pieces of constant arrival rate covering ``[0, horizon_h)``, in order."""
    start = start.astimezone(UTC)  # absolute arithmetic below, whatever the start's zone
    hour_w = _normalised(demand.hour_of_day)
    day_w = _normalised(demand.day_of_week)
    base = demand.orders_per_day / 24.0
    peaks = [(hours_since(start, p.start), hours_since(start, p.end), p.multiplier) for p in demand.peaks]
    edges = sorted({t for a, b, _ in peaks for t in (a, b) if 0 < t < horizon_h})
    if len(set(hour_w)) == 1 and len(set(day_w)) == 1:  # flat: only the peaks change the rate
        yield from _flat_segments(base, peaks, [0.0, *edges, horizon_h])
        return
    end = start + timedelta(hours=horizon_h)
    moment, t = start, 0.0
    piece: Segment | None = None
    while moment < end:
        local = moment.astimezone(zone)
        next_hour = moment + timedelta(hours=1) - timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
        upto = min(next_hour, end)
        # the horizon exactly, though the datetime ``end`` is rounded to the microsecond
        t_next = horizon_h if upto == end else hours_since(start, upto)
        for edge in edges:
            if t < edge < t_next:
                t_next = edge
                upto = start + timedelta(hours=edge)
                break
        boost = max((m for a, b, m in peaks if a <= t < b), default=1.0)
        rate = base * hour_w[local.hour] * day_w[local.weekday()] * boost
        if piece is not None and piece[2] == rate:
            piece = (piece[0], t_next, rate)
        else:
            if piece is not None:
                yield piece
            piece = (t, t_next, rate)
        moment, t = upto, t_next
    if piece is not None:
        yield piece


def _flat_segments(base: float, peaks: list[tuple[float, float, float]],
                   cuts: list[float]) -> Iterator[Segment]:
    """Pieces of a demand without daily or weekly shape: cut only at the peaks' edges."""
    piece: Segment | None = None
    for t, t_next in itertools.pairwise(cuts):
        rate = base * max((m for a, b, m in peaks if a <= t < b), default=1.0)
        if piece is not None and piece[2] == rate:
            piece = (piece[0], t_next, rate)
            continue
        if piece is not None:
            yield piece
        piece = (t, t_next, rate)
    if piece is not None:
        yield piece


def arrival_times(segments: Iterator[Segment], unit_exponential: Callable[[], float]) -> Iterator[float]:
    """Arrival times (hours) of the Poisson process with the segments' rates."""
    t = 0.0
    for begin, end, rate in segments:
        t = max(t, begin)
        if rate <= 0:
            t = end
            continue
        while True:
            t += unit_exponential() / rate
            if t >= end:
                t = end  # memoryless: start afresh at the boundary with the next rate
                break
            yield t
