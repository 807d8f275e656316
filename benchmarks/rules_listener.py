"""What the rules engine's projector listener costs: a simulated day projected in batches
of 2,000 events with and without ``RuleEngine.on_batch``, on a fresh store each run.

    tower simulate --scenario data/scenarios/baseline-ecommerce.toml --days 1 \
        --events /tmp/day.ndjson
    python benchmarks/rules_listener.py /tmp/day.ndjson [--pg URL] [--rounds 3] [--scan] [--rules FILE]

Runs alternate (without, with, without, ...) so a noisy machine hurts both alike;
the figure is the ratio of the median times. ``--scan`` also times one scan at the
end of the day.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import text

from tower.clock import ScaledClock
from tower.domain import load_figures
from tower.events import EventRecord, validate_event
from tower.exceptions.policy import load_policy
from tower.flows import load_flows
from tower.rules.engine import RuleEngine, load_rules
from tower.settings import DEFAULT_DATA_DIR
from tower.store.engine import make_engine, upgrade
from tower.store.projector import Projector

BATCH = 2_000


def _store(pg: str | None, folder: Path) -> tuple[str, str | None]:
    if pg is None:
        url = f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
        upgrade(url)
        return url, None
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = make_engine(pg)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    admin.dispose()
    url = f"{pg}?options=-csearch_path%3D{schema}"
    upgrade(url)
    return url, schema


def _drop(pg: str | None, schema: str | None) -> None:
    if pg is not None and schema is not None:
        admin = make_engine(pg)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def run(events: list[EventRecord], *, listen: bool, pg: str | None, folder: Path,
        scan: bool, rules_path: Path = DEFAULT_DATA_DIR / "rules.toml") -> tuple[float, float | None, int]:
    flows = load_flows(DEFAULT_DATA_DIR / "flows.toml")
    figures = load_figures(DEFAULT_DATA_DIR / "tower.toml")
    url, schema = _store(pg, folder)
    engine = make_engine(url)
    try:
        projector = Projector(engine, flows, figures)
        clock = ScaledClock(events[-1].occurred_at)
        clock.pause()
        rules = RuleEngine(engine, flows, figures, load_rules(rules_path), load_policy(rules_path), clock)
        if listen:
            projector.listeners.append(rules.on_batch)
        started = time.perf_counter()
        for i in range(0, len(events), BATCH):
            projector.apply(events[i : i + BATCH])
        took = time.perf_counter() - started
        scan_s = None
        if scan:
            t = time.perf_counter()
            rules.scan()
            scan_s = time.perf_counter() - t
        with engine.connect() as conn:
            opened = int(conn.execute(text("SELECT count(*) FROM exceptions")).scalar_one())
        return took, scan_s, opened
    finally:
        engine.dispose()
        _drop(pg, schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", type=Path)
    parser.add_argument("--pg", default=None, help="PostgreSQL URL (default: SQLite files)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scan", action="store_true")
    parser.add_argument("--rules", type=Path, default=DEFAULT_DATA_DIR / "rules.toml",
                        help="rules file (default data/rules.toml)")
    args = parser.parse_args()
    events = [validate_event(orjson.loads(line)) for line in args.events.read_bytes().splitlines() if line]
    times: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for listen in (False, True):
                took, scan_s, opened = run(events, listen=listen, pg=args.pg, folder=Path(folder),
                                           scan=args.scan and listen, rules_path=args.rules)
                times[listen].append(took)
                extra = f", scan {scan_s:.2f} s" if scan_s is not None else ""
                print(f"{'with' if listen else 'without'} listener: {took:.2f} s "
                      f"({len(events) / took:,.0f} events/s), {opened} exceptions{extra}")
    bare, ruled = statistics.median(times[False]), statistics.median(times[True])
    print(f"{len(events):,} events in batches of {BATCH}: median {bare:.2f} s without, "
          f"{ruled:.2f} s with the rules listener: ratio {ruled / bare:.3f}")


if __name__ == "__main__":
    main()
