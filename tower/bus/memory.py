"""In-process bus for the embedded mode: a queue drained by one projector thread."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from typing import Any

from tower.bus.base import Handler
from tower.events import EventRecord

log = logging.getLogger(__name__)


class InProcessBus:
    """A bounded queue and one consumer thread that applies events in batches."""

    def __init__(self, *, batch_size: int = 2_000, max_queued: int = 1_000_000) -> None:
        self.batch_size = batch_size
        self._queue: queue.Queue[EventRecord] = queue.Queue(maxsize=max_queued)
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.failures = 0
        self.last_error: str | None = None

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
        with self._lock:
            self._pending += len(events)
        for e in events:
            self._queue.put(e)

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

    def _deliver(self, handler: Handler, batch: list[EventRecord]) -> None:
        try:
            handler(batch)
        except Exception as exc:  # one bad batch must not stop the projector
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("projector failed on a batch of %d; retrying one by one", len(batch))
            for event in batch:
                try:
                    handler([event])
                except Exception:
                    log.exception("event %s could not be applied; dropped", event.event_id)
        finally:
            with self._lock:
                self._inflight.difference_update(e.event_id for e in batch)
                self._pending -= len(batch)
                if self._pending <= 0:
                    self._idle.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every published event has been handled. False on timeout."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending <= 0, timeout=timeout)

    def health(self) -> dict[str, Any]:
        return {
            "kind": "in-process",
            "ok": self._thread is None or self._thread.is_alive(),
            "pending": self._pending,
            "failures": self.failures,
            "last_error": self.last_error,
        }

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
