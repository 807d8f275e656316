"""Domain figures the projections use, from ``data/tower.toml``."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tower.config_errors import validation_message


class HubFigures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    dwell_limit_h: float = Field(default=24, gt=0)
    retention_warn_share: float = Field(default=0.15, ge=0, le=1)


class OrderFigures(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    at_risk_uses_remaining_budget: bool = True


class TowerFigures(BaseModel):
    """The figures of DOMAIN.md that the projections need."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    hubs: HubFigures = HubFigures()
    orders: OrderFigures = OrderFigures()


def load_figures(path: Path) -> TowerFigures:
    """Read ``tower.toml``; a broken file raises ValueError naming the file and key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    try:
        return TowerFigures.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(validation_message(path, exc)) from None
