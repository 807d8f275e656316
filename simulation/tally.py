"""Streaming statistics of a run: what the figures need, kept as the run goes, in flat memory.

A run of a year sees about half a million orders and four million stage visits; it
keeps none of them. Each stage of each flow has a :class:`StageTally` (visits, the
sums of wait and work, a :class:`Histogram` of waits) and each flow a
:class:`LeadTally` (orders by how they ended, the sum and a histogram of lead times
of the delivered ones, how many were on time). Counts and sums are exact, so the
means are the records' means up to the order of float additions.

Percentiles come from the histograms. A :class:`Histogram` counts non-negative
values in logarithmic bins: bin ``k`` holds ``(g**(k-1), g**k]`` with
``g = (1 + a) / (1 - a)``, and reads back as ``2 g**k / (g + 1)``, which is within
relative error ``a`` (:data:`ACCURACY`, 0.5 %) of every value in the bin. Zeros (an
order served at once) are counted exactly, and so are the smallest and largest
value. A percentile is numpy's default (linear interpolation between the order
statistics ``x_j`` and ``x_j+1`` at rank ``(n - 1) q``) with each order statistic
read from its bin, clamped to ``[min, max]``; both are within ``a`` of the true
ones and the interpolation is a convex combination of non-negative values, so the
percentile is within relative error ``a`` of numpy's on the same values (plus float
rounding of the bin index, ~1e-12). Memory is one counter per bin that occurs:
``ln(max / min) / ln(g)`` at most, about 230 per factor of ten between the smallest
and the largest positive value (a few hundred to two thousand in practice), however
long the run.

Everything here is plain data: it pickles (replications run in a process pool) and
copies.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

#: Relative error of a histogram's bins (and so of its percentiles): 0.5 %.
ACCURACY = 0.005


class Histogram:
    """Counts of non-negative values in logarithmic bins of relative width ``accuracy``,
    with exact count, zeros, minimum and maximum; percentiles as numpy's, within
    ``accuracy`` (see the module)."""

    __slots__ = ("_gamma", "_per_log", "accuracy", "bins", "high", "low", "n", "zeros")

    def __init__(self, accuracy: float = ACCURACY) -> None:
        if not 0 < accuracy < 1:
            raise ValueError("accuracy must be in (0, 1)")
        self.accuracy = accuracy
        self._gamma = (1 + accuracy) / (1 - accuracy)
        self._per_log = 1.0 / math.log(self._gamma)
        self.bins: dict[int, int] = {}  # bin index -> values in it (positive values only)
        self.n = 0
        self.zeros = 0
        self.low = math.inf
        self.high = -math.inf

    def __getstate__(self) -> tuple[float, dict[int, int], int, int, float, float]:
        return self.accuracy, self.bins, self.n, self.zeros, self.low, self.high

    def __setstate__(self, state: tuple[float, dict[int, int], int, int, float, float]) -> None:
        accuracy, bins, n, zeros, low, high = state
        self.__init__(accuracy)  # type: ignore[misc]
        self.bins, self.n, self.zeros, self.low, self.high = dict(bins), n, zeros, low, high

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return (f"Histogram(n={self.n}, zeros={self.zeros}, bins={len(self.bins)}, low={self.low}, "
                f"high={self.high})")

    def add(self, x: float) -> None:
        """Count one value (``x >= 0``)."""
        self.n += 1
        if x > 0:
            k = math.ceil(math.log(x) * self._per_log)
            bins = self.bins
            bins[k] = bins.get(k, 0) + 1
        elif x == 0:
            self.zeros += 1
        else:
            self.n -= 1
            raise ValueError(f"a histogram counts values >= 0, got {x!r}")
        if x < self.low:
            self.low = x
        if x > self.high:
            self.high = x

    def extend(self, values: Iterable[float]) -> None:
        for x in values:
            self.add(x)

    def merge(self, other: Histogram) -> None:
        """Add the counts of ``other`` (same accuracy): as if its values were added here."""
        if other.accuracy != self.accuracy:
            raise ValueError("only histograms of the same accuracy merge")
        bins = self.bins
        for k, c in other.bins.items():
            bins[k] = bins.get(k, 0) + c
        self.n += other.n
        self.zeros += other.zeros
        self.low = min(self.low, other.low)
        self.high = max(self.high, other.high)

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Percentiles at ``qs`` (fractions in [0, 1]) as numpy's default linear
        interpolation, within ``accuracy``; None for each if no value was counted."""
        n = self.n
        if n == 0:
            return [None] * len(qs)
        wanted: set[int] = set()
        ranks = []
        for q in qs:
            if not 0 <= q <= 1:
                raise ValueError(f"quantile {q} is not in [0, 1]")
            h = (n - 1) * q
            j = min(math.floor(h), n - 1)
            ranks.append((j, h - j))
            wanted.add(j)
            if j + 1 < n:
                wanted.add(j + 1)
        stat = self._order_statistics(sorted(wanted))
        out: list[float | None] = []
        for j, frac in ranks:
            x = stat[j]
            if frac > 0 and j + 1 < n:
                x += frac * (stat[j + 1] - x)
            out.append(x)
        return out

    def quantile(self, q: float) -> float | None:
        return self.quantiles([q])[0]

    def _order_statistics(self, ranks: Sequence[int]) -> dict[int, float]:
        """The ``j``-th smallest value (0-based) for each ``j`` in ``ranks`` (ascending),
        read from its bin and clamped to the exact minimum and maximum."""
        found: dict[int, float] = {}
        todo = iter(ranks)
        j = next(todo, None)
        below = self.zeros  # values in the bins passed so far
        while j is not None and j < below:
            found[j] = 0.0
            j = next(todo, None)
        if j is None:
            return found
        scale = 2.0 / (self._gamma + 1)
        for k in sorted(self.bins):
            below += self.bins[k]
            if j >= below:
                continue
            value = min(max(scale * self._gamma ** k, self.low), self.high)
            while j is not None and j < below:
                found[j] = value
                j = next(todo, None)
            if j is None:
                break
        if self.n:
            found[self.n - 1] = self.high  # the largest value is known exactly
            if self.zeros == 0:
                found[0] = self.low
        return {r: found[r] for r in ranks}


