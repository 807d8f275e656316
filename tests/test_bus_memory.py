"""The in-process bus (embedded mode) with the real projector on SQLite."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
from sqlalchemy import Engine, func, select

from tests.conftest import _truncate
from tests.dump import dump_projections
from tests.factories import many_orders
from tower.bus.base import BusError, EventBus
from tower.bus.memory import InProcessBus
from tower.domain import TowerFigures
from tower.events import EventRecord, validate_event
from tower.flows import FlowBook
from tower.store.engine import make_engine
from tower.store.projector import Projector
from tower.store.tables import Event


@pytest.fixture
def store(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)
    _truncate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def bus() -> Iterator[InProcessBus]:
    b = InProcessBus(batch_size=50)
    yield b
    b.close()


def make_events(flows: FlowBook, n: int, seed: int = 1) -> list[EventRecord]:
    return [validate_event(e) for e in many_orders(flows, n=n, seed=seed)]


def event_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Event.event_id)).scalars())


def direct(engine: Engine, flows: FlowBook, figures: TowerFigures,
           events: Sequence[EventRecord]) -> dict[str, list[tuple[object, ...]]]:
    """Projections of applying the events in one call, then the store is emptied again."""
    Projector(engine, flows, figures).apply(list(events))
    dump = dump_projections(engine)
    _truncate(engine)
    return dump


def test_is_an_event_bus(bus: InProcessBus) -> None:
    ours: EventBus = bus
    assert ours.health()["kind"] == "in-process"


def test_publish_subscribe_join(store: Engine, bus: InProcessBus, flows: FlowBook,
                                figures: TowerFigures) -> None:
    events = make_events(flows, 12, seed=8)
    expected = direct(store, flows, figures, events)
    bus.subscribe(Projector(store, flows, figures).apply)
    for i in range(0, len(events), 70):
        bus.publish(events[i : i + 70])
    bus.publish(events[:25])  # duplicates are one event each
    assert bus.join(timeout=20)
    ids = event_ids(store)
    assert sorted(ids) == sorted(e.event_id for e in events)
    assert dump_projections(store) == expected
    health = bus.health()
    assert health["ok"] is True
    assert (health["pending"], health["failures"], health["dropped"]) == (0, 0, 0)


def test_failed_batch_is_retried_one_by_one(store: Engine, bus: InProcessBus, flows: FlowBook,
                                            figures: TowerFigures) -> None:
    events = make_events(flows, 4, seed=9)
    bad = events[17]
    good = [e for e in events if e is not bad]
    expected = direct(store, flows, figures, good)
    projector = Projector(store, flows, figures)
    calls: list[int] = []

    def apply(batch: Sequence[EventRecord]) -> object:
        calls.append(len(batch))
        if any(e.event_id == bad.event_id for e in batch):
            raise ValueError("cannot apply this one")
        return projector.apply(batch)

    bus.subscribe(apply)
    bus.publish(events)
    assert bus.join(timeout=20)
    assert sorted(event_ids(store)) == sorted(e.event_id for e in good)
    assert dump_projections(store) == expected
    assert 1 in calls  # the failing batch was split
    health = bus.health()
    assert (health["failures"], health["dropped"], health["pending"]) == (1, 1, 0)
    assert "cannot apply this one" in (health["last_error"] or "")
    [(event, reason)] = list(bus.dead)
    assert event == bad and reason == "ValueError: cannot apply this one"


def test_transient_failure_is_retried_not_dropped(store: Engine, bus: InProcessBus,
                                                  flows: FlowBook, figures: TowerFigures) -> None:
    events = make_events(flows, 2, seed=10)
    projector = Projector(store, flows, figures)
    failures = 2

    def apply(batch: Sequence[EventRecord]) -> object:
        nonlocal failures
        if failures:
            failures -= 1
            raise sqlite3.OperationalError("database is locked")
        return projector.apply(batch)

    bus.subscribe(apply)
    bus.publish(events)
    assert bus.join(timeout=20)
    assert len(event_ids(store)) == len(events)
    health = bus.health()
    assert (health["retries"], health["failures"], health["dropped"]) == (2, 0, 0)


def test_claim_and_release(bus: InProcessBus, flows: FlowBook) -> None:
    assert bus.claim(["a", "b"]) == {"a", "b"}
    assert bus.claim(["b", "c"]) == {"c"}
    bus.release(["b"])
    assert bus.claim(["a", "b"]) == {"b"}
    # claims end once the event has been handled
    events = make_events(flows, 1)[:3]
    ids = [e.event_id for e in events]
    assert bus.claim(ids) == set(ids)
    bus.publish(events)
    assert bus.claim(ids) == set()
    bus.subscribe(lambda batch: None)
    assert bus.join(timeout=5)
    assert bus.claim(ids) == set(ids)


def test_join_times_out_without_a_consumer(bus: InProcessBus, flows: FlowBook) -> None:
    assert bus.join(timeout=0.05)  # nothing published
    bus.publish(make_events(flows, 1)[:2])
    started = time.monotonic()
    assert bus.join(timeout=0.1) is False
    assert time.monotonic() - started < 2
    assert bus.health()["pending"] == 2


def test_one_consumer_only(bus: InProcessBus) -> None:
    bus.subscribe(lambda batch: None)
    with pytest.raises(RuntimeError):
        bus.subscribe(lambda batch: None)


def test_full_or_closed_bus_refuses_events(flows: FlowBook) -> None:
    events = make_events(flows, 1)[:3]
    small = InProcessBus(max_queued=2, put_timeout_s=0.05)
    try:
        with pytest.raises(BusError, match="full"):
            small.publish(events)
        assert small.health()["pending"] == 2  # the two that fitted are still delivered
        seen: list[str] = []
        small.subscribe(lambda batch: seen.extend(e.event_id for e in batch))
        assert small.join(timeout=5)
        assert seen == [e.event_id for e in events[:2]]
    finally:
        small.close()
    with pytest.raises(BusError, match="closed"):
        small.publish(events)
    assert small.health()["ok"] is False


def test_close_stops_a_consumer_waiting_on_a_transient_failure(flows: FlowBook) -> None:
    bus = InProcessBus()
    entered = threading.Event()

    def apply(batch: Sequence[EventRecord]) -> None:
        entered.set()
        raise ConnectionError("database down")

    bus.subscribe(apply)
    bus.publish(make_events(flows, 1)[:1])
    assert entered.wait(5)
    started = time.monotonic()
    bus.close()
    assert time.monotonic() - started < 3
    assert bus.health()["ok"] is False


def test_counts_match_store(store: Engine, bus: InProcessBus, flows: FlowBook,
                            figures: TowerFigures) -> None:
    events = make_events(flows, 3, seed=12)
    bus.subscribe(Projector(store, flows, figures).apply)
    threads = [threading.Thread(target=bus.publish, args=(events[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert bus.join(timeout=20)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Event)).scalar_one() == len(events)
