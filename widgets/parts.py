"""What every page's refresh shares: send a part only when its data changed.

A page keeps, in a ``dcc.Store`` of its own, a short digest per part it has sent; a
refresh computes the part's data, and :func:`tracker`'s ``changed`` says whether the
browser already has it (then the callback answers ``no_update`` for that output).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from widgets import palette
from widgets.palette import Theme


def digest(value: Any) -> str:
    """A short, stable digest of JSON-able data."""
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def tracker(sent: Mapping[str, str] | None) -> tuple[dict[str, str], Callable[[str, Any], bool]]:
    """The digests to store back, and ``changed(part, value)``: True (and remembered)
    when ``value`` differs from what was last sent for ``part``."""
    kept = dict(sent or {})

    def changed(part: str, value: Any) -> bool:
        d = digest(value)
        if kept.get(part) == d:
            return False
        kept[part] = d
        return True

    return kept, changed


def blank_figure(theme: Theme) -> dict[str, Any]:
    """An empty figure in the page's theme, shown until the first refresh draws one."""
    return {"data": [], "layout": {**palette.figure_layout(theme), "xaxis": {"visible": False},
                                   "yaxis": {"visible": False}}}
