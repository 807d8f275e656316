"""funnel rollups and read indexes

The funnel read every order and every stage visit of its days (hundreds of
milliseconds at a million events). The projector now keeps small rollups instead:
orders per flow, stage and status; first entries into a stage and deliveries per
15-minute bucket; and the rare re-entries into a stage (rework), so that "orders that
entered the stage that day" stays an exact count of distinct orders in any time zone.
This migration creates them and fills them from the projections already there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

BUCKET_S = 900


def backfill_statements(dialect: str) -> list[str]:
    """SQL that fills the (empty) rollups from orders and stage_intervals."""
    def bucket(col: str) -> str:
        if dialect == "postgresql":
            return f"CAST(floor(extract(epoch FROM {col}) / {BUCKET_S}) AS BIGINT)"
        return f"(CAST(strftime('%s', {col}) AS INTEGER) / {BUCKET_S})"

    firsts = "(SELECT order_id, stage, min(seq) AS seq FROM stage_intervals GROUP BY order_id, stage)"
    return [
        "INSERT INTO order_stage_counts (flow, stage, status, shard, n) "
        "SELECT flow, stage, status, 0, count(*) FROM orders GROUP BY flow, stage, status",
        f"INSERT INTO delivery_counts (flow, bucket, shard, n) "
        f"SELECT flow, {bucket('delivered_at')}, 0, count(*) FROM orders "
        f"WHERE delivered_at IS NOT NULL GROUP BY flow, {bucket('delivered_at')}",
        f"INSERT INTO stage_entry_counts (flow, stage, bucket, shard, n) "
        f"SELECT v.flow, v.stage, {bucket('v.entered_at')}, 0, count(*) FROM stage_intervals v "
        f"JOIN {firsts} f ON v.order_id = f.order_id AND v.seq = f.seq "
        f"GROUP BY v.flow, v.stage, {bucket('v.entered_at')}",
        f"INSERT INTO stage_reentries (order_id, seq, flow, stage, entered_at, first_entered_at) "
        f"SELECT v.order_id, v.seq, v.flow, v.stage, v.entered_at, fv.entered_at FROM stage_intervals v "
        f"JOIN {firsts} f ON v.order_id = f.order_id AND v.stage = f.stage AND v.seq > f.seq "
        f"JOIN stage_intervals fv ON fv.order_id = f.order_id AND fv.seq = f.seq",
    ]


def upgrade() -> None:
    op.create_table('order_stage_counts',
    sa.Column('flow', sa.String(length=48), nullable=False),
    sa.Column('stage', sa.String(length=48), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('flow', 'stage', 'status', 'shard')
    )
    op.create_table('stage_entry_counts',
    sa.Column('flow', sa.String(length=48), nullable=False),
    sa.Column('stage', sa.String(length=48), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('flow', 'stage', 'bucket', 'shard')
    )
    op.create_table('stage_reentries',
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('flow', sa.String(length=48), nullable=False),
    sa.Column('stage', sa.String(length=48), nullable=False),
    sa.Column('entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_entered_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id', 'seq')
    )
    op.create_index('ix_stage_reentries_entered', 'stage_reentries', ['flow', 'entered_at'], unique=False)
    op.create_table('delivery_counts',
    sa.Column('flow', sa.String(length=48), nullable=False),
    sa.Column('bucket', sa.BigInteger(), nullable=False),
    sa.Column('shard', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('flow', 'bucket', 'shard')
    )
    for statement in backfill_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('delivery_counts')
    op.drop_index('ix_stage_reentries_entered', table_name='stage_reentries')
    op.drop_table('stage_reentries')
    op.drop_table('stage_entry_counts')
    op.drop_table('order_stage_counts')
