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
        assert "ส่งเพิ่มได้อีก 3 รูป" in "".join(await tg.send(v, VOLUNTEER, photo=sizes))
    else:
        await tg.press(v, VOLUNTEER, "nophoto:")
    got = "".join(await tg.send(v, VOLUNTEER, location={"latitude": PATTAYA[0], "longitude": PATTAYA[1]}))
    assert "พบใคร" in got
    await tg.press(v, VOLUNTEER, "who:homeless")
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
    assert len(told) == 4
    assert "รับเรื่องแล้ว" in told[0] and ref in told[0]
    assert "ลงพื้นที่แล้ว" in told[1]
    assert "ปิดแล้ว" in told[2]
    assert "พอใจกับการดูแลเรื่องนี้แค่ไหนคะ" in told[3]  # then, once, the rating (tests/test_rating.py)
    presses = 3 + 1 + 4  # the volunteer's choices, the outsider's, staff's (ack, onsite, close, outcome)
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


LOCATION_TAPS = 2  # the attachment button, then "send my location" (or the keyboard's button, then confirm)


async def test_fastest_report_on_telegram_takes_at_most_six_taps_after_the_photo(tg):
    await bind_group(tg)
    v = VOLUNTEER_CHAT
    await tg.send(v, VOLUNTEER, text="สวัสดี")
    await tg.press(v, VOLUNTEER, "consent:yes")
    tg.fake.add_file("AgADfast", jpeg())
    await tg.send(v, VOLUNTEER, photo=[{"file_id": "AgADfast", "file_unique_id": "f", "width": 800, "height": 600}])
    taps = 0
    got = await tg.send(v, VOLUNTEER, location={"latitude": PATTAYA[0], "longitude": PATTAYA[1]})
    taps += LOCATION_TAPS
    removed = [c for c in tg.fake.sent("sendMessage") if (c.params.get("reply_markup") or {}).get("remove_keyboard")]
    assert removed and "ได้รับตำแหน่ง" in removed[-1].params["text"], "the location keyboard goes once answered"
    assert "พบใคร" in "".join(got)
    await tg.press(v, VOLUNTEER, "who:homeless")
    taps += 1
    ref = ref_in("".join(await tg.press(v, VOLUNTEER, "confirm:send")))
    taps += 1
    assert taps <= 6, taps
    text = card_text(card_of(tg, ref))
    for fact in ("ไร้บ้าน", "1 คน", "ไม่เร่งด่วน", "ชลบุรี"):
        assert fact in text, fact


async def test_urgent_on_telegram_numbers_first_and_card_at_once(tg):
    await bind_group(tg)
    v = VOLUNTEER_CHAT
    await tg.send(v, VOLUNTEER, text="สวัสดี")
    await tg.press(v, VOLUNTEER, "consent:yes")
    await tg.press(v, VOLUNTEER, "nophoto:")
    await tg.send(v, VOLUNTEER, location={"latitude": PATTAYA[0], "longitude": PATTAYA[1]})
    await tg.press(v, VOLUNTEER, "who:child")
    got = await tg.press(v, VOLUNTEER, "child:alone")
    assert all(n in got[0] for n in ("1669", "191", "1300")), got
    ref = ref_in("".join(await tg.press(v, VOLUNTEER, "confirm:send")))
    text = card_text(card_of(tg, ref))
    assert "เร่งด่วน" in text and "📝" not in text and "คุ้มครองเด็ก พ.ศ. 2546" in text


async def test_summary_changes_are_edits_in_place_and_old_buttons_are_stale(tg):
    await bind_group(tg)
    v = VOLUNTEER_CHAT
    await tg.send(v, VOLUNTEER, text="สวัสดี")
    await tg.press(v, VOLUNTEER, "consent:yes")
    await tg.press(v, VOLUNTEER, "nophoto:")
    await tg.send(v, VOLUNTEER, location={"latitude": PATTAYA[0], "longitude": PATTAYA[1]})
    who = tg.current(v, "who:homeless")
    who_message = tg.button_message(v, who)
    await tg.press(v, VOLUNTEER, who)
    summary = tg.button_message(v, tg.current(v, "count:2"))
    sent_before = len(tg.fake.texts(v))
    assert await tg.press(v, VOLUNTEER, "count:2") == [], "no new message"
    edits = [c for c in tg.fake.sent("editMessageText") if str(c.params["chat_id"]) == str(v)]
    assert edits and int(edits[-1].params["message_id"]) == summary["message_id"]
    assert "✓ 2 คน" in str(tg.fake.messages[(v, summary["message_id"])]["reply_markup"])
    # the who question's button, pressed again: an alert, nothing changed
    await tg.press(v, VOLUNTEER, who, message=who_message)
    alert = tg.fake.sent("answerCallbackQuery")[-1].params
    assert "ตอบไปแล้ว" in alert.get("text", "") and len(tg.fake.texts(v)) == sent_before
    async with tg.services.db.session() as s:
        from storage import repo

        conv = await repo.conversation_get(s, "telegram", str(v), str(VOLUNTEER["id"]))
    assert conv.step == "confirm" and conv.state["draft"]["count"] == "2"


async def unbind_sandbox(tg) -> None:
    """The harness runs the sandbox too, which binds every team a chat: not here."""
    import sqlalchemy as sa

    from storage.models import ChatBinding

    async with tg.services.db.transaction() as s:
        await s.exec(sa.delete(ChatBinding).where(ChatBinding.platform == "sandbox"))


async def test_a_team_without_a_chat_hands_the_report_up_the_chain(tg):
    await unbind_sandbox(tg)
    code = await tg.services.engine.create_invite("pcdp-20")  # the centre is bound; Pattaya City is not
    await tg.send(GROUP, STAFF, text=f"/bind {code}", entities=[{"offset": 0, "length": 5, "type": "bot_command"}])
    ref = await report(tg, photo=False)
    text = card_text(card_of(tg, ref))
    assert "ศูนย์คุ้มครองคนไร้ที่พึ่งจังหวัดชลบุรี" in text and "เมืองพัทยา ยังไม่มีกลุ่มแชต" in text
    health = await (await tg.client.get("/healthz")).json()
    assert health["unreachable_teams"]["pattaya-city"] == "pcdp-20"
    assert health["unreachable_teams"]["dsdw-national"] == "pcdp-20" or health["unreachable_teams"]["dsdw-national"] is None


async def test_a_report_nobody_can_see_in_a_chat_gives_the_reporter_the_hotline(tg):
    await unbind_sandbox(tg)
    v = VOLUNTEER_CHAT  # no group bound at all
    await tg.send(v, VOLUNTEER, text="สวัสดี")
    await tg.press(v, VOLUNTEER, "consent:yes")
    await tg.press(v, VOLUNTEER, "nophoto:")
    await tg.send(v, VOLUNTEER, text="หน้าวัดแห่งหนึ่ง")  # a landmark naming no place: the national desk
    await tg.press(v, VOLUNTEER, "who:homeless")
    done = "".join(await tg.press(v, VOLUNTEER, "confirm:send"))
    assert ref_in(done) and "ยังไม่มีทีมที่รับเรื่องทางแชตได้" in done and "1300" in done
