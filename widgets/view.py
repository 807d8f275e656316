"""What the URL asks of a screen: language, theme, kiosk mode and page rotation.

A wall screen is set up by its link alone, e.g.
``/?kiosk=1&lang=zh-CN&rotate=30&pages=overview,network,emergency-room``.
Navigation keeps these parameters (see :func:`View.query`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import parse_qsl, urlencode

from widgets.i18n import Lang, normalise_lang
from widgets.palette import Theme, normalise_theme

# Page name -> path; the paths are fixed (issue 6), the names are what ``pages=`` takes.
PAGE_PATHS: Final[dict[str, str]] = {
    "overview": "/",
    "orders": "/orders",
    "stages": "/stages",
    "network": "/network",
    "emergency-room": "/emergency-room",
    "insights": "/insights",
    "what-if": "/what-if",
}
MIN_ROTATE_S: Final = 5  # faster than this a wall screen cannot be read
TRUE: Final = frozenset({"1", "true", "yes", "on"})


@dataclass(frozen=True)
class View:
    lang: Lang = "en"
    theme: Theme = "light"
    kiosk: bool = False
    rotate_s: int | None = None
    pages: tuple[str, ...] = ()
    explicit_theme: bool = False

    @classmethod
    def from_query(cls, params: Mapping[str, object], *, default_lang: Lang = "en") -> View:
        """Read the view from query parameters; a bad value falls back to its default."""
        kiosk = str(params.get("kiosk", "")).lower() in TRUE
        theme_asked = params.get("theme")
        theme = normalise_theme(theme_asked, default="dark" if kiosk else "light")
        rotate: int | None = None
        try:
            rotate = max(int(str(params.get("rotate", ""))), MIN_ROTATE_S)
        except ValueError:
            rotate = None
        asked = [p.strip() for p in str(params.get("pages", "")).split(",") if p.strip()]
        pages = tuple(p for p in asked if p in PAGE_PATHS) or (tuple(PAGE_PATHS) if rotate else ())
        return cls(lang=normalise_lang(params.get("lang"), default=default_lang), theme=theme,
                   kiosk=kiosk, rotate_s=rotate, pages=pages,
                   explicit_theme=theme_asked == theme)

    @classmethod
    def from_search(cls, search: str | None, *, default_lang: Lang = "en") -> View:
        return cls.from_query(dict(parse_qsl((search or "").lstrip("?"))), default_lang=default_lang)

    def query(self, **changes: object) -> str:
        """The ``?…`` that keeps this view (with ``changes``) across navigation."""
        view = replace(self, **changes)  # type: ignore[arg-type]
        params: dict[str, str] = {"lang": view.lang}
        if view.kiosk:
            params["kiosk"] = "1"
        if view.explicit_theme or "theme" in changes:
            params["theme"] = view.theme
        if view.rotate_s:
            params["rotate"] = str(view.rotate_s)
            params["pages"] = ",".join(view.pages)
        return "?" + urlencode(params, safe=",")

    def rotation_paths(self) -> list[str]:
        """The paths a rotating wall screen cycles through, in order."""
        return [PAGE_PATHS[p] for p in self.pages] if self.rotate_s else []
