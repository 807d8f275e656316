"""The response policy of the emergency room: deadlines, teams, root-cause categories.

Read from the ``[response]`` and ``[root_causes]`` tables of ``data/rules.toml``; the
``[[rules]]`` part of the same file belongs to :mod:`tower.rules`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tower.config_errors import validation_message
from tower.exceptions.lifecycle import Tier

_DEFAULT_DEADLINES: dict[Tier, float] = {"L2": 4.0, "L3": 1.0}


class PolicyConfigError(ValueError):
    """A response policy that cannot be used; the message names the file, key and why."""


class ResponsePolicy(BaseModel):
    """When an exception must first be answered, who answers, and the causes offered."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    respond_within_h: dict[Tier, float] = Field(default_factory=lambda: _DEFAULT_DEADLINES.copy())
    high_priority_respond_within_h: float = Field(default=0.5, gt=0)
    escalate_unacknowledged: bool = True
    teams: tuple[str, ...] = Field(min_length=1)
    management_team: str
    root_causes: tuple[str, ...] = Field(min_length=1)
    # Rules whose exceptions are improvement items (a review's finding, not an
    # emergency): no response deadline, no escalation, not in the emergency room.
    improvement_rules: tuple[str, ...] = ("stage_over_benchmark",)

    @field_validator("respond_within_h")
    @classmethod
    def _deadlines(cls, value: dict[Tier, float]) -> dict[Tier, float]:
        if "L1" in value:
            raise ValueError("L1 is handled by the system and has no response deadline")
        for tier in ("L2", "L3"):
            if tier not in value:
                raise ValueError(f"a deadline for {tier} is needed")
            if value[tier] <= 0:
                raise ValueError(f"{tier}: must be more than 0 hours")
        return value

    @field_validator("teams", "root_causes")
    @classmethod
    def _unique(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen = sorted({v for v in value if value.count(v) > 1})
        if seen:
            raise ValueError(f"{seen[0]!r} appears twice")
        return value

    @model_validator(mode="after")
    def _management_is_a_team(self) -> ResponsePolicy:
        if self.management_team not in self.teams:
            raise ValueError(f"management_team {self.management_team!r} is not one of teams")
        return self

    def respond_by(self, tier: Tier, *, high_priority: bool, now: datetime) -> datetime | None:
        """The first-response deadline of an exception of ``tier`` raised (or escalated) at ``now``."""
        if tier == "L1":
            return None
        hours = self.respond_within_h[tier]
        if high_priority:
            hours = min(hours, self.high_priority_respond_within_h)
        return now + timedelta(hours=hours)


def _policy_key(loc: Sequence[str]) -> list[str]:
    """The file's own keys: the categories live in [root_causes], the rest in [response]."""
    if loc and loc[0] == "root_causes":
        return ["root_causes", "categories", *loc[1:]]
    return ["response", *loc]


def load_policy(path: Path) -> ResponsePolicy:
    """Read ``[response]`` and ``[root_causes]``; a bad file fails naming file, key and why."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyConfigError(f"{path}: not valid TOML: {exc}") from exc
    response = raw.get("response")
    if not isinstance(response, dict):
        raise PolicyConfigError(f"{path}: response: a [response] table is needed")
    causes = raw.get("root_causes")
    if not isinstance(causes, dict) or "categories" not in causes:
        raise PolicyConfigError(f"{path}: root_causes.categories: a list of cause categories is needed")
    try:
        return ResponsePolicy.model_validate({**response, "root_causes": causes["categories"]})
    except ValidationError as exc:
        raise PolicyConfigError(validation_message(path, exc, _policy_key)) from exc
