"""What the pages of one app read: its Tower, Settings and screen configuration.

``create_app`` stores a :class:`Screens` on its Flask server; layouts (called by the
Dash Pages router inside a request) find it with :func:`current`, so several apps in
one process (tests) each see their own Tower. Callbacks get it as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import flask

from tower.runtime import Tower
from tower.settings import Settings
from widgets.config import ScreenConfig

EXTENSION: Final = "order_tower_screens"


@dataclass(frozen=True)
class Screens:
    tower: Tower
    settings: Settings
    config: ScreenConfig


def install(server: flask.Flask, screens: Screens) -> None:
    server.extensions[EXTENSION] = screens


def current() -> Screens:
    """The Screens of the app serving the current request."""
    screens: Screens = flask.current_app.extensions[EXTENSION]
    return screens
