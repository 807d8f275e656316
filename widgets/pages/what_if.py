"""`/what-if`: not built yet; the shell, freshness and language already apply."""

from __future__ import annotations

from typing import Any

from dash import Dash

from widgets.coming import panel
from widgets.context import Screens
from widgets.i18n import normalise_lang

NAME = "what-if"


def layout(lang: str | None = None, **_query: Any) -> Any:
    return panel(NAME, normalise_lang(lang))


def register_callbacks(app: Dash, screens: Screens) -> None:
    """No callbacks yet."""
