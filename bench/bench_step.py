"""Server-side time of a volunteer's step: event in → state saved → reply in the outbox.

Prints p50 and p99 on SQLite and on PostgreSQL (a database of its own at 127.0.0.1:5432,
created and dropped here; skipped with a message when no server answers), and the SQL statements
one step sends (counted with SQLAlchemy's `before_cursor_execute` event; an executemany counts
once; SQLite's BEGIN IMMEDIATE goes through the cursor and is counted, PostgreSQL's BEGIN and
COMMIT and SQLite's COMMIT are not). Aim: p99 < 10 ms.

What a step is here: `Engine.handle` = the event stored in the inbox (its own group-committed
transaction, as a webhook does), then the conversation processed up to it (one transaction: the
conversation's lock, its head, the flow, the reply in the outbox). At the end the benchmark
checks that every volunteer's report exists and every step was processed, or it fails.

    .venv/bin/python bench/bench_step.py [volunteers]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.app import freeze_startup_objects  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.teams import EXAMPLE, import_teams  # noqa: E402
from flows.model import Address, ChoiceMade, LocationReceived, TextReceived  # noqa: E402
from storage.boundaries import Boundaries  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrate import upgrade  # noqa: E402

PG = "postgresql://postgres@127.0.0.1:5432/test"


def script(addr: Address, n: int):
    now = datetime.now(timezone.utc)
    steps = [
        TextReceived(addr, f"{n}-1", now, text="สวัสดี"),
        ChoiceMade(addr, f"{n}-2", now, data="consent:yes"),
        # the buttons' data as the questions number them (consent asks #1, the photo #1, ...)
        ChoiceMade(addr, f"{n}-3", now, data="nophoto:@1"),
        LocationReceived(addr, f"{n}-4", now, lat=12.9277, lon=100.8724),
        ChoiceMade(addr, f"{n}-5", now, data="who:homeless@3"),
        TextReceived(addr, f"{n}-6", now, text="นอนอยู่ใต้สะพาน"),
        ChoiceMade(addr, f"{n}-7", now, data="confirm:send@5"),
    ]
    return steps


async def run(url: str, volunteers: int) -> tuple[list[float], float]:
    import sqlalchemy as sa
    from sqlalchemy import event

    from storage.models import InboxEvent, OutboxMessage, Report

    db = Database(url)
    await upgrade(db)
    await import_teams(db, EXAMPLE)
    engine = Engine(db, boundaries=Boundaries.default())
    # one volunteer first, untimed: caches (teams, compiled statements) warm as on a running server
    for ev in script(Address("bench", "warm", "warm"), -1):
        await engine.handle(ev)
    freeze_startup_objects()  # what `namjai serve` does once started
    statements = 0

    def count(*_):
        nonlocal statements
        statements += 1

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    times: list[float] = []
    kinds: dict[int, tuple[list[float], list[int]]] = {}  # step of the script -> (its times, its statements)
    for n in range(volunteers):
        addr = Address("bench", f"u{n}", f"u{n}")
        for k, ev in enumerate(script(addr, n)):
            before = statements
            t0 = time.perf_counter()
            await engine.handle(ev)
            times.append((time.perf_counter() - t0) * 1000)
            kinds.setdefault(k, ([], []))[0].append(times[-1])
            kinds[k][1].append(statements - before)
    event.remove(db.engine.sync_engine, "before_cursor_execute", count)
    async with db.session() as s:
        reports = (await s.exec(sa.select(sa.func.count()).select_from(Report))).scalar_one()
        pending = (await s.exec(sa.select(sa.func.count()).select_from(InboxEvent).where(InboxEvent.status != "done"))).scalar_one()
        replies = (await s.exec(sa.select(sa.func.count()).select_from(OutboxMessage))).scalar_one()
    await db.dispose()
    # it measured steps only if every step was processed and every volunteer's report submitted
    if reports != volunteers + 1 or pending or replies < len(times):
        raise SystemExit(f"bench_step: {reports} reports for {volunteers + 1} volunteers, {pending} events not done, "
                         f"{replies} outbox rows for {len(times)} steps: not measuring steps")
    return times, statements / len(times), kinds


def pct(times: list[float], q: float) -> float:
    times = sorted(times)
    return times[min(len(times) - 1, int(q * len(times)))]


def report(name: str, result: tuple[list[float], float, dict]) -> None:
    times, per_step, kinds = result
    print(f"{name:10} steps={len(times):5}  p50={pct(times, 0.50):6.2f} ms  p99={pct(times, 0.99):6.2f} ms  mean={statistics.mean(times):6.2f} ms  statements/step={per_step:4.1f}  (aim p99 < 10 ms)")
    labels = [type(ev).__name__ + (f" {ev.data.split('@')[0]}" if hasattr(ev, "data") else "") for ev in script(Address("x", "x", "x"), 0)]
    for k, (ts, counts) in sorted(kinds.items()):
        print(f"  step {k + 1} {labels[k]:26} p50={pct(ts, 0.50):6.2f} ms  p99={pct(ts, 0.99):6.2f} ms  statements={statistics.mean(counts):4.1f}")


async def main() -> None:
    from bot.logging import setup

    setup("ERROR")  # the figures are the engine's, not the terminal's (the example teams have no chat: warnings)
    volunteers = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempfile.TemporaryDirectory() as tmp:
        report("sqlite", await run(f"sqlite+aiosqlite:///{tmp}/bench.db", volunteers))
    try:
        import asyncpg

        name = f"namjai_bench_{uuid.uuid4().hex[:8]}"
        conn = await asyncpg.connect(PG, timeout=5)
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()
    except Exception as e:
        print(f"postgres   skipped: {e}")
        return
    try:
        report("postgres", await run(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", volunteers))
    finally:
        conn = await asyncpg.connect(PG, timeout=5)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
