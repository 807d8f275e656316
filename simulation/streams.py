"""Named random streams: one seeded generator per purpose, drawn in blocks.

Every stream is a child of ``SeedSequence([seed, replication])`` whose spawn key is
a stable hash of its name (``"arrivals"``, ``"service/ecommerce/picking"``, ...), not
its position. So adding a stream, or a variant that changes one stage, leaves every
other stream's numbers untouched: the basis of common random numbers between a
baseline and its what-if variants. No global random state is used.

Numpy's generator costs about a microsecond per scalar call, more than a SimPy
event; a :class:`Draws` buffer fetches a block of values in one vectorised call and
hands them out one by one. The values are the same whatever the block size.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from simulation.distributions import Distribution, Empirical, Exponential, Gamma, LogNormal, Triangular

BLOCK = 512


def stable_key(name: str) -> int:
    """A 32-bit hash of a name that is the same in every process and Python version."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=4).digest(), "big")


class Streams:
    """The generators of one replication, created on first use and kept by name."""

    def __init__(self, seed: int, replication: int) -> None:
        self.entropy = (seed, replication)
        self._generators: dict[str, np.random.Generator] = {}

    def generator(self, name: str) -> np.random.Generator:
        rng = self._generators.get(name)
        if rng is None:
            seq = np.random.SeedSequence(list(self.entropy), spawn_key=(stable_key(name),))
            rng = self._generators[name] = np.random.default_rng(seq)
        return rng

    def draws(self, name: str, dist: Distribution) -> Draws:
        """Buffered draws of ``dist`` from the stream ``name`` (one stream per user)."""
        return Draws(self.generator(name), dist)

    def uniform(self, name: str) -> Uniform:
        return Uniform(self.generator(name))

    def normals(self, name: str) -> Normals:
        return Normals(self.generator(name))


class Draws:
    """Values of one distribution from one generator, fetched a block at a time."""

    __slots__ = ("_buffer", "_dist", "_i", "_rng")

    def __init__(self, rng: np.random.Generator, dist: Distribution) -> None:
        self._rng = rng
        self._dist = dist
        self._buffer: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        i = self._i
        if i == len(self._buffer):
            self._buffer = block(self._dist, self._rng, BLOCK)
            i = 0
        self._i = i + 1
        return self._buffer[i]


class Uniform:
    """Uniform [0, 1) numbers in blocks; helpers for Bernoulli trials and choices."""

    __slots__ = ("_buffer", "_i", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buffer: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        i = self._i
        if i == len(self._buffer):
            self._buffer = self._rng.random(BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buffer[i]

    def chance(self, p: float) -> bool:
        """True with probability ``p``; draws nothing when the answer is certain."""
        if p <= 0.0:
            return False
        if p >= 1.0:
            return True
        i = self._i  # self() written out: this runs for every order and stage
        if i == len(self._buffer):
            self._buffer = self._rng.random(BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buffer[i] < p

    def index(self, n: int) -> int:
        """A uniform index in ``range(n)``."""
        return min(int(self() * n), n - 1)

    def pick(self, cumulative: list[float]) -> int:
        """An index drawn by cumulative weights ending at 1 (one draw, or none for one option)."""
        if len(cumulative) == 1:
            return 0
        u = self()
        for i, c in enumerate(cumulative):
            if u < c:
                return i
        return len(cumulative) - 1



class Normals:
    """Standard normal numbers in blocks."""

    __slots__ = ("_buffer", "_i", "_rng")

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._buffer: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        i = self._i
        if i == len(self._buffer):
            self._buffer = self._rng.standard_normal(BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buffer[i]


def cumulative(weights: list[float]) -> list[float]:
    """Cumulative shares of non-negative weights (the last is exactly 1)."""
    total = math.fsum(weights)
    if total <= 0:
        raise ValueError("weights must not all be zero")
    out, acc = [], 0.0
    for w in weights:
        acc += w
        out.append(acc / total)
    out[-1] = 1.0
    return out


def block(dist: Distribution, rng: np.random.Generator, n: int) -> list[float]:
    """``n`` values of ``dist`` in hours, drawn in one vectorised call."""
    if isinstance(dist, Exponential):
        values = rng.exponential(dist.mean_h, n)
    elif isinstance(dist, LogNormal):
        sigma2 = math.log1p(dist.cv**2)
        values = rng.lognormal(math.log(dist.mean_h) - sigma2 / 2, math.sqrt(sigma2), n)
    elif isinstance(dist, Gamma):
        shape = 1 / dist.cv**2
        values = rng.gamma(shape, dist.mean_h / shape, n)
    elif isinstance(dist, Triangular):
        values = rng.triangular(dist.min_h, dist.mode_h, dist.max_h, n)
    elif isinstance(dist, Empirical):
        p = None
        if dist.weights is not None:
            w = np.asarray(dist.weights, dtype=float)
            p = w / w.sum()
        values = np.asarray(dist.values_h, dtype=float)[rng.choice(len(dist.values_h), n, p=p)]
    else:  # pragma: no cover - the Distribution union is closed
        raise TypeError(f"unknown distribution {dist!r}")
    out: list[float] = values.tolist()
    return out
