"""Shipped scenarios load and are sized as their comments say; bad ones fail on one
line naming the file, the key and why; docs/scenarios.md covers every field."""

from __future__ import annotations

import inspect
import re
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

import simulation.distributions as distributions_module
import simulation.scenario as scenario_module
from simulation.scenario import (
    Calendar,
    CompressorFailure,
    HubOutage,
    Scenario,
    ScenarioError,
    StockOut,
    SupplierDelay,
    load_scenario,
)
from tower.flows import FlowBook

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SCENARIOS = sorted((DATA / "scenarios").glob("*.toml"))
DOCS = ROOT / "docs" / "scenarios.md"


def _load(name: str) -> tuple[Scenario, FlowBook]:
    return load_scenario(DATA / "scenarios" / name)


# --- the shipped files ----------------------------------------------------------------


def test_the_promised_scenarios_are_shipped() -> None:
    names = {p.name for p in SCENARIOS}
    assert {"baseline-ecommerce.toml", "manufacturing.toml", "double-11.toml", "mm3.toml"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_every_shipped_scenario_loads(path: Path) -> None:
    scenario, flows = load_scenario(path)
    assert scenario.name == path.stem
    for flow in scenario.demand.flow_mix:
        for stage in flows.by_id[flow].stages:
            scenario.stage_model(flow, stage.id)


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.name)
def test_shapes_have_a_mean_of_one(path: Path) -> None:
    """The comments do their arithmetic with mean-1 shapes: keep the files that way."""
    demand = load_scenario(path)[0].demand
    assert sum(demand.hour_of_day) == pytest.approx(24)
    assert sum(demand.day_of_week) == pytest.approx(7)


def test_baseline_is_about_1200_orders_a_day() -> None:
    scenario, _ = _load("baseline-ecommerce.toml")
    assert scenario.demand.orders_per_day == pytest.approx(1200, rel=0.05)
    mix = scenario.demand.flow_mix
    assert set(mix) == {"ecommerce", "manufacturing"}
    assert mix["ecommerce"] > mix["manufacturing"] > 0
    assert 0.05 <= scenario.demand.cold_chain_share <= 0.08
    assert scenario.demand.rush_share == pytest.approx(0.10)
    assert scenario.demand.custom_share.get("manufacturing", 0) > 0


def test_baseline_evening_peak() -> None:
    hours = _load("baseline-ecommerce.toml")[0].demand.hour_of_day
    assert max(range(24), key=lambda h: hours[h]) in range(19, 23)
    assert min(range(24), key=lambda h: hours[h]) in range(2, 6)


def test_baseline_network_is_chinese_and_wide() -> None:
    scenario, _ = _load("baseline-ecommerce.toml")
    assert 8 <= len(scenario.hubs) <= 12
    for hub in scenario.hubs:
        assert 18 <= hub.lat <= 54 and 73 <= hub.lon <= 135
    backups = {w.id: w.backup for w in scenario.warehouses}
    assert backups["wh-shanghai"] == "wh-hangzhou" and backups["wh-guangzhou"] == "wh-shenzhen"
    assert {c.id for c in scenario.carriers} == {"sf", "jd", "zto", "yto", "ems"}
    assert 10 <= scenario.sensors.interval_min <= 30


def test_baseline_uses_every_distribution_kind() -> None:
    scenario, _ = _load("baseline-ecommerce.toml")
    kinds = {s.service.kind for s in scenario.stages if not s.transit}
    kinds |= {lane.transit.kind for lane in scenario.lanes}
    assert kinds == {"exponential", "lognormal", "gamma", "triangular", "empirical"}


def test_baseline_disruptions_give_every_rule_something_to_catch() -> None:
    scenario, _ = _load("baseline-ecommerce.toml")
    kinds = {type(d) for d in scenario.disruptions}
    assert kinds == {HubOutage, SupplierDelay, StockOut, CompressorFailure}
    assert any(isinstance(d, HubOutage) and d.hub == "hub-wuhan" for d in scenario.disruptions)
    after_warmup = scenario.start + timedelta(days=scenario.warmup_days)
    for d in scenario.disruptions:
        assert after_warmup <= d.start < scenario.start + timedelta(days=21)
        assert d.end <= scenario.start + timedelta(days=scenario.horizon_days)
    outage = next(d for d in scenario.disruptions if isinstance(d, HubOutage))
    assert outage.end - outage.start > timedelta(hours=24)  # long enough to strand parcels


def _multiplier(scenario: Scenario, at: datetime) -> float:
    """The peak multiplier at a moment (the largest of overlapping peaks; 1 outside)."""
    return max((p.multiplier for p in scenario.demand.peaks if p.start <= at < p.end), default=1.0)


def test_double_11_is_three_to_five_times_a_normal_day() -> None:
    scenario, _ = _load("double-11.toml")
    assert scenario.start.month == 11 and scenario.start.day <= 7
    day = datetime(2026, 11, 11, tzinfo=scenario.zone)
    hours = scenario.demand.hour_of_day
    factor = sum(w * _multiplier(scenario, day + timedelta(hours=h, minutes=30))
                 for h, w in enumerate(hours)) / sum(hours)
    assert 3 <= factor <= 5


