"""The reports service: what the flows need to know of reports and teams, and putting messages and
cards in the outbox. Used by the conversations (bot/engine.py), the staff desk and the scheduler.

Every message goes into the outbox in the caller's transaction. A row written while processing an
inbox event, to that event's own chat, carries the event's reply token (LINE answers for free).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

import structlog

from bot import metrics
from bot.places import PlaceRouter
from bot.render import render_card, render_reply
from flows import cards as cardflow
from flows import followup
from flows import report as reportflow
from flows import routing
from flows.draft import Located
from flows.model import Event, Msg, Reply
from flows.status import Status
from storage import repo
from storage.boundaries import AreaIndex, Boundaries
from storage.models import Report, Team

log = structlog.get_logger("namjai.reports")

TEAMS_TTL = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def team_area(t: Team) -> routing.TeamArea:
    """What routing needs to know of a team row."""
    return routing.TeamArea(
        t.code, tuple(t.provinces or ()), t.area is not None, t.fallback, t.parent_code, tuple(getattr(t, "area_codes", None) or ())
    )


@dataclass
class FlowContext:
    """What the pure flows may ask of the world, answered from in-memory data."""

    now: datetime
    boundaries: Boundaries
    places: PlaceRouter | None = None  # boundaries + teams; None: no teams known

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


class Reports:
    def __init__(self, boundaries: Boundaries, clock: Callable[[], datetime]):
        self.boundaries = boundaries
        self.clock = clock
        self._teams_cache: tuple[datetime, list[Team], AreaIndex] | None = None
        self._router: tuple[object, PlaceRouter] | None = None

    def context(self, now: datetime | None = None) -> FlowContext:
        return FlowContext(now or self.clock(), self.boundaries)

    async def flow_context(self, s, now: datetime) -> FlowContext:
        """The context with the teams known (places near a team's edge, team names)."""
        return FlowContext(now, self.boundaries, await self.place_router(s))

    async def place_router(self, s) -> PlaceRouter:
        """Boundaries + the cached teams, for the flows (rebuilt with the teams cache)."""
        await self.teams(s)
        if self._router is None or self._router[0] is not self._teams_cache:
            _, teams, index = self._teams_cache
            self._router = (self._teams_cache, PlaceRouter(self.boundaries, teams, index))
        return self._router[1]

    # ------------------------------------------------------------ teams

    async def teams(self, s) -> list[Team]:
        """Active teams (and the index of their areas), cached briefly: they change only when an
        operator imports a file."""
        now = utcnow()
        if self._teams_cache is None or now - self._teams_cache[0] > TEAMS_TTL:
            teams = await repo.teams_all(s)
            self._teams_cache = (now, teams, AreaIndex({t.code: t.area for t in teams if t.area}))
        return self._teams_cache[1]

    async def area_index(self, s) -> AreaIndex:
        """The municipalities' polygons, rebuilt with the teams cache."""
        await self.teams(s)
        return self._teams_cache[2]

    @staticmethod
    def team_name(team: Team | None, lang: str) -> str:
        if team is None:
            return ""
        return team.name_th if lang == "th" else team.name_en

    # ------------------------------------------------------------ the outbox

    async def send(
        self, s, platform: str, chat_id: str, reply: Reply, lang: str, *, report_id: int | None = None, notice_for: str | None = None
    ) -> None:
        """Puts a reply in the outbox. `notice_for`: a short refusal answering that event (a button
        press), which a channel may show as an alert on the button instead of a message."""
        payload = render_reply(reply, lang)
        if notice_for is not None:
            payload["notice"] = True
            payload["event"] = notice_for
        await self._outbox(s, platform, chat_id, payload, report_id=report_id)

    async def _outbox(self, s, platform: str, chat_id: str, payload: dict, **fields) -> None:
        await repo.outbox_queue(s, **self._outbox_row(s, platform, chat_id, payload, **fields))

    def _outbox_row(self, s, platform: str, chat_id: str, payload: dict, **fields) -> dict:
        """The columns of a new outbox row (`repo.outbox_queue`, `repo.outbox_add_many`)."""
        now = self.clock()
        event = s.info.get("event")  # the inbox row being processed in this transaction, if any
        if event is not None and event.conv_key == f"{platform}:{chat_id}":
            fields["source_event"] = event.id
            if event.reply_token and event.reply_until and event.reply_until > now:
                fields["reply_token"], fields["reply_until"] = event.reply_token, event.reply_until
        return dict(platform=platform, chat_id=chat_id, payload=payload, next_attempt_at=now, created_at=now, **fields)

    async def reporter_answering(self, s, ev, report_id: int | None, default_lang: str) -> tuple[Report | None, str]:
        """The report a reporter's button answers (a follow-up, the rating), locked, and the chat's
        language; no report (the chat told the button no longer applies) when it is gone or the
        one who pressed is not its reporter."""
        a = ev.address
        conv = await repo.conversation_get(s, a.platform, a.chat_id, a.user_id or "")
        lang = conv.lang if conv else default_lang
        report = await repo.report_get(s, report_id, for_update=True) if report_id is not None else None
        if report is None or not followup.may_answer(report.reporter_platform, report.reporter_user, a.platform, a.user_id):
            await self.send(s, a.platform, a.chat_id, Reply((Msg("err.stale_button"),)), lang)
            return None, lang
        return report, lang

    async def post_cards(
        self, s, report: Report, team: Team, view: cardflow.ReportView, actionable: bool = True, bindings: list | None = None,
    ) -> int:
        """Puts the report's card (new or updated) in the outbox for each of the team's chats
        (`bindings`: the team's, when the caller has read them)."""
        if bindings is None:
            bindings = await repo.bindings_for_team(s, team.id)
        if not bindings:
            log.warning("team_has_no_chat", team=team.code, report_id=report.id)
        origin = await self._origin(s, view)
        ctx = self.context()
        for b in bindings:
            await self._outbox(s, b.platform, b.chat_id, self._card(ctx, team, view, origin, b.lang, actionable), report_id=report.id, card_edit=True)
        return len(bindings)

    async def _origin(self, s, view: cardflow.ReportView) -> Team | None:
        """The team a relayed report was meant for (its card names it in each chat's language)."""
        if not view.relayed_from:  # a code in the view
            return None
        return next((t for t in await self.teams(s) if t.code == view.relayed_from), None)

    def _card(self, ctx: FlowContext, team: Team, view: cardflow.ReportView, origin: Team | None, lang: str, actionable: bool = True) -> dict:
        """A report's card rendered for one chat: the team names in its language."""
        v = replace(view, team_name=self.team_name(team, lang))
        if view.relayed_from:
            v = replace(v, relayed_from=self.team_name(origin, lang) or view.relayed_from)
        c = cardflow.card(v, lambda code: ctx.province_name(code, lang))
        if not actionable:
            c = replace(c, buttons=())
        return render_card(c, lang)

    async def refresh_cards(self, s, reports: list[Report], now: datetime, teams: dict[int, Team]) -> int:
        """The reports' cards edited in place in each of their team's chats, with their waiting
        time as of `now` (reminders going out: the card says how long it has waited). For a
        sweep's batch: a few queries and one outbox statement, whatever the number of reports.
        `teams`: theirs by id (the sweep has them; missing ones are read). Returns the edits."""
        teams = dict(teams)
        for tid in {r.team_id for r in reports} - set(teams):
            team = await repo.team_get(s, tid)
            if team is not None:
                teams[tid] = team
        reports = [r for r in reports if r.team_id in teams]
        if not reports:
            return 0
        details = await repo.view_details(s, [r.id for r in reports])
        refs = await repo.refs_by_id(s, sorted({i for r in reports for i in (r.repeat_of or ())}))
        bindings = await repo.bindings_for_teams(s, sorted({r.team_id for r in reports}))
        ctx = self.context()
        rows = []
        for r in reports:
            team, d = teams[r.team_id], details[r.id]
            repeats = tuple(refs[i] for i in sorted(set(r.repeat_of or ())) if i in refs)  # refs_of: by id
            view = replace(self._view(r, team, "th", repeats, d["last_comment"], d["relayed_from"], d["handling"]), now=now)
            if not bindings[team.id]:
                log.warning("team_has_no_chat", team=team.code, report_id=r.id)
            origin = await self._origin(s, view)
            for b in bindings[team.id]:
                rows.append(self._outbox_row(s, b.platform, b.chat_id, self._card(ctx, team, view, origin, b.lang), report_id=r.id, card_edit=True))
        return await repo.outbox_add_many(s, rows)

    async def post_card_here(
        self, s, report: Report, team: Team, view: cardflow.ReportView, platform: str, chat_id: str, lang: str,
        make=None, fresh: bool = False,
    ) -> None:
        """The report's card in one chat only: edited in place, or a fresh copy at the bottom of
        the chat (`fresh`); `make(card)` may change it first (a picker, see `cardflow.picker`)."""
        ctx = self.context()
        c = cardflow.card(replace(view, team_name=self.team_name(team, lang)), lambda code: ctx.province_name(code, lang))
        if make is not None:
            c = make(c)
        payload = render_card(c, lang)
        if fresh:
            payload["card"]["fresh"] = True
        await self._outbox(s, platform, chat_id, payload, report_id=report.id, card_edit=True)

    # ------------------------------------------------------------ views

    async def view(
        self, s, report: Report, team: Team | None = None, lang: str = "th", fresh: tuple[str, ...] | None = None
    ) -> cardflow.ReportView:
        """What flows need to know of a report. `fresh`: a report created in this transaction, with
        the refs of its repeat sightings (known already: no queries for them or for comments)."""
        team = team or next((t for t in await self.teams(s) if t.id == report.team_id), None) or await repo.team_get(s, report.team_id)
        if fresh is not None:
            return self._view(report, team, lang, fresh, None, "", {})
        return self._view(
            report, team, lang, tuple(await repo.refs_of(s, report.repeat_of or [])), await repo.last_comment(s, report.id),
            await repo.relayed_from(s, report.id), await repo.handling(s, report.id),
        )

    def _view(
        self, report: Report, team: Team | None, lang: str, repeats: tuple[str, ...], last_comment: str | None, relayed_from: str, handling: dict,
    ) -> cardflow.ReportView:
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
            team_name=self.team_name(team, lang),  # channels re-render it per chat language
            outcome=report.outcome,
            repeats=repeats,
            last_comment=last_comment,
            still_there=report.still_there,
            still_there_at=report.still_there_at,
            photos_purged=report.photos_purged_at is not None,
            relayed_from=relayed_from,
            now=self.clock(),
            closed_at=report.closed_at,
            **handling,
        )

    # ------------------------------------------------------------ a new report

    async def submit(self, s, ev: Event, conv, ctx: FlowContext) -> Report:
        """Makes the report of a finished draft, routes it, tells the reporter, posts the cards."""
        draft = conv.draft
        assert draft is not None
        now = ctx.now
        teams = await self.teams(s)
        hits = (await self.area_index(s)).hits(draft.lat, draft.lon) if draft.lat is not None else []
        areas = [team_area(t) for t in teams]
        code = routing.choose_team(areas, draft.province_code, hits, draft.district_code, draft.subdistrict_code)
        if draft.team_chosen and any(t.code == draft.team for t in teams):
            code = draft.team  # the volunteer's one-tap switch near an edge
        team = next((t for t in teams if t.code == code), None)
        if team is None:
            raise RuntimeError("no team to route to: import teams first (namjai teams import)")
        # a team without a chat would leave the report unseen: the nearest team up the chain
        # that has one takes it (and may transfer it); with none, the reporter gets the hotline
        chats = await repo.bindings_for_teams(s)  # read once: which teams have a chat, and the chosen one's
        bound = {t.code for t in teams if t.id in chats}
        relayed_from: Team | None = None
        unreachable = False
        if team.code not in bound:
            target = routing.reachable_team(areas, team.code, bound, draft.province_code)
            if target is None:
                unreachable = True
                log.warning("report_unreachable", team=team.code)
            else:
                relayed_from, team = team, next(t for t in teams if t.code == target)
                log.warning("team_has_no_chat", team=relayed_from.code, relayed_to=team.code)
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
            action="submit", to_status=Status.NEW,
            detail={"team": team.code, **({"relayed_from": relayed_from.code} if relayed_from else {}), **({"unreachable": True} if unreachable else {})},
        )
        view = await self.view(s, report, team, conv.lang, fresh=tuple(refs[i] for i in sorted(repeat_ids)))
        view = replace(view, relayed_from=relayed_from.code if relayed_from else "", unreachable=unreachable)
        await self.send(s, a.platform, a.chat_id, cardflow.submitted(view), conv.lang, report_id=report.id)
        posted = await self.post_cards(s, report, team, view, bindings=chats.get(team.id, []))
        metrics.REPORTS.labels("urgent" if report.urgent else "normal").inc()
        log.info("report_submitted", report_id=report.id, team=team.code, urgent=report.urgent, chats=posted)
        return report
