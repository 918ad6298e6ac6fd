"""Queries. The only module (with models and migrations) that knows SQL."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import (
    AccessLog,
    CardMessage,
    ChatBinding,
    Conversation,
    Counter,
    Invite,
    Member,
    OutboxMessage,
    Report,
    ReportEvent,
    Team,
)


def _insert(s: AsyncSession, table):
    return (postgresql.insert if s.bind.dialect.name == "postgresql" else sqlite.insert)(table)


# Hot statements built once per dialect (and variant) with bound parameters: building a
# statement and its cache key costs about as much as a round trip to a local database.
_BUILT: dict[tuple, object] = {}


def built(key: tuple, build):
    """The statement `build()` makes, built the first time `key` is asked for."""
    stmt = _BUILT.get(key)
    if stmt is None:
        stmt = _BUILT[key] = build()
    return stmt


def unnest(table: sa.Table, rows: Sequence[dict], names: Sequence[str]):
    """PostgreSQL: the rows as a table, `unnest($1::type[], $2::type[], ...) AS t(name, ...)`, one
    array parameter per column of `names` (typed as `table`'s): a statement of the same text
    whatever the number of rows (prepared once per connection, parsed in no time), where a VALUES
    list would carry rows × columns parameters."""
    arrays = (sa.bindparam(None, [r[n] for r in rows], type_=postgresql.ARRAY(table.c[n].type)) for n in names)
    return sa.func.unnest(*arrays).table_valued(*names).render_derived()


def _locking(stmt, s: AsyncSession, skip_locked: bool = False):
    """FOR UPDATE on PostgreSQL; SQLite serialises writers and ignores it."""
    if s.bind.dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt


# ---------------------------------------------------------------- conversations


async def conversation_lock(s: AsyncSession, platform: str, chat_id: str, user_id: str, now: datetime) -> Conversation:
    """The conversation row, created if new, locked for this transaction (one update at a time)."""
    stmt = built(("conversation_lock", s.bind.dialect.name), lambda: _locking(select(Conversation).where(
        Conversation.platform == sa.bindparam("platform"), Conversation.chat_id == sa.bindparam("chat_id"),
        Conversation.user_id == sa.bindparam("user_id"),
    ), s))
    key = {"platform": platform, "chat_id": chat_id, "user_id": user_id}
    row = (await s.exec(stmt, params=key)).first()
    if row is not None:
        return row
    # a new conversation: the row inserted comes back (and is this transaction's until it ends);
    # a concurrent insert of the same conversation won: read it, locked
    created = (await s.exec(
        _insert(s, Conversation)
        .values(platform=platform, chat_id=chat_id, user_id=user_id, state=None, lang="th", step="idle", updated_at=now)
        .on_conflict_do_nothing(index_elements=["platform", "chat_id", "user_id"])
        .returning(Conversation)
    )).scalars().first()
    return created if created is not None else (await s.exec(stmt, params=key)).one()



async def conversation_get(s: AsyncSession, platform: str, chat_id: str, user_id: str) -> Conversation | None:
    stmt = select(Conversation).where(
        Conversation.platform == platform, Conversation.chat_id == chat_id, Conversation.user_id == user_id
    )
    return (await s.exec(stmt)).first()


# ---------------------------------------------------------------- teams


async def teams_all(s: AsyncSession, active_only: bool = True) -> list[Team]:
    stmt = select(Team).order_by(Team.code)
    if active_only:
        stmt = stmt.where(Team.active == True)  # noqa: E712
    return list((await s.exec(stmt)).all())


async def team_by_code(s: AsyncSession, code: str) -> Team | None:
    return (await s.exec(select(Team).where(Team.code == code))).first()


async def team_get(s: AsyncSession, team_id: int) -> Team | None:
    return await s.get(Team, team_id)


async def team_upsert(s: AsyncSession, **fields) -> tuple[Team, bool]:
    team = await team_by_code(s, fields["code"])
    created = team is None
    if team is None:
        team = Team(**fields)
        s.add(team)
    else:
        for k, v in fields.items():
            setattr(team, k, v)
    await s.flush()
    return team, created


async def bindings_for_team(s: AsyncSession, team_id: int, roles: Sequence[str] = ("team",)) -> list[ChatBinding]:
    stmt = select(ChatBinding).where(ChatBinding.team_id == team_id, col(ChatBinding.role).in_(roles)).order_by(ChatBinding.id)
    return list((await s.exec(stmt)).all())


async def bound_team_ids(s: AsyncSession, roles: Sequence[str] = ("team",)) -> set[int]:
    """The teams that have at least one chat bound in these roles."""
    stmt = select(ChatBinding.team_id).where(col(ChatBinding.role).in_(roles)).distinct()
    return set((await s.exec(stmt)).all())


async def binding_for_chat(s: AsyncSession, platform: str, chat_id: str) -> ChatBinding | None:
    stmt = select(ChatBinding).where(ChatBinding.platform == platform, ChatBinding.chat_id == chat_id)
    return (await s.exec(stmt)).first()


async def bind_chat(s: AsyncSession, platform: str, chat_id: str, team_id: int, role: str, lang: str, now: datetime) -> ChatBinding:
    binding = await binding_for_chat(s, platform, chat_id)
    if binding is None:
        binding = ChatBinding(platform=platform, chat_id=chat_id, team_id=team_id, role=role, lang=lang, created_at=now)
        s.add(binding)
    else:
        binding.team_id, binding.role = team_id, role
    await s.flush()
    return binding


async def member_role(s: AsyncSession, team_id: int, platform: str, user_id: str) -> str | None:
    stmt = select(Member.role).where(Member.team_id == team_id, Member.platform == platform, Member.user_id == user_id)
    return (await s.exec(stmt)).first()


async def is_admin(s: AsyncSession, platform: str, user_id: str) -> bool:
    stmt = select(Member.id).where(Member.platform == platform, Member.user_id == user_id, Member.role == "admin")
    return (await s.exec(stmt)).first() is not None


async def member_set(s: AsyncSession, team_id: int, platform: str, user_id: str, role: str) -> None:
    stmt = select(Member).where(Member.team_id == team_id, Member.platform == platform, Member.user_id == user_id)
    member = (await s.exec(stmt)).first()
    if member is None:
        s.add(Member(team_id=team_id, platform=platform, user_id=user_id, role=role))
    else:
        member.role = role


async def invite_create(s: AsyncSession, code: str, team_id: int, role: str, now: datetime, ttl: timedelta) -> Invite:
    invite = Invite(code=code, team_id=team_id, role=role, created_at=now, expires_at=now + ttl)
    s.add(invite)
    await s.flush()
    return invite


async def invite_use(s: AsyncSession, code: str, used_by: str, now: datetime) -> Invite | None:
    """Marks an unused, unexpired invite used; None when there is no such invite."""
    stmt = _locking(select(Invite).where(Invite.code == code), s)
    invite = (await s.exec(stmt)).first()
    if invite is None or invite.used_at is not None or invite.expires_at <= now:
        return None
    invite.used_at, invite.used_by = now, used_by
    return invite


# ---------------------------------------------------------------- reports


async def next_seq(s: AsyncSession, name: str) -> int:
    """Atomically increments a named counter and returns the new value."""
    table = Counter.__table__
    stmt = (
        _insert(s, table)
        .values(name=name, value=1)
        .on_conflict_do_update(index_elements=["name"], set_={"value": table.c.value + 1})
        .returning(table.c.value)
    )
    return (await s.exec(stmt)).scalar_one()


async def report_get(s: AsyncSession, report_id: int, for_update: bool = False) -> Report | None:
    stmt = select(Report).where(Report.id == report_id)
    if for_update:
        stmt = _locking(stmt, s)
    return (await s.exec(stmt)).first()


async def reports_get(s: AsyncSession, report_ids: Sequence[int]) -> list[Report]:
    """Several reports by id, in id order (one query)."""
    if not report_ids:
        return []
    return list((await s.exec(select(Report).where(col(Report.id).in_(list(report_ids))).order_by(Report.id))).all())


async def report_by_ref(s: AsyncSession, ref: str) -> Report | None:
    return (await s.exec(select(Report).where(Report.ref == ref))).first()


async def reports_near(
    s: AsyncSession, bbox: tuple[float, float, float, float], since: datetime
) -> list[tuple[int, float, float, str]]:
    lat0, lat1, lon0, lon1 = bbox
    stmt = select(Report.id, Report.lat, Report.lon, Report.ref).where(
        col(Report.lat).between(lat0, lat1), col(Report.lon).between(lon0, lon1), Report.created_at >= since
    )
    return [tuple(r) for r in (await s.exec(stmt)).all()]


async def refs_of(s: AsyncSession, ids: Sequence[int]) -> list[str]:
    if not ids:
        return []
    return list((await s.exec(select(Report.ref).where(col(Report.id).in_(ids)).order_by(Report.id))).all())


async def reports_of_reporter(s: AsyncSession, platform: str, user_id: str, limit: int = 10) -> list[Report]:
    stmt = (
        select(Report)
        .where(Report.reporter_platform == platform, Report.reporter_user == user_id)
        .order_by(col(Report.id).desc())
        .limit(limit)
    )
    return list((await s.exec(stmt)).all())


async def history_add(s: AsyncSession, **fields) -> None:
    s.add(ReportEvent(**fields))


async def history(s: AsyncSession, report_id: int) -> list[ReportEvent]:
    stmt = select(ReportEvent).where(ReportEvent.report_id == report_id).order_by(ReportEvent.id)
    return list((await s.exec(stmt)).all())


async def relayed_from(s: AsyncSession, report_id: int) -> str:
    """The team a report was meant for when it went to a team up the chain (it had no chat)."""
    stmt = select(ReportEvent.detail).where(ReportEvent.report_id == report_id, ReportEvent.action == "submit").limit(1)
    detail = (await s.exec(stmt)).first()
    return str((detail or {}).get("relayed_from") or "")


async def last_comment(s: AsyncSession, report_id: int) -> str | None:
    stmt = (
        select(ReportEvent.detail)
        .where(ReportEvent.report_id == report_id, ReportEvent.action == "comment")
        .order_by(col(ReportEvent.id).desc())
        .limit(1)
    )
    detail = (await s.exec(stmt)).first()
    return (detail or {}).get("comment")


HANDLING_ACTIONS = ("ack", "onsite", "close", "reopen", "undo")


async def handling(s: AsyncSession, report_id: int) -> dict:
    """Who accepted the report and when (its first accept or on-site), and who closed it last
    and when (None when reopened since)."""
    stmt = (
        select(ReportEvent.action, ReportEvent.actor, ReportEvent.actor_name, ReportEvent.at)
        .where(ReportEvent.report_id == report_id, col(ReportEvent.action).in_(HANDLING_ACTIONS))
        .order_by(ReportEvent.id)
    )
    out = _handling_start()
    for action, actor, name, at in (await s.exec(stmt)).all():
        _handling_step(out, action, actor, name, at)
    return out


def _handling_start() -> dict:
    return {"accepted_by": None, "accepted_at": None, "closed_by": None, "closed_by_key": None}


def _handling_step(out: dict, action: str, actor, name, at) -> None:
    """One event of `HANDLING_ACTIONS`, in order, folded into `handling`'s answer."""
    if action in ("ack", "onsite") and out["accepted_at"] is None:
        out["accepted_by"], out["accepted_at"] = name or actor, at
    elif action == "close":
        out["closed_by"], out["closed_by_key"] = name or actor, actor
    else:
        out["closed_by"], out["closed_by_key"] = None, None


async def view_details(s: AsyncSession, report_ids: Sequence[int]) -> dict[int, dict]:
    """`last_comment`, `relayed_from` and `handling` of several reports (a sweep's cards) from one
    query of their events: {report id: {"last_comment", "relayed_from", "handling"}}."""
    out = {i: {"last_comment": None, "relayed_from": None, "handling": _handling_start()} for i in report_ids}
    if not report_ids:
        return out
    stmt = (
        select(ReportEvent.report_id, ReportEvent.action, ReportEvent.actor, ReportEvent.actor_name, ReportEvent.at, ReportEvent.detail)
        .where(col(ReportEvent.report_id).in_(list(report_ids)), col(ReportEvent.action).in_(("comment", "submit", *HANDLING_ACTIONS)))
        .order_by(ReportEvent.id)
    )
    for rid, action, actor, name, at, detail in (await s.exec(stmt)).all():
        d = out[rid]
        if action == "comment":
            d["last_comment"] = (detail or {}).get("comment")  # the last one wins
        elif action == "submit":
            if d["relayed_from"] is None:
                d["relayed_from"] = str((detail or {}).get("relayed_from") or "")
        else:
            _handling_step(d["handling"], action, actor, name, at)
    for d in out.values():
        d["relayed_from"] = d["relayed_from"] or ""
    return out


async def refs_by_id(s: AsyncSession, ids: Sequence[int]) -> dict[int, str]:
    """The refs of several reports, by id (`refs_of` for many reports at once)."""
    if not ids:
        return {}
    return dict((await s.exec(select(Report.id, Report.ref).where(col(Report.id).in_(list(ids))))).all())


async def bindings_for_teams(
    s: AsyncSession, team_ids: Sequence[int] | None = None, roles: Sequence[str] = ("team",),
) -> dict[int, list[ChatBinding]]:
    """`bindings_for_team` of several teams (each of `team_ids`, chats or not), or of every team
    that has a chat (`team_ids` None), by team id, in binding order: one query."""
    out: dict[int, list[ChatBinding]] = {i: [] for i in team_ids or ()}
    stmt = select(ChatBinding).where(col(ChatBinding.role).in_(roles)).order_by(ChatBinding.id)
    if team_ids is not None:
        if not team_ids:
            return out
        stmt = stmt.where(col(ChatBinding.team_id).in_(list(team_ids)))
    for b in (await s.exec(stmt)).all():
        out.setdefault(b.team_id, []).append(b)
    return out


async def open_reports_of_team(s: AsyncSession, team_id: int, open_statuses: Sequence[str], limit: int = 10) -> tuple[list[Report], int]:
    """A team's open reports, oldest first (at most `limit`), and how many there are in all."""
    where = (Report.team_id == team_id, col(Report.status).in_(list(open_statuses)))
    rows = (await s.exec(select(Report).where(*where).order_by(Report.created_at, Report.id).limit(limit))).all()
    total = (await s.exec(select(sa.func.count()).select_from(Report).where(*where))).one()
    return list(rows), int(total)


async def card_message(s: AsyncSession, report_id: int, platform: str, chat_id: str) -> CardMessage | None:
    stmt = (
        select(CardMessage)
        .where(CardMessage.report_id == report_id, CardMessage.platform == platform, CardMessage.chat_id == chat_id)
        .order_by(col(CardMessage.id).desc())
    )
    return (await s.exec(stmt)).first()


async def report_for_message(s: AsyncSession, platform: str, chat_id: str, message_id: str) -> int | None:
    stmt = select(CardMessage.report_id).where(
        CardMessage.platform == platform, CardMessage.chat_id == chat_id, CardMessage.message_id == message_id
    )
    return (await s.exec(stmt)).first()


async def access_log(s: AsyncSession, actor: str, what: str, report_id: int | None, now: datetime) -> None:
    s.add(AccessLog(at=now, actor=actor, what=what, report_id=report_id))


# ---------------------------------------------------------------- outbox


async def outbox_add(s: AsyncSession, **fields) -> OutboxMessage:
    """A new outbox row as an ORM object (its id once flushed); `outbox_queue` costs less."""
    if s.info.get(_PENDING):  # after the rows queued before it: ids in the order added
        await s.run_sync(write_pending_outbox)
    row = OutboxMessage(status="pending", attempts=0, **fields)
    s.add(row)
    return row


async def outbox_queue(s: AsyncSession, **fields) -> None:
    """A new outbox row (platform, chat_id, payload, next_attempt_at, created_at and any of
    `_OUTBOX_NEW`), written with the transaction's other queued rows in one statement: held in
    the session until its next statement or its commit, whichever comes first
    (`write_pending_outbox`, called by the session's events, storage/db.py), so that every
    statement of the transaction sees it, and the rows keep the order they were queued in (ids
    ascending: a chat's order)."""
    s.info.setdefault(_PENDING, []).append(fields)


_PENDING = "outbox_pending"

# Every column a new outbox row may be given, with its value when not given: the rows of one
# executemany must all name the same columns.
_OUTBOX_NEW = dict(
    report_id=None, card_edit=False, reply_token=None, reply_until=None, reply_ambiguous=False, source_event=None,
    not_before=None, status="pending", attempts=0, claimed_until=None, sent_at=None, message_id=None, last_error=None,
)
_OUTBOX_INSERT = sa.insert(OutboxMessage.__table__)


def _outbox_insert(dialect: str, rows: Sequence[dict]) -> tuple[sa.Executable, list[dict] | None]:
    """The one statement (and its executemany parameters, if any) inserting new outbox rows in
    the order given."""
    given = list(dict.fromkeys(k for r in rows for k in r))
    rows = [{**_OUTBOX_NEW, **r} for r in rows]
    if dialect != "postgresql":
        return _OUTBOX_INSERT, rows
    # PostgreSQL: one array per column given, the others' constants in the statement
    table = OutboxMessage.__table__
    src = unnest(table, rows, given)
    rest = [n for n in _OUTBOX_NEW if n not in given]
    values = sa.select(*src.c, *(sa.literal(_OUTBOX_NEW[n], table.c[n].type) for n in rest))
    return table.insert().from_select([*given, *rest], values), None


async def outbox_add_many(s: AsyncSession, rows: Sequence[dict]) -> int:
    """Several new outbox rows (each as `outbox_add`'s) in one statement, no ORM objects: a
    scheduler batch's messages, inserted in the order given (after any still held by `outbox_queue`)."""
    if not rows:
        return 0
    stmt, params = _outbox_insert(s.bind.dialect.name, rows)
    await s.exec(stmt, params=params)  # the session's events write the held rows first
    return len(rows)


def write_pending_outbox(session) -> None:
    """Writes the outbox rows `outbox_queue` holds in this (sync) session, in one statement; called
    by the session's events before any other statement and before commit (storage/db.py)."""
    rows = session.info.pop(_PENDING, None)
    if rows:
        stmt, params = _outbox_insert(session.get_bind().dialect.name, rows)
        session.execute(stmt, params)


def drop_pending_outbox(session) -> None:
    """A rollback: the rows held were never written."""
    session.info.pop(_PENDING, None)


async def outbox_get(s: AsyncSession, row_id: int, lock: bool = False) -> OutboxMessage | None:
    """A row; `lock`: held (FOR UPDATE on PostgreSQL) until the transaction ends."""
    return await s.get(OutboxMessage, row_id, with_for_update=lock or None)


async def outbox_last_sent(s: AsyncSession, platform: str, chat_id: str, before_id: int) -> OutboxMessage | None:
    """The chat's last delivered message before a row (the one the person sees last)."""
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.platform == platform, OutboxMessage.chat_id == chat_id,
               OutboxMessage.id < before_id, OutboxMessage.status == "sent")
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    )
    return (await s.exec(stmt)).first()


