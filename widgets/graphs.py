"""The ``config`` every ``dcc.Graph`` of the screens gets, in the page's language.

plotly.js ships only English; its zh-CN locale (month and day names on date axes,
the few built-in strings) is not in the bundle Dash serves and must not come from a
CDN. ``data/plotly-locale-zh-CN.json`` is that locale, taken once from the npm package
``plotly.js-locales`` (MIT, licence beside it), and is passed with the graph
(``config.locales``), so it works on a closed network.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from widgets.i18n import Lang

LOCALE_FILE = Path(__file__).resolve().parents[1] / "data" / "plotly-locale-zh-CN.json"
BASE: dict[str, Any] = {"displaylogo": False, "displayModeBar": False, "responsive": True}


@cache
def _zh_cn() -> dict[str, Any]:
    locale: dict[str, Any] = json.loads(LOCALE_FILE.read_text(encoding="utf-8"))
    return locale


def graph_config(lang: Lang, **extra: Any) -> Any:
    """The graph config for ``lang`` (plus ``extra`` keys, e.g. ``scrollZoom``); typed
    ``Any`` because dcc.Graph's ``Config`` TypedDict does not list ``locales``' shape."""
    config: dict[str, Any] = {**BASE, **extra}
    if lang == "zh-CN":
        config["locale"] = "zh-CN"
        config["locales"] = {"zh-CN": _zh_cn()}
    return config
