"""Builds every long-lived part (engine, bus, projector, ingest) from one Settings.

Nothing here runs at import: :func:`build_tower` is called by the app factory, the
CLI and the worker, each with its own Settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from tower.bus.base import EventBus
from tower.bus.memory import InProcessBus
from tower.clock import Clock, SystemClock
from tower.domain import TowerFigures, load_figures
from tower.flows import FlowBook, load_flows
from tower.ingest import Ingestor
from tower.settings import Settings
from tower.store.engine import make_engine, ping, upgrade
from tower.store.projector import Projector
from tower.store.queries import StoreDirectory

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from tower.exceptions.policy import ResponsePolicy
    from tower.rules.config import RuleBook
    from tower.rules.engine import RuleEngine

log = logging.getLogger(__name__)


@dataclass
class Tower:
    """The assembled back end of one process."""

    settings: Settings
    flows: FlowBook
    figures: TowerFigures
    engine: Engine
    bus: EventBus
    projector: Projector
    ingestor: Ingestor
    clock: Clock = field(default_factory=SystemClock)
    rules: RuleEngine | None = None
    scheduler: BackgroundScheduler | None = field(default=None, repr=False)
    _closed: bool = field(default=False, repr=False)

    def health(self) -> dict[str, Any]:
        """Status of the database and the bus, for /healthz."""
        try:
            ping(self.engine)
            db: dict[str, Any] = {"ok": True, "dialect": self.engine.dialect.name}
        except Exception as exc:
            db = {"ok": False, "dialect": self.engine.dialect.name, "error": str(exc)[:200]}
        bus = self.bus.health()
        return {"ok": bool(db["ok"] and bus.get("ok")), "database": db, "bus": bus,
                "mode": "embedded" if self.settings.embedded else "redis"}

    @property
    def rule_book(self) -> RuleBook:
        """The rules of ``data/rules.toml``, as the rule engine read them at start-up."""
        if self.rules is None:  # pragma: no cover - build_tower always builds the engine
            raise RuntimeError("this tower has no rule engine")
        return self.rules.book

    @property
    def response_policy(self) -> ResponsePolicy:
        """The emergency room's response policy (teams, deadlines, root causes)."""
        if self.rules is None:  # pragma: no cover - build_tower always builds the engine
            raise RuntimeError("this tower has no rule engine")
        return self.rules.policy

    def flush(self, timeout: float = 30.0) -> bool:
        """In embedded mode, wait until every published event is projected."""
        if isinstance(self.bus, InProcessBus):
            return self.bus.join(timeout)
        return True

    def start_scheduler(self) -> BackgroundScheduler:
        """Start the scheduled jobs (rule scans, escalations, notifications) in this process.

        Called by ``tower worker`` and, in embedded mode, by ``tower demo`` / ``tower
        serve``; never by the app factory, so gunicorn's web workers do not each run them.
        """
        if self.scheduler is None:
            from tower.scheduler import build_scheduler, tower_jobs

            self.scheduler = build_scheduler(tower_jobs(self))
            self.scheduler.start()
            log.info("scheduler started: %s", ", ".join(j.id for j in self.scheduler.get_jobs()))
        return self.scheduler

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=True)
            self.bus.close()
            self.engine.dispose()


def make_bus(settings: Settings) -> EventBus:
    if settings.redis_url is None:
        return InProcessBus(batch_size=settings.projector_batch)
    from tower.bus.redis_streams import RedisStreamBus

    return RedisStreamBus(
        settings.redis_url,
        stream=settings.stream,
        group=settings.consumer_group,
        max_deliveries=settings.max_deliveries,
        reclaim_idle_ms=settings.reclaim_idle_ms,
    )


def build_tower(settings: Settings, *, migrate: bool = True, project_in_process: bool = True,
                clock: Clock | None = None) -> Tower:
    """Assemble the back end. In embedded mode the projector consumes in-process.

    ``clock`` is the tower's "now" (default the wall clock; the live demo passes the
    simulator's scaled clock).
    """
    clock = clock or SystemClock()
    flows = load_flows(settings.flows_path)
    figures = load_figures(settings.tower_path)
    if migrate:
        upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    bus = make_bus(settings)
    projector = Projector(engine, flows, figures)
    ingestor = Ingestor(
        flows=flows,
        directory=StoreDirectory(engine),
        bus=bus,
        future_skew_s=settings.future_skew_s,
        max_batch=settings.max_batch_events,
        clock=clock.now,
    )
    rules = _rule_engine(settings, engine, flows, figures, clock)
    # The rule engine listens wherever the projector runs: in-process in embedded mode,
    # in `tower worker` with Redis (a web process's projector never applies a batch).
    projector.listeners.append(rules.on_batch)
    if isinstance(bus, InProcessBus) and project_in_process:
        bus.subscribe(projector.apply)
    tower = Tower(settings, flows, figures, engine, bus, projector, ingestor, clock, rules=rules)
    from tower.notify import milestones

    milestones.register(tower)
    return tower


def _rule_engine(settings: Settings, engine: Engine, flows: FlowBook, figures: TowerFigures,
                 clock: Clock) -> RuleEngine:
    from tower.exceptions.policy import load_policy
    from tower.rules.engine import RuleEngine, load_rules

    path = settings.rules_path
    return RuleEngine(engine, flows, figures, load_rules(path), load_policy(path), clock)
