"""Component ids, built by helpers rather than string concatenation.

Every id is prefixed with its page (``overview-kpis``), so two pages never collide
and a test can find a component by page and name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PageIds:
    """The ids of one page: ``PageIds("overview")("kpis") == "overview-kpis"``."""

    page: str

    def __call__(self, name: str) -> str:
        return f"{self.page}-{name}"

    def match(self, kind: str, **keys: Any) -> dict[str, Any]:
        """A pattern-matching id (``{"page", "kind", ...keys}``) for one of many alike;
        a key may be a wildcard (``ALL``, ``MATCH``) in a callback."""
        return {"page": self.page, "kind": kind, **keys}


SHELL = PageIds("shell")
