"""Benchmark the scheduler's sweep: its cost follows what is due, not what is open.

Creates a PostgreSQL database of its own (dropped at the end), fills it with open reports whose
deadlines lie ahead and 3,000 that are due, then times one sweep (batches of due reports, each
claimed and handled in one transaction) and shows the EXPLAIN of the claim query, first with
10,000 open reports, then with 1,000,000, the due count the same.
Each time it also times a sweep of as many new due reports with the reminded reports' cards
refreshed (`Reports.refresh_cards`, what the app's sweep does), printed apart.

Usage: .venv/bin/python bench/bench_sweep.py [OPEN_SMALL] [OPEN_LARGE] [DUE]
Server: NAMJAI_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test). Skips without one.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG = os.environ.get("NAMJAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
NOW = datetime(2026, 11, 25, 3, 0, tzinfo=timezone.utc)  # Wed 10:00 Bangkok

CLAIM_SQL = """
SELECT id FROM reports
WHERE next_due_at <= $1 AND (sched_claimed_until IS NULL OR sched_claimed_until < $1)
ORDER BY next_due_at LIMIT 200 FOR UPDATE SKIP LOCKED
"""


async def fill_open(conn, team_id: int, start: int, n: int) -> None:
    """n open reports, deadlines 1 h to 7 days ahead (not due), one INSERT … SELECT."""
    await conn.execute(
        """
        INSERT INTO reports (ref, team_id, status, urgent, location_to_confirm, law_track, reporter_lang,
                             created_at, updated_at, next_due_at)
        SELECT 'B-' || g, $1, 'new', false, false, 'destitution', 'th', $2::timestamptz - interval '1 hour',
               $2::timestamptz, $2::timestamptz + (interval '1 hour' + (g % 10000) * interval '1 minute')
        FROM generate_series($3::bigint, $4::bigint) AS g
        """,
        team_id, NOW, start, start + n - 1,
    )


async def fill_due(conn, team_id: int, tag: str, n: int) -> None:
    """n urgent reports 61 minutes old, nothing sent yet: each is due (one coalesced escalation)."""
    created = NOW - timedelta(minutes=61)
    await conn.execute(
        """
        INSERT INTO reports (ref, team_id, status, urgent, urgency, location_to_confirm, law_track, reporter_lang,
                             created_at, updated_at, next_due_at)
        SELECT $5 || g, $1, 'new', true, 'injury', false, 'destitution', 'th', $2::timestamptz, $2::timestamptz, $3::timestamptz
        FROM generate_series(1, $4) AS g
        """,
        team_id, created, created, n, f"D{tag}-",
    )
    await conn.execute(
        """INSERT INTO report_events (report_id, at, action, to_status)
           SELECT id, created_at, 'submit', 'new' FROM reports WHERE ref LIKE $1""",
        f"D{tag}-%",
    )


async def explain(conn) -> list[str]:
    async with conn.transaction():
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + CLAIM_SQL, NOW)
        raise_rollback = [r[0] for r in rows]
    return raise_rollback


async def measure(url: str, conn, label: str, team_id: int, tag: str, due: int) -> dict:
    from bot.reports import Reports
    from bot.scheduler import sweep, sweep_reports
    from storage.boundaries import Boundaries
    from storage.db import Database

    await conn.execute("ANALYZE reports")
    open_n = await conn.fetchval("SELECT count(*) FROM reports WHERE status <> 'closed'")
    due_n = await conn.fetchval("SELECT count(*) FROM reports WHERE next_due_at <= $1", NOW)
    plan = await explain(conn)
    t0 = time.perf_counter()
    async with conn.transaction():
        await conn.fetch(CLAIM_SQL, NOW)
    claim_ms = (time.perf_counter() - t0) * 1000
    from bot.i18n import catalogue
    from flows.deadlines import load_policy

    catalogue(), load_policy()  # read once per process: a running replica has them already
    db = Database(url)
    try:
        t0 = time.perf_counter()
        sent = await sweep(db, NOW, digests=False)
        sweep_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = await sweep(db, NOW, digests=False)
        idle_ms = (time.perf_counter() - t0) * 1000
    finally:
        await db.dispose()
    print(f"\n== {label}: {open_n:,} open reports, {due_n} due")
    print(f"claim query alone (200 rows): {claim_ms:.1f} ms")
    # What it prints is what it measured: every due report queued its escalation, nothing twice.
    if sent != due_n or again != 0:
        raise SystemExit(f"bench_sweep: {due_n} due reports but {sent} messages queued, then {again} more: not measuring a sweep")
    left = await conn.fetchval("SELECT count(*) FROM reports WHERE next_due_at <= $1", NOW)
    if left:
        raise SystemExit(f"bench_sweep: {left} reports still due after the sweep")
    print(f"sweep: {sweep_s:.2f} s, {sent} messages queued: {sweep_s / due_n * 1000:.2f} ms per due report (aim <= 1 ms)")
    print(f"sweep again, nothing due: {idle_ms:.1f} ms ({again} messages)")
    # The app's sweep also edits each reminded report's card (its waiting time): the same again
    # with `Reports.refresh_cards`, on as many new due reports, measured apart.
    await fill_due(conn, team_id, tag + "c", due)
    await conn.execute("ANALYZE reports")
    reports = Reports(Boundaries.default(), lambda: NOW)
    policy = load_policy()
    edits_before = await conn.fetchval("SELECT count(*) FROM outbox WHERE card_edit")
    db = Database(url)
    try:
        t0 = time.perf_counter()
        carded = await sweep_reports(db, NOW, policy, cards=reports.refresh_cards)
        cards_s = time.perf_counter() - t0
    finally:
        await db.dispose()
    edits = await conn.fetchval("SELECT count(*) FROM outbox WHERE card_edit") - edits_before
    if carded != due or edits != due:  # one team chat: one card edit per reminded report
        raise SystemExit(f"bench_sweep: {due} due reports but {carded} messages and {edits} card edits: not measuring the cards")
    print(f"sweep with the cards' refresh: {cards_s:.2f} s, {carded} messages + {edits} card edits: {cards_s / due * 1000:.2f} ms per due report")
    print("EXPLAIN ANALYZE of the claim:")
    for line in plan:
        print("   " + line)
    return {"open": open_n, "due": due_n, "sweep_s": sweep_s, "idle_ms": idle_ms, "plan": plan, "cards_s": cards_s}


async def main(argv: list[str]) -> int:
    from bot.logging import setup

    setup("WARNING")  # the figures are the sweep's, not the terminal's
    import asyncpg

    small = int(argv[1]) if len(argv) > 1 else 10_000
    large = int(argv[2]) if len(argv) > 2 else 1_000_000
    # 3,000 due: a national morning's reminders, and enough that a sweep lasts a second or more
    # (with 300 the figure moved between 0.5 and 1 ms from run to run on a busy machine)
    due = int(argv[3]) if len(argv) > 3 else 3000
    name = f"namjai_bench_{uuid.uuid4().hex[:8]}"
    base = PG.rsplit("/", 1)[0]
    try:
        admin = await asyncpg.connect(PG, timeout=5)
    except Exception as e:
        print(f"skipped: no PostgreSQL at {PG} ({e})")
        return 0
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = "postgresql+asyncpg://" + base.split("://", 1)[1] + "/" + name
    started = time.perf_counter()
    try:
        from storage.db import Database
        from storage.migrate import upgrade

        db = Database(url)
        await upgrade(db)
        await db.dispose()
        conn = await asyncpg.connect(base + "/" + name)
        try:
            team_id = await conn.fetchval(
                "INSERT INTO teams (code, name_th, name_en, kind, fallback, active) VALUES ('bench','ทีม','Bench','provincial_centre',false,true) RETURNING id"
            )
            for role in ("team", "supervisors", "director"):
                await conn.execute(
                    "INSERT INTO chat_bindings (platform, chat_id, team_id, role, lang, created_at) VALUES ('sandbox',$1,$2,$3,'th',$4)",
                    f"{role}-chat", team_id, role, NOW,
                )
            t0 = time.perf_counter()
            await fill_open(conn, team_id, 1, small)
            await fill_due(conn, team_id, "a", due)
            print(f"filled {small:,} open + {due} due in {time.perf_counter() - t0:.1f} s")
            a = await measure(url, conn, "small", team_id, "a", due)
            t0 = time.perf_counter()
            await fill_open(conn, team_id, small + 1, large - small)
            await fill_due(conn, team_id, "b", due)
            print(f"\nfilled up to {large:,} open + {due} due in {time.perf_counter() - t0:.1f} s")
            b = await measure(url, conn, "large", team_id, "b", due)
        finally:
            await conn.close()
        ratio = b["sweep_s"] / a["sweep_s"]
        print(
            f"\nopen ×{b['open'] / a['open']:.0f}, due the same: sweep ×{ratio:.2f} "
            f"({a['sweep_s']:.2f} s → {b['sweep_s']:.2f} s); index scan: "
            f"{'yes' if any('Index Scan' in line and 'next_due_at' in line for line in b['plan']) else 'NO'}"
        )
        print(
            f"per due report: {a['sweep_s'] / a['due'] * 1000:.2f} ms with {a['open']:,} open, "
            f"{b['sweep_s'] / b['due'] * 1000:.2f} ms with {b['open']:,} open (aim <= 1 ms)"
        )
        print(
            f"with the cards' refresh: {a['cards_s'] / a['due'] * 1000:.2f} ms per due report with {a['open']:,} open, "
            f"{b['cards_s'] / b['due'] * 1000:.2f} ms with {b['open']:,} open"
        )
        print(f"total {time.perf_counter() - started:.0f} s")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv)))
