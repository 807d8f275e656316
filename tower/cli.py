"""The `tower` command: serve, demo, worker, ingest, schema, db, projections, simulate, scenario."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tower.settings import DEFAULT_DATA_DIR, Settings, SettingsError, load_settings

app = typer.Typer(
    help=(
        "Order Tower: a real-time control tower for order fulfilment.\n\n"
        "Quick start: `tower demo` runs everything embedded (SQLite, in-process bus) "
        "and prints the URL. Configuration comes from environment variables "
        "(DATABASE_URL, REDIS_URL, TOWER_TZ, TOWER_API_TOKEN, ...); see the README."
    ),
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
projections_app = typer.Typer(help="Projections kept by the projector.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(projections_app, name="projections")
scenario_app = typer.Typer(help="Simulation scenarios: their JSON Schema and checks.", no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")

console = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("tower.cli")
DEFAULT_SCENARIO = DEFAULT_DATA_DIR / "scenarios" / "baseline-ecommerce.toml"


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # APScheduler logs every run of every job at INFO (a dispatch every 2 s); our jobs
    # log what they did themselves. Its warnings (missed runs) still show.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _start_scheduler(tower: Any) -> None:
    """Start the scheduled jobs; a job's bad configuration (e.g. a webhook secret not in
    the environment) is one clear line, not a traceback."""
    try:
        tower.start_scheduler()
    except ValueError as exc:
        tower.close()
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _build(settings: Settings, **kw: Any):  # type: ignore[no-untyped-def]
    from tower.flows import FlowConfigError
    from tower.runtime import build_tower

    try:
        return build_tower(settings, **kw)
    except (FlowConfigError, ValueError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8050,
    debug: Annotated[bool, typer.Option(help="Dash debug mode (reloads, dev tools).")] = False,
) -> None:
    """Run the web app and the API. In embedded mode the projector runs in-process too."""
    _logging()
    settings = _settings()
    _serve(settings, host=host, port=port, debug=debug)


def _serve(settings: Settings, *, host: str, port: int, debug: bool,
           banner: str | None = None) -> None:
    from app import create_app

    tower = _build(settings)
    dash_app = create_app(settings, tower=tower)
    if settings.embedded:  # one process: it also runs the rule scans (a worker does with Redis)
        _start_scheduler(tower)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    console.print(banner or f"Order Tower is running at [bold]{url}[/bold]  (Ctrl-C to stop)")
    try:
        dash_app.run(host=host, port=port, debug=debug, use_reloader=False)
    finally:
        tower.close()


@app.command()
def demo(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8050,
    scenario: Annotated[Path, typer.Option(help="Scenario the live simulator runs.", exists=True,
                                           dir_okay=False)] = DEFAULT_SCENARIO,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 7,
    speed: Annotated[float, typer.Option(help="Simulated hours per real minute.")] = 1.0,
    warmup_days: Annotated[float, typer.Option(help="Simulated days played fast at start.")] = 2.0,
    keep: Annotated[bool, typer.Option(help="Keep the previous demo database (var/demo.db).")] = False,
) -> None:
    """Run the whole tower embedded, fed live by the SimPy simulator. No services needed.

    The simulator plays the last WARMUP_DAYS fast, then SPEED simulated hours per real
    minute; pause, resume and change speed with POST /api/v1/demo/pause|resume|speed.
    Unless DATABASE_URL is set, the demo uses its own fresh SQLite file, var/demo.db.
    """
    _logging()
    settings = _settings()
    from app import create_app
    from simulation.live import LiveSimulation
    from simulation.scenario import ScenarioError, load_scenario
    from tower.web.demo_api import install_demo_api

    if "DATABASE_URL" not in os.environ:
        db = settings.database_url.removeprefix("sqlite:///").replace("tower.db", "demo.db")
        if not keep:
            for suffix in ("", "-wal", "-shm"):
                Path(db + suffix).unlink(missing_ok=True)
        settings = settings.model_copy(update={"database_url": f"sqlite:///{db}"})
    try:
        plan, flows = load_scenario(scenario, data_dir=settings.data_dir)
    except ScenarioError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    tower = None

    def sink(events: list[dict[str, Any]]) -> object:
        assert tower is not None
        summary = tower.ingestor.ingest(events)
        if summary.rejected:
            log.warning("demo: %d simulated events rejected, e.g. %s", len(summary.rejected),
                        summary.rejected[0].error)
        return summary

    live = LiveSimulation(plan, flows, seed=seed, sink=sink, speed=speed, warmup_days=warmup_days,
                          batch=min(2_000, settings.max_batch_events))
    tower = _build(settings, clock=live.clock)
    unknown = set(plan.demand.flow_mix) - set(tower.flows.by_id)
    if unknown:
        console.print(f"[red]error:[/red] {scenario}: flows {sorted(unknown)} are not in the tower's flows")
        raise typer.Exit(2)
    stop = threading.Event()
    thread = threading.Thread(target=live.run, args=(stop,), name="live-simulator", daemon=True)
    thread.start()
    dash_app = create_app(settings, tower=tower)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    install_demo_api(dash_app.server, live, token=token)
    if settings.embedded:  # rule scans at the simulated clock (60x: a scan per simulated hour)
        _start_scheduler(tower)
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
    console.print(f"Order Tower demo is running at [bold]{url}[/bold]  "
                  f"(simulated {plan.name}, seed {seed}, {speed:g} h per minute; Ctrl-C to stop)")
    try:
        dash_app.run(host=host, port=port, debug=False, use_reloader=False)
    finally:
        stop.set()
        thread.join(timeout=5)
        tower.close()


@app.command()
def worker(
    name: Annotated[str | None, typer.Option(help="Consumer name (default: host-pid).")] = None,
) -> None:
    """Run the projector as its own process, consuming the Redis stream (needs REDIS_URL)."""
    _logging()
    settings = _settings()
    if settings.redis_url is None:
        console.print("[red]error:[/red] tower worker needs REDIS_URL; in embedded mode "
                      "`tower serve` projects in-process")
        raise typer.Exit(2)
    from tower.bus.redis_streams import RedisStreamBus

    tower = _build(settings, project_in_process=False)
    assert isinstance(tower.bus, RedisStreamBus)
    consumer = tower.bus.consumer(tower.projector.apply, name=name,
                                  batch_size=settings.projector_batch)

    def _stop(*_: object) -> None:
        consumer.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    _start_scheduler(tower)  # rule scans, escalations, notifications (never in web workers)
    console.print(f"worker {consumer.name} consuming {settings.stream} "
                  f"(group {settings.consumer_group})")
    try:
        consumer.run()
    finally:
        tower.close()


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(help="NDJSON file: one event per line.", exists=True,
                                         dir_okay=False, readable=True)],
    batch: Annotated[int, typer.Option(help="Events per batch.")] = 1_000,
) -> None:
    """Ingest events from an NDJSON file, with a progress bar and the API's summary."""
    from tower.bus.base import BusError
    from tower.ingest import IngestSummary, iter_ndjson

    settings = _settings()
    tower = _build(settings)
    total_bytes = file.stat().st_size
    summary = IngestSummary()
    offset = 0
    try:
        with file.open("rb") as fh, Progress(
            TextColumn("[bold]ingest[/bold]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[events]} events"), TimeElapsedColumn(), console=console,
        ) as progress:
            task = progress.add_task("ingest", total=total_bytes, events=0)
            chunk: list[bytes] = []
            size = 0

            def flush() -> None:
                nonlocal offset, chunk, size
                items = list(iter_ndjson(chunk))
                summary.add(tower.ingestor.ingest(items), offset)
                offset += len(items)
                progress.update(task, advance=size, events=offset)
                chunk, size = [], 0

            for line in fh:
                size += len(line)
                if line.strip():
                    chunk.append(line)
                if len(chunk) >= min(batch, settings.max_batch_events):
                    flush()
            flush()
        tower.flush(timeout=600)
    except BusError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    finally:
        tower.close()
    sys.stdout.write(json.dumps(summary.as_dict(), ensure_ascii=False) + "\n")
    if summary.rejected:
        raise typer.Exit(1)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a v1 event."""
    from tower.events import json_schema

    sys.stdout.write(json.dumps(json_schema(), indent=2) + "\n")


@app.command()
def flows() -> None:
    """Show the configured flows and their stages."""
    from tower.flows import FlowConfigError, load_flows

    settings = _settings()
    try:
        book = load_flows(settings.flows_path)
    except FlowConfigError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    out = Console()
    for flow in book.flows:
        table = Table(title=f"{flow.name} ({flow.id})")
        for col in ("stage", "owner", "budget h", "deliverable", "gates"):
            table.add_column(col)
        for s in flow.stages:
            gates = ", ".join(f"{g.kind} from {g.from_stage}" for g in s.gates)
            table.add_row(s.id, s.owner, f"{s.budget_h:g}", s.deliverable, gates)
        out.print(table)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply the database migrations up to REVISION (default: head)."""
    from tower.store.engine import upgrade

    settings = _settings()
    upgrade(settings.database_url, revision)
    console.print(f"database at {revision}")


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Replay the whole event log into fresh projections."""
    settings = _settings()
    tower = _build(settings, project_in_process=False)
    try:
        with Progress(TextColumn("[bold]rebuild[/bold]"), TextColumn("{task.completed} events"),
                      TimeElapsedColumn(), console=console) as progress:
            task = progress.add_task("rebuild", total=None)
            read = tower.projector.rebuild(lambda n: progress.update(task, completed=n))
    finally:
        tower.close()
    console.print(f"rebuilt projections from {read} events")


@app.command()
def simulate(
    scenario: Annotated[Path, typer.Option(help="Scenario TOML file (see data/scenarios/).",
                                           dir_okay=False)],
    days: Annotated[float | None, typer.Option(
        help="Simulated days measured, after the warm-up (default: the scenario's horizon_days).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (default: the scenario's).")] = None,
    replications: Annotated[int, typer.Option(min=1, help="Independent replications.")] = 1,
    warmup_days: Annotated[float | None, typer.Option(
        help="Days simulated first and left out of the statistics (default: the scenario's).")] = None,
    events: Annotated[Path | None, typer.Option(
        help="Write the events of replication 0 here, NDJSON, one per line.", dir_okay=False)] = None,
    json_report: Annotated[Path | None, typer.Option(
        "--json", help="Write the JSON report here.", dir_okay=False)] = None,
    processes: Annotated[int, typer.Option(min=1, help="Local processes running replications.")] = 1,
) -> None:
    """Simulate a scenario: a summary of the run, and optionally its events and JSON report.

    With --replications R > 1 every figure is the mean across replications with its
    95 % confidence interval.
    """
    from simulation.report import NdjsonEvents, build_report
    from simulation.scenario import ScenarioError, load_scenario
    from simulation.stats import RunProgress, run_replications

    try:
        loaded, flow_book = load_scenario(scenario)
    except ScenarioError as exc:
        _fail(str(exc))
    seed = loaded.seed if seed is None else seed
    horizon = loaded.horizon_days if days is None else days
    warmup = loaded.warmup_days if warmup_days is None else warmup_days
    if horizon <= 0 or warmup < 0:
        _fail(f"--days must be positive and --warmup-days not negative: got {horizon:g} and {warmup:g}")
    with contextlib.ExitStack() as stack:
        sink = None
        if events is not None:
            sink = NdjsonEvents(stack.enter_context(events.open("wb", buffering=1 << 20)))
        progress = stack.enter_context(Progress(
            TextColumn("[bold]simulate[/bold]"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True))
        task = progress.add_task("", total=None)

        def advanced(p: RunProgress) -> None:
            progress.update(task, completed=p.done_h, total=p.total_h,
                            description=f"{p.done_h / 24:,.0f} of {p.total_h / 24:,.0f} simulated days, "
                                        f"{p.replications_done}/{p.replications} replications")

        try:
            runs = run_replications(loaded, flow_book, seed=seed, replications=replications, days=horizon,
                                    warmup_days=warmup, processes=processes, sink=sink, progress=advanced)
        except ValueError as exc:
            _fail(f"{scenario}: {exc}")
    report = build_report(loaded, runs)
    if json_report is not None:
        json_report.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out = Console(soft_wrap=False)
    for renderable in _summary(report):
        out.print(renderable)
    if sink is not None:
        out.print(f"{sink.count:,} events of replication 0 written to {events}")
    if json_report is not None:
        out.print(f"report written to {json_report}")


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)


def _fmt(value: Any, digits: int = 2) -> str:
    """A report figure for the terminal: a number, or mean ± half-width."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        mean = _fmt(value["mean"], digits)
        half = value["half_width"]
        return mean if half is None else f"{mean} ± {_fmt(half, digits)}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def _summary(report: dict[str, Any]) -> list[Any]:
    """The report as a header line and rich tables: stages, lead times, events."""
    many = report["replications"] > 1
    head = (f"[bold]{escape(report['scenario'])}[/bold]  seed {report['seed']}, "
            f"{report['replications']} replication{'s' if many else ''} of {report['days']:g} days "
            f"({report['warmup_days']:g} of warm-up)" + ("; mean ± 95 % CI half-width" if many else ""))
    stages = Table(title="Stages", title_justify="left")
    for col in ("flow", "stage", "resource", "visits", "wait mean h", "wait p90 h", "work mean h",
                "utilization", "throughput/day", "queue len"):
        stages.add_column(col, justify="left" if col in ("flow", "stage", "resource") else "right")
    for s in report["stages"]:
        stages.add_row(s["flow"], s["stage"], s["resource"], _fmt(s["visits"], 0), _fmt(s["wait_mean_h"]),
                       _fmt(s["wait_p90_h"]), _fmt(s["work_mean_h"]), _fmt(s["utilization"], 3),
                       _fmt(s["throughput_per_day"], 1), _fmt(s["queue_len_mean"]))
    leads = Table(title="Orders and lead times (delivered orders, hours)", title_justify="left")
    for col in ("flow", "created", "delivered", "in progress", "mean", "p50", "p90", "p95", "on time"):
        leads.add_column(col, justify="left" if col == "flow" else "right")
    for lt in report["lead_times"]:
        o, h = lt["orders"], lt["lead_time_h"]
        leads.add_row(lt["flow"], _fmt(o["created"], 0), _fmt(o["delivered"], 0), _fmt(o["in_progress"], 0),
                      _fmt(h["mean"], 1), _fmt(h["p50"], 1), _fmt(h["p90"], 1), _fmt(h["p95"], 1),
                      _fmt(lt["on_time_share"], 3))
    events = Table(title="Events by type", title_justify="left")
    events.add_column("type")
    events.add_column("count", justify="right")
    for kind, count in report["events_by_type"].items():
        events.add_row(kind, _fmt(count, 0))
    parts: list[Any] = [head, stages, leads, events]
    if report["ground_truth"]:
        parts.append(f"{len(report['ground_truth'])} injected disruptions (ground truth in the JSON report)")
    return parts


@scenario_app.command("schema")
def scenario_schema() -> None:
    """Print the JSON Schema of a scenario file (docs/scenarios.md explains each field)."""
    from simulation.scenario import Scenario

    sys.stdout.write(json.dumps(Scenario.model_json_schema(), indent=2) + "\n")


@scenario_app.command("check")
def scenario_check(
    file: Annotated[Path, typer.Argument(help="Scenario TOML file.", dir_okay=False)],
) -> None:
    """Validate a scenario file: prints OK, or one line naming the file, the key and why (exit 2)."""
    from simulation.scenario import ScenarioError, load_scenario

    try:
        loaded, _ = load_scenario(file)
    except ScenarioError as exc:
        _fail(str(exc))
    names = ", ".join(sorted(loaded.demand.flow_mix))
    stages = f"{len(loaded.stages)} stage{'s' if len(loaded.stages) != 1 else ''}"
    sys.stdout.write(f"OK {file}: {loaded.name}, {stages}, flows {names}, "
                     f"{loaded.demand.orders_per_day:g} orders/day\n")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
