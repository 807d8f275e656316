"""Scheduled jobs of tower.notify (see tower.scheduler): route and send the outbox."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tower.clock import SystemClock
from tower.notify.channels import build_channels, channel_secrets
from tower.notify.config import load_notify
from tower.notify.dispatcher import Dispatcher
from tower.scheduler import ScheduledJob

if TYPE_CHECKING:
    from tower.runtime import Tower


def build_dispatcher(tower: Tower) -> Dispatcher:
    """The dispatcher of a tower, from data/notify.toml and the TOWER_WEBHOOK_* settings.

    Deliveries are stamped by the wall clock, not the tower's (scaled in the demo):
    retry delays are about a real receiver recovering.
    """
    config = load_notify(tower.settings.notify_path, tower.settings)
    channels = build_channels(config, channel_secrets(tower.settings))
    return Dispatcher(tower.engine, config, SystemClock(), channels=channels)


def scheduled_jobs(tower: Tower) -> list[ScheduledJob]:
    """Route new outbox rows and send due deliveries every ``dispatch_every_s``."""
    dispatcher = build_dispatcher(tower)
    return [ScheduledJob("notify.dispatch", dispatcher.config.dispatch_every_s, dispatcher.run_once)]
