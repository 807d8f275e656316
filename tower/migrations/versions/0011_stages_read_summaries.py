"""read_summaries: the stage-duration and monthly figures of /stages and /insights

The stage duration distributions of a 7-day window (225,000 completed visits at
100,000 orders) and of a month cost 0.5-0.9 s to compute: an exact quantile over a
moving window is one sort of every visit, which no index helps. They change slowly,
so the scheduled job ``summaries.refresh`` (``tower/store/summaries.py``) computes
them once a minute into one row per window, and the pages read that row (ADR 0005).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-26 23:15:00
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'read_summaries',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('since', sa.DateTime(timezone=True), nullable=False),
        sa.Column('until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('seconds', sa.Float(), nullable=False),
        sa.Column('body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'),
                  nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('read_summaries')
