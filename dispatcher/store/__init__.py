"""The store: SQLAlchemy 2 tables, the engine, and the queries the rest of the core needs."""
