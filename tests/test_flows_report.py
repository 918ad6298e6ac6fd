"""The volunteer's conversation as tables: (state, event) → (state, actions), under a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from flows.model import (
    Msg,
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


FULL = dict(photos=("k1",), lat=12.93, lon=100.87, province_code="20", who=("homeless",), who_done=True, count="1", urgency="normal")
SUMMARY = ["confirm.title", "sum.photos", "sum.location", "sum.province", "sum.who", "sum.count", "sum.urgency"]
HINT = ["confirm.note_hint"]
AT_WHO = dict(photos=("k1",), lat=1.0, lon=1.0, province_code="20")


# (name, state, event, expected step after, expected message keys / action names in order)
TABLE = [
    ("first contact shows the notice", FRESH, text("hello"), "consent", ["consent.notice"]),
    ("consent starts a report asking for a photo", replace(FRESH, step="consent"), choice("consent:yes"), "photo", ["consent.thanks", "ask.photo"]),
    ("refusal keeps nothing: the volunteer forgotten, the photo dropped", replace(FRESH, step="consent", draft=Draft(photos=("k1",))), choice("consent:no"), "idle", ["consent.declined", "ForgetVolunteer", "DropMedia"]),
    ("a photo before consent is not kept: agree first", FRESH, photo(), "consent", ["consent.media_first", "consent.notice"]),
    ("a location kept before consent is acknowledged after it", replace(FRESH, step="consent", draft=Draft(lat=12.93, lon=100.87, province_code="20")), choice("consent:yes"), "photo", ["consent.thanks", "kept.location", "ask.photo"]),
    ("idle photo starts a draft and asks location", CONSENTED, photo(), "location", ["photo.got_more", "ask.location"]),
    ("idle location starts a draft and asks photo", CONSENTED, loc(), "photo", ["location.got", "ask.photo"]),
    ("location then photo: straight to who", drafting("photo", lat=12.9, lon=100.8, province_code="20"), photo(), "who", ["photo.got_more", "ask.who"]),
    ("no photo safely", drafting("photo"), choice("nophoto:"), "location", ["photo.skipped", "ask.location"]),
    ("a voice note at the photo step: kept, the next question follows", drafting("photo"), VoiceReceived(ME, "e", NOW, key="v.m4a"), "location", ["voice.got", "ask.location"]),
    ("typed decimal coordinates", drafting("location", photos=("k1",)), text("12.93, 100.87"), "who", ["location.got", "ask.who"]),
    ("typed Thai digits", drafting("location", photos=("k1",)), text("๑๒.๙๓, ๑๐๐.๘๗"), "who", ["location.got", "ask.who"]),
    ("a map link", drafting("location", photos=("k1",)), text("https://maps.google.com/?q=12.93,100.87"), "who", ["location.got", "ask.who"]),
    ("landmark without GPS", drafting("location", photos=("k1",)), text("หน้าตลาดหนองมน ชลบุรี"), "who", ["location.landmark", "location.landmark_place", "ask.who"]),
    ("outside Thailand refused", drafting("location", photos=("k1",)), loc(35.0, 139.0), "location", ["err.outside_thailand", "ask.location"]),
    ("0,0 refused", drafting("location", photos=("k1",)), loc(0.0, 0.0), "location", ["err.coords_zero", "ask.location"]),
    ("not an image", drafting("photo"), photo(None, "not_image"), "photo", ["err.photo_not_image", "ask.photo"]),
    ("too large", drafting("photo"), photo(None, "too_large"), "photo", ["err.photo_too_large", "ask.photo"]),
    ("a second photo while the location is asked: acknowledged only", drafting("location", photos=("a",)), photo("b"), "location", ["photo.got_more"]),
    ("the fourth photo: no more may be sent", drafting("location", photos=("a", "b", "c")), photo("d"), "location", ["photo.got_last"]),
    ("a voice note on the summary goes with the report", drafting("confirm", **FULL), VoiceReceived(ME, "e", NOW, key="v.m4a"), "confirm", ["voice.got"]),
    ("a voice note at who is kept, the question stands", drafting("who", **AT_WHO), VoiceReceived(ME, "e", NOW, key="v.m4a"), "who", ["voice.got"]),
    ("audio that is not audio", drafting("who", **AT_WHO), VoiceReceived(ME, "e", NOW, error="not_audio"), "who", ["err.voice_not_audio", "ask.who"]),
    ("a fifth photo refused", drafting("location", photos=("a", "b", "c", "d")), photo("e"), "location", ["err.too_many_photos", "ask.location"]),
    ("sticker", drafting("who", **AT_WHO), UnsupportedReceived(ME, "e", NOW, kind="sticker"), "who", ["err.unsupported", "ask.who"]),
    ("one tap on who goes to the summary", drafting("who", **AT_WHO), choice("who:homeless"), "confirm", [*SUMMARY, *HINT]),
    ("a sick person is urgent: the numbers first", drafting("who", **AT_WHO), choice("who:sick"), "confirm", ["urgent.numbers", *SUMMARY, *HINT]),
    ("a child: is the child alone?", drafting("who", **AT_WHO), choice("who:child"), "child", ["ask.child_alone"]),
    ("a child alone is urgent", drafting("child", **AT_WHO, who=("child",), who_done=True, count="1"), choice("child:alone"), "confirm", ["urgent.numbers", *SUMMARY, *HINT]),
    ("a child with an adult is not urgent", drafting("child", **AT_WHO, who=("child",), who_done=True, count="1"), choice("child:adult"), "confirm", [*SUMMARY, *HINT]),
    ("in danger from the summary", drafting("confirm", **FULL), choice("urg:danger"), "confirm", ["urgent.numbers", *SUMMARY, *HINT]),
    ("change the count on the summary", drafting("confirm", **FULL), choice("count:3-5"), "confirm", [*SUMMARY, *HINT]),
    ("who reopened: toggles and stays", drafting("who", **AT_WHO, who_multi=True), choice("who:child"), "who", ["ask.who_many"]),
    ("who done needs one", drafting("who", **AT_WHO, who_multi=True), choice("who:done"), "who", ["err.who_empty", "ask.who_many"]),
    ("a typed note on the summary", drafting("confirm", **FULL), text("ใส่เสื้อสีแดง"), "confirm", ["note.got", *SUMMARY, "sum.note", *HINT]),
    ("too long note", drafting("confirm", **FULL), text("x" * 1500), "confirm", ["err.too_long", *SUMMARY, *HINT]),
    ("10,000 characters", drafting("confirm", **FULL), text("x" * 10_000), "confirm", ["err.too_long", *SUMMARY, *HINT]),
    ("empty text", drafting("confirm", **FULL), text("   "), "confirm", ["err.empty", *SUMMARY, *HINT]),
    ("send", drafting("confirm", **FULL), choice("confirm:send"), "idle", ["SubmitReport"]),
    ("cancel with a photo asks once", drafting("confirm", **FULL), text("ยกเลิก"), "confirm", ["cancel.ask"]),
    ("cancel asked twice cancels", replace(drafting("confirm", **FULL), cancel_asked=True), text("ยกเลิก"), "idle", ["cancel.done", "menu.title", "DropMedia"]),
    ("cancel without photo or place at once", drafting("photo"), text("cancel"), "idle", ["cancel.done", "menu.title"]),
    ("help keeps the step", drafting("who", **AT_WHO), CommandReceived(ME, "e", NOW, name="help"), "who", ["help.text", "ask.who"]),
    ("my reports keeps the step", drafting("who", **AT_WHO), text("รายงานของฉัน"), "who", ["ListReports", "ask.who"]),
    ("new report discards the draft", drafting("confirm", **FULL), choice("cmd:new"), "photo", ["ask.photo", "DropMedia"]),
    ("a button of no question", drafting("confirm", **FULL), choice("who:nonsense"), "confirm", ["err.stale_button", *SUMMARY, *HINT]),
    ("switch to the neighbouring province", drafting("confirm", **{**FULL, "neighbours": ("21",)}), choice("prov:21"), "confirm", [*SUMMARY, *HINT]),
]


# every word typed at every step: (text, the first message's key)
TYPED = [("ช่วยด้วย", "help.text"), ("help", "help.text"), ("HELP", "help.text"), ("1300", "hotline.text"), ("สายด่วน", "hotline.text")]
STATES = {
    "fresh": FRESH, "consent": replace(FRESH, step="consent"), "idle": CONSENTED, "photo": drafting("photo"),
    "location": drafting("location", photos=("k1",)), "who": drafting("who", **AT_WHO),
    "child": drafting("child", **AT_WHO, who=("child",), who_done=True), "confirm": drafting("confirm", **FULL),
}


@pytest.mark.parametrize("word,key", TYPED)
@pytest.mark.parametrize("where", list(STATES))
def test_typed_words_work_at_every_step(word, key, where):
    state = STATES[where]
    new, actions = step(state, text(word), Ctx())
    assert keys(actions)[0] == key
    assert new.draft == state.draft  # nothing of the draft lost
    if where in ("photo", "location", "who", "child", "confirm"):
        assert keys(actions)[-1].startswith(("ask.", "sum.", "confirm.")), "the question follows"


def test_hotline_and_help_name_the_numbers():
    from bot.i18n import text as render

    for lang in ("th", "en"):
        assert "1300" in render(Msg("help.text"), lang) and "1300" in render(Msg("hotline.text"), lang)


def _numbered(conv, data):
    """The button of the conversation's current question with this data (its number added)."""
    return f"{data}@{conv.q}"


