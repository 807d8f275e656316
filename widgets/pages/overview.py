"""`/` Overview, the wall screen: KPI tiles, the order funnel per flow, the exception ticker.

One refresh callback on the shell's timer reads the read services and sends only the
parts whose data changed (a hash per part is kept in the page's ``sent`` store).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update

from tower.store import overview as store
from tower.store import queries
from widgets import context, palette, parts
from widgets.context import Screens
from widgets.figures.funnel import funnel_figure, funnel_rows
from widgets.graphs import graph_config
from widgets.i18n import Lang, age, name, normalise_lang, t
from widgets.ids import SHELL, PageIds
from widgets.view import TRUE

NAME = "overview"
ids = PageIds(NAME)


def layout(lang: str | None = None, theme: str | None = None, kiosk: str | None = None,
           **_query: Any) -> Any:
    screens = context.current()
    code = normalise_lang(lang, default=screens.config.default_lang)
    shade = palette.normalise_theme(theme, default="dark" if str(kiosk).lower() in TRUE else "light")
    flows = screens.tower.flows.flows
    return html.Div(className="tower-overview", children=[
        dcc.Store(id=ids("view"), data={"lang": code, "theme": shade}),
        dcc.Store(id=ids("sent"), data={}),
        html.Div(id=ids("kpis"), className="tower-kpis"),
        dbc.Row(className="g-3 mt-1", children=[
            dbc.Col(lg=8, children=dbc.Row(className="g-3", children=[
                dbc.Col(md=12, xl=12 // min(len(flows), 2) if flows else 12, children=dbc.Card(
                    html.Div(className="tower-funnel", children=dcc.Graph(
                        id=ids.match("funnel", flow=f.id), config=graph_config(code),
                        figure=parts.blank_figure(shade),
                        style={"height": "100%"})),
                    body=True))
                for f in flows
            ])),
            dbc.Col(lg=4, children=dbc.Card(body=True, className="tower-ticker-card", children=[
                html.H2(t("ticker.title", code), className="h5"),
                html.Ol(id=ids("ticker"), className="tower-ticker list-unstyled mb-0"),
            ])),
        ]),
    ])




def _pct(share: float | None, lang: Lang) -> str:
    return t("kpi.none", lang) if share is None else f"{share:.0%}"


def _tile(key: str, value: str, lang: Lang, *, tone: str = "", note: str = "") -> Any:
    return html.Div(className=f"tower-kpi {tone}".strip(), id=ids(f"kpi-{key}"), children=[
        html.Div(t(f"kpi.{key}", lang), className="tower-kpi-label"),
        html.Div(value, className="tower-kpi-value"),
        html.Div(note, className="tower-kpi-note"),
    ])


def _when(moment: datetime, screens: Screens) -> str:
    return moment.astimezone(screens.settings.zone).strftime("%H:%M")


def kpi_tiles(data: dict[str, Any], screens: Screens, lang: Lang) -> Any:
    """The KPI tiles from the gathered figures (see :func:`gather`)."""
    orders, exc = data["orders"], data["exceptions"]
    urgent = exc["most_urgent"]
    if urgent is None:
        urgent_value, urgent_note, urgent_tone = t("kpi.no_deadline", lang), "", ""
    else:
        left = urgent["left_s"]
        urgent_value = (t("kpi.due_in", lang, age=age(left, lang)) if left >= 0
                        else t("kpi.overdue", lang, age=age(-left, lang)))
        urgent_note = f"{urgent['tier']} · {urgent['respond_by_local']} · {urgent['title']}"
        urgent_tone = "tower-bad" if left < 0 else "tower-warn"
    tiers = " · ".join(f"{tier} {n}" for tier, n in exc["open_by_tier"].items())
    return [
        _tile("in_flight", str(orders["in_flight"]), lang),
        _tile("shipped_today", str(data["shipped_today"]), lang),
        _tile("on_time", _pct(orders["on_time_share"], lang), lang,
              note=f"{orders['on_time_today']}/{orders['delivered_today']}"),
        _tile("otif", _pct(orders["otif"], lang), lang,
              note=f"{orders['otif_today']}/{orders['due_today']}"),
        _tile("late", str(orders["late"]), lang, tone="tower-bad" if orders["late"] else ""),
        _tile("at_risk", str(orders["at_risk"]), lang, tone="tower-warn" if orders["at_risk"] else ""),
        _tile("open_exceptions", str(sum(exc["open_by_tier"].values())), lang, note=tiers),
        _tile("urgent", urgent_value, lang, tone=urgent_tone, note=urgent_note),
    ]


def ticker(items: list[dict[str, Any]], lang: Lang) -> Any:
    if not items:
        return [html.Li(t("ticker.empty", lang), className="text-body-secondary")]
    return [
        html.Li(className="tower-tick", children=[
            html.Span(i["tier"], className=f"tower-tier tower-tier-{i['tier']}"),
            html.Span(i["opened_local"], className="tower-tick-time"),
            html.Span(i["title"], className="tower-tick-title"),
            html.Span(t(f"status.{i['status']}", lang) if f"status.{i['status']}" in _STATUS_KEYS
                      else i["status"], className="tower-tick-status"),
        ])
        for i in items
    ]


_STATUS_KEYS = {f"status.{s}" for s in ("triggered", "acknowledged", "snoozed", "resolved", "closed",
                                        "cancelled")}


def gather(screens: Screens) -> dict[str, Any]:
    """Every figure the overview shows, as plain data (hashed to skip unchanged parts)."""
    tower, settings = screens.tower, screens.settings
    now = tower.clock.now()
    funnels = {
        f.id: queries.funnel(tower.engine, flows=tower.flows, flow_id=f.id, zone=settings.zone,
                             days=2, now=now)
        for f in tower.flows.flows
    }
    shipped = sum(
        funnels[flow]["days"][0]["entered"].get(stage, 0)
        for flow, stage in screens.config.overview.shipped_on_entering.items() if flow in funnels
    )
    # In flight: the in-progress rollup (order_stage_counts) the funnels just read, one
    # per flow of the book (orders of an unknown flow are rejected at ingest), not a count.
    in_flight = (sum(f["by_status"].get(store.IN_PROGRESS, 0) for f in funnels.values())
                 if funnels else store.in_flight_count(tower.engine))
    kpis = store.order_kpis(tower.engine, zone=settings.zone, now=now, in_flight=in_flight)
    exc = store.exception_kpis(tower.engine)
    urgent = None
    if exc.most_urgent is not None and exc.most_urgent.respond_by is not None:
        urgent = {"tier": exc.most_urgent.tier, "title": exc.most_urgent.title,
                  "respond_by_local": _when(exc.most_urgent.respond_by, screens),
                  "left_s": (exc.most_urgent.respond_by - now).total_seconds()}
    return {
        "kpis": {
            "orders": {**asdict(kpis), "on_time_share": kpis.on_time_share, "otif": kpis.otif},
            "shipped_today": shipped,
            "exceptions": {"open_by_tier": exc.open_by_tier, "most_urgent": urgent},
        },
        "funnels": funnels,
        "ticker": [
            {"tier": x.tier, "status": x.status, "title": x.title,
             "opened_local": _when(x.opened_at, screens)}
            for x in store.latest_exceptions(tower.engine, limit=screens.config.overview.ticker_size)
        ],
    }


def register_callbacks(app: Dash, screens: Screens) -> None:
    flows = screens.tower.flows

    @app.callback(
        Output(ids("kpis"), "children"),
        Output(ids.match("funnel", flow=ALL), "figure"),
        Output(ids("ticker"), "children"),
        Output(ids("sent"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        State(ids("view"), "data"),
        State(ids("sent"), "data"),
        State(ids.match("funnel", flow=ALL), "id"),
    )
    def _refresh(_n: int | None, view: dict[str, str], sent: dict[str, str] | None,
                 graphs: list[dict[str, str]]) -> tuple[Any, ...]:
        lang = normalise_lang(view.get("lang"))
        theme = palette.normalise_theme(view.get("theme"))
        data = gather(screens)
        sent, changed = parts.tracker(sent)

        kpis = kpi_tiles(data["kpis"], screens, lang) if changed("kpis", data["kpis"]) else no_update
        figures = []
        for graph in graphs:
            flow_id = graph["flow"]
            funnel = data["funnels"].get(flow_id)
            if funnel is None or not changed(f"funnel:{flow_id}", funnel):
                figures.append(no_update)
                continue
            flow = flows.by_id[flow_id]
            rows = funnel_rows(
                funnel, labels={s.id: name("stage", s.id, lang, default=s.name) for s in flow.stages},
                delivered_label=t("funnel.delivered", lang))
            title = t("funnel.title", lang, flow=name("flow", flow.id, lang, default=flow.name))
            figures.append(funnel_figure(rows, title=title, lang=lang, theme=theme))
        ticks = ticker(data["ticker"], lang) if changed("ticker", data["ticker"]) else no_update
        return kpis, figures, ticks, sent
