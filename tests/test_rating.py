"""The reporters' rating (issue 13): once a report is closed and its reporter told, the bot asks
once, outside the quiet hours, how well it was handled: three faces, one tap, optional. The answer
goes on the report's history and into the fiscal-year figures. Pure rules, then end to end."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from flows import followup as fu
from flows.deadlines import load_policy
from tests.test_console import Browser, token_in
from tests.test_e2e_sandbox import full_report

BKK = timezone(timedelta(hours=7))
POLICY = load_policy()


def bkk(y, mo, d, h=9, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BKK).astimezone(timezone.utc)


@pytest.mark.parametrize("status, told, asked, chat, now, want", [
    ("closed", True, None, "c1", bkk(2026, 11, 25, 9), bkk(2026, 11, 25, 9)),  # daytime: now
    ("closed", True, None, "c1", bkk(2026, 11, 25, 22), bkk(2026, 11, 26, 7)),  # quiet hours: at their end
    ("closed", True, None, "c1", bkk(2026, 11, 26, 3), bkk(2026, 11, 26, 7)),
    ("closed", True, None, "c1", bkk(2026, 11, 25, 20, 59), bkk(2026, 11, 25, 20, 59)),
    ("closed", True, bkk(2026, 11, 20), "c1", bkk(2026, 11, 25, 9), None),  # asked once already
    ("closed", False, None, "c1", bkk(2026, 11, 25, 9), None),  # not told: not asked
    ("closed", True, None, None, bkk(2026, 11, 25, 9), None),  # no chat to ask in
    ("on_site", True, None, "c1", bkk(2026, 11, 25, 9), None),
    ("reopened", True, None, "c1", bkk(2026, 11, 25, 9), None),
])
def test_when_the_rating_is_asked(status, told, asked, chat, now, want):
    assert fu.rating_due(status, told, asked, chat, now, POLICY) == want


def test_the_question_is_three_faces_in_one_row():
    q = fu.rating_question(7, "NJ-2569-000007")
    assert [m.key for m in q.lines] == ["rating.ask"] and q.lines[0].params == {"ref": "NJ-2569-000007"}
    assert len(q.buttons) == 1
    assert [(b.label.key, b.data) for b in q.buttons[0]] == [
        ("rating.good", "rate:7:good"), ("rating.ok", "rate:7:ok"), ("rating.bad", "rate:7:bad")]
    assert [fu.parse_rating(b.data) for b in q.buttons[0]] == [(7, "good"), (7, "ok"), (7, "bad")]


@pytest.mark.parametrize("data", ["rate:7:great", "rate::good", "rate:7", "still:7:yes", "rate:7:good:x"])
def test_other_data_is_not_a_rating(data):
    assert fu.parse_rating(data) is None


def test_the_first_answer_counts():
    asked = bkk(2026, 11, 25, 9)
    assert fu.rating_accepted(asked, None)
    assert not fu.rating_accepted(asked, "good")  # answered already
    assert not fu.rating_accepted(None, None)  # never asked
    assert [m.key for m in fu.rating_answered("R", True).lines] == ["rating.thanks"]
    assert [m.key for m in fu.rating_answered("R", False).lines] == ["rating.already"]


def _buttons(msg) -> list[str]:
    return [b["data"] for row in msg.get("buttons") or [] for b in row]


async def _close_from_the_chat(staff, ref):
    await staff.tap("รับเรื่อง")
    await staff.tap("ปิดเรื่อง")
    await staff.tap("ช่วยเหลือ ณ จุดที่พบ")
    assert "ปิดเรื่องแล้ว" in (await staff.card(ref))["text"]


async def test_asked_once_after_the_closing_is_told_answered_once_and_counted(sandbox):
    v = sandbox.volunteer("alice")
    ref = await full_report(v)
    staff = sandbox.team("pattaya-city")
    await _close_from_the_chat(staff, ref)
    await sandbox.settle()
    msgs = await v.messages()
    assert "ปิดแล้ว" in msgs[-2]["text"] and ref in msgs[-2]["text"]  # told first
    ask = msgs[-1]
    assert "พอใจกับการดูแลเรื่องนี้แค่ไหนคะ" in ask["text"] and ref in ask["text"]
    assert _buttons(ask) == ["rate:1:good", "rate:1:ok", "rate:1:bad"]
    assert [b["label"] for b in ask["buttons"][0]] == ["😊 ดี", "😐 พอใช้", "😞 ไม่ดี"]

    # somebody else pressing it (a forwarded button) changes nothing
    mallory = sandbox.volunteer("mallory")
    assert "ปุ่มนี้ใช้ไม่ได้แล้วค่ะ" in await mallory.choose("rate:1:bad")
    thanks = await v.choose("rate:1:ok")
    assert "บันทึกแล้ว" in thanks
    again = await v.choose("rate:1:bad")  # one tap: the first answer stays
    assert "ได้รับคำตอบของคุณไว้แล้ว" in again

    from storage import repo

    async with sandbox.services.db.session() as s:
        report = await repo.report_by_ref(s, ref)
        history = [(e.action, e.actor, e.detail) for e in await repo.history(s, report.id)]
    assert report.rating == "ok" and report.rating_asked_at == sandbox.clock()
    assert [h for h in history if h[0] == "rating"] == [("rating", "sandbox:alice", {"rating": "ok"})]

    # reopened and closed again: not asked a second time
    asked = len([m for m in await v.messages() if "rate:1:good" in _buttons(m)])
    await staff.tap("ยกเลิกการปิด")  # the closer's undo, within its ten minutes
    await staff.tap("ปิดเรื่อง")
    await staff.tap("ช่วยเหลือ ณ จุดที่พบ")
    await sandbox.settle()
    assert len([m for m in await v.messages() if "rate:1:good" in _buttons(m)]) == asked == 1

    # the console: the answer on the report's history and in the year's figures
    b = Browser(sandbox)
    try:
        await b.login(token_in(await staff.send("/console")))
        page = await (await b.get(f"/console/reports/{report.id}")).text()
        assert "rating" in page and "😐 พอใช้" in page
        figures = await (await b.get("/console/figures")).text()
        cell = re.search(r'class="ratings">([^<]*)<', figures).group(1)
        assert "😐 พอใช้ 1" in cell and "😊 ดี 0" in cell and "😞 ไม่ดี 0" in cell
    finally:
        await b.close()


async def _settle_but_the_held(sandbox, chat: str, timeout: float = 5.0) -> list:
    """Delivers until only rows held for later are pending (bounded); the chat's rows."""
    import asyncio

    from storage import repo

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await sandbox.services.outbox.deliver_due()
        async with sandbox.services.db.session() as s:
            rows = await repo.outbox_for_chat(s, "sandbox", chat)
        now = sandbox.clock()
        if all(r.status != "pending" or (r.not_before and r.not_before > now) for r in rows) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def test_asked_at_the_end_of_the_quiet_hours_and_the_chat_not_held(sandbox):
    from storage import repo

    sandbox.clock.now = bkk(2026, 11, 25, 20, 30)
    v = sandbox.volunteer("night")
    ref = await full_report(v)
    staff = sandbox.team("pattaya-city")
    sandbox.clock.now = bkk(2026, 11, 25, 22, 0)
    await _close_from_the_chat(staff, ref)
    await sandbox.services.outbox.deliver_due()
    msgs = await v.messages()
    assert "ปิดแล้ว" in msgs[-1]["text"]  # told at once
    assert not any(_buttons(m)[:1] == ["rate:1:good"] for m in msgs)  # not asked at night
    # the held question does not hold the chat: the reporter's own talk goes on and is delivered
    assert "รายงานล่าสุดของคุณ" in await v.command("mine")
    rows = await _settle_but_the_held(sandbox, v.chat)
    async with sandbox.services.db.session() as s:
        assert (await repo.report_by_ref(s, ref)).rating_asked_at == bkk(2026, 11, 25, 22, 0)
    held = [r for r in rows if "rate:1:good" in str(r.payload)]
    assert len(held) == 1 and held[0].status == "pending" and held[0].not_before == bkk(2026, 11, 26, 7, 0)
    assert rows[-1].id > held[0].id and rows[-1].status == "sent"  # "my reports", queued after it, went first

    sandbox.clock.now = bkk(2026, 11, 26, 7, 0)
    await sandbox.settle()
    asked = [m for m in await v.messages() if _buttons(m)[:1] == ["rate:1:good"]]
    assert len(asked) == 1 and ref in asked[0]["text"]
    async with sandbox.services.db.session() as s:
        assert (await repo.outbox_get(s, held[0].id)).status == "sent"
