"""Reminders, escalations, the reporter's follow-up, unfinished drafts and digests; it also
triggers retention (bot/retention.py).

Exactly once on any number of replicas:
- due times live in the database (`reports.next_due_at`, indexed): a sweep reads what is due,
  not what is open;
- a sweep claims a batch of due reports and handles it in the same transaction (`FOR UPDATE SKIP
  LOCKED` on PostgreSQL, so replicas take disjoint rows; SQLite has one writer): a few statements
  per batch, not per report; a batch that fails is split, and a report that fails alone is leased
  (`sched_claimed_until`) and tried again later;
- every reminder is first recorded in the ledger `reminders_sent` (UNIQUE report_id, kind, step)
  in the same transaction as its outbox rows: a second replica, a restart or a retry finds the
  key taken and sends nothing;
- after downtime, the steps of a chain that fell due meanwhile collapse into one message.

APScheduler (in-process, memory job store, one per replica) only *triggers*: a short sweep every
`scheduler_sweep_seconds`, the digests at their hour, retention at night. The sweep also sends a
digest that a replica missed while it was down. `sweep(services_or_db, now)` can be called
directly (tests drive time with a manual clock). See docs/scheduler.md.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import structlog
from aiohttp import web

from bot.render import render_reply
from bot.retention import retention
from flows import cards as cardflow
from flows import followup as fu
from flows import report as reportflow
from flows.deadlines import (
    Due,
    Facts,
    Policy,
    chain_fallback,
    daily_slot,
    draft_action,
    due_steps,
    load_policy,
    overdue,
    plan,
    volunteer_send_at,
    weekly_slot,
)
from storage import repo, sched_repo
from storage.db import Database
from storage.models import Report, Team

log = structlog.get_logger("namjai.scheduler")

DEFAULT_LEASE = timedelta(seconds=120)
MAX_ROUNDS = 50  # claim rounds per sweep: a backlog is worked off over several sweeps


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _parts(target: Any) -> tuple[Database, Any, Any]:
    """(db, services or None, settings or None) from Services or a bare Database."""
    if isinstance(target, Database):
        return target, None, None
    return target.db, target, getattr(target, "settings", None)


def _policy(settings) -> Policy:
    return load_policy(getattr(settings, "scheduler_policy_file", None) if settings else None)


# ---------------------------------------------------------------- the sweep


async def sweep(
    target: Any, now: datetime | None = None, *, policy: Policy | None = None, batch: int | None = None,
    lease: timedelta | None = None, digests: bool = True,
) -> int:
    """Sends what fell due by `now` (reminders, escalations, follow-ups, draft nudges, digests);
    returns how many messages it put in the outbox. Safe to run anywhere, any number of times.
    `target`: the app's Services (kicks the outbox) or a bare Database."""
    db, svc, settings = _parts(target)
    if now is None:
        now = svc.clock() if svc is not None else _utcnow()
    policy = policy or _policy(settings)
    batch = batch or (settings.scheduler_batch if settings else 200)
    lease = lease or (timedelta(seconds=settings.scheduler_lease_seconds) if settings else DEFAULT_LEASE)
    cards = svc.engine.reports.refresh_cards if svc is not None else None
    sent = await sweep_reports(db, now, policy, batch=batch, lease=lease, cards=cards)
    try:
        sent += await sweep_drafts(db, now, policy, batch=batch, photos=svc.photos if svc is not None else None)
    except Exception:  # rolled back: tried again at the next sweep
        log.exception("sweep_drafts_failed")
    if digests:
        try:
            sent += await send_digests(db, now, policy)
        except Exception:
            log.exception("digests_failed")
    if sent and svc is not None:
        svc.outbox.kick()
    if sent:
        log.info("sweep", sent=sent, now=now.isoformat())
    return sent


# (session, reports, now, their teams by id): edits the reports' cards so they show how long they
# have waited (`Reports.refresh_cards`: a few statements for the whole batch)
RefreshCards = Callable[[Any, list[Report], datetime, dict[int, Team]], Awaitable[int]]


