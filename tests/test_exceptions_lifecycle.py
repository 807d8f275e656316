"""The pure lifecycle state machine and the response policy file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tower.exceptions.lifecycle import (
    DONE_STATUSES,
    OPEN_STATUSES,
    STATUSES,
    Action,
    Status,
    TransitionError,
    next_tier,
    transition,
)
from tower.exceptions.policy import PolicyConfigError, load_policy
from tower.settings import DEFAULT_DATA_DIR

ACTIONS: tuple[Action, ...] = ("acknowledge", "assign", "snooze", "unsnooze", "step", "comment",
                               "resolve", "auto_resolve", "close", "cancel", "escalate", "bump")
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

ALLOWED: list[tuple[Status, Action, bool, Status]] = [
    ("triggered", "acknowledge", False, "acknowledged"),
    ("snoozed", "acknowledge", False, "acknowledged"),
    ("triggered", "snooze", False, "snoozed"),
    ("acknowledged", "snooze", True, "snoozed"),
    ("snoozed", "snooze", False, "snoozed"),
    ("snoozed", "unsnooze", False, "triggered"),
    ("snoozed", "unsnooze", True, "acknowledged"),
    ("triggered", "escalate", False, "triggered"),
    ("triggered", "resolve", False, "resolved"),
    ("acknowledged", "resolve", True, "resolved"),
    ("snoozed", "auto_resolve", False, "resolved"),
    ("acknowledged", "cancel", True, "cancelled"),
    ("resolved", "close", True, "closed"),
    ("acknowledged", "assign", True, "acknowledged"),
    ("triggered", "step", False, "triggered"),
    ("closed", "comment", True, "closed"),
    ("cancelled", "comment", False, "cancelled"),
]
REFUSED: list[tuple[Status, Action, bool, str]] = [
    ("acknowledged", "acknowledge", True, "already acknowledged"),
    ("snoozed", "acknowledge", True, "already acknowledged"),
    ("triggered", "unsnooze", False, "not snoozed"),
    ("acknowledged", "escalate", True, "only an unacknowledged"),
    ("snoozed", "escalate", False, "only an unacknowledged"),
    ("triggered", "close", False, "only a resolved"),
    ("resolved", "resolve", True, "resolved"),
    ("resolved", "acknowledge", False, "resolved"),
    ("closed", "cancel", True, "closed"),
    ("cancelled", "snooze", False, "cancelled"),
    ("closed", "step", True, "closed"),
    ("closed", "close", True, "only a resolved"),
]


@pytest.mark.parametrize(("status", "action", "acked", "after"), ALLOWED)
def test_allowed_moves(status: Status, action: Action, acked: bool, after: Status) -> None:
    assert transition(status, action, acknowledged=acked) == after


@pytest.mark.parametrize(("status", "action", "acked", "reason"), REFUSED)
def test_refused_moves_say_why(status: Status, action: Action, acked: bool, reason: str) -> None:
    with pytest.raises(TransitionError, match=reason) as info:
        transition(status, action, acknowledged=acked)
    assert info.value.reason


@given(st.lists(st.sampled_from(ACTIONS), max_size=30))
def test_done_is_final_but_for_close_and_notes(actions: list[Action]) -> None:
    status: Status = "triggered"
    acked = False
    for action in actions:
        try:
            after = transition(status, action, acknowledged=acked)
        except TransitionError:
            continue
        if status in DONE_STATUSES:
            assert after in DONE_STATUSES
            assert after == status or (status, after) == ("resolved", "closed")
        assert after in STATUSES
        acked = acked or after == "acknowledged"
        status = after
    assert status in OPEN_STATUSES | DONE_STATUSES


def test_tiers_go_up_to_l3() -> None:
    assert [next_tier("L1"), next_tier("L2"), next_tier("L3")] == ["L2", "L3", "L3"]


def test_shipped_policy() -> None:
    policy = load_policy(DEFAULT_DATA_DIR / "rules.toml")
    assert policy.respond_by("L2", high_priority=False, now=T0) == T0 + timedelta(hours=4)
    assert policy.respond_by("L2", high_priority=True, now=T0) == T0 + timedelta(minutes=30)
    assert policy.respond_by("L1", high_priority=True, now=T0) is None
    assert "customer_service" in policy.teams and policy.management_team == "management"
    assert "packaging_shortage" in policy.root_causes


GOOD = """
[response]
respond_within_h = { L2 = 4.0, L3 = 1.0 }
teams = ["logistics", "management"]
management_team = "management"
[root_causes]
categories = ["other"]
[[rules]]
id = "ignored here"
"""


@pytest.mark.parametrize(("old", "new", "message"), [
    ('management_team = "management"', 'management_team = "board"',
     "response: management_team 'board' is not one of teams"),
    ("L3 = 1.0", "L3 = -1.0", "response.respond_within_h: L3: must be more than 0 hours"),
    ("L2 = 4.0, ", "", "response.respond_within_h: a deadline for L2 is needed"),
    ('categories = ["other"]', 'categories = ["other", "other"]',
     "root_causes.categories: 'other' appears twice"),
    ("teams =", "temas =", "response.teams: Field required"),
    ('categories = ["other"]', "", "root_causes.categories: a list of cause categories is needed"),
    ("respond_within_h = {", "respond_within_h = {{", "not valid TOML"),
])
def test_bad_policy_names_file_key_and_why(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(GOOD.replace(old, new), encoding="utf-8")
    with pytest.raises(PolicyConfigError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_good_policy_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(GOOD, encoding="utf-8")
    assert load_policy(path).teams == ("logistics", "management")
    with pytest.raises(PolicyConfigError, match="file not found"):
        load_policy(tmp_path / "nope.toml")
