"""Ingest against a real store (SQLite and PostgreSQL): every bad-input rule of EVENTS.md."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tower.ingest import BatchTooLarge, Unparsable, parse_ndjson_body
from tower.runtime import Tower
from tower.store import queries

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(minutes: float) -> str:
    return (NOW - timedelta(hours=6) + timedelta(minutes=minutes)).isoformat()


def created(order: str, flow: str = "ecommerce", at: float = 0, eid: str | None = None) -> dict[str, Any]:
    return {"event_id": eid or f"{order}-c", "type": "order.created", "occurred_at": ts(at),
            "source": "erp", "order_id": order,
            "payload": {"flow": flow, "promised_at": ts(3 * 24 * 60), "priority": "normal"}}


def stage(order: str, kind: str, name: str, at: float, eid: str | None = None) -> dict[str, Any]:
    return {"event_id": eid or f"{order}-{kind}-{name}-{at}", "type": f"stage.{kind}",
            "occurred_at": ts(at), "source": "wms", "order_id": order, "payload": {"stage": name}}


def ingest(rt: Tower, items: list[Any]) -> dict[str, Any]:
    answer = rt.ingestor.ingest(items).as_dict()
    assert rt.flush(30)
    return answer


def test_valid_batch_is_projected(tower_rt: Tower) -> None:
    answer = ingest(tower_rt, [created("o1"), stage("o1", "entered", "picking", 10),
                               stage("o1", "started", "picking", 20)])
    assert answer == {"accepted": 3, "duplicates": 0, "held": 0, "rejected": []}
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None
    assert order["stage"] == "picking" and order["status"] == "in_progress"
    assert [s["stage"] for s in order["stages"]] == ["paid", "picking"]
    # order.created places the order in its first stage, entered at occurred_at
    assert order["stages"][0]["entered_at"] == ts(0)
    assert order["stages"][1]["started_at"] == ts(20)
    assert len(order["events"]) == 3


def test_bad_items_never_block_valid_ones(tower_rt: Tower) -> None:
    items: list[Any] = [
        created("o1"),
        {**stage("o1", "entered", "picking", 5), "occurred_at": "2026-11-11T10:00:00"},  # naive
        {"event_id": "x2", "type": "order.teleported", "occurred_at": ts(1), "source": "s",
         "order_id": "o1", "payload": {}},                                             # unknown type
        {**stage("o1", "entered", "picking", 6), "payload": {}},                        # missing stage
        stage("o1", "entered", "order_review", 7),                                      # not in o1's flow
        stage("o1", "entered", "warp_drive", 8),                                        # in no flow
        Unparsable("line is not valid JSON: unexpected character"),                     # bad NDJSON line
        {**stage("o1", "entered", "picking", 9), "event_id": "y" * 65},                 # too long
        stage("o1", "entered", "picking", 10),
    ]
    answer = ingest(tower_rt, items)
    assert answer["accepted"] == 2
    rejected = {r["index"]: r for r in answer["rejected"]}
    assert sorted(rejected) == [1, 2, 3, 4, 5, 6, 7]
    assert "timezone" in rejected[1]["error"]
    assert "unknown event type" in rejected[2]["error"]
    assert "payload.stage: Field required" in rejected[3]["error"]
    assert "not in flow 'ecommerce' of order 'o1'" in rejected[4]["error"]
    assert "not a stage of any flow" in rejected[5]["error"]
    assert "not valid JSON" in rejected[6]["error"]
    assert "event_id" in rejected[7]["error"]
    assert rejected[4]["event_id"] == items[4]["event_id"]
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and order["stage"] == "picking"


def test_ndjson_bad_line_is_that_item_only() -> None:
    body = b'{"a": 1}\nnot json\n\n{"b": 2}\n'
    items = parse_ndjson_body(body)
    assert len(items) == 3 and isinstance(items[1], Unparsable) and items[2] == {"b": 2}


def test_duplicates_by_event_id(tower_rt: Tower) -> None:
    first = ingest(tower_rt, [created("o1"), created("o1")])
    assert first["accepted"] == 1 and first["duplicates"] == 1
    again = ingest(tower_rt, [created("o1"), stage("o1", "entered", "picking", 5)])
    assert again["accepted"] == 1 and again["duplicates"] == 1
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and len(order["events"]) == 2


def test_held_events_apply_when_the_order_appears(tower_rt: Tower) -> None:
    early = ingest(tower_rt, [stage("o9", "entered", "picking", 10),
                              stage("o9", "started", "picking", 12)])
    assert early["accepted"] == 2 and early["held"] == 2
    assert queries.get_order(tower_rt.engine, order_id="o9") is None
    assert queries.held_count(tower_rt.engine) == 2
    ingest(tower_rt, [created("o9")])
    order = queries.get_order(tower_rt.engine, order_id="o9")
    assert order is not None and order["stage"] == "picking"
    assert order["stages"][1]["started_at"] == ts(12)
    assert queries.held_count(tower_rt.engine) == 0


def test_held_event_of_another_flow_goes_to_dead_letters(tower_rt: Tower) -> None:
    # order_review is a real stage (manufacturing) but the order turns out to be e-commerce
    ingest(tower_rt, [stage("o7", "entered", "order_review", 5, eid="wrong-flow")])
    ingest(tower_rt, [created("o7", flow="ecommerce")])
    letters = queries.dead_letters(tower_rt.engine)
    assert [(d["event_id"], d["order_id"]) for d in letters] == [("wrong-flow", "o7")]
    assert "not in flow 'ecommerce'" in letters[0]["reason"]
    order = queries.get_order(tower_rt.engine, order_id="o7")
    assert order is not None and order["stage"] == "paid"


def test_future_events_beyond_the_skew_are_rejected(tower_rt: Tower) -> None:
    future = {**created("o1"), "occurred_at": (datetime.now(UTC) + timedelta(minutes=11)).isoformat()}
    near = {**created("o2"), "occurred_at": (datetime.now(UTC) + timedelta(minutes=5)).isoformat()}
    answer = ingest(tower_rt, [future, near])
    assert answer["accepted"] == 1
    assert answer["rejected"][0]["index"] == 0
    assert "in the future" in answer["rejected"][0]["error"]


def test_batch_count_is_bounded(tower_rt: Tower) -> None:
    limit = tower_rt.ingestor.max_batch
    with pytest.raises(BatchTooLarge):
        tower_rt.ingestor.ingest([created(f"o{i}") for i in range(limit + 1)])


def test_old_event_arriving_late_never_moves_a_stage_back(tower_rt: Tower) -> None:
    ingest(tower_rt, [created("o1"), stage("o1", "entered", "packing", 60)])
    ingest(tower_rt, [stage("o1", "entered", "picking", 30)])  # older, late
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and order["stage"] == "packing"
    assert [s["stage"] for s in order["stages"]] == ["paid", "picking", "packing"]


def test_newer_rework_event_may_move_back(tower_rt: Tower) -> None:
    ingest(tower_rt, [created("o1"), stage("o1", "entered", "packing", 60)])
    ingest(tower_rt, [stage("o1", "entered", "picking", 90)])  # newer: rework
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and order["stage"] == "picking"
    assert [s["stage"] for s in order["stages"]] == ["paid", "packing", "picking"]


def test_delivery_needs_every_parcel(tower_rt: Tower) -> None:
    def scan(pid: str, status: str, at: float) -> dict[str, Any]:
        return {"event_id": f"{pid}-{status}-{at}", "type": "parcel.scanned", "occurred_at": ts(at),
                "source": "carrier:sf", "order_id": "o1",
                "payload": {"parcel_id": pid, "status": status}}

    def track(pid: str, at: float) -> dict[str, Any]:
        return {"event_id": f"t-{pid}", "type": "tracking.assigned", "occurred_at": ts(at),
                "source": "carrier:sf", "order_id": "o1",
                "payload": {"carrier": "sf", "tracking_number": f"SF{pid}", "parcel_id": pid}}

    ingest(tower_rt, [created("o1"), track("p1", 10), track("p2", 11), scan("p1", "delivered", 100)])
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and order["status"] == "in_progress"
    ingest(tower_rt, [scan("p2", "delivered", 120)])
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and order["status"] == "delivered"
    assert order["delivered_at"] == ts(120)


def test_cancelled_order(tower_rt: Tower) -> None:
    ingest(tower_rt, [created("o1"), {"event_id": "x", "type": "order.cancelled", "occurred_at": ts(5),
                                      "source": "erp", "order_id": "o1",
                                      "payload": {"reason": "customer"}}])
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None and order["status"] == "cancelled"


def test_a_failing_listener_does_not_undo_or_replay_a_batch(tower_rt: Tower) -> None:
    heard: list[int] = []

    def broken(result: object) -> None:
        raise RuntimeError("listener bug")

    tower_rt.projector.listeners.extend([broken, lambda r: heard.append(r.accepted)])  # type: ignore[attr-defined]
    ingest(tower_rt, [created("o1")])
    assert heard == [1]
    order = queries.get_order(tower_rt.engine, order_id="o1")
    assert order is not None
