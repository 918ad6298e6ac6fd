"""Webhook ingest throughput: updates/s and p99 time to the 200, on loopback.

Each target is a real webhook (secret checked, Update parsed and mapped, event stored in the
inbox before the 200) next to a bare aiohttp handler that only answers 200, driven by the same
client in the same run. What is measured: the webhook up to the group-committed INSERT into the
inbox, and nothing after it — the server replaces `Services.accept` and `Services.accept_task`
with the ingest alone, so no event is processed. After each run the benchmark counts, in the
database, the target's inbox rows: it fails unless every request answered 200 was stored, none was
processed and the outbox is empty (so a webhook that starts processing again, or stops storing,
cannot pass for ingest).

    .venv/bin/python bench/bench_ingest.py [--requests 5000] [--connections 50] [--pg]

Processes: the server under test (the webhook, or the bare handler) runs alone in a subprocess
(bench/_ingest_server.py, which prints its port when ready); the fake platform the webhook talks
to (getMe for Telegram, the loading animation for LINE) runs in another subprocess; the client
is this process. So neither the client's nor the fake's CPU is charged to the server. Everything
is on 127.0.0.1, every request and the whole run have a timeout, and the subprocesses are
terminated at the end whatever happens.

A webhook is one more entry in `targets()` (a name, the server's --target, the fake's --target,
the path, how to make a request), plus its case in bench/_ingest_server.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Callable

from aiohttp import ClientSession, ClientTimeout, TCPConnector

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SERVER = Path(__file__).resolve().parent / "_ingest_server.py"

from bench._ingest_server import LINE_SECRET, TELEGRAM_SECRET  # noqa: E402

WARMUP = 200
START_TIMEOUT = 60.0  # seconds for a subprocess to print its port
STOP_TIMEOUT = 10.0  # seconds for a subprocess to exit after SIGTERM, before SIGKILL
AIM_RATIO, AIM_P99_MS, AIM_CONNECTIONS = 0.25, 50, 50


@dataclass
class Target:
    name: str  # in the table
    label: str  # in the summary, e.g. telegram/sqlite
    server: str  # _ingest_server.py --target
    fake: str | None  # _ingest_server.py --target of the fake platform, if any
    db: str | None
    path: str
    request: Callable[[int], tuple[bytes, dict]]  # i → (body, headers)


@contextlib.asynccontextmanager
async def process(*args: str) -> AsyncIterator[str]:
    """Runs `_ingest_server.py ARGS`; yields http://127.0.0.1:PORT once it is ready; always ends it."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SERVER), *args, cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None)
    try:
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        except asyncio.TimeoutError:
            raise RuntimeError(f"{' '.join(args)}: not ready after {START_TIMEOUT:.0f} s") from None
        if not line.strip().isdigit():
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            raise RuntimeError(f"{' '.join(args)}: exited with {proc.returncode} before it was ready (see stderr)")
        yield f"http://127.0.0.1:{int(line)}"
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()


@contextlib.asynccontextmanager
async def serving(target: Target) -> AsyncIterator[str]:
    """The fake platform (if any), then the server under test; yields the server's URL."""
    async with contextlib.AsyncExitStack() as stack:
        args = ["--target", target.server]
        if target.fake:
            api = await stack.enter_async_context(process("--target", target.fake))
            args += ["--api", api]
        if target.db:
            args += ["--db", target.db]
        yield await stack.enter_async_context(process(*args))


def telegram_update(i: int) -> tuple[bytes, dict]:
    user = 10_000_000 + i % 500
    body = {"update_id": 1_000_000 + i, "message": {"message_id": i, "date": 1795918800,
            "chat": {"id": user, "type": "private", "first_name": "V"},
            "from": {"id": user, "is_bot": False, "first_name": "V", "language_code": "th"}, "text": "สวัสดี"}}
    return json.dumps(body).encode(), {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}


def line_event(i: int) -> tuple[bytes, dict]:
    from tests.fake_line import body_of, event_from, sign

    raw = body_of(event_from("text", user=f"U{10_000_000 + i % 500:032x}", text="สวัสดี"))
    return raw.encode(), {"X-Line-Signature": sign(LINE_SECRET, raw), "Content-Type": "application/json"}


async def drive(url: str, path: str, requests: list[tuple[bytes, dict]], connections: int, timeout: float) -> dict:
    """POSTs `requests` over `connections` keep-alive connections; a failed request counts under
    its exception's name in the statuses and not in the latencies."""
    latencies: list[float] = []
    statuses: dict[int | str, int] = {}
    pending = iter(requests)
    async with ClientSession(connector=TCPConnector(limit=connections), timeout=ClientTimeout(total=timeout)) as http:
        async def worker():
            for body, headers in pending:
                t0 = time.perf_counter()
                try:
                    async with http.post(url + path, data=body, headers=headers) as resp:
                        await resp.read()
                    status: int | str = resp.status
                    latencies.append(time.perf_counter() - t0)
                except Exception as e:  # a timeout, a reset connection...: counted, the run goes on
                    status = type(e).__name__
                statuses[status] = statuses.get(status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    ok = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(ok - 1, int(ok * p))] * 1000 if ok else float("nan")

    return {"rate": ok / elapsed, "p50": pct(0.5), "p99": pct(0.99), "statuses": statuses}


