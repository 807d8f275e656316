"""The HTTP API on the app's Flask server: bodies, answers, limits, auth, reads."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from flask.testing import FlaskClient

from app import create_app
from tower.runtime import Tower, build_tower
from tower.settings import Settings

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(hours: float) -> str:
    return (NOW - timedelta(hours=30) + timedelta(hours=hours)).isoformat()


def created(order: str) -> dict[str, Any]:
    return {"event_id": f"{order}-c", "type": "order.created", "occurred_at": ts(0), "source": "erp",
            "order_id": order, "payload": {"flow": "ecommerce", "promised_at": ts(72)}}


def stage(order: str, kind: str, name: str, at: float) -> dict[str, Any]:
    return {"event_id": f"{order}-{kind}-{name}", "type": f"stage.{kind}", "occurred_at": ts(at),
            "source": "wms", "order_id": order, "payload": {"stage": name}}


def scan(order: str, status: str, hub: str | None, at: float) -> dict[str, Any]:
    payload: dict[str, Any] = {"parcel_id": f"{order}-p", "status": status}
    if hub:
        payload["hub_id"] = hub
    return {"event_id": f"{order}-{status}-{at}", "type": "parcel.scanned", "occurred_at": ts(at),
            "source": "carrier:sf", "order_id": order, "payload": payload}


@pytest.fixture
def client(tower_rt: Tower) -> Iterator[FlaskClient]:
    app = create_app(tower_rt.settings, tower=tower_rt)
    with app.server.test_client() as c:
        yield c


def post(client: FlaskClient, body: Any, kind: str = "application/json", **headers: str) -> Any:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post("/api/v1/events", data=data, content_type=kind, headers=headers)


def test_post_json_array_then_read_the_order(client: FlaskClient, tower_rt: Tower) -> None:
    r = post(client, [created("o1"), stage("o1", "entered", "picking", 1),
                      stage("o1", "started", "picking", 2)])
    assert r.status_code == 200
    assert r.get_json() == {"accepted": 3, "duplicates": 0, "held": 0, "rejected": []}
    tower_rt.flush()
    order = client.get("/api/v1/orders/o1").get_json()
    keys = {"order_id", "flow", "stage", "status", "priority", "promised_at", "stages", "events"}
    assert keys <= set(order)
    assert order["stage"] == "picking" and order["flow"] == "ecommerce"
    assert order["stages"][1] == {"seq": 1, "stage": "picking", "entered_at": ts(1),
                                  "started_at": ts(2), "completed_at": None}
    assert [e["type"] for e in order["events"]] == ["order.created", "stage.entered", "stage.started"]


def test_single_object_body(client: FlaskClient) -> None:
    r = post(client, created("o1"))
    assert r.status_code == 200 and r.get_json()["accepted"] == 1


def test_ndjson_with_a_bad_line(client: FlaskClient) -> None:
    body = b"\n".join([orjson.dumps(created("o1")), b"{oops", orjson.dumps(created("o2"))])
    r = post(client, body, kind="application/x-ndjson")
    answer = r.get_json()
    assert r.status_code == 200
    assert answer["accepted"] == 2
    assert answer["rejected"][0]["index"] == 1 and "not valid JSON" in answer["rejected"][0]["error"]


@pytest.mark.parametrize("body", [b"{not json", b"42", b'"text"', b""])
def test_body_that_is_not_an_array_or_object_is_400(client: FlaskClient, body: bytes) -> None:
    r = post(client, body)
    assert r.status_code == 400 and "error" in r.get_json()


def test_wrong_content_type_is_415(client: FlaskClient) -> None:
    assert post(client, b"x", kind="text/plain").status_code == 415


def test_unknown_order_is_404(client: FlaskClient) -> None:
    r = client.get("/api/v1/orders/nope")
    assert r.status_code == 404 and "nope" in r.get_json()["error"]


def test_flows_in_stage_order(client: FlaskClient) -> None:
    flows = client.get("/api/v1/flows").get_json()["flows"]
    assert [f["id"] for f in flows] == ["ecommerce", "manufacturing"]
    eco = flows[0]
    assert [s["id"] for s in eco["stages"]] == ["paid", "picking", "packing", "outbound", "transit"]
    assert {"id", "owner", "budget_h", "deliverable", "name", "gates"} <= set(eco["stages"][0])


def test_funnel_and_hub_rollup(client: FlaskClient, tower_rt: Tower) -> None:
    events = [created("o1"), created("o2"), stage("o2", "entered", "picking", 1),
              scan("o1", "arrived_hub", "hub-wuh", 2), scan("o1", "departed_hub", "hub-wuh", 28),
              scan("o2", "arrived_hub", "hub-wuh", 3), scan("o2", "departed_hub", "hub-wuh", 4)]
    assert post(client, events).get_json()["accepted"] == len(events)
    tower_rt.flush()
    funnel = client.get("/api/v1/funnel?flow=ecommerce").get_json()
    counts = {s["stage"]: s["in_stage"] for s in funnel["stages"]}
    assert counts["paid"] == 1 and counts["picking"] == 1
    assert len(funnel["days"]) == 2
    rollup = client.get("/api/v1/hubs/rollup?since=" + ts(0).replace("+", "%2B")).get_json()
    hub = rollup["hubs"][0]
    assert hub == {"hub_id": "hub-wuh", "arrivals": 2, "departures": 2, "retained": 1,
                   "retention_rate": 0.5}
    assert client.get("/api/v1/funnel?flow=nope").status_code == 400
    assert client.get("/api/v1/hubs/rollup?since=yesterday").status_code == 400


def test_health_and_dead_letters(client: FlaskClient) -> None:
    health = client.get("/healthz")
    assert health.status_code == 200
    body = health.get_json()
    assert body["database"]["ok"] and body["bus"]["ok"] and body["mode"] == "embedded"
    dead = client.get("/api/v1/dead-letters").get_json()
    assert dead == {"dead_letters": [], "held": 0}


def test_event_schema_endpoint(client: FlaskClient) -> None:
    assert client.get("/api/v1/schema/event").get_json()["title"] == "Order Tower event v1"


@pytest.fixture
def limited(sqlite_url: str) -> Iterator[FlaskClient]:
    tower = build_tower(Settings(database_url=sqlite_url, api_token="t0k3n", max_body_bytes=2048,
                                 max_batch_events=3), migrate=False)
    app = create_app(tower.settings, tower=tower)
    with app.server.test_client() as c:
        yield c
    tower.close()


def test_token_is_required_when_set(limited: FlaskClient) -> None:
    assert post(limited, [created("a")]).status_code == 401
    assert post(limited, [created("a")], Authorization="Bearer wrong").status_code == 401
    r = post(limited, [created("a1")], Authorization="Bearer t0k3n")
    assert r.status_code == 200
    assert "t0k3n" not in r.get_data(as_text=True)
    # reads stay open
    assert limited.get("/api/v1/flows").status_code == 200


def test_size_limits_are_413(limited: FlaskClient) -> None:
    auth = {"Authorization": "Bearer t0k3n"}
    big = [{**created("b"), "source": "x" * 3000}]
    r = post(limited, big, **auth)
    assert r.status_code == 413 and "limit" in r.get_json()["error"]
    r = post(limited, [created(f"c{i}") for i in range(4)], **auth)
    assert r.status_code == 413 and "limit is 3" in r.get_json()["error"]


def test_openapi_document(client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    assert "/api/v1/events" in doc["paths"] and "/api/v1/orders/{order_id}" in doc["paths"]
    schemas = doc["components"]["schemas"]
    assert "Event" in schemas and "OrderCreated" in schemas
    assert "#/$defs/" not in repr(doc)
