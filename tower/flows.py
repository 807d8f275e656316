"""Order flows: stages with owner, time budget, deliverable and hand-off gates.

Loaded from ``data/flows.toml``; a broken file fails early with the file and key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tower.config_errors import validation_message

ID_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"


class FlowConfigError(ValueError):
    """A flow file that cannot be used; the message names the file and the key."""


class Gate(BaseModel):
    """Evidence an order must carry before it may enter a stage."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str = Field(min_length=1, max_length=64)
    from_stage: str = Field(pattern=ID_PATTERN)


class Stage(BaseModel):
    """One step of a flow, owned by a team, with a time budget in hours."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    budget_h: float = Field(ge=0)
    deliverable: str = Field(min_length=1)
    gates: tuple[Gate, ...] = ()


class Flow(BaseModel):
    """An ordered list of stages that an order of this flow goes through."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1)
    description: str = ""
    stages: tuple[Stage, ...] = Field(min_length=1)

    @field_validator("stages")
    @classmethod
    def _unique_stage_ids(cls, stages: tuple[Stage, ...]) -> tuple[Stage, ...]:
        seen: set[str] = set()
        for stage in stages:
            if stage.id in seen:
                raise ValueError(f"stage id {stage.id!r} appears twice")
            seen.add(stage.id)
        return stages

    @model_validator(mode="after")
    def _gates_point_backwards(self) -> Flow:
        earlier: set[str] = set()
        for stage in self.stages:
            for gate in stage.gates:
                if gate.from_stage not in earlier:
                    raise ValueError(
                        f"stage {stage.id!r}: gate from_stage {gate.from_stage!r} "
                        "is not an earlier stage of this flow"
                    )
            earlier.add(stage.id)
        return self

    @cached_property
    def stage_ids(self) -> tuple[str, ...]:
        return tuple(s.id for s in self.stages)

    @cached_property
    def stage_index(self) -> Mapping[str, int]:
        return {s.id: i for i, s in enumerate(self.stages)}

    @property
    def first_stage(self) -> Stage:
        return self.stages[0]

    def stage(self, stage_id: str) -> Stage:
        return self.stages[self.stage_index[stage_id]]


class FlowDefaults(BaseModel):
    """Budget modifiers shared by every flow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    custom_buffer: float = Field(default=0.5, ge=0, le=10)
    rush_budget_factor: float = Field(default=0.5, gt=0, le=1)
    rush_priority: int = 0
    normal_priority: int = 1


class FlowBook(BaseModel):
    """All flows of the deployment, with the shared defaults."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: FlowDefaults = FlowDefaults()
    flows: tuple[Flow, ...] = Field(min_length=1)

    @field_validator("flows")
    @classmethod
    def _unique_flow_ids(cls, flows: tuple[Flow, ...]) -> tuple[Flow, ...]:
        ids = [f.id for f in flows]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"flow id {dupes[0]!r} appears twice")
        return flows

    @cached_property
    def by_id(self) -> Mapping[str, Flow]:
        return {f.id: f for f in self.flows}

    @cached_property
    def all_stage_ids(self) -> frozenset[str]:
        return frozenset(s for f in self.flows for s in f.stage_ids)

    def budget_h(self, flow_id: str, stage_id: str, *, custom: bool, rush: bool) -> float:
        """The stage budget for one order: custom orders get the buffer, rush is stricter."""
        budget = self.by_id[flow_id].stage(stage_id).budget_h
        if custom:
            budget *= 1 + self.defaults.custom_buffer
        if rush:
            budget *= self.defaults.rush_budget_factor
        return budget


def load_flows(path: Path) -> FlowBook:
    """Read and validate a flow file, raising FlowConfigError naming the file and key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FlowConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FlowConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return FlowBook.model_validate(raw)
    except ValidationError as exc:
        raise FlowConfigError(validation_message(path, exc)) from exc
