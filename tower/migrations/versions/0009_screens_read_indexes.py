"""orders and exceptions: indexes of the screens' refresh reads (benchmarks/ui.py)

At 100,000 orders / 1,000,000 events three reads of the overview and insights
refreshes scanned a whole table:

* ``ix_orders_delivered_at``: deliveries of today (overview: on-time share) and of the
  month (insights: carrier scorecard) by ``delivered_at``;
* ``ix_orders_in_progress``: the orders in flight with late / at risk (overview KPIs):
  a partial index of the in-progress orders carrying what the count reads, so the count
  is an index-only scan of those orders and none of the finished ones (PostgreSQL; on
  SQLite a plain partial index);
* ``ix_exceptions_resolved_at``: the exceptions resolved in a month (insights: Pareto of
  causes, supplier and carrier scorecards).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25 23:05:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_orders_delivered_at', 'orders', ['delivered_at'], unique=False)
    op.create_index('ix_orders_in_progress', 'orders', ['promised_at'], unique=False,
                    postgresql_include=['late', 'at_risk'],
                    postgresql_where=sa.text("status = 'in_progress'"),
                    sqlite_where=sa.text("status = 'in_progress'"))
    op.create_index('ix_exceptions_resolved_at', 'exceptions', ['resolved_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_exceptions_resolved_at', table_name='exceptions')
    op.drop_index('ix_orders_in_progress', table_name='orders')
    op.drop_index('ix_orders_delivered_at', table_name='orders')
