"""Event contract v1 (see EVENTS.md): pydantic models and the normalised record.

Every source speaks this contract. Models validate the envelope and the per-type
payload; unknown extra payload fields are kept. A validated event becomes an
:class:`EventRecord`, the compact, UTC-normalised form the bus and projector carry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
)

SHORT = 64
TEXT = 256
LONG = 2048

ShortStr = Annotated[str, Field(min_length=1, max_length=SHORT)]
Text = Annotated[str, Field(max_length=TEXT)]


class Payload(BaseModel):
    """Base of every payload: unknown extra fields are kept, never rejected."""

    model_config = ConfigDict(extra="allow", str_max_length=LONG)


class Item(BaseModel):
    model_config = ConfigDict(extra="allow")
    sku: ShortStr
    qty: int = Field(ge=1, le=1_000_000)


class Destination(BaseModel):
    model_config = ConfigDict(extra="allow")
    region: Text | None = None
    city: Text | None = None


class ColdChain(BaseModel):
    model_config = ConfigDict(extra="allow")
    min_c: float
    max_c: float


class GeoPoint(BaseModel):
    model_config = ConfigDict(extra="allow")
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class OrderCreatedPayload(Payload):
    flow: ShortStr
    promised_at: AwareDatetime
    priority: Literal["normal", "rush"] = "normal"
    custom: bool = False
    channel: Text | None = None
    customer_id: ShortStr | None = None
    items: list[Item] = Field(default_factory=list, max_length=1000)
    destination: Destination | None = None
    cold_chain: ColdChain | None = None


class StagePayload(Payload):
    stage: ShortStr
    resource: Text | None = None
    site: Text | None = None


class HandoffEvidencePayload(Payload):
    stage: ShortStr
    kind: ShortStr
    url: Annotated[str, Field(max_length=LONG)] | None = None


class TrackingAssignedPayload(Payload):
    carrier: ShortStr
    tracking_number: ShortStr
    parcel_id: ShortStr | None = None


ParcelStatus = Literal[
    "info_received",
    "in_transit",
    "arrived_hub",
    "departed_hub",
    "out_for_delivery",
    "available_for_pickup",
    "attempt_fail",
    "delivered",
    "exception",
]


class ParcelScannedPayload(Payload):
    parcel_id: ShortStr
    status: ParcelStatus
    hub_id: ShortStr | None = None
    carrier: ShortStr | None = None
    location: GeoPoint | None = None


class SensorReadingPayload(Payload):
    sensor_id: ShortStr
    kind: Literal["temperature", "humidity", "shock"]
    value: float
    unit: ShortStr | None = None
    parcel_id: ShortStr | None = None


class StockLevelPayload(Payload):
    warehouse_id: ShortStr
    sku: ShortStr
    on_hand: int


class OrderCancelledPayload(Payload):
    reason: Text | None = None


class Envelope(BaseModel):
    # Later contract versions may add envelope fields; v1 readers ignore them.
    model_config = ConfigDict(extra="ignore")

    event_id: ShortStr
    occurred_at: AwareDatetime
    source: ShortStr


class OrderEnvelope(Envelope):
    order_id: ShortStr


class OrderCreated(OrderEnvelope):
    type: Literal["order.created"]
    payload: OrderCreatedPayload


class StageEntered(OrderEnvelope):
    type: Literal["stage.entered"]
    payload: StagePayload


class StageStarted(OrderEnvelope):
    type: Literal["stage.started"]
    payload: StagePayload


class StageCompleted(OrderEnvelope):
    type: Literal["stage.completed"]
    payload: StagePayload


class HandoffEvidence(OrderEnvelope):
    type: Literal["handoff.evidence"]
    payload: HandoffEvidencePayload


class TrackingAssigned(OrderEnvelope):
    type: Literal["tracking.assigned"]
    payload: TrackingAssignedPayload


class ParcelScanned(OrderEnvelope):
    type: Literal["parcel.scanned"]
    payload: ParcelScannedPayload


class SensorReading(OrderEnvelope):
    type: Literal["sensor.reading"]
    payload: SensorReadingPayload


class StockLevel(Envelope):
    type: Literal["stock.level"]
    order_id: ShortStr | None = None
    payload: StockLevelPayload


class OrderCancelled(OrderEnvelope):
    type: Literal["order.cancelled"]
    payload: OrderCancelledPayload = Field(default_factory=OrderCancelledPayload)


EventModel = Annotated[
    OrderCreated
    | StageEntered
    | StageStarted
    | StageCompleted
    | HandoffEvidence
    | TrackingAssigned
    | ParcelScanned
    | SensorReading
    | StockLevel
    | OrderCancelled,
    Field(discriminator="type"),
]

EVENT_TYPES: tuple[str, ...] = (
    "order.created",
    "stage.entered",
    "stage.started",
    "stage.completed",
    "handoff.evidence",
    "tracking.assigned",
    "parcel.scanned",
    "sensor.reading",
    "stock.level",
    "order.cancelled",
)
STAGE_TYPES = frozenset({"stage.entered", "stage.started", "stage.completed"})
#: Types whose payload names a stage (checked against the flows).
STAGED_TYPES = STAGE_TYPES | {"handoff.evidence"}

_ADAPTER: TypeAdapter[Any] = TypeAdapter(EventModel)


class EventError(ValueError):
    """One event that breaks the contract, with a one-line reason."""


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a v1 event (a discriminated union on ``type``)."""
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Order Tower event v1"
    return schema


