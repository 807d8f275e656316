"""The outbox and its dispatcher on SQLite and PostgreSQL, against a real HTTP receiver.

Exactly-once by event_id across a worker killed mid-send, retries with backoff, dead
letters, fan-out by topic, and (PostgreSQL) two workers never sending the same row.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, text

from tests.test_notify_webhook import SECRET, Receiver
from tower.clock import Clock, SystemClock
from tower.notify.channels import Channel, LogChannel, Message, WebhookChannel
from tower.notify.config import ChannelConfig, NotifyConfig
from tower.notify.dispatcher import DELIVERIES, OUTBOX, Dispatcher, backoff_s, status_counts
from tower.notify.outbox import enqueue
from tower.store.engine import make_engine

T0 = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.at = start

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM notification_deliveries"))
        conn.execute(text("DELETE FROM outbox"))


@pytest.fixture
def store(db_url: str) -> Iterator[Engine]:
    """A store with an empty outbox, on SQLite and on PostgreSQL."""
    eng = make_engine(db_url)
    _clear(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _hook_config(url: str, **policy: object) -> NotifyConfig:
    hook = ChannelConfig.model_validate({"name": "hook", "kind": "webhook", "url": url,
                                         "secret_env": "HOOK_SECRET", **policy})
    return NotifyConfig(channels=(hook,))


def _hook_dispatcher(engine: Engine, url: str, clock: Clock, **policy: object) -> Dispatcher:
    config = _hook_config(url, **policy)
    return Dispatcher(engine, config, clock, channels={"hook": WebhookChannel("hook", url, SECRET)})


def _enqueue(engine: Engine, n: int, *, topic: str = "exception.opened", prefix: str = "x") -> list[str]:
    with engine.begin() as conn:
        for i in range(n):
            enqueue(conn, topic=topic, payload={"exception_id": f"{prefix}-{i}"}, at=T0,
                    dedupe_key=f"{prefix}:{i}")
    with engine.connect() as conn:
        return sorted(conn.execute(select(OUTBOX.c.event_id)).scalars())


def _deliveries(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(DELIVERIES).order_by(DELIVERIES.c.id))
        return [dict(r._mapping) for r in rows]


def _drain(dispatcher: Dispatcher) -> None:
    dispatcher.route_all()
    while dispatcher.send_due().attempted:
        pass


# --- the outbox itself ---------------------------------------------------------------


def test_enqueue_rolls_back_with_its_cause(store: Engine, receiver: Receiver) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.begin() as conn:
        enqueue(conn, topic="exception.opened", payload={"n": 1}, at=T0)
        raise Boom
    _drain(_hook_dispatcher(store, receiver.url, FakeClock()))
    assert receiver.requests == [] and _deliveries(store) == []


def test_dedupe_key_is_once_only(store: Engine) -> None:
    with store.begin() as conn:
        assert enqueue(conn, topic="customer.milestone", payload={}, at=T0,
                       dedupe_key="milestone:O-1:shipped")
        assert not enqueue(conn, topic="customer.milestone", payload={}, at=T0,
                           dedupe_key="milestone:O-1:shipped")
    with store.connect() as conn:
        assert len(conn.execute(select(OUTBOX.c.id)).all()) == 1


def test_route_fans_out_by_topic_and_is_idempotent(store: Engine) -> None:
    config = NotifyConfig(channels=(
        ChannelConfig(name="log", kind="log"),
        ChannelConfig(name="ops", kind="log", topics=("exception.*",)),
        ChannelConfig(name="customers", kind="log", topics=("customer.*",)),
    ))
    dispatcher = Dispatcher(store, config, FakeClock(), channels={
        name: LogChannel(name) for name in ("log", "ops", "customers")})
    _enqueue(store, 2, topic="exception.opened", prefix="e")
    _enqueue(store, 3, topic="customer.milestone", prefix="m")
    assert dispatcher.route_all() == 5
    assert dispatcher.route_all() == 0
    with store.begin() as conn:  # a second routing of the same rows changes nothing
        conn.execute(OUTBOX.update().values(routed=False))
    assert dispatcher.route_all() == 5
    by_channel: dict[object, int] = {}
    for d in _deliveries(store):
        by_channel[d["channel"]] = by_channel.get(d["channel"], 0) + 1
    assert by_channel == {"log": 5, "ops": 2, "customers": 3}
    assert dispatcher.send_due().sent == 10
    assert status_counts(store) == {"sent": 10}


# --- retries, backoff, dead letters ---------------------------------------------------


def test_retries_with_backoff_then_sent(store: Engine, receiver: Receiver) -> None:
    clock = FakeClock()
    dispatcher = _hook_dispatcher(store, receiver.url, clock, backoff_base_s=10, backoff_cap_s=100,
                                  jitter=0.2)
    [event_id] = _enqueue(store, 1)
    receiver.plan[event_id] = [500, 503]
    dispatcher.route_all()

    delays = []
    for attempt in (1, 2):
        report = dispatcher.send_due()
        assert (report.sent, report.retried, report.dead) == (0, 1, 0)
        [d] = _deliveries(store)
        assert d["status"] == "pending" and d["attempts"] == attempt
        assert str(d["last_error"]).startswith("HTTP 5")
        delay = (d["next_attempt_at"] - clock.now()).total_seconds()  # type: ignore[operator]
        expected = backoff_s(dispatcher.config.channels[0], delivery_id=int(d["id"]),  # type: ignore[call-overload]
                             attempt=attempt)
        assert delay == pytest.approx(expected, abs=1e-3)
        assert 10 * 2 ** (attempt - 1) * 0.8 <= delay <= 10 * 2 ** (attempt - 1)
        delays.append(delay)
        assert dispatcher.send_due().attempted == 0  # not due yet
        clock.advance(delay)
    assert delays[1] > delays[0]

    assert dispatcher.send_due().sent == 1
    [d] = _deliveries(store)
    assert d["status"] == "sent" and d["attempts"] == 3 and d["last_error"] is None
    assert d["sent_at"] == clock.now()
    assert receiver.event_ids() == [event_id] * 3
    assert [r.headers["X-Tower-Attempt"] for r in receiver.requests] == ["1", "2", "3"]


def test_dead_after_the_last_attempt(store: Engine, receiver: Receiver) -> None:
    clock = FakeClock()
    dispatcher = _hook_dispatcher(store, receiver.url, clock, max_attempts=3, backoff_base_s=1,
                                  backoff_cap_s=2)
    receiver.default = 503
    [event_id] = _enqueue(store, 1)
    dispatcher.route_all()
    outcomes = []
    for _ in range(5):
        report = dispatcher.send_due()
        outcomes.append((report.retried, report.dead))
        clock.advance(10)
    assert outcomes == [(1, 0), (1, 0), (0, 1), (0, 0), (0, 0)]
    [d] = _deliveries(store)
    assert d["status"] == "dead" and d["attempts"] == 3 and d["last_error"] == "HTTP 503: nope"
    [letter] = dispatcher.dead_letters()
    assert letter["event_id"] == event_id and letter["channel"] == "hook"
    assert len(receiver.requests) == 3


def test_4xx_is_dead_at_once(store: Engine, receiver: Receiver) -> None:
    dispatcher = _hook_dispatcher(store, receiver.url, FakeClock())
    receiver.default = 400
    _enqueue(store, 1)
    dispatcher.route_all()
    assert dispatcher.send_due().dead == 1
    [d] = _deliveries(store)
    assert d["status"] == "dead" and d["attempts"] == 1


def test_a_receiver_down_costs_one_try_per_round(store: Engine, receiver: Receiver) -> None:
    dispatcher = _hook_dispatcher(store, receiver.url, FakeClock())
    receiver.default = 503
    _enqueue(store, 5)
    dispatcher.route_all()
    assert dispatcher.send_due().retried == 1
    assert sorted(int(d["attempts"]) for d in _deliveries(store)) == [0, 0, 0, 0, 1]  # type: ignore[call-overload]


def test_retry_after_lengthens_the_backoff() -> None:
    policy = ChannelConfig(name="h", kind="webhook", url="http://x/", secret_env="S", backoff_base_s=1,
                           backoff_cap_s=60, jitter=0)
    assert backoff_s(policy, delivery_id=1, attempt=1) == 1
    assert backoff_s(policy, delivery_id=1, attempt=3) == 4
    assert backoff_s(policy, delivery_id=1, attempt=30) == 60
    assert backoff_s(policy, delivery_id=1, attempt=1, after_s=30) == 30
    assert backoff_s(policy, delivery_id=1, attempt=1, after_s=3600) == 60


def test_jitter_is_deterministic_and_spread() -> None:
    policy = ChannelConfig(name="h", kind="log", backoff_base_s=100, backoff_cap_s=1000, jitter=0.5)
    delays = [backoff_s(policy, delivery_id=i, attempt=1) for i in range(200)]
    assert delays == [backoff_s(policy, delivery_id=i, attempt=1) for i in range(200)]
    assert all(50 <= d <= 100 for d in delays)
    assert max(delays) - min(delays) > 40


# --- exactly once across a worker that dies -------------------------------------------


class Killed(BaseException):
    """What a kill -9 looks like to the transaction: it never commits."""


class DiesAfterSending:
    """Sends through ``inner``, and dies right after the receiver took message ``die_at``."""

    def __init__(self, inner: Channel, die_at: int) -> None:
        self.inner = inner
        self.die_at = die_at
        self.sent = 0

    @property
    def name(self) -> str:
        return self.inner.name

    def send(self, message: Message) -> None:
        self.inner.send(message)
        self.sent += 1
        if self.sent == self.die_at:
            raise Killed


def test_exactly_once_by_event_id_across_a_restart(db_url: str, store: Engine, receiver: Receiver) -> None:
    expected = _enqueue(store, 30)
    config = _hook_config(receiver.url)
    hook = WebhookChannel("hook", receiver.url, SECRET)

    # Worker 1 sends 12, then dies between the 13th answer and its commit.
    first = Dispatcher(store, config, SystemClock(), channels={"hook": DiesAfterSending(hook, 13)})
    first.route_all()
    with pytest.raises(Killed):
        first.send_due()
    assert status_counts(store) == {"sent": 12, "pending": 18}

    # Worker 2: a fresh process over the same database.
    fresh = make_engine(db_url)
    try:
        _drain(Dispatcher(fresh, config, SystemClock(), channels={"hook": hook}))
    finally:
        fresh.dispose()

    counts = receiver.counts()
    assert sorted(counts) == expected                   # none lost
    assert sum(counts.values()) == len(expected) + 1    # one resend: the one in flight
    [(again, n)] = [(e, n) for e, n in counts.items() if n > 1]
    assert n == 2 and receiver.event_ids()[12] == again == receiver.event_ids()[13]
    assert status_counts(store) == {"sent": 30}
    assert all(d["attempts"] == 1 for d in _deliveries(store))


WORKER = textwrap.dedent("""
    import sys, time
    from tower.clock import Clock, SystemClock
    from tower.notify.channels import WebhookChannel
    from tower.notify.config import ChannelConfig, NotifyConfig
    from tower.notify.dispatcher import Dispatcher
    from tower.store.engine import make_engine

    db, url = sys.argv[1], sys.argv[2]
    hook = ChannelConfig(name="hook", kind="webhook", url=url, secret_env="S")
    dispatcher = Dispatcher(make_engine(db), NotifyConfig(channels=(hook,)), SystemClock(),
                            channels={"hook": WebhookChannel("hook", url, b"k")})
    print("ready", flush=True)
    while True:
        dispatcher.run_once()
        time.sleep(0.01)
