"""The projector: appends events to the log and keeps the projections current.

Events are deduplicated by ``event_id`` against the log; each affected order (and
parcel) is either folded forward from its checkpoint, when every new event sorts after
what it has already seen, or folded again from all its events in the log. Either way
its state is the fold of its event set, so arrival order and duplicates never change
the result. The funnel's rollups (see tables.py) change in the same transaction.

Each call to :meth:`Projector.apply` is one transaction, except on PostgreSQL when
another worker holds some of the batch's orders: transaction-scoped advisory locks on
the touched orders and parcels let several projector workers share a stream. A batch
takes, without waiting, the locks it can get and applies the events of those orders in
a first transaction; the events of the orders another worker holds follow in a second
one that waits for them. Two workers whose batches share a few orders so still run side
by side, and the events of one order are only ever applied under its lock, together
with their entry in the log. (A batch that needs more than :data:`MAX_LOCKS` locks is
applied in several such rounds.)

On PostgreSQL the reads and writes go straight through psycopg (look-ups with the ids
as one JSON parameter; binary ``COPY`` and one set-based statement per table, see
:class:`~tower.store.writes.PgBulk`), on SQLite through the sqlite3 module, storing
what SQLAlchemy's types store; other dialects use SQLAlchemy Core. See ADR 0002.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Boolean, Connection, Engine, Table, delete, select, text

from tower.domain import TowerFigures
from tower.events import EventRecord
from tower.flows import FlowBook
from tower.projection import (
    DeadLetter,
    HubVisit,
    OrderState,
    ParcelState,
    apply_order_event,
    apply_parcel_scan,
    fold_order,
    fold_parcel,
)
from tower.store.tables import (
    BUCKET_S,
    PROJECTION_TABLES,
    DeadLetterRow,
    DeliveryCount,
    Event,
    HeldEvent,
    HubVisitRow,
    Order,
    OrderStageCount,
    Parcel,
    StageEntryCount,
    StageInterval,
    StageReentry,
    StockLevelRow,
    UTCDateTime,
)
from tower.store.writes import (
    ANY_IDS,
    PgBulk,
    id_list,
    increment,
    insert_ignore,
    insert_new,
    json_bytes,
    upsert,
)

log = logging.getLogger(__name__)


def _decoded(rows: Iterable[Sequence[Any]], fixes: Sequence[tuple[int, Callable[[Any], Any]]]
             ) -> list[tuple[Any, ...]]:
    """Rows with the stored form of some columns turned back into Python values."""
    if not fixes:
        return [tuple(r) for r in rows]
    out = []
    for r in rows:
        row = list(r)
        for i, fix in fixes:
            if row[i] is not None:
                row[i] = fix(row[i])
        out.append(tuple(row))
    return out

EVENTS = cast(Table, Event.__table__)
ORDERS = cast(Table, Order.__table__)
VISITS = cast(Table, StageInterval.__table__)
PARCELS = cast(Table, Parcel.__table__)
HUB_VISITS = cast(Table, HubVisitRow.__table__)
HELD = cast(Table, HeldEvent.__table__)
DEAD = cast(Table, DeadLetterRow.__table__)
STOCK = cast(Table, StockLevelRow.__table__)
STAGE_COUNTS = cast(Table, OrderStageCount.__table__)
ENTRY_COUNTS = cast(Table, StageEntryCount.__table__)
REENTRIES = cast(Table, StageReentry.__table__)
DELIVERY_COUNTS = cast(Table, DeliveryCount.__table__)

CHUNK = 5_000  # keeps IN (...) lists and parameter counts within every dialect's limits

# Column orders of the rows the projector writes (tuples, in these orders).
EVENT_COLS = ("event_id", "type", "occurred_at", "source", "order_id", "parcel_id", "payload")
ORDER_COLS = (
    "order_id", "flow", "stage", "stage_seq", "status", "frozen", "priority", "custom",
    "promised_at", "created_at", "delivered_at", "cancelled_at", "last_event_at", "late",
    "at_risk", "customer_id", "channel", "city", "checkpoint",
)
VISIT_COLS = ("order_id", "seq", "flow", "stage", "entered_at", "started_at", "completed_at")
PARCEL_COLS = ("parcel_id", "carrier", "status", "hub_id", "last_scan_at", "checkpoint")
HUB_VISIT_COLS = (
    "parcel_id", "seq", "hub_id", "arrived_at", "departed_at", "arrived_hour", "departed_hour",
    "dwell_s",
)
HELD_COLS = ("event_id", "order_id")
DEAD_COLS = ("event_id", "order_id", "reason", "recorded_at")
STOCK_COLS = ("warehouse_id", "sku", "on_hand", "as_of", "event_id")
# What restoring an order needs, in OrderState.restore's keyword order.
ORDER_STATE_COLS = (
    "order_id", "flow", "priority", "custom", "promised_at", "created_at", "status",
    "delivered_at", "cancelled_at", "last_event_at", "customer_id", "channel", "city", "checkpoint",
)
PARCEL_STATE_COLS = ("parcel_id", "carrier", "status", "last_scan_at", "checkpoint")
REENTRY_COLS = ("order_id", "seq", "flow", "stage", "entered_at", "first_entered_at")
# What folding a stored order forward can change (the rest comes from its creation).
ORDER_CHANGES = ("stage", "stage_seq", "status", "delivered_at", "cancelled_at", "last_event_at", "late",
                 "at_risk", "checkpoint")
SHARDS = 8  # counter rows per rollup figure, see tables.py


@dataclass(slots=True)
class ApplyResult:
    """What one batch did to the store."""

    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    changed_orders: list[OrderState] = field(default_factory=list)
    new_events: list[EventRecord] = field(default_factory=list)


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _lock_key(kind: str, key: str) -> int:
    # A stable signed 64-bit key per entity for pg_advisory_xact_lock.
    return zlib.crc32(f"{kind}:{key}".encode()) - 2**31


def _record(row: Any) -> EventRecord:
    return EventRecord(
        event_id=row.event_id,
        type=row.type,
        occurred_at=row.occurred_at,
        source=row.source,
        order_id=row.order_id,
        payload=row.payload,
    )


def _epoch_hour(t: datetime) -> int:
    return int(t.timestamp() // 3600)


def _loads(raw: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:  # e.g. integers beyond 64 bits
        return json.loads(raw)


def _utc(t: datetime | None) -> datetime | None:
    return None if t is None else t.astimezone(UTC)


def _same(t: datetime) -> datetime:
    return t


def _bucket(t: datetime) -> int:
    return int(t.timestamp() // BUCKET_S)


@dataclass(slots=True, frozen=True)
class _Prior:
    """What the rollups counted for an order before this transaction."""

    flow: str
    stage: str
    status: str
    delivered_at: datetime | None


@dataclass(slots=True)
class _Rollup:
    """Changes to the funnel rollups made by one transaction, written in one go."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=lambda: defaultdict(int))
    entries: dict[tuple[str, str, int], int] = field(default_factory=lambda: defaultdict(int))
    deliveries: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    reentries: list[tuple[Any, ...]] = field(default_factory=list)

    def forget_visits(self, removed: Iterable[tuple[str, int, str, str, datetime]]) -> None:
        """Take back what deleted stage visits (order, seq, flow, stage, entered_at) counted."""
        firsts: dict[tuple[str, str], tuple[int, str, datetime]] = {}
        for order_id, seq, flow, stage, entered_at in removed:
            best = firsts.get((order_id, stage))
            if best is None or seq < best[0]:
                firsts[(order_id, stage)] = (seq, flow, entered_at)
        for (_, stage), (_, flow, entered_at) in firsts.items():
            self.entries[(flow, stage, _bucket(entered_at))] -= 1

    def write(self, store: _Store) -> None:
        shard = store.shard
        store.increment(STAGE_COUNTS, ("flow", "stage", "status", "shard"),
                        [(*k, shard, n) for k, n in sorted(self.counts.items()) if n])
        store.increment(ENTRY_COUNTS, ("flow", "stage", "bucket", "shard"),
                        [(*k, shard, n) for k, n in sorted(self.entries.items()) if n])
        store.increment(DELIVERY_COUNTS, ("flow", "bucket", "shard"),
                        [(*k, shard, n) for k, n in sorted(self.deliveries.items()) if n])
        store.upsert(REENTRIES, REENTRY_COLS, self.reentries, ("order_id", "seq"))


