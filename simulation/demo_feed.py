"""Synthetic live traffic for ``tower demo``, until the SimPy simulator lands.

The feed speaks the v1 event contract (EVENTS.md) and nothing else: it builds raw
event dicts and hands them to a sink (in the demo, ``Ingestor.ingest``).

Time model. The feed's clock *is* the wall clock: every event is stamped with the
moment it is due, so live traffic is never in the future. Each order is planned
whole when it is created, with realistic durations in *model hours* (waiting and
work around the stage budgets of ``data/flows.toml``, hub dwell, road legs), and is
then played at a tempo: its model hours are divided by the tempo.

- ``run`` starts with a history: the orders created in the ``history_h`` hours
  before the real now play at tempo 1, so the board opens on real history with
  real SLA breaches, hub retention and deliveries, and their in-flight remainder
  keeps arriving at real pace. (The tower measures budgets and dwell in real hours,
  so a compressed order never breaches: the breaches come from this history.)
- Orders created from then on play at ``speed`` (simulated seconds per real
  second), so the screens move: at 60 an e-commerce order goes from paid to
  delivered in about an hour of wall time.
- ``generate`` is the offline form: every event stamped in the ``hours`` after
  ``start`` of orders created from ``start`` on, all at ``speed``.

Arrivals (Poisson with an hour-of-day shape), promise dates and stock reports run
on the wall clock at every tempo. Randomness: one ``numpy`` generator per stream,
spawned from ``SeedSequence(seed)``, and a seeded ``Faker``; no global state, so the
same seed and start give the same events.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, TypeVar

import numpy as np
from faker import Faker

from tower.flows import Flow, FlowBook, Stage

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Sources in China stamp local time; the offset is part of every occurred_at.
CST = timezone(timedelta(hours=8), "CST")

# --- the shape of the traffic ---------------------------------------------------------

FLOW_SHARES = {"ecommerce": 0.8, "manufacturing": 0.2}
FLOW_CODES = {"ecommerce": "EC", "manufacturing": "MF"}
RUSH_SHARE = 0.10
CUSTOM_SHARE = {"manufacturing": 0.15}
COLD_CHAIN_SHARE = {"ecommerce": 0.05}
COLD_CHAIN_C = (0.0, 4.0)
CANCEL_SHARE = 0.01
MISSING_EVIDENCE_SHARE = 0.04
SECOND_PARCEL_SHARE = 0.15
TRANSFER_SHARE = 0.5
ATTEMPT_FAIL_SHARE = 0.03
EXCURSION_SHARE = 0.08  # of cold-chain parcels
SENSOR_EVERY_H = 0.5
STOCK_EVERY = timedelta(minutes=10)
#: Customer promise in hours after creation (custom and rush adjust it like budgets).
PROMISE_H = {"ecommerce": 72.0, "manufacturing": 15 * 24.0}
#: A stage's elapsed time is budget x lognormal(ln MEDIAN, SIGMA): ~17 % over budget.
STAGE_MEDIAN, STAGE_SIGMA = 0.72, 0.35
#: Relative order intake per local hour (0-23); normalised to a mean of 1.
HOURLY_SHAPE = (0.6, 0.35, 0.2, 0.15, 0.15, 0.2, 0.35, 0.6, 0.9, 1.15, 1.35, 1.3,
                1.2, 1.2, 1.25, 1.25, 1.2, 1.1, 1.15, 1.4, 1.7, 1.8, 1.5, 1.0)

#: Stage owners that hand parcels to a carrier, and that are the carrier.
SHIP_OWNER, CARRIER_OWNER = "logistics", "carrier"
SOURCE_BY_OWNER = {"customer_service": "erp", "sales": "erp", "procurement": "erp",
                   "planning": "erp", "warehouse": "wms", "logistics": "wms",
                   "production": "mes", "quality": "mes"}

CHANNELS = {"ecommerce": ("tmall", "jd", "douyin", "pinduoduo", "wechat"),
            "manufacturing": ("edi", "sales_rep", "b2b_portal")}
CATALOGUE = {"ecommerce": ("TEE-BLK-M", "TEE-WHT-L", "HOODIE-GRY-L", "SNEAKER-WHT-42",
                           "BACKPACK-NVY", "MUG-CER-350", "LAMP-DESK-LED", "EARBUDS-PRO"),
             "manufacturing": ("MOTOR-750W", "PCB-CTRL-V3", "GEARBOX-R12", "PUMP-HX40",
                               "CABINET-SS-2M")}
COLD_CATALOGUE = ("FRESH-MILK-1L", "YOGURT-6PK", "SALMON-300G", "ICECREAM-BOX")
QTY = {"manufacturing": (10, 500)}
#: Where an order is picked or made, and the hub its parcels start from.
SITES = {"ecommerce": (("wh-shanghai", "hub-shanghai"), ("wh-guangzhou", "hub-guangzhou"),
                       ("wh-beijing", "hub-beijing"), ("wh-chengdu", "hub-chengdu")),
         "manufacturing": (("plant-suzhou", "hub-shanghai"), ("plant-dongguan", "hub-shenzhen"),
                           ("plant-wuhan", "hub-wuhan"))}


@dataclass(frozen=True, slots=True)
class Hub:
    """A carrier transfer hub; ``retention`` is the share of parcels it holds > 24 h."""

    id: str
    city: str
    region: str
    lat: float
    lon: float
    retention: float = 0.01


HUBS = {h.id: h for h in (
    Hub("hub-shanghai", "上海", "上海", 31.23, 121.47),
    Hub("hub-hangzhou", "杭州", "浙江", 30.27, 120.16),
    Hub("hub-nanjing", "南京", "江苏", 32.06, 118.80),
    Hub("hub-beijing", "北京", "北京", 39.90, 116.41),
    Hub("hub-guangzhou", "广州", "广东", 23.13, 113.26, 0.02),
    Hub("hub-shenzhen", "深圳", "广东", 22.54, 114.06),
    Hub("hub-wuhan", "武汉", "湖北", 30.59, 114.31, 0.18),  # the demo's bottleneck
    Hub("hub-zhengzhou", "郑州", "河南", 34.75, 113.63, 0.03),
    Hub("hub-xian", "西安", "陕西", 34.34, 108.94, 0.02),
    Hub("hub-chengdu", "成都", "四川", 30.57, 104.07, 0.02),
)}
TRANSFER_HUBS = ("hub-wuhan", "hub-zhengzhou", "hub-xian")


@dataclass(frozen=True, slots=True)
class Carrier:
    id: str
    share: float
    prefix: str
    digits: int
    road_kmh: float  # door-to-door speed between hubs, handling included


CARRIERS = (Carrier("sf", 0.30, "SF", 12, 90.0), Carrier("jd", 0.20, "JDV", 12, 80.0),
            Carrier("zto", 0.20, "7", 11, 60.0), Carrier("yto", 0.20, "YT", 13, 60.0),
            Carrier("ems", 0.10, "E", 10, 55.0))

CARRIER_CUM = np.cumsum([c.share for c in CARRIERS]) / sum(c.share for c in CARRIERS)
CANCEL_REASONS = ("customer_request", "payment_timeout", "address_invalid")

Step = tuple[float, str, str, dict[str, Any]]  # (model hours after creation, type, source, payload)


def _ms(at: datetime) -> datetime:
    """Truncate to the millisecond, the precision of every stamp."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _stamp(at: datetime) -> str:
    return at.astimezone(CST).isoformat(timespec="milliseconds")


