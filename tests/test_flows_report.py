"""The volunteer's conversation as tables: (state, event) → (state, actions), under a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from flows.model import (
    Address,
    ChoiceMade,
    CommandReceived,
    ListReports,
    LocationReceived,
    PhotoReceived,
    Reply,
    SubmitReport,
    TextReceived,
    UnsupportedReceived,
    VoiceReceived,
)
from flows.draft import Located
from flows.report import NOTICE_VERSION, Conversation, Draft, law_track, next_missing, step

NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)
ME = Address("sandbox", "u-a", "a")


class Ctx:
    now = NOW

    def locate(self, lat, lon):
        if 5 < lat < 21 and 97 < lon < 106:
            return Located(True, "20", ("21",) if lat > 13.5 else ())
        return Located(False)

    def province_in_text(self, text):
        return "20" if "ชลบุรี" in text else None

    def province_name(self, code, lang):
        return {"20": "ชลบุรี", "21": "ระยอง"}.get(code, code)


def text(t, **kw):
    return TextReceived(ME, "e", NOW, text=t, **kw)


def choice(d):
    return ChoiceMade(ME, "e", NOW, data=d)


def photo(key="k1", error=None):
    return PhotoReceived(ME, "e", NOW, key=key, error=error)


def loc(lat=12.93, lon=100.87):
    return LocationReceived(ME, "e", NOW, lat=lat, lon=lon)


FRESH = Conversation()
CONSENTED = Conversation(consent_version=NOTICE_VERSION, consent_at=NOW.isoformat())


def drafting(step_name, **draft):
    return replace(CONSENTED, step=step_name, draft=Draft(**draft))


def keys(actions):
    out = []
    for a in actions:
        if isinstance(a, Reply):
            out.extend(m.key for m in a.lines)
        else:
            out.append(type(a).__name__)
    return out


FULL = dict(photos=("k1",), lat=12.93, lon=100.87, province_code="20", who=("homeless",), who_done=True, count="1", urgency="normal", note_done=True)

# (name, state, event, expected step after, expected message keys / action names in order)
TABLE = [
    ("first contact shows the notice", FRESH, text("hello"), "consent", ["consent.notice"]),
    ("consent starts a report asking for a photo", replace(FRESH, step="consent"), choice("consent:yes"), "photo", ["consent.thanks", "ask.photo"]),
    ("refusal keeps nothing: the volunteer forgotten, the photo dropped", replace(FRESH, step="consent", draft=Draft(photos=("k1",))), choice("consent:no"), "idle", ["consent.declined", "ForgetVolunteer", "DropMedia"]),
    ("a photo before consent is not kept: agree first", FRESH, photo(), "consent", ["consent.media_first", "consent.notice"]),
    ("idle photo starts a draft and asks location", CONSENTED, photo(), "location", ["photo.got", "ask.location"]),
    ("idle location starts a draft and asks photo", CONSENTED, loc(), "photo", ["location.got", "ask.photo"]),
    ("location then photo: straight to who", drafting("photo", lat=12.9, lon=100.8, province_code="20"), photo(), "who", ["photo.got", "ask.who"]),
    ("no photo safely", drafting("photo"), choice("nophoto:"), "location", ["photo.skipped", "ask.location"]),
    ("typed decimal coordinates", drafting("location", photos=("k1",)), text("12.93, 100.87"), "who", ["location.got", "ask.who"]),
    ("typed Thai digits", drafting("location", photos=("k1",)), text("๑๒.๙๓, ๑๐๐.๘๗"), "who", ["location.got", "ask.who"]),
    ("a map link", drafting("location", photos=("k1",)), text("https://maps.google.com/?q=12.93,100.87"), "who", ["location.got", "ask.who"]),
    ("landmark without GPS", drafting("location", photos=("k1",)), text("หน้าตลาดหนองมน ชลบุรี"), "who", ["location.landmark", "location.landmark_place", "ask.who"]),
    ("outside Thailand refused", drafting("location", photos=("k1",)), loc(35.0, 139.0), "location", ["err.outside_thailand", "ask.location"]),
    ("0,0 refused", drafting("location", photos=("k1",)), loc(0.0, 0.0), "location", ["err.coords_zero", "ask.location"]),
    ("not an image", drafting("photo"), photo(None, "not_image"), "photo", ["err.photo_not_image", "ask.photo"]),
    ("too large", drafting("photo"), photo(None, "too_large"), "photo", ["err.photo_too_large", "ask.photo"]),
    ("a second photo while the location is asked: acknowledged only", drafting("location", photos=("a",)), photo("b"), "location", ["photo.got"]),
    ("a voice note at the note step is the note", drafting("note", **{**FULL, "note_done": False}), VoiceReceived(ME, "e", NOW, key="v.m4a"), "confirm", ["voice.got", "confirm.title", "sum.photos", "sum.location", "sum.province", "sum.who", "sum.count", "sum.urgency", "sum.voice"]),
    ("a voice note earlier is kept, the question stands", drafting("who", photos=("k1",), lat=1.0, lon=1.0), VoiceReceived(ME, "e", NOW, key="v.m4a"), "who", ["voice.got"]),
    ("audio that is not audio", drafting("who", photos=("k1",), lat=1.0, lon=1.0), VoiceReceived(ME, "e", NOW, error="not_audio"), "who", ["err.voice_not_audio", "ask.who"]),
    ("a fifth photo refused", drafting("location", photos=("a", "b", "c", "d")), photo("e"), "location", ["err.too_many_photos", "ask.location"]),
    ("sticker", drafting("who", photos=("k1",), lat=1.0, lon=1.0), UnsupportedReceived(ME, "e", NOW, kind="sticker"), "who", ["err.unsupported", "ask.who"]),
    ("who toggles and stays", drafting("who", photos=("k1",), lat=1.0, lon=1.0), choice("who:child"), "who", ["ask.who"]),
    ("who done needs one", drafting("who", photos=("k1",), lat=1.0, lon=1.0), choice("who:done"), "who", ["err.who_empty", "ask.who"]),
    ("typed count", drafting("count", **{**FULL, "count": None, "urgency": None, "note_done": False}), text("4"), "urgency", ["ask.urgency"]),
    ("urgent shows the numbers", drafting("urgency", **{**FULL, "urgency": None, "note_done": False}), choice("urg:danger"), "note", ["urgent.numbers", "ask.note"]),
    ("note then confirm", drafting("note", **{**FULL, "note_done": False}), text("ใส่เสื้อสีแดง"), "confirm", ["confirm.title", "sum.photos", "sum.location", "sum.province", "sum.who", "sum.count", "sum.urgency", "sum.note"]),
    ("too long note", drafting("note", **{**FULL, "note_done": False}), text("x" * 1500), "note", ["err.too_long", "ask.note"]),
    ("10,000 characters", drafting("note", **{**FULL, "note_done": False}), text("x" * 10_000), "note", ["err.too_long", "ask.note"]),
    ("empty text", drafting("note", **{**FULL, "note_done": False}), text("   "), "note", ["err.empty", "ask.note"]),
    ("send", drafting("confirm", **FULL), choice("confirm:send"), "idle", ["SubmitReport"]),
    ("cancel from confirm: the draft's photo dropped", drafting("confirm", **FULL), text("ยกเลิก"), "idle", ["cancel.done", "menu.title", "DropMedia"]),
    ("cancel typed in English", drafting("who", photos=("k1",)), text("cancel"), "idle", ["cancel.done", "menu.title", "DropMedia"]),
    ("help keeps the step", drafting("who", photos=("k1",), lat=1.0, lon=1.0), CommandReceived(ME, "e", NOW, name="help"), "who", ["help.text", "ask.who"]),
    ("my reports keeps the step", drafting("count", **{**FULL, "count": None}), text("รายงานของฉัน"), "count", ["ListReports", "ask.count"]),
    ("new report discards the draft", drafting("confirm", **FULL), choice("cmd:new"), "photo", ["ask.photo", "DropMedia"]),
    ("a stale button", drafting("count", **{**FULL, "count": None}), choice("who:nonsense"), "count", ["err.stale_button", "ask.count"]),
    ("switch to the neighbouring province", drafting("confirm", **{**FULL, "neighbours": ("21",)}), choice("prov:21"), "confirm", ["confirm.title", "sum.photos", "sum.location", "sum.province", "sum.who", "sum.count", "sum.urgency"]),
]


@pytest.mark.parametrize("name,state,event,want_step,want_keys", TABLE, ids=[t[0] for t in TABLE])
def test_step_table(name, state, event, want_step, want_keys):
    new, actions = step(state, event, Ctx())
    assert new.step == want_step
    assert keys(actions) == want_keys


def test_switch_province_swaps_the_neighbour():
    new, _ = step(drafting("confirm", **{**FULL, "neighbours": ("21",)}), choice("prov:21"), Ctx())
    assert new.draft.province_code == "21" and new.draft.neighbours == ("20",)


def test_confirm_offers_the_neighbour_in_one_tap():
    _, actions = step(drafting("note", **{**FULL, "note_done": False, "neighbours": ("21",)}), choice("note:skip"), Ctx())
    datas = [b.data for row in actions[-1].buttons for b in row]
    assert "prov:21" in datas and "confirm:send" in datas


def test_language_from_the_platform_then_changeable():
    new, actions = step(FRESH, text("hi", lang_hint="en-US"), Ctx())
    assert new.lang == "en"
    new, _ = step(new, choice("lang:th"), Ctx())
    assert new.lang == "th" and new.lang_chosen
    new, _ = step(new, text("hi", lang_hint="en"), Ctx())
    assert new.lang == "th"  # a chosen language wins over the platform's


def test_consent_is_recorded_with_time_and_version():
    new, _ = step(replace(FRESH, step="consent"), choice("consent:yes"), Ctx())
    assert new.consent_version == NOTICE_VERSION and new.consent_at == NOW.isoformat()


def test_state_survives_a_round_trip_through_json():
    import json

    conv = drafting("confirm", **{**FULL, "neighbours": ("21",)})
    again = Conversation.from_dict(json.loads(json.dumps(conv.to_dict())))
    assert again == conv


def test_the_same_photo_twice_counts_once():
    new, _ = step(drafting("photo"), photo("k1"), Ctx())
    new, actions = step(new, photo("k1"), Ctx())
    assert new.draft.photos == ("k1",)


def test_next_missing_order():
    assert next_missing(Draft()) == "photo"
    assert next_missing(Draft(no_photo=True)) == "location"
    assert next_missing(Draft(**FULL)) == "confirm"


def test_child_alone_is_urgent_and_begging_track():
    assert Draft(urgency="child_alone").urgent and not Draft(urgency="normal").urgent
    assert law_track(("begging", "child")) == "begging"
    assert law_track(("homeless",)) == "destitution"


def test_send_before_complete_is_refused():
    new, actions = step(drafting("count", **{**FULL, "count": None}), choice("confirm:send"), Ctx())
    assert keys(actions)[0] == "err.incomplete" and not any(isinstance(a, SubmitReport) for a in actions)


def test_list_reports_is_an_action():
    _, actions = step(CONSENTED, CommandReceived(ME, "e", NOW, name="mine"), Ctx())
    assert isinstance(actions[0], ListReports)


def test_a_poster_deep_link_hints_the_province_of_a_landmark():
    new, _ = step(CONSENTED, CommandReceived(ME, "e", NOW, name="start", arg="p-21"), Ctx())
    assert new.area_hint == "21"
    new, _ = step(replace(new, step="location", draft=Draft(photos=("k1",))), text("หน้าตลาดสด"), Ctx())
    assert new.draft.province_code == "21" and new.draft.landmark == "หน้าตลาดสด"
    new, _ = step(CONSENTED, CommandReceived(ME, "e", NOW, name="start", arg="hello"), Ctx())
    assert new.area_hint is None
