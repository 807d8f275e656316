"""The scheduled work of a tower: rule scans, escalations, notification dispatch.

One APScheduler ``BackgroundScheduler`` per process that should run it: the
``tower worker`` process in production, the demo process in embedded mode; never a
web worker (each gunicorn worker would run every scan again).

Each package contributes its jobs through a ``scheduled_jobs(tower)`` function; a job
is a plain callable run every ``every_s`` seconds of wall time. The jobs read "now"
from ``tower.clock`` themselves, so in the demo (a scaled clock) a scan every 60 real
seconds covers an hour of simulated time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

if TYPE_CHECKING:
    from tower.runtime import Tower

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScheduledJob:
    """A callable the scheduler runs every ``every_s`` wall-clock seconds."""

    name: str
    every_s: float
    run: Callable[[], object]


def tower_jobs(tower: Tower) -> list[ScheduledJob]:
    """Every job of every package, for one tower."""
    from tower.exceptions.jobs import scheduled_jobs as exception_jobs
    from tower.notify.jobs import scheduled_jobs as notify_jobs
    from tower.rules.jobs import scheduled_jobs as rule_jobs
    from tower.store.summaries import scheduled_jobs as summary_jobs

    return [*rule_jobs(tower), *exception_jobs(tower), *notify_jobs(tower), *summary_jobs(tower)]


def _guarded(job: ScheduledJob) -> Callable[[], None]:
    def run() -> None:
        try:
            job.run()
        except Exception:
            # A failing scan must not kill the scheduler; the next run tries again.
            log.exception("scheduled job %s failed", job.name)

    return run


def build_scheduler(jobs: Sequence[ScheduledJob]) -> BackgroundScheduler:
    """A not-yet-started scheduler running each job on its interval, one at a time."""
    scheduler = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        timezone="UTC",
    )
    for job in jobs:
        scheduler.add_job(_guarded(job), "interval", seconds=job.every_s, id=job.name, name=job.name)
    return scheduler
