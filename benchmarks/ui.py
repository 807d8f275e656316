"""Screens benchmark: server-side time of each page's refresh callbacks, not a test.

    .venv/bin/python benchmarks/ui.py [--quick] [--pages overview,orders,...] [--runs N]

Needs PostgreSQL (``TOWER_BENCH_PG``, as :mod:`benchmarks.ingest`). The data are the read
set of the ingest benchmark: the schema ``bench_reads`` (1,000,000 events / 100,000
orders loaded through the real projector; ``bench_reads_quick``, 100,000 / 10,000, with
``--quick``), built by :func:`ingest.ensure_read_set` when it is missing (minutes) and
kept afterwards. This benchmark upgrades it to the current alembic head and seeds it
once with exceptions through :mod:`tower.exceptions.store` (``--open`` open ones across
tiers and statuses, ``--resolved`` acknowledged and resolved ones with root causes over
the last two months; a tenth of each with ``--quick``), marked in ``bench_ui_meta``.

The app is ``app.create_app`` on that schema, with the tower's clock started just after
the feed's last event (the data end on 2026-11-11). Every callback is called as the
browser calls it: Flask's test client POSTs to ``/_dash-update-component`` the body the
renderer sends (output, outputs, inputs, state, changedPropIds), built from
``app.callback_map`` and the values of the page's own layout (``layout(lang="en")``).
Timed per case, after ``--warmup`` calls, over ``--runs`` calls:

* each page's refresh on the shell's timer, **full**: the page's ``sent`` store empty,
  so every part is read, built and sent (a page just opened, or every part changed);
  p50, p95, the response's bytes; and the **steady** p50 and bytes: ``sent`` as the
  previous answer left it (the browser's next tick when nothing changed);
* ``/orders``: a grid block (``getRowsRequest`` rows 0-100) without a filter, with
  flow + late, with a hub; an order's detail (the refresh with an order selected);
* ``/emergency-room``: the detail of the most urgent exception;
* the shell's freshness callback (on every page's tick);
* **trivial**: a callback registered on the same app that echoes its input, the floor
  of Flask + Dash on this machine right now. Each p95 is also shown as a ratio to the
  trivial p50, so a noisy machine shows up as a higher floor, not as slow pages.

Targets (issue 6): p95 <= 100 ms for every page's refresh; the overview's refresh
payload <= 200 kB.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "benchmarks")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import ingest  # noqa: E402  (benchmarks/ingest.py: the read set)
from dash import Dash, Input, Output  # noqa: E402
from dash._utils import split_callback_id, stringify_id  # noqa: E402
from dash.development.base_component import Component  # noqa: E402
from sqlalchemy import text  # noqa: E402

from tower.clock import ScaledClock  # noqa: E402
from tower.exceptions import store as exstore  # noqa: E402
from tower.exceptions.policy import load_policy  # noqa: E402
from tower.runtime import Tower, build_tower  # noqa: E402
from tower.settings import Settings  # noqa: E402
from tower.store.engine import make_engine, upgrade  # noqa: E402

say = ingest.say
PAGES = ("overview", "orders", "stages", "network", "emergency-room", "insights")
TARGET_MS = 100.0
OVERVIEW_BYTES = 200_000
SEED_VERSION = 2
TICK = ("shell-tick", "n_intervals")

# (rule, tier, team, scope) of the seeded exceptions, after data/rules.toml.
RULES = (
    ("stage_over_budget", "L2", "production", "order"),
    ("stage_no_update", "L2", "warehouse", "order"),
    ("procurement_unconfirmed", "L2", "procurement", "order"),
    ("tracking_missing", "L2", "logistics", "order"),
    ("parcel_stuck", "L2", "logistics", "parcel"),
    ("hub_retention", "L2", "logistics", "hub"),
    ("cold_chain_excursion", "L3", "logistics", "order"),
    ("stock_out", "L1", "warehouse", "order"),
    ("handoff_without_evidence", "L2", "production", "order"),
    ("predicted_late", "L2", "customer_service", "order"),
)
CAUSES = ("packaging_shortage", "stock_out", "supplier_delay", "carrier_delay", "hub_congestion",
          "equipment", "weather", "data_error", "customer_change", "quality_defect", "other")
SUPPLIERS = tuple(f"sup-{i:02d}" for i in range(1, 25))
CARRIERS = ("sf", "jd", "zto", "yto", "ems")


# --- data -------------------------------------------------------------------------------------


def ensure_data(quick: bool, *, open_n: int, resolved_n: int, seed: int) -> tuple[str, str]:
    """The read set (built when missing), at the alembic head, seeded with exceptions."""
    schema = "bench_reads_quick" if quick else "bench_reads"
    events = 100_000 if quick else 1_000_000
    flows = ingest.load_flows(ingest.FLOWS_PATH)
    url = ingest.ensure_read_set(schema, flows, events=events, orders=events // 10, seed=seed)
    upgrade(url)  # the cached set gets every new migration (tables, indexes)
    seed_exceptions(url, open_n=open_n, resolved_n=resolved_n, seed=seed)
    return schema, url


def seed_exceptions(url: str, *, open_n: int, resolved_n: int, seed: int) -> None:
    """Open and resolved exceptions, once per schema (tagged in ``bench_ui_meta``).

    A tenth of them (all, for 5,000 or fewer) go through the real repository
    (:mod:`tower.exceptions.store`: raise, acknowledge, snooze, resolve with a root cause,
    their timelines and notifications); the rest are copies of those rows and timelines
    made in SQL, each with its own id, another order and its times shifted together.
    """
    tag = f"v{SEED_VERSION} open={open_n} resolved={resolved_n} seed={seed}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_ui_meta (tag text NOT NULL)"))
        if conn.execute(text("SELECT tag FROM bench_ui_meta")).scalar() == tag:
            say(f"exceptions: already seeded ({tag})")
            engine.dispose()
            return
    copies = 1 if open_n + resolved_n <= 5_000 else 10
    say(f"exceptions: seeding {open_n:,} open and {resolved_n:,} resolved ({tag}), "
        f"{100 // copies} % through tower.exceptions.store ...")
    with engine.begin() as conn:
        for table in ("notification_deliveries", "outbox", "exception_timeline", "exceptions"):
            conn.execute(text(f"DELETE FROM {table}"))
    _seed_real(engine, open_n=-(-open_n // copies), resolved_n=-(-resolved_n // copies), seed=seed)
    if copies > 1:
        _copy_exceptions(engine, copies)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM bench_ui_meta"))
        conn.execute(text("INSERT INTO bench_ui_meta VALUES (:t)"), {"t": tag})
        found = conn.execute(text(
            "SELECT count(*) FILTER (WHERE resolved_at IS NULL),"
            " count(*) FILTER (WHERE resolved_at IS NOT NULL) FROM exceptions")).one()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("exceptions", "exception_timeline", "outbox"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))
    say(f"  exceptions: {found[0]:,} open, {found[1]:,} resolved")
    engine.dispose()


def _seed_real(engine: Any, *, open_n: int, resolved_n: int, seed: int) -> None:
    policy = load_policy(ingest.FLOWS_PATH.parent / "rules.toml")
    rng = random.Random(seed)
    with engine.connect() as conn:
        flow_of = {r[0]: (r[1], r[2]) for r in conn.execute(text(
            "SELECT order_id, flow, stage FROM orders ORDER BY order_id"))}
    orders = list(flow_of)
    end = ingest.END
    started = time.perf_counter()
    total = open_n + resolved_n
    step = 500
    for first in range(0, total, step):
        with engine.begin() as conn:
            for n in range(first, min(total, first + step)):
                is_open = n < open_n
                rule, tier, team, scope = rng.choice(RULES)
                if rng.random() < 0.08:
                    tier = "L3"
                order_id = rng.choice(orders)
                flow, stage = flow_of[order_id]
                hub = rng.choice(ingest.HUBS)
                key = {"order": order_id, "parcel": f"{order_id}-p0", "hub": hub}[scope]
                opened = (end - timedelta(hours=rng.uniform(0, 48)) if is_open
                          else end - timedelta(days=rng.uniform(0.5, 60)))
                trigger = exstore.Trigger(
                    rule=rule, scope_key=f"{scope}:{key}:{n}", tier=tier, team=team,
                    title=f"{rule.replace('_', ' ')}: {key}", condition_since=opened - timedelta(hours=1),
                    order_id=order_id, parcel_id=f"{order_id}-p0" if scope == "parcel" else None,
                    hub_id=hub if scope == "hub" else None, flow=flow, stage=stage,
                    high_priority=rng.random() < 0.2, detail={"bench": True})
                raised = exstore.raise_or_bump(conn, trigger, now=opened, policy=policy)
                roll = rng.random()
                if is_open:
                    if roll < 0.4:
                        exstore.acknowledge(conn, raised.id, actor="bench",
                                            now=opened + timedelta(minutes=rng.uniform(1, 90)))
                    elif roll < 0.5:
                        exstore.snooze(conn, raised.id, until=end + timedelta(hours=rng.uniform(1, 8)),
                                       actor="bench", now=opened + timedelta(minutes=5))
                    continue
                acked = opened + timedelta(minutes=rng.uniform(1, 240))
                exstore.acknowledge(conn, raised.id, actor="bench", now=acked)
                cause = rng.choice(CAUSES)
                exstore.resolve(conn, raised.id, cause=exstore.RootCause(
                    cause=cause, note="bench", whys=("why 1", "why 2"),
                    supplier=rng.choice(SUPPLIERS) if cause == "supplier_delay" else None,
                    carrier=rng.choice(CARRIERS) if cause == "carrier_delay" else None,
                    hub=hub if cause == "hub_congestion" else None),
                    actor="bench", now=acked + timedelta(hours=rng.uniform(0.2, 30)), policy=policy)
        done = min(total, first + step)
        if done % 1_000 < step or done == total:
            say(f"  {done:,} of {total:,} through the repository ({time.perf_counter() - started:.0f} s)")


# Shift of copy k of exception e (seconds): open ones up to 2 h earlier; resolved ones
# +-10 days, never past their original (the feed's end).
_SHIFT = ("(CASE WHEN e.resolved_at IS NULL THEN -(abs(hashtext(e.id || k)) % 7200)"
          " ELSE -abs((abs(hashtext(e.id || k)) % 1728000) - 864000) END) * interval '1 second'")
_TIMES = ("condition_since", "opened_at", "last_seen_at", "respond_by", "acknowledged_at", "resolved_at",
          "closed_at", "cancelled_at", "snoozed_until", "next_update_at", "updated_at")


def _copy_exceptions(engine: Any, copies: int) -> None:
    with engine.connect() as conn:
        cols = [r[0] for r in conn.execute(text(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = 'exceptions' ORDER BY ordinal_position"))]
    pick = {c: f"e.{c}" for c in cols}
    pick["id"] = "e.id || '~' || k"
    pick["scope_key"] = "e.scope_key || '#' || k"
    pick["open_key"] = "CASE WHEN e.open_key IS NULL THEN NULL ELSE e.open_key || '#' || k END"
    pick["order_id"] = ("CASE WHEN e.order_id IS NULL THEN NULL"
                        " ELSE o.a[1 + abs(hashtext(e.id || k || 'o')) % cardinality(o.a)] END")
    for c in _TIMES:
        pick[c] = f"e.{c} + sh.s"
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text(
            f"INSERT INTO exceptions ({', '.join(cols)}) SELECT {', '.join(pick[c] for c in cols)}"
            " FROM exceptions e CROSS JOIN generate_series(1, :n) k"
            " CROSS JOIN (SELECT array_agg(order_id ORDER BY order_id) a FROM orders) o"
            f" CROSS JOIN LATERAL (SELECT {_SHIFT} AS s) sh"
            " WHERE e.id NOT LIKE '%~%'"), {"n": copies - 1})
        conn.execute(text(
            "INSERT INTO exception_timeline (exception_id, at, actor, action, from_status, to_status, note,"
            " data) SELECT t.exception_id || '~' || k, t.at + sh.s, t.actor, t.action, t.from_status,"
            " t.to_status, t.note, t.data FROM exception_timeline t"
            " JOIN exceptions e ON e.id = t.exception_id"
            f" CROSS JOIN generate_series(1, :n) k CROSS JOIN LATERAL (SELECT {_SHIFT} AS s) sh"
            " WHERE e.id NOT LIKE '%~%'"), {"n": copies - 1})
    say(f"  copied x{copies - 1} in SQL ({time.perf_counter() - started:.0f} s)")


# --- the app and the browser's requests -------------------------------------------------------


def build_app(url: str) -> tuple[Dash, Tower]:
    settings = Settings(DATABASE_URL=url)
    # Just after the feed's last event, running at wall speed: "today" has the surge.
    clock = ScaledClock(ingest.END + timedelta(minutes=5))
    tower = build_tower(settings, migrate=False, clock=clock)
    import app as app_module

    dash_app = app_module.create_app(settings, tower=tower)

    @dash_app.callback(Output("bench-echo-out", "children"), Input("bench-echo-in", "value"))
    def _echo(value: Any) -> Any:
        return value

    return dash_app, tower


def _components(tree: Any) -> Iterator[Component]:
    if isinstance(tree, (list, tuple)):
        for item in tree:
            yield from _components(item)
    elif isinstance(tree, Component):
        yield tree
        for prop in tree._prop_names:
            value = getattr(tree, prop, None)
            if isinstance(value, (Component, list, tuple)):
                yield from _components(value)


def _matches(pattern: dict[str, Any], cid: Any) -> bool:
    if not isinstance(cid, dict) or set(cid) != set(pattern):
        return False
    return all(v == ["ALL"] or cid[k] == v for k, v in pattern.items())


@dataclass
class Browser:
    """The values a browser holds for one page: its layout's props, plus the shell's."""

    app: Dash
    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    ids: dict[str, Any] = field(default_factory=dict)  # stringified id -> id

    @classmethod
    def open(cls, app: Dash, layout: Any) -> Browser:
        out = cls(app)
        for comp in _components([app.layout, layout]):
            cid = getattr(comp, "id", None)
            if cid is None:
                continue
            key = stringify_id(cid)
            out.ids[key] = cid
            for prop in comp._prop_names:
                if hasattr(comp, prop):
                    out.values[(key, prop)] = getattr(comp, prop)
        out.values[("shell-url", "pathname")] = "/"
        out.values[("shell-url", "search")] = ""
        out.values[TICK] = 0
        return out

    def _expand(self, spec: dict[str, str], *, with_value: bool) -> Any:
        cid, prop = spec["id"], spec["property"]
        if cid.startswith("{"):
            pattern = json.loads(cid)
            return [{"id": self.ids[k], "property": prop,
                     **({"value": self.values.get((k, prop))} if with_value else {})}
                    for k in sorted(self.ids) if _matches(pattern, self.ids[k])]
        value = {"value": self.values.get((cid, prop))} if with_value else {}
        return {"id": cid, "property": prop, **value}

    def body(self, key: str, changed: Sequence[tuple[str, str]]) -> dict[str, Any]:
        cb = self.app.callback_map[key]
        outs = [self._expand(o, with_value=False) for o in _output_specs(key)]
        return {
            "output": key,
            "outputs": outs if key.startswith("..") else outs[0],
            "inputs": [self._expand(s, with_value=True) for s in cb["inputs"]],
            "state": [self._expand(s, with_value=True) for s in cb.get("state", [])],
            "changedPropIds": [f"{c}.{p}" for c, p in changed],
        }

    def absorb(self, response: dict[str, Any]) -> None:
        """What the renderer does with an answer: the new props become the page's values."""
        for cid, props in response.get("response", {}).items():
            key = cid if not cid.startswith("{") else stringify_id(json.loads(cid))
            for prop, value in props.items():
                self.values[(key, prop)] = value


