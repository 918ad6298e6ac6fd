"""Benchmark the console: with 100,000 reports on PostgreSQL, the list, the map's data and the
fiscal-year page of one province (Chonburi, as its centre's supervisor sees it) answer in under
300 ms server-side (p95), and the query plans use the indexes.

Creates a PostgreSQL database of its own (dropped at the end), imports the shipped teams, fills in
N reports over two fiscal years (a third of them Chonburi's), runs the real app on loopback, signs
in with a console link and times each page R times inside the server (a middleware around the
handler: server-side time, without the client). Then prints EXPLAIN (ANALYZE) of the queries.

Usage: .venv/bin/python bench/bench_console.py [N] [R]
Server: NAMJAI_TEST_PG (default postgresql://postgres@127.0.0.1:5432/test). Skips without one.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG = os.environ.get("NAMJAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
AIM_MS = 300.0


async def fill(conn, team_ids: list[int], local_ids: list[int], n: int, now: datetime) -> None:
    """n reports: a third to the province's teams, the rest spread; 30% open; times known."""
    await conn.execute(
        """
        INSERT INTO reports (ref, team_id, status, outcome, urgent, who, count, location_to_confirm, law_track,
                             reporter_lang, province_code, district_code, lat, lon,
                             created_at, updated_at, acknowledged_at, on_site_at, closed_at)
        SELECT 'B-' || g,
               CASE WHEN g % 3 = 0 THEN ($2::int[])[1 + (g / 3) % cardinality($2::int[])]
                    ELSE ($1::int[])[1 + g % cardinality($1::int[])] END,
               s.status,
               CASE WHEN s.status = 'closed' THEN (ARRAY['shelter','family','helped_on_site','not_found'])[1 + g % 4] END,
               g % 13 = 0,
               CASE WHEN g % 5 = 0 THEN '["begging", "elderly"]'::json ELSE '["homeless"]'::json END,
               '1', false, 'destitution', 'th',
               CASE WHEN g % 3 = 0 THEN '20' ELSE '10' END, CASE WHEN g % 3 = 0 THEN '2004' ELSE '1001' END,
               CASE WHEN g % 3 = 0 THEN 12.9 + (g % 100) * 0.001 ELSE 13.7 END, CASE WHEN g % 3 = 0 THEN 100.87 ELSE 100.5 END,
               c.at, c.at,
               CASE WHEN s.status <> 'new' THEN c.at + (g % 240) * interval '1 minute' END,
               CASE WHEN s.status IN ('on_site', 'closed') THEN c.at + (1 + g % 72) * interval '1 hour' END,
               CASE WHEN s.status = 'closed' THEN c.at + (1 + g % 14) * interval '1 day' END
        FROM generate_series(1, $3::int) AS g,
             LATERAL (SELECT $4::timestamptz - (g % 700) * interval '1 day' - (g % 1440) * interval '1 minute' AS at) c,
             LATERAL (SELECT CASE WHEN g % 10 < 7 THEN 'closed' WHEN g % 10 = 7 THEN 'new'
                                  WHEN g % 10 = 8 THEN 'acknowledged' ELSE 'on_site' END AS status) s
        """,
        team_ids, local_ids, n, now,
    )
    await conn.execute("ANALYZE reports")


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[max(0, int(round(q * len(v) + 0.5)) - 1)]


