"""Alembic environment: runs migrations on the async engine given by the caller or DATABASE_URL."""

import asyncio
import os

import sqlmodel  # noqa: F401  (revision scripts use sqlmodel types)
from alembic import context
from sqlalchemy.ext.asyncio import create_async_engine

from storage import models  # noqa: F401  (registers the tables)
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get("DATABASE_URL", "")


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


async def run_online() -> None:
    engine = create_async_engine(_url())
    async with engine.begin() as conn:
        await conn.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    run_offline()
elif config.attributes.get("connection") is not None:
    # storage.migrate.upgrade hands us a sync connection from inside `run_sync`
    _run(config.attributes["connection"])
else:
    asyncio.run(run_online())
