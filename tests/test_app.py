"""The app's own wiring: webhook events of one chat are processed in order; health and metrics."""

from __future__ import annotations

import asyncio

from flows.model import Address, ChoiceMade, TextReceived


async def test_events_of_one_chat_are_processed_in_the_order_stored(sandbox, monkeypatch):
    svc = sandbox.services
    seen: list[str] = []
    real = svc.engine.inbox.dispatch

    async def slow_first(s, ev, row):
        if not seen:
            await asyncio.sleep(0.2)  # the first event is slow: the second must wait for it
        seen.append(str(row.id))
        return await real(s, ev, row)

    monkeypatch.setattr(svc.engine.inbox, "dispatch", slow_first)
    me = Address("sandbox", "u-order", "order")
    assert await svc.accept(TextReceived(me, "o1", sandbox.clock(), text="hi"))
    assert await svc.accept(ChoiceMade(me, "o2", sandbox.clock(), data="consent:yes"))
    assert not await svc.accept(ChoiceMade(me, "o2", sandbox.clock(), data="consent:yes"))  # a redelivery
    await asyncio.wait_for(svc.engine.inbox.drained(), timeout=5)
    assert seen == sorted(seen, key=int) and len(seen) == 2
    texts = [m["text"] for m in await sandbox.volunteer("order").messages()]
    assert "ประกาศความเป็นส่วนตัว" in texts[0] and "ส่งรูปถ่าย" in texts[-1]


async def test_health_and_metrics(sandbox):
    resp = await sandbox.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["ok"] is True
    await sandbox.volunteer("mx").send("hi")
    body = await (await sandbox.client.get("/metrics")).text()
    assert "namjai_events_total" in body and "namjai_process_seconds" in body


async def test_a_failing_event_is_kept_retried_and_finally_answered_with_the_hotline(sandbox, monkeypatch):
    """Nothing is lost when processing fails: the event stays in the inbox, is tried again, and
    after the last attempt the volunteer is told to try again or call 1300."""
    from bot.inbox import MAX_ATTEMPTS
    from storage.models import InboxEvent

    svc = sandbox.services
    engine = svc.engine
    real = engine.inbox.dispatch
    calls = []

    async def broken(s, ev, row):
        calls.append(ev.event_id)
        raise RuntimeError("database hiccup")

    monkeypatch.setattr(engine.inbox, "dispatch", broken)
    me = Address("sandbox", "u-fail", "fail")
    assert await engine.handle(TextReceived(me, "f1", sandbox.clock(), text="hi"))
    async with svc.db.session() as s:
        from sqlmodel import select

        row = (await s.exec(select(InboxEvent).where(InboxEvent.event_id == "f1"))).one()
    assert row.status == "pending" and row.attempts == 1 and "hiccup" in row.error
    assert row.next_attempt_at > sandbox.clock()  # retried after a backoff, not at once
    for _ in range(MAX_ATTEMPTS - 1):
        sandbox.clock.advance(seconds=120)
        await engine.process_pending()
    async with svc.db.session() as s:
        row = await s.get(InboxEvent, row.id)
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS and len(calls) == MAX_ATTEMPTS
    texts = [m["text"] for m in await sandbox.volunteer("fail").messages()]
    assert len(texts) == 1 and "1300" in texts[0]

    monkeypatch.setattr(engine.inbox, "dispatch", real)  # a healthy engine processes a new event normally
    assert await engine.handle(TextReceived(me, "f2", sandbox.clock(), text="hi"))
    assert "ประกาศความเป็นส่วนตัว" in (await sandbox.volunteer("fail").messages())[-1]["text"]


async def test_shutdown_stops_the_loops_before_it_closes_the_channels(tmp_path, clock):
    """Found by tests/test_replicas.py's rolling restart: the LINE client was closed while the
    outbox was still delivering ("Session is closed"). The loops stop first now."""
    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from bot.settings import Settings
    from handlers.base import SERVICES, STOPPERS

    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/n.db", photo_dir=str(tmp_path / "p"),
                        sandbox=True, scheduler=False)
    app = create_app(settings, clock=clock)
    seen: list[bool] = []

    async def stop(app, svc):
        seen.append(all(t.done() for t in svc.tasks))

    app[STOPPERS].append(stop)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    assert app[SERVICES].tasks and not any(t.done() for t in app[SERVICES].tasks)
    await server.close()
    assert seen == [True]


async def test_shutdown_lets_the_delivery_in_hand_finish_instead_of_cancelling_it(tmp_path, clock, monkeypatch):
    """Seen once in CI: a loop cancelled in the middle of a transaction left an aiosqlite connection
    half rolled back, and disposing of the pool then hung until the test timed out. The loops are
    now asked to end after their round, so the message being sent is settled, not cut off."""
    import asyncio

    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from bot.outbox import SandboxChannel
    from bot.settings import Settings
    from handlers.base import SERVICES
    from storage import repo

    sending, original = asyncio.Event(), SandboxChannel.send

    async def slow(self, row, card_message_id):
        sending.set()
        await asyncio.sleep(0.5)
        return await original(self, row, card_message_id)

    monkeypatch.setattr(SandboxChannel, "send", slow)
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path}/n.db", photo_dir=str(tmp_path / "p"),
                        sandbox=True, scheduler=False, sweep_seconds=0.05)
    app = create_app(settings, clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    svc = app[SERVICES]
    async with svc.db.transaction() as s:
        row = await repo.outbox_add(s, platform="sandbox", chat_id="u-x", payload={"kind": "text", "text": "x"},
                                    next_attempt_at=clock(), created_at=clock())
    svc.outbox.kick()
    await asyncio.wait_for(sending.wait(), 10)
    tasks = list(svc.tasks)
    await server.close()
    assert all(t.done() and not t.cancelled() for t in tasks)  # ended on their own
    from storage.db import Database

    db = Database(settings.database_url)
    try:
        async with db.session() as s:
            assert (await repo.outbox_get(s, row.id)).status == "sent"
    finally:
        await db.dispose()
