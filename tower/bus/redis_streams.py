"""Redis Streams adapter: XADD in pipelines, consumer groups, ack after commit.

A message is acknowledged only after the handler returned, i.e. after the database
transaction committed. Messages left pending by a dead consumer are taken over with
``XAUTOCLAIM`` once idle long enough; a message delivered more than
``max_deliveries`` times is copied to the dead-letter stream and acknowledged, so one
poison message never blocks the group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Sequence
from typing import Any

import redis

from tower.bus.base import BusError, Handler
from tower.events import EventRecord

log = logging.getLogger(__name__)

FIELD = b"e"


def _decode_id(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
    ) -> None:
        self.client: redis.Redis = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
        self.stream = stream
        self.group = group
        self.dead_stream = f"{stream}:dead"
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

    def _seen_key(self, event_id: str) -> str:
        return f"{self.stream}:seen:{event_id}"

    def claim(self, event_ids: Sequence[str]) -> set[str]:
        try:
            pipe = self.client.pipeline(transaction=False)
            for i in event_ids:
                pipe.set(self._seen_key(i), b"1", nx=True, ex=self.seen_ttl_s)
            answers = pipe.execute()
        except redis.RedisError as exc:
            raise BusError(f"redis: {exc}") from exc
        return {i for i, ok in zip(event_ids, answers, strict=True) if ok}

    def release(self, event_ids: Sequence[str]) -> None:
        if event_ids:
            try:
                self.client.delete(*[self._seen_key(i) for i in event_ids])
            except redis.RedisError:
                log.warning("could not release %d in-flight claims", len(event_ids))

    def publish(self, events: Sequence[EventRecord]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for e in events:
                pipe.xadd(
                    self.stream, {FIELD: e.to_json()},
                    maxlen=self.maxlen, approximate=True,
                )
            pipe.execute()
        except redis.RedisError as exc:
            raise BusError(f"redis: {exc}") from exc

    def health(self) -> dict[str, Any]:
        try:
            self.client.ping()
            length = self.client.xlen(self.stream)
            dead = self.client.xlen(self.dead_stream)
            pending = 0
            with contextlib.suppress(redis.ResponseError):
                pending = int(self.client.xpending(self.stream, self.group)["pending"])
            return {"kind": "redis-streams", "ok": True, "stream_length": length,
                    "pending": pending, "dead_letters": dead}
        except redis.RedisError as exc:
            return {"kind": "redis-streams", "ok": False, "error": str(exc)}

    def close(self) -> None:
        self.client.close()

    def consumer(self, handler: Handler, *, name: str | None = None, batch_size: int = 2_000,
                 block_ms: int = 1_000) -> StreamConsumer:
        return StreamConsumer(self, handler, name=name or default_consumer_name(),
                              batch_size=batch_size, block_ms=block_ms)


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident() % 100_000}"


class StreamConsumer:
    """One member of the consumer group: read, apply, ack; reclaim and dead-letter."""

    def __init__(self, bus: RedisStreamBus, handler: Handler, *, name: str,
                 batch_size: int, block_ms: int) -> None:
        self.bus = bus
        self.handler = handler
        self.name = name
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.applied = 0
        self.dead_lettered = 0
        self._stop = threading.Event()
        bus.ensure_group()

    @property
    def client(self) -> redis.Redis:
        return self.bus.client

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume until :meth:`stop`; reclaims stale messages between reads."""
        while not self._stop.is_set():
            try:
                self.reclaim()
                self.step()
            except redis.RedisError as exc:
                log.warning("redis unavailable (%s); retrying", exc)
                self._stop.wait(1.0)

    def step(self, block_ms: int | None = None) -> int:
        """Read one batch of new messages, apply it and ack it. Returns messages read."""
        reply = self.client.xreadgroup(
            self.bus.group, self.name, {self.bus.stream: ">"},
            count=self.batch_size, block=self.block_ms if block_ms is None else block_ms,
        )
        if not reply:
            return 0
        messages: list[Any] = reply[0][1]  # type: ignore[index,assignment]
        self._handle(messages)
        return len(messages)

    def reclaim(self, min_idle_ms: int | None = None) -> int:
        """Take over messages idle in another consumer's pending list; apply or dead-letter them."""
        idle = self.bus.reclaim_idle_ms if min_idle_ms is None else min_idle_ms
        start = "0-0"
        taken = 0
        while True:
            reply = self.client.xautoclaim(
                self.bus.stream, self.bus.group, self.name, idle, start_id=start,
                count=self.batch_size,
            )
            start, messages = _decode_id(reply[0]), reply[1]
            messages = [m for m in messages if m is not None and m[1]]
            if messages:
                taken += len(messages)
                self._handle(messages, reclaimed=True)
            if start == "0-0":
                return taken

    def _delivery_counts(self, ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        for entry in self.client.xpending_range(
            self.bus.stream, self.bus.group, min=ids[0], max=ids[-1], count=len(ids) * 2 + 10,
            consumername=self.name,
        ):
            counts[_decode_id(entry["message_id"])] = int(entry["times_delivered"])
        return counts

    def _handle(self, messages: Sequence[Any], *, reclaimed: bool = False) -> None:
        ids = [_decode_id(m[0]) for m in messages]
        if reclaimed:
            counts = self._delivery_counts(ids)
            poison = [(i, m) for i, m in zip(ids, messages, strict=True)
                      if counts.get(i, 0) > self.bus.max_deliveries]
            if poison:
                self._dead_letter(poison, "delivered too many times")
                bad = {i for i, _ in poison}
                keep = [(i, m) for i, m in zip(ids, messages, strict=True) if i not in bad]
                ids = [i for i, _ in keep]
                messages = [m for _, m in keep]
                if not messages:
                    return
        records: list[EventRecord] = []
        undecodable: list[tuple[str, Any]] = []
        for i, m in zip(ids, messages, strict=True):
            try:
                records.append(EventRecord.from_json(m[1][FIELD]))
            except Exception:
                undecodable.append((i, m))
        if undecodable:
            self._dead_letter(undecodable, "message does not decode as an event")
            ids = [i for i in ids if i not in {u for u, _ in undecodable}]
        try:
            self.handler(records)
        except Exception:
            log.exception("batch of %d failed; trying messages one by one", len(records))
            self._handle_one_by_one(ids, records)
            return
        self._ack(ids)
        self.applied += len(records)

    def _handle_one_by_one(self, ids: Sequence[str], records: Sequence[EventRecord]) -> None:
        for i, record in zip(ids, records, strict=True):
            try:
                self.handler([record])
            except Exception:
                # Left pending: reclaimed later and dead-lettered after max_deliveries.
                log.exception("event %s failed; left pending", record.event_id)
                continue
            self._ack([i])
            self.applied += 1

    def _ack(self, ids: Sequence[str]) -> None:
        if ids:
            self.client.xack(self.bus.stream, self.bus.group, *ids)

    def _dead_letter(self, items: Sequence[tuple[str, Any]], reason: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        for message_id, message in items:
            fields = dict(message[1])
            fields[b"reason"] = reason.encode()
            fields[b"message_id"] = message_id.encode()
            pipe.xadd(self.bus.dead_stream, fields)
            pipe.xack(self.bus.stream, self.bus.group, message_id)
        pipe.execute()
        self.dead_lettered += len(items)
        log.error("moved %d message(s) to %s: %s", len(items), self.bus.dead_stream, reason)
