"""`/orders`: every order in a fast, filterable list, and one order's detail: its header
and open exceptions, its stage Gantt (:mod:`widgets.figures.gantt`) and its event timeline.

The list is a dash-ag-grid in the infinite row model: the grid asks for blocks of rows
as it scrolls, and :func:`tower.store.orders.list_orders` answers each from an indexed,
sorted, filtered page, so 100,000 orders cost what one block costs. The filters above it
go to a store; a change purges the grid's cache, which asks again. Clicking a row (or
opening ``/orders?order=<id>``) selects an order; the URL is rewritten to that permalink.

One refresh callback on the shell's timer sends the count and the detail, each only
when its data changed (a hash per part in the page's ``sent`` store).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash_ag_grid as dag
import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update
from dash.exceptions import PreventUpdate

from tower.exceptions import queue
from tower.store import orders as store
from tower.store.orders import OrderDetail, OrderEvent, OrderFilter, OrderRow
from widgets import context, palette, parts
from widgets.context import Screens
from widgets.figures.gantt import gantt_figure, gantt_marks, gantt_rows, is_over_budget
from widgets.graphs import graph_config
from widgets.i18n import Lang, name, normalise_lang, t
from widgets.ids import SHELL, PageIds
from widgets.palette import Theme
from widgets.view import TRUE, View

NAME = "orders"
ids = PageIds(NAME)
BLOCK = 100                 # rows per request of the grid
EVENTS_SHOWN = 500          # the timeline's bound
EXCEPTIONS_SHOWN = 20
ANY = "*"                   # the "any" choice of a filter
FILTERS = ("flow", "stage", "status", "priority", "lateness", "customer", "hub")
SORT_COLUMNS = {"order_id", "customer_id", "promised_at", "last_event_at"}  # = store.SORTABLE


def layout(lang: str | None = None, theme: str | None = None, kiosk: str | None = None,
           order: str | None = None, **_query: Any) -> Any:
    screens = context.current()
    code = normalise_lang(lang, default=screens.config.default_lang)
    is_kiosk = str(kiosk).lower() in TRUE
    shade = palette.normalise_theme(theme, default="dark" if is_kiosk else "light")
    return html.Div(className="tower-orders", id=ids("page"), children=[
        dcc.Store(id=ids("view"), data={"lang": code, "theme": shade, "kiosk": is_kiosk}),
        dcc.Store(id=ids("filters"), data={}),
        dcc.Store(id=ids("selected"), data=order or None),
        dcc.Store(id=ids("sent"), data={}),
        dcc.Store(id=ids("purged")),
        dcc.Store(id=ids("permalink")),
        _filter_bar(screens, code),
        html.Div(className="d-flex align-items-center gap-3 my-2", children=[
            html.Span(id=ids("count"), className="orders-count text-body-secondary small", children="…"),
            dbc.Button(t("orders.filter.clear", code), id=ids("clear"), size="sm", outline=True,
                       color="secondary", className="orders-filters py-0"),
        ]),
        html.Div(className="orders-grid", **_theme_mode(shade), children=dag.AgGrid(
            id=ids("grid"),
            rowModelType="infinite",
            columnDefs=_columns(code),
            defaultColDef={"sortable": False, "resizable": True, "suppressHeaderMenuButton": True},
            getRowId="params.data.order_id",
            dashGridOptions={
                "cacheBlockSize": BLOCK, "maxBlocksInCache": 20, "infiniteInitialRowCount": 1,
                "rowBuffer": 10, "rowSelection": {"mode": "singleRow", "checkboxes": False,
                                                  "enableClickSelection": True},
                "localeText": {"loadingOoo": "…", "noRowsToShow": t("orders.count", code, n=0)},
                "rowClassRules": {"orders-row-late": "params.data && params.data.late",
                                  "orders-row-risk": "params.data && params.data.at_risk"},
                "animateRows": False,
            },
            style={"height": "100%", "width": "100%"},
        )),
        html.Section(id=ids("detail"), className="orders-detail mt-3", children=[
            html.Div(id=ids("head"), children=dbc.Alert(t("orders.detail.empty", code), color="secondary")),
            html.H3(t("orders.gantt.title", code), className="h6 mt-3 orders-gantt-title"),
            html.Div(className="orders-gantt", children=dcc.Graph(
                id=ids("gantt"), config=graph_config(code), figure=parts.blank_figure(shade),
                style={"display": "none"})),
            html.Div(id=ids("timeline")),
        ]),
    ])


def _theme_mode(theme: Theme) -> dict[str, Any]:
    # AG Grid's theme follows data-ag-theme-mode on an ancestor (light or dark).
    return {"data-ag-theme-mode": theme}



def _options(pairs: list[tuple[str, str]], lang: Lang) -> list[dict[str, str]]:
    return [{"label": t("orders.filter.any", lang), "value": ANY},
            *({"label": label, "value": value} for value, label in pairs)]


def _filter_bar(screens: Screens, lang: Lang) -> Any:
    flows = screens.tower.flows.flows
    stages: dict[str, str] = {}
    for f in flows:
        for s in f.stages:
            stages.setdefault(s.id, name("stage", s.id, lang, default=s.name))
    choices: dict[str, list[tuple[str, str]]] = {
        "flow": [(f.id, name("flow", f.id, lang, default=f.name)) for f in flows],
        "stage": list(stages.items()),
        "status": [(s, t(f"orders.status.{s}", lang)) for s in store.STATUSES],
        "priority": [(p, t(f"orders.priority.{p}", lang)) for p in store.PRIORITIES],
        "lateness": [(x, t(f"orders.lateness.{x}", lang)) for x in store.LATENESS],
        "hub": [(h, h) for h in store.known_hubs(screens.tower.engine)],
    }

    def field(key: str, control: Any, width: int = 2) -> Any:
        return dbc.Col(md=4, lg=width, children=[
            dbc.Label(t(f"orders.filter.{key}", lang), html_for=ids(f"f-{key}"), className="small mb-0"),
            control,
        ])

    selects = [field(k, dbc.Select(id=ids(f"f-{k}"), options=_options(v, lang), value=ANY, size="sm"),
                     1 if k == "priority" else 2)
               for k, v in choices.items() if k != "hub"]
    return dbc.Row(className="orders-filters g-2 align-items-end", children=[
        *selects,
        field("customer", dbc.Input(id=ids("f-customer"), size="sm", debounce=True, type="text",
                                    placeholder=t("orders.filter.customer_hint", lang)), 1),
        field("hub", dbc.Select(id=ids("f-hub"), options=_options(choices["hub"], lang), value=ANY,
                                size="sm")),
    ])


def _columns(lang: Lang) -> list[dict[str, Any]]:
    def col(field: str, key: str, **extra: Any) -> dict[str, Any]:
        return {"field": field, "colId": field, "headerName": t(f"orders.col.{key}", lang),
                "sortable": field in SORT_COLUMNS, **extra}

    return [
        col("order_id", "order_id", minWidth=130, flex=1.2, sortingOrder=["asc", "desc"]),
        col("flow_name", "flow", flex=1),
        col("stage_name", "stage", flex=1),
        col("status_name", "status", flex=1),
        col("priority_name", "priority", flex=0.7),
        col("customer_id", "customer", flex=1),
        col("promised_at", "promised", flex=1.1),
        col("last_event_at", "last_event", flex=1.1, sort="desc"),
        col("flags", "flags", flex=1.2),
    ]


def _when(moment: datetime | None, screens: Screens, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return moment.astimezone(screens.settings.zone).strftime(fmt) if moment else "—"


def _flags(row: OrderRow, lang: Lang) -> list[str]:
    flags = [key for key, on in (("late", row.late), ("at_risk", row.at_risk), ("frozen", row.frozen))
             if on]
    return [t(f"orders.badge.{f}", lang) for f in flags]


def grid_row(row: OrderRow, screens: Screens, lang: Lang) -> dict[str, Any]:
    """One row as the grid shows it: names in the viewer's language, times in TOWER_TZ."""
    flow = screens.tower.flows.by_id.get(row.flow)
    stage_name = row.stage
    if flow is not None and row.stage in flow.stage_index:
        stage_name = name("stage", row.stage, lang, default=flow.stage(row.stage).name)
    return {
        "order_id": row.order_id,
        "flow_name": name("flow", row.flow, lang, default=flow.name if flow else row.flow),
        "stage_name": stage_name,
        "status_name": t(f"orders.status.{row.status}", lang) if row.status in store.STATUSES
        else row.status,
        "priority_name": t(f"orders.priority.{row.priority}", lang) if row.priority in store.PRIORITIES
        else row.priority,
        "customer_id": row.customer_id or "",
        "promised_at": _when(row.promised_at, screens),
        "last_event_at": _when(row.last_event_at, screens),
        "flags": " · ".join(_flags(row, lang)),
        "late": row.late,
        "at_risk": row.at_risk,
    }


