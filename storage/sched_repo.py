"""Queries of the scheduler (bot/scheduler.py, bot/retention.py): claiming due reports, the
reminders ledger, drafts to nudge, digest figures and PDPA retention."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import repo
from storage.models import ChatBinding, Conversation, OutboxMessage, ReminderSent, Report, ReportEvent, Team

# Actions of the history that the deadlines depend on (flows.deadlines.episode).
CLOCK_ACTIONS = ("submit", "ack", "onsite", "close", "transfer", "reopen")


def _pg(s: AsyncSession) -> bool:
    return s.bind.dialect.name == "postgresql"


def _insert(s: AsyncSession, table):
    return (postgresql.insert if _pg(s) else sqlite.insert)(table)


# ---------------------------------------------------------------- due reports


# What a sweep needs of a due report (bot/scheduler.py): a plain row, not an ORM object (no
# identity map, no change tracking: the batch writes its next due times in one statement).
DUE_COLUMNS = (
    "id", "ref", "team_id", "status", "urgent", "created_at", "reporter_platform", "reporter_chat",
    "reporter_lang", "still_there", "still_there_at",
)


async def claim_batch(s: AsyncSession, now: datetime, limit: int, ids: Sequence[int] | None = None) -> list[sa.Row]:
    """Due reports nobody holds, locked for this transaction (SKIP LOCKED: concurrent sweepers
    take disjoint rows and handle them before they commit), as rows of `DUE_COLUMNS`. `ids`: only
    those (a retried part of a batch that failed)."""
    t = Report.__table__
    stmt = sa.select(*(t.c[name] for name in DUE_COLUMNS)).where(
        t.c.next_due_at <= now,
        sa.or_(t.c.sched_claimed_until.is_(None), t.c.sched_claimed_until < now),
    )
    if ids is not None:
        stmt = stmt.where(t.c.id.in_(list(ids)))
    stmt = stmt.order_by(t.c.next_due_at).limit(limit)
    if _pg(s):
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await s.exec(stmt)).all())


_SET_DUE = (
    sa.update(Report.__table__)
    .where(Report.__table__.c.id == sa.bindparam("rid"))
    .values(next_due_at=sa.bindparam("due"), sched_claimed_until=None)
)


async def set_next_due(s: AsyncSession, due: Sequence[tuple[int, datetime | None]]) -> None:
    """Each claimed report's next due time (None: nothing more to send), its claim released: one
    statement for the batch (PostgreSQL: UPDATE … FROM unnest(ids, times); SQLite: executemany)."""
    if not due:
        return
    if not _pg(s):
        await s.exec(_SET_DUE, params=[{"rid": rid, "due": at} for rid, at in due])
        return
    t = Report.__table__
    v = repo.unnest(t, [{"id": rid, "next_due_at": at} for rid, at in due], ("id", "next_due_at"))
    await s.exec(sa.update(t).where(t.c.id == v.c.id).values(next_due_at=v.c.next_due_at, sched_claimed_until=None))


async def lease(s: AsyncSession, report_ids: Sequence[int], until: datetime) -> None:
    """Holds reports back until `until` (their handling failed: tried again after that)."""
    if report_ids:
        await s.exec(sa.update(Report).where(col(Report.id).in_(list(report_ids))).values(sched_claimed_until=until))


async def clock_history(s: AsyncSession, report_ids: Sequence[int]) -> dict[int, list[tuple[datetime, str]]]:
    """(at, action) of the events that move deadlines, per report."""
    out: dict[int, list[tuple[datetime, str]]] = {i: [] for i in report_ids}
    if not report_ids:
        return out
    stmt = (
        select(ReportEvent.report_id, ReportEvent.at, ReportEvent.action)
        .where(col(ReportEvent.report_id).in_(list(report_ids)), col(ReportEvent.action).in_(CLOCK_ACTIONS))
        .order_by(ReportEvent.id)
    )
    for rid, at, action in (await s.exec(stmt)).all():
        out[rid].append((at, action))
    return out


# ---------------------------------------------------------------- ledger


async def ledger_keys_many(s: AsyncSession, report_ids: Sequence[int]) -> dict[int, set[tuple[str, str]]]:
    out: dict[int, set[tuple[str, str]]] = {i: set() for i in report_ids}
    if report_ids:
        stmt = select(ReminderSent.report_id, ReminderSent.kind, ReminderSent.step).where(col(ReminderSent.report_id).in_(list(report_ids)))
        for rid, k, st in (await s.exec(stmt)).all():
            out[rid].add((k, st))
    return out


async def ledger_add_many(s: AsyncSession, rows: Sequence[dict], now: datetime) -> set[tuple[int, str, str]]:
    """Records several reminders in one statement (each row: report_id, kind, step, due_at, to,
    coalesced); returns the (report_id, kind, step) keys recorded now, not before (by anyone)."""
    if not rows:
        return set()
    table = ReminderSent.__table__
    params = [{"sent_at": now, "due_at": None, "to": None, "coalesced": False, **r} for r in rows]
    if _pg(s):  # INSERT … SELECT FROM unnest(one array per column): one short statement
        names = ("report_id", "kind", "step", "due_at", "sent_at", "to", "coalesced")
        src = repo.unnest(table, params, names)
        stmt = postgresql.insert(table).from_select(names, sa.select(*src.c))
        params = None
    else:
        # executemany with RETURNING: SQLAlchemy batches the rows into a few INSERTs
        # ("insertmanyvalues") from one cached statement, not a new statement per number of rows.
        stmt = sqlite.insert(table)
    stmt = stmt.on_conflict_do_nothing(index_elements=["report_id", "kind", "step"]).returning(table.c.report_id, table.c.kind, table.c.step)
    return {(rid, k, st) for rid, k, st in (await s.exec(stmt, params=params)).all()}


async def chats_of_teams(s: AsyncSession, team_ids: Sequence[int]) -> dict[tuple[int, str], list[ChatBinding]]:
    """The bound chats of several teams, by (team id, role), in binding order."""
    out: dict[tuple[int, str], list[ChatBinding]] = {}
    if team_ids:
        stmt = select(ChatBinding).where(col(ChatBinding.team_id).in_(list(team_ids))).order_by(ChatBinding.id)
        for b in (await s.exec(stmt)).all():
            out.setdefault((b.team_id, b.role), []).append(b)
    return out


async def teams_get(s: AsyncSession, team_ids: Sequence[int]) -> dict[int, Team]:
    if not team_ids:
        return {}
    return {t.id: t for t in (await s.exec(select(Team).where(col(Team.id).in_(list(team_ids))))).all()}


async def ledger_has(s: AsyncSession, report_id: int, kind: str, step: str) -> bool:
    stmt = select(ReminderSent.id).where(ReminderSent.report_id == report_id, ReminderSent.kind == kind, ReminderSent.step == step)
    return (await s.exec(stmt)).first() is not None


async def ledger_add(
    s: AsyncSession, *, report_id: int, kind: str, step: str, now: datetime,
    due_at: datetime | None = None, to: str | None = None, coalesced: bool = False,
) -> bool:
    """Records one reminder; False when it was recorded before (by anyone): then do not send it."""
    stmt = (
        _insert(s, ReminderSent.__table__)
        .values(report_id=report_id, kind=kind, step=step, due_at=due_at, sent_at=now, to=to, coalesced=coalesced)
        .on_conflict_do_nothing(index_elements=["report_id", "kind", "step"])
        .returning(ReminderSent.__table__.c.id)
    )
    return (await s.exec(stmt)).scalar_one_or_none() is not None


# ---------------------------------------------------------------- chats


async def teams_with_role(s: AsyncSession, role: str) -> list[tuple[Team, list[ChatBinding]]]:
    stmt = (
        select(Team, ChatBinding)
        .join(ChatBinding, ChatBinding.team_id == Team.id)
        .where(ChatBinding.role == role, Team.active == True)  # noqa: E712
        .order_by(Team.id, ChatBinding.id)
    )
    out: dict[int, tuple[Team, list[ChatBinding]]] = {}
    for team, b in (await s.exec(stmt)).all():
        out.setdefault(team.id, (team, []))[1].append(b)
    return list(out.values())


# ---------------------------------------------------------------- drafts


async def drafts_due(s: AsyncSession, now: datetime, nudge_after: timedelta, drop_after: timedelta, limit: int) -> list[Conversation]:
    """Unfinished conversations old enough to nudge (not nudged since their question) or drop."""
    stmt = (
        select(Conversation)
        .where(
            Conversation.step != "idle",
            col(Conversation.asked_at) <= now - nudge_after,
            sa.or_(
                col(Conversation.nudged_at).is_(None),
                col(Conversation.nudged_at) < col(Conversation.asked_at),
                col(Conversation.asked_at) <= now - drop_after,
            ),
        )
        .order_by(col(Conversation.asked_at))
        .limit(limit)
    )
    if _pg(s):
        stmt = stmt.with_for_update(skip_locked=True)
    return list((await s.exec(stmt)).all())


# ---------------------------------------------------------------- digests


async def open_reports(s: AsyncSession, team_id: int) -> list[Report]:
    stmt = select(Report).where(Report.team_id == team_id, Report.status != "closed").order_by(Report.id)
    return list((await s.exec(stmt)).all())


async def count_created(s: AsyncSession, team_id: int, since: datetime, until: datetime) -> int:
    stmt = select(sa.func.count()).select_from(Report).where(
        Report.team_id == team_id, col(Report.created_at) >= since, col(Report.created_at) < until
    )
    return (await s.exec(stmt)).one()


async def count_closed(s: AsyncSession, team_id: int, since: datetime, until: datetime) -> int:
    stmt = select(sa.func.count()).select_from(Report).where(
        Report.team_id == team_id, col(Report.closed_at) >= since, col(Report.closed_at) < until
    )
    return (await s.exec(stmt)).one()


# ---------------------------------------------------------------- retention


async def photos_to_purge(s: AsyncSession, cutoff: datetime, limit: int) -> list[Report]:
    """Closed before `cutoff`, photos not yet purged (partial index ix_reports_photos_kept)."""
    stmt = (
        select(Report)
        .where(col(Report.closed_at) <= cutoff, col(Report.photos_purged_at).is_(None), Report.status == "closed")
        .order_by(col(Report.closed_at))
        .limit(limit)
    )
    return list((await s.exec(stmt)).all())


async def identities_to_detach(s: AsyncSession, cutoff: datetime, limit: int) -> list[Report]:
    stmt = (
        select(Report)
        .where(col(Report.closed_at) <= cutoff, col(Report.identity_purged_at).is_(None), Report.status == "closed")
        .order_by(col(Report.closed_at))
        .limit(limit)
    )
    return list((await s.exec(stmt)).all())


async def photo_keys_kept(s: AsyncSession, except_ids: Sequence[int]) -> set[str]:
    """Photo keys still referenced by reports that keep their photos (the store is content-addressed:
    one file may serve two reports)."""
    stmt = select(Report.id, Report.photos, Report.voice).where(col(Report.photos_purged_at).is_(None))
    skip = set(except_ids)
    keys: set[str] = set()
    for rid, photos, voice in (await s.exec(stmt)).all():
        if rid not in skip:
            keys.update(media_keys(photos, voice))
    return keys


def media_keys(photos, voice) -> list[str]:
    """The stored files of a report: its photos and its voice note."""
    return [*(photos or ()), *([voice] if voice else [])]


async def purge_photos(s: AsyncSession, report_ids: Sequence[int], now: datetime) -> None:
    if report_ids:
        await s.exec(sa.update(Report).where(col(Report.id).in_(list(report_ids))).values(photos=[], voice=None, photos_purged_at=now))


async def detach_identity(s: AsyncSession, reports: Sequence[Report], now: datetime) -> None:
    """Reporter columns to NULL, the submit event's actor too, and delivered messages to them."""
    ids = [r.id for r in reports]
    if not ids:
        return
    for r in reports:
        if r.reporter_platform and r.reporter_chat:
            await s.exec(
                sa.delete(OutboxMessage).where(
                    OutboxMessage.report_id == r.id, OutboxMessage.platform == r.reporter_platform,
                    OutboxMessage.chat_id == r.reporter_chat, OutboxMessage.status != "pending",
                )
            )
    await s.exec(
        sa.update(Report).where(col(Report.id).in_(ids)).values(
            reporter_platform=None, reporter_chat=None, reporter_user=None, identity_purged_at=now
        )
    )
    await s.exec(
        sa.update(ReportEvent)
        .where(col(ReportEvent.report_id).in_(ids), col(ReportEvent.action).in_(("submit", "still_there")))
        .values(actor=None, actor_name=None)
    )


async def media_in_use(s: AsyncSession) -> set[str]:
    """Every stored file something still needs: a report that keeps its photos, or a draft in a
    conversation (its photos and voice note)."""
    from storage.models import Conversation

    keys = await photo_keys_kept(s, [])
    stmt = select(Conversation.state).where(col(Conversation.state).is_not(None))
    for state in (await s.exec(stmt)).all():
        draft = (state or {}).get("draft") or {}
        keys.update(media_keys(draft.get("photos"), draft.get("voice")))
    return keys
