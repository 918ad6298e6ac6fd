"""LINE messages from a neutral outbox payload (pure: no network, no database), and photo links.

- `build_messages`: a private chat gets a text with quick replies (buttons, and LINE's location /
  camera / camera-roll actions when the flow asks for them); in a group, a message with buttons
  is a Flex bubble that keeps them on the message (else plain text); a report card
  (payload["card"]) is a Flex bubble with the first photo as hero, the other photos, the voice
  note and the map as links, and the buttons.
- Labels are shortened to LINE's limits (quick reply 20, button 40, text 5000, alt text 400).
- Photo links (`photo_url`, `check_photo_link`): `/line/photos/{key}?exp=…&sig=…`, HMAC-SHA256
  with the channel secret, expiring on the hour. handlers/line.py sends the messages and serves
  the photos.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, Callable
from urllib.parse import quote

import structlog

import handlers.line_sdk  # noqa: F401  (before any linebot import: only the parts used are loaded)
from linebot.v3.messaging import (
    CameraAction,
    CameraRollAction,
    FlexContainer,
    FlexMessage,
    LocationAction,
    PostbackAction,
    QuickReply,
    QuickReplyItem,
    TextMessage,
)

from handlers.base import ui

log = structlog.get_logger("namjai.line")

MAX_QUICK_REPLIES = 13
MAX_QUICK_LABEL = 20
MAX_BUTTON_LABEL = 40
MAX_TEXT = 5000
MAX_ALT_TEXT = 400


# ---------------------------------------------------------------- photo links


def sign_photo(secret: bytes, key: str, exp: int) -> str:
    return hmac.new(secret, f"{key}.{exp}".encode(), hashlib.sha256).hexdigest()


def photo_url(public_url: str, secret: bytes, key: str, now: datetime, hours: int) -> str:
    """An HTTPS link to a stored photo that works until `hours` from now (rounded up to the hour,
    so a card and its updates share one URL and LINE's image cache)."""
    exp = int(now.timestamp()) + hours * 3600
    exp += -exp % 3600
    return f"{public_url.rstrip('/')}/line/photos/{quote(key)}?exp={exp}&sig={sign_photo(secret, key, exp)}"


def check_photo_link(secret: bytes, key: str, exp: str, sig: str, now: datetime) -> bool:
    try:
        expires = int(exp)
    except ValueError:
        return False
    good = hmac.compare_digest(sign_photo(secret, key, expires), sig)
    return good and expires >= now.timestamp()


# ---------------------------------------------------------------- outgoing messages


def _short(label: str, limit: int) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def is_private(chat_id: str) -> bool:
    """LINE ids: U… a user, C… a group, R… a multi-person chat (room)."""
    return chat_id.startswith("U")


def _postback(label: str, data: str, limit: int) -> PostbackAction:
    return PostbackAction(label=_short(label, limit), data=data[:300], displayText=label[:300])


def _button_box(payload: dict, extra: list[dict] | None = None) -> dict | None:
    rows = []
    for row in payload.get("buttons") or []:
        buttons = [
            {
                "type": "button",
                "style": "primary" if i == 0 and len(rows) == 0 else "secondary",
                "height": "sm",
                "action": {"type": "postback", "label": _short(b["label"], MAX_BUTTON_LABEL), "data": b["data"][:300], "displayText": b["label"][:300]},
            }
            for i, b in enumerate(row)
        ]
        if buttons:
            rows.append({"type": "box", "layout": "horizontal", "spacing": "sm", "contents": buttons})
    rows += extra or []
    if not rows:
        return None
    return {"type": "box", "layout": "vertical", "spacing": "sm", "contents": rows}


def _text_box(text: str, urgent: bool = False) -> dict:
    lines = [line for line in text.split("\n") if line.strip()] or [" "]
    contents = []
    for i, line in enumerate(lines[:40]):
        item: dict[str, Any] = {"type": "text", "text": line[:2000], "wrap": True, "size": "md" if i == 0 else "sm"}
        if i == 0:
            item["weight"] = "bold"
            if urgent:
                item["color"] = "#C62828"
        contents.append(item)
    return {"type": "box", "layout": "vertical", "spacing": "sm", "contents": contents}


def _photo_label(payload: dict, n: int) -> str:
    labels = (payload.get("ui") or {}).get("photo_n") or []
    return str(labels[n - 1]) if len(labels) >= n else f"📷 {n}"


def card_bubble(payload: dict, link: Callable[[str], str]) -> dict:
    """A report card as a Flex bubble: the first photo as hero, the text, the buttons."""
    card = payload.get("card") or {}
    photos = payload.get("photos") or []
    bubble: dict[str, Any] = {"type": "bubble", "body": _text_box(payload.get("text") or "", bool(card.get("urgent")))}
    if photos:
        url = link(photos[0])
        bubble["hero"] = {
            "type": "image", "url": url, "size": "full", "aspectRatio": "4:3", "aspectMode": "cover",
            "action": {"type": "uri", "uri": url},
        }
    links = []
    for n, key in enumerate(photos[1:], start=2):
        links.append({"type": "button", "style": "link", "height": "sm",
                      "action": {"type": "uri", "label": _short(_photo_label(payload, n), MAX_BUTTON_LABEL), "uri": link(key)}})
    if payload.get("voice"):
        links.append({"type": "button", "style": "link", "height": "sm",
                      "action": {"type": "uri", "label": _short(ui(payload, "voice", "🎤"), MAX_BUTTON_LABEL), "uri": link(payload["voice"])}})
    loc = payload.get("location")
    if loc and loc.get("lat") is not None:
        links.append({"type": "button", "style": "link", "height": "sm",
                      "action": {"type": "uri", "label": _short(ui(payload, "map", "🗺"), MAX_BUTTON_LABEL),
                                 "uri": f"https://www.google.com/maps/search/?api=1&query={loc['lat']},{loc['lon']}"}})
    extra = [{"type": "box", "layout": "horizontal", "spacing": "sm", "contents": links[i:i + 3]} for i in range(0, len(links), 3)]
    footer = _button_box(payload, extra)
    if footer:
        bubble["footer"] = footer
    return bubble


def build_messages(payload: dict, chat_id: str, link: Callable[[str], str]) -> list:
    """The LINE messages for one outbox row's neutral payload."""
    text = (payload.get("text") or " ")[:MAX_TEXT]
    if payload.get("card"):
        title = (payload["card"].get("title") or text)[:MAX_ALT_TEXT]
        return [FlexMessage(altText=title, contents=FlexContainer.from_dict(card_bubble(payload, link)))]
    buttons = [b for row in payload.get("buttons") or [] for b in row]
    if not is_private(chat_id):
        if not buttons:
            return [TextMessage(text=text)]
        # in a group, choices stay on the message (quick replies vanish and go to everyone at once)
        bubble = {"type": "bubble", "body": _text_box(text), "footer": _button_box(payload)}
        return [FlexMessage(altText=text[:MAX_ALT_TEXT], contents=FlexContainer.from_dict(bubble))]
    actions: list = []
    ask = payload.get("ask")
    if ask == "location":
        actions.append(LocationAction(label=_short(ui(payload, "ask_location", "📍"), MAX_QUICK_LABEL)))
    elif ask == "photo":
        actions.append(CameraAction(label=_short(ui(payload, "camera", "📷"), MAX_QUICK_LABEL)))
        actions.append(CameraRollAction(label=_short(ui(payload, "camera_roll", "🖼"), MAX_QUICK_LABEL)))
    actions += [_postback(b["label"], b["data"], MAX_QUICK_LABEL) for b in buttons]
    if len(actions) > MAX_QUICK_REPLIES:
        log.warning("quick_replies_cut", have=len(actions), max=MAX_QUICK_REPLIES)
        actions = actions[:MAX_QUICK_REPLIES]
    quick = QuickReply(items=[QuickReplyItem(action=a) for a in actions]) if actions else None
    return [TextMessage(text=text, quickReply=quick)]
