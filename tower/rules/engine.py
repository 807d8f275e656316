"""The rules engine: state rules on each projected batch, absence rules on scans.

:meth:`RuleEngine.on_batch` is a projector listener: it looks at the orders the batch
changed (at the time of each order's last event) and at the batch's sensor readings,
stock levels and reroutes. :meth:`RuleEngine.scan` runs on the scheduler and checks
what did not happen (no update, no tracking, a parcel that did not move) at the
tower's "now", fires hold-downs that have run out, and auto-resolves the open
exceptions of the scanned rules whose condition no longer holds.

Noise control (see docs/adr/0004-exceptions-and-outbox.md, "Rules engine"):
hold-downs in event time (``rule_pending``), one open exception per (rule, scope)
with a counter (:func:`tower.exceptions.store.raise_or_bump`), inhibition (a stuck
parcel at a hub with an open hub warning or outage is grouped under it) and
auto-resolve (:func:`tower.exceptions.store.clear`). A cold-chain excursion, once
fired, is ended by a person only: resolving it unfreezes the order.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, delete, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tower.clock import Clock
from tower.domain import TowerFigures
from tower.events import EventRecord
from tower.exceptions.store import Raised, ResponsePolicy, Trigger, clear, open_scopes, raise_or_bump
from tower.flows import FlowBook
from tower.notify import outbox
from tower.notify.milestones import enqueue_delay, order_eta
from tower.projection import LEAVES_HUB, OrderState
from tower.rules import conditions as cond
from tower.rules import reads
from tower.rules.config import (
    STAGE_OWNER,
    ColdChainParams,
    HubRetentionParams,
    ParcelStuckParams,
    PredictedLateParams,
    Rule,
    RuleBook,
    RuleConfigError,
    StageNoUpdateParams,
    StageOverBenchmarkParams,
    StageUnconfirmedParams,
    StockOutParams,
    TrackingMissingParams,
    load_rules,
)
from tower.store.projector import ApplyResult
from tower.store.tables import Order, RulePending

__all__ = ["RuleEngine", "ScanSummary", "load_rules"]

log = logging.getLogger(__name__)

ORDERS = cast(Table, Order.__table__)
PENDING = cast(Table, RulePending.__table__)

#: Order conditions the scans re-derive (and auto-resolve); the others are state-only.
SCANNED_ORDER_CONDITIONS = ("stage_over_budget", "stage_no_update", "stage_unconfirmed",
                            "tracking_missing", "predicted_late")
#: Order conditions checked on each batch, on the orders it changed.
BATCH_ORDER_CONDITIONS = (*SCANNED_ORDER_CONDITIONS, "handoff_without_evidence")
SCAN_LOCK = zlib.crc32(b"tower.rules.scan") - 2**31  # PostgreSQL advisory lock: one scanner at a time


@dataclass
class ScanSummary:
    """What one scan did."""

    at: datetime
    raised: int = 0
    bumped: int = 0
    cleared: int = 0
    fired_pending: int = 0
    skipped: bool = False  # another process was scanning
    seconds: float = 0.0
    by_rule: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, rule: str, what: str) -> None:
        counts = self.by_rule.setdefault(rule, {"raised": 0, "bumped": 0, "cleared": 0})
        counts[what] += 1


def order_scope(order_id: str) -> str:
    return f"order:{order_id}"


class _Work:
    """One transaction's rule work: fires, clears and their side effects, counted."""

    def __init__(self, rules: RuleEngine, conn: Connection, now: datetime, summary: ScanSummary) -> None:
        self.rules, self.conn, self.now, self.summary = rules, conn, now, summary

    def fire(self, rule: Rule, trigger: Trigger, *, eta: datetime | None = None) -> Raised:
        raised = raise_or_bump(self.conn, trigger, now=self.now, policy=self.rules.policy)
        self.summary.count(rule.id, "raised" if raised.created else "bumped")
        if raised.created:
            self.summary.raised += 1
            self.rules.act(self.conn, rule, trigger, raised.id, now=self.now, eta=eta)
        else:
            self.summary.bumped += 1
        return raised

    def clear(self, rule: Rule, scope_key: str, note: str) -> None:
        if clear(self.conn, rule=rule.id, scope_key=scope_key, now=self.now, note=note) is not None:
            self.summary.cleared += 1
            self.summary.count(rule.id, "cleared")


