"""The volunteer's report conversation: pure step functions from (state, event) to (state, actions).

A volunteer may send the photo and the location before answering anything: whatever arrives is
absorbed into the draft, and the bot asks only for what is still missing. Cancel, help, my
reports, new report and language work from every step (see `flows.commands`).
The state is in `flows.draft`, the questions in `flows.questions`. Diagram: docs/report-flow.mmd.
"""

from __future__ import annotations

import re
from dataclasses import replace

from flows.commands import command_of
from flows.coords import parse_coordinates
from flows.draft import (
    COUNTS,
    KINDS,
    LANGS,
    MAX_NOTE,
    MAX_PHOTOS,
    MAX_TEXT,
    MEDIA,
    NOTICE_VERSION,
    URGENCIES,
    URGENT,
    WHO,
    Conversation,
    Ctx,
    Draft,
)
from flows.model import (
    Action,
    Button,
    ChoiceMade,
    CommandReceived,
    Event,
    ListReports,
    LocationReceived,
    Msg,
    PhotoReceived,
    Reply,
    SubmitReport,
    TextReceived,
    UnsupportedReceived,
    VoiceReceived,
)
from flows.questions import menu, next_missing, question

Result = tuple[Conversation, list[Action]]


# ---------------------------------------------------------------- entry point


