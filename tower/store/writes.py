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
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg import postgres, pq
from psycopg.adapt import Dumper
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


def increment(conn: Connection, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Add each row's ``n`` to the counter row with its key (created at ``n`` if missing)."""
    if not rows:
        return
    ins = _insert(conn, table)
    stmt = ins.on_conflict_do_update(index_elements=list(keys), set_={"n": table.c.n + ins.excluded.n})
    conn.execute(stmt, list(rows))


# --- PostgreSQL: binary COPY, straight into the table or through a staging table ----------


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_bytes(value: Any) -> bytes:
    """JSON of a value for a JSON column (orjson, or the stdlib for what orjson refuses).

    Datetimes are written as ``isoformat()`` writes them.
    """
    try:
        return orjson.dumps(value)
    except TypeError:  # e.g. integers beyond 64 bits
        return json.dumps(value, default=_iso).encode()


def _copy_type(column: Column[Any]) -> str:
    """The PostgreSQL type a column's values are sent as in a binary COPY."""
    kind = column.type
    if isinstance(kind, TypeDecorator):
        kind = kind.impl_instance
    if isinstance(kind, JSON):
        return "jsonb"  # JSON text, see _JsonbTextDumper
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


def _names(columns: Sequence[str]) -> str:
    return ", ".join(_quote(c) for c in columns)


class _JsonText:
    """Marker type under which :class:`_JsonbTextDumper` is registered."""


class _JsonbTextDumper(Dumper):
    """JSON text (bytes or str) in binary jsonb form: a version byte, then the text."""

    format = pq.Format.BINARY
    oid = postgres.types["jsonb"].oid

    def dump(self, obj: Any) -> bytes:
        return b"\x01" + (obj if isinstance(obj, bytes) else str(obj).encode())


def id_list(values: Iterable[Any]) -> str:
    """A list parameter as JSON text, for ``= ANY(ARRAY(SELECT json_array_elements_text(%s::json)))``:
    much cheaper to send than an array parameter."""
    return orjson.dumps(list(values)).decode()


ANY_IDS = "ANY(ARRAY(SELECT json_array_elements_text(%s::json)))"
# Statements with ANY_IDS run unprepared: a cached generic plan would not see how many
# ids there are nor how the table grew since, and may keep a sequential scan.


class PgBulk:
    """Set-based writes through psycopg on the connection of a SQLAlchemy transaction.

    Rows are tuples in ``columns`` order; JSON columns take JSON text (:func:`json_bytes`).
    Rows that are known to be new are COPY-ed straight into the table (inside a
    savepoint: if one exists after all, they are upserted instead). Other rows are
    COPY-ed into a staging table and moved with one statement that empties it again
    (``WITH moved AS (DELETE ... RETURNING ...) INSERT ... ON CONFLICT``).

    Staging tables are session temporary tables, created once per database connection
    (call :meth:`committed` after the transaction committed so that they are known to
    exist in the next one). They are not ``ON COMMIT DELETE ROWS``: PostgreSQL would
    then truncate every one of them at every commit, a file operation each; instead a
    staging table is truncated once every :attr:`RECYCLE` uses, to drop dead rows.
    """

    _KNOWN = "tower_pg_bulk_staging_tables"
    RECYCLE = 200

    def __init__(self, conn: Connection) -> None:
        driver = conn.connection.driver_connection
        if driver is None:
            raise RuntimeError("no DBAPI connection")
        self.cursor: Any = driver.cursor()
        self.cursor.adapters.register_dumper(_JsonText, _JsonbTextDumper)
        self._uses: dict[str, int] = conn.info.setdefault(self._KNOWN, {})
        self._created: set[str] = set()

    def committed(self) -> None:
        for name in self._created:
            self._uses.setdefault(name, 1)
        self._created.clear()

    def _copy(self, target: str, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        with self.cursor.copy(f"COPY {target} ({_names(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([_copy_type(table.c[c]) for c in columns])
            for row in rows:
                copy.write_row(row)

    def stage(self, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
        """COPY rows into the (empty) staging table for ``table``'s ``columns``; return its name."""
        name = f"tower_stage_{table.name}_{zlib.crc32(','.join(columns).encode()):08x}"
        uses = self._uses.get(name)
        if uses is None:
            if name not in self._created:
                self.cursor.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS {name} AS "
                    f"SELECT {_names(columns)} FROM {_quote(table.name)} WITH NO DATA"
                )
                self._created.add(name)
        elif uses >= self.RECYCLE:
            self.cursor.execute(f"TRUNCATE {name}")
            self._uses[name] = 1
        else:
            self._uses[name] = uses + 1
        self._copy(name, table, columns, rows)
        return name

    def _move(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str,
              order_by: Sequence[str] = ()) -> None:
        """Stage rows, then ``INSERT INTO table SELECT <them> [ORDER BY] <tail>``, emptying the stage."""
        staged = self.stage(table, columns, rows)
        names = _names(columns)
        order = f" ORDER BY {_names(order_by)}" if order_by else ""
        self.cursor.execute(
            f"WITH moved AS (DELETE FROM {staged} RETURNING {names}) "
            f"INSERT INTO {_quote(table.name)} ({names}) SELECT {names} FROM moved{order} {tail}"
        )

    def _copy_fresh(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bool:
        """COPY rows straight into ``table``; False (and nothing written) if a key exists."""
        self.cursor.execute("SAVEPOINT tower_copy")
        try:
            self._copy(_quote(table.name), table, columns, rows)
        except psycopg.errors.UniqueViolation:
            self.cursor.execute("ROLLBACK TO SAVEPOINT tower_copy")
            return False
        self.cursor.execute("RELEASE SAVEPOINT tower_copy")
        return True

    def insert_new(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   key: str) -> set[str]:
        """Insert rows whose ``key`` is not present yet; return the keys actually inserted.

        Tries a straight COPY first (the usual case: every row is new).
        """
        if not rows:
            return set()
        index = columns.index(key)
        if self._copy_fresh(table, columns, rows):
            return {r[index] for r in rows}
        self._move(table, columns, rows, f"ON CONFLICT ({_quote(key)}) DO NOTHING RETURNING {_quote(key)}")
        return {r[0] for r in self.cursor.fetchall()}

    def insert_ignore(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Insert rows, skipping those whose primary key exists."""
        if rows:
            self._move(table, columns, rows, "ON CONFLICT DO NOTHING")

    def insert_fresh(self, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                     keys: Sequence[str], *, keep: Sequence[str] = ()) -> None:
        """Insert rows believed new with a straight COPY; should one exist, upsert them all."""
        if rows and not self._copy_fresh(table, columns, rows):
            self.upsert(table, columns, rows, keys, keep=keep)

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
        target = _quote(table.name)
        update = ", ".join(
            f"{_quote(c)} = EXCLUDED.{_quote(c)}" for c in columns if c not in keys and c not in keep
        )
        where = ""
        if newer_than:
            mine = ", ".join(f"EXCLUDED.{_quote(c)}" for c in newer_than)
            theirs = ", ".join(f"{target}.{_quote(c)}" for c in newer_than)
            where = f" WHERE ({mine}) > ({theirs})"
        self._move(table, columns, rows, f"ON CONFLICT ({_names(keys)}) DO UPDATE SET {update}{where}")

    def increment(self, table: Table, keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Add each row's ``n`` (its last value) to the counter row with its key.

        Rows are applied in key order, so concurrent writers never deadlock on them.
        """
        if rows:
            self._move(table, (*keys, "n"), rows,
                       f"ON CONFLICT ({_names(keys)}) DO UPDATE SET n = {_quote(table.name)}.n + EXCLUDED.n",
                       order_by=keys)

    def delete_in(self, table: Table, column: str, values: Sequence[Any]) -> None:
        if values:
            self.cursor.execute(
                f"DELETE FROM {_quote(table.name)} WHERE {_quote(column)} = {ANY_IDS}", (id_list(values),),
                prepare=False,
            )
