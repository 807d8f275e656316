"""The emergency room page without a browser: countdowns, rows, forms, the moves against a
real store (SQLite and PostgreSQL), and the callbacks (refresh sends only what changed)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from dash import no_update
from sqlalchemy import text

from tests.callbacks import CallbackRecorder
from tower.clock import ScaledClock, SystemClock
from tower.exceptions import store
from tower.exceptions.policy import ResponsePolicy, load_policy
from tower.exceptions.store import Trigger
from tower.runtime import Tower, build_tower
from tower.settings import DEFAULT_DATA_DIR, Settings
from widgets import i18n
from widgets.config import load_screen_config
from widgets.context import Screens
from widgets.pages import emergency_room as er

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
QUERY = "?lang=en"


class HandClock:
    """The tower's clock, moved by the test."""

    def __init__(self, start: datetime = T0) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t


def texts(component: Any) -> list[str]:
    if isinstance(component, str):
        return [component]
    if isinstance(component, list | tuple):
        return [x for c in component for x in texts(c)]
    children = getattr(component, "children", None)
    return texts(children) if children is not None else []


def walk(component: Any) -> Iterator[Any]:
    if isinstance(component, list | tuple):
        for c in component:
            yield from walk(c)
        return
    if component is None or isinstance(component, str | int | float):
        return
    yield component
    yield from walk(getattr(component, "children", None))


def item(ex_id: str = "EX-1", **kw: Any) -> dict[str, Any]:
    base = {"id": ex_id, "rule": "parcel_stuck", "title": f"title {ex_id}", "tier": "L2",
            "status": "triggered", "team": "logistics", "assignee": None, "order_id": "SO-1",
            "parcel_id": None, "hub_id": None, "promised_at": (T0 + timedelta(days=1)).isoformat(),
            "order_priority": "normal", "high_priority": False, "opened_at": T0.isoformat(),
            "respond_by": (T0 + timedelta(minutes=90)).isoformat(), "seconds_left": 5400,
            "overdue": False, "handling_step": None, "next_update_at": None, "count": 1,
            "escalations": 0, "grouped": 0}
    return {**base, **kw}


# --- pure parts ----------------------------------------------------------------------------

def test_countdown_to_the_deadline_then_to_the_next_update() -> None:
    assert er.deadline_of(item()) == (item()["respond_by"], "respond")
    acked = item(status="acknowledged", next_update_at=(T0 + timedelta(hours=2)).isoformat())
    assert er.deadline_of(acked) == (acked["next_update_at"], "update")
    assert er.deadline_of(item(status="acknowledged")) == (None, "none")
    assert er.countdown_words("zh-CN") == {"left": "剩余 {t}", "overdue": "已超时 {t}",
                                           "update_in": "{t} 后更新", "update_late": "更新已逾期 {t}"}


def test_clock_rate_follows_a_scaled_clock() -> None:
    assert er.clock_rate(SystemClock()) == 1.0
    scaled = ScaledClock(T0, rate=60)
    assert er.clock_rate(scaled) == 60.0
    scaled.pause()
    assert er.clock_rate(scaled) == 0.0


def test_every_team_and_root_cause_of_the_policy_is_translated() -> None:
    policy = load_policy(DEFAULT_DATA_DIR / "rules.toml")
    for team in policy.teams:
        assert er.label("team", team, "zh-CN") != team, team
    for cause in policy.root_causes:
        assert er.label("cause", cause, "zh-CN") != cause, cause
        assert f"emergency-room.cause.{cause}" in i18n.CATALOGUE["en"], cause
    assert er.label("cause", "not_configured", "zh-CN") == "not_configured"
    assert set(i18n.CATALOGUE["en"]) == set(i18n.CATALOGUE["zh-CN"])


