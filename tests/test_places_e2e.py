"""Every report carries province, district and subdistrict where the point has them: the whole
app through the sandbox, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlmodel import select

from storage.models import Report
from tests.chat import ref_in
from tests.test_e2e_sandbox import answer_and_send, consent


async def _report(sandbox, ref: str) -> Report:
    async with sandbox.services.db.session() as s:
        return (await s.exec(select(Report).where(Report.ref == ref))).one()


async def _start(sandbox, name: str):
    v = sandbox.volunteer(name)
    await consent(v)
    await v.choose("nophoto:")
    return v


async def test_a_shared_location_carries_its_district_and_subdistrict(sandbox):
    v = await _start(sandbox, "pl1")
    got = await v.location(14.654, 101.198)  # Muak Lek, Saraburi (Natural Earth said Lopburi)
    assert "จังหวัดสระบุรี" in got and "มวกเหล็ก" in got
    ref = await answer_and_send(v)
    r = await _report(sandbox, ref)
    assert (r.province_code, r.district_code, r.subdistrict_code) == ("19", "1911", "191101")
    card = await sandbox.team("pcdp-19").card(ref)
    assert "อ.มวกเหล็ก" in card["text"] and "ต.มวกเหล็ก" in card["text"]


async def test_a_landmark_names_its_place_and_its_team(sandbox):
    v = await _start(sandbox, "pl2")
    assert "นาเกลือ" in await v.send("ตลาดนาเกลือ พัทยา")
    ref = await answer_and_send(v)
    r = await _report(sandbox, ref)
    assert (r.province_code, r.district_code, r.subdistrict_code, r.lat) == ("20", "2004", "200408", None)
    assert r.location_to_confirm and ref in (await sandbox.team("pattaya-city").card(ref))["text"]


async def test_a_shared_name_is_a_choice(sandbox):
    v = await _start(sandbox, "pl3")
    assert "หลายแห่ง" in await v.send("ใต้สะพาน หนองปรือ")
    await v.choose("place:200402")
    ref = await answer_and_send(v)
    r = await _report(sandbox, ref)
    assert (r.district_code, r.subdistrict_code) == ("2004", "200402")


async def test_a_point_in_the_gulf_is_confirmed_first(sandbox):
    v = await _start(sandbox, "pl4")
    said = await v.send("12.5, 100.95")
    assert "ในทะเล" in said and "สัตหีบ" in said
    await v.choose("sea:yes")
    ref = await answer_and_send(v)
    r = await _report(sandbox, ref)
    assert (r.lat, r.lon, r.province_code, r.district_code) == (12.5, 100.95, "20", "2009")


async def test_impossible_and_swapped_coordinates(sandbox):
    v = await _start(sandbox, "pl5")
    assert "เป็นไปไม่ได้" in await v.send("91, 181")
    assert "GPS" in await v.send("0,0")
    said = await v.send("100.889, 12.935")
    assert "สลับ" in said and "ชลบุรี" in said
    ref = await answer_and_send(v)
    assert (await _report(sandbox, ref)).subdistrict_code == "200402"


async def test_one_tap_to_the_neighbouring_centre(sandbox):
    v = await _start(sandbox, "pl6")
    await v.location(13.80, 100.52)  # Bang Sue, Bangkok, by Nonthaburi
    summary = await v.choose("who:homeless")
    assert "ส่งถึง: ศูนย์คุ้มครองคนไร้ที่พึ่ง กรุงเทพมหานคร" in summary
    await v.choose("team:pcdp-12")
    ref = ref_in(await v.choose("confirm:send"))
    r = await _report(sandbox, ref)
    assert r.province_code == "12" and r.subdistrict_code is None
    assert ref in (await sandbox.team("pcdp-12").card(ref))["text"]
