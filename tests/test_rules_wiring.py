"""The rule engine in the running tower: a projector listener wherever the projector
runs, and scans on the scheduler of `tower worker` and of the embedded serve process,
never of the app factory (gunicorn's web workers)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler

from tower.clock import ScaledClock
from tower.rules.jobs import scheduled_jobs
from tower.runtime import Tower, build_tower
from tower.settings import Settings

from .factories import T0


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The job ids of every scheduler started during the test (they really start)."""
    calls: list[list[str]] = []
    original = BackgroundScheduler.start

    def start(self: BackgroundScheduler, *args: Any, **kwargs: Any) -> None:
        calls.append(sorted(job.id for job in self.get_jobs()))
        original(self, *args, **kwargs)

    monkeypatch.setattr(BackgroundScheduler, "start", start)
    return calls


@pytest.fixture
def sqlite_file(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'tower.db'}"


@pytest.fixture
def tower(sqlite_file: str) -> Iterator[Tower]:
    clock = ScaledClock(T0)
    clock.pause()
    clock.jump_to(T0)
    rt = build_tower(Settings(database_url=sqlite_file, redis_url=None, api_token=None), clock=clock)
    yield rt
    rt.close()


def test_build_tower_listens_but_schedules_nothing(tower: Tower, started: list[list[str]]) -> None:
    assert tower.rules is not None
    assert tower.rules.on_batch in tower.projector.listeners
    assert len(tower.projector.listeners) == 2  # the rules and the customer milestones
    assert tower.scheduler is None and started == []


def test_the_rules_job_scans_at_the_tower_clock(tower: Tower, monkeypatch: pytest.MonkeyPatch) -> None:
    assert tower.rules is not None
    seen: list[datetime | None] = []
    monkeypatch.setattr(tower.rules, "scan", lambda now=None: seen.append(now) or _summary(now))
    [job] = scheduled_jobs(tower)
    assert (job.name, job.every_s) == ("rules.scan", tower.rules.book.scan_interval_s)
    job.run()
    assert seen == [T0]


def _summary(now: datetime | None) -> Any:
    from tower.rules.engine import ScanSummary

    return ScanSummary(at=now or T0)


def test_start_scheduler_runs_every_package_once(tower: Tower, started: list[list[str]]) -> None:
    scheduler = tower.start_scheduler()
    assert tower.start_scheduler() is scheduler
    assert scheduler.running
    assert len(started) == 1 and "rules.scan" in started[0]
    tower.close()
    assert not scheduler.running


def test_create_app_alone_does_not_start_the_scheduler(sqlite_file: str, started: list[list[str]]) -> None:
    from app import create_app

    dash_app = create_app(Settings(database_url=sqlite_file, redis_url=None, api_token=None))
    assert dash_app.server is not None
    assert started == []


def test_embedded_serve_starts_the_scheduler(sqlite_file: str, started: list[list[str]],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from dash import Dash

    from tower import cli

    running: list[bool] = []
    monkeypatch.setattr(Dash, "run", lambda self, **kw: running.append(bool(started)))
    cli._serve(Settings(database_url=sqlite_file, redis_url=None, api_token=None), host="127.0.0.1",
               port=0, debug=False)
    assert running == [True]
    assert "rules.scan" in started[0]


def test_serve_with_redis_leaves_the_scans_to_the_workers(sqlite_file: str, redis_url: str,
                                                         started: list[list[str]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from dash import Dash

    from tower import cli

    monkeypatch.setattr(Dash, "run", lambda self, **kw: None)
    cli._serve(Settings(database_url=sqlite_file, redis_url=redis_url, api_token=None), host="127.0.0.1",
               port=0, debug=False)
    assert started == []


def test_worker_starts_the_scheduler(sqlite_file: str, redis_url: str, started: list[list[str]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tower import cli
    from tower.bus.redis_streams import StreamConsumer

    monkeypatch.setenv("DATABASE_URL", sqlite_file)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setattr(cli.signal, "signal", lambda *args: None)
    ran: list[bool] = []
    monkeypatch.setattr(StreamConsumer, "run", lambda self: ran.append(bool(started)))
    cli.worker(name="rules-test")
    assert ran == [True]
    assert "rules.scan" in started[0]
