"""Dialect-aware bulk writes (upserts, insert-if-new) used by the projector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, tuple_
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_new(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str
) -> set[str]:
    """Insert rows whose ``key`` is not present yet; return the keys actually inserted."""
    if not rows:
        return set()
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=[key])
    stmt = stmt.returning(table.c[key])
    result = conn.execute(stmt, list(rows))
    return {r[0] for r in result}


def insert_ignore(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows, skipping those whose primary key exists."""
    if rows:
        conn.execute(_insert(conn, table).on_conflict_do_nothing(), list(rows))


def upsert(
    conn: Connection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    keys: Sequence[str],
    *,
    newer_than: Sequence[str] = (),
) -> None:
    """Insert or update rows by primary key.

    With ``newer_than`` column names, an existing row is only replaced by a row whose
    values in those columns compare greater as a tuple (latest wins, whatever the
    arrival order). Rows must have distinct keys.
    """
    if not rows:
        return
    ins = _insert(conn, table)
    columns = [c for c in rows[0] if c not in keys]
    where = None
    if newer_than:
        where = tuple_(*(ins.excluded[c] for c in newer_than)) > tuple_(
            *(table.c[c] for c in newer_than)
        )
    stmt = ins.on_conflict_do_update(
        index_elements=list(keys),
        set_={c: ins.excluded[c] for c in columns},
        where=where,
    )
    conn.execute(stmt, list(rows))
