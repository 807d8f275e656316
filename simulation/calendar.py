"""Shift calendars as working windows on the simulation clock.

A :class:`~simulation.scenario.Calendar` says, in local time of the scenario zone,
when a resource works: daily shifts (one whose end is before its start runs past
midnight and belongs to the day it starts; 00:00-00:00 is the whole day), breaks
inside them, weekdays off and holidays. :func:`working_windows` turns it into the
merged ``[on, off)`` intervals in simulated hours since the scenario start, lazily,
so a ten-year run does not build ten years of windows up front.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from simulation.scenario import WEEKDAYS, Calendar, Interval

Window = tuple[float, float]


def hours_since(start: datetime, moment: datetime) -> float:
    """Simulated hours from ``start`` to ``moment`` (both aware)."""
    return (moment - start).total_seconds() / 3600.0


def _span(day: date, interval: Interval, zone: ZoneInfo) -> Span:
    """An interval on a given local day as aware datetimes (end on the next day if it wraps)."""
    begin = datetime.combine(day, interval.start, tzinfo=zone)
    end_day = day + timedelta(days=1) if interval.end <= interval.start else day
    return begin, datetime.combine(end_day, interval.end, tzinfo=zone)


Span = tuple[datetime, datetime]


def _minus(spans: list[Span], cut: Span) -> list[Span]:
    out = []
    for a, b in spans:
        if cut[1] <= a or cut[0] >= b:
            out.append((a, b))
            continue
        if a < cut[0]:
            out.append((a, cut[0]))
        if cut[1] < b:
            out.append((cut[1], b))
    return out


def day_spans(calendar: Calendar, day: date, zone: ZoneInfo) -> list[Span]:
    """The working spans of the shifts that start on local ``day``, breaks removed.

    A break belongs to a shift when it falls inside it; breaks are tried on the
    shift's day and the next (for a night shift's break after midnight).
    """
    if WEEKDAYS[day.weekday()] in calendar.days_off or day in calendar.holidays:
        return []
    spans: list[Span] = []
    for shift in calendar.shifts:
        pieces = [_span(day, shift, zone)]
        for brk in calendar.breaks:
            for d in (day, day + timedelta(days=1)):
                pieces = _minus(pieces, _span(d, brk, zone))
        spans.extend(p for p in pieces if p[1] > p[0])
    return sorted(spans)


def working_windows(calendar: Calendar, zone: ZoneInfo, start: datetime, until_h: float) -> Iterator[Window]:
    """Merged working windows ``(on_h, off_h)`` that overlap ``[0, until_h]``, in order.

    Overlapping and touching windows are merged, so a 24/7 calendar is one window
    and a resource is never switched off and on again at the same instant.
    """
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = (start + timedelta(hours=until_h)).astimezone(zone).date()
    pending: Window | None = None
    day = first
    while day <= last:
        for a, b in day_spans(calendar, day, zone):
            on, off = hours_since(start, a), hours_since(start, b)
            if off <= 0 or on >= until_h:
                continue
            if pending is not None and on <= pending[1]:
                pending = (min(pending[0], on), max(pending[1], off))
                continue
            if pending is not None:
                yield pending
            pending = (on, off)
        day += timedelta(days=1)
    if pending is not None:
        yield pending


def always() -> Calendar:
    """The calendar of a resource that never stops (24/7)."""
    return Calendar(shifts=(Interval(start=time(0), end=time(0)),))
