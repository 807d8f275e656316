"""The dispatcher: fans outbox rows out to their channels and sends them, with retries.

Two steps, each its own short transaction:

* :meth:`Dispatcher.route` gives every un-routed outbox row one ``pending`` delivery
  per channel whose topics match, and marks the row routed. The unique
  (outbox_id, channel) makes a second routing of the same row a no-op.
* :meth:`Dispatcher.send_due` sends the deliveries that are due, one transaction per
  delivery: the row is claimed, sent, then marked ``sent`` (after a 2xx), rescheduled
  with exponential backoff (``Retryable``) or marked ``dead`` (``Permanent``, or the
  last of ``max_attempts``). On PostgreSQL the claim is ``SELECT ... FOR UPDATE SKIP
  LOCKED``, held while sending: two workers never send the same delivery, and a worker
  that dies releases its row with its connection. On SQLite one process sends.

A delivery is marked sent only after the receiver took it, so none is lost; a crash
between the receiver's answer and the commit sends it once more with the same
``event_id``, which receivers dedupe on (at-least-once delivery, exactly-once effect).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import Connection, Engine, Table, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from tower.clock import Clock
from tower.notify.channels import Channel, Message, Permanent, Retryable, build_channels, channel_secrets
from tower.notify.config import ChannelConfig, NotifyConfig
from tower.store.tables import DeliveryRow, OutboxRow

log = logging.getLogger(__name__)

OUTBOX = cast(Table, OutboxRow.__table__)
DELIVERIES = cast(Table, DeliveryRow.__table__)

PENDING = "pending"
SENT = "sent"
DEAD = "dead"
ERROR_CHARS = 1000  # of last_error kept


@dataclass(slots=True)
class SendReport:
    """What one :meth:`Dispatcher.send_due` did."""

    sent: int = 0
    retried: int = 0
    dead: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.dead


def backoff_s(policy: ChannelConfig, *, delivery_id: int, attempt: int,
              after_s: float | None = None) -> float:
    """Delay before the next try after failed try number ``attempt`` (1-based).

    ``base * 2^(attempt-1)``, capped, less a jitter share that is a hash of
    (delivery, attempt): spread out, so many deliveries failing together do not
    retry together, yet the same on every run (no global random state). A
    receiver's Retry-After lengthens it, up to the cap.
    """
    delay = min(policy.backoff_cap_s, policy.backoff_base_s * 2.0 ** (attempt - 1))
    spread = zlib.crc32(f"{delivery_id}:{attempt}".encode()) / 2**32
    delay *= 1.0 - policy.jitter * spread
    if after_s is not None:
        delay = max(delay, min(after_s, policy.backoff_cap_s))
    return delay


def _insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str]) -> None:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    conn.execute(dialect.insert(table).on_conflict_do_nothing(index_elements=keys), rows)


class Dispatcher:
    """Routes the outbox and sends its deliveries (see the module doc).

    ``clock`` stamps deliveries (due times, sent times); the worker passes the wall
    clock, since backoff is about a real receiver recovering. ``channels`` defaults
    to those the config builds with secrets from the environment.
    """

    def __init__(self, engine: Engine, config: NotifyConfig, clock: Clock, *,
                 channels: Mapping[str, Channel] | None = None) -> None:
        self.engine = engine
        self.config = config
        self.clock = clock
        self.channels = dict(channels) if channels is not None else build_channels(config, channel_secrets())
        unknown = sorted(set(self.channels) - set(config.by_name))
        if unknown:
            raise ValueError(f"channel {unknown[0]!r} is not in the notification config")
        self._pg = engine.dialect.name == "postgresql"

    # --- routing ------------------------------------------------------------------

    def route(self, limit: int | None = None) -> int:
        """Fan up to ``limit`` un-routed outbox rows out to deliveries; returns rows routed."""
        limit = limit or self.config.batch
        subscribers = [c for c in self.config.channels if c.name in self.channels]
        with self.engine.begin() as conn:
            stmt = (select(OUTBOX.c.id, OUTBOX.c.topic).where(OUTBOX.c.routed.is_(False))
                    .order_by(OUTBOX.c.id).limit(limit))
            if self._pg:
                stmt = stmt.with_for_update(skip_locked=True)
            rows = conn.execute(stmt).all()
            if not rows:
                return 0
            now = self.clock.now()
            deliveries = [
                {"outbox_id": row.id, "channel": channel.name, "status": PENDING, "attempts": 0,
                 "next_attempt_at": now, "last_error": None, "sent_at": None}
                for row in rows for channel in subscribers if channel.subscribes(row.topic)
            ]
            if deliveries:
                _insert_ignore(conn, DELIVERIES, deliveries, ["outbox_id", "channel"])
            conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_([r.id for r in rows])).values(routed=True))
        return len(rows)

    def route_all(self) -> int:
        """Route until no un-routed row is left; returns rows routed."""
        total = 0
        while (n := self.route()) > 0:
            total += n
        return total

    # --- sending ------------------------------------------------------------------

    def send_due(self, limit: int | None = None) -> SendReport:
        """Send up to ``limit`` due deliveries per channel.

        A channel whose receiver fails (Retryable) is left for this round after that
        one failure, so a receiver that is down costs one timeout per round, not one
        per waiting notification, and the other channels still get their turn.
        """
        limit = limit or self.config.batch
        report = SendReport()
        for name, channel in self.channels.items():
            for _ in range(limit):
                outcome = self._send_one(name, channel, report)
                if outcome is None or outcome == "retry":
                    break
        return report

    def run_once(self) -> SendReport:
        """The scheduled job: route everything new, then send what is due."""
        self.route_all()
        return self.send_due()

    def _send_one(self, name: str, channel: Channel, report: SendReport) -> str | None:
        policy = self.config.by_name[name]
        d, o = DELIVERIES, OUTBOX
        with self.engine.begin() as conn:
            stmt = (
                select(d.c.id, d.c.attempts, o.c.event_id, o.c.topic, o.c.payload, o.c.created_at)
                .join_from(d, o, o.c.id == d.c.outbox_id)
                .where(d.c.channel == name, d.c.status == PENDING, d.c.next_attempt_at <= self.clock.now())
                .order_by(d.c.next_attempt_at, d.c.id)
                .limit(1)
            )
            if self._pg:
                stmt = stmt.with_for_update(skip_locked=True, of=d)
            row = conn.execute(stmt).first()
            if row is None:
                return None
            attempt = row.attempts + 1
            message = Message(event_id=row.event_id, topic=row.topic, created_at=row.created_at,
                              payload=row.payload, attempt=attempt)
            values: dict[str, Any] = {"attempts": attempt}
            outcome: str
            try:
                channel.send(message)
            except Permanent as exc:
                outcome, values["status"], values["last_error"] = DEAD, DEAD, str(exc)[:ERROR_CHARS]
            except Retryable as exc:
                outcome, error, after_s = "retry", str(exc), exc.after_s
            except Exception as exc:
                # A broken plug-in channel must not lose the notification: retry it.
                log.exception("channel %s failed on %s", name, row.event_id)
                outcome, error, after_s = "retry", f"{type(exc).__name__}: {exc}", None
            else:
                outcome, values["status"], values["sent_at"] = SENT, SENT, self.clock.now()
                values["last_error"] = None
            if outcome == "retry":
                values["last_error"] = error[:ERROR_CHARS]
                if attempt >= policy.max_attempts:
                    outcome = values["status"] = DEAD
                else:
                    delay = backoff_s(policy, delivery_id=row.id, attempt=attempt, after_s=after_s)
                    values["next_attempt_at"] = self.clock.now() + timedelta(seconds=delay)
            conn.execute(update(d).where(d.c.id == row.id).values(**values))
        if outcome == SENT:
            report.sent += 1
        elif outcome == DEAD:
            report.dead += 1
            log.warning("notification %s (%s) on channel %s is dead after %d attempt(s): %s",
                        row.event_id, row.topic, name, attempt, values["last_error"])
        else:
            report.retried += 1
            log.info("notification %s on channel %s failed (attempt %d), next at %s: %s",
                     row.event_id, name, attempt, values["next_attempt_at"].isoformat(),
                     values["last_error"])
        return outcome

    # --- reading --------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """The latest dead deliveries with their notification and last error."""
        d, o = DELIVERIES, OUTBOX
        stmt = (select(d.c.id, d.c.channel, d.c.attempts, d.c.last_error, o.c.event_id, o.c.topic,
                       o.c.created_at)
                .join_from(d, o, o.c.id == d.c.outbox_id).where(d.c.status == DEAD)
                .order_by(d.c.id.desc()).limit(limit))
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]


def status_counts(engine: Engine) -> dict[str, int]:
    """Deliveries per status (pending, sent, dead)."""
    with engine.connect() as conn:
        rows = conn.execute(select(DELIVERIES.c.status, func.count()).group_by(DELIVERIES.c.status))
        return {status: int(n) for status, n in rows}

