"""Bearer-token check shared by the write endpoints."""

from __future__ import annotations

import hmac

from flask import request


def bearer_ok(token: str | None) -> bool:
    """True when no token is configured, or the request carries it as a Bearer token."""
    if token is None:
        return True
    given = request.headers.get("Authorization", "")
    return given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), token.encode())
