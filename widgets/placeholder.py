"""The placeholder home page until the screens land: what is running and where."""

from __future__ import annotations

from typing import Any

from dash import dcc, html


def ids(name: str) -> str:
    """Page-prefixed component ids."""
    return f"home-{name}"


def layout(*, api_prefix: str = "/api/v1") -> Any:
    return html.Main(
        className="tower-home",
        children=[
            html.H1("Order Tower"),
            html.P("The control tower is running. Screens arrive with the UI issue; "
                   "the event API is live:"),
            html.Ul([
                html.Li(html.Code(f"POST {api_prefix}/events")),
                html.Li(html.A(f"GET {api_prefix}/flows", href=f"{api_prefix}/flows")),
                html.Li(html.A("GET /healthz", href="/healthz")),
            ]),
            html.Section([
                html.H2("Live"),
                html.Div(id=ids("status"), children="waiting for data…"),
            ]),
            dcc.Interval(id=ids("tick"), interval=5_000),
        ],
    )
