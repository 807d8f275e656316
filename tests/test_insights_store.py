"""The insights screen's read services on SQLite and PostgreSQL: the month window,
carrier and supplier scorecards with their trend, the Pareto of causes, MTTA/MTTR and
the open improvement items."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

from tower.store import insights
from tower.store.tables import ExceptionRow, Order, Parcel

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)
NOV = datetime(2025, 10, 31, 16, 0, tzinfo=UTC)       # 1 Nov 00:00 in Shanghai
OCT = datetime(2025, 9, 30, 16, 0, tzinfo=UTC)


def test_month_is_the_local_calendar_month() -> None:
    m = insights.month(None, zone=ZONE, now=NOW)
    assert (m.key, m.since, m.previous_since, m.previous_key) == ("2025-11", NOV, OCT, "2025-10")
    assert m.until == datetime(2025, 11, 30, 16, 0, tzinfo=UTC)
    # 31 Oct 17:00 UTC is already November in Shanghai
    assert insights.month(None, zone=ZONE, now=NOV + H).key == "2025-11"
    assert insights.month("2025-01", zone=ZONE, now=NOW).previous_key == "2024-12"
    assert insights.month("bad", zone=ZONE, now=NOW).key == "2025-11"
    assert insights.recent_months(zone=ZONE, now=NOW, count=3) == ["2025-11", "2025-10", "2025-09"]


def _order(order_id: str, *, delivered: datetime | None, promised: datetime,
           parcels: list[str]) -> dict[str, Any]:
    return {
        "order_id": order_id, "flow": "ecommerce", "stage": "transit", "stage_seq": 4,
        "status": "delivered" if delivered else "in_progress", "frozen": False, "priority": "normal",
        "custom": False, "promised_at": promised, "created_at": promised - 48 * H,
        "delivered_at": delivered, "cancelled_at": None, "last_event_at": delivered or promised,
        "late": False, "at_risk": False, "customer_id": None, "channel": None, "city": None,
        "checkpoint": {"parcels": {p: (delivered.isoformat() if delivered else None) for p in parcels}},
    }


def _parcel(parcel_id: str, carrier: str | None) -> dict[str, Any]:
    return {"parcel_id": parcel_id, "carrier": carrier, "status": "delivered", "hub_id": None,
            "last_scan_at": NOW, "checkpoint": {}}


def test_carrier_scorecard_on_time_share_and_trend(store: Engine) -> None:
    d = NOV + 24 * H                                   # delivered in November
    p = OCT + 24 * H                                   # delivered in October
    orders = [
        _order("n1", delivered=d, promised=d + H, parcels=["sf1"]),             # SF on time
        _order("n2", delivered=d, promised=d - H, parcels=["sf2"]),             # SF late
        _order("n3", delivered=d, promised=d + H, parcels=["sf3", "sf4"]),      # SF on time (once)
        _order("n4", delivered=d, promised=d + H, parcels=["yt1", "sf5"]),      # both carriers
        _order("o1", delivered=p, promised=p - H, parcels=["sf6"]),             # SF late in Oct
        _order("o2", delivered=p, promised=p + H, parcels=["yt2"]),             # YTO on time in Oct
        _order("f1", delivered=None, promised=d, parcels=["sf7"]),              # not delivered
        _order("x1", delivered=OCT - H, promised=OCT, parcels=["sf8"]),         # before the window
    ]
    parcels = [_parcel(f"sf{i}", "SF") for i in range(1, 9)] + [_parcel("yt1", "YTO"),
                                                                 _parcel("yt2", "YTO")]
    with store.begin() as conn:
        conn.execute(insert(Order), orders)
        conn.execute(insert(Parcel), parcels)
    period = insights.month("2025-11", zone=ZONE, now=NOW)
    cards = {s.name: s for s in insights.carrier_scorecard(store, period=period)}
    assert list(cards) == ["SF", "YTO"]
    sf, yto = cards["SF"], cards["YTO"]
    assert (sf.count, sf.good, sf.previous_count, sf.previous_good) == (4, 3, 1, 0)
    assert sf.share == 0.75 and sf.previous_share == 0.0 and sf.trend == 0.75
    assert (yto.count, yto.good, yto.previous_count, yto.previous_good) == (1, 1, 1, 1)
    assert yto.trend == 0.0


def _resolved(exc_id: str, *, resolved: datetime, cause: str, supplier: str | None = None,
              carrier: str | None = None, rule: str = "stage_over_budget", tier: str = "L2",
              team: str = "procurement", acked_after: timedelta | None = H) -> dict[str, Any]:
    opened = resolved - 3 * H
    return {
        "id": exc_id, "rule": rule, "scope_key": exc_id, "open_key": None, "order_id": None,
        "parcel_id": None, "hub_id": None, "flow": "manufacturing", "stage": "procurement",
        "tier": tier, "status": "resolved", "team": team, "high_priority": False,
        "title": exc_id, "detail": {}, "count": 1, "condition_since": opened, "opened_at": opened,
        "last_seen_at": opened, "respond_by": opened + 4 * H,
        "acknowledged_at": opened + acked_after if acked_after else None, "resolved_at": resolved,
        "closed_at": None, "cancelled_at": None, "snoozed_until": None, "assignee": None,
        "handling_step": None, "next_update_at": None,
        "root_cause": {"cause": cause, "note": None, "whys": [], "supplier": supplier,
                       "carrier": carrier, "hub": None},
        "parent_id": None, "raised_by": "system", "escalations": 0, "updated_at": resolved,
    }


def test_supplier_scorecard_pareto_and_measures(store: Engine) -> None:
    t = NOV + 48 * H
    rows = [_resolved(f"pk{i}", resolved=t, cause="packaging_shortage") for i in range(5)]
    rows += [_resolved(f"sd{i}", resolved=t, cause="supplier_delay", supplier="ACME") for i in range(3)]
    rows += [_resolved("sd9", resolved=t, cause="supplier_delay", supplier="Bolt")]
    rows += [_resolved(f"cd{i}", resolved=t, cause="carrier_delay", carrier="SF") for i in range(2)]
    rows += [_resolved("wx", resolved=t, cause="weather", acked_after=5 * H)]  # answered late
    rows += [_resolved(f"old{i}", resolved=OCT + 48 * H, cause="supplier_delay", supplier="ACME")
             for i in range(5)]
    with store.begin() as conn:
        conn.execute(insert(ExceptionRow), rows)
    period = insights.month("2025-11", zone=ZONE, now=NOW)
    suppliers = insights.supplier_scorecard(store, period=period)
    assert [(s.name, s.count, s.previous_count, s.trend) for s in suppliers] == [
        ("ACME", 3, 5, -2.0), ("Bolt", 1, 0, 1.0)]
    assert suppliers[0].share is None
    m = insights.month_measures(store, period=period, now=NOW)
    top = m["top_causes"]
    assert [(c["cause"], c["n"]) for c in top] == [("packaging_shortage", 5), ("supplier_delay", 4),
                                                   ("carrier_delay", 2)]
    assert [c["share"] for c in top] == [0.4167, 0.3333, 0.1667]
    assert m["overall"]["opened"] == 12 and m["overall"]["mtta_s"] is not None
    assert m["by_team"]["procurement"]["answered_in_time_share"] == round(11 / 12, 4)


def test_open_improvement_items(store: Engine) -> None:
    item = _resolved("imp", resolved=NOW, cause="other", rule="stage_over_benchmark", tier="L3",
                     team="management")
    item.update(status="triggered", open_key="stage_over_benchmark|stage:ecommerce/picking",
                resolved_at=None, root_cause=None, respond_by=None, stage="picking", flow="ecommerce",
                detail={"improvement": True, "avg_h": 5.5, "benchmark_h": 4})
    done = _resolved("imp-done", resolved=NOW, cause="other", rule="stage_over_benchmark")
    with store.begin() as conn:
        conn.execute(insert(ExceptionRow), [item, done])
    [found] = insights.open_improvements(store)
    assert (found.id, found.flow, found.stage, found.avg_h, found.benchmark_h) == (
        "imp", "ecommerce", "picking", 5.5, 4.0)
