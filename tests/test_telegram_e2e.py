"""End to end through Telegram webhooks and a fake Bot API, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.chat import ref_in
from tests.conftest import jpeg
from tests.fake_telegram import FakeTelegram, TelegramHarness

PATTAYA = (12.9277, 100.8724)
VOLUNTEER_CHAT = 5550001
VOLUNTEER = TelegramHarness.user(5550001, "Malee")
STAFF = TelegramHarness.user(7770001, "Somchai")
OUTSIDER = TelegramHarness.user(8880001, "Mallory")
GROUP = -1001234567890
OTHER_GROUP = -1009999999999


@pytest.fixture
async def tg(db_url, tmp_path, clock):
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import SERVICES, create_app
    from bot.settings import Settings
    from bot.teams import EXAMPLE

    async with FakeTelegram() as fake:
        settings = Settings(
            _env_file=None, database_url=db_url, photo_dir=str(tmp_path / "photos"), teams_file=str(EXAMPLE),
            telegram_token="123:ABC", telegram_webhook_secret="s3cret", telegram_api_base=fake.url, sweep_seconds=0.2, scheduler=False,
        )
        app = create_app(settings, clock=clock)
        async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
            yield TelegramHarness(client, app[SERVICES], fake, clock)


async def bind_group(tg: TelegramHarness, chat: int = GROUP) -> None:
    code = await tg.services.engine.create_invite("pattaya-city")
    got = await tg.send(chat, STAFF, text=f"/bind {code}", entities=[{"offset": 0, "length": 5, "type": "bot_command"}])
    assert any("ผูกกับ" in t for t in got), got


async def report(tg: TelegramHarness, photo: bool = True) -> str:
    v = VOLUNTEER_CHAT
    assert "ประกาศความเป็นส่วนตัว" in "".join(await tg.send(v, VOLUNTEER, text="สวัสดี"))
    assert "ส่งรูปถ่าย" in "".join(await tg.press(v, VOLUNTEER, "consent:yes"))
    if photo:
        tg.fake.add_file("AgADphoto1", jpeg())
        sizes = [{"file_id": "AgADsmall", "file_unique_id": "a", "width": 90, "height": 67},
                 {"file_id": "AgADphoto1", "file_unique_id": "b", "width": 1280, "height": 960}]
        assert "ได้รับรูปแล้ว (1/4)" in "".join(await tg.send(v, VOLUNTEER, photo=sizes))
    else:
        await tg.press(v, VOLUNTEER, "nophoto:")
    got = "".join(await tg.send(v, VOLUNTEER, location={"latitude": PATTAYA[0], "longitude": PATTAYA[1]}))
    assert "พบใคร" in got
    for data in ("who:homeless", "who:done", "count:1", "urg:normal", "note:skip"):
        await tg.press(v, VOLUNTEER, data)
    return ref_in("".join(await tg.press(v, VOLUNTEER, "confirm:send")))


def card_of(tg: TelegramHarness, ref: str) -> dict:
    for (chat, _), msg in tg.fake.messages.items():
        if chat == GROUP and ref in (msg.get("caption") or msg.get("text") or ""):
            return msg
    raise AssertionError(f"no card {ref}")


def card_text(msg: dict) -> str:
    return msg.get("caption") or msg.get("text") or ""


async def test_report_through_telegram_to_closed_case(tg):
    await bind_group(tg)
    ref = await report(tg)
    assert tg.fake.sent("getFile") and not tg.fake.sent("getFile", ok=False)

    card = card_of(tg, ref)
    assert "photo" in card, "the card goes as the photo with the text as its caption"
    buttons = [b for row in card["reply_markup"]["inline_keyboard"] for b in row]
    assert any(b.get("url", "").startswith("https://www.google.com/maps/") for b in buttons)
    ack = next(b["callback_data"] for b in buttons if b.get("callback_data", "").endswith(":ack"))
    report_id = int(ack.split(":")[1])

    # a button pressed in a group that is not the team's changes nothing
    outsider_card = dict(card, chat=TelegramHarness.chat(OTHER_GROUP))
    await tg.press(OTHER_GROUP, OUTSIDER, f"r:{report_id}:ack", message=outsider_card)
    assert "ใหม่" in card_text(card_of(tg, ref))
    async with tg.services.db.session() as s:
        from storage import repo

        assert (await repo.report_get(s, report_id)).status == "new"
    alert = tg.fake.sent("answerCallbackQuery")[-1].params
    assert alert.get("show_alert") in (True, "true", "True") and "ไม่ได้อยู่ในทีม" in alert["text"]
    assert not tg.fake.texts(OTHER_GROUP), "the refusal is an alert on the button, not a message in the chat"

    told_before = len(tg.fake.texts(VOLUNTEER_CHAT))
    await tg.press(GROUP, STAFF, f"r:{report_id}:ack")
    assert "รับเรื่องแล้ว" in card_text(card_of(tg, ref))
    await tg.press(GROUP, STAFF, f"r:{report_id}:onsite")
    assert await tg.press(GROUP, STAFF, f"r:{report_id}:close") == []  # no new message: the card asks
    picking = card_of(tg, ref)
    assert picking["message_id"] == card["message_id"] and f"ปิดเรื่อง {ref} ด้วยผล" in card_text(picking)
    outcome = next(
        b["callback_data"]
        for (chat, _), m in sorted(tg.fake.messages.items())
        if chat == GROUP
        for row in (m.get("reply_markup") or {}).get("inline_keyboard", [])
        for b in row
        if b.get("callback_data", "").startswith(f"r:{report_id}:close:")
    )
    await tg.press(GROUP, STAFF, outcome)
    closed = card_of(tg, ref)
    assert "ปิดเรื่องแล้ว" in card_text(closed) and closed["message_id"] == card["message_id"]

    edits = [c for c in tg.fake.sent() if c.method.startswith("editMessage")]
    assert len(edits) >= 3 and all(int(c.params["message_id"]) == card["message_id"] for c in edits)
    assert not [c for c in tg.fake.sent("sendPhoto") if ref in (c.params.get("caption") or "")][1:], "one card, edited"

    told = tg.fake.texts(VOLUNTEER_CHAT)[told_before:]
    assert len(told) == 3
    assert "รับเรื่องแล้ว" in told[0] and ref in told[0]
    assert "ลงพื้นที่แล้ว" in told[1]
    assert "ปิดแล้ว" in told[2]
    presses = 7 + 1 + 4  # the volunteer's choices, the outsider's, staff's (ack, onsite, close, outcome)
    assert len(tg.fake.sent("answerCallbackQuery")) == presses

    # staff comment by replying to the card
    got = await tg.send(GROUP, STAFF, text="กลับไปดูอีกครั้งตอนเย็น", reply_to_message=closed)
    assert any("บันทึกความเห็น" in t for t in got)
    assert "ตอนเย็น" in card_text(card_of(tg, ref))

    async with tg.services.db.session() as s:
        steps = [(e.action, e.actor) for e in await repo.history(s, report_id)]
    assert steps == [
        ("submit", "telegram:5550001"), ("ack", "telegram:7770001"), ("onsite", "telegram:7770001"),
        ("close", "telegram:7770001"), ("comment", "telegram:7770001"),
    ]


async def test_429_storm_delays_but_neither_loses_nor_duplicates(tg):
    await bind_group(tg)
    tg.fake.fail_next(5, status=429, retry_after=1, methods={"sendMessage", "sendPhoto"})
    v = VOLUNTEER_CHAT
    assert await tg.post(tg.message(v, VOLUNTEER, text="สวัสดี")) == 200
    await tg.settle(advance=True)
    await tg.press(v, VOLUNTEER, "consent:yes")
    await tg.settle(advance=True)
    tg.fake.fail_next(3, status=500, methods={"sendMessage"})
    tg.fake.fail_next(4, status=429, retry_after=1, methods={"sendMessage"})
    await tg.press(v, VOLUNTEER, "nophoto:")
    await tg.settle(advance=True)

    assert len(tg.fake.sent("sendMessage", ok=False)) == 12
    texts = tg.fake.texts(v)
    assert len(texts) == len(set(texts)), "a message was sent twice"
    assert "ประกาศความเป็นส่วนตัว" in texts[0] and "ขอบคุณ" in texts[1] and "ส่งรูปถ่าย" in texts[2]
    assert any("ตำแหน่ง" in t for t in texts[3:])
    async with tg.services.db.session() as s:
        from storage import repo

        assert (await repo.outbox_counts(s)) == {"sent": len(texts) + 1}  # + the group's bind answer


async def test_refused_staff_action_is_an_alert_on_the_button(tg):
    await bind_group(tg)
    ref = await report(tg, photo=False)
    card = card_of(tg, ref)
    assert "photo" not in card  # no photo: the card is text
    report_id = int(card["reply_markup"]["inline_keyboard"][0][0]["callback_data"].split(":")[1])
    await tg.press(GROUP, STAFF, f"r:{report_id}:close:not_found", message=card)
    assert "ปิดเรื่องแล้ว" in card_of(tg, ref)["text"]
    answered = len(tg.fake.sent("answerCallbackQuery"))
    await tg.press(GROUP, STAFF, f"r:{report_id}:ack", message=card)
    assert len(tg.fake.sent("answerCallbackQuery")) == answered + 1  # answered once: by the alert
    alert = tg.fake.sent("answerCallbackQuery")[-1].params
    assert alert.get("show_alert") in (True, "true", "True") and "ปิดไปแล้ว" in alert["text"]
