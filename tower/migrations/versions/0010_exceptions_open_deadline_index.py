"""exceptions: the open ones by response deadline (the overview's most urgent deadline)

"The open exception whose response is due first" walked ``ix_exceptions_respond_by``
through every resolved exception with an earlier deadline (all of history) before it
found an open one: 20-30 ms at 20,000 resolved exceptions, growing with time. This
partial index holds only the open ones (``open_key IS NOT NULL``, see
``ExceptionRow``), in the order the query reads them.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25 23:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_exceptions_open_respond_by', 'exceptions', ['respond_by', 'id'], unique=False,
                    postgresql_where=sa.text("open_key IS NOT NULL"),
                    sqlite_where=sa.text("open_key IS NOT NULL"))


def downgrade() -> None:
    op.drop_index('ix_exceptions_open_respond_by', table_name='exceptions')
