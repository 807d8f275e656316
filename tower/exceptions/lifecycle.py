"""The exception lifecycle as a pure state machine (no store, no clock).

    triggered ─► acknowledged ─► resolved ─► closed
        │  ▲          │  ▲
        ▼  │          ▼  │
        snoozed (until a time; wakes back to the status it had)

and ``cancelled`` from any open status. Open means every status but resolved, closed
and cancelled. A refused move raises :class:`TransitionError` with a reason a person
can read (the API answers it as a 409).
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Status = Literal["triggered", "acknowledged", "snoozed", "resolved", "closed", "cancelled"]
Tier = Literal["L1", "L2", "L3"]
# What a person (or the system) does to an exception; each is a timeline action too.
Action = Literal[
    "acknowledge", "assign", "snooze", "unsnooze", "step", "comment", "resolve",
    "auto_resolve", "close", "cancel", "escalate", "bump",
]

STATUSES: Final[tuple[Status, ...]] = get_args(Status)
TIERS: Final[tuple[Tier, ...]] = get_args(Tier)
OPEN_STATUSES: Final[frozenset[Status]] = frozenset({"triggered", "acknowledged", "snoozed"})
DONE_STATUSES: Final[frozenset[Status]] = frozenset({"resolved", "closed", "cancelled"})

# The timeline action written for each lifecycle action.
TIMELINE_ACTION: Final[dict[Action, str]] = {
    "acknowledge": "acknowledged", "assign": "assigned", "snooze": "snoozed",
    "unsnooze": "unsnoozed", "step": "step", "comment": "comment", "resolve": "resolved",
    "auto_resolve": "auto_resolved", "close": "closed", "cancel": "cancelled",
    "escalate": "escalated", "bump": "bumped",
}


class TransitionError(Exception):
    """A lifecycle move that is not allowed from the exception's current status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_open(status: str) -> bool:
    return status in OPEN_STATUSES


def next_tier(tier: Tier) -> Tier:
    """One tier up; L3 is the top and stays L3."""
    return TIERS[min(TIERS.index(tier) + 1, len(TIERS) - 1)]


def transition(status: Status, action: Action, *, acknowledged: bool = False) -> Status:
    """The status after ``action``, or :class:`TransitionError` saying why not.

    ``acknowledged`` tells whether the exception was ever acknowledged: a snoozed one
    wakes back to ``acknowledged`` if so, else to ``triggered``.
    """
    if action in ("comment",):
        return status  # notes are welcome at any time, even on a closed exception
    if action == "close":
        if status == "resolved":
            return "closed"
        raise TransitionError(f"only a resolved exception can be closed; this one is {status}")
    if status in DONE_STATUSES:
        raise TransitionError(f"the exception is {status}; it can no longer be {_past(action)}")
    match action:
        case "acknowledge":
            if status == "acknowledged" or (status == "snoozed" and acknowledged):
                raise TransitionError("the exception is already acknowledged")
            return "acknowledged"
        case "snooze":
            return "snoozed"  # snoozing a snoozed exception moves its wake-up time
        case "unsnooze":
            if status != "snoozed":
                raise TransitionError(f"the exception is {status}, not snoozed")
            return "acknowledged" if acknowledged else "triggered"
        case "escalate":
            if status != "triggered":
                raise TransitionError(f"only an unacknowledged exception escalates; this one is {status}")
            return "triggered"
        case "resolve" | "auto_resolve":
            return "resolved"
        case "cancel":
            return "cancelled"
        case "assign" | "step" | "bump":
            return status
    raise TransitionError(f"unknown action {action!r}")  # pragma: no cover - Literal covers it


def _past(action: Action) -> str:
    return {"acknowledge": "acknowledged", "assign": "assigned", "snooze": "snoozed",
            "unsnooze": "woken", "step": "given a handling step", "resolve": "resolved",
            "auto_resolve": "resolved", "cancel": "cancelled", "escalate": "escalated",
            "bump": "bumped"}.get(action, action)