def test_rows_carry_deadline_moves_and_the_order_link() -> None:
    items = [item("EX-1", tier="L3", high_priority=True, count=3, grouped=2, escalations=1),
             item("EX-2", status="acknowledged", respond_by=None, seconds_left=None, assignee="li",
                  handling_step="carrier contacted", next_update_at=(T0 + timedelta(hours=2)).isoformat())]
    q = er.queue_data(items, lang="en", zone=ZONE, kiosk=False, view_query="?lang=en&theme=dark")
    first, second = q["rows"]
    assert (first["id"], first["tier"], first["hp"], first["ack"]) == ("EX-1", "L3", True, True)
    assert (first["deadline"], first["kind"], first["text"]) == (items[0]["respond_by"], "respond", "")
    link = {"text": "order SO-1", "href": "/orders?lang=en&theme=dark&order=SO-1"}
    assert first["meta"] == ["triggered", link, "promised 03-03 16:00", "team logistics", "unassigned",
                             "seen 3×", "2 grouped", "escalated 1×"]
    assert second["ack"] is False and second["kind"] == "update" and "assignee li" in second["meta"]
    assert second["step"] == "Step: carrier contacted · next update 03-02 18:00"
    assert q["labels"]["ack"] == "Ack" and q["keys"]["resolve"] == "r" and not q["kiosk"]
    assert first["v"] != second["v"] and len(first["v"]) == 16
    none = er.queue_data([item(status="acknowledged")], lang="zh-CN", zone=ZONE, kiosk=True,
                         view_query="?lang=zh-CN")
    assert none["rows"][0]["text"] == "已确认" and none["rows"][0]["deadline"] is None
    assert none["rows"][0]["meta"][1] == "订单 SO-1" and none["kiosk"]  # no link on a wall
    empty = er.queue_data([], lang="en", zone=ZONE, kiosk=False, view_query=QUERY)
    assert empty["rows"] == [] and empty["empty"] == er.s("empty", "en")


def test_a_row_changes_version_only_with_its_data() -> None:
    def version(**kw: Any) -> str:
        return str(er.queue_data([item(**kw)], lang="en", zone=ZONE, kiosk=False,
                                  view_query=QUERY)["rows"][0]["v"])

    assert version(seconds_left=10, overdue=False) == version(seconds_left=-5, overdue=True)
    assert version(status="acknowledged") != version()


def test_forms_offer_the_policy_choices() -> None:
    policy = load_policy(DEFAULT_DATA_DIR / "rules.toml")
    ex = {"id": "EX-1", "title": "lost parcel", "team": "logistics", "assignee": None}
    names = {a: [c.id["name"] for c in walk(er.form_fields(a, lang="zh-CN", policy=policy, exception=ex))
                 if isinstance(getattr(c, "id", None), dict)]
             for a in er.FORM_ACTIONS}
    assert names["assign"] == ["team", "assignee", "note"]
    assert names["step"] == ["step", "next_h", "note"]
    assert names["snooze"] == ["hours", "note"]
    assert names["resolve"] == ["cause", "note", "why1", "why2", "why3", "why4", "why5", "supplier",
                                "carrier", "hub"]
    assert names["raise"] == ["title", "team", "order", "high", "note"]
    resolve = er.form_fields("resolve", lang="zh-CN", policy=policy, exception=ex)
    select = next(c for c in walk(resolve) if getattr(c, "id", None) == er._field("cause"))
    assert [o["value"] for o in select.options] == list(policy.root_causes)
    assert select.options[0]["label"] == "包装材料短缺" and select.value == "" and select.placeholder


# --- the moves against a real store ------------------------------------------------------------

@pytest.fixture
def policy() -> ResponsePolicy:
    return load_policy(DEFAULT_DATA_DIR / "rules.toml")


@pytest.fixture
def tower(db_url: str) -> Iterator[Tower]:
    rt = build_tower(Settings(database_url=db_url, redis_url=None, api_token=None), migrate=False,
                     clock=HandClock())
    with rt.engine.begin() as conn:
        for name in ("exception_timeline", "outbox", "exceptions", "orders"):
            conn.execute(text(f"DELETE FROM {name}"))
    yield rt
    rt.close()


@pytest.fixture
def screens(tower: Tower) -> Screens:
    return Screens(tower=tower, settings=tower.settings,
                   config=load_screen_config(DEFAULT_DATA_DIR / "screens.toml", tower.flows))


def seed(tower: Tower, policy: ResponsePolicy, scope: str, *, tier: str = "L2", **kw: Any) -> str:
    trigger = Trigger(rule=kw.pop("rule", "parcel_stuck"), scope_key=scope, tier=tier,
                      team=kw.pop("team", "logistics"), title=kw.pop("title", f"stuck {scope}"),
                      condition_since=T0 - timedelta(hours=30), **kw)
    with tower.engine.begin() as conn:
        return store.raise_or_bump(conn, trigger, now=tower.clock.now(), policy=policy).id


def row(tower: Tower, ex_id: str) -> Any:
    with tower.engine.connect() as conn:
        return store.get_exception(conn, ex_id)


def timeline(tower: Tower, ex_id: str) -> list[tuple[str, str]]:
    with tower.engine.connect() as conn:
        return [(e["actor"], e["action"]) for e in store.timeline(conn, ex_id)]


