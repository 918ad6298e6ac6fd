"""The fiscal-year figures aggregated by PostgreSQL give the numbers `flows.figures` gives for the
same reports: medians, nearest-rank 90th percentiles, deadlines on the office clock (weekends,
holidays, reports received after closing, milestones met at the very deadline or a second after),
overdue now, months, outcomes, categories, ratings; across a fiscal-year boundary."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from flows import figures as fig
from flows.deadlines import load_policy
from storage import console_repo as crepo
from storage.models import Report, Team

pytestmark = pytest.mark.postgres

BKK = timezone(timedelta(hours=7))
POLICY = load_policy()


def bkk(y, mo, d, h=9, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BKK).astimezone(timezone.utc)


def _reports(team_ids: list[int], now: datetime, n: int, seed: int) -> list[Report]:
    rnd = random.Random(seed)
    # instants the office clock treats specially: openings, closings, weekends, a holiday (5 Dec),
    # the fiscal year's first and last minutes
    special = [bkk(2026, 12, 4, 16, 30), bkk(2026, 12, 7, 8, 30), bkk(2026, 12, 5, 12), bkk(2026, 12, 31, 16, 29),
               bkk(2026, 10, 1, 0, 0), bkk(2026, 9, 30, 23, 59), bkk(2027, 1, 2, 7), bkk(2026, 11, 20, 16)]
    out = []
    for i in range(n):
        created = special[i] if i < len(special) else bkk(2026, 7, 1) + timedelta(minutes=rnd.randrange(0, 200 * 24 * 60))
        if created >= now:
            created = now - timedelta(hours=rnd.randrange(1, 48))
        urgent = rnd.random() < 0.3
        case = fig.Case(0, created, urgent)
        times = {}
        for m in ("ack", "onsite", "close"):
            due = fig.first_deadline(case, m, POLICY)
            pick = rnd.random()
            if pick < 0.25:
                times[m] = None
            elif pick < 0.4 and due is not None:
                times[m] = due  # met at the very deadline
            elif pick < 0.5 and due is not None:
                times[m] = due + timedelta(seconds=1)
            else:
                times[m] = created + timedelta(minutes=rnd.randrange(1, 12 * 24 * 60))
        ack, onsite, close = times["ack"], times["onsite"], times["close"]
        if onsite and ack and ack > onsite:
            ack = onsite
        closed = close is not None and close <= now and rnd.random() < 0.7
        status = "closed" if closed else ("on_site" if onsite and onsite <= now else ("acknowledged" if ack and ack <= now else "new"))
        out.append(Report(
            ref=f"T-{seed}-{i}", team_id=rnd.choice(team_ids), status=status, urgent=urgent,
            outcome=rnd.choice(["shelter", "family", "not_found", None]) if closed else None,
            who=rnd.choice([["homeless"], ["begging", "elderly"], [], None]),
            repeat_of=rnd.choice([None, [], ["X-1"]]),
            created_at=created, updated_at=created,
            acknowledged_at=ack if ack and ack <= now and status != "new" else None,
            on_site_at=onsite if onsite and onsite <= now and status in ("on_site", "closed") else None,
            closed_at=close if closed else None,
        ))
    return out


def _same(a: fig.Figures, b: fig.Figures) -> None:
    for name in ("received", "urgent", "repeats", "open_now", "overdue_now", "monthly_received", "monthly_closed"):
        assert getattr(a, name) == getattr(b, name), name
    assert dict(a.outcomes) == dict(b.outcomes) and dict(a.categories) == dict(b.categories) and dict(a.ratings) == dict(b.ratings)
    assert a.within == b.within
    for m in fig.MILESTONES:
        x, y = a.hours[m], b.hours[m]
        assert x["n"] == y["n"], m
        for k in ("median", "p90"):
            assert (x[k] is None) == (y[k] is None) and (x[k] is None or x[k] == pytest.approx(y[k], abs=1e-9)), (m, k)


@pytest.mark.parametrize("seed", [1, 2])
async def test_postgres_aggregates_give_the_python_figures(pg_db, seed):
    async with pg_db.transaction() as s:
        teams = [Team(code=f"t{i}", name_th=f"t{i}", name_en=f"t{i}", kind="municipality") for i in range(3)]
        s.add_all(teams)
        await s.flush()
        ids = [t.id for t in teams]
        now = bkk(2027, 1, 5, 10, 15)
        reports = _reports(ids, now, 400, seed)
        s.add_all(reports)
        await s.flush()
        for i, r in enumerate([r for r in reports if r.status == "closed"][:25]):
            r.rating = ("good", "ok", "bad")[i % 3]
    checked = 0
    for fy in (2026, 2027):
        for scope in (ids[:2], None):
            async with pg_db.session() as s, pg_db.session() as other:  # the console's two connections, or one
                sql = await crepo.figures_by_team(s, scope, fy, now, POLICY, other=other if scope is None else None)
                start, end = fig.fiscal_bounds(fy)
                py = fig.figures_by(await crepo.figure_cases(s, scope, start, end), fy, now, POLICY, lambda c: c.team_id)
            assert set(sql) == set(py)
            for k in py:
                _same(sql[k], py[k])
            checked += py[None].received
            assert py[None].within["ack"]["counted"] > 0 and py[None].hours["close"]["n"] > 0
    assert checked > 400  # both years and both scopes held reports
