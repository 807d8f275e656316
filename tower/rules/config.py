"""The rules of the exception engine, from the ``[rule_engine]`` and ``[[rules]]`` part
of ``data/rules.toml`` (the ``[response]`` part belongs to :mod:`tower.exceptions`).

Every figure of a rule (limits, windows, shares, hold-downs, the scan interval) is
read here; the conditions take them as arguments. A bad file fails early with the
file, the key and why, like :mod:`tower.flows`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from tower.config_errors import validation_message

ID_PATTERN = r"^[a-z][a-z0-9_]{0,47}$"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


class RuleConfigError(ValueError):
    """A rules file that cannot be used; the message names the file, the key and why."""


def parse_duration(value: object) -> timedelta:
    """``"10m"``, ``"48h"``, ``"1.5h"``, ``"7d"``, ``"30s"`` (or a timedelta) as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"{value!r} is not a duration such as \"30s\", \"10m\", \"48h\" or \"7d\"")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]

Condition = Literal[
    "stage_over_budget", "stage_no_update", "stage_unconfirmed", "tracking_missing",
    "parcel_stuck", "hub_retention", "cold_chain_excursion", "stock_out",
    "handoff_without_evidence", "predicted_late", "stage_over_benchmark",
]
Tier = Literal["L1", "L2", "L3"]
STAGE_OWNER = "stage_owner"  # team = the mapped owner team of the order's stage


