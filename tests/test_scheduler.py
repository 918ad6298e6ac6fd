"""The scheduler driven by a manual clock through the sandbox, on SQLite and PostgreSQL: the chain
up to the director, a Friday evening before a holiday, acknowledgement, a restart, three worker
processes at once, the reporter's follow-up, drafts, digests and retention."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.retention import retention
from bot.scheduler import build_scheduler, sweep
from storage import repo
from storage.db import Database
from storage.models import ChatBinding, OutboxMessage, ReminderSent, Report, ReportEvent, Team
from tests.chat import Chat, ref_in
from tests.conftest import jpeg
from tests.test_e2e_sandbox import PATTAYA, full_report

BKK = ZoneInfo("Asia/Bangkok")
ROOT = Path(__file__).resolve().parent.parent


def bkk(y, mo, d, h=0, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BKK).astimezone(timezone.utc)


async def bind(sandbox, team: str, role: str, chat: str) -> Chat:
    code = await sandbox.services.engine.create_invite(team, role=role)
    c = Chat(sandbox, chat, "boss", group=True, name="Boss")
    assert "ผูก" in await c.send(f"/bind {code}") or True
    return c


def texts(msgs) -> list[str]:
    return [m["text"] for m in msgs]


async def new_texts(chat: Chat) -> list[str]:
    """Messages the chat got since the last call (cards excluded)."""
    msgs = [m for m in await chat.messages() if m["id"] > chat.seen]
    if msgs:
        chat.seen = max(m["id"] for m in msgs)
    return [m["text"] for m in msgs if not m.get("card")]


async def run(sandbox, digests: bool = False, **advance) -> int:
    """One sweep at the manual clock's time (after moving it); digests only where a test wants them."""
    # Delivery first: recording a card takes a key-share lock on its report (card_messages' foreign
    # key), and a sweep's claim skips a locked report until its next round.
    await sandbox.settle()
    if advance:
        sandbox.clock.advance(**advance)
    n = await sweep(sandbox.services, sandbox.clock(), digests=digests)
    await sandbox.settle()
    return n


async def test_urgent_report_ignored_until_it_reaches_the_director(sandbox):
    team = sandbox.team("pattaya-city")
    sup = await bind(sandbox, "pattaya-city", "supervisors", "sup-pattaya")
    boss = await bind(sandbox, "pattaya-city", "director", "dir-pattaya")
    v = sandbox.volunteer("u1")
    ref = await full_report(v, urgency="injury")
    await new_texts(team), await new_texts(v)
    assert await run(sandbox) == 0  # planned, nothing due yet
    assert await run(sandbox, minutes=14) == 0

    assert await run(sandbox, minutes=1) == 1  # 15 min: the team's group
    (msg,) = await new_texts(team)
    assert ref in msg and "เตือน" in msg and "ยังไม่มีผู้รับเรื่อง" in msg and "15 นาที" in msg
    reminder = [m for m in await team.messages() if ref in m["text"] and not m.get("card")][-1]
    assert [b["data"].split(":")[-1] for row in reminder["buttons"] for b in row] == ["ack", "onsite", "close", "transfer"]
    assert await run(sandbox) == 0  # the same instant again: nothing twice

    assert await run(sandbox, minutes=5) == 1  # 20 min: the reporter is asked (urgent: any hour)
    assert "ยังอยู่ที่เดิม" in (await new_texts(v))[0]

    assert await run(sandbox, minutes=10) == 1  # 30 min: the supervisors
    (msg,) = await new_texts(sup)
    assert "หัวหน้างาน" in msg and ref in msg and "เกินกำหนด 15 นาที" in msg
    assert await new_texts(team) == []

    assert await run(sandbox, minutes=30) == 1  # 60 min: the director
    (msg,) = await new_texts(boss)
    assert "ผู้อำนวยการ" in msg and "เกินกำหนด 45 นาที" in msg and "แจ้งมาแล้ว 1 ชม. 0 นาที" in msg
    assert await run(sandbox, minutes=30) == 0  # nothing more until on-site's chain (2 h)
    assert await run(sandbox, minutes=30) == 1  # 2 h: nobody on site → the team
    assert "ยังไม่ได้ลงพื้นที่" in (await new_texts(team))[0]


