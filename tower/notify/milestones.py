"""Customer pushes: milestones of an order with its current estimated arrival, and delays.

Milestones (DOMAIN.md section 4): ``shipped``, ``customs_cleared``,
``out_for_delivery``, ``delivered``, each pushed once per order (topic
``customer.milestone``, dedupe key ``milestone:<order>:<milestone>``). Which events
reach which milestone is configured in ``[milestones]`` of data/notify.toml.
:class:`MilestoneNotifier` listens to the projector; it runs after a batch is
committed, so a crash between the two loses that batch's pushes (see the ADR).

Delays (topic ``customer.delay``) come from the rules engine and the exception
handling steps through :func:`enqueue_delay`, once per (order, handling step), in the
caller's transaction.

The estimated arrival is the end of the remaining stage budgets, counted from when the
order's current stage began (as "at risk" counts), and never before now: an ETA in the
past tells the customer nothing. A delivered order's ETA is its delivery time.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, select

from tower.clock import Clock
from tower.events import EventRecord
from tower.flows import FlowBook
from tower.notify.config import MilestoneConfig, load_notify
from tower.notify.outbox import enqueue
from tower.projection import CANCELLED, DELIVERED, OrderState, remaining_budget_h
from tower.store.tables import Order

if TYPE_CHECKING:
    from tower.runtime import Tower
    from tower.store.projector import ApplyResult

log = logging.getLogger(__name__)

MILESTONE_TOPIC = "customer.milestone"
DELAY_TOPIC = "customer.delay"

SHIPPED = "shipped"
CUSTOMS_CLEARED = "customs_cleared"
OUT_FOR_DELIVERY = "out_for_delivery"
DELIVERED_MILESTONE = "delivered"
MILESTONES = (SHIPPED, CUSTOMS_CLEARED, OUT_FOR_DELIVERY, DELIVERED_MILESTONE)


def estimate_arrival(flows: FlowBook, *, flow: str, stage: str, since: datetime, custom: bool,
                     rush: bool, now: datetime) -> datetime:
    """``since`` (when the current stage began) plus the budgets left, not before ``now``."""
    remaining = remaining_budget_h(flows, flow, stage, custom=custom, rush=rush)
    return max(now, since + timedelta(hours=remaining))


def order_eta(state: OrderState, flows: FlowBook, now: datetime) -> datetime | None:
    """The estimated arrival of an order (its delivery time once delivered; None if cancelled)."""
    if state.status == DELIVERED:
        return state.delivered_at
    if state.status == CANCELLED or not state.visits:
        return None
    visit = state.current
    return estimate_arrival(flows, flow=state.flow, stage=visit.stage,
                            since=visit.started_at or visit.entered_at, custom=state.custom,
                            rush=state.priority == "rush", now=now)


def stored_order_eta(conn: Connection, flows: FlowBook, order_id: str, *, now: datetime) -> datetime | None:
    """:func:`order_eta` of an order as the projection has it (None if unknown or cancelled)."""
    row = conn.execute(
        select(Order.flow, Order.stage, Order.status, Order.custom, Order.priority,
               Order.delivered_at, Order.checkpoint).where(Order.order_id == order_id)
    ).first()
    if row is None or row.status == CANCELLED:
        return None
    if row.status == DELIVERED:
        delivered: datetime | None = row.delivered_at
        return delivered
    started = row.checkpoint.get("started_at") or row.checkpoint.get("entered_at")
    since = datetime.fromisoformat(started) if started else now
    return estimate_arrival(flows, flow=row.flow, stage=row.stage, since=since, custom=row.custom,
                            rush=row.priority == "rush", now=now)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def milestones_of(event: EventRecord, config: MilestoneConfig) -> list[str]:
    """The milestones one event reaches by itself (``delivered`` comes from the order)."""
    if event.type == "parcel.scanned":
        trigger = str(event.payload.get("status", ""))
    elif event.type == "tracking.assigned":
        trigger = event.type
    else:
        return []
    found = [m for m, triggers in ((SHIPPED, config.shipped), (OUT_FOR_DELIVERY, config.out_for_delivery))
             if trigger in triggers]
    if event.type == "parcel.scanned" and trigger in config.customs_cleared_statuses and (
        event.payload.get("hub_id") in config.customs_hubs
        or event.payload.get("location_kind") in config.customs_location_kinds
    ):
        found.append(CUSTOMS_CLEARED)
    return found


@dataclass(frozen=True, slots=True)
class MilestonePush:
    """One milestone of one order, as it goes into the outbox."""

    order_id: str
    milestone: str
    payload: dict[str, Any]

    @property
    def dedupe_key(self) -> str:
        return f"milestone:{self.order_id}:{self.milestone}"


class MilestoneNotifier:
    """A projector listener turning each committed batch into milestone pushes."""

    def __init__(self, engine: Engine, flows: FlowBook, config: MilestoneConfig, clock: Clock) -> None:
        self.engine = engine
        self.flows = flows
        self.config = config
        self.clock = clock

    def pushes(self, result: ApplyResult, now: datetime) -> list[MilestonePush]:
        """The milestones a batch reaches, first event first (pure: no store)."""
        if not self.config.enabled:
            return []
        orders = {state.order_id: state for state in result.changed_orders}
        oldest = now - timedelta(hours=self.config.stale_after_h)
        found: dict[tuple[str, str], MilestonePush] = {}
        touched: set[str] = set()
        for event in sorted(result.new_events, key=EventRecord.sort_key):
            state = orders.get(event.order_id or "")
            if state is None or state.status == CANCELLED:
                continue
            touched.add(state.order_id)
            if event.occurred_at < oldest or state.status == DELIVERED:
                continue  # stale news, or overtaken: only "delivered" is left to say
            for milestone in milestones_of(event, self.config):
                found.setdefault((state.order_id, milestone),
                                 self._push(state, milestone, event.occurred_at, now, event))
        for order_id in sorted(touched):
            state = orders[order_id]
            if state.status == DELIVERED and state.delivered_at and state.delivered_at >= oldest:
                found.setdefault((order_id, DELIVERED_MILESTONE),
                                 self._push(state, DELIVERED_MILESTONE, state.delivered_at, now, None))
        return list(found.values())

    def _push(self, state: OrderState, milestone: str, occurred_at: datetime, now: datetime,
              event: EventRecord | None) -> MilestonePush:
        eta = order_eta(state, self.flows, now)
        p = event.payload if event is not None else {}
        payload = {
            "order_id": state.order_id,
            "customer_id": state.customer_id,
            "milestone": milestone,
            "occurred_at": occurred_at.isoformat(),
            "eta": _iso(eta),
            "promised_at": state.promised_at.isoformat(),
            "late": eta is not None and eta > state.promised_at,
            "parcel_id": event.parcel_id if event is not None else None,
            "carrier": p.get("carrier"),
            "tracking_number": p.get("tracking_number"),
            "hub_id": p.get("hub_id"),
            "source_event_id": event.event_id if event is not None else None,
        }
        return MilestonePush(state.order_id, milestone, payload)

    def on_batch(self, result: ApplyResult) -> None:
        """The projector listener: enqueue the batch's milestones (each once per order)."""
        self.push_batch(result)

    def push_batch(self, result: ApplyResult) -> int:
        """Enqueue the batch's milestones; returns how many were new."""
        now = self.clock.now()
        pushes = self.pushes(result, now)
        if not pushes:
            return 0
        return enqueue_milestones(self.engine, pushes, at=now)


