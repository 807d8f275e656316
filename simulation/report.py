"""What a simulation hands back: the JSON report of its replications and the NDJSON
event file.

The report is a plain dict, ready for ``json.dumps``. With one replication every
figure is a number (None when there was nothing to measure); with more, every figure
is ``{"mean", "ci_low", "ci_high", "half_width"}``: its mean across the replications
and the 95 % Student-t interval of that mean.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import IO, Any

import orjson

from simulation.scenario import Scenario
from simulation.stats import (
    ALL_FLOWS,
    HOURS_PER_DAY,
    LEVEL,
    Estimate,
    RunFigures,
    event_count_estimates,
    lead_time_estimates,
    stage_estimates,
)

STAGE_FIGURES = ("visits", "wait_mean_h", "wait_p90_h", "work_mean_h", "utilization",
                 "throughput_per_day", "queue_len_mean")
ORDER_COUNTS = ("created", "delivered", "cancelled", "lost", "in_progress")
LEAD_TIMES = {"mean": "lead_time_mean_h", "p50": "lead_time_p50_h", "p90": "lead_time_p90_h",
              "p95": "lead_time_p95_h"}

Figure = float | int | dict[str, float | None] | None


def estimate_dict(estimate: Estimate | None) -> dict[str, float | None] | None:
    """An estimate as the report writes it."""
    if estimate is None:
        return None
    return {"mean": estimate.mean, "ci_low": estimate.ci_low, "ci_high": estimate.ci_high,
            "half_width": estimate.half_width}


def build_report(scenario: Scenario, runs: Sequence[RunFigures]) -> dict[str, Any]:
    """The JSON report of one or more replications of ``scenario`` (same seed, days and
    warm-up, in replication order). Stages come in the scenario's order; events by
    type count every event of the run, warm-up included (as in the NDJSON file)."""
    if not runs:
        raise ValueError("a report needs at least one replication")
    first = runs[0]
    many = len(runs) > 1

    def figure(values: Mapping[str, Estimate | None], row: object, name: str) -> Figure:
        if many:
            return estimate_dict(values[name])
        value: float | int | None = getattr(row, name)
        return value

    stage_est = stage_estimates(runs)
    position = {(m.flow, m.stage): i for i, m in enumerate(scenario.stages)}
    stages = []
    for s in sorted(first.stages, key=lambda s: (position.get((s.flow, s.stage), len(position)), s.flow)):
        est = stage_est[(s.flow, s.stage)]
        stages.append({"flow": s.flow, "stage": s.stage, "resource": s.resource,
                       **{name: figure(est, s, name) for name in STAGE_FIGURES}})

    lead_est = lead_time_estimates(runs)
    lead_times = []
    for lt in first.lead_times:
        est = lead_est[lt.flow]
        lead_times.append({
            "flow": lt.flow,
            "orders": {name: figure(est, lt, name) for name in ORDER_COUNTS},
            "lead_time_h": {key: figure(est, lt, name) for key, name in LEAD_TIMES.items()},
            "on_time_share": figure(est, lt, "on_time_share"),
        })
    overall = lead_times[0]
    assert overall["flow"] == ALL_FLOWS

    events: dict[str, Any]
    if many:
        events = {t: estimate_dict(e) for t, e in event_count_estimates(runs).items()}
    else:
        events = dict(first.event_counts)

    return {
        "scenario": scenario.name,
        "seed": first.seed,
        "replications": len(runs),
        "days": first.window_h / HOURS_PER_DAY,
        "warmup_days": first.warmup_h / HOURS_PER_DAY,
        "confidence_level": LEVEL if many else None,
        "stages": stages,
        "lead_times": lead_times,
        "orders": overall["orders"],
        "on_time_share": overall["on_time_share"],
        "events_by_type": events,
        "ground_truth": ground_truth_rows(scenario, runs),
    }


def ground_truth_rows(scenario: Scenario, runs: Sequence[RunFigures]) -> list[dict[str, Any]]:
    """Every injected disruption of every replication: what, where, when (hours from
    the start and wall-clock times in the scenario's zone)."""
    start = scenario.start.astimezone(scenario.zone)
    rows = []
    for run in runs:
        for g in run.ground_truth:
            rows.append({
                "replication": run.replication, "kind": g.kind, "where": g.where,
                "start_h": g.start_h, "end_h": g.end_h,
                "start": (start + timedelta(hours=g.start_h)).isoformat(),
                "end": (start + timedelta(hours=g.end_h)).isoformat(),
                "detail": g.detail,
            })
    return rows


class NdjsonEvents:
    """An event sink writing one JSON object per line, keys sorted, to a binary file as
    the events come (nothing is held back), so the same events give the same bytes."""

    def __init__(self, out: IO[bytes]) -> None:
        self._write = out.write
        self.count = 0

    def __call__(self, event: dict[str, Any]) -> None:
        self._write(orjson.dumps(event, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE))
        self.count += 1
