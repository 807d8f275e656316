"""The overview's read services on SQLite and PostgreSQL: KPI figures and the ticker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from tower.store import overview
from tower.store.tables import ExceptionRow, Order

ZONE = ZoneInfo("Asia/Shanghai")
# 14:00 in Shanghai: "today" began at 16:00 UTC the day before.
NOW = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
DAY_START = datetime(2025, 11, 19, 16, 0, tzinfo=UTC)


def _order(order_id: str, *, status: str = "in_progress", promised: datetime, late: bool = False,
           at_risk: bool = False, delivered: datetime | None = None) -> dict[str, Any]:
    created = promised - timedelta(days=2)
    return {
        "order_id": order_id, "flow": "ecommerce", "stage": "picking", "stage_seq": 1,
        "status": status, "frozen": False, "priority": "normal", "custom": False,
        "promised_at": promised, "created_at": created, "delivered_at": delivered,
        "cancelled_at": None, "last_event_at": delivered or created, "late": late,
        "at_risk": at_risk, "customer_id": None, "channel": None, "city": None, "checkpoint": {},
    }


def _exception(exc_id: str, *, tier: str, status: str, opened: datetime,
               respond_by: datetime | None = None) -> dict[str, Any]:
    return {
        "id": exc_id, "rule": "stage_overdue", "scope_key": exc_id,
        "open_key": None if status in overview.DONE_EXCEPTION_STATUSES else f"r|{exc_id}",
        "order_id": "o1", "parcel_id": None, "hub_id": None, "flow": "ecommerce", "stage": "picking",
        "tier": tier, "status": status, "team": "warehouse", "high_priority": False,
        "title": f"exception {exc_id}", "detail": {}, "count": 1, "condition_since": opened,
        "opened_at": opened, "last_seen_at": opened, "respond_by": respond_by,
        "acknowledged_at": None, "resolved_at": None, "closed_at": None, "cancelled_at": None,
        "snoozed_until": None, "assignee": None, "handling_step": None, "next_update_at": None,
        "root_cause": None, "parent_id": None, "raised_by": "system", "escalations": 0,
        "updated_at": opened,
    }


def test_order_kpis_count_flight_lateness_and_today(store: Engine) -> None:
    h = timedelta(hours=1)
    rows = [
        _order("fine", promised=NOW + 30 * h),
        _order("flagged-late", promised=NOW + 30 * h, late=True),
        _order("past-promise", promised=NOW - h),                      # late by the clock
        _order("risky", promised=NOW + 2 * h, at_risk=True),
        _order("risky-and-late", promised=NOW - h, at_risk=True),      # counts as late only
        # delivered today: one on time, one after its promise; one delivered yesterday
        _order("d-on-time", status="delivered", promised=NOW - h, delivered=NOW - 2 * h),
        _order("d-late", status="delivered", promised=DAY_START + h, delivered=NOW - h),
        _order("d-yesterday", status="delivered", promised=DAY_START - h, delivered=DAY_START - 2 * h),
        _order("cancelled", status="cancelled", promised=NOW - 2 * h),
    ]
    with store.begin() as conn:
        conn.execute(insert(Order), rows)
    kpis = overview.order_kpis(store, zone=ZONE, now=NOW)
    assert (kpis.in_flight, kpis.late, kpis.at_risk) == (5, 3, 1)
    assert (kpis.delivered_today, kpis.on_time_today) == (2, 1)
    assert kpis.on_time_share == 0.5
    # due since midnight: past-promise, risky-and-late, d-on-time, d-late (cancelled left out)
    assert (kpis.due_today, kpis.otif_today) == (4, 1)
    assert kpis.otif == 0.25


def test_order_kpis_of_an_empty_store_have_no_shares(store: Engine) -> None:
    kpis = overview.order_kpis(store, zone=ZONE, now=NOW)
    assert kpis.in_flight == 0 and kpis.on_time_share is None and kpis.otif is None


def test_exception_kpis_and_ticker(store: Engine) -> None:
    m = timedelta(minutes=1)
    rows = [
        _exception("e1", tier="L1", status="triggered", opened=NOW - 50 * m, respond_by=NOW + 40 * m),
        _exception("e2", tier="L2", status="acknowledged", opened=NOW - 40 * m, respond_by=NOW + 5 * m),
        _exception("e3", tier="L2", status="snoozed", opened=NOW - 30 * m),
        _exception("e4", tier="L3", status="resolved", opened=NOW - 20 * m, respond_by=NOW - 60 * m),
        _exception("e5", tier="L3", status="closed", opened=NOW - 10 * m),
        _exception("e6", tier="L1", status="cancelled", opened=NOW - 5 * m),
    ]
    with store.begin() as conn:
        conn.execute(insert(ExceptionRow), rows)
    kpis = overview.exception_kpis(store)
    assert kpis.open_by_tier == {"L1": 1, "L2": 2, "L3": 0}
    assert kpis.open_total == 3
    assert kpis.most_urgent is not None and kpis.most_urgent.id == "e2"
    assert kpis.most_urgent.respond_by == NOW + 5 * m
    ticker = overview.latest_exceptions(store, limit=4)
    assert [t.id for t in ticker] == ["e6", "e5", "e4", "e3"]
    assert ticker[0].opened_at.tzinfo is not None


def test_exception_kpis_of_an_empty_store(store: Engine) -> None:
    kpis = overview.exception_kpis(store)
    assert kpis.open_by_tier == {"L1": 0, "L2": 0, "L3": 0} and kpis.most_urgent is None
    assert overview.latest_exceptions(store) == []


def test_start_of_day_and_age() -> None:
    assert overview.start_of_day(NOW, ZONE) == DAY_START
    assert overview.start_of_day(NOW, ZoneInfo("UTC")) == datetime(2025, 11, 20, tzinfo=UTC)
    assert overview.age_seconds(None, NOW) is None
    assert overview.age_seconds(NOW - timedelta(seconds=90), NOW) == 90.0
    assert overview.age_seconds(NOW + timedelta(seconds=5), NOW) == 0.0
