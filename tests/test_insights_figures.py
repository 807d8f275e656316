"""Figures of the insights screen without a server (Pareto bars and cumulative line),
and the page's refresh with exceptions resolved through tower.exceptions.store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import plotly.graph_objects as go
from dash import no_update

from tests.callbacks import CallbackRecorder
from tower.exceptions import store as exceptions
from tower.exceptions.policy import load_policy
from tower.settings import DEFAULT_DATA_DIR
from widgets import palette
from widgets.figures.insights import pareto_figure, pareto_rows

CAUSES = [{"cause": "weather", "n": 1}, {"cause": "packaging_shortage", "n": 7},
          {"cause": "supplier_delay", "n": 5}, {"cause": "carrier_delay", "n": 5},
          {"cause": "other", "n": 2}]


def test_pareto_rows_sort_and_accumulate() -> None:
    rows = pareto_rows(CAUSES, labels={"packaging_shortage": "Packaging"})
    assert [r.cause for r in rows] == ["packaging_shortage", "carrier_delay", "supplier_delay", "other",
                                       "weather"]
    assert rows[0].label == "Packaging" and rows[1].label == "carrier_delay"
    assert [r.top for r in rows] == [True, True, True, False, False]
    assert [round(r.share, 4) for r in rows] == [0.35, 0.25, 0.25, 0.1, 0.05]
    assert [round(r.cumulative, 4) for r in rows] == [0.35, 0.6, 0.85, 0.95, 1.0]
    assert pareto_rows([], labels={}) == []


def test_pareto_figure_bars_and_cumulative_line() -> None:
    fig = go.Figure(pareto_figure(pareto_rows(CAUSES, labels={}), title="Causes", lang="en", theme="dark"))
    bars, line = fig.data
    assert bars.type == "bar" and list(bars.y) == [7, 5, 5, 2, 1]
    assert list(bars.marker.color) == [palette.VERMILION] * 3 + [palette.GREY] * 2   # top 3 apart
    assert list(bars.text) == ["35%", "25%", "25%", "10%", "5%"]                   # shares in words
    assert line.type == "scatter" and line.yaxis == "y2"
    assert [round(y, 2) for y in line.y] == [0.35, 0.6, 0.85, 0.95, 1.0]
    assert fig.layout.yaxis2.tickformat == ".0%" and tuple(fig.layout.yaxis2.range) == (0, 1.05)
    assert line.name == "cumulative share"


def test_empty_pareto_says_so() -> None:
    fig = go.Figure(pareto_figure([], title="x", lang="zh-CN", theme="light"))
    assert fig.data == () and fig.layout.annotations[0].text == "本月没有带根本原因解决的异常。"


def test_pareto_built_without_validation_is_valid_plotly() -> None:
    # The builder gives a plain dict (no plotly validation at run time); validate it here.
    rows = pareto_rows([{"cause": "a", "n": 3}, {"cause": "b", "n": 1}], labels={})
    for fig in (pareto_figure(rows, title="x", lang="en", theme="dark"),
                pareto_figure([], title="x", lang="en", theme="light")):
        checked = go.Figure(fig).to_dict()              # raises on anything plotly does not know
        checked["layout"].pop("template", None)         # plotly adds its default template
        assert checked == fig


def seed_resolved(engine: Any, now: datetime, causes: list[tuple[str, str | None, str | None]]) -> None:
    """Raise and resolve one exception per (cause, supplier, carrier), as people would."""
    policy = load_policy(DEFAULT_DATA_DIR / "rules.toml")
    with engine.begin() as conn:
        for i, (cause, supplier, carrier) in enumerate(causes):
            raised = exceptions.raise_or_bump(conn, exceptions.Trigger(
                rule="manual", scope_key=f"order:seed-{i}", tier="L2", team="logistics",
                title=f"seeded {cause} {i}", condition_since=now - timedelta(hours=2),
                order_id=f"seed-{i}"), now=now - timedelta(hours=2), policy=policy, raised_by="test")
            exceptions.acknowledge(conn, raised.id, actor="test", now=now - timedelta(hours=1))
            exceptions.resolve(conn, raised.id, cause=exceptions.RootCause(
                cause=cause, supplier=supplier, carrier=carrier), actor="test", now=now, policy=policy)


def test_insights_refresh_sends_only_what_changed(tower_rt: Any) -> None:
    from widgets.config import load_screen_config
    from widgets.context import Screens
    from widgets.pages import insights as page

    screens = Screens(tower=tower_rt, settings=tower_rt.settings,
                      config=load_screen_config(DEFAULT_DATA_DIR / "screens.toml", tower_rt.flows))
    now = datetime.now(UTC)
    seed_resolved(tower_rt.engine, now, [("packaging_shortage", None, None)] * 3
                  + [("supplier_delay", "ACME", None)] * 2 + [("carrier_delay", None, "SF")])


    fake = CallbackRecorder()
    page.register_callbacks(fake, screens)  # type: ignore[arg-type]
    view = {"lang": "zh-CN", "theme": "dark"}
    out = fake.func(1, None, view, {})
    note, pareto, _, top3, *_rest, sent = out
    assert "Asia/Shanghai" in note or "UTC" in note
    assert "数据截至" in note                     # the month's summary, as of when computed
    assert list(go.Figure(pareto).data[0].y) == [3, 2, 1]
    assert top3[0].children == "包装材料短缺：50%（3）"
    suppliers = out[11]
    assert "ACME" in str(suppliers)
    response = out[13]
    assert "全部" in str(response)
    again = fake.func(2, None, view, sent)
    assert again[1] is no_update and again[3] is no_update and again[11] is no_update
