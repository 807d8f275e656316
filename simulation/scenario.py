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

from simulation.distributions import Distribution, Exponential, LogNormal
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
    """How one stage of a flow is worked: servers, their calendar, service time, rework.

    A ``transit`` stage is not worked by servers: it is the carrier's part, played by
    the parcel journey (entered at hand-off, started at pick-up, completed on
    delivery), so its ``capacity`` and ``service`` are not used and ``service`` may be
    left out. A ``picks`` stage takes the order's items from its warehouse's stock.
    """

    flow: str
    stage: str
    capacity: int = Field(default=1, ge=1, le=10_000, description="parallel servers (people, lines)")
    calendar: str | None = Field(default=None, description="name in [calendars]; none = 24/7")
    service: Distribution = Field(default=Exponential(mean_h=1.0), description="work time of one visit")
    rework_p: Share = Field(default=0.0, description="chance the work fails QC and is redone")
    resource: str | None = Field(default=None, description="resource name in events; default stage")
    transit: bool = Field(default=False, description="the carrier's stage, played by the parcel journey")
    picks: bool = Field(default=False, description="takes the items from the warehouse stock on entry")
    site: str | None = Field(default=None, description="site in events; default the order's warehouse")
    source: str | None = Field(default=None, description="event source (wms, erp, mes); default by owner")

    @model_validator(mode="after")
    def _worked_stages_say_how_long(self) -> StageModel:
        if not self.transit and "service" not in self.model_fields_set:
            raise ValueError(f"{self.flow}/{self.stage}: service is required (unless transit = true)")
        if self.transit and self.picks:
            raise ValueError(f"{self.flow}/{self.stage}: a transit stage cannot pick stock")
        return self