@dataclass(slots=True)
class StageTally:
    """One stage of one flow: visits that arrived in the measured window, the sums of
    their waits and work, and a histogram of the waits; ``resources`` that served them."""

    flow: str
    stage: str
    resources: set[str] = field(default_factory=set)
    visits: int = 0
    wait_sum_h: float = 0.0
    work_sum_h: float = 0.0
    waits: Histogram = field(default_factory=Histogram)

    def add(self, wait_h: float, work_h: float) -> None:
        """A visit that waited ``wait_h`` and was worked ``work_h``."""
        self.visits += 1
        self.wait_sum_h += wait_h
        self.work_sum_h += work_h
        self.waits.add(wait_h)


@dataclass(slots=True)
class LeadTally:
    """The orders of one flow created in the measured window, by how they ended; the
    lead times of the delivered ones (sum, histogram) and how many met their promise.
    ``in_progress`` is filled in when the run hands back its results."""

    flow: str
    delivered: int = 0
    cancelled: int = 0
    lost: int = 0
    in_progress: int = 0
    on_time: int = 0
    lead_sum_h: float = 0.0
    leads: Histogram = field(default_factory=Histogram)

    @property
    def created(self) -> int:
        return self.delivered + self.cancelled + self.lost + self.in_progress

    def delivered_after(self, lead_h: float, on_time: bool) -> None:
        """An order delivered ``lead_h`` hours after it was created."""
        self.delivered += 1
        self.lead_sum_h += lead_h
        self.leads.add(lead_h)
        if on_time:
            self.on_time += 1

    def merge(self, other: LeadTally) -> None:
        """Add another flow's orders (for the figures over all flows)."""
        self.delivered += other.delivered
        self.cancelled += other.cancelled
        self.lost += other.lost
        self.in_progress += other.in_progress
        self.on_time += other.on_time
        self.lead_sum_h += other.lead_sum_h
        self.leads.merge(other.leads)


@dataclass(slots=True)
class RunTally:
    """The tallies of one replication: a stage per worked stage of each flow (and per
    carrier stage with a visit), and a flow per flow with an order in the window."""

    stages: list[StageTally] = field(default_factory=list)
    leads: list[LeadTally] = field(default_factory=list)
