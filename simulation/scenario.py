"""The Scenario: a frozen, validated description of an order network to simulate.

Loaded from TOML in ``data/scenarios/``; a bad file fails with the file, the key and
why (:class:`ScenarioError`). Units are in the field names (``_h`` hours, ``_min``
minutes, ``_c`` degrees Celsius, ``_share``/``_p`` a probability in [0, 1]).
"""

from __future__ import annotations

import tomllib
from datetime import date, datetime, time
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from simulation.distributions import Distribution, Exponential
from tower.flows import FlowBook, FlowConfigError, load_flows

Share = Annotated[float, Field(ge=0, le=1)]
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,47}$")]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message names the file and the key."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Interval(_Frozen):
    """A daily time window, local time; ``end`` before ``start`` crosses midnight."""

    start: time
    end: time


class Calendar(_Frozen):
    """When a resource works: daily shifts, breaks inside them, weekdays off, holidays."""

    shifts: tuple[Interval, ...] = (Interval(start=time(0), end=time(0)),)
    breaks: tuple[Interval, ...] = ()
    days_off: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = ()
    holidays: tuple[date, ...] = ()


class StageModel(_Frozen):
    """How one stage of a flow is worked: servers, their calendar, service time, rework."""

    flow: str
    stage: str
    capacity: int = Field(ge=1, le=10_000, description="parallel servers (people, lines)")
    calendar: str | None = Field(default=None, description="name in [calendars]; none = 24/7")
    service: Distribution
    rework_p: Share = Field(default=0.0, description="chance the work fails QC and is redone")
    resource: str | None = Field(default=None, description="resource name in events; default stage")


