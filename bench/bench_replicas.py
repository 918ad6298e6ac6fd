"""End to end with real processes: webhook in (through haproxy) → processed → delivered to the fake
platform, for 1, 2 and 3 `namjai serve` replicas on one PostgreSQL; then 50 volunteers typing at
once on ONE replica (each waits for the bot's answer, then a think time, before the next step).

    .venv/bin/python bench/bench_replicas.py [--volunteers 60] [--typing 50] [--replicas 1 2 3] [--think 0.3 2]

Prints, per replica count: completed reports/s (first webhook to the last receipt at the fake
platform), the p99 from a volunteer's "send" to its receipt arriving, the ratio to one replica,
the CPU time per report of each part (replicas, PostgreSQL's backends, haproxy, the fakes, this
driver: from /proc, so Linux and the same host), the webhook posts and platform calls, and the
ceiling two cores allow at one replica's CPU per report. Then, after a warm-up of 10 volunteers,
two typing runs per think time: in step (all start together and think exactly as long, so their
taps come in bursts of all of them) and spread (random starts, think times between half and one
and a half of it); for each, the steps/s, the p50/p99 from each event to the bot's first answer
arriving, the CPU per step of the replica and of PostgreSQL, and the PostgreSQL sessions opened
meanwhile (`pg_stat_database`, which counts a session when its backend reports; the benchmark's
own looks make that figure uncertain by one or two). It checks that it measured what it prints:
every report made (count in the database) and every receipt/answer counted. The processes are
tests/cluster.py's (no pytest): the fake Telegram and LINE platforms in a process of their own,
haproxy, the replicas. Telegram's shared 30 messages/s is raised for the throughput runs (else
that limit is all it measures: about 11 messages a report); no group is bound, so no card is
sent. Photos: moto's S3 server when installed (test extras), else one folder.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import random
import signal
import statistics
import sys
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.cluster import HAPROXY, Cluster, Sender, pg_available  # noqa: E402
from tests.workload import REF, SCRIPTS, Volunteer, plan_teams, report, tg_user  # noqa: E402

KINDS = [(p, s) for p in ("telegram", "line") for s in SCRIPTS]


TICK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + system, every thread) of a live process; with `children`, also those of
    its children that ended and were reaped (PostgreSQL's postmaster: the closed connections')."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / TICK


def cpu_snapshot(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far of each part of the run: the replicas, PostgreSQL (every backend and the
    postmaster's reaped children), haproxy, the fake platforms and S3, and this driver."""
    replicas = sum(_cpu(n.proc.pid) for n in cluster.nodes if n.proc is not None and n.proc.poll() is None)
    pg_parent: dict[int, int] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if (d / "comm").read_text().strip() == "postgres":
                    pg_parent[int(d.name)] = int((d / "status").read_text().split("PPid:", 1)[1].split()[0])
            except (OSError, ValueError, IndexError):
                continue
    # the postmaster: the one postgres process whose parent is not one
    pg = sum(_cpu(pid, children=ppid not in pg_parent) for pid, ppid in pg_parent.items())
    others = {p.pid for p in cluster.procs} - ({cluster.haproxy.pid} if cluster.haproxy else set())
    t = os.times()
    return {
        "replicas": replicas, "postgres": pg,
        "haproxy": _cpu(cluster.haproxy.pid) if cluster.haproxy else 0.0,
        "fakes": sum(_cpu(pid) for pid in others),
        "driver": t.user + t.system,
    }


def cpu_per_report(before: dict[str, float], after: dict[str, float], reports: int) -> dict[str, float]:
    return {k: (after[k] - before[k]) / reports for k in after}


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * 0.99))]


class Watch:
    """Reads the fakes' messages; first arrival time per chat after a point in the lists."""

    def __init__(self, cluster: Cluster):
        self.cluster, self.tg, self.line = cluster, [], []

    def poll(self) -> None:
        self.tg += self.cluster.telegram_calls(len(self.tg))
        self.line += self.cluster.line_sent(len(self.line))

    def arrivals(self) -> list[tuple[str, float, str]]:
        out = [(c["chat"], c["t"], c["text"]) for c in self.tg if c["ok"] and c["method"] in ("sendMessage", "sendPhoto")]
        return out + [(m["to"], m["t"], m["text"]) for m in self.line]


