"""Suppliers by name: procurement stage events carry the order's ``supplier_id`` and a
supplier delay's ground truth names the supplier it made late."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from simulation.model import Model, simulate
from simulation.scenario import Scenario
from simulation.world import build_world
from tests.test_model import ndjson, small_network
from tower.events import validate_event
from tower.flows import FlowBook

Events = list[dict[str, Any]]


def with_delay(**delay: Any) -> Scenario:
    base = small_network()
    disruptions = [d.model_dump(mode="json") for d in base.disruptions]
    for d in disruptions:
        if d["kind"] == "supplier_delay":
            d.update(delay)
    return small_network(disruptions=disruptions)


def run(scenario: Scenario, flows: FlowBook, seed: int = 3) -> tuple[Any, Events]:
    events: Events = []
    return simulate(scenario, flows, seed=seed, sink=events.append, records=True), events


def main_supplier(created: dict[str, Any], sku_supplier: dict[str, str]) -> str:
    items = created["payload"]["items"]
    return sku_supplier[max(items, key=lambda line: line["qty"])["sku"]]


def test_procurement_events_name_the_supplier_of_the_main_line(flows: FlowBook) -> None:
    scenario = small_network()
    _, events = run(scenario, flows)
    world = build_world(scenario, 3)
    sku_supplier = {s.id: s.supplier_id for s in world.skus}
    created = {e["order_id"]: e for e in events if e["type"] == "order.created"}
    stage_events = [e for e in events if e["type"].startswith("stage.")]
    procurement = [e for e in stage_events if e["payload"]["stage"] == "procurement"]
    assert len(procurement) > 100
    for e in procurement:
        assert e["payload"]["supplier_id"] == main_supplier(created[e["order_id"]], sku_supplier)
        record = validate_event(e)  # the v1 contract keeps extra payload keys
        assert record.payload["supplier_id"] == e["payload"]["supplier_id"]
    others = [e for e in stage_events if e["payload"]["stage"] != "procurement"]
    assert others and not any("supplier_id" in e["payload"] for e in others)
    assert len({e["payload"]["supplier_id"] for e in procurement}) > 1


def test_a_delay_of_every_supplier_names_each_supplier_it_delayed(flows: FlowBook) -> None:
    result, _ = run(small_network(), flows)
    truths = [t for t in result.ground_truth if t.kind == "supplier_delay"]
    assert len(truths) > 1 and all(t.where == "procurement" for t in truths)
    named = {t.detail.split(";")[0].removeprefix("supplier="): int(t.detail.split(": ")[1]) for t in truths}
    assert all(s.startswith("SUP-") and n > 0 for s, n in named.items())
    assert sum(named.values()) > 10  # every order done with procurement in the window waited


def procurement_done(events: Events) -> dict[str, tuple[str, str]]:
    """Per order: its supplier and when it completed procurement."""
    return {e["order_id"]: (e["payload"]["supplier_id"], e["occurred_at"]) for e in events
            if e["type"] == "stage.completed" and e["payload"]["stage"] == "procurement"}


def test_a_named_late_supplier_delays_only_its_own_orders(flows: FlowBook) -> None:
    everyone, _ = run(small_network(), flows)
    hits = Counter({t.detail.split(";")[0].removeprefix("supplier="): int(t.detail.split(": ")[1])
                    for t in everyone.ground_truth if t.kind == "supplier_delay"})
    late, n = hits.most_common(1)[0]
    result, events = run(with_delay(supplier=late), flows)
    (truth,) = [t for t in result.ground_truth if t.kind == "supplier_delay"]
    assert truth.detail == f"supplier={late}; orders delayed: {n}"
    # A supplier's wait holds no server, so the other suppliers' orders leave procurement
    # exactly when they would with no delay at all; the late supplier's orders later.
    _, calm = run(small_network(disruptions=[d for d in small_network().disruptions
                                             if d.kind != "supplier_delay"]), flows)
    delayed, undisturbed = procurement_done(events), procurement_done(calm)
    same = later = 0
    for order_id, (supplier, at) in delayed.items():
        if order_id not in undisturbed:
            continue
        if supplier == late:
            later += at > undisturbed[order_id][1]
        else:
            assert at == undisturbed[order_id][1], order_id
            same += 1
    assert same > 50 and later > 0


def test_an_unknown_supplier_is_refused() -> None:
    with pytest.raises(ValueError, match="supplier"):
        with_delay(supplier="SUP-0099")  # the small network has five suppliers


def test_suppliers_keep_the_run_deterministic(flows: FlowBook) -> None:
    scenario = with_delay(supplier="SUP-0002")
    _, a = run(scenario, flows, seed=6)
    _, b = run(scenario, flows, seed=6)
    assert ndjson(a) == ndjson(b)
    quiet = Model(scenario, flows, seed=6, records=True)
    quiet.run()
    loud = simulate(scenario, flows, seed=6, sink=lambda e: None, records=True)
    assert quiet.result().ground_truth == loud.ground_truth and quiet.result().tally == loud.tally
