"""Scheduled jobs of tower.exceptions (see tower.scheduler)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tower.runtime import Tower
    from tower.scheduler import ScheduledJob


def scheduled_jobs(tower: Tower) -> list[ScheduledJob]:
    return []
