"""Slowly changing figures of the screens, kept by a scheduled job (ADR 0005).

The stage duration distributions of a review window (7 days on /stages, a month on
/insights) are exact quantiles over every completed visit of the window: one sort of
225,000 visits at 100,000 orders, 0.5-0.9 s, which no index helps. A weekly or
monthly review does not change in the 5 s between two refreshes of a page, so:

- the job ``summaries.refresh`` (every :data:`EVERY_S` wall seconds, in ``tower
  worker`` or the demo process, see :mod:`tower.scheduler`) recomputes the summaries
  of the windows that move: the stage review window ending now, and the current month
  (with the month before while it is not complete) in the tower's zone;
- each is one row of ``read_summaries`` (``name`` → window, when it was computed, a
  small JSON body: per (flow, stage) the count, means and quantiles; for a month also
  the carrier and supplier scorecards and MTTA/MTTR), so a page reads one row by
  primary key in milliseconds and says "as of HH:MM";
- cold start (no row yet: a fresh store, a month never looked at, a window of another
  length): the reader computes it once, writes it and returns it (one reader per
  process at a time); afterwards the job keeps it up to date. A month that ended after
  its row was computed is recomputed once, then never again.

Benchmarks (the "share over benchmark") are applied when read (:func:`tower.store.stages.review`),
so a changed rule shows at once. The rows are derived data: a projection rebuild
clears them (``PROJECTION_TABLES``) and they are recomputed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tower.store import insights, stages
from tower.store.tables import ReadSummary

if TYPE_CHECKING:
    from tower.runtime import Tower
    from tower.scheduler import ScheduledJob

log = logging.getLogger(__name__)

SUMMARIES = cast(Table, ReadSummary.__table__)
#: Wall seconds between two runs of the job.
EVERY_S: Final = 60.0
#: Carriers kept in a month's summary (the page shows at most ``insights.SCORECARD_ROWS``).
CARRIERS_KEPT: Final = 100
#: The shape of a summary's body; a row of another version is recomputed when read.
VERSION: Final = 2


@dataclass(frozen=True)
class Summary:
    """One stored summary: its window ``[since, until)``, when (tower clock) and how long."""

    name: str
    since: datetime
    until: datetime
    computed_at: datetime
    seconds: float
    body: dict[str, Any]


@dataclass(frozen=True)
class StageWindow:
    """The stage distributions of a review window ending at (about) ``as_of``."""

    distributions: list[stages.StageDistribution]
    since: datetime
    until: datetime
    as_of: datetime


@dataclass(frozen=True)
class MonthFigures:
    """A month's stage distributions, scorecards and response measures, computed at ``as_of``."""

    distributions: list[stages.StageDistribution]
    carriers: list[insights.Score]
    suppliers: list[insights.Score]
    measures: dict[str, Any]        # insights.month_measures: MTTA/MTTR, causes
    as_of: datetime


def stages_name(period: timedelta) -> str:
    return f"stages:{int(period.total_seconds())}"


def month_name(period: insights.Month) -> str:
    return f"month:{period.key}"


# --- the rows -----------------------------------------------------------------------


def read(engine: Engine, name: str) -> Summary | None:
    """The stored summary ``name``, or None."""
    s = SUMMARIES
    with engine.connect() as conn:
        row = conn.execute(select(s.c.name, s.c.since, s.c.until, s.c.computed_at, s.c.seconds, s.c.body)
                           .where(s.c.name == name)).first()
    if row is None:
        return None
    return Summary(name=row.name, since=row.since, until=row.until, computed_at=row.computed_at,
                   seconds=float(row.seconds), body=dict(row.body))


def write(engine: Engine, summary: Summary) -> None:
    """Insert or replace the row of ``summary.name`` (concurrent writers: the last wins)."""
    values = {"name": summary.name, "since": summary.since, "until": summary.until,
              "computed_at": summary.computed_at, "seconds": summary.seconds, "body": summary.body}
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(SUMMARIES).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["name"], set_={k: statement.excluded[k] for k in values if k != "name"})
    with engine.begin() as conn:
        conn.execute(statement)


# --- (de)serialising ----------------------------------------------------------------


def _dist_body(d: stages.StageDistribution) -> dict[str, Any]:
    return {"flow": d.flow, "stage": d.stage, "visits": d.visits, "mean_h": d.mean_h,
            "wait_mean_h": d.wait_mean_h, "quantiles_h": {str(q): v for q, v in d.quantiles_h.items()}}


def _dist(body: dict[str, Any]) -> stages.StageDistribution:
    return stages.StageDistribution(
        flow=body["flow"], stage=body["stage"], visits=int(body["visits"]), mean_h=float(body["mean_h"]),
        wait_mean_h=None if body["wait_mean_h"] is None else float(body["wait_mean_h"]),
        quantiles_h={int(q): float(v) for q, v in body["quantiles_h"].items()})


def _score_body(s: insights.Score) -> dict[str, Any]:
    return {"name": s.name, "count": s.count, "good": s.good, "previous_count": s.previous_count,
            "previous_good": s.previous_good}


def _score(body: dict[str, Any]) -> insights.Score:
    return insights.Score(name=body["name"], count=int(body["count"]), good=body["good"],
                          previous_count=int(body["previous_count"]), previous_good=body["previous_good"])