def test_double_11_has_a_smaller_pre_sale_peak() -> None:
    scenario, _ = _load("double-11.toml")
    pre_sale = [p for p in scenario.demand.peaks if p.end.day < 10]
    assert pre_sale and all(1 < p.multiplier < 3 for p in pre_sale)


def test_manufacturing_has_custom_orders_rework_and_supplier_delays() -> None:
    scenario, _ = _load("manufacturing.toml")
    assert set(scenario.demand.flow_mix) == {"manufacturing"}
    assert scenario.demand.custom_share["manufacturing"] > 0
    assert scenario.stage_model("manufacturing", "quality_check").rework_p > 0
    assert sum(isinstance(d, SupplierDelay) for d in scenario.disruptions) >= 2


# --- the capacity arithmetic in the comments ----------------------------------------------


def _hours(start: time, end: time) -> list[tuple[float, float]]:
    """A daily window as spans of hours in [0, 48) (crossing midnight when end <= start)."""
    a = start.hour + start.minute / 60
    b = end.hour + end.minute / 60
    return [(a, b if b > a else b + 24)]


def _on_shift_per_week(calendar: Calendar | None) -> float:
    """Server-hours per server per week: shifts minus the breaks inside them, days off out."""
    if calendar is None:
        return 24 * 7
    shifts = [span for s in calendar.shifts for span in _hours(s.start, s.end)]
    breaks = [span for b in calendar.breaks for span in _hours(b.start, b.end)]
    daily = sum(e - s for s, e in shifts)
    for bs, be in breaks:
        for shift in (bs, be), (bs + 24, be + 24):
            daily -= sum(max(0.0, min(shift[1], e) - max(shift[0], s)) for s, e in shifts)
    return daily * (7 - len(set(calendar.days_off)))


def _utilization(scenario: Scenario, flow: str, stage: str) -> float:
    model = scenario.stage_model(flow, stage)
    mix = scenario.demand.flow_mix
    orders_per_week = scenario.demand.orders_per_day * 7 * mix[flow] / sum(mix.values())
    work = orders_per_week * model.service.mean / (1 - model.rework_p)
    calendar = scenario.calendars[model.calendar] if model.calendar else None
    return work / (model.capacity * _on_shift_per_week(calendar))


def test_calendar_hours() -> None:
    baseline = _load("baseline-ecommerce.toml")[0]
    assert _on_shift_per_week(baseline.calendars["warehouse"]) == pytest.approx(15 * 7)
    assert _on_shift_per_week(baseline.calendars["office"]) == pytest.approx(40)
    assert _on_shift_per_week(baseline.calendars["factory"]) == pytest.approx(90)


@pytest.mark.parametrize("name", ["baseline-ecommerce.toml", "manufacturing.toml"])
def test_shift_stages_are_busy_but_stable(name: str) -> None:
    """Nominal load 70-90 % of the hours on shift (the files' arithmetic). Stages with
    long jobs aim at the top: the model counts overtime as on shift, so it reports
    them ~10 % lower (about 72-80 % on seeded runs)."""
    scenario, _ = _load(name)
    for s in scenario.stages:
        if s.transit or s.calendar is None:
            continue
        assert 0.70 <= _utilization(scenario, s.flow, s.stage) <= 0.90, f"{s.flow}/{s.stage}"


def test_round_the_clock_order_audit_copes_with_the_evening_peak() -> None:
    scenario, _ = _load("baseline-ecommerce.toml")
    paid = scenario.stage_model("ecommerce", "paid")
    demand = scenario.demand
    share = demand.flow_mix["ecommerce"] / sum(demand.flow_mix.values())
    peak_per_h = demand.orders_per_day * share / 24 * max(demand.hour_of_day) * max(demand.day_of_week)
    assert peak_per_h * paid.service.mean / paid.capacity < 0.9


# --- bad scenarios ----------------------------------------------------------------------

