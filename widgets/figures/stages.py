"""Figures of the stages screen, pure ``data -> figure``:

- :func:`gantt_bars` / :func:`gantt_figure`: the Gantt across orders, one row per
  order, each stage visit a waiting bar (hatched, pale) then a work bar (solid), the
  stage told by its colour and its name in the legend and the hover;
- :func:`distribution_figure`: per stage the box of its durations (whiskers p10-p90,
  box p25-p75, median, mean) with its benchmark and the benchmark + over_share limit;
  the stages over the limit drawn in the warning colour and labelled with their excess.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from tower.store.stages import StageReview
from widgets import palette
from widgets.i18n import Lang, t
from widgets.palette import Theme

Phase = Literal["wait", "work"]
ROW_PX = 18          # height of one order's row in the Gantt


class VisitLike(Protocol):
    @property
    def order_id(self) -> str: ...
    @property
    def stage(self) -> str: ...
    @property
    def entered_at(self) -> datetime: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def completed_at(self) -> datetime | None: ...


@dataclass(frozen=True)
class GanttBar:
    order_id: str
    stage: str
    phase: Phase
    start: datetime
    end: datetime
    open: bool          # still running at ``now``


def gantt_bars(visits: Sequence[VisitLike], *, now: datetime) -> list[GanttBar]:
    """Waiting (entered -> started) and work (started -> completed, or now) of each visit.

    A visit without a start event is all work when completed (the split is unknown)
    and all waiting while open."""
    bars: list[GanttBar] = []
    for v in visits:
        end = v.completed_at or max(now, v.entered_at)
        started = v.started_at
        if started is None and v.completed_at is None:
            bars.append(GanttBar(v.order_id, v.stage, "wait", v.entered_at, end, True))
            continue
        if started is not None and started > v.entered_at:
            bars.append(GanttBar(v.order_id, v.stage, "wait", v.entered_at, min(started, end), False))
        bars.append(GanttBar(v.order_id, v.stage, "work", started or v.entered_at, end,
                             v.completed_at is None))
    return bars


def stage_colours(stage_ids: Sequence[str]) -> dict[str, str]:
    """One Okabe-Ito colour per stage, in the order given (cycled)."""
    return {s: palette.SERIES[i % len(palette.SERIES)] for i, s in enumerate(stage_ids)}


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(timespec="seconds")


def gantt_figure(bars: Sequence[GanttBar], *, rows: Sequence[str], labels: Mapping[str, str],
                 colours: Mapping[str, str], now: datetime, zone: ZoneInfo, lang: Lang,
                 theme: Theme) -> dict[str, Any]:
    """One row per order (``rows``, top first), its visits as bars on one time axis.

    A plain figure dict (what Dash sends), not a ``go.Figure``: at 200 orders plotly's
    validation of ~800 bars, then its deep copy when serialising, were most of the
    page's refresh (ADR 0005); the tests validate it through ``go.Figure``. The hover
    reads the start from the bar's base and the phase from the trace: one number of
    custom data per bar.
    """
    traces: list[dict[str, Any]] = []
    stages = list(dict.fromkeys([*colours, *(b.stage for b in bars)]))
    for stage in stages:
        for phase in ("wait", "work"):
            mine = [b for b in bars if b.stage == stage and b.phase == phase]
            if not mine:
                continue
            label = labels.get(stage, stage)
            phase_name = t(f"stages.gantt.{phase}", lang)
            starts = [_local(b.start, zone) for b in mine]
            traces.append({
                "type": "bar",
                "name": label if phase == "work" else f"{label} · {phase_name}",
                "legendgroup": stage, "showlegend": phase == "work", "orientation": "h",
                "y": [b.order_id for b in mine],
                "x": [(b.end - b.start).total_seconds() * 1000 for b in mine],
                "base": starts,
                "customdata": [round((b.end - b.start).total_seconds() / 3600, 1) for b in mine],
                "hovertemplate": "%{y}<br>" + label + " · " + phase_name
                                 + "<br>%{base|%Y-%m-%d %H:%M} · %{customdata} h<extra></extra>",
                "marker": {"color": colours.get(stage, palette.GREY),
                           "opacity": 0.45 if phase == "wait" else 1.0,
                           "pattern": {"shape": "/" if phase == "wait" else ""},
                           "line": {"width": 0}},
            })
    if bars:
        # A legend entry for the hatching itself: waiting is told apart by pattern too.
        traces.append({"type": "bar", "name": t("stages.gantt.wait_legend", lang), "x": [None],
                       "y": [None], "orientation": "h",
                       "marker": {"color": palette.GREY, "opacity": 0.45, "pattern": {"shape": "/"}}})
    layout = palette.figure_layout(theme)
    grid = {k: layout["xaxis"][k] for k in ("gridcolor", "zerolinecolor")}
    layout.update(
        barmode="overlay", bargap=0.25,
        height=max(320, 90 + ROW_PX * len(rows)),
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "x": 0},
        xaxis={**grid, "type": "date"},
        yaxis={**grid, "type": "category", "categoryorder": "array", "categoryarray": list(reversed(rows)),
               "automargin": True},
    )
    if bars:
        layout["shapes"] = [{"type": "line", "xref": "x", "yref": "paper", "x0": _local(now, zone),
                             "x1": _local(now, zone), "y0": 0, "y1": 1,
                             "line": {"color": palette.GREY, "dash": "dot", "width": 1}}]
    else:
        layout["annotations"] = [{"text": t("stages.gantt.empty", lang), "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 14}}]
        layout["xaxis"]["visible"] = False
        layout["yaxis"]["visible"] = False
    return {"data": traces, "layout": layout}


@dataclass(frozen=True)
class StageBox:
    """What one box shows, in hours (from a :class:`tower.store.stages.StageReview`)."""

    stage: str
    visits: int
    mean_h: float
    q10: float
    q25: float
    q50: float
    q75: float
    q90: float
    benchmark_h: float
    limit_h: float
    over: bool
    over_share: float | None


def stage_box(review: StageReview) -> StageBox:
    """The box of one reviewed stage."""
    d = review.distribution
    q = d.quantiles_h
    return StageBox(stage=d.stage, visits=d.visits, mean_h=d.mean_h, q10=q[10], q25=q[25], q50=q[50],
                    q75=q[75], q90=q[90], benchmark_h=review.benchmark_h, limit_h=review.limit_h,
                    over=review.over, over_share=review.over_share)


def distribution_figure(boxes: Sequence[StageBox], *, labels: Mapping[str, str], title: str,
                        over_share: float, lang: Lang, theme: Theme) -> dict[str, Any]:
    """Boxes of the stage durations (log hours) with benchmark and limit markers (a
    plain figure dict, as :func:`gantt_figure`)."""
    traces: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    x = [labels.get(b.stage, b.stage) for b in boxes]
    limit_name = t("stages.dist.limit", lang, share=f"{over_share:.0%}")
    for over, colour, key in ((False, palette.BLUE, "stages.dist.within"),
                              (True, palette.BAD, "stages.dist.over")):
        mine = [(label, b) for label, b in zip(x, boxes, strict=True) if b.over == over]
        if not mine:
            continue
        traces.append({
            "type": "box", "name": t(key, lang, share=f"{over_share:.0%}"), "x": [label for label, _ in mine],
            "q1": [b.q25 for _, b in mine], "median": [b.q50 for _, b in mine],
            "q3": [b.q75 for _, b in mine], "lowerfence": [b.q10 for _, b in mine],
            "upperfence": [b.q90 for _, b in mine], "mean": [b.mean_h for _, b in mine], "boxpoints": False,
            "marker": {"color": colour}, "line": {"color": colour}, "fillcolor": colour, "opacity": 0.75,
            "hoverinfo": "x+y",
        })
    if boxes:
        traces.append({
            "type": "scatter", "name": t("stages.dist.benchmark", lang), "x": x,
            "y": [b.benchmark_h for b in boxes], "mode": "markers",
            "marker": {"symbol": "line-ew", "size": 44, "line": {"width": 3, "color": palette.BLUISH_GREEN}},
            "hovertemplate": "%{x}<br>" + t("stages.dist.benchmark", lang) + ": %{y} h<extra></extra>"})
        traces.append({
            "type": "scatter", "name": limit_name, "x": x, "y": [b.limit_h for b in boxes], "mode": "markers",
            "marker": {"symbol": "line-ew", "size": 44, "line": {"width": 2, "color": palette.ORANGE}},
            "hovertemplate": "%{x}<br>" + limit_name + ": %{y:.3g} h<extra></extra>"})
    for label, b in zip(x, boxes, strict=True):
        if b.over and b.over_share is not None:
            annotations.append({"x": label, "y": max(b.q90, b.limit_h), "yshift": 14, "showarrow": False,
                                "text": t("stages.dist.over_by", lang, share=f"{b.over_share:+.0%}"),
                                "font": {"color": palette.BAD, "size": 13}})
    layout = palette.figure_layout(theme)
    layout.update(
        title={"text": title, "x": 0, "xanchor": "left"},
        boxmode="overlay",
        legend={"orientation": "h", "y": -0.12, "x": 0},
        yaxis={**layout["yaxis"], "type": "log", "title": {"text": t("stages.dist.hours", lang)}},
    )
    if not boxes:
        annotations.append({"text": t("stages.dist.empty", lang), "showarrow": False, "xref": "paper",
                            "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 14}})
        layout["xaxis"] = {**layout["xaxis"], "visible": False}
        layout["yaxis"]["visible"] = False
    layout["annotations"] = annotations
    return {"data": traces, "layout": layout}
