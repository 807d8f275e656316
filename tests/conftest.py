"""Shared fixtures: real SQLite and PostgreSQL stores, real Redis, seeded events.

Tests that need PostgreSQL, Redis or Chromium skip on a developer machine without
them, and fail under CI=true, where a missing service is a broken set-up.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tower.domain import TowerFigures, load_figures
from tower.flows import FlowBook, load_flows
from tower.settings import DEFAULT_DATA_DIR
from tower.store.engine import make_engine, upgrade
from tower.store.tables import PROJECTION_TABLES

PG_URL = os.environ.get("TOWER_TEST_PG", "postgresql+psycopg://root@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TOWER_TEST_REDIS", "redis://127.0.0.1:6379/15")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def need_service(name: str, host: str, port: int) -> None:
    """Skip locally, fail in CI, when a real service the test needs is not there."""
    if not _port_open(host, port):
        message = f"{name} is not reachable at {host}:{port}"
        if IN_CI:
            pytest.fail(f"{message} (CI=true: service tests must not skip)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def flows() -> FlowBook:
    return load_flows(DEFAULT_DATA_DIR / "flows.toml")


@pytest.fixture(scope="session")
def figures() -> TowerFigures:
    return load_figures(DEFAULT_DATA_DIR / "tower.toml")


# Kept across `projections rebuild`, so not in PROJECTION_TABLES; a test starts without them.
STATE_TABLES = ("exceptions", "exception_timeline", "rule_pending", "outbox", "notification_deliveries")


def _truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        for name in ("events", *PROJECTION_TABLES, *STATE_TABLES):
            conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("db") / "tower.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"tower_test_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    upgrade(url)
    yield url
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    _truncate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def store(engine: Engine) -> Engine:
    """A clean store (events, projections, exceptions, outbox) on each database."""
    return engine


@pytest.fixture
def redis_url() -> Iterator[str]:
    need_service("Redis", "127.0.0.1", 6379)
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def tower_rt(db_url: str) -> Iterator[Any]:
    """A whole embedded back end (in-process bus + projector) on a clean store."""
    from tower.runtime import build_tower
    from tower.settings import Settings

    eng = make_engine(db_url)
    _truncate(eng)
    eng.dispose()
    rt = build_tower(Settings(database_url=db_url, redis_url=None, api_token=None), migrate=False)
    yield rt
    rt.close()