async def check_stored(url: str, platform: str, answered: int) -> str:
    """What the server did with the requests it answered 200: stored each, processed none."""
    import sqlalchemy as sa

    from storage.db import Database
    from storage.models import InboxEvent, OutboxMessage

    db = Database(url)
    try:
        async with db.session() as s:
            rows = dict((await s.exec(
                sa.select(InboxEvent.status, sa.func.count()).where(InboxEvent.platform == platform).group_by(InboxEvent.status)
            )).all())
            outbox = (await s.exec(sa.select(sa.func.count()).select_from(OutboxMessage))).scalar_one()
    finally:
        await db.dispose()
    stored = sum(rows.values())
    if stored != answered or set(rows) - {"pending"} or outbox:
        raise RuntimeError(f"{answered} answered 200 but inbox {rows}, outbox {outbox}: not measuring the ingest")
    return f"checked: {stored} stored, 0 processed"


async def pg_database() -> tuple[str, Callable] | None:
    admin = os.environ.get("NAMJAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import asyncpg

        conn = await asyncpg.connect(admin, timeout=3)
    except Exception as e:
        print(f"(no PostgreSQL at {admin}: {type(e).__name__}; skipped)")
        return None
    name = f"namjai_bench_{uuid.uuid4().hex[:8]}"
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()

    async def drop():
        c = await asyncpg.connect(admin, timeout=3)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    url = "postgresql+asyncpg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
    try:
        from storage.db import Database
        from storage.migrate import upgrade

        db = Database(url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()
    except BaseException:
        await drop()
        raise
    return url, drop


def targets(databases: dict[str, str]) -> list[Target]:
    out = []
    for label, url in databases.items():
        out.append(Target(f"telegram webhook ({label})", f"telegram/{label}", "telegram", "fake-telegram", url,
                          "/telegram/webhook", telegram_update))
        out.append(Target(f"line webhook ({label})", f"line/{label}", "line", "fake-line", url,
                          "/line/webhook", line_event))
    return out


async def run(args: argparse.Namespace, databases: dict[str, str]) -> list[str]:
    """Prints the table; returns the summary lines."""
    summary = []
    print(f"{args.requests} requests, {args.connections} connections, loopback, "
          f"server / fake platform / client in separate processes\n")
    print(f"{'target':34} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for target in targets(databases):
        # Built before the clock starts (the client's signing is not the server's time); the
        # warm-up's updates are not the measured ones (no duplicate is measured).
        warmup = [target.request(i) for i in range(min(WARMUP, args.requests))]
        measured = [target.request(WARMUP + i) for i in range(args.requests)]
        bare = Target("bare aiohttp 200", "bare", "bare", None, None, "/hook", target.request)
        results = {}
        try:
            for t in (bare, target):
                async with serving(t) as url:
                    w0 = await drive(url, t.path, warmup, args.connections, args.request_timeout)
                    results[t.name] = r = await drive(url, t.path, measured, args.connections, args.request_timeout)
                print(f"{t.name:34} {r['rate']:10.0f} {r['p50']:8.1f} {r['p99']:8.1f}  {r['statuses']}")
            answered = w0["statuses"].get(200, 0) + r["statuses"].get(200, 0)
            print(f"{'':34} {await check_stored(target.db, target.server, answered)}")
        except Exception as e:
            print(f"{target.name:34} FAILED: {type(e).__name__}: {e}\n")
            summary.append(f"{target.label}: FAILED ({type(e).__name__}: {e})")
            continue
        w = results[target.name]
        ratio = w["rate"] / results[bare.name]["rate"] if results[bare.name]["rate"] else float("nan")
        print(f"{'':34} ratio to bare: {ratio:.2f}\n")
        failed = sum(n for s, n in w["statuses"].items() if s != 200)
        summary.append(f"{target.label}: ratio {ratio:.2f}, p99 {w['p99']:.0f} ms "
                       f"(aim: >= {AIM_RATIO}, p99 < {AIM_P99_MS} ms at {AIM_CONNECTIONS} connections)"
                       + (f"; {failed} of {args.requests} requests not 200" if failed else ""))
    return summary


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--pg", action="store_true", help="also on PostgreSQL (NAMJAI_TEST_PG), when reachable")
    ap.add_argument("--request-timeout", type=float, default=10.0, help="seconds, per request")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds, for the whole run")
    args = ap.parse_args()

    from bot.logging import setup

    setup("WARNING")
    tmp = tempfile.TemporaryDirectory()
    pg = None
    try:
        async with asyncio.timeout(args.timeout):
            databases = {"sqlite": f"sqlite+aiosqlite:///{tmp.name}/bench.db"}
            pg = await pg_database() if args.pg else None
            if pg:
                databases["postgresql"] = pg[0]
            summary = await run(args, databases)
    except TimeoutError:
        print(f"\nFAILED: the run took more than {args.timeout:.0f} s")
        return 1
    finally:
        try:
            if pg:
                await asyncio.wait_for(pg[1](), 30)
        finally:
            tmp.cleanup()
    print("\n".join(summary))
    return 1 if any("FAILED" in s for s in summary) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