async def test_normal_report_on_a_friday_evening_before_a_public_holiday(sandbox):
    sandbox.clock.now = bkk(2026, 12, 4, 18, 0)  # Friday; Sat 5 Dec holiday, Mon 7 Dec in lieu
    team = sandbox.team("pattaya-city")
    v = sandbox.volunteer("fri")
    ref = await full_report(v)
    await new_texts(team), await new_texts(v)
    assert await run(sandbox) == 0
    assert await run(sandbox, hours=2) == 1  # 20:00: the reporter's follow-up (before quiet hours)
    assert ref in (await new_texts(v))[0]
    for _ in range(8):  # the long weekend: nothing for the team
        assert await run(sandbox, hours=8) == 0
    sandbox.clock.now = bkk(2026, 12, 8, 12, 29)
    assert await run(sandbox) == 0
    sandbox.clock.now = bkk(2026, 12, 8, 12, 30)  # Tuesday: 4 working hours after 08:30
    assert await run(sandbox) == 1
    (msg,) = await new_texts(team)
    assert ref in msg and "ยังไม่มีผู้รับเรื่อง" in msg
    assert await new_texts(v) == []


async def test_acknowledgement_stops_the_chain(sandbox):
    team = sandbox.team("pattaya-city")
    v = sandbox.volunteer("ack")
    ref = await full_report(v, urgency="danger")
    await run(sandbox, minutes=10)
    await team.tap("รับเรื่อง")
    await new_texts(team), await new_texts(v)
    for _ in range(6):
        await run(sandbox, minutes=10)  # 70 min: no ack reminder, no escalation, no question
    assert not [t for t in await new_texts(team) if "ยังไม่มีผู้รับเรื่อง" in t]
    assert not [t for t in await new_texts(v) if "ยังอยู่ที่เดิม" in t]
    async with sandbox.services.db.session() as s:
        report = await repo.report_by_ref(s, ref)
        kinds = {(r.kind, r.step) for r in (await s.exec(ReminderSent.__table__.select().where(ReminderSent.report_id == report.id))).all()}
    assert not any(k == "ack" for k, _ in kinds)


async def test_restart_in_the_middle_repeats_nothing(sandbox, db_url, monkeypatch):
    team = sandbox.team("pattaya-city")
    ref = await full_report(sandbox.volunteer("rs"), urgency="injury")
    await new_texts(team)
    assert await run(sandbox, minutes=15) == 1

    # a crash half-way: the outbox write fails after the ledger row → the transaction rolls back
    import bot.scheduler as sched

    real = sched.repo.outbox_add_many
    calls = {"n": 0}

    async def crash(*a, **kw):
        calls["n"] += 1
        raise RuntimeError("power cut")

    monkeypatch.setattr(sched.repo, "outbox_add_many", crash)
    sandbox.clock.advance(minutes=15)
    assert await sweep(sandbox.services, sandbox.clock(), digests=False) == 0 and calls["n"] == 1
    monkeypatch.setattr(sched.repo, "outbox_add_many", real)

    # a new process on the same database: the lease of the crashed claim lapses, it sends once
    other = Database(db_url)
    try:
        assert await sweep(other, sandbox.clock(), digests=False) == 0  # still leased by the crashed sweep
        later = sandbox.clock.advance(minutes=3)
        assert await sweep(other, later, digests=False) == 2  # the escalation and the reporter's question
        assert await sweep(other, later, digests=False) == 0
        assert await sweep(sandbox.services, later, digests=False) == 0  # the old replica: nothing again
    finally:
        await other.dispose()
    await sandbox.settle()
    escalations = [t for t in texts(await sandbox.team("pattaya-city").messages()) if ref in t and "เกินกำหนด" in t]
    assert len(escalations) == 2  # 15 min reminder + 30 min escalation (to the team: no supervisors chat)
    asked = [t for t in texts(await sandbox.volunteer("rs").messages()) if "ยังอยู่ที่เดิม" in t]
    assert len(asked) == 1


