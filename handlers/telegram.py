"""Telegram through python-telegram-bot 22: the webhook (or polling) in, the outbox out.

`setup(app, settings)` (called by bot.app.create_app when NAMJAI_TELEGRAM_TOKEN is set):
- POST /telegram/webhook: checks X-Telegram-Bot-Api-Secret-Token, maps the Update to a neutral
  event (flows.model), stores it in the inbox (`Services.accept`) and answers 200; the engine
  processes it in the background.
- on start: builds PTB's Application (no Updater: we receive updates ourselves), registers the
  outbox channel and the photo fetcher; on stop: shuts it down.

Nothing personal is logged here: no text, no user or chat ids, no locations, no file URLs (they
contain the bot token).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from dataclasses import dataclass

import structlog
from aiohttp import web
from telegram import Bot, Message, Update
from telegram.error import NetworkError, RetryAfter, TelegramError
from telegram.ext import Application

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
from handlers.base import STARTERS, STOPPERS, read_json, watch
from handlers.telegram_channel import PLATFORM, TelegramChannel, _seconds
from storage import repo, telegram_repo

log = structlog.get_logger("namjai.telegram")

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/telegram/webhook"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
CALLBACK_WAIT = 3.0  # seconds a button press waits for its processing before a plain answer
MAX_BODY = 1_000_000
MAX_DOWNLOAD = 20_000_000  # the Bot API serves files up to 20 MB
GROUP_TYPES = ("group", "supergroup")
# Service messages: facts about the chat, not something a person sent us.
SERVICE_FIELDS = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "channel_chat_created", "pinned_message",
    "message_auto_delete_timer_changed", "write_access_allowed", "video_chat_started", "video_chat_ended",
    "video_chat_scheduled", "video_chat_participants_invited", "forum_topic_created", "forum_topic_edited",
    "forum_topic_closed", "forum_topic_reopened", "general_forum_topic_hidden", "general_forum_topic_unhidden",
    "users_shared", "chat_shared", "proximity_alert_triggered", "boost_added", "chat_background_set",
    "successful_payment", "connected_website",
)


@dataclass
class Mapped:
    """What an Update means for us: an event to store, a migration to apply, a button to answer."""

    kind: str  # for logs and metrics only
    event: InboundEvent | None = None
    migrate: tuple[str, str] | None = None  # (old chat id, new chat id)
    callback_id: str | None = None


IMAGE_SUFFIXES = (".heic", ".heif", ".jpg", ".jpeg", ".png", ".webp")


def _is_image_document(mime: str | None, name: str | None) -> bool:
    """An image sent as a file: by its type, or by its name (iPhones' HEIC often comes typed
    application/octet-stream)."""
    return (mime or "").lower().startswith("image/") or (name or "").lower().endswith(IMAGE_SUFFIXES)


def _attachment_kind(msg: Message) -> str | None:
    if msg.sticker:
        return "sticker"
    if msg.video or msg.video_note or msg.animation:
        return "video"
    if msg.voice or msg.audio:
        return "audio"
    if msg.document:
        return "file"
    return None


def _command(text: str, username: str | None) -> tuple[str, str] | None:
    """`/name@bot arg` → (name, arg); None when it is addressed to another bot."""
    head, _, arg = text.strip().partition(" ")
    name, _, target = head[1:].partition("@")
    if target and username and target.lower() != username.lower():
        return None
    return name.lower(), arg.strip()


def map_update(update: Update, now, username: str | None = None) -> Mapped:
    """An Update → what to do with it. Pure: no I/O."""
    if update.callback_query is not None:
        q = update.callback_query
        msg = q.message
        if msg is None or q.data is None or q.from_user is None or msg.chat is None:  # inline mode, a game: not ours
            return Mapped("callback_foreign", callback_id=q.id)
        chat = msg.chat
        address = Address(PLATFORM, str(chat.id), str(q.from_user.id), is_group=chat.type in GROUP_TYPES)
        ev = ChoiceMade(
            address=address, event_id=f"cb:{q.id}", at=now, lang_hint=q.from_user.language_code,
            user_name=q.from_user.full_name, data=q.data,
        )
        return Mapped("callback", ev, callback_id=q.id)
    if update.edited_message is not None:
        return Mapped("edited_live_location" if update.edited_message.location else "edited_message")
    if update.my_chat_member is not None:
        m = update.my_chat_member
        status = getattr(m.new_chat_member, "status", None) or "unknown"
        if status in ("member", "administrator") and m.chat is not None and m.from_user is not None and m.chat.type in GROUP_TYPES:
            address = Address(PLATFORM, str(m.chat.id), str(m.from_user.id), is_group=True)
            ev = CommandReceived(address=address, event_id=str(update.update_id), at=now, name="joined")
            return Mapped(f"my_chat_member_{status}", ev)
        return Mapped(f"my_chat_member_{status}")
    msg = update.message
    if msg is None:
        return Mapped("unknown_update")
    chat = msg.chat
    if msg.migrate_to_chat_id:
        return Mapped("migrate", migrate=(str(chat.id), str(msg.migrate_to_chat_id)))
    if msg.migrate_from_chat_id:
        return Mapped("migrate", migrate=(str(msg.migrate_from_chat_id), str(chat.id)))
    user = msg.from_user
    if chat.type not in ("private", *GROUP_TYPES) or user is None:
        return Mapped("other_chat")
    if user.is_bot:
        return Mapped("from_bot")
    is_group = chat.type in GROUP_TYPES
    common = dict(
        address=Address(PLATFORM, str(chat.id), str(user.id), is_group=is_group),
        event_id=str(update.update_id), at=now, lang_hint=user.language_code, user_name=user.full_name,
    )
    text = msg.text
    if text is not None:
        if text.startswith("/"):
            cmd = _command(text, username)
            if cmd is None:
                return Mapped("command_for_other_bot")
            if cmd[0]:
                return Mapped("command", CommandReceived(**common, name=cmd[0], arg=cmd[1]))
        reply_to = str(msg.reply_to_message.message_id) if msg.reply_to_message else None
        return Mapped("text", TextReceived(**common, text=text, reply_to=reply_to))
    if any(getattr(msg, f, None) for f in SERVICE_FIELDS):
        return Mapped("service_message")
    if is_group:  # privacy mode: only replies reach us; staff act with buttons and text replies
        kind = _attachment_kind(msg) or ("photo" if msg.photo else "location" if msg.location else "unknown")
        return Mapped(f"group_{kind}", UnsupportedReceived(**common, kind=kind))
    if msg.photo:
        largest = max(msg.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return Mapped("photo", PhotoReceived(**common, media=largest.file_id))
    doc = msg.document
    if doc is not None and _is_image_document(doc.mime_type, doc.file_name):
        if doc.file_size and doc.file_size > MAX_DOWNLOAD:
            return Mapped("image_document", PhotoReceived(**common, error="too_large"))
        return Mapped("image_document", PhotoReceived(**common, media=doc.file_id))
    voice = msg.voice or msg.audio
    if voice is not None:
        if voice.file_size and voice.file_size > MAX_DOWNLOAD:
            return Mapped("voice", VoiceReceived(**common, error="too_large"))
        return Mapped("voice", VoiceReceived(**common, media=voice.file_id))  # kept with the note
    if msg.venue is not None:
        loc = msg.venue.location
        return Mapped("venue", LocationReceived(**common, lat=loc.latitude, lon=loc.longitude, title=msg.venue.title))
    if msg.location is not None:
        loc = msg.location
        return Mapped("location", LocationReceived(**common, lat=loc.latitude, lon=loc.longitude, live=bool(loc.live_period)))
    kind = _attachment_kind(msg) or "unknown"
    return Mapped(f"unsupported_{kind}", UnsupportedReceived(**common, kind=kind))


@dataclass
class Telegram:
    """The channel's running parts, filled in on start."""

    settings: object
    application: Application | None = None
    svc: object | None = None
    channel: TelegramChannel | None = None

    @property
    def bot(self) -> Bot:
        assert self.application is not None, "Telegram channel not started"
        return self.application.bot

    # ------------------------------------------------------------ lifecycle

    async def start(self, app: web.Application, svc) -> None:
        self.application = build_application(self.settings)
        await self.application.initialize()  # getMe: fails fast on a wrong token
        self.svc = svc
        st = self.settings
        self.channel = TelegramChannel(
            self.bot, svc.photos.get, on_migrated=self.migrate, per_second=int(st.telegram_rate_per_second),
            group_per_minute=st.telegram_group_per_minute, margin=st.telegram_limit_margin,
        )
        svc.outbox.channels[PLATFORM] = self.channel
        svc.engine.media_fetchers[PLATFORM] = self.fetch
        log.info("telegram_started", webhook=WEBHOOK_PATH, secret=bool(self.settings.telegram_webhook_secret))

    async def stop(self, app: web.Application, svc) -> None:
        if self.application is not None:
            with contextlib.suppress(Exception):
                await self.application.shutdown()

    # ------------------------------------------------------------ in

    async def fetch(self, file_id: str) -> bytes:
        """A photo's bytes by its file_id (the engine stores them; the URL holds the token: never logged)."""
        f = await self.bot.get_file(file_id)
        if f.file_size and f.file_size > MAX_DOWNLOAD:
            raise ValueError("file too large")
        return bytes(await f.download_as_bytearray())

    async def migrate(self, old: str, new: str) -> None:
        async with self.svc.db.transaction() as s:
            moved = await telegram_repo.move_binding(s, old, new)
        log.info("telegram_group_migrated", binding_moved=moved)

    async def ingest_data(self, data: dict) -> str:
        try:
            update = Update.de_json(data, self.bot)
        except Exception as e:
            log.warning("telegram_update_unparseable", error=type(e).__name__)
            return "unparseable"
        return await self.ingest(update)

    async def ingest(self, update: Update) -> str:
        """Stores what an update means (before the 200); raises when storing failed, so that
        Telegram delivers it again."""
        bot = self.bot
        m = map_update(update, self.svc.clock(), bot.username)
        outcome = m.kind
        if m.migrate is not None:
            await self.migrate(*m.migrate)
        processing = None
        if m.event is not None:
            processing = await self.svc.accept_task(m.event)
            if processing is None:
                outcome = f"{m.kind}_duplicate"
        if m.callback_id is not None:
            self._answer_later(m.callback_id, m.event, processing)
        log.debug("telegram_update", kind=outcome)
        return outcome

    def _answer_later(self, callback_id: str, ev=None, processing: asyncio.Task | None = None) -> None:
        """Stops the button's spinner once the press is processed. A refused press is answered by
        the outbox as an alert on the button (TelegramChannel); any other press plainly, here."""

        async def answer():
            if processing is not None:
                await asyncio.wait([processing], timeout=CALLBACK_WAIT)
                if processing.done():
                    try:
                        async with self.svc.db.session() as s:
                            a = ev.address
                            if await repo.notice_for_event(s, PLATFORM, a.chat_id, ev.event_id):
                                return  # the refusal's outbox row answers it, as an alert
                    except Exception as e:  # the database is away: the spinner is stopped plainly
                        log.warning("telegram_callback_check_failed", error=type(e).__name__)
            try:
                await self.bot.answer_callback_query(callback_id)
            except TelegramError as e:  # too old, already answered: nothing to do
                log.info("telegram_callback_unanswered", error=type(e).__name__)

        task = watch(asyncio.create_task(answer(), name="telegram:answer"), "telegram_answer")
        self.svc.background.add(task)  # cancelled on shutdown like the engine's work
        task.add_done_callback(self.svc.background.discard)

    async def poll(self, stop: asyncio.Event | None = None, timeout: int = 30) -> None:
        """Development: getUpdates in a loop, each update through the same path as the webhook.
        An update is confirmed (offset moved past it) only once it is stored."""
        stop = stop or asyncio.Event()
        offset: int | None = None
        pause = 1.0
        while not stop.is_set():
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=timeout, allowed_updates=ALLOWED_UPDATES, read_timeout=timeout + 10
                )
                for update in updates:
                    await self.ingest(update)
                    offset = update.update_id + 1
                pause = 1.0
            except RetryAfter as e:
                await _sleep_or_stop(stop, _seconds(e))
            except (NetworkError, OSError) as e:
                log.warning("telegram_poll_error", error=type(e).__name__)
                await _sleep_or_stop(stop, pause)
                pause = min(pause * 2, 30.0)
            except Exception:
                log.exception("telegram_poll_ingest_error")
                await _sleep_or_stop(stop, pause)
                pause = min(pause * 2, 30.0)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # not wait_for: it can swallow a cancellation on 3.11
            await stop.wait()