async def outbox_for_chat(s: AsyncSession, platform: str, chat_id: str, after_id: int = 0) -> list[OutboxMessage]:
    stmt = (
        select(OutboxMessage)
        .where(OutboxMessage.platform == platform, OutboxMessage.chat_id == chat_id, OutboxMessage.id > after_id)
        .order_by(OutboxMessage.id)
    )
    return list((await s.exec(stmt)).all())


async def notice_for_event(s: AsyncSession, platform: str, chat_id: str, event_id: str) -> bool:
    """Whether the outbox holds a notice (a refusal) answering this event in this chat."""
    stmt = select(OutboxMessage.id).where(
        OutboxMessage.platform == platform,
        OutboxMessage.chat_id == chat_id,
        OutboxMessage.payload["event"].as_string() == event_id,
    )
    return (await s.exec(stmt)).first() is not None


async def outbox_counts(s: AsyncSession) -> dict[str, int]:
    stmt = select(OutboxMessage.status, sa.func.count()).group_by(OutboxMessage.status)
    return {status: n for status, n in (await s.exec(stmt)).all()}


# --------------------------------------------------------------------------- the sandbox's fence


async def platforms_seen(s: AsyncSession) -> set[str]:
    """Every platform that has a chat, a conversation, an event or a report in this database."""
    from storage.models import InboxEvent

    out: set[str] = set()
    for column in (ChatBinding.platform, Conversation.platform, InboxEvent.platform, OutboxMessage.platform, Report.reporter_platform):
        out |= {p for p in (await s.exec(select(column).distinct())).all() if p}
    return out


