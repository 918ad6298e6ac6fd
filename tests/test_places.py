"""Where a place is and who gets it: the real boundaries, the example teams, the flows' rules.

Routing (a point to its team, the one-tap switch near an edge), landmarks read by the place names
they contain, and every typed form of a place through the volunteer's conversation.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from bot.engine import FlowContext
from bot.places import PlaceRouter
from bot.teams import EXAMPLE, read_teams
from flows.model import Address, ChoiceMade, Reply, TextReceived
from flows.places import Gazetteer
from flows.report import NOTICE_VERSION, Conversation, Draft, step
from flows.routing import TeamArea, choose_team, near_teams
from storage.boundaries import Boundaries

NOW = datetime(2026, 12, 2, 2, 0, tzinfo=timezone.utc)
ME = Address("sandbox", "u-a", "a")


@pytest.fixture(scope="module")
def router() -> PlaceRouter:
    return PlaceRouter(Boundaries.default(), read_teams(EXAMPLE))


@pytest.fixture(scope="module")
def ctx(router) -> FlowContext:
    return FlowContext(NOW, router.boundaries, router)


# --- a point to its team ---------------------------------------------------------------

@pytest.mark.parametrize(
    "label, lat, lon, team",
    [
        # whole districts that Natural Earth gave to the neighbouring province
        ("Muak Lek, Saraburi", 14.654, 101.198, "pcdp-19"),
        ("Tha Song Yang, Tak", 17.23, 98.22, "pcdp-63"),
        ("Kut Khaopun, Ubon Ratchathani", 15.80, 105.04, "pcdp-34"),
        ("Thepharak, Nakhon Ratchasima", 15.29, 101.52, "pcdp-30"),
        # Pattaya City is tambon Nong Prue and tambon Na Kluea
        ("Nong Prue (Pattaya, Walking Street)", 12.9277, 100.8724, "pattaya-city"),
        ("Nong Prue (Pattaya, inland)", 12.935, 100.889, "pattaya-city"),
        ("Na Kluea (Pattaya, north)", 12.9665, 100.8915, "pattaya-city"),
        ("Surasak", 13.13, 100.96, "chao-phraya-surasak-city"),
        ("Chonburi town hall", 13.3611, 100.9847, "pcdp-20"),
        ("Bang Lamung outside the city (Pong)", 12.92, 101.02, "pcdp-20"),
    ],
)
def test_points_go_to_their_own_team(router, label, lat, lon, team):
    assert router.locate(lat, lon).team == team, label


def test_a_point_in_the_gulf_is_not_routed_without_a_word(router):
    found = router.locate(12.5, 100.95)
    assert not found.inside and found.sea and found.province_code == "20"


def test_near_a_province_border_the_neighbour_centre_is_one_tap_away(router):
    found = router.locate(13.80, 100.52)  # Bang Sue, by Nonthaburi
    assert found.team == "pcdp-10" and "pcdp-12" in found.near_teams and "12" in found.neighbours


def test_near_a_municipality_edge_the_other_team_is_offered(router):
    # Na Kluea, a few hundred metres from the Bang Lamung (Nong Pla Lai / Pong / Bang Lamung) side
    b = router.boundaries
    inside = [(12.9665 + dy, 100.8915 + dx) for dy in (0.0, 0.005, 0.01, 0.015, 0.02) for dx in (0.0, 0.01, 0.02, 0.03)]
    seen = [(pt, router.locate(*pt)) for pt in inside]
    edge = [(pt, f) for pt, f in seen if f.team == "pattaya-city" and "pcdp-20" in f.near_teams]
    assert edge, "no point near Pattaya City's edge offers the provincial centre"
    for pt, f in edge:
        assert any(d <= 1_000 and b.locate(*pt).province_code == "20" for d in b.near_subdistricts(*pt, 1_000).values())


def test_most_specific_team_wins():
    teams = [
        TeamArea("nat", (), fallback=True),
        TeamArea("prov", ("20",)),
        TeamArea("district", ("20",), codes=("2004",)),
        TeamArea("sub", ("20",), codes=("200402",)),
        TeamArea("poly", ("20",), has_area=True),
    ]
    assert choose_team(teams, "20", ["poly"], "2004", "200402") == "poly"
    assert choose_team(teams, "20", [], "2004", "200402") == "sub"
    assert choose_team(teams, "20", [], "2004", "200408") == "district"
    assert choose_team(teams, "20", [], "2001", "200101") == "prov"
    assert choose_team(teams, "21", [], "2101", "210101") == "nat"
    assert choose_team(teams, None, []) == "nat"


def test_near_teams_rules():
    teams = [TeamArea("nat", (), fallback=True), TeamArea("p20", ("20",)), TeamArea("p21", ("21",)),
             TeamArea("city", ("20",), codes=("200402",))]
    # another province within 5 km counts, the same province's other team only within 1 km
    assert near_teams(teams, "p20", "20", {"200101": 0.0, "210101": 4_000.0, "200402": 1_500.0}, {}) == ("p21",)
    assert near_teams(teams, "p20", "20", {"200101": 0.0, "200402": 800.0}, {}) == ("city",)
    assert near_teams(teams, "city", "20", {"200402": 0.0, "200401": 300.0}, {}) == ("p20",)


# --- landmarks ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gaz(router) -> Gazetteer:
    from bot.places import gazetteer

    return gazetteer(router.boundaries)


@pytest.mark.parametrize(
    "text, codes",
    [
        ("ตลาดนาเกลือ พัทยา", ["200408"]),  # Na Kluea is in three provinces; Pattaya says which
        ("หน้าเซเว่น ซอยสุขุมวิท 11 เขตวัฒนา กรุงเทพฯ", ["1039"]),
        ("ใต้สะพานพระปิ่นเกล้า กทม.", ["10"]),
        ("หน้าตลาดหนองมน ชลบุรี", ["20"]),
        ("near the pier, Rayong", ["21"]),
        ("Nong Prue, Bang Lamung", ["200402"]),
        ("in front of 7-eleven, Chonburi", ["20"]),  # "Chon Buri" written as one word
        ("บ้านบึง", ["2002", "610611", "701002"]),  # the district Ban Bueng, and two subdistricts elsewhere
        ("ใต้สะพานลอย", []),
        ("ต.ดอน", ["301407", "940404"]),  # a short name counts after a marker
    ],
)
def test_landmarks_by_the_most_specific_place_name(gaz, text, codes):
    assert gaz.find(text) == codes


def test_a_name_inside_a_longer_one_does_not_count(gaz):
    assert gaz.find("ตลาดวัฒนานคร") == ["2705"]  # Watthana Nakhon (Sa Kaeo), not Watthana (Bangkok)


@pytest.mark.parametrize(
    "text",
    [
        "สถานีรถไฟหัวลำโพง",  # "สถาน" would end inside "สถานี"; "หัวลำ" and "ลำโพ" cross each other
        "ท่าเรือแหลมบาลีฮาย",  # "แหลม" (a cape) is an everyday word
        "อนุสาวรีย์ชัยสมรภูมิ",  # "ภูมิ" is too short to count without a marker
    ],
)
def test_fragments_of_words_are_not_places(gaz, text):
    found = gaz.find(text)
    assert not any(len(c) == 6 and c[:2] not in ("10",) for c in found), found


def test_the_capital_district_and_a_province_name_shared_by_a_subdistrict(gaz):
    assert gaz.find("ใต้สะพานลอยหน้าโลตัส อ.เมือง ขอนแก่น") == ["4001"]
    assert gaz.find("ขอนแก่น") == ["40"]  # the province, not tambon Khon Kaen in Roi Et


def test_a_shared_name_is_offered_as_a_choice(gaz):
    found = gaz.find("หนองปรือ")
    assert "200402" in found and len(found) >= 3
    assert gaz.find("หนองปรือ บางละมุง") == ["200402"]


# --- every typed form, through the conversation ---------------------------------------------

CONSENTED = Conversation(consent_version=NOTICE_VERSION, consent_at=NOW.isoformat())
AT_LOCATION = replace(CONSENTED, step="location", draft=Draft(photos=("k1",)))


def text(t):
    return TextReceived(ME, "e", NOW, text=t)


def choice(d):
    return ChoiceMade(ME, "e", NOW, data=d)


def keys(actions):
    return [m.key for a in actions if isinstance(a, Reply) for m in a.lines]


def buttons(actions):
    return [b.data for a in actions if isinstance(a, Reply) for row in a.buttons for b in row]


TYPED = [
    # (typed, message keys, province, subdistrict, team)
    ("12.935, 100.889", ["location.got", "ask.who"], "20", "200402", "pattaya-city"),
    ("100.889, 12.935", ["location.swapped", "location.got", "ask.who"], "20", "200402", "pattaya-city"),
    ("0,0", ["err.coords_zero", "ask.location"], None, None, None),
    ("0.0, 0.0", ["err.coords_zero", "ask.location"], None, None, None),
    ("91, 181", ["err.coords_out_of_range", "ask.location"], None, None, None),
    ("95.5, 100.5", ["err.coords_out_of_range", "ask.location"], None, None, None),
    ("12.5, 100.95", ["location.sea", "ask.location"], None, None, None),
    ("https://maps.app.goo.gl/3FvQ8zR1hJk2", ["err.short_link", "ask.location"], None, None, None),
    ("https://maps.app.goo.gl/3FvQ8zR1hJk2\nhttps://www.google.com/maps/place/x/@12.93,100.88,17z/data=!3d12.9665!4d100.8915",
     ["location.got", "ask.who"], "20", "200408", "pattaya-city"),
    ("ตลาดนาเกลือ พัทยา", ["location.landmark", "location.landmark_place", "ask.who"], "20", "200408", "pattaya-city"),
    ("หน้าเซเว่น ซอยสุขุมวิท 11 เขตวัฒนา กรุงเทพฯ", ["location.landmark", "location.landmark_place", "ask.who"], "10", None, "pcdp-10"),
    ("หนองปรือ", ["location.landmark", "location.choose", "ask.who"], None, None, None),
    # two subdistricts, one team: no choice needed, the common district is kept
    ("Pattaya Walking Street", ["location.landmark", "location.landmark_place", "ask.who"], "20", None, "pattaya-city"),
    ("ตลาดหนองบัว", ["location.landmark", "location.many", "ask.who"], None, None, None),
    ("ใต้สะพานลอย", ["location.landmark", "ask.who"], None, None, None),
]


@pytest.mark.parametrize("typed, want_keys, province, sub, team", TYPED, ids=[t[0][:40] for t in TYPED])
def test_typed_places(ctx, typed, want_keys, province, sub, team):
    new, actions = step(AT_LOCATION, text(typed), ctx)
    assert keys(actions) == want_keys
    d = new.draft
    assert (d.province_code, d.subdistrict_code, d.team) == (province, sub, team)
    if "err." in want_keys[0]:
        assert d.landmark is None and new.step == "location"  # never a landmark


def test_whole_numbers_are_coordinates_only_where_a_place_is_asked(ctx):
    conv = replace(CONSENTED, step="confirm", draft=Draft(photos=("k1",), landmark="x", who=("homeless",), who_done=True, count="1", urgency="normal"))
    new, actions = step(conv, text("3, 5"), ctx)  # on the summary: a note, not a place
    assert new.draft.note == "3, 5" and new.draft.landmark == "x" and not any(k.startswith("err.") for k in keys(actions))
    new, actions = step(AT_LOCATION, text("3, 5"), ctx)
    assert keys(actions)[0] == "err.outside_thailand"


def test_the_sea_point_is_used_once_confirmed(ctx):
    new, actions = step(AT_LOCATION, text("12.5, 100.95"), ctx)
    assert "sea:yes" in buttons(actions) and new.draft.pending is not None
    new, actions = step(new, choice("sea:yes"), ctx)
    d = new.draft
    assert (d.lat, d.lon) == (12.5, 100.95) and d.province_code == "20" and d.district_code == "2009"
    assert d.team == "pcdp-20" and new.step == "who" and keys(actions)[0] == "location.got"


def test_a_shared_name_is_chosen_not_guessed(ctx):
    new, actions = step(AT_LOCATION, text("หนองปรือ"), ctx)
    assert "place:200402" in buttons(actions) and "place:none" in buttons(actions)
    assert new.draft.province_code is None and new.draft.team is None
    chosen, _ = step(new, choice("place:200402"), ctx)
    assert (chosen.draft.province_code, chosen.draft.district_code, chosen.draft.subdistrict_code) == ("20", "2004", "200402")
    assert chosen.draft.team == "pattaya-city" and chosen.draft.landmark == "หนองปรือ"
    none, _ = step(new, choice("place:none"), ctx)
    assert none.draft.province_code is None and none.draft.place_choices == ()


def test_the_summary_names_the_team_and_offers_the_neighbour(ctx):
    conv = replace(CONSENTED, step="location", draft=Draft(photos=("k1",), who=("homeless",), who_done=True,
                                                             count="1", urgency="normal", note_done=True))
    new, actions = step(conv, text("13.80, 100.52"), ctx)  # Bang Sue, by Nonthaburi
    assert new.step == "confirm"
    summary = actions[-1]
    assert "sum.team" in keys([summary]) and "sum.area_bkk" in keys([summary])
    assert f"team:pcdp-12@{new.q}" in buttons([summary])
    new, _ = step(new, choice(f"team:pcdp-12@{new.q}"), ctx)
    d = new.draft
    assert d.team == "pcdp-12" and d.team_chosen and d.province_code == "12" and d.subdistrict_code is None
    assert "pcdp-10" in d.near_teams
