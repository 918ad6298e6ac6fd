"""Outbox delivery under a backlog, to Telegram: messages per second while the limits hold.

A backlog is put in the outbox at once: `--private` messages spread over 100 private chats and
`--groups` group chats with `--per-group` messages each (more than 20 makes the per-group limit
bite: the rest waits for the next minute). One OutboxWorker (this process, the app's default
settings: its batch, concurrency and limits) delivers it with the real `TelegramChannel`
(python-telegram-bot's Bot) to the fake Bot API, which runs in a process of its own
(`tests/fake_platforms.py`, no pytest) and stamps each call as it arrives.

Printed, from the fake's stamps: the private backlog's delivery rate (messages/s, from the first
call to the last private one; aim >= 27/s, 90 % of Telegram's 30/s), the most messages in any
one-second window (limit 30) and in any group's 60-second window (limit 20), and when the last group
message left. The run fails unless every row is sent, the fake saw exactly one successful call per
row, and each chat's messages arrived in the order they were queued.

    .venv/bin/python bench/bench_outbox.py [--pg] [--private 900] [--groups 6] [--per-group 25]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = "postgresql://postgres@127.0.0.1:5432/test"

from tests.workload import peak  # noqa: E402  (no pytest: the benchmarks share the test harness's counting)


def start_fake(tmp: str) -> tuple[subprocess.Popen, dict]:
    port_file = os.path.join(tmp, "fake.json")
    proc = subprocess.Popen([sys.executable, "-m", "tests.fake_platforms", port_file], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if os.path.exists(port_file):
            return proc, json.loads(Path(port_file).read_text())
        if proc.poll() is not None:
            raise SystemExit("bench_outbox: the fake platforms did not start")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("bench_outbox: the fake platforms did not start in 10 s")


def calls(control: str, since: int = 0) -> list[dict]:
    with urlopen(f"{control}/telegram/calls?since={since}", timeout=30) as r:
        return json.loads(r.read())


async def run(url: str, fake: dict, private: int, groups: int, per_group: int) -> dict:
    from sqlalchemy import func, select

    from bot.outbox import OutboxWorker
    from bot.settings import Settings
    from handlers.telegram import build_application
    from handlers.telegram_channel import TelegramChannel
    from storage import repo
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.models import OutboxMessage

    db = Database(url, pool_size=10, max_overflow=10)
    await upgrade(db)
    token = json.loads(urlopen(f"{fake['control']}/info", timeout=10).read())["token"]
    application = build_application(Settings(_env_file=None, telegram_token=token, telegram_api_base=fake["telegram"]))
    await application.initialize()

    async def no_photos(key: str) -> bytes:
        raise KeyError(key)

    defaults = Settings(_env_file=None)
    channel = TelegramChannel(  # as the app builds it (handlers/telegram.py), with its default limits
        application.bot, no_photos, per_second=int(defaults.telegram_rate_per_second),
        group_per_minute=defaults.telegram_group_per_minute, margin=defaults.telegram_limit_margin,
    )
    worker = OutboxWorker(db, {"telegram": channel}, batch=defaults.outbox_batch, concurrency=defaults.outbox_concurrency)
    chats: dict[str, list[str]] = defaultdict(list)
    now = datetime.now(timezone.utc)
    async with db.transaction() as s:
        for n in range(private):
            chat = str(7_000_000 + n % 100)
            text = f"p{n}"
            chats[chat].append(text)
            await repo.outbox_add(s, platform="telegram", chat_id=chat, payload={"text": text, "buttons": []}, next_attempt_at=now, created_at=now)
        for g in range(groups):
            chat = str(-1_000_000_000_000 - g)
            for n in range(per_group):
                text = f"g{g}-{n}"
                chats[chat].append(text)
                await repo.outbox_add(s, platform="telegram", chat_id=chat, payload={"text": text, "buttons": []}, next_attempt_at=now, created_at=now)
    total = private + groups * per_group
    before = len(calls(fake["control"]))  # the calls of an earlier run (SQLite's, before PostgreSQL's) are not this run's
    loop = asyncio.get_running_loop()
    runner = asyncio.create_task(worker.run(0.2))
    deadline = loop.time() + 60 + 70 * (per_group // 20 + 1) + total / 5
    while loop.time() < deadline:
        await asyncio.sleep(0.5)
        async with db.session() as s:
            pending = (await s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status != "sent"))).one()[0]
        if not pending:
            break
    worker.stop()
    await asyncio.wait([runner], timeout=10)
    runner.cancel()
    await application.shutdown()
    async with db.session() as s:
        sent = (await s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "sent"))).one()[0]
    await db.dispose()
    seen = [c for c in calls(fake["control"], before) if c["method"] == "sendMessage"]
    ok = [c for c in seen if c["ok"]]
    if sent != total or len(ok) != total:
        raise SystemExit(f"bench_outbox: {sent} of {total} rows sent, the fake saw {len(ok)} successful sends: not measuring delivery")
    got: dict[str, list[str]] = defaultdict(list)
    for c in sorted(ok, key=lambda c: c["i"]):
        got[c["chat"]].append(c["text"])
    if dict(got) != dict(chats):
        raise SystemExit("bench_outbox: a chat's messages arrived out of order or changed")
    priv = [c["t"] for c in ok if not c["chat"].startswith("-")]
    first = min(c["t"] for c in ok)
    per_group_max = max((peak(sorted(c["t"] for c in ok if c["chat"] == g), 60.0) for g in chats if g.startswith("-")), default=0)
    last_group = max((c["t"] for c in ok if c["chat"].startswith("-")), default=first)
    return {
        "rate": len(priv) / max(1e-9, max(priv) - first) if priv else 0.0,
        "per_second_max": peak(sorted(c["t"] for c in ok), 1.0),
        "per_group_max": per_group_max,
        "last_group_s": last_group - first,
        "refused": len(seen) - len(ok),
        "total": total,
    }


def show(name: str, r: dict, groups: int, per_group: int) -> None:
    aim = "met" if r["rate"] >= 27 else "not met"
    print(f"{name:9} {r['total']} messages: private backlog {r['rate']:5.1f} msg/s (aim >= 27: {aim}); "
          f"most in any second {r['per_second_max']} (limit 30); most in a group's minute {r['per_group_max']} (limit 20); "
          f"{groups} groups x {per_group}: the last left at {r['last_group_s']:.1f} s; refused by the platform: {r['refused']}")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", action="store_true", help="also on PostgreSQL at 127.0.0.1:5432 (a database of its own)")
    ap.add_argument("--private", type=int, default=900)
    ap.add_argument("--groups", type=int, default=6)
    ap.add_argument("--per-group", type=int, default=25)
    a = ap.parse_args()
    from bot.logging import setup

    setup("ERROR")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        proc, fake = start_fake(tmp)
        try:
            show("sqlite", await run(f"sqlite+aiosqlite:///{tmp}/bench.db", fake, a.private, a.groups, a.per_group), a.groups, a.per_group)
            if a.pg:
                import asyncpg

                name = f"namjai_bench_{uuid.uuid4().hex[:8]}"
                conn = await asyncpg.connect(PG, timeout=5)
                await conn.execute(f'CREATE DATABASE "{name}"')
                await conn.close()
                try:
                    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
                    show("postgres", await run(url, fake, a.private, a.groups, a.per_group), a.groups, a.per_group)
                finally:
                    conn = await asyncpg.connect(PG, timeout=5)
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    await conn.close()
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
