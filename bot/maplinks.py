"""Following short map links (`https://maps.app.goo.gl/…`, `https://goo.gl/maps/…`) on the server.

The link Google Maps' Share button makes holds no coordinates: only its redirect does. Before an
event reaches the flows, the engine asks `MapLinkResolver.expand` to follow the short link; the
address it redirects to is appended to the text, so `flows.coords` reads the coordinates from it
like any pasted map link. When it cannot (timeout, no redirect, an address without coordinates),
the text is left as it was and the flow asks the volunteer to share the location instead.

Bounds: requests go only to the short-link hosts (`flows.coords.SHORT_LINK_HOSTS`), never to
where they redirect (that address is only read); at most `MAX_HOPS` redirects between those
hosts; `timeout` seconds in all (3 by default); no body is read or kept; no cookies.

Tests point the hosts at a loopback server with `base_override`
(`{"maps.app.goo.gl": "http://127.0.0.1:PORT"}`: the request for `https://maps.app.goo.gl/x`
goes to `http://127.0.0.1:PORT/x`).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from urllib.parse import urljoin, urlsplit

import aiohttp
import structlog

from flows.coords import SHORT_LINK_HOSTS, short_map_link
from flows.draft import MAX_TEXT
from flows.model import TextReceived

log = structlog.get_logger("namjai.maplinks")

MAX_HOPS = 4
DEFAULT_TIMEOUT = 3.0


class MapLinkResolver:
    def __init__(
        self, *, timeout: float = DEFAULT_TIMEOUT, hosts: dict[str, str] | None = None,
        base_override: dict[str, str] | None = None,
    ):
        self.timeout = timeout
        self.hosts = dict(SHORT_LINK_HOSTS if hosts is None else hosts)
        self.base_override = dict(base_override or {})

    def _target(self, url: str) -> str | None:
        """Where to send the request for a short link (None: not a host we may ask)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or host not in self.hosts:
            return None
        base = self.base_override.get(host)
        if base is None:
            return url if parts.scheme == "https" else "https" + url[len(parts.scheme):]
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        return base.rstrip("/") + tail

    async def resolve(self, url: str) -> str | None:
        """The address a short link redirects to (not fetched itself), or None."""
        try:
            return await asyncio.wait_for(self._follow(url), self.timeout)
        except (asyncio.TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.info("map_link_unresolved", error=type(exc).__name__)
            return None

    async def _follow(self, url: str) -> str | None:
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as http:
            current = url
            for _ in range(MAX_HOPS):
                target = self._target(current)
                if target is None:
                    return None
                async with http.get(target, allow_redirects=False, headers={"User-Agent": "Namjai/1"}) as resp:
                    location = resp.headers.get("Location")
                    # the body is never read: the connection is closed with the response
                if resp.status not in (301, 302, 303, 307, 308) or not location:
                    return None
                nxt = urljoin(current, location)
                if short_map_link(nxt, self.hosts) is None and self._target(nxt) is None:
                    return nxt  # the map's own address: read, not fetched
                current = nxt
        return None

    def wants(self, ev) -> bool:
        """Whether `expand` would go to the network for this event."""
        return isinstance(ev, TextReceived) and not ev.address.is_group and short_map_link(ev.text, self.hosts) is not None

    async def expand(self, ev):
        """The event with the short link's target appended to its text, when there is one."""
        if not isinstance(ev, TextReceived) or ev.address.is_group:
            return ev
        link = short_map_link(ev.text, self.hosts)
        if link is None:
            return ev
        target = await self.resolve(link)
        if not target:
            return ev
        text = f"{ev.text}\n{target}"
        return replace(ev, text=text if len(text) <= MAX_TEXT else f"{link}\n{target}"[:MAX_TEXT])