async def sweep_reports(
    db: Database, now: datetime, policy: Policy, *, batch: int = 200, lease: timedelta = DEFAULT_LEASE, cards: RefreshCards | None = None,
) -> int:
    """Works off the due reports in batches: each batch is claimed and handled in one transaction.
    `cards`: when a reminder goes to the team, the report's cards are edited too (their waiting time)."""
    sent = 0
    for _ in range(MAX_ROUNDS):
        n, claimed = await _batch(db, now, policy, batch, lease, cards=cards)
        sent += n
        if claimed < batch:
            break
    return sent


async def _batch(
    db: Database, now: datetime, policy: Policy, limit: int, lease: timedelta, ids: list[int] | None = None, cards: RefreshCards | None = None,
) -> tuple[int, int]:
    """Claims up to `limit` due reports (`ids`: only those) and handles them in one transaction:
    (messages queued, reports claimed). When the transaction fails, its halves are tried apart, so
    that one bad report holds back only itself: it is leased and tried again after `lease`."""
    claimed: list[int] = []
    try:
        async with db.transaction() as s:
            reports = await sched_repo.claim_batch(s, now, limit, ids)
            claimed = [r.id for r in reports]
            return await _handle(s, reports, now, policy, cards), len(claimed)
    except Exception:
        if not claimed:
            raise
        if len(claimed) == 1:
            log.exception("sweep_report_failed", report_id=claimed[0])
            async with db.transaction() as s:
                await sched_repo.lease(s, claimed, now + lease)
            return 0, 1
        half = len(claimed) // 2
        a = await _batch(db, now, policy, half, lease, claimed[:half], cards)
        b = await _batch(db, now, policy, len(claimed) - half, lease, claimed[half:], cards)
        return a[0] + b[0], len(claimed)


async def _handle(s, reports: list, now: datetime, policy: Policy, cards: RefreshCards | None = None) -> int:
    """Plans every claimed report (rows of `sched_repo.DUE_COLUMNS`), records the ledger rows of
    the batch in one statement, then queues the messages whose ledger key was free (someone
    else's key means already sent): a fixed number of statements per batch, whatever its size."""
    if not reports:
        return 0
    ids = [r.id for r in reports]
    history = await sched_repo.clock_history(s, ids)
    keys = await sched_repo.ledger_keys_many(s, ids)
    plans = {}
    rows = []
    for r in reports:
        facts = Facts(r.id, r.urgent, r.status, r.created_at, tuple(history[r.id]), bool(r.reporter_chat))
        p = plan(due_steps(facts, policy), keys[r.id], now, policy, r.urgent)
        plans[r.id] = p
        for d in p.coalesced:
            rows.append(dict(report_id=r.id, kind=d.kind, step=d.step, due_at=d.due_at, to=d.to, coalesced=True))
        for d in p.send:
            rows.append(dict(report_id=r.id, kind=d.kind, step=d.step, due_at=d.due_at, to=d.to))
    taken = await sched_repo.ledger_add_many(s, rows, now)
    fresh = {r.id: [d for d in plans[r.id].send if (r.id, d.kind, d.step) in taken] for r in reports}
    team_ids = sorted({r.team_id for r in reports if fresh[r.id]})
    teams = await sched_repo.teams_get(s, team_ids)
    chats = await sched_repo.chats_of_teams(s, team_ids)
    out: list[dict] = []
    carded: list[int] = []
    for r in reports:
        if fresh[r.id]:
            out += _messages(r, fresh[r.id], now, policy, teams.get(r.team_id), chats)
            if cards is not None and any(d.to != "reporter" for d in fresh[r.id]):
                carded.append(r.id)
    # the batch's messages in one statement, in the same transaction as their ledger rows
    sent = await repo.outbox_add_many(s, out)
    if carded:  # the cards' "waited N minutes" as the reminders say it (after them in each chat)
        await cards(s, await repo.reports_get(s, carded), now, teams)
    await sched_repo.set_next_due(s, [(r.id, plans[r.id].next_due_at) for r in reports])
    return sent


