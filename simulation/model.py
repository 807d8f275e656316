"""The SimPy model of the order network: orders flow through staffed stages, warehouses
and carriers, and the run speaks the v1 events of EVENTS.md.

One order is one SimPy process that reads like the operation::

    created -> for each worked stage of its flow:
                   wait for the hand-off evidence the stage's gates ask for
                   take the items from the warehouse (reroute to the backup when short)
                   enter, queue for a server on shift (rush first), work, maybe redo (QC)
                   upload evidence for later gates (now, or late)
            -> hand over to a carrier: tracking number, hubs, last mile (see shipping)
            -> delivered | lost            (or cancelled by the customer before hand-over)

:func:`simulate` runs one replication and returns its results
(:class:`~simulation.records.RunResult`: streaming tallies, usage integrals, counts,
ground truth; flat records per visit and order only when asked for); :class:`Model`
is the same run in steps, for a live feed. Randomness comes from named streams (see
:mod:`simulation.streams`), so the same scenario, seed and replication give the same
results and byte-identical events, and variants share their random numbers stage by
stage.

The statistics are the same with or without a ``sink``: payload-only details
(customer, items) are drawn only where they cannot change the dynamics.

SimPy events processed (``RunResult.sim_events``) are counted without touching the
event loop: every scheduled event takes the next number of the environment's event
counter (``Environment._eid``), so processed = scheduled - still queued.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import functools
import gc
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import simpy

from simulation.calendar import always, hours_since, working_windows
from simulation.demand import arrival_times, rate_segments
from simulation.distributions import Exponential
from simulation.emitter import Emitter
from simulation.network import Network
from simulation.order import Order
from simulation.records import GroundTruth, OrderOutcome, ResourceUsage, RunResult, StageVisit
from simulation.scenario import (
    CompressorFailure,
    HubOutage,
    Scenario,
    StageModel,
    StockOut,
    SupplierDelay,
)
from simulation.shipping import DELIVERED, Shipping
from simulation.station import Station
from simulation.stock import Warehouse
from simulation.streams import Draws, Streams, Uniform, cumulative
from simulation.tally import LeadTally, RunTally, StageTally
from simulation.world import Customer, World, build_world, distance_km, locate
from tower.flows import Flow, FlowBook

Sink = Callable[[dict[str, Any]], None]
Steps = Generator[simpy.Event, Any, None]

#: Which system reports a stage, by the owner of the stage in the flows.
SOURCE_BY_OWNER = {"customer_service": "erp", "sales": "erp", "procurement": "erp", "planning": "erp",
                   "warehouse": "wms", "logistics": "wms", "production": "mes", "quality": "mes"}
ORDER_SOURCE = "erp"
#: The owner of the stages that buy from suppliers (their events carry ``supplier_id``).
PROCUREMENT = "procurement"
CANCEL_REASON = "customer_request"


# --- the plan: what every stage and flow needs at run time, built once -----------------


@dataclass(slots=True, frozen=True)
class SupplierWindow:
    """A supplier delay on one stage: its place in the scenario's disruptions, its window,
    the late supplier (None: every supplier) and the extra wait."""

    index: int
    start_h: float
    end_h: float
    supplier: str | None
    extra: Draws


@dataclass(slots=True)
class StagePlan:
    """One worked stage of one flow, ready to run."""

    flow: str
    stage: str
    resource: str
    source: str
    site: str | None
    station: Station
    service: Draws
    rework_p: float
    rework: Uniform
    picks: bool
    gates: tuple[tuple[str, str], ...]        # (from_stage, kind) to have before entering
    uploads: tuple[str, ...]                  # evidence kinds this stage uploads for later gates
    buys: bool  # the stage buys from a supplier: its events name the order's supplier
    supplier_delays: list[SupplierWindow]
    tally: StageTally


@dataclass(slots=True)
class FlowPlan:
    """A flow of the mix: its worked stages, its carrier stage, promise and order details."""

    flow: Flow
    code: str
    worked: list[StagePlan]
    transit: str | None
    promise_h: float
    custom_share: float
    cold_chain_share: float
    qty: tuple[int, int]
    channels: tuple[str, ...]
    gated: bool  # some stage uploads evidence for a later gate
    transit_tally: StageTally | None  # the carrier stage's visits, if the flow has one


@dataclass(slots=True, frozen=True)
class Shares:
    """The order mix shares and promise factors, drawn from once per order."""

    rush: float
    cancel: float
    custom_factor: float  # promise x this for custom orders (1 + custom_buffer)
    rush_factor: float    # promise x this for rush orders (rush_budget_factor)


def _forget(_: GroundTruth) -> None:
    """Where per-order ground truth goes when the model keeps none."""


def _window_h(start: datetime, a: datetime, b: datetime) -> tuple[float, float]:
    return hours_since(start, a), hours_since(start, b)


class Model:
    """One replication of a scenario, built and ready to run (see :func:`simulate`).

    The statistics are kept as the run goes, in flat memory (:mod:`simulation.tally`):
    a tally per stage and per flow, usage integrals per station, event counts.
    ``records=True`` also keeps a flat record per stage visit and per order (memory
    grows with the run: for tests and exact checks of short runs). ``ground_truth=False``
    keeps no per-order ground truth (a live feed that runs for weeks; the injected
    windows are kept). ``world`` may be passed to reuse master data.
    """

    def __init__(self, scenario: Scenario, flows: FlowBook, *, seed: int, replication: int = 0,
                 days: float | None = None, warmup_days: float | None = None, sink: Sink | None = None,
                 world: World | None = None, records: bool = False, ground_truth: bool = True) -> None:
        scenario.check_against(flows)
        self.scenario = scenario
        self.flows = flows
        self.seed = seed
        self.replication = replication
        self.warmup_h = 24.0 * (scenario.warmup_days if warmup_days is None else warmup_days)
        self.horizon_h = self.warmup_h + 24.0 * (scenario.horizon_days if days is None else days)
        self.start = scenario.start.astimezone(UTC)
        self.keep_records = records
        self.env = simpy.Environment()
        self.streams = Streams(seed, replication)
        self.emitter = Emitter(run_tag=f"{scenario.name[:24]}-{seed}-{replication}", start=self.start,
                               zone=scenario.zone, sink=sink)
        self.visits: list[StageVisit] = []
        self.orders: list[OrderOutcome] = []
        self.truth: list[GroundTruth] = []
        self.note_truth: Callable[[GroundTruth], None] = self.truth.append if ground_truth else _forget
        self.open: dict[str, Order] = {}
        self.order_no = 0
        self.order_tag = f"{seed}.{replication}"
        self.window_truth: list[tuple[GroundTruth, Callable[[], str]]] = []

        defaults, demand = flows.defaults, scenario.demand
        self.priorities = (defaults.rush_priority, defaults.normal_priority)
        self.mix = self.streams.uniform("mix")
        self.customers = self.streams.uniform("customers")
        self.cosmetic = self.streams.uniform("cosmetic")  # payload-only details (channel): never dynamics
        self.evidence = self.streams.uniform("evidence")
        self.late_upload = self.streams.draws("evidence/late", scenario.evidence.late_after)
        self.cancel_after = self.streams.draws("cancel", scenario.demand.cancel_after)
        self.warehouses = self._warehouses()
        self.stations: list[Station] = []
        self.plans = [self._flow_plan(flows.by_id[name]) for name in scenario.demand.flow_mix]
        self.leads = {p.flow.id: LeadTally(p.flow.id) for p in self.plans}
        self.flow_cum = cumulative(list(scenario.demand.flow_mix.values()))
        self.shares = Shares(rush=demand.rush_share, cancel=demand.cancel_share,
                             custom_factor=1 + defaults.custom_buffer,
                             rush_factor=defaults.rush_budget_factor)
        # orders delayed, by supplier delay (its index in the disruptions) and supplier
        self.supplier_hits: dict[int, dict[str | None, int]] = {}
        self.network: Network | None = None
        self.shipping: Shipping | None = None
        if scenario.logistics:
            self._logistics()
        # Customers and items move the dynamics when they pick stock or choose a route;
        # otherwise they are drawn only for the events (and cannot change the records).
        # Suppliers come from the items: they move the dynamics (and name the ground
        # truth) of a supplier delay.
        self.details_matter = scenario.logistics or any(s.picks or s.supplier_delays
                                                        for p in self.plans for s in p.worked)
        self.details_drawn = self.details_matter or self.emitter.live
        # The Faker world is built only when orders name customers and items (not for
        # a statistics-only run of a network without stock or parcels, e.g. M/M/3).
        self.world = world if world is not None or not self.details_drawn else build_world(scenario, seed)
        self.catalogues = self._catalogues() if self.world is not None else []
        self.sku_supplier = {s.id: s.supplier_id for s in self.world.skus} if self.world is not None else {}
        self.nearest_warehouse: dict[str, Warehouse] = {}
        self.env.process(self._arrivals())

    # --- building -----------------------------------------------------------------------

    def _warehouses(self) -> dict[str, Warehouse]:
        sc = self.scenario
        closures: dict[str, list[tuple[float, float]]] = {}
        for d in sc.disruptions:
            if isinstance(d, StockOut):
                window = _window_h(self.start, d.start, d.end)
                closures.setdefault(d.warehouse, []).append(window)
                self._truth_window("stock_out", d.warehouse, window, lambda: "injected")
        hub_by_city = {h.city: h.id for h in reversed(sc.hubs)}
        houses = {
            w.id: Warehouse(self.env, w, emitter=self.emitter, lead=self.streams.draws(f"restock/{w.id}",
                            w.restock_lead), closures=closures.get(w.id, []), hub_id=hub_by_city.get(w.city))
            for w in sc.warehouses
        }
        for w in sc.warehouses:
            if w.backup is not None:
                houses[w.id].backup = houses[w.backup]
        return houses

    def _flow_plan(self, flow: Flow) -> FlowPlan:
        sc, d = self.scenario, self.scenario.demand
        uploads: dict[str, list[str]] = {}
        for stage in flow.stages:
            for gate in stage.gates:
                uploads.setdefault(gate.from_stage, []).append(gate.kind)
        worked, transit = [], None
        for stage in flow.stages:
            model = sc.stage_model(flow.id, stage.id)
            if model.transit:
                transit = stage.id
                continue
            worked.append(self._stage_plan(flow, model, tuple(uploads.get(stage.id, ()))))
        promise = d.promise_h.get(flow.id, 1.5 * sum(s.budget_h for s in flow.stages))
        cold_flow = sc.logistics and (d.cold_chain_flows is None or flow.id in d.cold_chain_flows)
        cold = d.cold_chain_share if cold_flow else 0.0
        return FlowPlan(
            flow=flow, code=flow.id[:2].upper(), worked=worked, transit=transit, promise_h=promise,
            custom_share=d.custom_share.get(flow.id, 0.0), cold_chain_share=cold,
            qty=d.qty_per_item.get(flow.id, (1, 3)),
            channels=d.channels.get(flow.id, ()), gated=any(s.uploads for s in worked),
            transit_tally=StageTally(flow.id, transit) if transit is not None else None,
        )

    def _stage_plan(self, flow: Flow, model: StageModel, uploads: tuple[str, ...]) -> StagePlan:
        sc = self.scenario
        name = f"{flow.id}/{model.stage}"
        resource = model.resource or model.stage
        station = Station(self.env, flow=flow.id, stage=model.stage, resource=resource,
                          capacity=model.capacity, off_shift_priority=min(self.priorities) - 1,
                          warmup_h=self.warmup_h)
        calendar = sc.calendars[model.calendar] if model.calendar is not None else always()
        if calendar != always():
            windows = working_windows(calendar, sc.zone, self.start, self.horizon_h)
            self.env.process(station.keep_shifts(windows))
        self.stations.append(station)
        delays: list[SupplierWindow] = []
        for k, d in enumerate(sc.disruptions):
            if isinstance(d, SupplierDelay) and d.stage == model.stage:
                start_h, end_h = _window_h(self.start, d.start, d.end)
                delays.append(SupplierWindow(k, start_h, end_h, d.supplier,
                                             self.streams.draws(f"supplier/{name}/{len(delays)}", d.extra)))
        stage = flow.stage(model.stage)
        return StagePlan(
            flow=flow.id, stage=model.stage, resource=resource,
            source=model.source or SOURCE_BY_OWNER.get(stage.owner, "sim"), site=model.site, station=station,
            service=self.streams.draws(f"service/{name}", model.service), rework_p=model.rework_p,
            rework=self.streams.uniform(f"rework/{name}"), picks=model.picks,
            gates=tuple((g.from_stage, g.kind) for g in stage.gates), uploads=uploads,
            buys=stage.owner == PROCUREMENT or bool(delays), supplier_delays=delays,
            tally=StageTally(flow.id, model.stage, {resource}),
        )

    def _logistics(self) -> None:
        sc = self.scenario
        outages: dict[str, list[tuple[float, float]]] = {}
        compressors: list[tuple[float, float, float]] = []
        for d in sc.disruptions:
            if isinstance(d, HubOutage):
                outages.setdefault(d.hub, []).append(_window_h(self.start, d.start, d.end))
            elif isinstance(d, CompressorFailure):
                compressors.append((*_window_h(self.start, d.start, d.end), d.share))
        self.network = network = Network(self.env, sc, self.streams, outages)
        self.shipping = shipping = Shipping(self.env, sc, self.streams, network, self.emitter,
                                            self.note_truth, compressors)
        for site in network.sites.values():
            for i, window in enumerate(site.outages):
                self._truth_window("hub_outage", site.id, window,
                                   functools.partial(lambda s, k: f"parcels held: {s.held[k]}", site, i))
        for k, (a, b, share) in enumerate(compressors):
            self._truth_window("compressor_failure", "cold_chain", (a, b),
                               functools.partial(lambda k, share: f"share {share:g}; parcels hit: "
                                                 f"{shipping.compressor_hits[k]}", k, share))

    def _catalogues(self) -> list[tuple[tuple[str, ...], list[float]]]:
        """SKU ids and popularity (Zipf over the catalogue order) for ambient and cold orders."""
        assert self.world is not None
        world, skew = self.world, self.scenario.demand.sku_skew
        ambient = list(world.ambient_skus) or list(world.skus)
        cold = list(world.cold_skus) or ambient
        return [
            (tuple(s.id for s in skus), cumulative([1.0 / (rank + 1) ** skew for rank in range(len(skus))]))
            for skus in (ambient, cold)
        ]

    def _truth_window(self, kind: str, where: str, window: tuple[float, float],
                      detail: Callable[[], str]) -> None:
        """An injected window; its detail (e.g. parcels held) is filled in at the end."""
        truth = GroundTruth(kind=kind, where=where, start_h=window[0], end_h=window[1])
        self.window_truth.append((truth, detail))

    # --- arrivals -----------------------------------------------------------------------

    def _arrivals(self) -> Steps:
        """Process: new orders as a non-homogeneous Poisson process."""
        env = self.env
        unit = self.streams.draws("arrivals", Exponential(mean_h=1.0))
        segments = rate_segments(self.scenario.demand, self.scenario.zone, self.start, self.horizon_h)
        for t in arrival_times(segments, unit):
            yield env.timeout(t - env.now)
            self._create()

    def _create(self) -> None:
        """A customer places an order: draw its kind, announce it, start its life."""
        mix, now, shares = self.mix, self.env.now, self.shares
        plan = self.plans[mix.pick(self.flow_cum)]
        rush = mix.chance(shares.rush)
        custom = mix.chance(plan.custom_share)
        cold = mix.chance(plan.cold_chain_share)
        cancels = mix.chance(shares.cancel)
        promise = plan.promise_h
        if custom:
            promise *= shares.custom_factor
        if rush:
            promise *= shares.rush_factor
        self.order_no += 1
        o = Order(f"{plan.code}-{self.order_tag}-{self.order_no:07d}", plan.flow.id, now, now + promise, rush,
                  custom, cold, self.priorities[0] if rush else self.priorities[1])
        if self.details_drawn:
            self._draw_details(o, plan)
        if plan.gated:
            o.evidence = {}
        self._announce(o, plan)
        self.open[o.id] = o
        o.process = self.env.process(self._life(o, plan))
        if cancels:
            self.env.timeout(self.cancel_after()).callbacks.append(functools.partial(self._cancel, o))

    def _draw_details(self, o: Order, plan: FlowPlan) -> None:
        """Who ordered what, and so which warehouse serves it."""
        draw, world = self.customers, self.world
        assert world is not None
        customer = world.customers[draw.index(len(world.customers))]
        skus, cum = self.catalogues[1 if o.cold else 0]
        lo, hi = self.scenario.demand.items_per_order
        lines: dict[str, int] = {}
        for _ in range(lo + draw.index(hi - lo + 1)):
            sku = skus[min(bisect.bisect_right(cum, draw()), len(skus) - 1)]
            lines[sku] = lines.get(sku, 0) + plan.qty[0] + draw.index(plan.qty[1] - plan.qty[0] + 1)
        o.customer = customer
        o.items = tuple(lines.items())
        o.warehouse = self._warehouse_for(customer)

    def _warehouse_for(self, customer: Customer) -> Warehouse | None:
        """The warehouse nearest to the customer's city (the first one if none is placed)."""
        if not self.warehouses:
            return None
        found = self.nearest_warehouse.get(customer.city)
        if found is None:
            placed = [(w, self._place(w)) for w in self.warehouses.values()]
            located = [(w, p) for w, p in placed if p is not None]
            if located:
                found = min(located, key=lambda wp: distance_km(customer.lat, customer.lon, *wp[1]))[0]
            else:
                found = next(iter(self.warehouses.values()))
            self.nearest_warehouse[customer.city] = found
        return found

    def _place(self, w: Warehouse) -> tuple[float, float] | None:
        if self.network is not None and w.hub_id is not None:
            hub = self.network.sites[w.hub_id].hub
            return hub.lat, hub.lon
        try:
            city = locate(w.city)
        except KeyError:
            return None
        return city.lat, city.lon

    def _announce(self, o: Order, plan: FlowPlan) -> None:
        em = self.emitter
        if not em.live:
            em.count("order.created")
            return
        payload: dict[str, Any] = {
            "flow": o.flow, "promised_at": em.format(o.promised_h),
            "priority": "rush" if o.rush else "normal", "custom": o.custom,
        }
        if plan.channels:
            payload["channel"] = plan.channels[self.cosmetic.index(len(plan.channels))]
        c = o.customer
        if c is not None:
            payload["customer_id"] = c.id
            payload["customer_name"] = c.name
            payload["destination"] = {"region": c.region, "city": c.city}
        if o.items:
            payload["items"] = [{"sku": sku, "qty": qty} for sku, qty in o.items]
        if o.cold:
            low, high = self.scenario.sensors.range_c
            payload["cold_chain"] = {"min_c": low, "max_c": high}
        em.emit(o.created_h, "order.created", ORDER_SOURCE, o.id, payload)

    # --- the life of an order -------------------------------------------------------------

    def _life(self, o: Order, plan: FlowPlan) -> Steps:
        """Process: one order from creation to delivery, loss or cancellation."""
        try:
            for stage in plan.worked:
                if stage.gates:
                    yield from self._gate(o, stage)
                if stage.picks:
                    yield from self._pick(o, stage)
                yield from self._work(o, stage)
            o.shipped = True
        except simpy.Interrupt:
            self._cancelled(o)
            return
        if self.shipping is None:
            self._finish(o, DELIVERED)
            return
        handed = self.env.now
        origin, destination = self._route_ends(o)
        ended, picked_up, carrier = yield from self.shipping.deliver(o, origin, destination, plan.transit)
        transit = plan.transit_tally
        if transit is not None and ended == DELIVERED and handed >= self.warmup_h:
            now = self.env.now
            transit.resources.add(carrier)
            transit.add(picked_up - handed, now - picked_up)
            if self.keep_records:
                self.visits.append(StageVisit(o.id, o.flow, transit.stage, carrier, o.rush, handed, picked_up,
                                              now, False))
        self._finish(o, ended)

    def _gate(self, o: Order, stage: StagePlan) -> Steps:
        """Hold the order until the evidence the stage's gates ask for is uploaded."""
        assert o.evidence is not None
        for key in stage.gates:
            upload = o.evidence.get(key)
            if upload is not None:
                yield upload

    def _pick(self, o: Order, stage: StagePlan) -> Steps:
        """Take the items from the order's warehouse; when it is short, from the backup."""
        short_since: float | None = None
        missing = ""
        while True:
            house = o.warehouse
            assert house is not None
            sku = house.short_of(o.items)
            if sku is None:
                house.take(o.items)
                if short_since is not None:
                    self._stock_truth(o, house.id, short_since, f"waited for stock of {missing}")
                return
            house.found_short(sku)
            backup = house.backup
            if backup is not None and backup.short_of(o.items) is None:
                backup.take(o.items)
                o.rerouted_from, o.warehouse = house.id, backup
                self._stock_truth(o, house.id, self.env.now if short_since is None else short_since,
                                  f"sku {sku}; rerouted to {backup.id}")
                return
            if short_since is None:
                short_since, missing = self.env.now, sku
            yield house.next_chance()

    def _stock_truth(self, o: Order, warehouse: str, since: float, detail: str) -> None:
        self.note_truth(GroundTruth(kind="stock_out", where=warehouse, start_h=since, end_h=self.env.now,
                                      detail=detail, order_id=o.id))

    def _site(self, o: Order, stage: StagePlan) -> str | None:
        if stage.site is not None:
            return stage.site
        return o.warehouse.id if o.warehouse is not None else None

    def _work(self, o: Order, stage: StagePlan) -> Steps:
        """Enter the stage, queue for a server, work; redo when QC fails; complete."""
        env, em, station = self.env, self.emitter, stage.station
        site = self._site(o, stage) if em.live else None
        tags = None
        if stage.buys and em.live and self._supplier_of(o) is not None:
            tags = {"supplier_id": o.supplier}
        if stage.picks and o.rerouted_from is not None:
            em.stage(env.now, "stage.entered", stage.source, o.id, stage.stage, stage.resource, site,
                     tags, rerouted_from=o.rerouted_from)
        else:
            em.stage(env.now, "stage.entered", stage.source, o.id, stage.stage, stage.resource, site, tags)
        arrived, rework = env.now, False
        while True:
            request = station.request(o.priority)
            try:
                if not request.triggered:  # granted at once when a server is free: no need to wait
                    yield request
                started = env.now
                if rework:
                    em.stage(started, "stage.started", stage.source, o.id, stage.stage, stage.resource, site,
                             tags, rework=True)
                else:
                    em.stage(started, "stage.started", stage.source, o.id, stage.stage, stage.resource, site,
                             tags)
                yield env.timeout(stage.service())
            except simpy.Interrupt:
                station.withdraw(request)
                raise
            station.release(request)
            if not (stage.rework_p and stage.rework.chance(stage.rework_p)):
                break
            self._visit(o, stage, arrived, started, env.now, rework)  # failed QC: the work is redone
            arrived, rework = env.now, True
        if stage.supplier_delays:
            yield from self._supplier_wait(o, stage)
        em.stage(env.now, "stage.completed", stage.source, o.id, stage.stage, stage.resource, site, tags)
        self._visit(o, stage, arrived, started, env.now, rework)
        if stage.uploads:
            self._upload(o, stage)

    def _supplier_of(self, o: Order) -> str | None:
        """The supplier of the order's largest line (the first of equals); None without items."""
        if o.supplier is None and o.items:
            sku = max(o.items, key=lambda line: line[1])[0]
            o.supplier = self.sku_supplier.get(sku)
        return o.supplier

    def _supplier_wait(self, o: Order, stage: StagePlan) -> Steps:
        """The order's supplier, late in a delay window, keeps the order in the stage (no
        server held)."""
        now = self.env.now
        supplier = self._supplier_of(o)
        extra = 0.0
        for late in stage.supplier_delays:
            if late.start_h <= now < late.end_h and late.supplier in (None, supplier):
                extra += late.extra()
                hits = self.supplier_hits.setdefault(late.index, {})
                hits[supplier] = hits.get(supplier, 0) + 1
        if extra > 0:
            yield self.env.timeout(extra)

    def _visit(self, o: Order, stage: StagePlan, arrived: float, started: float, finished: float,
               rework: bool) -> None:
        if arrived >= self.warmup_h:
            stage.tally.add(started - arrived, finished - started)
            if self.keep_records:
                self.visits.append(StageVisit(o.id, stage.flow, stage.stage, stage.resource, o.rush, arrived,
                                              started, finished, rework))

    def _upload(self, o: Order, stage: StagePlan) -> None:
        """Evidence for later gates: uploaded on completion, or (``late_p``) some hours late."""
        assert o.evidence is not None
        for kind in stage.uploads:
            key = (stage.stage, kind)
            if not self.evidence.chance(self.scenario.evidence.late_p):
                o.evidence[key] = None
                self._evidence_event(o, stage, kind)
                continue
            late = self.late_upload()
            now = self.env.now
            uploaded = o.evidence[key] = self.env.event()
            self.note_truth(GroundTruth(kind="missing_evidence", where=stage.stage, start_h=now,
                                          end_h=now + late, detail=kind, order_id=o.id))
            self.env.timeout(late).callbacks.append(
                functools.partial(self._late_upload, o, stage, kind, uploaded))

    def _late_upload(self, o: Order, stage: StagePlan, kind: str, uploaded: simpy.Event, _: object) -> None:
        if not o.cancelled:  # nobody uploads evidence for a cancelled order
            self._evidence_event(o, stage, kind)
        assert o.evidence is not None
        o.evidence[(stage.stage, kind)] = None
        uploaded.succeed()

    def _evidence_event(self, o: Order, stage: StagePlan, kind: str) -> None:
        em = self.emitter
        if not em.live:
            em.count("handoff.evidence")
            return
        url = f"{self.scenario.evidence.url_base}/{kind}/{o.id}/{stage.stage}.jpg"
        em.emit(self.env.now, "handoff.evidence", stage.source, o.id, {"stage": stage.stage, "kind": kind,
                                                                        "url": url})

    def _route_ends(self, o: Order) -> tuple[str, str]:
        """Where the parcel starts (the warehouse's hub) and ends (the customer's hub)."""
        assert self.network is not None
        sites = self.network.sites
        origin = o.warehouse.hub_id if o.warehouse is not None else None
        if origin is None:
            origin = next(iter(sites))  # no warehouse: ship from the first hub
        customer = o.customer
        destination = customer.hub_id if customer is not None else None
        return origin, destination if destination is not None and destination in sites else origin

    # --- endings ----------------------------------------------------------------------------

    def _cancel(self, o: Order, _: object) -> None:
        """The customer cancels; too late once the order is with the carrier."""
        if not o.shipped and o.process is not None and o.process.is_alive:
            o.process.interrupt(CANCEL_REASON)

    def _cancelled(self, o: Order) -> None:
        o.cancelled = True
        em = self.emitter
        if em.live:
            em.emit(self.env.now, "order.cancelled", ORDER_SOURCE, o.id, {"reason": CANCEL_REASON})
        else:
            em.count("order.cancelled")
        self._finish(o, "cancelled")

    def _finish(self, o: Order, status: str) -> None:
        del self.open[o.id]
        if o.created_h >= self.warmup_h:
            now = self.env.now
            lead = self.leads[o.flow]
            if status == DELIVERED:
                lead.delivered_after(now - o.created_h, now <= o.promised_h)
            elif status == "cancelled":
                lead.cancelled += 1
            else:
                lead.lost += 1
            if self.keep_records:
                self.orders.append(OrderOutcome(o.id, o.flow, o.rush, o.custom, o.created_h, o.promised_h,
                                                now, status))

    # --- running ----------------------------------------------------------------------------

    def run(self, until_h: float | None = None) -> None:
        """Advance the simulation to ``until_h`` (default: the horizon), at most to the horizon."""
        until = self.horizon_h if until_h is None else min(until_h, self.horizon_h)
        if until > self.env.now:
            with _young_collections_spaced():
                self.env.run(until=until)

    def sim_events(self) -> int:
        """SimPy events processed so far (scheduled minus still queued)."""
        scheduled: int = next(self.env._eid)
        return scheduled - len(self.env._queue)

    def result(self) -> RunResult:
        """The results of the run so far (call after :meth:`run`): tallies, usage, counts,
        ground truth, and the records if the model keeps them."""
        now = self.env.now
        orders = list(self.orders)
        if self.keep_records:
            orders += [
                OrderOutcome(o.id, o.flow, o.rush, o.custom, o.created_h, o.promised_h, None, "in_progress")
                for o in self.open.values() if o.created_h >= self.warmup_h
            ]
        return RunResult(
            scenario=self.scenario.name, seed=self.seed, replication=self.replication, horizon_h=now,
            warmup_h=self.warmup_h, visits=list(self.visits), orders=orders, resources=self._usage(),
            ground_truth=self._ground_truth(now), event_counts=dict(sorted(self.emitter.counts.items())),
            sim_events=self.sim_events(), tally=self.tally(), records=self.keep_records,
        )

    def tally(self) -> RunTally:
        """A copy of the tallies so far, orders still open counted ``in_progress``."""
        stages = [s.tally for p in self.plans for s in p.worked]
        stages += [t for t in (p.transit_tally for p in self.plans) if t is not None and t.visits]
        leads = {flow: copy.deepcopy(lead) for flow, lead in self.leads.items()}
        for o in self.open.values():
            if o.created_h >= self.warmup_h:
                leads[o.flow].in_progress += 1
        return RunTally(stages=copy.deepcopy(stages), leads=[lead for lead in leads.values() if lead.created])

    def _usage(self) -> list[ResourceUsage]:
        return [s.usage() for s in self.stations]

    def _supplier_truth(self, d: SupplierDelay, k: int, start_h: float, end_h: float) -> list[GroundTruth]:
        """A supplier delay names its supplier (``supplier=SUP-0003``) and the orders it
        delayed; one that made every supplier late, each supplier whose orders waited."""
        hits = self.supplier_hits.get(k, {})
        if d.supplier is not None:
            named = [(d.supplier, hits.get(d.supplier, 0))]
        else:
            named = sorted((s, n) for s, n in hits.items() if s is not None)
            unknown = hits.get(None, 0)
            if unknown or not named:
                named.append(("any", unknown))
        return [GroundTruth("supplier_delay", d.stage, start_h, end_h, f"supplier={s}; orders delayed: {n}")
                for s, n in named]

    def _ground_truth(self, now: float) -> list[GroundTruth]:
        windows = []
        for truth, detail in self.window_truth:
            if truth.start_h < now and truth.end_h >= self.warmup_h:
                windows.append(GroundTruth(truth.kind, truth.where, truth.start_h, truth.end_h, detail()))
        for k, d in enumerate(self.scenario.disruptions):
            if isinstance(d, SupplierDelay):
                a, b = _window_h(self.start, d.start, d.end)
                if a < now and b >= self.warmup_h:
                    windows += self._supplier_truth(d, k, a, b)
        return windows + [t for t in self.truth if t.end_h >= self.warmup_h]


