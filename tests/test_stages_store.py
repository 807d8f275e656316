"""The stages screen's read services on SQLite and PostgreSQL: the chosen orders, their
visits, stage duration distributions and the stages over their benchmark."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from tower.flows import FlowBook
from tower.rules.config import StageOverBenchmarkParams, load_rules
from tower.settings import DEFAULT_DATA_DIR
from tower.store import stages
from tower.store.tables import Order, StageInterval

NOW = datetime(2025, 11, 20, 6, 0, tzinfo=UTC)
H = timedelta(hours=1)


def _order(order_id: str, *, flow: str = "ecommerce", status: str = "in_progress", promised: datetime,
           last: datetime, late: bool = False) -> dict[str, Any]:
    return {
        "order_id": order_id, "flow": flow, "stage": "picking", "stage_seq": 1, "status": status,
        "frozen": False, "priority": "normal", "custom": False, "promised_at": promised,
        "created_at": last - 10 * H, "delivered_at": None, "cancelled_at": None, "last_event_at": last,
        "late": late, "at_risk": False, "customer_id": None, "channel": None, "city": None,
        "checkpoint": {},
    }


def _visit(order_id: str, seq: int, stage: str, entered: datetime, *, wait_h: float | None = None,
           total_h: float | None = None, flow: str = "ecommerce") -> dict[str, Any]:
    return {"order_id": order_id, "seq": seq, "flow": flow, "stage": stage, "entered_at": entered,
            "started_at": entered + wait_h * H if wait_h is not None else None,
            "completed_at": entered + total_h * H if total_h is not None else None}


def _params(**changes: Any) -> StageOverBenchmarkParams:
    book = load_rules(DEFAULT_DATA_DIR / "rules.toml")
    params = stages.benchmark_params(book)
    assert params is not None
    return params.model_copy(update=changes)


def test_the_shipped_rule_gives_the_over_share() -> None:
    # The +20 % is the rule's parameter, not a figure of the code.
    assert _params().over_share == 0.2


def test_chosen_orders_latest_late_and_of_a_flow(engine: Engine) -> None:
    rows = [
        _order("a", promised=NOW + 5 * H, last=NOW - 1 * H),
        _order("b", promised=NOW - 2 * H, last=NOW - 3 * H),                    # past its promise
        _order("c", promised=NOW + 9 * H, last=NOW - 2 * H, late=True),         # flagged late
        _order("d", promised=NOW - 9 * H, last=NOW - 4 * H, status="delivered"),  # done: not late now
        _order("m", flow="manufacturing", promised=NOW + 90 * H, last=NOW - 5 * H),
    ]
    with engine.begin() as conn:
        conn.execute(insert(Order), rows)
    latest = stages.chosen_orders(engine, choice="latest", now=NOW, limit=3)
    assert [o.order_id for o in latest] == ["a", "c", "b"]
    late = stages.chosen_orders(engine, choice="late", now=NOW)
    assert [o.order_id for o in late] == ["b", "c"]                            # most overdue first
    assert [o.order_id for o in stages.chosen_orders(engine, choice="flow", flow="manufacturing",
                                                     now=NOW)] == ["m"]
    assert latest[0].promised_at.tzinfo is not None


def test_order_visits_by_order_in_seq_order(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(StageInterval), [
            _visit("a", 1, "picking", NOW - 5 * H, wait_h=1, total_h=3),
            _visit("a", 0, "paid", NOW - 6 * H, wait_h=0, total_h=1),
            _visit("b", 0, "paid", NOW - 2 * H),                               # still waiting
            _visit("z", 0, "paid", NOW - 2 * H),                               # not asked for
        ])
    visits = stages.order_visits(engine, order_ids=["a", "b"])
    assert [(v.order_id, v.seq, v.stage) for v in visits] == [("a", 0, "paid"), ("a", 1, "picking"),
                                                              ("b", 0, "paid")]
    assert visits[1].started_at == NOW - 4 * H and visits[1].completed_at == NOW - 2 * H
    assert visits[2].started_at is None and visits[2].completed_at is None


def test_distributions_give_count_mean_quantiles_within_the_window(engine: Engine) -> None:
    since = NOW - 7 * 24 * H
    rows = [_visit(f"p{i}", 0, "picking", NOW - 20 * H, wait_h=1, total_h=float(i)) for i in range(1, 11)]
    rows += [
        _visit("old", 0, "picking", since - H, total_h=100),       # entered before the window
        _visit("open", 0, "picking", NOW - H, wait_h=0.5),          # not completed
        _visit("k1", 0, "packing", NOW - 10 * H, total_h=2),
    ]
    with engine.begin() as conn:
        conn.execute(insert(StageInterval), rows)
    found = {(d.flow, d.stage): d for d in stages.stage_distributions(engine, since=since, until=NOW)}
    picking = found["ecommerce", "picking"]
    assert picking.visits == 10
    assert abs(picking.mean_h - 5.5) < 1e-6
    assert picking.wait_mean_h is not None and abs(picking.wait_mean_h - 1) < 1e-6
    q = {k: round(v, 6) for k, v in picking.quantiles_h.items()}
    assert q == {0: 1, 10: 1, 25: 3, 50: 5, 75: 7, 90: 9, 100: 10}         # nearest rank from below
    packing = found["ecommerce", "packing"]
    assert packing.visits == 1 and set(packing.quantiles_h.values()) == {2.0}
    assert packing.wait_mean_h is None


def test_review_flags_stages_over_benchmark_by_the_rules_share(engine: Engine, flows: FlowBook) -> None:
    # picking budget 4 h: average 5 h is +25 % (over); packing budget 2 h: 2.2 h is +10 %.
    rows = [_visit(f"p{i}", 0, "picking", NOW - 20 * H, total_h=h) for i, h in enumerate((4, 5, 6))]
    rows += [_visit(f"k{i}", 0, "packing", NOW - 20 * H, total_h=2.2) for i in range(3)]
    with engine.begin() as conn:
        conn.execute(insert(StageInterval), rows)
    since = NOW - 7 * 24 * H
    dists = stages.stage_distributions(engine, since=since, until=NOW)
    reviews = stages.review(dists, flows=flows, params=_params(min_visits=1))
    by_stage = {r.stage: r for r in reviews}
    assert [r.stage for r in reviews] == ["picking", "packing"]             # flow order
    assert by_stage["picking"].benchmark_h == 4 and abs(by_stage["picking"].limit_h - 4.8) < 1e-9
    assert by_stage["picking"].over and not by_stage["packing"].over
    assert abs((by_stage["picking"].over_share or 0) - 0.25) < 1e-6
    # A higher share in the rule lifts the flag; too few visits never flag (as the rule).
    assert not any(r.over for r in stages.review(dists, flows=flows, params=_params(over_share=0.3)))
    assert not any(r.over for r in stages.review(dists, flows=flows, params=_params(min_visits=20)))
    # A benchmark named in the rule wins over the budget.
    named = stages.review(dists, flows=flows, params=_params(min_visits=1,
                                                             benchmarks_h={"ecommerce/packing": 1.0}))
    assert {r.stage for r in named if r.over} == {"picking", "packing"}
    over = stages.stages_over_benchmark(engine, flows=flows, params=_params(min_visits=1), since=since,
                                        until=NOW)
    assert [r.stage for r in over] == ["picking"]
