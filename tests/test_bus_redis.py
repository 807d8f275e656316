"""The Redis Streams bus against a real Redis, and with the projector a real PostgreSQL.

Delivery is at least once; the store must still hold every event exactly once and
end in the projections a single projector produces from the same events, whatever
happens in between: two consumers sharing a group, a consumer SIGKILLed between
commit and ack, a poison message, a message that is not JSON, a worker process.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from sqlalchemy import Engine, func, select, text

from tests.conftest import PG_URL, _truncate, need_service
from tests.dump import dump_projections
from tests.factories import many_orders
from tower.bus.base import BusError, RetryLater
from tower.bus.redis_streams import RedisStreamBus, StreamConsumer
from tower.domain import TowerFigures
from tower.events import EventRecord, validate_event
from tower.flows import FlowBook
from tower.store import queries
from tower.store.engine import make_engine, upgrade
from tower.store.projector import Projector
from tower.store.tables import Event

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, tzinfo=UTC)  # fixed "now" for read services that compare with it
Dump = dict[str, list[tuple[Any, ...]]]


# --- fixtures and helpers ---------------------------------------------------------------


@pytest.fixture
def stream() -> str:
    return f"test:{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    """The store the bus feeds: the session's PostgreSQL schema, emptied."""
    eng = make_engine(pg_url)
    _truncate(eng)
    yield eng
    eng.dispose()


@pytest.fixture(scope="module")
def ref_engine() -> Iterator[Engine]:
    """A second, independent PostgreSQL schema for reference projections."""
    need_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"tower_ref_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(scope="module")
def reference(ref_engine: Engine, flows: FlowBook, figures: TowerFigures) -> Callable[..., Dump]:
    """Projections of applying events directly with one Projector (cached per event set)."""
    cache: dict[tuple[str, ...], Dump] = {}

    def build(events: Sequence[EventRecord]) -> Dump:
        key = tuple(sorted(e.event_id for e in events))
        if key not in cache:
            _truncate(ref_engine)
            Projector(ref_engine, flows, figures).apply(list(events))
            cache[key] = dump_projections(ref_engine)
        return cache[key]

    return build


def make_events(flows: FlowBook, n: int, seed: int = 1) -> list[EventRecord]:
    return [validate_event(e) for e in many_orders(flows, n=n, seed=seed)]


def event_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Event.event_id)).scalars())


def event_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Event)).scalar_one())


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def drain(consumer: StreamConsumer, *, timeout: float = 20.0) -> None:
    """Step until the stream has nothing new and nothing pending."""
    deadline = time.monotonic() + timeout
    while consumer.step(block_ms=0) or consumer.bus.health()["pending"]:
        assert time.monotonic() < deadline, "consumer did not drain the stream"


def assert_exactly_once(engine: Engine, events: Sequence[EventRecord], expected: Dump) -> None:
    ids = event_ids(engine)
    assert len(ids) == len(set(ids))
    assert set(ids) == {e.event_id for e in events}
    assert dump_projections(engine) == expected


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def xrange(client: redis.Redis, stream: str, count: int | None = None) -> Entries:
    return cast(Entries, client.xrange(stream, count=count))


def dead_entries(bus: RedisStreamBus) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in xrange(bus.client, bus.dead_stream)]


