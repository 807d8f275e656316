"""The notification set-up: channels, their topics and retry policy, customer milestones.

Read from ``data/notify.toml``; a broken file fails early with the file, the key and
why, as ``data/flows.toml`` does. ``TOWER_WEBHOOK_URL`` and ``TOWER_WEBHOOK_SECRET``
add a webhook channel named ``webhook`` on every topic without editing the file.
"""

from __future__ import annotations

import fnmatch
import logging
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tower.config_errors import validation_message

if TYPE_CHECKING:
    from tower.settings import Settings

log = logging.getLogger(__name__)

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,47}$"
ENV_WEBHOOK = "webhook"  # name of the channel TOWER_WEBHOOK_URL adds
ENV_WEBHOOK_SECRET = "TOWER_WEBHOOK_SECRET"


class NotifyConfigError(ValueError):
    """A notification set-up that cannot be used; the message names the file and key."""


class ChannelConfig(BaseModel):
    """One place notifications go: its kind, address, topics and retry policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: str = Field(pattern=NAME_PATTERN)
    url: str | None = None
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    topics: tuple[str, ...] = Field(default=("*",), min_length=1)
    max_attempts: int = Field(default=8, ge=1, le=100)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_cap_s: float = Field(default=600.0, gt=0)
    jitter: float = Field(default=0.2, ge=0, le=1)
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    # Settings of a plugged-in kind (email, SMS, chat): free keys, read by its factory.
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @model_validator(mode="after")
    def _webhook_needs_url_and_secret(self) -> ChannelConfig:
        if self.kind == "webhook":
            if self.url is None:
                raise ValueError("a webhook channel needs a url")
            if self.secret_env is None:
                raise ValueError("a webhook channel needs secret_env (its requests are signed)")
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be at least backoff_base_s")
        return self

    def subscribes(self, topic: str) -> bool:
        """True when one of the channel's topic globs (``exception.*``, ``*``) matches."""
        return any(fnmatch.fnmatchcase(topic, pattern) for pattern in self.topics)


class MilestoneConfig(BaseModel):
    """Which events are which customer milestone (see tower.notify.milestones).

    A milestone list names event types (``tracking.assigned``) or ``parcel.scanned``
    statuses. No v1 scan status says "customs": a scan whose status is in
    ``customs_cleared_statuses`` at a hub of ``customs_hubs``, or carrying a payload
    ``location_kind`` of ``customs_location_kinds``, is "customs cleared".
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    shipped: tuple[str, ...] = ("tracking.assigned", "in_transit")
    out_for_delivery: tuple[str, ...] = ("out_for_delivery",)
    customs_cleared_statuses: tuple[str, ...] = ("departed_hub",)
    customs_hubs: tuple[str, ...] = ()
    customs_location_kinds: tuple[str, ...] = ("customs",)
    # Events older than this (against the tower clock) push nothing: a backlog being
    # caught up must not tell a customer today that the parcel shipped last week.
    stale_after_h: float = Field(default=24.0, gt=0)


class NotifyConfig(BaseModel):
    """The whole notification set-up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dispatch_every_s: float = Field(default=2.0, gt=0, le=3600)
    batch: int = Field(default=200, ge=1, le=10_000)
    channels: tuple[ChannelConfig, ...] = (ChannelConfig(name="log", kind="log"),)
    milestones: MilestoneConfig = MilestoneConfig()

    @field_validator("channels")
    @classmethod
    def _unique_names(cls, channels: tuple[ChannelConfig, ...]) -> tuple[ChannelConfig, ...]:
        names = [c.name for c in channels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"channel name {dupes[0]!r} appears twice")
        return channels

    @property
    def by_name(self) -> dict[str, ChannelConfig]:
        return {c.name: c for c in self.channels}


def _with_env_webhook(config: NotifyConfig, settings: Settings) -> NotifyConfig:
    if settings.webhook_url is None:
        return config
    if settings.webhook_secret is None:
        raise NotifyConfigError(f"TOWER_WEBHOOK_URL is set but {ENV_WEBHOOK_SECRET} is not")
    if ENV_WEBHOOK in config.by_name:
        raise NotifyConfigError(
            f"TOWER_WEBHOOK_URL adds a channel named {ENV_WEBHOOK!r}, and the file has one already"
        )
    channel = ChannelConfig(name=ENV_WEBHOOK, kind="webhook", url=settings.webhook_url,
                            secret_env=ENV_WEBHOOK_SECRET)
    return config.model_copy(update={"channels": (*config.channels, channel)})


def load_notify(path: Path, settings: Settings | None = None, *,
                kinds: Collection[str] | None = None) -> NotifyConfig:
    """Read and validate the notification file, raising NotifyConfigError naming file and key.

    A missing file means the defaults (one ``log`` channel on every topic). With
    ``settings``, ``TOWER_WEBHOOK_URL`` adds its channel. ``kinds`` are the channel
    kinds allowed (default: those registered in :mod:`tower.notify.channels`).
    """
    if kinds is None:
        from tower.notify.channels import channel_kinds

        kinds = channel_kinds()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("%s not found: notifications go to the log channel only", path)
        raw = {}
    except tomllib.TOMLDecodeError as exc:
        raise NotifyConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        config = NotifyConfig.model_validate(raw)
    except ValidationError as exc:
        raise NotifyConfigError(validation_message(path, exc)) from exc
    for i, channel in enumerate(config.channels):
        if channel.kind not in kinds:
            known = ", ".join(sorted(kinds))
            raise NotifyConfigError(
                f"{path}: channels.{i}.kind: unknown channel kind {channel.kind!r} (known: {known})"
            )
    return _with_env_webhook(config, settings) if settings is not None else config