def step(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Advances a volunteer's private conversation by one event."""
    if not conv.lang_chosen and ev.lang_hint:
        conv = replace(conv, lang="en" if ev.lang_hint.lower().startswith("en") else "th")
    if isinstance(ev, TextReceived) and len(ev.text) > MAX_TEXT:
        return conv, [_say(conv, "err.too_long", limit=MAX_NOTE), *_reask(conv, ctx)]
    cmd = command_of(ev)
    if cmd is not None:
        return on_command(conv, cmd, ctx, ev.arg if isinstance(ev, CommandReceived) else "")
    if isinstance(ev, ChoiceMade) and ev.data.startswith("lang:"):
        return set_language(conv, ev.data.split(":", 1)[1], ctx)
    if conv.consent_version != NOTICE_VERSION:
        return on_consent(conv, ev, ctx)
    if isinstance(ev, UnsupportedReceived):
        kind = ev.kind if ev.kind in KINDS else "unknown"
        return conv, [_say(conv, "err.unsupported", kind=Msg(f"kind.{kind}")), *_reask(conv, ctx)]
    if conv.draft is None:
        return on_idle(conv, ev, ctx)
    return on_draft(conv, ev, ctx)


def on_command(conv: Conversation, cmd: str, ctx: Ctx, arg: str = "") -> Result:
    """Handles cancel, help, my reports, new report and language from any step."""
    if cmd == "start":
        hint = area_of(arg)
        if hint and ctx.province_name(hint, "en") != hint:  # a real province
            conv = replace(conv, area_hint=hint)
    if cmd == "help":
        return conv, [_say(conv, "help.text"), *_reask(conv, ctx)]
    if cmd == "lang":
        buttons = ((Button(Msg("lang.th"), "lang:th"), Button(Msg("lang.en"), "lang:en")),)
        return conv, [Reply((Msg("lang.ask"),), buttons)]
    if cmd == "mine":
        return conv, [ListReports(), *_reask(conv, ctx)]
    if conv.consent_version != NOTICE_VERSION:
        return ask_consent(conv, ctx)
    if cmd == "cancel":
        if conv.draft is None:
            return conv, [_say(conv, "cancel.nothing"), menu()]
        return replace(conv, draft=None, step="idle", asked_at=None), [_say(conv, "cancel.done"), menu()]
    if cmd == "new":
        return ask_next(replace(conv, draft=Draft(started_at=ctx.now.isoformat())), ctx)
    # start: a welcome and the menu, or the current question of an unfinished draft
    if conv.draft is not None:
        return conv, [_say(conv, "draft.resume"), *_reask(conv, ctx)]
    return conv, [Reply((Msg("welcome"),), menu().buttons)]


def set_language(conv: Conversation, lang: str, ctx: Ctx) -> Result:
    """Changes the conversation's language and repeats the current question in it."""
    if lang not in LANGS:
        lang = "th"
    conv = replace(conv, lang=lang, lang_chosen=True)
    if conv.consent_version != NOTICE_VERSION:
        return ask_consent(conv, ctx)
    return conv, [_say(conv, "lang.changed"), *_reask(conv, ctx)]


# ---------------------------------------------------------------- consent


def ask_consent(conv: Conversation, ctx: Ctx) -> Result:
    """Shows the privacy notice and asks for consent."""
    buttons = (
        (Button(Msg("consent.yes"), "consent:yes"), Button(Msg("consent.no"), "consent:no")),
        (Button(Msg("lang.other"), "lang:en" if conv.lang == "th" else "lang:th"),),
    )
    return replace(conv, step="consent", asked_at=ctx.now.isoformat()), [
        Reply((Msg("consent.notice", {"version": NOTICE_VERSION}),), buttons)
    ]


def on_consent(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Records consent (or its refusal); keeps a photo or location sent before it in the draft."""
    if isinstance(ev, ChoiceMade) and ev.data == "consent:yes":
        conv = replace(conv, consent_version=NOTICE_VERSION, consent_at=ctx.now.isoformat())
        draft = conv.draft or Draft(started_at=ctx.now.isoformat())
        new, actions = ask_next(replace(conv, draft=draft), ctx)
        return new, [_say(conv, "consent.thanks"), *actions]
    if isinstance(ev, ChoiceMade) and ev.data == "consent:no":
        return replace(conv, draft=None, step="idle"), [_say(conv, "consent.declined")]
    if isinstance(ev, MEDIA):
        draft = conv.draft or Draft(started_at=ctx.now.isoformat())
        draft, notes = absorb(draft, ev, conv, ctx)
        conv = replace(conv, draft=draft)
        new, actions = ask_consent(conv, ctx)
        return new, [*notes, *actions]
    return ask_consent(conv, ctx)


# ---------------------------------------------------------------- reporting


def on_idle(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Without a draft, a photo or a location starts a report; anything else shows the menu."""
    if isinstance(ev, MEDIA) or (isinstance(ev, TextReceived) and parse_coordinates(ev.text)):
        return on_draft(replace(conv, draft=Draft(started_at=ctx.now.isoformat())), ev, ctx)
    if isinstance(ev, ChoiceMade) and ev.data == "confirm:send":
        return conv, [_say(conv, "confirm.nothing"), menu()]
    return conv, [Reply((Msg("welcome"),), menu().buttons)]


def on_draft(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Absorbs the event into the draft, then asks for what is missing (or confirms)."""
    draft = conv.draft
    assert draft is not None
    notes: list[Action] = []
    if isinstance(ev, MEDIA):
        draft, notes = absorb(draft, ev, conv, ctx)
        if notes and _is_error(notes[-1]):
            return conv, [*notes, *_reask(conv, ctx)]
    elif isinstance(ev, TextReceived):
        draft, notes = on_text(conv, draft, ev.text, ctx)
        if notes and _is_error(notes[-1]):
            return conv, [*notes, *_reask(conv, ctx)]
    elif isinstance(ev, ChoiceMade) and ev.data == "confirm:send":
        if next_missing(draft) != "confirm":
            return conv, [_say(conv, "err.incomplete"), *_reask(conv, ctx)]
        return replace(conv, draft=None, step="idle", asked_at=None), [SubmitReport()]
    elif isinstance(ev, ChoiceMade):
        draft, notes = on_choice(conv, draft, ev.data, ctx)
        if notes and _is_error(notes[-1]):
            return conv, [*notes, *_reask(conv, ctx)]
    new, actions = ask_next(replace(conv, draft=draft), ctx)
    if isinstance(ev, (PhotoReceived, VoiceReceived)) and notes and new.step == conv.step:
        return new, notes  # another photo of a set, or a voice note: acknowledged, the question stands
    return new, [*notes, *actions]


def absorb(draft: Draft, ev: Event, conv: Conversation, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Takes a photo or a location into the draft whatever the current step."""
    if isinstance(ev, PhotoReceived):
        if ev.error or not ev.key:
            return draft, [_say(conv, f"err.photo_{ev.error or 'not_image'}")]
        if ev.key in draft.photos:
            return draft, []
        if len(draft.photos) >= MAX_PHOTOS:
            return draft, [_say(conv, "err.too_many_photos", max=MAX_PHOTOS)]
        photos = (*draft.photos, ev.key)
        return replace(draft, photos=photos, no_photo=False), [
            _say(conv, "photo.got", n=len(photos), max=MAX_PHOTOS)
        ]
    if isinstance(ev, LocationReceived):
        return place(draft, ev.lat, ev.lon, "shared", conv, ctx)
    if isinstance(ev, VoiceReceived):
        if ev.error or not ev.key:
            return draft, [_say(conv, f"err.voice_{ev.error or 'not_audio'}")]
        done = draft.note_done or (conv.step == "note")
        return replace(draft, voice=ev.key, note_done=done), [_say(conv, "voice.got")]
    return draft, []


def place(draft: Draft, lat: float, lon: float, source: str, conv: Conversation, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Puts a point in the draft once the map data says it is in Thailand."""
    found = ctx.locate(lat, lon)
    if not found.inside or found.province_code is None:
        return draft, [_say(conv, "err.outside_thailand")]
    draft = replace(
        draft,
        lat=round(lat, 6),
        lon=round(lon, 6),
        location_source=source,
        landmark=None,
        province_code=found.province_code,
        neighbours=found.neighbours,
    )
    return draft, [_say(conv, "location.got", province=ctx.province_name(found.province_code, conv.lang))]


def on_text(conv: Conversation, draft: Draft, text: str, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Reads typed text by the current step: coordinates anywhere, else a landmark, count or note."""
    text = text.strip()
    if not text:
        return draft, [_say(conv, "err.empty")]
    coords = parse_coordinates(text)
    if coords is not None:
        return place(draft, coords[0], coords[1], "typed", conv, ctx)
    if conv.step == "location":
        if len(text) < 3:
            return draft, [_say(conv, "err.landmark_short")]
        province = ctx.province_in_text(text) or conv.area_hint
        draft = replace(
            draft, landmark=text[:300], lat=None, lon=None, location_source="landmark",
            province_code=province, neighbours=(),
        )
        return draft, [_say(conv, "location.landmark")]
    if conv.step == "note":
        if len(text) > MAX_NOTE:
            return draft, [_say(conv, "err.too_long", limit=MAX_NOTE)]
        return replace(draft, note=text, note_done=True), []
    if conv.step == "count":
        digits = "".join(ch for ch in text if ch.isdigit())
        if digits:
            n = int(digits)
            if 0 < n < 1000:
                return replace(draft, count=str(n) if n <= 2 else ("3-5" if n <= 5 else "6+")), []
        return draft, [_say(conv, "err.tap_choice")]
    if conv.step == "confirm":
        if len(text) > MAX_NOTE:
            return draft, [_say(conv, "err.too_long", limit=MAX_NOTE)]
        return replace(draft, note=text, note_done=True), []
    return draft, [_say(conv, "err.tap_choice")]


def on_choice(conv: Conversation, draft: Draft, data: str, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Applies a button press to the draft."""
    kind, _, value = data.partition(":")
    if kind == "nophoto":
        return replace(draft, no_photo=True), [_say(conv, "photo.skipped")]
    if kind == "who" and value in WHO:
        chosen = tuple(w for w in WHO if (w in draft.who) != (w == value))
        draft = replace(draft, who=chosen)
        return draft, []
    if kind == "who" and value == "done":
        if not draft.who:
            return draft, [_say(conv, "err.who_empty")]
        return replace(draft, who_done=True), []
    if kind == "count" and value in COUNTS:
        return replace(draft, count=value), []
    if kind == "urg" and value in URGENCIES:
        draft = replace(draft, urgency=value)
        return draft, ([_say(conv, "urgent.numbers")] if value in URGENT else [])
    if kind == "note" and value == "skip":
        return replace(draft, note_done=True), []
    if kind == "prov" and (value in draft.neighbours or value == draft.province_code):
        others = tuple(c for c in (draft.province_code, *draft.neighbours) if c and c != value)
        return replace(draft, province_code=value, neighbours=others), []
    if kind == "edit" and value in ("photo", "location", "who", "count", "urgency", "note"):
        return _reopen(draft, value), []
    return draft, [_say(conv, "err.stale_button")]


def _reopen(draft: Draft, part: str) -> Draft:
    if part == "photo":
        return replace(draft, photos=(), no_photo=False)
    if part == "location":
        return replace(draft, lat=None, lon=None, landmark=None, province_code=None, neighbours=(), location_source=None)
    if part == "who":
        return replace(draft, who_done=False)
    if part == "count":
        return replace(draft, count=None)
    if part == "urgency":
        return replace(draft, urgency=None)
    return replace(draft, note=None, note_done=False)


# ---------------------------------------------------------------- questions


def ask_next(conv: Conversation, ctx: Ctx) -> Result:
    """Asks the question for what the draft lacks and records the step."""
    assert conv.draft is not None
    want = next_missing(conv.draft)
    asked_at = conv.asked_at if want == conv.step else ctx.now.isoformat()
    conv = replace(conv, step=want, asked_at=asked_at)
    return conv, [question(conv, ctx)]


def _reask(conv: Conversation, ctx: Ctx) -> list[Action]:
    if conv.consent_version != NOTICE_VERSION:
        return []
    if conv.draft is None:
        return [menu()]
    return [question(conv, ctx)]


def area_of(deep_link: str) -> str | None:
    """The province a poster's deep link names (`p-20`), when it is a real province code."""
    m = re.fullmatch(r"p-?(\d{2})", deep_link.strip().lower())
    return m.group(1) if m else None


def law_track(who: tuple[str, ...] | list[str]) -> str:
    """Begging goes on the Begging Control Act's track; everything else on the Destitute Persons Act's."""
    return "begging" if "begging" in who else "destitution"


def _say(conv: Conversation, key: str, **params) -> Reply:
    return Reply((Msg(key, params),))


def _is_error(action: Action) -> bool:
    return isinstance(action, Reply) and action.lines[0].key.startswith("err.")
