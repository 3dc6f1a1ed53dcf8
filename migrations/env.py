"""Alembic environment: async engine, URL from Switchboard settings (or -x url=...)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from switchboard.db import make_engine
from switchboard.model_registry import metadata
from switchboard.settings import get_settings, normalise_database_url

config = context.config


def _url() -> str:
    override = context.get_x_argument(as_dictionary=True).get("url") or config.attributes.get("url")
    return normalise_database_url(override) if override else get_settings().resolved_database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = _url()
    if url.startswith("sqlite"):
        from pathlib import Path

        Path(url.split("///", 1)[1]).parent.mkdir(parents=True, exist_ok=True)
    schema = config.attributes.get("schema") or get_settings().database_schema
    engine = make_engine(url, schema=schema if not url.startswith("sqlite") else None)
    async with engine.connect() as connection:
        await connection.run_sync(_configure)
        await connection.commit()
    await engine.dispose()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
    else:
        asyncio.run(_run_async())
