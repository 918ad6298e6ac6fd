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
