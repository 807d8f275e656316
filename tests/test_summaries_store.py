"""The screens' summaries on SQLite and PostgreSQL: the stage distributions of a review
window and a month's figures, computed by the scheduled job into ``read_summaries``,
read by the pages, computed once on a cold start."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, insert, select

from tower.store import insights, stages, summaries
from tower.store.tables import Order, Parcel, ReadSummary, StageInterval

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)
WEEK = timedelta(days=7)


def _visit(order_id: str, stage: str, entered: datetime, total_h: float) -> dict[str, Any]:
    return {"order_id": order_id, "seq": 0, "flow": "ecommerce", "stage": stage, "entered_at": entered,
            "started_at": entered, "completed_at": entered + total_h * H}


def _add(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(StageInterval), rows)


def _rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ReadSummary)).scalar_one())


def test_stage_window_cold_start_then_stored_until_the_job_refreshes(engine: Engine) -> None:
    _add(engine, [_visit(f"p{i}", "picking", NOW - 20 * H, float(i)) for i in range(1, 11)])
    assert _rows(engine) == 0
    cold = summaries.stage_window(engine, period=WEEK, now=NOW)          # no row yet: computed once
    exact = stages.stage_distributions(engine, since=NOW - WEEK, until=NOW)
    assert cold.distributions == exact and cold.as_of == NOW and cold.since == NOW - WEEK
    picking = cold.distributions[0]
    assert picking.visits == 10 and {k: round(v, 6) for k, v in picking.quantiles_h.items()} == {
        0: 1, 10: 1, 25: 3, 50: 5, 75: 7, 90: 9, 100: 10}
    assert _rows(engine) == 1

    # New visits: the page keeps showing the stored summary (and when it was computed) ...
    _add(engine, [_visit("k1", "packing", NOW - 2 * H, 2.0)])
    later = NOW + 5 * timedelta(seconds=5)
    stored = summaries.stage_window(engine, period=WEEK, now=later)
    assert stored.distributions == exact and stored.as_of == NOW
    # ... until the job recomputes it.
    done = summaries.refresh(engine, now=later, period=WEEK, zone=ZONE)
    assert summaries.stages_name(WEEK) in {s.name for s in done}
    fresh = summaries.stage_window(engine, period=WEEK, now=later)
    assert fresh.as_of == later and {d.stage for d in fresh.distributions} == {"picking", "packing"}
    # Another window length is another summary.
    assert summaries.stage_window(engine, period=timedelta(hours=10), now=later).distributions == [
        d for d in stages.stage_distributions(engine, since=later - 10 * H, until=later)]


def _order(order_id: str, delivered: datetime, promised: datetime, parcel: str) -> dict[str, Any]:
    return {
        "order_id": order_id, "flow": "ecommerce", "stage": "transit", "stage_seq": 4, "status": "delivered",
        "frozen": False, "priority": "normal", "custom": False, "promised_at": promised,
        "created_at": promised - 48 * H, "delivered_at": delivered, "cancelled_at": None,
        "last_event_at": delivered, "late": False, "at_risk": False, "customer_id": None, "channel": None,
        "city": None, "checkpoint": {"parcels": {parcel: delivered.isoformat()}},
    }


def test_month_figures_carriers_and_stages_refreshed_while_the_month_runs(engine: Engine) -> None:
    period = insights.month("2025-11", zone=ZONE, now=NOW)
    d = period.since + 24 * H
    with engine.begin() as conn:
        conn.execute(insert(Order), [_order("n1", d, d + H, "sf1"), _order("n2", d, d - H, "sf2")])
        conn.execute(insert(Parcel), [{"parcel_id": p, "carrier": "SF", "status": "delivered", "hub_id": None,
                                       "last_scan_at": NOW, "checkpoint": {}} for p in ("sf1", "sf2")])
    _add(engine, [_visit(f"p{i}", "picking", d, 5.0) for i in range(3)])
    figures = summaries.month_figures(engine, period=period, now=NOW)
    assert figures.as_of == NOW
    assert figures.carriers == insights.carrier_scorecard(engine, period=period)
    assert (figures.carriers[0].name, figures.carriers[0].count, figures.carriers[0].good) == ("SF", 2, 1)
    assert [(x.stage, x.visits) for x in figures.distributions] == [("picking", 3)]
    assert summaries.month_figures(engine, period=period, now=NOW, carriers=0).carriers == []
    assert figures.suppliers == [] and figures.measures == json.loads(json.dumps(
        insights.month_measures(engine, period=period, now=NOW), default=str))

    # The current month is read from its row while it runs; the job refreshes it.
    _add(engine, [_visit("p9", "picking", NOW - H, 5.0)])
    assert summaries.month_figures(engine, period=period, now=NOW + H).as_of == NOW
    summaries.refresh(engine, now=NOW + H, period=None, zone=ZONE)
    again = summaries.month_figures(engine, period=period, now=NOW + H)
    assert again.as_of == NOW + H and again.distributions[0].visits == 4


def test_a_month_computed_before_its_end_is_completed_once(engine: Engine) -> None:
    period = insights.month("2025-11", zone=ZONE, now=NOW)
    summaries.month_figures(engine, period=period, now=NOW)                # mid-month
    december = period.until + 2 * H
    _add(engine, [_visit("late", "picking", period.until - H, 1.0)])       # entered in its last hour
    done = summaries.month_figures(engine, period=period, now=december)
    assert done.as_of == december and done.distributions[0].visits == 1
    row = summaries.read(engine, summaries.month_name(period))
    assert row is not None and row.until == period.until and row.since == period.since
    # Complete now: read as stored from then on.
    assert summaries.month_figures(engine, period=period, now=december + H).as_of == december


def test_refresh_completes_the_previous_month_only_while_incomplete(engine: Engine) -> None:
    october = insights.month("2025-10", zone=ZONE, now=NOW)
    summaries.compute_month(engine, period=october, now=october.until - H)  # computed before its end
    names = [s.name for s in summaries.refresh(engine, now=NOW, period=WEEK, zone=ZONE)]
    assert names == ["stages:604800", "month:2025-11", "month:2025-10"]
    names = [s.name for s in summaries.refresh(engine, now=NOW + H, period=WEEK, zone=ZONE)]
    assert names == ["stages:604800", "month:2025-11"]
    assert _rows(engine) == 3


def test_write_replaces_the_row(engine: Engine) -> None:
    first = summaries.Summary(name="stages:60", since=NOW - H, until=NOW, computed_at=NOW, seconds=0.1,
                              body={"distributions": []})
    summaries.write(engine, first)
    summaries.write(engine, summaries.Summary(name="stages:60", since=NOW, until=NOW + H,
                                              computed_at=NOW + H, seconds=0.2, body={"distributions": [1]}))
    row = summaries.read(engine, "stages:60")
    assert row is not None and (row.since, row.until, row.computed_at, row.seconds, row.body) == (
        NOW, NOW + H, NOW + H, 0.2, {"distributions": [1]})
    assert _rows(engine) == 1 and summaries.read(engine, "stages:1") is None
    # A row of an older shape (or none) is recomputed when read.
    assert summaries.stage_window(engine, period=timedelta(seconds=60), now=NOW + 2 * H).as_of == NOW + 2 * H


def test_the_job_is_scheduled_with_the_towers_jobs_and_fills_the_table(tower_rt: Any) -> None:
    from tower.scheduler import tower_jobs

    job = next(j for j in tower_jobs(tower_rt) if j.name == "summaries.refresh")
    assert job.every_s == summaries.EVERY_S == 60
    job.run()
    now = tower_rt.clock.now()
    params = stages.benchmark_params(tower_rt.rules.book)
    assert params is not None
    row = summaries.read(tower_rt.engine, summaries.stages_name(params.period))
    assert row is not None and row.computed_at <= now and row.since == row.until - params.period
    month = insights.month(None, zone=tower_rt.settings.zone, now=now)
    assert summaries.read(tower_rt.engine, summaries.month_name(month)) is not None