def act(tower: Tower, policy: ResponsePolicy, action: str, ex_id: str | None, lang: i18n.Lang = "en",
        actor: str = "amy", **fields: Any) -> er.Outcome:
    return er.perform(tower, policy, action, ex_id, fields, actor=actor, lang=lang, zone=ZONE)


def test_acknowledge_then_refused_twice(tower: Tower, policy: ResponsePolicy) -> None:
    ex_id = seed(tower, policy, "parcel:P1")
    tower.clock.t = T0 + timedelta(minutes=5)  # type: ignore[attr-defined]
    done = act(tower, policy, "ack", ex_id, note="on it")
    assert done.ok and done.message == "Acknowledged: stuck parcel:P1"
    after = row(tower, ex_id)
    assert after["status"] == "acknowledged" and after["acknowledged_at"] == T0 + timedelta(minutes=5)
    assert timeline(tower, ex_id)[-1] == ("amy", "acknowledged")
    again = act(tower, policy, "ack", ex_id, lang="zh-CN")
    assert not again.ok and again.message == "未执行：the exception is already acknowledged"
    assert act(tower, policy, "ack", "EX-nope").message == er.s("err.not_found", "en")


def test_assign_step_and_snooze(tower: Tower, policy: ResponsePolicy) -> None:
    ex_id = seed(tower, policy, "parcel:P2")
    wrong = act(tower, policy, "assign", ex_id, team="pirates")
    assert not wrong.ok and "'pirates' is not a team" in wrong.message
    assert not act(tower, policy, "assign", ex_id, team="").ok
    assert act(tower, policy, "assign", ex_id, team="warehouse", assignee="  li  ").ok
    assert (row(tower, ex_id)["team"], row(tower, ex_id)["assignee"]) == ("warehouse", "li")
    bad = act(tower, policy, "step", ex_id, step="carrier contacted", next_h=-1)
    assert not bad.ok and "hours" in bad.message
    assert act(tower, policy, "step", ex_id, step="carrier contacted", next_h=2).ok
    after = row(tower, ex_id)
    assert after["handling_step"] == "carrier contacted"
    assert after["next_update_at"] == T0 + timedelta(hours=2)
    assert not act(tower, policy, "snooze", ex_id, hours=None).ok
    assert act(tower, policy, "snooze", ex_id, hours=1.5, actor="   ").ok
    assert row(tower, ex_id)["snoozed_until"] == T0 + timedelta(hours=1.5)
    assert timeline(tower, ex_id)[-3:] == [("amy", "assigned"), ("amy", "step"), ("operator", "snoozed")]


def test_resolve_stores_the_root_cause(tower: Tower, policy: ResponsePolicy) -> None:
    ex_id = seed(tower, policy, "parcel:P3")
    missing = act(tower, policy, "resolve", ex_id, cause="")
    assert not missing.ok and missing.message == "Root cause is needed."
    done = act(tower, policy, "resolve", ex_id, lang="zh-CN", cause="carrier_delay", note="late truck",
               why1="truck broke down", why2="", why3="no spare", carrier="SF")
    assert done.ok and done.message == "已解决（承运商延误）：stuck parcel:P3"
    cause = row(tower, ex_id)["root_cause"]
    assert cause == {"cause": "carrier_delay", "note": "late truck", "whys": ["truck broke down", "no spare"],
                     "supplier": None, "carrier": "SF", "hub": None}
    refused = act(tower, policy, "resolve", ex_id, cause="carrier_delay")
    assert not refused.ok and "resolved" in refused.message


def test_raise_an_l3_by_hand(tower: Tower, policy: ResponsePolicy) -> None:
    assert not act(tower, policy, "raise", None, title=" ", team="management").ok
    done = act(tower, policy, "raise", None, title="design defect", team="production", order="SO-9",
               high=True, note="seen by QA")
    assert done.ok and done.exception_id
    raised = row(tower, done.exception_id)
    assert (raised["rule"], raised["tier"], raised["team"], raised["order_id"], raised["raised_by"],
            raised["high_priority"]) == ("manual", "L3", "production", "SO-9", "amy", True)
    assert raised["respond_by"] == T0 + timedelta(minutes=30)
    again = act(tower, policy, "raise", None, title="design defect", team="production", order="SO-9")
    assert again.ok and again.exception_id == done.exception_id and "Already open" in again.message


# --- callbacks -----------------------------------------------------------------------------

