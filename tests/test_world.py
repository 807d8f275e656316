"""The Faker-made master data: seeded, sized by the scenario, routable, bilingual."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path

import numpy as np
import pytest

from simulation.scenario import Hub, MasterData, Scenario, load_scenario
from simulation.world import CARRIER_NAMES, CITIES, World, build_world, distance_km, locate, nearest_hub

SCENARIOS = Path(__file__).resolve().parent.parent / "data" / "scenarios"
HAN = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture(scope="module")
def baseline() -> Scenario:
    return load_scenario(SCENARIOS / "baseline-ecommerce.toml")[0]


@pytest.fixture(scope="module")
def world(baseline: Scenario) -> World:
    return build_world(baseline, seed=7)


def _sized(scenario: Scenario, customers: int, skus: int, suppliers: int) -> Scenario:
    sizes = MasterData(customers=customers, skus=skus, suppliers=suppliers)
    return scenario.model_copy(update={"master_data": sizes})


def test_same_seed_same_world(baseline: Scenario, world: World) -> None:
    assert build_world(baseline, seed=7) == world


def test_other_seed_other_world(baseline: Scenario, world: World) -> None:
    other = build_world(baseline, seed=8)
    assert other.customers != world.customers
    assert other.skus != world.skus


def test_no_global_random_state_is_used(baseline: Scenario, world: World) -> None:
    saved = random.getstate(), np.random.get_state()
    try:
        random.seed(123)
        np.random.seed(123)
        assert build_world(baseline, seed=7) == world
        assert (random.random(), np.random.random()) == (random.Random(123).random(),
                                                          np.random.RandomState(123).random())
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])


def test_sizes_follow_master_data(baseline: Scenario) -> None:
    small = build_world(_sized(baseline, 37, 11, 3), seed=1)
    assert (len(small.customers), len(small.skus), len(small.suppliers)) == (37, 11, 3)
    assert len({c.id for c in small.customers}) == 37
    assert len({s.id for s in small.skus}) == 11


def test_every_sku_has_a_known_supplier(world: World) -> None:
    suppliers = {s.id for s in world.suppliers}
    assert all(s.supplier_id in suppliers for s in world.skus)


def test_cold_chain_share_of_skus(baseline: Scenario, world: World) -> None:
    share = len(world.cold_skus) / len(world.skus)
    assert share == pytest.approx(baseline.demand.cold_chain_share, abs=0.01)
    assert world.ambient_skus and len(world.cold_skus) + len(world.ambient_skus) == len(world.skus)


def test_tiny_catalogue_still_has_both_kinds(baseline: Scenario) -> None:
    tiny = build_world(_sized(baseline, 5, 2, 1), seed=3)
    assert len(tiny.cold_skus) == 1 and len(tiny.ambient_skus) == 1


def test_no_cold_skus_without_cold_chain_orders(baseline: Scenario) -> None:
    demand = baseline.demand.model_copy(update={"cold_chain_share": 0.0})
    assert build_world(baseline.model_copy(update={"demand": demand}), seed=1).cold_skus == ()


def test_customers_are_routed_to_a_scenario_hub(baseline: Scenario, world: World) -> None:
    hubs = {h.id: h for h in baseline.hubs}
    for c in world.customers[:500]:
        assert c.hub_id in hubs
        city = locate(c.city)
        best = min(distance_km(city.lat, city.lon, h.lat, h.lon) for h in hubs.values())
        mine = hubs[c.hub_id]
        assert distance_km(city.lat, city.lon, mine.lat, mine.lon) == pytest.approx(best)


def test_customers_in_a_hub_city_use_that_hub(baseline: Scenario, world: World) -> None:
    by_city = {h.city: h.id for h in baseline.hubs}
    in_hub_cities = [c for c in world.customers if c.city in by_city]
    assert len(in_hub_cities) > len(world.customers) / 3
    assert all(c.hub_id == by_city[c.city] for c in in_hub_cities)


def test_customers_live_near_their_city(world: World) -> None:
    for c in world.customers[:500]:
        city = locate(c.city)
        assert city.region == c.region
        assert distance_km(c.lat, c.lon, city.lat, city.lon) < 50


def test_big_cities_have_more_customers(world: World) -> None:
    counts = {city.name: 0 for city in CITIES}
    for c in world.customers:
        counts[c.city] += 1
    assert counts["上海"] > counts["乌鲁木齐"] * 2


def test_without_hubs_customers_have_none() -> None:
    mm3 = load_scenario(SCENARIOS / "mm3.toml")[0]
    world = build_world(_sized(mm3, 20, 5, 2), seed=1)
    assert all(c.hub_id is None for c in world.customers)


def test_both_locales_show_up_in_names(world: World) -> None:
    customers = [c.name for c in world.customers]
    assert sum(bool(HAN.search(n)) for n in customers) > len(customers) / 2
    assert any(re.fullmatch(r"[A-Za-z.'\- ]+ [A-Za-z'\-]+", n) for n in customers)
    suppliers = [s.name for s in world.suppliers]
    skus = [s.name for s in world.skus]
    for names in (suppliers, skus):
        assert any(HAN.search(n) for n in names) and any(not HAN.search(n) for n in names)


def test_carriers_have_display_names(baseline: Scenario, world: World) -> None:
    assert [c.id for c in world.carriers] == [c.id for c in baseline.carriers]
    assert world.carrier_name("sf") == CARRIER_NAMES["sf"]
    with pytest.raises(KeyError):
        world.carrier_name("nope")


def test_locate_by_either_name() -> None:
    assert locate("上海") == locate("shanghai") == locate(" Shanghai ")
    assert (locate("Beijing").lat, locate("Beijing").lon) == (39.9042, 116.4074)
    with pytest.raises(KeyError):
        locate("Atlantis")


def test_nearest_hub() -> None:
    hubs = [Hub(id="a", city="北京", lat=39.9042, lon=116.4074),
            Hub(id="b", city="广州", lat=23.1291, lon=113.2644)]
    tianjin = locate("Tianjin")
    assert nearest_hub(tianjin.lat, tianjin.lon, hubs).id == "a"
    with pytest.raises(ValueError):
        nearest_hub(0, 0, [])


def test_building_a_world_of_5000_customers_is_quick(baseline: Scenario) -> None:
    scenario = _sized(baseline, 5000, 300, 20)
    t0 = time.perf_counter()
    build_world(scenario, seed=11)
    assert time.perf_counter() - t0 < 1.0