def _answered(conv, base):
    """The conversation after answering `base` at its current question."""
    new, _ = step(conv, choice(_numbered(conv, base)), Ctx())
    return new


# each stale button: (state before, the button pressed there, then the state moved on)
STALE = [
    ("who", drafting("who", **AT_WHO), "who:homeless"),
    ("child", drafting("child", **AT_WHO, who=("child",), who_done=True), "child:alone"),
    ("photo skip", drafting("photo"), "nophoto:"),
    ("count on an older summary", drafting("confirm", **FULL), "count:2"),
    ("send on an older summary", drafting("confirm", **FULL), "confirm:send"),
    ("cancel confirmation", replace(drafting("confirm", **FULL), q=3), "cancel:yes"),
]


@pytest.mark.parametrize("name,state,data", STALE, ids=[t[0] for t in STALE])
def test_stale_buttons_answer_already_done(name, state, data):
    old_q = state.q
    moved = replace(state, q=state.q + 2)  # two questions later
    new, actions = step(moved, choice(f"{data}@{old_q}"), Ctx())
    assert keys(actions) == ["err.already_done"] and actions[0].notice
    assert new == moved, "a stale button changes nothing"


def test_current_buttons_carry_the_question_number():
    new, actions = step(drafting("who", **AT_WHO), choice("who:homeless"), Ctx())
    datas = [b.data for row in actions[-1].buttons for b in row]
    assert f"confirm:send@{new.q}" in datas and "cmd:cancel" in datas
    again, actions = step(new, choice(f"count:2@{new.q}"), Ctx())
    assert again.draft.count == "2" and actions[-1].edit, "the summary is edited in place"


