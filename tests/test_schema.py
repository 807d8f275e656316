"""Migrations: `tower db upgrade` builds the schema, is idempotent, and is safe to run
from several processes at once on PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from tests.conftest import PG_URL, need_service
from tower.store.engine import make_engine, upgrade
from tower.store.tables import metadata


@pytest.mark.postgres
def test_concurrent_upgrades_on_a_fresh_postgres_schema() -> None:
    need_service("PostgreSQL", "127.0.0.1", 5432)
    schema = f"tower_mig_{uuid.uuid4().hex[:8]}"
    admin = make_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    errors: list[BaseException] = []

    def migrate() -> None:
        try:
            upgrade(url)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=migrate) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors
        upgrade(url)  # idempotent
        eng = make_engine(url)
        tables = set(inspect(eng).get_table_names())
        assert set(metadata.tables) <= tables
        with eng.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
        eng.dispose()
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def test_sqlite_schema_matches_the_models(sqlite_url: str) -> None:
    eng = make_engine(sqlite_url)
    inspector = inspect(eng)
    for name, table in metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
    eng.dispose()


def test_upgrade_creates_the_sqlite_folder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'not' / 'yet' / 'there.db'}"
    upgrade(url)  # a fresh clone has no var/ folder
    assert (tmp_path / "not" / "yet" / "there.db").exists()
