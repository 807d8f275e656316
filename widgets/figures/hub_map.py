"""The hub map: hubs at their coordinates sized by the parcels there now, coloured and
shaped by their retention (over the warning share stands out), and the lanes between
them as lines as wide as their traffic.

Drawn with plain ``go.Scatter`` on longitude/latitude axes of fixed aspect, over a
shipped outline of coasts and borders (``data/map/china-outline.json``, trimmed from
Natural Earth by ``data/map/trim_outline.py``): no tiles and no topojson are fetched.
The outline is layout shapes, so a refresh can replace the traces (``hub_traces``)
and leave the outline in the browser. Everything here is pure but :func:`load_outline`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import plotly.graph_objects as go

from widgets import palette
from widgets.i18n import Lang, t
from widgets.palette import Theme

Line = tuple[tuple[float, float], ...]
LANE_WIDTH: Final = (1.0, 9.0)       # px, the quietest and the busiest lane
HUB_SIZE: Final = (12.0, 44.0)       # px, an empty hub and the fullest
BEND: Final = 0.12                   # lanes bow to their right, so A->B and B->A stay apart
_OUTLINE_INK: Final[dict[Theme, str]] = {"light": "#9aa5b1", "dark": "#4b5866"}


@dataclass(frozen=True)
class Outline:
    """Polylines of coasts and borders (lon, lat) and the box they were cut to."""

    lines: tuple[Line, ...]
    lon: tuple[float, float]
    lat: tuple[float, float]


def load_outline(path: Path) -> Outline:
    """Read a trimmed outline file (``{"box": {"lon", "lat"}, "lines": [[[lon, lat], ...]]}``)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    lines = tuple(tuple((float(p[0]), float(p[1])) for p in line) for line in raw["lines"])
    box = raw["box"]
    return Outline(lines=lines, lon=(float(box["lon"][0]), float(box["lon"][1])),
                   lat=(float(box["lat"][0]), float(box["lat"][1])))


@dataclass(frozen=True)
class HubPoint:
    """A hub with coordinates and what the map says of it."""

    hub_id: str
    label: str
    lat: float
    lon: float
    at_hub: int
    stuck: int
    retention_rate: float | None


@dataclass(frozen=True)
class LaneLine:
    """A lane between two hubs with coordinates."""

    from_label: str
    to_label: str
    start: tuple[float, float]   # (lon, lat)
    end: tuple[float, float]
    parcels: int


def outline_shapes(outline: Outline, theme: Theme) -> list[dict[str, Any]]:
    """The outline as one SVG path shape in data coordinates, under the traces."""
    path = " ".join("M" + "L".join(f"{lon:g},{lat:g}" for lon, lat in line) for line in outline.lines)
    return [{"type": "path", "path": path, "xref": "x", "yref": "y", "layer": "below",
             "line": {"color": _OUTLINE_INK[theme], "width": 1}}]


def map_base(outline: Outline, *, theme: Theme) -> go.Figure:
    """The empty map: the outline on axes of fixed aspect (degrees of longitude shrink
    with the cosine of the latitude), no ticks, no grid."""
    mid_lat = (outline.lat[0] + outline.lat[1]) / 2
    fig = go.Figure()
    fig.update_layout(
        **{**palette.figure_layout(theme), "margin": {"l": 4, "r": 4, "t": 4, "b": 4}},
        shapes=outline_shapes(outline, theme), showlegend=True, dragmode="pan",
        legend={"orientation": "h", "x": 0, "y": 0, "yanchor": "bottom",
                "bgcolor": "rgba(0,0,0,0)"},
        hovermode="closest", uirevision="hub-map",
    )
    fig.update_xaxes(range=list(outline.lon), visible=False, constrain="domain", fixedrange=False)
    fig.update_yaxes(range=list(outline.lat), visible=False, scaleanchor="x",
                     scaleratio=1 / math.cos(math.radians(mid_lat)), constrain="domain")
    return fig


def _scale(value: float, top: float, span: tuple[float, float]) -> float:
    # Area-like: the square root keeps one huge hub from making every other a dot.
    share = math.sqrt(value / top) if top > 0 else 0.0
    return span[0] + (span[1] - span[0]) * share