def build_application(settings) -> Application:
    builder = (
        Application.builder()
        .token(settings.telegram_token.get_secret_value())
        .updater(None)
        .connection_pool_size(16)
        .pool_timeout(10)
    )
    if settings.telegram_api_base:
        base = settings.telegram_api_base.rstrip("/")
        builder = builder.base_url(base + "/bot").base_file_url(settings.telegram_api_file_base or base + "/file/bot")
    return builder.build()


TELEGRAM = web.AppKey("telegram", Telegram)


def setup(app: web.Application, settings) -> None:
    tg = Telegram(settings)
    app[TELEGRAM] = tg
    app.router.add_post(WEBHOOK_PATH, webhook)
    app[STARTERS].append(tg.start)
    app[STOPPERS].append(tg.stop)
    if not settings.telegram_webhook_secret:
        log.warning("telegram_webhook_without_secret", effect="the webhook refuses every request; use polling or set NAMJAI_TELEGRAM_WEBHOOK_SECRET")


def secret_ok(settings, header: str | None) -> bool:
    expected = settings.telegram_webhook_secret
    if not expected or header is None:
        return False
    return hmac.compare_digest(header.encode(), expected.get_secret_value().encode())


async def webhook(request: web.Request) -> web.Response:
    tg: Telegram = request.app[TELEGRAM]
    if not secret_ok(tg.settings, request.headers.get(SECRET_HEADER)):
        log.warning("telegram_webhook_forbidden")
        raise web.HTTPForbidden()
    if tg.application is None:
        raise web.HTTPServiceUnavailable()
    data = await read_json(request, min(MAX_BODY, tg.settings.max_body_bytes))  # 413 / 400 before any work
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(text="an Update object expected")
    await tg.ingest_data(data)  # a storage failure raises: 500, and Telegram delivers it again
    return web.Response(status=200)
