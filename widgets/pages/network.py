"""`/network`: the transit-hub heatmap (hub x hour), the hub map with lanes and the
parcels at each hub now, and the parcels stuck at a hub past the dwell limit.

One refresh callback on the shell's timer (and on the measure, window and hub filter)
reads :mod:`tower.store.network` and sends only the parts whose data changed (a hash
per part in the page's ``sent`` store). The map's outline is drawn once by the layout;
a refresh replaces only its traces (a ``Patch``), never the outline.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Final

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, Patch, State, ctx, dcc, html, no_update

from tower.hubs import HubBook, load_hubs
from tower.settings import DEFAULT_DATA_DIR
from tower.store import network as store
from widgets import context, palette, parts
from widgets.context import Screens
from widgets.figures.heatmap import MEASURES, Measure, heatmap_figure, heatmap_grid
from widgets.figures.hub_map import HubPoint, LaneLine, Outline, hub_traces, load_outline, map_base
from widgets.graphs import graph_config
from widgets.i18n import Lang, normalise_lang, t
from widgets.ids import SHELL, PageIds
from widgets.palette import Theme
from widgets.view import TRUE

NAME = "network"
ids = PageIds(NAME)
WINDOWS_H: Final = (6, 12, 24, 48)
DEFAULT_WINDOW_H: Final = 24
STUCK_PER_HUB: Final = 10      # rows of the stuck list per hub (the counts are exact)
LANES_SHOWN: Final = 60        # the busiest lanes drawn on the map
KIOSK_FONT: Final = 18           # px in the figures of a wall screen (CSS does not reach them)
OUTLINE_PATH: Final = DEFAULT_DATA_DIR / "map" / "china-outline.json"  # shipped, not configuration
WINDOW_MAX_AGE_S: Final = 30.0   # the heatmap grid and the lanes are re-read at most this often

log = logging.getLogger(__name__)


@cache
def _outline(path: Path = OUTLINE_PATH) -> Outline:
    return load_outline(path)


@cache
def _hubs(path: Path) -> HubBook:
    return load_hubs(path)


def hub_book(screens: Screens) -> HubBook:
    """The hub master data of this app's data folder (``hubs.toml``)."""
    return _hubs(screens.settings.data_dir / "hubs.toml")


def layout(lang: str | None = None, theme: str | None = None, kiosk: str | None = None,
           **_query: Any) -> Any:
    screens = context.current()
    code = normalise_lang(lang, default=screens.config.default_lang)
    is_kiosk = str(kiosk).lower() in TRUE
    shade = palette.normalise_theme(theme, default="dark" if is_kiosk else "light")
    limit_h = screens.tower.figures.hubs.dwell_limit_h
    controls = html.Div(
        className="tower-controls network-controls d-flex flex-wrap gap-4 align-items-center",
        hidden=is_kiosk, children=[
            html.Div(className="d-flex gap-2 align-items-center", children=[
                html.Label(t("network.measure", code), htmlFor=ids("measure"), className="fw-semibold"),
                dbc.RadioItems(id=ids("measure"), inline=True, value="retention", options=[
                    {"label": t(f"network.measure.{m}", code), "value": m} for m in MEASURES]),
            ]),
            html.Div(className="d-flex gap-2 align-items-center", children=[
                html.Label(t("network.window", code), htmlFor=ids("window"), className="fw-semibold"),
                dbc.Select(id=ids("window"), value=str(DEFAULT_WINDOW_H), size="sm",
                           style={"width": "auto"}, options=[
                               {"label": t("network.window_h", code, n=n), "value": str(n)}
                               for n in WINDOWS_H]),
            ]),
        ])
    return html.Div(className="tower-network", id=ids("page"), children=[
        dcc.Store(id=ids("view"), data={"lang": code, "theme": shade, "kiosk": is_kiosk}),
        dcc.Store(id=ids("sent"), data={}),
        dcc.Store(id=ids("hub"), data=None),
        controls,
        dbc.Row(className="g-3 mt-1", children=[
            dbc.Col(xl=7, children=dbc.Card(body=True, children=[
                html.H2(id=ids("heatmap-title"), className="h6 mb-1"),
                html.Div(className="network-heatmap", children=dcc.Graph(
                    id=ids("heatmap"), config=graph_config(code), figure=parts.blank_figure(shade),
                    style={"height": "100%"})),
            ])),
            dbc.Col(xl=5, children=dbc.Card(body=True, children=[
                html.H2(id=ids("map-title"), className="h6 mb-1"),
                html.Div(className="network-map", children=dcc.Graph(
                    id=ids("map"), config=graph_config(code, scrollZoom=False, doubleClick="reset"),
                    figure=_map_base(shade, is_kiosk),
                    style={"height": "100%"})),
                html.Div(id=ids("no-coords"), className="network-no-coords small"),
            ])),
        ]),
        dbc.Card(body=True, className="mt-3", children=[
            html.H2(t("network.stuck.title", code, n=f"{limit_h:g}"), className="h6"),
            html.Div(id=ids("hub-filter"), className="tower-controls network-hub-filter mb-2",
                     hidden=is_kiosk),
            html.Div(id=ids("stuck")),
        ]),
    ])