# --- computing ----------------------------------------------------------------------


def compute_stages(engine: Engine, *, period: timedelta, now: datetime) -> Summary:
    """The stage distributions of ``[now - period, now)`` (the full sort), stored."""
    started = time.perf_counter()
    since = now - period
    dists = stages.stage_distributions(engine, since=since, until=now)
    summary = Summary(name=stages_name(period), since=since, until=now, computed_at=now,
                      seconds=round(time.perf_counter() - started, 3),
                      body={"version": VERSION, "distributions": [_dist_body(d) for d in dists]})
    write(engine, summary)
    return summary


def compute_month(engine: Engine, *, period: insights.Month, now: datetime) -> Summary:
    """A month's stage distributions (up to now), carrier and supplier scorecards and
    response measures (:func:`tower.store.insights.month_measures`), stored."""
    started = time.perf_counter()
    until = min(period.until, now)
    dists = stages.stage_distributions(engine, since=period.since, until=until)
    carriers = insights.carrier_scorecard(engine, period=period, limit=CARRIERS_KEPT)
    suppliers = insights.supplier_scorecard(engine, period=period, limit=CARRIERS_KEPT)
    measures = insights.month_measures(engine, period=period, now=now)
    summary = Summary(name=month_name(period), since=period.since, until=until, computed_at=now,
                      seconds=round(time.perf_counter() - started, 3),
                      body={"version": VERSION, "distributions": [_dist_body(d) for d in dists],
                            "carriers": [_score_body(s) for s in carriers],
                            "suppliers": [_score_body(s) for s in suppliers],
                            "measures": json.loads(json.dumps(measures, default=str))})
    write(engine, summary)
    return summary


_cold = threading.Lock()


def _stored_or_computed(engine: Engine, name: str, usable: Callable[[Summary], bool],
                        compute: Callable[[], Summary]) -> Summary:
    def ok(found: Summary | None) -> bool:
        return found is not None and found.body.get("version") == VERSION and usable(found)

    found = read(engine, name)
    if found is not None and ok(found):
        return found
    with _cold:  # one cold computation at a time in this process; the others then read it
        found = read(engine, name)
        if found is not None and ok(found):
            return found
        summary = compute()
        log.info("summary %s computed on demand in %.2f s", name, summary.seconds)
        return summary


# --- what the pages read ------------------------------------------------------------


def stage_window(engine: Engine, *, period: timedelta, now: datetime) -> StageWindow:
    """The stage distributions of the review window: the stored summary (kept by the
    job), computed now if there is none yet."""
    summary = _stored_or_computed(engine, stages_name(period), lambda s: True,
                                  lambda: compute_stages(engine, period=period, now=now))
    return StageWindow(distributions=[_dist(d) for d in summary.body["distributions"]],
                       since=summary.since, until=summary.until, as_of=summary.computed_at)


def month_figures(engine: Engine, *, period: insights.Month, now: datetime,
                  carriers: int = insights.SCORECARD_ROWS) -> MonthFigures:
    """A month's stage distributions, carrier and supplier scorecards (at most
    ``carriers`` rows each) and response measures:
    the stored summary, computed now if there is none, if it was computed in another
    zone (other month bounds), or if the month has ended since it was computed."""
    def usable(s: Summary) -> bool:
        return s.since == period.since and (s.until >= period.until or period.until > now)

    summary = _stored_or_computed(engine, month_name(period), usable,
                                  lambda: compute_month(engine, period=period, now=now))
    return MonthFigures(distributions=[_dist(d) for d in summary.body["distributions"]],
                        carriers=[_score(s) for s in summary.body["carriers"]][:carriers],
                        suppliers=[_score(s) for s in summary.body["suppliers"]][:carriers],
                        measures=summary.body["measures"],
                        as_of=summary.computed_at)


# --- the job ------------------------------------------------------------------------


def refresh(engine: Engine, *, now: datetime, period: timedelta | None, zone: ZoneInfo) -> list[Summary]:
    """Recompute the summaries whose window moves: the stage review window (when the
    ``stage_over_benchmark`` rule gives one), the current month, and the month before
    while its row predates its end."""
    done: list[Summary] = []
    if period is not None:
        done.append(compute_stages(engine, period=period, now=now))
    current = insights.month(None, zone=zone, now=now)
    done.append(compute_month(engine, period=current, now=now))
    previous = insights.month(current.previous_key, zone=zone, now=now)
    stored = read(engine, month_name(previous))
    if stored is not None and (stored.since != previous.since or stored.until < previous.until
                               or stored.body.get("version") != VERSION):
        done.append(compute_month(engine, period=previous, now=now))
    return done


def scheduled_jobs(tower: Tower) -> list[ScheduledJob]:
    from tower.scheduler import ScheduledJob

    params = stages.benchmark_params(tower.rule_book)
    period = params.period if params is not None else None
    zone = tower.settings.zone

    def run() -> None:
        done = refresh(tower.engine, now=tower.clock.now(), period=period, zone=zone)
        log.debug("summaries refreshed: %s", ", ".join(f"{s.name} {s.seconds:.2f} s" for s in done))

    return [ScheduledJob(name="summaries.refresh", every_s=EVERY_S, run=run)]
