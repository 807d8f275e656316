"""The order funnel of one flow: orders entering each stage today and yesterday, the
conversion and drop-off between stages, and how many orders sit in each stage now.

``funnel_rows`` turns the read service's answer (:func:`tower.store.queries.funnel`)
into rows; ``funnel_figure`` draws them. Both are pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import plotly.graph_objects as go

from widgets import palette
from widgets.i18n import Lang, t
from widgets.palette import Theme

DELIVERED = "__delivered__"


@dataclass(frozen=True)
class FunnelRow:
    """One step of the funnel. ``in_stage`` is None for the closing "delivered" step."""

    stage: str
    label: str
    in_stage: int | None
    today: int
    yesterday: int
    conversion_today: float | None  # entered today / entered the step before today
    drop_off_today: int | None      # entered the step before today - entered this one


def funnel_rows(data: Mapping[str, Any], *, labels: Mapping[str, str], delivered_label: str
                ) -> list[FunnelRow]:
    """Rows of the funnel from ``queries.funnel(...)`` (its ``days`` newest first)."""
    days = list(data.get("days", []))
    none: dict[str, Any] = {"entered": {}, "delivered": 0}
    today: dict[str, Any] = days[0] if days else none
    yesterday: dict[str, Any] = days[1] if len(days) > 1 else none
    steps: list[tuple[str, str, int | None, int, int]] = [
        (s["stage"], labels.get(s["stage"], s["stage"]), int(s["in_stage"]),
         int(today["entered"].get(s["stage"], 0)), int(yesterday["entered"].get(s["stage"], 0)))
        for s in data.get("stages", [])
    ]
    steps.append((DELIVERED, delivered_label, None, int(today.get("delivered", 0)),
                  int(yesterday.get("delivered", 0))))
    rows: list[FunnelRow] = []
    previous: int | None = None
    for stage, label, in_stage, n_today, n_yesterday in steps:
        conversion = n_today / previous if previous else None
        drop = previous - n_today if previous is not None else None
        rows.append(FunnelRow(stage, label, in_stage, n_today, n_yesterday, conversion, drop))
        previous = n_today
    return rows


def _axis_label(row: FunnelRow, lang: Lang) -> str:
    if row.in_stage is None:
        return row.label
    return f"{row.label} ({t('funnel.now', lang, n=row.in_stage)})"


def _drops(values: Sequence[int]) -> list[int | str]:
    return ["—", *(before - after for before, after in pairwise(values))]


def funnel_figure(rows: Sequence[FunnelRow], *, title: str, lang: Lang, theme: Theme) -> go.Figure:
    """Today's and yesterday's entries per step side by side, conversion on the bars.

    Built as plain dicts and wrapped without plotly's validation (``_validate=False``):
    validating the layout cost ~30 ms a figure, most of the overview's refresh.
    """
    y = [_axis_label(r, lang) for r in rows]
    hover = (
        "%{y}<br>%{fullData.name}: %{x}<br>"
        + t("funnel.conversion", lang) + ": %{percentPrevious:.0%}<br>"
        + t("funnel.drop_off", lang) + ": %{customdata}<extra></extra>"
    )
    empty = not any(r.today or r.yesterday for r in rows)
    series = [
        (t("funnel.yesterday", lang), [r.yesterday for r in rows], palette.GREY),
        (t("funnel.today", lang), [r.today for r in rows], palette.BLUE),
    ]
    data: list[dict[str, Any]] = [
        {"type": "funnel", "name": name, "y": y, "x": values, "marker": {"color": colour},
         "customdata": _drops(values), "textinfo": "value+percent previous",
         "textposition": "inside", "connector": {"line": {"color": palette.GREY, "width": 1}},
         "hovertemplate": hover}
        for name, values, colour in ([] if empty else series)
    ]
    layout: dict[str, Any] = {
        **palette.figure_layout(theme),
        "title": {"text": title, "x": 0, "xanchor": "left"},
        "funnelmode": "group",
        "legend": {"orientation": "h", "y": -0.05, "x": 0, "traceorder": "reversed"},
    }
    if empty:
        layout["annotations"] = [{"text": t("funnel.empty", lang), "showarrow": False, "xref": "paper",
                                  "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 14}}]
        layout["xaxis"] = {**layout.get("xaxis", {}), "visible": False}
        layout["yaxis"] = {**layout.get("yaxis", {}), "visible": False}
    return go.Figure({"data": data, "layout": layout}, _validate=False)
