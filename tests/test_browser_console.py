"""The console in a real headless Chromium: sign in through the team chat's /console link, filter,
open the report, close it from the console; the chat card changes and the reporter is told; a user
of another team gets 404 on the report and its photo; an expired or reused link is refused; the map
draws the report from vendored Leaflet with nothing fetched outside the server."""

from __future__ import annotations

import base64
import io
import json
import re
import urllib.request
from datetime import datetime, timezone

import pytest
from PIL import Image

from tests.conftest import Clock
from tests.test_browser import LAUNCH_ARGS, TIMEOUT_MS, ServerThread, _chromium, _missing

pytestmark = pytest.mark.browser
LINK = re.compile(r"http://127\.0\.0\.1:\d+/console/login/[A-Za-z0-9_\-]+")


@pytest.fixture
def clock():
    return Clock(datetime.now(timezone.utc))


@pytest.fixture
def server(tmp_path, clock):
    from bot.app import create_app
    from bot.settings import Settings

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'namjai.db'}", photo_dir=str(tmp_path / "photos"),
        sandbox=True, sweep_seconds=0.3, scheduler=False,
    )
    app = create_app(settings, clock=clock)
    srv = ServerThread(app)
    url = srv.start()
    settings_url = url  # the links name the public URL: the test server's own address
    from handlers.base import SERVICES

    app[SERVICES].console.public_url = settings_url
    try:
        yield url
    finally:
        srv.stop()


def _event(server: str, **body) -> list[dict]:
    req = urllib.request.Request(f"{server}/sandbox/api/events", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["messages"]


def _report(server: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 120, 40)).save(buf, "JPEG")
    v = {"chat": "u-alice", "user": "alice", "user_name": "Alice"}
    _event(server, **v, type="text", text="สวัสดี")
    _event(server, **v, type="choice", data="consent:yes")
    _event(server, **v, type="photo", photo_base64=base64.b64encode(buf.getvalue()).decode())
    _event(server, **v, type="location", lat=12.9277, lon=100.8724)
    for data in ("who:homeless", "who:done", "count:1", "urg:normal", "note:skip"):
        _event(server, **v, type="choice", data=data)
    msgs = _event(server, **v, type="choice", data="confirm:send")
    return re.search(r"NJ-\d{4}-\d{6}", " ".join(m["text"] for m in msgs)).group(0)


def test_console_in_the_browser(server, clock):
    executable = _chromium()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    expect.set_options(timeout=TIMEOUT_MS)
    ref = _report(server)
    errors: list[str] = []
    outside: list[str] = []

    def offline_only(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    def watch(page, who):
        page.on("pageerror", lambda e: errors.append(f"{who}: {e}"))
        page.set_default_timeout(TIMEOUT_MS)
        return page

    def link_from_chat(page, team: str, user: str) -> str:
        page.goto(f"{server}/sandbox/#team={team}&as={user}")
        expect(page.locator("#chat-id")).to_have_text(f"team-{team}")
        before = len(LINK.findall(page.locator("#transcript").inner_text()))
        page.locator("#text").fill("/console")
        page.locator("#send-btn").click()
        page.wait_for_function(
            f"() => (document.querySelector('#transcript').innerText.match(/\\/console\\/login\\//g) || []).length > {before}"
        )
        return LINK.findall(page.locator("#transcript").inner_text())[-1]

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="th-TH")
            ctx.route("**/*", offline_only)
            team = watch(ctx.new_page(), "team")
            link = link_from_chat(team, "pattaya-city", "somchai")
            assert "ใช้ได้ครั้งเดียว" in team.locator("#transcript").inner_text()

            con = watch(ctx.new_page(), "console")
            con.goto(link)
            con.locator("#sign-in").click()
            expect(con.locator("h1")).to_have_text("เรื่องที่แจ้ง")
            expect(con.locator("table.reports")).to_contain_text(ref)
            # filter: urgent only hides it; back to not urgent, homeless
            con.locator("select[name=urgent]").select_option("1")
            con.locator("#apply").click()
            expect(con.locator("#total")).to_have_text("0 เรื่อง")
            con.locator("select[name=urgent]").select_option("0")
            con.locator("select[name=category]").select_option("homeless")
            con.locator("#apply").click()
            expect(con.locator("#total")).to_have_text("1 เรื่อง")
            con.get_by_role("link", name=ref).click()
            expect(con.locator("#ref")).to_have_text(ref)
            con.wait_for_function("() => [...document.querySelectorAll('img.photo')].some(i => i.complete && i.naturalWidth > 0)")
            photo_url = con.locator("img.photo").first.get_attribute("src")
            report_url = con.url

            # close from the console
            form = con.locator("#act-close")
            form.locator("select[name=outcome]").select_option("helped_on_site")
            form.locator("input[name=note]").fill("ให้อาหารและน้ำแล้ว")
            form.get_by_role("button").click()
            expect(con.locator("#notice")).to_contain_text("แจ้งทีมและผู้แจ้งแล้ว")
            expect(con.locator("#history")).to_contain_text("ให้อาหารและน้ำแล้ว")

            # the chat card changed; the reporter was told
            team.goto(f"{server}/sandbox/#team=pattaya-city&as=somchai")
            expect(team.locator("article.card", has_text=ref)).to_contain_text("ปิดเรื่องแล้ว")
            vol = watch(ctx.new_page(), "volunteer")
            vol.goto(f"{server}/sandbox/#volunteer=alice")
            expect(vol.locator("#transcript")).to_contain_text(f"เรื่อง {ref} ปิดแล้ว")

            # the map: the report from vendored Leaflet, offline
            con.goto(f"{server}/console/map?status=all")
            expect(con.locator("#map")).to_have_attribute("data-points", "1")
            expect(con.locator(".leaflet-overlay-pane canvas")).to_be_attached()

            # the reused link is refused
            resp = con.goto(link)
            assert resp.status == 403 and "ใช้ไปแล้วหรือหมดอายุ" in con.content()

            # another team's user: 404 on the report and its photo
            other = browser.new_context()
            other.route("**/*", offline_only)
            o = watch(other.new_page(), "other team")
            o.goto(link_from_chat(o, "pcdp-12", "niran"))
            o.locator("#sign-in").click()
            expect(o.locator("h1")).to_have_text("เรื่องที่แจ้ง")
            assert o.goto(report_url).status == 404
            assert o.goto(server + photo_url).status == 404
            # an expired link: 10 minutes pass
            late = link_from_chat(o, "pcdp-12", "niran")
            clock.advance(minutes=11)
            resp = o.goto(late)
            assert resp.status == 403
            other.close()
        finally:
            browser.close()
    assert not outside, outside
    assert not errors, errors