WORKER = """
import asyncio, sys
from datetime import datetime
sys.path.insert(0, sys.argv[3])
from storage.db import Database
from bot.scheduler import sweep

async def main():
    db = Database(sys.argv[1])
    now = datetime.fromisoformat(sys.argv[2])
    n = 0
    for _ in range(4):
        n += await sweep(db, now, batch=3)
    await db.dispose()
    print(n)

asyncio.run(main())
"""


async def _workers(url: str, now: datetime, k: int = 3) -> list[int]:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", WORKER, url, now.isoformat(), str(ROOT),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=str(ROOT),
            env={**os.environ, "NAMJAI_LOG_LEVEL": "WARNING"},
        )
        for _ in range(k)
    ]
    outs = []
    for p in procs:
        out, err = await p.communicate()
        assert p.returncode == 0, err.decode()[-2000:]
        outs.append(int(out.decode().split()[-1]))
    return outs


@pytest.mark.postgres
async def test_three_worker_processes_send_each_reminder_once(pg_db):
    """Several processes need PostgreSQL (on SQLite one process sweeps)."""
    db, db_url = pg_db, pg_db.url
    t0 = bkk(2026, 11, 25, 9, 0)
    async with db.transaction() as s:
        team = Team(code="t1", name_th="ทีม", name_en="Team", kind="provincial_centre", provinces=["20"])
        s.add(team)
        await s.flush()
        for role in ("team", "supervisors", "director"):
            s.add(ChatBinding(platform="sandbox", chat_id=f"{role}-chat", team_id=team.id, role=role, lang="en", created_at=t0))
        for i in range(40):
            r = Report(ref=f"NJ-2569-{i:06d}", team_id=team.id, status="new", urgent=True, urgency="injury",
                       created_at=t0, updated_at=t0, next_due_at=t0)
            s.add(r)
            await s.flush()
            s.add(ReportEvent(report_id=r.id, at=t0, action="submit", to_status="new"))
    # 61 minutes later, after downtime: all three steps fell due; each report gets one message
    first = await _workers(db_url, t0 + timedelta(minutes=61))
    # 2 h: the on-site chain's first step, once more each
    second = await _workers(db_url, t0 + timedelta(hours=2, minutes=1))
    # + Wednesday's digest to the team and this week's summary to the supervisors, once each
    assert sum(first) == 40 + 2 and sum(second) == 40, (first, second)
    async with db.session() as s:
        rows = (await s.exec(OutboxMessage.__table__.select())).all()
        ledger = (await s.exec(ReminderSent.__table__.select().where(ReminderSent.report_id > 0))).all()
    per = {}
    for row in rows:
        per.setdefault(row.report_id, []).append(row.chat_id)
    assert sorted(per.pop(None)) == ["supervisors-chat", "team-chat"]
    assert len(per) == 40 and all(sorted(c) == ["director-chat", "team-chat"] for c in per.values())
    assert sum(1 for r in ledger if not r.coalesced) == 80 and sum(1 for r in ledger if r.coalesced) == 2 * 40 + 0


