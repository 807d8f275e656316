"""Customer milestones and delays: once per order and milestone, with the current ETA."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from tower.events import EventRecord, validate_event
from tower.flows import FlowBook
from tower.notify.config import MilestoneConfig
from tower.notify.dispatcher import DELIVERIES, OUTBOX
from tower.notify.jobs import scheduled_jobs
from tower.notify.milestones import (
    MilestoneNotifier,
    delay_key,
    enqueue_delay,
    estimate_arrival,
    register,
    stored_order_eta,
)

T = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
TRANSIT_H = 36  # budget of ecommerce/transit in data/flows.toml


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def _ev(n: int, kind: str, at: datetime, payload: dict[str, Any], order_id: str = "O-1") -> EventRecord:
    return validate_event({"event_id": f"{order_id}-{n:02d}", "type": kind, "occurred_at": at.isoformat(),
                           "source": "test", "order_id": order_id, "payload": payload})


def _order(order_id: str = "O-1", start: datetime = T, *, customs: dict[str, Any] | None = None
           ) -> list[EventRecord]:
    """An e-commerce order shipped in one parcel through a customs hub and delivered."""
    p = "P-" + order_id
    leave_customs = {"parcel_id": p, "status": "departed_hub", "hub_id": "hub-customs", **(customs or {})}
    return [
        _ev(0, "order.created", start, {"flow": "ecommerce", "promised_at": (start + 72 * H).isoformat(),
                                         "customer_id": "C-7"}, order_id),
        _ev(1, "stage.entered", start + 8 * H, {"stage": "transit"}, order_id),
        _ev(2, "tracking.assigned", start + 9 * H,
            {"carrier": "sf", "tracking_number": "SF1", "parcel_id": p}, order_id),
        _ev(3, "parcel.scanned", start + 20 * H, {"parcel_id": p, "status": "arrived_hub",
                                                  "hub_id": "hub-customs"}, order_id),
        _ev(4, "parcel.scanned", start + 22 * H, leave_customs, order_id),
        _ev(5, "parcel.scanned", start + 40 * H, {"parcel_id": p, "status": "out_for_delivery"}, order_id),
        _ev(6, "parcel.scanned", start + 44 * H, {"parcel_id": p, "status": "delivered"}, order_id),
    ]


def _outbox(engine: Engine, topic: str = "customer.milestone") -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.dedupe_key, OUTBOX.c.payload, OUTBOX.c.created_at)
                            .where(OUTBOX.c.topic == topic).order_by(OUTBOX.c.id))
        return [{"key": r.dedupe_key, "at": r.created_at, **r.payload} for r in rows]


@pytest.fixture
def rt(tower_rt: Any) -> Iterator[Any]:
    """The embedded tower on a clean store and an empty outbox, without its own
    milestone listener (each test adds one with its clock and config)."""
    tower_rt.projector.listeners[:] = [
        listener for listener in tower_rt.projector.listeners
        if not isinstance(getattr(listener, "__self__", None), MilestoneNotifier)
    ]
    with tower_rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM notification_deliveries"))
        conn.execute(text("DELETE FROM outbox"))
    yield tower_rt


def _notifier(rt: Any, clock: FakeClock, **config: Any) -> MilestoneNotifier:
    notifier = MilestoneNotifier(rt.engine, rt.flows, MilestoneConfig(**config), clock)
    rt.projector.listeners.append(notifier.on_batch)
    return notifier


def test_each_milestone_once_with_the_current_eta(rt: Any) -> None:
    clock = FakeClock(T)
    _notifier(rt, clock, customs_hubs=("hub-customs",))
    for event in _order():  # one event per batch, as a live feed brings them
        clock.at = event.occurred_at + timedelta(minutes=1)
        rt.projector.apply([event])
    pushes = _outbox(rt.engine)
    assert [p["key"] for p in pushes] == [
        "milestone:O-1:shipped", "milestone:O-1:customs_cleared",
        "milestone:O-1:out_for_delivery", "milestone:O-1:delivered",
    ]
    shipped, customs, out, delivered = pushes
    # In transit since T+8h with 36 h of budget left: due at T+44h.
    assert shipped["eta"] == (T + (8 + TRANSIT_H) * H).isoformat()
    assert shipped | {"eta": None} == {
        "key": "milestone:O-1:shipped", "at": T + 9 * H + timedelta(minutes=1), "order_id": "O-1",
        "customer_id": "C-7", "milestone": "shipped", "occurred_at": (T + 9 * H).isoformat(), "eta": None,
        "promised_at": (T + 72 * H).isoformat(), "late": False, "parcel_id": "P-O-1", "carrier": "sf",
        "tracking_number": "SF1", "hub_id": None, "source_event_id": "O-1-02",
    }
    assert customs["hub_id"] == "hub-customs" and customs["eta"] == shipped["eta"]
    assert out["source_event_id"] == "O-1-05"
    assert delivered["eta"] == delivered["occurred_at"] == (T + 44 * H).isoformat()
    assert delivered["source_event_id"] is None


def test_repeats_and_late_duplicates_push_nothing_new(rt: Any) -> None:
    clock = FakeClock(T + 30 * H)
    _notifier(rt, clock, customs_hubs=("hub-customs",))
    events = _order()[:5]
    rt.projector.apply(events)
    assert len(_outbox(rt.engine)) == 2  # shipped, customs cleared
    rt.projector.apply(events)  # the same events again: duplicates
    again = [_ev(10, "parcel.scanned", T + 23 * H, {"parcel_id": "P-O-1", "status": "in_transit"}),
             _ev(11, "tracking.assigned", T + 24 * H,
                 {"carrier": "sf", "tracking_number": "SF2", "parcel_id": "P-2"})]
    rt.projector.apply(again)  # shipped again (a second parcel) is still the one push
    assert [p["milestone"] for p in _outbox(rt.engine)] == ["shipped", "customs_cleared"]


def test_a_backlog_caught_up_tells_only_what_is_still_news(rt: Any) -> None:
    clock = FakeClock(T + 45 * H)
    _notifier(rt, clock, customs_hubs=("hub-customs",))
    rt.projector.apply(_order())  # delivered already: the earlier milestones are overtaken
    assert [p["milestone"] for p in _outbox(rt.engine)] == ["delivered"]

    clock.at = T + 30 * 24 * H  # a month later: nothing is news
    rt.projector.apply(_order("O-2"))
    assert [p["order_id"] for p in _outbox(rt.engine)] == ["O-1"]


def test_customs_by_location_kind(rt: Any) -> None:
    clock = FakeClock(T + 23 * H)
    _notifier(rt, clock)  # no customs hub configured
    rt.projector.apply(_order()[:5])
    assert [p["milestone"] for p in _outbox(rt.engine)] == ["shipped"]
    rt.projector.apply(_order("O-2", customs={"location_kind": "customs"})[:5])
    assert [(p["order_id"], p["milestone"]) for p in _outbox(rt.engine)] == [
        ("O-1", "shipped"), ("O-2", "shipped"), ("O-2", "customs_cleared")]


def test_cancelled_and_disabled_push_nothing(rt: Any) -> None:
    clock = FakeClock(T + 10 * H)
    notifier = _notifier(rt, clock)
    events = _order()[:3]
    rt.projector.apply([*events[:2], _ev(9, "order.cancelled", T + 8.5 * H, {"reason": "customer"}),
                        events[2]])
    assert _outbox(rt.engine) == []
    rt.projector.listeners.remove(notifier.on_batch)
    _notifier(rt, clock, enabled=False)
    rt.projector.apply(_order("O-3")[:3])
    assert _outbox(rt.engine) == []


def test_eta_from_the_remaining_budgets(flows: FlowBook) -> None:
    since = T
    # picking (4 h) + packing (2) + outbound (2) + transit (36): 44 h from when picking began.
    eta = estimate_arrival(flows, flow="ecommerce", stage="picking", since=since, custom=False,
                           rush=False, now=T + H)
    assert eta == T + 44 * H
    rush = estimate_arrival(flows, flow="ecommerce", stage="picking", since=since, custom=False,
                            rush=True, now=T + H)
    custom = estimate_arrival(flows, flow="ecommerce", stage="picking", since=since, custom=True,
                              rush=False, now=T + H)
    assert rush == T + 22 * H and custom == T + 66 * H
    # Past its budgets: never an arrival in the past.
    late = estimate_arrival(flows, flow="ecommerce", stage="transit", since=since, custom=False,
                            rush=False, now=T + 100 * H)
    assert late == T + 100 * H


def test_delay_once_per_order_and_step(rt: Any) -> None:
    rt.projector.apply(_order()[:3])
    now = T + 12 * H
    step = "carrier contacted, answer expected within 2 h"
    with rt.engine.begin() as conn:
        eta = stored_order_eta(conn, rt.flows, "O-1", now=now)
        assert eta == T + (8 + TRANSIT_H) * H
        assert stored_order_eta(conn, rt.flows, "nope", now=now) is None
        assert enqueue_delay(conn, order_id="O-1", step=step, next_update_at=now + 2 * H, eta=eta, at=now)
        assert not enqueue_delay(conn, order_id="O-1", step=step, next_update_at=now + 3 * H, eta=eta,
                                 at=now + H)
        assert enqueue_delay(conn, order_id="O-1", step="parcel re-routed via Wuhan",
                             next_update_at=None, eta=None, at=now + H)
    first, second = _outbox(rt.engine, "customer.delay")
    assert first == {
        "key": delay_key("O-1", step), "at": now, "order_id": "O-1", "customer_id": "C-7",
        "milestone": "delayed", "step": step, "next_update_at": (now + 2 * H).isoformat(),
        "eta": eta.isoformat(), "promised_at": (T + 72 * H).isoformat(), "occurred_at": now.isoformat(),
    }
    assert second["step"] == "parcel re-routed via Wuhan" and second["eta"] is None
    assert len(first["key"]) < 100


def test_delay_rolls_back_with_its_cause(rt: Any) -> None:
    with pytest.raises(RuntimeError), rt.engine.begin() as conn:
        enqueue_delay(conn, order_id="O-1", step="x", next_update_at=None, eta=None, at=T)
        raise RuntimeError
    assert _outbox(rt.engine, "customer.delay") == []


def test_register_and_the_scheduled_job_push_to_the_log(rt: Any) -> None:
    notifier = register(rt)
    assert notifier.on_batch in rt.projector.listeners
    start = datetime.now(UTC) - 12 * H
    rt.projector.apply(_order("O-9", start)[:3])
    assert [p["milestone"] for p in _outbox(rt.engine)] == ["shipped"]

    from tower.notify.outbox import enqueue

    with rt.engine.begin() as conn:
        enqueue(conn, topic="exception.opened", payload={"id": "EX-1"}, at=start)
    [job] = scheduled_jobs(rt)
    assert (job.name, job.every_s) == ("notify.dispatch", 2.0)
    job.run()
    with rt.engine.connect() as conn:
        rows = conn.execute(select(OUTBOX.c.topic, OUTBOX.c.routed, DELIVERIES.c.channel, DELIVERIES.c.status)
                            .outerjoin(DELIVERIES, OUTBOX.c.id == DELIVERIES.c.outbox_id)
                            .order_by(OUTBOX.c.topic)).all()
    # The shipped log channel takes what people act on, not every customer push.
    assert [tuple(r) for r in rows] == [("customer.milestone", True, None, None),
                                        ("exception.opened", True, "log", "sent")]
