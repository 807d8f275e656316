"""The order screen's read services on SQLite and PostgreSQL: filters, paging, sorting,
the hub filter through the parcels' hub visits, the capped count, one order's detail
and its own events."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, update

from tests.factories import T0, order_stream
from tower.domain import TowerFigures
from tower.events import validate_event
from tower.flows import FlowBook
from tower.store import orders
from tower.store.orders import OrderFilter
from tower.store.projector import Projector
from tower.store.tables import Order

NOW = T0 + timedelta(days=10)
N = 40


def _stream(flows: FlowBook) -> list[dict[str, Any]]:
    rng = random.Random(11)
    events: list[dict[str, Any]] = []
    for i in range(N):
        flow = "manufacturing" if i % 4 == 3 else "ecommerce"
        evs = order_stream(flows, order_id=f"o{i:03d}", rng=rng, flow=flow,
                           start=T0 + timedelta(minutes=13 * i), parcels=1 + i % 2,
                           deliver=i % 5 != 0)
        if i % 7 == 6:  # still in the middle of its flow: cut after the first few stages
            evs = evs[:6]
        evs[0]["payload"]["customer_id"] = f"c{i % 3}"
        events += evs
    return events


@pytest.fixture
def store(engine: Engine, flows: FlowBook, figures: TowerFigures) -> Engine:
    Projector(engine, flows, figures).apply([validate_event(e) for e in _stream(flows)])
    return engine


def _all(engine: Engine, f: OrderFilter = OrderFilter(), **kw: Any) -> list[str]:
    return [r.order_id for r in orders.list_orders(engine, filters=f, now=NOW, limit=500, **kw).rows]


def _hub_truth(flows: FlowBook, hub: str) -> set[str]:
    """Orders with a parcel scanned arriving at ``hub``, from the events themselves."""
    owners: dict[str, str] = {}
    at_hub: set[str] = set()
    for e in _stream(flows):
        p = e["payload"]
        if e["type"] == "tracking.assigned":
            owners[p["parcel_id"]] = e["order_id"]
        if e["type"] == "parcel.scanned" and p.get("hub_id") == hub and p["status"] == "arrived_hub":
            at_hub.add(p["parcel_id"])
    return {owners[p] for p in at_hub}


def test_the_list_pages_in_a_stable_order(store: Engine) -> None:
    everything = _all(store)
    assert len(everything) == N and len(set(everything)) == N
    paged: list[str] = []
    for offset in range(0, N + 7, 7):
        page = orders.list_orders(store, now=NOW, offset=offset, limit=7)
        paged += [r.order_id for r in page.rows]
        assert (page.last_row is None) == (len(page.rows) == 7)
    assert paged == everything
    last = orders.list_orders(store, now=NOW, offset=35, limit=7)
    assert last.last_row == N and len(last.rows) == 5


def test_sorting_on_indexed_columns(store: Engine) -> None:
    rows = orders.list_orders(store, now=NOW, limit=500).rows
    keys = [(r.last_event_at, r.order_id) for r in rows]
    assert keys == sorted(keys, reverse=True)
    by_id = _all(store, sort="order_id", descending=False)
    assert by_id == sorted(by_id)
    promised = orders.list_orders(store, now=NOW, limit=500, sort="promised_at", descending=False).rows
    assert [r.promised_at for r in promised] == sorted(r.promised_at for r in promised)
    # a column without an index is not a sort key: the default order instead
    assert _all(store, sort="city") == _all(store)


def test_filters_narrow_the_list(store: Engine, flows: FlowBook) -> None:
    rows = orders.list_orders(store, now=NOW, limit=500).rows
    for f, keep in [
        (OrderFilter(flow="manufacturing"), lambda r: r.flow == "manufacturing"),
        (OrderFilter(flow="ecommerce", stage="transit"),
         lambda r: r.flow == "ecommerce" and r.stage == "transit"),
        (OrderFilter(status="delivered"), lambda r: r.status == "delivered"),
        (OrderFilter(status="in_progress"), lambda r: r.status == "in_progress"),
        (OrderFilter(priority="rush"), lambda r: r.priority == "rush"),
        (OrderFilter(customer_id="c1"), lambda r: r.customer_id == "c1"),
        (OrderFilter(lateness="late"), lambda r: r.late),
        (OrderFilter(lateness="on_track"), lambda r: not r.late and not r.at_risk),
    ]:
        expected = [r.order_id for r in rows if keep(r)]
        assert _all(store, f) == expected, f
        assert orders.count_orders(store, filters=f, now=NOW) == (len(expected), True)
    assert 0 < len(_all(store, OrderFilter(status="delivered"))) < N
    assert 0 < len(_all(store, OrderFilter(lateness="late"))) < N
    assert _all(store, OrderFilter(customer_id="nobody")) == []


def test_frozen_is_a_status_of_its_own(store: Engine) -> None:
    with store.begin() as conn:
        conn.execute(update(Order).where(Order.order_id == "o006").values(frozen=True))
    assert _all(store, OrderFilter(status="frozen")) == ["o006"]
    assert "o006" not in _all(store, OrderFilter(status="in_progress"))
    detail = orders.order_detail(store, order_id="o006", now=NOW)
    assert detail is not None and detail.row.status == "frozen" and detail.row.frozen


def test_hub_filter_follows_the_parcels_hub_visits(store: Engine, flows: FlowBook) -> None:
    hubs = orders.known_hubs(store)
    assert hubs == sorted({"hub-sha", "hub-wuh", "hub-can", "hub-ctu"} & set(hubs)) and len(hubs) >= 3
    for hub in hubs:
        truth = _hub_truth(flows, hub)
        got = _all(store, OrderFilter(hub_id=hub))
        assert set(got) == truth and len(got) == len(truth), hub
        both = _all(store, OrderFilter(hub_id=hub, flow="manufacturing"))
        assert set(both) == {o for o in truth if int(o[1:]) % 4 == 3}
        assert orders.count_orders(store, filters=OrderFilter(hub_id=hub), now=NOW) == (len(truth), True)
    assert _all(store, OrderFilter(hub_id="hub-nowhere")) == []
    assert orders.known_hubs(store, limit=2) == hubs[:2]


@pytest.mark.parametrize("few", [0, 100_000], ids=["walked", "looked-up"])
def test_hub_filter_walked_or_looked_up_pages_alike(store: Engine, flows: FlowBook,
                                                    monkeypatch: pytest.MonkeyPatch, few: int) -> None:
    # PostgreSQL walks the orders for a hub with many visits and looks a quiet hub's
    # parcels up in the GIN index: both give the events' answer, in the list's order.
    monkeypatch.setattr(orders, "FEW_HUB_VISITS", few)
    everything = _all(store)
    for hub in orders.known_hubs(store):
        truth = _hub_truth(flows, hub)
        for sort, descending in [("last_event_at", True), ("promised_at", False), ("order_id", True)]:
            got = _all(store, OrderFilter(hub_id=hub), sort=sort, descending=descending)
            assert set(got) == truth and len(got) == len(truth), (hub, sort)
            paged = [r.order_id for offset in range(0, len(truth) + 4, 4)
                     for r in orders.list_orders(store, filters=OrderFilter(hub_id=hub), now=NOW,
                                                 sort=sort, descending=descending, offset=offset,
                                                 limit=4).rows]
            assert paged == got
        assert [o for o in everything if o in truth] == _all(store, OrderFilter(hub_id=hub))
        assert orders.count_orders(store, filters=OrderFilter(hub_id=hub), now=NOW) == (len(truth), True)


def test_hub_filter_count_stops_early_when_walked(store: Engine, flows: FlowBook,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    hub = "hub-sha"
    truth = _hub_truth(flows, hub)
    assert len(truth) > 3
    monkeypatch.setattr(orders, "HUB_COUNT_CAP", 3)
    monkeypatch.setattr(orders, "FEW_HUB_VISITS", 0)
    assert orders.count_orders(store, filters=OrderFilter(hub_id=hub), now=NOW) == (3, False)
    if store.dialect.name == "postgresql":   # a quiet hub is looked up: counted exactly
        monkeypatch.setattr(orders, "FEW_HUB_VISITS", 100_000)
        assert orders.count_orders(store, filters=OrderFilter(hub_id=hub), now=NOW) == (len(truth), True)


@pytest.mark.parametrize("few", [0, 100_000], ids=["walked", "looked-up"])
def test_a_parcel_carrying_several_orders_puts_each_at_the_hub(
        engine: Engine, flows: FlowBook, figures: TowerFigures,
        monkeypatch: pytest.MonkeyPatch, few: int) -> None:
    # EVENTS.md: an order's parcels are those its tracking.assigned events name; one
    # parcel may carry several orders. "b" ships in "a"'s parcel, "c" has none at hub-x.
    monkeypatch.setattr(orders, "FEW_HUB_VISITS", few)
    rng = random.Random(5)
    a = order_stream(flows, order_id="a", rng=rng, parcels=1)
    b = order_stream(flows, order_id="b", rng=rng, parcels=1, start=T0 + timedelta(minutes=5))
    c = order_stream(flows, order_id="c", rng=rng, parcels=1, start=T0 + timedelta(minutes=9))
    [b_assign] = [e for e in b if e["type"] == "tracking.assigned"]
    shared = dict(b_assign, event_id="b-shared",
                  payload=dict(b_assign["payload"], parcel_id="a-p0", tracking_number="SFa0"))
    at = next(e for e in a if e["type"] == "tracking.assigned")["occurred_at"]
    scan = {"event_id": "x-arrived", "type": "parcel.scanned", "occurred_at": at, "source": "test",
            "order_id": "a", "payload": {"parcel_id": "a-p0", "status": "arrived_hub", "hub_id": "hub-x"}}
    Projector(engine, flows, figures).apply(
        [validate_event(e) for e in sorted(a + b + c + [shared, scan], key=lambda e: e["occurred_at"])])
    assert set(_all(engine, OrderFilter(hub_id="hub-x"))) == {"a", "b"}
    assert orders.count_orders(engine, filters=OrderFilter(hub_id="hub-x"), now=NOW) == (2, True)


def test_count_stops_at_the_cap(store: Engine) -> None:
    assert orders.count_orders(store, now=NOW) == (N, True)
    assert orders.count_orders(store, now=NOW, cap=10) == (10, False)


def test_detail_and_events_of_one_order(store: Engine, flows: FlowBook) -> None:
    detail = orders.order_detail(store, order_id="o001", now=NOW)
    assert detail is not None
    assert detail.row.flow == "ecommerce" and detail.row.customer_id == "c1"
    stages = [v.stage for v in detail.visits]
    assert stages == list(flows.by_id["ecommerce"].stage_ids)
    assert [v.seq for v in detail.visits] == sorted(v.seq for v in detail.visits)
    assert all(v.entered_at.tzinfo is not None for v in detail.visits)
    assert len(detail.parcels) == 2 and all(t is not None for t in detail.parcels.values())
    events = orders.order_events(store, order_id="o001")
    times = [e.occurred_at for e in events]
    assert times == sorted(times) and events[0].type == "order.created"
    assert len(orders.order_events(store, order_id="o001", limit=3)) == 3
    assert orders.order_detail(store, order_id="missing", now=NOW) is None
    assert orders.order_events(store, order_id="missing") == []
