"""The console's queries (issue 13): sign-in links, sessions, the reports list, the map's points,
the figures' rows. Every list query takes the session's team ids (None: all teams)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import AccessLog, ConsoleLink, ConsoleSession, Member, Report, Team


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _locking(stmt, s: AsyncSession):
    return stmt.with_for_update() if s.bind.dialect.name == "postgresql" else stmt


# ---------------------------------------------------------------- people and links


async def member_grants(s: AsyncSession, platform: str, user_id: str) -> list[tuple[int, str]]:
    stmt = select(Member.team_id, Member.role).where(Member.platform == platform, Member.user_id == user_id)
    return [(t, r) for t, r in (await s.exec(stmt)).all()]


async def link_create(s: AsyncSession, token: str, *, platform: str, user_id: str, user_name: str | None, scope: dict, lang: str, now: datetime, ttl) -> None:
    s.add(ConsoleLink(token_hash=digest(token), platform=platform, user_id=user_id, user_name=user_name, scope=scope, lang=lang, created_at=now, expires_at=now + ttl))
    await s.flush()


async def link_peek(s: AsyncSession, token: str, now: datetime) -> ConsoleLink | None:
    """The link if it is still usable, without spending it."""
    row = (await s.exec(select(ConsoleLink).where(ConsoleLink.token_hash == digest(token)))).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    return row


async def link_use(s: AsyncSession, token: str, now: datetime) -> ConsoleLink | None:
    """Spends an unused, unexpired link; None when there is none (unknown, used, expired)."""
    row = (await s.exec(_locking(select(ConsoleLink).where(ConsoleLink.token_hash == digest(token)), s))).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    row.used_at = now
    return row


async def session_create(s: AsyncSession, key: str, data: dict, now: datetime, ttl) -> None:
    s.add(ConsoleSession(key_hash=digest(key), data=data, created_at=now, expires_at=now + ttl))
    await s.flush()


async def session_get(s: AsyncSession, key: str, now: datetime) -> ConsoleSession | None:
    row = (await s.exec(select(ConsoleSession).where(ConsoleSession.key_hash == digest(key)))).first()
    if row is None or row.ended_at is not None or row.expires_at <= now:
        return None
    return row


async def session_save(s: AsyncSession, key: str, data: dict) -> None:
    await s.exec(sa.update(ConsoleSession).where(ConsoleSession.key_hash == digest(key)).values(data=data))


async def session_end(s: AsyncSession, key: str, now: datetime) -> None:
    await s.exec(sa.update(ConsoleSession).where(ConsoleSession.key_hash == digest(key)).values(ended_at=now))


async def sessions_prune(s: AsyncSession, before: datetime) -> int:
    res = await s.exec(sa.delete(ConsoleSession).where(ConsoleSession.expires_at < before))
    return res.rowcount or 0


async def teams_brief(s: AsyncSession) -> list:
    """Every team's id, code, names and provinces (not its area's polygon)."""
    stmt = select(Team.id, Team.code, Team.name_th, Team.name_en, Team.provinces).order_by(Team.code)
    return [TeamBrief(*r) for r in (await s.exec(stmt)).all()]


@dataclass(frozen=True)
class TeamBrief:
    id: int
    code: str
    name_th: str
    name_en: str
    provinces: list | None


# ---------------------------------------------------------------- reports


@dataclass(frozen=True)
class ListFilter:
    status: str | None = None  # a status, or "open" (default), or "all"
    urgent: bool | None = None
    overdue_before: datetime | None = None  # open and received before this (the caller's rule)
    category: str | None = None
    team_id: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    area: str | None = None  # a province (2), district (4) or subdistrict (6) code
    limit: int = 200
    offset: int = 0


def _where(stmt, team_ids: Sequence[int] | None, f: ListFilter, dialect: str):
    if team_ids is not None:
        stmt = stmt.where(col(Report.team_id).in_(list(team_ids) or [-1]))
    if f.team_id is not None:
        stmt = stmt.where(Report.team_id == f.team_id)
    if f.status in (None, "", "open"):
        stmt = stmt.where(Report.status != "closed")
    elif f.status != "all":
        stmt = stmt.where(Report.status == f.status)
    if f.urgent is not None:
        stmt = stmt.where(Report.urgent == f.urgent)
    if f.overdue_before is not None:
        stmt = stmt.where(Report.status != "closed", Report.created_at < f.overdue_before)
    if f.since is not None:
        stmt = stmt.where(Report.created_at >= f.since)
    if f.until is not None:
        stmt = stmt.where(Report.created_at < f.until)
    if f.area:
        column = {2: Report.province_code, 4: Report.district_code, 6: Report.subdistrict_code}.get(len(f.area))
        if column is not None:
            stmt = stmt.where(column == f.area)
    if f.category:
        # `who` is a JSON list of category codes; codes are plain words, so a quoted match is exact
        stmt = stmt.where(sa.cast(Report.who, sa.String).like(f'%"{f.category}"%'))
    return stmt


async def reports_list(s: AsyncSession, team_ids: Sequence[int] | None, f: ListFilter) -> tuple[list[Report], int, dict]:
    """The page of reports (oldest first), the total, and counts by status of the filtered set."""
    dialect = s.bind.dialect.name
    stmt = _where(select(Report), team_ids, f, dialect).order_by(Report.created_at, Report.id).limit(f.limit).offset(f.offset)
    rows = list((await s.exec(stmt)).all())
    counts_stmt = _where(select(Report.status, sa.func.count()).select_from(Report), team_ids, f, dialect).group_by(Report.status)
    counts = {st: n for st, n in (await s.exec(counts_stmt)).all()}
    return rows, sum(counts.values()), counts


async def map_points(s: AsyncSession, team_ids: Sequence[int] | None, f: ListFilter) -> list[tuple]:
    stmt = _where(select(Report.id, Report.ref, Report.lat, Report.lon, Report.status, Report.urgent), team_ids, f, s.bind.dialect.name)
    stmt = stmt.where(col(Report.lat).is_not(None)).order_by(Report.created_at).limit(5000)
    return [tuple(r) for r in (await s.exec(stmt)).all()]


async def report_in_scope(s: AsyncSession, report_id: int, team_ids: Sequence[int] | None, for_update: bool = False) -> Report | None:
    stmt = select(Report).where(Report.id == report_id)
    if team_ids is not None:
        stmt = stmt.where(col(Report.team_id).in_(list(team_ids) or [-1]))
    if for_update:
        stmt = _locking(stmt, s)
    return (await s.exec(stmt)).first()


FIGURE_COLUMNS = (
    Report.team_id, Report.created_at, Report.urgent, Report.status, Report.acknowledged_at, Report.on_site_at,
    Report.closed_at, Report.outcome, Report.who, Report.repeat_of,
)


async def figure_rows(s: AsyncSession, team_ids: Sequence[int] | None, start: datetime, end: datetime) -> list[tuple]:
    """What the figures need of the reports received in [start, end), and of those open now that
    were received before or after (for "overdue now"): two index range scans."""
    def scoped(stmt):
        return stmt if team_ids is None else stmt.where(col(Report.team_id).in_(list(team_ids) or [-1]))

    year = scoped(select(*FIGURE_COLUMNS).where(Report.created_at >= start, Report.created_at < end))
    other_open = scoped(select(*FIGURE_COLUMNS).where(Report.status != "closed", sa.or_(Report.created_at < start, Report.created_at >= end)))
    rows = [tuple(r) for r in (await s.exec(year)).all()]
    rows += [tuple(r) for r in (await s.exec(other_open)).all()]
    return rows


async def access_count(s: AsyncSession, report_id: int) -> int:
    return (await s.exec(select(sa.func.count()).select_from(AccessLog).where(AccessLog.report_id == report_id))).one()