def _map_base(theme: Theme, kiosk: bool) -> Any:
    fig = map_base(_outline(), theme=theme)
    if kiosk:
        fig.update_layout(font={"size": KIOSK_FONT})
    return fig




def _window(value: object) -> int:
    try:
        n = int(str(value))
    except ValueError:
        return DEFAULT_WINDOW_H
    return n if n in WINDOWS_H else DEFAULT_WINDOW_H


def _measure(value: object) -> Measure:
    for measure in MEASURES:
        if value == measure:
            return measure
    return "retention"


@dataclass(frozen=True)
class NetworkData:
    """What one refresh read, for one measure, window and hub filter."""

    now: datetime
    cells: list[store.HubHour]
    loads: list[store.HubLoad]
    lanes: store.LaneSet
    stuck: list[store.StuckParcel]


@dataclass(frozen=True)
class WindowData:
    """The window's hub x hour cells and lanes, the hubs' loads and the stuck parcels of
    every hub, as read at ``now``."""

    now: datetime
    cells: list[store.HubHour]
    lanes: store.LaneSet
    loads: list[store.HubLoad]
    stuck: list[store.StuckParcel]


def read_window(screens: Screens, *, window_h: int, now: datetime) -> WindowData:
    """The reads of the whole network (tens of thousands of hub visits at full size)."""
    tower = screens.tower
    since = now - timedelta(hours=window_h)
    limit_h = tower.figures.hubs.dwell_limit_h
    return WindowData(
        now=now,
        cells=store.hub_hours(tower.engine, since=since, now=now, dwell_limit_h=limit_h),
        lanes=store.lanes(tower.engine, since=since, limit=LANES_SHOWN),
        loads=store.hub_loads(tower.engine, now=now, dwell_limit_h=limit_h),
        stuck=store.stuck_parcels(tower.engine, now=now, dwell_limit_h=limit_h, per_hub=STUCK_PER_HUB),
    )


class WindowReads:
    """The window reads, shared by every screen of this app, at most ``max_age_s`` old.

    Hourly cells, the lanes of the last hours, the hubs' loads and who is stuck past a
    day move slowly, while reading them scans every hub visit of the window (50-80 ms at
    37,000 visits). The first read of a window
    is made by the refresh that asks; after that a refresh gets the last read, and when it
    is older than ``max_age_s`` (by the tower's clock) one background thread reads it
    again: no refresh waits for it. A read that fails keeps the previous one (logged).
    """

    def __init__(self, screens: Screens, *, max_age_s: float = WINDOW_MAX_AGE_S) -> None:
        self._screens = screens
        self._max_age = timedelta(seconds=max_age_s)
        self._lock = threading.Lock()
        self._kept: dict[int, WindowData] = {}
        self._reading: set[int] = set()

    def get(self, window_h: int, now: datetime) -> WindowData:
        with self._lock:
            kept = self._kept.get(window_h)
            stale = kept is not None and not (kept.now <= now < kept.now + self._max_age)
            if stale and window_h not in self._reading:
                self._reading.add(window_h)
                threading.Thread(target=self._read, args=(window_h,), daemon=True,
                                 name=f"network-window-{window_h}h").start()
        if kept is not None:
            return kept
        fresh = read_window(self._screens, window_h=window_h, now=now)
        with self._lock:
            if window_h not in self._kept or self._kept[window_h].now < fresh.now:
                self._kept[window_h] = fresh
        return fresh

    def _read(self, window_h: int) -> None:
        try:
            fresh = read_window(self._screens, window_h=window_h, now=self._screens.tower.clock.now())
            with self._lock:
                self._kept[window_h] = fresh
        except Exception:  # a failed re-read keeps the previous one; the next refresh retries
            log.exception("network: reading the %d h window failed", window_h)
        finally:
            with self._lock:
                self._reading.discard(window_h)


def gather(screens: Screens, *, window_h: int, hub_id: str | None,
           window: WindowReads | None = None) -> NetworkData:
    """Every read the page needs: the network's, from ``window`` when given (shared,
    at most its ``max_age_s`` old: a parcel counts as stuck after a day), else read now;
    the stuck parcels of one chosen hub are read live (ten rows of one hub)."""
    tower = screens.tower
    hubs = tower.figures.hubs
    now = tower.clock.now()
    reads = window.get(window_h, now) if window else read_window(screens, window_h=window_h, now=now)
    stuck = reads.stuck if hub_id is None else store.stuck_parcels(
        tower.engine, now=now, dwell_limit_h=hubs.dwell_limit_h, per_hub=STUCK_PER_HUB, hub_id=hub_id)
    return NetworkData(now=now, cells=reads.cells, loads=reads.loads, lanes=reads.lanes, stuck=stuck)