def _chain_chats(chats: dict, team_id: int, role: str, chain: tuple[str, ...]):
    """The chats that hear a step meant for `role` (`flows.deadlines.chain_fallback`)."""
    heard_by = chain_fallback(role, chain, lambda r: bool(chats.get((team_id, r))))
    return chats[(team_id, heard_by)] if heard_by else []


def _team_name(team: Team | None, lang: str) -> str:
    if team is None:
        return ""
    return team.name_th if lang == "th" else team.name_en


def _brief(r: Report, team: Team | None, lang: str) -> fu.ReportBrief:
    return fu.ReportBrief(r.id, r.ref, r.urgent, r.created_at, _team_name(team, lang), r.still_there, r.still_there_at)


def _messages(r, dues: list[Due], now: datetime, policy: Policy, team: Team | None, chats: dict) -> list[dict]:
    """The outbox rows for `dues` of one report: one per chat, naming everything overdue (no I/O)."""
    buttons = cardflow.card_buttons(cardflow.ReportView(r.id, r.ref, r.status, r.created_at))
    per_chat: dict[tuple[str, str], list] = {}
    out: list[dict] = []
    for d in dues:
        if d.to == "reporter":
            if not r.reporter_chat:
                continue
            at = volunteer_send_at(now, policy, r.urgent)
            payload = render_reply(fu.followup_question(_brief(r, team, r.reporter_lang)), r.reporter_lang)
            # held rows join the chat's queue at `not_before`: they do not hold its other messages
            out.append(dict(platform=r.reporter_platform, chat_id=r.reporter_chat, payload=payload, report_id=r.id,
                            next_attempt_at=at, not_before=at if at > now else None, created_at=now))
            continue
        found = _chain_chats(chats, r.team_id, d.to, policy.chain)
        if not found:
            log.warning("reminder_without_chat", report_id=r.id, team_id=r.team_id, role=d.to)
        for b in found:
            entry = per_chat.setdefault((b.platform, b.chat_id), [b, d.to, []])
            if policy.chain.index(d.to) > policy.chain.index(entry[1]):
                entry[1] = d.to
            entry[2].append(d)
    for b, role, ds in per_chat.values():
        reply = fu.reminder(_brief(r, team, b.lang), ds, role, now, buttons, chat_role=b.role)
        out.append(dict(platform=b.platform, chat_id=b.chat_id, payload=render_reply(reply, b.lang), report_id=r.id,
                        next_attempt_at=now, created_at=now))
    log.info("reminders", report_id=r.id, ref=r.ref, due=[f"{d.kind}:{d.step}:{d.to}" for d in dues], messages=len(out))
    return out


# ---------------------------------------------------------------- drafts


async def sweep_drafts(db: Database, now: datetime, policy: Policy, *, batch: int = 200, photos=None) -> int:
    """Nudges an unfinished report once; drops it after `drop_after` (telling the volunteer), its
    photos and voice note with it (once committed; retention deletes any left behind)."""
    sent = 0
    dropped: set[str] = set()
    async with db.transaction() as s:
        for c in await sched_repo.drafts_due(s, now, policy.draft_nudge, policy.draft_drop, batch):
            conv = reportflow.Conversation.from_dict(c.state)
            urgent = bool(conv.draft and conv.draft.urgent)
            action = draft_action(c.asked_at, c.nudged_at, now, policy, urgent)
            if action is None:
                continue
            has_draft = conv.draft is not None
            key = f"c{c.id}@{c.asked_at.isoformat()}:{action}"
            if action == "nudge":
                c.nudged_at = now
                reply = fu.draft_nudge()
            else:
                new = replace(conv, draft=None, step="idle", asked_at=None)
                dropped.update(reportflow.draft_media(conv))
                c.state, c.step, c.asked_at, c.updated_at = new.to_dict(), "idle", None, now
                reply = fu.draft_dropped()
            if not has_draft:  # a question before any report (the privacy notice): silently
                continue
            if await sched_repo.ledger_add(s, report_id=0, kind="draft", step=key[:80], now=now, to="volunteer"):
                await repo.outbox_queue(s, platform=c.platform, chat_id=c.chat_id, payload=render_reply(reply, c.lang), next_attempt_at=now, created_at=now)
                sent += 1
    if photos is not None and dropped:
        from bot.engine import drop_unused_media

        await drop_unused_media(db, photos, dropped)
    return sent


