"""Nobody is left talking to no one: a team without a chat hands its reports up the chain, the
operator sees such teams, and an escalation posted lower in the chain says so."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.i18n import lines
from flows.followup import ReportBrief, reminder
from flows.routing import TeamArea, reachable_team, unreachable_teams

TEAMS = [
    TeamArea("national", (), fallback=True),
    TeamArea("pcdp-20", ("20",)),
    TeamArea("pattaya-city", ("20",), has_area=True, parent="pcdp-20"),
    TeamArea("pcdp-21", ("21",)),
]


def test_a_team_with_a_chat_keeps_its_reports():
    assert reachable_team(TEAMS, "pattaya-city", {"pattaya-city", "pcdp-20"}) == "pattaya-city"


def test_the_parent_centre_then_the_province_then_the_national_desk():
    assert reachable_team(TEAMS, "pattaya-city", {"pcdp-20", "national"}) == "pcdp-20"
    assert reachable_team(TEAMS, "pattaya-city", {"national"}) == "national"
    assert reachable_team(TEAMS, "national", {"pcdp-20"}, province_code="20") == "pcdp-20"
    assert reachable_team(TEAMS, "national", {"pcdp-21"}) is None  # a landmark-only report: nobody


def test_unreachable_teams_for_the_operator():
    got = unreachable_teams(TEAMS, {"pcdp-20"})
    assert got == {"national": None, "pattaya-city": "pcdp-20", "pcdp-21": None}


def test_an_escalation_in_the_teams_own_chat_says_so():
    now = datetime(2026, 11, 25, 5, 0, tzinfo=timezone.utc)
    brief = ReportBrief(1, "NJ-2569-000001", False, now - timedelta(hours=5), "เมืองพัทยา", None, None)
    th = lines(reminder(brief, [], "supervisors", now, chat_role="team").lines, "th")
    assert th.startswith("🔺 แจ้งหัวหน้างาน") and "ยังไม่มีกลุ่มแชตของหัวหน้างานที่ผูกไว้ จึงแจ้งในกลุ่มทีมงานนี้แทน" in th
    en = lines(reminder(brief, [], "supervisors", now, chat_role="team").lines, "en")
    assert "No supervisors chat is bound, so this is posted in the team chat instead." in en
    assert "ผูกไว้" not in lines(reminder(brief, [], "supervisors", now, chat_role="supervisors").lines, "th")
