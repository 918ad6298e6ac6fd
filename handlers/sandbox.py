"""The web sandbox: a real channel played in a browser, and a JSON API that does the same.

Chats: a volunteer `u-NAME` (private), a team's group `team-CODE` (bound on start).
- POST /sandbox/api/events             {chat, user, group, user_name, lang, type, ...} → the chat's messages
- GET  /sandbox/api/chats/{chat}/messages?after=ID
- GET  /sandbox/api/teams
- GET  /sandbox/photos/{key}           (sandbox only; each view is written to the access log)
"""

from __future__ import annotations

import base64
import binascii
import uuid
from pathlib import Path

from aiohttp import web

from handlers.base import SERVICES, read_json
from flows.model import (
    Address,
    ChoiceMade,
    CommandReceived,
    LocationReceived,
    PhotoReceived,
    TextReceived,
    UnsupportedReceived,
    VoiceReceived,
)
from flows.model import Msg
from storage import repo
from storage.boundaries import PROVINCES_FILE
from storage.photos import PhotoDeleted, PhotoError, media_type

STATIC = Path(__file__).parent / "static"
PLATFORM = "sandbox"
MAX_PHOTO_BYTES = 20_000_000
MAX_UPLOAD_FILE = 18_000_000  # base64 in a JSON body under the app's 25 MB request limit (sandbox.js)


def setup(app: web.Application) -> None:
    app.router.add_get("/", to_sandbox)
    app.router.add_get("/sandbox/", page)
    app.router.add_static("/sandbox/static/", STATIC)
    app.router.add_post("/sandbox/api/events", post_event)
    app.router.add_get("/sandbox/api/chats/{chat}/messages", get_messages)
    app.router.add_get("/sandbox/api/teams", get_teams)
    app.router.add_get("/sandbox/photos/{key}", get_photo)
    app.router.add_get("/sandbox/api/provinces.geojson", provinces)


async def to_sandbox(request: web.Request) -> web.Response:
    raise web.HTTPFound("/sandbox/")


async def page(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "sandbox.html")


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=message)


