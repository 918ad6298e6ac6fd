"""The engine: the inbox (bot/inbox.py) hands it one event at a time, in its conversation's order,
inside that event's transaction; it runs the flows and stores what they decide.

- a private chat is a volunteer's conversation (`flows.report.step`), its state in `conversations`;
- a group chat goes to the staff desk (bot/staff_desk.py);
- reports, cards and the outbox are the reports service's (bot/reports.py).

No business rule lives here: what happens is decided in `flows/`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

import structlog

from bot.maplinks import MapLinkResolver
from bot.inbox import Inbox
from handlers.base import ReplyToken
from bot.reports import FlowContext, Reports
from bot.console import Console
from bot.staff_desk import StaffDesk
from flows import console as consoleflow
from flows import cards as cardflow
from flows import report as reportflow
from flows.model import (
    Action,
    BindChat,
    ChoiceMade,
    DropMedia,
    ForgetVolunteer,
    Event,
    InboundEvent,
    ListReports,
    Msg,
    PhotoReceived,
    Reply,
    SubmitReport,
    VoiceReceived,
)
from storage import repo
from storage.boundaries import Boundaries
from storage.db import Database
from storage.photos import PhotoError, PhotoStore

log = structlog.get_logger("namjai.engine")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


async def drop_unused_media(db: Database, photos: PhotoStore | None, keys) -> int:
    """Deletes stored files that no report and no draft names any more (the store is
    content-addressed: the same photo may serve another report). Returns how many went."""
    from storage import sched_repo

    if photos is None or not keys:
        return 0
    async with db.session() as s:
        used = await sched_repo.media_in_use(s)
    gone = 0
    for key in sorted(set(keys) - used):
        try:
            await photos.delete(key, mark=False)  # nothing names it: not even its key stays
            gone += 1
        except ValueError:  # not a key of the store
            pass
    return gone


class Engine:
    def __init__(
        self,
        db: Database,
        *,
        boundaries: Boundaries | None = None,
        clock: Callable[[], datetime] = utcnow,
        default_lang: str = "th",
        photos: PhotoStore | None = None,
        inbox_concurrency: int = 3,
        policy=None,
    ):
        self.db = db
        self.photos = photos
        # platform -> coroutine fetching a media reference's bytes (registered by each channel)
        self.media_fetchers: dict[str, Callable[[str], Awaitable[bytes]]] = {}
        self.boundaries = boundaries or Boundaries.default()
        self.clock = clock
        self.default_lang = default_lang
        self.reports = Reports(self.boundaries, clock)
        self.desk = StaffDesk(db, self.reports, clock, default_lang, policy=policy)
        self.console = Console(db, self.reports, self.desk, clock, default_lang=default_lang)
        self.map_links: MapLinkResolver | None = MapLinkResolver()  # short map links in typed text
        self.inbox = Inbox(db, clock, self.dispatch, self.prepare, self._give_up, self.needs_prepare, concurrency=inbox_concurrency)

    # ------------------------------------------------------------ the inbox's interface

    def on_outbox(self, listener: Callable[[], None]) -> None:
        """`listener` is called after a commit that put messages in the outbox."""
        self.inbox.on_outbox.append(listener)

    async def ingest(self, ev: InboundEvent, reply: ReplyToken | None = None) -> int | None:
        """Stores an event durably (group-committed with others arriving at once); None when the
        platform delivered it before."""
        return await self.inbox.ingest(ev, reply)

    async def handle(self, ev: InboundEvent) -> bool:
        """Stores one event and processes its conversation up to it, now; False when it was a
        duplicate. If processing fails, the event stays pending and is tried again later."""
        inbox_id = await self.ingest(ev)
        if inbox_id is None:
            return False
        await self.inbox.kick(ev.address.chat_key)
        return True

    async def process_pending(self, limit: int = 100, older_than: timedelta = timedelta(0)) -> int:
        """Processes stored events nobody finished (after a crash or a failed attempt)."""
        return await self.inbox.sweep(older_than, limit)

    async def create_invite(self, team_code: str, role: str = "team", ttl: timedelta = timedelta(days=7)) -> str:
        return await self.desk.create_invite(team_code, role, ttl)

    async def _give_up(self, s, ev: InboundEvent) -> None:
        a = ev.address
        await self.reports.send(s, a.platform, a.chat_id, Reply((Msg("err.internal"),)), self._lang_hint(ev))

    async def prepare(self, ev: InboundEvent) -> InboundEvent:
        """What an event needs from the network, outside any transaction: its media fetched and
        stored, a short map link followed (the same object back when nothing was needed)."""
        ev = await self.fetch_media(ev)
        if self.map_links is not None:
            ev = await self.map_links.expand(ev)
        return ev

    def needs_prepare(self, ev: InboundEvent) -> bool:
        """Whether `prepare` has anything to fetch for `ev` (most events: no, and the inbox then
        processes them in one transaction)."""
        if isinstance(ev, (PhotoReceived, VoiceReceived)) and not ev.key and not ev.error and ev.media:
            return True
        return self.map_links is not None and self.map_links.wants(ev)

    async def keeps_media(self, ev: InboundEvent) -> bool:
        """Asks the flow, given the conversation as it stands, whether it will keep this photo or
        voice note (`flows.report.keeps_media`). Read outside any transaction: the inbox processes a
        conversation's events one at a time, so the state read is the one the event will meet."""
        if not isinstance(ev, (PhotoReceived, VoiceReceived)) or ev.address.is_group:
            return False
        a = ev.address
        async with self.db.session() as s:
            row = await repo.conversation_get(s, a.platform, a.chat_id, a.user_id or "")
        conv = reportflow.Conversation.from_dict(row.state) if row is not None and row.state is not None else None
        return reportflow.keeps_media(conv, ev)

    async def fetch_media(self, ev: InboundEvent) -> InboundEvent:
        """Fetches a platform photo or voice note and stores it, when the flow keeps it; the event
        then carries the stored key or an error. Media the flow would not keep is never downloaded:
        the event goes on without its reference (the same event object when there was nothing to do)."""
        if not isinstance(ev, (PhotoReceived, VoiceReceived)) or ev.key or ev.error or not ev.media:
            return ev
        if not await self.keeps_media(ev):
            return replace(ev, media=None)
        fetch = self.media_fetchers.get(ev.address.platform)
        if fetch is None or self.photos is None:
            return replace(ev, error="download_failed")
        try:
            data = await fetch(ev.media)
        except Exception as exc:
            log.warning("media_download_failed", platform=ev.address.platform, error=type(exc).__name__)
            return replace(ev, error="download_failed")
        try:
            if isinstance(ev, VoiceReceived):
                return replace(ev, key=await self.photos.put_voice(data))
            return replace(ev, key=(await self.photos.put(data)).key)
        except PhotoError as e:
            return replace(ev, error=e.reason)

    async def dispatch(self, s, ev: InboundEvent, row=None) -> bool:
        """One event, inside its transaction; True when it wrote to the outbox."""
        if consoleflow.is_console_command(ev):
            return await self.console.on_command(s, ev)
        if ev.address.is_group:
            return await self.desk.group(s, ev)
        return await self._private(s, ev)

    # ------------------------------------------------------------ volunteers

    async def _private(self, s, ev: InboundEvent) -> bool:
        a = ev.address
        now = self.clock()
        if isinstance(ev, ChoiceMade) and ev.data.startswith("rate:"):  # the reporter's rating of a closed report
            return await self.desk.rating_answer(s, ev)
        if isinstance(ev, ChoiceMade) and ev.data.startswith("still:"):  # scheduler's follow-up answer
            from bot.scheduler import still_there_answer

            return await still_there_answer(self, s, ev)
        row = await repo.conversation_lock(s, a.platform, a.chat_id, a.user_id or "", now)
        old = reportflow.Conversation.from_dict(row.state)
        if row.state is None:
            old = replace(old, lang=self.default_lang)
        ctx = await self.reports.flow_context(s, now)
        new, actions = reportflow.step(old, ev, ctx)
        wrote = False
        for action in actions:
            wrote |= await self._run_private(s, ev, old, new, action, ctx)
        if any(isinstance(x, ForgetVolunteer) for x in actions):
            await repo.forget_conversation(s, row, f"{a.platform}:{a.chat_id}")
            return wrote
        row.state = new.to_dict()
        row.lang, row.step = new.lang, new.step
        row.consent_version = new.consent_version
        row.consent_at = datetime.fromisoformat(new.consent_at) if new.consent_at else None
        row.asked_at = datetime.fromisoformat(new.asked_at) if new.asked_at else None
        row.updated_at = now
        return wrote

    async def _run_private(self, s, ev: Event, old, new, action: Action, ctx: FlowContext) -> bool:
        a = ev.address
        if isinstance(action, Reply):
            notice = ev.event_id if action.notice and isinstance(ev, ChoiceMade) else None
            await self.reports.send(s, a.platform, a.chat_id, action, new.lang, notice_for=notice)
        elif isinstance(action, SubmitReport):
            await self.reports.submit(s, ev, old, ctx)
        elif isinstance(action, ListReports):
            reports = await repo.reports_of_reporter(s, a.platform, a.user_id or "")
            views = [await self.reports.view(s, r) for r in reports]
            await self.reports.send(s, a.platform, a.chat_id, cardflow.my_reports(views), new.lang)
        elif isinstance(action, BindChat):
            await self.reports.send(s, a.platform, a.chat_id, Reply((Msg("bind.private"),)), new.lang)
        elif isinstance(action, DropMedia):
            keys = action.keys
            s.info.setdefault("after_commit", []).append(lambda: drop_unused_media(self.db, self.photos, keys))
            return False
        elif isinstance(action, ForgetVolunteer):
            return False
        else:
            return False
        return True

    def _lang_hint(self, ev: Event) -> str:
        return "en" if (ev.lang_hint or "").startswith("en") else self.default_lang