async def main(n: int, rounds: int) -> int:
    import asyncpg
    from aiohttp import ClientSession, CookieJar, web
    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from bot.settings import Settings
    from bot.teams import EXAMPLE, import_teams
    from handlers.base import SERVICES
    from storage import repo
    from storage.db import Database
    from storage.migrate import upgrade

    name = f"namjai_bench_console_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG, timeout=5)
    except Exception as e:
        print(f"skipped: no PostgreSQL at {PG}: {e}")
        return 0
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = "postgresql+asyncpg://" + PG.split("://", 1)[1].rsplit("/", 1)[0] + "/" + name
    dsn = PG.rsplit("/", 1)[0] + "/" + name
    now = datetime.now(timezone.utc)
    try:
        db = Database(url)
        await upgrade(db)
        await import_teams(db, EXAMPLE)
        async with db.transaction() as s:
            teams = await repo.teams_all(s)
            centre = next(t for t in teams if t.code == "pcdp-20")
            await repo.member_set(s, centre.id, "bench", "director", "supervisor")
        await db.dispose()
        local = [t.id for t in teams if "20" in (t.provinces or [])]
        others = [t.id for t in teams if t.id not in local]
        conn = await asyncpg.connect(dsn)
        t0 = time.perf_counter()
        await fill(conn, others, local, n, now)
        count = await conn.fetchval("SELECT count(*) FROM reports")
        print(f"filled {count} reports in {time.perf_counter() - t0:.1f} s; province 20 teams: {len(local)}")
        assert count == n

        settings = Settings(_env_file=None, database_url=url, sandbox=False, scheduler=False, photo_dir=f"/tmp/{name}-photos")
        app = create_app(settings)
        timings: dict[str, list[float]] = {}

        @web.middleware
        async def timer(request, handler):
            start = time.perf_counter()
            try:
                return await handler(request)
            finally:
                timings.setdefault(request.path, []).append((time.perf_counter() - start) * 1000)

        app.middlewares.insert(0, timer)
        async with TestServer(app, host="127.0.0.1") as server:
            svc = app[SERVICES]
            link = await svc.console.link_for("pcdp-20", "bench:director")
            token = link.rsplit("/", 1)[1]
            async with ClientSession(base_url=str(server.make_url("/")), cookie_jar=CookieJar(unsafe=True)) as http:
                r = await http.post(f"/console/login/{token}")
                assert r.status == 200, r.status
                pages = {"/console/": "list (open, province)", "/console/map.json": "map data (open, province)", "/console/figures": "fiscal-year page (province)"}
                sizes = {}
                for _ in range(2):  # warm-up
                    for p in pages:
                        await (await http.get(p)).read()
                timings.clear()
                for _ in range(rounds):
                    for p in pages:
                        resp = await http.get(p)
                        body = await resp.read()
                        assert resp.status == 200, (p, resp.status)
                        sizes[p] = len(body)
                points = len((await (await http.get("/console/map.json")).json())["points"])
        failed = 0
        print(f"\nserver-side time over {rounds} requests each (ms):")
        for p, label in pages.items():
            t = timings[p]
            assert len(t) >= rounds
            t = t[:rounds]
            p95 = pct(t, 0.95)
            ok = p95 < AIM_MS
            failed += not ok
            print(f"  {label:32} p50 {statistics.median(t):7.1f}  p95 {p95:7.1f}  max {max(t):7.1f}  ({sizes[p]} bytes)  {'OK' if ok else 'ABOVE AIM'} (< {AIM_MS:.0f})")
        print(f"  map points returned: {points}")

        ids = local
        from flows import figures as fig

        start, end = fig.fiscal_bounds(fig.fiscal_year(now))
        plans = {
            "list page": ("SELECT * FROM reports WHERE team_id = ANY($1::int[]) AND status <> 'closed' ORDER BY created_at, id LIMIT 200", [ids]),
            "list counts": ("SELECT status, count(*) FROM reports WHERE team_id = ANY($1::int[]) AND status <> 'closed' GROUP BY status", [ids]),
            "map data": ("SELECT id, ref, lat, lon, status, urgent FROM reports WHERE team_id = ANY($1::int[]) AND status <> 'closed' AND lat IS NOT NULL ORDER BY created_at LIMIT 5000", [ids]),
            "figures: the year": ("SELECT team_id, created_at, status FROM reports WHERE team_id = ANY($1::int[]) AND created_at >= $2 AND created_at < $3", [ids, start, end]),
            "figures: open outside the year": ("SELECT team_id, created_at, status FROM reports WHERE team_id = ANY($1::int[]) AND status <> 'closed' AND (created_at < $2 OR created_at >= $3)", [ids, start, end]),
        }
        print("\nquery plans (EXPLAIN ANALYZE):")
        for label, (sql, args) in plans.items():
            rows = await conn.fetch("EXPLAIN ANALYZE " + sql, *args)
            text = "\n".join("    " + r[0] for r in rows)
            uses = "Index" in text
            failed += not uses
            print(f"  {label}: {'uses an index' if uses else 'NO INDEX USED'}\n{text}")
        await conn.close()
        return 1 if failed else 0
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    r = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    sys.exit(asyncio.run(main(n, r)))
