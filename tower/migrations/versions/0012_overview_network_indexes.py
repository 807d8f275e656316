"""orders, hub_visits: partial indexes of the overview's and the network page's refreshes

At 100,000 orders (89,000 in progress) and 24,000 parcels at hubs (benchmarks/ui.py):

* ``ix_orders_in_progress_flagged``: the in-progress orders flagged late or at risk, by
  promise, carrying both flags: late / at-risk counts read the flagged ones only (19,000
  in the surge) instead of every order in progress (the in-flight count itself comes from
  the ``order_stage_counts`` rollup);
* ``ix_orders_delivered_today``: the delivered orders by delivery time carrying the
  promise: today's deliveries and how many were on time, index-only (was a bitmap AND of
  ``ix_orders_delivered_at`` and every delivered order, then the heap);
* ``ix_hub_visits_open_hub``: the parcels at a hub now, by hub then arrival: the load of
  each hub (count, past the dwell limit, oldest arrival) is an index-only grouped scan.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-26 23:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_FLAGGED = "status = 'in_progress' AND (late OR at_risk)"
_DELIVERED = "status = 'delivered'"
_OPEN = "departed_at IS NULL"


def upgrade() -> None:
    op.create_index('ix_orders_in_progress_flagged', 'orders', ['promised_at'], unique=False,
                    postgresql_include=['late', 'at_risk'],
                    postgresql_where=sa.text(_FLAGGED), sqlite_where=sa.text(_FLAGGED))
    op.create_index('ix_orders_delivered_today', 'orders', ['delivered_at'], unique=False,
                    postgresql_include=['promised_at'],
                    postgresql_where=sa.text(_DELIVERED), sqlite_where=sa.text(_DELIVERED))
    op.create_index('ix_hub_visits_open_hub', 'hub_visits', ['hub_id', 'arrived_at'], unique=False,
                    postgresql_where=sa.text(_OPEN), sqlite_where=sa.text(_OPEN))


def downgrade() -> None:
    op.drop_index('ix_hub_visits_open_hub', table_name='hub_visits')
    op.drop_index('ix_orders_delivered_today', table_name='orders')
    op.drop_index('ix_orders_in_progress_flagged', table_name='orders')