""")


def test_worker_killed_mid_send_loses_nothing(db_url: str, store: Engine, receiver: Receiver) -> None:
    expected = _enqueue(store, 40)
    receiver.delay_s = 0.03  # keeps the worker busy long enough to kill it mid-way
    worker = subprocess.Popen([sys.executable, "-c", WORKER, db_url, receiver.url], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(receiver.event_ids()) < 15:
            assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
            assert time.monotonic() < deadline, "the worker sent nothing"
            time.sleep(0.01)
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
    killed_at = len(receiver.event_ids())
    assert killed_at < len(expected)

    receiver.delay_s = 0
    _drain(_hook_dispatcher(store, receiver.url, SystemClock()))

    counts = receiver.counts()
    assert sorted(counts) == expected                        # none lost
    assert sum(counts.values()) - len(expected) <= 1         # at most the one in flight again
    assert status_counts(store) == {"sent": 40}


def test_two_workers_never_send_the_same_delivery(pg_url: str, receiver: Receiver) -> None:
    engines = [make_engine(pg_url) for _ in range(2)]
    try:
        _clear(engines[0])
        expected = _enqueue(engines[0], 60)
        receiver.delay_s = 0.005
        dispatchers = [_hook_dispatcher(e, receiver.url, SystemClock()) for e in engines]
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def work(d: Dispatcher) -> None:
            try:
                barrier.wait()
                _drain(d)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(d,)) for d in dispatchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors
        counts = receiver.counts()
        assert sorted(counts) == expected and set(counts.values()) == {1}
        assert len(_deliveries(engines[0])) == 60
    finally:
        for e in engines:
            e.dispose()
