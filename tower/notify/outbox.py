"""The transactional outbox: notifications written with what caused them.

A caller that changes state (an exception opened, an order frozen, a milestone
reached) calls :func:`enqueue` on the same connection, inside the same transaction:
either both are committed or neither is. The worker's dispatcher later fans each row
out to the channels that subscribe to its topic and sends them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tower.store.tables import OutboxRow

OUTBOX = cast(Table, OutboxRow.__table__)


def enqueue(conn: Connection, *, topic: str, payload: Mapping[str, Any], at: datetime,
            dedupe_key: str | None = None) -> bool:
    """Add a notification in the caller's transaction.

    ``dedupe_key`` makes it once-only (e.g. ``milestone:O-1:shipped``): a second
    enqueue with the same key is ignored and returns False.
    """
    values = {"event_id": str(uuid.uuid4()), "dedupe_key": dedupe_key, "topic": topic,
              "payload": dict(payload), "created_at": at, "routed": False}
    dialect = conn.dialect.name
    if dedupe_key is None:
        conn.execute(insert(OUTBOX).values(**values))
        return True
    stmt: Any
    if dialect == "postgresql":
        stmt = pg_insert(OUTBOX).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    elif dialect == "sqlite":
        stmt = sqlite_insert(OUTBOX).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
    else:  # pragma: no cover - only the two dialects are supported (Settings checks)
        raise RuntimeError(f"unsupported dialect {dialect}")
    return conn.execute(stmt.returning(OUTBOX.c.id)).first() is not None
