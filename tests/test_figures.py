"""The fiscal year's figures as table tests: known reports, known times, known answers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from flows import console as rules
from flows import figures as fig
from flows.deadlines import load_policy
from flows.model import Address, CommandReceived, TextReceived
from flows.status import Role, Status, effect

BKK = timezone(timedelta(hours=7))
POLICY = load_policy()


def bkk(y, mo, d, h=9, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BKK).astimezone(timezone.utc)


@pytest.mark.parametrize("at, fy, be, month", [
    (bkk(2026, 9, 30, 23, 59), 2026, 2569, 11),
    (bkk(2026, 10, 1, 0, 0), 2027, 2570, 0),
    (datetime(2026, 9, 30, 17, 30, tzinfo=timezone.utc), 2027, 2570, 0),  # 00:30 on 1 Oct in Bangkok
    (bkk(2027, 1, 15), 2027, 2570, 3),
])
def test_fiscal_year_runs_october_to_september_in_bangkok(at, fy, be, month):
    assert fig.fiscal_year(at) == fy and fig.be(fy) == be and fig.month_index(at) == month


def test_fiscal_bounds():
    start, end = fig.fiscal_bounds(2027)
    assert start == bkk(2026, 10, 1, 0) and end == bkk(2027, 10, 1, 0)


@pytest.mark.parametrize("values, med, p90", [
    ([], None, None),
    ([5.0], 5.0, 5.0),
    ([1, 2, 3, 4], 2.5, 4),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5.5, 9),
    ([10, 1, 7, 3, 5], 5, 10),
])
def test_median_and_nearest_rank_percentile(values, med, p90):
    assert fig.median(values) == med and fig.percentile(values, 0.9) == p90


def urgent(created, ack=None, onsite=None, closed=None, outcome=None, team=1, who=("homeless",), repeat=False):
    status = "closed" if closed else ("on_site" if onsite else ("acknowledged" if ack else "new"))
    return fig.Case(team, created, True, status, ack, onsite, closed, outcome, who, repeat)


def test_figures_of_a_known_set_across_the_fiscal_year_boundary():
    t0 = bkk(2026, 10, 5, 10)  # FY 2570 (2027)
    cases = [
        # urgent (wall clock): ack 15 min, on site 2 h, close 7 d
        urgent(t0, ack=t0 + timedelta(minutes=10), onsite=t0 + timedelta(hours=1), closed=t0 + timedelta(days=1), outcome="shelter"),
        urgent(t0, ack=t0 + timedelta(minutes=20), onsite=t0 + timedelta(hours=3), closed=t0 + timedelta(days=8), outcome="family", who=("child",)),
        urgent(t0 + timedelta(days=40), ack=t0 + timedelta(days=40, minutes=5), who=("elderly", "sick"), repeat=True),  # November, open
        # received in FY 2569 (September 2026), closed in FY 2570: counts as closed in October only
        urgent(bkk(2026, 9, 29, 10), ack=bkk(2026, 9, 29, 10, 5), onsite=bkk(2026, 9, 29, 11), closed=bkk(2026, 10, 2, 10), outcome="shelter"),
        # another team's
        urgent(t0, team=2),
    ]
    now = t0 + timedelta(days=41)
    f = fig.figures([c for c in cases if c.team_id == 1], 2027, now, POLICY)
    assert f.received == 3 and f.urgent == 3 and f.repeats == 1
    assert f.hours["ack"] == {"n": 3, "median": pytest.approx(10 / 60), "p90": pytest.approx(20 / 60)}
    assert f.hours["onsite"] == {"n": 2, "median": pytest.approx(2.0), "p90": pytest.approx(3.0)}
    assert f.hours["close"] == {"n": 2, "median": pytest.approx(24 * 4.5), "p90": pytest.approx(24 * 8)}
    assert f.within["ack"] == {"met": 2, "counted": 3, "share": pytest.approx(2 / 3)}
    # the November report has not reached the person and its 2 h passed: counted, missed
    assert f.within["onsite"] == {"met": 1, "counted": 3, "share": pytest.approx(1 / 3)}
    # its close deadline (7 d) is still ahead: not counted
    assert f.within["close"] == {"met": 1, "counted": 2, "share": pytest.approx(0.5)}
    assert f.overdue_now == 1 and f.open_now == 1
    assert dict(f.outcomes) == {"shelter": 1, "family": 1}
    assert dict(f.categories) == {"homeless": 1, "child": 1, "elderly": 1, "sick": 1}
    assert f.monthly_received == [2, 1] + [0] * 10
    assert f.monthly_closed == [3] + [0] * 11  # October: both October reports and the September one
    last = fig.figures([c for c in cases if c.team_id == 1], 2026, now, POLICY)
    assert last.received == 1 and last.monthly_received[11] == 1 and last.hours["ack"]["median"] == pytest.approx(5 / 60)
    assert last.monthly_closed == [0] * 12  # closed in the next year


def test_normal_reports_count_office_hours():
    # Friday 16:00 in Bangkok; acknowledged Monday 09:30: 1 h 30 m of office hours (< 4 h)
    fri = bkk(2026, 11, 20, 16)
    c = fig.Case(1, fri, False, "acknowledged", bkk(2026, 11, 23, 9, 30))
    f = fig.figures([c], 2027, bkk(2026, 11, 23, 10), POLICY)
    assert f.within["ack"] == {"met": 1, "counted": 1, "share": 1.0}
    assert f.hours["ack"]["median"] == pytest.approx(65.5)  # wall-clock hours, as defined


def test_bar_chart_is_an_svg_with_a_bar_per_month_and_series():
    svg = fig.bar_chart_svg([("received", [1] * 12, "#00f"), ("closed", [0] * 11 + [3], "#0f0")], [str(m) for m in fig.MONTHS_FY], "t <x>")
    assert svg.startswith("<svg") and svg.count("<rect") == 24 + 2 and "t &lt;x&gt;" in svg and "<script" not in svg


def test_status_effect_is_the_one_rule():
    now = bkk(2026, 11, 25)
    e = effect("onsite", Status.ON_SITE, now)
    assert e.changes == {"status": Status.ON_SITE, "updated_at": now, "next_due_at": now, "on_site_at": now, "acknowledged_at": now}
    earlier = now - timedelta(hours=1)
    assert effect("onsite", Status.ON_SITE, now, acknowledged_at=earlier).changes["acknowledged_at"] == earlier
    e = effect("close", Status.CLOSED, now, arg="shelter", comment="ok")
    assert e.changes["closed_at"] == now and e.changes["outcome"] == "shelter" and e.detail == {"outcome": "shelter", "comment": "ok"}
    assert effect("reopen", Status.REOPENED, now).changes["closed_at"] is None
    e = effect("transfer", Status.TRANSFERRED, now, arg="x", team_id=1, target_team_id=2, target_code="x")
    assert e.changes["team_id"] == 2 and e.detail == {"from_team": 1, "to_team": "x"}
    assert effect("comment", Status.NEW, now, comment="hi") == type(e)({}, {"comment": "hi"})


TEAMS = [(1, ("20",)), (2, ("20",)), (3, ("12",)), (4, ("20", "21"))]


@pytest.mark.parametrize("binding, members, role, ids", [
    (None, [], None, None),
    ((1, "team"), [], Role.STAFF, {1}),
    ((1, "supervisors"), [], Role.SUPERVISOR, {1, 2, 4}),
    (None, [(3, "supervisor")], Role.SUPERVISOR, {3}),
    ((3, "team"), [(1, "staff")], Role.STAFF, {1, 3}),
    (None, [(3, "admin")], Role.ADMIN, None),
])
def test_scope(binding, members, role, ids):
    sc = rules.scope(rules.grants(binding, members), TEAMS)
    if role is None:
        assert sc is None
    else:
        assert sc.role is role and sc.team_ids == (None if ids is None else frozenset(ids))
        assert rules.Scope.from_dict(sc.to_dict()) == sc


def test_console_command():
    a = Address("sandbox", "team-x", "u", is_group=True)
    common = dict(address=a, event_id="1", at=bkk(2026, 1, 1))
    assert rules.is_console_command(TextReceived(**common, text=" /console@namjai_bot "))
    assert rules.is_console_command(TextReceived(**common, text="คอนโซล"))
    assert rules.is_console_command(CommandReceived(**common, name="console", arg=""))
    assert not rules.is_console_command(TextReceived(**common, text="console please"))


def test_the_office_clock_gives_the_calendars_own_deadlines():
    import random

    policy = fig.fast_policy(POLICY, 2027)
    clock = fig.OfficeClock(policy.calendar, fig.date(2024, 9, 1), fig.date(2028, 12, 31))
    rnd = random.Random(13)
    starts = [bkk(2026, 12, 31, 16, 30), bkk(2026, 12, 30, 8, 30), bkk(2026, 12, 5, 12), bkk(2027, 4, 12, 7)]
    starts += [bkk(2026, 10, 1) + timedelta(minutes=rnd.randrange(0, 365 * 24 * 60)) for _ in range(300)]
    for start in starts:
        for delta in (timedelta(hours=4), timedelta(hours=16), timedelta(0)):
            assert clock.add(start, delta) == POLICY.calendar.add_working(start, delta), (start, delta)
