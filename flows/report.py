"""The volunteer's report conversation: pure step functions from (state, event) to (state, actions).

A volunteer may send the photo and the location before answering anything: whatever arrives is
absorbed into the draft, and the bot asks only for what is still missing. Cancel, help, my
reports, new report and language work from every step (see `flows.commands`).
Diagram: docs/report-flow.mmd.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Protocol

from flows.commands import command_of
from flows.coords import parse_coordinates
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

NOTICE_VERSION = "2026-11-v1"
MAX_PHOTOS = 4
MAX_NOTE = 1000
MAX_TEXT = 2000

WHO = ("homeless", "begging", "child", "elderly", "disabled", "sick", "mental", "foreign", "other")
COUNTS = ("1", "2", "3-5", "6+")
URGENCIES = ("danger", "injury", "child_alone", "normal")
URGENT = frozenset({"danger", "injury", "child_alone"})
LANGS = ("th", "en")
KINDS = ("sticker", "video", "audio", "file")
MEDIA = (PhotoReceived, LocationReceived, VoiceReceived)


@dataclass(frozen=True)
class Located:
    """What the map data says of a point (filled by the engine's boundary lookup)."""

    inside: bool
    province_code: str | None = None
    neighbours: tuple[str, ...] = ()


class Ctx(Protocol):
    now: datetime

    def locate(self, lat: float, lon: float) -> Located: ...

    def province_in_text(self, text: str) -> str | None: ...

    def province_name(self, code: str, lang: str) -> str: ...


@dataclass(frozen=True)
class Draft:
    photos: tuple[str, ...] = ()
    no_photo: bool = False
    lat: float | None = None
    lon: float | None = None
    location_source: str | None = None  # shared | typed | landmark
    landmark: str | None = None
    province_code: str | None = None
    neighbours: tuple[str, ...] = ()
    who: tuple[str, ...] = ()
    who_done: bool = False
    count: str | None = None
    urgency: str | None = None
    note: str | None = None
    note_done: bool = False
    voice: str | None = None  # a voice message, kept as the note's attachment
    started_at: str | None = None

    @property
    def has_location(self) -> bool:
        return self.lat is not None or self.landmark is not None

    @property
    def urgent(self) -> bool:
        return self.urgency in URGENT

    @property
    def location_to_confirm(self) -> bool:
        return self.lat is None and self.landmark is not None


@dataclass(frozen=True)
class Conversation:
    lang: str = "th"
    lang_chosen: bool = False
    consent_version: str | None = None
    consent_at: str | None = None
    step: str = "idle"  # idle | consent | photo | location | who | count | urgency | note | confirm
    draft: Draft | None = None
    asked_at: str | None = None  # when the current question was asked (for the nudge of drafts)
    area_hint: str | None = None  # a province code from the QR poster's deep link (`/start p-20`)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Conversation":
        if not data:
            return cls()
        d = dict(data)
        draft = d.pop("draft", None)
        if draft is not None:
            draft = Draft(**{k: tuple(v) if isinstance(v, list) else v for k, v in draft.items()})
        known = {f for f in cls.__dataclass_fields__}
        return cls(draft=draft, **{k: v for k, v in d.items() if k in known})


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
            return conv, [_say(conv, "cancel.nothing"), _menu()]
        return replace(conv, draft=None, step="idle", asked_at=None), [_say(conv, "cancel.done"), _menu()]
    if cmd == "new":
        return ask_next(replace(conv, draft=Draft(started_at=ctx.now.isoformat())), ctx)
    # start: a welcome and the menu, or the current question of an unfinished draft
    if conv.draft is not None:
        return conv, [_say(conv, "draft.resume"), *_reask(conv, ctx)]
    return conv, [Reply((Msg("welcome"),), _menu().buttons)]


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
        return conv, [_say(conv, "confirm.nothing"), _menu()]
    return conv, [Reply((Msg("welcome"),), _menu().buttons)]


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


def next_missing(draft: Draft) -> str:
    """The first thing the draft still lacks, or `confirm`."""
    if not draft.photos and not draft.no_photo:
        return "photo"
    if not draft.has_location:
        return "location"
    if not draft.who_done:
        return "who"
    if draft.count is None:
        return "count"
    if draft.urgency is None:
        return "urgency"
    if not draft.note_done:
        return "note"
    return "confirm"


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
        return [_menu()]
    return [question(conv, ctx)]


def question(conv: Conversation, ctx: Ctx) -> Reply:
    """The message that asks for the current step's answer."""
    draft = conv.draft
    assert draft is not None
    s = conv.step
    if s == "photo":
        return Reply((Msg("ask.photo", {"max": MAX_PHOTOS}),), ((Button(Msg("btn.nophoto"), "nophoto:"),),), ask="photo")
    if s == "location":
        return Reply((Msg("ask.location"),), (), ask="location")
    if s == "who":
        rows = []
        for i in range(0, len(WHO), 3):
            rows.append(tuple(_toggle(f"who.{w}", f"who:{w}", w in draft.who) for w in WHO[i : i + 3]))
        rows.append((Button(Msg("btn.done"), "who:done"),))
        return Reply((Msg("ask.who"),), tuple(rows))
    if s == "count":
        return Reply((Msg("ask.count"),), (tuple(Button(Msg(f"count.{c}"), f"count:{c}") for c in COUNTS),))
    if s == "urgency":
        rows = tuple((Button(Msg(f"urg.{u}"), f"urg:{u}"),) for u in URGENCIES)
        return Reply((Msg("ask.urgency"),), rows)
    if s == "note":
        return Reply((Msg("ask.note"),), ((Button(Msg("btn.skip"), "note:skip"),),))
    return confirm_message(conv, ctx)


def confirm_message(conv: Conversation, ctx: Ctx) -> Reply:
    """The summary to confirm, with one tap to switch to a neighbouring province near a border."""
    draft = conv.draft
    assert draft is not None
    lines = [Msg("confirm.title"), *summary_lines(draft, conv.lang, ctx)]
    rows: list[tuple[Button, ...]] = [(Button(Msg("btn.send"), "confirm:send"),)]
    for code in draft.neighbours[:2]:
        rows.append((Button(Msg("btn.switch_province", {"province": ctx.province_name(code, conv.lang)}), f"prov:{code}"),))
    rows.append((Button(Msg("btn.edit_location"), "edit:location"), Button(Msg("btn.edit_who"), "edit:who")))
    rows.append((Button(Msg("btn.cancel"), "cmd:cancel"),))
    return Reply(tuple(lines), tuple(rows))


def summary_lines(draft: Draft, lang: str, ctx: Ctx) -> list[Msg]:
    """The lines of a draft's summary (the same facts a card shows)."""
    lines = []
    if draft.photos:
        lines.append(Msg("sum.photos", {"n": len(draft.photos)}))
    else:
        lines.append(Msg("sum.no_photo"))
    if draft.lat is not None:
        lines.append(Msg("sum.location", {"lat": f"{draft.lat:.5f}", "lon": f"{draft.lon:.5f}"}))
    elif draft.landmark:
        lines.append(Msg("sum.landmark", {"text": draft.landmark}))
    if draft.province_code:
        lines.append(Msg("sum.province", {"province": ctx.province_name(draft.province_code, lang)}))
    else:
        lines.append(Msg("sum.province_unknown"))
    if draft.who:
        lines.append(Msg("sum.who", {"who": [Msg(f"who.{w}") for w in draft.who]}))
    if draft.count:
        lines.append(Msg("sum.count", {"count": Msg(f"count.{draft.count}")}))
    if draft.urgency:
        lines.append(Msg("sum.urgency", {"urgency": Msg(f"urg.{draft.urgency}")}))
    if draft.note:
        lines.append(Msg("sum.note", {"note": draft.note}))
    if draft.voice:
        lines.append(Msg("sum.voice"))
    return lines


def area_of(deep_link: str) -> str | None:
    """The province a poster's deep link names (`p-20`), when it is a real province code."""
    m = re.fullmatch(r"p-?(\d{2})", deep_link.strip().lower())
    return m.group(1) if m else None


def law_track(who: tuple[str, ...] | list[str]) -> str:
    """Begging goes on the Begging Control Act's track; everything else on the Destitute Persons Act's."""
    return "begging" if "begging" in who else "destitution"


def _toggle(key: str, data: str, on: bool) -> Button:
    return Button(Msg("btn.selected", {"item": Msg(key)}) if on else Msg(key), data)


def _say(conv: Conversation, key: str, **params) -> Reply:
    return Reply((Msg(key, params),))


def _is_error(action: Action) -> bool:
    return isinstance(action, Reply) and action.lines[0].key.startswith("err.")


def _menu() -> Reply:
    return Reply(
        (Msg("menu.title"),),
        (
            (Button(Msg("btn.new"), "cmd:new"), Button(Msg("btn.mine"), "cmd:mine")),
            (Button(Msg("btn.help"), "cmd:help"), Button(Msg("btn.lang"), "cmd:lang")),
        ),
    )


def menu() -> Reply:
    """The main menu (used by handlers that show it on first contact)."""
    return _menu()

