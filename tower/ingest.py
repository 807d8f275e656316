"""Ingest: validate a batch against the contract, deduplicate, hand it to the bus.

Bad items are rejected one by one with a clear reason; they never block the valid
items of the same batch. This module is core: it knows the store and the bus only
through the small protocols below.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson

from tower.events import STAGED_TYPES, EventError, EventRecord, validate_event
from tower.flows import FlowBook


class EventDirectory(Protocol):
    """What the ingest needs to know of the store."""

    def known_event_ids(self, event_ids: Sequence[str]) -> set[str]:
        """Ids already in the event log."""

    def order_flows(self, order_ids: Sequence[str]) -> dict[str, str]:
        """The flow of each order that exists."""


class Publisher(Protocol):
    def claim(self, event_ids: Sequence[str]) -> set[str]: ...
    def release(self, event_ids: Sequence[str]) -> None: ...
    def publish(self, events: Sequence[EventRecord]) -> None: ...


class BatchTooLarge(ValueError):
    """More items than the configured batch limit (HTTP 413)."""


class BodyError(ValueError):
    """A body that is not a JSON array/object (HTTP 400)."""


@dataclass(slots=True, frozen=True)
class Unparsable:
    """An NDJSON line that is not JSON: rejected as that item."""

    error: str


@dataclass(slots=True)
class Rejection:
    index: int
    event_id: str | None
    error: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "event_id": self.event_id, "error": self.error}


@dataclass(slots=True)
class IngestSummary:
    """The answer to a batch (EVENTS.md "Bodies and answers")."""

    accepted: int = 0
    duplicates: int = 0
    held: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "held": self.held,
            "rejected": [r.as_dict() for r in self.rejected],
        }

    def add(self, other: IngestSummary, offset: int = 0) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.held += other.held
        self.rejected.extend(
            Rejection(r.index + offset, r.event_id, r.error) for r in other.rejected
        )


def parse_json_body(body: bytes) -> list[Any]:
    """A JSON array of events, or one event object."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyError(f"body is not valid JSON: {exc}") from None
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise BodyError("body must be a JSON array of events or one event object")


def iter_ndjson(lines: Iterable[bytes]) -> Iterator[Any]:
    """One item per non-blank line; a line that is not JSON becomes :class:`Unparsable`."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield Unparsable(f"line is not valid JSON: {exc}")


def parse_ndjson_body(body: bytes) -> list[Any]:
    return list(iter_ndjson(body.splitlines()))


def _event_id_of(item: Any) -> str | None:
    if isinstance(item, dict):
        value = item.get("event_id")
        if isinstance(value, str):
            return value[:64]
    return None


class Ingestor:
    """Turns raw items into accepted events on the bus, and says what happened to each."""

    def __init__(
        self,
        *,
        flows: FlowBook,
        directory: EventDirectory,
        bus: Publisher,
        future_skew_s: float,
        max_batch: int,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.flows = flows
        self.directory = directory
        self.bus = bus
        self.future_skew = timedelta(seconds=future_skew_s)
        self.max_batch = max_batch
        self.clock = clock

    def ingest(self, items: Sequence[Any]) -> IngestSummary:
        """Validate and publish one batch (at most ``max_batch`` items)."""
        if len(items) > self.max_batch:
            raise BatchTooLarge(f"batch has {len(items)} events; the limit is {self.max_batch}")
        summary = IngestSummary()
        valid: list[tuple[int, EventRecord]] = []
        horizon = self.clock() + self.future_skew
        for index, item in enumerate(items):
            try:
                record = self._check(item, horizon)
            except EventError as exc:
                summary.rejected.append(Rejection(index, _event_id_of(item), str(exc)))
                continue
            valid.append((index, record))
        valid = self._check_order_flows(valid, summary)
        fresh = self._dedupe(valid, summary)
        if fresh:
            claimed = self.bus.claim([e.event_id for e in fresh])
            summary.duplicates += len(fresh) - len(claimed)
            fresh = [e for e in fresh if e.event_id in claimed]
            try:
                self.bus.publish(fresh)
            except Exception:
                self.bus.release([e.event_id for e in fresh])
                raise
        summary.accepted = len(fresh)
        summary.rejected.sort(key=lambda r: r.index)
        return summary

    def _check(self, item: Any, horizon: datetime) -> EventRecord:
        if isinstance(item, Unparsable):
            raise EventError(item.error)
        record = validate_event(item)
        if record.occurred_at > horizon:
            raise EventError(
                f"occurred_at: {record.occurred_at.isoformat()} is more than "
                f"{int(self.future_skew.total_seconds())} s in the future"
            )
        stage = record.stage
        if record.type in STAGED_TYPES and stage not in self.flows.all_stage_ids:
            raise EventError(f"payload.stage: {stage!r} is not a stage of any flow")
        if record.type == "order.created":
            flow = record.payload["flow"]
            if flow not in self.flows.by_id:
                known = ", ".join(sorted(self.flows.by_id))
                raise EventError(f"payload.flow: unknown flow {flow!r} (known: {known})")
        return record

    def _check_order_flows(
        self, valid: list[tuple[int, EventRecord]], summary: IngestSummary
    ) -> list[tuple[int, EventRecord]]:
        staged = {e.order_id for _, e in valid if e.type in STAGED_TYPES and e.order_id}
        if not staged:
            return valid
        flows = {e.order_id: e.payload["flow"] for _, e in valid
                 if e.type == "order.created" and e.order_id}
        missing = sorted(staged - flows.keys())
        if missing:
            flows.update(self.directory.order_flows(missing))
        kept = []
        for index, e in valid:
            flow = flows.get(e.order_id) if e.order_id else None
            if (e.type in STAGED_TYPES and flow is not None
                    and e.stage not in self.flows.by_id[flow].stage_index):
                    summary.rejected.append(Rejection(
                        index, e.event_id,
                        f"payload.stage: {e.stage!r} is not in flow {flow!r} of order {e.order_id!r}",
                    ))
                    continue
            kept.append((index, e))
        return kept

    def _dedupe(
        self, valid: list[tuple[int, EventRecord]], summary: IngestSummary
    ) -> list[EventRecord]:
        seen: set[str] = set()
        unique: list[EventRecord] = []
        for _, e in valid:
            if e.event_id in seen:
                summary.duplicates += 1
            else:
                seen.add(e.event_id)
                unique.append(e)
        known = self.directory.known_event_ids([e.event_id for e in unique]) if unique else set()
        summary.duplicates += len(known)
        fresh = [e for e in unique if e.event_id not in known]
        order_ids = {e.order_id for e in fresh if e.order_id and e.type != "stock.level"}
        created = {e.order_id for e in fresh if e.type == "order.created"}
        unknown = order_ids - created
        if unknown:
            existing = set(self.directory.order_flows(sorted(unknown)))
            summary.held = sum(
                1 for e in fresh
                if e.order_id in unknown and e.order_id not in existing and e.type != "stock.level"
            )
        return fresh