def order_filter(data: dict[str, Any] | None) -> OrderFilter:
    """The filters store (strings from the controls; "" = any) as a store filter."""
    data = data or {}

    def get(key: str) -> str | None:
        value = str(data.get(key) or "").strip()
        return value if value and value != ANY else None

    lateness = get("lateness")
    return OrderFilter(
        flow=get("flow"), stage=get("stage"), status=get("status"), priority=get("priority"),
        lateness=lateness if lateness in store.LATENESS else None,
        customer_id=get("customer"), hub_id=get("hub"),
    )


def rows_response(request: dict[str, Any], filters: OrderFilter, screens: Screens,
                  lang: Lang) -> dict[str, Any]:
    """The grid's block ``[startRow, endRow)`` under the sort it asks for."""
    start = max(0, int(request.get("startRow") or 0))
    end = int(request.get("endRow") or start + BLOCK)
    sort = [s for s in request.get("sortModel") or [] if s.get("colId") in SORT_COLUMNS]
    column, descending = ((sort[0]["colId"], sort[0].get("sort") != "asc") if sort
                          else ("last_event_at", True))
    page = store.list_orders(screens.tower.engine, filters=filters, now=screens.tower.clock.now(),
                             sort=column, descending=descending, offset=start,
                             limit=max(1, min(end - start, store.MAX_PAGE)))
    response: dict[str, Any] = {"rowData": [grid_row(r, screens, lang) for r in page.rows]}
    if page.last_row is not None:
        response["rowCount"] = page.last_row
    return response