async def throughput(cluster: Cluster, teams, volunteers: int, first: int) -> dict:
    pts = [(t, p) for t in teams for p in t.points]
    vols = [Volunteer(first + i, *KINDS[i % 4], pts[i % len(pts)][0], pts[i % len(pts)][1]) for i in range(volunteers)]
    before = (await cluster.query("SELECT count(*) AS n FROM reports"))[0]["n"]
    watch = Watch(cluster)
    watch.poll()
    calls0 = len(watch.tg) + len(watch.line)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        sender = Sender(cluster, http)
        cpu0 = await asyncio.to_thread(cpu_snapshot, cluster)
        t0 = time.time()
        lasts = await asyncio.gather(*(report(sender, v) for v in vols))
        sent_confirm = {v.chat: t for v, t in zip(vols, lasts)}
        chats = {v.chat for v in vols}
        deadline = time.monotonic() + 600
        while True:
            watch.poll()
            receipts = {}
            for chat, t, text in watch.arrivals():
                if chat in chats and REF.search(text):
                    receipts.setdefault(chat, t)
            if len(receipts) == len(vols) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        cpu1 = await asyncio.to_thread(cpu_snapshot, cluster)
        posts, redeliveries = sender.posts, sender.redeliveries
    made = (await cluster.query("SELECT count(*) AS n FROM reports"))[0]["n"] - before
    assert made == len(vols), f"{made} reports made of {len(vols)}"
    assert len(receipts) == len(vols), f"{len(receipts)} receipts of {len(vols)}"
    lat = [receipts[c] - sent_confirm[c] for c in receipts]
    assert len(lat) == len(vols), "every receipt's latency measured"
    end = max(receipts.values())
    cpu = cpu_per_report(cpu0, cpu1, made)
    assert cpu["replicas"] > 0 and cpu["postgres"] > 0, f"the processes' CPU time was not read: {cpu}"
    calls = len(watch.tg) + len(watch.line) - calls0  # the platform calls of this round
    return {"reports": made, "seconds": end - t0, "rate": made / (end - t0), "p99": p99(lat), "p50": statistics.median(lat), "cpu": cpu,
            "posts": posts, "redeliveries": redeliveries, "calls": calls}