def _describe(err: ValidationError) -> str:
    parts = []
    for e in err.errors(include_url=False)[:3]:
        loc = ".".join(str(p) for p in e["loc"] if not str(p).startswith(EVENT_TYPES))
        # Discriminated unions put the type tag in the path; drop it for readability.
        parts.append(f"{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)


@dataclass(slots=True, frozen=True)
class EventRecord:
    """A validated event, times in UTC; what the bus carries and the projector folds."""

    event_id: str
    type: str
    occurred_at: datetime
    source: str
    order_id: str | None
    payload: dict[str, Any]

    @property
    def stage(self) -> str | None:
        value = self.payload.get("stage")
        return value if isinstance(value, str) else None

    @property
    def parcel_id(self) -> str | None:
        value = self.payload.get("parcel_id")
        return value if isinstance(value, str) else None

    def sort_key(self) -> tuple[int, datetime, str]:
        """Fold order: creation first, then by occurred_at, ties broken by event_id."""
        return (0 if self.type == "order.created" else 1, self.occurred_at, self.event_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "source": self.source,
            "order_id": self.order_id,
            "payload": self.payload,
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EventRecord:
        """Rebuild a record that was validated before (bus message, event log row)."""
        occurred = data["occurred_at"]
        if isinstance(occurred, str):
            occurred = datetime.fromisoformat(occurred)
        if occurred.tzinfo is None:
            occurred = occurred.replace(tzinfo=UTC)
        return cls(
            event_id=data["event_id"],
            type=data["type"],
            occurred_at=occurred.astimezone(UTC),
            source=data["source"],
            order_id=data.get("order_id"),
            payload=data.get("payload") or {},
        )

    @classmethod
    def from_json(cls, raw: bytes | str) -> EventRecord:
        return cls.from_dict(orjson.loads(raw))


def validate_event(data: Any) -> EventRecord:
    """Validate one decoded JSON value against the contract.

    Raises :class:`EventError` with a one-line, human-readable reason.
    """
    if not isinstance(data, dict):
        raise EventError("an event must be a JSON object")
    kind = data.get("type")
    if kind is not None and kind not in EVENT_TYPES:
        raise EventError(f"type: unknown event type {str(kind)[:64]!r}")
    try:
        model = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise EventError(_describe(exc)) from None
    payload = model.payload.model_dump(mode="json", exclude_none=True)
    return EventRecord(
        event_id=model.event_id,
        type=model.type,
        occurred_at=model.occurred_at.astimezone(UTC),
        source=model.source,
        order_id=model.order_id,
        payload=payload,
    )
