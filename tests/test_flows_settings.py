"""Flow files and settings fail early with one clear line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tower.flows import FlowConfigError, load_flows
from tower.settings import DEFAULT_DATA_DIR, SettingsError, load_settings


def test_shipped_flows_match_the_domain() -> None:
    book = load_flows(DEFAULT_DATA_DIR / "flows.toml")
    assert book.by_id["ecommerce"].stage_ids == ("paid", "picking", "packing", "outbound", "transit")
    assert book.by_id["manufacturing"].stage_ids == (
        "order_review", "procurement", "scheduling", "production", "quality_check", "shipping")
    assert book.by_id["manufacturing"].stage("procurement").budget_h == 48
    outbound = book.by_id["ecommerce"].stage("outbound")
    assert [(g.kind, g.from_stage) for g in outbound.gates] == [("qc_photo", "packing")]
    # custom orders get the buffer, rush orders are stricter
    assert book.budget_h("ecommerce", "picking", custom=True, rush=False) == pytest.approx(6)
    assert book.budget_h("ecommerce", "picking", custom=False, rush=True) == pytest.approx(2)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flows.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD_STAGE = 'id = "a"\nname = "A"\nowner = "x"\nbudget_h = 1\ndeliverable = "d"\n'


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[flows]\n", "not valid TOML"),
        ('[[flows]]\nid = "f"\nname = "F"\n', "flows.0.stages: Field required"),
        ('[[flows]]\nid = "f"\nname = "F"\n[[flows.stages]]\nid = "a"\nname = "A"\nowner = "x"\n'
         'budget_h = -1\ndeliverable = "d"\n', "flows.0.stages.0.budget_h"),
        ('[[flows]]\nid = "f"\nname = "F"\n[[flows.stages]]\n' + GOOD_STAGE
         + "[[flows.stages]]\n" + GOOD_STAGE, "stage id 'a' appears twice"),
        ('[[flows]]\nid = "f"\nname = "F"\n[[flows.stages]]\n' + GOOD_STAGE
         + 'gates = [{ kind = "qc_photo", from_stage = "b" }]\n', "is not an earlier stage"),
        ('[[flows]]\nid = "Bad Id"\nname = "F"\n[[flows.stages]]\n' + GOOD_STAGE, "flows.0.id"),
    ],
)
def test_broken_flow_file_names_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(FlowConfigError) as err:
        load_flows(path)
    message = str(err.value)
    assert str(path) in message
    assert needle in message
    assert "\n" not in message


def test_missing_flow_file(tmp_path: Path) -> None:
    with pytest.raises(FlowConfigError, match="file not found"):
        load_flows(tmp_path / "nope.toml")


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "TOWER_TZ", "TOWER_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings()
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("var/tower.db")
    assert s.redis_url is None and s.embedded
    assert s.tz == "Asia/Shanghai"
    assert s.api_token is None
    assert s.future_skew_s == 600


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("TOWER_TZ", "Mars/Olympus", "bad setting TOWER_TZ: unknown time zone"),
        ("DATABASE_URL", "mysql://x", "bad setting DATABASE_URL"),
        ("REDIS_URL", "http://x", "bad setting REDIS_URL"),
        ("TOWER_MAX_BATCH_EVENTS", "lots", "bad setting TOWER_MAX_BATCH_EVENTS"),
        ("TOWER_FUTURE_SKEW_S", "-5", "bad setting TOWER_FUTURE_SKEW_S"),
    ],
)
def test_bad_setting_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_empty_token_means_no_auth(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOWER_API_TOKEN", "")
    assert load_settings().api_token is None
    monkeypatch.setenv("TOWER_API_TOKEN", "s3cret")
    token = load_settings().api_token
    assert token is not None and token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(load_settings())
