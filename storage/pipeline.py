"""The pipeline's queries: the inbox in conversation order, the outbox in chat order, the platform
limits every replica shares, and the cluster's state. What each promise rests on is here.

- Inbox: the events of one conversation (`conv_key`) are processed oldest first. On PostgreSQL a
  transaction-scoped advisory lock per conversation serialises the replicas; on SQLite the one
  writer (BEGIN IMMEDIATE) does. The head (oldest pending event) is processed before anything
  newer; a head waiting for its retry holds the conversation back.
- Outbox: only the oldest queued row of a chat may be claimed (`NOT EXISTS` an older pending
  one), under a lease and SKIP LOCKED, so a chat has at most one message in flight, in order.
- Limits: a sliding window of marks per bucket, read and written under the bucket's advisory lock
  (PostgreSQL) in one short transaction; a mark is the latest moment its message can reach the
  platform while the send is in flight, then the moment the platform answered (`rate_settle`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import ClusterState, InboxEvent, OutboxMessage, RateMark
from storage.repo import built  # the steps' statements, built once


def _pg(s: AsyncSession) -> bool:
    return s.bind.dialect.name == "postgresql"


def _insert(s: AsyncSession, table):
    return (postgresql.insert if _pg(s) else sqlite.insert)(table)


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


async def advisory_lock(s: AsyncSession, name: str) -> None:
    """Held until the transaction ends (PostgreSQL); SQLite's single writer needs none."""
    if _pg(s):
        stmt = built(("lock",), lambda: sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger))))
        await s.exec(stmt, params={"key": lock_key(name)})


async def try_advisory_lock(s: AsyncSession, name: str) -> bool:
    """The same lock without waiting for it: False when another transaction holds it (PostgreSQL);
    SQLite's single writer: always True."""
    if _pg(s):
        stmt = built(("try_lock",), lambda: sa.select(sa.func.pg_try_advisory_xact_lock(sa.bindparam("key", type_=sa.BigInteger))))
        return bool((await s.exec(stmt, params={"key": lock_key(name)})).one()[0])
    return True


# ---------------------------------------------------------------- inbox


async def inbox_insert_many(s: AsyncSession, rows: Sequence[dict], now: datetime) -> dict[tuple[str, str], int]:
    """Stores several events in one statement; returns the ids of those not stored before, keyed
    by (platform, event id). Each row: platform, event_id, conv_key, payload, reply_token, reply_until."""
    table = InboxEvent.__table__
    unique = {(r["platform"], r["event_id"]): r for r in rows}
    values = [
        {"status": "pending", "attempts": 0, "received_at": now, "reply_token": None, "reply_until": None, **r}
        for r in unique.values()
    ]
    stmt = built(("inbox_insert", _pg(s)), lambda: (
        _insert(s, table)
        .on_conflict_do_nothing(index_elements=["platform", "event_id"])
        .returning(table.c.id, table.c.platform, table.c.event_id)
    ))
    # executemany with RETURNING ("insertmanyvalues"): one cached statement whatever the batch's
    # size, sent as few multi-row INSERTs; `.values(list)` would compile a new one per size.
    return {(p, e): i for i, p, e in (await s.exec(stmt, params=values)).all()}


async def inbox_head(s: AsyncSession, conv_key: str, lock: bool = False) -> InboxEvent | None:
    """The oldest pending event of a conversation (the only one that may be processed now)."""
    heads = await inbox_heads(s, conv_key, lock, 1)
    return heads[0] if heads else None


async def inbox_heads(s: AsyncSession, conv_key: str, lock: bool = False, n: int = 2) -> list[InboxEvent]:
    """The `n` oldest pending events of a conversation: the head, and whether another follows it
    (so that a drainer knows without asking again)."""
    lock = lock and _pg(s)

    def build():
        stmt = select(InboxEvent).where(InboxEvent.conv_key == sa.bindparam("conv_key"), InboxEvent.status == "pending")
        stmt = stmt.order_by(InboxEvent.id).limit(n)
        return stmt.with_for_update() if lock else stmt

    return list((await s.exec(built(("inbox_heads", n, lock), build), params={"conv_key": conv_key})).all())


async def inbox_due(s: AsyncSession, conv_key: str, now: datetime) -> bool:
    """Whether a pending event of the conversation may be due now (a plain read, no lock: the
    drainer's cheap look before it takes the conversation's lock again)."""
    stmt = built(("inbox_due",), lambda: select(InboxEvent.id).where(
        InboxEvent.conv_key == sa.bindparam("conv_key"),
        InboxEvent.status == "pending",
        sa.or_(col(InboxEvent.next_attempt_at).is_(None), col(InboxEvent.next_attempt_at) <= sa.bindparam("now", type_=InboxEvent.__table__.c.next_attempt_at.type)),
    ).limit(1))
    return (await s.exec(stmt, params={"conv_key": conv_key, "now": now})).first() is not None