class Peak(_Frozen):
    """A promotion window multiplying the arrival rate (e.g. Double 11 at x3).

    Where peaks overlap, the largest multiplier applies (they are not compounded)."""

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
    """Order arrivals: a non-homogeneous Poisson process and the order mix.

    The rate at a moment is ``orders_per_day / 24`` x the hour-of-day weight x the
    day-of-week weight (local time of the scenario zone; each weight list is scaled
    to a mean of 1, so ``orders_per_day`` is the mean over a normal week) x the
    multiplier of a promotion peak. Rush orders' promise is shortened like their
    budgets (``rush_budget_factor`` of the flows), custom orders' lengthened by the
    ``custom_buffer``.
    """

    orders_per_day: float = Field(gt=0, le=10_000_000, description="mean over a normal week")
    flow_mix: dict[str, Annotated[float, Field(ge=0)]] = Field(min_length=1)
    rush_share: Share = 0.0
    custom_share: dict[str, Share] = Field(default_factory=dict)
    cold_chain_share: Share = 0.0
    cold_chain_flows: tuple[str, ...] | None = Field(
        default=None, description="flows whose orders may be cold chain; default every flow")
    cancel_share: Share = 0.0
    hour_of_day: tuple[Annotated[float, Field(ge=0)], ...] = Field(default=(1.0,) * 24)
    day_of_week: tuple[Annotated[float, Field(ge=0)], ...] = Field(default=(1.0,) * 7)
    peaks: tuple[Peak, ...] = ()
    promise_h: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="hours from creation to the promise, per flow")
    items_per_order: tuple[int, int] = (1, 3)
    qty_per_item: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="(min, max) units per item line, per flow; default (1, 3)")
    sku_skew: float = Field(default=1.0, ge=0, le=5, description="Zipf exponent of SKU popularity")
    cancel_after: Distribution = Field(
        default=Exponential(mean_h=2.0), description="when a cancelling customer cancels, after creation")
    channels: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="sales channels per flow, drawn uniformly")

    @field_validator("items_per_order")
    @classmethod
    def _items(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= v[0] <= v[1]:
            raise ValueError("needs 1 <= min <= max")
        return v

    @model_validator(mode="after")
    def _cold_flows_in_the_mix(self) -> Demand:
        for name in self.cold_chain_flows or ():
            if name not in self.flow_mix:
                raise ValueError(f"cold_chain_flows: {name!r} is not in flow_mix")
        return self

    @field_validator("qty_per_item")
    @classmethod
    def _qty(cls, v: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
        for flow, (lo, hi) in v.items():
            if not 1 <= lo <= hi:
                raise ValueError(f"{flow}: needs 1 <= min <= max")
        return v

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
    supplier: str | None = Field(
        default=None, description="the late supplier (SUP-0001 ... of the master data): only orders it "
        "supplies wait; unset: every supplier of the stage is late")


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


class Parcels(_Frozen):
    """How parcels move between the hubs (lanes, when declared, override the road)."""

    first_mile: Distribution = Field(
        default=LogNormal(mean_h=1.5, cv=0.5), description="pick-up at the warehouse to the origin hub")
    last_mile: Distribution = Field(
        default=LogNormal(mean_h=3.0, cv=0.5), description="out for delivery to the doorstep")
    road_kmh: float = Field(default=60, gt=0, description="hub-to-hub speed without a lane")
    road_cv: float = Field(default=0.25, ge=0, le=5, description="lognormal noise of a road leg")
    road_overhead_h: float = Field(default=1.0, ge=0, description="loading and unloading per leg")
    transfer_share: Share = Field(default=0.5, description="parcels routed through one transfer hub")
    detour_max: float = Field(default=1.4, ge=1, description="longest transfer route / direct route")
    redelivery_after: Distribution = Field(
        default=Exponential(mean_h=16), description="after a failed attempt, until the next")
    max_attempts: int = Field(default=3, ge=1, le=10, description="then the parcel waits at a pick-up point")


class Evidence(_Frozen):
    """Hand-off evidence (e.g. the QC photo) and how often it is uploaded late."""

    late_p: Share = Field(default=0.02, description="chance an upload comes late and holds the order")
    late_after: Distribution = Field(
        default=Exponential(mean_h=6), description="delay of a late upload after the stage completed")
    url_base: str = "https://files.example.com"


class GroundTruthFigures(_Frozen):
    """Thresholds that decide what the run records as ground truth."""

    tracking_late_h: float = Field(default=2, gt=0, description="tracking number later than this")


class Sensors(_Frozen):
    """Temperature sensors of cold-chain parcels."""

    interval_min: float = Field(default=30, gt=0, le=24 * 60)
    noise_c: float = Field(default=0.3, ge=0)
    drift_c_per_h: float = Field(default=0.02, ge=0)
    excursion_p: Share = Field(default=0.002, description="chance per reading of a spike")
    excursion_c: float = Field(default=6.0, ge=0)
    range_c: tuple[float, float] = (0.0, 4.0)


def supplier_id(index: int) -> str:
    """The id of the master data's supplier number ``index`` (from 0): ``SUP-0001``, ..."""
    return f"SUP-{index + 1:04d}"


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
    parcels: Parcels = Parcels()
    evidence: Evidence = Evidence()
    ground_truth: GroundTruthFigures = GroundTruthFigures()

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
            if isinstance(d, SupplierDelay) and d.stage not in {s.stage for s in self.stages}:
                raise ValueError(f"disruptions.{i}.stage: no stage {d.stage!r} in [[stages]]")
            if isinstance(d, SupplierDelay) and d.supplier is not None and d.supplier not in {
                    supplier_id(k) for k in range(self.master_data.suppliers)}:
                raise ValueError(f"disruptions.{i}.supplier: no supplier {d.supplier!r} among the "
                                 f"{self.master_data.suppliers} of [master_data]")
        if self.logistics and (not self.hubs or not self.carriers):
            raise ValueError("logistics needs at least one hub and one carrier")
        if self.logistics and sum(c.share for c in self.carriers) <= 0:
            raise ValueError("carriers: shares must not all be zero")
        if self.logistics:
            hub_cities = {h.city for h in self.hubs}
            for i, w in enumerate(self.warehouses):
                if w.city not in hub_cities:
                    raise ValueError(f"warehouses.{i}.city: no hub in {w.city!r} to ship from")
        for i, s in enumerate(self.stages):
            if s.transit and not self.logistics:
                raise ValueError(f"stages.{i}: a transit stage needs logistics = true")
            if s.picks and not self.warehouses:
                raise ValueError(f"stages.{i}: a picking stage needs [[warehouses]]")
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
            if s.transit and flows.by_id[s.flow].stages[-1].id != s.stage:
                raise ValueError(f"stages.{i}: transit stage {s.stage!r} must be the last of its flow")


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
