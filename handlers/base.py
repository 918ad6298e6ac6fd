"""What every channel shares with the wiring in `bot/`, without importing it.

`bot/` composes the channels (it imports `handlers`); a channel never imports `bot`. What a channel
needs from the running app reaches it through these keys and the `Services` object the app puts
under `SERVICES`: the database, the photo store, the clock, `accept(event)` for the inbox, the
outbox's channel table and the engine's media fetchers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

# The app's running services (bot.app.Services), filled in on start.
SERVICES: web.AppKey[Any] = web.AppKey("services", object)
# Channels and the scheduler add `async def start(app, services)` / `stop(app, services)` here.
STARTERS: web.AppKey[list] = web.AppKey("starters", list)
STOPPERS: web.AppKey[list] = web.AppKey("stoppers", list)


@dataclass(frozen=True)
class SendResult:
    """A platform's answer to one delivery. Only a platform's answer is an attempt: the outbox's
    own rate limits defer a row before it reaches the channel."""

    ok: bool
    message_id: str | None = None
    retry_after: float | None = None  # throttled by the platform: try again after this many seconds
    permanent: bool = False  # will never succeed (blocked by the user, chat gone, bad payload)
    error: str | None = None
    via: str | None = None  # how it went out: "reply" (LINE, free), "push", "edit", …
    quota_spent: bool = False  # the platform's monthly quota refused it (LINE): the operator is told
    sent_ids: tuple[int, ...] = ()  # several outbox rows delivered in one call (a LINE reply of up to 5)
    ambiguous: bool = False  # the request may have been delivered (5xx or time-out after sending)


@dataclass(frozen=True)
class ReplyToken:
    """A platform's token for answering one event (LINE: single use, about a minute), stored with
    the event; the outbox rows the event causes in its chat use it."""

    token: str
    until: datetime


class Channel(Protocol):
    platform: str

    async def send(self, row: Any, card_message_id: str | None) -> SendResult:
        """Delivers one outbox row; `card_message_id` is the card to edit in place, if any."""


def ui(payload: dict, key: str, default: str) -> str:
    """A label of the platform's own controls (bot/render.py renders them into the payload)."""
    return str((payload.get("ui") or {}).get(key) or default)


# --------------------------------------------------------------------------- hostile input

MAX_JSON_DEPTH = 64  # no platform update nests deeper than a dozen levels


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request's body, refused before it is read when it is larger than `limit`: by its
    Content-Length at once, and while streaming when it has none (chunked) or lies. 413 then."""
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=size)
        chunks.append(chunk)
    return b"".join(chunks)


def _depth_ok(text: str, limit: int) -> bool:
    """Whether brackets nest at most `limit` deep (strings skipped), checked before parsing so a
    100,000-deep body costs one scan, not a RecursionError."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def decode_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """UTF-8 JSON, or 400: bad encoding, malformed, or nested deeper than `max_depth`."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise web.HTTPBadRequest(text="the body must be UTF-8") from None
    if not _depth_ok(text, max_depth):
        raise web.HTTPBadRequest(text="JSON nested too deep")
    import json

    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise web.HTTPBadRequest(text="the body must be JSON") from None


async def read_json(request: web.Request, limit: int) -> Any:
    return decode_json(await read_body(request, limit))


def watch(task: "asyncio.Task", what: str) -> "asyncio.Task":
    """Makes sure a background task's exception is retrieved and logged (its class only: the
    message may carry personal data), never left to asyncio's "exception never retrieved"."""
    import structlog

    def done(t) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            structlog.get_logger("namjai.background").error("background_task_failed", task=what, error=type(exc).__name__)

    task.add_done_callback(done)
    return task