# --- the detail ------------------------------------------------------------------------

def _badge(text: str, tone: str) -> Any:
    return html.Span(text, className=f"orders-badge orders-badge-{tone}")


def _pair(label: str, value: Any) -> Any:
    return html.Div(className="orders-pair", children=[html.Dt(label), html.Dd(value)])


def detail_head(detail: OrderDetail, exceptions: list[dict[str, Any]], screens: Screens,
                lang: Lang, view_query: str) -> Any:
    row = detail.row
    flows = screens.tower.flows
    flow = flows.by_id.get(row.flow)
    flow_name = name("flow", row.flow, lang, default=flow.name if flow else row.flow)
    stage_name = (name("stage", row.stage, lang, default=flow.stage(row.stage).name)
                  if flow and row.stage in flow.stage_index else row.stage)
    badges = [_badge(t(f"orders.badge.{key}", lang), key) for key, on in (
        ("late", row.late), ("at_risk", row.at_risk), ("frozen", row.frozen),
        ("rush", row.priority == "rush"), ("custom", row.custom)) if on]
    none = t("orders.header.none", lang)
    parcels = ", ".join(sorted(detail.parcels)) or none
    exc_items = [
        html.Li(className="orders-exception", children=[
            html.Span(x["tier"], className=f"tower-tier tower-tier-{x['tier']}"),
            html.Span(x["title"], className="ms-2"),
            html.Span(f" · {x['status']} · {x['team']}", className="text-body-secondary"),
        ]) for x in exceptions
    ]
    return html.Div(className="orders-head", children=[
        html.Div(className="d-flex flex-wrap align-items-center gap-2", children=[
            html.H2(t("orders.detail.title", lang, order=row.order_id), className="h4 mb-0",
                    id=ids("title")),
            *badges,
            html.A(t("orders.detail.link", lang), className="small ms-auto orders-permalink",
                   href=f"/orders{view_query}{'&' if view_query else '?'}order={row.order_id}"),
        ]),
        html.Dl(className="orders-pairs mt-2", children=[
            _pair(t("orders.header.flow", lang), flow_name),
            _pair(t("orders.header.stage", lang), stage_name),
            _pair(t("orders.header.status", lang), t(f"orders.status.{row.status}", lang)
                  if row.status in store.STATUSES else row.status),
            _pair(t("orders.header.priority", lang), t(f"orders.priority.{row.priority}", lang)
                  if row.priority in store.PRIORITIES else row.priority),
            _pair(t("orders.header.custom", lang), t("orders.yes" if row.custom else "orders.no", lang)),
            _pair(t("orders.header.customer", lang), row.customer_id or none),
            _pair(t("orders.header.promised", lang), _when(row.promised_at, screens)),
            _pair(t("orders.header.created", lang), _when(row.created_at, screens)),
            _pair(t("orders.header.delivered", lang), _when(detail.delivered_at, screens)),
            _pair(t("orders.header.city", lang), row.city or none),
            _pair(t("orders.header.parcels", lang), parcels),
        ]),
        html.H3(t("orders.exceptions.title", lang), className="h6 mt-2"),
        html.Ul(exc_items, className="list-unstyled mb-0", id=ids("exceptions")) if exc_items
        else html.P(t("orders.exceptions.none", lang), className="text-body-secondary small mb-0"),
    ])


