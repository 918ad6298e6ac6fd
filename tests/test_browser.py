"""The web sandbox driven in a real headless Chromium: a volunteer's report, end to end, and its
closing by the team in their group chat.

Needs Chromium (/usr/bin/chromium or `chromium` on PATH): skipped without it, except under CI.
Set NAMJAI_SCREENSHOT_DIR to also keep the final screenshots there (sandbox-volunteer.png,
sandbox-team.png).
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import threading
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image

pytestmark = pytest.mark.browser

TIMEOUT_MS = 15_000
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"]


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _chromium() -> str:
    for path in ("/usr/bin/chromium", shutil.which("chromium")):
        if path and os.path.exists(path):
            return path
    _missing("Chromium is not installed (apt-get install -y chromium)")


class ServerThread:
    """The real app on a free loopback port, in a thread with its own event loop."""

    def __init__(self, app):
        self.app = app
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="namjai-test-server", daemon=True)

    def _run(self) -> None:
        from aiohttp import web

        loop = self._loop
        asyncio.set_event_loop(loop)
        runner = web.AppRunner(self.app)
        try:
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
        except BaseException as e:  # reported to the test by start()
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def start(self) -> str:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the server did not start within 60 s")
        if self._error:
            raise self._error
        return self.url

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)


@pytest.fixture
def server(tmp_path):
    from bot.app import create_app
    from bot.settings import Settings

    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'namjai.db'}",
        photo_dir=str(tmp_path / "photos"),
        sandbox=True,
        sweep_seconds=0.5,
    )
    srv = ServerThread(create_app(settings))
    try:
        yield srv.start()
    finally:
        srv.stop()


def _jpeg(path: Path) -> Path:
    im = Image.linear_gradient("L").resize((320, 240))
    Image.merge("RGB", (im, im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), im)).save(path, "JPEG", quality=85)
    return path


def test_report_and_close_in_the_browser(server, tmp_path):
    executable = _chromium()
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _missing("playwright is not installed")

    be_year = datetime.now(ZoneInfo("Asia/Bangkok")).year + 543
    ref_pattern = re.compile(rf"NJ-{be_year}-\d{{6}}")
    photo = _jpeg(tmp_path / "person.jpg")
    errors: list[str] = []
    outside: list[str] = []
    expect.set_options(timeout=TIMEOUT_MS)

    def watch(page, who: str):
        page.on("pageerror", lambda e: errors.append(f"{who}: {e}"))
        page.on("console", lambda m: errors.append(f"{who} console: {m.text}") if m.type == "error" else None)
        page.set_default_timeout(TIMEOUT_MS)
        return page

    def offline_only(route):
        if route.request.url.startswith(server):
            route.continue_()
        else:  # the page must work offline: no CDN, fonts or map tiles
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 390, "height": 844}, locale="th-TH", is_mobile=True, has_touch=True)
            context.route("**/*", offline_only)

            # ---------------------------------------------------------------- the volunteer
            vol = watch(context.new_page(), "volunteer")
            vol.goto(f"{server}/sandbox/#volunteer=alice")
            expect(vol.locator("#chat-id")).to_have_text("u-alice")
            # icons that need an emoji font (none here) say what they are in words too
            for button, words in (("#menu-btn", "เมนู"), ("#photo-btn", "รูป"), ("#loc-btn", "พิกัด")):
                expect(vol.locator(f"{button} .lbl")).to_have_text(words)
                expect(vol.locator(f"{button} .lbl")).to_be_visible()
            chat = vol.locator("#transcript")
            vol.locator("#text").fill("สวัสดี")
            vol.locator("#send-btn").click()
            expect(chat.locator(".msg.own").first).to_contain_text("สวัสดี")

            vol.get_by_role("button", name="ยินยอม", exact=True).click()
            expect(chat).to_contain_text("ส่งรูปถ่าย")
            vol.locator("#photo-input").set_input_files(str(photo))
            expect(chat).to_contain_text("ส่งเพิ่มได้อีก 3 รูป")
            expect(chat.locator(".msg.own.photo img")).to_be_visible()

            # the location from the offline map: zoom in on Pattaya, tap the middle, send the pin
            vol.locator("#loc-btn").click()
            vol.get_by_role("button", name=re.compile("Pick on a map")).click()
            canvas = vol.locator("#map-canvas")
            expect(canvas).to_have_attribute("data-ready", "1")
            box = canvas.bounding_box()
            assert box and box["width"] <= 390 and box["height"] >= 150, box
            vol.evaluate("() => window.namjaiMap.centerOn(12.9277, 100.8724, 12)")
            canvas.click()
            picked = vol.locator("#map-coords")
            expect(picked).to_contain_text("ชลบุรี")
            lat, lon = re.search(r"📍 (\d+\.\d+), (\d+\.\d+)", picked.inner_text()).groups()
            assert abs(float(lat) - 12.9277) < 0.001 and abs(float(lon) - 100.8724) < 0.001, (lat, lon)
            vol.get_by_role("button", name="Send / ส่งตำแหน่งนี้", exact=True).click()
            expect(chat).to_contain_text("ได้รับตำแหน่งแล้วค่ะ: จังหวัดชลบุรี")
            expect(chat.locator(".msg.own.location a.loc")).to_have_attribute("href", re.compile(rf"openstreetmap\.org/.*{re.escape(lat)}"))

            # after the photo: the location (two taps above), who (one tap), send (one tap)
            vol.get_by_role("button", name="ไร้บ้าน/นอนข้างทาง", exact=True).click()
            expect(chat).to_contain_text("ตรวจสอบก่อนส่ง")
            expect(vol.get_by_role("button", name="✓ 1 คน")).to_be_visible()
            vol.get_by_role("button", name="ส่งเรื่อง", exact=True).last.click()
            confirmation = chat.locator(".msg.bot", has_text=ref_pattern)
            expect(confirmation).to_have_count(1)
            ref = ref_pattern.search(confirmation.inner_text()).group(0)

            # ---------------------------------------------------------------- the team's group
            team = watch(context.new_page(), "team")
            team.goto(f"{server}/sandbox/#team=pattaya-city&as=somchai")
            expect(team.locator("#chat-id")).to_have_text("team-pattaya-city")
            # on a phone the team's name fits its selector, inside the screen
            expect(team.locator("#team-select option:checked")).to_have_text("เมืองพัทยา")
            box = team.locator("#team-select").bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
            card = team.locator("article.card", has_text=ref)
            expect(card).to_be_visible()
            expect(card).to_contain_text("ไร้บ้าน/นอนข้างทาง")
            ref_span = card.locator(".card-title .ref")  # the reference number never breaks
            expect(ref_span).to_have_text(ref)
            assert ref_span.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
            expect(card.locator("a.loc")).to_contain_text(f"{lat}, {lon}")
            team.wait_for_function(
                "() => [...document.querySelectorAll('article.card .photos img')].some(i => i.complete && i.naturalWidth > 0)",
                timeout=TIMEOUT_MS,
            )

            card.get_by_role("button", name="รับเรื่อง", exact=True).click()
            expect(card).to_contain_text("รับเรื่องแล้ว")
            card.get_by_role("button", name="ลงพื้นที่", exact=True).click()
            expect(card).to_contain_text("ลงพื้นที่แล้ว")
            card.get_by_role("button", name="ปิดเรื่อง", exact=True).click()
            team.get_by_role("button", name="ช่วยเหลือ ณ จุดที่พบ", exact=True).click()
            expect(card).to_contain_text("ปิดเรื่องแล้ว")
            expect(card).to_contain_text("ช่วยเหลือ ณ จุดที่พบ")

            # a comment on the card, as a reply to it
            card.get_by_role("button", name=re.compile(r"^↩ Reply")).click()
            expect(team.locator("#reply-chip")).to_contain_text(ref)
            team.locator("#text").fill("ให้อาหารและน้ำแล้ว")
            team.locator("#send-btn").click()
            expect(card).to_contain_text("ให้อาหารและน้ำแล้ว")
            expect(team.locator("#transcript")).to_contain_text(f"บันทึกความเห็นในเรื่อง {ref}")

            # ---------------------------------------------------------------- the reporter is told
            vol.bring_to_front()
            expect(chat).to_contain_text(f"เรื่อง {ref}: เมืองพัทยา รับเรื่องแล้ว")
            expect(chat).to_contain_text(f"เรื่อง {ref}: เจ้าหน้าที่ลงพื้นที่แล้ว")
            expect(chat).to_contain_text(f"เรื่อง {ref} ปิดแล้ว")

            card.scroll_into_view_if_needed()
            shots = {"volunteer": vol, "team": team}
            keep = os.environ.get("NAMJAI_SCREENSHOT_DIR")
            for who, page in shots.items():
                path = tmp_path / f"sandbox-{who}.png"
                page.screenshot(path=str(path))
                assert path.stat().st_size > 0
                if keep:
                    shutil.copy(path, Path(keep) / path.name)
        finally:
            browser.close()

    assert not outside, f"the page fetched outside the server: {outside}"
    assert not errors, f"errors in the page: {errors}"
