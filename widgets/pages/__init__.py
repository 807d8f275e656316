"""The screens, one module per page (Dash Pages), at the fixed paths of issue 6.

Each page module has ``NAME``, ``layout(**query)`` (the router passes the URL's query
parameters, e.g. ``lang``) and ``register_callbacks(app, screens)``. Pages are
registered here rather than by Dash's folder scan, and their callbacks are bound to
each app with ``app.callback``: Dash's folder scan and global ``@callback`` let only
the first app of a process have the callbacks, while ``create_app`` must be callable
again (tests, gunicorn workers) with a Tower of its own.
"""

from __future__ import annotations

from types import ModuleType

import dash
from dash import Dash

from widgets.context import Screens
from widgets.pages import (
    emergency_room,
    insights,
    network,
    orders,
    overview,
    stages,
    what_if,
)
from widgets.view import PAGE_PATHS

PAGES: tuple[ModuleType, ...] = (overview, orders, stages, network, emergency_room, insights, what_if)


def install(app: Dash, screens: Screens) -> None:
    """Register every page with Dash Pages (once per process) and bind its callbacks."""
    for order, page in enumerate(PAGES):
        if page.__name__ not in dash.page_registry:
            dash.register_page(page.__name__, path=PAGE_PATHS[page.NAME], name=page.NAME,
                               title="Order Tower", layout=page.layout, order=order)
        page.register_callbacks(app, screens)
