"""Channels: where a notification goes (a webhook, the log; email, SMS or chat plug in).

A channel is anything with ``name`` and ``send(message)``. ``send`` returns when the
receiver has the message, and raises :class:`Retryable` (try again later: a timeout,
a 5xx) or :class:`Permanent` (it will never succeed: a 4xx) otherwise. A new kind is
one factory registered with :func:`register_kind`; ``data/notify.toml`` then names it
as a channel's ``kind`` and passes it ``options``.

Webhook requests are signed (see :func:`signature`): the receiver recomputes
``HMAC-SHA256(secret, timestamp + "." + body)`` and compares it with
``X-Tower-Signature``; it dedupes on ``event_id``, since a notification may arrive
twice after a crash (see docs/adr/0004-exceptions-and-outbox.md, "Notifications").
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import logging
import os
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import orjson

from tower.notify.config import ENV_WEBHOOK_SECRET, ChannelConfig, NotifyConfig, NotifyConfigError

if TYPE_CHECKING:
    from tower.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "order-tower-notify/1"
SIGNATURE_PREFIX = "sha256="
# Statuses of the 4xx class that are worth another try (request timeout, rate limit).
RETRYABLE_4XX = frozenset({408, 429})


@dataclass(frozen=True, slots=True)
class Message:
    """One notification as a channel sees it; ``event_id`` is the same on every attempt."""

    event_id: str
    topic: str
    created_at: datetime
    payload: Mapping[str, Any]
    attempt: int = 1  # 1 on the first try

    def body(self) -> bytes:
        """The JSON document a receiver gets (keys sorted: the same message, the same bytes)."""
        return orjson.dumps(
            {"event_id": self.event_id, "topic": self.topic,
             "created_at": self.created_at.isoformat(), "payload": self.payload},
            option=orjson.OPT_SORT_KEYS,
        )


class ChannelError(Exception):
    """A send that did not reach the receiver."""


class Retryable(ChannelError):
    """Worth another try later; ``after_s`` is the receiver's own hint (Retry-After)."""

    def __init__(self, reason: str, *, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.after_s = after_s


class Permanent(ChannelError):
    """Will never succeed as it is: the delivery goes to the dead letters at once."""


class Channel(Protocol):
    """Where notifications go. ``send`` raises Retryable or Permanent when it fails."""

    @property
    def name(self) -> str: ...

    def send(self, message: Message) -> None: ...


ChannelFactory = Callable[[ChannelConfig, Mapping[str, str]], Channel]


# --- log ----------------------------------------------------------------------------


class LogChannel:
    """Writes one structured (JSON) line per notification to the ``tower.notify.log`` logger."""

    logger = logging.getLogger("tower.notify.log")

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def name(self) -> str:
        return self._name

    @classmethod
    def from_config(cls, config: ChannelConfig, secrets: Mapping[str, str]) -> LogChannel:
        return cls(config.name)

    def send(self, message: Message) -> None:
        line = orjson.dumps({"channel": self._name, "event_id": message.event_id,
                             "topic": message.topic, "created_at": message.created_at.isoformat(),
                             "attempt": message.attempt, "payload": message.payload},
                            option=orjson.OPT_SORT_KEYS)
        self.logger.info("notification %s", line.decode())


# --- webhook ------------------------------------------------------------------------


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``timestamp + "." + body``.

    The timestamp is signed with the body so that a captured request cannot be
    replayed later with a fresh ``X-Tower-Timestamp``.
    """
    mac = hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + mac.hexdigest()


def verify_signature(secret: bytes, *, body: bytes, timestamp: str, header: str,
                     now: float | None = None, tolerance_s: float = 300.0) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - sent) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the channel's own backoff is good enough


class WebhookChannel:
    """POSTs the message as JSON, signed with HMAC-SHA256, to one URL.

    2xx is sent; 408, 429, 5xx, a timeout or a connection error is retried; any other
    status (4xx, and 3xx: redirects are not followed, fix the URL) is permanent.
    """

    def __init__(self, name: str, url: str, secret: bytes, *, timeout_s: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"channel {name!r}: not an http(s) URL")
        self._name = name
        self._parts = parts
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock = clock

    def __repr__(self) -> str:  # never the secret
        return f"WebhookChannel({self._name!r}, {self.url!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def url(self) -> str:
        return self._parts.geturl()

    @classmethod
    def from_config(cls, config: ChannelConfig, secrets: Mapping[str, str]) -> WebhookChannel:
        assert config.url is not None and config.secret_env is not None  # checked by ChannelConfig
        secret = secrets.get(config.secret_env)
        if not secret:
            raise NotifyConfigError(
                f"channel {config.name!r}: environment variable {config.secret_env} "
                "(its secret_env) is not set"
            )
        return cls(config.name, config.url, secret.encode(), timeout_s=config.timeout_s)

    def headers(self, message: Message, body: bytes) -> dict[str, str]:
        timestamp = str(int(self._clock()))
        return {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Tower-Event-Id": message.event_id,
            "X-Tower-Topic": message.topic,
            "X-Tower-Attempt": str(message.attempt),
            "X-Tower-Timestamp": timestamp,
            "X-Tower-Signature": signature(self._secret, timestamp, body),
        }

    def send(self, message: Message) -> None:
        body = message.body()
        parts = self._parts
        connection_class = (http.client.HTTPSConnection if parts.scheme == "https"
                            else http.client.HTTPConnection)
        conn = connection_class(parts.hostname or "", parts.port, timeout=self._timeout_s)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        try:
            conn.request("POST", path, body=body, headers=self.headers(message, body))
            response = conn.getresponse()
            status = response.status
            retry_after = response.getheader("Retry-After")
            snippet = response.read(200).decode("utf-8", "replace").strip()
        except TimeoutError as exc:
            raise Retryable(f"timed out after {self._timeout_s:g} s") from exc
        except (OSError, http.client.HTTPException) as exc:
            raise Retryable(f"{type(exc).__name__}: {exc}"[:300]) from exc
        finally:
            conn.close()
        if 200 <= status < 300:
            return
        reason = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        if status >= 500 or status in RETRYABLE_4XX:
            raise Retryable(reason, after_s=_retry_after(retry_after))
        raise Permanent(reason)


# --- the registry of kinds ------------------------------------------------------------

_KINDS: dict[str, ChannelFactory] = {
    "log": LogChannel.from_config,
    "webhook": WebhookChannel.from_config,
}


def register_kind(kind: str, factory: ChannelFactory) -> None:
    """Make a channel kind (``email``, ``sms``, ``chat``...) usable in data/notify.toml.

    Call it before the file is loaded (at import of the plug-in's module).
    """
    _KINDS[kind] = factory


def channel_kinds() -> Collection[str]:
    """The kinds a channel of data/notify.toml may name."""
    return frozenset(_KINDS)


def channel_secrets(settings: Settings | None = None) -> dict[str, str]:
    """The values ``secret_env`` names may point at: the process environment, plus
    ``TOWER_WEBHOOK_SECRET`` as the Settings read it (it may come from ``.env``)."""
    secrets = dict(os.environ)
    if settings is not None and settings.webhook_secret is not None:
        secrets[ENV_WEBHOOK_SECRET] = settings.webhook_secret.get_secret_value()
    return secrets


def build_channels(config: NotifyConfig, secrets: Mapping[str, str]) -> dict[str, Channel]:
    """One channel per configured channel, by name; a missing secret is a NotifyConfigError."""
    channels: dict[str, Channel] = {}
    for channel in config.channels:
        factory = _KINDS.get(channel.kind)
        if factory is None:
            raise NotifyConfigError(f"channel {channel.name!r}: unknown kind {channel.kind!r}")
        channels[channel.name] = factory(channel, secrets)
    return channels
