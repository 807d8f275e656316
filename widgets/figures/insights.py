"""Figures of the insights screen, pure ``data -> figure``.

:func:`pareto_rows` / :func:`pareto_figure`: the delay causes of the month, most
frequent first, as bars (the top ``top`` in colour, each labelled with its share) and
the cumulative share as a line on a 0-100 % axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from widgets import palette
from widgets.i18n import Lang, t
from widgets.palette import Theme


@dataclass(frozen=True)
class ParetoRow:
    cause: str
    label: str
    n: int
    share: float
    cumulative: float
    top: bool


def pareto_rows(causes: Sequence[Mapping[str, Any]], *, labels: Mapping[str, str], top: int = 3
                ) -> list[ParetoRow]:
    """Rows from ``measures.root_causes(...)["causes"]`` (``cause``, ``n``), most first."""
    ordered = sorted(causes, key=lambda c: (-int(c["n"]), str(c["cause"])))
    total = sum(int(c["n"]) for c in ordered)
    rows: list[ParetoRow] = []
    running = 0
    for i, c in enumerate(ordered):
        n = int(c["n"])
        running += n
        rows.append(ParetoRow(cause=str(c["cause"]), label=labels.get(str(c["cause"]), str(c["cause"])),
                              n=n, share=n / total if total else 0.0,
                              cumulative=running / total if total else 0.0, top=i < top))
    return rows


def pareto_figure(rows: Sequence[ParetoRow], *, title: str, lang: Lang, theme: Theme) -> dict[str, Any]:
    """Bars per cause (count) and the cumulative share line (right axis, 0-100 %).

    A plain figure dict (what Dash sends): plotly's validation and deep copy of a
    ``go.Figure`` were most of the refresh's time (ADR 0005); the tests validate it
    through ``go.Figure``."""
    traces: list[dict[str, Any]] = []
    if rows:
        traces.append({
            "type": "bar", "name": t("insights.pareto.count", lang), "x": [r.label for r in rows],
            "y": [r.n for r in rows],
            "marker": {"color": [palette.VERMILION if r.top else palette.GREY for r in rows]},
            "text": [f"{r.share:.0%}" for r in rows], "textposition": "outside",
            "hovertemplate": "%{x}: %{y} (%{text})<extra></extra>"})
        traces.append({
            "type": "scatter", "name": t("insights.pareto.cumulative", lang), "x": [r.label for r in rows],
            "y": [r.cumulative for r in rows], "yaxis": "y2", "mode": "lines+markers",
            "line": {"color": palette.BLUE, "width": 2}, "marker": {"size": 7},
            "hovertemplate": "%{x}: %{y:.0%}<extra></extra>"})
    layout = palette.figure_layout(theme)
    layout.update(
        title={"text": title, "x": 0, "xanchor": "left"},
        legend={"orientation": "h", "y": -0.2, "x": 0},
        yaxis={**layout["yaxis"], "title": {"text": t("insights.pareto.count", lang)}, "rangemode": "tozero"},
        yaxis2={"overlaying": "y", "side": "right", "range": [0, 1.05], "tickformat": ".0%",
                "showgrid": False},
    )
    if not rows:
        layout["annotations"] = [{"text": t("insights.pareto.empty", lang), "showarrow": False,
                                  "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 14}}]
        layout["xaxis"] = {**layout["xaxis"], "visible": False}
        layout["yaxis"]["visible"] = False
        layout["yaxis2"]["visible"] = False
    return {"data": traces, "layout": layout}