def _str_or_none(value, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


async def to_event(svc, body: dict):
    """A sandbox request becomes a neutral event (a photo is stored first)."""
    chat = body.get("chat")
    chat = chat.strip() if isinstance(chat, str) else ""
    if not chat or len(chat) > 64:
        raise _bad("'chat' is required (at most 64 characters)")
    group = body.get("group", chat.startswith("team-"))
    if not isinstance(group, bool):
        raise _bad("'group' must be true or false")
    user = str(body.get("user") or chat)[:64]
    address = Address(PLATFORM, chat, user, is_group=group)
    common = dict(
        address=address,
        event_id=str(body.get("event_id") or uuid.uuid4())[:128],
        at=svc.clock(),
        lang_hint=_str_or_none(body.get("lang"), 16),
        user_name=_str_or_none(body.get("user_name"), 200),
    )
    kind = body.get("type")
    if kind == "text":
        return TextReceived(**common, text=str(body.get("text", "")), reply_to=_str_or_none(body.get("reply_to"), 128))
    if kind == "choice":
        return ChoiceMade(**common, data=str(body.get("data", "")))
    if kind == "command":
        return CommandReceived(**common, name=str(body.get("name", "")), arg=str(body.get("arg", "")))
    if kind == "location":
        try:
            lat, lon = float(body["lat"]), float(body["lon"])
            if lat != lat or lon != lon or abs(lat) == float("inf") or abs(lon) == float("inf"):
                raise ValueError("not a finite number")
        except (KeyError, TypeError, ValueError, OverflowError):
            raise _bad("'lat' and 'lon' must be numbers")
        return LocationReceived(**common, lat=lat, lon=lon, title=_str_or_none(body.get("title"), 300))
    if kind in ("photo", "voice") and not await svc.engine.keeps_media(
        (PhotoReceived if kind == "photo" else VoiceReceived)(**common)
    ):
        # Not kept by the flow (before consent, in a group): never stored, as on a real channel.
        return (PhotoReceived if kind == "photo" else VoiceReceived)(**common)
    if kind == "photo":
        if body.get("oversize"):  # the page does not upload what the server would refuse (HTTP 413)
            return PhotoReceived(**common, error="too_large")
        try:
            data = base64.b64decode(body.get("photo_base64") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            return PhotoReceived(**common, error="not_image")
        if len(data) > MAX_PHOTO_BYTES:
            return PhotoReceived(**common, error="too_large")
        try:
            stored = await svc.photos.put(data)
        except PhotoError as e:
            return PhotoReceived(**common, error=e.reason)
        return PhotoReceived(**common, key=stored.key)
    if kind == "voice":
        try:
            data = base64.b64decode(body.get("voice_base64") or "", validate=True)
        except (binascii.Error, ValueError, TypeError):
            return VoiceReceived(**common, error="not_audio")
        try:
            return VoiceReceived(**common, key=await svc.photos.put_voice(data))
        except PhotoError as e:
            return VoiceReceived(**common, error=e.reason)
    if kind == "unsupported":
        return UnsupportedReceived(**common, kind=str(body.get("kind", "unknown")))
    raise _bad("'type' must be text, choice, command, location, photo, voice or unsupported")


async def post_event(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    body = await read_json(request, svc.settings.sandbox_max_body_bytes)  # 413 / 400 before any work
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    ev = await to_event(svc, body)
    fresh = await svc.engine.handle(ev)
    try:
        after = int(body.get("after") or 0)
    except (TypeError, ValueError):
        raise _bad("'after' must be a number")
    return web.json_response({"ok": True, "duplicate": not fresh, "messages": await _messages(svc, ev.address.chat_id, after)})


async def get_messages(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        raise _bad("'after' must be a number")
    return web.json_response({"messages": await _messages(svc, request.match_info["chat"], after)})


async def _messages(svc, chat: str, after: int = 0) -> list[dict]:
    """What the bot sent to a chat; a card appears once, at its first place, in its latest version
    (or, once a fresh copy was asked for, the old copy as it was and the new one kept up to date)."""
    async with svc.db.session() as s:
        rows = await repo.outbox_for_chat(s, PLATFORM, chat)
    out: list[dict] = []
    cards: dict[int, dict] = {}
    now = svc.clock()
    for row in rows:
        if row.status == "failed":
            continue
        if row.status == "pending" and row.not_before is not None and row.not_before > now:
            continue  # held (quiet hours): it joins the chat when its time comes
        msg = {"id": row.id, "at": row.created_at.isoformat(), **row.payload}
        if row.card_edit and row.report_id is not None:
            msg["card_of"] = row.report_id
            if row.report_id in cards and (row.payload.get("card") or {}).get("fresh"):
                cards.pop(row.report_id)  # a fresh copy at the bottom: later edits go to it
            if row.report_id in cards:  # the same dict, already in `out`: updated in place
                first = cards[row.report_id]["message_id"]
                cards[row.report_id].clear()
                cards[row.report_id].update(msg, message_id=first)
                continue
            msg["message_id"] = row.message_id or f"m{row.id}"  # what a reply to the card names
            cards[row.report_id] = msg
        out.append(msg)
    return [m for m in out if m["id"] > after]


async def get_teams(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    async with svc.db.session() as s:
        teams = await repo.teams_all(s)
    return web.json_response(
        {"teams": [{"code": t.code, "name_th": t.name_th, "name_en": t.name_en, "kind": t.kind, "chat": f"team-{t.code}"} for t in teams]}
    )


async def provinces(request: web.Request) -> web.FileResponse:
    """The province outlines the sandbox's offline map is drawn from."""
    return web.FileResponse(
        PROVINCES_FILE, headers={"Content-Type": "application/geo+json", "Cache-Control": "public, max-age=86400"}
    )


async def get_photo(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    key = request.match_info["key"]
    viewer = request.query.get("as", "sandbox-viewer")[:100]
    try:
        data = await svc.photos.get(key)
    except PhotoDeleted:
        raise web.HTTPGone(text=svc.both(Msg("photo.deleted")))
    except (KeyError, ValueError):
        raise web.HTTPNotFound(text=svc.both(Msg("photo.missing")))
    async with svc.db.transaction() as s:
        await repo.access_log(s, f"sandbox:{viewer}", f"photo:{key[:12]}", None, svc.clock())
    return web.Response(body=data, content_type=media_type(key), headers={"Cache-Control": "private, max-age=300"})
