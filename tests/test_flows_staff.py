"""Statuses, transitions and the staff group's events, as tables."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from bot.i18n import catalogue, text
from flows.cards import ReportView, be_year, card, format_ref, picker, reporter_update
from flows.model import Address, BindChat, ChoiceMade, CommandReceived, Msg, Reply, StaffAction, TextReceived
from flows.staff import ListOpen, group_step, open_list, outcome_rows, transfer_rows
from flows.status import TRANSITIONS, Decision, Outcome, Role, Status, can_start, decide, may_undo

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
G = Address("sandbox", "team-x", "s", is_group=True)

DECISIONS = [
    ("ack", Status.NEW, Role.STAFF, "", True, Status.ACKNOWLEDGED, None),
    ("onsite", Status.ACKNOWLEDGED, Role.STAFF, "", True, Status.ON_SITE, None),
    ("onsite", Status.NEW, Role.STAFF, "", True, Status.ON_SITE, None),
    ("close", Status.ON_SITE, Role.STAFF, "shelter", True, Status.CLOSED, None),
    ("close", Status.ON_SITE, Role.STAFF, "", False, None, "staff.need_outcome"),
    ("close", Status.ON_SITE, Role.STAFF, "bogus", False, None, "staff.need_outcome"),
    ("ack", Status.CLOSED, Role.STAFF, "", False, None, "staff.already_closed"),
    ("ack", Status.ON_SITE, Role.STAFF, "", False, None, "staff.not_now"),
    ("ack", Status.NEW, None, "", False, None, "staff.not_member"),
    ("reopen", Status.CLOSED, Role.STAFF, "", False, None, "staff.not_allowed"),
    ("reopen", Status.CLOSED, Role.SUPERVISOR, "", True, Status.REOPENED, None),
    ("ack", Status.REOPENED, Role.STAFF, "", True, Status.ACKNOWLEDGED, None),
    ("ack", Status.TRANSFERRED, Role.STAFF, "", True, Status.ACKNOWLEDGED, None),
    ("comment", Status.CLOSED, Role.STAFF, "", True, Status.CLOSED, None),
    ("fly", Status.NEW, Role.ADMIN, "", False, None, "staff.unknown_action"),
    # the pickers' buttons once the report is closed: stale, nothing changes
    ("close", Status.CLOSED, Role.STAFF, "shelter", False, None, "staff.already_closed"),
    ("transfer", Status.CLOSED, Role.STAFF, "pcdp-21", False, None, "staff.already_closed"),
    ("onsite", Status.CLOSED, Role.STAFF, "", False, None, "staff.already_closed"),
]


@pytest.mark.parametrize("action,status,role,arg,ok,new,error", DECISIONS)
def test_decide(action, status, role, arg, ok, new, error):
    d = decide(action, status, role, arg=arg)
    assert (d.ok, d.new_status, d.error) == (ok, new, error)


def test_transfer_needs_another_team():
    assert decide("transfer", Status.NEW, Role.STAFF, arg="", same_team=True).error == "staff.need_team"
    assert decide("transfer", Status.NEW, Role.STAFF, arg="pcdp-21", same_team=False).new_status == Status.TRANSFERRED


def test_every_error_and_label_is_in_the_catalogue():
    cat = catalogue()
    for action in TRANSITIONS:
        if action != "comment":
            assert f"act.{action}" in cat
    for o in Outcome:
        assert f"outcome.{o.value}" in cat and f"outcome_plain.{o.value}" in cat
    for s in Status:
        assert f"status.{s.value}" in cat
    for _, _, _, _, _, _, err in DECISIONS:
        assert err is None or err in cat


GROUP = [
    ("bind by command", TextReceived(G, "e", NOW, text="/bind abcd-efgh"), None, [BindChat("ABCD-EFGH")]),
    ("bind by bare code", TextReceived(G, "e", NOW, text="ABCD-EFGH"), None, [BindChat("ABCD-EFGH")]),
    ("chatter ignored", TextReceived(G, "e", NOW, text="กินข้าวยัง"), None, []),
    ("a reply to a card is a comment", TextReceived(G, "e", NOW, text="ไปแล้ว"), 7, [StaffAction(7, "comment", comment="ไปแล้ว")]),
    ("accept button", ChoiceMade(G, "e", NOW, data="r:7:ack"), None, [StaffAction(7, "ack", "")]),
    ("close with outcome", ChoiceMade(G, "e", NOW, data="r:7:close:shelter"), None, [StaffAction(7, "close", "shelter")]),
]


@pytest.mark.parametrize("name,event,reply_report,want", GROUP, ids=[g[0] for g in GROUP])
def test_group_step(name, event, reply_report, want):
    assert group_step(event, reply_report) == want


def test_close_without_outcome_opens_the_picker_on_the_card_naming_the_report():
    assert group_step(ChoiceMade(G, "e", NOW, data="r:7:close")) == [StaffAction(7, "close", "")]
    view = ReportView(id=7, ref="NJ-2569-000007", status="acknowledged", created_at=NOW)
    c = picker(card(view, str), view.ref, "staff.choose_outcome", outcome_rows(7))
    assert c.lines[-1] == Msg("staff.choose_outcome", {"ref": "NJ-2569-000007"})
    datas = [b.data for row in c.buttons for b in row]
    assert datas == [f"r:7:close:{o.value}" for o in Outcome] + ["r:7:card"]
    assert c.lines[0] == card(view, str).lines[0]  # the card itself: its title and facts stay


def test_only_the_closer_may_undo_and_only_for_ten_minutes():
    closed_at = NOW
    assert may_undo("sandbox:u1", "sandbox:u1", closed_at, NOW + timedelta(minutes=10))
    assert not may_undo("sandbox:u1", "sandbox:u1", closed_at, NOW + timedelta(minutes=10, seconds=1))
    assert not may_undo("sandbox:u1", "sandbox:u2", closed_at, NOW + timedelta(minutes=1))
    assert not may_undo(None, "sandbox:u2", closed_at, NOW)
    assert decide("undo", Status.CLOSED, Role.STAFF, undo_ok=True) == Decision(True, new_status=Status.REOPENED)
    assert decide("undo", Status.CLOSED, Role.STAFF, undo_ok=False).error == "staff.undo_expired"
    assert decide("undo", Status.ON_SITE, Role.STAFF, undo_ok=True).error == "staff.not_now"
    view = ReportView(id=3, ref="R", status="closed", created_at=NOW, outcome="family", closed_at=NOW,
                      closed_by="Nok", closed_by_key="sandbox:u1", now=NOW + timedelta(minutes=9))
    assert [b.data for row in card(view, str).buttons for b in row] == ["r:3:undo", "r:3:reopen"]
    later = replace(view, now=NOW + timedelta(minutes=11))
    assert [b.data for row in card(later, str).buttons for b in row] == ["r:3:reopen"]


def test_the_card_says_how_long_it_waited_and_who_accepted_it():
    view = ReportView(id=3, ref="R", status="acknowledged", created_at=NOW, now=NOW + timedelta(minutes=25),
                      accepted_by="Nok", accepted_at=NOW + timedelta(minutes=5))
    lines = card(view, str).lines
    assert Msg("card.waiting", {"age": Msg("dur.min", {"m": 25})}) in lines
    assert Msg("card.accepted", {"who": "Nok", "at": NOW + timedelta(minutes=5)}) in lines
    assert "รอมาแล้ว 25 นาที" in text(Msg("card.waiting", {"age": Msg("dur.min", {"m": 25})}), "th")
    closed = replace(view, status="closed", closed_at=NOW + timedelta(hours=2), closed_by="Nok")
    keys = [m.key for m in card(closed, str).lines]
    assert "card.waiting" not in keys and "card.closed_by" in keys


def test_transfer_picker_offers_regions_when_the_province_is_unknown():
    rows = transfer_rows(5, [], ["1", "2", "3"])
    datas = [b.data for row in rows for b in row]
    assert datas == ["r:5:transfer:~1", "r:5:transfer:~2", "r:5:transfer:~3"]
    assert group_step(ChoiceMade(G, "e", NOW, data="r:5:transfer:~3")) == [StaffAction(5, "transfer", "~3")]
    assert can_start("transfer", Status.CLOSED, Role.STAFF).error == "staff.already_closed"
    assert can_start("close", Status.NEW, None).error == "staff.not_member"


@pytest.mark.parametrize("event,want", [
    (CommandReceived(G, "e", NOW, name="open"), [ListOpen()]),
    (TextReceived(G, "e", NOW, text="/open@namjai_bot"), [ListOpen()]),
    (TextReceived(G, "e", NOW, text="เรื่องค้าง"), [ListOpen()]),
    (CommandReceived(G, "e", NOW, name="help"), [Reply((Msg("group.help"),))]),
    (TextReceived(G, "e", NOW, text="/help"), [Reply((Msg("group.help"),))]),
])
def test_group_commands(event, want):
    assert group_step(event) == want
    assert group_step(event, bound=False) == [Reply((Msg("group.unbound"),))]


def test_open_list_oldest_first_with_ages_and_buttons():
    items = [(i, f"R{i}", "new", i == 2, timedelta(hours=i)) for i in (3, 2, 1)]
    reply = open_list(items, 12)
    assert reply.lines[0] == Msg("open.title", {"n": 12}) and reply.lines[-1] == Msg("open.more", {"n": 9})
    assert reply.lines[2].key == "open.item_urgent"
    assert [b.data for row in reply.buttons for b in row] == ["r:3:show", "r:2:show", "r:1:show"]
    assert open_list([], 0).lines == (Msg("open.none"),)


def test_reference_number_in_buddhist_era():
    assert be_year(datetime(2026, 12, 31, 18, 0, tzinfo=timezone.utc)) == 2570  # already 1 Jan in Bangkok
    assert format_ref(2569, 123) == "NJ-2569-000123"


def test_card_buttons_follow_status_and_reporter_told_in_plain_words():
    view = ReportView(id=3, ref="NJ-2569-000003", status="new", created_at=NOW, who=("begging",), law_track="begging", repeats=("NJ-2569-000001",))
    c = card(view, lambda code: code)
    datas = [b.data for row in c.buttons for b in row]
    assert datas == ["r:3:ack", "r:3:onsite", "r:3:close", "r:3:transfer"]
    keys = [m.key for m in c.lines]
    assert "card.law.begging" in keys and "card.repeats" in keys
    closed = ReportView(id=3, ref="NJ-2569-000003", status="closed", created_at=NOW, outcome="family")
    assert [b.data for row in card(closed, str).buttons for b in row] == ["r:3:reopen"]
    told = reporter_update(closed, "closed")
    assert told.lines[0].key == "tell.closed"
    assert reporter_update(view, "transferred") is None


def test_province_named_in_a_landmark():
    from flows.routing import province_in_text

    names = {"20": ("ชลบุรี", "Chon Buri"), "10": ("กรุงเทพมหานคร", "Bangkok"), "21": ("ระยอง", "Rayong")}
    assert province_in_text("หน้าตลาดหนองมน ชลบุรี", names) == "20"
    assert province_in_text("near the pier, Rayong", names) == "21"
    assert province_in_text("ใต้สะพานลอย", names) is None


def test_transfer_candidates():
    from flows.routing import TeamArea, transfer_candidates

    teams = [
        TeamArea("national", (), fallback=True),
        TeamArea("pcdp-20", ("20",)),
        TeamArea("pcdp-21", ("21",)),
        TeamArea("pattaya-city", ("20",), has_area=True, parent="pcdp-20"),
        TeamArea("laem-chabang", ("20",), has_area=True, parent="pcdp-20"),
    ]
    assert transfer_candidates(teams, "pattaya-city", "20") == ["pcdp-20", "laem-chabang", "national"]
    assert transfer_candidates(teams, "pcdp-20", "20") == ["pattaya-city", "laem-chabang", "national"]
    assert transfer_candidates(teams, "national", None) == []
