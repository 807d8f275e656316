"""The exception repository on SQLite and PostgreSQL: open-or-bump, moves, escalation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select, text

from tower.exceptions import store
from tower.exceptions.policy import ResponsePolicy, load_policy
from tower.exceptions.store import RootCause, TransitionError, Trigger
from tower.notify.outbox import OUTBOX
from tower.settings import DEFAULT_DATA_DIR
from tower.store.engine import make_engine

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
EXCEPTION_TABLES = ("exceptions", "exception_timeline", "outbox")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def advance(self, **kw: float) -> datetime:
        self.t += timedelta(**kw)
        return self.t


@pytest.fixture(scope="module")
def policy() -> ResponsePolicy:
    return load_policy(DEFAULT_DATA_DIR / "rules.toml")


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    with eng.begin() as conn:
        for name in (*EXCEPTION_TABLES, "orders"):
            conn.execute(text(f"DELETE FROM {name}"))
    yield eng
    eng.dispose()


def trig(rule: str = "hub_dwell", scope: str = "parcel:P1", tier: str = "L2", **kw: Any) -> Trigger:
    return Trigger(rule=rule, scope_key=scope, tier=tier, team=kw.pop("team", "logistics"),
                   title=kw.pop("title", f"{rule} on {scope}"),
                   condition_since=kw.pop("since", T0 - timedelta(hours=24)), **kw)


def entries(db: Engine, ex_id: str) -> list[str]:
    with db.connect() as conn:
        return [e["action"] for e in store.timeline(conn, ex_id)]


def outbox_topics(db: Engine) -> list[str]:
    with db.connect() as conn:
        return list(conn.execute(text("SELECT topic FROM outbox ORDER BY id")).scalars())


def row(db: Engine, ex_id: str) -> Any:
    with db.connect() as conn:
        return store.get_exception(conn, ex_id)


def test_raise_then_bump_keeps_one_open_exception(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        first = store.raise_or_bump(conn, trig(), now=T0, policy=policy)
    assert first.created
    for i in range(1, 8):
        with db.begin() as conn:
            again = store.raise_or_bump(conn, trig(), now=T0 + timedelta(minutes=i), policy=policy)
        assert again == store.Raised(first.id, False)
    r = row(db, first.id)
    assert r["count"] == 8 and r["status"] == "triggered" and r["tier"] == "L2"
    assert r["last_seen_at"] == T0 + timedelta(minutes=7)
    assert r["respond_by"] == T0 + timedelta(hours=4)
    # bumps leave a trace at 2, 4 and 8 only
    assert entries(db, first.id) == ["triggered", "bumped", "bumped", "bumped"]
    assert outbox_topics(db) == ["exception.opened"]
    with db.connect() as conn:
        assert store.open_scopes(conn, rule="hub_dwell") == {"parcel:P1": first.id}
        assert store.open_scopes(conn, rule="other") == {}


def test_clear_auto_resolves_and_a_new_trigger_opens_a_new_one(db: Engine,
                                                               policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        first = store.raise_or_bump(conn, trig(), now=T0, policy=policy)
    with db.begin() as conn:
        assert store.clear(conn, rule="hub_dwell", scope_key="parcel:P1",
                           now=T0 + timedelta(hours=1)) == first.id
        assert store.clear(conn, rule="hub_dwell", scope_key="parcel:P1", now=T0) is None
        assert store.open_scopes(conn, rule="hub_dwell") == {}
    r = row(db, first.id)
    assert r["status"] == "resolved" and r["open_key"] is None
    assert r["resolved_at"] == T0 + timedelta(hours=1)
    assert entries(db, first.id) == ["triggered", "auto_resolved"]
    assert outbox_topics(db) == ["exception.opened", "exception.resolved"]
    with db.begin() as conn:
        second = store.raise_or_bump(conn, trig(), now=T0 + timedelta(hours=2), policy=policy)
    assert second.created and second.id != first.id


def test_clear_leaves_an_exception_raised_by_a_person(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        raised = store.raise_or_bump(conn, trig(rule="manual", scope="order:O1", tier="L3"),
                                     now=T0, policy=policy, raised_by="alice")
        assert store.clear(conn, rule="manual", scope_key="order:O1", now=T0) is None
    assert row(db, raised.id)["status"] == "triggered"


def test_l1_and_grouped_have_no_deadline_nor_notification(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        l1 = store.raise_or_bump(conn, trig(rule="stock_out", scope="order:O1", tier="L1",
                                            action="re-routed to backup warehouse WH-2"),
                                 now=T0, policy=policy)
        parent = store.raise_or_bump(conn, trig(rule="hub_congestion", scope="hub:H1"),
                                     now=T0, policy=policy)
        child = store.raise_or_bump(conn, trig(parent_id=parent.id), now=T0, policy=policy)
    assert row(db, l1.id)["respond_by"] is None
    assert entries(db, l1.id) == ["triggered", "action_taken"]
    assert row(db, child.id)["respond_by"] is None
    assert entries(db, child.id) == ["triggered", "grouped"]
    assert outbox_topics(db) == ["exception.opened"]  # the hub exception only
    with db.begin() as conn:
        assert store.escalate_overdue(conn, now=T0 + timedelta(days=2), policy=policy) == [parent.id]


def test_improvement_items_have_no_deadline_and_stay_out_of_the_room(db: Engine,
                                                                     policy: ResponsePolicy) -> None:
    from tower.exceptions import queue

    with db.begin() as conn:
        item = store.raise_or_bump(conn, trig(rule="stage_over_benchmark", scope="stage:ecommerce/packing",
                                              tier="L3", team="management"), now=T0, policy=policy)
        urgent = store.raise_or_bump(conn, trig(), now=T0, policy=policy)
    assert row(db, item.id)["respond_by"] is None
    with db.begin() as conn:
        assert store.escalate_overdue(conn, now=T0 + timedelta(days=2), policy=policy) == [urgent.id]
        room = queue.emergency_room(conn, now=T0, exclude_rules=policy.improvement_rules)
    assert [i["id"] for i in room] == [urgent.id]


def test_high_priority_deadline_is_thirty_minutes(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        r = store.raise_or_bump(conn, trig(high_priority=True), now=T0, policy=policy)
    assert row(db, r.id)["respond_by"] == T0 + timedelta(minutes=30)


def test_bad_tier_is_refused(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn, pytest.raises(store.InvalidInput, match="tier"):
        store.raise_or_bump(conn, trig(tier="L9"), now=T0, policy=policy)


def test_lifecycle_moves_and_refusals(db: Engine, policy: ResponsePolicy) -> None:
    clock = Clock()
    with db.begin() as conn:
        ex = store.raise_or_bump(conn, trig(), now=clock.now(), policy=policy).id
    with db.begin() as conn:
        store.assign(conn, ex, team="customer_service", assignee="bo", actor="alice",
                     now=clock.advance(minutes=5), policy=policy)
    with db.begin() as conn, pytest.raises(store.InvalidInput, match="team"):
        store.assign(conn, ex, team="nobody", assignee=None, actor="alice", now=clock.now(),
                     policy=policy)
    with db.begin() as conn:
        r = store.acknowledge(conn, ex, actor="bo", now=clock.advance(minutes=10))
    assert r["status"] == "acknowledged" and r["acknowledged_at"] == T0 + timedelta(minutes=15)
    with db.begin() as conn, pytest.raises(TransitionError, match="already acknowledged"):
        store.acknowledge(conn, ex, actor="bo", now=clock.now())
    with db.begin() as conn:
        r = store.comment(conn, ex, note="called SF", step="carrier contacted", next_update_h=2,
                          actor="bo", now=clock.advance(minutes=1))
    assert r["handling_step"] == "carrier contacted"
    assert r["next_update_at"] == clock.now() + timedelta(hours=2)
    with db.begin() as conn, pytest.raises(TransitionError, match="only a resolved"):
        store.close(conn, ex, actor="bo", now=clock.now())
    with db.begin() as conn, pytest.raises(store.InvalidInput, match="cause"):
        store.resolve(conn, ex, cause=RootCause("gremlins"), actor="bo", now=clock.now(),
                      policy=policy)
    with db.begin() as conn:
        r = store.resolve(conn, ex, cause=RootCause("carrier_delay", note="truck broke down",
                                                    whys=("late truck", "no spare"), carrier="SF"),
                          actor="bo", now=clock.advance(hours=1), policy=policy)
    assert r["status"] == "resolved" and r["root_cause"]["carrier"] == "SF"
    for move in (lambda c: store.acknowledge(c, ex, actor="bo", now=clock.now()),
                 lambda c: store.snooze(c, ex, until=clock.now() + timedelta(hours=1), actor="bo",
                                        now=clock.now()),
                 lambda c: store.cancel(c, ex, actor="bo", now=clock.now())):
        with db.begin() as conn, pytest.raises(TransitionError, match="resolved"):
            move(conn)
    with db.begin() as conn:
        store.close(conn, ex, actor="bo", now=clock.advance(hours=1))
        store.comment(conn, ex, note="reviewed in the weekly meeting", actor="bo", now=clock.now())
    with db.begin() as conn, pytest.raises(TransitionError, match="closed"):
        store.comment(conn, ex, note="x", step="y", actor="bo", now=clock.now())
    assert entries(db, ex) == ["triggered", "assigned", "acknowledged", "step", "resolved",
                               "closed", "comment"]
    with db.begin() as conn, pytest.raises(store.ExceptionNotFound):
        store.acknowledge(conn, "EX-nope", actor="bo", now=clock.now())


def test_snooze_wakes_to_the_status_it_had(db: Engine, policy: ResponsePolicy) -> None:
    clock = Clock()
    with db.begin() as conn:
        ex = store.raise_or_bump(conn, trig(), now=clock.now(), policy=policy).id
        store.acknowledge(conn, ex, actor="bo", now=clock.advance(minutes=1))
    with db.begin() as conn, pytest.raises(store.InvalidInput, match="future"):
        store.snooze(conn, ex, until=clock.now(), actor="bo", now=clock.now())
    with db.begin() as conn:
        store.snooze(conn, ex, until=clock.now() + timedelta(hours=2), actor="bo", now=clock.now())
        assert store.wake_snoozed(conn, now=clock.advance(hours=1)) == []
    with db.begin() as conn:
        assert store.wake_snoozed(conn, now=clock.advance(hours=1)) == [ex]
    r = row(db, ex)
    assert r["status"] == "acknowledged" and r["snoozed_until"] is None
    assert entries(db, ex)[-2:] == ["snoozed", "unsnoozed"]


def test_snoozed_unacknowledged_escalates_once_awake(db: Engine, policy: ResponsePolicy) -> None:
    clock = Clock()
    with db.begin() as conn:
        ex = store.raise_or_bump(conn, trig(), now=clock.now(), policy=policy).id
        store.snooze(conn, ex, until=clock.now() + timedelta(hours=6), actor="bo", now=clock.now())
    with db.begin() as conn:  # past its deadline but asleep
        assert store.escalate_overdue(conn, now=clock.advance(hours=5), policy=policy) == []
    with db.begin() as conn:
        assert store.wake_snoozed(conn, now=clock.advance(hours=1)) == [ex]
        assert store.escalate_overdue(conn, now=clock.now(), policy=policy) == [ex]
    assert row(db, ex)["tier"] == "L3"


def test_acknowledge_a_snoozed_exception(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        ex = store.raise_or_bump(conn, trig(), now=T0, policy=policy).id
        store.snooze(conn, ex, until=T0 + timedelta(hours=1), actor="bo", now=T0)
        r = store.acknowledge(conn, ex, actor="bo", now=T0 + timedelta(minutes=1))
    assert r["status"] == "acknowledged" and r["snoozed_until"] is None


def test_escalation_on_deadline(db: Engine, policy: ResponsePolicy) -> None:
    clock = Clock()
    with db.begin() as conn:
        ex = store.raise_or_bump(conn, trig(), now=clock.now(), policy=policy).id
        acked = store.raise_or_bump(conn, trig(scope="parcel:P2"), now=clock.now(), policy=policy).id
        store.acknowledge(conn, acked, actor="bo", now=clock.now())
    with db.begin() as conn:  # exactly at the deadline: not yet
        assert store.escalate_overdue(conn, now=clock.advance(hours=4), policy=policy) == []
    with db.begin() as conn:
        assert store.escalate_overdue(conn, now=clock.advance(seconds=1), policy=policy) == [ex]
    r = row(db, ex)
    assert (r["tier"], r["escalations"], r["status"]) == ("L3", 1, "triggered")
    assert r["respond_by"] == clock.now() + timedelta(hours=1)
    with db.begin() as conn:  # L3 stays L3, counts and re-notifies
        assert store.escalate_overdue(conn, now=clock.advance(hours=1, seconds=1), policy=policy) == [ex]
        assert store.escalate_overdue(conn, now=clock.now(), policy=policy) == []
    r = row(db, ex)
    assert (r["tier"], r["escalations"]) == ("L3", 2)
    assert entries(db, ex) == ["triggered", "escalated", "escalated"]
    assert outbox_topics(db) == ["exception.opened"] * 2 + ["exception.escalated"] * 2
    with db.connect() as conn:
        payload = conn.execute(select(OUTBOX.c.payload).order_by(OUTBOX.c.id.desc())).scalar()
    assert payload["notify_team"] == "management" and payload["tier"] == "L3"


def test_no_escalation_when_the_policy_says_so(db: Engine, policy: ResponsePolicy) -> None:
    quiet = policy.model_copy(update={"escalate_unacknowledged": False})
    with db.begin() as conn:
        store.raise_or_bump(conn, trig(), now=T0, policy=policy)
        assert store.escalate_overdue(conn, now=T0 + timedelta(days=1), policy=quiet) == []


def _order(conn: Any, order_id: str, *, frozen: bool) -> None:
    conn.execute(insert(store.ORDERS).values(
        order_id=order_id, flow="ecommerce", stage="packing", stage_seq=2, status="in_progress",
        frozen=frozen, priority="normal", custom=False, promised_at=T0 + timedelta(days=2),
        created_at=T0 - timedelta(days=1), delivered_at=None, cancelled_at=None,
        last_event_at=T0, late=False, at_risk=False, customer_id=None, channel=None, city=None,
        checkpoint={}))


@pytest.mark.parametrize("end", ["resolve", "cancel", "clear"])
def test_ending_a_cold_chain_exception_unfreezes_the_order(db: Engine, policy: ResponsePolicy,
                                                            end: str) -> None:
    with db.begin() as conn:
        _order(conn, "O1", frozen=True)
        ex = store.raise_or_bump(conn, trig(rule="cold_chain", scope="order:O1", order_id="O1",
                                            detail={"froze_order": True}), now=T0, policy=policy).id
    with db.begin() as conn:
        later = T0 + timedelta(hours=1)
        if end == "resolve":
            store.resolve(conn, ex, cause=RootCause("equipment"), actor="bo", now=later, policy=policy)
        elif end == "cancel":
            store.cancel(conn, ex, actor="bo", now=later, note="sensor fault")
        else:
            store.clear(conn, rule="cold_chain", scope_key="order:O1", now=later)
    with db.connect() as conn:
        assert conn.execute(select(store.ORDERS.c.frozen)).scalar() is False
        notes = [e["note"] for e in store.timeline(conn, ex)]
    assert "order O1 unfrozen" in notes


def test_timeline_is_paged(db: Engine, policy: ResponsePolicy) -> None:
    with db.begin() as conn:
        ex = store.raise_or_bump(conn, trig(), now=T0, policy=policy).id
        for i in range(5):
            store.comment(conn, ex, note=f"n{i}", actor="bo", now=T0)
    with db.connect() as conn:
        page = store.timeline(conn, ex, limit=3)
        rest = store.timeline(conn, ex, after=page[-1]["id"], limit=3)
        n = conn.execute(select(func.count()).select_from(store.TIMELINE)).scalar()
    assert len(page) == 3 and len(rest) == 3 and n == 6
    assert [e["note"] for e in rest] == ["n2", "n3", "n4"]


def test_concurrent_triggers_open_one_exception(db: Engine, policy: ResponsePolicy) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def fire(i: int) -> store.Raised:
        with db.begin() as conn:
            return store.raise_or_bump(conn, trig(), now=T0 + timedelta(seconds=i), policy=policy)

    with ThreadPoolExecutor(max_workers=4) as pool:
        raised = list(pool.map(fire, range(12)))
    assert sum(r.created for r in raised) == 1
    assert len({r.id for r in raised}) == 1
    assert row(db, raised[0].id)["count"] == 12
