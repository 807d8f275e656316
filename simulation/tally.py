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
rounding of the bin index, ~1e-12). Memory is one counter per bin from the lowest to
the highest that occurs, ``ln(max / min) / ln(g) + 1``: about 230 per factor of ten
between the smallest and the largest positive value (a few hundred to two thousand
in practice, 8 bytes each), and a buffer of :data:`PENDING` values not yet binned,
however long the run.

Everything here is plain data: it pickles (replications run in a process pool) and
copies.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Relative error of a histogram's bins (and so of its percentiles): 0.5 %.
ACCURACY = 0.005
#: Values a histogram holds before it bins them (8 KB).
PENDING = 1024


class Histogram:
    """Counts of non-negative values in logarithmic bins of relative width ``accuracy``,
    with exact count, zeros, minimum and maximum; percentiles as numpy's, within
    ``accuracy`` (see the module).

    Values wait in a short buffer and are binned :data:`PENDING` at a time with numpy
    (a scalar logarithm costs about as much as a SimPy event, and a run adds millions).
    The counts are an array over the bins from the lowest to the highest that occurred.
    """

    __slots__ = ("_counts", "_gamma", "_high", "_low", "_n", "_offset", "_pending", "_per_log", "_zeros",
                 "accuracy")

    def __init__(self, accuracy: float = ACCURACY) -> None:
        if not 0 < accuracy < 1:
            raise ValueError("accuracy must be in (0, 1)")
        self.accuracy = accuracy
        self._gamma = (1 + accuracy) / (1 - accuracy)
        self._per_log = 1.0 / math.log(self._gamma)
        self._counts = np.zeros(0, dtype=np.int64)  # values per bin, bin index = offset + position
        self._offset = 0
        self._n = 0
        self._zeros = 0
        self._low = math.inf
        self._high = -math.inf
        self._pending = array("d")

    # --- counting ---------------------------------------------------------------------

    def add(self, x: float) -> None:
        """Count one value (``x >= 0``)."""
        if not x >= 0:  # negative or NaN
            raise ValueError(f"a histogram counts values >= 0, got {x!r}")
        pending = self._pending
        pending.append(x)
        if len(pending) >= PENDING:
            self._flush()

    def extend(self, values: Iterable[float]) -> None:
        for x in values:
            self.add(x)

    def _flush(self) -> None:
        """Bin the values waiting to be counted."""
        pending = self._pending
        if not pending:
            return
        xs = np.frombuffer(pending, dtype=np.float64)
        least = float(xs.min())
        if not least >= 0:  # a negative or NaN value came in through a tally
            del xs, pending[:]
            raise ValueError(f"a histogram counts values >= 0, got {least!r}")
        self._n += int(xs.size)
        self._low = min(self._low, least)
        self._high = max(self._high, float(xs.max()))
        positive = xs[xs > 0]
        self._zeros += int(xs.size - positive.size)
        del xs  # release the buffer before it is emptied
        if positive.size:
            self._count(np.ceil(np.log(positive) * self._per_log).astype(np.int64))
        del pending[:]

    def _count(self, index: np.ndarray[Any, np.dtype[np.int64]],
               weights: np.ndarray[Any, np.dtype[np.int64]] | None = None) -> None:
        """Add values (one each, or ``weights``) to the bins ``index``, widening the array."""
        low, high = int(index.min()), int(index.max())
        counts = self._counts
        if not counts.size:
            self._offset, counts = low, np.zeros(high - low + 1, dtype=np.int64)
        elif low < self._offset or high >= self._offset + counts.size:
            start = min(low, self._offset)
            wider = np.zeros(max(high, self._offset + counts.size - 1) - start + 1, dtype=np.int64)
            wider[self._offset - start:self._offset - start + counts.size] = counts
            self._offset, counts = start, wider
        counts += np.bincount(index - self._offset, weights=weights, minlength=counts.size).astype(np.int64)
        self._counts = counts

    def merge(self, other: Histogram) -> None:
        """Add the counts of ``other`` (same accuracy): as if its values were added here."""
        if other.accuracy != self.accuracy:
            raise ValueError("only histograms of the same accuracy merge")
        self._flush()
        other._flush()
        if other._counts.size:
            self._count(np.arange(other._offset, other._offset + other._counts.size, dtype=np.int64),
                        other._counts)
        self._n += other._n
        self._zeros += other._zeros
        self._low = min(self._low, other._low)
        self._high = max(self._high, other._high)

    # --- what was counted -------------------------------------------------------------

    @property
    def n(self) -> int:
        return self._n + len(self._pending)

    @property
    def zeros(self) -> int:
        self._flush()
        return self._zeros

    @property
    def low(self) -> float:
        """The smallest value counted (inf if none)."""
        self._flush()
        return self._low

    @property
    def high(self) -> float:
        """The largest value counted (-inf if none)."""
        self._flush()
        return self._high

    @property
    def bins(self) -> dict[int, int]:
        """Bin index -> count, for the bins holding a positive value."""
        self._flush()
        (occupied,) = np.nonzero(self._counts)
        return {int(i) + self._offset: int(self._counts[i]) for i in occupied}

    def __getstate__(self) -> tuple[float, dict[int, int], int, int, float, float]:
        return self.accuracy, self.bins, self._n, self._zeros, self._low, self._high

    def __setstate__(self, state: tuple[float, dict[int, int], int, int, float, float]) -> None:
        accuracy, bins, n, zeros, low, high = state
        self.__init__(accuracy)  # type: ignore[misc]
        if bins:
            keys = np.fromiter(bins, dtype=np.int64, count=len(bins))
            self._count(keys, np.fromiter(bins.values(), dtype=np.int64, count=len(bins)))
        self._n, self._zeros, self._low, self._high = n, zeros, low, high

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Histogram):
            return NotImplemented
        return self.__getstate__() == other.__getstate__()

    def __repr__(self) -> str:
        return (f"Histogram(n={self.n}, zeros={self.zeros}, bins={len(self.bins)}, low={self.low}, "
                f"high={self.high})")

    def quantiles(self, qs: Sequence[float]) -> list[float | None]:
        """Percentiles at ``qs`` (fractions in [0, 1]) as numpy's default linear
        interpolation, within ``accuracy``; None for each if no value was counted."""
        self._flush()
        n = self._n
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
        self._flush()
        found: dict[int, float] = {}
        todo = iter(ranks)
        j = next(todo, None)
        below = self._zeros  # values in the bins passed so far
        while j is not None and j < below:
            found[j] = 0.0
            j = next(todo, None)
        scale = 2.0 / (self._gamma + 1)
        bins = self.bins
        for k in sorted(bins):
            if j is None:
                break
            below += bins[k]
            if j >= below:
                continue
            value = min(max(scale * self._gamma ** k, self._low), self._high)
            while j is not None and j < below:
                found[j] = value
                j = next(todo, None)
        found[self._n - 1] = self._high  # the extremes are known exactly
        found[0] = self._low
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
        waits = self.waits  # Histogram.add written out: this runs once per visit
        pending = waits._pending
        pending.append(wait_h)
        if len(pending) >= PENDING:
            waits._flush()


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
        leads = self.leads  # Histogram.add written out: this runs once per order
        pending = leads._pending
        pending.append(lead_h)
        if len(pending) >= PENDING:
            leads._flush()
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
