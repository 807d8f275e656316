"""Order Tower web app: ``create_app(settings)`` builds it; gunicorn serves ``server``."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

from dash import Dash

from tower.runtime import Tower, build_tower
from tower.settings import Settings, load_settings
from tower.web.api import install_api
from widgets import context, pages, shell
from widgets.config import load_screen_config

ASSETS = Path(__file__).resolve().parent / "assets"


class TowerDash(Dash):
    """Dash that never calls home: the dev tools' version check stays off however the
    app is run (``app.run(debug=True)`` enables the dev tools again with their defaults)."""

    def enable_dev_tools(self, *args: Any, **kwargs: Any) -> bool:
        debug = bool(super().enable_dev_tools(*args, **kwargs))
        self._dev_tools.disable_version_check = True
        return debug


def create_app(settings: Settings | None = None, *, tower: Tower | None = None) -> Dash:
    """The Dash app (pages of ``widgets/pages``) with the API on its Flask server.

    Everything is served locally: Dash's scripts from the installed package, the CSS
    (Bootstrap included) from ``assets/``; no version check calls home.
    """
    settings = settings or load_settings()
    tower = tower or build_tower(settings)
    config = load_screen_config(settings.data_dir / "screens.toml", tower.flows)
    app = TowerDash(
        __name__,
        title="Order Tower",
        assets_folder=str(ASSETS),
        serve_locally=True,
        update_title="",
        use_pages=True,
        pages_folder="",  # pages are registered by widgets.pages.install, not a folder scan
        suppress_callback_exceptions=True,  # page components come and go with the route
    )
    app.enable_dev_tools(debug=False, dev_tools_disable_version_check=True)
    screens = context.Screens(tower=tower, settings=settings, config=config)
    context.install(app.server, screens)
    pages.install(app, screens)
    app.layout = shell.layout(refresh_s=config.refresh_s, unreachable_after_s=config.unreachable_after_s,
                              default_lang=config.default_lang)
    shell.register_callbacks(app, screens)
    install_api(app.server, tower)
    _freeze_heap()
    return app


def _freeze_heap() -> None:
    """Keep what start-up built (modules, plotly's validators, the map outline, the
    layouts) out of the garbage collector's full passes.

    A refresh that builds a big answer (a hundred table rows of components) allocates
    enough to start a full collection now and then, and a full pass walks everything the
    app loaded: with the collector off, the /network refresh's p95 at 100k orders fell
    from ~180 ms to ~65 ms (ADR 0005). The frozen objects are the app's own for its whole
    life, so nothing is leaked.
    """
    gc.collect()
    gc.freeze()


def __getattr__(name: str) -> Any:
    # ``gunicorn app:server`` asks for ``server``; build the app then, not at import.
    if name == "server":
        flask_server = create_app().server
        globals()["server"] = flask_server
        return flask_server
    raise AttributeError(name)
