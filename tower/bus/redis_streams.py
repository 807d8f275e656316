"""Redis Streams adapter: XADD in pipelines, consumer groups, ack after commit.

Delivery contract (at least once, applied exactly once thanks to the projector's
``event_id`` dedupe):

* A message is acknowledged only after the handler returned, i.e. after the database
  transaction committed. A consumer that dies in between leaves the message in the
  group's pending list; another consumer takes it over with ``XAUTOCLAIM`` once it
  has been idle for ``reclaim_idle_ms`` and applies it again (a no-op for what was
  already committed). A consumer restarted under the same name first takes back its
  own pending messages.
* A batch that fails is retried one message at a time; a message that still fails
  stays pending (its error is noted in ``<stream>:failures``) and is redelivered by a
  reclaim. Once it has been delivered more than ``max_deliveries`` times it is copied
  to the dead-letter stream ``<stream>:dead`` with the reason and acknowledged, so one
  poison message never blocks the group. A message that does not decode as an event
  is dead-lettered at once.
* A *transient* failure (the database is down or locked; see
  :func:`tower.bus.base.is_transient`) is not the message's fault: the consumer keeps
  its batch, keeps it claimed (``XCLAIM ... JUSTID`` does not count as a delivery) and
  retries in place with back-off, so an outage never floods the dead-letter stream.
* The in-flight claims taken by the ingest (``claim``) are released once the event is
  applied or dead-lettered; from then on the event log answers "duplicate".
* Consumers periodically trim entries that every consumer group has acknowledged
  (:meth:`RedisStreamBus.trim_acked`), so the stream does not grow without bound.
  ``maxlen`` is a hard cap on top of that: it may drop events not yet consumed, so
  leave it unset unless losing a backlog is acceptable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

from tower.bus.base import BusError, Handler, is_transient
from tower.events import EventRecord

log = logging.getLogger(__name__)

FIELD = b"e"
#: A raw stream message as redis-py returns it: (id, {field: value}).
Message = tuple[Any, dict[bytes, bytes]]


def _decode_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_key(message_id: str) -> tuple[int, int]:
    ms, _, seq = message_id.partition("-")
    return int(ms), int(seq or 0)


def _messages(reply: Any) -> list[Message]:
    """The messages of an XREADGROUP reply on one stream (RESP2 or RESP3)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values()))[0])
    return list(reply[0][1])


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


