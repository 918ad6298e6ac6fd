"""The deadline rules as tables under a fixed clock: working time, holidays, chains, coalescing,
quiet hours, drafts and digest slots. Pure: no database."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from flows.deadlines import (
    Facts,
    after_quiet_hours,
    daily_slot,
    draft_action,
    due_steps,
    duration_msg,
    episode,
    load_policy,
    overdue,
    parse_duration,
    plan,
    policy_from_dict,
    weekly_slot,
)

BKK = ZoneInfo("Asia/Bangkok")
P = load_policy()


def bkk(y, mo, d, h=0, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BKK).astimezone(timezone.utc)


def local(at: datetime) -> tuple:
    t = at.astimezone(BKK)
    return (t.year, t.month, t.day, t.hour, t.minute)


@pytest.mark.parametrize(
    "start, delta, expected, why",
    [
        ((2026, 11, 25, 9, 0), "4h", (2026, 11, 25, 13, 0), "inside office hours"),
        ((2026, 11, 25, 15, 0), "4h", (2026, 11, 26, 11, 0), "1.5 h today, 2.5 h tomorrow"),
        ((2026, 11, 25, 12, 30), "4h", (2026, 11, 25, 16, 30), "exactly at closing"),
        ((2026, 11, 25, 7, 0), "1h", (2026, 11, 25, 9, 30), "before opening"),
        ((2026, 11, 28, 7, 0), "0m", (2026, 11, 30, 8, 30), "Saturday: Monday's opening"),
        ((2026, 12, 4, 18, 0), "4h", (2026, 12, 8, 12, 30), "Friday evening, Sat 5 Dec holiday, Mon 7 Dec in lieu"),
        ((2026, 12, 9, 16, 0), "1h", (2026, 12, 11, 9, 0), "Thu 10 Dec Constitution Day"),
        ((2026, 12, 30, 16, 0), "2h", (2027, 1, 4, 10, 0), "New Year's Eve and Day"),
        ((2026, 4, 10, 12, 0), "2d", (2026, 4, 17, 12, 0), "Songkran Mon 13 - Wed 15 Apr"),
    ],
)
def test_add_working_time(start, delta, expected, why):
    cal = P.calendar
    day = cal.day_length
    assert local(cal.add_working(bkk(*start), parse_duration(delta, day))) == expected, why


def test_working_days_and_holidays():
    cal = P.calendar
    assert not cal.is_working_day(date(2026, 12, 7))  # in lieu of Sat 5 Dec
    assert not cal.is_working_day(date(2026, 11, 28))  # Saturday
    assert cal.is_working_day(date(2026, 11, 25))
    custom = policy_from_dict({"holidays": {"country": "TH", "extra": ["2026-11-25"], "not_holidays": ["2026-12-07"]}}).calendar
    assert not custom.is_working_day(date(2026, 11, 25)) and custom.is_working_day(date(2026, 12, 7))


def steps_of(f: Facts, policy=P):
    return [(d.kind, d.step, d.to, local(d.due_at)) for d in due_steps(f, policy)]


def test_normal_report_on_friday_evening_before_a_public_holiday():
    f = Facts(1, False, "new", bkk(2026, 12, 4, 18, 0))
    assert steps_of(f) == [
        ("ack", "0.0", "team", (2026, 12, 8, 12, 30)),
        ("ack", "0.1", "supervisors", (2026, 12, 8, 16, 30)),
        ("ack", "0.2", "director", (2026, 12, 9, 16, 30)),
        ("onsite", "0.0", "team", (2026, 12, 9, 16, 30)),
        ("onsite", "0.1", "supervisors", (2026, 12, 11, 16, 30)),  # Thu 10 Dec is a holiday
        ("onsite", "0.2", "director", (2026, 12, 14, 16, 30)),
        ("close", "0.0", "team", (2026, 12, 11, 18, 0)),  # 7 calendar days
        ("close", "0.1", "supervisors", (2026, 12, 12, 18, 0)),
        ("close", "0.2", "director", (2026, 12, 14, 18, 0)),
        ("followup", "0", "reporter", (2026, 12, 4, 20, 0)),
    ]
    # nothing is due over the long weekend but the reporter's question (not at night)
    p = plan(due_steps(f, P), set(), bkk(2026, 12, 7, 23, 0), P)
    assert p.send == () and local(p.next_due_at) == (2026, 12, 8, 7, 0)
    p = plan(due_steps(f, P), set(), bkk(2026, 12, 7, 10, 0), P)
    assert [d.kind for d in p.send] == ["followup"]
    assert local(p.next_due_at) == (2026, 12, 8, 12, 30)


def test_urgent_report_at_night_on_a_holiday_ignores_office_hours():
    f = Facts(1, True, "new", bkk(2026, 12, 5, 2, 0))
    got = [(k, s, to, at) for k, s, to, at in steps_of(f) if k == "ack"]
    assert got == [
        ("ack", "0.0", "team", (2026, 12, 5, 2, 15)),
        ("ack", "0.1", "supervisors", (2026, 12, 5, 2, 30)),
        ("ack", "0.2", "director", (2026, 12, 5, 3, 0)),
    ]
    follow = [at for k, _, _, at in steps_of(f) if k == "followup"]
    assert follow == [(2026, 12, 5, 2, 20)]  # urgent: no quiet hours for the reporter


@pytest.mark.parametrize(
    "minutes, sent, send, coalesced, next_in",
    [
        (14, set(), [], [], 15),
        (15, set(), [("ack", "0.0", "team")], [], 20),
        (16, {("ack", "0.0")}, [], [], 20),
        (31, {("ack", "0.0"), ("followup", "0")}, [("ack", "0.1", "supervisors")], [], 60),
        # downtime: 3 hours with nothing sent → one message per chain, its highest step
        (180, set(), [("ack", "0.2", "director"), ("onsite", "0.1", "supervisors"), ("followup", "0", "reporter")],
         [("ack", "0.0"), ("ack", "0.1"), ("onsite", "0.0")], 240),
        # a later step already sent: the earlier ones are never sent afterwards
        (61, {("ack", "0.2"), ("followup", "0")}, [], [], 120),
    ],
)
def test_plan_urgent_chain(minutes, sent, send, coalesced, next_in):
    created = bkk(2026, 11, 25, 9, 0)
    f = Facts(1, True, "new", created)
    p = plan(due_steps(f, P), sent, created + timedelta(minutes=minutes), P, urgent=True)
    assert [(d.kind, d.step, d.to) for d in p.send] == send
    assert sorted((d.kind, d.step) for d in p.coalesced) == sorted(coalesced)
    assert p.next_due_at == created + timedelta(minutes=next_in)


def test_acknowledgement_stops_the_ack_chain_and_the_followup():
    created = bkk(2026, 11, 25, 9, 0)
    f = Facts(1, True, "acknowledged", created, ((created, "submit"), (created + timedelta(minutes=10), "ack")))
    kinds = {d.kind for d in due_steps(f, P)}
    assert kinds == {"onsite", "close"}
    closed = Facts(1, True, "closed", created, ((created, "submit"), (created + timedelta(minutes=10), "close")))
    assert due_steps(closed, P) == []


def test_transfer_starts_a_new_episode_with_its_own_keys():
    created = bkk(2026, 11, 25, 9, 0)
    moved = created + timedelta(hours=1)
    f = Facts(1, False, "transferred", created, ((created, "submit"), (created + timedelta(minutes=5), "ack"), (moved, "transfer")))
    ep = episode(f)
    assert ep.index == 1 and ep.start == moved and ep.acked_at is None
    ack = [d for d in due_steps(f, P) if d.kind == "ack"]
    assert [d.step for d in ack] == ["1.0", "1.1", "1.2"] and local(ack[0].due_at) == (2026, 11, 25, 14, 0)


@pytest.mark.parametrize(
    "created, urgent, expected",
    [
        ((2026, 11, 25, 10, 0), False, (2026, 11, 25, 12, 0)),
        ((2026, 11, 25, 20, 0), False, (2026, 11, 26, 7, 0)),  # 22:00 is quiet: 07:00
        ((2026, 11, 25, 23, 30), False, (2026, 11, 26, 7, 0)),
        ((2026, 11, 25, 23, 30), True, (2026, 11, 25, 23, 50)),  # urgent: their own report, at night
    ],
)
def test_reporter_followup_respects_quiet_hours(created, urgent, expected):
    f = Facts(1, urgent, "new", bkk(*created))
    (d,) = [d for d in due_steps(f, P) if d.kind == "followup"]
    assert local(d.due_at) == expected


def test_reporter_message_held_when_the_sweep_runs_in_quiet_hours():
    f = Facts(1, False, "new", bkk(2026, 11, 25, 10, 0))
    late = bkk(2026, 11, 25, 23, 0)  # the sweep was down from 12:00 to 23:00
    p = plan(due_steps(f, P), set(), late, P, urgent=False)
    assert "followup" not in [d.kind for d in p.send]
    assert local(p.next_due_at) == (2026, 11, 26, 7, 0)
    assert local(after_quiet_hours(bkk(2026, 11, 26, 3, 0), P)) == (2026, 11, 26, 7, 0)


@pytest.mark.parametrize(
    "asked_min_ago, nudged, now, urgent, expected",
    [
        (29, None, (2026, 11, 25, 10, 0), False, None),
        (30, None, (2026, 11, 25, 10, 0), False, "nudge"),
        (45, "after", (2026, 11, 25, 10, 0), False, None),  # nudged for this question already
        (45, "before", (2026, 11, 25, 10, 0), False, "nudge"),  # nudged for an earlier question
        (45, None, (2026, 11, 25, 22, 0), False, None),  # quiet hours
        (45, None, (2026, 11, 25, 22, 0), True, "nudge"),  # an urgent draft
        (24 * 60, "after", (2026, 11, 25, 10, 0), False, "drop"),
        (24 * 60, "after", (2026, 11, 25, 23, 0), False, None),  # dropped at 07:00 instead
    ],
)
def test_draft_actions(asked_min_ago, nudged, now, urgent, expected):
    now = bkk(*now)
    asked = now - timedelta(minutes=asked_min_ago)
    nudged_at = {None: None, "after": asked + timedelta(minutes=1), "before": asked - timedelta(minutes=1)}[nudged]
    assert draft_action(asked, nudged_at, now, P, urgent) == expected


@pytest.mark.parametrize(
    "now, expected",
    [
        ((2026, 11, 25, 8, 29), None),
        ((2026, 11, 25, 8, 30), date(2026, 11, 25)),
        ((2026, 11, 25, 16, 29), date(2026, 11, 25)),  # late after downtime: still that day
        ((2026, 11, 25, 16, 30), None),
        ((2026, 11, 28, 9, 0), None),  # Saturday
        ((2026, 12, 7, 9, 0), None),  # a public holiday (in lieu)
        ((2026, 12, 8, 8, 30), date(2026, 12, 8)),
    ],
)
def test_daily_digest_slot(now, expected):
    assert daily_slot(bkk(*now), P) == expected


def test_weekly_slot_is_monday_morning_and_holds_for_the_week():
    assert weekly_slot(bkk(2026, 11, 30, 8, 29), P) is None  # last week's is not sent a week late
    assert weekly_slot(bkk(2026, 11, 30, 8, 30), P) == date(2026, 11, 30)
    assert weekly_slot(bkk(2026, 12, 2, 15, 0), P) == date(2026, 11, 30)


def test_overdue_for_digests():
    created = bkk(2026, 11, 23, 9, 0)  # Monday
    f = Facts(1, False, "new", created)
    got = overdue(f, P, bkk(2026, 11, 24, 13, 0))
    assert [k for k, _ in got] == ["ack"] and got[0][1] == timedelta(hours=24)  # due Mon 13:00
    assert [k for k, _ in overdue(f, P, bkk(2026, 11, 25, 9, 0))] == ["ack", "onsite"]


def test_durations_and_policy_errors():
    assert parse_duration("1d4h") == timedelta(days=1, hours=4)
    assert parse_duration("2d", timedelta(hours=8)) == timedelta(hours=16)
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        policy_from_dict({"normal": {"milestones": {"ack": ["8h", "4h"]}}})
    with pytest.raises(ValueError):
        policy_from_dict({"normal": {"milestones": {"lunch": ["1h"]}}})
    assert duration_msg(timedelta(minutes=45)).params == {"m": 45}
    assert duration_msg(timedelta(hours=3, minutes=5)).params == {"h": 3, "m": 5}
    assert duration_msg(timedelta(days=2, hours=1)).params == {"d": 2, "h": 1}
