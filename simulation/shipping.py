"""The carrier's part: tracking number, hub to hub, last mile, and the cold-chain logger.

After the warehouse hands an order over, a carrier (drawn by share) assigns a
tracking number after its ``tracking_delay``; the parcel is picked up, scanned at
every hub (waiting out a hub outage, queuing for the hub's sorting capacity), taken
out for delivery and delivered, with failed attempts (``attempt_fail_p`` each, up to
``max_attempts``, then a pick-up point) and, rarely, lost (``loss_p``: an
``exception`` scan at a random point of the journey, and the order ends lost).
A cold-chain parcel's temperature logger reports every ``interval_min`` from
pick-up until the parcel is delivered or lost.

Every disruption a parcel meets is recorded as ground truth: a tracking number later
than ``ground_truth.tracking_late_h``, a lost parcel, a temperature excursion.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import simpy

from simulation.emitter import Emitter
from simulation.network import HubSite, Network
from simulation.order import Order, Parcel
from simulation.records import GroundTruth
from simulation.scenario import Carrier, Scenario
from simulation.streams import Draws, Streams, cumulative

SENSOR_SOURCE = "iot"
DELIVERED, LOST = "delivered", "lost"


class CarrierLine:
    """One carrier during a run."""

    def __init__(self, carrier: Carrier, streams: Streams) -> None:
        self.id = carrier.id
        self.source = f"carrier:{carrier.id}"
        self.attempt_fail_p = carrier.attempt_fail_p
        self.loss_p = carrier.loss_p
        self.tracking_delay = streams.draws(f"tracking/{carrier.id}", carrier.tracking_delay)


class Shipping:
    """Carriers, the hub network and the parcel journeys they run."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, streams: Streams, network: Network,
                 emitter: Emitter, truth: Callable[[GroundTruth], None],
                 compressor_windows: list[tuple[float, float, float]]) -> None:
        self.env = env
        self.scenario = scenario
        self.network = network
        self.emitter = emitter
        self.truth = truth  # notes a per-parcel ground truth
        self.carriers = [CarrierLine(c, streams) for c in scenario.carriers]
        self.carrier_cum = cumulative([c.share for c in scenario.carriers])
        self.chances = streams.uniform("carriers")
        p = scenario.parcels
        self.first_mile: Draws = streams.draws("first_mile", p.first_mile)
        self.last_mile: Draws = streams.draws("last_mile", p.last_mile)
        self.redelivery: Draws = streams.draws("redelivery", p.redelivery_after)
        self.sensor_draws = streams.uniform("sensors")
        self.noise = streams.normals("sensors/noise")
        self.compressor_windows = compressor_windows  # (start_h, end_h, share hit)
        self.compressor_hits = [0] * len(compressor_windows)

    # --- scans ------------------------------------------------------------------------

    def scan(self, parcel: Parcel, line: CarrierLine, status: str, *, hub: HubSite | None = None,
             lat: float | None = None, lon: float | None = None) -> None:
        """A ``parcel.scanned`` event at a hub, or at a point (the customer's door)."""
        if not self.emitter.live:
            self.emitter.count("parcel.scanned")
            return
        payload: dict[str, Any] = {"parcel_id": parcel.id, "status": status, "carrier": line.id}
        if hub is not None:
            payload["hub_id"] = hub.id
            payload["location"] = {"lat": hub.hub.lat, "lon": hub.hub.lon}
        elif lat is not None and lon is not None:
            payload["location"] = {"lat": lat, "lon": lon}
        self.emitter.emit(self.env.now, "parcel.scanned", line.source, parcel.order.id, payload)

    # --- the journey ------------------------------------------------------------------

    def deliver(self, order: Order, origin: str, destination: str, transit_stage: str | None
                ) -> Generator[simpy.Event, Any, tuple[str, float, str]]:
        """Process step: from hand-off to delivered (or lost).

        Returns how it ended, when the parcel was picked up and by which carrier. A
        ``transit_stage`` (the carrier's stage of the flow) is entered at hand-off,
        started at pick-up and completed on delivery.
        """
        env = self.env
        handed_h = env.now
        line = self.carriers[self.chances.pick(self.carrier_cum)]
        if transit_stage is not None:
            self.emitter.stage(env.now, "stage.entered", line.source, order.id, transit_stage, line.id, None)
        yield env.timeout(line.tracking_delay())
        parcel = Parcel(id=f"{order.id}-P1", order=order, carrier=line.id, picked_up_h=env.now)
        self._assigned(parcel, line, handed_h)
        route = self.network.route(origin, destination)
        if transit_stage is not None:
            self.emitter.stage(env.now, "stage.started", line.source, order.id, transit_stage, line.id, None)
        self.scan(parcel, line, "info_received", hub=route[0])
        if order.cold:
            env.process(self.logger(parcel))
        # Where a lost parcel disappears: at one of the hubs, or on the last mile.
        lost_at = self.chances.index(len(route) + 1) if self.chances.chance(line.loss_p) else -1
        yield env.timeout(self.first_mile())
        for i, hub in enumerate(route):
            # Arrive, queue for sorting, get sorted; an outage holds the parcel until it ends.
            self.scan(parcel, line, "arrived_hub", hub=hub)
            held = (yield from self._outage(hub, None)) if hub.outages else None
            with hub.docks.request() as dock:
                if not dock.triggered:  # a free dock takes the parcel at once
                    yield dock
                yield env.timeout(hub.handling())
            if hub.outages:
                yield from self._outage(hub, held)  # nothing leaves a hub that is down
            if lost_at == i:
                self._lose(parcel, line, hub=hub)
                return LOST, parcel.picked_up_h, line.id
            self.scan(parcel, line, "departed_hub", hub=hub)
            if i + 1 < len(route):
                yield env.timeout(self.network.leg_h(hub.id, route[i + 1].id))
        ended = yield from self._last_mile(parcel, line, route[-1], lost=lost_at == len(route))
        if ended == DELIVERED and transit_stage is not None:
            self.emitter.stage(env.now, "stage.completed", line.source, order.id, transit_stage, line.id,
                               None)
        return ended, parcel.picked_up_h, line.id

    def _assigned(self, parcel: Parcel, line: CarrierLine, handed_h: float) -> None:
        now = self.env.now
        number = f"{line.id.upper()}{int(self.chances() * 1e12):012d}"
        if now - handed_h > self.scenario.ground_truth.tracking_late_h:
            self.truth(GroundTruth(kind="tracking_delay", where=parcel.id, start_h=handed_h, end_h=now,
                                          detail=f"carrier={line.id}", order_id=parcel.order.id))
        if self.emitter.live:
            self.emitter.emit(now, "tracking.assigned", line.source, parcel.order.id,
                              {"carrier": line.id, "tracking_number": number, "parcel_id": parcel.id})
        else:
            self.emitter.count("tracking.assigned")

    def _outage(self, hub: HubSite, counted: int | None) -> Generator[simpy.Event, Any, int | None]:
        """Hold the parcel while the hub is down (counted once per outage); returns the outage."""
        k = hub.outage()
        if k is None:
            return counted
        if k != counted:
            hub.held[k] += 1
        yield self.env.timeout(hub.outages[k][1] - self.env.now)
        return k

    def _last_mile(self, parcel: Parcel, line: CarrierLine, hub: HubSite, *, lost: bool
                   ) -> Generator[simpy.Event, Any, str]:
        env = self.env
        customer = parcel.order.customer
        lat = customer.lat if customer is not None else hub.hub.lat
        lon = customer.lon if customer is not None else hub.hub.lon
        for attempt in range(1, self.scenario.parcels.max_attempts + 1):
            self.scan(parcel, line, "out_for_delivery", hub=hub)
            yield env.timeout(self.last_mile())
            if lost:
                self._lose(parcel, line, lat=lat, lon=lon)
                return LOST
            if not self.chances.chance(line.attempt_fail_p):
                break
            self.scan(parcel, line, "attempt_fail", lat=lat, lon=lon)
            if attempt == self.scenario.parcels.max_attempts:
                self.scan(parcel, line, "available_for_pickup", hub=hub)
            yield env.timeout(self.redelivery())
        self.scan(parcel, line, "delivered", lat=lat, lon=lon)
        parcel.done = True
        return DELIVERED

    def _lose(self, parcel: Parcel, line: CarrierLine, *, hub: HubSite | None = None,
              lat: float | None = None, lon: float | None = None) -> None:
        now = self.env.now
        self.scan(parcel, line, "exception", hub=hub, lat=lat, lon=lon)
        parcel.done = True
        where = hub.id if hub is not None else "last_mile"
        self.truth(GroundTruth(kind="lost_parcel", where=parcel.id, start_h=now, end_h=now,
                                      detail=f"carrier={line.id} at={where}", order_id=parcel.order.id))

    # --- cold chain -------------------------------------------------------------------

    def logger(self, parcel: Parcel) -> Generator[simpy.Event, Any, None]:
        """Process: the temperature logger of a cold-chain parcel.

        The reading drifts warmer with hours in transit, has noise, now and then a
        spike (``excursion_p``), and a parcel hit by a compressor failure reads
        ``excursion_c`` warmer for the window. Each run of out-of-range readings is
        one temperature excursion of the ground truth.
        """
        env, s, draw = self.env, self.scenario.sensors, self.sensor_draws
        low, high = s.range_c
        every_h = s.interval_min / 60.0
        # Noise near a limit would split one excursion into many: it ends only when a
        # reading is back inside the range by the noise level (hysteresis).
        margin = min(s.noise_c, (high - low) / 4)
        hit: dict[int, bool] = {}
        episode: tuple[float, float, str] | None = None  # first and last reading out of range, cause
        sensor_id = f"TL-{parcel.id}"
        while not parcel.done:
            now = env.now
            drift = s.drift_c_per_h * (now - parcel.picked_up_h)
            value = (low + high) / 2 + drift + s.noise_c * self.noise()
            cause = "drift"
            for k, (start, end, share) in enumerate(self.compressor_windows):
                if start <= now < end:
                    if k not in hit:
                        hit[k] = draw.chance(share)
                        self.compressor_hits[k] += hit[k]
                    if hit[k]:
                        value, cause = value + s.excursion_c, "compressor_failure"
            if draw.chance(s.excursion_p):
                value, cause = value + s.excursion_c * (0.5 + draw()), "spike"
            if episode is None:
                if not low <= value <= high:
                    episode = (now, now, cause)
            elif low + margin <= value <= high - margin:  # clearly back in range: the excursion ended
                self._excursion(parcel, episode)
                episode = None
            elif not low <= value <= high:
                episode = (episode[0], now, episode[2])
            if self.emitter.live:
                self.emitter.emit(now, "sensor.reading", SENSOR_SOURCE, parcel.order.id,
                                  {"sensor_id": sensor_id, "kind": "temperature", "value": round(value, 2),
                                   "unit": "C", "parcel_id": parcel.id})
            else:
                self.emitter.count("sensor.reading")
            yield env.timeout(every_h)
        if episode is not None:
            self._excursion(parcel, episode)

    def _excursion(self, parcel: Parcel, episode: tuple[float, float, str]) -> None:
        first, last, cause = episode
        self.truth(GroundTruth(kind="temperature_excursion", where=parcel.id, start_h=first,
                                      end_h=last, detail=f"cause={cause}", order_id=parcel.order.id))
