"""Alembic owns the schema from the first table: every migration goes up and comes back down."""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect

from dispatcher.store.engine import alembic_config, get_engine, migrate
from dispatcher.store.schema import metadata


def test_migrations_go_down_and_up_again(db_url: str) -> None:
    config = alembic_config(db_url)
    with get_engine(db_url).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert not inspect(get_engine(db_url)).has_table("deliveries")

    migrate(db_url)

    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert set(metadata.tables) <= tables
    columns = {c["name"] for c in inspect(get_engine(db_url)).get_columns("deliveries")}
    assert set(metadata.tables["deliveries"].columns.keys()) == columns
