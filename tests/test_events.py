"""The v1 event contract: what validates, what is rejected and why."""

from __future__ import annotations

from typing import Any

import pytest

from tower.events import EVENT_TYPES, EventError, EventRecord, json_schema, validate_event


def ev(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e1", "type": "stage.entered", "occurred_at": "2026-11-11T10:00:00+08:00",
        "source": "wms", "order_id": "o1", "payload": {"stage": "picking"},
    }
    base.update(over)
    return base


def test_valid_event_is_normalised_to_utc() -> None:
    rec = validate_event(ev())
    assert rec.occurred_at.isoformat() == "2026-11-11T02:00:00+00:00"
    assert rec.stage == "picking"
    assert EventRecord.from_json(rec.to_json()) == rec


def test_unknown_payload_fields_are_kept() -> None:
    rec = validate_event(ev(payload={"stage": "picking", "rfid_gate": "G7", "extra": {"a": 1}}))
    assert rec.payload["rfid_gate"] == "G7" and rec.payload["extra"] == {"a": 1}


def test_unknown_envelope_fields_are_ignored_not_rejected() -> None:
    assert validate_event(ev(trace_id="abc")).event_id == "e1"


@pytest.mark.parametrize(
    ("event", "needle"),
    [
        (ev(occurred_at="2026-11-11T10:00:00"), "occurred_at: Input should have timezone info"),
        (ev(occurred_at="yesterday"), "occurred_at"),
        (ev(type="order.teleported"), "unknown event type"),
        (ev(payload={}), "payload.stage: Field required"),
        (ev(payload={"stage": 7}), "payload.stage"),
        ({k: v for k, v in ev().items() if k != "order_id"}, "order_id: Field required"),
        (ev(event_id=""), "event_id"),
        (ev(event_id="x" * 65), "event_id"),
        (ev(source="s" * 65), "source"),
        (ev(type="parcel.scanned", payload={"parcel_id": "p", "status": "teleported"}),
         "payload.status"),
        (ev(type="order.created", payload={"flow": "ecommerce"}), "payload.promised_at"),
        (ev(type="order.created",
            payload={"flow": "ecommerce", "promised_at": "2026-11-14T00:00:00"}),
         "payload.promised_at: Input should have timezone info"),
        (ev(type="sensor.reading", payload={"sensor_id": "s", "kind": "temperature",
                                            "value": "hot"}), "payload.value"),
        (["not", "an", "object"], "must be a JSON object"),
        ("string", "must be a JSON object"),
    ],
)
def test_malformed_events_get_a_clear_reason(event: Any, needle: str) -> None:
    with pytest.raises(EventError) as err:
        validate_event(event)
    assert needle in str(err.value)
    assert "\n" not in str(err.value)


def test_stock_level_needs_no_order() -> None:
    rec = validate_event({"event_id": "s1", "type": "stock.level", "source": "wms",
                          "occurred_at": "2026-11-11T10:00:00Z",
                          "payload": {"warehouse_id": "w1", "sku": "k", "on_hand": 3}})
    assert rec.order_id is None


def test_json_schema_covers_every_type() -> None:
    schema = json_schema()
    text = repr(schema)
    for kind in EVENT_TYPES:
        assert kind in text
    assert schema["title"] == "Order Tower event v1"
