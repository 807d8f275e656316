"""The transit-hub heatmap: hub x hour of retention rate, mean dwell or arrivals, with
the cells whose retention is over the warning share marked by a shape (not colour alone).

``heatmap_grid`` lays the read service's cells (:func:`tower.store.network.hub_hours`)
on a full hub x hour grid, hours in the tower's zone; ``heatmap_figure`` draws it.
Both are pure.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from tower.store.network import HubHour
from widgets import palette
from widgets.i18n import Lang, t
from widgets.palette import Theme

Measure = Literal["retention", "dwell", "arrivals"]
MEASURES: Final[tuple[Measure, ...]] = ("retention", "dwell", "arrivals")
HOUR_FORMAT: Final = "%m-%d %H:00"
MAX_TICKS: Final = 10
TICK_STEPS_H: Final = (1, 2, 3, 4, 6, 12, 24)


def _mix(colour: str, toward: str, share: float) -> str:
    """``colour`` moved ``share`` of the way to ``toward`` (both ``#rrggbb``)."""
    a = [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(toward[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * share):02x}" for x, y in zip(a, b, strict=True))


def colour_scale(theme: Theme) -> list[list[Any]]:
    """A sequential scale from the Okabe–Ito blues (readable with every common colour-vision
    deficiency): faint to strong on the theme's background."""
    if theme == "dark":
        return [[0.0, _mix(palette.BLUE, "#0f1720", 0.75)], [0.5, palette.BLUE],
                [1.0, palette.SKY_BLUE]]
    return [[0.0, _mix(palette.SKY_BLUE, "#ffffff", 0.85)], [0.5, palette.SKY_BLUE],
            [1.0, palette.BLUE]]


@dataclass(frozen=True)
class HeatGrid:
    """Rows (hubs, top first) x columns (hours, oldest first) of one measure.

    ``hours`` are the UTC starts of the columns and ``labels`` the same hours in the
    tower's zone; ``over`` lists the (row, column) of cells over the warning share.
    """

    hubs: tuple[str, ...]
    hub_labels: tuple[str, ...]
    hours: tuple[datetime, ...]
    labels: tuple[str, ...]
    z: tuple[tuple[float | None, ...], ...]
    arrivals: tuple[tuple[int, ...], ...]
    retained: tuple[tuple[int, ...], ...]
    dwell_h: tuple[tuple[float | None, ...], ...]
    over: tuple[tuple[int, int], ...]


def heatmap_grid(cells: Iterable[HubHour], *, measure: Measure, since: datetime, now: datetime,
                 zone: ZoneInfo, warn_share: float, hub_order: Sequence[str] = (),
                 hub_labels: Mapping[str, str] | None = None) -> HeatGrid:
    """Every hour from ``since`` to ``now`` and every hub (those of ``hub_order`` first,
    then the others seen, by id); an hour without arrivals has no rate or dwell."""
    by_key = {(c.hub_id, c.hour): c for c in cells}
    seen = {hub for hub, _ in by_key}
    hubs = [h for h in hub_order if h in seen] + sorted(seen - set(hub_order))
    first = datetime.fromtimestamp(int(since.timestamp() // 3600) * 3600, UTC)
    count = max(int((now - first).total_seconds() // 3600) + 1, 1)
    hours = [first + timedelta(hours=i) for i in range(count)]
    labels = [h.astimezone(zone).strftime(HOUR_FORMAT) for h in hours]
    z, arrivals, retained, dwell, over = [], [], [], [], []
    for row, hub in enumerate(hubs):
        zs: list[float | None] = []
        ns: list[int] = []
        ks: list[int] = []
        ds: list[float | None] = []
        for col, hour in enumerate(hours):
            c = by_key.get((hub, hour))
            n = c.arrivals if c else 0
            ns.append(n)
            ks.append(c.retained if c else 0)
            ds.append(c.mean_dwell_h if c else None)
            if measure == "arrivals":
                zs.append(float(n))
            elif measure == "dwell":
                zs.append(c.mean_dwell_h if c else None)
            else:
                zs.append(c.retention_rate if c and n else None)
            if c and n and c.retention_rate > warn_share:
                over.append((row, col))
        z.append(tuple(zs))
        arrivals.append(tuple(ns))
        retained.append(tuple(ks))
        dwell.append(tuple(ds))
    names = hub_labels or {}
    # Plotly draws the first row at the bottom: reverse so the first hub is on top.
    n_rows = len(hubs)
    return HeatGrid(
        hubs=tuple(reversed(hubs)), hub_labels=tuple(names.get(h, h) for h in reversed(hubs)),
        hours=tuple(hours), labels=tuple(labels), z=tuple(reversed(z)),
        arrivals=tuple(reversed(arrivals)), retained=tuple(reversed(retained)),
        dwell_h=tuple(reversed(dwell)),
        over=tuple((n_rows - 1 - r, c) for r, c in over),
    )


def _value_format(measure: Measure, lang: Lang) -> tuple[str, str]:
    """(hover format of z, colour bar tick format)."""
    if measure == "retention":
        return "%{z:.0%}", ".0%"
    if measure == "dwell":
        return t("network.heatmap.hours", lang, n="%{z:.1f}"), ".0f"
    return "%{z:d}", "d"


def heatmap_figure(grid: HeatGrid, *, measure: Measure, warn_share: float, zone: ZoneInfo,
                   lang: Lang, theme: Theme) -> go.Figure:
    """The heatmap of ``grid`` with a marker on every cell over ``warn_share``.

    Built as plain dicts and wrapped without plotly's validation (``_validate=False``,
    ~20 ms a figure otherwise); the JSON is the same.
    """
    layout: dict[str, Any] = palette.figure_layout(theme)
    if not grid.hubs:
        layout.update(
            annotations=[{"text": t("network.heatmap.empty", lang), "showarrow": False, "xref": "paper",
                          "yref": "paper", "x": 0.5, "y": 0.5, "font": {"size": 14}}],
            xaxis={**layout["xaxis"], "visible": False}, yaxis={**layout["yaxis"], "visible": False})
        return go.Figure({"data": [], "layout": layout}, _validate=False)
    value, ticks = _value_format(measure, lang)
    custom = [[[a, k, d if d is not None else -1] for a, k, d in zip(ar, kr, dr, strict=True)]
              for ar, kr, dr in zip(grid.arrivals, grid.retained, grid.dwell_h, strict=True)]
    hover = (f"%{{y}} · %{{x}}<br>{t(f'network.measure.{measure}', lang)}: {value}<br>"
             f"{t('network.heatmap.arrivals', lang)}: %{{customdata[0]}} · "
             f"{t('network.heatmap.retained', lang)}: %{{customdata[1]}}<extra></extra>")
    values = [v for row in grid.z for v in row if v is not None]
    zmax = None
    colorbar: dict[str, Any] = {"tickformat": ticks, "thickness": 12, "outlinewidth": 0}
    if measure == "retention":
        zmax = max([2 * warn_share, *values])
    elif measure == "arrivals":
        # Whole parcels: ticks one or more apart, never 0.2 shown as 0.
        colorbar["dtick"] = max(1, math.ceil(max(values, default=1) / 5))
    heat: dict[str, Any] = {
        "type": "heatmap", "x": list(grid.labels), "y": list(grid.hub_labels),
        "z": [list(r) for r in grid.z], "customdata": custom, "hovertemplate": hover,
        "colorscale": tuple(tuple(step) for step in colour_scale(theme)),
        "zmin": 0, "xgap": 1, "ygap": 1, "hoverongaps": False, "colorbar": colorbar,
    }
    if zmax is not None:
        heat["zmax"] = zmax
    ink = "#ffffff" if theme == "dark" else "#000000"
    marks = {
        "type": "scatter", "name": t("network.heatmap.over", lang, share=f"{warn_share:.0%}"),
        "x": [grid.labels[c] for _, c in grid.over], "y": [grid.hub_labels[r] for r, _ in grid.over],
        "mode": "markers", "showlegend": True, "hoverinfo": "skip",
        "marker": {"symbol": "triangle-up", "size": 9, "color": palette.VERMILION,
                   "line": {"color": ink, "width": 1}},
    }
    # Ticks on round local hours (every 1, 2, 3, 4, 6, 12 or 24 h), at most MAX_TICKS.
    step = next((n for n in TICK_STEPS_H if len(grid.labels) / n <= MAX_TICKS), TICK_STEPS_H[-1])
    shown = [label for label in grid.labels if int(label[6:8]) % step == 0] or list(grid.labels[:1])
    # "HH:00", with the date under it where it changes (and on the first tick).
    text = [f"{label[6:]}<br>{label[:5]}" if i == 0 or label[:5] != shown[i - 1][:5] else label[6:]
            for i, label in enumerate(shown)]
    layout.update(
        margin={"l": 8, "r": 8, "t": 8, "b": 8},
        legend={"orientation": "h", "x": 0, "y": 1.02, "yanchor": "bottom"},
        xaxis={**layout["xaxis"], "type": "category",
               "title": {"text": t("network.heatmap.hour", lang, zone=zone.key)},
               "tickmode": "array", "tickvals": shown, "ticktext": text, "tickangle": 0,
               "showgrid": False, "automargin": True},
        yaxis={**layout["yaxis"], "type": "category", "showgrid": False, "automargin": True},
    )
    return go.Figure({"data": [heat, marks], "layout": layout}, _validate=False)
