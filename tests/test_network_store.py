"""The network page's read services on SQLite and PostgreSQL: hub x hour grid, lanes,
load now and the stuck-parcel list; and the hub master data file (data/hubs.toml)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from tests.callbacks import CallbackRecorder
from tower.hubs import HubConfigError, load_hubs
from tower.settings import DEFAULT_DATA_DIR
from tower.store import network, queries
from tower.store.tables import ExceptionRow, HubVisitRow, Order

NOW = datetime(2025, 11, 20, 6, 30, tzinfo=UTC)
H = timedelta(hours=1)
LIMIT_H = 24.0


def _visit(parcel: str, seq: int, hub: str, arrived: datetime,
           departed: datetime | None = None) -> dict[str, Any]:
    return {
        "parcel_id": parcel, "seq": seq, "hub_id": hub, "arrived_at": arrived,
        "departed_at": departed, "arrived_hour": int(arrived.timestamp() // 3600),
        "departed_hour": int(departed.timestamp() // 3600) if departed else None,
        "dwell_s": (departed - arrived).total_seconds() if departed else None,
    }


def _exception(exc_id: str, *, parcel: str, status: str = "triggered", rule: str = "parcel_stuck",
               order_id: str | None = None) -> dict[str, Any]:
    scope = f"parcel:{parcel}"
    done = status in ("resolved", "closed", "cancelled")
    return {
        "id": exc_id, "rule": rule, "scope_key": scope,
        "open_key": None if done else f"{rule}|{scope}",
        "order_id": order_id, "parcel_id": parcel, "hub_id": "hub-a", "flow": None, "stage": None,
        "tier": "L2", "status": status, "team": "logistics", "high_priority": False,
        "title": f"parcel {parcel} stuck", "detail": {}, "count": 1, "condition_since": NOW,
        "opened_at": NOW, "last_seen_at": NOW, "respond_by": None, "acknowledged_at": None,
        "resolved_at": None, "closed_at": None, "cancelled_at": None, "snoozed_until": None,
        "assignee": None, "handling_step": None, "next_update_at": None, "root_cause": None,
        "parent_id": None, "raised_by": "system", "escalations": 0, "updated_at": NOW,
    }


def _order(order_id: str, parcels: list[str]) -> dict[str, Any]:
    return {
        "order_id": order_id, "flow": "ecommerce", "stage": "transit", "stage_seq": 4,
        "status": "in_progress", "frozen": False, "priority": "normal", "custom": False,
        "promised_at": NOW + 10 * H, "created_at": NOW - 40 * H, "delivered_at": None,
        "cancelled_at": None, "last_event_at": NOW - 30 * H, "late": False, "at_risk": False,
        "customer_id": None, "channel": None, "city": None,
        "checkpoint": {"parcels": {p: None for p in parcels}},
    }


def _put(engine: Engine, visits: list[dict[str, Any]],
         exceptions: list[dict[str, Any]] | None = None) -> None:
    with engine.begin() as conn:
        if visits:
            conn.execute(insert(HubVisitRow), visits)
        if exceptions:
            conn.execute(insert(ExceptionRow), exceptions)


def test_hub_hours_count_arrivals_retention_and_mean_dwell(store: Engine) -> None:
    hour = datetime(2025, 11, 20, 2, 0, tzinfo=UTC)          # 4.5 h before NOW
    old = datetime(2025, 11, 19, 5, 0, tzinfo=UTC)           # 25.5 h before NOW
    _put(store, [
        _visit("p1", 0, "hub-a", hour + 0.25 * H, hour + 2.25 * H),   # 2 h
        _visit("p2", 0, "hub-a", hour + 0.5 * H, hour + 4.5 * H),     # 4 h
        _visit("p3", 0, "hub-a", hour + 0.5 * H),                     # there 4 h so far
        _visit("p4", 0, "hub-b", old, old + 26 * H),                   # retained by its dwell
        _visit("p5", 0, "hub-b", old + 0.5 * H),                       # still there, 25 h: retained
        _visit("p6", 0, "hub-b", hour - 30 * H),                       # before the window
    ])
    since = NOW - 26 * H
    cells = network.hub_hours(store, since=since, now=NOW, dwell_limit_h=LIMIT_H)
    by_key = {(c.hub_id, c.hour): c for c in cells}
    a = by_key[("hub-a", hour)]
    assert (a.arrivals, a.retained, a.departed) == (3, 0, 2)
    assert a.mean_dwell_h == pytest.approx((2 + 4 + 4) / 3)
    b = by_key[("hub-b", old)]
    assert (b.arrivals, b.retained, b.departed) == (2, 2, 1)
    assert b.retention_rate == 1.0
    assert b.mean_dwell_h == pytest.approx((26 + 25) / 2)
    assert [c.hub_id for c in cells] == ["hub-a", "hub-b"]
    # Arrivals and retention as the API's rollup tells them.
    rollup = queries.hub_rollup(store, since=since, dwell_limit_h=LIMIT_H, now=NOW)
    assert {(c["hub_id"], c["arrivals"], c["retained"]) for c in rollup["cells"] if c["arrivals"]} == {
        (c.hub_id, c.arrivals, c.retained) for c in cells}


def test_hub_loads_count_open_visits_and_the_stuck_among_them(store: Engine) -> None:
    _put(store, [
        _visit("p1", 0, "hub-a", NOW - 2 * H),
        _visit("p2", 0, "hub-a", NOW - 30 * H),
        _visit("p3", 0, "hub-a", NOW - 40 * H, NOW - 10 * H),        # left: not load
        _visit("p3", 1, "hub-b", NOW - 5 * H),
    ])
    loads = network.hub_loads(store, now=NOW, dwell_limit_h=LIMIT_H)
    assert [(x.hub_id, x.at_hub, x.stuck) for x in loads] == [("hub-a", 2, 1), ("hub-b", 1, 0)]
    assert loads[0].oldest_arrived_at == NOW - 30 * H


def test_lanes_are_consecutive_visits_arriving_in_the_window(store: Engine) -> None:
    _put(store, [
        # p1: a -> b -> c, both moves in the window
        _visit("p1", 0, "hub-a", NOW - 10 * H, NOW - 8 * H),
        _visit("p1", 1, "hub-b", NOW - 6 * H, NOW - 5 * H),
        _visit("p1", 2, "hub-c", NOW - 3 * H),
        # p2: a -> b in the window
        _visit("p2", 0, "hub-a", NOW - 9 * H, NOW - 7 * H),
        _visit("p2", 1, "hub-b", NOW - 4 * H),
        # p3: a -> b long ago: outside the window
        _visit("p3", 0, "hub-a", NOW - 60 * H, NOW - 58 * H),
        _visit("p3", 1, "hub-b", NOW - 50 * H, NOW - 49 * H),
        # p4: back at the same hub: not a lane
        _visit("p4", 0, "hub-c", NOW - 9 * H, NOW - 8 * H),
        _visit("p4", 1, "hub-c", NOW - 2 * H),
    ])
    got = network.lanes(store, since=NOW - 24 * H)
    assert [(x.from_hub, x.to_hub, x.parcels) for x in got.lanes] == [("hub-a", "hub-b", 2),
                                                                      ("hub-b", "hub-c", 1)]
    assert (got.moves, got.capped) == (4, False)      # p4's return to hub-c is a move, not a lane
    assert len(network.lanes(store, since=NOW - 24 * H, limit=1).lanes) == 1
    assert network.lanes(store, since=NOW - H).lanes == []
    # Bounded: only the latest moves are read, and the set says so.
    capped = network.lanes(store, since=NOW - 24 * H, max_moves=2)
    assert capped.capped and capped.moves == 2
    assert sum(x.parcels for x in capped.lanes) <= 2


def test_stuck_parcels_bounded_per_hub_with_their_open_exception(store: Engine) -> None:
    visits = [_visit(f"a{i}", 0, "hub-a", NOW - (30 + i) * H) for i in range(5)]
    visits += [
        _visit("b0", 0, "hub-b", NOW - 26 * H),
        _visit("b-fresh", 0, "hub-b", NOW - 2 * H),                      # under the limit
        _visit("b-gone", 0, "hub-b", NOW - 50 * H, NOW - 20 * H),        # left
    ]
    _put(store, visits, [
        _exception("EX-1", parcel="a4", order_id="SO-9"),
        _exception("EX-2", parcel="a3", status="resolved"),             # not open: ignored
        _exception("EX-3", parcel="b0", rule="hub_retention"),          # another rule: ignored
    ])
    with store.begin() as conn:  # the order holding a3 (no exception names it)
        conn.execute(insert(Order), [_order("SO-3", ["a3", "x9"]), _order("SO-7", ["y1"])])
    got = network.stuck_parcels(store, now=NOW, dwell_limit_h=LIMIT_H, per_hub=3)
    assert [(p.hub_id, p.parcel_id) for p in got] == [
        ("hub-a", "a4"), ("hub-a", "a3"), ("hub-a", "a2"), ("hub-b", "b0")]
    first = got[0]
    assert first.hours_at_hub == pytest.approx(34)
    assert (first.exception_id, first.exception_status, first.order_id) == ("EX-1", "triggered", "SO-9")
    assert all(p.exception_id is None for p in got[1:])
    assert [p.order_id for p in got[1:]] == ["SO-3", None, None]
    only_b = network.stuck_parcels(store, now=NOW, dwell_limit_h=LIMIT_H, hub_id="hub-b")
    assert [p.parcel_id for p in only_b] == ["b0"]


def test_empty_store_reads_empty(store: Engine) -> None:
    assert network.hub_hours(store, since=NOW - 24 * H, now=NOW, dwell_limit_h=LIMIT_H) == []
    assert network.hub_loads(store, now=NOW, dwell_limit_h=LIMIT_H) == []
    assert network.lanes(store, since=NOW - 24 * H).lanes == []
    assert network.stuck_parcels(store, now=NOW, dwell_limit_h=LIMIT_H) == []


# --- data/hubs.toml -----------------------------------------------------------------------

GOOD = '[[hubs]]\nid = "hub-a"\nname = { en = "A", zh-CN = "甲" }\ncity = "甲"\nlat = 30.0\nlon = 120.0\n'


def test_shipped_hubs_have_names_in_both_languages_and_china_coordinates() -> None:
    book = load_hubs(DEFAULT_DATA_DIR / "hubs.toml")
    assert len(book.hubs) >= 10
    assert book.by_id["hub-shanghai"].name.of("zh-CN") == "上海"
    assert all(18 < h.lat < 54 and 73 < h.lon < 135 for h in book.hubs)


def test_missing_hubs_file_is_an_empty_book(tmp_path: Path) -> None:
    assert load_hubs(tmp_path / "hubs.toml").hubs == ()


@pytest.mark.parametrize(("text", "key", "why"), [
    (GOOD.replace("lat = 30.0", "lat = 95.0"), "hubs.0(hub-a).lat", "less than or equal to 90"),
    (GOOD.replace(', zh-CN = "甲"', ""), "hubs.0(hub-a).name.zh-CN", "Field required"),
    (GOOD.replace("lon = 120.0", 'lon = "east"'), "hubs.0(hub-a).lon", "valid number"),
    (GOOD + GOOD, "hubs.1.id", "'hub-a' is listed twice"),
    (GOOD + "colour = 1\n", "hubs.0(hub-a).colour", "Extra inputs"),
    ("hubs = 3\n", "hubs", "array of [[hubs]]"),
    ("[[hubs]\n", "", "not valid TOML"),
])
def test_bad_hubs_file_names_file_key_and_why(tmp_path: Path, text: str, key: str, why: str) -> None:
    path = tmp_path / "hubs.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(HubConfigError) as err:
        load_hubs(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}")
    assert why in message
    assert "\n" not in message


# --- the page's refresh: only what changed is sent -------------------------------------------


def test_network_refresh_sends_only_what_changed(tower_rt: Any) -> None:
    from dash import Patch, no_update

    from tests.test_browser_network import network_events
    from widgets.config import load_screen_config
    from widgets.context import Screens
    from widgets.pages import network as page

    screens = Screens(tower=tower_rt, settings=tower_rt.settings,
                      config=load_screen_config(DEFAULT_DATA_DIR / "screens.toml", tower_rt.flows))
    answer = tower_rt.ingestor.ingest(network_events(datetime.now(UTC)))
    assert answer.rejected == [] and answer.accepted == 14
    assert tower_rt.flush()
    data = page.gather(screens, window_h=24, hub_id=None)
    assert {x.hub_id: x.at_hub for x in data.loads} == {
        "hub-beijing": 1, "hub-lhasa": 1, "hub-shanghai": 1, "hub-wuhan": 1}
    assert [(x.from_hub, x.to_hub) for x in data.lanes.lanes] == [("hub-shanghai", "hub-wuhan")]
    assert [p.parcel_id for p in data.stuck] == ["P-5", "P-1"]
    assert data.stuck[1].order_id == "SO-1"
    points, lanes, missing = page.map_parts(data, page.hub_book(screens), "zh-CN")
    assert missing == ["hub-lhasa"] and len(lanes) == 1 and len(points) == 10


    fake = CallbackRecorder()
    page.register_callbacks(fake, screens)  # type: ignore[arg-type]
    refresh, _choose = fake.funcs
    view = {"lang": "zh-CN", "theme": "dark", "kiosk": True}
    first = refresh(1, "retention", "24", None, view, {})
    heat, title, map_patch, map_title, *parts, sent = first
    assert all(part is not no_update for part in parts)   # no-coordinates, hub filter, stuck list
    assert heat.data[0].type == "heatmap" and heat.layout.font.size == page.KIOSK_FONT
    assert "滞留率" in title and isinstance(map_patch, Patch) and "枢纽地图" in map_title
    again = refresh(2, "retention", "24", None, view, sent)
    assert all(part is no_update for part in again[:7])
    # Another measure: only the heatmap (and its title) is sent again.
    other = refresh(3, "arrivals", "24", None, view, again[7])
    assert other[0] is not no_update and all(part is no_update for part in other[2:7])
    # A hub chosen: the stuck list and the filter follow, the figures stay.
    one = refresh(4, "arrivals", "24", "hub-beijing", view, other[7])
    assert one[0] is no_update and one[2] is no_update
    assert one[5] is not no_update and one[6] is not no_update
