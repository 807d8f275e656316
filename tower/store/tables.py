"""SQLAlchemy 2.0 table models: the append-only event log and the projections."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; timestamptz on PostgreSQL, naive UTC text on SQLite."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON().with_variant(JSONB(), "postgresql")
ID = String(64)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class Event(Base):
    """The append-only event log: every accepted event, exactly once by event_id."""

    __tablename__ = "events"

    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    occurred_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(ID)
    order_id: Mapped[str | None] = mapped_column(ID)
    parcel_id: Mapped[str | None] = mapped_column(ID)
    payload: Mapped[dict[str, Any]] = mapped_column(Json)

    __table_args__ = (
        Index("ix_events_order_id", "order_id"),
        Index("ix_events_parcel_id", "parcel_id"),
    )


class HeldEvent(Base):
    """Events for an order that does not exist yet; applied when it appears."""

    __tablename__ = "held_events"

    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str] = mapped_column(ID, index=True)


class DeadLetterRow(Base):
    """Accepted events that could not be applied, with the reason (visible in the API)."""

    __tablename__ = "dead_letters"

    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    order_id: Mapped[str | None] = mapped_column(ID, index=True)
    reason: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime]


_FLAGGED = "status = 'in_progress' AND (late OR at_risk)"  # migration 0012


class Order(Base):
    """Current state of every order (projection)."""

    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    flow: Mapped[str] = mapped_column(String(48))
    stage: Mapped[str] = mapped_column(String(48))
    stage_seq: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    frozen: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[str] = mapped_column(String(8))
    custom: Mapped[bool] = mapped_column(Boolean)
    promised_at: Mapped[datetime]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    last_event_at: Mapped[datetime]
    late: Mapped[bool] = mapped_column(Boolean)
    at_risk: Mapped[bool] = mapped_column(Boolean)
    customer_id: Mapped[str | None] = mapped_column(ID)
    channel: Mapped[str | None] = mapped_column(String(256))
    city: Mapped[str | None] = mapped_column(String(256))
    checkpoint: Mapped[dict[str, Any]] = mapped_column(Json)

    __table_args__ = (
        Index("ix_orders_flow_stage_status", "flow", "stage", "status"),
        Index("ix_orders_last_event_at", "last_event_at"),
        Index("ix_orders_promised_at", "promised_at"),
        Index("ix_orders_customer_id", "customer_id"),  # the order list's filters (migration 0007)
        Index("ix_orders_delivered_at", "delivered_at"),  # the screens' reads (migration 0009)
        Index("ix_orders_in_progress", "promised_at", postgresql_include=["late", "at_risk"],
              postgresql_where=text("status = 'in_progress'"), sqlite_where=text("status = 'in_progress'")),
        Index("ix_orders_in_progress_flagged", "promised_at", postgresql_include=["late", "at_risk"],  # 0012
              postgresql_where=text(_FLAGGED), sqlite_where=text(_FLAGGED)),
        Index("ix_orders_delivered_today", "delivered_at", postgresql_include=["promised_at"],  # 0012
              postgresql_where=text("status = 'delivered'"), sqlite_where=text("status = 'delivered'")),
        Index("ix_orders_parcels", text("(checkpoint -> 'parcels')"),
              postgresql_using="gin").ddl_if(dialect="postgresql"),
    )


class StageInterval(Base):
    """One stay of an order in a stage (projection): waiting and work times."""

    __tablename__ = "stage_intervals"

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow: Mapped[str] = mapped_column(String(48))
    stage: Mapped[str] = mapped_column(String(48))
    entered_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_stage_intervals_entered", "entered_at", "flow", "stage"),
    )


class Parcel(Base):
    """Where every parcel is (projection) and the checkpoint of its hub fold."""

    __tablename__ = "parcels"

    parcel_id: Mapped[str] = mapped_column(ID, primary_key=True)
    carrier: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(32))
    hub_id: Mapped[str | None] = mapped_column(ID, index=True)
    last_scan_at: Mapped[datetime]
    checkpoint: Mapped[dict[str, Any]] = mapped_column(Json)

    __table_args__ = (
        # Undelivered parcels by their last scan: the parcel_stuck scan (migration 0008).
        Index("ix_parcels_undelivered_scan", "last_scan_at",
              postgresql_where=text("status <> 'delivered'"), sqlite_where=text("status <> 'delivered'")),
    )


class HubVisitRow(Base):
    """A parcel's stay at a hub; the hub x hour rollup is read from these."""

    __tablename__ = "hub_visits"

    parcel_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    hub_id: Mapped[str] = mapped_column(ID)
    arrived_at: Mapped[datetime]
    departed_at: Mapped[datetime | None]
    # Epoch hours and dwell seconds, so buckets and limits read the same on every dialect.
    arrived_hour: Mapped[int] = mapped_column(BigInteger)
    departed_hour: Mapped[int | None] = mapped_column(BigInteger)
    dwell_s: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        # On PostgreSQL it also carries what the retention needs (index-only rollup).
        Index("ix_hub_visits_arrived", "arrived_hour", "hub_id",
              postgresql_include=["dwell_s", "departed_at", "arrived_at"]),
        Index("ix_hub_visits_departed", "departed_hour", "hub_id"),
        Index("ix_hub_visits_open", "hub_id", "departed_at"),
        # Only the parcels at a hub now, by arrival: the parcel_stuck scan (migration 0005).
        Index("ix_hub_visits_open_arrived", "arrived_at",
              postgresql_where=text("departed_at IS NULL"), sqlite_where=text("departed_at IS NULL")),
        Index("ix_hub_visits_open_hub", "hub_id", "arrived_at",  # the load of each hub (migration 0012)
              postgresql_where=text("departed_at IS NULL"), sqlite_where=text("departed_at IS NULL")),
    )