async def inbox_set_payload(s: AsyncSession, inbox_id: int, payload: dict) -> None:
    await s.exec(sa.update(InboxEvent).where(InboxEvent.id == inbox_id, InboxEvent.status == "pending").values(payload=payload))


async def inbox_failed(s: AsyncSession, inbox_id: int, attempts: int, status: str, error: str, retry_at: datetime | None) -> None:
    await s.exec(
        sa.update(InboxEvent)
        .where(InboxEvent.id == inbox_id)
        .values(attempts=attempts, status=status, error=error, processed_at=None, next_attempt_at=retry_at)
    )


async def inbox_done(s: AsyncSession, inbox_id: int, now: datetime) -> None:
    stmt = built(("inbox_done",), lambda: sa.update(InboxEvent).where(InboxEvent.id == sa.bindparam("inbox_id")).values(
        status="done", processed_at=sa.bindparam("now", type_=InboxEvent.__table__.c.processed_at.type)))
    await s.exec(stmt, params={"inbox_id": inbox_id, "now": now})


async def inbox_stalled(s: AsyncSession, now: datetime, older_than: timedelta, limit: int) -> list[str]:
    """Conversations whose oldest pending event is due and waited `older_than` (nobody is on it:
    a crash between the 200 and the work, or a retry that fell due)."""
    head = (
        select(InboxEvent.conv_key, sa.func.min(InboxEvent.id).label("head"))
        .where(InboxEvent.status == "pending")
        .group_by(InboxEvent.conv_key)
        .subquery()
    )
    stmt = (
        select(head.c.conv_key)
        .join(InboxEvent, InboxEvent.id == head.c.head)
        .where(
            InboxEvent.received_at <= now - older_than,
            sa.or_(col(InboxEvent.next_attempt_at).is_(None), col(InboxEvent.next_attempt_at) <= now),
        )
        .order_by(head.c.head)
        .limit(limit)
    )
    return list((await s.exec(stmt)).all())


# ---------------------------------------------------------------- outbox


def _queued(table, now: datetime):
    """A pending row that has joined its chat's queue (a scheduled one joins at `not_before`)."""
    return sa.and_(table.c.status == "pending", sa.or_(table.c.not_before.is_(None), table.c.not_before <= now))


async def outbox_claim_heads(
    s: AsyncSession, platforms: Sequence[str], now: datetime, lease: timedelta, limit: int,
    chat: tuple[str, str] | None = None,
) -> list[OutboxMessage]:
    """Claims, for `lease`, the oldest queued row of each chat that is due and not in flight (at
    most `limit` chats; `chat`: that chat's head only). Later rows of a chat wait for its head."""
    pg, one_chat = _pg(s), chat is not None

    def build():
        o = OutboxMessage.__table__
        p = o.alias("older")
        now_ = sa.bindparam("now")
        older = sa.exists().where(p.c.platform == o.c.platform, p.c.chat_id == o.c.chat_id, p.c.id < o.c.id, _queued(p, now_))
        conds = [
            _queued(o, now_),
            o.c.next_attempt_at <= now_,
            sa.or_(o.c.claimed_until.is_(None), o.c.claimed_until < now_),
            ~older,
        ]
        if one_chat:
            conds += [o.c.platform == sa.bindparam("platform"), o.c.chat_id == sa.bindparam("chat_id")]
        else:
            conds.append(o.c.platform.in_(sa.bindparam("platforms", expanding=True)))
        stmt = select(OutboxMessage).where(*conds).order_by(OutboxMessage.id).limit(sa.bindparam("limit", type_=sa.Integer))
        return stmt.with_for_update(skip_locked=True, of=OutboxMessage) if pg else stmt

    params: dict = {"now": now, "limit": limit}
    if one_chat:
        params["platform"], params["chat_id"] = chat
    else:
        params["platforms"] = list(platforms)
    stmt = built(("outbox_claim_heads", pg, one_chat), build)
    rows = list((await s.exec(stmt, params=params)).all())
    for row in rows:
        row.claimed_until = now + lease
    return rows


