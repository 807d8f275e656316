"""The conditions the rules check, as plain functions of an order (or a hub, a stage).

Pure domain code: no database. The same function decides on an order folded by the
projector (state rules, at the time of its last event) and on an order read back from
the projections by a scan (absence rules, at the tower's "now"), so a scan re-derives
exactly what the listener would have seen. Each returns a :class:`Finding` when the
condition holds, else None; every figure comes in as an argument (data/rules.toml).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tower.flows import FlowBook, Gate
from tower.projection import IN_PROGRESS, OrderState


@dataclass(frozen=True, slots=True)
class OrderView:
    """What the order conditions look at: the order and its current stage visit."""

    order_id: str
    flow: str
    stage: str
    status: str
    rush: bool
    custom: bool
    promised_at: datetime
    created_at: datetime
    last_event_at: datetime
    entered_at: datetime
    completed_at: datetime | None
    has_parcels: bool
    evidence: frozenset[tuple[str, str]]

    @property
    def open(self) -> bool:
        return self.status == IN_PROGRESS

    @classmethod
    def of(cls, state: OrderState) -> OrderView:
        visit = state.current
        return cls(
            order_id=state.order_id, flow=state.flow, stage=state.stage, status=state.status,
            rush=state.priority == "rush", custom=state.custom, promised_at=state.promised_at,
            created_at=state.created_at, last_event_at=state.last_event_at or state.created_at,
            entered_at=visit.entered_at, completed_at=visit.completed_at,
            has_parcels=bool(state.parcels), evidence=frozenset(state.evidence),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """A condition that holds: since when (event time), a title and details."""

    since: datetime
    title: str
    stage: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


def _h(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600, 2)


def stage_budget(flows: FlowBook, v: OrderView) -> timedelta:
    return timedelta(hours=flows.budget_h(v.flow, v.stage, custom=v.custom, rush=v.rush))


def stage_over_budget(v: OrderView, now: datetime, flows: FlowBook) -> Finding | None:
    """Still in its stage (not completed) past the stage budget (custom buffer, rush factor)."""
    if not v.open or v.completed_at is not None:
        return None
    budget = stage_budget(flows, v)
    due = v.entered_at + budget
    if now <= due:
        return None
    return Finding(due, f"{v.order_id}: {v.stage} over its {_h(budget):g} h budget",
                   v.stage, {"budget_h": _h(budget), "entered_at": v.entered_at.isoformat(),
                             "over_h": _h(now - due)})


def stage_no_update(v: OrderView, now: datetime, limits: Mapping[str, timedelta]) -> Finding | None:
    """No event of the order, while it is in one of the limited stages, for longer than the limit."""
    limit = limits.get(v.stage)
    if limit is None or not v.open:
        return None
    due = v.last_event_at + limit
    if now <= due:
        return None
    return Finding(due, f"{v.order_id}: no update in {v.stage} for {_h(now - v.last_event_at):g} h",
                   v.stage, {"limit_h": _h(limit), "last_event_at": v.last_event_at.isoformat()})


def stage_unconfirmed(v: OrderView, now: datetime, *, stage: str, within: timedelta,
                      evidence: str | None) -> Finding | None:
    """In ``stage`` for longer than ``within`` without completing it or uploading the confirmation."""
    if not v.open or v.stage != stage or v.completed_at is not None:
        return None
    if evidence is not None and (stage, evidence) in v.evidence:
        return None
    due = v.entered_at + within
    if now <= due:
        return None
    return Finding(due, f"{v.order_id}: {stage} not confirmed within {_h(within):g} h", stage,
                   {"within_h": _h(within), "entered_at": v.entered_at.isoformat()})


def tracking_missing(v: OrderView, now: datetime, *, within: timedelta,
                     flows: tuple[str, ...]) -> Finding | None:
    """No tracking number ``within`` of payment (the order's creation)."""
    if not v.open or v.has_parcels or (flows and v.flow not in flows):
        return None
    due = v.created_at + within
    if now <= due:
        return None
    return Finding(due, f"{v.order_id}: no tracking number {_h(now - v.created_at):g} h after payment",
                   v.stage, {"within_h": _h(within), "paid_at": v.created_at.isoformat()})


def missing_evidence(flows: FlowBook, v: OrderView) -> list[Gate]:
    """The gates of the order's current stage whose evidence it does not carry."""
    stage = flows.by_id[v.flow].stage(v.stage)
    return [g for g in stage.gates if (g.from_stage, g.kind) not in v.evidence]


def handoff_without_evidence(v: OrderView, now: datetime, flows: FlowBook) -> Finding | None:
    """In a gated stage (entered or started) without the evidence the gate asks for."""
    if not v.open:
        return None
    missing = missing_evidence(flows, v)
    if not missing:
        return None
    kinds = ", ".join(f"{g.kind} from {g.from_stage}" for g in missing)
    return Finding(v.entered_at, f"{v.order_id}: entered {v.stage} without {kinds}", v.stage,
                   {"missing": [{"kind": g.kind, "from_stage": g.from_stage} for g in missing]})


def estimated_arrival(flows: FlowBook, v: OrderView, now: datetime,
                      expected_h: Mapping[tuple[str, str], float] | None = None) -> datetime:
    """When the order should arrive: the end of its current stage (or now, if that is
    past) plus the stages after it, each taking its ``expected_h`` duration (the recent
    average of the network, see the predicted_late rule) or, without one, its budget."""
    expected_h = expected_h or {}
    rush = v.rush
    flow = flows.by_id[v.flow]

    def hours(stage: str) -> float:
        seen = expected_h.get((v.flow, stage))
        return seen if seen is not None else flows.budget_h(v.flow, stage, custom=v.custom, rush=rush)

    later = sum(hours(s) for s in flow.stage_ids[flow.stage_index[v.stage] + 1:])
    current_end = v.entered_at + timedelta(hours=hours(v.stage))
    return max(current_end, now) + timedelta(hours=later)


def predicted_late(v: OrderView, now: datetime, flows: FlowBook, margin: timedelta,
                   expected_h: Mapping[tuple[str, str], float] | None = None) -> Finding | None:
    """The estimated arrival passes the promised time (by more than ``margin``)."""
    if not v.open:
        return None
    eta = estimated_arrival(flows, v, now, expected_h)
    if eta <= v.promised_at + margin:
        return None
    return Finding(now, f"{v.order_id}: expected {_h(eta - v.promised_at):g} h after its promise",
                   v.stage, {"eta": eta.isoformat(), "promised_at": v.promised_at.isoformat()})


def out_of_range(value: float, low: float, high: float) -> bool:
    return value < low or value > high


def retention_rate(arrivals: int, retained: int, *, share: float, min_arrivals: int) -> float | None:
    """The hub's retention rate when it exceeds ``share`` on enough arrivals, else None."""
    if arrivals < min_arrivals or arrivals <= 0:
        return None
    rate = retained / arrivals
    return rate if rate > share else None


def over_benchmark(avg_h: float, benchmark_h: float, *, over_share: float, visits: int,
                   min_visits: int) -> bool:
    """A stage whose average duration exceeds its benchmark by more than ``over_share``."""
    return visits >= min_visits and benchmark_h > 0 and avg_h > benchmark_h * (1 + over_share)