def _pick(rng: np.random.Generator, options: Sequence[T], cum: np.ndarray[Any, Any] | None = None) -> T:
    """One of ``options``: uniform, or by cumulative weights ``cum`` (ending at 1)."""
    if cum is None:
        return options[int(rng.integers(len(options)))]
    return options[min(int(np.searchsorted(cum, rng.random(), side="right")), len(options) - 1)]


def _km(a: Hub, b: Hub) -> float:
    """Great-circle distance between two hubs."""
    la, lb, dlon = math.radians(a.lat), math.radians(b.lat), math.radians(b.lon - a.lon)
    cos = math.sin(la) * math.sin(lb) + math.cos(la) * math.cos(lb) * math.cos(dlon)
    return 6371.0 * math.acos(min(1.0, max(-1.0, cos)))


@dataclass(frozen=True, slots=True)
class _Order:
    """What is drawn about an order when it is created."""

    order_id: str
    created: datetime
    flow: Flow
    rush: bool
    custom: bool
    cold: bool
    site: str
    route: tuple[str, ...]
    carrier: Carrier
    parcels: int


class _Traffic:
    """One deterministic, endless stream of events in time order, from ``origin`` on."""

    def __init__(self, flows: FlowBook, *, seed: int, speed: float, orders_per_day: float,
                 origin: datetime, live_from: datetime) -> None:
        self.flows = flows
        self.speed = speed
        self.orders_per_day = orders_per_day
        self.origin = origin
        self.live_from = live_from
        arrivals, orders, service, hubs, sensors, stock = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(6))
        self.arrivals, self.orders, self.service = arrivals, orders, service
        self.hubs, self.sensors, self.stock = hubs, sensors, stock
        self.fake = Faker(["zh_CN", "en_US"])
        self.fake.seed_instance(seed)
        self.flow_list = flows.flows
        shares = np.array([FLOW_SHARES.get(f.id, 0.0) for f in self.flow_list])
        # Flows the feed has no share for are drawn uniformly, and only if none is known.
        self.flow_cum = np.cumsum(shares) / shares.sum() if shares.sum() > 0 else None
        # evidence[flow][stage] = kinds that stage must upload for a later gate
        self.evidence: dict[str, dict[str, list[str]]] = {}
        for flow in self.flow_list:
            needs: dict[str, list[str]] = {}
            for stage in flow.stages:
                for gate in stage.gates:
                    needs.setdefault(gate.from_stage, []).append(gate.kind)
            self.evidence[flow.id] = needs
        self.on_hand: dict[tuple[str, str], int] = {}

    def events(self) -> Iterator[tuple[datetime, dict[str, Any]]]:
        """Every event, in occurred_at order: orders are planned just before they start."""
        heap: list[tuple[datetime, int, dict[str, Any]]] = []
        seq = itertools.count()
        arrivals = self._arrivals()
        next_order, next_stock, stock_round = next(arrivals), self.origin, 0
        while True:
            while not heap or min(next_order, next_stock) <= heap[0][0]:
                if next_order <= next_stock:
                    batch = self._plan_order(next_order)
                    next_order = next(arrivals)
                else:
                    batch = self._stock_report(next_stock, stock_round)
                    next_stock, stock_round = next_stock + STOCK_EVERY, stock_round + 1
                for at, event in batch:
                    heapq.heappush(heap, (at, next(seq), event))
            at, _, event = heapq.heappop(heap)
            yield at, event

    # --- arrivals -------------------------------------------------------------------

    def _arrivals(self) -> Iterator[datetime]:
        """Order creation times: a Poisson process thinned by the hour-of-day shape."""
        shape = np.array(HOURLY_SHAPE) / np.mean(HOURLY_SHAPE)
        peak_per_h = self.orders_per_day / 24.0 * float(shape.max())
        t, last = self.origin, None
        while True:
            t += timedelta(hours=float(self.arrivals.exponential(1.0 / peak_per_h)))
            if self.arrivals.random() * shape.max() < shape[t.astimezone(CST).hour]:
                at = _ms(t)
                if last is not None and at <= last:  # ids are made of the stamp: keep them unique
                    at = last + timedelta(milliseconds=1)
                last = at
                yield at

    # --- one order --------------------------------------------------------------------

    def _plan_order(self, created: datetime) -> list[tuple[datetime, dict[str, Any]]]:
        """All events of one order, stamped: plan in model hours, then play at its tempo."""
        order = self._draw_order(created)
        steps = self._lifecycle(order)
        tempo = 1.0 if created < self.live_from else self.speed
        ordered = sorted(enumerate(steps), key=lambda item: (item[1][0], item[0]))
        out = []
        for n, (_, (at_h, kind, source, payload)) in enumerate(ordered):
            at = _ms(created + timedelta(hours=at_h / tempo))
            out.append((at, {"event_id": f"{order.order_id}-{n:04d}", "type": kind,
                             "occurred_at": _stamp(at), "source": source,
                             "order_id": order.order_id, "payload": payload}))
        return out

    def _draw_order(self, created: datetime) -> _Order:
        rng = self.orders
        flow = _pick(rng, self.flow_list, self.flow_cum)
        sites = SITES.get(flow.id, SITES["ecommerce"])
        site, origin = _pick(rng, sites)
        dest = _pick(rng, [h for h in HUBS if h != origin])
        transfers = [h for h in TRANSFER_HUBS if h not in (origin, dest)]
        middle = (_pick(rng, transfers),) if transfers and rng.random() < TRANSFER_SHARE else ()
        carrier = _pick(rng, CARRIERS, CARRIER_CUM)
        code = FLOW_CODES.get(flow.id, flow.id[:2].upper())
        local = created.astimezone(CST)
        return _Order(
            order_id=f"{code}-{local:%y%m%d-%H%M%S}{local.microsecond // 1000:03d}",
            created=created, flow=flow,
            rush=bool(rng.random() < RUSH_SHARE),
            custom=bool(rng.random() < CUSTOM_SHARE.get(flow.id, 0.0)),
            cold=bool(rng.random() < COLD_CHAIN_SHARE.get(flow.id, 0.0)),
            site=site, route=(origin, *middle, dest), carrier=carrier,
            parcels=2 if rng.random() < SECOND_PARCEL_SHARE else 1,
        )

    def _lifecycle(self, order: _Order) -> list[Step]:
        """The order's steps: every stage, evidence, tracking, parcels; maybe a cancel."""
        steps: list[Step] = [(0.0, "order.created", "erp", self._created_payload(order))]
        needs = self.evidence[order.flow.id]
        h = 0.0
        ship_h: float | None = None
        transit: tuple[float, float] | None = None  # first pickup, last delivery
        for stage in order.flow.stages:
            source = SOURCE_BY_OWNER.get(stage.owner, "sim")
            where = {"stage": stage.id, "site": order.site}
            if stage.owner == CARRIER_OWNER and transit is not None:
                # The carrier's stage: from hand-off, started at pick-up, done at the last delivery.
                source = f"carrier:{order.carrier.id}"
                steps += [(at, kind, source, {"stage": stage.id, "resource": order.carrier.id})
                          for at, kind in ((h, "stage.entered"), (transit[0], "stage.started"),
                                           (transit[1], "stage.completed"))]
                h = transit[1]
                continue
            wait, work = self._stage_times(stage, order)
            started, done = h + wait, h + wait + work
            resource = f"{stage.owner}-{int(self.service.integers(1, 13)):02d}"
            steps += [(h, "stage.entered", source, dict(where)),
                      (started, "stage.started", source, {**where, "resource": resource})]
            for kind in needs.get(stage.id, ()):
                if self.service.random() >= MISSING_EVIDENCE_SHARE:
                    url = f"https://files.example.com/{kind}/{order.order_id}/{stage.id}.jpg"
                    steps.append((done - 0.1 * work, "handoff.evidence", source,
                                  {"stage": stage.id, "kind": kind, "url": url}))
            if stage.owner == SHIP_OWNER and ship_h is None:
                ship_h = done
                transit = self._ship(steps, order, assigned_h=started + 0.3 * work, handoff_h=done)
            steps.append((done, "stage.completed", source, {**where, "resource": resource}))
            h = done
        if self.orders.random() < CANCEL_SHARE:
            cancel_h = float(self.orders.uniform(0.0, ship_h if ship_h is not None else h))
            reason = _pick(self.orders, CANCEL_REASONS)
            steps = [s for s in steps if s[0] < cancel_h]
            steps.append((cancel_h, "order.cancelled", "erp", {"reason": reason}))
        return steps

    def _created_payload(self, order: _Order) -> dict[str, Any]:
        rng, zh = self.orders, self.fake["zh_CN"]
        flow = order.flow.id
        promise_h = PROMISE_H.get(flow, 1.5 * sum(s.budget_h for s in order.flow.stages))
        if order.custom:
            promise_h *= 1 + self.flows.defaults.custom_buffer
        if order.rush:
            promise_h *= self.flows.defaults.rush_budget_factor
        catalogue = COLD_CATALOGUE if order.cold else CATALOGUE.get(flow, CATALOGUE["ecommerce"])
        lo, hi = QTY.get(flow, (1, 3))
        skus = rng.choice(len(catalogue), size=int(rng.integers(1, 4)), replace=False)
        dest = HUBS[order.route[-1]]
        payload: dict[str, Any] = {
            "flow": flow,
            "promised_at": _stamp(order.created + timedelta(hours=promise_h)),
            "priority": "rush" if order.rush else "normal",
            "custom": order.custom,
            "channel": _pick(rng, CHANNELS.get(flow, ("direct",))),
            "customer_id": self.fake["en_US"].bothify("CU-########"),
            "customer_name": zh.name(),
            "items": [{"sku": catalogue[int(i)], "qty": int(rng.integers(lo, hi + 1))} for i in skus],
            "destination": {"region": dest.region, "city": dest.city, "district": zh.district()},
        }
        if order.cold:
            payload["cold_chain"] = {"min_c": COLD_CHAIN_C[0], "max_c": COLD_CHAIN_C[1]}
        return payload

    def _stage_times(self, stage: Stage, order: _Order) -> tuple[float, float]:
        """Waiting and work in model hours, around the order's budget; rush waits less."""
        budget = self.flows.budget_h(order.flow.id, stage.id, custom=order.custom, rush=order.rush)
        total = budget * float(self.service.lognormal(math.log(STAGE_MEDIAN), STAGE_SIGMA))
        wait_share = float(self.service.beta(2.0, 5.0)) * (0.5 if order.rush else 1.0)
        return total * wait_share, total * (1.0 - wait_share)

    # --- parcels ------------------------------------------------------------------------

    def _ship(self, steps: list[Step], order: _Order, *, assigned_h: float,
              handoff_h: float) -> tuple[float, float]:
        """Tracking numbers, then each parcel's journey; returns (first pickup, last delivery)."""
        c = order.carrier
        source = f"carrier:{c.id}"
        origin = HUBS[order.route[0]]
        pickups, deliveries = [], []
        for n in range(order.parcels):
            parcel = f"{order.order_id}-P{n + 1}"
            number = f"{c.prefix}{int(self.orders.integers(10 ** (c.digits - 1), 10 ** c.digits))}"
            at = assigned_h + 0.02 * n
            steps.append((at, "tracking.assigned", source,
                          {"carrier": c.id, "tracking_number": number, "parcel_id": parcel}))
            steps.append((at, "parcel.scanned", source, self._scan(parcel, c, "info_received", origin)))
            first, last = self._journey(steps, order, parcel, handoff_h)
            if order.cold:
                self._cold_readings(steps, parcel, handoff_h, last)
            pickups.append(first)
            deliveries.append(last)
        return min(pickups), max(deliveries)

    def _journey(self, steps: list[Step], order: _Order, parcel: str,
                 handoff_h: float) -> tuple[float, float]:
        """Hub to hub, then out for delivery; returns (first hub arrival, delivery)."""
        rng, c = self.hubs, order.carrier
        source = f"carrier:{c.id}"
        t = handoff_h + float(rng.lognormal(0.0, 0.4))
        first = t
        for i, hub_id in enumerate(order.route):
            hub = HUBS[hub_id]
            if i:
                road_h = 1.0 + _km(HUBS[order.route[i - 1]], hub) / c.road_kmh
                t += road_h * float(rng.lognormal(0.0, 0.2))
            steps.append((t, "parcel.scanned", source, self._scan(parcel, c, "arrived_hub", hub, hub_id)))
            held = rng.random() < hub.retention
            t += float(rng.uniform(25.0, 40.0)) if held else float(rng.lognormal(math.log(3.0), 0.5))
            steps.append((t, "parcel.scanned", source, self._scan(parcel, c, "departed_hub", hub, hub_id)))
        dest = HUBS[order.route[-1]]
        t += float(rng.lognormal(math.log(2.0), 0.4))
        steps.append((t, "parcel.scanned", source, self._scan(parcel, c, "out_for_delivery", dest)))
        if rng.random() < ATTEMPT_FAIL_SHARE:
            t += float(rng.uniform(1.0, 4.0))
            steps.append((t, "parcel.scanned", source, self._scan(parcel, c, "attempt_fail", dest)))
            t += float(rng.uniform(12.0, 20.0))
            steps.append((t, "parcel.scanned", source, self._scan(parcel, c, "out_for_delivery", dest)))
        t += float(rng.lognormal(math.log(2.5), 0.5))
        steps.append((t, "parcel.scanned", source, self._scan(parcel, c, "delivered", dest)))
        return first, t

    def _scan(self, parcel: str, carrier: Carrier, status: str, near: Hub,
              hub_id: str | None = None) -> dict[str, Any]:
        # Scans away from a hub (pick-up, doorstep) are a few km around its city.
        jitter = (0.0, 0.0) if hub_id else tuple(float(x) for x in self.hubs.normal(0.0, 0.05, 2))
        payload: dict[str, Any] = {"parcel_id": parcel, "status": status, "carrier": carrier.id,
                                   "location": {"lat": round(near.lat + jitter[0], 4),
                                                "lon": round(near.lon + jitter[1], 4)}}
        if hub_id:
            payload["hub_id"] = hub_id
        return payload

    def _cold_readings(self, steps: list[Step], parcel: str, start_h: float, end_h: float) -> None:
        """A temperature logger in the parcel: small noise, now and then an excursion."""
        rng = self.sensors
        lo, hi = COLD_CHAIN_C
        excursion = (0.0, -1.0)
        if rng.random() < EXCURSION_SHARE:
            begin = float(rng.uniform(start_h, end_h))
            excursion = (begin, begin + float(rng.uniform(1.0, 3.0)))
        t = start_h
        while t <= end_h:
            warm = excursion[0] <= t <= excursion[1]
            value = hi + float(rng.uniform(2.0, 5.0)) if warm else (lo + hi) / 2 + float(rng.normal(0, 0.4))
            steps.append((t, "sensor.reading", "iot",
                          {"sensor_id": f"TL-{parcel}", "kind": "temperature",
                           "value": round(value, 2), "unit": "C", "parcel_id": parcel}))
            t += SENSOR_EVERY_H

    # --- stock ----------------------------------------------------------------------------

    def _stock_report(self, at: datetime, round_no: int) -> list[tuple[datetime, dict[str, Any]]]:
        """One warehouse (in turn) reports three SKUs; stock drains and is restocked."""
        rng = self.stock
        warehouses = [site for site, _ in SITES["ecommerce"]]
        warehouse = warehouses[round_no % len(warehouses)]
        skus = CATALOGUE["ecommerce"] + COLD_CATALOGUE
        out = []
        for i in rng.choice(len(skus), size=3, replace=False):
            key = (warehouse, skus[int(i)])
            level = self.on_hand.get(key, int(rng.integers(50, 600))) - int(rng.poisson(12))
            if level < 30 and rng.random() < 0.3:
                level += int(rng.integers(200, 600))
            self.on_hand[key] = level = max(level, 0)
            local = at.astimezone(CST)
            out.append((at, {"event_id": f"STK-{warehouse}-{key[1]}-{local:%y%m%d%H%M%S}",
                             "type": "stock.level", "occurred_at": _stamp(at), "source": "wms",
                             "payload": {"warehouse_id": warehouse, "sku": key[1], "on_hand": level}}))
        return out


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DemoFeed:
    """Seeded synthetic traffic: offline with :meth:`generate`, live with :meth:`run`.

    ``speed`` is the tempo of orders created live (and of every order in
    :meth:`generate`); ``orders_per_day`` the mean intake; ``start`` where
    :meth:`generate` begins (default: now). :meth:`run` always anchors on ``clock``
    and first replays ``history_h`` hours at real pace. ``tick_s`` and ``batch_size``
    pace the live emission; ``clock`` is injectable for tests.
    """

    def __init__(self, flows: FlowBook, *, seed: int, speed: float = 60.0,
                 orders_per_day: float = 1200.0, start: datetime | None = None,
                 history_h: float = 72.0, tick_s: float = 0.5, batch_size: int = 1000,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        if speed <= 0 or orders_per_day <= 0 or history_h < 0 or tick_s <= 0 or batch_size < 1:
            raise ValueError("speed, orders_per_day, tick_s and batch_size must be > 0, history_h >= 0")
        if start is not None and start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        self.flows = flows
        self.seed = seed
        self.speed = speed
        self.orders_per_day = orders_per_day
        self.start = _ms(start if start is not None else clock())
        self.history = timedelta(hours=history_h)
        self.tick_s = tick_s
        self.batch_size = batch_size
        self.clock = clock

    def _traffic(self, origin: datetime, live_from: datetime) -> _Traffic:
        return _Traffic(self.flows, seed=self.seed, speed=self.speed,
                        orders_per_day=self.orders_per_day, origin=origin, live_from=live_from)

    def generate(self, hours: float) -> list[dict[str, Any]]:
        """Every event stamped in the ``hours`` after ``start``, sorted by occurred_at."""
        end = self.start + timedelta(hours=hours)
        out = []
        for at, event in self._traffic(self.start, self.start).events():
            if at >= end:
                break
            out.append(event)
        return out

    def run(self, sink: Callable[[list[dict[str, Any]]], object], stop: threading.Event) -> None:
        """Emit events as they fall due on the wall clock, until ``stop`` is set.

        The history of the last ``history_h`` hours (orders at real pace) goes out at
        once, in batches of ``batch_size`` so no batch exceeds the ingest limit; then
        every ``tick_s`` seconds what has become due. Nothing is stamped after the
        moment it is sent. A sink that raises is logged and the feed goes on.
        """
        now = _ms(self.clock())
        stream = self._traffic(now - self.history, now).events()
        head = next(stream)
        log.info("demo feed: seed %s, speed %g, history %s", self.seed, self.speed, self.history)
        while not stop.is_set():
            now = self.clock()
            batch: list[dict[str, Any]] = []
            while head[0] <= now and len(batch) < self.batch_size:
                batch.append(head[1])
                head = next(stream)
            if batch:
                self._deliver(sink, batch)
            if len(batch) < self.batch_size:
                stop.wait(self.tick_s)

    @staticmethod
    def _deliver(sink: Callable[[list[dict[str, Any]]], object], batch: list[dict[str, Any]]) -> None:
        try:
            answer = sink(batch)
        except Exception:
            log.exception("demo feed: the sink failed; %d events dropped", len(batch))
            return
        rejected = getattr(answer, "rejected", None)
        if rejected:
            log.warning("demo feed: %d of %d events rejected, first: %s", len(rejected), len(batch),
                        rejected[0])
