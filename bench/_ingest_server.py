"""One process of bench/bench_ingest.py: a server under test, or a fake platform, on 127.0.0.1.

    python bench/_ingest_server.py --target bare|telegram|line|fake-telegram|fake-line [--db URL] [--api URL]

Prints its port on stdout (one line) once it accepts connections, then serves until SIGTERM,
SIGINT or end of stdin (the bench died), and cleans up. `telegram` and `line` are the real app with
the webhook's events stored in the inbox before the 200 but not processed (`Services.accept`
replaced by `engine.ingest`), sandbox and scheduler off; `--api` is the fake platform's base URL
(started separately as `fake-telegram` / `fake-line`). Logging at WARNING, on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import tempfile
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TELEGRAM_TOKEN = "123:ABC"
TELEGRAM_SECRET = "s3cret"
LINE_SECRET = "bench-line-secret"
LINE_TOKEN = "test-access-token"  # tests.fake_line.FakeLine's default


async def _site(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def bare() -> AsyncIterator[int]:
    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", ok)
    runner, port = await _site(app)
    try:
        yield port
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def ingest_only(**settings) -> AsyncIterator[int]:
    """The real app with `settings`, whose webhooks store events but do not process them."""
    from bot.app import SERVICES, create_app
    from bot.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(Settings(_env_file=None, photo_dir=tmp, sandbox=False, scheduler=False, sweep_seconds=3600, **settings))
        runner, port = await _site(app)
        try:
            svc = app[SERVICES]

            # Store before the 200, do not process: both ways in (LINE calls `accept`, Telegram
            # `accept_task`) stop at the inbox.
            async def accept_task(ev, reply=None):
                await svc.engine.ingest(ev, reply)
                return None  # no processing task: nothing runs after the store

            async def accept(ev, reply=None) -> bool:
                return await svc.engine.ingest(ev, reply) is not None

            svc.accept, svc.accept_task = accept, accept_task
            yield port
        finally:
            await runner.cleanup()


@contextlib.asynccontextmanager
async def fake_telegram() -> AsyncIterator[int]:
    from tests.fake_telegram import FakeTelegram

    async with FakeTelegram(token=TELEGRAM_TOKEN) as fake:
        yield int(fake.url.rsplit(":", 1)[1])


@contextlib.asynccontextmanager
async def fake_line() -> AsyncIterator[int]:
    from tests.fake_line import FakeLine

    fake = await FakeLine(access_token=LINE_TOKEN).start()
    try:
        yield int(fake.url.rsplit(":", 1)[1])
    finally:
        await fake.close()


def serve(target: str, db: str | None, api: str | None):
    if target == "bare":
        return bare()
    if target == "fake-telegram":
        return fake_telegram()
    if target == "fake-line":
        return fake_line()
    if not db or not api:
        raise SystemExit(f"--target {target} needs --db and --api")
    if target == "telegram":
        return ingest_only(database_url=db, telegram_token=TELEGRAM_TOKEN, telegram_webhook_secret=TELEGRAM_SECRET,
                           telegram_api_base=api)
    if target == "line":
        return ingest_only(database_url=db, line_channel_secret=LINE_SECRET, line_access_token=LINE_TOKEN,
                           line_api_host=api, public_url="https://namjai.example")
    raise SystemExit(f"unknown target {target}")


async def _stdin_closed() -> None:
    """Returns when stdin reaches end of file (the bench closed it, or died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", required=True, choices=["bare", "telegram", "line", "fake-telegram", "fake-line"])
    ap.add_argument("--db", help="database URL (telegram, line)")
    ap.add_argument("--api", help="the fake platform's base URL (telegram, line)")
    args = ap.parse_args()

    # The port goes to the real stdout; everything else written to stdout (structlog prints there)
    # goes to stderr, so that nothing can fill a pipe nobody reads.
    ready = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)

    from bot.logging import setup

    setup("WARNING")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(args.target, args.db, args.api) as port:
        ready.write(f"{port}\n")
        ready.close()
        eof = asyncio.create_task(_stdin_closed())
        eof.add_done_callback(lambda _: stop.set())
        await stop.wait()
        eof.cancel()


if __name__ == "__main__":
    asyncio.run(main())