def hub_label(book: HubBook, hub_id: str, lang: Lang) -> str:
    site = book.by_id.get(hub_id)
    return site.name.of(lang) if site else hub_id


def map_parts(data: NetworkData, book: HubBook, lang: Lang) -> tuple[list[HubPoint], list[LaneLine],
                                                                     list[str]]:
    """Hubs and lanes with coordinates, and the hubs seen that have none (by id)."""
    loads = {x.hub_id: x for x in data.loads}
    arrived: dict[str, int] = {}
    kept: dict[str, int] = {}
    for c in data.cells:
        arrived[c.hub_id] = arrived.get(c.hub_id, 0) + c.arrivals
        kept[c.hub_id] = kept.get(c.hub_id, 0) + c.retained
    ends = {hub for x in data.lanes.lanes for hub in (x.from_hub, x.to_hub)}
    seen = set(loads) | set(arrived) | ends
    points = []
    for site in book.hubs:
        load = loads.get(site.id)
        n = arrived.get(site.id, 0)
        points.append(HubPoint(
            hub_id=site.id, label=site.name.of(lang), lat=site.lat, lon=site.lon,
            at_hub=load.at_hub if load else 0, stuck=load.stuck if load else 0,
            retention_rate=kept.get(site.id, 0) / n if n else None))
    lanes = [
        LaneLine(from_label=hub_label(book, x.from_hub, lang), to_label=hub_label(book, x.to_hub, lang),
                 start=(book.by_id[x.from_hub].lon, book.by_id[x.from_hub].lat),
                 end=(book.by_id[x.to_hub].lon, book.by_id[x.to_hub].lat), parcels=x.parcels)
        for x in data.lanes.lanes if x.from_hub in book.by_id and x.to_hub in book.by_id
    ]
    return points, lanes, sorted(seen - set(book.by_id))


def no_coords(missing: list[str], lang: Lang) -> Any:
    if not missing:
        return html.Span(t("network.map.no_coords_none", lang), className="text-body-secondary")
    return [html.Span(t("network.map.no_coords", lang) + ": ", className="fw-semibold"),
            html.Span(", ".join(missing), id=ids("no-coords-list"))]


def hub_filter(loads: list[store.HubLoad], selected: str | None, book: HubBook, lang: Lang) -> Any:
    """A button per hub with stuck parcels (and "all hubs"); the selected one is filled."""
    total = sum(x.stuck for x in loads)
    buttons = [dbc.Button(f"{t('network.stuck.all', lang)} ({total})", size="sm",
                          id=ids.match("hub-button", hub=""), outline=selected is not None,
                          color="secondary", className="me-1 mb-1")]
    buttons += [
        dbc.Button(f"{hub_label(book, x.hub_id, lang)} ({x.stuck})", size="sm",
                   id=ids.match("hub-button", hub=x.hub_id), outline=selected != x.hub_id,
                   color="danger" if x.stuck else "secondary", className="me-1 mb-1")
        for x in loads if x.stuck or x.hub_id == selected
    ]
    return html.Div(role="group", title=t("network.stuck.filter", lang), children=buttons)


def stuck_table(data: NetworkData, selected: str | None, book: HubBook, lang: Lang) -> Any:
    if not data.stuck:
        return html.P(t("network.stuck.empty", lang), className="text-body-secondary mb-0")
    none = t("network.unknown", lang)
    head = html.Thead(html.Tr([
        html.Th(t(f"network.stuck.{k}", lang), className="text-end" if k == "hours" else "")
        for k in ("parcel", "order", "hub", "hours", "exception")]))
    rows = []
    for p in data.stuck:
        if p.exception_id:
            exc: Any = html.Span(t("network.stuck.open", lang, status=t(f"status.{p.exception_status}", lang)
                                   if p.exception_status in _STATUSES else p.exception_status),
                                 className="network-exc-open", title=p.exception_id)
        else:
            exc = html.Span(t("network.stuck.none_open", lang), className="text-body-secondary")
        rows.append(html.Tr([
            html.Td(p.parcel_id, className="font-monospace"), html.Td(p.order_id or none),
            html.Td(hub_label(book, p.hub_id, lang)),
            html.Td(f"{p.hours_at_hub:.0f}", className="text-end font-monospace"), html.Td(exc),
        ]))
    shown: dict[str, int] = {}
    for p in data.stuck:
        shown[p.hub_id] = shown.get(p.hub_id, 0) + 1
    notes = [
        html.Div(t("network.stuck.more", lang, shown=shown[x.hub_id], total=x.stuck,
                   hub=hub_label(book, x.hub_id, lang)), className="small text-body-secondary")
        for x in data.loads if x.hub_id in shown and x.stuck > shown[x.hub_id]
    ]
    return [dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, responsive=True,
                      className="network-stuck-table mb-1", id=ids("stuck-table")), *notes]


