"""Short map links followed by the server (bot.maplinks), against a loopback HTTP server.

The short-link host is pointed at 127.0.0.1 with `base_override`; the server counts every request,
so the tests see that only the short-link host is asked, that the map address it redirects to is
read and never fetched, and that a slow or useless answer leaves the text as it was.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.maplinks import MapLinkResolver
from flows.coords import read_coordinates
from flows.model import Address, TextReceived
from tests.chat import joined
from tests.test_e2e_sandbox import answer_and_send, consent

NA_KLUEA = "https://www.google.com/maps/place/Lan+Pho/@12.96,100.88,15z/data=!4m6!3m5!8m2!3d12.9665!4d100.8915"


@pytest.fixture
async def short_host():
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.path_qs)
        name = request.match_info["name"].rsplit("/", 1)[-1]
        if name == "slow":
            await asyncio.sleep(5)
        if name == "hop":  # one short link redirecting to another
            raise web.HTTPFound("https://maps.app.goo.gl/abc")
        if name == "nocoords":
            raise web.HTTPFound("https://maps.google.com/?cid=1234567890")
        if name == "page":  # no redirect: a page (its body is not read)
            return web.Response(text="x" * 100_000)
        if name == "loop":
            raise web.HTTPFound("https://maps.app.goo.gl/loop")
        raise web.HTTPFound(NA_KLUEA)

    app = web.Application()
    app.router.add_get("/{name:.*}", handler)
    async with TestServer(app, host="127.0.0.1") as server:
        base = f"http://127.0.0.1:{server.port}"
        yield MapLinkResolver(timeout=1.0, base_override={"maps.app.goo.gl": base, "goo.gl": base}), seen


async def test_a_short_link_is_followed_to_the_map_address(short_host):
    resolver, seen = short_host
    assert await resolver.resolve("https://maps.app.goo.gl/abc?g_st=il") == NA_KLUEA
    assert seen == ["/abc?g_st=il"]  # the map address itself is never fetched
    assert await resolver.resolve("https://goo.gl/maps/abc") == NA_KLUEA  # path kept: /maps/abc
    assert seen[-1] == "/maps/abc"


async def test_hops_between_short_links_are_followed_but_bounded(short_host):
    resolver, seen = short_host
    assert await resolver.resolve("https://maps.app.goo.gl/hop") == NA_KLUEA
    assert seen == ["/hop", "/abc"]
    seen.clear()
    assert await resolver.resolve("https://maps.app.goo.gl/loop") is None
    assert len(seen) == 4  # MAX_HOPS


@pytest.mark.parametrize("name", ["slow", "page"])
async def test_no_answer_in_time_or_no_redirect_is_none(short_host, name):
    resolver, seen = short_host
    assert await resolver.resolve(f"https://maps.app.goo.gl/{name}") is None
    assert seen == [f"/{name}"]


async def test_only_short_link_hosts_are_asked(short_host):
    resolver, seen = short_host
    assert await resolver.resolve("https://example.com/abc") is None
    assert await resolver.resolve("https://maps.app.goo.gl.example.com/abc") is None
    assert seen == []


async def test_the_event_text_gets_the_map_address(short_host):
    resolver, _ = short_host
    ev = TextReceived(Address("sandbox", "u", "u"), "e1", datetime.now(timezone.utc), text="ตรงนี้ https://maps.app.goo.gl/abc")
    out = await resolver.expand(ev)
    assert out.text.endswith(NA_KLUEA) and read_coordinates(out.text).lat == 12.9665
    useless = await resolver.expand(TextReceived(ev.address, "e2", ev.at, text="https://maps.app.goo.gl/nocoords"))
    assert read_coordinates(useless.text) is None  # the flow then asks to share the location
    plain = TextReceived(ev.address, "e3", ev.at, text="no link here")
    assert await resolver.expand(plain) is plain


async def test_a_volunteer_pastes_the_share_button_link(sandbox, short_host):
    resolver, seen = short_host
    sandbox.services.engine.map_links = resolver
    v = sandbox.volunteer("link1")
    await consent(v)
    await v.choose("nophoto:")
    got = await v.send("https://maps.app.goo.gl/abc")
    assert "ได้รับตำแหน่งแล้วค่ะ: จังหวัดชลบุรี" in got and "นาเกลือ" in got
    ref = await answer_and_send(v)
    card = await sandbox.team("pattaya-city").card(ref)
    assert "นาเกลือ" in card["text"] and "บางละมุง" in card["text"]
    # a link that leads nowhere: asked to share the location instead, not kept as a landmark
    w = sandbox.volunteer("link2")
    await consent(w)
    await w.choose("nophoto:")
    assert "แชร์ตำแหน่ง" in await w.send("https://maps.app.goo.gl/nocoords")
    assert joined(await w.messages())  # the conversation goes on
