"""The inbox: received events are stored before the webhook answers (group commit), then processed
one conversation at a time, oldest first, by whichever replica gets there.

The order is the database's, not this process's: to process anything of a conversation, a worker
takes the conversation's lock (storage.pipeline: an advisory lock on PostgreSQL, the single writer
on SQLite), reads its oldest pending event and processes that one — which may have been received
by another replica, or before a crash. A failed event is retried after a backoff and holds its
conversation back until it succeeds or is given up (after MAX_ATTEMPTS the user is told, with the
hotline). In this process a conversation has at most one drainer (a fast path, not the guarantee).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Awaitable, Callable

import structlog
from sqlalchemy import exc as sa_exc

from bot import metrics
from flows.codec import event_from_dict, event_to_dict
from flows.model import InboundEvent
from handlers.base import ReplyToken
from storage import pipeline
from storage.db import Database

log = structlog.get_logger("namjai.inbox")

# Errors of the database's availability, not of the event: the step is left to the sweeper and is
# not counted as an attempt (else a busy pool would give events up and lose reports).
TRANSIENT = (sa_exc.TimeoutError, sa_exc.DisconnectionError, sa_exc.InterfaceError, sa_exc.OperationalError, ConnectionError, OSError)

MAX_ATTEMPTS = 5
CONCURRENCY = 4  # conversations this process works on at once (each holds a connection while it does)
MAX_BATCH = 500  # events in one group commit
MAX_STEPS = 200  # events one drainer processes before it yields to the others
RETRY_BASE = 1.0  # seconds; doubled per failed attempt
RETRY_MAX = 60.0


def retry_delay(attempts: int) -> float:
    return min(RETRY_BASE * 2 ** (attempts - 1), RETRY_MAX)


class Ingestor:
    """Group commit: events that arrive together are stored in one transaction; each caller waits
    for its own event to be committed (durable before the 200)."""

    def __init__(self, db: Database, clock: Callable[[], datetime]):
        self.db = db
        self.clock = clock
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def put(self, ev: InboundEvent, reply: ReplyToken | None = None) -> int | None:
        """Stores `ev`; returns its inbox id, or None when the platform sent it before."""
        row = dict(
            platform=ev.address.platform, event_id=ev.event_id, conv_key=ev.address.chat_key, payload=event_to_dict(ev),
        )
        if reply is not None:
            row.update(reply_token=reply.token, reply_until=reply.until)
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((row, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                async with self.db.transaction() as s:
                    ids = await pipeline.inbox_insert_many(s, [r for r, _ in batch], self.clock())
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            seen: set[tuple[str, str]] = set()
            for row, fut in batch:
                key = (row["platform"], row["event_id"])
                inbox_id = None if key in seen else ids.get(key)
                seen.add(key)
                if not fut.done():
                    fut.set_result(inbox_id)


class _Prepare(Exception):
    """The head needs the network first: leave the transaction (nothing written) and prepare it."""

    def __init__(self, inbox_id: int, attempts: int, ev: InboundEvent):
        self.inbox_id, self.attempts, self.ev = inbox_id, attempts, ev


# (session, event, inbox row) -> whether it wrote to the outbox; runs inside the event's transaction
Dispatch = Callable[[object, InboundEvent, object], Awaitable[bool]]
# event -> the event with its media fetched and stored (outside any transaction)
Prepare = Callable[[InboundEvent], Awaitable[InboundEvent]]
# (session, event, exception): tells the user when the event is given up
GiveUp = Callable[[object, InboundEvent], Awaitable[None]]


class Inbox:
    def __init__(
        self, db: Database, clock: Callable[[], datetime], dispatch: Dispatch, prepare: Prepare, give_up: GiveUp,
        needs_prepare: Callable[[InboundEvent], bool] = lambda ev: True, concurrency: int = CONCURRENCY,
    ):
        self.db = db
        self._gate = asyncio.Semaphore(concurrency)
        self.needs_prepare = needs_prepare
        self.clock = clock
        self.dispatch = dispatch
        self.prepare = prepare
        self.give_up = give_up
        self.ingestor = Ingestor(db, clock)
        self.on_outbox: list[Callable[[], None]] = []
        self._drainers: dict[str, asyncio.Task] = {}
        self._again: set[str] = set()
        self._followed: set[str] = set()  # the last step's read saw another event after the head
        # Only a try-lock can be refused (PostgreSQL): a replica refused leaves its event to the
        # holder, who must look again after its commit. SQLite's writer lock is waited for, never
        # refused: a process that stored an event processes it itself, so no look is needed there.
        self._look_again = not db.is_sqlite
        self.stopping = False  # shutdown: finish the step in hand, start no other (the events wait in the database)

    async def ingest(self, ev: InboundEvent, reply: ReplyToken | None = None) -> int | None:
        inbox_id = await self.ingestor.put(ev, reply)
        metrics.EVENTS.labels(ev.address.platform, "duplicate" if inbox_id is None else "stored").inc()
        return inbox_id

    def kick(self, conv_key: str) -> asyncio.Task:
        """Makes sure this process drains `conv_key` now; the task ends when nothing of it is due."""
        task = self._drainers.get(conv_key)
        if task is not None and not task.done():
            self._again.add(conv_key)
            return task
        # no chat id in the task's name: asyncio prints names in its messages
        task = asyncio.create_task(self._drain(conv_key), name=f"drain:{conv_key.split(':', 1)[0]}")
        self._drainers[conv_key] = task
        task.add_done_callback(lambda t, k=conv_key: self._drained_one(k, t))
        return task

    def _drained_one(self, conv_key: str, task: asyncio.Task) -> None:
        if self._drainers.get(conv_key) is task:
            del self._drainers[conv_key]
            self._followed.discard(conv_key)

    async def _drain(self, conv_key: str) -> None:
        for _ in range(MAX_STEPS):
            if self.stopping:
                return
            self._again.discard(conv_key)
            try:
                progressed = await self.step(conv_key)
            except Exception:  # the database is away: the sweeper comes back to it
                log.exception("inbox_drain_error")
                return
            if conv_key in self._again:
                continue
            if not progressed:
                return
            # Processed: another event may be due, stored meanwhile by a replica whose try-lock
            # failed while this one held the conversation (it left it to us). The step's own read
            # says so when it saw one; else a plain read asks, before another locking step
            # (PostgreSQL only: on SQLite nobody is refused the lock, nothing is left to us).
            if conv_key in self._followed or (self._look_again and await self._due(conv_key)):
                continue
            if conv_key not in self._again:  # read after the await: a kick during it found this task running
                return
        self.kick_later(conv_key)

    async def _due(self, conv_key: str) -> bool:
        try:
            async with self._gate, self.db.read() as s:
                return await pipeline.inbox_due(s, conv_key, self.clock())
        except TRANSIENT:
            return True  # the locking step finds out (and defers to the sweeper if the database is away)

    def kick_later(self, conv_key: str) -> None:
        asyncio.get_running_loop().call_soon(self.kick, conv_key)

    async def step(self, conv_key: str) -> bool:
        """Processes the oldest pending event of the conversation, if it is due; True when it did
        something (processed, or found someone else had), False when nothing was due or another
        worker is on the conversation (that worker reads the head again after its event, so it
        goes on to the newer events itself).

        Most events need nothing from the network: one transaction takes the conversation's lock,
        reads its head and processes it. An event with media to fetch or a short map link to
        follow is prepared outside any transaction (no lock held over the network), then
        processed in a second one. At most `concurrency` steps of this process hold a database
        connection at once, so the webhooks' writes and the outbox always get one; a step never
        waits for a conversation's lock while holding one (try-lock)."""
        now = self.clock()
        head = ev = None
        hid = attempts = None  # read in the transaction: its objects are gone after a rollback
        after: list[Callable[[], Awaitable[None]]] = []  # what dispatch asks to do once it is committed
        try:
            with metrics.PROCESS_SECONDS.time():
                async with self._gate, self.db.transaction() as s:
                    s.info["after_commit"] = after
                    if not await pipeline.try_advisory_lock(s, "conv:" + conv_key):
                        return False
                    heads = await pipeline.inbox_heads(s, conv_key, lock=True)
                    head = heads[0] if heads else None
                    if len(heads) > 1:
                        self._followed.add(conv_key)
                    else:
                        self._followed.discard(conv_key)
                    if head is None or (head.next_attempt_at is not None and head.next_attempt_at > now):
                        return False
                    hid, attempts = head.id, head.attempts
                    ev = event_from_dict(head.payload)
                    if self.needs_prepare(ev):
                        raise _Prepare(hid, attempts, ev)
                    s.info["event"] = head
                    wrote = await self.dispatch(s, ev, head)
                    await pipeline.inbox_done(s, hid, self.clock())
        except _Prepare as p:
            return await self._prepared_step(conv_key, p.inbox_id, p.attempts, p.ev)
        except TRANSIENT as exc:  # no connection in time, the database away: not the event's fault
            log.warning("inbox_step_deferred", error=type(exc).__name__)
            return False
        except Exception as exc:
            if hid is None or ev is None:  # the row unreadable: the drainer logs it
                raise
            await self._failed(hid, attempts, ev, exc)
            return False
        await self._after_commit(after)
        self._notify(wrote)
        return True

    async def _prepared_step(self, conv_key: str, inbox_id: int, attempts: int, ev: InboundEvent) -> bool:
        ready = await self.prepare(ev)  # media is fetched outside the transaction: no lock over the network
        if ready is not ev:
            async with self._gate, self.db.transaction() as s:
                await pipeline.inbox_set_payload(s, inbox_id, event_to_dict(ready))
        after: list[Callable[[], Awaitable[None]]] = []  # what dispatch asks to do once it is committed
        try:
            with metrics.PROCESS_SECONDS.time():
                async with self._gate, self.db.transaction() as s:
                    s.info["after_commit"] = after
                    if not await pipeline.try_advisory_lock(s, "conv:" + conv_key):
                        return False  # another worker holds the conversation: it goes on with it
                    current = await pipeline.inbox_head(s, conv_key, lock=True)
                    if current is None or current.id != inbox_id:
                        return True  # another worker processed it meanwhile: look again
                    s.info["event"] = current
                    wrote = await self.dispatch(s, ready, current)
                    await pipeline.inbox_done(s, inbox_id, self.clock())
        except TRANSIENT as exc:  # no connection in time, the database away: not the event's fault
            log.warning("inbox_step_deferred", error=type(exc).__name__)
            return False
        except Exception as exc:
            await self._failed(inbox_id, attempts, ready, exc)
            return False
        await self._after_commit(after)
        self._notify(wrote)
        return True

    async def _after_commit(self, after: list[Callable[[], Awaitable[None]]]) -> None:
        for fn in after:
            try:
                await fn()
            except Exception as exc:  # e.g. the photo store is away: retention deletes the orphan later
                log.warning("after_commit_failed", error=type(exc).__name__)

    async def _failed(self, inbox_id: int, attempts: int, ev: InboundEvent, exc: Exception) -> None:
        """Records a failed attempt (its work was rolled back): tried again after a backoff; after
        MAX_ATTEMPTS it is given up and the user told."""
        log.error("event_failed", platform=ev.address.platform, inbox_id=inbox_id, error=type(exc).__name__, exc_info=exc)
        attempts += 1
        given_up = attempts >= MAX_ATTEMPTS
        retry_at = None if given_up else self.clock() + timedelta(seconds=retry_delay(attempts))
        async with self.db.transaction() as s:
            await pipeline.inbox_failed(
                s, inbox_id, attempts, "failed" if given_up else "pending", f"{type(exc).__name__}: {exc}"[:500], retry_at
            )
            if given_up:
                await self.give_up(s, ev)
        if given_up:
            metrics.EVENTS.labels(ev.address.platform, "failed").inc()
            self._notify(True)
            self.kick_later(ev.address.chat_key)  # the next event of the conversation may go now

    def _notify(self, wrote_outbox: bool) -> None:
        if wrote_outbox:
            for listener in self.on_outbox:
                listener()

    async def sweep(self, older_than: timedelta, limit: int = 100) -> int:
        """Drains conversations nobody is on (a crash between the 200 and the work, a retry that fell
        due); returns how many it looked at."""
        async with self.db.session() as s:
            convs = await pipeline.inbox_stalled(s, self.clock(), older_than, limit)
        if convs:
            await asyncio.gather(*(self.kick(c) for c in convs), return_exceptions=True)
        return len(convs)

    def tasks(self) -> list[asyncio.Task]:
        """This process's running drainers (the app cancels them on shutdown)."""
        return list(self._drainers.values())

    async def drained(self) -> None:
        """Waits until this process's drainers are done (tests, shutdown)."""
        while self._drainers:
            await asyncio.gather(*list(self._drainers.values()), return_exceptions=True)
