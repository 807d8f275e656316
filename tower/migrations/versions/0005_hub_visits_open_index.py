"""hub visits: a partial index of the visits still open, by arrival time

The parcel_stuck rule scans for parcels still at a hub since before a cut-off
(``departed_at IS NULL AND arrived_at < :cutoff``). The index holds only the open
visits (the parcels at a hub now), so the scan reads those and nothing of the
departed history, on both dialects.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 22:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_hub_visits_open_arrived', 'hub_visits', ['arrived_at'], unique=False,
                    postgresql_where=sa.text('departed_at IS NULL'),
                    sqlite_where=sa.text('departed_at IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_hub_visits_open_arrived', table_name='hub_visits')
