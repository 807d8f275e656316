"""The panel of a screen that is not built yet: says so, and what it will show."""

from __future__ import annotations

from typing import Any

import dash_bootstrap_components as dbc
from dash import html

from widgets.i18n import Lang, t
from widgets.ids import PageIds


def panel(page: str, lang: Lang) -> Any:
    ids = PageIds(page)
    title = t(f"page.{page}", lang)
    return dbc.Alert(id=ids("coming"), color="secondary", className="tower-coming mt-3", children=[
        html.H2(t("coming.title", lang, page=title), className="h4"),
        html.P(t("coming.body", lang, what=t(f"coming.{page}", lang)), className="mb-0"),
    ])
