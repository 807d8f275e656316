"""Seeded event factories: realistic, reproducible streams of v1 events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from tower.flows import FlowBook

T0 = datetime(2026, 11, 11, 8, 0, tzinfo=UTC)
HUBS = ("hub-sha", "hub-wuh", "hub-can", "hub-ctu")


def _ts(t: datetime) -> str:
    return t.isoformat()


def order_stream(
    flows: FlowBook, *, order_id: str, rng: random.Random, start: datetime = T0,
    flow: str = "ecommerce", parcels: int = 1, deliver: bool = True,
) -> list[dict[str, Any]]:
    """The events of one order that goes through its whole flow, in time order."""
    f = flows.by_id[flow]
    t = start
    ev: list[dict[str, Any]] = []
    n = 0

    def add(kind: str, payload: dict[str, Any], at: datetime) -> None:
        nonlocal n
        ev.append({"event_id": f"{order_id}-{n:03d}", "type": kind, "occurred_at": _ts(at),
                   "source": "test", "order_id": order_id, "payload": payload})
        n += 1

    add("order.created", {"flow": flow, "promised_at": _ts(start + timedelta(days=3)),
                          "priority": rng.choice(["normal", "rush"]),
                          "custom": rng.random() < 0.2}, t)
    for i, stage in enumerate(f.stages):
        if i > 0:
            add("stage.entered", {"stage": stage.id}, t)
        t += timedelta(minutes=rng.randint(1, 90))
        add("stage.started", {"stage": stage.id, "resource": f"r{rng.randint(1, 3)}"}, t)
        t += timedelta(minutes=rng.randint(1, 120))
        if any(g.from_stage == stage.id for s in f.stages for g in s.gates):
            add("handoff.evidence", {"stage": stage.id, "kind": "qc_photo", "url": "https://x/p.jpg"}, t)
        add("stage.completed", {"stage": stage.id}, t)
        if stage.id in ("outbound", "shipping"):
            for p in range(parcels):
                pid = f"{order_id}-p{p}"
                add("tracking.assigned", {"carrier": "sf", "tracking_number": f"SF{order_id}{p}",
                                          "parcel_id": pid}, t)
                pt = t
                for hub in rng.sample(HUBS, 2):
                    pt += timedelta(hours=rng.randint(1, 10))
                    add("parcel.scanned", {"parcel_id": pid, "status": "arrived_hub", "hub_id": hub}, pt)
                    pt += timedelta(hours=rng.randint(1, 30))
                    add("parcel.scanned", {"parcel_id": pid, "status": "departed_hub", "hub_id": hub}, pt)
                if deliver:
                    add("parcel.scanned", {"parcel_id": pid, "status": "delivered"},
                        pt + timedelta(hours=2))
    return ev


def many_orders(flows: FlowBook, *, n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        flow = "manufacturing" if rng.random() < 0.3 else "ecommerce"
        out += order_stream(flows, order_id=f"o{i:05d}", rng=rng, flow=flow,
                            start=T0 + timedelta(minutes=7 * i), parcels=rng.randint(1, 2))
    return out