class StockLevelRow(Base):
    """Latest stock level per warehouse and SKU (latest occurred_at wins)."""

    __tablename__ = "stock_levels"

    warehouse_id: Mapped[str] = mapped_column(ID, primary_key=True)
    sku: Mapped[str] = mapped_column(ID, primary_key=True)
    on_hand: Mapped[int] = mapped_column(BigInteger)
    as_of: Mapped[datetime]
    event_id: Mapped[str] = mapped_column(ID)


# --- rollups the funnel reads, kept by the projector ------------------------------------
#
# Counts are split over a few shards (one per writing session, see the projector) so
# that two workers never wait on the same counter row; a figure is the sum over shards.
# Time buckets are 15 minutes of UTC (epoch seconds // 900): a local day in any time
# zone is a whole number of them.

BUCKET_S = 900


class OrderStageCount(Base):
    """How many orders of a flow are in each stage and status."""

    __tablename__ = "order_stage_counts"

    flow: Mapped[str] = mapped_column(String(48), primary_key=True)
    stage: Mapped[str] = mapped_column(String(48), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class StageEntryCount(Base):
    """Orders entering a stage of their flow for the first time, per 15-minute bucket."""

    __tablename__ = "stage_entry_counts"

    flow: Mapped[str] = mapped_column(String(48), primary_key=True)
    stage: Mapped[str] = mapped_column(String(48), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


class StageReentry(Base):
    """A stay in a stage the order had been in before (rework), with its first entry."""

    __tablename__ = "stage_reentries"

    order_id: Mapped[str] = mapped_column(ID, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    flow: Mapped[str] = mapped_column(String(48))
    stage: Mapped[str] = mapped_column(String(48))
    entered_at: Mapped[datetime]
    first_entered_at: Mapped[datetime]

    __table_args__ = (Index("ix_stage_reentries_entered", "flow", "entered_at"),)


class DeliveryCount(Base):
    """Orders of a flow delivered, per 15-minute bucket of their delivery time."""

    __tablename__ = "delivery_counts"

    flow: Mapped[str] = mapped_column(String(48), primary_key=True)
    bucket: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)


# --- exceptions, rule hold-downs and the notification outbox (not projections: kept
# across `tower projections rebuild`; see docs/adr/0004-exceptions-and-outbox.md) ------

# Autoincrementing 64-bit key (SQLite only autoincrements INTEGER PRIMARY KEY).
SERIAL = BigInteger().with_variant(Integer(), "sqlite")


class ExceptionRow(Base):
    """One exception: a rule that fired (or one raised by hand) and its lifecycle.

    ``open_key`` is ``rule|scope_key`` while the exception is open (any status but
    resolved, closed or cancelled) and NULL afterwards: its unique index is what keeps
    one open exception per (rule, scope) on both dialects (NULLs never collide).
    """

    __tablename__ = "exceptions"

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    rule: Mapped[str] = mapped_column(String(48))
    scope_key: Mapped[str] = mapped_column(String(200))
    open_key: Mapped[str | None] = mapped_column(String(260), unique=True)
    order_id: Mapped[str | None] = mapped_column(ID)
    parcel_id: Mapped[str | None] = mapped_column(ID)
    hub_id: Mapped[str | None] = mapped_column(ID)
    flow: Mapped[str | None] = mapped_column(String(48))
    stage: Mapped[str | None] = mapped_column(String(48))
    tier: Mapped[str] = mapped_column(String(2))           # L1 | L2 | L3
    status: Mapped[str] = mapped_column(String(16))        # see tower.exceptions.lifecycle
    team: Mapped[str] = mapped_column(String(48))
    high_priority: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(Json)
    count: Mapped[int] = mapped_column(Integer, default=1)
    condition_since: Mapped[datetime]                       # event time the condition began
    opened_at: Mapped[datetime]                             # tower-clock time it was raised
    last_seen_at: Mapped[datetime]
    respond_by: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    snoozed_until: Mapped[datetime | None]
    assignee: Mapped[str | None] = mapped_column(String(128))
    handling_step: Mapped[str | None] = mapped_column(Text)
    next_update_at: Mapped[datetime | None]
    root_cause: Mapped[dict[str, Any] | None] = mapped_column(Json)
    parent_id: Mapped[str | None] = mapped_column(ID)       # grouped under (inhibition)
    raised_by: Mapped[str] = mapped_column(String(128))     # "system" or a user
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_exceptions_status_tier", "status", "tier"),
        Index("ix_exceptions_order", "order_id"),
        Index("ix_exceptions_hub", "hub_id"),
        Index("ix_exceptions_parent", "parent_id"),
        Index("ix_exceptions_respond_by", "respond_by"),
        Index("ix_exceptions_opened", "opened_at"), Index("ix_exceptions_resolved_at", "resolved_at"),  # 0009
        Index("ix_exceptions_open_respond_by", "respond_by", "id",  # open ones by deadline (0010)
              postgresql_where=text("open_key IS NOT NULL"), sqlite_where=text("open_key IS NOT NULL")),
        # Only the open ones, by rule: each scan's reconcile (migration 0006).
        Index("ix_exceptions_open_rule", "rule", "scope_key",
              postgresql_where=text("open_key IS NOT NULL"), sqlite_where=text("open_key IS NOT NULL")),
    )


class ExceptionEntry(Base):
    """One line of an exception's timeline: who did what, when, with a note."""

    __tablename__ = "exception_timeline"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    exception_id: Mapped[str] = mapped_column(ID, index=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(Json)


class RulePending(Base):
    """A condition seen but still in its hold-down (``for``), per rule and scope."""

    __tablename__ = "rule_pending"

    rule: Mapped[str] = mapped_column(String(48), primary_key=True)
    scope_key: Mapped[str] = mapped_column(String(200), primary_key=True)
    since: Mapped[datetime]                                 # event time the condition began
    last_seen_at: Mapped[datetime]
    data: Mapped[dict[str, Any]] = mapped_column(Json)


class OutboxRow(Base):
    """A notification written in the same transaction as what caused it.

    ``dedupe_key`` (e.g. ``milestone:O-1:shipped``) makes "once per order and
    milestone" a constraint; ``event_id`` is what receivers dedupe on.
    """

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ID, unique=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(260), unique=True)
    topic: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime]
    routed: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (Index("ix_outbox_routed", "routed", "id"),)


class DeliveryRow(Base):
    """One outbox notification on one channel: its attempts and outcome."""

    __tablename__ = "notification_deliveries"

    id: Mapped[int] = mapped_column(SERIAL, primary_key=True, autoincrement=True)
    outbox_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16))         # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("outbox_id", "channel", name="uq_delivery_outbox_channel"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )


class ReadSummary(Base):
    """A slowly changing figure of a screen, computed by a scheduled job (migration 0011):
    one row per window (``stages:<period s>``, ``month:<YYYY-MM>``), see
    :mod:`tower.store.summaries`."""

    __tablename__ = "read_summaries"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    since: Mapped[datetime]
    until: Mapped[datetime]
    computed_at: Mapped[datetime]
    seconds: Mapped[float] = mapped_column(Float)
    body: Mapped[dict[str, Any]] = mapped_column(Json)


metadata = Base.metadata
PROJECTION_TABLES = (
    "held_events",
    "dead_letters",
    "orders",
    "stage_intervals",
    "parcels",
    "hub_visits",
    "stock_levels",
    "order_stage_counts",
    "stage_entry_counts",
    "stage_reentries",
    "delivery_counts",
    "read_summaries",
)
