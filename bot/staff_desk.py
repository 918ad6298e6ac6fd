"""The staff side: binding group chats to teams, and acting on reports from them.

What is allowed is decided in `flows.status` and `flows.staff`; this fetches what they need (the
report, the actor's role) and stores what they decide, through the reports service.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta

import structlog

from flows import cards as cardflow
from flows import followup, routing, staff
from flows.deadlines import Policy, load_policy
from flows.model import BindChat, Event, InboundEvent, Msg, Reply, StaffAction, TextReceived
from flows.status import OPEN_STATUSES, ROLE_RANK, Role, Status, Decision, can_start, decide, effect, may_undo
from bot.render import render_reply
from bot.reports import Reports, team_area
from storage import repo
from storage.db import Database
from storage.models import Team

log = structlog.get_logger("namjai.staff")

BIND_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
BINDING_ROLES = {"team": Role.STAFF, "supervisors": Role.SUPERVISOR, "director": Role.SUPERVISOR}


def new_bind_code() -> str:
    raw = "".join(secrets.choice(BIND_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


class StaffDesk:
    def __init__(self, db: Database, reports: Reports, clock, default_lang: str = "th", policy: Policy | None = None):
        self.db = db
        self.reports = reports
        self.clock = clock
        self.default_lang = default_lang
        self.policy = policy or load_policy()

    async def _send(self, s, *args, **kw) -> None:
        await self.reports.send(s, *args, **kw)

    # ------------------------------------------------------------ staff

    async def group(self, s, ev: InboundEvent) -> bool:
        """A group chat's event: a bind code, a staff action on a report, or a hint."""
        a = ev.address
        binding = await repo.binding_for_chat(s, a.platform, a.chat_id)
        reply_report = None
        if isinstance(ev, TextReceived) and ev.reply_to:
            reply_report = await repo.report_for_message(s, a.platform, a.chat_id, ev.reply_to)
        lang = binding.lang if binding else self.default_lang
        wrote = False
        for action in staff.group_step(ev, reply_report, bound=binding is not None):
            if isinstance(action, BindChat):
                await self._bind(s, ev, action.code, lang)
            elif isinstance(action, StaffAction):
                await self._staff(s, ev, binding, action, lang)
            elif isinstance(action, staff.ListOpen):
                await self._open_list(s, ev, binding, lang)
            elif isinstance(action, Reply):
                await self._send(s, a.platform, a.chat_id, action, lang)
            wrote = True
        return wrote

    async def _bind(self, s, ev: Event, code: str, lang: str) -> None:
        a = ev.address
        now = self.clock()
        invite = await repo.invite_use(s, code, a.chat_key, now)
        if invite is None:
            await self._send(s, a.platform, a.chat_id, Reply((Msg("bind.bad_code"),)), lang)
            return
        team = await repo.team_get(s, invite.team_id)
        await repo.bind_chat(s, a.platform, a.chat_id, invite.team_id, invite.role, lang, now)
        log.info("chat_bound", platform=a.platform, team=team.code, role=invite.role)
        msg = Msg("bind.ok", {"team": self.reports.team_name(team, lang), "role": Msg(f"role.{invite.role}")})
        await self._send(s, a.platform, a.chat_id, Reply((msg,)), lang)

    async def _role(self, s, ev: Event, binding, team_id: int) -> Role | None:
        """The actor's role for a team: from the chat's binding, raised by an explicit membership."""
        a = ev.address
        role: Role | None = None
        if binding is not None and binding.team_id == team_id:
            role = BINDING_ROLES.get(binding.role, Role.STAFF)
        if a.user_id:
            granted = await repo.member_role(s, team_id, a.platform, a.user_id)
            if granted is None and await repo.is_admin(s, a.platform, a.user_id):
                granted = Role.ADMIN
            if granted and (role is None or ROLE_RANK[Role(granted)] > ROLE_RANK[role]):
                role = Role(granted)
        return role

    async def _staff(self, s, ev: Event, binding, action: StaffAction, lang: str) -> None:
        a = ev.address
        now = self.clock()
        report = await repo.report_get(s, action.report_id, for_update=True)
        if report is None:
            await self._send(s, a.platform, a.chat_id, Reply((Msg("staff.no_report"),)), lang)
            return
        role = await self._role(s, ev, binding, report.team_id)
        if action.action == "show":  # a button of the `/open` list: the card, fresh, at the bottom
            if role is None:
                await self._send(s, a.platform, a.chat_id, Reply((Msg("staff.not_member"),)), lang, notice_for=ev.event_id)
            else:
                await self.show_card(s, ev, binding, report, lang)
            return
        picker = await self._picker(s, ev, report, role, action, lang)
        if picker:
            return
        target: Team | None = None
        if action.action == "transfer" and action.arg:
            target = await repo.team_by_code(s, action.arg)
        undo_ok = False
        if action.action == "undo":
            closed = await repo.handling(s, report.id)
            undo_ok = may_undo(closed["closed_by_key"], a.user_key, report.closed_at, now)
        decision = await self.act(
            s, report, role, action.action, action.arg, action.comment, actor=a.user_key, actor_name=ev.user_name,
            target=target, undo_ok=undo_ok,
        )
        if not decision.ok:
            await self._send(s, a.platform, a.chat_id, Reply((Msg(decision.error),)), lang, notice_for=ev.event_id)
            if decision.error == "staff.undo_expired":  # the card drops its stale "undo" button
                team = await repo.team_get(s, report.team_id)
                await self.reports.post_card_here(s, report, team, await self.reports.view(s, report, team), a.platform, a.chat_id, lang)
            return
        if action.action == "comment":
            await self._send(s, a.platform, a.chat_id, Reply((Msg("staff.commented", {"ref": report.ref}),)), lang)

    async def act(
        self, s, report, role: Role | None, action: str, arg: str = "", comment: str | None = None, *,
        actor: str, actor_name: str | None, target: Team | None = None, undo_ok: bool = False,
    ):
        """One staff action on a (locked) report, from a chat's button or the console: decided by
        `flows.status`, stored, the cards updated in every chat of the team, the reporter told."""
        now = self.clock()
        decision = decide(
            action, Status(report.status), role, arg=arg, same_team=target is None or target.id == report.team_id, undo_ok=undo_ok,
        )
        if not decision.ok:
            log.info("staff_refused", report_id=report.id, action=action, reason=decision.error)
            return decision
        old_status, old_team_id = report.status, report.team_id
        eff = effect(
            action, decision.new_status, now, acknowledged_at=report.acknowledged_at, on_site_at=report.on_site_at,
            arg=arg, comment=comment, team_id=old_team_id,
            target_team_id=target.id if target is not None else None, target_code=target.code if target is not None else None,
        )
        for field_name, value in eff.changes.items():
            setattr(report, field_name, value)
        await repo.history_add(
            s, report_id=report.id, at=now, actor=actor, actor_name=actor_name, action=action,
            from_status=old_status, to_status=report.status, detail=eff.detail or None,
        )
        team = await repo.team_get(s, report.team_id)
        view = await self.reports.view(s, report, team)
        if target is not None:
            old_team = await repo.team_get(s, old_team_id)
            await self.reports.post_cards(s, report, old_team, view, actionable=False)
        await self.reports.post_cards(s, report, team, view)
        if action != "comment" and report.reporter_chat and report.status != old_status:
            told = cardflow.reporter_update(replace(view, team_name=self.reports.team_name(team, report.reporter_lang)), report.status)
            if told is not None:
                await self._send(s, report.reporter_platform, report.reporter_chat, told, report.reporter_lang, report_id=report.id)
            await self._ask_rating(s, report, told is not None, now)
        log.info("staff_action", report_id=report.id, action=action, status=report.status)
        return decision

    async def _ask_rating(self, s, report, told: bool, now) -> None:
        """Once closed and the reporter told: how well was it handled (three faces), asked once,
        held to the end of the quiet hours (`not_before`: it does not hold the chat's queue)."""
        at = followup.rating_due(report.status, told, report.rating_asked_at, report.reporter_chat, now, self.policy)
        if at is None:
            return
        report.rating_asked_at = now
        payload = render_reply(followup.rating_question(report.id, report.ref), report.reporter_lang)
        await repo.outbox_queue(
            s, platform=report.reporter_platform, chat_id=report.reporter_chat, payload=payload, report_id=report.id,
            next_attempt_at=at, not_before=at if at > now else None, created_at=now,
        )
        log.info("rating_asked", report_id=report.id, at=at.isoformat())

    async def rating_answer(self, s, ev) -> bool:
        """`rate:<report_id>:<face>` from the reporter's private chat: the first answer goes on the
        report (its history, the figures); only the reporter of that report may answer."""
        a = ev.address
        now = self.clock()
        parsed = followup.parse_rating(ev.data)
        report, lang = await self.reports.reporter_answering(s, ev, parsed[0] if parsed else None, self.default_lang)
        if report is None:
            return True
        counted = followup.rating_accepted(report.rating_asked_at, report.rating)
        if counted:
            report.rating = parsed[1]
            await repo.history_add(
                s, report_id=report.id, at=now, actor=a.user_key, actor_name=ev.user_name, action="rating",
                from_status=report.status, to_status=report.status, detail={"rating": parsed[1]},
            )
            log.info("rating", report_id=report.id, rating=parsed[1])
        await self._send(s, a.platform, a.chat_id, followup.rating_answered(report.ref, counted), lang, report_id=report.id)
        return True

    async def _picker(self, s, ev: Event, report, role: Role | None, action: StaffAction, lang: str) -> bool:
        """The card's own pickers, shown on the card in the chat that pressed: an outcome to close
        with, a team (or a region, then its teams) to transfer to, and "back" to the card."""
        a = ev.address
        act, arg = action.action, action.arg
        if act == "card" or (act == "close" and not arg) or (act == "transfer" and (not arg or arg.startswith(staff.REGION))):
            if act == "card":  # back to the card: any member, whatever the status
                check = Decision(True) if role is not None else Decision(False, error="staff.not_member")
            else:
                check = can_start(act, Status(report.status), role)
            if not check.ok:
                log.info("staff_refused", report_id=report.id, action=act, reason=check.error)
                await self._send(s, a.platform, a.chat_id, Reply((Msg(check.error),)), lang, notice_for=ev.event_id)
                return True
        else:
            return False
        team = await repo.team_get(s, report.team_id)
        view = await self.reports.view(s, report, team)
        make = None
        if act == "close":
            make = lambda c: cardflow.picker(c, report.ref, "staff.choose_outcome", staff.outcome_rows(report.id))  # noqa: E731
        elif act == "transfer":
            teams = {t.code: t for t in await self.reports.teams(s)}
            region = arg[len(staff.REGION):] if arg else None
            if region:
                codes = [t.code for t in teams.values() if t.id != report.team_id and any(p.startswith(region) for p in t.provinces or [])]
                regions: list[str] = []
            else:
                codes = routing.transfer_candidates([team_area(t) for t in teams.values()], team.code, report.province_code)
                regions = sorted({p[0] for t in teams.values() for p in (t.provinces or []) if p})
            named = [(c, Msg("card.team", {"team": self.reports.team_name(teams[c], lang)})) for c in codes]
            prompt = "staff.choose_team_in_region" if region else "staff.choose_team"
            make = lambda c: cardflow.picker(c, report.ref, prompt, staff.transfer_rows(report.id, named, regions))  # noqa: E731
        await self.reports.post_card_here(s, report, team, view, a.platform, a.chat_id, lang, make=make)
        return True

    async def _open_list(self, s, ev: Event, binding, lang: str) -> None:
        """`/open` in a team's chat: its open reports, oldest first, each with its age and a button
        that brings its card to the bottom of the chat."""
        a = ev.address
        now = self.clock()
        reports, total = await repo.open_reports_of_team(s, binding.team_id, [st.value for st in OPEN_STATUSES], staff.OPEN_LIST_LIMIT)
        await self._send(s, a.platform, a.chat_id, staff.open_list(
            [(r.id, r.ref, r.status, r.urgent, now - r.created_at) for r in reports], total,
        ), lang)

    async def show_card(self, s, ev: Event, binding, report, lang: str) -> None:
        team = await repo.team_get(s, report.team_id)
        view = await self.reports.view(s, report, team)
        await self.reports.post_card_here(s, report, team, view, ev.address.platform, ev.address.chat_id, lang, fresh=True)

    # ------------------------------------------------------------ operator

    async def create_invite(self, team_code: str, role: str = "team", ttl: timedelta = timedelta(days=7)) -> str:
        async with self.db.transaction() as s:
            team = await repo.team_by_code(s, team_code)
            if team is None:
                raise KeyError(team_code)
            code = new_bind_code()
            await repo.invite_create(s, code, team.id, role, self.clock(), ttl)
        return code