def _bow(start: tuple[float, float], end: tuple[float, float], steps: int = 12
         ) -> tuple[list[float], list[float]]:
    """A gentle arc from ``start`` to ``end`` bowing to the right of the direction of travel."""
    (x0, y0), (x1, y1) = start, end
    mx, my = (x0 + x1) / 2 + BEND * (y1 - y0), (y0 + y1) / 2 - BEND * (x1 - x0)
    xs, ys = [], []
    for i in range(steps + 1):
        s = i / steps
        xs.append((1 - s) ** 2 * x0 + 2 * (1 - s) * s * mx + s ** 2 * x1)
        ys.append((1 - s) ** 2 * y0 + 2 * (1 - s) * s * my + s ** 2 * y1)
    return xs, ys


def hub_traces(hubs: Sequence[HubPoint], lanes: Sequence[LaneLine], *, warn_share: float,
               window_h: int, lang: Lang, theme: Theme, text_size: int = 11) -> list[dict[str, Any]]:
    """Lanes (one line each, width by parcels; one hover point at each middle), then the
    hubs in two traces: retention up to the warning share (blue circles) and over it
    (vermilion diamonds), sized by the parcels there now. Plain trace dicts (plotly's
    validation of dozens of ``go.Scatter`` cost a refresh tens of milliseconds)."""
    traces: list[dict[str, Any]] = []
    busiest = max((lane.parcels for lane in lanes), default=0)
    mids: tuple[list[float], list[float], list[str]] = ([], [], [])
    for lane in lanes:
        xs, ys = _bow(lane.start, lane.end)
        traces.append(dict(
            type="scatter", x=xs, y=ys, mode="lines", showlegend=False, hoverinfo="skip",
            line={"color": palette.GREY, "width": _scale(lane.parcels, busiest, LANE_WIDTH)},
            opacity=0.8,
        ))
        mids[0].append(xs[len(xs) // 2])
        mids[1].append(ys[len(ys) // 2])
        mids[2].append(t("network.map.lane", lang, a=lane.from_label, b=lane.to_label, n=lane.parcels))
    if lanes:
        traces.append(dict(type="scatter", x=mids[0], y=mids[1], text=mids[2], mode="markers",
                           showlegend=False, hovertemplate="%{text}<extra></extra>",
                           marker={"size": 6, "color": palette.GREY, "opacity": 0.6}))
    fullest = max((h.at_hub for h in hubs), default=0)
    ink = "#ffffff" if theme == "dark" else "#000000"
    hover = ("<b>%{text}</b><br>" + t("network.map.at_hub", lang) + ": %{customdata[1]}<br>"
             + t("network.map.stuck", lang) + ": %{customdata[2]}<br>"
             + t("network.map.retention", lang, n=window_h) + ": %{customdata[3]}<extra></extra>")
    share = f"{warn_share:.0%}"
    for over, name, colour, symbol in (
        (False, t("network.map.normal", lang, share=share), palette.BLUE, "circle"),
        (True, t("network.map.over", lang, share=share), palette.VERMILION, "diamond"),
    ):
        group = [h for h in hubs if ((h.retention_rate or 0.0) > warn_share) == over]
        traces.append(dict(
            type="scatter", name=name, x=[h.lon for h in group], y=[h.lat for h in group],
            text=[h.label for h in group], mode="markers+text", textposition="top center",
            textfont={"size": text_size},
            texttemplate="%{text} %{customdata[1]}",
            customdata=[[h.hub_id, h.at_hub, h.stuck,
                         "—" if h.retention_rate is None else f"{h.retention_rate:.0%}"] for h in group],
            hovertemplate=hover, showlegend=True,
            marker={"size": [_scale(h.at_hub, fullest, HUB_SIZE) for h in group], "color": colour,
                    "symbol": symbol, "opacity": 0.9, "line": {"color": ink, "width": 1}},
        ))
    return traces


def hub_map_figure(outline: Outline, hubs: Sequence[HubPoint], lanes: Sequence[LaneLine], *,
                   warn_share: float, window_h: int, lang: Lang, theme: Theme,
                   text_size: int = 11) -> go.Figure:
    """The whole map: :func:`map_base` with :func:`hub_traces`."""
    fig = map_base(outline, theme=theme)
    fig.add_traces(hub_traces(hubs, lanes, warn_share=warn_share, window_h=window_h, lang=lang,
                              theme=theme, text_size=text_size))
    return fig
