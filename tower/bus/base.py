"""What every bus adapter offers the ingest (publish) and the workers (consume)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tower.events import EventRecord

#: A consumer's handler: applies a batch and returns only once it is committed.
Handler = Callable[[Sequence[EventRecord]], object]


class BusError(RuntimeError):
    """The bus cannot take or deliver events right now."""


class RetryLater(Exception):
    """Raised by a handler when the failure is not the events' fault (e.g. the database is down).

    The consumer keeps the batch and retries it in place, backing off, instead of
    counting it as a failed delivery that would end in the dead-letter list.
    """


#: Exception class names (anywhere in the MRO) that mean "the store is unavailable right
#: now" rather than "this event is bad": SQLAlchemy's/DB-API's OperationalError covers lost
#: connections, deadlocks, serialisation failures and "database is locked".
_TRANSIENT_NAMES = frozenset({"OperationalError", "InterfaceError", "DisconnectionError"})


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same batch later is likely to succeed."""
    if isinstance(exc, RetryLater | ConnectionError | TimeoutError):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


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