def _stage_label(stage: str | None, flow_id: str, screens: Screens, lang: Lang) -> str:
    if not stage:
        return ""
    flow = screens.tower.flows.by_id.get(flow_id)
    default = flow.stage(stage).name if flow and stage in flow.stage_index else stage
    return name("stage", stage, lang, default=default)


_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "order.created": (("flow", "flow"), ("priority", "priority"), ("promised_at", "promised")),
    "stage.entered": (("resource", "resource"), ("site", "site"), ("rerouted_from", "rerouted_from")),
    "stage.started": (("resource", "resource"), ("site", "site")),
    "stage.completed": (("resource", "resource"), ("site", "site")),
    "handoff.evidence": (("kind", "kind"),),
    "tracking.assigned": (("carrier", "carrier"), ("tracking_number", "tracking"), ("parcel_id", "parcel")),
    "parcel.scanned": (("status", "status"), ("hub_id", "hub"), ("parcel_id", "parcel")),
    "sensor.reading": (("kind", "kind"), ("value", "value")),
    "stock.level": (("warehouse_id", "site"), ("on_hand", "value")),
    "order.cancelled": (("reason", "reason"),),
}


def timeline_item(event: OrderEvent, flow_id: str, screens: Screens, lang: Lang) -> dict[str, str]:
    """An event as people read it: local time, what happened, in which stage, key fields."""
    p = event.payload
    key = f"orders.event.{event.type}"
    what = t(key, lang) if key in _EVENT_KEYS else event.type
    fields = []
    for field, label in _FIELDS.get(event.type, ()):
        value = p.get(field)
        if value in (None, ""):
            continue
        if field == "promised_at":
            value = _when(datetime.fromisoformat(str(value)), screens)
        elif field == "value" and p.get("unit"):
            value = f"{value} {p['unit']}"
        elif field == "rerouted_from":
            value = str(value)
        fields.append(f"{t(f'orders.field.{label}', lang)} {value}")
    return {"at": _when(event.occurred_at, screens, "%m-%d %H:%M:%S"), "type": event.type, "what": what,
            "stage": _stage_label(p.get("stage"), flow_id, screens, lang), "fields": " · ".join(fields),
            "source": event.source}


_EVENT_KEYS = {f"orders.event.{k}" for k in _FIELDS}


