"""The outbox on SQLite and PostgreSQL: sent once, in order per chat, throttling and failures."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from bot.outbox import OutboxWorker, SendResult
from storage import pipeline, repo
from storage.db import Database


class Recorder:
    """A channel that records what it was asked to send and answers from a script."""

    platform = "fake"

    def __init__(self, answers=()):
        self.sent: list[tuple[int, str | None]] = []
        self.answers = list(answers)

    async def send(self, row, card_message_id):
        await asyncio.sleep(0)
        if self.answers:
            result = self.answers.pop(0)
            if not result.ok:
                return result
        self.sent.append((row.id, card_message_id))
        return SendResult(True, message_id=card_message_id or f"msg-{row.id}")


async def add(db, clock, chat="c1", text="hi", report_id=None, card=False):
    async with db.transaction() as s:
        row = await repo.outbox_add(
            s, platform="fake", chat_id=chat, payload={"text": text}, report_id=report_id, card_edit=card,
            next_attempt_at=clock(), created_at=clock(),
        )
        await s.flush()
        return row.id


async def status(db, row_id):
    async with db.session() as s:
        return (await repo.outbox_get(s, row_id)).status


async def test_sent_once_and_recorded(db, clock):
    ch = Recorder()
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    ids = [await add(db, clock, text=str(i)) for i in range(3)]
    assert await worker.deliver_due() == 3
    assert await worker.deliver_due() == 0
    assert [i for i, _ in ch.sent] == ids
    assert [await status(db, i) for i in ids] == ["sent"] * 3


async def test_throttled_waits_as_asked_and_keeps_chat_order(db, clock):
    ch = Recorder([SendResult(False, retry_after=30)])
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    first = await add(db, clock, text="1")
    second = await add(db, clock, text="2")
    other = await add(db, clock, chat="c2", text="3")
    await worker.deliver_due()
    assert [i for i, _ in ch.sent] == [other]  # c1 held back behind its throttled first message
    clock.advance(seconds=10)
    await worker.deliver_due()
    assert [i for i, _ in ch.sent] == [other, second] or [i for i, _ in ch.sent] == [other]
    clock.advance(seconds=30)
    await worker.deliver_due()
    assert sorted(i for i, _ in ch.sent) == sorted([first, second, other])
    assert len(ch.sent) == 3


async def test_permanent_failure_is_not_retried(db, clock):
    ch = Recorder([SendResult(False, permanent=True, error="blocked")])
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    row = await add(db, clock)
    await worker.deliver_due()
    clock.advance(hours=1)
    await worker.deliver_due()
    assert await status(db, row) == "failed" and ch.sent == []


async def test_server_errors_back_off_then_succeed(db, clock):
    ch = Recorder([SendResult(False, error="500"), SendResult(False, error="502")])
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    row = await add(db, clock)
    await worker.deliver_due()
    await worker.deliver_due()  # not due yet: nothing happens
    assert ch.sent == []
    for _ in range(2):
        clock.advance(seconds=10)
        await worker.deliver_due()
    assert await status(db, row) == "sent" and len(ch.sent) == 1


async def test_card_edits_reuse_the_first_message(db, clock):
    from storage.models import Report

    async with db.transaction() as s:
        from storage.models import Team

        team = Team(code="t", name_th="t", name_en="t", kind="national", provinces=[], fallback=True)
        s.add(team)
        await s.flush()
        report = Report(ref="NJ-2569-000001", team_id=team.id, created_at=clock(), updated_at=clock())
        s.add(report)
        await s.flush()
        rid = report.id
    ch = Recorder()
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    a = await add(db, clock, report_id=rid, card=True)
    await worker.deliver_due()
    b = await add(db, clock, report_id=rid, card=True)
    await worker.deliver_due()
    assert ch.sent == [(a, None), (b, f"msg-{a}")]
    async with db.session() as s:
        assert await repo.report_for_message(s, "fake", "c1", f"msg-{a}") == rid


async def test_two_workers_never_send_a_row_twice(db_url, clock):
    db1, db2 = Database(db_url), Database(db_url)
    from storage.migrate import upgrade

    await upgrade(db1)
    ch = Recorder()
    ids = [await add(db1, clock, chat=f"c{i % 7}", text=str(i)) for i in range(60)]
    w1 = OutboxWorker(db1, {"fake": ch}, clock=clock, batch=10)
    w2 = OutboxWorker(db2, {"fake": ch}, clock=clock, batch=10)

    async def drain(w):
        for _ in range(30):
            await w.deliver_due()

    await asyncio.gather(drain(w1), drain(w2))
    sent = [i for i, _ in ch.sent]
    assert sorted(sent) == ids  # every row once, none twice
    await db1.dispose()
    await db2.dispose()


async def test_lease_expiry_lets_another_worker_take_over(db, clock):
    ch = Recorder()
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    row = await add(db, clock)
    async with db.transaction() as s:  # a worker claims the row and dies
        await pipeline.outbox_claim_heads(s, ["fake"], clock(), timedelta(seconds=60), 10)
    assert await worker.deliver_due() == 0
    clock.advance(seconds=61)
    assert await worker.deliver_due() == 1 and await status(db, row) == "sent"


async def test_a_long_chat_yields_after_its_chain_and_its_next_row_is_free_at_once(db, clock):
    """One worker sends at most CHAIN rows of a chat back to back (each next row claimed in the
    transaction that records the previous one); the row it claimed last but did not send goes back
    at once, for the next round of any worker, instead of waiting for its lease to lapse."""
    from bot.outbox import CHAIN
    from storage.models import OutboxMessage

    ch = Recorder()
    worker = OutboxWorker(db, {"fake": ch}, clock=clock)
    ids = [await add(db, clock, text=str(i)) for i in range(CHAIN + 5)]
    assert await worker.deliver_due() == CHAIN
    async with db.session() as s:
        nxt = await s.get(OutboxMessage, ids[CHAIN])
    assert nxt.status == "pending" and nxt.claimed_until is None
    other = OutboxWorker(db, {"fake": ch}, clock=clock)  # another replica, same moment
    assert await other.deliver_due() == 5
    assert [i for i, _ in ch.sent] == ids
