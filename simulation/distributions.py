"""Service and transit-time distributions of a scenario, in hours.

Each is a frozen pydantic model with a ``kind`` tag (for TOML) and a ``sample``
method that draws from an explicitly passed ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

Hours = Annotated[float, Field(ge=0, description="hours")]
PositiveHours = Annotated[float, Field(gt=0, description="hours")]


class _Dist(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Exponential(_Dist):
    """Memoryless durations (M in queueing notation)."""

    kind: Literal["exponential"] = "exponential"
    mean_h: PositiveHours

    @property
    def mean(self) -> float:
        return self.mean_h

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.exponential(self.mean_h))


class LogNormal(_Dist):
    """Right-skewed durations given by their mean and coefficient of variation."""

    kind: Literal["lognormal"] = "lognormal"
    mean_h: PositiveHours
    cv: float = Field(gt=0, le=10, description="standard deviation / mean")

    @property
    def mean(self) -> float:
        return self.mean_h

    def sample(self, rng: np.random.Generator) -> float:
        sigma2 = math.log1p(self.cv**2)
        mu = math.log(self.mean_h) - sigma2 / 2
        return float(rng.lognormal(mu, math.sqrt(sigma2)))


class Gamma(_Dist):
    """Durations given by mean and coefficient of variation (cv < 1: more regular)."""

    kind: Literal["gamma"] = "gamma"
    mean_h: PositiveHours
    cv: float = Field(gt=0, le=10, description="standard deviation / mean")

    @property
    def mean(self) -> float:
        return self.mean_h

    def sample(self, rng: np.random.Generator) -> float:
        shape = 1 / self.cv**2
        return float(rng.gamma(shape, self.mean_h / shape))


class Triangular(_Dist):
    """Durations between a minimum and maximum, most often near the mode."""

    kind: Literal["triangular"] = "triangular"
    min_h: Hours
    mode_h: Hours
    max_h: PositiveHours

    @model_validator(mode="after")
    def _ordered(self) -> Triangular:
        if not self.min_h <= self.mode_h <= self.max_h or self.min_h == self.max_h:
            raise ValueError("needs min_h <= mode_h <= max_h and min_h < max_h")
        return self

    @property
    def mean(self) -> float:
        return (self.min_h + self.mode_h + self.max_h) / 3

    def sample(self, rng: np.random.Generator) -> float:
        return float(rng.triangular(self.min_h, self.mode_h, self.max_h))


class Empirical(_Dist):
    """Durations resampled from observed values (optionally weighted)."""

    kind: Literal["empirical"] = "empirical"
    values_h: tuple[Hours, ...] = Field(min_length=1)
    weights: tuple[Annotated[float, Field(ge=0)], ...] | None = None

    @model_validator(mode="after")
    def _weights_match(self) -> Empirical:
        if self.weights is not None:
            if len(self.weights) != len(self.values_h):
                raise ValueError("weights must have as many entries as values_h")
            if sum(self.weights) <= 0:
                raise ValueError("weights must not all be zero")
        return self

    @property
    def mean(self) -> float:
        if self.weights is None:
            return sum(self.values_h) / len(self.values_h)
        total = sum(self.weights)
        return sum(v * w for v, w in zip(self.values_h, self.weights, strict=True)) / total

    def sample(self, rng: np.random.Generator) -> float:
        if self.weights is None:
            return float(self.values_h[int(rng.integers(len(self.values_h)))])
        p = np.asarray(self.weights, dtype=float)
        return float(self.values_h[int(rng.choice(len(self.values_h), p=p / p.sum()))])


Distribution = Annotated[
    Exponential | LogNormal | Gamma | Triangular | Empirical, Field(discriminator="kind")
]
