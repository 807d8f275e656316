"""Figures of the stages screen without a server (Gantt bars, benchmark lines, the
+over_share highlight), and the page's refresh on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
from dash import no_update

from tests.callbacks import CallbackRecorder
from tower.settings import DEFAULT_DATA_DIR
from tower.store.stages import StageDistribution, StageReview, Visit
from widgets import palette
from widgets.figures.stages import (
    distribution_figure,
    gantt_bars,
    gantt_figure,
    stage_box,
    stage_colours,
)

NOW = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)
ZONE = ZoneInfo("Asia/Shanghai")


def _visit(order_id: str, seq: int, stage: str, entered: datetime, started: datetime | None,
           completed: datetime | None) -> Visit:
    return Visit(order_id, seq, "ecommerce", stage, entered, started, completed)


def test_gantt_bars_split_waiting_from_work() -> None:
    bars = gantt_bars([
        _visit("a", 0, "paid", NOW - 6 * H, NOW - 5 * H, NOW - 4 * H),       # wait 1 h, work 1 h
        _visit("a", 1, "picking", NOW - 4 * H, NOW - 4 * H, None),           # no wait, work until now
        _visit("b", 0, "paid", NOW - 2 * H, None, None),                     # waiting until now
        _visit("c", 0, "paid", NOW - 3 * H, None, NOW - 2 * H),              # no start: all work
    ], now=NOW)
    got = [(b.order_id, b.stage, b.phase, (b.end - b.start) / H, b.open) for b in bars]
    assert got == [("a", "paid", "wait", 1, False), ("a", "paid", "work", 1, False),
                   ("a", "picking", "work", 4, True), ("b", "paid", "wait", 2, True),
                   ("c", "paid", "work", 1, False)]


def test_gantt_figure_one_row_per_order_waiting_hatched() -> None:
    bars = gantt_bars([_visit("a", 0, "paid", NOW - 6 * H, NOW - 5 * H, NOW - 4 * H),
                       _visit("b", 0, "picking", NOW - 2 * H, None, None)], now=NOW)
    colours = stage_colours(["paid", "picking"])
    fig = go.Figure(gantt_figure(bars, rows=["a", "b"], labels={"paid": "Paid", "picking": "Picking"},
                                 colours=colours, now=NOW, zone=ZONE, lang="en", theme="dark"))
    traces = {tr.name: tr for tr in fig.data}
    work, wait = traces["Paid"], traces["Paid · waiting"]
    assert work.marker.color == wait.marker.color == palette.BLUE
    assert wait.marker.pattern.shape == "/" and wait.opacity is None and wait.marker.opacity == 0.45
    assert list(work.x) == [3_600_000.0] and work.base[0] == "2025-11-20T09:00:00"  # local time
    assert wait.showlegend is False and "waiting (hatched)" in traces
    assert list(fig.layout.yaxis.categoryarray) == ["b", "a"]                      # first on top
    assert fig.layout.shapes[0].x0 == "2025-11-20T14:00:00"                         # the "now" line
    empty = go.Figure(gantt_figure([], rows=[], labels={}, colours={}, now=NOW, zone=ZONE, lang="zh-CN",
                                   theme="light"))
    assert empty.layout.annotations[0].text == "此选择下没有订单。"


def _review(stage: str, mean: float, benchmark: float, *, over: bool) -> StageReview:
    q = {0: mean / 4, 10: mean / 3, 25: mean / 2, 50: mean * 0.9, 75: mean * 1.2, 90: mean * 1.6,
         100: mean * 3}
    return StageReview(StageDistribution("ecommerce", stage, 30, mean, None, q), benchmark,
                       benchmark * 1.2, over)


def test_distribution_figure_draws_benchmark_and_highlights_stages_over_it() -> None:
    reviews = [_review("picking", 5.0, 4.0, over=True), _review("packing", 2.1, 2.0, over=False)]
    boxes = [stage_box(r) for r in reviews]
    fig = go.Figure(distribution_figure(boxes, labels={"picking": "Picking", "packing": "Packing"},
                                        title="Durations", over_share=0.2, lang="en", theme="light"))
    traces = {tr.name: tr for tr in fig.data}
    over, within = traces["over benchmark +20%"], traces["within benchmark +20%"]
    assert list(over.x) == ["Picking"] and over.marker.color == palette.BAD
    assert list(within.x) == ["Packing"] and within.marker.color == palette.BLUE
    assert list(over.q1) == [2.5] and list(over.lowerfence) == [5.0 / 3] and list(over.mean) == [5.0]
    bench = traces["benchmark"]
    assert list(bench.x) == ["Picking", "Packing"] and list(bench.y) == [4.0, 2.0]
    limit = traces["benchmark +20%"]
    assert [round(y, 6) for y in limit.y] == [4.8, 2.4]
    notes = [a.text for a in fig.layout.annotations]
    assert notes == ["+25% over"]                                    # said in words, not colour alone
    assert fig.layout.yaxis.type == "log"


def test_empty_distribution_says_so() -> None:
    fig = go.Figure(distribution_figure([], labels={}, title="x", over_share=0.2, lang="zh-CN", theme="dark"))
    assert fig.layout.annotations[0].text == "评估期内没有已完成的阶段。"


def test_stages_refresh_sends_only_what_changed(tower_rt: Any) -> None:
    from tests.test_api import created, stage
    from widgets.config import load_screen_config
    from widgets.context import Screens
    from widgets.pages import stages as page

    screens = Screens(tower=tower_rt, settings=tower_rt.settings,
                      config=load_screen_config(DEFAULT_DATA_DIR / "screens.toml", tower_rt.flows))
    now = datetime.now(UTC)
    events = [{**created("s1"), "occurred_at": (now - 3 * H).isoformat()},
              {**stage("s1", "entered", "paid", 1), "occurred_at": (now - 3 * H).isoformat()},
              {**stage("s1", "completed", "paid", 2), "occurred_at": (now - 2 * H).isoformat()},
              {**stage("s1", "entered", "picking", 3), "occurred_at": (now - 2 * H).isoformat()}]
    tower_rt.ingestor.ingest(events)
    assert tower_rt.flush()


    fake = CallbackRecorder()
    page.register_callbacks(fake, screens)  # type: ignore[arg-type]
    graphs = [{"page": "stages", "kind": "dist", "flow": f.id} for f in tower_rt.flows.flows]
    view = {"lang": "en", "theme": "light"}
    gantt, note, figures, window, _table, sent = fake.func(1, "latest", "200", view, {}, graphs)
    assert {tr.name for tr in go.Figure(gantt).data} >= {"Paid", "Picking · waiting"}   # valid plotly
    assert note.startswith("1 orders")
    assert all(go.Figure(f).layout.yaxis.type == "log" for f in figures) and "20%" in window
    assert "Distributions as of" in window                  # read from the job's summary (cold: computed)
    again = fake.func(2, "latest", "200", view, sent, graphs)
    assert again[2] == [no_update] * len(graphs) and again[4] is no_update
    late = fake.func(3, "late", "200", view, sent, graphs)
    assert go.Figure(late[0]).layout.annotations and late[1].startswith("0 orders")


def test_figures_built_without_validation_are_valid_plotly() -> None:
    # The builders give plain dicts (no plotly validation at run time); validate them here.
    bars = gantt_bars([_visit("a", 0, "paid", NOW - 6 * H, NOW - 5 * H, NOW - 4 * H),
                       _visit("b", 0, "picking", NOW - 2 * H, None, None)], now=NOW)
    figures = [
        gantt_figure(bars, rows=["a", "b"], labels={}, colours=stage_colours(["paid", "picking"]), now=NOW,
                     zone=ZONE, lang="en", theme="dark"),
        gantt_figure([], rows=[], labels={}, colours={}, now=NOW, zone=ZONE, lang="en", theme="light"),
        distribution_figure([stage_box(_review("picking", 5.0, 4.0, over=True)),
                             stage_box(_review("packing", 2.1, 2.0, over=False))], labels={}, title="x",
                            over_share=0.2, lang="en", theme="light"),
        distribution_figure([], labels={}, title="x", over_share=0.2, lang="en", theme="dark"),
    ]
    for fig in figures:
        checked = go.Figure(fig).to_dict()              # raises on anything plotly does not know
        checked["layout"].pop("template", None)         # plotly adds its default template
        assert checked == fig
