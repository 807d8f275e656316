"""orders: indexes of the order list's filters (customer, hub)

The order screen filters on ``customer_id``, and on a hub: orders holding a parcel
that is or was at the hub. The parcels of an order are the keys of
``checkpoint -> 'parcels'``; on PostgreSQL a GIN index on that expression answers
``?|`` ("holds any of these parcels") from the index. SQLite has no such index and
reads each order's parcels (it is the small, embedded set-up).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_orders_customer_id', 'orders', ['customer_id'], unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.create_index('ix_orders_parcels', 'orders', [sa.text("(checkpoint -> 'parcels')")],
                        unique=False, postgresql_using='gin')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_orders_parcels', table_name='orders')
    op.drop_index('ix_orders_customer_id', table_name='orders')
