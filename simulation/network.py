"""The carrier network: hubs with handling capacity and outages, routes and leg times.

A parcel goes from the hub of its warehouse's city to the hub of its customer, with
(``transfer_share`` of the time) one transfer hub in between, chosen among the hubs
that make a detour of at most ``detour_max`` times the direct distance. A leg takes
its lane's transit time when a lane is declared (in either direction), otherwise the
great-circle distance at ``road_kmh`` plus ``road_overhead_h``, times lognormal
noise of ``road_cv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import simpy

from simulation.distributions import LogNormal
from simulation.scenario import Hub, Parcels, Scenario
from simulation.streams import Draws, Streams, Uniform


def distance_km(a: Hub, b: Hub) -> float:
    """Great-circle distance between two hubs."""
    p1, p2, dlon = math.radians(a.lat), math.radians(b.lat), math.radians(b.lon - a.lon)
    cos = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(dlon)
    return 6371.0 * math.acos(max(-1.0, min(1.0, cos)))


class HubSite:
    """A hub during a run: its sorting capacity, handling time and outage windows."""

    def __init__(self, env: simpy.Environment, hub: Hub, *, handling: Draws,
                 outages: Sequence[tuple[float, float]]) -> None:
        self.env = env
        self.hub = hub
        self.id = hub.id
        self.docks = simpy.Resource(env, hub.capacity)
        self.handling = handling
        self.outages = sorted(outages)
        self.held = [0] * len(self.outages)  # parcels each outage held

    def outage(self) -> int | None:
        """Index of the outage under way, if any."""
        now = self.env.now
        for i, (start, end) in enumerate(self.outages):
            if start <= now < end:
                return i
        return None


class Network:
    """Hubs, routes between them and the time a leg takes."""

    def __init__(self, env: simpy.Environment, scenario: Scenario, streams: Streams,
                 outages: dict[str, list[tuple[float, float]]]) -> None:
        self.parcels: Parcels = scenario.parcels
        self.sites = {
            h.id: HubSite(env, h, handling=streams.draws(f"handling/{h.id}", h.handling),
                          outages=outages.get(h.id, []))
            for h in scenario.hubs
        }
        self.by_city = {h.city: h.id for h in reversed(scenario.hubs)}  # first hub of a city wins
        self.lanes: dict[tuple[str, str], Draws] = {}
        for lane in scenario.lanes:
            draws = streams.draws(f"lane/{lane.origin}/{lane.destination}", lane.transit)
            self.lanes[(lane.origin, lane.destination)] = draws
            self.lanes.setdefault((lane.destination, lane.origin), draws)
        p = self.parcels
        self.road_noise = (streams.draws("road", LogNormal(mean_h=1.0, cv=p.road_cv))
                           if p.road_cv > 0 else None)
        self.routing: Uniform = streams.uniform("routes")
        self._transfers: dict[tuple[str, str], list[str]] = {}

    def hub_of_city(self, city: str) -> str | None:
        return self.by_city.get(city)

    def km(self, a: str, b: str) -> float:
        return distance_km(self.sites[a].hub, self.sites[b].hub)

    def transfers(self, origin: str, destination: str) -> list[str]:
        """Hubs a parcel may be sorted through on the way (within the detour limit)."""
        key = (origin, destination)
        found = self._transfers.get(key)
        if found is None:
            direct = self.km(origin, destination)
            found = [h for h in self.sites if h not in key
                     and self.km(origin, h) + self.km(h, destination) <= self.parcels.detour_max * direct]
            self._transfers[key] = found
        return found

    def route(self, origin: str, destination: str) -> list[HubSite]:
        """The hubs a parcel passes, in order."""
        if origin == destination:
            return [self.sites[origin]]
        middle = self.transfers(origin, destination)
        if middle and self.routing.chance(self.parcels.transfer_share):
            return [self.sites[origin], self.sites[middle[self.routing.index(len(middle))]],
                    self.sites[destination]]
        return [self.sites[origin], self.sites[destination]]

    def leg_h(self, a: str, b: str) -> float:
        """Hours on the road (or lane) from hub ``a`` to hub ``b``."""
        lane = self.lanes.get((a, b))
        if lane is not None:
            return lane()
        p = self.parcels
        hours = p.road_overhead_h + self.km(a, b) / p.road_kmh
        return hours * self.road_noise() if self.road_noise is not None else hours
