"""The fold that turns an order's (or a parcel's) events into its current state.

Pure domain code: no database, no bus. The projector persists what these functions
return. The state after a set of events depends only on that set, never on the
order the events arrived in: the fold always runs over events sorted by
:meth:`EventRecord.sort_key`, and the incremental path (:func:`apply_order_event`)
is taken only when the new event sorts after every event already folded, so it is
the same step the full fold would have taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tower.events import STAGE_TYPES, EventRecord
from tower.flows import FlowBook

IN_PROGRESS = "in_progress"
DELIVERED = "delivered"
CANCELLED = "cancelled"
FROZEN = "frozen"

SortKey = tuple[int, datetime, str]


@dataclass(slots=True)
class StageVisit:
    """One stay of an order in a stage: entered -> started is waiting, started -> completed is work."""

    seq: int
    stage: str
    entered_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass(slots=True)
class DeadLetter:
    """An accepted event the fold could not apply, with the reason."""

    event_id: str
    order_id: str | None
    reason: str


def _same(t: datetime) -> datetime:
    return t


_BUDGETS: dict[int, tuple[FlowBook, dict[tuple[str, str, bool, bool], float]]] = {}


def remaining_budget_h(flows: FlowBook, flow_id: str, stage_id: str, *, custom: bool, rush: bool) -> float:
    """Sum of the budgets from ``stage_id`` to the end of the flow (memoised per flow book)."""
    entry = _BUDGETS.get(id(flows))
    if entry is None or entry[0] is not flows:
        if len(_BUDGETS) >= 16:
            _BUDGETS.clear()
        entry = _BUDGETS[id(flows)] = (flows, {})
    cache = entry[1]
    key = (flow_id, stage_id, custom, rush)
    remaining = cache.get(key)
    if remaining is None:
        flow = flows.by_id[flow_id]
        start = flow.stage_index[stage_id]
        remaining = cache[key] = sum(
            flows.budget_h(flow_id, s.id, custom=custom, rush=rush) for s in flow.stages[start:]
        )
    return remaining


@dataclass(slots=True)
class OrderState:
    """Everything the projections know about one order."""

    order_id: str
    flow: str
    priority: str
    custom: bool
    promised_at: datetime
    created_at: datetime
    customer_id: str | None = None
    channel: str | None = None
    city: str | None = None
    cold_chain: tuple[float, float] | None = None
    stage: str = ""
    status: str = IN_PROGRESS
    visits: list[StageVisit] = field(default_factory=list)
    parcels: dict[str, datetime | None] = field(default_factory=dict)
    evidence: set[tuple[str, str]] = field(default_factory=set)
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    last_event_at: datetime | None = None
    last_key: SortKey | None = None
    changed_from_seq: int = 0  # first visit seq touched since the last save

    @property
    def current(self) -> StageVisit:
        return self.visits[-1]

    def late(self) -> bool:
        """Delivered after the promise, or still open at its last event past the promise."""
        if self.status == CANCELLED:
            return False
        reference = self.delivered_at if self.status == DELIVERED else self.last_event_at
        return reference is not None and reference > self.promised_at

    def at_risk(self, flows: FlowBook) -> bool:
        """Open, not yet late, but the remaining stage budgets no longer fit the promise."""
        if self.status not in (IN_PROGRESS, FROZEN) or self.late():
            return False
        remaining = remaining_budget_h(flows, self.flow, self.stage, custom=self.custom,
                                       rush=self.priority == "rush")
        visit = self.current
        since = visit.started_at or visit.entered_at
        return since + timedelta(hours=remaining) > self.promised_at

    # --- (de)serialisation of the checkpoint kept on the order row -----------------

    def checkpoint(self, *, times_as_text: bool = True) -> dict[str, Any]:
        """What the incremental path needs to go on from here (the current visit only).

        Times are ISO 8601 text; with ``times_as_text=False`` they are left as datetimes,
        for a JSON encoder that writes them exactly as ``isoformat()`` does (orjson),
        which is much cheaper.
        """
        v = self.current
        iso: Callable[[datetime], Any] = datetime.isoformat if times_as_text else _same
        return {
            "seq": v.seq,
            "stage": v.stage,
            "entered_at": iso(v.entered_at),
            "started_at": iso(v.started_at) if v.started_at else None,
            "completed_at": iso(v.completed_at) if v.completed_at else None,
            "parcels": {p: (iso(t) if t else None) for p, t in self.parcels.items()},
            "evidence": sorted([s, k] for s, k in self.evidence),
            "last_key": [self.last_key[0], iso(self.last_key[1]), self.last_key[2]]
            if self.last_key
            else None,
            "cold_chain": list(self.cold_chain) if self.cold_chain else None,
        }

    @classmethod
    def restore(
        cls,
        *,
        order_id: str,
        flow: str,
        priority: str,
        custom: bool,
        promised_at: datetime,
        created_at: datetime,
        status: str,
        delivered_at: datetime | None,
        cancelled_at: datetime | None,
        last_event_at: datetime | None,
        customer_id: str | None,
        channel: str | None,
        city: str | None,
        checkpoint: dict[str, Any],
    ) -> OrderState:
        def ts(value: str | None) -> datetime | None:
            return datetime.fromisoformat(value) if value else None

        entered = ts(checkpoint["entered_at"])
        assert entered is not None
        visit = StageVisit(
            seq=checkpoint["seq"],
            stage=checkpoint["stage"],
            entered_at=entered,
            started_at=ts(checkpoint["started_at"]),
            completed_at=ts(checkpoint["completed_at"]),
        )
        lk = checkpoint["last_key"]
        cc = checkpoint.get("cold_chain")
        return cls(
            order_id=order_id,
            flow=flow,
            priority=priority,
            custom=custom,
            promised_at=promised_at,
            created_at=created_at,
            customer_id=customer_id,
            channel=channel,
            city=city,
            cold_chain=(cc[0], cc[1]) if cc else None,
            stage=visit.stage,
            status=status,
            visits=[visit],
            parcels={p: ts(t) for p, t in checkpoint["parcels"].items()},
            evidence={(s, k) for s, k in checkpoint["evidence"]},
            delivered_at=delivered_at,
            cancelled_at=cancelled_at,
            last_event_at=last_event_at,
            last_key=(lk[0], datetime.fromisoformat(lk[1]), lk[2]) if lk else None,
            changed_from_seq=visit.seq + 1,
        )


def new_order(event: EventRecord, flows: FlowBook) -> OrderState:
    """The state right after ``order.created``: in the first stage of its flow."""
    p = event.payload
    assert event.order_id is not None
    flow = flows.by_id[p["flow"]]
    cold = p.get("cold_chain")
    dest = p.get("destination") or {}
    state = OrderState(
        order_id=event.order_id,
        flow=flow.id,
        priority=p.get("priority", "normal"),
        custom=bool(p.get("custom", False)),
        promised_at=datetime.fromisoformat(p["promised_at"]),
        created_at=event.occurred_at,
        customer_id=p.get("customer_id"),
        channel=p.get("channel"),
        city=dest.get("city"),
        cold_chain=(float(cold["min_c"]), float(cold["max_c"])) if cold else None,
        stage=flow.first_stage.id,
        visits=[StageVisit(seq=0, stage=flow.first_stage.id, entered_at=event.occurred_at)],
        last_event_at=event.occurred_at,
        last_key=event.sort_key(),
    )
    return state


def _enter(state: OrderState, stage: str, at: datetime) -> StageVisit:
    visit = StageVisit(seq=state.current.seq + 1, stage=stage, entered_at=at)
    state.visits.append(visit)
    state.stage = stage
    return visit


def _apply_stage(state: OrderState, event: EventRecord, stage: str) -> None:
    at = event.occurred_at
    visit = state.current
    same = visit.stage == stage
    if event.type == "stage.entered":
        # Re-entering the stage the order is in (and has not finished) is the same
        # stay; entering any other stage, or a finished one again, is a new stay.
        if not same or visit.completed_at is not None:
            _enter(state, stage, at)
    elif event.type == "stage.started":
        if not same or visit.completed_at is not None:
            visit = _enter(state, stage, at)
        if visit.started_at is None:
            visit.started_at = at
    else:  # stage.completed
        if not same or visit.completed_at is not None:
            visit = _enter(state, stage, at)
            visit.started_at = at
        visit.completed_at = at
    state.changed_from_seq = min(state.changed_from_seq, state.current.seq, visit.seq)


def _refresh_delivery(state: OrderState) -> None:
    if state.status == CANCELLED:
        return
    if state.parcels and all(t is not None for t in state.parcels.values()):
        state.status = DELIVERED
        state.delivered_at = max(t for t in state.parcels.values() if t is not None)
    else:
        state.status = IN_PROGRESS
        state.delivered_at = None


def apply_order_event(state: OrderState, event: EventRecord, flows: FlowBook) -> DeadLetter | None:
    """Fold one event that sorts after everything already in ``state``.

    Returns a dead letter when the event cannot apply to this order (e.g. a stage
    that is not in the order's flow); the state is then unchanged but for the key.
    """
    state.last_key = event.sort_key()
    if event.type == "order.created":
        return DeadLetter(event.event_id, event.order_id, "order already created by an earlier event")
    if state.last_event_at is None or event.occurred_at > state.last_event_at:
        state.last_event_at = event.occurred_at
    flow = flows.by_id[state.flow]
    stage = event.stage
    if stage is not None and stage not in flow.stage_index:
        return DeadLetter(
            event.event_id,
            event.order_id,
            f"stage {stage!r} is not in flow {state.flow!r} of order {state.order_id!r}",
        )
    if event.type in STAGE_TYPES and stage is not None:
        if state.status != CANCELLED:
            _apply_stage(state, event, stage)
    elif event.type == "handoff.evidence" and stage is not None:
        state.evidence.add((stage, str(event.payload["kind"])))
    elif event.type == "tracking.assigned":
        parcel = event.parcel_id or str(event.payload["tracking_number"])
        state.parcels.setdefault(parcel, None)
        _refresh_delivery(state)
    elif event.type == "parcel.scanned":
        scanned = event.parcel_id
        if scanned is not None and event.payload.get("status") == "delivered":
            if scanned in state.parcels or not state.parcels:
                state.parcels[scanned] = event.occurred_at
            _refresh_delivery(state)
    elif event.type == "order.cancelled":
        state.status = CANCELLED
        state.cancelled_at = event.occurred_at
    return None


def fold_order(
    events: Iterable[EventRecord], flows: FlowBook
) -> tuple[OrderState | None, list[DeadLetter]]:
    """Fold every event of one order from scratch (sorted), as a rebuild would."""
    ordered = sorted(events, key=EventRecord.sort_key)
    if not ordered or ordered[0].type != "order.created":
        return None, []  # not created yet: the events are held
    state = new_order(ordered[0], flows)
    dead: list[DeadLetter] = []
    for event in ordered[1:]:
        letter = apply_order_event(state, event, flows)
        if letter is not None:
            dead.append(letter)
    state.changed_from_seq = 0
    return state, dead


# --- parcels at hubs ------------------------------------------------------------------

#: Scans after which a parcel is no longer at the hub it arrived at.
LEAVES_HUB = frozenset({"departed_hub", "in_transit", "out_for_delivery", "delivered",
                        "available_for_pickup"})


@dataclass(slots=True)
class HubVisit:
    """A parcel's stay at one hub, from its arrival scan to the scan that took it on."""

    seq: int
    hub_id: str
    arrived_at: datetime
    departed_at: datetime | None = None


@dataclass(slots=True)
class ParcelState:
    """A parcel's scan history folded into hub visits."""

    parcel_id: str
    carrier: str | None = None
    status: str = ""
    last_scan_at: datetime | None = None
    last_key: SortKey | None = None
    visits: list[HubVisit] = field(default_factory=list)
    changed_from_seq: int = 0

    @property
    def open_visit(self) -> HubVisit | None:
        if self.visits and self.visits[-1].departed_at is None:
            return self.visits[-1]
        return None


def apply_parcel_scan(state: ParcelState, event: EventRecord) -> None:
    """Fold one ``parcel.scanned`` event that sorts after everything in ``state``."""
    p = event.payload
    at = event.occurred_at
    status = str(p["status"])
    hub = p.get("hub_id")
    state.last_key = event.sort_key()
    state.last_scan_at = at
    state.status = status
    if p.get("carrier"):
        state.carrier = str(p["carrier"])
    current = state.open_visit
    if status == "arrived_hub" and hub:
        if current is not None and current.hub_id == hub:
            return  # the same arrival reported again (e.g. once per order in the parcel)
        if current is not None:
            current.departed_at = at
        seq = state.visits[-1].seq + 1 if state.visits else 0
        state.visits.append(HubVisit(seq=seq, hub_id=str(hub), arrived_at=at))
        state.changed_from_seq = min(state.changed_from_seq, current.seq if current else seq)
    elif status in LEAVES_HUB and current is not None and (
        status != "departed_hub" or not hub or hub == current.hub_id
    ):
        current.departed_at = at
        state.changed_from_seq = min(state.changed_from_seq, current.seq)


def fold_parcel(parcel_id: str, scans: Iterable[EventRecord]) -> ParcelState:
    """Fold every scan of one parcel from scratch (sorted)."""
    state = ParcelState(parcel_id=parcel_id)
    for event in sorted(scans, key=EventRecord.sort_key):
        apply_parcel_scan(state, event)
    state.changed_from_seq = 0
    return state
