"""Scheduled jobs of tower.exceptions (see tower.scheduler)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tower.exceptions import store
from tower.exceptions.policy import ResponsePolicy
from tower.scheduler import ScheduledJob

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from tower.clock import Clock
    from tower.runtime import Tower

log = logging.getLogger(__name__)

RESPONSE_PASS_EVERY_S = 30.0


def response_pass(engine: Engine, clock: Clock, policy: ResponsePolicy) -> tuple[list[str], list[str]]:
    """Wake the snoozed exceptions that are due, then escalate the overdue ones.

    One transaction, so a woken exception already past its deadline escalates in the
    same pass. Returns (woken ids, escalated ids).
    """
    now = clock.now()
    with engine.begin() as conn:
        woken = store.wake_snoozed(conn, now=now)
        escalated = store.escalate_overdue(conn, now=now, policy=policy)
    if woken or escalated:
        log.info("exceptions: %d woken, %d escalated", len(woken), len(escalated))
    return woken, escalated


def scheduled_jobs(tower: Tower) -> list[ScheduledJob]:
    """Escalation and wake-up every 30 s of wall time, on the tower's clock."""
    policy = tower.response_policy
    return [ScheduledJob(name="exceptions.response", every_s=RESPONSE_PASS_EVERY_S,
                         run=lambda: response_pass(tower.engine, tower.clock, policy))]
