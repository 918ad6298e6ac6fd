"""The engine: a received event goes into the inbox; processing it runs the flows and turns their
actions into database changes and outbox rows, all in one transaction.

No business rule lives here: what happens is decided in `flows/`; this module fetches what the
flows need and stores what they decide.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

import structlog

from bot import metrics
from bot.ingest import Ingestor
from bot.maplinks import MapLinkResolver
from bot.places import PlaceRouter
from bot.staff_desk import StaffDesk, team_area
from bot.i18n import lines as render_lines
from bot.i18n import text as render
from flows import cards as cardflow
from flows import report as reportflow
from flows import routing
from flows.codec import event_from_dict, event_to_dict
from flows.draft import Located
from flows.model import (
    Action,
    BindChat,
    Card,
    ChoiceMade,
    Event,
    InboundEvent,
    ListReports,
    Msg,
    PhotoReceived,
    Reply,
    SubmitReport,
    VoiceReceived,
)
from flows.status import Status
from storage import repo
from storage.boundaries import AreaIndex, Boundaries
from storage.db import Database
from storage.models import InboxEvent, Report, Team
from storage.photos import PhotoError, PhotoStore

log = structlog.get_logger("namjai.engine")

MAX_ATTEMPTS = 5
TEAMS_TTL = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class FlowContext:
    """What the pure flows may ask of the world, answered from in-memory data."""

    now: datetime
    boundaries: Boundaries
    places: PlaceRouter | None = None  # boundaries + teams (issue 11); None: no teams known

    def __post_init__(self) -> None:
        if self.places is None:
            self.places = PlaceRouter(self.boundaries, ())

    def locate(self, lat: float, lon: float) -> Located:
        return self.places.locate(lat, lon)

    def province_in_text(self, text: str) -> str | None:
        return routing.province_in_text(text, self.boundaries.province_names())

    def province_name(self, code: str, lang: str) -> str:
        """A province's name (or a district's or subdistrict's, by a 4- or 6-digit code)."""
        return self.places.place_name(code, lang)

    # places and teams (bot.places)
    def places_in_text(self, text: str) -> list[str]:
        return self.places.places_in_text(text)

    def place_of(self, code: str) -> Located:
        return self.places.place_of(code)

    def place_name(self, code: str, lang: str) -> str:
        return self.places.place_name(code, lang)

    def team_name(self, code: str, lang: str) -> str:
        return self.places.team_name(code, lang)

    def team_provinces(self, code: str) -> tuple[str, ...]:
        return self.places.team_provinces(code)


