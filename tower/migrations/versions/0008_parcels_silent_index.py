"""parcels: a partial index of the undelivered ones, by their last scan

The parcel_stuck rule also catches parcels that stopped being scanned anywhere (lost,
held at a delivery station, stuck between hubs): ``status <> 'delivered' AND
last_scan_at < :cutoff``. The index holds only undelivered parcels, so the scan reads
those and none of the delivered history.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 22:55:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_parcels_undelivered_scan', 'parcels', ['last_scan_at'], unique=False,
                    postgresql_where=sa.text("status <> 'delivered'"),
                    sqlite_where=sa.text("status <> 'delivered'"))


def downgrade() -> None:
    op.drop_index('ix_parcels_undelivered_scan', table_name='parcels')