async def outbox_reply_followers(s: AsyncSession, head: OutboxMessage, now: datetime, lease: timedelta, limit: int) -> list[OutboxMessage]:
    """The rows right after `head` in its chat that answer the same event with the same reply
    token (LINE sends them in one Reply call), claimed with it."""
    pg = _pg(s)

    def build():
        o = OutboxMessage.__table__
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.platform == sa.bindparam("platform"), OutboxMessage.chat_id == sa.bindparam("chat_id"),
                OutboxMessage.id > sa.bindparam("after_id"), _queued(o, sa.bindparam("now")),
            )
            .order_by(OutboxMessage.id)
            .limit(sa.bindparam("limit", type_=sa.Integer))
        )
        return stmt.with_for_update(skip_locked=True) if pg else stmt

    params = {"platform": head.platform, "chat_id": head.chat_id, "after_id": head.id, "now": now, "limit": limit}
    out = []
    for row in (await s.exec(built(("outbox_reply_followers", pg), build), params=params)).all():
        if row.reply_token is None or row.reply_token != head.reply_token:
            break
        row.claimed_until = now + lease
        out.append(row)
    return out


async def outbox_release(s: AsyncSession, claims: Sequence[tuple[int, datetime]]) -> None:
    """Gives claimed rows back (a worker stopping before it started them), each only if the
    claim is still the one given (id, claimed_until)."""
    o = OutboxMessage.__table__
    for row_id, claim in claims:
        await s.exec(sa.update(o).where(o.c.id == row_id, o.c.claimed_until == claim).values(claimed_until=None))


async def outbox_get_many(s: AsyncSession, ids: Sequence[int]) -> list[OutboxMessage]:
    stmt = built(("outbox_get_many",), lambda: select(OutboxMessage).where(col(OutboxMessage.id).in_(sa.bindparam("ids", expanding=True))))
    rows = (await s.exec(stmt, params={"ids": list(ids)})).all()
    by_id = {r.id: r for r in rows}
    return [by_id[i] for i in ids if i in by_id]


async def outbox_failed(s: AsyncSession, limit: int = 100) -> list[OutboxMessage]:
    stmt = select(OutboxMessage).where(OutboxMessage.status == "failed").order_by(OutboxMessage.id).limit(limit)
    return list((await s.exec(stmt)).all())


async def outbox_retry(s: AsyncSession, ids: Sequence[int] | None, now: datetime) -> int:
    """Puts failed rows back in their chats' queues (all failed rows when `ids` is None)."""
    stmt = sa.update(OutboxMessage).where(OutboxMessage.status == "failed")
    if ids is not None:
        stmt = stmt.where(col(OutboxMessage.id).in_(list(ids)))
    stmt = stmt.values(status="pending", next_attempt_at=now, claimed_until=None, last_error=None)
    return (await s.exec(stmt)).rowcount or 0


# ---------------------------------------------------------------- shared limits


async def rate_reserve(
    s: AsyncSession, buckets: Sequence[tuple[str, int, float]], clock: Callable[[], datetime], cost: int = 1, hold: float = 0.0,
) -> tuple[float, list[int]]:
    """Takes `cost` places in every bucket (name, limit, window in seconds), or none: (0.0, the
    marks' ids) when taken, else (the seconds until there may be room in all of them, []).

    The promise is the platform's: no more than `limit` messages in any `window` as the platform
    sees them arrive. A message reaches the platform some time after its place is taken, so a mark
    first stands for the latest moment it can arrive (the reservation plus `hold`, the send's time
    limit: a mark in the future) and is moved to when the platform answered by `rate_settle`; a
    mark left in flight by a crash stays at that latest moment. The clock is read once the buckets'
    locks are held, so that a mark is never older than the marks it was checked against."""
    for name, _, _ in sorted(buckets):
        await advisory_lock(s, "rate:" + name)
    now = clock()
    wait = 0.0
    m = RateMark.__table__
    latest = built(("rate_latest",), lambda: (
        sa.select(m.c.at)
        .where(m.c.bucket == sa.bindparam("bucket"), m.c.at > sa.bindparam("since"))
        .order_by(m.c.at.desc())
        .limit(sa.bindparam("n", type_=sa.Integer))
    ))
    for name, limit, window in buckets:
        if cost > limit:
            cost = limit  # an oversized request waits for an empty window, never forever
        params = {"bucket": name, "since": now - timedelta(seconds=window), "n": limit - cost + 1}
        marks = list((await s.exec(latest, params=params)).scalars().all())
        if len(marks) > limit - cost:
            oldest = marks[limit - cost]
            room = (oldest + timedelta(seconds=window) - now).total_seconds()
            if oldest > now:  # a send still in flight: its real time is known soon, look again then
                room = min(room, IN_FLIGHT_RECHECK)
            wait = max(wait, room)
    if wait > 0:
        return max(wait, 0.001), []
    at = now + timedelta(seconds=hold)
    rows = [{"bucket": name, "at": at} for name, _, _ in buckets for _ in range(cost)]
    insert = built(("rate_insert",), lambda: sa.insert(m).returning(m.c.id))
    ids = list((await s.exec(insert, params=rows)).scalars().all())
    return 0.0, ids