def _output_specs(key: str) -> list[dict[str, str]]:
    specs = split_callback_id(key)
    return specs if isinstance(specs, list) else [specs]


def _output_strings(key: str) -> list[str]:
    return [f"{o['id']}.{o['property']}" for o in _output_specs(key)]


def refresh_key(app: Dash, page: str) -> str:
    """The page's callback on the shell's timer (outputs prefixed with the page name)."""
    for key, cb in app.callback_map.items():
        ins = {(s["id"], s["property"]) for s in cb["inputs"]}
        if TICK in ins and f"{page}-sent.data" in key:
            return key
    raise LookupError(f"no refresh callback of {page}")


def key_with(app: Dash, output: str) -> str:
    for key in app.callback_map:
        if output in _output_strings(key):
            return key
    raise LookupError(output)


# --- measuring ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    page: str
    key: str
    changed: list[tuple[str, str]]
    set_values: dict[tuple[str, str], Any] = field(default_factory=dict)
    refresh: bool = False          # a page refresh: target checked, steady mode timed too


@dataclass
class Result:
    case: Case
    times_ms: list[float]
    nbytes: int
    steady_ms: list[float] = field(default_factory=list)
    steady_bytes: int = 0

    def p(self, q: float, values: list[float] | None = None) -> float:
        values = sorted(values if values is not None else self.times_ms)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, max(0, round(q * len(values) + 0.5) - 1))]