_gc_lock = threading.Lock()
_gc_runs = 0
_gc_saved: tuple[int, int, int] = (700, 10, 10)
#: Allocations between young collections while a model runs (Python's default: 700).
GC_YOUNG_THRESHOLD = 200_000


@contextlib.contextmanager
def _young_collections_spaced() -> Iterator[None]:
    """Run with Python's cyclic garbage collector looking at young objects less often.

    SimPy allocates an event or two per simulated step and a long run keeps millions
    of records, so the default young-generation threshold (700 allocations) spends a
    quarter of the run in the collector, which finds next to nothing: the model's
    garbage is freed by reference counting (a year of the baseline leaves under a
    thousand cyclic objects). Nested and concurrent runs share one setting, restored
    when the last one ends.
    """
    global _gc_runs, _gc_saved
    with _gc_lock:
        if _gc_runs == 0:
            _gc_saved = gc.get_threshold()
            gc.set_threshold(GC_YOUNG_THRESHOLD, *_gc_saved[1:])
        _gc_runs += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_runs -= 1
            if _gc_runs == 0:
                gc.set_threshold(*_gc_saved)


def simulate(scenario: Scenario, flows: FlowBook, *, seed: int, replication: int = 0,
             days: float | None = None, warmup_days: float | None = None,
             sink: Callable[[dict[str, Any]], None] | None = None, records: bool = False) -> RunResult:
    """Run one replication: warm-up plus ``days`` (defaults from the scenario).

    Statistics leave out the warm-up: visits that arrived and orders created before
    it, and usage integrals before it. ``sink`` receives every v1 event (warm-up
    included, so the tower knows every order it later hears of) in ``occurred_at``
    order; without a sink no event is built. ``records=True`` also keeps a record per
    visit and per order (memory grows with the run). Random streams come from
    ``SeedSequence([seed, replication])``.
    """
    model = Model(scenario, flows, seed=seed, replication=replication, days=days, warmup_days=warmup_days,
                  sink=sink, records=records)
    model.run()
    return model.result()

