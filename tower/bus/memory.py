"""In-process bus for the embedded mode: a queue drained by one projector thread."""

from __future__ import annotations

import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from tower.bus.base import BusError, Handler, is_transient
from tower.events import EventRecord

log = logging.getLogger(__name__)


class InProcessBus:
    """A bounded queue and one consumer thread that applies events in batches.

    A batch that fails is retried one event at a time, so one bad event never costs
    the others; an event that still fails is dropped and kept in :attr:`dead` (the
    last ``keep_dead`` of them) with its reason. A *transient* failure (the database
    is locked or unreachable, see :func:`tower.bus.base.is_transient`) is not the
    events' fault: the same batch is retried in place, backing off, until it goes
    through or the bus is closed.
    """

    def __init__(
        self,
        *,
        batch_size: int = 2_000,
        max_queued: int = 1_000_000,
        put_timeout_s: float = 5.0,
        max_backoff_s: float = 30.0,
        keep_dead: int = 1_000,
        transient: Callable[[BaseException], bool] = is_transient,
    ) -> None:
        self.batch_size = batch_size
        self.put_timeout_s = put_timeout_s
        self.max_backoff_s = max_backoff_s
        self.transient = transient
        self._queue: queue.Queue[EventRecord] = queue.Queue(maxsize=max_queued)
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.failures = 0
        self.dropped = 0
        self.retries = 0
        self.last_error: str | None = None
        self.dead: deque[tuple[EventRecord, str]] = deque(maxlen=keep_dead)

    # --- producer side -------------------------------------------------------------

    def claim(self, event_ids: Sequence[str]) -> set[str]:
        with self._lock:
            fresh = {i for i in event_ids if i not in self._inflight}
            self._inflight |= fresh
            return fresh

    def release(self, event_ids: Sequence[str]) -> None:
        with self._lock:
            self._inflight.difference_update(event_ids)

    def publish(self, events: Sequence[EventRecord]) -> None:
        """Queue events; raises BusError when the bus is closed or stays full too long."""
        if self._stop.is_set():
            raise BusError("the in-process bus is closed")
        for e in events:
            # Counted before the put, so the consumer can never see a negative backlog
            # (join() would return early).
            with self._lock:
                self._pending += 1
            try:
                self._queue.put(e, timeout=self.put_timeout_s)
            except queue.Full:
                with self._lock:
                    self._pending -= 1
                    if self._pending <= 0:
                        self._idle.notify_all()
                raise BusError(
                    f"the in-process bus is full ({self._queue.maxsize} events queued)"
                ) from None

    # --- consumer side --------------------------------------------------------------

    def subscribe(self, handler: Handler) -> None:
        """Start the consumer thread that hands batches to ``handler``."""
        if self._thread is not None:
            raise RuntimeError("the in-process bus has one consumer")
        self._thread = threading.Thread(
            target=self._run, args=(handler,), name="tower-projector", daemon=True
        )
        self._thread.start()

    def _run(self, handler: Handler) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < self.batch_size:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._deliver(handler, batch)

    def _apply(self, handler: Handler, batch: Sequence[EventRecord]) -> Exception | None:
        """Run the handler; retry transient failures in place. The lasting error, or None."""
        delay = 0.1
        while True:
            try:
                handler(batch)
                return None
            except Exception as exc:
                if not self.transient(exc) or self._stop.is_set():
                    return exc
                self.retries += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("projector unavailable (%s); retrying %d event(s) in %.1f s",
                            self.last_error, len(batch), delay)
                if self._stop.wait(delay):
                    return exc
                delay = min(delay * 2, self.max_backoff_s)

    def _deliver(self, handler: Handler, batch: list[EventRecord]) -> None:
        try:
            error = self._apply(handler, batch)
            if error is None:
                return
            self.failures += 1
            self.last_error = f"{type(error).__name__}: {error}"
            if len(batch) == 1 or self._stop.is_set():
                self._drop(batch, error)
                return
            log.error("projector failed on a batch of %d (%s); retrying one by one",
                      len(batch), self.last_error)
            for event in batch:
                error = self._apply(handler, [event])
                if error is not None:
                    self._drop([event], error)
        finally:
            with self._lock:
                self._inflight.difference_update(e.event_id for e in batch)
                self._pending -= len(batch)
                if self._pending <= 0:
                    self._idle.notify_all()

    def _drop(self, events: Sequence[EventRecord], error: Exception) -> None:
        reason = f"{type(error).__name__}: {error}"
        for event in events:
            self.dead.append((event, reason))
            log.error("event %s could not be applied; dropped: %s", event.event_id, reason)
        self.dropped += len(events)

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every published event has been handled. False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def health(self) -> dict[str, Any]:
        return {
            "kind": "in-process",
            "ok": not self._stop.is_set() and (self._thread is None or self._thread.is_alive()),
            "pending": self._pending,
            "failures": self.failures,
            "dropped": self.dropped,
            "retries": self.retries,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