def _post(client: Any, body: dict[str, Any]) -> tuple[float, bytes, int]:
    t = time.perf_counter()
    resp = client.post("/_dash-update-component", json=body)
    elapsed = (time.perf_counter() - t) * 1000
    if resp.status_code not in (200, 204):
        raise RuntimeError(f"{body['output'][:80]}: HTTP {resp.status_code}\n"
                           f"{resp.get_data(as_text=True)[:2000]}")
    return elapsed, resp.get_data(), resp.status_code


def measure(app: Dash, case: Case, layout: Any, *, runs: int, warmup: int) -> Result:
    client = app.server.test_client()
    fresh = Browser.open(app, layout)
    fresh.values.update(case.set_values)
    tick = 0

    def call(browser: Browser) -> tuple[float, bytes]:
        nonlocal tick
        tick += 1
        browser.values[TICK] = tick
        ms, data, _ = _post(client, browser.body(case.key, case.changed))
        return ms, data

    for _ in range(warmup):
        call(fresh)
    times, nbytes = [], 0
    for _ in range(runs):
        browser = Browser(app, dict(fresh.values), fresh.ids)  # sent = {} every time
        ms, data = call(browser)
        times.append(ms)
        nbytes = len(data)
    result = Result(case, times, nbytes)
    if case.refresh:
        browser = Browser(app, dict(fresh.values), fresh.ids)
        _, data = call(browser)
        browser.absorb(json.loads(data))
        steady = []
        for _ in range(max(5, runs // 2)):
            ms, data = call(browser)
            if data:
                browser.absorb(json.loads(data))
            steady.append(ms)
        result.steady_ms, result.steady_bytes = steady, len(data)
    return result


def page_layout(app: Dash, page: str, **query: Any) -> Any:
    from widgets.pages import PAGES as MODULES

    module = next(m for m in MODULES if page == m.NAME)
    with app.server.test_request_context("/"):
        return module.layout(lang="en", **query)


def cases(app: Dash, tower: Tower, pages: Sequence[str]) -> list[Case]:
    out = [Case("trivial (echo)", "-", key_with(app, "bench-echo-out.children"),
                [("bench-echo-in", "value")], {("bench-echo-in", "value"): "x"})]
    out.append(Case("shell freshness", "-", key_with(app, "shell-fresh.data"), [TICK]))
    with tower.engine.connect() as conn:
        detail_order = conn.execute(text(
            "SELECT order_id FROM events GROUP BY order_id ORDER BY count(*) DESC, order_id LIMIT 1"
        )).scalar()
        urgent = conn.execute(text(
            "SELECT id FROM exceptions WHERE respond_by IS NOT NULL AND resolved_at IS NULL "
            "ORDER BY respond_by LIMIT 1")).scalar()
    for page in pages:
        key = refresh_key(app, page)
        out.append(Case(f"{page} refresh", page, key, [TICK], refresh=True))
        if page == "orders":
            rows = key_with(app, "orders-grid.getRowsResponse")
            request = {"startRow": 0, "endRow": 100, "sortModel": [], "filterModel": {}}
            grid = ("orders-grid", "getRowsRequest")
            filters = ("orders-filters", "data")
            out.append(Case("orders grid block", page, rows, [grid], {grid: request}))
            out.append(Case("orders grid, flow+late", page, rows, [grid],
                            {grid: request, filters: {"flow": "ecommerce", "lateness": "late"}}))
            out.append(Case("orders grid, hub", page, rows, [grid],
                            {grid: request, filters: {"hub": ingest.HUBS[0]}}))
            out.append(Case("orders detail", page, key, [("orders-selected", "data")],
                            {("orders-selected", "data"): detail_order}, refresh=True))
        if page == "emergency-room" and urgent:
            out.append(Case("emergency-room detail", page,
                            key_with(app, "emergency-room-detail.children"),
                            [("emergency-room-selected", "data")],
                            {("emergency-room-selected", "data"): urgent}))
    return out


def sql_profile(app: Dash, tower: Tower, case: Case, layout: Any, *, top: int = 6) -> None:
    """One call of ``case`` with every SQL statement timed: the slowest ones (``--sql``)."""
    from sqlalchemy import event

    seen: list[tuple[float, str, Any]] = []
    starts: list[float] = []

    def before(*_: Any) -> None:
        starts.append(time.perf_counter())

    def after(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append(((time.perf_counter() - starts.pop()) * 1000, statement, parameters))

    event.listen(tower.engine, "before_cursor_execute", before)
    event.listen(tower.engine, "after_cursor_execute", after)
    try:
        measure(app, case, layout, runs=1, warmup=0)
    finally:
        event.remove(tower.engine, "before_cursor_execute", before)
        event.remove(tower.engine, "after_cursor_execute", after)
    say(f"    {len(seen)} statements, {sum(x[0] for x in seen):.1f} ms in all; slowest:")
    for ms, statement, params in sorted(seen, key=lambda x: -x[0])[:top]:
        say(f"    {ms:7.1f} ms  {' '.join(statement.split())[:400]}  {str(params)[:200]}")


def run(quick: bool, pages: Sequence[str], *, runs: int, warmup: int, open_n: int, resolved_n: int,
        seed: int, only: Callable[[str], bool] = lambda _: True, sql: int = 0) -> list[Result]:
    _schema, url = ensure_data(quick, open_n=open_n, resolved_n=resolved_n, seed=seed)
    app, tower = build_app(url)
    layouts = {p: page_layout(app, p) for p in pages}
    layouts["-"] = None
    results = []
    try:
        for case in cases(app, tower, pages):
            if not only(case.name):
                continue
            say(f"  {case.name} ...")
            if sql:
                sql_profile(app, tower, case, layouts[case.page], top=sql)
            results.append(measure(app, case, layouts[case.page], runs=runs, warmup=warmup))
    finally:
        tower.close()
    return results


def report(results: list[Result], *, title: str) -> None:
    trivial = next((r for r in results if r.case.name.startswith("trivial")), None)
    floor = statistics.median(trivial.times_ms) if trivial else float("nan")
    print(f"\n{title}")
    print(f"  {'callback':<26} {'p50 ms':>8} {'p95 ms':>8} {'p95/triv':>9} {'bytes':>9}"
          f" {'steady p50':>11} {'steady B':>9}  target")
    for r in results:
        p50, p95 = r.p(0.5), r.p(0.95)
        verdict = ""
        if r.case.refresh or r.case.name.startswith("orders grid") or r.case.name.endswith("detail"):
            verdict = "PASS" if p95 <= TARGET_MS else "MISS"
            verdict += f" (p95 <= {TARGET_MS:.0f} ms)"
            if r.case.name == "overview refresh":
                ok = r.nbytes <= OVERVIEW_BYTES
                verdict += f", {'PASS' if ok else 'MISS'} (<= {OVERVIEW_BYTES // 1000} kB)"
        steady = (f"{r.p(0.5, r.steady_ms):>11.1f} {r.steady_bytes:>9,}" if r.steady_ms
                  else f"{'':>11} {'':>9}")
        print(f"  {r.case.name:<26} {p50:>8.1f} {p95:>8.1f} {p95 / floor:>8.0f}x {r.nbytes:>9,}"
              f" {steady}  {verdict}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true",
                        help="the small read set (100,000 events / 10,000 orders)")
    parser.add_argument("--pages", default=",".join(PAGES),
                        help=f"comma-separated pages (default all: {','.join(PAGES)})")
    parser.add_argument("--runs", type=int, default=50, help="timed calls per case (default 50)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    parser.add_argument("--open", type=int, help="open exceptions seeded (default 2,000; 200 quick)")
    parser.add_argument("--resolved", type=int,
                        help="resolved exceptions seeded (default 20,000; 2,000 quick)")
    parser.add_argument("--only", help="run only the cases whose name contains this text")
    parser.add_argument("--sql", type=int, nargs="?", const=6, default=0, metavar="TOP",
                        help="also print each case's TOP slowest SQL statements (one call, timed)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    pages = [p.strip() for p in args.pages.split(",") if p.strip()]
    unknown = set(pages) - set(PAGES)
    if unknown:
        parser.error(f"unknown pages: {', '.join(sorted(unknown))} (known: {', '.join(PAGES)})")
    open_n = args.open if args.open is not None else (200 if args.quick else 2_000)
    resolved_n = args.resolved if args.resolved is not None else (2_000 if args.quick else 20_000)
    only = (lambda name: args.only in name or name.startswith("trivial")) if args.only else (lambda _: True)
    results = run(args.quick, pages, runs=args.runs, warmup=args.warmup, open_n=open_n,
                  resolved_n=resolved_n, seed=args.seed, only=only, sql=args.sql)
    size = "10,000 orders / 100,000 events" if args.quick else "100,000 orders / 1,000,000 events"
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    report(results, title=f"Order Tower screens benchmark on PostgreSQL ({size}; {open_n:,} open + "
           f"{resolved_n:,} resolved exceptions; {args.runs} runs after {args.warmup} warm-up; "
           f"{os.cpu_count()} CPUs, load average {load})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
