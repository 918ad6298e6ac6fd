"""Group commit for webhooks: events that arrive together are stored in one transaction.

Each caller still waits until its own event is committed (durable before the 200); under load one
commit serves many requests instead of one each.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Callable

from flows.codec import event_to_dict
from flows.model import InboundEvent
from storage import repo
from storage.db import Database

MAX_BATCH = 500


class Ingestor:
    def __init__(self, db: Database, clock: Callable[[], datetime]):
        self.db = db
        self.clock = clock
        self._queue: list[tuple[InboundEvent, asyncio.Future]] = []
        self._writer: asyncio.Task | None = None

    async def put(self, ev: InboundEvent) -> int | None:
        """Stores `ev`; returns its inbox id, or None when the platform sent it before."""
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((ev, fut))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            rows = [(ev.address.platform, ev.event_id, event_to_dict(ev)) for ev, _ in batch]
            try:
                async with self.db.transaction() as s:
                    ids = await repo.inbox_insert_many(s, rows, self.clock())
            except Exception as exc:
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            seen: set[tuple[str, str]] = set()
            for ev, fut in batch:
                key = (ev.address.platform, ev.event_id)
                inbox_id = None if key in seen else ids.get(key)
                seen.add(key)
                if not fut.done():
                    fut.set_result(inbox_id)
