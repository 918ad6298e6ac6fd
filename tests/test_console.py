"""The web console end to end through the sandbox: a chat's /console link, the list, a report, acting
from the web (the chat card changes, the reporter is told), scope, exports. SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re

import pytest
from aiohttp import ClientSession, CookieJar
from sqlmodel import select

from storage.models import AccessLog, ConsoleSession
from tests.chat import ref_in
from tests.conftest import jpeg
from tests.test_e2e_sandbox import CHONBURI_TOWN, PATTAYA, full_report

LINK = re.compile(r"https?://\S+/console/login/(\S+)")


def token_in(text: str) -> str:
    m = LINK.search(text)
    assert m, f"no console link in {text!r}"
    return m.group(1)


class Browser:
    """A person's own cookie jar on the sandbox's server."""

    def __init__(self, sandbox):
        self.sb = sandbox
        self.http = ClientSession(base_url=str(sandbox.client.make_url("/")), cookie_jar=CookieJar(unsafe=True))

    async def get(self, path: str, **kw):
        return await self.http.get(path, allow_redirects=True, **kw)

    async def post(self, path: str, data: dict, **kw):
        return await self.http.post(path, data=data, allow_redirects=False, **kw)

    async def login(self, token: str):
        """Opens the link (a page: a preview's GET spends nothing), then presses its button."""
        page = await self.get(f"/console/login/{token}")
        if page.status != 200:
            return page
        assert 'id="sign-in"' in await page.text()
        return await self.http.post(f"/console/login/{token}", allow_redirects=True)

    async def csrf(self, path: str = "/console/") -> str:
        html = await (await self.get(path)).text()
        return re.search(r'name="csrf" value="([^"]+)"', html).group(1)

    async def close(self):
        await self.http.close()


@pytest.fixture
async def browsers(sandbox):
    made = []

    def make():
        b = Browser(sandbox)
        made.append(b)
        return b

    yield make
    for b in made:
        await b.close()


async def test_sign_in_from_the_team_chat_list_open_close_and_the_chat_is_told(sandbox, browsers):
    v = sandbox.volunteer("alice")
    ref = await full_report(v)
    staff = sandbox.team("pattaya-city")
    answer = await staff.send("/console")
    assert "ใช้ได้ครั้งเดียว" in answer and "10 นาที" in answer
    token = token_in(answer)

    # a chat app's link preview fetches the link: that spends nothing
    preview = browsers()
    assert (await preview.get(f"/console/login/{token}")).status == 200
    assert (await preview.get("/console/")).status == 401
    b = browsers()
    resp = await b.login(token)
    assert resp.status == 200 and str(resp.url).endswith("/console/")
    cookie = resp.history[0].headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # http public URL
    html = await resp.text()
    assert ref in html and "เรื่องที่แจ้ง" in html
    # the session is a row, hashed: the cookie's value is not stored
    key = re.search(r"namjai_console=([^;]+)", cookie).group(1)
    async with sandbox.services.db.session() as s:
        rows = (await s.exec(select(ConsoleSession))).all()
    assert len(rows) == 1 and rows[0].key_hash != key and len(rows[0].key_hash) == 64

    # reused link: refused, and a second browser gets no session
    other = browsers()
    again = await other.login(token)
    assert again.status == 403 and "ใช้ไปแล้วหรือหมดอายุ" in await again.text()
    assert (await other.get("/console/")).status == 401

    # filters
    assert ref in await (await b.get("/console/?status=new&urgent=0&category=homeless&area=20")).text()
    assert ref not in await (await b.get("/console/?urgent=1")).text()
    assert ref not in await (await b.get("/console/?category=child")).text()
    assert ref not in await (await b.get("/console/?area=10")).text()
    assert ref not in await (await b.get("/console/?overdue=1")).text()

    # the report page, its photo (logged)
    report_id = int(re.search(r'/console/reports/(\d+)', html).group(1))
    page = await (await b.get(f"/console/reports/{report_id}")).text()
    assert ref in page and "คนไร้ที่พึ่ง" in page and "submit" in page and "ชลบุรี" in page
    photo = await b.get(f"/console/reports/{report_id}/photos/0")
    assert photo.status == 200 and photo.content_type == "image/jpeg"
    async with sandbox.services.db.session() as s:
        logged = (await s.exec(select(AccessLog).where(AccessLog.report_id == report_id))).all()
    assert [(a.actor, a.what) for a in logged] == [("console:sandbox:somchai", "photo:0")]

    # a form without the CSRF token is refused and changes nothing
    bad = await b.post(f"/console/reports/{report_id}/act", {"action": "ack"})
    assert bad.status == 403
    csrf = await b.csrf(f"/console/reports/{report_id}")
    done = await b.post(f"/console/reports/{report_id}/act", {"csrf": csrf, "action": "close", "outcome": "helped_on_site", "note": "ให้อาหารและน้ำ"})
    assert done.status == 303
    page = await (await b.get(done.headers["Location"])).text()
    assert "แจ้งทีมและผู้แจ้งแล้ว" in page and "ให้อาหารและน้ำ" in page

    await sandbox.settle()
    card = await staff.card(ref)
    assert "ปิดเรื่องแล้ว" in card["text"]
    told = [m["text"] for m in await v.messages()]
    assert "ปิดแล้ว" in told[-2] and "ให้ความช่วยเหลือ ณ จุดที่พบ" in told[-2]
    assert "พอใจกับการดูแลเรื่องนี้แค่ไหนคะ" in told[-1]  # then, once, how well it was handled
    async with sandbox.services.db.session() as s:
        from storage import repo

        report = await repo.report_by_ref(s, ref)
        last = (await repo.history(s, report.id))[-1]
    assert (last.action, last.to_status, last.actor, last.detail) == (
        "close", "closed", "sandbox:somchai", {"outcome": "helped_on_site", "comment": "ให้อาหารและน้ำ"})
    assert report.outcome == "helped_on_site" and report.closed_at == sandbox.clock()

    # staff cannot reopen (supervisors only): the console says so, nothing changes
    csrf = await b.csrf(f"/console/reports/{report_id}")
    refused = await b.post(f"/console/reports/{report_id}/act", {"csrf": csrf, "action": "reopen"})
    page = await (await b.get(refused.headers["Location"])).text()
    assert 'id="notice">ต้องเป็นหัวหน้างานหรือผู้ดูแลระบบจึงทำได้<' in page
    async with sandbox.services.db.session() as s:
        assert (await repo.report_by_ref(s, ref)).status == "closed"

    # signing out ends the session
    await b.post("/console/logout", {"csrf": csrf})
    assert (await b.get("/console/")).status == 401


async def test_another_team_can_neither_see_nor_act_nor_count_nor_export(sandbox, browsers):
    v = sandbox.volunteer("alice")
    ref = await full_report(v)  # Pattaya City's
    async with sandbox.services.db.session() as s:
        from storage import repo

        report = await repo.report_by_ref(s, ref)
    nonthaburi = browsers()
    await nonthaburi.login(token_in(await sandbox.team("pcdp-12", user="niran").send("/console")))
    page = await (await nonthaburi.get("/console/?status=all")).text()
    assert ref not in page
    assert (await nonthaburi.get(f"/console/reports/{report.id}")).status == 404
    assert (await nonthaburi.get(f"/console/reports/{report.id}/photos/0")).status == 404
    csrf = await nonthaburi.csrf()
    acted = await nonthaburi.post(f"/console/reports/{report.id}/act", {"csrf": csrf, "action": "ack"})
    assert acted.status == 404
    figures = await (await nonthaburi.get("/console/figures")).text()
    assert re.search(r'class="received">0<', figures)
    assert ref not in await (await nonthaburi.get("/console/export.csv?status=all")).text()
    assert (await nonthaburi.get("/console/map.json?status=all")).status == 200
    assert (await (await nonthaburi.get("/console/map.json?status=all")).json())["points"] == []
    async with sandbox.services.db.session() as s:
        assert (await repo.report_by_ref(s, ref)).status == "new"
        logged = (await s.exec(select(AccessLog).where(AccessLog.report_id == report.id))).all()
    assert logged == []

    # the same URLs for Pattaya's own staff
    pattaya = browsers()
    await pattaya.login(token_in(await sandbox.team("pattaya-city").send("/console")))
    assert (await pattaya.get(f"/console/reports/{report.id}")).status == 200
    figures = await (await pattaya.get("/console/figures")).text()
    assert re.search(r'class="received">1<', figures) and "<svg" in figures
    data = await (await pattaya.get("/console/map.json")).json()
    assert [p[data["fields"].index("ref")] for p in data["points"]] == [ref] and data["truncated"] is False


async def test_links_expire_after_ten_minutes_and_sessions_after_a_working_day(sandbox, browsers):
    staff = sandbox.team("pattaya-city")
    late = token_in(await staff.send("/console"))
    sandbox.clock.advance(minutes=10, seconds=1)
    b = browsers()
    assert (await b.login(late)).status == 403
    assert (await b.login(token_in(await staff.send("/console")))).status == 200
    sandbox.clock.advance(hours=9)
    assert (await b.get("/console/")).status == 200
    sandbox.clock.advance(hours=1, seconds=1)
    assert (await b.get("/console/")).status == 401


async def test_console_in_a_private_chat_needs_a_role(sandbox, browsers):
    v = sandbox.volunteer("dara")
    assert "ขอสิทธิ์จากผู้ดูแลระบบ" in await v.send("/console")
    async with sandbox.services.db.transaction() as s:
        from storage import repo

        team = await repo.team_by_code(s, "pcdp-20")
        await repo.member_set(s, team.id, "sandbox", "dara", "supervisor")
    token = token_in(await v.send("/console"))
    b = browsers()
    assert (await b.login(token)).status == 200
    # a supervisor of Chonburi's centre sees Pattaya City's reports too (same province)
    ref = await full_report(sandbox.volunteer("alice"))
    assert ref in await (await b.get("/console/")).text()
    assert "หัวหน้างาน" in await (await b.get("/console/")).text()


async def test_exports_parse_back_with_the_reporter_pseudonymised(sandbox, browsers):
    from openpyxl import load_workbook

    ref = await full_report(sandbox.volunteer("alice"))
    b = browsers()
    await b.login(token_in(await sandbox.team("pattaya-city").send("/console")))
    resp = await b.get("/console/export.csv")
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert [r["ref"] for r in rows] == [ref]
    assert rows[0]["team"] == "pattaya-city" and rows[0]["who"] == "homeless" and rows[0]["province"] == "20"
    assert rows[0]["reporter"].startswith("R-") and "alice" not in ",".join(rows[0].values())
    xlsx = await b.get("/console/export.xlsx")
    sheet = load_workbook(io.BytesIO(await xlsx.read())).active
    values = list(sheet.values)
    assert values[0][0] == "ref" and values[1][0] == ref and values[1][-1] == rows[0]["reporter"]
    async with sandbox.services.db.session() as s:
        logged = [a.what for a in (await s.exec(select(AccessLog))).all()]
    assert logged == ["export:csv:1", "export:xlsx:1"]
