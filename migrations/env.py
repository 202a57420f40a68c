"""Alembic environment: plain SQL migrations run on the URL that `domain.database` resolves."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from domain.database import database_url, sqlalchemy_url
from domain.settings import Settings

config = context.config
url = config.get_main_option("sqlalchemy.url") or database_url(Settings())
engine = create_engine(sqlalchemy_url(url), poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