class _Params(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NoParams(_Params):
    pass


class StageNoUpdateParams(_Params):
    #: stage id -> longest time without any event of the order while it is in that stage
    limits: dict[str, Duration] = Field(min_length=1)


class StageUnconfirmedParams(_Params):
    stage: str = Field(pattern=ID_PATTERN)
    within: Duration
    #: handoff.evidence kind (uploaded in ``stage``) that counts as the confirmation;
    #: completing the stage counts too
    evidence: str | None = None


class TrackingMissingParams(_Params):
    within: Duration
    flows: tuple[str, ...] = ()  # empty: every flow


class ParcelStuckParams(_Params):
    #: None: data/tower.toml [hubs] dwell_limit_h
    limit: Duration | None = None
    #: open exceptions of these rules at the parcel's hub group it under them
    inhibited_by: tuple[str, ...] = ()


class HubRetentionParams(_Params):
    window: Duration
    #: None: data/tower.toml [hubs] retention_warn_share
    share: float | None = Field(default=None, ge=0, le=1)
    min_arrivals: int = Field(default=1, ge=1)


class ColdChainParams(_Params):
    kind: str = "temperature"
    #: when the customer hears from us next about the frozen order
    next_update_in: Duration
    step: str = Field(min_length=1)


class StockOutParams(_Params):
    #: warehouse -> its backup warehouse
    backups: dict[str, str] = Field(default_factory=dict)

    @field_validator("backups")
    @classmethod
    def _not_itself(cls, value: dict[str, str]) -> dict[str, str]:
        for house, backup in value.items():
            if house == backup:
                raise ValueError(f"{house!r} is its own backup")
        return value


class PredictedLateParams(_Params):
    margin: Duration = timedelta(0)
    #: each remaining stage takes the network's average over this period (completed
    #: visits entered in it) ...
    expected_over: Duration = timedelta(days=7)
    #: ... when at least this many visits make the average; otherwise its budget
    min_visits: int = Field(default=20, ge=1)


class StageOverBenchmarkParams(_Params):
    period: Duration
    over_share: float = Field(gt=0)
    min_visits: int = Field(default=1, ge=1)
    #: review again at most this often (tower-clock time)
    every: Duration
    #: "flow/stage" -> benchmark hours; a stage not listed is benchmarked on its budget
    benchmarks_h: dict[str, float] = Field(default_factory=dict)


PARAMS: Mapping[str, type[_Params]] = {
    "stage_over_budget": NoParams,
    "stage_no_update": StageNoUpdateParams,
    "stage_unconfirmed": StageUnconfirmedParams,
    "tracking_missing": TrackingMissingParams,
    "parcel_stuck": ParcelStuckParams,
    "hub_retention": HubRetentionParams,
    "cold_chain_excursion": ColdChainParams,
    "stock_out": StockOutParams,
    "handoff_without_evidence": NoParams,
    "predicted_late": PredictedLateParams,
    "stage_over_benchmark": StageOverBenchmarkParams,
}
SCOPES: Mapping[str, str] = {
    "stage_over_budget": "order", "stage_no_update": "order", "stage_unconfirmed": "order",
    "tracking_missing": "order", "parcel_stuck": "parcel", "hub_retention": "hub",
    "cold_chain_excursion": "order", "stock_out": "order", "handoff_without_evidence": "order",
    "predicted_late": "order", "stage_over_benchmark": "stage",
}


class Rule(BaseModel):
    """One rule: its id (the exception's ``rule``), the condition it checks and how it pages."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(pattern=ID_PATTERN)
    condition: Condition
    scope: Literal["order", "parcel", "hub", "stage"]
    tier: Tier
    #: hold-down in event time: the condition must last this long before the rule fires
    hold_down: Duration = Field(default=timedelta(0), alias="for")
    team: str = Field(min_length=1)
    action: Literal["none", "freeze_order", "reroute", "improvement"] = "none"
    high_priority: Literal["never", "always", "rush"] = "never"
    enabled: bool = True
    #: checked on each projected batch too (state rules always are; an absence rule may
    #: be left to the scans to keep the projector fast)
    on_events: bool = True
    description: str = ""
    params: _Params = NoParams()

    @model_validator(mode="before")
    @classmethod
    def _typed_params(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("condition") in PARAMS:
            model = PARAMS[data["condition"]]
            try:
                params = model.model_validate(data.get("params") or {})
            except ValidationError as exc:
                first = exc.errors()[0]
                key = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"params.{key}: {first['msg']}") from None
            data = {**data, "params": params}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if SCOPES[self.condition] != self.scope:
            raise ValueError(f"condition {self.condition!r} has scope {SCOPES[self.condition]!r}, "
                             f"not {self.scope!r}")
        wanted = {"cold_chain_excursion": "freeze_order", "stock_out": "reroute",
                  "stage_over_benchmark": "improvement"}.get(self.condition)
        if wanted is not None and self.action not in (wanted, "none"):
            raise ValueError(f"condition {self.condition!r} can only take action {wanted!r}")
        if wanted is None and self.action != "none":
            raise ValueError(f"condition {self.condition!r} takes no action")
        return self

    def high(self, *, rush: bool) -> bool:
        return self.high_priority == "always" or (self.high_priority == "rush" and rush)


class EngineFigures(BaseModel):
    """``[rule_engine]``: how often the scans run and who owns what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scan_interval_s: float = Field(gt=0, le=86_400)
    #: flows.toml stage owners -> emergency-room teams ([response].teams)
    owner_teams: dict[str, str] = Field(default_factory=dict)
    #: a single team for what has no stage (hub-wide or stock rules with team = stage_owner)
    default_team: str


class RuleBook(BaseModel):
    """Every rule of the deployment."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: EngineFigures
    rules: tuple[Rule, ...] = ()
    teams: tuple[str, ...] = ()
    path: str = ""

    @field_validator("rules")
    @classmethod
    def _unique(cls, rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
        ids = [r.id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule id {dupes[0]!r} appears twice")
        return rules

    @model_validator(mode="after")
    def _teams_known(self) -> RuleBook:
        if not self.teams:
            return self
        known = set(self.teams)
        for owner, team in self.engine.owner_teams.items():
            if team not in known:
                raise ValueError(f"owner_teams.{owner}: {team!r} is not one of [response].teams")
        if self.engine.default_team not in known:
            raise ValueError(f"default_team {self.engine.default_team!r} is not one of [response].teams")
        for rule in self.rules:
            if rule.team != STAGE_OWNER and rule.team not in known:
                raise ValueError(f"rule {rule.id!r}: team {rule.team!r} is not one of "
                                 f"[response].teams or {STAGE_OWNER!r}")
        return self

    @property
    def scan_interval_s(self) -> float:
        return self.engine.scan_interval_s

    @cached_property
    def enabled(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)

    def of(self, condition: str) -> tuple[Rule, ...]:
        """The enabled rules that check ``condition``."""
        return tuple(r for r in self.enabled if r.condition == condition)

    def team_of_owner(self, owner: str) -> str:
        return self.engine.owner_teams.get(owner, self.engine.default_team)


def _rules_key(raw_rules: list[Any]) -> Callable[[Sequence[str]], list[str]]:
    """The file's own keys: a rule's index with its id (``rules.6(cold_chain_excursion)``),
    ``engine`` as ``rule_engine``."""
    def key(loc: Sequence[str]) -> list[str]:
        loc = list(loc)
        if len(loc) >= 2 and loc[0] == "rules" and loc[1].isdigit():
            index = int(loc[1])
            rule = raw_rules[index] if index < len(raw_rules) else None
            name = rule.get("id") if isinstance(rule, dict) else None
            loc[1] = f"{index}" + (f"({name})" if name else "")
        elif loc and loc[0] == "engine":
            loc[0] = "rule_engine"
        return loc
    return key


def load_rules(path: Path) -> RuleBook:
    """Read ``[rule_engine]`` and ``[[rules]]`` of a rules file (and [response].teams to
    check the team names); raises RuleConfigError naming the file, the key and why."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise RuleConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise RuleConfigError(f"{path}: not valid TOML: {exc}") from exc
    if "rule_engine" not in raw:
        raise RuleConfigError(f"{path}: rule_engine: a [rule_engine] table is needed")
    rules = raw.get("rules", [])
    if not isinstance(rules, list):
        raise RuleConfigError(f"{path}: rules: must be an array of [[rules]] tables")
    response = raw.get("response")
    teams = response.get("teams", ()) if isinstance(response, dict) else ()
    try:
        return RuleBook.model_validate({"engine": raw["rule_engine"], "rules": rules,
                                        "teams": teams, "path": str(path)})
    except ValidationError as exc:
        raise RuleConfigError(validation_message(path, exc, _rules_key(rules))) from exc
