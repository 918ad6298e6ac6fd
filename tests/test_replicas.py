"""Three `namjai serve` processes on one PostgreSQL behind haproxy, with the platforms' redelivery,
a `kill -9` mid-load and a rolling restart: nothing lost, nothing twice, every conversation in the
order one process alone gives, the platforms' limits held where the messages arrive.

The processes are real (tests/cluster.py): the replicas, haproxy, the fake Telegram and LINE
platforms (a process of their own, so that they outlive the replicas) and an S3 server for the
photos. Skipped outside CI when PostgreSQL or haproxy is missing; in CI it fails instead.

Runs in CI (`CI` set) and when asked (`NAMJAI_REPLICAS_TEST=1`); a laptop's plain `pytest` skips it
for its cost: about 2.5 minutes of wall time on the shared 2-core machine when it is quiet (134 to
160 s in five runs of Dec 2 2026), up to about 14 minutes when it is loaded. Its first complete run failed two checks, both fixed since:
Telegram messages sent twice (a send cut in flight by the rolling restart's cancellation, or a row
whose lease lapsed in one replica's queue sent by two; see bot/outbox.py) and groups with 21
messages in a rolling minute (a limit's mark taken at the reservation, while the message arrived
later; see storage/pipeline.py rate_reserve). The one duplicate class left, a message the killed
replica delivered just before the kill -9 without recording it, is counted (`kill_duplicates`).
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter

import aiohttp
import pytest

from tests.cluster import HAPROXY, Cluster, Sender, pg_available
from tests.conftest import IN_CI
from tests.workload import EVENTS, KILL_WINDOW, MESSAGE_METHODS, SCRIPTS, Observer, Volunteer, bind, kill_duplicate, plan_teams, report, wait_until

pytestmark = pytest.mark.postgres

TEAMS = 8  # cards spread over eight group chats: Telegram's 20 a minute per group does not stretch the run
TELEGRAM_GROUPS = 3
VOLUNTEERS = 104  # under load, spread over the teams and the four kinds (platform, script)
OUTBOX_CONCURRENCY = 4  # the replicas' default (bot/settings.py outbox_concurrency)


def _require():
    import os

    if not IN_CI and os.environ.get("NAMJAI_REPLICAS_TEST") != "1":
        pytest.skip("about 2.5 to 14 minutes of real processes (see the module's docstring); runs in CI, or with NAMJAI_REPLICAS_TEST=1")
    missing = pg_available()
    if missing or HAPROXY is None:
        why = f"PostgreSQL: {missing}" if missing else "haproxy is not installed"
        if IN_CI:
            pytest.fail(f"the multi-replica test needs it in CI: {why}")
        pytest.skip(why)


@pytest.mark.timeout(1500)
def test_three_replicas_kill_and_rolling_restart():
    _require()
    cluster = Cluster(replicas=3)
    try:
        cluster.start(first=1)
        got = asyncio.run(scenario(cluster))
    except BaseException:
        print(f"cluster logs kept in {cluster.workdir}")
        raise
    finally:
        cluster.close()
    print({k: v for k, v in got.items() if k != "expected"})
    assert got["reports"] == got["volunteers"], "reports lost"
    assert got["out_of_order"] == [], "a volunteer's messages differ from what one process alone sends"
    assert got["card_dups"] == {}, "a card posted twice (or not at all)"
    assert got["cards"] == got["volunteers"]
    assert set(got["receipts"].values()) == {1} and len(got["receipts"]) == got["volunteers"], "a receipt sent twice"
    assert got["telegram_peak_second"] <= 30, "over Telegram's 30 messages a second"
    assert got["telegram_peak_group_minute"] <= 20, "over Telegram's 20 messages a minute to one group"
    assert got["outbox"].get("failed", 0) == 0 and got["local_failures"] == 0
    assert got["inbox"].get("failed", 0) == 0 and got["inbox"].get("pending", 0) == 0
    assert got["redeliveries"] > 0, "the kill and the restarts made the platform redeliver"
    # at most what the killed replica had in flight (its outbox sends NAMJAI_OUTBOX_CONCURRENCY chats at once)
    assert len(got["kill_duplicates"]) <= OUTBOX_CONCURRENCY, "more duplicates than sends in flight at the kill"


def note(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


async def scenario(cluster: Cluster) -> dict:
    kinds = [(p, s) for p in ("telegram", "line") for s in SCRIPTS]
    teams = await plan_teams(cluster, TEAMS, -(-VOLUNTEERS // TEAMS) + len(kinds), TELEGRAM_GROUPS)
    by_group = {t.group: t for t in teams}
    n = itertools.count(1)
    points = {t.code: iter(t.points) for t in teams}
    # the reference: one volunteer of each kind, alone on one replica before the others start
    reference = [Volunteer(next(n), p, s, teams[0], next(points[teams[0].code])) for p, s in kinds]
    load = []
    for i in range(VOLUNTEERS):
        team = teams[i % TEAMS]
        p, s = kinds[(i // TEAMS) % len(kinds)]
        load.append(Volunteer(next(n), p, s, team, next(points[team.code])))
    obs = Observer(cluster)
    one = cluster.nodes[0].url
    async with aiohttp.ClientSession() as http:
        sender = Sender(cluster, http)

        # the groups, bound through the load balancer; then the reference: one replica alone
        await asyncio.gather(*(bind(sender, cluster, t, one) for t in teams))
        await asyncio.gather(*(report(sender, v, one) for v in reference))

        async def reference_done():
            obs.poll()
            await obs.press_new_cards(sender, by_group, one)
            return len(obs.pressed) == len(reference) and all(
                len(obs.messages(v.platform, v.chat)) and "รับเรื่องแล้ว" in obs.messages(v.platform, v.chat)[-1]["text"]
                for v in reference
            ) and await cluster.idle()

        note("reference posted", len(reference))
        try:
            await wait_until(reference_done, 120, "the reference run")
        except TimeoutError:
            note("reference stuck: pressed", sorted(obs.pressed), "idle", await cluster.idle(),
                 await cluster.query("SELECT status, count(*) AS n FROM outbox GROUP BY status"))
            for v in reference:
                await explain(cluster, obs, v)
            raise
        note("reference done")
        expected = {v.kind: [v.normal(m["text"]) for m in obs.messages(v.platform, v.chat)] for v in reference}

        # three replicas behind haproxy; the load, a kill -9 in its middle, then a rolling restart
        await asyncio.to_thread(cluster.start_rest)
        t0 = time.time()
        events = sum(EVENTS[v.script] for v in load)
        posts_before = sender.posts
        stop = asyncio.Event()

        async def presser():
            while not stop.is_set():
                obs.poll()
                await obs.press_new_cards(sender, by_group)
                await asyncio.sleep(0.5)

        async def chaos():
            while sender.posts - posts_before < events * 0.35:
                await asyncio.sleep(0.05)
            cluster.kill(1, signal.SIGKILL)
            killed_at = time.time()
            await asyncio.sleep(1.0)
            await asyncio.to_thread(cluster.start_replica, 1)
            await asyncio.to_thread(cluster.wait_healthy, 1)
            return killed_at

        pressing = asyncio.create_task(presser())
        crash = asyncio.create_task(chaos())
        note("load starts", len(load), events)
        await asyncio.gather(*(report(sender, v) for v in load))
        note("load posted")
        killed_at = await crash
        await asyncio.to_thread(cluster.rolling_restart)
        rolled_at = time.time()

        everyone = reference + load

        async def all_done():
            rows = await cluster.query("SELECT count(*) AS n FROM reports")
            return rows[0]["n"] == len(everyone) and len(obs.pressed) == len(everyone) and all(
                len(obs.messages(v.platform, v.chat)) >= len(expected[v.kind]) for v in load
            ) and await cluster.idle()

        note("rolled")
        await wait_until(all_done, 900, "the load")
        note("all done")
        await asyncio.sleep(2.0)  # anything sent late or twice arrives meanwhile
        stop.set()
        await pressing
        obs.poll()
        done_at = time.time()

    # --- the counts
    reports = await cluster.query("SELECT count(*) AS n FROM reports")
    outbox = {r["status"]: r["n"] for r in await cluster.query("SELECT status, count(*) AS n FROM outbox GROUP BY status")}
    local = await cluster.query("SELECT count(*) AS n FROM outbox WHERE last_error LIKE '%rate limit (local)%'")
    inbox = {r["status"]: r["n"] for r in await cluster.query("SELECT status, count(*) AS n FROM inbox GROUP BY status")}
    shown = 0
    for v in load:
        got_seq = [v.normal(m["text"]) for m in obs.messages(v.platform, v.chat)]
        if got_seq != expected[v.kind] and shown < 4:
            shown += 1
            note("differs", v.chat, v.kind, "got:", got_seq, "expected:", expected[v.kind])
            await explain(cluster, obs, v)
    # the documented duplicate class: a message the killed replica's platform call delivered just
    # before the kill -9, not recorded as sent, sent again after its lease (counted, not hidden)
    seqs = {v.chat: [(v.normal(m["text"]), m["t"]) for m in obs.messages(v.platform, v.chat)] for v in everyone}
    kill_dups = {}
    for v in load:
        if [x for x, _ in seqs[v.chat]] != expected[v.kind]:
            i = kill_duplicate(seqs[v.chat], expected[v.kind], killed_at)
            if i is not None:
                kill_dups[v.chat] = seqs[v.chat][i][0][:40]
                del seqs[v.chat][i]
    out_of_order = [v.chat for v in load if [x for x, _ in seqs[v.chat]] != expected[v.kind]]
    cards = obs.cards()
    for rid, posts in cards.items():  # a card posted twice, the first copy at the kill: the same class
        if len(posts) == 2 and killed_at - KILL_WINDOW[0] <= posts[0][3] <= killed_at + KILL_WINDOW[1]:
            kill_dups[f"card {rid}"] = posts[0][1]
            del posts[0]
    card_dups = {rid: len(p) for rid, p in cards.items() if len(p) != 1}
    receipts = Counter()
    for v in everyone:
        for text, _ in seqs[v.chat]:
            if text == expected[v.kind][-2]:
                receipts[v.chat] += 1
    overall, per_group = obs.telegram_peaks()
    for chat, peak in per_group.items():
        if peak > 20:  # what the platform saw in that group's worst minute, and the marks kept for it
            times = sorted(c["t"] for c in obs.tg if c["chat"] == chat and c["method"] in MESSAGE_METHODS)
            note("group over", chat, peak, [round(t - times[0], 2) for t in times])
            marks = await cluster.query("SELECT at FROM rate_marks WHERE bucket = $1 ORDER BY at", f"telegram:{chat}")
            note("  marks", [round(m["at"].timestamp() - times[0], 2) for m in marks])
    return dict(
        volunteers=len(everyone), reports=reports[0]["n"], outbox=outbox, inbox=inbox, local_failures=local[0]["n"],
        out_of_order=out_of_order, cards=len(cards), card_dups=card_dups, receipts=receipts,
        telegram_peak_second=overall, telegram_peak_group_minute=max(per_group.values()), groups=per_group,
        kill_duplicates=kill_dups, redeliveries=sender.redeliveries, posts=sender.posts, seconds=round(done_at - t0, 1),
        killed_after=round(killed_at - t0, 1), forced_stops=cluster.forced_stops, rolled_after=round(rolled_at - t0, 1), expected=expected,
    )


async def explain(cluster: Cluster, obs: Observer, v: Volunteer) -> None:
    """What a chat that differs went through: its inbox events, its outbox rows and what the
    platform received (tells one row sent twice from a step run twice)."""
    for r in await cluster.query(
        "SELECT id, event_id, status, attempts, received_at, processed_at, error FROM inbox WHERE conv_key = $1 ORDER BY id",
        f"{v.platform}:{v.chat}",
    ):
        note("  inbox", dict(r))
    for r in await cluster.query(
        "SELECT id, status, attempts, source_event, created_at, sent_at, claimed_until, message_id, last_error,"
        " left(payload->>'text', 40) AS text FROM outbox WHERE platform = $1 AND chat_id = $2 ORDER BY id",
        v.platform, v.chat,
    ):
        note("  outbox", dict(r))
    calls = obs.tg if v.platform == "telegram" else obs.line
    for c in calls:
        if c.get("chat", c.get("to")) == v.chat:
            note("  platform", round(c["t"], 3), c.get("method", c.get("via")), c.get("ok"), (c.get("text") or "")[:40])
