"""The exceptions API, the emergency room and the measures, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from tests.test_exceptions_store import EXCEPTION_TABLES, T0, Clock, _order, trig
from tower.exceptions import jobs, store
from tower.exceptions.policy import load_policy
from tower.runtime import Tower, build_tower
from tower.settings import DEFAULT_DATA_DIR, Settings
from tower.store.engine import make_engine
from tower.web.api import install_api

TOKEN = "s3cret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def rt(db_url: str) -> Iterator[Tower]:
    eng = make_engine(db_url)
    with eng.begin() as conn:
        for name in (*EXCEPTION_TABLES, "orders"):
            conn.execute(text(f"DELETE FROM {name}"))
    eng.dispose()
    tower = build_tower(Settings(database_url=db_url, redis_url=None, api_token=TOKEN),
                        migrate=False, clock=Clock())
    yield tower
    tower.close()


@pytest.fixture
def client(rt: Tower) -> Iterator[FlaskClient]:
    # The API on a bare Flask server: these tests do not depend on the pages.
    server = Flask(__name__)
    install_api(server, rt)
    with server.test_client() as c:
        yield c


def clock(rt: Tower) -> Clock:
    assert isinstance(rt.clock, Clock)
    return rt.clock


def post(client: FlaskClient, path: str, body: Any = None, **headers: str) -> Any:
    data = b"" if body is None else body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, data=data, content_type="application/json",
                       headers={**AUTH, **headers})


def raise_one(client: FlaskClient, **body: Any) -> dict[str, Any]:
    r = post(client, "/api/v1/exceptions", {"title": "design defect on custom order", "team":
                                            "production", "order_id": "O1", **body})
    assert r.status_code in (200, 201), r.get_json()
    answer: dict[str, Any] = r.get_json()
    return answer


def test_raise_by_hand_then_dedupe(client: FlaskClient, rt: Tower) -> None:
    r = post(client, "/api/v1/exceptions", {"title": "design defect", "team": "production",
                                            "order_id": "O1", "actor": "alice", "note": "seen by QC"})
    assert r.status_code == 201
    ex = r.get_json()
    assert ex["created"] and ex["tier"] == "L3" and ex["status"] == "triggered"
    assert ex["raised_by"] == "alice" and ex["scope_key"] == "order:O1" and ex["rule"] == "manual"
    assert ex["respond_by"] == (T0 + timedelta(hours=1)).isoformat()
    assert [(e["action"], e["actor"], e["note"]) for e in ex["timeline"]] == [
        ("triggered", "alice", "seen by QC")]
    again = post(client, "/api/v1/exceptions", {"title": "design defect", "team": "production",
                                                "order_id": "O1"})
    assert again.status_code == 200
    assert again.get_json()["id"] == ex["id"] and again.get_json()["count"] == 2
    # nothing named: never merged
    a = raise_one(client, order_id=None)
    b = raise_one(client, order_id=None)
    assert a["id"] != b["id"] and a["scope_key"].startswith("manual:")


@pytest.mark.parametrize(("body", "status", "message"), [
    (b"{nope", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    ({"team": "production"}, 422, "title: Field required"),
    ({"title": "x", "team": "nobody"}, 422, "team: 'nobody' is not a team"),
    ({"title": "x", "team": "production", "tier": "L4"}, 422, "tier"),
    ({"title": "x", "team": "production", "colour": "red"}, 422, "colour: Extra inputs"),
])
def test_raise_refuses_bad_bodies(client: FlaskClient, body: Any, status: int, message: str) -> None:
    r = post(client, "/api/v1/exceptions", body)
    assert r.status_code == status
    assert message in r.get_json()["error"]


def test_writes_need_the_token_reads_do_not(client: FlaskClient) -> None:
    ex = raise_one(client)
    for path in ("/api/v1/exceptions", f"/api/v1/exceptions/{ex['id']}/ack"):
        r = client.post(path, data=b"{}", content_type="application/json")
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
        r = post(client, path, {}, Authorization="Bearer wrong")
        assert r.status_code == 401
    assert client.get(f"/api/v1/exceptions/{ex['id']}").status_code == 200
    assert client.get("/api/v1/exceptions").status_code == 200


def test_lifecycle_over_http(client: FlaskClient, rt: Tower) -> None:
    ex = raise_one(client, tier="L2")
    url = f"/api/v1/exceptions/{ex['id']}"
    clock(rt).advance(minutes=10)
    r = post(client, f"{url}/assign", {"team": "logistics", "assignee": "bo", "actor": "alice"})
    assert r.status_code == 200 and r.get_json()["team"] == "logistics"
    assert post(client, f"{url}/assign", {"team": "x"}).status_code == 422
    r = post(client, f"{url}/ack", {"actor": "bo"})
    assert r.status_code == 200 and r.get_json()["status"] == "acknowledged"
    r = post(client, f"{url}/ack")
    assert r.status_code == 409 and r.get_json()["error"] == "the exception is already acknowledged"
    r = post(client, f"{url}/comment", {"note": "asked SF", "step": "carrier contacted",
                                        "next_update_h": 2, "actor": "bo"})
    body = r.get_json()
    assert body["handling_step"] == "carrier contacted"
    assert body["next_update_at"] == (clock(rt).now() + timedelta(hours=2)).isoformat()
    assert post(client, f"{url}/comment", {"step": "x"}).status_code == 422  # note required
    assert post(client, f"{url}/snooze", {}).status_code == 422
    assert post(client, f"{url}/snooze", {"hours": 1, "until": T0.isoformat()}).status_code == 422
    assert post(client, f"{url}/snooze", {"until": "2026-03-02T09:00:00"}).status_code == 422
    r = post(client, f"{url}/snooze", {"until": T0.isoformat()})
    assert r.status_code == 422 and "not in the future" in r.get_json()["error"]
    r = post(client, f"{url}/snooze", {"hours": 1.5})
    assert r.get_json()["snoozed_until"] == (clock(rt).now() + timedelta(hours=1.5)).isoformat()
    assert post(client, f"{url}/close").status_code == 409
    r = post(client, f"{url}/resolve", {"cause": "mystery"})
    assert r.status_code == 422 and "root-cause category" in r.get_json()["error"]
    assert post(client, f"{url}/resolve", {"note": "x"}).status_code == 422
    assert post(client, f"{url}/resolve", {"cause": "other", "whys": ["1"] * 6}).status_code == 422
    r = post(client, f"{url}/resolve", {
        "cause": "supplier_delay", "note": "fabric late", "supplier": "SUP-9",
        "whys": ["fabric late", "supplier short of dye", "single-sourced dye"], "actor": "bo"})
    assert r.status_code == 200
    assert r.get_json()["root_cause"]["whys"][2] == "single-sourced dye"
    assert post(client, f"{url}/cancel").status_code == 409
    assert post(client, f"{url}/close", {"note": "reviewed"}).get_json()["status"] == "closed"
    full = client.get(url).get_json()
    assert [e["action"] for e in full["timeline"]] == [
        "triggered", "assigned", "acknowledged", "step", "snoozed", "resolved", "closed"]
    assert full["timeline"][1]["actor"] == "alice" and full["timeline"][2]["actor"] == "bo"
    assert full["timeline"][4]["actor"] == "api"
    page = client.get(f"{url}?timeline_limit=3").get_json()
    assert len(page["timeline"]) == 3 and page["timeline_next"] == page["timeline"][-1]["id"]
    rest = client.get(f"{url}?timeline_after={page['timeline_next']}").get_json()
    assert len(rest["timeline"]) == 4 and rest["timeline_next"] is None
    assert client.get(f"{url}?timeline_limit=0").status_code == 400


def test_unknown_id_is_404(client: FlaskClient) -> None:
    assert client.get("/api/v1/exceptions/EX-nope").status_code == 404
    r = post(client, "/api/v1/exceptions/EX-nope/ack")
    assert r.status_code == 404 and "EX-nope" in r.get_json()["error"]


def test_list_filters_and_pages(client: FlaskClient, rt: Tower) -> None:
    ids = []
    for i in range(5):
        clock(rt).advance(minutes=1)
        ids.append(raise_one(client, order_id=f"O{i}", tier="L2" if i % 2 else "L3",
                             team="logistics" if i < 3 else "production")["id"])
    post(client, f"/api/v1/exceptions/{ids[0]}/cancel")
    post(client, f"/api/v1/exceptions/{ids[1]}/ack")

    def listed(query: str) -> list[str]:
        r = client.get(f"/api/v1/exceptions{query}")
        assert r.status_code == 200
        return [item["id"] for item in r.get_json()["items"]]

    assert listed("") == ids[::-1]
    assert listed("?status=open") == ids[:0:-1]
    assert listed("?status=cancelled") == [ids[0]]
    assert listed("?status=acknowledged&tier=L2") == [ids[1]]
    assert listed("?team=production&tier=L2") == [ids[3]]
    assert listed("?order_id=O2") == [ids[2]]
    r = client.get("/api/v1/exceptions?limit=2&offset=2").get_json()
    assert [i["id"] for i in r["items"]] == [ids[2], ids[1]] and r["next_offset"] == 4
    item = r["items"][0]
    assert {"id", "rule", "order_id", "hub_id", "tier", "status", "team", "opened_at",
            "respond_by"} <= set(item)
    for bad in ("?status=lost", "?tier=L0", "?limit=0", "?limit=9999", "?offset=-1", "?limit=x"):
        assert client.get(f"/api/v1/exceptions{bad}").status_code == 400


def test_emergency_room_order_and_escalation(client: FlaskClient, rt: Tower) -> None:
    policy = load_policy(DEFAULT_DATA_DIR / "rules.toml")
    with rt.engine.begin() as conn:
        _order(conn, "O1", frozen=False)
    l2 = raise_one(client, tier="L2", order_id="O1", team="logistics")["id"]
    l2_hot = raise_one(client, tier="L2", order_id="O2", high_priority=True)["id"]
    l3 = raise_one(client, tier="L3", order_id="O3")["id"]
    l3_acked = raise_one(client, tier="L3", order_id="O4")["id"]
    l1 = raise_one(client, tier="L1", order_id="O5")["id"]
    post(client, f"/api/v1/exceptions/{l3_acked}/ack")
    post(client, f"/api/v1/exceptions/{l3_acked}/comment",
         {"note": "n", "step": "carrier contacted", "next_update_h": 2})
    with rt.engine.begin() as conn:
        child = store.raise_or_bump(conn, trig(parent_id=l2), now=T0, policy=policy).id
    snoozed = raise_one(client, tier="L2", order_id="O6")["id"]
    post(client, f"/api/v1/exceptions/{snoozed}/snooze", {"hours": 8})

    room = client.get("/api/v1/emergency-room").get_json()
    assert room["now"] == T0.isoformat()
    items = room["items"]
    assert [i["id"] for i in items] == [l3, l3_acked, l2_hot, l2]
    assert items[0]["seconds_left"] == 3600 and not items[0]["overdue"]
    assert items[1]["seconds_left"] is None and items[1]["handling_step"] == "carrier contacted"
    assert items[2]["seconds_left"] == 1800
    assert items[3]["promised_at"] == (T0 + timedelta(days=2)).isoformat()
    assert items[3]["grouped"] == 1 and items[2]["promised_at"] is None
    assert l1 not in {i["id"] for i in items} and child not in {i["id"] for i in items}
    assert [i["id"] for i in client.get("/api/v1/emergency-room?team=logistics").get_json()["items"]] \
        == [l2]

    # 45 minutes on: the hot L2 is overdue and escalates; the pass is the scheduled job's
    clock(rt).advance(minutes=45)
    assert client.get("/api/v1/emergency-room").get_json()["items"][2]["overdue"] is True
    woken, escalated = jobs.response_pass(rt.engine, rt.clock, policy)
    assert (woken, escalated) == ([], [l2_hot])
    items = client.get("/api/v1/emergency-room").get_json()["items"]
    assert [i["id"] for i in items] == [l3, l2_hot, l3_acked, l2]
    assert items[0]["seconds_left"] == 900 and items[1]["seconds_left"] == 1800
    assert items[1]["tier"] == "L3" and items[1]["escalations"] == 1
    # 8 hours on: the snoozed one wakes and, overdue, escalates in the same pass
    clock(rt).advance(hours=8)
    woken, escalated = jobs.response_pass(rt.engine, rt.clock, policy)
    assert woken == [snoozed] and set(escalated) == {l2, l3, l2_hot, snoozed}


def test_scheduled_job_is_registered(rt: Tower) -> None:
    [job] = jobs.scheduled_jobs(rt)
    assert job.every_s == 30 and job.name == "exceptions.response"
    job.run()


def test_measures(client: FlaskClient, rt: Tower) -> None:
    c = clock(rt)
    fast = raise_one(client, tier="L2", order_id="A", team="logistics")["id"]
    slow = raise_one(client, tier="L2", order_id="B", team="logistics")["id"]
    l3 = raise_one(client, tier="L3", order_id="C", team="production")["id"]
    c.advance(minutes=30)
    post(client, f"/api/v1/exceptions/{fast}/ack")
    post(client, f"/api/v1/exceptions/{l3}/resolve", {"cause": "quality_defect", "supplier": "SUP-1"})
    c.advance(hours=4)  # slow is overdue now
    post(client, f"/api/v1/exceptions/{slow}/ack")
    post(client, f"/api/v1/exceptions/{fast}/resolve", {"cause": "carrier_delay", "carrier": "SF"})
    post(client, f"/api/v1/exceptions/{slow}/resolve", {"cause": "carrier_delay", "carrier": "SF"})
    c.advance(minutes=1)  # the window is [since, until), until defaulting to now
    m = client.get("/api/v1/exceptions/measures").get_json()
    assert m["overall"] == {"opened": 3, "acknowledged": 2, "mtta_s": (1800 + 16200) / 2,
                            "resolved": 3, "mttr_s": (1800 + 16200 * 2) / 3, "due": 3,
                            "answered_in_time": 2, "answered_in_time_share": 0.6667}
    assert m["by_tier"]["L3"]["answered_in_time"] == 1 and m["by_tier"]["L3"]["mtta_s"] is None
    assert m["by_team"]["logistics"]["answered_in_time_share"] == 0.5
    assert m["top_causes"] == [{"cause": "carrier_delay", "n": 2, "share": 0.6667},
                               {"cause": "quality_defect", "n": 1, "share": 0.3333}]
    assert m["suppliers"] == [{"supplier": "SUP-1", "exceptions": 1}]
    assert m["carriers"] == [{"carrier": "SF", "exceptions": 2}]
    z = T0.isoformat().replace("+00:00", "Z")
    before = client.get(f"/api/v1/exceptions/measures?until={z}").get_json()
    assert before["overall"]["opened"] == 0 and before["overall"]["mtta_s"] is None
    for bad in ("?since=yesterday", "?since=2026-03-02T08:00:00",
                f"?since={z}&until={z}",
                "?since=2020-01-01T00:00:00Z"):
        assert client.get(f"/api/v1/exceptions/measures{bad}").status_code == 400


def test_resolving_by_api_unfreezes_a_cold_chain_order(client: FlaskClient, rt: Tower) -> None:
    with rt.engine.begin() as conn:
        _order(conn, "O1", frozen=True)
    ex = raise_one(client, tier="L2", order_id="O1", rule="cold_chain",
                   detail={"froze_order": True})["id"]
    post(client, f"/api/v1/exceptions/{ex}/resolve", {"cause": "equipment"})
    assert client.get("/api/v1/orders/O1").get_json()["status"] != "frozen"
    with rt.engine.connect() as conn:
        assert conn.execute(text("SELECT frozen FROM orders")).scalar() in (False, 0)


def test_openapi_lists_the_exception_routes(client: FlaskClient) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/api/v1/exceptions", "/api/v1/exceptions/{id}", "/api/v1/exceptions/{id}/ack",
                 "/api/v1/exceptions/{id}/resolve", "/api/v1/emergency-room",
                 "/api/v1/exceptions/measures"):
        assert path in paths
