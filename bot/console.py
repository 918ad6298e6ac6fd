"""The console's service (issue 13): sign-in links from a chat or the CLI, and acting on a report
from the web with the chat's own rules (`StaffDesk.act`: cards updated, the reporter told).

Who sees what is `flows.console`; the queries are `storage.console_repo`; the pages are
`handlers/console.py`, which reaches this through the app's services.
"""

from __future__ import annotations

import secrets

import structlog

from flows import console as rules
from flows.model import Event
from flows.status import Decision, Role
from storage import console_repo as crepo
from storage import repo

log = structlog.get_logger("namjai.console")


class Console:
    def __init__(self, db, reports, desk, clock, public_url: str = "http://127.0.0.1:8080", default_lang: str = "th"):
        self.db = db
        self.reports = reports
        self.desk = desk
        self.clock = clock
        self.public_url = public_url.rstrip("/")
        self.default_lang = default_lang

    async def _scope(self, s, grants: list[rules.Grant]) -> rules.Scope | None:
        teams = [(t.id, tuple(t.provinces or ())) for t in await repo.teams_all(s)]
        return rules.scope(grants, teams)

    async def _link(self, s, platform: str, user_id: str, user_name: str | None, grants: list[rules.Grant], lang: str) -> str | None:
        sc = await self._scope(s, grants)
        if sc is None:
            return None
        token = secrets.token_urlsafe(32)
        by_team: dict[str, str] = {}
        for g in grants:  # the highest role per team
            if str(g.team_id) not in by_team or g.role is Role.ADMIN or (g.role is Role.SUPERVISOR and by_team[str(g.team_id)] == "staff"):
                by_team[str(g.team_id)] = str(g.role)
        await crepo.link_create(
            s, token, platform=platform, user_id=user_id, user_name=user_name,
            scope={**sc.to_dict(), "grants": by_team}, lang=lang, now=self.clock(), ttl=rules.LINK_TTL,
        )
        log.info("console_link", user=f"{platform}:{user_id}", role=str(sc.role))
        return f"{self.public_url}/console/login/{token}"

    async def on_command(self, s, ev: Event) -> bool:
        """`/console` in a bound group or a private chat: a one-time link, or why not."""
        a = ev.address
        binding = await repo.binding_for_chat(s, a.platform, a.chat_id) if a.is_group else None
        if binding is not None:
            lang = binding.lang
        else:
            conv = await repo.conversation_get(s, a.platform, a.chat_id, a.user_id or "")
            lang = conv.lang if conv is not None else self.default_lang
        members = await crepo.member_grants(s, a.platform, a.user_id) if a.user_id else []
        grants = rules.grants((binding.team_id, binding.role) if binding else None, members)
        url = await self._link(s, a.platform, a.user_id or a.chat_id, ev.user_name, grants, lang) if a.user_id else None
        await self.reports.send(s, a.platform, a.chat_id, rules.link_reply(url), lang)
        return True

    async def link_for(self, team_code: str, user: str, lang: str = "th") -> str:
        """`namjai console link TEAM platform:user`: the person's grants, and staff of TEAM at least."""
        platform, user_id = user.split(":", 1)
        async with self.db.transaction() as s:
            team = await repo.team_by_code(s, team_code)
            if team is None:
                raise KeyError(team_code)
            members = await crepo.member_grants(s, platform, user_id)
            grants = rules.grants((team.id, "team"), members)
            url = await self._link(s, platform, user_id, None, grants, lang)
        assert url is not None
        return url

    async def peek(self, token: str) -> tuple[str, str] | None:
        """(name, lang) of a link still usable, without spending it (a link preview must not)."""
        async with self.db.session() as s:
            link = await crepo.link_peek(s, token, self.clock())
        return None if link is None else (link.user_name or link.user_id, link.lang)

    async def sign_in(self, token: str) -> dict | None:
        """Spends a link: the new session's data, or None (unknown, used or expired)."""
        async with self.db.transaction() as s:
            link = await crepo.link_use(s, token, self.clock())
            if link is None:
                return None
            return {
                "user": f"{link.platform}:{link.user_id}", "name": link.user_name or link.user_id,
                "scope": link.scope, "lang": link.lang, "csrf": secrets.token_urlsafe(24),
            }

    async def act(self, data: dict, report_id: int, action: str, arg: str = "", comment: str | None = None) -> Decision | None:
        """A console action on a report, as if its card's button was pressed. None: not in scope."""
        sc = rules.Scope.from_dict(data["scope"])
        grants = {int(k): Role(v) for k, v in (data["scope"].get("grants") or {}).items()}
        async with self.db.transaction() as s:
            report = await crepo.report_in_scope(s, report_id, None if sc.team_ids is None else sorted(sc.team_ids), for_update=True)
            if report is None:
                return None
            role = rules.may_act(sc, grants, report.team_id)
            target = None
            if action == "transfer" and arg:
                target = await repo.team_by_code(s, arg)
                if target is None:
                    return Decision(False, error="staff.need_team")
            if action == "comment" and not (comment or "").strip():
                return Decision(False, error="err.empty")
            return await self.desk.act(
                s, report, role, action, arg, comment, actor=data["user"], actor_name=data.get("name"), target=target
            )