def test_refresh_sends_only_what_changed_and_moves_show_at_once(screens: Screens,
                                                               policy: ResponsePolicy) -> None:
    tower = screens.tower
    l2 = seed(tower, policy, "parcel:P1")
    l3 = seed(tower, policy, "hub:H1", tier="L3", rule="hub_retention", team="management")
    seed(tower, policy, "stage:picking", rule="stage_over_benchmark")  # an improvement item
    app = CallbackRecorder()
    er.register_callbacks(app, screens)  # type: ignore[arg-type]
    refresh = app.by_output["emergency-room-rows.data"]

    def desk(intent: Any, submit: Any, target: Any, values: list[Any], names: list[str]) -> Any:
        trigger = er.ids("submit") if submit else er.ids("intent")
        return er.desk(screens, trigger=trigger, intent=intent, target=target,
                       fields=dict(zip(names, values, strict=True)), actor="bo", view=view,
                       changed=changes[0])

    changes = [0]
    detail = app.by_output["emergency-room-detail.children"]
    view = {"lang": "en", "kiosk": False, "query": QUERY}

    rows, line, clock, sent = refresh(1, 0, "*", view, {})
    assert [r["id"] for r in rows["rows"]] == [l3, l2]
    assert line == "2 in the queue · 0 overdue · L3 1 · L2 1"
    assert clock["now"] == T0.isoformat() and clock["rate"] == 1.0 and clock["words"]["left"] == "{t} left"
    tower.clock.t = T0 + timedelta(minutes=2)  # type: ignore[attr-defined]
    again = refresh(2, 0, "*", view, sent)
    assert again[0] is no_update and again[1] is no_update
    assert again[2]["now"] == (T0 + timedelta(minutes=2)).isoformat()
    assert [r["id"] for r in refresh(3, 0, "management", view, {})[0]["rows"]] == [l3]

    # Ack by intent (a click or the a key): acknowledged, and the queue re-sent.
    out = desk({"action": "ack", "ex": l2, "n": 1}, None, None, [], [])
    assert out[5].color == "success" and out[6] == 1
    changes[0] = 1
    assert row(tower, l2)["status"] == "acknowledged" and timeline(tower, l2)[-1] == ("bo", "acknowledged")
    rows, *_ = refresh(4, 1, "", view, sent)
    assert rows is not no_update

    # Resolve: the form opens, a missing cause keeps it open, a cause resolves.
    opened = desk({"action": "resolve", "ex": l3, "n": 2}, None, None, [], [])
    assert opened[0] is True and opened[1] == "Resolve with a root cause"
    assert opened[3] == {"action": "resolve", "ex": l3}
    names = ["cause", "note"]
    kept = desk(None, 1, opened[3], ["", ""], names)
    assert kept[0] is no_update and kept[4] == "Root cause is needed."
    closed = desk(None, 2, opened[3], ["hub_congestion", "peak"], names)
    assert closed[0] is False and closed[6] == 2
    assert row(tower, l3)["root_cause"]["cause"] == "hub_congestion"
    rows, line, *_ = refresh(5, 2, "", view, sent)
    assert [r["id"] for r in rows["rows"]] == [l2] and line.startswith("1 in the queue")

    # Detail: fields, order link, timeline with who and when (in TOWER_TZ); re-sent only on change.
    assert desk({"action": "open", "ex": l3, "n": 3}, None, None, [], [])[7] == l3
    panel, key = detail(l3, 2, 1, view, None)
    words = texts(panel)
    assert "hub_congestion" not in words and "hub congestion" in words
    assert "bo" in words and "resolved" in words and "2026-03-02 16:00" in words  # 08:00 UTC in Shanghai
    assert detail(l3, 2, 2, view, key) == (no_update, no_update)
    assert desk({"action": "close", "n": 4}, None, None, [], [])[7] is None
    assert texts(detail(None, 2, 3, view, key)[0]) == [er.s("detail.pick", "en")]


def test_kiosk_refresh_has_no_buttons_and_ignores_moves(screens: Screens, policy: ResponsePolicy) -> None:
    ex_id = seed(screens.tower, policy, "parcel:P1")
    app = CallbackRecorder()
    er.register_callbacks(app, screens)  # type: ignore[arg-type]
    view = {"lang": "zh-CN", "kiosk": True, "query": "?lang=zh-CN&kiosk=1"}
    rows, line, *_ = app.by_output["emergency-room-rows.data"](1, 0, "", view, {})
    assert rows["kiosk"] is True and line.startswith("队列中 1 个")
    out = er.desk(screens, trigger=er.ids("intent"), intent={"action": "ack", "ex": ex_id, "n": 1},
                  target=None, fields={}, actor="x", view=view, changed=0)
    assert all(o is no_update for o in out)
    assert row(screens.tower, ex_id)["status"] == "triggered"
