"""Delivering the outbox, in each chat's order, within limits every replica shares.

- Order: only the oldest queued row of a chat is claimed (storage.pipeline), under a lease and
  SKIP LOCKED, so a chat has one message in flight whatever the number of replicas; a row that
  waits (throttled, backing off) holds its chat's later rows back. After a row is sent the worker
  goes on with the same chat's next row.
- Limits: before a row reaches its channel, the channel's buckets (Telegram: 30 a second overall,
  20 a minute per group) are reserved in the database. No room: the row waits for it, in place
  when the room is near (ROOM_WAIT: still claimed, the platform's waiting rows in turn), else in
  the queue until its time. That wait is our own back-pressure: it is not an attempt, and never
  fails a row. The limits hold as the platform counts arrivals: a reserved place stands for the
  latest moment the message can arrive (the reservation plus the send's time limit) until the
  platform answers, then for the moment the answer came in (storage.pipeline.rate_reserve), so a
  send delayed in flight cannot bunch with later ones, whatever the network's jitter.
- Attempts are platform answers: 429 waits as long as asked, 5xx and network errors back off (to
  15 minutes at most), and only a permanent refusal (blocked, chat gone, bad payload) fails a row.
  Failed rows are listed and put back by `namjai outbox failed|retry`.
- A channel that can answer several rows in one call (LINE's Reply, up to five messages) gets the
  head row and the rows right after it that answer the same event (`send_batch`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import structlog

from bot import metrics
from handlers.base import Channel, SendResult
from storage import pipeline, repo
from storage.db import Database
from storage.models import CardMessage, OutboxMessage

log = structlog.get_logger("namjai.outbox")

LEASE = timedelta(seconds=60)
MAX_BACKOFF = 900.0
CHAIN = 20  # rows of one chat sent back to back before the worker looks at other chats
SEND_SECONDS = 30.0  # a send's longest time, unless its channel says (`send_seconds`): see rate_reserve
ROOM_WAIT = 1.5  # seconds: the longest a row waits in place for room in the limits (_deliver_in_turn)


@dataclass
class _Ready:
    """A row taken for its send: its claim renewed for it, its places in the limits reserved."""

    channel: Channel
    rows: list[OutboxMessage]  # the row, then the followers of a batched reply
    card_msg: str | None
    marks: list[int]


@dataclass
class _Wait:
    """A row the limits will have room for in `seconds`; still claimed."""

    seconds: float


def backoff(attempts: int) -> float:
    return min(2.0 ** attempts, MAX_BACKOFF)


def quota_key(platform: str) -> str:
    return f"quota:{platform}"


class OutboxWorker:
    def __init__(
        self, db: Database, channels: dict[str, Channel], clock: Callable[[], datetime] | None = None,
        batch: int = 50, concurrency: int = 8,
    ):
        self.db = db
        self.channels = channels
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.batch = batch
        self.concurrency = concurrency
        self._wake = asyncio.Event()
        self._halt = asyncio.Event()  # set by `stop`: ends a wait for room at once
        self._stopping = False
        self._soonest: float | None = None  # seconds until the earliest row deferred in this round
        self._room: dict[str, asyncio.Lock] = {}  # per platform: the one chain of this replica waiting for room

    def kick(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Shutdown: the sends in flight finish and are recorded, nothing new starts (no chat goes on
        to its next row), the rows this worker claimed but did not start are released for the other
        replicas, and the loop ends. Cancelling instead could leave a connection half rolled back,
        and a send cut in flight may have reached the platform unrecorded: it would go again."""
        self._stopping = True
        self._halt.set()
        self._wake.set()

    async def deliver_due(self) -> int:
        """Sends what is due now; returns how many rows were settled (sent or failed)."""
        if not self.channels:
            return 0
        async with self.db.transaction() as s:
            heads = await pipeline.outbox_claim_heads(s, list(self.channels), self.clock(), LEASE, self.batch)
            claims = [(r.id, r.claimed_until, r.platform) for r in heads]
        if not claims:
            return 0
        gate = asyncio.Semaphore(self.concurrency)

        unstarted: list[tuple[int, datetime]] = []

        async def one(row_id: int, claim: datetime, platform: str) -> int:
            async with gate:
                if self._stopping:
                    unstarted.append((row_id, claim))
                    return 0
                return await self._deliver_chat(row_id, claim, platform, gate)

        settled = sum(await asyncio.gather(*(one(*c) for c in claims)))
        if unstarted:
            async with self.db.transaction() as s:
                await pipeline.outbox_release(s, unstarted)
        return settled

    async def _deliver_chat(self, row_id: int, claim: datetime, platform: str, gate: asyncio.Semaphore) -> int:
        """Delivers a chat's head, then its next rows while they are due (one in flight at a time)."""
        settled = 0
        for _ in range(CHAIN):
            try:
                done, nxt = await self._deliver_in_turn(row_id, claim, platform, gate)
            except Exception:  # the database went away mid-delivery: the lease lapses, tried again
                log.exception("outbox_deliver_error", outbox_id=row_id)
                return settled
            settled += done
            if nxt is None:
                return settled
            row_id, claim = nxt
        if nxt is not None:  # the chain's end: the claimed next row goes back for any worker
            async with self.db.transaction() as s:
                await pipeline.outbox_release(s, [nxt])
        return settled

    async def _deliver_in_turn(
        self, row_id: int, claim: datetime, platform: str, gate: asyncio.Semaphore,
    ) -> tuple[int, tuple[int, datetime] | None]:
        """Sends one claimed row; returns the rows settled and, when the chat goes on, its next row
        claimed (id, claim: same chat, same platform). When the limits have no room for it yet but
        will have soon (within ROOM_WAIT), it waits for the room here, still claimed, so its chat's
        later rows still wait behind it, rather than going back to the queue until a later round claims it again: that
        round trip cost a backlog a tenth of its rate. A platform's rows wait for room in turn (a
        lock per platform, held until the room is taken, not through the send; a row that finds it
        held joins the turn without asking the database first), so a place that frees goes to the
        next of them rather than being polled for by all; while a row only waits it gives its place
        among the replica's `concurrency` (`gate`) to rows of other platforms. A longer wait, or a
        turn's wait that ran out (other replicas took the places), sends the row back to the queue
        until its time. Waiting for our own limits is never an attempt."""
        room = self._room.setdefault(platform, asyncio.Lock())
        loop = asyncio.get_running_loop()
        got: _Ready | _Wait | None = None
        due = loop.time()
        if not room.locked():
            got = await self._take(row_id, claim, ROOM_WAIT)
            if not isinstance(got, _Wait):
                return (0, None) if got is None else await self._send(got)
            due += got.seconds
        gate.release()
        held = False  # the gate, taken again before each look at the limits
        try:
            async with room:
                until = loop.time() + ROOM_WAIT  # this row's turn
                while True:
                    await self._pause(due - loop.time())  # none when the rows ahead took that long
                    await gate.acquire()
                    held = True
                    if self._stopping:  # nothing new starts: the row goes back, for the other replicas
                        async with self.db.transaction() as s:
                            await pipeline.outbox_release(s, [(row_id, claim)])
                        return 0, None
                    got = await self._take(row_id, claim, until - loop.time())
                    if not isinstance(got, _Wait):
                        break
                    due = loop.time() + got.seconds
                    gate.release()
                    held = False
        finally:
            if not held:  # the caller gives it back
                await gate.acquire()
        return (0, None) if got is None else await self._send(got)

    async def _pause(self, seconds: float) -> None:
        """Sleeps that long, or until the worker stops."""
        if seconds > 0 and not self._stopping:
            try:
                async with asyncio.timeout(seconds):
                    await self._halt.wait()
            except TimeoutError:
                pass

    async def _take(self, row_id: int, claim: datetime, in_place: float = 0.0) -> _Ready | _Wait | None:
        """Takes one claimed row (and the followers a batched reply takes) and its places in the
        limits, unless the claim is no longer this worker's: a row that waited in this replica's
        queue past its lease may have been claimed, and be in flight, elsewhere (found by
        tests/test_replicas.py: a question sent twice). No room: the row goes back to the queue
        until there may be, or, when that is within `in_place` seconds, stays claimed (`_Wait`)."""
        channel_batch = 1
        async with self.db.transaction() as s:
            row = await repo.outbox_get(s, row_id, lock=True)
            if row is None or row.status != "pending":
                return None
            if row.claimed_until != claim:  # the lease lapsed and another worker claimed it (or it waits)
                metrics.OUTBOX.labels(row.platform, "claim_lost").inc()
                log.info("outbox_claim_lost", outbox_id=row_id)
                return None
            channel = self.channels.get(row.platform)
            if channel is None:
                return None
            channel_batch = getattr(channel, "reply_batch", 1)
            followers: list[OutboxMessage] = []
            now = self.clock()
            if channel_batch > 1 and row.reply_token and row.reply_until and row.reply_until > now:
                followers = await pipeline.outbox_reply_followers(s, row, now, LEASE, channel_batch - 1)
                if row.reply_ambiguous:  # the retry of an ambiguous reply: the rows that were in it
                    kept = []
                    for f in followers:
                        if not f.reply_ambiguous:
                            break
                        kept.append(f)
                    for f in followers[len(kept):]:
                        f.claimed_until = None
                    followers = kept
            card_msg = None
            if row.card_edit and row.report_id is not None and not (row.payload.get("card") or {}).get("fresh"):
                existing = await repo.card_message(s, row.report_id, row.platform, row.chat_id)
                card_msg = existing.message_id if existing else None
            elif (row.payload or {}).get("edit") and getattr(channel, "edits_questions", False):
                # a question asked again (a choice changed): replace it in place when it is
                # still the last message the person sees, else it goes as a new message
                last = await repo.outbox_last_sent(s, row.platform, row.chat_id, row.id)
                if last is not None and (last.payload or {}).get("question") and last.message_id and not last.message_id.startswith("alert:"):
                    card_msg = last.message_id
            rows = [row, *followers]
            buckets = channel.limits(row) if hasattr(channel, "limits") else []
            marks: list[int] = []
            if buckets:
                cost = channel.cost(rows, card_msg) if hasattr(channel, "cost") else 1
                hold = getattr(channel, "send_seconds", SEND_SECONDS)
                wait, marks = await pipeline.rate_reserve(s, buckets, self.clock, cost, hold)
                if wait > 0:  # our own limit: the row waits for room; not an attempt
                    metrics.OUTBOX.labels(row.platform, "deferred").inc()
                    for r in followers:
                        r.claimed_until = None
                    if wait <= in_place and not self._stopping:  # soon: waited for in place (_deliver_in_turn)
                        return _Wait(wait)
                    row.claimed_until = None
                    row.next_attempt_at = now + timedelta(seconds=wait)
                    self._soonest = wait if self._soonest is None else min(self._soonest, wait)
                    return None
            lease = self.clock() + LEASE  # the send starts now: the lease covers it whole
            for r in rows:
                r.claimed_until = lease
        return _Ready(channel, rows, card_msg, marks)

    async def _send(self, ready: _Ready) -> tuple[int, tuple[int, datetime] | None]:
        """Sends a taken row and records the answer; returns (rows settled, the chat's next row
        claimed or None)."""
        rows, row = ready.rows, ready.rows[0]
        try:
            if len(rows) > 1:
                result = await ready.channel.send_batch(rows)
            else:
                result = await ready.channel.send(row, ready.card_msg)
        except Exception as exc:  # a bug or a network fault: retried like a server error
            log.exception("send_crashed", outbox_id=row.id, platform=row.platform)
            result = SendResult(False, error=f"{type(exc).__name__}: {exc}")
        answered = self.clock()  # before waiting for a connection (or SQLite's writer) to record it
        return await self._record(rows, ready.card_msg, result, ready.marks, answered)

    async def _record(
        self, rows: list[OutboxMessage], card_msg: str | None, result: SendResult, marks: list[int], answered: datetime,
    ) -> tuple[int, tuple[int, datetime] | None]:
        """Records a send's answer; when the chat may go on (the row settled), claims its next row
        in the same transaction (one transaction a message, not two)."""
        async with self.db.transaction() as s:
            settled = await self._settle(s, rows, card_msg, result, marks, answered)
            if not settled or self._stopping:
                return settled, None
            head = rows[0]
            await s.flush()  # this row settled first: the claim's "no older pending row" must see it
            nxt = await pipeline.outbox_claim_heads(s, (), self.clock(), LEASE, 1, chat=(head.platform, head.chat_id))
            return settled, ((nxt[0].id, nxt[0].claimed_until) if nxt else None)

    async def _settle(
        self, s, rows: list[OutboxMessage], card_msg: str | None, result: SendResult, marks: list[int], answered: datetime,
    ) -> int:
        head = rows[0]
        platform = head.platform
        now = self.clock()
        # the limits' marks of this send: at its answer, whatever the answer (the platform may
        # count a refused call too); read once the answer was in, so never before the platform
        # saw it, and as soon as it was: each moment after it is lost to the rate
        await pipeline.rate_settle(s, marks, answered)
        stored = {r.id: r for r in await pipeline.outbox_get_many(s, [r.id for r in rows])}
        row = stored.get(head.id)
        if row is None:
            return 0
        row.claimed_until = None
        row.attempts += 1
        if result.ok:
            sent = set(result.sent_ids or (head.id,))
            for r in rows:
                current = stored.get(r.id)
                if current is None:
                    continue
                current.claimed_until = None
                if r.id in sent:
                    current.status, current.sent_at = "sent", now
                    current.message_id = result.message_id if r.id == head.id else None
                    if current.card_edit and current.report_id is not None and r.id == head.id and result.message_id and result.message_id != card_msg:
                        s.add(CardMessage(report_id=current.report_id, platform=platform, chat_id=current.chat_id, message_id=result.message_id, created_at=now))
                else:  # not taken by a batched reply: pushed on its own, in order
                    current.reply_token, current.reply_until = None, None
            metrics.OUTBOX.labels(platform, result.via or "sent").inc(len(sent))
            if result.via == "push":  # a push went through: the quota is not spent (any more)
                await pipeline.state_clear(s, quota_key(platform), now)
            return len(sent)
        for r in rows[1:]:  # a failed batch: the followers go with the head next time
            if r.id in stored:
                stored[r.id].claimed_until = None
        row.last_error = (result.error or "")[:500]
        if result.quota_spent:
            metrics.QUOTA_REFUSED.labels(platform).inc()
            await pipeline.state_set(s, quota_key(platform), {"since": now.isoformat(), "error": row.last_error[:200]}, now)
        if result.permanent:
            row.status = "failed"
            metrics.OUTBOX.labels(platform, "failed").inc()
            log.warning("send_failed", outbox_id=row.id, platform=platform, error=row.last_error)
            return 1
        if result.ambiguous:  # every row of the request that may have been delivered
            for rid in result.sent_ids or (head.id,):
                if rid in stored:
                    stored[rid].reply_ambiguous = True
        delay = result.retry_after if result.retry_after is not None else backoff(row.attempts)
        row.next_attempt_at = now + timedelta(seconds=delay)
        self._soonest = delay if self._soonest is None else min(self._soonest, delay)
        metrics.OUTBOX.labels(platform, "throttled" if result.retry_after is not None else "retry").inc()
        log.info("send_deferred", outbox_id=row.id, platform=platform, delay=delay)
        return 0

    async def run(self, interval: float = 2.0) -> None:
        """Delivers whenever kicked, and every `interval` seconds regardless, until `stop`."""
        while not self._stopping:
            pause = interval if self._soonest is None else min(interval, max(self._soonest, 0.005))
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
                # that arrives as the wake-up does, and the loop would then never stop.
                async with asyncio.timeout(pause):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._soonest = None
            if self._stopping:
                return
            try:
                while not self._stopping and await self.deliver_due():
                    pass
            except Exception:
                log.exception("outbox_loop_error")


class SandboxChannel:
    """The web sandbox's channel: delivery is recording; the page reads what was sent."""

    platform = "sandbox"

    async def send(self, row: OutboxMessage, card_message_id: str | None) -> SendResult:
        return SendResult(True, message_id=card_message_id or f"m{row.id}")