def test_cancel_confirmation_yes_and_no():
    asked, actions = step(drafting("confirm", **FULL), text("cancel"), Ctx())
    assert asked.cancel_asked and asked.draft is not None
    yes = [b.data for row in actions[0].buttons for b in row][0]
    gone, actions = step(asked, choice(yes), Ctx())
    assert gone.draft is None and keys(actions)[0] == "cancel.done"
    kept, actions = step(asked, choice(f"cancel:no@{asked.q}"), Ctx())
    assert kept.draft == asked.draft and not kept.cancel_asked and keys(actions)[0] == "cancel.kept"


@pytest.mark.parametrize("name,state,event,want_step,want_keys", TABLE, ids=[t[0] for t in TABLE])
def test_step_table(name, state, event, want_step, want_keys):
    new, actions = step(state, event, Ctx())
    assert new.step == want_step
    assert keys(actions) == want_keys


def test_switch_province_swaps_the_neighbour():
    new, _ = step(drafting("confirm", **{**FULL, "neighbours": ("21",)}), choice("prov:21"), Ctx())
    assert new.draft.province_code == "21" and new.draft.neighbours == ("20",)


def test_confirm_offers_the_neighbour_in_one_tap():
    new, actions = step(drafting("who", **{**AT_WHO, "neighbours": ("21",)}), choice("who:homeless"), Ctx())
    datas = [b.data for row in actions[-1].buttons for b in row]
    assert f"prov:21@{new.q}" in datas and f"confirm:send@{new.q}" in datas


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


def test_child_alone_is_urgent_and_law_tracks():
    assert Draft(urgency="child_alone").urgent and not Draft(urgency="normal").urgent
    assert law_track(("begging", "child")) == "child"  # a child: the Child Protection Act B.E. 2546
    assert law_track(("begging", "elderly")) == "begging"
    assert law_track(("homeless",)) == "destitution"


def test_send_before_complete_is_refused():
    new, actions = step(drafting("child", **{**FULL, "who": ("child",), "urgency": None}), choice("confirm:send"), Ctx())
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
