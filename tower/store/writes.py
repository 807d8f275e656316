"""Dialect-aware bulk writes (upserts, insert-if-new) used by the projector.

Two implementations of the same few operations:

* SQLAlchemy Core statements (:func:`insert_new`, :func:`insert_ignore`, :func:`upsert`),
  for every dialect;
* :class:`PgBulk`, for PostgreSQL through psycopg 3: rows are streamed with a binary
  ``COPY`` into a session temporary table shaped like the target, then moved with one
  set-based ``INSERT ... SELECT ... ON CONFLICT``. One round trip and no per-row SQL,
  which is what makes the projector fast on PostgreSQL.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Float,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
    tuple_,
)
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
    keep: Sequence[str] = (),
) -> None:
    """Insert or update rows by primary key.

    With ``newer_than`` column names, an existing row is only replaced by a row whose
    values in those columns compare greater as a tuple (latest wins, whatever the
    arrival order). Columns in ``keep`` are written on insert but never updated.
    Rows must have distinct keys.
    """
    if not rows:
        return
    ins = _insert(conn, table)
    columns = [c for c in rows[0] if c not in keys and c not in keep]
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


# --- PostgreSQL: binary COPY into temporary tables, then one set-based statement ----------


def json_text(value: Any) -> str:
    """JSON text of a value for a JSON column (orjson, or the stdlib for what it refuses)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # e.g. integers beyond 64 bits
        return json.dumps(value)


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON)


def _copy_type(column: Column[Any]) -> str:
    """The PostgreSQL type name psycopg dumps a column's values as, in a binary COPY."""
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, JSON):
        return "text"  # the staging column is text; cast to jsonb when moved
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, Boolean):
        return "bool"
    if isinstance(kind, Float):
        return "float8"
    if isinstance(kind, String | Text):
        return "text"
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    raise TypeError(f"no COPY type for column {column.name} ({kind!r})")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PgBulk:
    """Set-based writes through psycopg on the connection of a SQLAlchemy transaction.

    Values go in as Python objects in ``columns`` order; JSON columns take JSON text
    (:func:`json_text`). Staging tables are ``ON COMMIT DELETE ROWS`` temporary tables,
    created once per database connection; call :meth:`committed` after the
    transaction committed so they are known to exist on the next one.
    """

    _KNOWN = "tower_pg_bulk_temp_tables"

    def __init__(self, conn: Connection) -> None:
        driver = conn.connection.driver_connection
        if driver is None:
            raise RuntimeError("no DBAPI connection")
        self.driver: Any = driver
        self.cursor: Any = driver.cursor()
        self._known: set[str] = conn.info.setdefault(self._KNOWN, set())
        self._created: set[str] = set()
        self._filled: set[str] = set()

    def committed(self) -> None:
        self._known |= self._created
        self._created.clear()

    def stage(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        """COPY rows into a temporary table with ``table``'s ``columns``; return its name."""
        name = f"tower_stage_{table.name}_{zlib.crc32(','.join(columns).encode()):08x}"
        cols = [table.c[c] for c in columns]
        if name not in self._known and name not in self._created:
            select = ", ".join(
                f"{_quote(c.name)}::text AS {_quote(c.name)}" if _is_json(c) else _quote(c.name)
                for c in cols
            )
            self.cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {name} ON COMMIT DELETE ROWS AS "
                f"SELECT {select} FROM {_quote(table.name)} WITH NO DATA"
            )
            self._created.add(name)
        elif name in self._filled:
            self.cursor.execute(f"TRUNCATE {name}")
        self._filled.add(name)
        names = ", ".join(_quote(c) for c in columns)
        with self.cursor.copy(f"COPY {name} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_copy_type(c) for c in cols])
            for row in rows:
                copy.write_row(row)
        return name

    @staticmethod
    def _select(table: Table, columns: Sequence[str]) -> str:
        return ", ".join(
            f"{_quote(c)}::jsonb" if _is_json(table.c[c]) else _quote(c) for c in columns
        )

    def insert_new(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   key: str) -> set[str]:
        """Insert rows whose ``key`` is not present yet; return the keys actually inserted."""
        if not rows:
            return set()
        staged = self.stage(table, columns, rows)
        self.cursor.execute(
            f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(c) for c in columns)}) "
            f"SELECT {self._select(table, columns)} FROM {staged} "
            f"ON CONFLICT ({_quote(key)}) DO NOTHING RETURNING {_quote(key)}"
        )
        return {r[0] for r in self.cursor.fetchall()}

    def insert_ignore(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows, skipping those whose primary key exists."""
        if not rows:
            return
        staged = self.stage(table, columns, rows)
        self.cursor.execute(
            f"INSERT INTO {_quote(table.name)} ({', '.join(_quote(c) for c in columns)}) "
            f"SELECT {self._select(table, columns)} FROM {staged} ON CONFLICT DO NOTHING"
        )

    def upsert(
        self,
        table: Table,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        keys: Sequence[str],
        *,
        newer_than: Sequence[str] = (),
        keep: Sequence[str] = (),
    ) -> None:
        """Insert or update rows by primary key; the same contract as :func:`upsert`."""
        if not rows:
            return
        staged = self.stage(table, columns, rows)
        target = _quote(table.name)
        update = ", ".join(
            f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in columns if c not in keys and c not in keep
        )
        where = ""
        if newer_than:
            mine = ", ".join(f"EXCLUDED.{_quote(c)}" for c in newer_than)
            theirs = ", ".join(f"{target}.{_quote(c)}" for c in newer_than)
            where = f" WHERE ({mine}) > ({theirs})"
        self.cursor.execute(
            f"INSERT INTO {target} ({', '.join(_quote(c) for c in columns)}) "
            f"SELECT {self._select(table, columns)} FROM {staged} "
            f"ON CONFLICT ({', '.join(_quote(k) for k in keys)}) DO UPDATE SET {update}{where}"
        )

    def delete_in(self, table: Table, column: str, values: Sequence[Any]) -> None:
        if values:
            self.cursor.execute(
                f"DELETE FROM {_quote(table.name)} WHERE {_quote(column)} = ANY(%s)", (list(values),)
            )
