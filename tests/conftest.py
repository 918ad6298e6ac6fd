"""Shared fixtures: a database on SQLite and on PostgreSQL, a fixed clock, the sandbox over HTTP."""

from __future__ import annotations

import asyncio
import io
import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

PG_HOST = os.environ.get("NAMJAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = bool(os.environ.get("CI"))


class Clock:
    """A controllable clock: tests move time forward by hand."""

    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw) -> datetime:
        self.now += timedelta(**kw)
        return self.now


@pytest.fixture
def clock() -> Clock:
    # A Wednesday morning in Bangkok (02:00 UTC = 09:00 ICT)
    return Clock(datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc))


def _pg_admin_url() -> str:
    return PG_HOST


async def _pg_exec(sql: str, database: str | None = None) -> None:
    import asyncpg

    dsn = PG_HOST if database is None else PG_HOST.rsplit("/", 1)[0] + "/" + database
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database():
    """A database of this run's own on the PostgreSQL server, migrated, dropped at the end."""
    name = f"namjai_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        asyncio.run(_pg_exec(f'CREATE DATABASE "{name}"'))
    except Exception as e:  # no server here
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI: {e}")
        pytest.skip(f"no PostgreSQL at {PG_HOST}: {e}")
    url = "postgresql+asyncpg://" + PG_HOST.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name

    async def migrate():
        from storage.db import Database
        from storage.migrate import upgrade

        db = Database(url)
        await upgrade(db)
        await db.dispose()

    asyncio.run(migrate())
    yield url
    asyncio.run(_pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


TABLES = "console_sessions, console_links, rate_marks, cluster_state, reminders_sent, access_log, card_messages, report_events, reports, outbox, inbox, conversations, invites, members, chat_bindings, teams, counters"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/namjai.db"
    url = request.getfixturevalue("pg_database")
    asyncio.run(_pg_exec(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", url.rsplit("/", 1)[1]))
    return url


@pytest.fixture
async def db(db_url):
    from storage.db import Database
    from storage.migrate import upgrade

    database = Database(db_url)
    await upgrade(database)
    yield database
    await database.dispose()


@pytest.fixture
async def pg_db(pg_database):
    """The PostgreSQL database alone, emptied, for tests that only make sense there."""
    from storage.db import Database

    await _pg_exec(f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", pg_database.rsplit("/", 1)[1])
    database = Database(pg_database)
    yield database
    await database.dispose()


def jpeg(color=(200, 120, 40), size=(64, 48)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
async def sandbox(db_url, tmp_path, clock):
    """The whole app on a loopback port, driven through the sandbox JSON API."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import SERVICES, create_app
    from bot.settings import Settings
    from tests.chat import Sandbox

    settings = Settings(
        _env_file=None, database_url=db_url, photo_dir=str(tmp_path / "photos"), sandbox=True, sweep_seconds=0.2,
        scheduler_sweep_seconds=3600,  # tests drive `bot.scheduler.sweep` with the manual clock
    )
    app = create_app(settings, clock=clock)
    async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
        yield Sandbox(client, app[SERVICES], clock)


@pytest.fixture
async def line(db_url, tmp_path, clock):
    """The app with the LINE channel on (and the sandbox), LINE being a FakeLine on 127.0.0.1."""
    from aiohttp.test_utils import TestClient, TestServer

    from tests.fake_line import SECRET, FakeLine, LineHarness

    from bot.app import SERVICES, create_app
    from bot.settings import Settings
    from bot.teams import EXAMPLE

    fake = await FakeLine(clock=lambda: clock().timestamp()).start()
    settings = Settings(
        _env_file=None, database_url=db_url, photo_dir=str(tmp_path / "photos"), teams_file=str(EXAMPLE),
        line_channel_secret=SECRET, line_access_token=fake.access_token, line_api_host=fake.url,
        public_url="https://namjai.example", sweep_seconds=0.2, scheduler=False,
    )
    app = create_app(settings, clock=clock)
    try:
        async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
            yield LineHarness(client, app[SERVICES], clock, fake)
    finally:
        await fake.close()