async def pg_sessions(cluster: Cluster) -> int:
    """Sessions ever opened on the run's database (PostgreSQL 14+): a pool too small for the demand
    keeps opening and closing connections, each with a TLS handshake and type introspection."""
    rows = await cluster.query("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
    return int(rows[0]["sessions"])


async def typing(cluster: Cluster, teams, n: int, first: int, think: float, spread: bool) -> dict:
    """n volunteers at once on one replica, each waiting for the bot's answer before its next step
    and `think` seconds more (reading, then tapping). In step (`spread` False): all start together
    and think exactly `think`, so their taps come in bursts of n. Spread: each starts at a random
    moment within the first `think` seconds and thinks between half and one and a half `think`
    (uniformly; seeded, the same every run)."""
    rnd = random.Random(first)
    starts = [rnd.uniform(0, think) if spread else 0.0 for _ in range(n)]
    pauses = [[rnd.uniform(0.5 * think, 1.5 * think) if spread else think for _ in range(10)] for _ in range(n)]
    url = cluster.nodes[0].url
    pts = [(t, p) for t in teams for p in t.points]
    watch = Watch(cluster)
    watch.poll()
    seen = {"tg": len(watch.tg), "line": len(watch.line)}
    latencies: list[float] = []
    arrived: dict[str, list[float]] = {}
    stop = asyncio.Event()

    async def poller():
        while not stop.is_set():
            old_tg, old_line = len(watch.tg), len(watch.line)
            watch.poll()
            for c in watch.tg[max(old_tg, seen["tg"]):]:
                # a choice that keeps the step (count, urgency) is answered by editing the summary in place
                if c["ok"] and c["method"] in ("sendMessage", "sendPhoto", "editMessageText"):
                    arrived.setdefault(c["chat"], []).append(c["t"])
            for m in watch.line[max(old_line, seen["line"]):]:
                arrived.setdefault(m["to"], []).append(m["t"])
            await asyncio.sleep(0.02)

    async def one(i: int, sender: Sender):
        team, point = pts[i % len(pts)]
        v = Volunteer(first + i, *KINDS[i % 4], team, point)
        steps = ["สวัสดี", "consent:yes", "nophoto:", "loc", "who:homeless", "who:done", "count:1", "urg:normal", "note:skip", "confirm:send"]
        await asyncio.sleep(starts[i])
        for step, pause in zip(steps, pauses[i]):
            have = len(arrived.get(v.chat, []))
            if v.platform == "telegram":
                chat, user = int(v.chat), tg_user(v.chat)
                if step == "สวัสดี":
                    upd = sender.tg_message(chat, user, text=step)
                elif step == "loc":
                    upd = sender.tg_message(chat, user, location={"latitude": point[0], "longitude": point[1]})
                else:
                    upd = sender.tg_press(chat, user, step)
                t = time.time()
                await sender.telegram(upd, url)
            else:
                if step == "สวัสดี":
                    ev = sender.line_event("text", user=v.chat, text=step)
                elif step == "loc":
                    ev = sender.line_event("location", user=v.chat, latitude=point[0], longitude=point[1], title="")
                else:
                    ev = sender.line_event("postback_group", user=v.chat, data=step)
                t = time.time()
                await sender.line(ev, url=url)
            deadline = time.monotonic() + 60
            while len(arrived.get(v.chat, [])) <= have:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer to {step} in {v.chat}")
                await asyncio.sleep(0.01)
            latencies.append(arrived[v.chat][have] - t)
            await asyncio.sleep(pause)  # the volunteer reads, then taps the next button
        return v

    before = (await cluster.query("SELECT count(*) AS n FROM reports"))[0]["n"]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200)) as http:
        sender = Sender(cluster, http)
        poll = asyncio.create_task(poller())
        sessions0 = await pg_sessions(cluster)
        cpu0 = await asyncio.to_thread(cpu_snapshot, cluster)
        t0 = time.time()
        await asyncio.gather(*(one(i, sender) for i in range(n)))
        seconds = time.time() - t0
        cpu1 = await asyncio.to_thread(cpu_snapshot, cluster)
        # the first look's own connection counts (once it closed), this one's not yet
        sessions = await pg_sessions(cluster) - sessions0 - 1
        stop.set()
        await poll
    made = (await cluster.query("SELECT count(*) AS n FROM reports"))[0]["n"] - before
    assert made == n, f"{made} reports made of {n}"
    assert len(latencies) == n * 10, "an answer to every step measured"
    cpu = cpu_per_report(cpu0, cpu1, len(latencies))
    assert cpu["replicas"] > 0 and cpu["postgres"] > 0, f"the processes' CPU time was not read: {cpu}"
    return {"reports": made, "answers": len(latencies), "seconds": seconds, "p50": statistics.median(latencies),
            "p99": p99(latencies), "cpu": cpu, "sessions": sessions}


def set_replicas(cluster: Cluster, n: int) -> None:
    for node in cluster.nodes:
        running = node.proc is not None and node.proc.poll() is None
        if node.index < n and not running:
            cluster.start_replica(node.index)
            cluster.wait_healthy(node.index)
            cluster.wait_lb_sees(node.index)
        elif node.index >= n and running:
            cluster.kill(node.index, signal.SIGTERM)
    time.sleep(4)  # haproxy's checks take the stopped ones out (3 × 1 s)


