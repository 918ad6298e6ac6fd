"""The staff side of the engine: binding group chats to teams, and acting on reports from them.

A mixin of `bot.engine.Engine`: what is allowed is decided in `flows.status` and `flows.staff`;
this fetches what they need (the report, the actor's role) and stores what they decide.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import timedelta

import structlog

from flows import cards as cardflow
from flows import routing, staff
from flows.model import BindChat, Event, InboundEvent, Msg, Reply, StaffAction, TextReceived
from flows.status import ROLE_RANK, Role, Status, decide
from storage import repo
from storage.models import Team

log = structlog.get_logger("namjai.staff")

BIND_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
BINDING_ROLES = {"team": Role.STAFF, "supervisors": Role.SUPERVISOR, "director": Role.SUPERVISOR}


def new_bind_code() -> str:
    raw = "".join(secrets.choice(BIND_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def team_area(t: Team) -> routing.TeamArea:
    """What routing needs to know of a team row."""
    return routing.TeamArea(
        t.code, tuple(t.provinces or ()), t.area is not None, t.fallback, t.parent_code, tuple(getattr(t, "area_codes", None) or ())
    )


class StaffDesk:
    # ------------------------------------------------------------ staff

    async def _group(self, s, ev: InboundEvent) -> bool:
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
        msg = Msg("bind.ok", {"team": self._team_name(team, lang), "role": Msg(f"role.{invite.role}")})
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
        if action.action == "transfer" and not action.arg and role is not None:
            teams = {t.code: t for t in await self._teams(s)}
            current = next((t.code for t in teams.values() if t.id == report.team_id), "")
            codes = routing.transfer_candidates([team_area(t) for t in teams.values()], current, report.province_code)
            candidates = [(c, Msg("card.team", {"team": self._team_name(teams[c], lang)})) for c in codes]
            await self._send(s, a.platform, a.chat_id, staff.transfer_choices(report.id, candidates), lang)
            return
        target: Team | None = None
        if action.action == "transfer" and action.arg:
            target = await repo.team_by_code(s, action.arg)
        decision = decide(
            action.action, Status(report.status), role, arg=action.arg,
            same_team=target is None or target.id == report.team_id,
        )
        if not decision.ok:
            log.info("staff_refused", report_id=report.id, action=action.action, reason=decision.error)
            await self._send(s, a.platform, a.chat_id, Reply((Msg(decision.error),)), lang, notice_for=ev.event_id)
            return
        old_status, old_team_id = report.status, report.team_id
        detail: dict = {}
        if action.action == "comment":
            detail["comment"] = action.comment
        else:
            report.status = decision.new_status
            report.updated_at = now
            report.next_due_at = now  # the scheduler re-plans its deadlines at its next sweep
            if decision.new_status == Status.ACKNOWLEDGED:
                report.acknowledged_at = report.acknowledged_at or now
            elif decision.new_status == Status.ON_SITE:
                report.on_site_at = report.on_site_at or now
                report.acknowledged_at = report.acknowledged_at or now
            elif decision.new_status == Status.CLOSED:
                report.closed_at, report.outcome = now, action.arg
                detail["outcome"] = action.arg
            elif decision.new_status == Status.REOPENED:
                report.closed_at, report.outcome = None, None
            if target is not None:
                report.team_id = target.id
                detail["from_team"], detail["to_team"] = old_team_id, target.code
        await repo.history_add(
            s, report_id=report.id, at=now, actor=a.user_key, actor_name=ev.user_name, action=action.action,
            from_status=old_status, to_status=report.status, detail=detail or None,
        )
        team = await repo.team_get(s, report.team_id)
        view = await self._view(s, report, team)
        if target is not None:
            old_team = await repo.team_get(s, old_team_id)
            await self._post_cards(s, report, old_team, view, actionable=False)
        await self._post_cards(s, report, team, view)
        if action.action == "comment":
            await self._send(s, a.platform, a.chat_id, Reply((Msg("staff.commented", {"ref": report.ref}),)), lang)
        elif report.reporter_chat and report.status != old_status:
            told = cardflow.reporter_update(replace(view, team_name=self._team_name(team, report.reporter_lang)), report.status)
            if told is not None:
                await self._send(s, report.reporter_platform, report.reporter_chat, told, report.reporter_lang, report_id=report.id)
        log.info("staff_action", report_id=report.id, action=action.action, status=report.status)


    # ------------------------------------------------------------ operator

    async def create_invite(self, team_code: str, role: str = "team", ttl: timedelta = timedelta(days=7)) -> str:
        async with self.db.transaction() as s:
            team = await repo.team_by_code(s, team_code)
            if team is None:
                raise KeyError(team_code)
            code = new_bind_code()
            await repo.invite_create(s, code, team.id, role, self.clock(), ttl)
        return code


