"""`/insights`: the month's top-3 delay causes (Pareto), stages over benchmark,
carrier and supplier scorecards with their trend, and MTTA/MTTR.

One refresh callback, on the shell's timer and the month selector, reads
:mod:`tower.store.insights` and :mod:`tower.store.summaries` (the month's stage
distributions and carrier scorecard, kept by a scheduled job) and sends only the parts
whose data changed.
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import Dash, Input, Output, State, dcc, html, no_update

from tower.flows import FlowBook
from tower.rules.config import StageOverBenchmarkParams
from tower.store import insights as store
from tower.store import stages as stage_store
from tower.store import summaries
from widgets import context, palette, parts
from widgets.context import Screens
from widgets.figures.insights import pareto_figure, pareto_rows
from widgets.graphs import graph_config
from widgets.i18n import CATALOGUE, Lang, age, name, normalise_lang, t
from widgets.ids import SHELL, PageIds
from widgets.view import TRUE

NAME = "insights"
ids = PageIds(NAME)
MONTHS = 12


def layout(lang: str | None = None, theme: str | None = None, kiosk: str | None = None,
           **_query: Any) -> Any:
    screens = context.current()
    code = normalise_lang(lang, default=screens.config.default_lang)
    shade = palette.normalise_theme(theme, default="dark" if str(kiosk).lower() in TRUE else "light")
    months = store.recent_months(zone=screens.settings.zone, now=screens.tower.clock.now(), count=MONTHS)

    def card(key: str, *children: Any, **kwargs: Any) -> Any:
        return dbc.Card(body=True, className="h-100", children=[html.H2(id=ids(f"{key}-title"),
                                                                        className="h5"), *children],
                        **kwargs)

    return html.Div(className="tower-insights", children=[
        dcc.Store(id=ids("view"), data={"lang": code, "theme": shade}),
        dcc.Store(id=ids("sent"), data={}),
        html.Div(className="tower-controls d-flex flex-wrap gap-3 align-items-center mt-2", children=[
            html.Label(t("insights.month", code), htmlFor=ids("month"), className="mb-0"),
            dbc.Select(id=ids("month"), value=months[0], options=[{"label": m, "value": m} for m in months],
                       style={"maxWidth": "10rem"}),
        ]),
        html.Div(id=ids("month-note"), className="text-body-secondary small mt-2"),
        dbc.Row(className="g-3 mt-0", children=[
            dbc.Col(lg=8, children=dbc.Card(body=True, className="h-100", children=dcc.Graph(
                id=ids("pareto"), config=graph_config(code), figure=parts.blank_figure(shade),
                className="tower-insights-pareto"))),
            dbc.Col(lg=4, children=card("top3", html.Ol(id=ids("top3"), className="tower-insights-top3"))),
        ]),
        dbc.Row(className="g-3 mt-0", children=[
            dbc.Col(lg=7, children=card("over", html.Div(id=ids("over"), className="table-responsive"))),
            dbc.Col(lg=5, children=card("items", html.Ul(id=ids("items"), className="mb-0"))),
        ]),
        dbc.Row(className="g-3 mt-0", children=[
            dbc.Col(lg=6, children=card("carriers", html.Div(id=ids("carriers"),
                                                             className="table-responsive"))),
            dbc.Col(lg=6, children=card("suppliers", html.Div(id=ids("suppliers"),
                                                              className="table-responsive"))),
        ]),
        dbc.Row(className="g-3 mt-0 mb-3", children=[
            dbc.Col(lg=12, children=card("response", html.Div(id=ids("response"),
                                                              className="table-responsive"))),
        ]),
    ])




def cause_label(cause: str, lang: Lang) -> str:
    key = f"insights.cause.{cause}"
    return t(key, lang) if key in CATALOGUE[lang] else cause


def gather(screens: Screens, params: StageOverBenchmarkParams | None, *, month: str | None
           ) -> dict[str, Any]:
    """Every figure of the month, as plain data (hashed to skip unchanged parts)."""
    tower = screens.tower
    now = tower.clock.now()
    period = store.month(month, zone=screens.settings.zone, now=now)
    # The month's figures (stage distributions, scorecards, measures) are kept by the job
    # `summaries.refresh` (one row read); the benchmarks are applied here.
    figures = summaries.month_figures(tower.engine, period=period, now=now)
    measures = figures.measures
    over: list[stage_store.StageReview] = []
    if params is not None:
        over = [r for r in stage_store.review(figures.distributions, flows=tower.flows, params=params)
                if r.over]
    return {
        "period": period,
        "as_of": figures.as_of,
        "causes": measures["causes"],
        "over": over,
        "items": store.open_improvements(tower.engine, limit=20),
        "carriers": figures.carriers,
        "suppliers": figures.suppliers,
        "response": {"overall": measures["overall"], "by_tier": measures["by_tier"],
                     "by_team": measures["by_team"]},
    }


def _table(head: list[str], rows: list[list[Any]], *, classes: list[str] | None = None) -> Any:
    return html.Table(className="table table-sm align-middle mb-0", children=[
        html.Thead(html.Tr([html.Th(h) for h in head])),
        html.Tbody([html.Tr([html.Td(c) for c in row], className=(classes or [""] * len(rows))[i])
                    for i, row in enumerate(rows)]),
    ])


def _pct(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def trend_text(value: float | None, lang: Lang, *, points: bool, better_up: bool) -> Any:
    """▲/▼ and the change, coloured good or bad (and said by the arrow too)."""
    if value is None:
        return t("insights.trend.none", lang)
    shown = f"{value * 100:+.0f} pp" if points else f"{value:+.0f}"
    if abs(value) < 1e-9:
        return html.Span(t("insights.trend.flat", lang, value=shown))
    key = "insights.trend.up" if value > 0 else "insights.trend.down"
    good = (value > 0) == better_up
    return html.Span(t(key, lang, value=shown), className="text-success" if good else "text-danger")


def carriers_table(scores: list[store.Score], lang: Lang) -> Any:
    if not scores:
        return html.P(t("insights.carriers.empty", lang), className="text-body-secondary mb-0")
    head = [t(f"insights.col.{k}", lang) for k in ("carrier", "delivered", "on_time", "previous", "trend")]
    rows = [[s.name, str(s.count), _pct(s.share), f"{_pct(s.previous_share)} ({s.previous_count})",
             trend_text(s.trend, lang, points=True, better_up=True)] for s in scores]
    return [html.P(t("insights.carriers.note", lang), className="small text-body-secondary"),
            _table(head, rows)]


def suppliers_table(scores: list[store.Score], lang: Lang) -> Any:
    if not scores:
        return [html.P(t("insights.suppliers.note", lang), className="small text-body-secondary"),
                html.P(t("insights.suppliers.empty", lang), className="text-body-secondary mb-0")]
    head = [t(f"insights.col.{k}", lang) for k in ("supplier", "delays", "previous", "trend")]
    rows = [[s.name, str(s.count), str(s.previous_count),
             trend_text(s.trend, lang, points=False, better_up=False)] for s in scores]
    return [html.P(t("insights.suppliers.note", lang), className="small text-body-secondary"),
            _table(head, rows)]


def over_table(over: list[stage_store.StageReview], flows: FlowBook, share: str, lang: Lang) -> Any:
    if not over:
        return html.P(t("insights.over.none", lang, share=share), className="text-body-secondary mb-0")
    head = [t(f"insights.col.{k}", lang) for k in ("stage", "visits", "mean", "benchmark", "over")]
    rows = []
    for r in over:
        flow = flows.by_id[r.flow]
        label = (f"{name('flow', flow.id, lang, default=flow.name)} · "
                 f"{name('stage', r.stage, lang, default=flow.stage(r.stage).name)}")
        rows.append([label, str(r.distribution.visits), f"{r.distribution.mean_h:.1f}", f"{r.benchmark_h:g}",
                     html.Span(f"{r.over_share or 0:+.0%}", className="badge text-bg-danger")])
    return [html.P(t("insights.over.note", lang), className="small text-body-secondary"), _table(head, rows)]


def items_list(items: list[store.ImprovementItem], lang: Lang) -> Any:
    if not items:
        return [html.Li(t("insights.over.no_items", lang), className="text-body-secondary list-unstyled")]
    return [html.Li(f"{i.title}") for i in items]


def response_table(response: dict[str, Any], lang: Lang) -> Any:
    head = [t(f"insights.col.{k}", lang) for k in ("group", "opened", "mtta", "mttr", "in_time")]

    def row(label: str, m: dict[str, Any]) -> list[Any]:
        mtta, mttr = m.get("mtta_s"), m.get("mttr_s")
        return [label, str(m["opened"]), "—" if mtta is None else age(mtta, lang),
                "—" if mttr is None else age(mttr, lang), _pct(m.get("answered_in_time_share"))]

    rows = [row(t("insights.all", lang), response["overall"])]
    rows += [row(tier, m) for tier, m in response["by_tier"].items()]
    rows += [row(team, m) for team, m in response["by_team"].items()]
    return [html.P(t("insights.response.note", lang), className="small text-body-secondary"),
            _table(head, rows, classes=["fw-semibold"] + [""] * (len(rows) - 1))]


def register_callbacks(app: Dash, screens: Screens) -> None:
    flows = screens.tower.flows
    params = stage_store.benchmark_params(screens.tower.rule_book)
    zone = screens.settings.zone

    @app.callback(
        Output(ids("month-note"), "children"),
        Output(ids("pareto"), "figure"),
        Output(ids("top3-title"), "children"),
        Output(ids("top3"), "children"),
        Output(ids("over-title"), "children"),
        Output(ids("over"), "children"),
        Output(ids("items-title"), "children"),
        Output(ids("items"), "children"),
        Output(ids("carriers-title"), "children"),
        Output(ids("carriers"), "children"),
        Output(ids("suppliers-title"), "children"),
        Output(ids("suppliers"), "children"),
        Output(ids("response-title"), "children"),
        Output(ids("response"), "children"),
        Output(ids("sent"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        Input(ids("month"), "value"),
        State(ids("view"), "data"),
        State(ids("sent"), "data"),
    )
    def _refresh(_n: int | None, month: str | None, view: dict[str, str], sent: dict[str, str] | None
                 ) -> tuple[Any, ...]:
        lang = normalise_lang(view.get("lang"))
        theme = palette.normalise_theme(view.get("theme"))
        data = gather(screens, params, month=month)
        sent, changed = parts.tracker(sent)

        period: store.Month = data["period"]
        share = f"{params.over_share:.0%}" if params is not None else "—"
        note = t("insights.month_note", lang, month=period.key, zone=zone.key, previous=period.previous_key)
        note = f"{note}{t('insights.as_of', lang, time=data['as_of'].astimezone(zone).strftime('%H:%M'))}"
        pareto: Any = no_update
        top3: Any = no_update
        if changed("causes", [period.key, data["causes"]]):
            rows = pareto_rows(data["causes"], labels={c["cause"]: cause_label(c["cause"], lang)
                                                       for c in data["causes"]})
            pareto = pareto_figure(rows, title=t("insights.pareto.title", lang, month=period.key),
                                   lang=lang, theme=theme)
            top3 = ([html.Li(t("insights.top3.row", lang, cause=r.label, share=f"{r.share:.0%}", n=r.n))
                     for r in rows if r.top]
                    or [html.Li(t("insights.top3.empty", lang), className="text-body-secondary")])
        over = (over_table(data["over"], flows, share, lang) if changed("over", [period.key, data["over"]])
                else no_update)
        items = items_list(data["items"], lang) if changed("items", data["items"]) else no_update
        carriers = (carriers_table(data["carriers"], lang) if changed("carriers", data["carriers"])
                    else no_update)
        suppliers = (suppliers_table(data["suppliers"], lang) if changed("suppliers", data["suppliers"])
                     else no_update)
        response = (response_table(data["response"], lang) if changed("response", data["response"])
                    else no_update)
        return (note, pareto, t("insights.top3.title", lang), top3,
                t("insights.over.title", lang, share=share), over, t("insights.over.items", lang), items,
                t("insights.carriers.title", lang), carriers, t("insights.suppliers.title", lang), suppliers,
                t("insights.response.title", lang), response, sent)
