"""Scheduled jobs of tower.rules (see tower.scheduler): the absence-rule scan.

The scan runs every ``[rule_engine] scan_interval_s`` seconds of WALL time and checks
the rules at the tower's clock (``tower.clock.now()``). In the demo the clock runs 60
times faster than the wall (1 simulated hour per real minute), so a scan every 60 s
looks at the network once per simulated hour: a 2 h limit is seen at most one
simulated hour late there, and at most a minute late in production.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tower.runtime import Tower
    from tower.scheduler import ScheduledJob

log = logging.getLogger(__name__)


def scheduled_jobs(tower: Tower) -> list[ScheduledJob]:
    from tower.scheduler import ScheduledJob

    rules = tower.rules
    if rules is None:
        return []

    def scan() -> None:
        summary = rules.scan(tower.clock.now())
        if summary.raised or summary.cleared or summary.bumped:
            log.info("rule scan at %s: %d raised, %d bumped, %d cleared in %.2f s",
                     summary.at.isoformat(), summary.raised, summary.bumped, summary.cleared,
                     summary.seconds)

    return [ScheduledJob(name="rules.scan", every_s=rules.book.scan_interval_s, run=scan)]
