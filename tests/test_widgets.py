"""The screens without a browser: URL view, catalogue, figure builders, configuration,
the app factory, and the overview's refresh on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from dash import no_update

from tests.callbacks import CallbackRecorder
from tower.flows import FlowBook
from tower.settings import DEFAULT_DATA_DIR, Settings
from widgets import i18n, palette
from widgets.config import ScreenConfigError, load_screen_config
from widgets.figures.funnel import DELIVERED, funnel_figure, funnel_rows
from widgets.ids import PageIds
from widgets.shell import navbar
from widgets.view import PAGE_PATHS, View

FUNNEL = {
    "flow": "ecommerce",
    "stages": [{"stage": "paid", "in_stage": 3}, {"stage": "picking", "in_stage": 5},
               {"stage": "packing", "in_stage": 0}],
    "by_status": {"in_progress": 8},
    "days": [
        {"day": "2025-11-20", "entered": {"paid": 10, "picking": 8, "packing": 6}, "delivered": 4},
        {"day": "2025-11-19", "entered": {"paid": 12, "picking": 12, "packing": 9}, "delivered": 7},
    ],
}


# --- view from the URL -------------------------------------------------------------

def test_view_reads_the_wall_screen_link() -> None:
    view = View.from_search("?kiosk=1&lang=zh-CN&rotate=30&pages=overview,network,emergency-room")
    assert view.kiosk and view.lang == "zh-CN" and view.theme == "dark"
    assert view.rotation_paths() == ["/", "/network", "/emergency-room"]
    assert View.from_search(view.query()) == view


def test_view_falls_back_on_bad_values() -> None:
    view = View.from_search("?lang=fr&theme=pink&rotate=soon&pages=nowhere")
    assert (view.lang, view.theme, view.kiosk, view.rotate_s, view.pages) == ("en", "light", False, None, ())
    assert View.from_search("?rotate=1").rotate_s == 5  # too fast to read: clamped
    assert View.from_search("?rotate=10&pages=nowhere").pages == tuple(PAGE_PATHS)
    assert View.from_search("", default_lang="zh-CN").lang == "zh-CN"


def test_view_query_keeps_the_view_and_applies_changes() -> None:
    view = View.from_search("?lang=zh&theme=dark")
    assert view.query() == "?lang=zh-CN&theme=dark"
    assert view.query(lang="en") == "?lang=en&theme=dark"
    assert View.from_search("?lang=en").query(theme="dark") == "?lang=en&theme=dark"


@pytest.mark.parametrize(("tag", "lang"), [("zh-CN", "zh-CN"), ("zh_cn", "zh-CN"), ("zh-Hans", "zh-CN"),
                                           ("en-GB", "en"), ("", "en"), (None, "en"), ("de", "en")])
def test_language_tags(tag: str | None, lang: str) -> None:
    assert i18n.normalise_lang(tag) == lang


# --- catalogue ---------------------------------------------------------------------

def test_catalogue_has_every_key_in_every_language_with_the_same_placeholders() -> None:
    english = i18n.CATALOGUE["en"]
    for lang in i18n.LANGS:
        assert set(i18n.CATALOGUE[lang]) == set(english), lang
        for key, text in i18n.CATALOGUE[lang].items():
            assert set(re.findall(r"{(\w+)}", text)) == set(re.findall(r"{(\w+)}", english[key])), key


def test_every_page_and_shipped_flow_has_names(flows: FlowBook) -> None:
    for page in PAGE_PATHS:
        for lang in i18n.LANGS:
            assert i18n.t(f"page.{page}", lang)
    for flow in flows.flows:
        assert f"flow.{flow.id}" in i18n.NAMES["zh-CN"]
        for stage in flow.stages:
            assert f"stage.{stage.id}" in i18n.NAMES["zh-CN"], stage.id


def test_ages_read_like_a_wall() -> None:
    assert [i18n.age(s, "en") for s in (0, 42, 300, 7_200, 200_000)] == ["0 s", "42 s", "5 min", "2 h", "2 d"]
    assert i18n.age(90, "zh-CN") == "90 秒"


# --- ids, palette --------------------------------------------------------------------

def test_ids_are_page_prefixed() -> None:
    ids = PageIds("overview")
    assert ids("kpis") == "overview-kpis"
    assert ids.match("funnel", flow="ecommerce") == {"page": "overview", "kind": "funnel",
                                                     "flow": "ecommerce"}


def test_palette_is_okabe_ito_and_themes_differ() -> None:
    assert len(set(palette.SERIES)) == len(palette.SERIES) == 7
    assert palette.figure_layout("dark")["font"]["color"] != palette.figure_layout("light")["font"]["color"]
    assert palette.normalise_theme("neon") == "light"


# --- figure builders -----------------------------------------------------------------

def test_funnel_rows_give_conversion_and_drop_off() -> None:
    rows = funnel_rows(FUNNEL, labels={"paid": "Paid"}, delivered_label="Delivered")
    assert [r.stage for r in rows] == ["paid", "picking", "packing", DELIVERED]
    assert [r.label for r in rows][:2] == ["Paid", "picking"]
    assert [(r.today, r.yesterday) for r in rows] == [(10, 12), (8, 12), (6, 9), (4, 7)]
    assert [r.in_stage for r in rows] == [3, 5, 0, None]
    assert rows[0].conversion_today is None and rows[0].drop_off_today is None
    assert rows[1].conversion_today == 0.8 and rows[1].drop_off_today == 2
    assert rows[3].conversion_today == pytest.approx(4 / 6)


def test_funnel_rows_of_no_days_are_zero() -> None:
    rows = funnel_rows({"stages": [{"stage": "paid", "in_stage": 0}], "days": []}, labels={},
                       delivered_label="D")
    assert [(r.today, r.yesterday, r.conversion_today) for r in rows] == [(0, 0, None), (0, 0, None)]


def test_funnel_figure_draws_today_against_yesterday() -> None:
    rows = funnel_rows(FUNNEL, labels={}, delivered_label="Delivered")
    fig = funnel_figure(rows, title="Funnel", lang="en", theme="dark")
    assert isinstance(fig, go.Figure)
    yesterday, today = fig.data
    assert (today.name, yesterday.name) == ("Entered today", "Entered yesterday")
    assert list(today.x) == [10, 8, 6, 4] and list(yesterday.x) == [12, 12, 9, 7]
    assert today.y[0] == "paid (3 now)" and today.y[-1] == "Delivered"
    assert list(today.customdata) == ["—", 2, 2, 2]
    assert today.marker.color == palette.BLUE
    assert fig.layout.funnelmode == "group"
    zh = funnel_figure(rows, title="漏斗", lang="zh-CN", theme="light")
    assert zh.data[1].name == "今日进入" and "当前 3" in zh.data[1].y[0]


def test_empty_funnel_says_so() -> None:
    rows = funnel_rows({"stages": [{"stage": "paid", "in_stage": 0}], "days": []}, labels={},
                       delivered_label="D")
    fig = funnel_figure(rows, title="F", lang="en", theme="light")
    assert fig.data == () and "No orders" in fig.layout.annotations[0].text


# --- configuration -------------------------------------------------------------------

def test_shipped_screen_config_loads(flows: FlowBook) -> None:
    config = load_screen_config(DEFAULT_DATA_DIR / "screens.toml", flows)
    assert config.overview.shipped_on_entering["ecommerce"] == "transit"
    assert load_screen_config(Path("/nonexistent/screens.toml"), flows).refresh_s == 5


def test_bad_screen_config_names_file_and_key(flows: FlowBook, tmp_path: Path) -> None:
    path = tmp_path / "screens.toml"
    path.write_text('[overview]\nshipped_on_entering = { ecommerce = "painting" }\n', encoding="utf-8")
    with pytest.raises(ScreenConfigError, match=r"screens.toml: overview.shipped_on_entering.ecommerce"):
        load_screen_config(path, flows)
    path.write_text("refresh_s = 0\n", encoding="utf-8")
    with pytest.raises(ScreenConfigError, match="refresh_s"):
        load_screen_config(path, flows)


# --- shell and app factory -------------------------------------------------------------

def _texts(component: Any) -> list[str]:
    found: list[str] = []
    if isinstance(component, str):
        return [component]
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None:
            found += _texts(child)
    return found


def _hrefs(component: Any) -> list[str]:
    found = [component.href] if getattr(component, "href", None) else []
    children = getattr(component, "children", None)
    for child in children if isinstance(children, list) else [children]:
        if child is not None and not isinstance(child, str):
            found += _hrefs(child)
    return found


def test_navbar_links_keep_the_view() -> None:
    bar = navbar(View.from_search("?lang=zh-CN&theme=dark"), "/network")
    assert "总览" in _texts(bar) and "订单急诊室" in _texts(bar)
    hrefs = _hrefs(bar)
    assert "/emergency-room?lang=zh-CN&theme=dark" in hrefs
    assert "/network?lang=en&theme=dark" in hrefs          # the language switch
    assert "/network?lang=zh-CN&theme=light" in hrefs      # the theme switch


def test_create_app_twice_gives_each_app_its_pages_and_callbacks(tmp_path: Path) -> None:
    from app import create_app

    apps = [create_app(Settings(database_url=f"sqlite:///{tmp_path / f'a{i}.db'}", redis_url=None,
                                api_token=None)) for i in range(2)]
    for app in apps:
        client = app.server.test_client()
        page = client.get("/?lang=zh-CN").get_data(as_text=True)
        assert "cdn" not in page.lower() and '"disable_version_check":true' in page
        deps = client.get("/_dash-dependencies").get_json()
        outputs = " ".join(d["output"] for d in deps)
        assert "overview-kpis.children" in outputs and "shell-fresh.data" in outputs
    import dash

    assert {p["path"] for p in dash.page_registry.values()} >= set(PAGE_PATHS.values())


def test_overview_refresh_sends_only_what_changed(tower_rt: Any) -> None:
    from tests.test_api import created, stage
    from widgets.config import ScreenConfig
    from widgets.context import Screens
    from widgets.pages import overview

    screens = Screens(tower=tower_rt, settings=tower_rt.settings,
                      config=load_screen_config(DEFAULT_DATA_DIR / "screens.toml", tower_rt.flows))
    assert isinstance(screens.config, ScreenConfig)
    now = datetime.now(UTC)
    tower_rt.ingestor.ingest([{**created("w1"), "occurred_at": (now - timedelta(minutes=5)).isoformat()},
                              {**stage("w1", "entered", "picking", 1),
                               "occurred_at": (now - timedelta(minutes=4)).isoformat()}])
    assert tower_rt.flush()
    data = overview.gather(screens)
    assert data["kpis"]["orders"]["in_flight"] == 1
    assert data["funnels"]["ecommerce"]["days"][0]["entered"]["picking"] == 1


    fake = CallbackRecorder()
    overview.register_callbacks(fake, screens)  # type: ignore[arg-type]
    graphs = [{"page": "overview", "kind": "funnel", "flow": f.id} for f in tower_rt.flows.flows]
    kpis, figures, ticks, sent = fake.func(1, {"lang": "zh-CN", "theme": "dark"}, {}, graphs)
    assert kpis is not no_update and ticks is not no_update
    assert all(isinstance(f, go.Figure) for f in figures)
    assert "在途订单" in _texts(kpis[0])
    again = fake.func(2, {"lang": "zh-CN", "theme": "dark"}, sent, graphs)
    assert again[1] == [no_update] * len(graphs) and again[2] is no_update
