"""The console's queries (issue 13): sign-in links, sessions, the reports list, the map's points,
the figures' rows. Every list query takes the session's team ids (None: all teams)."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
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


LIST_COLUMNS = (
    Report.id, Report.ref, Report.team_id, Report.status, Report.urgent, Report.who, Report.created_at,
    Report.province_code, Report.district_code, Report.subdistrict_code,
)


async def reports_page(s: AsyncSession, team_ids: Sequence[int] | None, f: ListFilter) -> tuple[list, int, dict]:
    """The list's page: only the columns the list shows (rows with attribute access, not ORM
    objects), the total and counts by status of the filtered set."""
    dialect = s.bind.dialect.name
    stmt = _where(select(*LIST_COLUMNS), team_ids, f, dialect).order_by(Report.created_at, Report.id).limit(f.limit).offset(f.offset)
    rows = list((await s.exec(stmt)).all())
    counts_stmt = _where(select(Report.status, sa.func.count()).select_from(Report), team_ids, f, dialect).group_by(Report.status)
    counts = {st: n for st, n in (await s.exec(counts_stmt)).all()}
    return rows, sum(counts.values()), counts


MAP_LIMIT = 5000


async def map_points(s: AsyncSession, team_ids: Sequence[int] | None, f: ListFilter, limit: int = MAP_LIMIT) -> list[tuple]:
    """The located reports of the filter, oldest first, at most `limit`: six columns each."""
    stmt = _where(select(Report.id, Report.ref, Report.lat, Report.lon, Report.status, Report.urgent), team_ids, f, s.bind.dialect.name)
    stmt = stmt.where(col(Report.lat).is_not(None)).order_by(Report.created_at, Report.id).limit(limit)
    return [tuple(r) for r in (await s.exec(stmt)).all()]


async def map_points_json(s: AsyncSession, team_ids: Sequence[int] | None, f: ListFilter, limit: int = MAP_LIMIT) -> tuple[str, int]:
    """The map's points as a JSON array text ([[id, ref, lat, lon, status, urgent 0/1], …],
    coordinates to 5 decimals: a metre) and how many: on PostgreSQL built by the database in one
    value (no row reaches Python), elsewhere from `map_points`."""
    if s.bind.dialect.name != "postgresql":
        pts = await map_points(s, team_ids, f, limit)
        return json.dumps([[i, ref, round(la, 5), round(lo, 5), st, 1 if u else 0] for i, ref, la, lo, st, u in pts],
                          separators=(",", ":")), len(pts)
    inner = _where(select(Report.id, Report.ref, Report.lat, Report.lon, Report.status, Report.urgent, Report.created_at), team_ids, f, "postgresql")
    inner = inner.where(col(Report.lat).is_not(None)).order_by(Report.created_at, Report.id).limit(limit).subquery()
    point = sa.func.json_build_array(
        inner.c.id, inner.c.ref, sa.func.round(sa.cast(inner.c.lat, sa.Numeric), 5), sa.func.round(sa.cast(inner.c.lon, sa.Numeric), 5),
        inner.c.status, sa.case((inner.c.urgent, 1), else_=0),
    )
    ordered = sa.func.json_agg(aggregate_order_by(point, inner.c.created_at, inner.c.id))
    stmt = sa.select(sa.func.coalesce(sa.cast(ordered, sa.Text), "[]"), sa.func.count()).select_from(inner)
    text, n = (await s.exec(stmt)).one()
    return text, n


async def report_in_scope(s: AsyncSession, report_id: int, team_ids: Sequence[int] | None, for_update: bool = False) -> Report | None:
    stmt = select(Report).where(Report.id == report_id)
    if team_ids is not None:
        stmt = stmt.where(col(Report.team_id).in_(list(team_ids) or [-1]))
    if for_update:
        stmt = _locking(stmt, s)
    return (await s.exec(stmt)).first()


FIGURE_COLUMNS = (
    Report.team_id, Report.created_at, Report.urgent, Report.status, Report.acknowledged_at, Report.on_site_at,
    Report.closed_at, Report.outcome, Report.who, Report.repeat_of, Report.rating,
)


async def figure_rows(s: AsyncSession, team_ids: Sequence[int] | None, start: datetime, end: datetime) -> list[tuple]:
    """What the figures need of the reports received in [start, end), of those open now that were
    received before or after (for "overdue now"), and of those received before and closed within
    (for the closings by month): three index range scans."""
    def scoped(stmt):
        return stmt if team_ids is None else stmt.where(col(Report.team_id).in_(list(team_ids) or [-1]))

    year = scoped(select(*FIGURE_COLUMNS).where(Report.created_at >= start, Report.created_at < end))
    other_open = scoped(select(*FIGURE_COLUMNS).where(Report.status != "closed", sa.or_(Report.created_at < start, Report.created_at >= end)))
    closed_in = scoped(select(*FIGURE_COLUMNS).where(Report.status == "closed", Report.closed_at >= start, Report.closed_at < end, Report.created_at < start))
    rows = []
    for stmt in (year, other_open, closed_in):
        rows += [tuple(r) for r in (await s.exec(stmt)).all()]
    return rows


def cases(rows) -> list:
    from flows.figures import Case

    return [
        Case(team_id=t, created_at=cr, urgent=bool(u), status=st, acknowledged_at=ack, on_site_at=on, closed_at=cl,
             outcome=o, who=tuple(w or ()), repeat=bool(rep), rating=rating)
        for t, cr, u, st, ack, on, cl, o, w, rep, rating in rows
    ]


async def figure_cases(s: AsyncSession, team_ids: Sequence[int] | None, start: datetime, end: datetime) -> list:
    return cases(await figure_rows(s, team_ids, start, end))


async def figures_by_team(s: AsyncSession, team_ids: Sequence[int] | None, fy: int, now: datetime, policy,
                          other: AsyncSession | None = None) -> dict:
    """The fiscal year's figures of the teams (None: all) together (under None) and of each team
    (under its id). On PostgreSQL aggregated in SQL (a few grouped index scans, no report loaded);
    elsewhere (SQLite) the rows are fetched and `flows.figures.figures_by` counts them. Both give
    the same numbers: tests/test_console.py compares them."""
    from flows import figures as fig

    start, end = fig.fiscal_bounds(fy)
    if s.bind.dialect.name != "postgresql":
        return fig.figures_by(await figure_cases(s, team_ids, start, end), fy, now, policy, lambda c: c.team_id)
    return await _figures_pg(s, team_ids, fy, now, fig.fast_policy(policy, fy), start, end, other)


def _due_sql(plan, urgent: bool, milestone: str) -> str:
    step = plan.steps.get((urgent, milestone))
    if step is None:
        return "CAST(NULL AS timestamptz)"
    clock, secs = step
    if clock == "wall":
        return f"(created_at + make_interval(secs => {secs!r}))"
    L = plan.day_seconds
    total = f"(inn + {secs!r})"
    n = f"greatest(CAST(ceil({total} / {L!r}) AS int) - 1, 0)"
    pick = " ".join(f"WHEN {k} THEN o{k}" for k in range(plan.columns))
    return f"((CASE (CAST(sh AS int) + {n}) {pick} END) + make_interval(secs => CAST({total} - {n} * {L!r} AS float8)))"


def _reached_sql(milestone: str) -> str:
    return {"ack": "coalesce(acknowledged_at, on_site_at)", "onsite": "on_site_at", "close": "(CASE WHEN status = 'closed' THEN closed_at END)"}[milestone]


async def _figures_pg(s: AsyncSession, team_ids, fy: int, now: datetime, policy, start: datetime, end: datetime,
                      other: AsyncSession | None = None) -> dict:
    """`other`: a second session: the year's grouped scans run on it while `s` counts the
    deadlines (two connections, two backends: the page waits for the longer, not the sum)."""
    import asyncio
    from datetime import timedelta

    from flows import figures as fig

    plan = fig.due_plan(policy)
    scope = "TRUE" if team_ids is None else "team_id = ANY(:ids)"
    params: dict = {"start": start, "end": end, "now": now}
    types = [sa.bindparam("start", type_=sa.DateTime(timezone=True)), sa.bindparam("end", type_=sa.DateTime(timezone=True)),
             sa.bindparam("now", type_=sa.DateTime(timezone=True))]
    if team_ids is not None:
        params["ids"] = list(team_ids) or [-1]
        types.append(sa.bindparam("ids", type_=ARRAY(sa.Integer)))

    def run(sql: str, extra_types=(), session: AsyncSession | None = None, **more):
        used = [b for b in (*types, *extra_types) if re.search(rf":{b.key}\b", sql)]
        values = {k: v for k, v in {**params, **more}.items() if re.search(rf":{k}\b", sql)}
        return (session or s).exec(sa.text(sql).bindparams(*used), params=values)

    # the calendar days the deadlines need: the year's, and those of the reports open now
    lo, hi = (await run(f"SELECT min(created_at), max(created_at) FROM reports WHERE {scope} AND status <> 'closed'")).one()
    tz = policy.calendar.tz
    first = min(start.astimezone(tz).date(), lo.astimezone(tz).date() if lo else start.astimezone(tz).date()) - timedelta(days=1)
    last = max(end.astimezone(tz).date(), hi.astimezone(tz).date() if hi else end.astimezone(tz).date()) + timedelta(days=1)
    days, work, opens = fig.office_table(policy.calendar, first, last, plan.columns)
    # the day table as parameter arrays, looked up by the day's index (no join, no sort); the
    # local date by arithmetic when the zone keeps one offset over the table (Bangkok), else by
    # the zone's rules
    offsets = {datetime.combine(d, datetime.min.time(), tz).utcoffset() for d in days[:: 30] + [days[-1]]}
    if len(offsets) == 1:
        secs = offsets.pop().total_seconds()
        day_index = f"CAST(floor((CAST(EXTRACT(EPOCH FROM created_at) AS float8) + {secs!r}) / 86400) AS int) - :first_n + 1"
        first_n = (days[0] - date(1970, 1, 1)).days
    else:
        day_index = "CAST((created_at AT TIME ZONE :tz) AS date) - :first + 1"
        first_n = None
    w_types = [sa.bindparam("work", type_=ARRAY(sa.Boolean))]
    w_types += [sa.bindparam(f"o{k}", type_=ARRAY(sa.DateTime(timezone=True))) for k in range(plan.columns)]
    w_params = {"work": work, "tz": plan.tz, "L": plan.day_seconds, "first": days[0], "first_n": first_n,
                **{f"o{k}": opens[k] for k in range(plan.columns)}}
    w_types += [sa.bindparam("first", type_=sa.Date), sa.bindparam("first_n", type_=sa.Integer)]
    # only the reports of a track with a working-clock step need the day table
    working = {u for u in (False, True) if any(v and v[0] == "working" for (uu, _), v in plan.steps.items() if uu == u)}
    need = {frozenset(): "FALSE", frozenset({False}): "NOT urgent", frozenset({True}): "urgent"}.get(frozenset(working), "TRUE")
    looked_up = ", ".join(f"CASE WHEN {need} THEN (CAST(:o{k} AS timestamptz[]))[di] END AS o{k}" for k in range(plan.columns))
    fields = "team_id, created_at, urgent, status, acknowledged_at, on_site_at, closed_at"
    dues = ", ".join(
        f"(CASE WHEN urgent THEN {_due_sql(plan, True, m)} ELSE {_due_sql(plan, False, m)} END) AS d_{m}, {_reached_sql(m)} AS r_{m}"
        for m in fig.MILESTONES
    )
    year = f"{scope} AND created_at >= :start AND created_at < :end"

    # 1. the year's times: medians and 90th percentiles per team and for all (no deadline needed)
    aggs = []
    for m in fig.MILESTONES:
        h = f"CAST(EXTRACT(EPOCH FROM ({_reached_sql(m)} - created_at)) AS float8) / 3600"
        aggs += [
            f"count({_reached_sql(m)}) AS n_{m}",
            f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {h}) AS med_{m}",
            f"percentile_disc(0.9) WITHIN GROUP (ORDER BY {h}) AS p90_{m}",
        ]
    times_sql = f"""
        SELECT CASE WHEN GROUPING(team_id) = 1 THEN NULL ELSE team_id END AS team_id,
               count(*) AS received, count(*) FILTER (WHERE urgent) AS urgent,
               count(*) FILTER (WHERE CASE WHEN json_typeof(repeat_of) = 'array' THEN json_array_length(repeat_of) > 0 ELSE FALSE END) AS repeats,
               {", ".join(aggs)}
        FROM reports WHERE {year} GROUP BY GROUPING SETS ((team_id), ())"""

    # 2. the deadlines: met and counted (the year's), open and overdue now (all open), per team
    counts = []
    for m in fig.MILESTONES:
        counts += [
            f"count(*) FILTER (WHERE in_year AND d_{m} IS NOT NULL AND r_{m} <= d_{m}) AS met_{m}",
            f"count(*) FILTER (WHERE in_year AND d_{m} IS NOT NULL AND (r_{m} IS NOT NULL OR d_{m} <= :now)) AS counted_{m}",
        ]
    overdue = " OR ".join(f"(r_{m} IS NULL AND d_{m} <= :now)" for m in fig.MILESTONES)
    deadlines_sql = f"""
        WITH src AS (
            SELECT {fields}, TRUE AS in_year FROM reports WHERE {year}
            UNION ALL
            SELECT {fields}, FALSE FROM reports WHERE {scope} AND status <> 'closed' AND (created_at < :start OR created_at >= :end)
        ),
        -- each layer is fenced (OFFSET 0) so that its columns are computed once per report, not
        -- once per mention in the layers above
        w AS (SELECT src.*, {looked_up}, CASE WHEN {need} THEN (CAST(:work AS boolean[]))[di] END AS work
              FROM (SELECT src.*, CASE WHEN {need} THEN {day_index} END AS di FROM src) AS src OFFSET 0),
        a AS (SELECT w.*, CASE WHEN sh THEN 0 ELSE greatest(CAST(EXTRACT(EPOCH FROM (created_at - o0)) AS float8), 0) END AS inn
              FROM (SELECT w.*, coalesce(work AND created_at >= o0 + make_interval(secs => :L), FALSE) AS sh FROM w) AS w OFFSET 0),
        c AS (SELECT a.*, {dues} FROM a OFFSET 0)
        SELECT team_id, count(*) FILTER (WHERE status <> 'closed') AS open_now,
               count(*) FILTER (WHERE status <> 'closed' AND ({overdue})) AS overdue_now,
               {", ".join(counts)}
        FROM c GROUP BY team_id"""
    # 3. the year's reports by month, outcome, rating and categories: one grouped scan (categories
    # grouped by the stored list, then counted out here: a few distinct lists, not a row each);
    # 4. the closings by month
    month = "(CAST(EXTRACT(MONTH FROM ({0} AT TIME ZONE 'UTC') + interval '7 hours') AS int) + 2) % 12"
    sets_sql = f"""
        SELECT team_id, {month.format('created_at')} AS m, CASE WHEN status = 'closed' THEN outcome END AS o, rating,
               CASE WHEN json_typeof(who) = 'array' THEN CAST(who AS text) END AS who_, count(*) AS n,
               GROUPING({month.format('created_at')}) AS gm, GROUPING(CASE WHEN status = 'closed' THEN outcome END) AS go,
               GROUPING(rating) AS gr
        FROM reports WHERE {year}
        GROUP BY GROUPING SETS ((team_id, m), (team_id, o), (team_id, rating), (team_id, who_))"""
    closed_sql = (f"SELECT team_id, {month.format('closed_at')}, count(*) FROM reports WHERE {scope} AND status = 'closed' "
                  "AND closed_at >= :start AND closed_at < :end GROUP BY 1, 2")

    async def side(o: AsyncSession):
        return [(await run(sql, session=o)).all() for sql in (times_sql, sets_sql, closed_sql)]

    task = asyncio.ensure_future(side(other)) if other is not None else None
    try:
        deadline_rows = (await run(deadlines_sql, w_types, **w_params)).all()
    except BaseException:
        if task is not None:
            task.cancel()
        raise
    times, sets, closed = await task if task is not None else await side(s)

    rows = {r.team_id: dict(r._mapping) for r in times}
    zero = {"received": 0, "urgent": 0, "repeats": 0, **{f"{k}_{m}": None for m in fig.MILESTONES for k in ("med", "p90")},
            **{f"n_{m}": 0 for m in fig.MILESTONES}}
    total = rows.setdefault(None, {"team_id": None, **zero})
    for r in deadline_rows:
        d = dict(r._mapping)
        team = rows.setdefault(d["team_id"], {"team_id": d["team_id"], **zero})
        for k, v in d.items():
            if k != "team_id":
                team[k] = v
                total[k] = total.get(k, 0) + v
    for k in ("open_now", "overdue_now", *[f"{x}_{m}" for m in fig.MILESTONES for x in ("met", "counted")]):
        for r in rows.values():
            r.setdefault(k, 0)
    main = list(rows.values())
    monthly, outcomes, ratings, categories = [], [], [], []
    for team, m, o, rating, who_, n, gm, go, gr in sets:
        if not gm:
            monthly.append((team, m, n))
        elif not go:
            if o is not None:
                outcomes.append((team, o, n))
        elif not gr:
            if rating is not None:
                ratings.append((team, rating, n))
        elif who_ is not None:
            categories += [(team, str(x), n) for x in json.loads(who_)]
    return fig.assemble(fy, main, monthly, closed, outcomes, categories, ratings)


async def access_count(s: AsyncSession, report_id: int) -> int:
    return (await s.exec(select(sa.func.count()).select_from(AccessLog).where(AccessLog.report_id == report_id))).one()