IN_FLIGHT_RECHECK = 0.25  # seconds: a bucket full because of sends in flight is looked at again after this


async def rate_settle(s: AsyncSession, ids: Sequence[int], at: datetime) -> None:
    """Moves the marks of a send to when the platform answered it (no earlier than it saw it)."""
    if ids:
        m = RateMark.__table__
        stmt = built(("rate_settle",), lambda: sa.update(m).where(m.c.id.in_(sa.bindparam("ids", expanding=True))).values(at=sa.bindparam("settled_at")))
        await s.exec(stmt, params={"ids": list(ids), "settled_at": at})


async def rate_prune(s: AsyncSession, before: datetime) -> int:
    return (await s.exec(sa.delete(RateMark).where(RateMark.at < before))).rowcount or 0


# ---------------------------------------------------------------- the cluster's state


async def state_set(s: AsyncSession, key: str, value: dict | None, now: datetime) -> None:
    table = ClusterState.__table__
    stmt = _insert(s, table).values(key=key, value=value, updated_at=now)
    stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value, "updated_at": now})
    await s.exec(stmt)


async def state_clear(s: AsyncSession, key: str, now: datetime) -> None:
    """Clears a fact if it is set (one cheap statement when it is not)."""
    await s.exec(
        sa.update(ClusterState).where(ClusterState.key == key, col(ClusterState.value).is_not(None)).values(value=None, updated_at=now)
    )


async def state_all(s: AsyncSession) -> dict[str, dict | None]:
    return {r.key: r.value for r in (await s.exec(select(ClusterState))).all()}


async def outbox_failed_count(s: AsyncSession) -> int:
    return (await s.exec(select(sa.func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "failed"))).one()


# --------------------------------------------------------------------------- PDPA: forgetting


FORGET = "forget_chat"  # an outbox payload's flag: once delivered, the chat's messages go


async def forget_chat(s: AsyncSession, platform: str, chat_id: str, up_to_inbox_id: int | None) -> None:
    """A volunteer declined: their events up to this one keep only their dedupe key and status (no
    payload, no conversation key); what was sent to them goes; what is still to be sent to them is
    flagged so it goes once delivered (`prune_personal`)."""
    conv_key = f"{platform}:{chat_id}"
    stmt = sa.update(InboxEvent).where(InboxEvent.conv_key == conv_key)
    if up_to_inbox_id is not None:
        stmt = stmt.where(InboxEvent.id <= up_to_inbox_id)
    await s.exec(stmt.values(payload={}, conv_key="", reply_token=None, error=None))
    where = (OutboxMessage.platform == platform, OutboxMessage.chat_id == chat_id)
    await s.exec(sa.delete(OutboxMessage).where(*where, OutboxMessage.status != "pending"))
    for row in (await s.exec(select(OutboxMessage).where(*where, OutboxMessage.status == "pending"))).all():
        row.payload = {**(row.payload or {}), FORGET: True}


async def prune_personal(s: AsyncSession, now: datetime, processed_before: datetime, keep_platforms: Sequence[str] = ("sandbox",)) -> dict[str, int]:
    """Inbox rows processed before `processed_before` lose their payload (text, coordinates, names,
    file ids, reply token); delivered outbox rows of real platforms older than that go, and every
    delivered row of a chat whose volunteer declined goes at once."""
    done = await s.exec(
        sa.update(InboxEvent)
        .where(InboxEvent.status != "pending", InboxEvent.processed_at < processed_before, sa.cast(InboxEvent.payload, sa.Text) != "{}")
        .values(payload={}, reply_token=None, error=None)
    )
    old = await s.exec(
        sa.delete(OutboxMessage).where(
            OutboxMessage.status == "sent", OutboxMessage.sent_at < processed_before, col(OutboxMessage.platform).not_in(list(keep_platforms))
        )
    )
    forgotten = 0
    flagged = select(OutboxMessage.platform, OutboxMessage.chat_id).where(
        OutboxMessage.status != "pending", sa.cast(OutboxMessage.payload, sa.Text).like(f'%"{FORGET}"%')
    ).distinct()
    chats = set((await s.exec(flagged)).all())
    for platform, chat_id in chats:
        result = await s.exec(
            sa.delete(OutboxMessage).where(OutboxMessage.platform == platform, OutboxMessage.chat_id == chat_id, OutboxMessage.status != "pending")
        )
        forgotten += result.rowcount or 0
    return {"inbox": done.rowcount or 0, "outbox": old.rowcount or 0, "declined": forgotten}