class RedisStreamBus:
    """Publisher side and factory of consumers for one stream."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = "tower:events",
        group: str = "projector",
        max_deliveries: int = 5,
        reclaim_idle_ms: int = 30_000,
        seen_ttl_s: int = 86_400,
        maxlen: int | None = None,
        socket_timeout_s: float = 10.0,
    ) -> None:
        self.socket_timeout_s = socket_timeout_s
        self.client: redis.Redis = redis.Redis.from_url(
            url, socket_timeout=socket_timeout_s, socket_connect_timeout=5
        )
        self.stream = stream
        self.group = group
        self.dead_stream = f"{stream}:dead"
        self.failures_key = f"{stream}:failures"
        self.max_deliveries = max_deliveries
        self.reclaim_idle_ms = reclaim_idle_ms
        self.seen_ttl_s = seen_ttl_s
        self.maxlen = maxlen

    def ensure_group(self) -> None:
        """Create the consumer group (from the stream's start) if it does not exist."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- producer side -------------------------------------------------------------

    def seen_key(self, event_id: str) -> str:
        return f"{self.stream}:seen:{event_id}"

    def claim(self, event_ids: Sequence[str]) -> set[str]:
        ids = list(event_ids)
        if not ids:
            return set()
        try:
            pipe = self.client.pipeline(transaction=False)
            for i in ids:
                pipe.set(self.seen_key(i), b"1", nx=True, ex=self.seen_ttl_s)
            answers = pipe.execute()
        except redis.RedisError as exc:
            raise BusError(f"redis: {exc}") from exc
        return {i for i, ok in zip(ids, answers, strict=True) if ok}

    def release(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            try:
                self.client.delete(*[self.seen_key(i) for i in event_ids])
            except redis.RedisError:
                log.warning("could not release %d in-flight claims", len(event_ids))

    def publish(self, events: Sequence[EventRecord]) -> None:
        if not events:
            return
        try:
            pipe = self.client.pipeline(transaction=False)
            for e in events:
                pipe.xadd(self.stream, {FIELD: e.to_json()}, maxlen=self.maxlen, approximate=True)
            pipe.execute()
        except redis.RedisError as exc:
            raise BusError(f"redis: {exc}") from exc

    def health(self) -> dict[str, Any]:
        """Stream length, pending messages, consumers, lag and dead letters; never raises."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xlen(self.stream)
            pipe.xlen(self.dead_stream)
            length, dead = pipe.execute()
            pending = consumers = 0
            lag: int | None = None
            with contextlib.suppress(redis.ResponseError):  # no stream yet
                for g in self.client.xinfo_groups(self.stream):
                    if _decode_id(g["name"]) == self.group:
                        pending = int(g["pending"])
                        consumers = int(g["consumers"])
                        lag = None if g.get("lag") is None else int(g["lag"])
            return {"kind": "redis-streams", "ok": True, "stream": self.stream, "group": self.group,
                    "stream_length": int(length), "pending": pending, "consumers": consumers,
                    "lag": lag, "dead_letters": int(dead)}
        except redis.RedisError as exc:
            return {"kind": "redis-streams", "ok": False, "stream": self.stream, "error": str(exc)}

    def trim_acked(self) -> int:
        """Drop entries every consumer group has acknowledged. Returns entries removed."""
        try:
            groups = self.client.xinfo_groups(self.stream)
        except redis.ResponseError:  # the stream does not exist
            return 0
        bound: str | None = None
        for g in groups:
            keep_from = _decode_id(g["last-delivered-id"])
            if int(g["pending"]) > 0:
                first = self.client.xpending(self.stream, _decode_id(g["name"]))["min"]
                if first is not None:
                    keep_from = min(keep_from, _decode_id(first), key=_id_key)
            bound = keep_from if bound is None else min(bound, keep_from, key=_id_key)
        if bound is None or _id_key(bound) == (0, 0):
            return 0
        # MINID removes entries strictly below the bound: the oldest one still needed stays.
        return int(self.client.xtrim(self.stream, minid=bound, approximate=False))

    def close(self) -> None:
        self.client.close()

    def consumer(
        self,
        handler: Handler,
        *,
        name: str | None = None,
        batch_size: int = 2_000,
        block_ms: int = 1_000,
        transient: Callable[[BaseException], bool] = is_transient,
        trim_interval_s: float = 60.0,
        max_backoff_s: float = 30.0,
    ) -> StreamConsumer:
        return StreamConsumer(self, handler, name=name or default_consumer_name(),
                              batch_size=batch_size, block_ms=block_ms, transient=transient,
                              trim_interval_s=trim_interval_s, max_backoff_s=max_backoff_s)


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 100_000}"


class StreamConsumer:
    """One member of the consumer group: read, apply, ack; reclaim and dead-letter."""

    def __init__(
        self,
        bus: RedisStreamBus,
        handler: Handler,
        *,
        name: str,
        batch_size: int,
        block_ms: int,
        transient: Callable[[BaseException], bool] = is_transient,
        trim_interval_s: float = 60.0,
        max_backoff_s: float = 30.0,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.bus = bus
        self.handler = handler
        self.name = name
        self.batch_size = batch_size
        # A blocking read must end before the socket times out.
        self.block_ms = max(0, min(block_ms, int(bus.socket_timeout_s * 1000) - 1_000))
        self.transient = transient
        self.trim_interval_s = trim_interval_s
        self.max_backoff_s = max_backoff_s
        self.applied = 0
        self.dead_lettered = 0
        self.failures = 0
        self.retries = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        try:
            bus.ensure_group()
        except redis.ConnectionError as exc:  # run() creates it once Redis answers (NOGROUP)
            log.warning("redis unavailable (%s); the consumer group will be created later", exc)

    @property
    def client(self) -> redis.Redis:
        return self.bus.client

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Consume until :meth:`stop`: own leftovers first, then new messages, reclaiming
        stale ones from dead consumers and trimming acknowledged entries as it goes."""
        recovered = False
        reclaim_every = max(0.05, min(self.bus.reclaim_idle_ms / 4_000, 5.0))
        next_reclaim = 0.0
        next_trim = time.monotonic() + self.trim_interval_s
        while not self._stop.is_set():
            try:
                if not recovered:
                    self.recover()
                    recovered = True
                if time.monotonic() >= next_reclaim:
                    self.reclaim()
                    next_reclaim = time.monotonic() + reclaim_every
                self.step()
                if self.trim_interval_s > 0 and time.monotonic() >= next_trim:
                    next_trim = time.monotonic() + self.trim_interval_s
                    trimmed = self.bus.trim_acked()
                    if trimmed:
                        log.debug("trimmed %d acknowledged entries from %s", trimmed, self.bus.stream)
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc) or "UNBLOCKED" in str(exc):
                    # The stream or the group was deleted under us: start over.
                    log.warning("consumer group %s is gone; recreating it", self.bus.group)
                    with contextlib.suppress(redis.RedisError):
                        self.bus.ensure_group()
                        continue
                log.warning("redis error (%s); retrying", exc)
                self._stop.wait(1.0)
            except redis.RedisError as exc:
                log.warning("redis unavailable (%s); retrying", exc)
                self._stop.wait(1.0)
            except Exception:  # a bug must not turn into a crash loop that loses the worker
                log.exception("consumer %s failed; retrying", self.name)
                self._stop.wait(1.0)

    def step(self, block_ms: int | None = None) -> int:
        """Read one batch of new messages, apply it and ack it. Returns messages read.

        ``block_ms`` 0 means "do not wait" (not Redis's "wait forever").
        """
        block = self.block_ms if block_ms is None else block_ms
        reply = self.client.xreadgroup(
            self.bus.group, self.name, {self.bus.stream: ">"},
            count=self.batch_size, block=block or None,
        )
        messages = _messages(reply)
        if not messages:
            return 0
        self._handle(messages)
        return len(messages)

    def recover(self) -> int:
        """Handle this consumer's own pending messages (left by an earlier life under the
        same name). Returns messages seen."""
        start = "0"
        seen = 0
        while not self._stop.is_set():
            reply = self.client.xreadgroup(
                self.bus.group, self.name, {self.bus.stream: start}, count=self.batch_size,
            )
            messages = _messages(reply)
            if not messages:
                break
            seen += len(messages)
            start = _decode_id(messages[-1][0])
            self._handle(messages, redelivered=True)
        return seen

    def reclaim(self, min_idle_ms: int | None = None) -> int:
        """Take over messages idle in any consumer's pending list; apply or dead-letter them."""
        idle = self.bus.reclaim_idle_ms if min_idle_ms is None else min_idle_ms
        start = "0-0"
        taken = 0
        while True:
            reply = self.client.xautoclaim(
                self.bus.stream, self.bus.group, self.name, idle, start_id=start,
                count=self.batch_size,
            )
            start = _decode_id(reply[0])
            if len(reply) > 2 and reply[2]:
                # Redis 7 drops entries deleted from the stream from the pending list itself.
                log.error("%d pending message(s) of %s were deleted before being applied",
                          len(reply[2]), self.bus.stream)
            messages = [m for m in reply[1] if m[0] is not None]
            if messages:
                taken += len(messages)
                self._handle(messages, redelivered=True)
            if start == "0-0" or self._stop.is_set():
                return taken

    # --- handling ------------------------------------------------------------------

    def _pending_state(self, ids: Sequence[str]) -> tuple[dict[str, int], dict[str, str]]:
        """Delivery counts of the ids this consumer owns, and their noted last errors."""
        pipe = self.client.pipeline(transaction=False)
        for i in ids:
            pipe.xpending_range(self.bus.stream, self.bus.group, min=i, max=i, count=1)
        pipe.hmget(self.bus.failures_key, list(ids))
        *entries, errors = pipe.execute()
        counts: dict[str, int] = {}
        for i, found in zip(ids, entries, strict=True):
            if found and _decode_id(found[0]["consumer"]) == self.name:
                counts[i] = int(found[0]["times_delivered"])
        notes = {i: _decode_id(e) for i, e in zip(ids, errors, strict=True) if e is not None}
        return counts, notes

    def _handle(self, messages: Sequence[Message], *, redelivered: bool = False) -> None:
        batch = [(_decode_id(m[0]), m[1]) for m in messages]
        gone = [i for i, fields in batch if not fields]
        if gone:  # deleted from the stream while pending: nothing left to apply
            log.error("%d pending message(s) were deleted before being applied", len(gone))
            self.client.xack(self.bus.stream, self.bus.group, *gone)
            batch = [(i, fields) for i, fields in batch if fields]
        if redelivered and batch:
            counts, notes = self._pending_state([i for i, _ in batch])
            # Not ours any more (acked or taken over meanwhile): its new owner handles it.
            batch = [(i, f) for i, f in batch if i in counts]
            poison = [(i, f, f"delivered {counts[i]} times (max {self.bus.max_deliveries})"
                             + (f"; last error: {notes[i]}" if i in notes else ""))
                      for i, f in batch if counts[i] > self.bus.max_deliveries]
            if poison:
                self._dead_letter(poison)
                bad = {i for i, _, _ in poison}
                batch = [(i, f) for i, f in batch if i not in bad]
        ids: list[str] = []
        records: list[EventRecord] = []
        undecodable: list[tuple[str, dict[bytes, bytes], str]] = []
        for i, fields in batch:
            try:
                records.append(EventRecord.from_json(fields[FIELD]))
            except Exception as exc:
                undecodable.append((i, fields, f"message does not decode as an event: {_describe(exc)}"))
            else:
                ids.append(i)
        if undecodable:
            self._dead_letter(undecodable)
        if records:
            self._process(ids, records)

    def _process(self, ids: Sequence[str], records: Sequence[EventRecord]) -> None:
        error = self._apply(ids, records)
        if error is None:
            self._ack(ids, records)
            return
        self.failures += 1
        self.last_error = _describe(error)
        if len(records) == 1 or self._stop.is_set():
            self._note_failures(ids, error)
            return
        log.error("batch of %d failed (%s); trying messages one by one", len(records), self.last_error)
        for i, record in zip(ids, records, strict=True):
            if self._stop.is_set():  # the rest stays pending and is reclaimed
                return
            error = self._apply([i], [record])
            if error is None:
                self._ack([i], [record])
            else:
                # Left pending: reclaimed later and dead-lettered after max_deliveries.
                log.error("event %s failed; left pending: %s", record.event_id, _describe(error))
                self._note_failures([i], error)

    def _apply(self, ids: Sequence[str], records: Sequence[EventRecord]) -> Exception | None:
        """Run the handler; retry transient failures in place. The lasting error, or None."""
        delay = 0.1
        while True:
            try:
                self.handler(records)
                return None
            except Exception as exc:
                if not self.transient(exc) or self._stop.is_set():
                    return exc
                self.retries += 1
                self.last_error = _describe(exc)
                log.warning("store unavailable (%s); retrying %d message(s) in %.1f s",
                            self.last_error, len(records), delay)
                self._keep_claimed(ids)
                if self._stop.wait(delay):
                    return exc
                delay = min(delay * 2, self.max_backoff_s)

    def _keep_claimed(self, ids: Sequence[str]) -> None:
        # Resets the idle time without counting a delivery, so no one reclaims a batch
        # that is only waiting for the database to come back.
        try:
            self.client.xclaim(self.bus.stream, self.bus.group, self.name, 0, list(ids), justid=True)
        except redis.RedisError as exc:
            log.warning("could not keep %d message(s) claimed: %s", len(ids), exc)

    def _note_failures(self, ids: Sequence[str], error: Exception) -> None:
        try:
            self.client.hset(self.bus.failures_key, mapping=dict.fromkeys(ids, _describe(error)))
        except redis.RedisError as exc:
            log.warning("could not note the failure of %d message(s): %s", len(ids), exc)

    def _ack(self, ids: Sequence[str], records: Sequence[EventRecord]) -> None:
        if not ids:
            return
        pipe = self.client.pipeline(transaction=False)
        pipe.xack(self.bus.stream, self.bus.group, *ids)
        pipe.hdel(self.bus.failures_key, *ids)
        pipe.delete(*{self.bus.seen_key(r.event_id) for r in records})
        pipe.execute()
        self.applied += len(ids)

    def _dead_letter(self, items: Sequence[tuple[str, dict[bytes, bytes], str]]) -> None:
        pipe = self.client.pipeline(transaction=True)
        for message_id, fields, reason in items:
            entry: dict[Any, Any] = dict(fields)
            entry[b"reason"] = reason.encode()
            entry[b"message_id"] = message_id.encode()
            entry[b"group"] = self.bus.group.encode()
            entry[b"consumer"] = self.name.encode()
            pipe.xadd(self.bus.dead_stream, entry)
            pipe.xack(self.bus.stream, self.bus.group, message_id)
            pipe.hdel(self.bus.failures_key, message_id)
            with contextlib.suppress(Exception):  # let a corrected event be sent again
                pipe.delete(self.bus.seen_key(EventRecord.from_json(fields[FIELD]).event_id))
        pipe.execute()
        self.dead_lettered += len(items)
        for message_id, _, reason in items:
            log.error("moved message %s to %s: %s", message_id, self.bus.dead_stream, reason)
