"""exceptions: a partial index of the open ones, by rule

Every scan of a rule reconciles what holds now with the rule's open exceptions
(``rule = :rule AND open_key IS NOT NULL``). The index holds only open exceptions, so
that read stays small however long the history of resolved ones grows.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 23:25:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_exceptions_open_rule', 'exceptions', ['rule', 'scope_key'], unique=False,
                    postgresql_where=sa.text('open_key IS NOT NULL'),
                    sqlite_where=sa.text('open_key IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_exceptions_open_rule', table_name='exceptions')
