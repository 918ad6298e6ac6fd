"""The web console's rules: who may ask for a link, what a session may see. Pure: no I/O.

A person asks with `/console` in a bound group or in a private chat; the bot answers with a
one-time link (single use, LINK_TTL) that opens a session (SESSION_TTL, a working day) scoped to
that person's teams and role.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Iterable

from flows.model import CommandReceived, Event, Msg, Reply, TextReceived
from flows.status import ROLE_RANK, Role

LINK_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=10)  # a working day (08:30–16:30) with room either side
KEYWORDS = frozenset({"/console", "console", "คอนโซล"})
# a group's binding role -> the role it gives whoever writes in it
BINDING_ROLES = {"team": Role.STAFF, "supervisors": Role.SUPERVISOR, "director": Role.SUPERVISOR}


def is_console_command(ev: Event) -> bool:
    if isinstance(ev, CommandReceived):
        return ev.name == "console"
    if isinstance(ev, TextReceived):
        return ev.text.strip().split("@")[0].lower() in KEYWORDS
    return False


@dataclass(frozen=True)
class Grant:
    team_id: int
    role: Role


@dataclass(frozen=True)
class Scope:
    """What a session may see: `team_ids` None means every team (an administrator)."""

    role: Role
    team_ids: frozenset[int] | None

    def sees(self, team_id: int) -> bool:
        return self.team_ids is None or team_id in self.team_ids

    def to_dict(self) -> dict:
        return {"role": str(self.role), "team_ids": None if self.team_ids is None else sorted(self.team_ids)}

    @staticmethod
    def from_dict(d: dict) -> "Scope":
        ids = d.get("team_ids")
        return Scope(Role(d["role"]), None if ids is None else frozenset(int(i) for i in ids))


def grants(binding: tuple[int, str] | None, members: Iterable[tuple[int, str]]) -> list[Grant]:
    """A person's roles: the group's binding (team, binding role) they wrote in, and their grants."""
    out = [Grant(team_id, Role(role)) for team_id, role in members if role in Role._value2member_map_]
    if binding is not None:
        out.append(Grant(binding[0], BINDING_ROLES.get(binding[1], Role.STAFF)))
    return out


def scope(person: list[Grant], teams: Iterable[tuple[int, tuple[str, ...]]]) -> Scope | None:
    """Staff see their teams; supervisors and directors every team of their teams' provinces;
    administrators all. None: no role, no console."""
    if not person:
        return None
    role = max((g.role for g in person), key=lambda r: ROLE_RANK[r])
    if role is Role.ADMIN:
        return Scope(role, None)
    teams = list(teams)
    ids = {g.team_id for g in person}
    provinces = {p for tid, provs in teams for g in person if g.team_id == tid and g.role is Role.SUPERVISOR for p in provs}
    ids |= {tid for tid, provs in teams if provinces & set(provs)}
    return Scope(role, frozenset(ids))


def may_act(s: Scope, grants_by_team: dict[int, Role], team_id: int) -> Role | None:
    """The role a session acts with on a team's report: its own grant there, else its session role
    if the team is in its scope (a supervisor over the province's teams)."""
    if not s.sees(team_id):
        return None
    return grants_by_team.get(team_id) or s.role


def link_reply(url: str | None) -> Reply:
    if url is None:
        return Reply((Msg("console.no_role"),))
    return Reply((Msg("console.link", {"url": url, "minutes": int(LINK_TTL.total_seconds() // 60)}),))
