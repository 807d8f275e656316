"""The funnel's rollups (kept by the projector) give exactly what the orders and stage
visits say, whatever the arrival order and batch split, after a rebuild, and when
filled by migration 0002 from existing projections."""

from __future__ import annotations

import importlib.util
import random
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select, text

from tests.conftest import _truncate
from tests.factories import T0, order_stream
from tower.domain import TowerFigures
from tower.events import EventRecord, validate_event
from tower.flows import FlowBook
from tower.settings import ROOT
from tower.store import queries
from tower.store.projector import Projector
from tower.store.tables import metadata

ROLLUPS = ("order_stage_counts", "stage_entry_counts", "stage_reentries", "delivery_counts")
ZONES = [ZoneInfo(z) for z in ("Asia/Shanghai", "Asia/Kathmandu", "America/New_York", "UTC")]


def _event(event_id: str, kind: str, order_id: str, at: datetime, payload: dict[str, Any]) -> dict[str, Any]:
    return {"event_id": event_id, "type": kind, "occurred_at": at.isoformat(), "source": "test",
            "order_id": order_id, "payload": payload}


def _events(flows: FlowBook) -> list[EventRecord]:
    rng = random.Random(7)
    raw: list[dict[str, Any]] = []
    for i in range(12):
        raw += order_stream(flows, order_id=f"o{i}", rng=rng, start=T0 + timedelta(hours=5 * i),
                            flow="manufacturing" if i % 4 == 0 else "ecommerce",
                            parcels=1 + i % 2, deliver=i % 3 != 0)
    # rework: back to picking (same day and days later), then on again
    for n, (stage, hours) in enumerate([("picking", 30), ("packing", 31), ("picking", 80), ("packing", 81)]):
        raw.append(_event(f"o1-rw{n}", "stage.entered", "o1", T0 + timedelta(hours=hours), {"stage": stage}))
    raw.append(_event("o2-rw", "stage.entered", "o2", T0 + timedelta(hours=12), {"stage": "paid"}))
    # a cancel, a parcel added after delivery (no longer delivered), an event for a
    # missing order (held), and a second creation with another flow, earlier in time
    raw.append(_event("o5-x", "order.cancelled", "o5", T0 + timedelta(hours=40), {}))
    raw.append(_event("o4-late-parcel", "tracking.assigned", "o4", T0 + timedelta(days=6),
                      {"carrier": "sf", "tracking_number": "SFX", "parcel_id": "o4-extra"}))
    raw.append(_event("ghost-1", "stage.entered", "ghost", T0 + timedelta(hours=3), {"stage": "picking"}))
    raw.append(_event("o7-early", "order.created", "o7", T0 + timedelta(hours=1),
                      {"flow": "manufacturing", "promised_at": (T0 + timedelta(days=9)).isoformat()}))
    return [validate_event(e) for e in raw]


def _rollup_rows(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Rollup figures summed over shards (zero sums dropped), for exact comparison."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in ROLLUPS:
            table = metadata.tables[name]
            if "n" not in table.c:
                rows = conn.execute(select(*table.c)).all()
                out[name] = sorted(tuple(r) for r in rows)
                continue
            keys = [c for c in table.c if c.name not in ("shard", "n")]
            rows = conn.execute(select(*keys, func.sum(table.c.n)).group_by(*keys)).all()
            out[name] = sorted(tuple(r) for r in rows if r[-1] != 0)
    return out


def _check_funnel(engine: Engine, flows: FlowBook) -> None:
    for flow in flows.by_id:
        for zone in ZONES:
            for now in (T0 + timedelta(hours=20), T0 + timedelta(days=3, hours=7), T0 + timedelta(days=8)):
                got = queries.funnel(engine, flows=flows, flow_id=flow, zone=zone, days=5, now=now)
                want = queries._funnel_exact(engine, flows=flows, flow_id=flow, zone=zone, days=5, now=now)
                assert got == want, (flow, zone, now)


def _apply_shuffled(engine: Engine, flows: FlowBook, figures: TowerFigures, events: list[EventRecord],
                    seed: int) -> Projector:
    _truncate(engine)
    rng = random.Random(seed)
    stream = list(events)
    rng.shuffle(stream)
    stream += rng.sample(events, 10)  # duplicates
    projector = Projector(engine, flows, figures)
    i = 0
    while i < len(stream):
        n = rng.randint(1, 40)
        projector.apply(stream[i : i + n])
        i += n
    return projector


def test_funnel_from_rollups_equals_the_projections(engine: Engine, flows: FlowBook,
                                                    figures: TowerFigures) -> None:
    events = _events(flows)
    reference = None
    for seed in range(4):
        projector = _apply_shuffled(engine, flows, figures, events, seed)
        _check_funnel(engine, flows)
        rows = _rollup_rows(engine)
        assert rows["stage_reentries"], "the stream has rework"
        if reference is None:
            reference = rows
        assert rows == reference, f"seed {seed}"
    projector.rebuild()
    assert _rollup_rows(engine) == reference
    _check_funnel(engine, flows)


def test_migration_fills_the_rollups_like_the_projector(engine: Engine, flows: FlowBook,
                                                        figures: TowerFigures) -> None:
    _apply_shuffled(engine, flows, figures, _events(flows), seed=11)
    expected = _rollup_rows(engine)
    path = ROOT / "tower" / "migrations" / "versions" / "0002_funnel_rollups.py"
    spec = importlib.util.spec_from_file_location("migration_0002", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    with engine.begin() as conn:
        for name in ROLLUPS:
            conn.execute(text(f"DELETE FROM {name}"))
        for statement in migration.backfill_statements(engine.dialect.name):
            conn.execute(text(statement))
    assert _rollup_rows(engine) == expected
    _check_funnel(engine, flows)


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Australia/Eucla"])
def test_days_of_any_zone(engine: Engine, flows: FlowBook, figures: TowerFigures, zone: str) -> None:
    _apply_shuffled(engine, flows, figures, _events(flows), seed=3)
    now = T0 + timedelta(days=2, hours=3)
    assert queries.funnel(engine, flows=flows, flow_id="ecommerce", zone=ZoneInfo(zone), days=4,
                          now=now) == queries._funnel_exact(engine, flows=flows, flow_id="ecommerce",
                                                            zone=ZoneInfo(zone), days=4, now=now)


def test_in_time_order_and_from_checkpoints_without_reach(engine: Engine, flows: FlowBook,
                                                          figures: TowerFigures) -> None:
    """Forward folds only (events in time order), and orders stored before the
    checkpoint recorded how far they went (as after migration 0002)."""
    events = _events(flows)
    _apply_shuffled(engine, flows, figures, events, seed=5)
    reference = _rollup_rows(engine)
    ordered = sorted(events, key=lambda e: (e.occurred_at, e.event_id))
    orders = metadata.tables["orders"]
    for forget_at in (None, len(ordered) // 3, 2 * len(ordered) // 3):
        _truncate(engine)
        projector = Projector(engine, flows, figures)
        for i in range(0, len(ordered), 3):
            if i == forget_at:
                with engine.begin() as conn:
                    for order_id, checkpoint in conn.execute(select(orders.c.order_id, orders.c.checkpoint)):
                        checkpoint.pop("reach", None)
                        conn.execute(orders.update().where(orders.c.order_id == order_id)
                                     .values(checkpoint=checkpoint))
            projector.apply(ordered[i : i + 3])
        assert _rollup_rows(engine) == reference, forget_at
        _check_funnel(engine, flows)