class Engine(StaffDesk):
    def __init__(
        self,
        db: Database,
        *,
        boundaries: Boundaries | None = None,
        clock: Callable[[], datetime] = utcnow,
        default_lang: str = "th",
        photos: PhotoStore | None = None,
    ):
        self.db = db
        self.photos = photos
        # platform -> coroutine fetching a media reference's bytes (registered by each channel)
        self.media_fetchers: dict[str, Callable[[str], Awaitable[bytes]]] = {}
        self.boundaries = boundaries or Boundaries.default()
        self.clock = clock
        self.default_lang = default_lang
        self._outbox_listeners: list[Callable[[], None]] = []
        self._ingestor = Ingestor(db, clock)
        self._teams_cache: tuple[datetime, list[Team], AreaIndex] | None = None
        self._router: tuple[object, PlaceRouter] | None = None
        self.map_links: MapLinkResolver | None = MapLinkResolver()  # short map links (issue 11)

    # ------------------------------------------------------------ inbox

    def on_outbox(self, listener: Callable[[], None]) -> None:
        """`listener` is called after a commit that put messages in the outbox."""
        self._outbox_listeners.append(listener)

    async def ingest(self, ev: InboundEvent) -> int | None:
        """Stores an event durably (group-committed with others arriving at once); None when the
        platform delivered it before."""
        inbox_id = await self._ingestor.put(ev)
        metrics.EVENTS.labels(ev.address.platform, "duplicate" if inbox_id is None else "stored").inc()
        return inbox_id

    async def handle(self, ev: InboundEvent) -> bool:
        """Stores and processes one event now, in one transaction; False when it was a duplicate.
        If processing fails, the event is still stored (pending) and tried again later."""
        ev = await self._fetch_media(ev)
        ev = await self._expand_links(ev)
        payload = event_to_dict(ev)
        try:
            with metrics.PROCESS_SECONDS.time():
                async with self.db.transaction() as s:
                    inbox_id = await repo.inbox_insert(s, ev.address.platform, ev.event_id, payload, self.clock(), status="done")
                    if inbox_id is None:
                        metrics.EVENTS.labels(ev.address.platform, "duplicate").inc()
                        return False
                    wrote = await self._dispatch(s, ev)
        except Exception as exc:
            async with self.db.transaction() as s:
                inbox_id = await repo.inbox_insert(s, ev.address.platform, ev.event_id, payload, self.clock())
            if inbox_id is not None:
                await self._failed(inbox_id, ev, exc)
            return True
        metrics.EVENTS.labels(ev.address.platform, "stored").inc()
        self._notify(wrote)
        return True

    async def process_pending(self, limit: int = 100, older_than: timedelta = timedelta(0)) -> int:
        """Processes stored events that nobody finished (after a crash or a busy moment)."""
        async with self.db.session() as s:
            ids = await repo.inbox_due(s, self.clock(), limit, older_than)
        for inbox_id in ids:
            await self.process(inbox_id)
        return len(ids)

    async def process(self, inbox_id: int) -> None:
        """Runs one stored event through the flows, in one transaction; a failure is retried later."""
        async with self.db.session() as s:
            row = await s.get(InboxEvent, inbox_id)
            if row is None or row.status != "pending":
                return
            ev = event_from_dict(row.payload)
        # Downloading a photo happens outside the transaction: no lock is held over the network.
        ev = await self._fetch_media(ev)
        ev = await self._expand_links(ev)
        try:
            with metrics.PROCESS_SECONDS.time():
                async with self.db.transaction() as s:
                    row = await repo.inbox_lock(s, inbox_id)
                    if row is None or row.status != "pending":
                        return
                    wrote = await self._dispatch(s, ev)
                    await repo.inbox_done(s, inbox_id, self.clock())
        except Exception as exc:
            await self._failed(inbox_id, ev, exc)
            return
        self._notify(wrote)

    async def _failed(self, inbox_id: int, ev: InboundEvent, exc: Exception) -> None:
        """Records a failed attempt on the stored event (its work was rolled back): it is tried
        again later, and after MAX_ATTEMPTS the user is told and given the hotline."""
        log.error("event_failed", platform=ev.address.platform, inbox_id=inbox_id, error=type(exc).__name__, exc_info=exc)
        async with self.db.transaction() as s:
            row = await s.get(InboxEvent, inbox_id)
            attempts = row.attempts + 1
            status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            await repo.inbox_failed(s, inbox_id, attempts, status, f"{type(exc).__name__}: {exc}"[:500])
            if status == "failed":
                await self._send(s, ev.address.platform, ev.address.chat_id, Reply((Msg("err.internal"),)), self._lang_hint(ev))
        if status == "failed":
            self._notify(True)

    def _notify(self, wrote_outbox: bool) -> None:
        if wrote_outbox:
            for listener in self._outbox_listeners:
                listener()

    async def _fetch_media(self, ev: InboundEvent) -> InboundEvent:
        """Fetches a platform photo or voice note and stores it; the event then carries the stored
        key or an error."""
        if not isinstance(ev, (PhotoReceived, VoiceReceived)) or ev.key or ev.error or not ev.media:
            return ev
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

    async def _expand_links(self, ev: InboundEvent) -> InboundEvent:
        """A short map link in a volunteer's text is followed (bot.maplinks), outside any transaction."""
        return ev if self.map_links is None else await self.map_links.expand(ev)

    async def _dispatch(self, s, ev: InboundEvent) -> bool:
        if ev.address.is_group:
            return await self._group(s, ev)
        return await self._private(s, ev)

    # ------------------------------------------------------------ volunteers

    async def _private(self, s, ev: InboundEvent) -> bool:
        a = ev.address
        now = self.clock()
        if isinstance(ev, ChoiceMade) and ev.data.startswith("still:"):  # scheduler's follow-up answer
            from bot.scheduler import still_there_answer

            return await still_there_answer(self, s, ev)
        row = await repo.conversation_lock(s, a.platform, a.chat_id, a.user_id or "", now)
        old = reportflow.Conversation.from_dict(row.state)
        if row.state is None:
            old = replace(old, lang=self.default_lang)
        ctx = FlowContext(now, self.boundaries, await self._place_router(s))
        new, actions = reportflow.step(old, ev, ctx)
        wrote = False
        for action in actions:
            wrote |= await self._run_private(s, ev, old, new, action, ctx)
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
            await self._send(s, a.platform, a.chat_id, action, new.lang)
        elif isinstance(action, SubmitReport):
            await self._submit(s, ev, old, ctx)
        elif isinstance(action, ListReports):
            reports = await repo.reports_of_reporter(s, a.platform, a.user_id or "")
            views = [await self._view(s, r) for r in reports]
            await self._send(s, a.platform, a.chat_id, cardflow.my_reports(views), new.lang)
        elif isinstance(action, BindChat):
            await self._send(s, a.platform, a.chat_id, Reply((Msg("bind.private"),)), new.lang)
        else:
            return False
        return True

    async def _submit(self, s, ev: Event, conv, ctx: FlowContext) -> None:
        draft = conv.draft
        assert draft is not None
        now = ctx.now
        teams = await self._teams(s)
        hits = (await self._area_index(s)).hits(draft.lat, draft.lon) if draft.lat is not None else []
        areas = [team_area(t) for t in teams]
        code = routing.choose_team(areas, draft.province_code, hits, draft.district_code, draft.subdistrict_code)
        if draft.team_chosen and any(t.code == draft.team for t in teams):
            code = draft.team  # the volunteer's one-tap switch near an edge
        team = next((t for t in teams if t.code == code), None)
        if team is None:
            raise RuntimeError("no team to route to: import teams first (namjai teams import)")
        year = cardflow.be_year(now)
        seq = await repo.next_seq(s, f"ref-{year}")
        repeat_ids: list[int] = []
        refs: dict[int, str] = {}
        if draft.lat is not None:
            since = now - timedelta(days=routing.REPEAT_WINDOW_DAYS)
            near = await repo.reports_near(s, routing.bbox_around(draft.lat, draft.lon), since)
            repeat_ids = routing.repeats(draft.lat, draft.lon, [(i, la, lo) for i, la, lo, _ in near])
            refs = {i: ref for i, _, _, ref in near}
        a = ev.address
        report = Report(
            ref=cardflow.format_ref(year, seq),
            team_id=team.id,
            status=Status.NEW,
            urgent=draft.urgent,
            urgency=draft.urgency,
            who=list(draft.who),
            count=draft.count,
            note=draft.note,
            lat=draft.lat,
            lon=draft.lon,
            location_source=draft.location_source,
            landmark=draft.landmark,
            location_to_confirm=draft.location_to_confirm,
            province_code=draft.province_code,
            district_code=draft.district_code,
            subdistrict_code=draft.subdistrict_code,
            photos=list(draft.photos),
            voice=draft.voice,
            law_track=reportflow.law_track(draft.who),
            repeat_of=repeat_ids,
            reporter_platform=a.platform,
            reporter_chat=a.chat_id,
            reporter_user=a.user_id,
            reporter_lang=conv.lang,
            created_at=now,
            updated_at=now,
            next_due_at=now,  # the scheduler plans its deadlines at its next sweep
        )
        s.add(report)
        await s.flush()
        await repo.history_add(
            s, report_id=report.id, at=now, actor=a.user_key, actor_name=ev.user_name,
            action="submit", to_status=Status.NEW, detail={"team": team.code},
        )
        view = await self._view(s, report, team, conv.lang, fresh=tuple(refs[i] for i in sorted(repeat_ids)))
        await self._send(s, a.platform, a.chat_id, cardflow.submitted(view), conv.lang, report_id=report.id)
        chats = await self._post_cards(s, report, team, view)
        metrics.REPORTS.labels("urgent" if report.urgent else "normal").inc()
        log.info("report_submitted", report_id=report.id, team=team.code, urgent=report.urgent, chats=chats)

    # ------------------------------------------------------------ helpers

    async def _teams(self, s) -> list[Team]:
        """Active teams (and the index of their areas), cached briefly: they change only when an
        operator imports a file."""
        now = utcnow()
        if self._teams_cache is None or now - self._teams_cache[0] > TEAMS_TTL:
            teams = await repo.teams_all(s)
            self._teams_cache = (now, teams, AreaIndex({t.code: t.area for t in teams if t.area}))
        return self._teams_cache[1]

    async def _place_router(self, s) -> PlaceRouter:
        """Boundaries + the cached teams, for the flows (rebuilt with the teams cache)."""
        await self._teams(s)
        if self._router is None or self._router[0] is not self._teams_cache:
            _, teams, index = self._teams_cache
            self._router = (self._teams_cache, PlaceRouter(self.boundaries, teams, index))
        return self._router[1]

    async def _area_index(self, s) -> AreaIndex:
        """The municipalities' polygons, rebuilt with the teams cache."""
        await self._teams(s)
        return self._teams_cache[2]

    def _team_name(self, team: Team | None, lang: str) -> str:
        if team is None:
            return ""
        return team.name_th if lang == "th" else team.name_en

    async def _view(
        self, s, report: Report, team: Team | None = None, lang: str = "th", fresh: tuple[str, ...] | None = None
    ) -> cardflow.ReportView:
        """What flows need to know of a report. `fresh`: a report created in this transaction, with
        the refs of its repeat sightings (known already: no queries for them or for comments)."""
        team = team or next((t for t in await self._teams(s) if t.id == report.team_id), None) or await repo.team_get(s, report.team_id)
        return cardflow.ReportView(
            id=report.id,
            ref=report.ref,
            status=report.status,
            created_at=report.created_at,
            who=tuple(report.who or ()),
            count=report.count,
            urgency=report.urgency,
            urgent=report.urgent,
            note=report.note,
            lat=report.lat,
            lon=report.lon,
            landmark=report.landmark,
            province_code=report.province_code,
            district_code=report.district_code,
            subdistrict_code=report.subdistrict_code,
            photos=tuple(report.photos or ()),
            voice=report.voice,
            law_track=report.law_track,
            team_name=self._team_name(team, lang),  # channels re-render it per chat language
            outcome=report.outcome,
            repeats=fresh if fresh is not None else tuple(await repo.refs_of(s, report.repeat_of or [])),
            last_comment=None if fresh is not None else await repo.last_comment(s, report.id),
            still_there=report.still_there,
            still_there_at=report.still_there_at,
        )

    async def _post_cards(self, s, report: Report, team: Team, view: cardflow.ReportView, actionable: bool = True) -> int:
        """Puts the report's card (new or updated) in the outbox for each of the team's chats."""
        bindings = await repo.bindings_for_team(s, team.id)
        if not bindings:
            log.warning("team_has_no_chat", team=team.code, report_id=report.id)
        ctx = FlowContext(self.clock(), self.boundaries)
        for b in bindings:
            v = replace(view, team_name=self._team_name(team, b.lang))
            c = cardflow.card(v, lambda code: ctx.province_name(code, b.lang))
            if not actionable:
                c = replace(c, buttons=())
            await repo.outbox_add(
                s, platform=b.platform, chat_id=b.chat_id, payload=render_card(c, b.lang), report_id=report.id,
                card_edit=True, next_attempt_at=self.clock(), created_at=self.clock(),
            )
        return len(bindings)

    async def _send(
        self, s, platform: str, chat_id: str, reply: Reply, lang: str, *, report_id: int | None = None, notice_for: str | None = None
    ) -> None:
        """Puts a reply in the outbox. `notice_for`: a short refusal answering that event (a button
        press), which a channel may show as an alert on the button instead of a message."""
        payload = render_reply(reply, lang)
        if notice_for is not None:
            payload["notice"] = True
            payload["event"] = notice_for
        now = self.clock()
        await repo.outbox_add(s, platform=platform, chat_id=chat_id, payload=payload, report_id=report_id, next_attempt_at=now, created_at=now)

    def _lang_hint(self, ev: Event) -> str:
        return "en" if (ev.lang_hint or "").startswith("en") else self.default_lang

def render_buttons(rows, lang: str) -> list[list[dict]]:
    return [[{"label": render(b.label, lang), "data": b.data} for b in row] for row in rows]


def render_reply(reply: Reply, lang: str) -> dict:
    """A neutral outgoing message: what every channel knows how to show."""
    return {"text": render_lines(reply.lines, lang), "buttons": render_buttons(reply.buttons, lang), "ask": reply.ask, "lang": lang}


def render_card(c: Card, lang: str) -> dict:
    return {
        "text": render_lines(c.lines, lang),
        "buttons": render_buttons(c.buttons, lang),
        "photos": list(c.photos),
        "voice": c.voice,
        "location": {"lat": c.lat, "lon": c.lon} if c.lat is not None else None,
        "card": {"report_id": c.report_id, "urgent": c.urgent, "title": render(c.lines[0], lang)},
        "lang": lang,
    }