class Peak(_Frozen):
    """A promotion window multiplying the arrival rate (e.g. Double 11 at x3)."""

    name: str
    start: AwareDatetime
    end: AwareDatetime
    multiplier: float = Field(gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> Peak:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Demand(_Frozen):
    """Order arrivals: a non-homogeneous Poisson process and the order mix."""

    orders_per_day: float = Field(gt=0, le=10_000_000, description="mean over a normal week")
    flow_mix: dict[str, Annotated[float, Field(ge=0)]] = Field(min_length=1)
    rush_share: Share = 0.0
    custom_share: dict[str, Share] = Field(default_factory=dict)
    cold_chain_share: Share = 0.0
    cancel_share: Share = 0.0
    hour_of_day: tuple[Annotated[float, Field(ge=0)], ...] = Field(default=(1.0,) * 24)
    day_of_week: tuple[Annotated[float, Field(ge=0)], ...] = Field(default=(1.0,) * 7)
    peaks: tuple[Peak, ...] = ()
    promise_h: dict[str, Annotated[float, Field(gt=0)]] = Field(default_factory=dict)
    items_per_order: tuple[int, int] = (1, 3)

    @field_validator("hour_of_day")
    @classmethod
    def _24(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 24 or sum(v) <= 0:
            raise ValueError("needs 24 non-negative weights, not all zero")
        return v

    @field_validator("day_of_week")
    @classmethod
    def _7(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if len(v) != 7 or sum(v) <= 0:
            raise ValueError("needs 7 non-negative weights (Monday first), not all zero")
        return v

    @field_validator("flow_mix")
    @classmethod
    def _some(cls, v: dict[str, float]) -> dict[str, float]:
        if sum(v.values()) <= 0:
            raise ValueError("shares must not all be zero")
        return v


class Warehouse(_Frozen):
    id: Id
    city: str
    backup: str | None = Field(default=None, description="warehouse used when this one is out")
    stock_per_sku: int = Field(default=200, ge=0)
    reorder_point: int = Field(default=40, ge=0)
    restock_qty: int = Field(default=300, ge=1)
    restock_lead: Distribution = Exponential(mean_h=24)


class Hub(_Frozen):
    id: Id
    city: str
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    capacity: int = Field(default=50, ge=1, description="parcels handled at once")
    handling: Distribution = Exponential(mean_h=2)


class Lane(_Frozen):
    origin: str
    destination: str
    transit: Distribution


class Carrier(_Frozen):
    id: Id
    share: float = Field(ge=0)
    tracking_delay: Distribution = Exponential(mean_h=0.5)
    attempt_fail_p: Share = 0.03
    loss_p: Share = 0.001


class HubOutage(_Frozen):
    kind: Literal["hub_outage"] = "hub_outage"
    hub: str
    start: AwareDatetime
    end: AwareDatetime


class SupplierDelay(_Frozen):
    kind: Literal["supplier_delay"] = "supplier_delay"
    stage: str = "procurement"
    start: AwareDatetime
    end: AwareDatetime
    extra: Distribution


class StockOut(_Frozen):
    kind: Literal["stock_out"] = "stock_out"
    warehouse: str
    start: AwareDatetime
    end: AwareDatetime


class CompressorFailure(_Frozen):
    kind: Literal["compressor_failure"] = "compressor_failure"
    start: AwareDatetime
    end: AwareDatetime
    share: Share = Field(default=1.0, description="share of cold-chain parcels in transit hit")


Disruption = Annotated[
    HubOutage | SupplierDelay | StockOut | CompressorFailure, Field(discriminator="kind")
]


class Sensors(_Frozen):
    """Temperature sensors of cold-chain parcels."""

    interval_min: float = Field(default=30, gt=0, le=24 * 60)
    noise_c: float = Field(default=0.3, ge=0)
    drift_c_per_h: float = Field(default=0.02, ge=0)
    excursion_p: Share = Field(default=0.002, description="chance per reading of a spike")
    excursion_c: float = Field(default=6.0, ge=0)
    range_c: tuple[float, float] = (0.0, 4.0)


class MasterData(_Frozen):
    """Size of the Faker-made world (seeded, zh_CN and en_US)."""

    customers: int = Field(default=5_000, ge=1)
    skus: int = Field(default=300, ge=1)
    suppliers: int = Field(default=20, ge=1)


class Scenario(_Frozen):
    """Everything the simulator needs to run one network."""

    name: str
    description: str = ""
    start: AwareDatetime
    timezone: str = "Asia/Shanghai"
    horizon_days: float = Field(default=30, gt=0, le=3660)
    warmup_days: float = Field(default=2, ge=0)
    seed: int = 1
    flows_file: str = Field(default="flows.toml", description="relative to the data folder")
    flows: FlowBook | None = Field(default=None, description="inline flows (instead of flows_file)")
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    stages: tuple[StageModel, ...] = Field(min_length=1)
    demand: Demand
    logistics: bool = Field(default=True, description="ship parcels through hubs after the last stage")
    warehouses: tuple[Warehouse, ...] = ()
    hubs: tuple[Hub, ...] = ()
    lanes: tuple[Lane, ...] = ()
    carriers: tuple[Carrier, ...] = ()
    disruptions: tuple[Disruption, ...] = ()
    sensors: Sensors = Sensors()
    master_data: MasterData = MasterData()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        for i, s in enumerate(self.stages):
            if s.calendar is not None and s.calendar not in self.calendars:
                raise ValueError(f"stages.{i}.calendar: no calendar {s.calendar!r} in [calendars]")
        hubs = {h.id for h in self.hubs}
        for i, lane in enumerate(self.lanes):
            for end in (lane.origin, lane.destination):
                if end not in hubs:
                    raise ValueError(f"lanes.{i}: unknown hub {end!r}")
        warehouses = {w.id for w in self.warehouses}
        for i, w in enumerate(self.warehouses):
            if w.backup is not None and (w.backup not in warehouses or w.backup == w.id):
                raise ValueError(f"warehouses.{i}.backup: {w.backup!r} is not another warehouse")
        for i, d in enumerate(self.disruptions):
            if d.end <= d.start:
                raise ValueError(f"disruptions.{i}: end must be after start")
            if isinstance(d, HubOutage) and d.hub not in hubs:
                raise ValueError(f"disruptions.{i}.hub: unknown hub {d.hub!r}")
            if isinstance(d, StockOut) and d.warehouse not in warehouses:
                raise ValueError(f"disruptions.{i}.warehouse: unknown warehouse {d.warehouse!r}")
        if self.logistics and (not self.hubs or not self.carriers):
            raise ValueError("logistics needs at least one hub and one carrier")
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def stage_model(self, flow: str, stage: str) -> StageModel:
        for s in self.stages:
            if s.flow == flow and s.stage == stage:
                return s
        raise KeyError((flow, stage))

    def resolve_flows(self, data_dir: Path) -> FlowBook:
        """The flows the scenario runs: inline, or read from ``flows_file``."""
        return self.flows if self.flows is not None else load_flows(data_dir / self.flows_file)

    def check_against(self, flows: FlowBook) -> None:
        """Every flow in the mix exists and every one of its stages has a model."""
        for name in self.demand.flow_mix:
            if name not in flows.by_id:
                raise ValueError(f"demand.flow_mix: unknown flow {name!r}")
            for stage in flows.by_id[name].stages:
                try:
                    self.stage_model(name, stage.id)
                except KeyError:
                    raise ValueError(f"stages: no model for stage {stage.id!r} of flow {name!r}") from None
        for i, s in enumerate(self.stages):
            if s.flow not in flows.by_id or s.stage not in flows.by_id[s.flow].stage_index:
                raise ValueError(f"stages.{i}: {s.flow}/{s.stage} is not a stage of the flows")


def _where(path: Path, err: ValidationError) -> str:
    e = err.errors(include_url=False)[0]
    key = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-", "tagged-")))
    msg = str(e["msg"]).removeprefix("Value error, ")
    return f"{path}: {key}: {msg}" if key else f"{path}: {msg}"


def load_scenario(path: Path, *, data_dir: Path | None = None) -> tuple[Scenario, FlowBook]:
    """Read, validate and cross-check a scenario; returns it with the flows it runs."""
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise ScenarioError(_where(path, exc)) from None
    folder = data_dir if data_dir is not None else path.resolve().parent.parent
    try:
        flows = scenario.resolve_flows(folder)
        scenario.check_against(flows)
    except (FlowConfigError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from None
    return scenario, flows


def weekday_name(moment: datetime) -> str:
    return WEEKDAYS[moment.weekday()]
