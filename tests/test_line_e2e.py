"""End to end through LINE (a loopback fake of the Messaging API), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from sqlmodel import select

from storage import repo
from storage.models import AccessLog
from tests.chat import ref_in
from tests.conftest import jpeg
from tests.fake_line import flex_postbacks, quick_replies

PATTAYA = (12.9277, 100.8724)
VOLUNTEER = "U00000000000000000000000000000a11"
STAFF = "U00000000000000000000000000000501"
OUTSIDER = "U00000000000000000000000000000666"
GROUP = "C00000000000000000000000000000p01"
OTHER_GROUP = "C00000000000000000000000000000x99"


async def bind_group(line, group=GROUP, user=STAFF, team="pattaya-city"):
    code = await line.services.engine.create_invite(team)
    staff = line.group(group, user)
    assert "ผูกกับ" in await staff.text(f"/bind {code}")
    return staff


def card_of(sent_list, ref):
    cards = [s for s in sent_list if s.message.get("type") == "flex" and ref in s.text]
    assert cards, f"no card {ref}"
    return cards[-1]


async def tap(chat, sent, label):
    for text, data in flex_postbacks(sent.message):
        if label in text:
            return await chat.postback(data)
    raise AssertionError(f"no button {label!r}")


async def test_full_report_through_line_to_a_closed_case(line):
    fake = line.fake
    fake.names[STAFF] = "สมชาย ใจดี"
    staff = await bind_group(line)

    v = line.user(VOLUNTEER)
    greeting = await v.follow()
    assert "ประกาศความเป็นส่วนตัว" in greeting
    consent_buttons = quick_replies(fake.to(VOLUNTEER)[-1])
    assert any(a["type"] == "postback" and a["data"] == "consent:yes" for a in consent_buttons)
    assert all(len(a["label"]) <= 20 for a in consent_buttons)

    assert "ส่งรูปถ่าย" in await v.postback("consent:yes")
    kinds = {a["type"] for a in quick_replies(fake.to(VOLUNTEER)[-1])}
    assert {"camera", "cameraRoll", "postback"} <= kinds

    assert "ส่งเพิ่มได้อีก 3 รูป" in await v.image(jpeg())
    got = await v.location(*PATTAYA)
    assert "ชลบุรี" in got and "พบใคร" in got
    who = quick_replies(fake.to(VOLUNTEER)[-1])
    assert len(who) <= 13 and all(len(a["label"]) <= 20 for a in who)
    assert "ตรวจสอบก่อนส่ง" in await v.postback("who:homeless")
    summary = quick_replies(fake.to(VOLUNTEER)[-1])
    assert len(summary) <= 13 and all(len(a["label"]) <= 20 for a in summary)
    done = await v.postback("confirm:send")
    ref = ref_in(done)

    # the team's LINE group gets a Flex card with the photo behind a signed HTTPS link
    card = card_of(staff.new(), ref)
    assert card.via == "push" and card.retry_key
    hero = card.message["contents"]["hero"]["url"]
    assert hero.startswith("https://namjai.example/line/photos/") and "exp=" in hero and "sig=" in hero
    path = urlsplit(hero)
    photo = await line.client.get(f"{path.path}?{path.query}")
    assert photo.status == 200 and (await photo.read())[:2] == b"\xff\xd8"
    forged = re.sub(r"sig=[0-9a-f]+", "sig=" + "0" * 64, f"{path.path}?{path.query}")
    assert (await line.client.get(forged)).status == 403
    async with line.services.db.session() as s:
        logged = (await s.exec(select(AccessLog).where(AccessLog.actor == "line:photo-link"))).all()
    assert len(logged) == 1

    # a LINE group that is not the team's: its postback changes nothing
    outsider = line.group(OTHER_GROUP, OUTSIDER)
    report_id = int(flex_postbacks(card.message)[0][1].split(":")[1])
    assert "ไม่ได้อยู่ในทีม" in await outsider.postback(f"r:{report_id}:ack")
    async with line.services.db.session() as s:
        assert (await repo.report_get(s, report_id)).status == "new"
    assert not v.new()  # nothing told to the reporter

    # staff work the case with the card's postback buttons; each update is a new card
    await tap(staff, card, "รับเรื่อง")
    card = card_of(fake.to(GROUP), ref)
    assert "รับเรื่องแล้ว" in card.text
    await tap(staff, card, "ลงพื้นที่")
    card = card_of(fake.to(GROUP), ref)
    await tap(staff, card, "ปิดเรื่อง")
    outcomes = fake.to(GROUP)[-1]  # LINE cannot edit: the card comes again, asking which outcome
    assert outcomes.message["type"] == "flex" and f"ปิดเรื่อง {ref} ด้วยผล" in outcomes.text
    await tap(staff, outcomes, "ช่วยเหลือ ณ จุดที่พบ")
    closed = card_of(fake.to(GROUP), ref)
    assert "ปิดเรื่องแล้ว" in closed.text
    assert [label for label, _ in flex_postbacks(closed.message)] == ["↩️ ยกเลิกการปิด", "เปิดอีกครั้ง"]

    # the reporter was told each step, by push (their reply token was spent long ago)
    told = v.new()
    assert [s.via for s in told] == ["push", "push", "push", "push"]
    assert "รับเรื่องแล้ว" in told[0].text and ref in told[0].text
    assert "ลงพื้นที่แล้ว" in told[1].text
    assert "ปิดแล้ว" in told[2].text
    assert "พอใจกับการดูแลเรื่องนี้แค่ไหนคะ" in told[3].text  # then, once, the rating (tests/test_rating.py)
    keys = [s.retry_key for s in told]
    assert all(keys) and len(set(keys)) == 4

    async with line.services.db.session() as s:
        report = await repo.report_by_ref(s, ref)
        steps = [(e.action, e.to_status, e.actor, e.actor_name) for e in await repo.history(s, report.id)]
    assert steps == [
        ("submit", "new", f"line:{VOLUNTEER}", None),
        ("ack", "acknowledged", f"line:{STAFF}", "สมชาย ใจดี"),
        ("onsite", "on_site", f"line:{STAFF}", "สมชาย ใจดี"),
        ("close", "closed", f"line:{STAFF}", "สมชาย ใจดี"),
    ]
    # the loading animation was shown in the volunteer's chat, never in the group
    loading = [c.json["chatId"] for c in fake.calls if c.path == "/v2/bot/chat/loading/start"]
    assert loading and set(loading) == {VOLUNTEER}


async def test_images_of_one_set_make_one_report(line):
    fake = line.fake
    staff = await bind_group(line)
    v = line.user(VOLUNTEER)
    await v.follow()
    await v.postback("consent:yes")
    from tests.fake_line import event_from

    events = []
    for i, color in enumerate([(200, 10, 10), (10, 200, 10), (10, 10, 200)], start=1):
        mid = f"set-{i}"
        fake.contents[mid] = jpeg(color)
        events.append(event_from("image_set", user=VOLUNTEER, id=mid))
    await line.send(*events)  # one webhook, three events: processed concurrently
    got = v.new()
    # the flow answers each photo (and asks for the location again each time): 3 x 2 messages
    assert sum("ได้รับรูปแล้ว" in s.text for s in got) == 3 and "ส่งเพิ่มได้อีก 1 รูป" in "\n".join(s.text for s in got)
    async with line.services.db.session() as s:
        conv = await repo.conversation_get(s, "line", VOLUNTEER, VOLUNTEER)
    assert len(conv.state["draft"]["photos"]) == 3

    await v.location(*PATTAYA)
    await v.postback("who:homeless")
    ref = ref_in(await v.postback("confirm:send"))
    card = card_of(staff.new(), ref)
    photo_links = [b for b in re.findall(r"https://namjai\.example/line/photos/[^\"' ]+", str(card.message))]
    assert len({urlsplit(u).path for u in photo_links}) == 3  # hero + two more photo links
    async with line.services.db.session() as s:
        reports = [r for r in [await repo.report_by_ref(s, ref)] if r]
    assert len(reports) == 1 and len(reports[0].photos) == 3


async def test_comment_by_quoting_a_card(line):
    staff = await bind_group(line)
    v = line.user(VOLUNTEER)
    await v.follow()
    await v.postback("consent:yes")
    await v.postback("nophoto:")
    await v.location(*PATTAYA)
    await v.postback("who:homeless")
    ref = ref_in(await v.postback("confirm:send"))
    card = card_of(staff.new(), ref)
    text = await staff.text("ไปดูแล้ว ไม่พบตัว จะกลับไปดูตอนเย็น", quotedMessageId=card.id)
    assert "บันทึกความเห็น" in text
    assert "ตอนเย็น" in card_of(line.fake.to(GROUP), ref).text


LOCATION_TAPS = 2  # the quick reply "send location", then "share" on LINE's map


async def test_fastest_report_on_line_takes_at_most_six_taps_after_the_photo(line):
    staff = await bind_group(line)
    v = line.user(VOLUNTEER)
    await v.follow()
    await v.postback("consent:yes")
    await v.image(jpeg())
    taps = 0
    await v.location(*PATTAYA)
    taps += LOCATION_TAPS
    await v.postback("who:homeless")
    taps += 1
    ref = ref_in(await v.postback("confirm:send"))
    taps += 1
    assert taps <= 6, taps
    card = card_of(staff.new(), ref)
    for fact in ("ไร้บ้าน", "1 คน", "ไม่เร่งด่วน", "ชลบุรี"):
        assert fact in card.text, fact


async def test_urgent_on_line_numbers_first_and_card_at_once(line):
    staff = await bind_group(line)
    v = line.user(VOLUNTEER)
    await v.follow()
    await v.postback("consent:yes")
    await v.postback("nophoto:")
    await v.location(*PATTAYA)
    sent = await v.act(v.event("postback_group", data=v.current("who:sick")))
    assert all(n in sent[0].text for n in ("1669", "191", "1300")), sent[0].text
    ref = ref_in(await v.postback("confirm:send"))
    card = card_of(staff.new(), ref)
    assert "เร่งด่วน" in card.text and "📝" not in card.text


async def test_old_quick_replies_on_line_answer_already_done(line):
    await bind_group(line)
    v = line.user(VOLUNTEER)
    await v.follow()
    await v.postback("consent:yes")
    await v.postback("nophoto:")
    await v.location(*PATTAYA)
    who = v.current("who:homeless")
    await v.postback(who)
    assert "ตอบไปแล้ว" in await v.postback(who.replace("homeless", "begging"))
    async with line.services.db.session() as s:
        conv = await repo.conversation_get(s, "line", VOLUNTEER, VOLUNTEER)
    assert conv.state["draft"]["who"] == ["homeless"]