_STATUSES = frozenset({"triggered", "acknowledged", "snoozed", "resolved", "closed", "cancelled"})


def register_callbacks(app: Dash, screens: Screens) -> None:
    book = hub_book(screens)   # a bad hubs.toml stops create_app with the file, key and why
    warn = screens.tower.figures.hubs.retention_warn_share
    zone = screens.settings.zone
    window = WindowReads(screens)

    @app.callback(
        Output(ids("heatmap"), "figure"),
        Output(ids("heatmap-title"), "children"),
        Output(ids("map"), "figure"),
        Output(ids("map-title"), "children"),
        Output(ids("no-coords"), "children"),
        Output(ids("hub-filter"), "children"),
        Output(ids("stuck"), "children"),
        Output(ids("sent"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        Input(ids("measure"), "value"),
        Input(ids("window"), "value"),
        Input(ids("hub"), "data"),
        State(ids("view"), "data"),
        State(ids("sent"), "data"),
    )
    def _refresh(_n: int | None, measure_value: str | None, window_value: str | None,
                 hub: str | None, view: dict[str, str], sent: dict[str, str] | None) -> tuple[Any, ...]:
        lang = normalise_lang(view.get("lang"))
        theme = palette.normalise_theme(view.get("theme"))
        kiosk = bool(view.get("kiosk"))
        measure, window_h = _measure(measure_value), _window(window_value)
        data = gather(screens, window_h=window_h, hub_id=hub or None, window=window)
        sent, changed = parts.tracker(sent)

        order = [h.id for h in book.hubs]
        labels = {h: hub_label(book, h, lang) for h in {c.hub_id for c in data.cells}}
        grid = heatmap_grid(data.cells, measure=measure, since=data.now - timedelta(hours=window_h),
                            now=data.now, zone=zone, warn_share=warn, hub_order=order, hub_labels=labels)
        heat_key = [measure, window_h, grid.labels, grid.hub_labels, grid.over, grid.arrivals,
                    [[None if v is None else round(v, 2) for v in row] for row in grid.z]]
        heat: Any = no_update
        heat_title: Any = no_update
        if changed("heatmap", heat_key):
            heat = heatmap_figure(grid, measure=measure, warn_share=warn, zone=zone, lang=lang, theme=theme)
            if kiosk:
                heat.update_layout(font={"size": KIOSK_FONT})
            heat_title = t("network.heatmap.title", lang, measure=t(f"network.measure.{measure}", lang),
                           n=window_h)
        points, lanes, missing = map_parts(data, book, lang)
        map_fig: Any = no_update
        map_title: Any = no_update
        if changed("map", [window_h, points, lanes, data.lanes.capped]):
            map_fig = Patch()
            map_fig["data"] = hub_traces(
                points, lanes, warn_share=warn, window_h=window_h, lang=lang, theme=theme,
                text_size=KIOSK_FONT if kiosk else 11)
            map_title = t("network.map.title", lang, n=window_h)
            if data.lanes.capped:
                map_title += " " + t("network.map.capped", lang, n=data.lanes.moves)
        missing_part = no_coords(missing, lang) if changed("no-coords", missing) else no_update
        loads_key = [(x.hub_id, x.stuck) for x in data.loads]
        filter_part = (hub_filter(data.loads, hub or None, book, lang)
                       if changed("filter", [loads_key, hub]) else no_update)
        stuck_key = [hub, loads_key, [(p.parcel_id, p.hub_id, round(p.hours_at_hub), p.order_id,
                                       p.exception_id, p.exception_status) for p in data.stuck]]
        stuck_part = stuck_table(data, hub or None, book, lang) if changed("stuck", stuck_key) else no_update
        return heat, heat_title, map_fig, map_title, missing_part, filter_part, stuck_part, sent

    @app.callback(
        Output(ids("hub"), "data"),
        Input(ids.match("hub-button", hub=ALL), "n_clicks"),
        Input(ids("map"), "clickData"),
        prevent_initial_call=True,
    )
    def _choose_hub(_clicks: list[int | None], click: dict[str, Any] | None) -> Any:
        trigger = ctx.triggered_id
        if trigger == ids("map"):
            points = (click or {}).get("points") or []
            custom = points[0].get("customdata") if points else None
            return custom[0] if isinstance(custom, list) and custom else no_update
        if isinstance(trigger, dict) and ctx.triggered and ctx.triggered[0].get("value"):
            return trigger.get("hub") or None
        return no_update
