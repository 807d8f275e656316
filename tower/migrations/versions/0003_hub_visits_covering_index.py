"""hub visits: ix_hub_visits_arrived covers the hub rollup (PostgreSQL)

The 24-hour hub x hour rollup groups a day of hub visits by arrival hour and hub and
counts the retained ones from their dwell, departure and arrival times. With those
columns in the index (INCLUDE), PostgreSQL answers it from an index-only scan in index
order. SQLite has no INCLUDE; its index stays as it was.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 21:20:00
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_hub_visits_arrived', table_name='hub_visits')
    op.create_index('ix_hub_visits_arrived', 'hub_visits', ['arrived_hour', 'hub_id'], unique=False,
                    postgresql_include=['dwell_s', 'departed_at', 'arrived_at'])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index('ix_hub_visits_arrived', table_name='hub_visits')
    op.create_index('ix_hub_visits_arrived', 'hub_visits', ['arrived_hour', 'hub_id'], unique=False)