TINY = """\
name = "tiny"
start = 2026-03-02T00:00:00+08:00

[calendars.office]
shifts = [{ start = 09:00:00, end = 18:00:00 }]

[[stages]]
flow = "ecommerce"
stage = "paid"
capacity = 1
service = { kind = "exponential", mean_h = 0.1 }

[[stages]]
flow = "ecommerce"
stage = "picking"
capacity = 2
calendar = "office"
picks = true
service = { kind = "lognormal", mean_h = 0.2, cv = 0.5 }

[[stages]]
flow = "ecommerce"
stage = "packing"
capacity = 2
service = { kind = "gamma", mean_h = 0.1, cv = 0.4 }

[[stages]]
flow = "ecommerce"
stage = "outbound"
capacity = 1
service = { kind = "triangular", min_h = 0.02, mode_h = 0.05, max_h = 0.1 }

[[stages]]
flow = "ecommerce"
stage = "transit"
transit = true

[demand]
orders_per_day = 100
flow_mix = { ecommerce = 1.0 }

[[warehouses]]
id = "wh-a"
city = "上海"
backup = "wh-b"

[[warehouses]]
id = "wh-b"
city = "杭州"

[[hubs]]
id = "hub-a"
city = "上海"
lat = 31.2304
lon = 121.4737

[[hubs]]
id = "hub-b"
city = "杭州"
lat = 30.2741
lon = 120.1551

[[lanes]]
origin = "hub-a"
destination = "hub-b"
transit = { kind = "empirical", values_h = [3, 4, 6] }

[[carriers]]
id = "sf"
share = 1.0
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_tiny_scenario_is_valid(tmp_path: Path) -> None:
    scenario, _ = load_scenario(_write(tmp_path, TINY), data_dir=DATA)
    assert scenario.name == "tiny"


# (what to change in TINY: old, new) -> the key the message must name, and why.
BAD = {
    "bad distribution kind": (
        ('kind = "gamma"', 'kind = "weibull"'), "stages.2.service", "weibull"),
    "bad distribution parameter": (
        ("cv = 0.4", "cv = -1"), "stages.2.service.gamma.cv", "greater than 0"),
    "triangular out of order": (
        ("max_h = 0.1", "max_h = 0.01"), "stages.3.service.triangular", "min_h <= mode_h <= max_h"),
    "unknown calendar": (
        ('calendar = "office"', 'calendar = "night"'), "stages.1.calendar", "no calendar 'night'"),
    "hour_of_day of wrong length": (
        ("orders_per_day = 100", "orders_per_day = 100\nhour_of_day = [1, 2, 3]"),
        "demand.hour_of_day", "24"),
    "day_of_week of wrong length": (
        ("orders_per_day = 100", "orders_per_day = 100\nday_of_week = [1, 1]"),
        "demand.day_of_week", "7"),
    "lane to unknown hub": (
        ('destination = "hub-b"', 'destination = "hub-z"'), "lanes.0", "unknown hub 'hub-z'"),
    "backup warehouse unknown": (
        ('backup = "wh-b"', 'backup = "wh-z"'), "warehouses.0.backup", "'wh-z'"),
    "stage of the flow without a model": (
        ('stage = "packing"', 'stage = "quality_check"'), "stages", "no model for stage 'packing'"),
    "unknown flow in flow_mix": (
        ("flow_mix = { ecommerce = 1.0 }", "flow_mix = { ecommerce = 1.0, retail = 0.5 }"),
        "demand.flow_mix", "unknown flow 'retail'"),
    "misspelt key": (
        ("orders_per_day = 100", "orders_per_day = 100\norders_per_week = 700"),
        "demand.orders_per_week", "not permitted"),
    "stock-out at an unknown warehouse": (
        ("[[carriers]]", '[[disruptions]]\nkind = "stock_out"\nwarehouse = "wh-z"\n'
         "start = 2026-03-03T00:00:00+08:00\nend = 2026-03-04T00:00:00+08:00\n\n[[carriers]]"),
        "disruptions.0.warehouse", "unknown warehouse 'wh-z'"),
    "bad TOML": (('name = "tiny"', 'name = "tiny'), "", "not valid TOML"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_scenario_fails_on_one_line_naming_file_key_and_why(tmp_path: Path, case: str) -> None:
    (old, new), key, why = BAD[case]
    assert old in TINY
    path = _write(tmp_path, TINY.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path, data_dir=DATA)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: {key}: " if key else f"{path}: ")
    assert why in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"nope\.toml: file not found"):
        load_scenario(tmp_path / "nope.toml", data_dir=DATA)


# --- docs/scenarios.md cannot drift from the schema --------------------------------------


def _models(module: object) -> list[type[BaseModel]]:
    return [
        cls for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseModel) and cls.__module__ == getattr(module, "__name__", "")
        and not cls.__name__.startswith("_")
    ]


def test_docs_mention_every_field_of_every_model() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [
        f"{cls.__name__}.{name}"
        for module in (scenario_module, distributions_module)
        for cls in _models(module)
        for name in cls.model_fields
        if f"`{name}`" not in text
    ]
    assert not missing, f"docs/scenarios.md does not explain: {', '.join(missing)}"


def test_docs_name_every_model_and_distribution_kind() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for module in (scenario_module, distributions_module):
        for cls in _models(module):
            assert re.search(rf"\b{cls.__name__}\b", text), cls.__name__
    for kind in ("exponential", "lognormal", "gamma", "triangular", "empirical"):
        assert f'"{kind}"' in text


def test_docs_example_is_a_scenario_that_loads(tmp_path: Path) -> None:
    text = DOCS.read_text(encoding="utf-8")
    example = re.search(r"<!-- example:start -->\s*```toml\n(.*?)```\s*<!-- example:end -->", text, re.S)
    assert example, "docs/scenarios.md lost its marked example"
    scenario, flows = load_scenario(_write(tmp_path, example.group(1)), data_dir=DATA)
    assert scenario.name == "small" and set(flows.by_id) == {"shop"}


def test_docs_walkthrough_figures_match_the_baseline() -> None:
    """The what-if walk-through quotes the baseline's picking crew; keep it true."""
    text = DOCS.read_text(encoding="utf-8")
    picking = _load("baseline-ecommerce.toml")[0].stage_model("ecommerce", "picking")
    assert f"capacity = {picking.capacity}" in text
