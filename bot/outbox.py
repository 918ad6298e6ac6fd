"""Delivering the outbox: claim due rows, hand each to its channel, record the result.

A row is sent at most once: it is claimed under a lease (SKIP LOCKED on PostgreSQL, so replicas
never take the same row), and marked sent in the same breath as the platform's message id is
recorded. Throttling (429) waits as long as the platform asks; server errors back off.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

import structlog

from bot import metrics
from storage import repo
from storage.db import Database
from storage.models import CardMessage, OutboxMessage

log = structlog.get_logger("namjai.outbox")

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 12
MAX_BACKOFF = 900.0


@dataclass(frozen=True)
class SendResult:
    ok: bool
    message_id: str | None = None
    retry_after: float | None = None  # throttled: try again after this many seconds
    permanent: bool = False  # will never succeed (blocked by the user, chat gone)
    error: str | None = None


class Channel(Protocol):
    platform: str

    async def send(self, row: OutboxMessage, card_message_id: str | None) -> SendResult:
        """Delivers one outbox row; `card_message_id` is the card to edit in place, if any."""


def backoff(attempts: int) -> float:
    return min(2.0 ** attempts, MAX_BACKOFF)


class OutboxWorker:
    def __init__(self, db: Database, channels: dict[str, Channel], clock: Callable[[], datetime] | None = None, batch: int = 50):
        self.db = db
        self.channels = channels
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.batch = batch
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def deliver_due(self) -> int:
        """Sends what is due now; returns how many rows were settled (sent or given up)."""
        if not self.channels:
            return 0
        async with self.db.transaction() as s:
            rows = await repo.outbox_claim(s, list(self.channels), self.clock(), LEASE, self.batch)
            claimed = [(r.id, r.platform, r.chat_id, r.report_id, r.card_edit) for r in rows]
        settled = 0
        held_chats: set[tuple[str, str]] = set()
        for row_id, platform, chat_id, report_id, card_edit in claimed:
            if (platform, chat_id) in held_chats:  # keep a chat's messages in order
                await self._release(row_id)
                continue
            settled += await self._deliver_one(row_id, platform, chat_id, report_id, card_edit, held_chats)
        return settled

    async def _deliver_one(self, row_id, platform, chat_id, report_id, card_edit, held_chats) -> int:
        async with self.db.session() as s:
            row = await repo.outbox_get(s, row_id)
            card_msg = None
            if card_edit and report_id is not None:
                existing = await repo.card_message(s, report_id, platform, chat_id)
                card_msg = existing.message_id if existing else None
        channel = self.channels[platform]
        try:
            result = await channel.send(row, card_msg)
        except Exception as exc:  # a bug or a network fault: retry like a server error
            log.exception("send_crashed", outbox_id=row_id, platform=platform)
            result = SendResult(False, error=f"{type(exc).__name__}: {exc}")
        async with self.db.transaction() as s:
            row = await repo.outbox_get(s, row_id)
            now = self.clock()
            row.claimed_until = None
            row.attempts += 1
            if result.ok:
                row.status, row.sent_at, row.message_id = "sent", now, result.message_id
                if card_edit and report_id is not None and result.message_id and result.message_id != card_msg:
                    s.add(CardMessage(report_id=report_id, platform=platform, chat_id=chat_id, message_id=result.message_id, created_at=now))
                metrics.OUTBOX.labels(platform, "sent").inc()
                return 1
            row.last_error = (result.error or "")[:500]
            if result.permanent or row.attempts >= MAX_ATTEMPTS:
                row.status = "failed"
                metrics.OUTBOX.labels(platform, "failed").inc()
                log.warning("send_failed", outbox_id=row_id, platform=platform, error=row.last_error)
                return 1
            delay = result.retry_after if result.retry_after is not None else backoff(row.attempts)
            row.next_attempt_at = now + timedelta(seconds=delay)
            metrics.OUTBOX.labels(platform, "throttled" if result.retry_after is not None else "retry").inc()
            held_chats.add((platform, chat_id))
            log.info("send_deferred", outbox_id=row_id, platform=platform, delay=delay)
            return 0

    async def _release(self, row_id: int) -> None:
        async with self.db.transaction() as s:
            row = await repo.outbox_get(s, row_id)
            row.claimed_until = None

    async def run(self, interval: float = 2.0) -> None:
        """Delivers whenever kicked, and every `interval` seconds regardless."""
        while True:
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
                # that arrives as the wake-up does, and the loop would then never stop.
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.deliver_due():
                    pass
            except Exception:
                log.exception("outbox_loop_error")


class SandboxChannel:
    """The web sandbox's channel: delivery is recording; the page reads what was sent."""

    platform = "sandbox"

    async def send(self, row: OutboxMessage, card_message_id: str | None) -> SendResult:
        return SendResult(True, message_id=card_message_id or f"m{row.id}")
