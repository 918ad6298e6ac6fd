"""Webhook ingest throughput: updates/s and p99 time to the 200, on loopback.

Each target is a real webhook (secret checked, Update parsed and mapped, event stored in the
inbox before the 200) next to a bare aiohttp handler that only answers 200, driven by the same
client in the same run. Events are stored but not processed (the bench replaces
`Services.accept` with the ingest alone), so the figure is the ingest only.

    .venv/bin/python bench/bench_ingest.py [--requests 5000] [--connections 50] [--pg]

A LINE webhook is one more entry in `targets()` (a name, how to start it, the path, how to sign
a body).
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

from aiohttp import ClientSession, TCPConnector, web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass
class Target:
    name: str
    serve: Callable[[], contextlib.AbstractAsyncContextManager[str]]  # yields the base URL
    path: str
    request: Callable[[int], tuple[bytes, dict]]  # i → (body, headers)


async def _site(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def bare_server() -> AsyncIterator[str]:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner, url = await _site(app)
    try:
        yield url
    finally:
        await runner.cleanup()


def telegram_update(i: int) -> tuple[bytes, dict]:
    user = 10_000_000 + i % 500
    body = {"update_id": 1_000_000 + i, "message": {"message_id": i, "date": 1795918800,
            "chat": {"id": user, "type": "private", "first_name": "V"},
            "from": {"id": user, "is_bot": False, "first_name": "V", "language_code": "th"}, "text": "สวัสดี"}}
    return json.dumps(body).encode(), {"X-Telegram-Bot-Api-Secret-Token": "s3cret", "Content-Type": "application/json"}


@contextlib.asynccontextmanager
async def ingest_only_app(**settings) -> AsyncIterator[str]:
    """The real app with `settings`, whose webhooks store events but do not process them."""
    from bot.app import SERVICES, create_app
    from bot.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(_env_file=None, photo_dir=tmp, sandbox=False, scheduler=False, sweep_seconds=3600, **settings))
        runner, url = await _site(app)
        svc = app[SERVICES]

        async def ingest_only(ev) -> bool:  # store before the 200, do not process
            return await svc.engine.ingest(ev) is not None

        svc.accept = ingest_only
        try:
            yield url
        finally:
            await runner.cleanup()


def telegram_server(database_url: str):
    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[str]:
        from tests.fake_telegram import FakeTelegram

        async with FakeTelegram() as fake:
            async with ingest_only_app(database_url=database_url, telegram_token="123:ABC",
                                       telegram_webhook_secret="s3cret", telegram_api_base=fake.url) as url:
                yield url

    return serve


LINE_SECRET = "bench-line-secret"


def line_event(i: int) -> tuple[bytes, dict]:
    from tests.fake_line import body_of, event_from, sign

    raw = body_of(event_from("text", user=f"U{10_000_000 + i % 500:032x}", text="สวัสดี"))
    return raw.encode(), {"X-Line-Signature": sign(LINE_SECRET, raw), "Content-Type": "application/json"}


def line_server(database_url: str):
    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[str]:
        from tests.fake_line import FakeLine

        fake = await FakeLine().start()
        try:
            async with ingest_only_app(database_url=database_url, line_channel_secret=LINE_SECRET,
                                       line_access_token=fake.access_token, line_api_host=fake.url,
                                       public_url="https://namjai.example") as url:
                yield url
        finally:
            await fake.close()

    return serve


async def drive(url: str, target: Target, n: int, connections: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(n))
    async with ClientSession(connector=TCPConnector(limit=connections)) as http:
        async def worker():
            for i in counter:
                body, headers = target.request(i)
                t0 = time.perf_counter()
                async with http.post(url + target.path, data=body, headers=headers) as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - t0)
                statuses[resp.status] = statuses.get(resp.status, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    return {"rate": n / elapsed, "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, "statuses": statuses}


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
    url = "postgresql+asyncpg://" + admin.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
    from storage.db import Database
    from storage.migrate import upgrade

    db = Database(url)
    await upgrade(db)
    await db.dispose()

    async def drop():
        c = await asyncpg.connect(admin, timeout=3)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    return url, drop


def targets(databases: dict[str, str]) -> list[Target]:
    out = []
    for label, url in databases.items():
        out.append(Target(f"telegram webhook ({label})", telegram_server(url), "/telegram/webhook", telegram_update))
        out.append(Target(f"line webhook ({label})", line_server(url), "/line/webhook", line_event))
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--pg", action="store_true", help="also on PostgreSQL (NAMJAI_TEST_PG), when reachable")
    args = ap.parse_args()

    from bot.logging import setup

    setup("WARNING")
    tmp = tempfile.TemporaryDirectory()
    databases = {"sqlite": f"sqlite+aiosqlite:///{tmp.name}/bench.db"}
    pg = await pg_database() if args.pg else None
    if pg:
        databases["postgresql"] = pg[0]
    try:
        print(f"{args.requests} requests, {args.connections} connections, loopback\n")
        print(f"{'target':34} {'updates/s':>10} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for target in targets(databases):
            bare = Target("bare aiohttp 200", bare_server, "/hook", target.request)
            results = {}
            for t in (bare, target):
                async with t.serve() as url:
                    await drive(url, t, min(200, args.requests), args.connections)  # warm-up
                    results[t.name] = await drive(url, t, args.requests, args.connections)
                r = results[t.name]
                print(f"{t.name:34} {r['rate']:10.0f} {r['p50']:8.1f} {r['p99']:8.1f}  {r['statuses']}")
            ratio = results[target.name]["rate"] / results[bare.name]["rate"]
            print(f"{'':34} ratio to bare: {ratio:.2f}\n")
    finally:
        if pg:
            await pg[1]()
        tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
