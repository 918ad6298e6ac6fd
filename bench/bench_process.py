"""How heavy one `namjai serve` process is: resident memory and the time from start to `/healthz`.

Starts the real `namjai serve` (a fresh SQLite database of its own, scheduler on, sandbox off) with
both channels configured against the loopback fakes (tests/fake_telegram.py, tests/fake_line.py,
run in this process), `--runs` times; for each run prints the seconds from spawning the process
to the first `200` from `/healthz`, and its resident set size (VmRSS) then and after 2 s idle.
Then the same restarting on one database (created and migrated by a first, unmeasured start: what
every start but the first is), and a run with the sandbox only for comparison. Aims (both
channels): <= 100 MiB, <= 1.5 s.

It checks that it measured what it prints: both webhooks answer as configured channels do (the
Telegram webhook refuses a request without its secret with 403/401, LINE's one without a
signature with 400; an unconfigured channel would answer 404), or it fails.

    .venv/bin/python bench/bench_process.py [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._ingest_server import LINE_SECRET, LINE_TOKEN, TELEGRAM_SECRET, TELEGRAM_TOKEN, fake_line, fake_telegram  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("bench_process: no VmRSS in /proc (Linux only)")


async def one_run(env: dict, channels: bool, data_dir: str | None = None) -> tuple[float, float, float]:
    """One start; `data_dir`: the database and photos there (a restart), else a fresh directory."""
    port = free_port()
    with tempfile.TemporaryDirectory() as fresh:
        tmp = data_dir or fresh
        env = {
            **os.environ, **env,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/bench.db", "NAMJAI_PHOTO_DIR": f"{tmp}/photos",
            "NAMJAI_PORT": str(port), "NAMJAI_LOG_LEVEL": "WARNING",
        }
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from bot.cli import main; main()", "serve",
            env=env, cwd=tmp, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
                while True:
                    if proc.returncode is not None or time.perf_counter() - t0 > 60:
                        err = (await proc.stderr.read()).decode()[-2000:] if proc.returncode is not None else ""
                        raise SystemExit(f"bench_process: the server did not answer /healthz ({err})")
                    try:
                        async with http.get(base + "/healthz") as r:
                            if r.status == 200:
                                break
                    except (aiohttp.ClientError, asyncio.TimeoutError):  # not listening yet, or busy
                        pass
                    await asyncio.sleep(0.01)
                started = time.perf_counter() - t0
                rss_ready = rss_mib(proc.pid)
                if channels:  # configured channels answer their webhooks; an unconfigured one is a 404
                    async with http.post(base + "/telegram/webhook", json={}) as r:
                        tg = r.status
                    async with http.post(base + "/line/webhook", data=b"{}") as r:
                        ln = r.status
                    if tg not in (401, 403) or ln != 400:
                        raise SystemExit(f"bench_process: webhooks answered Telegram {tg}, LINE {ln}: channels not configured")
                await asyncio.sleep(2)
                rss_idle = rss_mib(proc.pid)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 10)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
    return started, rss_ready, rss_idle


def show(name: str, runs: list[tuple[float, float, float]], aims: bool) -> None:
    s = [r[0] for r in runs]
    ready = [r[1] for r in runs]
    idle = [r[2] for r in runs]
    aim = "  (aims <= 1.5 s, <= 100 MiB)" if aims else ""
    print(
        f"{name:14} start→/healthz {min(s):.2f}–{max(s):.2f} s (median {statistics.median(s):.2f})  "
        f"RSS at ready {min(ready):.0f}–{max(ready):.0f} MiB, idle {min(idle):.0f}–{max(idle):.0f} MiB{aim}"
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; {args.runs} runs each")
    async with fake_telegram() as tg_port, fake_line() as line_port:
        both = {
            "NAMJAI_SANDBOX": "false",
            "NAMJAI_TELEGRAM_TOKEN": TELEGRAM_TOKEN, "NAMJAI_TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "NAMJAI_TELEGRAM_API_BASE": f"http://127.0.0.1:{tg_port}",
            "NAMJAI_LINE_CHANNEL_SECRET": LINE_SECRET, "NAMJAI_LINE_ACCESS_TOKEN": LINE_TOKEN,
            "NAMJAI_LINE_API_HOST": f"http://127.0.0.1:{line_port}", "NAMJAI_PUBLIC_URL": "https://namjai.example",
        }
        runs = [await one_run(both, True) for _ in range(args.runs)]
        show("both channels", runs, True)
        with tempfile.TemporaryDirectory() as kept:  # a restart: the schema is at head already
            await one_run(both, True, kept)  # the first start creates and migrates the database
            restarts = [await one_run(both, True, kept) for _ in range(args.runs)]
        show("both, restart", restarts, True)
        sandbox = [await one_run({"NAMJAI_SANDBOX": "true"}, False) for _ in range(args.runs)]
        show("sandbox only", sandbox, False)


if __name__ == "__main__":
    asyncio.run(main())
