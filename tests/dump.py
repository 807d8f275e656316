"""Read every projection table into sorted plain rows, for exact comparisons."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from tower.store.tables import metadata

#: Columns that record wall-clock time of processing, not event time.
WALL_CLOCK = {("dead_letters", "recorded_at")}
TABLES = ("orders", "stage_intervals", "parcels", "hub_visits", "stock_levels", "held_events",
          "dead_letters")


def dump_projections(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for name in TABLES:
            table = metadata.tables[name]
            cols = [c for c in table.columns if (name, c.name) not in WALL_CLOCK]
            rows = conn.execute(select(*cols)).all()
            out[name] = sorted((tuple(_plain(v) for v in r) for r in rows), key=repr)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return repr(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list):
        return repr([_plain(v) for v in value])
    return value
