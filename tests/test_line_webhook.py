"""The LINE webhook: signatures, the mapping of each event kind, redeliveries, joins."""

from __future__ import annotations

import json

from sqlmodel import select

from storage.models import InboxEvent
from tests.conftest import jpeg
from tests.fake_line import GROUP_FIXTURE_ID, body_of, fixture, sign

USER = "U4af4980629a1b2c3d4e5f60718293a4b"


async def inbox(line) -> list[dict]:
    async with line.services.db.session() as s:
        rows = (await s.exec(select(InboxEvent).order_by(InboxEvent.id))).all()
    return [r.payload for r in rows]


async def post_fixture(line, name: str):
    raw = json.dumps(fixture(name), ensure_ascii=False)
    for ev in fixture(name)["events"]:
        line.fake.issue(ev)
    resp = await line.post(body=raw)
    assert resp.status == 200, await resp.text()
    await line.settle()
    return await inbox(line)


async def test_bad_signature_is_refused_and_nothing_stored(line):
    raw = json.dumps(fixture("text"))
    resp = await line.post(body=raw, signature=sign("another-secret", raw))
    assert resp.status == 400
    resp = await line.post(body=raw, signature="")
    assert resp.status == 400
    assert await inbox(line) == []
    assert not line.fake.sent


async def test_follow_is_start_and_greets_with_the_privacy_notice(line):
    [ev] = await post_fixture(line, "follow")
    assert ev["type"] == "command" and ev["name"] == "start"
    assert ev["address"] == {"platform": "line", "chat_id": USER, "user_id": USER, "is_group": False}
    assert ev["event_id"] == "01JD0000000000000000FOLLOW"
    [sent] = line.fake.to(USER)
    assert sent.via == "reply" and "ประกาศความเป็นส่วนตัว" in sent.text


M4A = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x00" * 64


async def test_text_image_location_sticker_audio(line):
    from tests.fake_line import event_from

    await line.send(event_from("postback_group", user=USER, data="consent:yes"))
    line.fake.contents["354718705033693859"] = jpeg()
    line.fake.contents["325708001"] = M4A
    for name in ("text", "image", "location", "sticker", "audio"):
        await post_fixture(line, name)
    events = (await inbox(line))[1:]
    assert [e["type"] for e in events] == ["text", "photo", "location", "unsupported", "voice"]
    text, photo, location, sticker, audio = events
    assert text["text"] == "สวัสดี" and text["reply_to"] is None
    assert photo["media"] == "354718705033693859"
    assert location["lat"] == 12.9277 and location["lon"] == 100.8724 and location["title"] == "Walking Street"
    assert sticker["kind"] == "sticker" and audio["media"] == "325708001"
    said = "\n".join(line.fake.texts(USER))
    assert "สติกเกอร์" in said and "ได้รับข้อความเสียงแล้ว" in said  # the voice note is kept


async def test_group_postback_and_quoted_reply(line):
    line.fake.names["U1b2c3d4e5f60718293a4b5c6d7e8f9a0"] = "Somchai"
    [postback] = await post_fixture(line, "postback_group")
    assert postback["type"] == "choice" and postback["data"] == "r:1:ack"
    assert postback["address"] == {"platform": "line", "chat_id": GROUP_FIXTURE_ID, "user_id": "U1b2c3d4e5f60718293a4b5c6d7e8f9a0", "is_group": True}
    assert postback["user_name"] == "Somchai"
    quoted = (await post_fixture(line, "group_reply"))[-1]
    assert quoted["type"] == "text" and quoted["reply_to"] == "500000000000001"


async def test_redelivered_event_is_processed_once(line):
    await post_fixture(line, "redelivered")
    await post_fixture(line, "redelivered")
    assert len(await inbox(line)) == 1
    assert len(line.fake.to(USER)) == 1
    # a redelivered event's reply token is not used: the answer is pushed
    assert line.fake.to(USER)[0].via == "push"


async def test_unknown_event_is_logged_not_stored(line):
    await post_fixture(line, "unknown")
    assert await inbox(line) == []


async def test_join_tells_the_group_how_to_bind_once(line):
    await post_fixture(line, "join")
    await post_fixture(line, "join")  # LINE redelivers
    said = line.fake.texts(GROUP_FIXTURE_ID)
    assert len(said) == 1 and "/bind" in said[0]
    assert [(e["type"], e["name"]) for e in await inbox(line)] == [("command", "joined")]
    await post_fixture(line, "member_joined")  # logged only
    assert len(line.fake.texts(GROUP_FIXTURE_ID)) == 1


async def test_plain_group_chatter_is_ignored_and_no_loading_in_groups(line):
    from tests.fake_line import event_from

    await line.send(event_from("text", user="Uaaa", group=GROUP_FIXTURE_ID, text="กินข้าวยัง"))
    assert not line.fake.to(GROUP_FIXTURE_ID)
    assert not [c for c in line.fake.calls if c.path.startswith("/v2/bot/chat/loading")]
    assert not [c for c in line.fake.calls if "/member/" in c.path]  # no profile lookup for chatter


async def test_photo_download_failure_is_told(line):
    await post_fixture(line, "follow")
    from tests.fake_line import event_from

    await line.send(event_from("postback_group", user=USER, data="consent:yes"))
    await line.send(event_from("image", user=USER, id="missing-on-line"))
    assert "รูป" in line.fake.texts(USER)[-1]


async def test_console_verify_request_is_answered(line):
    resp = await line.post(body='{"destination":"Ubot","events":[]}')
    assert resp.status == 200 and await inbox(line) == []