# --- storage: the same operations on SQLAlchemy Core and on raw psycopg ---------------------


class _SqlStore:
    """Reads and writes of one transaction through SQLAlchemy Core (any dialect)."""

    shard = 0
    native_times = False  # may JSON values hold datetimes (written as isoformat() does)?

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @staticmethod
    def json(value: Any) -> Any:
        return value

    def committed(self) -> None:
        pass

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        new: set[str] = set()
        for chunk in _chunks(rows):
            new |= insert_new(self.conn, EVENTS, [dict(zip(EVENT_COLS, r, strict=True)) for r in chunk],
                              "event_id")
        return new

    def insert_ignore(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        insert_ignore(self.conn, table, [dict(zip(columns, r, strict=True)) for r in rows])

    def upsert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
               keys: Sequence[str], *, newer_than: Sequence[str] = (), keep: Sequence[str] = ()) -> None:
        for chunk in _chunks(rows, 2_000):
            upsert(self.conn, table, [dict(zip(columns, r, strict=True)) for r in chunk], keys,
                   newer_than=newer_than, keep=keep)

    def insert_fresh(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                     keys: Sequence[str], *, keep: Sequence[str] = ()) -> None:
        """Write rows believed new (an upsert, should one exist after all)."""
        self.upsert(table, columns, rows, keys, keep=keep)

    def update_known(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                     keys: Sequence[str], *, keep: Sequence[str] = (),
                     changes: Sequence[str] | None = None) -> None:
        """Write rows believed to exist (an upsert, should one be missing after all).

        ``changes``, when given, are the only columns whose values may differ from the
        stored row; a store may set just those (fewer indexes to touch on SQLite).
        """
        self.upsert(table, columns, rows, keys, keep=keep)

    def delete_in(self, table: Table, column: str, values: Sequence[Any]) -> None:
        for chunk in _chunks(values):
            self.conn.execute(delete(table).where(table.c[column].in_(chunk)))

    def increment(self, table: Table, keys: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        """Add ``n`` (each row's last value) to the counter row of its key, creating it."""
        for chunk in _chunks(rows, 2_000):
            increment(self.conn, table, [dict(zip((*keys, "n"), r, strict=True)) for r in chunk], keys)

    def delete_visits(self, order_ids: Sequence[str]) -> list[tuple[str, int, str, str, datetime]]:
        """Delete the stage visits of orders; return them (order, seq, flow, stage, entered_at)."""
        removed = self.visits_of(order_ids)
        self.delete_in(VISITS, "order_id", order_ids)
        return removed

    def visits_of(self, order_ids: Sequence[str]) -> list[tuple[str, int, str, str, datetime]]:
        return cast(list[tuple[str, int, str, str, datetime]],
                    self.rows_in(VISITS, ("order_id", "seq", "flow", "stage", "entered_at"), "order_id",
                                 order_ids))

    def rows_in(self, table: Table, columns: Sequence[str], column: str,
                values: Sequence[Any]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        cols = [table.c[c] for c in columns]
        for chunk in _chunks(values):
            out.extend(tuple(r) for r in self.conn.execute(select(*cols).where(table.c[column].in_(chunk))))
        return out

    def held_orders(self, order_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(order_ids):
            found |= set(self.conn.execute(
                select(HELD.c.order_id).where(HELD.c.order_id.in_(chunk)).distinct()
            ).scalars())
        return found

    def order_events(self, order_ids: Sequence[str]) -> list[EventRecord]:
        out: list[EventRecord] = []
        for chunk in _chunks(order_ids):
            rows = self.conn.execute(
                select(EVENTS).where(EVENTS.c.order_id.in_(chunk), EVENTS.c.type != "stock.level")
            )
            out.extend(_record(r) for r in rows)
        return out

    def parcel_scans(self, parcel_ids: Sequence[str]) -> list[EventRecord]:
        out: list[EventRecord] = []
        for chunk in _chunks(parcel_ids):
            rows = self.conn.execute(
                select(EVENTS).where(EVENTS.c.parcel_id.in_(chunk), EVENTS.c.type == "parcel.scanned")
            )
            out.extend(_record(r) for r in rows)
        return out


_LITE_TIMES: dict[datetime, str] = {}


def _lite_time(t: datetime | None) -> str | None:
    """A datetime as SQLAlchemy stores it on SQLite: naive UTC text, always with microseconds.

    (orjson's ISO text, rearranged: much cheaper than ``isoformat``; and memoised, since
    the same times are written again and again as orders move on.)
    """
    if t is None:
        return None
    text = _LITE_TIMES.get(t)
    if text is not None:
        return text
    if t.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    u = t.astimezone(UTC) if t.utcoffset() else t
    iso = orjson.dumps(u).decode()  # "YYYY-MM-DDTHH:MM:SS[.ffffff]+00:00"
    text = iso[1:11] + " " + (iso[12:27] if iso[20] == "." else iso[12:20] + ".000000")
    if len(_LITE_TIMES) >= 200_000:
        _LITE_TIMES.clear()
    _LITE_TIMES[t] = text
    return text


def _lite_read_time(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


#: Bound parameters one SQLite statement may take (SQLITE_MAX_VARIABLE_NUMBER).
_LITE_VARS = 32_000 if sqlite3.sqlite_version_info >= (3, 32) else 999

_Codecs = tuple[list[int], list[tuple[int, Callable[[Any], Any]]]]
_LITE: dict[tuple[str, tuple[str, ...]], _Codecs] = {}


def _lite_codecs(table: Table, columns: tuple[str, ...]) -> _Codecs:
    """Positions of datetime columns (to write as text), and what each read column needs."""
    key = (table.name, columns)
    found = _LITE.get(key)
    if found is None:
        times: list[int] = []
        reads: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(columns):
            kind = table.c[name].type
            if isinstance(kind, UTCDateTime):
                times.append(i)
                reads.append((i, _lite_read_time))
            elif isinstance(kind, JSON):
                reads.append((i, _loads))
            elif isinstance(kind, Boolean):
                reads.append((i, bool))
        found = _LITE[key] = (times, reads)
    return found


class _SqliteStore(_SqlStore):
    """The same operations on SQLite, straight through the sqlite3 module.

    Values are stored exactly as the SQLAlchemy types store them (datetimes as naive
    UTC text, JSON as text), so every other reader sees the same rows.
    """

    native_times = True

    _TUNED = "tower_sqlite_tuned"

    def __init__(self, conn: Connection) -> None:
        super().__init__(conn)
        db: Any = conn.connection.driver_connection
        self.db = db
        if not conn.info.get(self._TUNED):
            # A batch dirties thousands of pages all over the tables and indexes: keep
            # them in memory (64 MiB instead of SQLite's 2 MiB) and checkpoint the WAL
            # every ~40 MiB instead of every 4 MiB (fewer copies of hot pages, fewer fsyncs).
            db.execute("PRAGMA cache_size = -65536")
            db.execute("PRAGMA wal_autocheckpoint = 10000")
            conn.info[self._TUNED] = True

    @staticmethod
    def json(value: Any) -> Any:
        return json_bytes(value).decode()

    def _out(self, table: Table, columns: Sequence[str],
             rows: Iterable[Sequence[Any]]) -> Iterable[Sequence[Any]]:
        times = _lite_codecs(table, tuple(columns))[0]
        if not times:
            return rows
        out = []
        for r in rows:
            row = list(r)
            for i in times:
                row[i] = _lite_time(row[i])
            out.append(row)
        return out

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        new: set[str] = set()
        names = ", ".join(EVENT_COLS)
        marks = "(" + ", ".join("?" * len(EVENT_COLS)) + ")"
        for chunk in _chunks(rows, _LITE_VARS // len(EVENT_COLS)):
            values = [v for row in self._out(EVENTS, EVENT_COLS, chunk) for v in row]
            cur = self.db.execute(
                f"INSERT INTO events ({names}) VALUES {', '.join([marks] * len(chunk))} "
                "ON CONFLICT (event_id) DO NOTHING RETURNING event_id", values,
            )
            new.update(r[0] for r in cur.fetchall())
        return new

    def _insert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                tail: str) -> None:
        if rows:
            self.db.executemany(
                f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                + tail, self._out(table, columns, rows),
            )

    def insert_ignore(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self._insert(table, columns, rows, "ON CONFLICT DO NOTHING")

    def upsert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
               keys: Sequence[str], *, newer_than: Sequence[str] = (), keep: Sequence[str] = ()) -> None:
        update = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in keys and c not in keep)
        where = ""
        if newer_than:
            where = (f" WHERE ({', '.join(f'excluded.{c}' for c in newer_than)}) > "
                     f"({', '.join(f'{table.name}.{c}' for c in newer_than)})")
        self._insert(table, columns, rows, f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {update}{where}")

    def insert_fresh(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                     keys: Sequence[str], *, keep: Sequence[str] = ()) -> None:
        if not rows:
            return
        if not self.db.in_transaction:  # a savepoint must not be the transaction itself
            self.db.execute("BEGIN")
        self.db.execute("SAVEPOINT tower_fresh")
        try:
            self._insert(table, columns, rows, "")
        except sqlite3.IntegrityError:
            self.db.execute("ROLLBACK TO tower_fresh")
            self.db.execute("RELEASE tower_fresh")
            self.upsert(table, columns, rows, keys, keep=keep)
        else:
            self.db.execute("RELEASE tower_fresh")

    def update_known(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                     keys: Sequence[str], *, keep: Sequence[str] = (),
                     changes: Sequence[str] | None = None) -> None:
        if not rows:
            return
        # SQLite rewrites the entries of every index on a column in the SET list.
        sets = list(changes) if changes else [c for c in columns if c not in keys and c not in keep]
        position = {c: i for i, c in enumerate(columns)}
        order = [position[c] for c in (*sets, *keys)]
        cur = self.db.executemany(
            f"UPDATE {table.name} SET {', '.join(f'{c} = ?' for c in sets)} "
            f"WHERE {' AND '.join(f'{k} = ?' for k in keys)}",
            [[row[i] for i in order] for row in self._out(table, columns, rows)],
        )
        if cur.rowcount != len(rows):  # one was not there after all
            self.upsert(table, columns, rows, keys, keep=keep)

    def increment(self, table: Table, keys: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self._insert(table, (*keys, "n"), rows,
                     f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET n = {table.name}.n + excluded.n")

    def delete_in(self, table: Table, column: str, values: Sequence[Any]) -> None:
        for chunk in _chunks(values, _LITE_VARS):
            self.db.execute(f"DELETE FROM {table.name} WHERE {column} IN ({', '.join('?' * len(chunk))})",
                            list(chunk))

    def _select(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for chunk in _chunks(values, _LITE_VARS):
            out.extend(self.db.execute(sql.replace("(?)", f"({', '.join('?' * len(chunk))})"),
                                       list(chunk)).fetchall())
        return out

    def rows_in(self, table: Table, columns: Sequence[str], column: str,
                values: Sequence[Any]) -> list[tuple[Any, ...]]:
        rows = self._select(f"SELECT {', '.join(columns)} FROM {table.name} WHERE {column} IN (?)", values)
        return _decoded(rows, _lite_codecs(table, tuple(columns))[1])

    def held_orders(self, order_ids: Sequence[str]) -> set[str]:
        return {r[0] for r in self._select("SELECT DISTINCT order_id FROM held_events WHERE order_id IN (?)",
                                           order_ids)}

    def _events(self, where: str, values: Sequence[str]) -> list[EventRecord]:
        return [
            EventRecord(event_id=r[0], type=r[1], occurred_at=_lite_read_time(r[2]), source=r[3],
                        order_id=r[4], payload=_loads(r[5]) if r[5] is not None else {})
            for r in self._select(
                "SELECT event_id, type, occurred_at, source, order_id, payload FROM events WHERE " + where,
                values,
            )
        ]

    def order_events(self, order_ids: Sequence[str]) -> list[EventRecord]:
        return self._events("order_id IN (?) AND type <> 'stock.level'", order_ids)

    def parcel_scans(self, parcel_ids: Sequence[str]) -> list[EventRecord]:
        return self._events("parcel_id IN (?) AND type = 'parcel.scanned'", parcel_ids)


class _PgStore:
    """The same operations on PostgreSQL, straight through psycopg (see :class:`PgBulk`)."""

    native_times = True

    def __init__(self, conn: Connection) -> None:
        self.bulk = PgBulk(conn)
        self.cur = self.bulk.cursor
        # Concurrent workers add to different counter rows (see tables.py).
        self.shard = self.bulk.cursor.connection.info.backend_pid % SHARDS

    json = staticmethod(json_bytes)

    def committed(self) -> None:
        self.bulk.committed()

    def try_lock(self, keys: Sequence[int]) -> set[int]:
        """Take the advisory locks that are free now; return the keys held by others."""
        self.cur.execute(
            "SELECT k FROM (SELECT json_array_elements_text(%s::json)::bigint AS k) AS keys "
            "WHERE NOT pg_try_advisory_xact_lock(k)",
            (id_list(keys),),
        )
        return {int(r[0]) for r in self.cur.fetchall()}

    def lock(self, keys: Sequence[int]) -> None:
        """Wait for the advisory locks, in key order (so two waiters never deadlock)."""
        self.cur.execute(
            "SELECT pg_advisory_xact_lock(k) FROM "
            "(SELECT json_array_elements_text(%s::json)::bigint AS k) AS keys ORDER BY k",
            (id_list(sorted(keys)),),
        )

    def insert_events(self, rows: Sequence[tuple[Any, ...]]) -> set[str]:
        return self.bulk.insert_new(EVENTS, EVENT_COLS, rows, "event_id")

    def insert_ignore(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self.bulk.insert_ignore(table, columns, rows)

    def upsert(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
               keys: Sequence[str], *, newer_than: Sequence[str] = (), keep: Sequence[str] = ()) -> None:
        self.bulk.upsert(table, columns, rows, keys, newer_than=newer_than, keep=keep)

    def insert_fresh(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                     keys: Sequence[str], *, keep: Sequence[str] = ()) -> None:
        self.bulk.insert_fresh(table, columns, rows, keys, keep=keep)

    def update_known(self, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]],
                     keys: Sequence[str], *, keep: Sequence[str] = (),
                     changes: Sequence[str] | None = None) -> None:
        self.bulk.upsert(table, columns, rows, keys, keep=keep)

    def delete_in(self, table: Table, column: str, values: Sequence[Any]) -> None:
        self.bulk.delete_in(table, column, values)

    def increment(self, table: Table, keys: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        self.bulk.increment(table, keys, rows)

    def delete_visits(self, order_ids: Sequence[str]) -> list[tuple[str, int, str, str, datetime]]:
        if not order_ids:
            return []
        self.cur.execute(
            f"DELETE FROM stage_intervals WHERE order_id = {ANY_IDS} "
            "RETURNING order_id, seq, flow, stage, entered_at",
            (id_list(order_ids),), prepare=False,
        )
        return cast(list[tuple[str, int, str, str, datetime]], self.cur.fetchall())

    def visits_of(self, order_ids: Sequence[str]) -> list[tuple[str, int, str, str, datetime]]:
        return cast(list[tuple[str, int, str, str, datetime]],
                    self.rows_in(VISITS, ("order_id", "seq", "flow", "stage", "entered_at"), "order_id",
                                 order_ids))

    def rows_in(self, table: Table, columns: Sequence[str], column: str,
                values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """Rows whose ``column`` is in ``values``; datetimes in UTC and JSON decoded, as the ORM types do."""
        if not values:
            return []
        sql, fixes = _select_in(table, tuple(columns), column)
        self.cur.execute(sql, (id_list(values),), prepare=False)
        rows: list[tuple[Any, ...]] = self.cur.fetchall()
        return _decoded(rows, fixes)

    def held_orders(self, order_ids: Sequence[str]) -> set[str]:
        if not order_ids:
            return set()
        self.cur.execute(f"SELECT DISTINCT order_id FROM held_events WHERE order_id = {ANY_IDS}",
                         (id_list(order_ids),), prepare=False)
        return {r[0] for r in self.cur.fetchall()}

    def _events(self, where: str, values: Sequence[str]) -> list[EventRecord]:
        if not values:
            return []
        self.cur.execute(
            "SELECT event_id, type, occurred_at, source, order_id, payload::text FROM events WHERE " + where,
            (id_list(values),), prepare=False,
        )
        return [
            EventRecord(event_id=r[0], type=r[1], occurred_at=r[2].astimezone(UTC), source=r[3],
                        order_id=r[4], payload=_loads(r[5]))
            for r in self.cur.fetchall()
        ]

    def order_events(self, order_ids: Sequence[str]) -> list[EventRecord]:
        return self._events(f"order_id = {ANY_IDS} AND type <> 'stock.level'", order_ids)

    def parcel_scans(self, parcel_ids: Sequence[str]) -> list[EventRecord]:
        return self._events(f"parcel_id = {ANY_IDS} AND type = 'parcel.scanned'", parcel_ids)


_SELECTS: dict[tuple[str, tuple[str, ...], str], tuple[str, list[tuple[int, Callable[[Any], Any]]]]] = {}


def _select_in(table: Table, columns: tuple[str, ...],
               column: str) -> tuple[str, list[tuple[int, Callable[[Any], Any]]]]:
    """``SELECT columns FROM table WHERE column = ANY(%s)`` (JSON read as text), and the
    conversions its rows need: JSON text decoded, datetimes in UTC."""
    key = (table.name, columns, column)
    found = _SELECTS.get(key)
    if found is None:
        parts = []
        fixes: list[tuple[int, Callable[[Any], Any]]] = []
        for i, name in enumerate(columns):
            kind = table.c[name].type
            if isinstance(kind, JSON):
                parts.append(f'"{name}"::text')
                fixes.append((i, _loads))
            else:
                parts.append(f'"{name}"')
                if isinstance(kind, UTCDateTime):
                    fixes.append((i, _utc))
        sql = f'SELECT {", ".join(parts)} FROM "{table.name}" WHERE "{column}" = {ANY_IDS}'
        found = _SELECTS[key] = (sql, fixes)
    return found


_Store = _SqlStore | _SqliteStore | _PgStore


# --- locks ---------------------------------------------------------------------------------

#: Advisory locks one transaction may take. PostgreSQL's shared lock table holds about
#: max_locks_per_transaction x max_connections entries (6,400 by default), shared by all
#: sessions; a larger batch is applied in several transactions.
MAX_LOCKS = 2_000
_STOCK = ("stock",)

Unit = Hashable  # an order id (str), _STOCK, or ("event", event_id)


def _units(batch: Sequence[EventRecord]) -> tuple[list[Unit], dict[Unit, set[int]]]:
    """The unit of every event (its order, or the stock) and the lock keys each unit needs.

    Events of one unit are always applied together, under all of the unit's locks.
    """
    of: list[Unit] = []
    units: dict[Unit, set[int]] = {}
    parcel_keys: dict[str, int] = {}
    stock_key = _lock_key("s", "stock")
    for e in batch:
        unit: Unit
        if e.type == "stock.level":
            unit = _STOCK
        elif e.order_id is not None:
            unit = e.order_id
        else:
            unit = ("event", e.event_id)
        of.append(unit)
        keys = units.get(unit)
        if keys is None:
            if unit is _STOCK:
                keys = units[unit] = {stock_key}
            else:
                keys = units[unit] = {_lock_key("o", unit)} if isinstance(unit, str) else set()
        if e.type == "parcel.scanned" and (p := e.parcel_id):
            key = parcel_keys.get(p)
            if key is None:
                key = parcel_keys[p] = _lock_key("p", p)
            keys.add(key)
    return of, units


def _groups(units: dict[Unit, set[int]], limit: int = MAX_LOCKS) -> list[set[Unit]]:
    """Units in groups that need at most ``limit`` locks each (one group for a usual batch)."""
    groups: list[set[Unit]] = []
    current: set[Unit] = set()
    count = 0
    for unit, keys in units.items():
        if current and count + len(keys) > limit:
            groups.append(current)
            current, count = set(), 0
        current.add(unit)
        count += len(keys)
    groups.append(current)
    return groups


class Projector:
    """Applies batches of validated events to the log and the projections."""

    def __init__(self, engine: Engine, flows: FlowBook, figures: TowerFigures) -> None:
        self.engine = engine
        self.flows = flows
        self.figures = figures
        self._pg = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"
        self._lite = engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite"
        self.listeners: list[Callable[[ApplyResult], None]] = []

    # --- public -------------------------------------------------------------------

    def apply(self, events: Sequence[EventRecord]) -> ApplyResult:
        """Append new events and fold them into the projections (see the module doc)."""
        unique: dict[str, EventRecord] = {}
        for e in events:
            unique.setdefault(e.event_id, e)
        batch = list(unique.values())
        result = ApplyResult(duplicates=len(events) - len(batch))
        if not batch:
            return result
        if self._pg:
            self._apply_pg(batch, result)
        else:
            with self.engine.begin() as conn:
                self._apply(self._store(conn), batch, result)
        for listener in self.listeners:
            # The batch is committed: a failing listener must not make the bus retry
            # it (the retry would find only duplicates and the listener would never
            # hear of these events again), so its error is logged, not raised.
            try:
                listener(result)
            except Exception:
                log.exception("projector listener %r failed on a batch of %d", listener, result.accepted)
        return result

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Drop every projection and fold the whole event log again. Returns events read."""
        read = 0
        with self.engine.begin() as conn:
            store = self._store(conn)
            for name in PROJECTION_TABLES:
                conn.execute(text(f"DELETE FROM {name}"))
            read += self._rebuild_orders(conn, store, progress)
            self._rebuild_parcels(conn, store)
            self._rebuild_stock(conn, store)
        store.committed()
        return read

    # --- one transaction's work -------------------------------------------------------

    def _store(self, conn: Connection) -> _Store:
        if self._pg:
            return _PgStore(conn)
        return _SqliteStore(conn) if self._lite else _SqlStore(conn)

    def _apply_pg(self, batch: list[EventRecord], result: ApplyResult) -> None:
        of, units = _units(batch)
        groups = _groups(units)
        transactions = 0
        for group in groups:
            events = batch if len(groups) == 1 else [e for e, u in zip(batch, of, strict=True) if u in group]
            keys = set().union(*(units[u] for u in group))
            waiting: set[Unit] = set()
            with self.engine.begin() as conn:
                store = _PgStore(conn)
                busy = store.try_lock(sorted(keys))
                if busy:
                    waiting = {u for u in group if not units[u].isdisjoint(busy)}
                    mine = [e for e, u in zip(batch, of, strict=True) if u in group and u not in waiting]
                else:
                    mine = events
                self._apply(store, mine, result)
            store.committed()
            transactions += 1
            if not waiting:
                continue
            # The orders another worker holds: wait for them, in a transaction of their own.
            with self.engine.begin() as conn:
                store = _PgStore(conn)
                store.lock(sorted(set().union(*(units[u] for u in waiting))))
                self._apply(store, [e for e, u in zip(batch, of, strict=True) if u in waiting], result)
            store.committed()
            transactions += 1
        if transactions > 1:
            position = {e.event_id: i for i, e in enumerate(batch)}
            result.new_events.sort(key=lambda e: position[e.event_id])

    def _apply(self, store: _Store, batch: Sequence[EventRecord], result: ApplyResult) -> None:
        if not batch:
            return
        json = store.json
        # In key order: neighbouring keys land on the same index pages.
        new_ids = store.insert_events(sorted(
            (e.event_id, e.type, e.occurred_at, e.source, e.order_id, e.parcel_id, json(e.payload))
            for e in batch
        ))
        new = [e for e in batch if e.event_id in new_ids]
        result.accepted += len(new)
        result.duplicates += len(batch) - len(new)
        result.new_events.extend(new)
        self._project_orders(store, new, result)
        self._project_parcels(store, [e for e in new if e.type == "parcel.scanned"])
        self._project_stock(store, [e for e in new if e.type == "stock.level"])

    # --- orders ---------------------------------------------------------------------

    def _project_orders(self, store: _Store, new: Sequence[EventRecord], result: ApplyResult) -> None:
        by_order: dict[str, list[EventRecord]] = defaultdict(list)
        for e in new:
            if e.order_id is not None and e.type != "stock.level":
                by_order[e.order_id].append(e)
        if not by_order:
            return
        ids = sorted(by_order)
        existing, reaches = self._load_orders(store, ids)
        prior = {o: _Prior(st.flow, st.stage, st.status, st.delivered_at) for o, st in existing.items()}
        creating = [
            o for o in ids
            if o not in existing and any(e.type == "order.created" for e in by_order[o])
        ]
        with_held = store.held_orders(creating)

        letters: list[DeadLetter] = []
        states: list[OrderState] = []
        refold: list[str] = []
        stored: dict[str, int] = {}  # order -> last stage visit already stored
        held_rows: list[tuple[str, str]] = []
        sort_key = EventRecord.sort_key
        for order_id in ids:
            evs = by_order[order_id]
            if len(evs) > 1:
                evs.sort(key=sort_key)
            state = existing.get(order_id)
            if state is None:
                if order_id in creating and order_id not in with_held:
                    fresh, dead = fold_order(evs, self.flows)
                    assert fresh is not None
                    states.append(fresh)
                    letters.extend(dead)
                elif order_id in creating:
                    refold.append(order_id)
                else:
                    held_rows.extend((e.event_id, order_id) for e in evs)
            elif state.last_key is not None and evs[0].sort_key() > state.last_key:
                stored[order_id] = state.current.seq
                for e in evs:
                    letter = apply_order_event(state, e, self.flows)
                    if letter is not None:
                        letters.append(letter)
                states.append(state)
            else:
                refold.append(order_id)

        refolded = self._refold_orders(store, refold, letters)
        result.held += len(held_rows)
        store.insert_ignore(HELD, HELD_COLS, held_rows)
        if with_held:
            store.delete_in(HELD, "order_id", sorted(with_held))
        # A refold recomputes everything of the order, its dead letters included: an
        # event dead-lettered under an earlier, partial view may apply now.
        rollup = _Rollup()
        if refold:
            rollup.forget_visits(store.delete_visits(sorted(refold)))
            store.delete_in(REENTRIES, "order_id", sorted(refold))
            store.delete_in(DEAD, "order_id", sorted(refold))
        all_states = states + list(refolded.values())
        self._save_orders(store, all_states, existing.keys(), stored, prior, reaches, rollup)
        self._save_dead(store, letters)
        result.dead_letters.extend(letters)
        result.changed_orders.extend(all_states)

    def _refold_orders(
        self, store: _Store, order_ids: Sequence[str], letters: list[DeadLetter]
    ) -> dict[str, OrderState]:
        if not order_ids:
            return {}
        events: dict[str, list[EventRecord]] = defaultdict(list)
        for e in store.order_events(list(order_ids)):
            assert e.order_id is not None
            events[e.order_id].append(e)
        out: dict[str, OrderState] = {}
        for order_id in order_ids:
            state, dead = fold_order(events[order_id], self.flows)
            letters.extend(dead)
            if state is not None:
                out[order_id] = state
        return out

    def _load_orders(
        self, store: _Store, order_ids: Sequence[str]
    ) -> tuple[dict[str, OrderState], dict[str, int | None]]:
        """Stored orders, and the furthest stage index each has been in (None: not recorded)."""
        out: dict[str, OrderState] = {}
        reaches: dict[str, int | None] = {}
        for r in store.rows_in(ORDERS, ORDER_STATE_COLS, "order_id", order_ids):
            checkpoint = r[13]
            out[r[0]] = OrderState.restore(
                order_id=r[0], flow=r[1], priority=r[2], custom=r[3], promised_at=r[4],
                created_at=r[5], status=r[6], delivered_at=r[7], cancelled_at=r[8],
                last_event_at=r[9], customer_id=r[10], channel=r[11], city=r[12], checkpoint=checkpoint,
            )
            reaches[r[0]] = checkpoint.get("reach")
        return out, reaches

    def _save_orders(
        self,
        store: _Store,
        states: Sequence[OrderState],
        existing: Collection[str] = (),
        stored: Mapping[str, int] | None = None,
        prior: Mapping[str, _Prior] | None = None,
        reaches: Mapping[str, int | None] | None = None,
        rollup: _Rollup | None = None,
    ) -> None:
        """Write order rows, their changed stage visits and what they change in the rollups.

        Rows of orders not in ``existing`` are new; so are the visits above
        ``stored[order]`` (all of them for an order not in it). ``prior`` is what the
        rollups counted for an order so far, ``reaches`` the furthest stage index its
        stored visits went to (kept in the checkpoint: a new visit of a stage beyond it
        is the order's first entry there, anything else is looked up).
        """
        if not states:
            return
        json = store.json
        flows = self.flows
        stored = stored or {}
        prior = prior or {}
        reaches = reaches or {}
        rollup = rollup or _Rollup()
        text_times = not store.native_times
        earlier = self._earlier_visits(store, states, stored, reaches)
        # rows: new orders, stored ones folded forward, stored ones folded again;
        # visits: new ones, stored ones (of orders folded forward: only their times change)
        rows: tuple[list[tuple[Any, ...]], ...] = ([], [], [])
        visits: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        counts, entries, deliveries = rollup.counts, rollup.entries, rollup.deliveries
        for s in states:
            assert s.last_event_at is not None
            order_id, flow = s.order_id, s.flow
            index = flows.by_id[flow].stage_index
            upto = stored.get(order_id, -1)
            firsts: dict[str, datetime] = {}
            reach = -1
            if order_id in earlier:
                for _, stage, entered_at in earlier[order_id]:
                    firsts.setdefault(stage, entered_at)
                    reach = max(reach, index[stage])
            elif upto >= 0:
                known = reaches.get(order_id)
                assert known is not None  # otherwise its visits were looked up
                reach = known
            since = s.changed_from_seq
            for v in s.visits:
                if v.seq >= since:
                    visits[v.seq <= upto].append((order_id, v.seq, flow, v.stage, v.entered_at,
                                                  v.started_at, v.completed_at))
                if v.seq > upto:  # a new stay: the first in its stage, or a re-entry
                    first = firsts.get(v.stage)
                    if first is None:
                        firsts[v.stage] = v.entered_at
                        entries[(flow, v.stage, _bucket(v.entered_at))] += 1
                    else:
                        rollup.reentries.append((order_id, v.seq, flow, v.stage, v.entered_at, first))
                    reach = max(reach, index[v.stage])
            before = prior.get(order_id)
            if before is not None:
                counts[(before.flow, before.stage, before.status)] -= 1
                if before.delivered_at is not None:
                    deliveries[(before.flow, _bucket(before.delivered_at))] -= 1
            counts[(flow, s.stage, s.status)] += 1
            if s.delivered_at is not None:
                deliveries[(flow, _bucket(s.delivered_at))] += 1
            checkpoint = s.checkpoint(times_as_text=text_times)
            checkpoint["reach"] = reach
            rows[0 if order_id not in existing else 1 if upto >= 0 else 2].append((
                order_id, flow, s.stage, s.current.seq, s.status, False, s.priority, s.custom,
                s.promised_at, s.created_at, s.delivered_at, s.cancelled_at, s.last_event_at,
                s.late(), s.at_risk(flows), s.customer_id, s.channel, s.city, json(checkpoint),
            ))
        store.update_known(ORDERS, ORDER_COLS, rows[1], ("order_id",), keep=("frozen",),
                           changes=ORDER_CHANGES)
        store.update_known(ORDERS, ORDER_COLS, rows[2], ("order_id",), keep=("frozen",))
        store.insert_fresh(ORDERS, ORDER_COLS, rows[0], ("order_id",), keep=("frozen",))
        store.update_known(VISITS, VISIT_COLS, visits[1], ("order_id", "seq"),
                           changes=("started_at", "completed_at"))
        store.insert_fresh(VISITS, VISIT_COLS, visits[0], ("order_id", "seq"))
        rollup.write(store)

    def _earlier_visits(
        self, store: _Store, states: Sequence[OrderState], stored: Mapping[str, int],
        reaches: Mapping[str, int | None],
    ) -> dict[str, list[tuple[int, str, datetime]]]:
        """Stored visits (seq, stage, entered_at; in seq order) of the orders whose new
        visits may return to a stage they were in before, or whose reach is unknown."""
        wanted: dict[str, int] = {}
        for s in states:
            upto = stored.get(s.order_id)
            if upto is None:
                continue  # every visit of the order is in memory
            reach = reaches.get(s.order_id)
            index = self.flows.by_id[s.flow].stage_index
            if reach is None or any(v.seq > upto and index[v.stage] <= reach for v in s.visits):
                wanted[s.order_id] = upto
        out: dict[str, list[tuple[int, str, datetime]]] = {o: [] for o in wanted}
        for order_id, seq, _, stage, entered_at in sorted(store.visits_of(sorted(wanted))):
            if seq <= wanted[order_id]:
                out[order_id].append((seq, stage, entered_at))
        return out

    def _save_dead(self, store: _Store, letters: Sequence[DeadLetter]) -> None:
        now = datetime.now(UTC)
        store.insert_ignore(DEAD, DEAD_COLS, [(d.event_id, d.order_id, d.reason, now) for d in letters])

    def _rebuild_orders(self, conn: Connection, store: _Store,
                        progress: Callable[[int], None] | None) -> int:
        read = 0
        current: str | None = None
        bucket: list[EventRecord] = []
        states: list[OrderState] = []
        held: list[tuple[str, str]] = []
        dead: list[DeadLetter] = []

        def flush() -> None:
            if current is None:
                return
            state, letters = fold_order(bucket, self.flows)
            dead.extend(letters)
            if state is None:
                held.extend((e.event_id, current) for e in bucket)
            else:
                states.append(state)

        stmt = (
            select(EVENTS)
            .where(EVENTS.c.order_id.is_not(None), EVENTS.c.type != "stock.level")
            .order_by(EVENTS.c.order_id)
            .execution_options(yield_per=10_000)
        )
        for row in conn.execute(stmt):
            read += 1
            if row.order_id != current:
                flush()
                bucket = []
                current = row.order_id
                if len(states) >= 5_000:
                    self._save_orders(store, states)
                    states.clear()
                    if progress:
                        progress(read)
            bucket.append(_record(row))
        flush()
        self._save_orders(store, states)
        store.insert_ignore(HELD, HELD_COLS, held)
        self._save_dead(store, dead)
        if progress:
            progress(read)
        return read

    # --- parcels at hubs --------------------------------------------------------------

    def _project_parcels(self, store: _Store, scans: Sequence[EventRecord]) -> None:
        by_parcel: dict[str, list[EventRecord]] = defaultdict(list)
        for e in scans:
            if e.parcel_id:
                by_parcel[e.parcel_id].append(e)
        if not by_parcel:
            return
        ids = sorted(by_parcel)
        existing = self._load_parcels(store, ids)
        states: list[ParcelState] = []
        refold: list[str] = []
        stored: dict[str, int] = {}  # parcel -> last hub visit already stored
        sort_key = EventRecord.sort_key
        for pid in ids:
            evs = by_parcel[pid]
            if len(evs) > 1:
                evs.sort(key=sort_key)
            state = existing.get(pid)
            if state is None:
                states.append(fold_parcel(pid, evs))
            elif state.last_key is not None and evs[0].sort_key() > state.last_key:
                stored[pid] = state.visits[-1].seq if state.visits else -1
                for e in evs:
                    apply_parcel_scan(state, e)
                states.append(state)
            else:
                refold.append(pid)
        if refold:
            scans_by: dict[str, list[EventRecord]] = defaultdict(list)
            for e in store.parcel_scans(refold):
                assert e.parcel_id is not None
                scans_by[e.parcel_id].append(e)
            store.delete_in(HUB_VISITS, "parcel_id", refold)
            states.extend(fold_parcel(pid, scans_by[pid]) for pid in refold)
        self._save_parcels(store, states, existing.keys(), stored)

    def _load_parcels(self, store: _Store, ids: Sequence[str]) -> dict[str, ParcelState]:
        out: dict[str, ParcelState] = {}
        for parcel_id, carrier, status, last_scan_at, cp in store.rows_in(
            PARCELS, PARCEL_STATE_COLS, "parcel_id", ids
        ):
            lk = cp["last_key"]
            last = cp.get("last_visit")
            visits = []
            if last:
                visits.append(HubVisit(
                    seq=last["seq"], hub_id=last["hub_id"],
                    arrived_at=datetime.fromisoformat(last["arrived_at"]),
                    departed_at=(datetime.fromisoformat(last["departed_at"])
                                 if last["departed_at"] else None),
                ))
            out[parcel_id] = ParcelState(
                parcel_id=parcel_id, carrier=carrier, status=status,
                last_scan_at=last_scan_at,
                last_key=(lk[0], datetime.fromisoformat(lk[1]), lk[2]),
                visits=visits,
                changed_from_seq=(last["seq"] + 1) if last else 0,
            )
        return out

    def _save_parcels(self, store: _Store, states: Sequence[ParcelState],
                      existing: Collection[str] = (), stored: Mapping[str, int] | None = None) -> None:
        """Write parcel rows and changed hub visits; new ones as in :meth:`_save_orders`."""
        json = store.json
        iso: Callable[[datetime], Any] = _same if store.native_times else datetime.isoformat
        stored = stored or {}
        rows: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])  # (new, stored)
        visits: tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]] = ([], [])
        for s in states:
            if s.last_key is None or s.last_scan_at is None:
                continue
            last = s.visits[-1] if s.visits else None
            open_visit = s.open_visit
            rows[s.parcel_id in existing].append((
                s.parcel_id, s.carrier, s.status, open_visit.hub_id if open_visit else None,
                s.last_scan_at,
                json({
                    "last_key": [s.last_key[0], iso(s.last_key[1]), s.last_key[2]],
                    "last_visit": {
                        "seq": last.seq, "hub_id": last.hub_id,
                        "arrived_at": iso(last.arrived_at),
                        "departed_at": iso(last.departed_at) if last.departed_at else None,
                    } if last else None,
                }),
            ))
            upto = stored.get(s.parcel_id, -1)
            for v in s.visits:
                if v.seq >= s.changed_from_seq:
                    departed = v.departed_at
                    visits[v.seq <= upto].append((
                        s.parcel_id, v.seq, v.hub_id, v.arrived_at, departed,
                        _epoch_hour(v.arrived_at),
                        _epoch_hour(departed) if departed else None,
                        (departed - v.arrived_at).total_seconds() if departed else None,
                    ))
        store.update_known(PARCELS, PARCEL_COLS, rows[1], ("parcel_id",))
        store.insert_fresh(PARCELS, PARCEL_COLS, rows[0], ("parcel_id",))
        store.update_known(HUB_VISITS, HUB_VISIT_COLS, visits[1], ("parcel_id", "seq"),
                           changes=("departed_at", "departed_hour", "dwell_s"))
        store.insert_fresh(HUB_VISITS, HUB_VISIT_COLS, visits[0], ("parcel_id", "seq"))

    def _rebuild_parcels(self, conn: Connection, store: _Store) -> None:
        stmt = (
            select(EVENTS)
            .where(EVENTS.c.type == "parcel.scanned", EVENTS.c.parcel_id.is_not(None))
            .order_by(EVENTS.c.parcel_id)
            .execution_options(yield_per=10_000)
        )
        states: list[ParcelState] = []
        current: str | None = None
        bucket: list[EventRecord] = []
        for row in conn.execute(stmt):
            if row.parcel_id != current:
                if current is not None:
                    states.append(fold_parcel(current, bucket))
                if len(states) >= 5_000:
                    self._save_parcels(store, states)
                    states.clear()
                current, bucket = row.parcel_id, []
            bucket.append(_record(row))
        if current is not None:
            states.append(fold_parcel(current, bucket))
        self._save_parcels(store, states)

    # --- stock -------------------------------------------------------------------------

    def _project_stock(self, store: _Store, events: Sequence[EventRecord]) -> None:
        latest: dict[tuple[str, str], EventRecord] = {}
        for e in events:
            key = (str(e.payload["warehouse_id"]), str(e.payload["sku"]))
            best = latest.get(key)
            if best is None or (e.occurred_at, e.event_id) > (best.occurred_at, best.event_id):
                latest[key] = e
        rows = [
            (w, s, int(e.payload["on_hand"]), e.occurred_at, e.event_id)
            for (w, s), e in sorted(latest.items())
        ]
        store.upsert(STOCK, STOCK_COLS, rows, ("warehouse_id", "sku"), newer_than=("as_of", "event_id"))

    def _rebuild_stock(self, conn: Connection, store: _Store) -> None:
        rows = conn.execute(select(EVENTS).where(EVENTS.c.type == "stock.level"))
        self._project_stock(store, [_record(r) for r in rows])