# ---------------------------------------------------------------- digests


def _previous_digest(day: date, policy: Policy) -> datetime:
    cal = policy.calendar
    d = day - timedelta(days=1)
    for _ in range(60):
        if cal.is_working_day(d):
            break
        d -= timedelta(days=1)
    return datetime.combine(d, policy.daily_at, cal.tz).astimezone(timezone.utc)


async def _open_facts(s, team_id: int) -> list[tuple[Report, Facts]]:
    reports = await sched_repo.open_reports(s, team_id)
    hist = await sched_repo.clock_history(s, [r.id for r in reports])
    return [(r, Facts(r.id, r.urgent, r.status, r.created_at, tuple(hist[r.id]), bool(r.reporter_chat))) for r in reports]


async def send_digests(db: Database, now: datetime, policy: Policy) -> int:
    """The morning digest of each team's group (working days) and Monday's summary to supervisors,
    each once per day/week whatever the number of replicas, sent late after downtime."""
    sent = 0
    day = daily_slot(now, policy)
    if day is not None:
        marker = f"all:{day.isoformat()}"
        async with db.session() as s:
            done = await sched_repo.ledger_has(s, 0, "digest", marker)
        if not done:
            since = _previous_digest(day, policy)
            async with db.transaction() as s:
                for team, chats in await sched_repo.teams_with_role(s, "team"):
                    if not await sched_repo.ledger_add(s, report_id=0, kind="digest", step=f"t{team.id}:{day.isoformat()}", now=now, to="team"):
                        continue
                    facts = await _open_facts(s, team.id)
                    new = await sched_repo.count_created(s, team.id, since, now)
                    if not new and not facts:
                        continue
                    by_age, late = fu.digest_tally([(r.ref, f) for r, f in facts], policy, now)
                    for b in chats:
                        reply = fu.daily_digest(_team_name(team, b.lang), day, new, by_age, late, policy.overdue_list_max)
                        await repo.outbox_queue(s, platform=b.platform, chat_id=b.chat_id, payload=render_reply(reply, b.lang), next_attempt_at=now, created_at=now)
                        sent += 1
                await sched_repo.ledger_add(s, report_id=0, kind="digest", step=marker, now=now)
    week = weekly_slot(now, policy)
    if week is not None:
        marker = f"all:{week.isoformat()}"
        async with db.session() as s:
            done = await sched_repo.ledger_has(s, 0, "weekly", marker)
        if not done:
            until = datetime.combine(week, policy.weekly_at, policy.calendar.tz).astimezone(timezone.utc)
            since = until - timedelta(days=7)
            async with db.transaction() as s:
                for team, chats in await sched_repo.teams_with_role(s, "supervisors"):
                    if not await sched_repo.ledger_add(s, report_id=0, kind="weekly", step=f"t{team.id}:{week.isoformat()}", now=now, to="supervisors"):
                        continue
                    facts = await _open_facts(s, team.id)
                    new = await sched_repo.count_created(s, team.id, since, until)
                    closed = await sched_repo.count_closed(s, team.id, since, until)
                    late = sum(1 for _, f in facts if overdue(f, policy, now))
                    for b in chats:
                        reply = fu.weekly_summary(_team_name(team, b.lang), week, new, closed, len(facts), late)
                        await repo.outbox_queue(s, platform=b.platform, chat_id=b.chat_id, payload=render_reply(reply, b.lang), next_attempt_at=now, created_at=now)
                        sent += 1
                await sched_repo.ledger_add(s, report_id=0, kind="weekly", step=marker, now=now)
    return sent


# ---------------------------------------------------------------- the reporter's answer


