"""The order's stage Gantt as a pure builder: waiting and work apart, the planned budget,
rework as rows of their own, evidence and gate marks; no server, no store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import plotly.graph_objects as go
import pytest

from widgets import i18n, palette
from widgets.figures.gantt import (
    EVIDENCE,
    GATE_COLOUR,
    WAITING,
    WORK,
    gantt_figure,
    gantt_marks,
    gantt_rows,
    is_over_budget,
)

T0 = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)
ZONE = ZoneInfo("Asia/Shanghai")


@dataclass
class V:
    seq: int
    stage: str
    entered_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


VISITS = [
    V(0, "quality_check", T0, T0 + 1 * H, T0 + 3 * H),
    V(1, "production", T0 + 3 * H, T0 + 5 * H, T0 + 20 * H),       # rework: back to production
    V(2, "quality_check", T0 + 20 * H, T0 + 21 * H, T0 + 22 * H),
    V(3, "shipping", T0 + 22 * H, None, None),                      # open, still waiting
]
BUDGETS = {"quality_check": 4.0, "production": 10.0, "shipping": 2.0}
LABELS = {"quality_check": "QC", "production": "Production"}


def _traces(fig: go.Figure, name: str) -> list[go.Bar | go.Scatter]:
    return [tr for tr in fig.data if tr.name == name]


def test_rows_number_rework_and_carry_budgets() -> None:
    rows = gantt_rows(list(reversed(VISITS)), budgets_h=BUDGETS, labels=LABELS)
    assert [r.label for r in rows] == ["QC", "Production", "QC (2)", "shipping"]
    assert [r.visit for r in rows] == [1, 1, 2, 1]
    assert [r.budget_h for r in rows] == [4.0, 10.0, 4.0, 2.0]
    now = T0 + 30 * H
    assert [is_over_budget(r, now) for r in rows] == [False, True, False, True]


def test_waiting_and_work_are_bars_of_their_own_colour() -> None:
    rows = gantt_rows(VISITS, budgets_h=BUDGETS, labels=LABELS)
    now = T0 + 30 * H
    fig = gantt_figure(rows, now=now, zone=ZONE, lang="en", theme="light")
    waiting, = _traces(fig, "Waiting")
    work, = _traces(fig, "Work")
    assert waiting.marker.color == WAITING and work.marker.color == WORK and WAITING != WORK
    # waiting entered -> started (open stay: to now), in milliseconds from a local base
    assert list(waiting.x) == [1 * 3_600_000, 2 * 3_600_000, 1 * 3_600_000, 8 * 3_600_000]
    assert waiting.base[0] == "2026-11-11T08:00:00"          # shown in TOWER_TZ (UTC+8)
    # the open stay has no work bar yet
    assert list(work.y) == ["QC", "Production", "QC (2)"]
    assert list(work.x) == [2 * 3_600_000, 15 * 3_600_000, 1 * 3_600_000]
    assert fig.layout.barmode == "overlay"
    assert list(fig.layout.yaxis.categoryarray) == ["QC", "Production", "QC (2)", "shipping"]


def test_budget_is_an_outline_from_the_entry() -> None:
    rows = gantt_rows(VISITS, budgets_h=BUDGETS, labels=LABELS)
    fig = gantt_figure(rows, now=T0 + 30 * H, zone=ZONE, lang="en", theme="dark")
    budget, = _traces(fig, "Planned budget")
    assert budget.marker.color == "rgba(0,0,0,0)" and budget.marker.line.color == palette.GREY
    assert list(budget.x) == [4 * 3_600_000, 10 * 3_600_000, 4 * 3_600_000, 2 * 3_600_000]
    assert budget.base[1] == "2026-11-11T11:00:00"
    assert budget.width > _traces(fig, "Work")[0].width       # drawn around the bars
    # over budget says so in its hover (production took 17 h of 10)
    assert "+7.0 h" in budget.customdata[1][1]
    assert budget.customdata[0][1] == ""


def test_evidence_and_gates_are_marked() -> None:
    rows = gantt_rows(VISITS, budgets_h=BUDGETS, labels=LABELS)
    evidence = [("quality_check", "qc_photo", T0 + 21.5 * H)]
    gates = {"shipping": [("qc_photo", "quality_check")], "production": [("bom", "quality_check")]}
    marks = gantt_marks(rows, evidence=evidence, gates=gates)
    ev = [m for m in marks if m.kind == "evidence"]
    assert [(m.seq, m.what) for m in ev] == [(2, "qc_photo")]    # on the rework stay it came in
    gate = {(m.seq, m.what): m.state for m in marks if m.kind == "gate"}
    assert gate == {(3, "qc_photo"): "passed", (1, "bom"): "missing"}
    late = gantt_marks(rows, evidence=[("quality_check", "qc_photo", T0 + 23 * H)], gates=gates)
    assert {m.state for m in late if m.what == "qc_photo" and m.kind == "gate"} == {"late"}
    fig = gantt_figure(rows, marks=marks, now=T0 + 30 * H, promised_at=T0 + 48 * H, zone=ZONE,
                       lang="en", theme="light")
    star, = _traces(fig, "Evidence")
    assert star.marker.symbol == "star" and star.marker.color == EVIDENCE and list(star.y) == ["QC (2)"]
    passed, = _traces(fig, "Gate passed")
    missing, = _traces(fig, "Gate evidence missing")
    assert list(passed.y) == ["shipping"] and passed.marker.color == GATE_COLOUR["passed"]
    assert list(missing.y) == ["Production"] and missing.marker.color == GATE_COLOUR["missing"]
    assert passed.marker.symbol != missing.marker.symbol          # not by colour alone
    texts = [a.text for a in fig.layout.annotations]
    assert texts == ["now", "promised"]


@pytest.mark.parametrize("lang", i18n.LANGS)
def test_empty_order_and_both_languages(lang: i18n.Lang) -> None:
    fig = gantt_figure([], now=T0, zone=ZONE, lang=lang, theme="light")
    assert fig.data == ()
    assert fig.layout.annotations[0].text == i18n.t("orders.gantt.empty", lang)
    rows = gantt_rows(VISITS, budgets_h={}, labels={})
    fig = gantt_figure(rows, now=T0 + 30 * H, zone=ZONE, lang=lang, theme="light")
    assert {tr.name for tr in fig.data} == {i18n.t("orders.gantt.waiting", lang),
                                            i18n.t("orders.gantt.work", lang)}
    fig.to_json()  # serialisable as the page sends it
