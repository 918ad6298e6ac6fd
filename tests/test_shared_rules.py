"""The rules the chat and the console share, as pure functions in flows/ (issue 13): who may
answer a question put to a reporter, the escalation fallback, the quiet-hours hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from flows.deadlines import chain_fallback, load_policy, volunteer_send_at
from flows.followup import may_answer

BKK = timezone(timedelta(hours=7))
POLICY = load_policy()
CHAIN = ("team", "supervisors", "director")


def bkk(y, mo, d, h=9, mi=0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=BKK).astimezone(timezone.utc)


@pytest.mark.parametrize("reporter, answerer, ok", [
    (("line", "U1"), ("line", "U1"), True),
    (("line", "U1"), ("line", "U2"), False),  # somebody else (a forwarded button)
    (("line", "U1"), ("telegram", "U1"), False),  # the same id on another platform
    ((None, None), ("line", "U1"), False),  # identity purged (PDPA): nobody
    ((None, None), ("line", None), False),
])
def test_who_may_answer_a_reporters_question(reporter, answerer, ok):
    assert may_answer(*reporter, *answerer) is ok


@pytest.mark.parametrize("role, bound, heard_by", [
    ("director", {"team", "supervisors", "director"}, "director"),
    ("director", {"team", "supervisors"}, "supervisors"),  # no director chat: the supervisors
    ("director", {"team"}, "team"),
    ("supervisors", {"team", "director"}, "team"),  # never up the chain
    ("team", {"supervisors"}, None),
    ("director", set(), None),
    ("someone", {"team"}, "team"),  # a role the chain does not name: the team's
])
def test_the_escalation_fallback(role, bound, heard_by):
    assert chain_fallback(role, CHAIN, bound.__contains__) == heard_by


@pytest.mark.parametrize("now, urgent, want", [
    (bkk(2026, 11, 25, 9), False, bkk(2026, 11, 25, 9)),
    (bkk(2026, 11, 25, 20, 59), False, bkk(2026, 11, 25, 20, 59)),
    (bkk(2026, 11, 25, 21, 0), False, bkk(2026, 11, 26, 7, 0)),
    (bkk(2026, 11, 26, 6, 59), False, bkk(2026, 11, 26, 7, 0)),
    (bkk(2026, 11, 26, 7, 0), False, bkk(2026, 11, 26, 7, 0)),
    (bkk(2026, 11, 25, 23, 0), True, bkk(2026, 11, 25, 23, 0)),  # about their urgent report: now
])
def test_the_quiet_hours_hold(now, urgent, want):
    assert volunteer_send_at(now, POLICY, urgent) == want
