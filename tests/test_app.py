"""The app's own wiring: webhook events of one chat are processed in order; health and metrics."""

from __future__ import annotations

import asyncio

from flows.model import Address, ChoiceMade, TextReceived


async def test_events_of_one_chat_are_processed_in_the_order_stored(sandbox, monkeypatch):
    svc = sandbox.services
    seen: list[str] = []
    real = svc.engine.process

    async def slow_first(inbox_id):
        if not seen:
            await asyncio.sleep(0.2)  # the first event is slow: the second must wait for it
        seen.append(str(inbox_id))
        await real(inbox_id)

    monkeypatch.setattr(svc.engine, "process", slow_first)
    me = Address("sandbox", "u-order", "order")
    assert await svc.accept(TextReceived(me, "o1", sandbox.clock(), text="hi"))
    assert await svc.accept(ChoiceMade(me, "o2", sandbox.clock(), data="consent:yes"))
    assert not await svc.accept(ChoiceMade(me, "o2", sandbox.clock(), data="consent:yes"))  # a redelivery
    await asyncio.wait(list(svc.background), timeout=5)
    assert seen == sorted(seen, key=int) and len(seen) == 2
    texts = [m["text"] for m in await sandbox.volunteer("order").messages()]
    assert "ประกาศความเป็นส่วนตัว" in texts[0] and "ส่งรูปถ่าย" in texts[-1]


async def test_health_and_metrics(sandbox):
    resp = await sandbox.client.get("/healthz")
    assert resp.status == 200 and (await resp.json())["ok"] is True
    await sandbox.volunteer("mx").send("hi")
    body = await (await sandbox.client.get("/metrics")).text()
    assert "namjai_events_total" in body and "namjai_process_seconds" in body
