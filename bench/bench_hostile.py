"""Memory of a real `namjai serve` under 30 concurrent 10 MB bad-signature posts to /line/webhook.

    python bench/bench_hostile.py [--posts 30] [--mb 10] [--rounds 3]

Starts `namjai serve` (LINE configured, sandbox off, SQLite in a temporary folder) as a child
process on 127.0.0.1, reads its resident memory (VmRSS, /proc) before, during (sampled every 20 ms)
and 2 s after each round of posts, and prints the figures. The aim (issue 10): growth under 50 MB,
and back near the start afterwards. Needs no test extras.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"namjai serve exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("namjai serve did not start")


async def round_of_posts(url: str, posts: int, body: bytes) -> list[int | str]:
    async def one(http):
        try:
            async with http.post(url + "/line/webhook", data=body, headers={"X-Line-Signature": "Zm9yZ2Vk"}) as r:
                return r.status
        except aiohttp.ClientError as e:  # the server may close while we still send: refused
            return type(e).__name__

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
        return await asyncio.gather(*(one(http) for _ in range(posts)))


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=30)
    ap.add_argument("--mb", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NAMJAI_")}
        env.update({
            "NAMJAI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/n.db", "NAMJAI_PHOTO_DIR": f"{tmp}/photos",
            "NAMJAI_PORT": str(port), "NAMJAI_SCHEDULER": "false", "NAMJAI_LOG_LEVEL": "WARNING",
            "NAMJAI_LINE_CHANNEL_SECRET": "bench-secret", "NAMJAI_LINE_ACCESS_TOKEN": "bench-token",
            "NAMJAI_LINE_API_HOST": "http://127.0.0.1:9", "PYTHONPATH": str(ROOT),
        })
        proc = subprocess.Popen([sys.executable, "-c", "from bot.cli import main; main()", "serve"], cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            await wait_up(url, proc)
            body = b"x" * (args.mb * 1024 * 1024)
            start = rss_mb(proc.pid)
            print(f"server RSS at start: {start:.1f} MB")
            peaks, afters = [], []
            for n in range(1, args.rounds + 1):
                peak = [start]
                stop = asyncio.Event()

                async def sample():
                    while not stop.is_set():
                        peak[0] = max(peak[0], rss_mb(proc.pid))
                        await asyncio.sleep(0.02)

                sampler = asyncio.create_task(sample())
                t0 = time.monotonic()
                statuses = await round_of_posts(url, args.posts, body)
                took = time.monotonic() - t0
                stop.set()
                await sampler
                await asyncio.sleep(2)
                after = rss_mb(proc.pid)
                peaks.append(peak[0])
                afters.append(after)
                summary = {s: statuses.count(s) for s in set(statuses)}
                print(f"round {n}: {args.posts} x {args.mb} MB forged posts in {took:.2f} s, answers {summary}; "
                      f"RSS peak {peak[0]:.1f} MB (+{peak[0] - start:.1f}), 2 s after {after:.1f} MB (+{after - start:.1f})")
            growth = max(peaks) - start
            assert peaks and afters and start > 0, "nothing measured"
            print(f"largest growth: {growth:.1f} MB (aim: < 50 MB) -> {'met' if growth < 50 else 'NOT met'}")
            print(f"after the last round: +{afters[-1] - start:.1f} MB")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    asyncio.run(main())