async def still_there_answer(engine, s, ev) -> bool:
    """`still:<report_id>:yes|no` from the reporter's private chat (the engine's hook): stored on
    the report, shown on its card, thanked. Only the reporter of that report may answer."""
    a = ev.address
    now = engine.clock()
    parsed = fu.parse_still(ev.data)
    report, lang = await engine.reports.reporter_answering(s, ev, parsed[0] if parsed else None, engine.default_lang)
    if report is None:
        return True
    yes = parsed[1]
    open_ = report.status != "closed"
    if open_:
        report.still_there, report.still_there_at = yes, now
        await repo.history_add(
            s, report_id=report.id, at=now, actor=a.user_key, actor_name=ev.user_name, action="still_there",
            from_status=report.status, to_status=report.status, detail={"still_there": yes},
        )
        team = await repo.team_get(s, report.team_id)
        view = await engine.reports.view(s, report, team)
        await engine.reports.post_cards(s, report, team, view)
    await engine.reports.send(s, a.platform, a.chat_id, fu.still_answered(report.ref, yes, open_), lang, report_id=report.id)
    return True


# ---------------------------------------------------------------- wiring


async def _job_sweep(svc) -> None:
    try:
        await sweep(svc)
    except Exception:
        log.exception("sweep_error")


async def _job_retention(svc) -> None:
    """Once a day for the whole cluster: the first replica to take the day's ledger key runs it."""
    st = svc.settings
    now = svc.clock()
    day = now.astimezone(_policy(st).calendar.tz).date()
    try:
        async with svc.db.transaction() as s:
            if not await sched_repo.ledger_add(s, report_id=0, kind="retention", step=day.isoformat(), now=now):
                log.info("retention_ran_elsewhere", day=day.isoformat())
                return
        await retention(svc.db, svc.photos, svc.clock(), photo_days=st.photo_retention_days, identity_days=st.identity_retention_days)
    except Exception:
        log.exception("retention_error")


def build_scheduler(svc, settings):
    """An AsyncIOScheduler of this process alone (memory job store: never shared)."""
    from apscheduler.schedulers.asyncio import AsyncIOScheduler
    from apscheduler.triggers.cron import CronTrigger
    from apscheduler.triggers.interval import IntervalTrigger

    from flows.deadlines import WEEKDAYS

    policy = _policy(settings)
    tz = policy.calendar.tz
    sched = AsyncIOScheduler(timezone=tz)
    common = dict(args=[svc], max_instances=1, coalesce=True, misfire_grace_time=None, replace_existing=True)
    sched.add_job(_job_sweep, IntervalTrigger(seconds=settings.scheduler_sweep_seconds, timezone=tz), id="sweep", **common)
    days = ",".join(WEEKDAYS[d] for d in sorted(policy.calendar.weekdays))
    sched.add_job(_job_sweep, CronTrigger(day_of_week=days, hour=policy.daily_at.hour, minute=policy.daily_at.minute, timezone=tz), id="digest", **common)
    sched.add_job(
        _job_sweep,
        CronTrigger(day_of_week=WEEKDAYS[policy.weekly_day], hour=policy.weekly_at.hour, minute=policy.weekly_at.minute, timezone=tz),
        id="weekly", **common,
    )
    h, m = (int(x) for x in settings.retention_at.split(":"))
    sched.add_job(_job_retention, CronTrigger(hour=h, minute=m, timezone=tz), id="retention", **common)
    return sched


def setup(app: web.Application, settings) -> None:
    """Starts this replica's scheduler with the app, stops it with the app."""
    from bot.app import STARTERS, STOPPERS

    running: list = []

    async def start(app: web.Application, svc) -> None:
        sched = build_scheduler(svc, settings)
        sched.start()
        running.append(sched)
        log.info("scheduler_started", every=settings.scheduler_sweep_seconds, jobs=[j.id for j in sched.get_jobs()])

    async def stop(app: web.Application, svc) -> None:
        while running:
            sched = running.pop()
            if sched.running:
                sched.shutdown(wait=False)

    app[STARTERS].append(start)
    app[STOPPERS].append(stop)