class Proc:
    """A child process whose stdout lines are read without ever blocking the test."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None, stderr: Path | None = None) -> None:
        self.stderr_path = stderr
        err = stderr.open("wb") if stderr else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            list(args), stdout=subprocess.PIPE, stderr=err, env=env, cwd=cwd or ROOT,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode().strip())

    def expect(self, prefix: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {prefix!r} line from {self.proc.args!r} within {timeout} s"
                                     f"{self._stderr()}")
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    raise AssertionError(f"process exited with {self.proc.returncode} before "
                                         f"{prefix!r}{self._stderr()}") from None
                continue
            if line.startswith(prefix):
                return line

    def _stderr(self) -> str:
        if self.stderr_path and self.stderr_path.exists():
            return "\n" + self.stderr_path.read_text(errors="replace")[-3000:]
        return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def bus_worker(redis_url: str, stream: str, db_url: str, name: str, tmp_path: Path,
               *extra: str) -> Proc:
    return Proc([sys.executable, "-m", "tests.bus_worker", "--redis", redis_url, "--stream", stream,
                 "--db", db_url, "--name", name, *extra],
                stderr=tmp_path / f"{name}.err")


# --- 1. one consumer ----------------------------------------------------------------------


@pytest.mark.postgres
def test_one_consumer_applies_every_event_exactly_once(
    redis_url: str, stream: str, pg: Engine, flows: FlowBook, figures: TowerFigures,
    reference: Callable[..., Dump], ref_engine: Engine,
) -> None:
    events = make_events(flows, 30, seed=11)
    expected = reference(events)
    bus = RedisStreamBus(redis_url, stream=stream)
    consumer = bus.consumer(Projector(pg, flows, figures).apply, name="solo", batch_size=64)
    try:
        bus.publish(events[:300])
        bus.publish(events[300:])
        bus.publish(events[:40])  # sent twice (a client retry): still one event each
        drain(consumer)
        assert consumer.applied == len(events) + 40  # every message acked once
        assert_exactly_once(pg, events, expected)
        # the read services see the same orders as after a direct apply
        for order_id in sorted({e.order_id for e in events if e.order_id}):
            assert queries.get_order(pg, order_id=order_id, now=NOW) == queries.get_order(
                ref_engine, order_id=order_id, now=NOW)
        health = bus.health()
        assert health["ok"] is True
        assert health["stream_length"] == len(events) + 40
        assert (health["pending"], health["lag"], health["dead_letters"]) == (0, 0, 0)
    finally:
        bus.close()


# --- 2. two consumer processes share a group ---------------------------------------------


@pytest.mark.postgres
def test_two_consumer_processes_share_the_work(
    redis_url: str, stream: str, pg: Engine, pg_url: str, flows: FlowBook,
    reference: Callable[..., Dump], tmp_path: Path,
) -> None:
    events = make_events(flows, 40, seed=2)
    expected = reference(events)
    workers = [bus_worker(redis_url, stream, pg_url, f"w{i}", tmp_path, "--batch", "20")
               for i in (1, 2)]
    bus = RedisStreamBus(redis_url, stream=stream)
    try:
        for w in workers:
            w.expect("READY")
        for i in range(0, len(events), 60):
            bus.publish(events[i : i + 60])
            time.sleep(0.02)
        wait_for(lambda: event_count(pg) == len(events) and bus.health()["pending"] == 0,
                 30, "both workers to apply every event")
        results = []
        for w in workers:
            w.proc.send_signal(signal.SIGTERM)
            results.append(json.loads(w.expect("{", timeout=15)))
            assert w.proc.wait(timeout=10) == 0
    finally:
        for w in workers:
            w.kill()
        bus.close()
    applied = [r["applied"] for r in results]
    assert all(a > 0 for a in applied), f"one consumer did all the work: {applied}"
    assert sum(applied) == len(events)  # no message was handled by both
    assert_exactly_once(pg, events, expected)


# --- 3. a consumer killed between commit and ack ----------------------------------------


@pytest.mark.postgres
def test_consumer_killed_before_ack_loses_nothing_and_applies_nothing_twice(
    redis_url: str, stream: str, pg: Engine, pg_url: str, flows: FlowBook, figures: TowerFigures,
    reference: Callable[..., Dump], tmp_path: Path,
) -> None:
    events = make_events(flows, 25, seed=3)
    expected = reference(events)
    bus = RedisStreamBus(redis_url, stream=stream, reclaim_idle_ms=300)
    bus.publish(events)
    victim = bus_worker(redis_url, stream, pg_url, "victim", tmp_path,
                        "--batch", "50", "--hang-on-batch", "3")
    try:
        half = int(victim.expect("HANG").split()[1])
        victim.proc.send_signal(signal.SIGKILL)
        assert victim.proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        victim.kill()
    # Two batches were acked; the third was delivered, half committed, none acked.
    assert event_count(pg) == 100 + half
    pending = bus.client.xpending(stream, bus.group)
    assert pending["pending"] == 50
    assert [(c["name"], c["pending"]) for c in pending["consumers"]] == [(b"victim", 50)]

    accepted = 0
    projector = Projector(pg, flows, figures)

    def apply(batch: Sequence[EventRecord]) -> object:
        nonlocal accepted
        result = projector.apply(batch)
        accepted += result.accepted
        return result

    survivor = bus.consumer(apply, name="survivor", batch_size=50)
    try:
        assert survivor.reclaim() == 0  # not idle long enough yet: the victim might be alive
        time.sleep(0.4)
        assert survivor.reclaim() == 50  # XAUTOCLAIM takes the dead consumer's messages
        drain(survivor)
        assert accepted == len(events) - 100 - half  # the committed half was not applied again
        assert_exactly_once(pg, events, expected)
        assert bus.client.xpending(stream, bus.group)["pending"] == 0
        assert bus.health()["dead_letters"] == 0
    finally:
        bus.close()


# --- 4. a poison message --------------------------------------------------------------------


@pytest.mark.postgres
def test_poison_message_is_dead_lettered_after_max_deliveries(
    redis_url: str, stream: str, pg: Engine, flows: FlowBook, figures: TowerFigures,
    reference: Callable[..., Dump],
) -> None:
    events = make_events(flows, 6, seed=4)
    poison = events[len(events) // 2]
    projector = Projector(pg, flows, figures)
    attempts = 0

    def apply(batch: Sequence[EventRecord]) -> object:
        nonlocal attempts
        if any(e.event_id == poison.event_id for e in batch):
            if len(batch) == 1:
                attempts += 1
            raise ValueError(f"cannot apply {poison.event_id}")
        return projector.apply(batch)

    bus = RedisStreamBus(redis_url, stream=stream, max_deliveries=3, reclaim_idle_ms=50)
    consumer = bus.consumer(apply, name="c", batch_size=40)
    try:
        bus.publish(events)
        while consumer.step(block_ms=0):
            pass
        assert event_count(pg) == len(events) - 1  # the others went through, one by one
        assert bus.health()["pending"] == 1
        failure = bus.client.hget(bus.failures_key, bus.client.xpending(stream, bus.group)["min"])
        assert failure is not None and b"ValueError" in failure
        for _ in range(10):
            time.sleep(0.07)
            consumer.reclaim()
            if bus.health()["dead_letters"]:
                break
        assert attempts == 3  # delivered max_deliveries times, then dead-lettered
        [dead] = dead_entries(bus)
        reason = dead[b"reason"].decode()
        assert "delivered 4 times (max 3)" in reason
        assert f"last error: ValueError: cannot apply {poison.event_id}" in reason
        assert EventRecord.from_json(dead[b"e"]) == poison
        assert dead[b"group"] == b"projector"
        health = bus.health()
        assert (health["pending"], health["dead_letters"]) == (0, 1)
        assert bus.client.hlen(bus.failures_key) == 0
        assert consumer.dead_lettered == 1
        rest = [e for e in events if e is not poison]
        assert_exactly_once(pg, rest, reference(rest))
        # the dead-lettered event was released: a corrected resend may be claimed again
        assert bus.claim([poison.event_id]) == {poison.event_id}
    finally:
        bus.close()


# --- 5. a message that is not JSON ---------------------------------------------------------


@pytest.mark.postgres
def test_undecodable_messages_are_dead_lettered_without_stopping_the_consumer(
    redis_url: str, stream: str, pg: Engine, flows: FlowBook, figures: TowerFigures,
    reference: Callable[..., Dump],
) -> None:
    events = make_events(flows, 4, seed=5)
    bus = RedisStreamBus(redis_url, stream=stream)
    consumer = bus.consumer(Projector(pg, flows, figures).apply, name="c", batch_size=1000)
    try:
        bus.publish(events[:30])
        bus.client.xadd(stream, {b"e": b"{not json"})
        bus.client.xadd(stream, {b"e": b'["a", "list"]'})
        bus.client.xadd(stream, {b"other": b"field"})
        bus.client.xadd(stream, {b"e": b"\xff\xfe"})
        bus.publish(events[30:-10])
        thread = threading.Thread(target=consumer.run, daemon=True)
        thread.start()
        wait_for(lambda: event_count(pg) == len(events) - 10, 15, "the valid events")
        wait_for(lambda: bus.health()["dead_letters"] == 4, 5, "four dead letters")
        assert thread.is_alive()
        bus.publish(events[-10:])  # still consuming after the bad messages
        wait_for(lambda: event_count(pg) == len(events), 15, "later events")
    finally:
        consumer.stop()
        thread.join(timeout=5)
        bus.close()
    assert not thread.is_alive()
    dead = dead_entries(bus)
    assert [d.get(b"e") for d in dead] == [b"{not json", b'["a", "list"]', None, b"\xff\xfe"]
    assert all(d[b"reason"].startswith(b"message does not decode as an event") for d in dead)
    assert bus.health()["pending"] == 0
    assert consumer.dead_lettered == 4
    assert_exactly_once(pg, events, reference(events))


# --- 6. claims, health, unreachable Redis -------------------------------------------------


def test_claim_and_release_dedupe_in_flight(redis_url: str, stream: str) -> None:
    bus = RedisStreamBus(redis_url, stream=stream, seen_ttl_s=60)
    other = RedisStreamBus(redis_url, stream=stream)  # e.g. a second web process
    try:
        assert bus.claim(["a", "b"]) == {"a", "b"}
        assert other.claim(["b", "c", "c"]) == {"c"}
        assert bus.claim([]) == set()
        bus.release(["b"])
        bus.release([])
        assert other.claim(["a", "b"]) == {"b"}
        assert 0 < bus.client.ttl(bus.seen_key("a")) <= 60  # a crashed publisher's claim expires
    finally:
        bus.close()
        other.close()


def test_claims_are_released_once_applied(redis_url: str, stream: str, flows: FlowBook) -> None:
    events = make_events(flows, 1)
    bus = RedisStreamBus(redis_url, stream=stream)
    seen: list[str] = []
    consumer = bus.consumer(lambda batch: seen.extend(e.event_id for e in batch), name="c")
    try:
        ids = [e.event_id for e in events]
        assert bus.claim(ids) == set(ids)
        bus.publish(events)
        assert bus.claim(ids) == set()  # in flight
        drain(consumer)
        assert seen == ids
        assert bus.claim(ids) == set(ids)  # applied: from now on the event log answers duplicates
    finally:
        bus.close()


def test_health_reports_length_pending_and_dead_letters(redis_url: str, stream: str,
                                                        flows: FlowBook) -> None:
    bus = RedisStreamBus(redis_url, stream=stream)
    try:
        health = bus.health()
        assert health["ok"] is True
        assert (health["stream_length"], health["pending"], health["dead_letters"]) == (0, 0, 0)
        bus.publish(make_events(flows, 1)[:10])
        bus.ensure_group()
        assert bus.health()["lag"] == 10
        bus.client.xreadgroup(bus.group, "slow", {stream: ">"}, count=4)  # delivered, not acked
        bus.client.xadd(stream, {b"e": b"garbage"})
        health = bus.health()
        assert (health["stream_length"], health["pending"], health["consumers"]) == (11, 4, 1)
        bus.consumer(lambda batch: None, name="c").step(block_ms=0)
        health = bus.health()
        assert (health["stream_length"], health["pending"], health["dead_letters"]) == (11, 4, 1)
        assert health["lag"] == 0
    finally:
        bus.close()


def test_unreachable_redis(flows: FlowBook) -> None:
    bus = RedisStreamBus("redis://127.0.0.1:1/0", stream="nowhere")
    started = time.monotonic()
    try:
        health = bus.health()
        assert health["ok"] is False and health["kind"] == "redis-streams"
        assert "error" in health
        with pytest.raises(BusError, match="redis"):
            bus.publish(make_events(flows, 1)[:2])
        with pytest.raises(BusError):
            bus.claim(["a"])
        bus.release(["a"])  # best effort: never raises
        bus.publish([])  # nothing to send, nothing to fail
    finally:
        bus.close()
    assert time.monotonic() - started < 10


# --- 7. `tower worker` --------------------------------------------------------------------


@pytest.mark.postgres
def test_tower_worker_projects_the_stream_and_stops_on_sigterm(
    redis_url: str, stream: str, pg: Engine, pg_url: str, flows: FlowBook,
    reference: Callable[..., Dump], tmp_path: Path,
) -> None:
    events = make_events(flows, 15, seed=7)
    expected = reference(events)
    env = {**os.environ, "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "TOWER_STREAM": stream,
           "TOWER_PROJECTOR_BATCH": "100"}
    tower = Path(sys.executable).parent / "tower"
    worker = Proc([str(tower), "worker", "--name", "e2e"], env=env, cwd=tmp_path,
                  stderr=tmp_path / "worker.err")
    bus = RedisStreamBus(redis_url, stream=stream)
    try:
        bus.publish(events[:100])  # before or after the group exists: both are consumed
        wait_for(lambda: bus.health()["consumers"] == 1, 30, "the worker to join the group")
        bus.publish(events[100:])
        wait_for(lambda: event_count(pg) == len(events), 30, "the worker to apply every event")
        wait_for(lambda: bus.health()["pending"] == 0, 5, "the last ack")
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.proc.wait(timeout=15) == 0, worker._stderr()
    finally:
        worker.kill()
        bus.close()
    assert_exactly_once(pg, events, expected)
    assert "worker e2e consuming" in (tmp_path / "worker.err").read_text()


# --- adapter details: transient failures, restart under the same name, trimming -----------


def test_transient_failure_is_retried_in_place_not_counted(redis_url: str, stream: str,
                                                            flows: FlowBook) -> None:
    events = make_events(flows, 1)[:20]
    bus = RedisStreamBus(redis_url, stream=stream, max_deliveries=1, reclaim_idle_ms=100)
    applied: list[str] = []
    calls = 0

    def apply(batch: Sequence[EventRecord]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 3:
            # the message stays claimed by us and is not counted as redelivered
            [entry] = bus.client.xpending_range(stream, bus.group, min="-", max="+", count=100)[:1]
            assert entry["times_delivered"] == 1
            if calls == 3:
                raise RetryLater("database restarting")
            raise ConnectionError("database unreachable")
        applied.extend(e.event_id for e in batch)

    consumer = bus.consumer(apply, name="c", batch_size=100, max_backoff_s=0.2)
    try:
        bus.publish(events)
        assert consumer.step(block_ms=0) == 20
        assert applied == [e.event_id for e in events]  # one batch, never split
        assert (consumer.retries, consumer.failures, consumer.dead_lettered) == (3, 0, 0)
        assert bus.health()["pending"] == 0
    finally:
        bus.close()


def test_restart_under_the_same_name_takes_back_its_own_pending(redis_url: str, stream: str,
                                                                 flows: FlowBook) -> None:
    events = make_events(flows, 1)[:8]
    bus = RedisStreamBus(redis_url, stream=stream)  # reclaim after 30 s: too late to help
    bus.ensure_group()
    bus.publish(events)
    bus.client.xreadgroup(bus.group, "w1", {stream: ">"}, count=5)  # then w1 died
    seen: list[str] = []
    consumer = bus.consumer(lambda batch: seen.extend(e.event_id for e in batch), name="w1",
                            block_ms=100)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(seen) == 8, 5, "the restarted consumer")
        wait_for(lambda: bus.health()["pending"] == 0, 5, "acks")
    finally:
        consumer.stop()
        thread.join(timeout=5)
        bus.close()
    assert sorted(seen) == sorted(e.event_id for e in events)


def test_consumer_recreates_a_deleted_group(redis_url: str, stream: str, flows: FlowBook) -> None:
    events = make_events(flows, 1)[:6]
    bus = RedisStreamBus(redis_url, stream=stream)
    seen: list[str] = []
    consumer = bus.consumer(lambda batch: seen.extend(e.event_id for e in batch), name="c",
                            block_ms=100)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        bus.publish(events[:3])
        wait_for(lambda: len(seen) == 3, 5, "the first events")
        bus.client.delete(stream)  # e.g. an operator reset the stream
        time.sleep(0.2)
        bus.publish(events[3:])
        wait_for(lambda: len(seen) == 6, 10, "events after the reset")
    finally:
        consumer.stop()
        thread.join(timeout=5)
        bus.close()
    assert seen == [e.event_id for e in events]


def test_trim_acked_keeps_everything_not_yet_acknowledged(redis_url: str, stream: str,
                                                          flows: FlowBook) -> None:
    events = make_events(flows, 1)[:20]
    bus = RedisStreamBus(redis_url, stream=stream)
    try:
        assert bus.trim_acked() == 0  # no stream yet
        bus.publish(events)
        consumer = bus.consumer(lambda batch: None, name="c", batch_size=10)
        assert bus.trim_acked() == 0  # nothing delivered yet
        bus.client.xreadgroup(bus.group, "slow", {stream: ">"}, count=5)  # pending, not acked
        consumer.step(block_ms=0)
        assert bus.trim_acked() == 0  # the oldest entry is still pending
        bus.client.xgroup_create(stream, "other", id="0")  # a second group has read nothing
        slow = [_id for _id, _ in xrange(bus.client, stream, count=5)]
        bus.client.xack(stream, bus.group, *slow)
        assert bus.trim_acked() == 0  # the other group still needs everything
        bus.client.xgroup_destroy(stream, "other")
        consumer.step(block_ms=0)
        assert bus.health()["pending"] == 0
        assert bus.trim_acked() == 19  # all acknowledged: only the last delivered entry stays
        assert bus.health()["stream_length"] == 1
    finally:
        bus.close()


def test_step_never_blocks_forever(redis_url: str, stream: str) -> None:
    bus = RedisStreamBus(redis_url, stream=stream, socket_timeout_s=2)
    consumer = bus.consumer(lambda batch: None, name="c", block_ms=60_000)
    try:
        assert consumer.block_ms == 1_000  # kept under the socket timeout
        started = time.monotonic()
        assert consumer.step(block_ms=0) == 0  # 0 = do not wait (Redis's BLOCK 0 is forever)
        assert consumer.step(block_ms=50) == 0
        assert time.monotonic() - started < 1
    finally:
        bus.close()


def test_messages_are_plain_event_json(redis_url: str, stream: str, flows: FlowBook) -> None:
    events = make_events(flows, 1)[:3]
    bus = RedisStreamBus(redis_url, stream=stream)
    try:
        bus.publish(events)
        raw = [fields[b"e"] for _, fields in xrange(redis.Redis.from_url(redis_url), stream)]
    finally:
        bus.close()
    assert [EventRecord.from_json(r) for r in raw] == events
    assert json.loads(raw[0])["event_id"] == events[0].event_id


def test_consumer_started_while_redis_is_down_does_not_crash() -> None:
    bus = RedisStreamBus("redis://127.0.0.1:1/0", stream="nowhere")
    consumer = bus.consumer(lambda batch: None, name="c", block_ms=50)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()  # waits for Redis instead of dying
    consumer.stop()
    thread.join(timeout=5)
    bus.close()
    assert not thread.is_alive()