def timeline(items: list[dict[str, str]], lang: Lang, *, truncated: bool) -> Any:
    if not items:
        return html.P(t("orders.timeline.empty", lang), className="text-body-secondary")
    return html.Div(children=[
        html.H3(t("orders.timeline.title", lang), className="h6 mt-3"),
        html.Ol(className="orders-timeline list-unstyled", id=ids("events"), children=[
            html.Li(className=f"orders-event orders-event-{i['type'].replace('.', '-')}", children=[
                html.Span(i["at"], className="orders-event-time"),
                html.Span(i["what"], className="orders-event-what"),
                html.Span(i["stage"], className="orders-event-stage"),
                html.Span(i["fields"], className="orders-event-fields"),
                html.Span(i["source"], className="orders-event-source"),
            ]) for i in items
        ]),
        html.P(t("orders.timeline.first", lang, n=len(items)), className="small text-body-secondary")
        if truncated else None,
    ])


def gather_detail(order_id: str, screens: Screens, lang: Lang) -> dict[str, Any] | None:
    """Everything the detail shows, as plain data (hashed to skip unchanged parts)."""
    tower = screens.tower
    now = tower.clock.now()
    detail = store.order_detail(tower.engine, order_id=order_id, now=now)
    if detail is None:
        return None
    events = store.order_events(tower.engine, order_id=order_id, limit=EVENTS_SHOWN)
    with tower.engine.connect() as conn:
        exceptions = queue.list_exceptions(conn, status="open", order_id=order_id, limit=EXCEPTIONS_SHOWN)
    return {"detail": detail, "events": events, "now": now,
            "exceptions": [{k: x.get(k) for k in ("id", "tier", "title", "status", "team")}
                           for x in exceptions]}


def gantt_for(detail: OrderDetail, events: list[OrderEvent], now: datetime, screens: Screens,
              lang: Lang, theme: Theme) -> tuple[Any, int]:
    """The order's Gantt figure, and how many of its stays ran over budget."""
    flows = screens.tower.flows
    row = detail.row
    flow = flows.by_id.get(row.flow)
    budgets: dict[str, float] = {}
    gates: dict[str, list[tuple[str, str]]] = {}
    labels: dict[str, str] = {}
    if flow is not None:
        for s in flow.stages:
            budgets[s.id] = flows.budget_h(flow.id, s.id, custom=row.custom, rush=row.priority == "rush")
            gates[s.id] = [(g.kind, g.from_stage) for g in s.gates]
            labels[s.id] = name("stage", s.id, lang, default=s.name)
    rows = gantt_rows(detail.visits, budgets_h=budgets, labels=labels)
    evidence = [(str(e.payload.get("stage")), str(e.payload.get("kind")), e.occurred_at)
                for e in events if e.type == "handoff.evidence"]
    marks = gantt_marks(rows, evidence=evidence, gates=gates)
    promised = row.promised_at if row.status not in ("cancelled",) else None
    figure = gantt_figure(rows, marks=marks, now=now, promised_at=promised, zone=screens.settings.zone,
                          lang=lang, theme=theme)
    return figure, sum(is_over_budget(r, now) for r in rows)



