"""The network page's pure figure builders: heatmap (hours in the tower's zone, cells over
the warning share marked by a shape) and the offline hub map (outline, lanes, hubs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tower.settings import DEFAULT_DATA_DIR
from tower.store.network import HubHour
from widgets.figures.heatmap import colour_scale, heatmap_figure, heatmap_grid
from widgets.figures.hub_map import HubPoint, LaneLine, hub_map_figure, load_outline, outline_shapes
from widgets.palette import BLUE, VERMILION

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 11, 20, 6, 30, tzinfo=UTC)   # 14:30 in Shanghai
SINCE = NOW - timedelta(hours=3)                  # 03:30 UTC: columns 03:00 .. 06:00 UTC
H3 = datetime(2025, 11, 20, 3, 0, tzinfo=UTC)


def _cell(hub: str, hour: datetime, arrivals: int, retained: int, dwell_h: float = 2.0) -> HubHour:
    return HubHour(hub_id=hub, hour=hour, arrivals=arrivals, retained=retained, departed=arrivals,
                   dwell_h_sum=dwell_h * arrivals)


CELLS = [
    _cell("hub-a", H3, 10, 1),                              # 10 %: under
    _cell("hub-a", H3 + timedelta(hours=2), 10, 2),         # 20 %: over
    _cell("hub-b", H3 + timedelta(hours=1), 4, 4, 30.0),    # 100 %: over
]


def test_grid_hours_in_the_zone_every_hour_and_hub_order() -> None:
    grid = heatmap_grid(CELLS, measure="retention", since=SINCE, now=NOW, zone=ZONE,
                        warn_share=0.15, hub_order=["hub-b", "hub-a"],
                        hub_labels={"hub-a": "A", "hub-b": "B"})
    assert grid.labels == ("11-20 11:00", "11-20 12:00", "11-20 13:00", "11-20 14:00")
    # the first hub of the order is drawn on top (plotly's last row)
    assert grid.hubs == ("hub-a", "hub-b") and grid.hub_labels == ("A", "B")
    assert grid.z[0] == (0.1, None, 0.2, None)       # hub-a; no arrivals = no rate
    assert grid.z[1] == (None, 1.0, None, None)
    assert sorted(grid.over) == [(0, 2), (1, 1)]


def test_grid_other_measures() -> None:
    arrivals = heatmap_grid(CELLS, measure="arrivals", since=SINCE, now=NOW, zone=ZONE, warn_share=0.15)
    assert arrivals.z[arrivals.hubs.index("hub-a")] == (10.0, 0.0, 10.0, 0.0)
    dwell = heatmap_grid(CELLS, measure="dwell", since=SINCE, now=NOW, zone=ZONE, warn_share=0.15)
    assert dwell.z[dwell.hubs.index("hub-b")] == (None, 30.0, None, None)
    # the marks follow retention whatever the measure shown
    assert sorted(dwell.over) == sorted(arrivals.over) and len(dwell.over) == 2


def test_grid_in_another_zone() -> None:
    grid = heatmap_grid(CELLS, measure="retention", since=SINCE, now=NOW, zone=ZoneInfo("Europe/Berlin"),
                        warn_share=0.15)
    assert grid.labels[0] == "11-20 04:00"


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_heatmap_marks_the_cells_over_the_share(theme: str) -> None:
    grid = heatmap_grid(CELLS, measure="retention", since=SINCE, now=NOW, zone=ZONE, warn_share=0.15,
                        hub_labels={"hub-a": "A", "hub-b": "B"})
    fig = heatmap_figure(grid, measure="retention", warn_share=0.15, zone=ZONE, lang="en",
                         theme=theme)  # type: ignore[arg-type]
    heat, marks = fig.data
    assert heat.type == "heatmap" and list(heat.x) == list(grid.labels)
    assert heat.colorscale == tuple(tuple(s) for s in colour_scale(theme))  # type: ignore[arg-type]
    assert set(zip(marks.x, marks.y, strict=True)) == {("11-20 13:00", "A"), ("11-20 12:00", "B")}
    assert marks.marker.symbol == "triangle-up" and marks.marker.color == VERMILION
    assert marks.name == "retention over 15%"
    assert "Asia/Shanghai" in fig.layout.xaxis.title.text
    assert heat.zmax == 1.0


def test_heatmap_in_chinese_and_empty() -> None:
    grid = heatmap_grid([], measure="dwell", since=SINCE, now=NOW, zone=ZONE, warn_share=0.15)
    fig = heatmap_figure(grid, measure="dwell", warn_share=0.15, zone=ZONE, lang="zh-CN", theme="light")
    assert fig.data == ()
    assert fig.layout.annotations[0].text == "此时间窗口内没有包裹到达枢纽。"
    grid = heatmap_grid(CELLS, measure="dwell", since=SINCE, now=NOW, zone=ZONE, warn_share=0.15)
    fig = heatmap_figure(grid, measure="dwell", warn_share=0.15, zone=ZONE, lang="zh-CN", theme="light")
    assert fig.data[1].name == "滞留率超过 15%"
    assert "小时" in fig.data[0].hovertemplate


# --- hub map --------------------------------------------------------------------------------

OUTLINE = load_outline(DEFAULT_DATA_DIR / "map" / "china-outline.json")
SH = HubPoint("hub-shanghai", "Shanghai", 31.23, 121.47, at_hub=40, stuck=3, retention_rate=0.3)
WH = HubPoint("hub-wuhan", "Wuhan", 30.59, 114.31, at_hub=10, stuck=0, retention_rate=0.05)
BJ = HubPoint("hub-beijing", "Beijing", 39.90, 116.41, at_hub=0, stuck=0, retention_rate=None)


def test_shipped_outline_covers_china_and_is_small() -> None:
    assert len(OUTLINE.lines) > 50
    assert OUTLINE.lon[0] <= 74 and OUTLINE.lon[1] >= 134 and OUTLINE.lat[0] <= 18
    size = (DEFAULT_DATA_DIR / "map" / "china-outline.json").stat().st_size
    assert size < 100_000
    shape = outline_shapes(OUTLINE, "dark")[0]
    assert shape["type"] == "path" and shape["path"].startswith("M") and shape["layer"] == "below"


def test_hub_map_sizes_hubs_by_load_highlights_retention_and_draws_lanes() -> None:
    lanes = [LaneLine("Shanghai", "Wuhan", (121.47, 31.23), (114.31, 30.59), 90),
             LaneLine("Wuhan", "Shanghai", (114.31, 30.59), (121.47, 31.23), 10)]
    fig = hub_map_figure(OUTLINE, [SH, WH, BJ], lanes, warn_share=0.15, window_h=24, lang="en",
                         theme="light")
    types = [(tr.mode, tr.name) for tr in fig.data]
    assert types[:3] == [("lines", None), ("lines", None), ("markers", None)]
    wide, narrow = fig.data[0], fig.data[1]
    assert wide.line.width > narrow.line.width
    assert wide.x[0] == 121.47 and wide.x[-1] == 114.31
    # the two directions bow apart: their middles differ
    assert wide.y[6] != narrow.y[6]
    assert list(fig.data[2].text) == ["Shanghai → Wuhan: 90 parcels", "Wuhan → Shanghai: 10 parcels"]
    normal, over = fig.data[3], fig.data[4]
    assert list(normal.text) == ["Wuhan", "Beijing"] and normal.marker.color == BLUE
    assert list(over.text) == ["Shanghai"] and over.marker.color == VERMILION
    assert over.marker.symbol == "diamond" and over.name == "retention over 15%"
    assert over.marker.size[0] > normal.marker.size[0] > normal.marker.size[1]
    assert over.customdata[0][0] == "hub-shanghai"
    # fixed aspect, no tiles, no geo: plain cartesian axes with the outline under them
    assert fig.layout.yaxis.scaleanchor == "x"
    assert not any(tr.type in ("scattergeo", "scattermap", "scattermapbox") for tr in fig.data)
    assert fig.layout.shapes[0].type == "path"


def test_hub_map_empty_and_chinese() -> None:
    fig = hub_map_figure(OUTLINE, [], [], warn_share=0.15, window_h=24, lang="zh-CN", theme="dark")
    assert [tr.name for tr in fig.data] == ["滞留率不超过 15%", "滞留率超过 15%"]
    assert all(len(tr.x) == 0 for tr in fig.data)


def test_heatmap_ticks_are_thinned_with_the_date_where_it_changes() -> None:
    since = NOW - timedelta(hours=47)
    grid = heatmap_grid(CELLS, measure="arrivals", since=since, now=NOW, zone=ZONE, warn_share=0.15)
    fig = heatmap_figure(grid, measure="arrivals", warn_share=0.15, zone=ZONE, lang="en", theme="light")
    assert len(grid.labels) == 48
    ticks = list(fig.layout.xaxis.ticktext)
    # 48 hours: every 6 h on the local clock, the date where it changes
    assert ticks == ["18:00<br>11-18", "00:00<br>11-19", "06:00", "12:00", "18:00", "00:00<br>11-20",
                     "06:00", "12:00"]
    assert fig.data[0].colorbar.dtick == 2    # 10 arrivals at most: whole steps
