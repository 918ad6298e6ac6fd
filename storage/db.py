"""Engines and sessions: SQLite (WAL) by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session as SyncSession
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import repo


class _Session(SyncSession):
    """Our sessions' sync half: the outbox rows `repo.outbox_queue` holds are written before the
    session's next statement or its commit (one statement for a step's rows), forgotten at a
    rollback."""


@event.listens_for(_Session, "do_orm_execute")
def _before_statement(state) -> None:
    repo.write_pending_outbox(state.session)


@event.listens_for(_Session, "before_commit")
def _before_commit(session) -> None:
    repo.write_pending_outbox(session)


@event.listens_for(_Session, "after_soft_rollback")
def _after_rollback(session, _previous_transaction) -> None:
    repo.drop_pending_outbox(session)


class Database:
    """One engine and a session factory; `is_sqlite` tells the few places that must differ."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10, max_overflow: int = 2):
        self.url = url
        u = make_url(url)
        self.is_sqlite = u.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if u.database and u.database != ":memory:":
                Path(u.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine: AsyncEngine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "begin", _sqlite_begin)
        else:
            # No ping at each checkout: asyncpg's costs three round trips (BEGIN, ";", ROLLBACK),
            # about a tenth of a busy replica's time. A connection PostgreSQL dropped fails its next
            # use as a disconnection instead, which renews the pool; the inbox, the outbox and the
            # webhooks (the platform redelivers after a 500) take that as the database's, not the
            # work's (tests/test_pipeline.py).
            self.engine = create_async_engine(url, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False)
        # Write transactions take SQLite's write lock at BEGIN (IMMEDIATE), so a read-then-write
        # (claiming outbox rows, locking a conversation) cannot interleave with another process.
        writer = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self._writers = async_sessionmaker(writer, class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False)
        # One-statement reads outside any transaction (no BEGIN, no COMMIT: fewer round trips).
        self._readers = async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), class_=AsyncSession, sync_session_class=_Session, expire_on_commit=False
        )
        # SQLite has one writer: serialise our write transactions in this process instead of
        # letting them fail with "database is locked". (Several processes need PostgreSQL.)
        self.write_lock = asyncio.Lock() if self.is_sqlite else None

    async def checkpoint(self) -> None:
        """SQLite: copies the write-ahead log into the file and empties it, so rows deleted with
        secure_delete leave no old copy in the WAL (PDPA). Nothing to do on PostgreSQL."""
        if not self.is_sqlite:
            return
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as s:
            yield s

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for a single read that needs no transaction (each statement on its own)."""
        async with self._readers() as s:
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed on success (serialised on SQLite)."""
        if self.write_lock is not None:
            async with self.write_lock:
                async with self._writers() as s, s.begin():
                    yield s
        else:
            async with self._writers() as s, s.begin():
                yield s

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # SQLAlchemy, not the sqlite3 module, decides when a transaction begins (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")  # PDPA: deleted rows are overwritten, not left in the file
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    options = conn.get_execution_options()
    if options.get("isolation_level") == "AUTOCOMMIT":
        return
    conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")
