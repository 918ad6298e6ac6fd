"""Server-side time of a volunteer's step: event in → state saved → reply in the outbox.

Prints p50 and p99 on SQLite and on PostgreSQL (a database of its own at 127.0.0.1:5432,
created and dropped here; skipped with a message when no server answers). Aim: p99 < 20 ms.

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


async def run(url: str, volunteers: int) -> list[float]:
    db = Database(url)
    await upgrade(db)
    await import_teams(db, EXAMPLE)
    engine = Engine(db, boundaries=Boundaries.default())
    times: list[float] = []
    for n in range(volunteers):
        addr = Address("bench", f"u{n}", f"u{n}")
        for ev in script(addr, n):
            t0 = time.perf_counter()
            await engine.handle(ev)
            times.append((time.perf_counter() - t0) * 1000)
    async with db.session() as s:  # what was timed is a complete report per volunteer
        import sqlalchemy as sa

        from storage.models import Report

        made = (await s.exec(sa.select(sa.func.count()).select_from(Report))).scalar_one()
    if made != volunteers:
        raise SystemExit(f"bench_step: {made} reports from {volunteers} volunteers: the script no longer completes a report")
    await db.dispose()
    return times


def report(name: str, times: list[float]) -> None:
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]  # noqa: E731
    print(f"{name:10} steps={len(times):5}  p50={p(0.50):6.2f} ms  p99={p(0.99):6.2f} ms  mean={statistics.mean(times):6.2f} ms")


async def main() -> None:
    from bot.logging import setup

    setup("WARNING")  # the figures are the engine's, not the terminal's
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
