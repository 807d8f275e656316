"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-25 18:53:49.341151
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('dead_letters',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index(op.f('ix_dead_letters_order_id'), 'dead_letters', ['order_id'], unique=False)
    op.create_table('events',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=True),
    sa.Column('parcel_id', sa.String(length=64), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index('ix_events_order_id', 'events', ['order_id'], unique=False)
    op.create_index('ix_events_parcel_id', 'events', ['parcel_id'], unique=False)
    op.create_table('held_events',
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index(op.f('ix_held_events_order_id'), 'held_events', ['order_id'], unique=False)
    op.create_table('hub_visits',
    sa.Column('parcel_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('hub_id', sa.String(length=64), nullable=False),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('departed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrived_hour', sa.BigInteger(), nullable=False),
    sa.Column('departed_hour', sa.BigInteger(), nullable=True),
    sa.Column('dwell_s', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('parcel_id', 'seq')
    )
    op.create_index('ix_hub_visits_arrived', 'hub_visits', ['arrived_hour', 'hub_id'], unique=False)
    op.create_index('ix_hub_visits_departed', 'hub_visits', ['departed_hour', 'hub_id'], unique=False)
    op.create_index('ix_hub_visits_open', 'hub_visits', ['hub_id', 'departed_at'], unique=False)
    op.create_table('orders',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('flow', sa.String(length=48), nullable=False),
    sa.Column('stage', sa.String(length=48), nullable=False),
    sa.Column('stage_seq', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('frozen', sa.Boolean(), nullable=False),
    sa.Column('priority', sa.String(length=8), nullable=False),
    sa.Column('custom', sa.Boolean(), nullable=False),
    sa.Column('promised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('late', sa.Boolean(), nullable=False),
    sa.Column('at_risk', sa.Boolean(), nullable=False),
    sa.Column('customer_id', sa.String(length=64), nullable=True),
    sa.Column('channel', sa.String(length=256), nullable=True),
    sa.Column('city', sa.String(length=256), nullable=True),
    sa.Column('checkpoint', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_index('ix_orders_flow_stage_status', 'orders', ['flow', 'stage', 'status'], unique=False)
    op.create_index('ix_orders_last_event_at', 'orders', ['last_event_at'], unique=False)
    op.create_index('ix_orders_promised_at', 'orders', ['promised_at'], unique=False)
    op.create_table('parcels',
    sa.Column('parcel_id', sa.String(length=64), nullable=False),
    sa.Column('carrier', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('hub_id', sa.String(length=64), nullable=True),
    sa.Column('last_scan_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('checkpoint', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('parcel_id')
    )
    op.create_index(op.f('ix_parcels_hub_id'), 'parcels', ['hub_id'], unique=False)
    op.create_table('stage_intervals',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('flow', sa.String(length=48), nullable=False),
    sa.Column('stage', sa.String(length=48), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('order_id', 'seq')
    )
    op.create_index('ix_stage_intervals_entered', 'stage_intervals', ['entered_at', 'flow', 'stage'], unique=False)
    op.create_table('stock_levels',
    sa.Column('warehouse_id', sa.String(length=64), nullable=False),
    sa.Column('sku', sa.String(length=64), nullable=False),
    sa.Column('on_hand', sa.BigInteger(), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('warehouse_id', 'sku')
    )



def downgrade() -> None:

    op.drop_table('stock_levels')
    op.drop_index('ix_stage_intervals_entered', table_name='stage_intervals')
    op.drop_table('stage_intervals')
    op.drop_index(op.f('ix_parcels_hub_id'), table_name='parcels')
    op.drop_table('parcels')
    op.drop_index('ix_orders_promised_at', table_name='orders')
    op.drop_index('ix_orders_last_event_at', table_name='orders')
    op.drop_index('ix_orders_flow_stage_status', table_name='orders')
    op.drop_table('orders')
    op.drop_index('ix_hub_visits_open', table_name='hub_visits')
    op.drop_index('ix_hub_visits_departed', table_name='hub_visits')
    op.drop_index('ix_hub_visits_arrived', table_name='hub_visits')
    op.drop_table('hub_visits')
    op.drop_index(op.f('ix_held_events_order_id'), table_name='held_events')
    op.drop_table('held_events')
    op.drop_index('ix_events_parcel_id', table_name='events')
    op.drop_index('ix_events_order_id', table_name='events')
    op.drop_table('events')
    op.drop_index(op.f('ix_dead_letters_order_id'), table_name='dead_letters')
    op.drop_table('dead_letters')