class RuleEngine:
    """State rules (:meth:`on_batch`) and absence rules (:meth:`scan`) of one rule book."""

    def __init__(self, engine: Engine, flows: FlowBook, figures: TowerFigures, book: RuleBook,
                 policy: ResponsePolicy, clock: Clock) -> None:
        self.engine, self.flows, self.figures, self.book = engine, flows, figures, book
        self.policy, self.clock = policy, clock
        self._pg = engine.dialect.name == "postgresql"
        self._scanning = threading.Lock()
        self._reviewed: dict[str, datetime] = {}  # stage_over_benchmark: last review (tower time)
        # predicted_late: the network's recent average stage durations, per scan
        self._expected_h: dict[tuple[str, str], float] = {}
        self._check(book)

    def _check(self, book: RuleBook) -> None:
        """Rule figures that name flows, stages or teams must match flows.toml and [response]."""
        where = book.path or "rules"
        teams = set(self.policy.teams)
        for owner in sorted({s.owner for f in self.flows.flows for s in f.stages}):
            if book.team_of_owner(owner) not in teams:
                raise RuleConfigError(f"{where}: rule_engine.owner_teams.{owner}: "
                                      f"{book.team_of_owner(owner)!r} is not one of [response].teams")
        stages = self.flows.all_stage_ids
        for rule in book.rules:
            if rule.team != STAGE_OWNER and rule.team not in teams:
                raise RuleConfigError(f"{where}: rules.{rule.id}.team: {rule.team!r} is not one of "
                                      "[response].teams")
            p = rule.params
            named: list[str] = []
            if isinstance(p, StageNoUpdateParams):
                named = list(p.limits)
            elif isinstance(p, StageUnconfirmedParams):
                named = [p.stage]
            for stage in named:
                if stage not in stages:
                    raise RuleConfigError(f"{where}: rules.{rule.id}.params: stage {stage!r} is not "
                                          "a stage of any flow")
            if isinstance(p, TrackingMissingParams):
                for flow in p.flows:
                    if flow not in self.flows.by_id:
                        raise RuleConfigError(
                            f"{where}: rules.{rule.id}.params.flows: {flow!r} is not a flow")

    # --- who, how urgent ----------------------------------------------------------------

    def team(self, rule: Rule, flow: str | None = None, stage: str | None = None) -> str:
        if rule.team != STAGE_OWNER:
            return rule.team
        if flow is not None and stage is not None and flow in self.flows.by_id:
            return self.book.team_of_owner(self.flows.by_id[flow].stage(stage).owner)
        return self.book.engine.default_team

    def order_trigger(self, rule: Rule, v: cond.OrderView, found: cond.Finding) -> Trigger:
        stage = found.stage or v.stage
        return Trigger(
            rule=rule.id, scope_key=order_scope(v.order_id), tier=rule.tier,
            team=self.team(rule, v.flow, stage), title=found.title, condition_since=found.since,
            order_id=v.order_id, flow=v.flow, stage=stage, high_priority=rule.high(rush=v.rush),
            detail=dict(found.detail),
        )

    def finding(self, rule: Rule, v: cond.OrderView, now: datetime) -> cond.Finding | None:
        """Whether ``rule``'s order condition holds for ``v`` at ``now``."""
        p = rule.params
        c = rule.condition
        if c == "stage_over_budget":
            return cond.stage_over_budget(v, now, self.flows)
        if c == "stage_no_update":
            return cond.stage_no_update(v, now, cast(StageNoUpdateParams, p).limits)
        if c == "stage_unconfirmed":
            q = cast(StageUnconfirmedParams, p)
            return cond.stage_unconfirmed(v, now, stage=q.stage, within=q.within, evidence=q.evidence)
        if c == "tracking_missing":
            t = cast(TrackingMissingParams, p)
            return cond.tracking_missing(v, now, within=t.within, flows=t.flows)
        if c == "predicted_late":
            return cond.predicted_late(v, now, self.flows, cast(PredictedLateParams, p).margin,
                                       self._expected_h)
        if c == "handoff_without_evidence":
            return cond.handoff_without_evidence(v, now, self.flows)
        raise ValueError(f"{c} is not an order condition")  # pragma: no cover

    # --- actions --------------------------------------------------------------------------

    def act(self, conn: Connection, rule: Rule, trigger: Trigger, exception_id: str, *, now: datetime,
            eta: datetime | None) -> None:
        """What a rule does when it opens an exception, in the same transaction."""
        if rule.action == "freeze_order" and trigger.order_id is not None:
            conn.execute(update(ORDERS).where(ORDERS.c.order_id == trigger.order_id).values(frozen=True))
            params = cast(ColdChainParams, rule.params)
            next_update = now + params.next_update_in
            when = eta or _parse(trigger.detail.get("eta"))
            enqueue_delay(conn, order_id=trigger.order_id, step=params.step, next_update_at=next_update,
                          eta=when, at=now)

    # --- state rules: the projector listener ------------------------------------------------

    def on_batch(self, result: ApplyResult) -> None:
        """Check the state rules on a committed batch (a projector listener)."""
        if not result.new_events and not result.changed_orders:
            return
        orders: dict[str, OrderState] = {s.order_id: s for s in result.changed_orders}
        readings, stock, reroutes, moved = self._batch_events(result.new_events, orders)
        order_rules = [r for c in BATCH_ORDER_CONDITIONS for r in self.book.of(c)
                       if r.on_events or r.condition not in SCANNED_ORDER_CONDITIONS]
        cold_rules = self.book.of("cold_chain_excursion")
        stock_rules = self.book.of("stock_out")
        parcel_rules = self.book.of("parcel_stuck")
        held = [r for r in order_rules if r.hold_down and r.condition not in SCANNED_ORDER_CONDITIONS]
        summary = ScanSummary(at=self.clock.now())
        with self.engine.begin() as conn:
            work = _Work(self, conn, summary.at, summary)
            opened = reads.open_exceptions_of_orders(conn, list(orders))
            open_keys = {(x.rule, x.scope_key): x for x in opened}
            pending_rules = [r.id for r in (*held, *cold_rules)]
            # Hold-downs of the orders that can have one in this batch (with readings, or all
            # the orders when a state rule on orders has a hold-down).
            watched = orders if held else readings
            pending = reads.pending_of(conn, pending_rules, [order_scope(o) for o in watched])
            changed_pending: dict[tuple[str, str], reads.Pending | None] = {}
            for state in orders.values():
                self._order_rules(work, order_rules, state, open_keys, pending, changed_pending)
            for rule in cold_rules:
                self._cold_chain(work, rule, readings, orders, pending, changed_pending)
            for rule in stock_rules:
                self._stock_out(work, rule, stock, reroutes)
            for rule in parcel_rules:
                self._parcels_moved(work, rule, moved)
            self._write_pending(conn, changed_pending)

    def _batch_events(self, events: Iterable[EventRecord], orders: Mapping[str, OrderState]
                      ) -> tuple[dict[str, list[EventRecord]], dict[tuple[str, str], EventRecord],
                                 list[EventRecord], dict[str, EventRecord]]:
        readings: dict[str, list[EventRecord]] = defaultdict(list)
        stock: dict[tuple[str, str], EventRecord] = {}
        reroutes: list[EventRecord] = []
        moved: dict[str, EventRecord] = {}
        for e in events:
            kind = e.type
            if kind == "sensor.reading":
                if e.order_id is not None and e.order_id in orders:
                    readings[e.order_id].append(e)
            elif kind == "parcel.scanned":
                parcel = e.parcel_id
                status = e.payload.get("status")
                if parcel is not None and (status in LEAVES_HUB or status == "arrived_hub"):
                    last = moved.get(parcel)
                    if last is None or e.sort_key() > last.sort_key():
                        moved[parcel] = e
            elif kind == "stock.level":
                key = (str(e.payload["warehouse_id"]), str(e.payload["sku"]))
                last = stock.get(key)
                if last is None or e.sort_key() > last.sort_key():
                    stock[key] = e
            elif kind == "stage.entered" and e.payload.get("rerouted_from"):
                reroutes.append(e)
        return readings, stock, reroutes, moved

    def _order_rules(self, work: _Work, rules: list[Rule], state: OrderState,
                     open_keys: Mapping[tuple[str, str], reads.OpenException],
                     pending: Mapping[tuple[str, str], reads.Pending],
                     changed: dict[tuple[str, str], reads.Pending | None]) -> None:
        v = cond.OrderView.of(state)
        at = v.last_event_at
        scope = order_scope(v.order_id)
        for rule in rules:
            found = self.finding(rule, v, at)
            key = (rule.id, scope)
            if found is None:
                if key in open_keys:
                    work.clear(rule, scope, "condition cleared")
                if key in pending:
                    changed[key] = None
                continue
            if key in open_keys:
                continue  # a level, not a new occurrence: no bump for every event
            trigger = self.order_trigger(rule, v, found)
            if rule.condition in SCANNED_ORDER_CONDITIONS:
                # The scan fires it once the hold-down has passed, if it still holds.
                if at - found.since >= rule.hold_down:
                    work.fire(rule, trigger)
                continue
            self._observe(work, rule, trigger, at, pending, changed)

    def _observe(self, work: _Work, rule: Rule, trigger: Trigger, at: datetime,
                 pending: Mapping[tuple[str, str], reads.Pending],
                 changed: dict[tuple[str, str], reads.Pending | None], *,
                 eta: datetime | None = None) -> None:
        """A condition seen at event time ``at``: fire once it has held for the hold-down."""
        key = (rule.id, trigger.scope_key)
        held = changed.get(key, pending.get(key)) if key in changed or key in pending else None
        since = min(held.since, trigger.condition_since) if held else trigger.condition_since
        if at - since >= rule.hold_down:
            work.fire(rule, _with_since(trigger, since), eta=eta)
            if held is not None:
                changed[key] = None
            return
        data = _trigger_data(trigger)
        if eta is not None:
            data["detail"] = {**data["detail"], "eta": eta.isoformat()}
        changed[key] = reads.Pending(rule.id, trigger.scope_key, since, max(at, since), data)

    def _cold_chain(self, work: _Work, rule: Rule, readings: Mapping[str, list[EventRecord]],
                    orders: Mapping[str, OrderState], pending: Mapping[tuple[str, str], reads.Pending],
                    changed: dict[tuple[str, str], reads.Pending | None]) -> None:
        params = cast(ColdChainParams, rule.params)
        for order_id, events in readings.items():
            state = orders[order_id]
            if state.cold_chain is None:
                continue
            low, high = state.cold_chain
            v = cond.OrderView.of(state)
            scope = order_scope(order_id)
            key = (rule.id, scope)
            for e in sorted(events, key=EventRecord.sort_key):
                if e.payload.get("kind") != params.kind:
                    continue
                value = float(e.payload["value"])
                if not cond.out_of_range(value, low, high):
                    # Back in range inside the hold-down: nothing fires. (A fired excursion
                    # stays open: a person checks the goods and ends it.)
                    if key in pending or key in changed:
                        changed[key] = None
                    continue
                trigger = Trigger(
                    rule=rule.id, scope_key=scope, tier=rule.tier, team=self.team(rule, v.flow, v.stage),
                    title=f"{order_id}: {params.kind} {value:g} outside {low:g}..{high:g}; order frozen",
                    condition_since=e.occurred_at, order_id=order_id, parcel_id=e.parcel_id,
                    flow=v.flow, stage=v.stage, high_priority=rule.high(rush=v.rush),
                    detail={"froze_order": True, "value": value, "range": [low, high],
                            "sensor_id": e.payload.get("sensor_id"), "kind": params.kind},
                )
                eta = order_eta(state, self.flows, e.occurred_at)  # as the milestone pushes tell it
                self._observe(work, rule, trigger, e.occurred_at, pending, changed, eta=eta)

    def _stock_out(self, work: _Work, rule: Rule, stock: Mapping[tuple[str, str], EventRecord],
                   reroutes: list[EventRecord]) -> None:
        backups = cast(StockOutParams, rule.params).backups
        for e in reroutes:
            assert e.order_id is not None
            source, site = str(e.payload["rerouted_from"]), e.payload.get("site")
            note = f"order {e.order_id} rerouted by the source from {source} to {site or 'its backup'}"
            trigger = Trigger(rule=rule.id, scope_key=order_scope(e.order_id), tier=rule.tier,
                              team=self.team(rule), title=f"{e.order_id}: stock-out at {source}",
                              condition_since=e.occurred_at, order_id=e.order_id, stage=e.stage,
                              detail={"warehouse_id": source, "rerouted_to": site, "by": e.source},
                              action=note)
            work.fire(rule, trigger)
            work.clear(rule, trigger.scope_key, "handled: rerouted to the backup warehouse")
        for (house, sku), e in sorted(stock.items()):
            scope = f"stock:{house}/{sku}"
            if int(e.payload["on_hand"]) > 0:
                work.clear(rule, scope, f"{house} has {sku} again")
                continue
            backup = backups.get(house)
            if backup is None:
                continue  # no backup configured: nothing the system can do by itself
            note = f"orders for {sku} at {house} rerouted to {backup} (warehouse.reroute sent to the WMS)"
            trigger = Trigger(rule=rule.id, scope_key=scope, tier=rule.tier, team=self.team(rule),
                              title=f"{house} out of {sku}: rerouting to {backup}",
                              condition_since=e.occurred_at,
                              detail={"warehouse_id": house, "sku": sku, "backup_warehouse_id": backup,
                                      "on_hand": int(e.payload["on_hand"])}, action=note)
            raised = work.fire(rule, trigger)
            if raised.created:
                outbox.enqueue(work.conn, topic="warehouse.reroute", at=work.now,
                               dedupe_key=f"reroute:{house}:{sku}:{e.event_id}",
                               payload={"warehouse_id": house, "sku": sku, "backup_warehouse_id": backup,
                                        "since": e.occurred_at.isoformat(), "exception_id": raised.id})

    def _parcels_moved(self, work: _Work, rule: Rule, moved: Mapping[str, EventRecord]) -> None:
        if not moved:
            return
        keys = [f"{rule.id}|parcel:{p}" for p in moved]
        for x in reads.open_exceptions_by_key(work.conn, keys):
            e = moved[x.scope_key.removeprefix("parcel:")]
            if e.payload.get("status") == "arrived_hub" and e.payload.get("hub_id") == x.hub_id:
                continue  # the same arrival reported again: still there
            work.clear(rule, x.scope_key, f"parcel scanned {e.payload.get('status')}")

    def _write_pending(self, conn: Connection,
                       changed: Mapping[tuple[str, str], reads.Pending | None]) -> None:
        for (rule, scope), p in changed.items():
            if p is None:
                conn.execute(delete(PENDING).where(PENDING.c.rule == rule, PENDING.c.scope_key == scope))
                continue
            values = {"rule": rule, "scope_key": scope, "since": p.since, "last_seen_at": p.last_seen_at,
                      "data": p.data}
            ins: Any = pg_insert(PENDING) if conn.dialect.name == "postgresql" else sqlite_insert(PENDING)
            conn.execute(ins.values(**values).on_conflict_do_update(
                index_elements=["rule", "scope_key"],
                set_={"since": p.since, "last_seen_at": p.last_seen_at, "data": p.data}))

    # --- absence rules: the scheduled scan ------------------------------------------------------

    def scan(self, now: datetime | None = None) -> ScanSummary:
        """Check the absence rules at ``now`` (default the tower's clock), fire hold-downs
        that have run out, and auto-resolve what no longer holds."""
        now = now or self.clock.now()
        summary = ScanSummary(at=now)
        started = time.perf_counter()
        if not self._scanning.acquire(blocking=False):
            summary.skipped = True
            return summary
        try:
            if self._pg:
                with self.engine.connect() as lock:
                    got = lock.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": SCAN_LOCK}).scalar()
                    lock.commit()
                    if not got:
                        summary.skipped = True
                        return summary
                    try:
                        self._scan(now, summary)
                    finally:
                        lock.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": SCAN_LOCK})
                        lock.commit()
            else:
                self._scan(now, summary)
        finally:
            self._scanning.release()
            summary.seconds = time.perf_counter() - started
        return summary

    def _scan(self, now: datetime, summary: ScanSummary) -> None:
        # Hub warnings before stuck parcels: a parcel is grouped under a warning raised now.
        steps: list[tuple[str, Callable[[_Work], None]]] = [("hold-downs", self._scan_pending)]
        steps += [(r.id, partial(self._scan_hubs, rule=r)) for r in self.book.of("hub_retention")]
        steps += [(r.id, partial(self._scan_parcels, rule=r)) for r in self.book.of("parcel_stuck")]
        steps.append(("orders", self._scan_orders))
        steps += [(r.id, partial(self._scan_benchmarks, rule=r))
                  for r in self.book.of("stage_over_benchmark")]
        for name, step in steps:
            try:
                with self.engine.begin() as conn:
                    step(_Work(self, conn, now, summary))
            except Exception:
                # One failing rule must not keep the others from running.
                log.exception("rule scan step %s failed", name)

    def _scan_pending(self, work: _Work) -> None:
        for rule in self.book.enabled:
            if not rule.hold_down or rule.condition in SCANNED_ORDER_CONDITIONS:
                continue
            for p in reads.pending_due(work.conn, rule.id, since_before=work.now - rule.hold_down):
                trigger = _trigger_of(p.data, since=p.since)
                work.fire(rule, trigger)
                work.summary.fired_pending += 1
                work.conn.execute(delete(PENDING).where(PENDING.c.rule == p.rule,
                                                        PENDING.c.scope_key == p.scope_key))

    def _reconcile(self, work: _Work, rule: Rule, found: Mapping[str, Trigger], note: str) -> None:
        """Fire what holds and is not open yet; clear what is open and no longer holds."""
        opened = open_scopes(work.conn, rule=rule.id)
        for scope, trigger in found.items():
            if scope not in opened and work.now - trigger.condition_since >= rule.hold_down:
                work.fire(rule, trigger)
        for scope in opened.keys() - found.keys():
            work.clear(rule, scope, note)

    def _scan_orders(self, work: _Work) -> None:
        rules = [r for c in SCANNED_ORDER_CONDITIONS for r in self.book.of(c)]
        if not rules:
            return
        found: dict[str, dict[str, Trigger]] = {r.id: {} for r in rules}
        self._expected_h = {}
        for rule in rules:
            if rule.condition == "predicted_late":
                q = cast(PredictedLateParams, rule.params)
                self._expected_h = {
                    (a.flow, a.stage): a.avg_h
                    for a in reads.stage_averages(work.conn, since=work.now - q.expected_over, until=work.now)
                    if a.visits >= q.min_visits
                }
        for v in reads.orders_in_progress(work.conn, self.flows):
            for rule in rules:
                hit = self.finding(rule, v, work.now)
                if hit is not None:
                    found[rule.id][order_scope(v.order_id)] = self.order_trigger(rule, v, hit)
        for rule in rules:
            self._reconcile(work, rule, found[rule.id], "condition cleared")

    def _scan_hubs(self, work: _Work, *, rule: Rule) -> None:
        p = cast(HubRetentionParams, rule.params)
        hubs = self.figures.hubs
        limit = timedelta(hours=hubs.dwell_limit_h)
        share = hubs.retention_warn_share if p.share is None else p.share
        end = work.now - limit
        found: dict[str, Trigger] = {}
        for c in reads.hub_cohorts(work.conn, start=end - p.window, end=end, dwell_limit=limit):
            rate = cond.retention_rate(c.arrivals, c.retained, share=share, min_arrivals=p.min_arrivals)
            if rate is None:
                continue
            scope = f"hub:{c.hub_id}"
            found[scope] = Trigger(
                rule=rule.id, scope_key=scope, tier=rule.tier, team=self.team(rule),
                title=f"hub {c.hub_id}: {rate:.0%} of parcels retained (warning above {share:.0%})",
                condition_since=end, hub_id=c.hub_id, high_priority=rule.high(rush=False),
                detail={"retention_rate": round(rate, 4), "arrivals": c.arrivals, "retained": c.retained,
                        "share": share, "window_start": (end - p.window).isoformat(),
                        "window_end": end.isoformat(), "dwell_limit_h": hubs.dwell_limit_h},
            )
        self._reconcile(work, rule, found, "retention back under the warning share")

    def _scan_parcels(self, work: _Work, *, rule: Rule) -> None:
        p = cast(ParcelStuckParams, rule.params)
        limit = p.limit if p.limit is not None else timedelta(hours=self.figures.hubs.dwell_limit_h)
        parents: dict[str, str] = {}
        for inhibitor in p.inhibited_by:
            for scope, ex_id in open_scopes(work.conn, rule=inhibitor).items():
                parents.setdefault(scope, ex_id)
        found: dict[str, Trigger] = {}
        # Parcels no scan has seen for longer than the limit, wherever they were last
        # (lost, held at a delivery station, between hubs); a parcel still at a hub is
        # timed from its arrival there below (scans at the same hub do not move it).
        for silent in reads.parcels_silent_since(work.conn, before=work.now - limit):
            scope = f"parcel:{silent.parcel_id}"
            where = silent.hub_id if silent.status == "arrived_hub" and silent.hub_id else None
            found[scope] = Trigger(
                rule=rule.id, scope_key=scope, tier=rule.tier, team=self.team(rule),
                title=f"parcel {silent.parcel_id}: no scan for "
                      f"{(work.now - silent.last_scan_at).total_seconds() / 3600:.0f} h "
                      f"(last: {silent.status}{' at ' + silent.hub_id if silent.hub_id else ''})",
                condition_since=silent.last_scan_at + limit, parcel_id=silent.parcel_id, hub_id=where,
                high_priority=rule.high(rush=False),
                parent_id=parents.get(f"hub:{where}") if where else None,
                detail={"last_scan_at": silent.last_scan_at.isoformat(), "last_status": silent.status,
                        "limit_h": limit.total_seconds() / 3600},
            )
        for visit in reads.parcels_at_hubs_since(work.conn, before=work.now - limit):
            scope = f"parcel:{visit.parcel_id}"
            found[scope] = Trigger(
                rule=rule.id, scope_key=scope, tier=rule.tier, team=self.team(rule),
                title=f"parcel {visit.parcel_id} at {visit.hub_id} for "
                      f"{(work.now - visit.arrived_at).total_seconds() / 3600:.0f} h",
                condition_since=visit.arrived_at + limit, parcel_id=visit.parcel_id, hub_id=visit.hub_id,
                high_priority=rule.high(rush=False), parent_id=parents.get(f"hub:{visit.hub_id}"),
                detail={"arrived_at": visit.arrived_at.isoformat(), "limit_h": limit.total_seconds() / 3600},
            )
        self._reconcile(work, rule, found, "parcel moved on")

    def _scan_benchmarks(self, work: _Work, *, rule: Rule) -> None:
        p = cast(StageOverBenchmarkParams, rule.params)
        last = self._reviewed.get(rule.id)
        if last is not None and work.now - last < p.every and work.now >= last:
            return
        self._reviewed[rule.id] = work.now
        found: dict[str, Trigger] = {}
        for a in reads.stage_averages(work.conn, since=work.now - p.period, until=work.now):
            flow = self.flows.by_id.get(a.flow)
            if flow is None or a.stage not in flow.stage_index:
                continue
            benchmark = p.benchmarks_h.get(f"{a.flow}/{a.stage}", flow.stage(a.stage).budget_h)
            if not cond.over_benchmark(a.avg_h, benchmark, over_share=p.over_share, visits=a.visits,
                                       min_visits=p.min_visits):
                continue
            scope = f"stage:{a.flow}/{a.stage}"
            found[scope] = Trigger(
                rule=rule.id, scope_key=scope, tier=rule.tier, team=self.team(rule, a.flow, a.stage),
                title=f"{a.flow}/{a.stage}: average {a.avg_h:.1f} h over {p.period.days or 1} d, "
                      f"benchmark {benchmark:g} h (+{a.avg_h / benchmark - 1:.0%})",
                condition_since=work.now - p.period, flow=a.flow, stage=a.stage,
                detail={"improvement": True, "avg_h": round(a.avg_h, 2), "benchmark_h": benchmark,
                        "visits": a.visits, "period_h": p.period.total_seconds() / 3600},
            )
        self._reconcile(work, rule, found, "average back within the benchmark")


# --- helpers -----------------------------------------------------------------------------------


def _parse(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _with_since(trigger: Trigger, since: datetime) -> Trigger:
    if since == trigger.condition_since:
        return trigger
    return Trigger(**{**_fields(trigger), "condition_since": since})


def _fields(trigger: Trigger) -> dict[str, Any]:
    return {name: getattr(trigger, name) for name in Trigger.__dataclass_fields__}


def _trigger_data(trigger: Trigger) -> dict[str, Any]:
    """A trigger as JSON, kept with its hold-down so a scan can fire it."""
    data = _fields(trigger)
    data["condition_since"] = trigger.condition_since.isoformat()
    data["detail"] = dict(trigger.detail)
    return data


def _trigger_of(data: Mapping[str, Any], *, since: datetime) -> Trigger:
    fields = {k: v for k, v in data.items() if k in Trigger.__dataclass_fields__}
    fields["condition_since"] = since
    return Trigger(**fields)
