"""The store adapter: SQLAlchemy tables, engine, projector writes and read queries."""