async def main(args) -> None:
    problem = await asyncio.to_thread(pg_available)  # it runs its own event loop
    if problem or HAPROXY is None:
        sys.exit(f"needs PostgreSQL at 127.0.0.1 and haproxy: {problem or 'haproxy missing'}")
    cluster = Cluster(replicas=3, s3=importlib.util.find_spec("moto") is not None,
                      env_extra={"NAMJAI_TELEGRAM_RATE_PER_SECOND": "1000", "NAMJAI_SCHEDULER": "false"})
    try:
        await asyncio.to_thread(cluster.start, 1)
        teams = await plan_teams(cluster, 4, 40, 0)
        results = {}
        first = 1
        for n in args.replicas:
            await asyncio.to_thread(set_replicas, cluster, n)
            results[n] = await throughput(cluster, teams, args.volunteers, first)
            first += args.volunteers
            r = results[n]
            print(f"{n} replica(s): {r['reports']} reports in {r['seconds']:.1f} s = {r['rate']:.2f} reports/s, "
                  f"send→receipt p50 {r['p50'] * 1000:.0f} ms p99 {r['p99'] * 1000:.0f} ms, "
                  f"× {r['rate'] / results[args.replicas[0]]['rate']:.2f} of {args.replicas[0]}", flush=True)
            c = r["cpu"]
            print("    CPU ms per report: " + ", ".join(f"{k} {v * 1000:.0f}" for k, v in c.items())
                  + f"; all {sum(c.values()) * 1000:.0f}; webhook posts {r['posts']} ({r['redeliveries']} redelivered), "
                  f"platform calls {r['calls']} ({r['calls'] / r['reports']:.1f} a report)", flush=True)
        one = results.get(1)
        if one is not None:
            # What this machine allows: one replica is bound by its own core (a process runs its event
            # loop on one); n replicas by min(n cores' worth of replicas, all the machine's cores
            # shared with PostgreSQL, haproxy, the fakes and this driver), at one replica's CPU cost
            # per report (no contention).
            c = one["cpu"]
            cores = os.cpu_count() or 1
            for n in args.replicas:
                if n > 1:
                    bound = min(n / c["replicas"], cores / sum(c.values()))
                    print(f"    ceiling for {n} replicas on {cores} cores at 1 replica's CPU per report: "
                          f"{bound:.2f} reports/s = × {bound / one['rate']:.2f} of 1 replica measured "
                          f"(1 replica's own core allows {1 / c['replicas']:.2f} reports/s)", flush=True)
        if args.typing:
            await asyncio.to_thread(set_replicas, cluster, 1)
            # warm-up: a replica that has served a while (statements prepared on its connections,
            # SQLAlchemy's compiled cache filled, lazy imports done), as in a deployment
            await typing(cluster, teams, 10, first, 0.3, False)
            first += 10
            for think, spread in [(t, sp) for t in args.think for sp in (False, True)]:
                t = await typing(cluster, teams, args.typing, first, think, spread)
                first += args.typing
                c = t["cpu"]
                how = f"{think * 0.5:g}–{think * 1.5:g} s between answer and next tap, starts spread" if spread else f"{think:g} s between answer and next tap, in step"
                print(f"{args.typing} volunteers typing on 1 replica, {how}: "
                      f"{t['answers']} answers in {t['seconds']:.1f} s = {t['answers'] / t['seconds']:.1f} steps/s, "
                      f"event→first answer p50 {t['p50'] * 1000:.0f} ms p99 {t['p99'] * 1000:.0f} ms (aim < 200 ms)", flush=True)
                print(f"    CPU ms per step: replica {c['replicas'] * 1000:.1f}, postgres {c['postgres'] * 1000:.1f}; "
                      f"new PostgreSQL sessions {t['sessions']}", flush=True)
    finally:
        await asyncio.to_thread(cluster.close)  # it drops the database with an event loop of its own


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--volunteers", type=int, default=60)
    ap.add_argument("--typing", type=int, default=50)
    ap.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3], help="none: the typing runs only")
    ap.add_argument("--think", type=float, nargs="+", default=[0.3, 2.0], help="seconds between an answer and the next tap")
    asyncio.run(main(ap.parse_args()))