def register_callbacks(app: Dash, screens: Screens) -> None:
    controls = [Input(ids(f"f-{k}"), "value") for k in FILTERS]

    @app.callback(Output(ids("filters"), "data"), *controls, prevent_initial_call=True)
    def _filters(*values: str | None) -> dict[str, str]:
        picked = {k: (v or "").strip() for k, v in zip(FILTERS, values, strict=True)}
        return {k: v for k, v in picked.items() if v and v != ANY}

    @app.callback(*(Output(ids(f"f-{k}"), "value") for k in FILTERS), Input(ids("clear"), "n_clicks"),
                  prevent_initial_call=True)
    def _clear(_n: int | None) -> tuple[str, ...]:
        return tuple("" if k == "customer" else ANY for k in FILTERS)

    # New filters: drop the grid's blocks; it asks again, with the store's new filters.
    app.clientside_callback(
        """function (filters, grid) {
            if (window.dash_ag_grid && window.dash_ag_grid.getApiAsync) {
                window.dash_ag_grid.getApiAsync(grid).then(function (api) {
                    api.purgeInfiniteCache();
                });
            }
            return Date.now();
        }""",
        Output(ids("purged"), "data"), Input(ids("filters"), "data"), State(ids("grid"), "id"),
        prevent_initial_call=True,
    )

    # The selected order is the page's permalink (no reload: the grid keeps its place).
    app.clientside_callback(
        """function (order) {
            if (!order) { return window.dash_clientside.no_update; }
            var url = new URL(window.location.href);
            if (url.searchParams.get("order") !== order) {
                url.searchParams.set("order", order);
                window.history.replaceState(window.history.state, "", url.toString());
            }
            return order;
        }""",
        Output(ids("permalink"), "data"), Input(ids("selected"), "data"),
    )

    @app.callback(Output(ids("grid"), "getRowsResponse"), Input(ids("grid"), "getRowsRequest"),
                  State(ids("filters"), "data"), State(ids("view"), "data"))
    def _rows(request: dict[str, Any] | None, filters: dict[str, Any] | None,
              view: dict[str, Any]) -> dict[str, Any]:
        if not request:
            raise PreventUpdate
        return rows_response(request, order_filter(filters), screens, normalise_lang(view.get("lang")))

    @app.callback(Output(ids("selected"), "data"), Input(ids("grid"), "cellClicked"),
                  prevent_initial_call=True)
    def _select(cell: dict[str, Any] | None) -> Any:
        if not cell or not cell.get("rowId"):
            raise PreventUpdate
        return str(cell["rowId"])

    @app.callback(
        Output(ids("count"), "children"),
        Output(ids("head"), "children"),
        Output(ids("gantt"), "figure"),
        Output(ids("gantt"), "style"),
        Output(ids("timeline"), "children"),
        Output(ids("sent"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        Input(ids("filters"), "data"),
        Input(ids("selected"), "data"),
        State(ids("view"), "data"),
        State(ids("sent"), "data"),
        State(SHELL("url"), "search"),
    )
    def _refresh(_n: int | None, filters: dict[str, Any] | None, order_id: str | None,
                 view: dict[str, Any], sent: dict[str, str] | None, search: str | None) -> tuple[Any, ...]:
        lang = normalise_lang(view.get("lang"))
        theme = palette.normalise_theme(view.get("theme"))
        sent, changed = parts.tracker(sent)

        now = screens.tower.clock.now()
        n, exact = store.count_orders(screens.tower.engine, filters=order_filter(filters), now=now)
        count = (t("orders.count", lang, n=f"{n:,}") if exact else t("orders.count_more", lang, n=f"{n:,}"))
        count_out = count if changed("count", count) else no_update
        if not order_id:
            return count_out, no_update, no_update, no_update, no_update, sent
        data = gather_detail(order_id, screens, lang)
        if data is None:
            missing = dbc.Alert(t("orders.detail.missing", lang, order=order_id), color="warning")
            return (count_out, missing if changed("detail", ["missing", order_id]) else no_update,
                    no_update, {"display": "none"}, [], sent)
        detail: OrderDetail = data["detail"]
        head_key = [order_id, detail.row, detail.parcels, data["exceptions"]]
        gantt_key = [order_id, detail.visits, detail.row, [e.event_id for e in data["events"]
                                                           if e.type == "handoff.evidence"],
                     # open stays grow with the clock: redraw each minute while open
                     int(now.timestamp() // 60) if any(v.completed_at is None for v in detail.visits) else 0]
        events_key = [order_id, len(data["events"]), data["events"][-1].event_id if data["events"] else ""]
        query = _view_query(search)
        head = (detail_head(detail, data["exceptions"], screens, lang, query)
                if changed("head", head_key) else no_update)
        figure: Any = no_update
        style: Any = no_update
        if changed("gantt", gantt_key):
            figure, _over = gantt_for(detail, data["events"], data["now"], screens, lang, theme)
            # The graph takes the figure's height (it grows with the stays), not its box's.
            style = {"display": "block", "height": f"{figure.layout.height}px"}
        items = no_update
        if changed("events", events_key):
            items = timeline([timeline_item(e, detail.row.flow, screens, lang) for e in data["events"]],
                             lang, truncated=len(data["events"]) >= EVENTS_SHOWN)
        return count_out, head, figure, style, items, sent


def _view_query(search: str | None) -> str:
    """The view part of the URL (language, theme, kiosk), without the selected order."""
    return View.from_search(search).query() if search else ""
