"""The frame around every page: navigation, language and theme switches, the freshness
line, the STALE banner, the page timer and the wall screen's rotation.

Everything about the view comes from the URL (see :mod:`widgets.view`). The freshness
check runs on the server (age of the newest event on the tower's clock); the browser
adds the other half: when the server has not answered for ``unreachable_after_s`` it
raises the banner itself, and drops it at the next answer (``assets/tower.js``).
"""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import ClientsideFunction, Dash, Input, Output, State, dcc, html, page_container

from tower.store import overview, queries
from widgets.context import Screens
from widgets.i18n import LANG_NAMES, LANGS, Lang, age, t
from widgets.ids import SHELL
from widgets.view import PAGE_PATHS, View


def layout(*, refresh_s: float, unreachable_after_s: float, default_lang: Lang) -> Any:
    """The app layout: the shell with the Dash Pages container in it."""
    return html.Div(id=SHELL("root"), className="tower-shell", children=[
        dcc.Location(id=SHELL("url"), refresh="callback-nav"),  # tells the router too
        dcc.Interval(id=SHELL("tick"), interval=int(refresh_s * 1000)),
        dcc.Interval(id=SHELL("rotate"), interval=30_000, disabled=True),
        dcc.Store(id=SHELL("fresh")),
        dcc.Store(id=SHELL("rotation"), data=[]),
        dcc.Store(id=SHELL("config"), data={"unreachable_ms": int(unreachable_after_s * 1000),
                                            "default_lang": default_lang}),
        html.Div(id=SHELL("view-applied"), hidden=True),
        html.Div(id=SHELL("nav")),
        html.Div(id=SHELL("stale"), className="tower-stale", role="alert", hidden=True),
        html.Div(className="tower-status", children=[
            html.Span(id=SHELL("freshness"), className="tower-freshness", children="…"),
        ]),
        html.Main(className="tower-page container-fluid", children=page_container),
    ])


def navbar(view: View, pathname: str) -> Any:
    """The navigation bar; every link keeps the view's query (language, kiosk, theme)."""
    lang = view.lang
    query = view.query()
    links = [
        dbc.NavItem(dbc.NavLink(t(f"page.{name}", lang), href=path + query, active=path == pathname,
                                id=SHELL(f"link-{name}")))
        for name, path in PAGE_PATHS.items()
    ]
    other_theme = "dark" if view.theme == "light" else "light"
    controls = html.Div(className="tower-controls d-flex gap-2 align-items-center", children=[
        html.Div(role="group", title=t("nav.language", lang), children=dbc.ButtonGroup([
            dbc.Button(LANG_NAMES[code], href=pathname + view.query(lang=code), external_link=False,
                       size="sm", outline=code != lang, color="secondary",
                       id=SHELL(f"lang-{code}"))
            for code in LANGS
        ], size="sm")),
        dbc.Button(t(f"theme.{other_theme}", lang), href=pathname + view.query(theme=other_theme),
                   size="sm", outline=True, color="secondary", id=SHELL("theme")),
    ])
    # A plain Bootstrap 5.3 navbar: its colours follow data-bs-theme (dbc.Navbar forces
    # navbar-dark / navbar-light).
    return html.Nav(className="tower-nav navbar navbar-expand-md bg-body-tertiary border-bottom", children=[
        html.Div(className="container-fluid", children=[
            dcc.Link(t("app.title", lang), href="/" + query, className="navbar-brand"),
            dbc.Nav(links, navbar=True, className="me-auto flex-wrap"),
            controls,
        ]),
    ])


def freshness(screens: Screens, lang: Lang) -> dict[str, Any]:
    """Age of the newest event on the tower's clock, the line and the banner to show."""
    tower = screens.tower
    last = queries.last_event_time(tower.engine)
    seconds = overview.age_seconds(last, tower.clock.now())
    limit = screens.settings.stale_after_s
    banner: str | None
    if seconds is None:
        line, banner = t("fresh.no_data", lang), t("stale.no_data", lang)
    else:
        line = t("fresh.updated", lang, age=age(seconds, lang))
        banner = (t("stale.old", lang, age=age(seconds, lang), limit=age(limit, lang))
                  if seconds > limit else None)
    return {"age_s": seconds, "line": line, "banner": banner,
            "unreachable": t("stale.unreachable", lang)}


def register_callbacks(app: Dash, screens: Screens) -> None:
    default_lang = screens.config.default_lang

    @app.callback(
        Output(SHELL("nav"), "children"),
        Output(SHELL("rotate"), "interval"),
        Output(SHELL("rotate"), "disabled"),
        Output(SHELL("rotation"), "data"),
        Output(SHELL("root"), "className"),
        Input(SHELL("url"), "pathname"),
        Input(SHELL("url"), "search"),
    )
    def _view(pathname: str | None, search: str | None) -> tuple[Any, ...]:
        view = View.from_search(search, default_lang=default_lang)
        css = "tower-shell tower-kiosk" if view.kiosk else "tower-shell"
        return (navbar(view, pathname or "/"), (view.rotate_s or 30) * 1000, not view.rotate_s,
                view.rotation_paths(), css)

    @app.callback(
        Output(SHELL("fresh"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        Input(SHELL("url"), "search"),
    )
    def _freshness(_n: int | None, search: str | None) -> dict[str, Any]:
        return freshness(screens, View.from_search(search, default_lang=default_lang).lang)

    # In the browser: theme and language on <html>, the freshness line and banner
    # (including "server unreachable"), and the rotation of a wall screen.
    app.clientside_callback(
        ClientsideFunction("tower", "applyView"),
        Output(SHELL("view-applied"), "children"),
        Input(SHELL("url"), "search"),
        State(SHELL("config"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("tower", "showFreshness"),
        Output(SHELL("freshness"), "children"),
        Output(SHELL("stale"), "children"),
        Output(SHELL("stale"), "hidden"),
        Input(SHELL("fresh"), "data"),
        Input(SHELL("tick"), "n_intervals"),
        State(SHELL("config"), "data"),
    )
    app.clientside_callback(
        ClientsideFunction("tower", "rotate"),
        Output(SHELL("url"), "pathname"),
        Input(SHELL("rotate"), "n_intervals"),
        State(SHELL("rotation"), "data"),
        State(SHELL("url"), "pathname"),
        prevent_initial_call=True,
    )