@pytest.mark.postgres
async def test_two_sweepers_at_once_take_disjoint_batches_and_send_each_once(pg_db, monkeypatch):
    """Each sweeper claims a batch and handles it in the same transaction: while the first holds
    its batch, the second skips those rows and takes the others; nothing is sent twice."""
    import bot.scheduler as sched

    db = pg_db
    t0 = bkk(2026, 11, 25, 9, 0)
    async with db.transaction() as s:
        team = Team(code="t2", name_th="ทีม", name_en="Team", kind="provincial_centre", provinces=["20"])
        s.add(team)
        await s.flush()
        s.add(ChatBinding(platform="sandbox", chat_id="team-chat", team_id=team.id, role="team", lang="en", created_at=t0))
        for i in range(20):
            r = Report(ref=f"NJ-2569-{i:06d}", team_id=team.id, status="new", urgent=True, urgency="injury",
                       created_at=t0, updated_at=t0, next_due_at=t0)
            s.add(r)
            await s.flush()
            s.add(ReportEvent(report_id=r.id, at=t0, action="submit", to_status="new"))

    real = sched.sched_repo.clock_history
    batches: list[list[int]] = []
    both = asyncio.Event()

    async def held(s, ids):  # called inside the batch's transaction, after its claim
        batches.append(list(ids))
        if len(batches) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), 20)  # the first batch stays locked until the second is claimed
        return await real(s, ids)

    monkeypatch.setattr(sched.sched_repo, "clock_history", held)
    other = Database(db.url)
    now = t0 + timedelta(minutes=16)
    try:
        sent = await asyncio.gather(sweep(db, now, batch=10, digests=False), sweep(other, now, batch=10, digests=False))
    finally:
        await other.dispose()
    assert len(batches[0]) == len(batches[1]) == 10 and not set(batches[0]) & set(batches[1])
    assert sent[0] == sent[1] == 10
    async with db.session() as s:
        rows = (await s.exec(OutboxMessage.__table__.select())).all()
        ledger = (await s.exec(ReminderSent.__table__.select().where(ReminderSent.report_id > 0))).all()
    assert sorted(r.report_id for r in rows) == sorted(set(r.report_id for r in rows)) and len(rows) == 20
    assert len(ledger) == 20 and len({(r.report_id, r.kind, r.step) for r in ledger}) == 20
    assert await sweep(db, now, batch=10, digests=False) == 0


async def test_reporter_follow_up_answer_is_stored_and_on_the_card(sandbox):
    team = sandbox.team("pattaya-city")
    v = sandbox.volunteer("fu")
    ref = await full_report(v)
    await new_texts(v)
    assert await run(sandbox, minutes=119) == 0
    assert await run(sandbox, minutes=1) == 1
    (q,) = await new_texts(v)
    assert ref in q and "ยังอยู่ที่เดิม" in q
    answer = await v.tap("ยังอยู่")
    assert "ขอบคุณ" in answer and ref in answer
    card = await team.card(ref)
    assert "ผู้แจ้งยืนยันว่าบุคคลยังอยู่ที่เดิม" in card["text"]
    async with sandbox.services.db.session() as s:
        report = await repo.report_by_ref(s, ref)
    assert report.still_there is True
    # someone else's button for this report is refused
    other = sandbox.volunteer("mallory")
    assert "ใช้ไม่ได้" in await other.choose(f"still:{report.id}:no")
    assert await run(sandbox, hours=1) == 0  # asked once


async def test_no_message_to_a_volunteer_at_night(sandbox):
    sandbox.clock.now = bkk(2026, 11, 25, 20, 0)
    v = sandbox.volunteer("night")
    ref = await full_report(v)
    await new_texts(v)
    for _ in range(10):
        await run(sandbox, hours=1)  # 22:00 … 06:00
        assert await new_texts(v) == []
    sandbox.clock.now = bkk(2026, 11, 26, 7, 0)
    await run(sandbox)
    assert any(ref in t for t in await new_texts(v))


async def test_abandoned_draft_nudged_once_then_dropped(sandbox):
    v = sandbox.volunteer("draft")
    await v.send("สวัสดี")
    await v.choose("consent:yes")
    await v.photo(jpeg())
    await new_texts(v)
    assert await run(sandbox, minutes=29) == 0
    assert await run(sandbox, minutes=1) == 1
    (nudge,) = await new_texts(v)
    assert "ยังแจ้งเรื่องไม่เสร็จ" in nudge
    assert await run(sandbox, minutes=30) == 0
    assert await run(sandbox, hours=24) == 1
    (dropped,) = await new_texts(v)
    assert "ระบบยกเลิก" in dropped
    async with sandbox.services.db.session() as s:
        conv = await repo.conversation_get(s, "sandbox", v.chat, v.user)
    assert conv.step == "idle" and conv.state["draft"] is None
    assert "น้ำใจ" in await v.command("start")


