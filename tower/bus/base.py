"""What every bus adapter offers the ingest (publish) and the workers (consume)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tower.events import EventRecord

#: A consumer's handler: applies a batch and returns only once it is committed.
Handler = Callable[[Sequence[EventRecord]], object]


class BusError(RuntimeError):
    """The bus cannot take or deliver events right now."""


class EventBus(Protocol):
    """Carries validated events from the ingest to the projector."""

    def claim(self, event_ids: Sequence[str]) -> set[str]:
        """Mark ids as in flight; return those not already in flight (in-flight dedupe)."""

    def release(self, event_ids: Sequence[str]) -> None:
        """Forget in-flight claims (after a failed publish)."""

    def publish(self, events: Sequence[EventRecord]) -> None:
        """Hand events to the bus; raises BusError when they could not be taken."""

    def health(self) -> dict[str, Any]:
        """A small status document for /healthz."""

    def close(self) -> None:
        """Release connections and threads."""
