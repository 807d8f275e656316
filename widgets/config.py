"""Settings of the screens, read from ``data/screens.toml`` (defaults when it is absent)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tower.config_errors import validation_message
from tower.flows import FlowBook
from widgets.i18n import Lang


class ScreenConfigError(ValueError):
    """A screens.toml that cannot be used; the message names the file and the key."""


class OverviewConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # flow id -> the stage whose entry counts as "shipped" (handed to the carrier)
    shipped_on_entering: dict[str, str] = Field(default_factory=dict)
    ticker_size: int = Field(default=10, ge=1, le=100)


class ScreenConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    refresh_s: float = Field(default=5, ge=1, le=300)
    unreachable_after_s: float = Field(default=15, ge=2, le=3600)
    default_lang: Lang = "en"
    overview: OverviewConfig = OverviewConfig()


def load_screen_config(path: Path, flows: FlowBook) -> ScreenConfig:
    """Read and check ``path`` against the flows; a missing file gives the defaults."""
    if not path.exists():
        return ScreenConfig()
    try:
        config = ScreenConfig.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except tomllib.TOMLDecodeError as exc:
        raise ScreenConfigError(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise ScreenConfigError(validation_message(path, exc)) from None
    for flow_id, stage in config.overview.shipped_on_entering.items():
        flow = flows.by_id.get(flow_id)
        if flow is None or stage not in flow.stage_ids:
            raise ScreenConfigError(
                f"{path}: overview.shipped_on_entering.{flow_id}: {stage!r} is not a stage of "
                f"flow {flow_id!r}")
    return config
