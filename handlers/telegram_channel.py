"""Delivering outbox rows to Telegram (python-telegram-bot's `Bot`), within the Bot API's limits.

- A neutral message becomes sendMessage with an inline keyboard (our buttons), or, when it asks
  for a location in a private chat and has no buttons, a one-time reply keyboard with Telegram's
  "send my location" button.
- A card (payload["card"]) is the first photo with the text as its caption (text when there is no
  photo or the text is longer than a caption may be), plus a map button when it has a location;
  the report's other photos follow as one album and its voice note as a voice message, both as
  replies to the card (a new card only; `cost` counts them against the limits);
  `card_message_id` given means edit that message in place (editMessageText/editMessageCaption).
- Errors become `SendResult`s: 429 → retry after what Telegram asks, blocked/removed (403) and
  bad requests (400) → permanent, network/timeouts/5xx → retry with the outbox's backoff.
- Limits (30 messages a second overall, 20 a minute per group) are declared by `limits(row)` and
  held by the outbox in the database, for every replica at once (bot/outbox.py): a row reaches
  `send` only when there is room. A refused button press answered as an alert is not a message.
"""

from __future__ import annotations

import warnings
from datetime import timedelta
from typing import Awaitable, Callable

import structlog
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    KeyboardButton,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError

from handlers.base import SendResult, ui
from storage.photos import PhotoDeleted

log = structlog.get_logger("namjai.telegram")

PLATFORM = "telegram"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_ALERT = 200  # characters Telegram shows in a callback alert
MAX_ALBUM = 10  # photos in one media group