async def test_daily_digest_at_0830_on_working_days_and_weekly_summary(sandbox):
    sandbox.clock.now = bkk(2026, 11, 24, 10, 0)  # Tuesday
    team = sandbox.team("pattaya-city")
    sup = await bind(sandbox, "pattaya-city", "supervisors", "sup-pattaya")
    old = await full_report(sandbox.volunteer("d1"))
    sandbox.clock.now = bkk(2026, 11, 24, 15, 0)
    await full_report(sandbox.volunteer("d2"))
    await new_texts(team), await new_texts(sup)
    sandbox.clock.now = bkk(2026, 11, 25, 8, 29)
    await run(sandbox, digests=True)
    assert not [t for t in await new_texts(team) if "สรุปประจำวัน" in t]
    sandbox.clock.now = bkk(2026, 11, 25, 8, 30)
    await run(sandbox, digests=True)
    digests = [t for t in await new_texts(team) if "สรุปประจำวัน" in t]
    assert len(digests) == 1
    d = digests[0]
    assert "เรื่องใหม่ตั้งแต่สรุปครั้งก่อน: 2" in d and "เรื่องที่ยังเปิดอยู่: 2" in d and old in d and "ยังไม่รับเรื่อง" in d
    await run(sandbox, digests=True, minutes=30)
    assert not [t for t in await new_texts(team) if "สรุปประจำวัน" in t]  # once a day
    for day in (28, 29):  # the weekend: none
        sandbox.clock.now = bkk(2026, 11, day, 8, 45)
        await run(sandbox, digests=True)
        assert not [t for t in await new_texts(team) if "สรุปประจำวัน" in t]
    sandbox.clock.now = bkk(2026, 11, 30, 9, 10)  # Monday: late (a replica was down at 08:30)
    await run(sandbox, digests=True)
    assert len([t for t in await new_texts(team) if "สรุปประจำวัน" in t]) == 1
    weekly = [t for t in await new_texts(sup) if "สรุปประจำสัปดาห์" in t]
    assert [w for w in weekly if "2026-11-23" in w]  # last Monday's, sent late on the first sweep
    weekly = [w for w in weekly if "2026-11-30" in w]
    assert len(weekly) == 1 and "เรื่องใหม่ 2" in weekly[0]
    sandbox.clock.now = bkk(2026, 12, 7, 8, 30)  # a public holiday (Mon, in lieu)
    await run(sandbox, digests=True)
    assert not [t for t in await new_texts(team) if "สรุปประจำวัน" in t]


async def test_retention_deletes_photo_files_and_keeps_counts(sandbox, capsys):
    svc = sandbox.services
    team = sandbox.team("pattaya-city")
    v = sandbox.volunteer("pdpa")
    ref = await full_report(v, photo=True)
    card = await team.card(ref)
    rid = card["card"]["report_id"]
    await team.choose(f"r:{rid}:close:helped_on_site")
    async with svc.db.session() as s:
        key = (await repo.report_get(s, rid)).photos[0]
    path = svc.photos.path_for(key)
    assert path.is_file()

    later = sandbox.clock() + timedelta(days=91)
    dry = await retention(svc.db, svc.photos, later, dry_run=True)
    assert dry.photo_reports == [ref] and dry.photo_files == 1 and dry.identity_reports == [] and path.is_file()
    done = await retention(svc.db, svc.photos, later)
    assert done.photo_reports == [ref] and not path.is_file()
    assert (await retention(svc.db, svc.photos, later)).photo_reports == []  # once

    await retention(svc.db, svc.photos, sandbox.clock() + timedelta(days=366))
    async with svc.db.session() as s:
        r = await repo.report_get(s, rid)
        hist = await repo.history(s, rid)
        n_closed = len([x for x in (await s.exec(Report.__table__.select().where(Report.status == "closed"))).all()])
    assert r.photos == [] and r.reporter_user is None and r.reporter_chat is None and r.reporter_platform is None
    assert r.status == "closed" and r.outcome == "helped_on_site" and n_closed == 1
    assert hist[0].action == "submit" and hist[0].actor is None
    assert [e.action for e in hist][-2:] == ["photos_purged", "identity_purged"]


