"""Order Tower web app: ``create_app(settings)`` builds it; gunicorn serves ``server``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dash import Dash, Input, Output

from tower.runtime import Tower, build_tower
from tower.settings import Settings, load_settings
from tower.store import queries
from tower.web.api import install_api
from widgets import placeholder

ASSETS = Path(__file__).resolve().parent / "assets"


def create_app(settings: Settings | None = None, *, tower: Tower | None = None) -> Dash:
    """The Dash app with the API on its Flask server. Assets are served locally only."""
    settings = settings or load_settings()
    tower = tower or build_tower(settings)
    app = Dash(
        __name__,
        title="Order Tower",
        assets_folder=str(ASSETS),
        serve_locally=True,
        update_title="",
    )
    app.layout = placeholder.layout()
    install_api(app.server, tower)

    @app.callback(
        Output(placeholder.ids("status"), "children"), Input(placeholder.ids("tick"), "n_intervals")
    )
    def _status(_n: Any) -> str:
        last = queries.last_event_time(tower.engine)
        if last is None:
            return "no events yet"
        age = (tower.clock.now() - last).total_seconds()
        return f"last event {last.astimezone(settings.zone):%Y-%m-%d %H:%M:%S %Z} ({age:.0f} s ago)"

    return app


def __getattr__(name: str) -> Any:
    # ``gunicorn app:server`` asks for ``server``; build the app then, not at import.
    if name == "server":
        flask_server = create_app().server
        globals()["server"] = flask_server
        return flask_server
    raise AttributeError(name)
