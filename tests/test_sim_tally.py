"""Streaming statistics: the log-binned histogram against numpy, and the figures a run
keeps as it goes against the exact figures of its records."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulation.model import Model, simulate
from simulation.scenario import Scenario
from simulation.stats import LeadTimeFigures, RunFigures, StageFigures, figures_of
from simulation.tally import ACCURACY, Histogram, LeadTally, StageTally
from tests.test_model import one_stage, one_stage_flows, small_network
from tower.flows import FlowBook

#: A percentile from a histogram is within ACCURACY of numpy's, up to float rounding.
BOUND = ACCURACY * (1 + 1e-9)

durations = st.one_of(
    st.just(0.0),
    st.floats(min_value=1e-6, max_value=1e5, allow_nan=False, allow_infinity=False),
)


def within_bound(estimate: float | None, exact: float | None) -> bool:
    if estimate is None or exact is None:
        return estimate is exact
    return abs(estimate - exact) <= BOUND * abs(exact) + 1e-12


# ---------------------------------------------------------------- the histogram


@settings(max_examples=200, deadline=None)
@given(st.lists(durations, min_size=1, max_size=300),
       st.lists(st.floats(min_value=0, max_value=1), min_size=1, max_size=5))
def test_histogram_quantiles_are_within_the_bound_of_numpys(values: list[float], qs: list[float]) -> None:
    h = Histogram()
    h.extend(values)
    exact = np.percentile(np.asarray(values), [100 * q for q in qs])
    for q, got, want in zip(qs, h.quantiles(qs), exact, strict=True):
        assert got is not None and within_bound(got, float(want)), (q, got, float(want))
    assert h.quantile(0.0) == min(values) and h.quantile(1.0) == max(values)  # exact ends
    assert h.n == len(values) and h.zeros == values.count(0.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(durations, max_size=100), st.lists(durations, max_size=100))
def test_merged_histograms_count_as_one(a: list[float], b: list[float]) -> None:
    left, right, both = Histogram(), Histogram(), Histogram()
    left.extend(a)
    right.extend(b)
    both.extend(a + b)
    left.merge(right)
    assert left == both
    assert pickle.loads(pickle.dumps(left)) == left


def test_histogram_is_flat_and_refuses_negatives() -> None:
    rng = np.random.default_rng(1)
    h = Histogram()
    h.extend(rng.exponential(2.0, 200_000).tolist())
    assert h.quantile(0.5) is not None
    span = math.log(h.high / h.low) / math.log((1 + ACCURACY) / (1 - ACCURACY))
    assert len(h.bins) <= span + 2  # one counter per bin that occurs, whatever n is
    assert Histogram().quantiles([0.5, 0.9]) == [None, None]
    with pytest.raises(ValueError):
        h.add(-1e-9)
    assert h.n == 200_000


# ---------------------------------------------------------------- streaming vs records


def assert_same_stage(streaming: StageFigures, exact: StageFigures) -> None:
    assert (streaming.flow, streaming.stage, streaming.resource, streaming.visits) == (
        exact.flow, exact.stage, exact.resource, exact.visits)
    for name in ("wait_mean_h", "work_mean_h", "utilization", "throughput_per_day", "queue_len_mean",
                 "arrivals_per_h"):
        got, want = getattr(streaming, name), getattr(exact, name)
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12) if want is not None else got is None, name
    assert within_bound(streaming.wait_p90_h, exact.wait_p90_h), (streaming.wait_p90_h, exact.wait_p90_h)


def assert_same_leads(streaming: LeadTimeFigures, exact: LeadTimeFigures) -> None:
    counts = ("flow", "created", "delivered", "cancelled", "lost", "in_progress")
    assert [getattr(streaming, n) for n in counts] == [getattr(exact, n) for n in counts]
    for name in ("lead_time_mean_h", "on_time_share"):
        got, want = getattr(streaming, name), getattr(exact, name)
        assert got == pytest.approx(want, rel=1e-9) if want is not None else got is None, name
    for name in ("lead_time_p50_h", "lead_time_p90_h", "lead_time_p95_h"):
        assert within_bound(getattr(streaming, name), getattr(exact, name)), name


def assert_agree(streaming: RunFigures, exact: RunFigures) -> None:
    assert [(s.flow, s.stage) for s in streaming.stages] == [(s.flow, s.stage) for s in exact.stages]
    for a, b in zip(streaming.stages, exact.stages, strict=True):
        assert_same_stage(a, b)
    assert [lt.flow for lt in streaming.lead_times] == [lt.flow for lt in exact.lead_times]
    for c, d in zip(streaming.lead_times, exact.lead_times, strict=True):
        assert_same_leads(c, d)
    assert (streaming.warmup_h, streaming.horizon_h, streaming.event_counts, streaming.ground_truth) == (
        exact.warmup_h, exact.horizon_h, exact.event_counts, exact.ground_truth)


@pytest.mark.parametrize("seed", [3, 8])
def test_streaming_figures_agree_with_the_records_on_the_small_network(flows: FlowBook, seed: int) -> None:
    result = simulate(small_network(), flows, seed=seed, records=True)
    assert result.tally is not None and len(result.visits) > 3000
    streaming, exact = figures_of(result), figures_of(result, exact=True)
    assert_agree(streaming, exact)
    assert streaming.stage("ecommerce", "transit").resource == "sf,zto"  # the carriers that carried
    assert streaming.lead_time().in_progress > 0 and streaming.lead_time().cancelled > 0


def test_streaming_figures_agree_on_a_calendared_queue_with_rush_orders() -> None:
    sc = one_stage(per_h=2.0, capacity=3, mean_h=1.2, rush_share=0.3, days=20, warmup_days=3,
                   calendar={"shifts": [{"start": "06:00", "end": "22:00"}]})
    result = simulate(sc, one_stage_flows(sc), seed=4, records=True)
    streaming, exact = figures_of(result), figures_of(result, exact=True)
    assert_agree(streaming, exact)
    assert streaming.stages[0].visits > 500 and (streaming.stages[0].wait_p90_h or 0) > 1


def test_flat_run_keeps_no_records_and_cannot_be_recut(flows: FlowBook) -> None:
    loud = simulate(small_network(), flows, seed=3, records=True)
    flat = simulate(small_network(), flows, seed=3)
    assert flat.visits == [] and flat.orders == [] and not flat.records
    assert flat.tally == loud.tally  # the tallies do not depend on keeping records
    assert figures_of(flat) == figures_of(loud)
    with pytest.raises(ValueError, match="records"):
        figures_of(flat, exact=True)
    with pytest.raises(ValueError, match="records"):
        figures_of(flat, warmup_h=flat.warmup_h + 24)
    figures_of(loud, warmup_h=loud.warmup_h + 24)  # records can be cut again
    assert pickle.loads(pickle.dumps(flat.tally)) == flat.tally


def test_tallies_leave_out_the_warm_up(flows: FlowBook) -> None:
    scenario: Scenario = small_network()
    result = simulate(scenario, flows, seed=5, records=True)
    assert result.tally is not None
    by_key = {(t.flow, t.stage): t for t in result.tally.stages}
    for key, tally in by_key.items():
        kept = [v for v in result.visits if (v.flow, v.stage) == key]
        assert tally.visits == len(kept) and all(v.arrived_h >= result.warmup_h for v in kept)
    created = {lt.flow: lt.created for lt in result.tally.leads}
    assert sum(created.values()) == len(result.orders)
    assert result.event_counts["order.created"] > sum(created.values())  # the warm-up's orders


def test_a_snapshot_mid_run_does_not_move_with_the_run(flows: FlowBook) -> None:
    model = Model(small_network(), flows, seed=2)
    model.run(until_h=60)
    early = model.tally()
    frozen = pickle.dumps(early)
    model.run()
    assert pickle.dumps(early) == frozen
    later = model.tally()
    assert sum(t.visits for t in later.stages) > sum(t.visits for t in early.stages)


def test_lead_tally_counts_and_merges() -> None:
    a, b = LeadTally("f"), LeadTally("g")
    a.delivered_after(10.0, True)
    a.delivered_after(30.0, False)
    a.cancelled += 1
    b.delivered_after(4.0, True)
    b.in_progress += 2
    a.merge(b)
    assert (a.created, a.delivered, a.on_time, a.lead_sum_h) == (6, 3, 2, 44.0)
    assert a.leads.quantile(0.5) == pytest.approx(10.0, rel=ACCURACY)
    s = StageTally("f", "pick", {"pickers"})
    s.add(0.0, 1.0)
    s.add(2.0, 3.0)
    assert (s.visits, s.wait_sum_h, s.work_sum_h, s.waits.zeros) == (2, 2.0, 4.0, 1)