def test_retention_command_dry_run(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from bot.cli import app

    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"

    async def prepare():
        from storage.migrate import upgrade

        db = Database(url)
        await upgrade(db)
        t0 = bkk(2026, 1, 5, 9, 0)
        async with db.transaction() as s:
            team = Team(code="t", name_th="ท", name_en="T", kind="provincial_centre")
            s.add(team)
            await s.flush()
            s.add(Report(ref="NJ-2569-000001", team_id=team.id, status="closed", outcome="family", photos=["a" * 64 + ".jpg"],
                         reporter_platform="line", reporter_chat="U1", reporter_user="U1", created_at=t0, updated_at=t0, closed_at=t0))
        await db.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("NAMJAI_DATABASE_URL", url)
    monkeypatch.setenv("NAMJAI_PHOTO_DIR", str(tmp_path / "photos"))
    res = CliRunner().invoke(app, ["retention", "--dry-run", "--now", "2027-03-01T09:00+07:00"])
    assert res.exit_code == 0, res.output
    assert "would delete 1 files of 1 reports" in res.output and "NJ-2569-000001" in res.output
    assert "would detach 1 reports" in res.output


async def test_the_app_runs_its_own_scheduler(sandbox):
    sched = build_scheduler(sandbox.services, sandbox.services.settings)
    assert sorted(j.id for j in sched.get_jobs()) == ["digest", "retention", "sweep", "weekly"]
    digest = next(j for j in sched.get_jobs() if j.id == "digest")
    fire = digest.trigger.get_next_fire_time(None, datetime(2026, 11, 27, 10, 0, tzinfo=BKK))  # Friday
    assert fire == datetime(2026, 11, 30, 8, 30, tzinfo=BKK)


async def test_a_reminder_refreshes_the_cards_waiting_time(sandbox):
    from bot import i18n
    from flows.deadlines import duration_msg

    team = sandbox.team("pattaya-city")
    start = sandbox.clock()
    ref = await full_report(sandbox.volunteer("waits"))
    before = (await team.card(ref))["text"]
    await new_texts(team)
    reminded = []
    for _ in range(48):  # half-hour sweeps until the team is reminded (the policy's first deadline)
        await run(sandbox, minutes=30)
        reminded = await new_texts(team)
        if reminded:
            break
    assert reminded and ref in reminded[0], "the team was not reminded within a day"
    waited = i18n.text(duration_msg(sandbox.clock() - start), "th")
    after = (await team.card(ref))["text"]
    assert f"⏳ รอมาแล้ว {waited}" in after and after != before


async def _due_reports(db, t0: datetime, n: int, tag: str, team_id: int | None = None) -> int:
    """n urgent reports submitted at t0, nothing sent yet; the team (made once) has three chats."""
    async with db.transaction() as s:
        if team_id is None:
            team = Team(code="tb", name_th="ทีม", name_en="Team", kind="provincial_centre", provinces=["20"])
            s.add(team)
            await s.flush()
            team_id = team.id
            for role in ("team", "supervisors", "director"):
                s.add(ChatBinding(platform="sandbox", chat_id=f"{role}-chat", team_id=team_id, role=role, lang="th", created_at=t0))
        for i in range(n):
            r = Report(ref=f"NJ-{tag}-{i:04d}", team_id=team_id, status="new", urgent=True, urgency="injury",
                       created_at=t0, updated_at=t0, next_due_at=t0)
            s.add(r)
            await s.flush()
            s.add(ReportEvent(report_id=r.id, at=t0, action="submit", to_status="new"))
    return team_id


async def test_a_batch_costs_the_same_statements_whatever_its_size(db):
    """The sweep handles a batch in set-based statements: 40 due reports take as many statements
    as 4; each queued its escalation once, its ledger rows and its next due time written."""
    from sqlalchemy import event

    t0 = bkk(2026, 11, 25, 9, 0)
    counted: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        counted.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    per_sweep = []
    team_id = None
    for tag, n in (("a", 4), ("b", 40)):
        team_id = await _due_reports(db, t0, n, tag, team_id)
        counted.clear()
        now = t0 + timedelta(minutes=61)
        assert await sweep(db, now, batch=200, digests=False) == n
        per_sweep.append(len(counted))
        async with db.session() as s:
            reports = (await s.exec(Report.__table__.select().where(Report.ref.like(f"NJ-{tag}-%")))).all()
            ids = {r.id for r in reports}
            rows = [r for r in (await s.exec(OutboxMessage.__table__.select())).all() if r.report_id in ids]
            ledger = [r for r in (await s.exec(ReminderSent.__table__.select())).all() if r.report_id in ids]
        assert all(r.next_due_at > now and r.sched_claimed_until is None for r in reports)
        assert sorted(r.report_id for r in rows) == sorted(ids)  # one message each: the director's chat
        assert {r.chat_id for r in rows} == {"director-chat"} and all(r.status == "pending" and r.attempts == 0 for r in rows)
        assert [r.report_id for r in sorted(rows, key=lambda r: r.id)] == sorted(ids)  # queued in claim order
        assert all("NJ-" in r.payload["text"] and r.payload["buttons"] for r in rows)
        assert len(ledger) == 3 * n and sum(1 for r in ledger if not r.coalesced) == n
        assert await sweep(db, now, batch=200, digests=False) == 0
    assert per_sweep[0] == per_sweep[1], per_sweep


async def test_a_sweeps_cards_are_those_the_report_view_renders(db):
    """`Reports.refresh_cards` reads a batch's card details in a few queries: the cards it queues
    are the ones `view` + `post_cards` queue for each report (comments, who accepted, a relayed
    report, repeat sightings, each chat's language)."""
    from dataclasses import replace

    from bot.reports import Reports
    from storage.boundaries import Boundaries

    t0 = bkk(2026, 11, 25, 9, 0)
    now = t0 + timedelta(minutes=61)
    async with db.transaction() as s:
        origin = Team(code="origin", name_th="ต้นทาง", name_en="Origin", kind="municipality", provinces=["20"])
        team = Team(code="tc", name_th="ทีม", name_en="Team", kind="provincial_centre", provinces=["20"])
        s.add_all([origin, team])
        await s.flush()
        s.add(ChatBinding(platform="sandbox", chat_id="g-th", team_id=team.id, role="team", lang="th", created_at=t0))
        s.add(ChatBinding(platform="sandbox", chat_id="g-en", team_id=team.id, role="team", lang="en", created_at=t0))
        first = Report(ref="NJ-C-0", team_id=team.id, status="new", created_at=t0, updated_at=t0, next_due_at=t0)
        s.add(first)
        await s.flush()
        s.add(ReportEvent(report_id=first.id, at=t0, action="submit", to_status="new"))
        second = Report(ref="NJ-C-1", team_id=team.id, status="acknowledged", created_at=t0, updated_at=t0, next_due_at=t0,
                        repeat_of=[first.id], note="x")
        s.add(second)
        await s.flush()
        for at, action, detail in (
            (t0, "submit", {"relayed_from": "origin"}), (t0 + timedelta(minutes=5), "ack", None),
            (t0 + timedelta(minutes=6), "comment", {"comment": "first"}), (t0 + timedelta(minutes=7), "comment", {"comment": "last"}),
        ):
            s.add(ReportEvent(report_id=second.id, at=at, action=action, actor="line:u1", actor_name="Som", detail=detail, to_status="acknowledged"))
        ids = [first.id, second.id]
    reports_ = Reports(Boundaries.default(), lambda: now)
    async with db.transaction() as s:
        reports = await repo.reports_get(s, ids)
        assert await reports_.refresh_cards(s, reports, now, {}) == 4
        batch = [(r.report_id, r.chat_id, r.payload, r.card_edit) for r in (await s.exec(OutboxMessage.__table__.select().order_by(OutboxMessage.id))).all()]
        await s.exec(OutboxMessage.__table__.delete())
        for r in reports:
            await reports_.post_cards(s, r, team, replace(await reports_.view(s, r, team), now=now))
        await s.flush()
        single = [(r.report_id, r.chat_id, r.payload, r.card_edit) for r in (await s.exec(OutboxMessage.__table__.select().order_by(OutboxMessage.id))).all()]
    assert batch == single and all(edit for *_, edit in batch)
    text = {chat: p["text"] for rid, chat, p, _ in batch if rid == ids[1]}
    assert "last" in text["g-th"] and "Som" in text["g-en"] and "Origin" in text["g-en"] and "ต้นทาง" in text["g-th"] and "NJ-C-0" in text["g-th"]
