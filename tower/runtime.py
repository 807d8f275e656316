"""Builds every long-lived part (engine, bus, projector, ingest) from one Settings.

Nothing here runs at import: :func:`build_tower` is called by the app factory, the
CLI and the worker, each with its own Settings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

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

    def flush(self, timeout: float = 30.0) -> bool:
        """In embedded mode, wait until every published event is projected."""
        if isinstance(self.bus, InProcessBus):
            return self.bus.join(timeout)
        return True

    def close(self) -> None:
        if not self._closed:
            self._closed = True
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
    if isinstance(bus, InProcessBus) and project_in_process:
        bus.subscribe(projector.apply)
    return Tower(settings, flows, figures, engine, bus, projector, ingestor, clock)