async def forget_platform(s: AsyncSession, platform: str) -> tuple[dict[str, int], list[str]]:
    """Removes a platform's chats for good: bindings, members, invites' uses, conversations, inbox and
    outbox rows, cards, and the reports its users made (with their history and ledger rows). Returns
    the counts removed and the photo store keys those reports held (the caller deletes the files)."""
    from storage.models import InboxEvent, ReminderSent

    counts: dict[str, int] = {}
    reports = (await s.exec(select(Report).where(Report.reporter_platform == platform))).all()
    ids = [r.id for r in reports]
    keys = [k for r in reports for k in (r.photos or [])] + [r.voice for r in reports if r.voice]
    if ids:
        for model, column in ((ReportEvent, ReportEvent.report_id), (CardMessage, CardMessage.report_id),
                              (ReminderSent, ReminderSent.report_id), (AccessLog, AccessLog.report_id),
                              (OutboxMessage, OutboxMessage.report_id)):
            await s.exec(sa.delete(model).where(col(column).in_(ids)))
        await s.exec(sa.delete(Report).where(col(Report.id).in_(ids)))
    counts["reports"] = len(ids)
    for name, model in (("bindings", ChatBinding), ("members", Member), ("conversations", Conversation),
                        ("inbox", InboxEvent), ("outbox", OutboxMessage), ("cards", CardMessage)):
        result = await s.exec(sa.delete(model).where(model.platform == platform))
        counts[name] = result.rowcount or 0
    return counts, keys


async def forget_conversation(s: AsyncSession, row: Conversation, conv_key: str) -> None:
    """A volunteer declined: the conversation row goes (the next message shows the notice again)
    and their events and messages are forgotten (`pipeline.forget_chat`)."""
    from storage import pipeline

    event = s.info.get("event")
    await pipeline.forget_chat(s, row.platform, row.chat_id, event.id if event is not None else None)
    await s.delete(row)
