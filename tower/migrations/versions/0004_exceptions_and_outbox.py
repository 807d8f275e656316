"""exceptions, their timeline, rule hold-downs and the notification outbox

Not projections: `tower projections rebuild` leaves them alone. See
docs/adr/0004-exceptions-and-outbox.md.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 22:10:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('exception_timeline',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('exception_id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_exception_timeline_exception_id'), 'exception_timeline', ['exception_id'], unique=False)
    op.create_table('exceptions',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('rule', sa.String(length=48), nullable=False),
    sa.Column('scope_key', sa.String(length=200), nullable=False),
    sa.Column('open_key', sa.String(length=260), nullable=True),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('parcel_id', sa.String(length=64), nullable=True),
    sa.Column('hub_id', sa.String(length=64), nullable=True),
    sa.Column('flow', sa.String(length=48), nullable=True),
    sa.Column('stage', sa.String(length=48), nullable=True),
    sa.Column('tier', sa.String(length=2), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('team', sa.String(length=48), nullable=False),
    sa.Column('high_priority', sa.Boolean(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('detail', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('condition_since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('respond_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('snoozed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('assignee', sa.String(length=128), nullable=True),
    sa.Column('handling_step', sa.Text(), nullable=True),
    sa.Column('next_update_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('root_cause', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('parent_id', sa.String(length=64), nullable=True),
    sa.Column('raised_by', sa.String(length=128), nullable=False),
    sa.Column('escalations', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_key')
    )
    op.create_index('ix_exceptions_hub', 'exceptions', ['hub_id'], unique=False)
    op.create_index('ix_exceptions_opened', 'exceptions', ['opened_at'], unique=False)
    op.create_index('ix_exceptions_order', 'exceptions', ['order_id'], unique=False)
    op.create_index('ix_exceptions_parent', 'exceptions', ['parent_id'], unique=False)
    op.create_index('ix_exceptions_respond_by', 'exceptions', ['respond_by'], unique=False)
    op.create_index('ix_exceptions_status_tier', 'exceptions', ['status', 'tier'], unique=False)
    op.create_table('notification_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('outbox_id', sa.BigInteger(), nullable=False),
    sa.Column('channel', sa.String(length=48), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('outbox_id', 'channel', name='uq_delivery_outbox_channel')
    )
    op.create_index('ix_deliveries_due', 'notification_deliveries', ['status', 'next_attempt_at'], unique=False)
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('dedupe_key', sa.String(length=260), nullable=True),
    sa.Column('topic', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('routed', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key'),
    sa.UniqueConstraint('event_id')
    )
    op.create_index('ix_outbox_routed', 'outbox', ['routed', 'id'], unique=False)
    op.create_table('rule_pending',
    sa.Column('rule', sa.String(length=48), nullable=False),
    sa.Column('scope_key', sa.String(length=200), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('rule', 'scope_key')
    )


def downgrade() -> None:
    op.drop_table('rule_pending')
    op.drop_index('ix_outbox_routed', table_name='outbox')
    op.drop_table('outbox')
    op.drop_index('ix_deliveries_due', table_name='notification_deliveries')
    op.drop_table('notification_deliveries')
    op.drop_index('ix_exceptions_status_tier', table_name='exceptions')
    op.drop_index('ix_exceptions_respond_by', table_name='exceptions')
    op.drop_index('ix_exceptions_parent', table_name='exceptions')
    op.drop_index('ix_exceptions_order', table_name='exceptions')
    op.drop_index('ix_exceptions_opened', table_name='exceptions')
    op.drop_index('ix_exceptions_hub', table_name='exceptions')
    op.drop_table('exceptions')
    op.drop_index(op.f('ix_exception_timeline_exception_id'), table_name='exception_timeline')
    op.drop_table('exception_timeline')
