"""The LINE channel (Messaging API, line-bot-sdk 3, async): webhook in, outbox rows out.

- POST /line/webhook       signed by LINE (X-Line-Signature); each event is stored in the inbox
                           (by its webhookEventId, so a redelivery is processed once) before the 200.
- GET  /line/photos/{key}  a report photo for a card's hero image: signed, expiring link
                           (`?exp=…&sig=…`, HMAC-SHA256 with the channel secret); each view logged.

Delivery (`LineChannel`): a message answers with the chat's latest reply token when one is fresh
(replies are free; pushes count against the monthly quota), otherwise it is pushed with an
X-Line-Retry-Key derived from the outbox row, so a retried push is never delivered twice.
LINE cannot edit a sent message: a card's update is a new Flex message. The messages themselves
(Flex bubbles, quick replies) and the photo-link signatures are built in handlers/line_messages.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

import structlog

import handlers.line_sdk  # noqa: F401  (before any linebot import: only the parts used are loaded)
from aiohttp import web
from linebot.v3.exceptions import InvalidSignatureError

from handlers.base import MAX_JSON_DEPTH, _depth_ok, read_body, watch
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    AsyncMessagingApiBlob,
    Configuration,
    PushMessageRequest,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
)
from linebot.v3.models.events import UnknownEvent
from linebot.v3.webhook import WebhookParser
from linebot.v3.webhooks import (
    AudioMessageContent,
    FileMessageContent,
    FollowEvent,
    GroupSource,
    ImageMessageContent,
    JoinEvent,
    LeaveEvent,
    LocationMessageContent,
    MemberJoinedEvent,
    MemberLeftEvent,
    MessageEvent,
    PostbackEvent,
    RoomSource,
    StickerMessageContent,
    TextMessageContent,
    UnfollowEvent,
    UserSource,
    VideoMessageContent,
)

from handlers.base import SERVICES, STARTERS, STOPPERS, ReplyToken, SendResult
from flows.model import (
    Address,
    ChoiceMade,
    CommandReceived,
    InboundEvent,
    LocationReceived,
    PhotoReceived,
    TextReceived,
    UnsupportedReceived,
    VoiceReceived,
)
from flows.model import Msg
from handlers.line_messages import build_messages, check_photo_link, photo_url
from storage import repo
from storage.photos import PhotoDeleted, media_type, validate_key

log = structlog.get_logger("namjai.line")

PLATFORM = "line"
LINE = web.AppKey("line", "LineBot")
REPLY_TOKEN_TTL = timedelta(seconds=50)  # LINE accepts a reply token for about a minute, once
MAX_REPLY_MESSAGES = 5  # messages in one Reply (or Push) call
QUOTA_RETRY = 3600.0  # the monthly push quota is spent: try again in an hour (the operator is warned)
THROTTLE_RETRY = 60.0
API_TIMEOUT = 15  # seconds, per Messaging API call
BLOB_TIMEOUT = 60
NAME_TIMEOUT = 2.0  # a staff member's display name is looked up during the webhook: keep it short
LOADING_SECONDS = 5
RETRY_KEY_NS = uuid.UUID("6f0b7a52-3c1e-4d8e-9a57-2f4a1d6c9e10")  # namespace of our X-Line-Retry-Keys


# ---------------------------------------------------------------- the channel


def retry_key(row) -> str:
    """The same outbox row always gets the same X-Line-Retry-Key (LINE keeps them 24 hours)."""
    created = row.created_at.isoformat() if row.created_at else ""
    return str(uuid.uuid5(RETRY_KEY_NS, f"outbox:{row.id}:{created}"))


def _error_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or "")
    except (ValueError, AttributeError):
        return str(exc.body or "")[:200]


class LineChannel:
    """Sends outbox rows: a row written while answering an event carries that event's reply token,
    and the rows answering one event go out in one Reply call (up to five messages, free). Without
    a usable token a row is pushed, with an X-Line-Retry-Key derived from the row.

    An ambiguous reply (5xx or a time-out: LINE may have taken it) is not pushed again at once: the
    reply is tried again with the same token. LINE refusing the token while it should still be
    valid means the first try was delivered (a token is single-use): the row counts as sent. Only
    when the token's minute is over before that retry is the row pushed; that push may duplicate
    the first reply — the one duplicate class left (see docs/line.md)."""

    platform = PLATFORM
    reply_batch = MAX_REPLY_MESSAGES

    def __init__(self, api: AsyncMessagingApi, bot: "LineBot"):
        self.api = api
        self.bot = bot

    def limits(self, row) -> list[tuple[str, int, float]]:
        return [(PLATFORM, max(1, int(self.bot.settings.line_rate_per_second)), 1.0)]

    def _messages(self, row) -> list:
        settings = self.bot.settings
        now = self.bot.clock()
        link = lambda key: photo_url(settings.public_url, self.bot.secret, key, now, settings.line_photo_link_hours)  # noqa: E731
        return build_messages(row.payload, row.chat_id, link)

    async def send(self, row, card_message_id: str | None) -> SendResult:
        # LINE cannot edit a message: a card update (card_message_id set) is posted as a new card.
        return await self.send_batch([row])

    async def send_batch(self, rows) -> SendResult:
        head = rows[0]
        built: list[tuple[object, list]] = []
        for row in rows:
            try:
                built.append((row, self._messages(row)))
            except Exception as exc:  # a payload we cannot show will never be shown
                if row is head:
                    log.exception("line_payload_invalid", outbox_id=row.id)
                    return SendResult(False, permanent=True, error=f"payload: {type(exc).__name__}")
                break
        batch: list[tuple[object, list]] = []
        count = 0
        for row, messages in built:  # as many whole rows as fit in one Reply
            if batch and count + len(messages) > MAX_REPLY_MESSAGES:
                break
            batch.append((row, messages))
            count += len(messages)
        now = self.bot.clock()
        if head.reply_token and head.reply_until and head.reply_until > now:
            messages = [m for _, ms in batch for m in ms][:MAX_REPLY_MESSAGES]
            try:
                resp = await self.api.reply_message(
                    ReplyMessageRequest(replyToken=head.reply_token, messages=messages), _request_timeout=API_TIMEOUT
                )
                return SendResult(True, message_id=_first_id(resp), via="reply", sent_ids=tuple(r.id for r, _ in batch))
            except ApiException as exc:
                ids = tuple(r.id for r, _ in batch)
                if exc.status == 400 and head.reply_ambiguous:
                    # the token was taken, and by us: the ambiguous reply before this one was delivered
                    log.info("line_ambiguous_reply_was_delivered", outbox_id=head.id)
                    return SendResult(True, via="reply", sent_ids=tuple(r.id for r, _ in batch if r.reply_ambiguous))
                if exc.status != 400:
                    result = self._failed(exc, head, ambiguous=(exc.status or 0) >= 500 or not exc.status)
                    return replace(result, sent_ids=ids) if result.ambiguous else result
                log.info("line_reply_token_refused", outbox_id=head.id)  # expired or used: push instead
            except (asyncio.TimeoutError, OSError) as exc:  # no answer: it may have been delivered
                return SendResult(False, error=f"LINE reply: {type(exc).__name__}", ambiguous=True, sent_ids=tuple(r.id for r, _ in batch))
        elif head.reply_ambiguous:
            log.warning("line_ambiguous_reply_pushed", outbox_id=head.id)  # the documented duplicate class
        try:
            resp = await self.api.push_message(
                PushMessageRequest(to=head.chat_id, messages=built[0][1]), x_line_retry_key=retry_key(head), _request_timeout=API_TIMEOUT
            )
        except ApiException as exc:
            if exc.status == 409:  # this retry key was accepted before: the message is delivered
                log.info("line_push_already_accepted", outbox_id=head.id)
                return SendResult(True, message_id=_first_id_from_body(exc.body), via="push", sent_ids=(head.id,))
            return self._failed(exc, head)
        except (asyncio.TimeoutError, OSError) as exc:  # retried with the same retry key: never twice
            return SendResult(False, error=f"LINE push: {type(exc).__name__}")
        return SendResult(True, message_id=_first_id(resp), via="push", sent_ids=(head.id,))

    def _failed(self, exc: ApiException, row, ambiguous: bool = False) -> SendResult:
        status = exc.status or 0
        message = _error_message(exc)
        error = f"LINE {status}: {message}"[:500]
        if status == 429:
            if "monthly limit" in message.lower():
                log.warning(
                    "line_monthly_quota_reached", outbox_id=row.id, retry_in=QUOTA_RETRY,
                    hint="the LINE Official Account's push quota is spent: upgrade the plan or wait for next month",
                )
                return SendResult(False, retry_after=QUOTA_RETRY, error=error, quota_spent=True)
            return SendResult(False, retry_after=_retry_after(exc), error=error)
        if status >= 500 or status == 0:
            return SendResult(False, error=error, ambiguous=ambiguous)
        log.warning("line_send_refused", outbox_id=row.id, status=status, error=message[:200])
        return SendResult(False, permanent=True, error=error)


def _retry_after(exc: ApiException) -> float:
    value = (exc.headers or {}).get("Retry-After") if exc.headers is not None else None
    try:
        return max(1.0, float(value)) if value is not None else THROTTLE_RETRY
    except ValueError:
        return THROTTLE_RETRY


def _first_id(resp) -> str | None:
    sent = getattr(resp, "sent_messages", None) or []
    return str(sent[0].id) if sent else None


def _first_id_from_body(body) -> str | None:
    try:
        sent = json.loads(body or "{}").get("sentMessages") or []
        return str(sent[0]["id"]) if sent else None
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


# ---------------------------------------------------------------- the webhook


class LineBot:
    """Everything LINE needs: settings, the API clients (after start) and the reply tokens."""

    def __init__(self, settings):
        self.settings = settings
        self.secret_text = settings.line_channel_secret.get_secret_value()
        self.secret = self.secret_text.encode()
        self.parser = WebhookParser(self.secret_text)
        self.client: AsyncApiClient | None = None
        self.api: AsyncMessagingApi | None = None
        self.blob: AsyncMessagingApiBlob | None = None
        self.svc = None  # the app's Services, on start
        self.names: dict[tuple[str, str], tuple[str, float]] = {}  # (chat, user) -> (display name, fetched at)
        self.loading_until: dict[str, float] = {}  # chat -> when its loading animation ends

    def clock(self) -> datetime:
        assert self.svc is not None
        return self.svc.clock()

    # ---- lifecycle

    async def start(self, app: web.Application, svc) -> None:
        self.svc = svc
        config = Configuration(access_token=self.settings.line_access_token.get_secret_value(), host=self.settings.line_api_host or None)
        self.client = AsyncApiClient(config)
        self.api = AsyncMessagingApi(self.client)
        self.blob = AsyncMessagingApiBlob(self.client)
        svc.outbox.channels[PLATFORM] = LineChannel(self.api, self)
        svc.engine.media_fetchers[PLATFORM] = self.fetch
        if not self.settings.public_url.startswith("https://"):
            log.warning("line_public_url_not_https", hint="LINE shows card photos only from https:// links: set NAMJAI_PUBLIC_URL")
        log.info("line_started", api=self.settings.line_api_host or "default")

    async def stop(self, app: web.Application, svc) -> None:
        if self.client is not None:
            await self.client.close()
            self.client = None

    async def fetch(self, message_id: str) -> bytes:
        assert self.blob is not None
        return bytes(await self.blob.get_message_content(message_id, _request_timeout=BLOB_TIMEOUT))

    # ---- reply tokens

    def reply_token(self, token: str | None, redelivery: bool):
        """The event's reply token with its expiry, for the inbox row (None when unusable)."""
        if not token or redelivery or set(token) <= {"0", "f"}:  # the console's "verify" sends dummy tokens
            return None
        return ReplyToken(token, self.clock() + REPLY_TOKEN_TTL)

    # ---- events

    async def webhook(self, request: web.Request) -> web.Response:
        svc = request.app[SERVICES]
        signature = request.headers.get("X-Line-Signature", "")
        if not signature:  # refused before the body is read
            log.warning("line_bad_signature")
            raise web.HTTPBadRequest(text="bad signature")
        raw = await read_body(request, self.settings.max_body_bytes)  # 413 before reading a large body
        expected = base64.b64encode(hmac.new(self.secret_text.encode(), raw, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature.encode("ascii", "replace")):  # on the bytes, before decoding
            log.warning("line_bad_signature")
            raise web.HTTPBadRequest(text="bad signature")
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            body = None
        if body is None or not _depth_ok(body, MAX_JSON_DEPTH):
            log.warning("line_bad_body")
            raise web.HTTPBadRequest(text="bad body")
        try:
            events = self.parser.parse(body, signature)
        except InvalidSignatureError:
            log.warning("line_bad_signature")
            raise web.HTTPBadRequest(text="bad signature")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            log.warning("line_bad_body")
            raise web.HTTPBadRequest(text="bad body")
        for e in events:
            await self.handle(svc, e)
        return web.Response(text="OK")

    async def handle(self, svc, e) -> None:
        if isinstance(e, UnknownEvent):
            log.info("line_unknown_event", type=getattr(e, "type", "?"))  # no personal data
            return
        if str(getattr(e.mode, "value", e.mode)) == "standby":
            return  # another channel module is active in this chat
        redelivery = bool(e.delivery_context and e.delivery_context.is_redelivery)
        address = address_of(e.source)
        if address is None:
            log.info("line_event_without_source", type=e.type)
            return
        if isinstance(e, JoinEvent):
            await self.joined(svc, e, address)
            return
        if isinstance(e, (UnfollowEvent, LeaveEvent, MemberJoinedEvent, MemberLeftEvent)):
            log.info("line_membership", type=e.type, group=address.is_group)
            return
        name = None
        if address.is_group and address.user_id and _acts_on_report(e):
            name = await self.member_name(e.source, address)
        ev = to_event(e, address, svc.clock(), name)
        if ev is None:
            log.info("line_event_ignored", type=e.type)
            return
        fresh = await svc.accept(ev, self.reply_token(getattr(e, "reply_token", None), redelivery))
        if fresh and not redelivery:
            if not address.is_group:
                if self.loading_until.get(address.chat_id, 0.0) <= time.monotonic():
                    self._background(svc, self.loading(address.chat_id))

    async def joined(self, svc, e, address: Address) -> None:
        """The bot was added to a group: the flows tell an unbound group how to bind."""
        log.info("line_joined_group")
        ev = CommandReceived(address=address, event_id=e.webhook_event_id, at=svc.clock(), name="joined")
        redelivery = bool(e.delivery_context and e.delivery_context.is_redelivery)
        await svc.accept(ev, self.reply_token(e.reply_token, redelivery))

    async def member_name(self, source, address: Address) -> str | None:
        """A staff member's display name for the report history (cached; best effort)."""
        key = (address.chat_id, address.user_id or "")
        cached = self.names.get(key)
        if cached and time.monotonic() - cached[1] < 3600:
            return cached[0]
        if self.api is None:
            return None
        try:
            if isinstance(source, GroupSource):
                profile = await asyncio.wait_for(self.api.get_group_member_profile(source.group_id, source.user_id), NAME_TIMEOUT)
            else:
                profile = await asyncio.wait_for(self.api.get_room_member_profile(source.room_id, source.user_id), NAME_TIMEOUT)
        except Exception as exc:
            log.info("line_member_name_unavailable", error=type(exc).__name__)
            return None
        name = (profile.display_name or "")[:100] or None
        if len(self.names) > 5000:
            self.names.clear()
        self.names[key] = (name, time.monotonic())
        return name

    async def loading(self, chat_id: str) -> None:
        """Shows the loading animation (5 s) unless it is showing already: one call, not one per event."""
        now = time.monotonic()
        if self.api is None or self.loading_until.get(chat_id, 0.0) > now:
            return
        if len(self.loading_until) > 10_000:
            self.loading_until = {c: t for c, t in self.loading_until.items() if t > now}
        self.loading_until[chat_id] = now + LOADING_SECONDS
        try:
            await self.api.show_loading_animation(ShowLoadingAnimationRequest(chatId=chat_id, loadingSeconds=LOADING_SECONDS), _request_timeout=5)
        except Exception as exc:  # only a nicety
            log.debug("line_loading_failed", error=type(exc).__name__)

    @staticmethod
    def _background(svc, coro) -> None:
        task = watch(asyncio.create_task(coro, name="line:background"), "line_background")
        svc.background.add(task)
        task.add_done_callback(svc.background.discard)

    # ---- photo links

    async def photo(self, request: web.Request) -> web.Response:
        svc = request.app[SERVICES]
        key = request.match_info["key"]
        now = svc.clock()
        if not check_photo_link(self.secret, key, request.query.get("exp", ""), request.query.get("sig", ""), now):
            raise web.HTTPForbidden(text="link expired or invalid")
        try:
            validate_key(key)
            data = await svc.photos.get(key)
        except PhotoDeleted:
            raise web.HTTPGone(text=svc.both(Msg("photo.deleted")))
        except (KeyError, ValueError):
            raise web.HTTPNotFound(text=svc.both(Msg("photo.missing")))
        async with svc.db.transaction() as s:
            await repo.access_log(s, "line:photo-link", f"photo:{key[:12]}", None, now)
        return web.Response(body=data, content_type=media_type(key), headers={"Cache-Control": "private, max-age=3600"})


def _acts_on_report(e) -> bool:
    """A group event that may be a staff action (its author's name goes into the history)."""
    if isinstance(e, PostbackEvent):
        return True
    return isinstance(e, MessageEvent) and isinstance(e.message, TextMessageContent) and bool(e.message.quoted_message_id)


def address_of(source) -> Address | None:
    if isinstance(source, UserSource) and source.user_id:
        return Address(PLATFORM, source.user_id, source.user_id)
    if isinstance(source, GroupSource):
        return Address(PLATFORM, source.group_id, source.user_id, is_group=True)
    if isinstance(source, RoomSource):
        return Address(PLATFORM, source.room_id, source.user_id, is_group=True)
    return None


def to_event(e, address: Address, now: datetime, user_name: str | None = None) -> InboundEvent | None:
    """A LINE webhook event as a neutral event (None: nothing for the flows)."""
    common = dict(address=address, event_id=e.webhook_event_id, at=now, user_name=user_name)
    if isinstance(e, FollowEvent):
        return CommandReceived(**common, name="start")  # the flow greets and shows the privacy notice
    if isinstance(e, PostbackEvent):
        return ChoiceMade(**common, data=e.postback.data)
    if not isinstance(e, MessageEvent):
        return None
    m = e.message
    if isinstance(m, TextMessageContent):
        return TextReceived(**common, text=m.text, reply_to=m.quoted_message_id if address.is_group else None)
    if isinstance(m, ImageMessageContent):
        # each image of a set (m.image_set) is an event of its own: the flow gathers them in the draft
        return PhotoReceived(**common, media=m.id)
    if isinstance(m, LocationMessageContent):
        return LocationReceived(**common, lat=float(m.latitude), lon=float(m.longitude), title=m.title or m.address)
    if isinstance(m, StickerMessageContent):
        return UnsupportedReceived(**common, kind="sticker")
    if isinstance(m, AudioMessageContent):
        if address.is_group:
            return UnsupportedReceived(**common, kind="audio")
        return VoiceReceived(**common, media=m.id)  # kept as the note's attachment
    if isinstance(m, VideoMessageContent):
        return UnsupportedReceived(**common, kind="video")
    if isinstance(m, FileMessageContent):  # an iPhone's HEIC sent as a file is a photo
        if (m.file_name or "").lower().endswith((".heic", ".heif", ".jpg", ".jpeg", ".png")):
            return PhotoReceived(**common, media=m.id)
        return UnsupportedReceived(**common, kind="file")
    return UnsupportedReceived(**common, kind="unknown")


def setup(app: web.Application, settings) -> None:
    bot = LineBot(settings)
    app[LINE] = bot
    app.router.add_post("/line/webhook", bot.webhook)
    app.router.add_get("/line/photos/{key}", bot.photo)
    app[STARTERS].append(bot.start)
    app[STOPPERS].append(bot.stop)