def enqueue_milestones(engine: Engine, pushes: Iterable[MilestonePush], *, at: datetime) -> int:
    """Write milestone pushes to the outbox in one transaction; returns how many were new."""
    new = 0
    with engine.begin() as conn:
        for push in pushes:
            new += enqueue(conn, topic=MILESTONE_TOPIC, payload=push.payload, at=at,
                           dedupe_key=push.dedupe_key)
    return new


def delay_key(order_id: str, step: str) -> str:
    """``delay:<order>:<hash of the step>``: the step is free text of any length."""
    return f"delay:{order_id}:{hashlib.sha256(step.encode()).hexdigest()[:16]}"


def enqueue_delay(conn: Connection, *, order_id: str, step: str, next_update_at: datetime | None,
                  eta: datetime | None, at: datetime) -> bool:
    """Tell the customer an order is delayed: the handling step and when they hear next.

    Called in the caller's transaction (the rule or exception change that caused it).
    Once per (order, step): the same step again returns False. ``step`` is what the
    customer reads ("carrier contacted, answer expected within 2 h"); ``eta`` may come
    from :func:`stored_order_eta`.
    """
    order = conn.execute(
        select(Order.customer_id, Order.promised_at).where(Order.order_id == order_id)
    ).first()
    payload = {
        "order_id": order_id,
        "customer_id": order.customer_id if order is not None else None,
        "milestone": "delayed",
        "step": step,
        "next_update_at": _iso(next_update_at),
        "eta": _iso(eta),
        "promised_at": _iso(order.promised_at) if order is not None else None,
        "occurred_at": at.isoformat(),
    }
    return enqueue(conn, topic=DELAY_TOPIC, payload=payload, at=at, dedupe_key=delay_key(order_id, step))


def register(tower: Tower) -> MilestoneNotifier:
    """Add the milestone listener to the tower's projector (every process that projects).

    It reads data/notify.toml (with the TOWER_WEBHOOK_* settings), so a bad file stops
    the tower at start-up; the channels' secrets are checked when the scheduler starts.
    """
    config = load_notify(tower.settings.notify_path, tower.settings).milestones
    notifier = MilestoneNotifier(tower.engine, tower.flows, config, tower.clock)
    tower.projector.listeners.append(notifier.on_batch)
    return notifier
