"""The rules file (data/rules.toml [rule_engine] and [[rules]]) and the pure conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tower.flows import FlowBook
from tower.rules import conditions as cond
from tower.rules.config import RuleConfigError, load_rules, parse_duration
from tower.settings import DEFAULT_DATA_DIR

RULES = DEFAULT_DATA_DIR / "rules.toml"
T0 = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)

SHIPPED = {
    "stage_over_budget", "stage_no_update", "procurement_unconfirmed", "tracking_missing",
    "parcel_stuck", "hub_retention", "cold_chain_excursion", "stock_out",
    "handoff_without_evidence", "predicted_late", "stage_over_benchmark",
}


def test_shipped_rules() -> None:
    book = load_rules(RULES)
    assert {r.id for r in book.rules} == SHIPPED
    assert book.scan_interval_s == 60
    by_id = {r.id: r for r in book.rules}
    assert by_id["cold_chain_excursion"].hold_down == timedelta(minutes=10)
    assert by_id["stock_out"].tier == "L1"
    assert by_id["stage_over_benchmark"].tier == "L3"
    assert by_id["stage_over_benchmark"].team == "management"
    assert book.team_of_owner("carrier") == "logistics"
    assert book.team_of_owner("quality") == "production"


@pytest.mark.parametrize("text", ["10m", "48h", "1.5h", "7d", "30s"])
def test_durations(text: str) -> None:
    assert parse_duration(text) > timedelta(0)


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = RULES.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "rules.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


@pytest.mark.parametrize(("old", "new", "message"), [
    ('for = "10m"', 'for = "ten minutes"', r"rules\.6\(cold_chain_excursion\)\.for: .*not a duration"),
    ('team = "procurement"', 'team = "purchasing"',
     r"team 'purchasing' is not one of \[response\]\.teams"),
    ('within = "2h"', 'within = "soon"', r"rules\.3\(tracking_missing\).*params\.within"),
    ("scan_interval_s = 60", "scan_interval_s = -1", r"rule_engine\.scan_interval_s"),
    ('condition = "stage_no_update"', 'condition = "stage_asleep"',
     r"rules\.1\(stage_no_update\)\.condition"),
    ('scope = "hub"', 'scope = "order"', r"condition 'hub_retention' has scope 'hub'"),
    ('planning = "production"', 'planning = "planners"', r"owner_teams\.planning"),
])
def test_bad_rules_file_names_file_key_and_why(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _broken(tmp_path, old, new)
    with pytest.raises(RuleConfigError, match=message) as err:
        load_rules(path)
    assert str(err.value).startswith(str(path))


def test_missing_and_unparsable(tmp_path: Path) -> None:
    with pytest.raises(RuleConfigError, match="file not found"):
        load_rules(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[rule_engine\n", encoding="utf-8")
    with pytest.raises(RuleConfigError, match="not valid TOML"):
        load_rules(bad)


def _view(**kw: object) -> cond.OrderView:
    base: dict[str, object] = dict(
        order_id="O-1", flow="ecommerce", stage="picking", status="in_progress", rush=False,
        custom=False, promised_at=T0 + timedelta(days=3), created_at=T0, last_event_at=T0,
        entered_at=T0, completed_at=None, has_parcels=False, evidence=frozenset(),
    )
    base.update(kw)
    return cond.OrderView(**base)  # type: ignore[arg-type]


def test_stage_budget_with_custom_buffer_and_rush(flows: FlowBook) -> None:
    at = T0 + timedelta(hours=3)  # picking budget 4 h; rush x0.5 = 2 h; custom x1.5 = 6 h
    assert cond.stage_over_budget(_view(), at, flows) is None
    assert cond.stage_over_budget(_view(rush=True), at, flows) is not None
    later = T0 + timedelta(hours=5)
    assert cond.stage_over_budget(_view(), later, flows) is not None
    assert cond.stage_over_budget(_view(custom=True), later, flows) is None
    assert cond.stage_over_budget(_view(completed_at=T0 + timedelta(hours=1)), later, flows) is None


def test_estimated_arrival_never_before_now(flows: FlowBook) -> None:
    v = _view(stage="outbound")  # outbound 2 h + transit 36 h
    assert cond.estimated_arrival(flows, v, T0) == T0 + timedelta(hours=38)
    assert cond.estimated_arrival(flows, v, T0 + timedelta(hours=10)) == T0 + timedelta(hours=46)


def test_retention_and_benchmark_thresholds() -> None:
    assert cond.retention_rate(20, 3, share=0.15, min_arrivals=20) is None  # 15 % is not above
    assert cond.retention_rate(20, 4, share=0.15, min_arrivals=20) == 0.2
    assert cond.retention_rate(5, 5, share=0.15, min_arrivals=20) is None
    assert not cond.over_benchmark(4.8, 4, over_share=0.2, visits=30, min_visits=20)
    assert cond.over_benchmark(4.81, 4, over_share=0.2, visits=30, min_visits=20)
