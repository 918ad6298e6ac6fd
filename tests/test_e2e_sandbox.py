"""End to end through the sandbox's JSON API, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from tests.chat import joined, ref_in
from tests.conftest import jpeg

PATTAYA = (12.9277, 100.8724)  # Walking Street, inside Pattaya City's area
CHONBURI_TOWN = (13.3611, 100.9847)  # Chonburi town: the provincial centre's


async def consent(v):
    await v.send("สวัสดี")
    return await v.choose("consent:yes")


async def full_report(v, *, location=PATTAYA, photo=True, who=("homeless",), urgency="normal") -> str:
    await consent(v)
    if photo:
        await v.photo(jpeg())
    else:
        await v.choose("nophoto:")
    await v.location(*location)
    return await answer_and_send(v, who=who, urgency=urgency)


async def answer_and_send(v, *, who=("homeless",), count="1", urgency="normal") -> str:
    """Answers who (one tap; more through "change who"), whether a child is alone, changes the
    count and marks danger when asked to, then sends: the reference number."""
    if urgency == "injury" and "sick" not in who:  # a sick or injured person is what makes it so
        who = ("sick", *who)
    await v.choose(f"who:{who[0]}")
    if who[0] == "child":
        await v.choose("child:alone" if urgency == "child_alone" else "child:adult")
    if who[1:]:
        await v.choose("edit:who")
        for w in who[1:]:
            await v.choose(f"who:{w}")
        await v.choose("who:done")
    if count != "1":
        await v.choose(f"count:{count}")
    if urgency == "danger":
        await v.choose("urg:danger")
    return ref_in(await v.choose("confirm:send"))


async def test_full_report_to_closed_case_with_reporter_told(sandbox):
    v = sandbox.volunteer("alice")
    first = await v.send("สวัสดี")
    assert "ประกาศความเป็นส่วนตัว" in first
    after_consent = await v.choose("consent:yes")
    assert "ส่งรูปถ่าย" in after_consent
    assert "ได้รับรูปแล้วค่ะ ส่งเพิ่มได้อีก 3 รูป" in await v.photo(jpeg())
    got = await v.location(*PATTAYA)
    assert "ชลบุรี" in got and "พบใคร" in got
    assert "ตรวจสอบก่อนส่ง" in await v.choose("who:homeless")
    assert "เลือกได้หลายข้อ" in await v.choose("edit:who")
    await v.choose("who:elderly")
    assert "1 คน" in await v.choose("who:done")
    summary = await v.send("นอนอยู่หน้าร้านสะดวกซื้อ")
    assert "ตรวจสอบก่อนส่ง" in summary and "ผู้สูงอายุ" in summary and "หน้าร้านสะดวกซื้อ" in summary
    done = await v.choose("confirm:send")
    ref = ref_in(done)
    assert ref.startswith("NJ-2569-") and "เมืองพัทยา" in done

    staff = sandbox.team("pattaya-city")
    card = await staff.card(ref)
    assert "พ.ร.บ.การคุ้มครองคนไร้ที่พึ่ง" in card["text"]
    assert len(card["photos"]) == 1 and card["location"]["lat"] == pytest.approx(PATTAYA[0])
    await staff.tap("รับเรื่อง")
    assert "รับเรื่องแล้ว" in (await staff.card(ref))["text"]
    await staff.tap("ลงพื้นที่")
    await staff.tap("ปิดเรื่อง")  # the card itself asks which outcome, naming the report
    picking = await staff.card(ref)
    assert f"ปิดเรื่อง {ref} ด้วยผลการดำเนินงานใด" in picking["text"] and "⏳ รอมาแล้ว" in picking["text"]
    assert "r:1:card" in [b["data"] for row in picking["buttons"] for b in row]  # and a way back
    await staff.tap("ช่วยเหลือ ณ จุดที่พบ")
    closed = await staff.card(ref)
    assert "ปิดเรื่องแล้ว" in closed["text"] and "ปิดเรื่องโดย Somchai" in closed["text"]
    assert [[b["data"] for b in row] for row in closed["buttons"]] == [["r:1:undo", "r:1:reopen"]]
    assert "ด้วยผลการดำเนินงานใด" not in closed["text"]  # what staff see next is the closed card

    told = [m["text"] for m in await v.messages()][-4:]
    assert "รับเรื่องแล้ว" in told[0] and ref in told[0]
    assert "ลงพื้นที่แล้ว" in told[1]
    assert "ปิดแล้ว" in told[2] and "ให้ความช่วยเหลือ ณ จุดที่พบ" in told[2]
    assert "พอใจกับการดูแลเรื่องนี้แค่ไหนคะ" in told[3]  # the rating, asked once (tests/test_rating.py)

    async with sandbox.services.db.session() as s:
        from storage import repo

        report = await repo.report_by_ref(s, ref)
        steps = [(e.action, e.to_status, e.actor) for e in await repo.history(s, report.id)]
    assert steps == [
        ("submit", "new", "sandbox:alice"),
        ("ack", "acknowledged", "sandbox:somchai"),
        ("onsite", "on_site", "sandbox:somchai"),
        ("close", "closed", "sandbox:somchai"),
    ]


async def test_location_before_photo_and_before_anything(sandbox):
    v = sandbox.volunteer("bob")
    before = await v.location(*CHONBURI_TOWN)  # before consent: kept, notice shown
    assert "ประกาศความเป็นส่วนตัว" in before and "ได้รับตำแหน่ง" not in before
    text = await v.choose("consent:yes")
    assert "ได้รับตำแหน่งที่ส่งมาก่อนหน้านี้แล้วค่ะ" in text and "ชลบุรี" in text
    assert "ส่งรูป" in text  # only the photo is missing now
    assert "พบใคร" in await v.photo(jpeg())
    ref = await answer_and_send(v, who=("begging",), count="2")
    card = await sandbox.team("pcdp-20").card(ref)
    assert "ควบคุมการขอทาน" in card["text"]


async def test_photo_then_location_in_english(sandbox):
    v = sandbox.volunteer("carol", lang="en")
    assert "privacy notice" in await v.send("hi")
    await v.choose("consent:yes")
    assert "Photo received" in await v.photo(jpeg())
    assert "Chon Buri" in await v.location(*PATTAYA)


@pytest.mark.parametrize("step", ["consent", "photo", "location", "who", "confirm"])
async def test_cancel_from_every_step(sandbox, step):
    v = sandbox.volunteer(f"c-{step}")
    await v.send("hi")
    script = [
        ("consent", lambda: v.choose("consent:yes")),
        ("photo", lambda: v.photo(jpeg())),
        ("location", lambda: v.location(*PATTAYA)),
        ("who", lambda: v.choose("who:homeless")),
    ]
    for name, act in script:
        if name == step:
            break
        await act()
    text = await v.send("ยกเลิก")
    if step not in ("consent", "photo"):  # a photo in the draft: asked once
        assert "ยกเลิกเรื่องนี้ใช่ไหมคะ" in text
        text = await v.send("ยกเลิก")
    if step == "consent":
        assert "ประกาศความเป็นส่วนตัว" in text  # nothing to cancel before consent: asked again
    else:
        assert "ยกเลิกเรื่องที่กำลังแจ้งแล้ว" in text
        async with sandbox.services.db.session() as s:
            from storage import repo

            conv = await repo.conversation_get(s, "sandbox", v.chat, v.user)
        assert conv.state["draft"] is None and conv.step == "idle"
    assert "น้ำใจ" in await v.command("start") or step == "consent"


async def test_routed_by_polygon_and_by_province(sandbox):
    a = await full_report(sandbox.volunteer("p1"), location=PATTAYA)
    b = await full_report(sandbox.volunteer("p2"), location=CHONBURI_TOWN)
    assert a in (await sandbox.team("pattaya-city").card(a))["text"]
    assert b in (await sandbox.team("pcdp-20").card(b))["text"]
    with pytest.raises(AssertionError):
        await sandbox.team("pcdp-20").card(a)


async def test_repeat_sighting_linked_on_card(sandbox):
    first = await full_report(sandbox.volunteer("r1"), location=PATTAYA)
    second = await full_report(sandbox.volunteer("r2"), location=(PATTAYA[0] + 0.0005, PATTAYA[1]))  # ~55 m
    card = await sandbox.team("pattaya-city").card(second)
    assert first in card["text"] and "150" in card["text"]


async def test_urgent_report_shows_emergency_numbers(sandbox):
    v = sandbox.volunteer("u1")
    await consent(v)
    await v.choose("nophoto:")
    await v.location(*PATTAYA)
    assert "อยู่ลำพัง" in await v.choose("who:child")
    replies = await v.post("choice", data=await v.current("child:alone"))
    first = replies[0]["text"]
    assert "1669" in first and "191" in first and "1300" in first, "the numbers in the first reply"
    ref = ref_in(await v.choose("confirm:send"))
    assert "เร่งด่วน" in (await sandbox.team("pattaya-city").card(ref))["text"]


async def test_bad_inputs_get_clear_answers_and_lose_nothing(sandbox):
    v = sandbox.volunteer("bad")
    await consent(v)
    assert "ไม่ใช่รูปภาพ" in await v.post_text_photo(b"not an image at all") if hasattr(v, "post_text_photo") else True
    assert "ไม่ใช่รูปภาพ" in await v.photo(b"definitely not a jpeg")
    assert "สติกเกอร์" in (await v.post("unsupported", kind="sticker"))[0]["text"]
    assert "GPS" in await v.location(0, 0)  # a phone without a fix: said so, not "outside Thailand"
    await v.photo(jpeg())
    assert "นอกประเทศไทย" in await v.location(17.9757, 102.6331)  # Vientiane
    assert "ยาวเกินไป" in await v.send("ก" * 10_000)
    assert "ไม่ได้รับข้อความ" in await v.send("   ")
    # the report in progress is intact: still asking for the location, the photo kept
    async with sandbox.services.db.session() as s:
        from storage import repo

        conv = await repo.conversation_get(s, "sandbox", v.chat, v.user)
    assert conv.step == "location" and len(conv.state["draft"]["photos"]) == 1


async def test_staff_action_on_closed_report_and_by_non_member(sandbox):
    ref = await full_report(sandbox.volunteer("s1"), location=PATTAYA)
    staff = sandbox.team("pattaya-city")
    card = await staff.card(ref)
    report_id = card["card"]["report_id"]
    outsider = sandbox.team("pcdp-10", user="mallory")
    text = await outsider.choose(f"r:{report_id}:ack")
    assert "ไม่ได้อยู่ในทีม" in text
    await staff.choose(f"r:{report_id}:close:not_found")
    text = await staff.choose(f"r:{report_id}:ack")
    assert "ปิดไปแล้ว" in text
    assert "ปิดเรื่องแล้ว" in (await staff.card(ref))["text"]


async def test_duplicate_event_is_processed_once(sandbox):
    v = sandbox.volunteer("d1")
    await v.post("text", text="hi", event_id="same-1")
    again = await sandbox.client.post(
        "/sandbox/api/events", json={"chat": v.chat, "user": v.user, "type": "text", "text": "hi", "event_id": "same-1"}
    )
    assert (await again.json())["duplicate"] is True
    assert len(await v.messages()) == 1


async def test_my_reports_lists_status(sandbox):
    v = sandbox.volunteer("m1")
    ref = await full_report(v)
    text = await v.command("mine")
    assert ref in text and "ใหม่" in text


async def test_comment_as_reply_to_card(sandbox):
    ref = await full_report(sandbox.volunteer("k1"))
    staff = sandbox.team("pattaya-city")
    await sandbox.settle()
    card = await staff.card(ref)
    text = await staff.send("ไปดูแล้ว ไม่พบตัว จะกลับไปดูอีกครั้งตอนเย็น", reply_to=card["message_id"])
    assert "บันทึกความเห็น" in text
    assert "ตอนเย็น" in (await staff.card(ref))["text"]


async def test_binding_a_group_with_a_one_time_code(sandbox):
    code = await sandbox.services.engine.create_invite("pcdp-21")
    group = sandbox.team("rayong-staff-room")
    group.chat = "g-rayong"
    assert "ผูกกับ" in await group.send(f"/bind {code}")
    assert "ไม่ถูกต้อง" in await group.send(f"/bind {code}")  # used once only


async def test_transfer_to_the_provincial_centre(sandbox):
    ref = await full_report(sandbox.volunteer("t1"), location=PATTAYA)
    city = sandbox.team("pattaya-city")
    report_id = (await city.card(ref))["card"]["report_id"]
    choices = await city.choose(f"r:{report_id}:transfer")
    assert f"โอนเรื่อง {ref} ให้ทีมใด" in choices  # the card itself asks, naming the report
    await city.tap("ศูนย์คุ้มครองคนไร้ที่พึ่งจังหวัดชลบุรี")
    old = await city.card(ref)
    assert "โอนไปอีกทีม" in old["text"] and old["buttons"] == []
    centre = sandbox.team("pcdp-20")
    card = await centre.card(ref)
    assert "โอนไปอีกทีม" in card["text"]
    assert "ไม่ได้อยู่ในทีม" in await city.choose(f"r:{report_id}:ack")  # no longer theirs
    await centre.tap("รับเรื่อง")
    assert "รับเรื่องแล้ว" in (await centre.card(ref))["text"]


async def test_landmark_without_gps_is_routed_by_the_province_it_names(sandbox):
    v = sandbox.volunteer("l1")
    await consent(v)
    await v.choose("nophoto:")
    assert "ยืนยันตำแหน่ง" in await v.send("หน้าตลาดหนองมน บางแสน ชลบุรี")
    ref = await answer_and_send(v)
    card = await sandbox.team("pcdp-20").card(ref)
    assert "ตำแหน่งต้องยืนยัน" in card["text"] and "หนองมน" in card["text"]


async def test_a_voice_message_is_kept_with_the_report(sandbox):
    import base64

    m4a = b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A isom" + b"\x01" * 200
    v = sandbox.volunteer("voice1")
    await consent(v)
    await v.photo(jpeg())
    await v.location(*PATTAYA)
    assert "ได้รับข้อความเสียง" in joined(await v.post("voice", voice_base64=base64.b64encode(m4a).decode()))
    assert "ไม่ได้" in joined(await v.post("voice", voice_base64=base64.b64encode(b"hello").decode()))
    ref = await answer_and_send(v)
    card = await sandbox.team("pattaya-city").card(ref)
    assert "ข้อความเสียง" in card["text"] and card["voice"].endswith(".m4a")
    resp = await sandbox.client.get(f"/sandbox/photos/{card['voice']}")
    assert resp.status == 200 and resp.content_type == "audio/mp4" and await resp.read() == m4a


# A tap: a button pressed. Sharing a location is two (the location control, then "send"/"share").
LOCATION_TAPS = 2
MAX_TAPS_AFTER_PHOTO = 6


async def test_fastest_complete_report_takes_at_most_six_taps_after_the_photo(sandbox):
    v = sandbox.volunteer("fast")
    await consent(v)
    await v.photo(jpeg())
    taps = 0
    await v.location(*PATTAYA)
    taps += LOCATION_TAPS
    await v.tap("ไร้บ้าน")
    taps += 1
    done = await v.tap("ส่งเรื่อง")
    taps += 1
    ref = ref_in(done)
    assert taps <= MAX_TAPS_AFTER_PHOTO, taps
    card = await sandbox.team("pattaya-city").card(ref)
    # the same facts as before the redesign: who, how many, how urgent, place, photo
    for fact in ("ไร้บ้าน", "1 คน", "ไม่เร่งด่วน", "ชลบุรี"):
        assert fact in card["text"], fact
    assert len(card["photos"]) == 1


async def test_urgent_report_numbers_first_and_card_without_a_note(sandbox):
    v = sandbox.volunteer("fast-urgent")
    await consent(v)
    await v.photo(jpeg())
    await v.location(*PATTAYA)
    replies = await v.post("choice", data=await v.current("who:sick"))  # the answer that makes it urgent
    first = replies[0]["text"]
    assert all(n in first for n in ("1669", "191", "1300")), first
    ref = ref_in(await v.tap("ส่งเรื่องด่วน"))  # no note asked, none given
    card = await sandbox.team("pattaya-city").card(ref)
    assert "เร่งด่วน" in card["text"] and "📝" not in card["text"]


async def test_stale_buttons_in_the_sandbox_answer_already_done(sandbox):
    v = sandbox.volunteer("stale")
    await consent(v)
    await v.photo(jpeg())
    await v.location(*PATTAYA)
    who = await v.current("who:homeless")
    await v.choose(who)
    assert "ตอบไปแล้ว" in await v.choose(who)  # the who question's button again
    assert "ตอบไปแล้ว" in await v.choose(who.replace("homeless", "child"))
    async with sandbox.services.db.session() as s:
        from storage import repo

        conv = await repo.conversation_get(s, "sandbox", v.chat, v.user)
    assert conv.state["draft"]["who"] == ["homeless"] and conv.step == "confirm"


async def test_an_oversized_photo_gets_the_bots_own_answer(sandbox):
    v = sandbox.volunteer("big")
    await consent(v)
    got = joined(await v.post("photo", oversize=30_000_000))  # what the page sends instead of a 413
    assert "รูปใหญ่เกินไป" in got and "ส่งรูปถ่าย" in got


async def test_the_closer_may_undo_within_ten_minutes_then_only_a_supervisor(sandbox):
    v = sandbox.volunteer("dora")
    await v.send("สวัสดี")
    await v.choose("consent:yes")
    await v.photo(jpeg())
    await v.location(*PATTAYA)
    ref = await answer_and_send(v, who=("begging",), count="1")
    somchai, malee = sandbox.team("pattaya-city"), sandbox.team("pattaya-city", user="malee")
    await somchai.tap("รับเรื่อง")
    assert "รับเรื่องโดย Somchai" in (await somchai.card(ref))["text"]
    await somchai.choose("r:1:close:declined")
    await malee.choose("r:1:undo")  # not the one who closed: refused, nothing changes
    assert "ยกเลิกการปิดเรื่องได้เฉพาะผู้ที่ปิด" in (await malee.messages())[-1]["text"]
    assert "สถานะ: ปิดเรื่องแล้ว" in (await somchai.card(ref))["text"]
    sandbox.clock.advance(minutes=9)
    await somchai.choose("r:1:undo")
    assert "สถานะ: เปิดเรื่องอีกครั้ง" in (await somchai.card(ref))["text"]
    await somchai.choose("r:1:close:declined")
    sandbox.clock.advance(minutes=11)
    await somchai.choose("r:1:undo")  # too late: a supervisor's reopen now
    assert "ยกเลิกการปิดเรื่องได้เฉพาะผู้ที่ปิด" in (await somchai.messages())[-1]["text"]
    card = await somchai.card(ref)
    assert "สถานะ: ปิดเรื่องแล้ว" in card["text"] and "r:1:undo" not in str(card["buttons"])
    async with sandbox.services.db.session() as s:
        from storage import repo

        report = await repo.report_by_ref(s, ref)
        steps = [(e.action, e.to_status) for e in await repo.history(s, report.id)]
    assert steps[-3:] == [("close", "closed"), ("undo", "reopened"), ("close", "closed")]


async def test_open_list_help_and_transfer_by_region(sandbox):
    v = sandbox.volunteer("erin")
    await v.send("สวัสดี")
    await v.choose("consent:yes")
    await v.photo(jpeg())
    await v.location(*PATTAYA)
    ref = await answer_and_send(v, who=("begging",), count="1")
    staff = sandbox.team("pattaya-city")
    sandbox.clock.advance(minutes=25)
    listed = await staff.command("open")
    assert "เรื่องค้างของทีม 1 เรื่อง" in listed and ref in listed and "รอ 25 นาที" in listed
    assert "/open" in await staff.command("help")
    await staff.tap(f"การ์ด {ref}")  # the card again, at the bottom of the chat
    last = (await staff.messages())[-1]
    assert last.get("card") and ref in last["text"] and "รอมาแล้ว 25 นาที" in last["text"]
    await staff.choose("r:1:transfer")
    picking = await staff.card(ref)
    datas = [b["data"] for row in picking["buttons"] for b in row]
    assert "r:1:transfer:~8" in datas and "r:1:card" in datas  # every region, whatever the province
    await staff.choose("r:1:transfer:~8")
    south = [b for row in (await staff.card(ref))["buttons"] for b in row if b["data"].startswith("r:1:transfer:") and "~" not in b["data"]]
    assert len(south) >= 5  # the southern provinces' centres and municipalities
    await staff.choose(south[0]["data"])
    async with sandbox.services.db.session() as s:
        from storage import repo

        report = await repo.report_by_ref(s, ref)
        team = await repo.team_get(s, report.team_id)
    assert any(p.startswith("8") for p in team.provinces) and report.status == "transferred"
    await staff.choose("r:1:card")  # back on a card that is no longer this team's: refused
    assert "ไม่ได้อยู่ในทีม" in (await staff.messages())[-1]["text"]
