"""The projector: appends events to the log and keeps the projections current.

Each call to :meth:`Projector.apply` is one transaction. Events are deduplicated by
``event_id`` against the log; each affected order (and parcel) is either folded
forward from its checkpoint, when every new event sorts after what it has already
seen, or folded again from all its events in the log. Either way its state is the
fold of its event set, so arrival order and duplicates never change the result.
On PostgreSQL, transaction-scoped advisory locks on the touched orders and parcels
let several projector workers share a stream safely.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, select, text

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
    PROJECTION_TABLES,
    DeadLetterRow,
    Event,
    HeldEvent,
    HubVisitRow,
    Order,
    Parcel,
    StageInterval,
    StockLevelRow,
)
from tower.store.writes import insert_ignore, insert_new, upsert

EVENTS = cast(Table, Event.__table__)
ORDERS = cast(Table, Order.__table__)
VISITS = cast(Table, StageInterval.__table__)
PARCELS = cast(Table, Parcel.__table__)
HUB_VISITS = cast(Table, HubVisitRow.__table__)
HELD = cast(Table, HeldEvent.__table__)
DEAD = cast(Table, DeadLetterRow.__table__)
STOCK = cast(Table, StockLevelRow.__table__)

CHUNK = 5_000  # keeps IN (...) lists and parameter counts within every dialect's limits


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


def _event_row(e: EventRecord) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "source": e.source,
        "order_id": e.order_id,
        "parcel_id": e.parcel_id,
        "payload": e.payload,
    }


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


class Projector:
    """Applies batches of validated events to the log and the projections."""

    def __init__(self, engine: Engine, flows: FlowBook, figures: TowerFigures) -> None:
        self.engine = engine
        self.flows = flows
        self.figures = figures
        self._pg = engine.dialect.name == "postgresql"
        self.listeners: list[Callable[[ApplyResult], None]] = []

    # --- public -------------------------------------------------------------------

    def apply(self, events: Sequence[EventRecord]) -> ApplyResult:
        """Append new events and fold them into the projections, in one transaction."""
        unique: dict[str, EventRecord] = {}
        for e in events:
            unique.setdefault(e.event_id, e)
        batch = list(unique.values())
        result = ApplyResult(duplicates=len(events) - len(batch))
        if not batch:
            return result
        with self.engine.begin() as conn:
            if self._pg:
                self._lock(conn, batch)
            new_ids: set[str] = set()
            for chunk in _chunks(batch):
                new_ids |= insert_new(conn, EVENTS, [_event_row(e) for e in chunk], "event_id")
            new = [e for e in batch if e.event_id in new_ids]
            result.accepted = len(new)
            result.duplicates += len(batch) - len(new)
            result.new_events = new
            self._project_orders(conn, new, result)
            self._project_parcels(conn, [e for e in new if e.type == "parcel.scanned"])
            self._project_stock(conn, [e for e in new if e.type == "stock.level"])
        for listener in self.listeners:
            listener(result)
        return result

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Drop every projection and fold the whole event log again. Returns events read."""
        read = 0
        with self.engine.begin() as conn:
            for name in PROJECTION_TABLES:
                conn.execute(text(f"DELETE FROM {name}"))
            read += self._rebuild_orders(conn, progress)
            self._rebuild_parcels(conn)
            self._rebuild_stock(conn)
        return read

    # --- orders ---------------------------------------------------------------------

    def _lock(self, conn: Connection, batch: Sequence[EventRecord]) -> None:
        keys = {_lock_key("o", e.order_id) for e in batch if e.order_id}
        keys |= {_lock_key("p", p) for e in batch if e.type == "parcel.scanned" and (p := e.parcel_id)}
        if any(e.type == "stock.level" for e in batch):
            keys.add(_lock_key("s", "stock"))
        conn.execute(
            text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"),
            {"keys": sorted(keys)},
        )

    def _project_orders(self, conn: Connection, new: Sequence[EventRecord], result: ApplyResult) -> None:
        by_order: dict[str, list[EventRecord]] = defaultdict(list)
        for e in new:
            if e.order_id is not None and e.type != "stock.level":
                by_order[e.order_id].append(e)
        if not by_order:
            return
        ids = sorted(by_order)
        existing = self._load_orders(conn, ids)
        creating = [
            o for o in ids
            if o not in existing and any(e.type == "order.created" for e in by_order[o])
        ]
        with_held = self._orders_with_held(conn, creating)

        states: list[OrderState] = []
        refold: list[str] = []
        held_rows: list[dict[str, Any]] = []
        for order_id in ids:
            evs = sorted(by_order[order_id], key=EventRecord.sort_key)
            state = existing.get(order_id)
            if state is None:
                if order_id in creating and order_id not in with_held:
                    fresh, dead = fold_order(evs, self.flows)
                    assert fresh is not None
                    states.append(fresh)
                    result.dead_letters.extend(dead)
                elif order_id in creating:
                    refold.append(order_id)
                else:
                    held_rows.extend({"event_id": e.event_id, "order_id": order_id} for e in evs)
            elif state.last_key is not None and evs[0].sort_key() > state.last_key:
                for e in evs:
                    letter = apply_order_event(state, e, self.flows)
                    if letter is not None:
                        result.dead_letters.append(letter)
                states.append(state)
            else:
                refold.append(order_id)

        refolded = self._refold_orders(conn, refold, result)
        result.held = len(held_rows)
        insert_ignore(conn, HELD, held_rows)
        if with_held:
            conn.execute(delete(HELD).where(HELD.c.order_id.in_(sorted(with_held))))
        # A refold recomputes everything of the order, its dead letters included: an
        # event dead-lettered under an earlier, partial view may apply now.
        for chunk in _chunks(sorted(refold)):
            conn.execute(delete(VISITS).where(VISITS.c.order_id.in_(chunk)))
            conn.execute(delete(DEAD).where(DEAD.c.order_id.in_(chunk)))
        all_states = states + list(refolded.values())
        self._save_orders(conn, all_states)
        self._save_dead(conn, result.dead_letters)
        result.changed_orders = all_states

    def _refold_orders(
        self, conn: Connection, order_ids: Sequence[str], result: ApplyResult
    ) -> dict[str, OrderState]:
        if not order_ids:
            return {}
        events: dict[str, list[EventRecord]] = defaultdict(list)
        for chunk in _chunks(list(order_ids)):
            rows = conn.execute(
                select(EVENTS).where(EVENTS.c.order_id.in_(chunk), EVENTS.c.type != "stock.level")
            )
            for row in rows:
                events[row.order_id].append(_record(row))
        out: dict[str, OrderState] = {}
        for order_id in order_ids:
            state, dead = fold_order(events[order_id], self.flows)
            result.dead_letters.extend(dead)
            if state is not None:
                out[order_id] = state
        return out

    def _orders_with_held(self, conn: Connection, order_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(list(order_ids)):
            found |= set(
                conn.execute(select(HELD.c.order_id).where(HELD.c.order_id.in_(chunk)).distinct()).scalars()
            )
        return found

    def _load_orders(self, conn: Connection, order_ids: Sequence[str]) -> dict[str, OrderState]:
        out: dict[str, OrderState] = {}
        cols = [
            ORDERS.c.order_id, ORDERS.c.flow, ORDERS.c.priority, ORDERS.c.custom,
            ORDERS.c.promised_at, ORDERS.c.created_at, ORDERS.c.status, ORDERS.c.delivered_at,
            ORDERS.c.cancelled_at, ORDERS.c.last_event_at, ORDERS.c.customer_id,
            ORDERS.c.channel, ORDERS.c.city, ORDERS.c.checkpoint,
        ]
        for chunk in _chunks(list(order_ids)):
            for r in conn.execute(select(*cols).where(ORDERS.c.order_id.in_(chunk))):
                out[r.order_id] = OrderState.restore(
                    order_id=r.order_id, flow=r.flow, priority=r.priority, custom=r.custom,
                    promised_at=r.promised_at, created_at=r.created_at, status=r.status,
                    delivered_at=r.delivered_at, cancelled_at=r.cancelled_at,
                    last_event_at=r.last_event_at, customer_id=r.customer_id,
                    channel=r.channel, city=r.city, checkpoint=r.checkpoint,
                )
        return out

    def _save_orders(self, conn: Connection, states: Sequence[OrderState]) -> None:
        if not states:
            return
        rows = []
        visits = []
        for s in states:
            assert s.last_event_at is not None
            rows.append({
                "order_id": s.order_id, "flow": s.flow, "stage": s.stage,
                "stage_seq": s.current.seq, "status": s.status, "priority": s.priority,
                "custom": s.custom, "promised_at": s.promised_at, "created_at": s.created_at,
                "delivered_at": s.delivered_at, "cancelled_at": s.cancelled_at,
                "last_event_at": s.last_event_at, "late": s.late(),
                "at_risk": s.at_risk(self.flows), "customer_id": s.customer_id,
                "channel": s.channel, "city": s.city, "checkpoint": s.checkpoint(),
            })
            for v in s.visits:
                if v.seq >= s.changed_from_seq:
                    visits.append({
                        "order_id": s.order_id, "seq": v.seq, "flow": s.flow, "stage": v.stage,
                        "entered_at": v.entered_at, "started_at": v.started_at,
                        "completed_at": v.completed_at,
                    })
        for chunk in _chunks(rows, 2_000):
            upsert(conn, ORDERS, chunk, ["order_id"])
        for chunk in _chunks(visits, 2_000):
            upsert(conn, VISITS, chunk, ["order_id", "seq"])

    def _save_dead(self, conn: Connection, letters: Sequence[DeadLetter]) -> None:
        now = datetime.now(UTC)
        insert_ignore(
            conn, DEAD,
            [{"event_id": d.event_id, "order_id": d.order_id, "reason": d.reason, "recorded_at": now}
             for d in letters],
        )

    def _rebuild_orders(self, conn: Connection, progress: Callable[[int], None] | None) -> int:
        read = 0
        current: str | None = None
        bucket: list[EventRecord] = []
        states: list[OrderState] = []
        held: list[dict[str, Any]] = []
        dead: list[DeadLetter] = []

        def flush() -> None:
            if current is None:
                return
            state, letters = fold_order(bucket, self.flows)
            dead.extend(letters)
            if state is None:
                held.extend({"event_id": e.event_id, "order_id": current} for e in bucket)
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
                    self._save_orders(conn, states)
                    states.clear()
                    if progress:
                        progress(read)
            bucket.append(_record(row))
        flush()
        self._save_orders(conn, states)
        insert_ignore(conn, HELD, held)
        self._save_dead(conn, dead)
        if progress:
            progress(read)
        return read

    # --- parcels at hubs --------------------------------------------------------------

    def _project_parcels(self, conn: Connection, scans: Sequence[EventRecord]) -> None:
        by_parcel: dict[str, list[EventRecord]] = defaultdict(list)
        for e in scans:
            if e.parcel_id:
                by_parcel[e.parcel_id].append(e)
        if not by_parcel:
            return
        ids = sorted(by_parcel)
        existing = self._load_parcels(conn, ids)
        states: list[ParcelState] = []
        refold: list[str] = []
        for pid in ids:
            evs = sorted(by_parcel[pid], key=EventRecord.sort_key)
            state = existing.get(pid)
            if state is None:
                states.append(fold_parcel(pid, evs))
            elif state.last_key is not None and evs[0].sort_key() > state.last_key:
                for e in evs:
                    apply_parcel_scan(state, e)
                states.append(state)
            else:
                refold.append(pid)
        if refold:
            scans_by: dict[str, list[EventRecord]] = defaultdict(list)
            for chunk in _chunks(refold):
                rows = conn.execute(
                    select(EVENTS).where(EVENTS.c.parcel_id.in_(chunk), EVENTS.c.type == "parcel.scanned")
                )
                for row in rows:
                    scans_by[row.parcel_id].append(_record(row))
                conn.execute(delete(HUB_VISITS).where(HUB_VISITS.c.parcel_id.in_(chunk)))
            states.extend(fold_parcel(pid, scans_by[pid]) for pid in refold)
        self._save_parcels(conn, states)

    def _load_parcels(self, conn: Connection, ids: Sequence[str]) -> dict[str, ParcelState]:
        out: dict[str, ParcelState] = {}
        for chunk in _chunks(list(ids)):
            for r in conn.execute(select(PARCELS).where(PARCELS.c.parcel_id.in_(chunk))):
                cp = r.checkpoint
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
                out[r.parcel_id] = ParcelState(
                    parcel_id=r.parcel_id, carrier=r.carrier, status=r.status,
                    last_scan_at=r.last_scan_at,
                    last_key=(lk[0], datetime.fromisoformat(lk[1]), lk[2]),
                    visits=visits,
                    changed_from_seq=(last["seq"] + 1) if last else 0,
                )
        return out

    def _save_parcels(self, conn: Connection, states: Sequence[ParcelState]) -> None:
        rows = []
        visits = []
        for s in states:
            if s.last_key is None or s.last_scan_at is None:
                continue
            last = s.visits[-1] if s.visits else None
            open_visit = s.open_visit
            rows.append({
                "parcel_id": s.parcel_id, "carrier": s.carrier, "status": s.status,
                "hub_id": open_visit.hub_id if open_visit else None,
                "last_scan_at": s.last_scan_at,
                "checkpoint": {
                    "last_key": [s.last_key[0], s.last_key[1].isoformat(), s.last_key[2]],
                    "last_visit": {
                        "seq": last.seq, "hub_id": last.hub_id,
                        "arrived_at": last.arrived_at.isoformat(),
                        "departed_at": last.departed_at.isoformat() if last.departed_at else None,
                    } if last else None,
                },
            })
            for v in s.visits:
                if v.seq >= s.changed_from_seq:
                    visits.append({
                        "parcel_id": s.parcel_id, "seq": v.seq, "hub_id": v.hub_id,
                        "arrived_at": v.arrived_at, "departed_at": v.departed_at,
                        "arrived_hour": _epoch_hour(v.arrived_at),
                        "departed_hour": _epoch_hour(v.departed_at) if v.departed_at else None,
                        "dwell_s": (v.departed_at - v.arrived_at).total_seconds() if v.departed_at else None,
                    })
        for chunk in _chunks(rows, 2_000):
            upsert(conn, PARCELS, chunk, ["parcel_id"])
        for chunk in _chunks(visits, 2_000):
            upsert(conn, HUB_VISITS, chunk, ["parcel_id", "seq"])

    def _rebuild_parcels(self, conn: Connection) -> None:
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
                    self._save_parcels(conn, states)
                    states.clear()
                current, bucket = row.parcel_id, []
            bucket.append(_record(row))
        if current is not None:
            states.append(fold_parcel(current, bucket))
        self._save_parcels(conn, states)

    # --- stock -------------------------------------------------------------------------

    def _project_stock(self, conn: Connection, events: Sequence[EventRecord]) -> None:
        latest: dict[tuple[str, str], EventRecord] = {}
        for e in events:
            key = (str(e.payload["warehouse_id"]), str(e.payload["sku"]))
            best = latest.get(key)
            if best is None or (e.occurred_at, e.event_id) > (best.occurred_at, best.event_id):
                latest[key] = e
        rows = [
            {"warehouse_id": w, "sku": s, "on_hand": int(e.payload["on_hand"]),
             "as_of": e.occurred_at, "event_id": e.event_id}
            for (w, s), e in sorted(latest.items())
        ]
        for chunk in _chunks(rows, 2_000):
            upsert(conn, STOCK, chunk, ["warehouse_id", "sku"], newer_than=("as_of", "event_id"))

    def _rebuild_stock(self, conn: Connection) -> None:
        rows = conn.execute(select(EVENTS).where(EVENTS.c.type == "stock.level"))
        self._project_stock(conn, [_record(r) for r in rows])
