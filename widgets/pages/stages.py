"""`/stages`: the stage Gantt across a chosen set of orders, and per stage the
distribution of its durations against its benchmark (the stages over the benchmark by
the ``stage_over_benchmark`` rule's ``over_share`` flagged).

One refresh callback, on the shell's timer and the two selectors, reads
:mod:`tower.store.stages` and sends only the parts whose data changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import dash_bootstrap_components as dbc
from dash import ALL, Dash, Input, Output, State, dcc, html, no_update

from tower.flows import FlowBook
from tower.rules.config import StageOverBenchmarkParams
from tower.store import stages as store
from tower.store import summaries
from widgets import context, palette, parts
from widgets.context import Screens
from widgets.figures.stages import distribution_figure, gantt_bars, gantt_figure, stage_box, stage_colours
from widgets.graphs import graph_config
from widgets.i18n import Lang, name, normalise_lang, t
from widgets.ids import SHELL, PageIds
from widgets.view import TRUE

NAME = "stages"
ids = PageIds(NAME)
LIMITS = (50, 100, 200, 500)
DEFAULT_LIMIT = 200


def choices(flows: FlowBook, lang: Lang) -> list[dict[str, str]]:
    """The order selections: latest, late, and one per flow (``flow:<id>``)."""
    return [
        {"label": t("stages.choice.latest", lang), "value": "latest"},
        {"label": t("stages.choice.late", lang), "value": "late"},
        *({"label": t("stages.choice.flow", lang, flow=name("flow", f.id, lang, default=f.name)),
           "value": f"flow:{f.id}"} for f in flows.flows),
    ]


def layout(lang: str | None = None, theme: str | None = None, kiosk: str | None = None,
           **_query: Any) -> Any:
    screens = context.current()
    code = normalise_lang(lang, default=screens.config.default_lang)
    shade = palette.normalise_theme(theme, default="dark" if str(kiosk).lower() in TRUE else "light")
    flows = screens.tower.flows.flows
    return html.Div(className="tower-stages", children=[
        dcc.Store(id=ids("view"), data={"lang": code, "theme": shade}),
        dcc.Store(id=ids("sent"), data={}),
        html.Div(className="tower-controls d-flex flex-wrap gap-3 align-items-center mt-2", children=[
            html.Label(t("stages.choice", code), htmlFor=ids("choice"), className="mb-0"),
            dbc.Select(id=ids("choice"), value="latest", options=choices(screens.tower.flows, code),
                       style={"maxWidth": "18rem"}),
            html.Label(t("stages.limit", code), htmlFor=ids("limit"), className="mb-0"),
            dbc.Select(id=ids("limit"), value=str(DEFAULT_LIMIT),
                       options=[{"label": str(n), "value": str(n)} for n in LIMITS],
                       style={"maxWidth": "7rem"}),
        ]),
        dbc.Card(body=True, className="mt-3", children=[
            html.H2(t("stages.gantt.title", code), className="h5"),
            html.Div(id=ids("gantt-note"), className="text-body-secondary small"),
            html.Div(className="tower-stages-gantt", children=dcc.Graph(
                id=ids("gantt"), config=graph_config(code), figure=parts.blank_figure(shade))),
        ]),
        html.Div(id=ids("note"), className="text-body-secondary small mt-3"),
        dbc.Row(className="g-3 mt-0", children=[
            dbc.Col(md=12, xl=6, children=dbc.Card(body=True, children=dcc.Graph(
                id=ids.match("dist", flow=f.id), config=graph_config(code), figure=parts.blank_figure(shade),
                className="tower-stages-dist")))
            for f in flows
        ]),
        dbc.Card(body=True, className="mt-3", children=html.Div(id=ids("table"),
                                                                 className="table-responsive")),
    ])




def _parse_choice(value: str | None, flows: FlowBook) -> tuple[store.Choice, str | None]:
    if value and value.startswith("flow:") and value[5:] in flows.by_id:
        return "flow", value[5:]
    return ("late", None) if value == "late" else ("latest", None)


def _limit(value: str | None) -> int:
    try:
        n = int(value or DEFAULT_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT
    return n if n in LIMITS else DEFAULT_LIMIT


def gather(screens: Screens, params: StageOverBenchmarkParams | None, *, choice: str | None,
           limit: str | None) -> dict[str, Any]:
    """The orders and visits of the selection, and the reviewed stages (plain data)."""
    tower = screens.tower
    now = tower.clock.now()
    kind, flow = _parse_choice(choice, tower.flows)
    orders = store.chosen_orders(tower.engine, choice=kind, flow=flow, now=now, limit=_limit(limit))
    visits = store.order_visits(tower.engine, order_ids=[o.order_id for o in orders])
    reviews: list[store.StageReview] = []
    as_of: datetime | None = None
    if params is not None:
        # The window's distributions are kept by the job `summaries.refresh` (one row read).
        window = summaries.stage_window(tower.engine, period=params.period, now=now)
        reviews = store.review(window.distributions, flows=tower.flows, params=params)
        as_of = window.as_of
    return {"now": now, "choice": choice or "latest", "orders": orders, "visits": visits,
            "reviews": reviews, "as_of": as_of}


def _h(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def review_table(reviews: list[store.StageReview], flows: FlowBook, lang: Lang) -> Any:
    """Every reviewed stage, the flagged ones marked in colour and in words."""
    head = html.Thead(html.Tr([html.Th(t(f"stages.table.{k}", lang)) for k in
                               ("stage", "visits", "mean", "p50", "p90", "wait", "benchmark", "vs",
                                "status")]))
    body = []
    for r in reviews:
        d = r.distribution
        flow = flows.by_id[r.flow]
        stage_label = (f"{name('flow', flow.id, lang, default=flow.name)} · "
                       f"{name('stage', r.stage, lang, default=flow.stage(r.stage).name)}")
        share = r.over_share
        body.append(html.Tr(className="tower-stages-over" if r.over else "", children=[
            html.Td(stage_label), html.Td(str(d.visits)), html.Td(_h(d.mean_h)),
            html.Td(_h(d.quantiles_h[50])), html.Td(_h(d.quantiles_h[90])), html.Td(_h(d.wait_mean_h)),
            html.Td(f"{r.benchmark_h:g}"), html.Td("—" if share is None else f"{share:+.0%}"),
            html.Td(html.Span(t("stages.status.over" if r.over else "stages.status.within", lang),
                              className="badge text-bg-danger" if r.over else "badge text-bg-secondary")),
        ]))
    return html.Table(className="table table-sm align-middle mb-0", children=[head, html.Tbody(body)])


def register_callbacks(app: Dash, screens: Screens) -> None:
    flows = screens.tower.flows
    params = store.benchmark_params(screens.tower.rule_book)
    zone = screens.settings.zone

    @app.callback(
        Output(ids("gantt"), "figure"),
        Output(ids("gantt-note"), "children"),
        Output(ids.match("dist", flow=ALL), "figure"),
        Output(ids("note"), "children"),
        Output(ids("table"), "children"),
        Output(ids("sent"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        Input(ids("choice"), "value"),
        Input(ids("limit"), "value"),
        State(ids("view"), "data"),
        State(ids("sent"), "data"),
        State(ids.match("dist", flow=ALL), "id"),
    )
    def _refresh(_n: int | None, choice: str | None, limit: str | None, view: dict[str, str],
                 sent: dict[str, str] | None, graphs: list[dict[str, str]]) -> tuple[Any, ...]:
        lang = normalise_lang(view.get("lang"))
        theme = palette.normalise_theme(view.get("theme"))
        data = gather(screens, params, choice=choice, limit=limit)
        sent, changed = parts.tracker(sent)

        now: datetime = data["now"]
        orders, visits, reviews = data["orders"], data["visits"], data["reviews"]
        # The open bars grow with the clock: the Gantt is re-sent at most once a minute.
        gantt_key = [data["choice"], limit, orders, visits, now.replace(second=0, microsecond=0)]
        gantt: Any = no_update
        note: Any = no_update
        if changed("gantt", gantt_key):
            all_stages = [s.id for f in flows.flows for s in f.stages]
            labels = {s.id: name("stage", s.id, lang, default=s.name) for f in flows.flows for s in f.stages}
            gantt = gantt_figure(gantt_bars(visits, now=now), rows=[o.order_id for o in orders],
                                 labels=labels, colours=stage_colours(all_stages), now=now, zone=zone,
                                 lang=lang, theme=theme)
            label = next((c["label"] for c in choices(flows, lang) if c["value"] == data["choice"]),
                         data["choice"])
            note = t("stages.gantt.note", lang, n=len(orders), choice=label, zone=zone.key)
        figures: list[Any] = []
        for graph in graphs:
            flow = flows.by_id.get(graph["flow"])
            mine = [r for r in reviews if flow is not None and r.flow == flow.id]
            if flow is None or params is None or not changed(f"dist:{flow.id}", mine):
                figures.append(no_update)
                continue
            labels = {s.id: name("stage", s.id, lang, default=s.name) for s in flow.stages}
            title = t("stages.dist.title", lang, flow=name("flow", flow.id, lang, default=flow.name))
            figures.append(distribution_figure([stage_box(r) for r in mine], labels=labels, title=title,
                                               over_share=params.over_share, lang=lang, theme=theme))
        if params is None:
            window_note = t("stages.no_rule", lang)
        else:
            window_note = t("stages.dist.note", lang, days=f"{params.period.total_seconds() / 86400:g}",
                            share=f"{params.over_share:.0%}", min_visits=params.min_visits)
            if data["as_of"] is not None:
                as_of = data["as_of"].astimezone(zone).strftime("%H:%M")
                window_note = f"{window_note} {t('stages.dist.as_of', lang, time=as_of, zone=zone.key)}"
        table = review_table(reviews, flows, lang) if changed("table", reviews) else no_update
        return gantt, note, figures, window_note, table, sent