def _seconds(e: RetryAfter) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = e.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class TelegramChannel:
    platform = PLATFORM
    edits_questions = True  # a question asked again replaces its last copy (editMessageText)
    send_seconds = 30.0  # the longest a send takes (a card: its photo, album and voice): the limits count it in flight that long

    def __init__(
        self,
        bot: Bot,
        photo_bytes: Callable[[str], Awaitable[bytes]],
        on_migrated: Callable[[str, str], Awaitable[None]] | None = None,
        per_second: int = 30,
        group_per_minute: int = 20,
        margin: float = 0.03,  # bot/settings.py telegram_limit_margin
    ):
        self.bot = bot
        self.photo_bytes = photo_bytes
        self.on_migrated = on_migrated
        self.per_second = per_second
        self.group_per_minute = group_per_minute
        self.margin = margin

    def limits(self, row) -> list[tuple[str, int, float]]:
        """The shared buckets a row takes a place in (an alert on a button too: it may fall back to a
        message in the chat)."""
        buckets = [(PLATFORM, self.per_second, 1.0 + self.margin)]
        if row.chat_id.startswith("-"):  # a group or supergroup
            buckets.append((f"{PLATFORM}:{row.chat_id}", self.group_per_minute, 60.0 + self.margin))
        return buckets

    def cost(self, rows, card_message_id: str | None = None) -> int:
        """Messages a row becomes at Telegram: a new card also sends its other photos (an album
        counts each photo) and its voice note."""
        payload = rows[0].payload or {}
        if not payload.get("card") or card_message_id:
            return 1
        photos = payload.get("photos") or []
        extra = max(0, len(photos) - 1)
        apart = 1 if photos and len(payload.get("text") or "") > MAX_CAPTION else 0  # the photo, then the text (`_card`)
        return 1 + apart + min(extra, MAX_ALBUM) + (1 if payload.get("voice") else 0)

    async def send(self, row, card_message_id: str | None) -> SendResult:
        payload = row.payload or {}
        event = str(payload.get("event") or "")
        if payload.get("notice") and event.startswith("cb:"):
            try:  # a refused button press: a short alert on the button, nothing in the chat
                await self.bot.answer_callback_query(event[3:], text=_clip(payload.get("text") or "", MAX_ALERT), show_alert=True)
                return SendResult(True, message_id=f"alert:{row.id}")
            except TelegramError as e:  # answered already (too late): say it in the chat instead
                log.info("telegram_alert_fell_back", outbox_id=row.id, error=type(e).__name__)
        try:
            chat_id = int(row.chat_id)
        except ValueError:
            return SendResult(False, permanent=True, error="not a Telegram chat id")
        try:
            try:
                message_id = await self._deliver(chat_id, payload, card_message_id)
            except ChatMigrated as e:  # a group became a supergroup: follow it, once
                new_id = int(e.new_chat_id)
                log.info("telegram_chat_migrated_on_send", outbox_id=row.id)
                if self.on_migrated is not None:
                    await self.on_migrated(str(chat_id), str(new_id))
                message_id = await self._deliver(new_id, payload, None)
            return SendResult(True, message_id=str(message_id), via="edit" if card_message_id else "sent")
        except RetryAfter as e:
            return SendResult(False, retry_after=_seconds(e), error="429 flood control")
        except Forbidden as e:
            return SendResult(False, permanent=True, error=f"403 {e.message}")
        except BadRequest as e:
            if "not modified" in e.message.lower() and card_message_id:
                return SendResult(True, message_id=card_message_id)
            return SendResult(False, permanent=True, error=f"400 {e.message}")
        except NetworkError as e:  # includes TimedOut and 5xx
            return SendResult(False, error=f"network: {e.message}")
        except TelegramError as e:  # InvalidToken, Conflict, …: an operator's problem; keep the row
            return SendResult(False, error=f"{type(e).__name__}: {e.message}")

    # ------------------------------------------------------------ building messages

    def _markup(self, payload: dict, chat_id: int):
        rows = []
        for row in payload.get("buttons") or []:
            out = []
            for b in row:
                if len(b["data"].encode()) > MAX_CALLBACK_DATA:
                    log.warning("telegram_button_dropped", reason="callback_data over 64 bytes")
                    continue
                out.append(InlineKeyboardButton(b["label"], callback_data=b["data"]))
            if out:
                rows.append(out)
        loc = payload.get("location") if payload.get("card") else None
        if loc and loc.get("lat") is not None:
            url = f"https://www.google.com/maps/search/?api=1&query={loc['lat']:.6f},{loc['lon']:.6f}"
            rows.append([InlineKeyboardButton(ui(payload, "open_map", "🗺"), url=url)])
        if rows:
            return InlineKeyboardMarkup(rows)
        if payload.get("ask") == "location" and chat_id > 0:
            button = KeyboardButton(ui(payload, "share_location", "📍"), request_location=True)
            return ReplyKeyboardMarkup([[button]], resize_keyboard=True, one_time_keyboard=True)
        if payload.get("ask") == "located" and chat_id > 0:  # answered: the location keyboard goes
            return ReplyKeyboardRemove()
        return None

    async def _deliver(self, chat_id: int, payload: dict, card_message_id: str | None) -> int:
        markup = self._markup(payload, chat_id)
        text = payload.get("text") or "…"
        if payload.get("card"):
            return await self._card(chat_id, payload, text, markup, card_message_id)
        if card_message_id and payload.get("edit"):  # the same question, its choices changed
            message_id = int(card_message_id)
            try:
                await self.bot.edit_message_text(_clip(text, MAX_TEXT), chat_id, message_id, reply_markup=markup)
                return message_id
            except BadRequest as e:
                if "not modified" in e.message.lower():
                    return message_id
                log.info("telegram_edit_fell_back", error=e.message[:80])  # too old, deleted: send anew
        msg = await self.bot.send_message(
            chat_id, _clip(text, MAX_TEXT), reply_markup=markup, disable_notification=bool(payload.get("notice"))
        )
        return msg.message_id

    async def _card(self, chat_id: int, payload: dict, text: str, markup, card_message_id: str | None) -> int:
        keys = payload.get("photos") or []
        if card_message_id:
            message_id = int(card_message_id)
            as_caption = bool(keys)
            for attempt in (0, 1):
                try:
                    if as_caption:
                        await self.bot.edit_message_caption(chat_id, message_id, caption=_clip(text, MAX_CAPTION), reply_markup=markup)
                    else:
                        await self.bot.edit_message_text(_clip(text, MAX_TEXT), chat_id, message_id, reply_markup=markup)
                    break
                except BadRequest as e:
                    m = e.message.lower()
                    if "not modified" in m:
                        break
                    if attempt == 0 and ("no text" in m or "no caption" in m or "caption is too long" in m):
                        as_caption = not as_caption  # the card was sent the other way (see below)
                        continue
                    raise
            return message_id
        photo = None
        if keys:
            try:
                photo = await self.photo_bytes(keys[0])
            except PhotoDeleted:  # deleted by retention: the card goes as text, and says so
                text = f"{text}\n{ui(payload, 'photo_deleted', '(photo deleted)')}"
            except (KeyError, ValueError, OSError):  # not in the store (PhotoMissing): say so too
                text = f"{text}\n{ui(payload, 'photo_missing', '(photo missing)')}"
        if photo is not None and len(text) <= MAX_CAPTION:
            msg = await self.bot.send_photo(chat_id, photo, caption=text, reply_markup=markup)
        else:
            if photo is not None:  # too long for a caption: the photo first, then the card as text
                await self.bot.send_photo(chat_id, photo)
            msg = await self.bot.send_message(chat_id, _clip(text, MAX_TEXT), reply_markup=markup)
        await self._extras(chat_id, msg.message_id, keys[1 : 1 + MAX_ALBUM], payload.get("voice"))
        return msg.message_id

    async def _extras(self, chat_id: int, card_id: int, more: list[str], voice: str | None) -> None:
        """The card's other photos (one album) and its voice note, as replies to the card. The card
        is sent already: a failure here is logged, never a reason to send the card again."""
        try:
            photos = []
            for key in more:
                try:
                    photos.append(InputMediaPhoto(await self.photo_bytes(key)))
                except (KeyError, ValueError, OSError):  # deleted or missing: the card says so
                    continue
            to_card = ReplyParameters(message_id=card_id, allow_sending_without_reply=True)
            if len(photos) == 1:
                await self.bot.send_photo(chat_id, photos[0].media, reply_parameters=to_card)
            elif photos:
                await self.bot.send_media_group(chat_id, photos, reply_parameters=to_card)
            if voice:
                try:
                    data = await self.photo_bytes(voice)
                except (KeyError, ValueError, OSError):
                    data = None
                if data is not None:
                    await self.bot.send_voice(chat_id, data, reply_parameters=to_card)
        except TelegramError as e:
            log.warning("telegram_card_extras_failed", error=type(e).__name__)
