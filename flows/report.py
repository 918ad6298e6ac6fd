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
from flows.coords import read_coordinates, short_map_link
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
    NOTICE_LABEL,
    URGENT,
    WHO,
    Conversation,
    Ctx,
    Draft,
    Located,
)
from flows.model import (
    Action,
    Button,
    ChoiceMade,
    CommandReceived,
    DropMedia,
    Event,
    ForgetVolunteer,
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
from flows.questions import VERSION_SEP, menu, next_missing, question, urgency_of

Result = tuple[Conversation, list[Action]]


# ---------------------------------------------------------------- entry point


def step(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Advances a volunteer's private conversation by one event; media the new state no longer
    holds (and no report took) is dropped (`DropMedia`)."""
    new, actions = _step(conv, ev, ctx)
    dropped = dropped_media(conv, new, actions)
    return new, [*actions, DropMedia(dropped)] if dropped else actions


def draft_media(conv: Conversation | None) -> tuple[str, ...]:
    """The stored files a conversation's draft names: its photos and voice note."""
    if conv is None or conv.draft is None:
        return ()
    return (*conv.draft.photos, *((conv.draft.voice,) if conv.draft.voice else ()))


def dropped_media(old: Conversation, new: Conversation, actions: list[Action]) -> tuple[str, ...]:
    """Files of the old draft that the new one does not name, unless a report takes the draft."""
    if any(isinstance(a, SubmitReport) for a in actions):
        return ()
    kept = set(draft_media(new))
    return tuple(k for k in draft_media(old) if k not in kept)


def _step(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    if not conv.lang_chosen and ev.lang_hint:
        conv = replace(conv, lang="en" if ev.lang_hint.lower().startswith("en") else "th")
    if isinstance(ev, TextReceived) and len(ev.text) > MAX_TEXT:
        return conv, [_say(conv, "err.too_long", limit=MAX_NOTE), *_reask(conv, ctx)]
    cmd = command_of(ev)
    if cmd != "cancel" and conv.cancel_asked:
        conv = replace(conv, cancel_asked=False)
    if cmd is not None:
        return on_command(conv, cmd, ctx, ev.arg if isinstance(ev, CommandReceived) else "")
    if isinstance(ev, ChoiceMade) and VERSION_SEP in ev.data:
        data, _, version = ev.data.rpartition(VERSION_SEP)
        if version != str(conv.q):  # a button of a question answered before
            return conv, [Reply((Msg("err.already_done"),), notice=True)]
        ev = replace(ev, data=data)
    if isinstance(ev, ChoiceMade) and ev.data.startswith("cancel:"):
        return on_cancel_answer(conv, ev.data[7:], ctx)
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


def keeps_media(conv: Conversation | None, ev: Event) -> bool:
    """Whether the flow will keep this photo or voice note, asked before it is downloaded (PDPA):
    only a volunteer who consented to the current notice, in a private chat, with room for it.
    Nothing else is fetched: not before consent, not from a staff group, not a fifth photo."""
    if not isinstance(ev, (PhotoReceived, VoiceReceived)) or ev.address.is_group:
        return False
    if conv is None or conv.consent_version != NOTICE_VERSION:
        return False
    if isinstance(ev, PhotoReceived) and conv.draft is not None and len(conv.draft.photos) >= MAX_PHOTOS:
        return False
    return True


def on_command(conv: Conversation, cmd: str, ctx: Ctx, arg: str = "") -> Result:
    """Handles cancel, help, my reports, new report and language from any step."""
    if cmd == "start":
        hint = area_of(arg)
        if hint and ctx.province_name(hint, "en") != hint:  # a real province
            conv = replace(conv, area_hint=hint)
    if cmd == "help":
        return conv, [_say(conv, "help.text"), *_reask(conv, ctx)]
    if cmd == "hotline":
        return conv, [_say(conv, "hotline.text"), *_reask(conv, ctx)]
    if cmd == "lang":
        buttons = ((Button(Msg("lang.th"), "lang:th"), Button(Msg("lang.en"), "lang:en")),)
        return conv, [Reply((Msg("lang.ask"),), buttons)]
    if cmd == "mine":
        return conv, [ListReports(), *_reask(conv, ctx)]
    if conv.consent_version != NOTICE_VERSION:
        if cmd == "cancel":  # a location sent before consent goes too: cancel always cancels
            conv = replace(conv, draft=None)
        return ask_consent(conv, ctx)
    if cmd == "cancel":
        if conv.draft is None:
            return conv, [_say(conv, "cancel.nothing"), menu()]
        d = conv.draft
        if (d.photos or d.has_location or d.pending) and not conv.cancel_asked:  # asked once
            conv = replace(conv, cancel_asked=True, q=conv.q + 1)
            buttons = ((Button(Msg("btn.cancel_yes"), f"cancel:yes{VERSION_SEP}{conv.q}"),
                        Button(Msg("btn.cancel_no"), f"cancel:no{VERSION_SEP}{conv.q}")),)
            return conv, [Reply((Msg("cancel.ask"),), buttons, question=True)]
        return _cancelled(conv)
    if cmd == "new":
        return ask_next(replace(conv, draft=Draft(started_at=ctx.now.isoformat())), ctx)
    # start: a welcome and the menu, or the current question of an unfinished draft
    if conv.draft is not None:
        return conv, [_say(conv, "draft.resume"), *_reask(conv, ctx)]
    return conv, [Reply((Msg("welcome"),), menu().buttons)]


def _cancelled(conv: Conversation) -> Result:
    return replace(conv, draft=None, step="idle", asked_at=None, cancel_asked=False), [_say(conv, "cancel.done"), menu()]


def on_cancel_answer(conv: Conversation, answer: str, ctx: Ctx) -> Result:
    """The answer to "cancel this report?": yes drops the draft, no goes back to the question."""
    if conv.draft is None:
        return conv, [_say(conv, "cancel.nothing"), menu()]
    if answer == "yes":
        return _cancelled(conv)
    conv = replace(conv, cancel_asked=False)
    new, actions = ask_next(conv, ctx)
    return new, [_say(conv, "cancel.kept"), *actions]


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
    version = Msg("consent.version", {"number": NOTICE_LABEL[0], "date": NOTICE_LABEL[1]})
    return replace(conv, step="consent", asked_at=ctx.now.isoformat()), [
        Reply((Msg("consent.notice", {"version": version}),), buttons)
    ]


def on_consent(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Records consent (or its refusal); keeps a location sent before it in the draft. A photo or
    voice note before consent is not kept (never downloaded): the volunteer is asked to agree first."""
    if isinstance(ev, ChoiceMade) and ev.data == "consent:yes":
        conv = replace(conv, consent_version=NOTICE_VERSION, consent_at=ctx.now.isoformat())
        draft = conv.draft or Draft(started_at=ctx.now.isoformat())
        kept = _kept_before_consent(draft, conv, ctx)
        new, actions = ask_next(replace(conv, draft=draft), ctx)
        return new, [_say(conv, "consent.thanks"), *kept, *actions]
    if isinstance(ev, ChoiceMade) and ev.data == "consent:no":
        return replace(conv, draft=None, step="idle"), [_say(conv, "consent.declined"), ForgetVolunteer()]
    if isinstance(ev, (PhotoReceived, VoiceReceived)):  # never before consent (PDPA): not downloaded
        new, actions = ask_consent(conv, ctx)
        return new, [_say(conv, "consent.media_first"), *actions]
    if isinstance(ev, LocationReceived):  # kept quietly; acknowledged once the notice is accepted
        draft = conv.draft or Draft(started_at=ctx.now.isoformat())
        draft, notes = absorb(draft, ev, conv, ctx)
        conv = replace(conv, draft=draft)
        new, actions = ask_consent(conv, ctx)
        errors = [n for n in notes if _is_error(n)]
        return new, [*errors, *actions]
    return ask_consent(conv, ctx)


def _kept_before_consent(draft: Draft, conv: Conversation, ctx: Ctx) -> list[Action]:
    """What was sent before the notice, told after it: the photos and the place kept."""
    lines: list[Msg] = []
    if draft.photos:
        lines.append(Msg("kept.photos", {"n": len(draft.photos)}))
    if draft.voice:
        lines.append(Msg("kept.voice"))
    if draft.province_code and draft.lat is not None:
        found = _code_place(ctx, draft.subdistrict_code or draft.district_code or draft.province_code)
        lines.append(Msg("kept.location", {"place": _place_label(replace(found, province_code=draft.province_code), conv.lang, ctx)}))
    elif draft.landmark:
        lines.append(Msg("kept.landmark", {"text": draft.landmark}))
    return [Reply(tuple(lines))] if lines else []


# ---------------------------------------------------------------- reporting


def on_idle(conv: Conversation, ev: Event, ctx: Ctx) -> Result:
    """Without a draft, a photo or a location starts a report; anything else shows the menu."""
    if isinstance(ev, MEDIA) or (isinstance(ev, TextReceived) and _is_location_text(ev.text)):
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
    if draft.urgent and not conv.draft.urgent:  # this answer made it urgent: the numbers first
        notes = [_say(conv, "urgent.numbers"), *notes]
    new, actions = ask_next(replace(conv, draft=draft), ctx)
    if isinstance(ev, (PhotoReceived, VoiceReceived)) and notes and new.step == conv.step:
        # another photo of a set, or a voice note: acknowledged, the question stands
        return replace(new, q=conv.q), notes
    if isinstance(ev, ChoiceMade) and not notes and new.step == conv.step:
        actions = [replace(a, edit=True) if isinstance(a, Reply) and a.question else a for a in actions]
    return new, [*notes, *actions]


def absorb(draft: Draft, ev: Event, conv: Conversation, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Takes a photo or a location into the draft whatever the current step."""
    if isinstance(ev, PhotoReceived):
        if ev.key and ev.key in draft.photos:
            return draft, []
        if len(draft.photos) >= MAX_PHOTOS:  # not downloaded (`keeps_media`)
            return draft, [_say(conv, "err.too_many_photos", max=MAX_PHOTOS)]
        if ev.error or not ev.key:
            return draft, [_say(conv, f"err.photo_{ev.error or 'not_image'}")]
        photos = (*draft.photos, ev.key)
        left = MAX_PHOTOS - len(photos)
        got = _say(conv, "photo.got_more", n=left) if left else _say(conv, "photo.got_last")
        return replace(draft, photos=photos, no_photo=False), [got]
    if isinstance(ev, LocationReceived):
        return place(draft, ev.lat, ev.lon, "shared", conv, ctx)
    if isinstance(ev, VoiceReceived):
        if ev.error or not ev.key:
            return draft, [_say(conv, f"err.voice_{ev.error or 'not_audio'}")]
        if conv.step == "photo" and not draft.photos:  # a voice note instead of a photo: go on
            return replace(draft, voice=ev.key, no_photo=True), [_say(conv, "voice.got")]
        return replace(draft, voice=ev.key), [_say(conv, "voice.got")]
    return draft, []


def place(
    draft: Draft, lat: float, lon: float, source: str, conv: Conversation, ctx: Ctx,
    swapped: bool = False, other: tuple[float, float] | None = None,
) -> tuple[Draft, list[Action]]:
    """Puts a point in the draft once the map data says it is in Thailand; a point in the sea
    near Thailand waits for the volunteer's confirmation. ``other``: the same numbers in the other
    order, used when only that order lands in Thailand (said so in the reply)."""
    if lat == 0.0 and lon == 0.0:
        return draft, [_say(conv, "err.coords_zero")]  # a phone without a fix
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return draft, [_say(conv, "err.coords_out_of_range")]
    found = ctx.locate(lat, lon)
    if not found.inside and other is not None:
        alt = ctx.locate(*other)
        if alt.inside or (alt.sea and not found.sea):
            lat, lon, found, swapped = other[0], other[1], alt, True
    if found.sea and found.province_code:
        draft = replace(draft, pending=(round(lat, 6), round(lon, 6), source))
        buttons = ((Button(Msg("btn.sea_yes"), "sea:yes"),), (Button(Msg("btn.sea_no"), "edit:location"),))
        lines = ([Msg("location.swapped")] if swapped else []) + [
            Msg("location.sea", {"place": _place_label(found, conv.lang, ctx), "km": f"{found.distance_m / 1000:.1f}"})
        ]
        return draft, [Reply(tuple(lines), buttons)]
    if not found.inside or found.province_code is None:
        return draft, [_say(conv, "err.outside_thailand")]
    draft = _located(draft, found, lat=round(lat, 6), lon=round(lon, 6), location_source=source, landmark=None)
    got = Msg("location.got", {"province": ctx.province_name(found.province_code, conv.lang), "area": _area(found, conv.lang, ctx)})
    return draft, [Reply(((Msg("location.swapped"),) if swapped else ()) + (got,), ask="located")]


def _located(draft: Draft, found: Located, **fields) -> Draft:
    """The draft with a place's codes and teams (the volunteer's earlier team choice dropped)."""
    return replace(
        draft, province_code=found.province_code, neighbours=found.neighbours,
        district_code=found.district_code, subdistrict_code=found.subdistrict_code,
        team=found.team, team_chosen=False, near_teams=found.near_teams, place_choices=(), pending=None,
        **fields,
    )


def _name(ctx: Ctx, code: str, lang: str) -> str:
    fn = getattr(ctx, "place_name", None)
    return fn(code, lang) if fn is not None else ctx.province_name(code, lang)


def _area(found, lang: str, ctx: Ctx) -> Msg | str:
    """" (อ.บางละมุง ต.หนองปรือ)" after a province's name, or nothing."""
    sub, dist = found.subdistrict_code, found.district_code
    if not dist:
        return ""
    key = "place.area_bkk" if dist.startswith("10") else "place.area"
    if not sub:
        key += "_district"
    return Msg(key, {"subdistrict": _name(ctx, sub, lang) if sub else "", "district": _name(ctx, dist, lang)})


def _place_label(found, lang: str, ctx: Ctx) -> Msg:
    return Msg("place.label", {"area": _area(found, lang, ctx), "province": ctx.province_name(found.province_code, lang)})


def _choice_label(found: Located, lang: str, ctx: Ctx) -> Msg:
    """A short button label, largest unit last ("อ.บางละมุง จ.ชลบุรี"): LINE cuts labels at 20."""
    province = ctx.province_name(found.province_code, lang)
    if not found.district_code:
        return Msg("btn.place_province", {"province": province})
    key = "btn.place_bkk" if found.district_code.startswith("10") else "btn.place_district"
    return Msg(key, {"district": _name(ctx, found.district_code, lang), "province": province})


def _code_place(ctx: Ctx, code: str) -> Located:
    fn = getattr(ctx, "place_of", None)
    if fn is not None:
        return fn(code)
    return Located(True, code[:2], (), code[:4] if len(code) >= 4 else None, code if len(code) == 6 else None)


def _is_location_text(text: str) -> bool:
    reading = read_coordinates(text)
    return (reading is not None and not reading.loose) or short_map_link(text) is not None


MAX_PLACE_CHOICES = 6


def _one_team(ctx: Ctx, codes: list[str]) -> Located | None:
    """Several places that one team serves (พัทยา: two subdistricts of Pattaya City): their
    common district or province, with that team; None when they differ."""
    if len(codes) < 2 or len(codes) > MAX_PLACE_CHOICES:
        return None
    teams = {_code_place(ctx, c).team for c in codes}
    common = next((n for n in (4, 2) if len({c[:n] for c in codes}) == 1 and all(len(c) >= n for c in codes)), 0)
    if len(teams) != 1 or None in teams or not common:
        return None
    return replace(_code_place(ctx, codes[0][:common]), team=teams.pop())


def landmark(conv: Conversation, draft: Draft, text: str, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """A typed landmark: routed by the most specific place name in it; a shared name is offered
    as a choice, not guessed."""
    finder = getattr(ctx, "places_in_text", None)
    codes = list(finder(text)) if finder is not None else []
    if finder is None:
        one = ctx.province_in_text(text)
        codes = [one] if one else []
    draft = replace(
        draft, landmark=text[:300], lat=None, lon=None, location_source="landmark", province_code=None,
        neighbours=(), district_code=None, subdistrict_code=None, team=None, team_chosen=False,
        near_teams=(), place_choices=(), pending=None,
    )
    found = _code_place(ctx, codes[0]) if len(codes) == 1 else _one_team(ctx, codes)
    if found is not None:
        draft = _located(draft, found)
        got = Msg("location.landmark_place", {"place": _place_label(found, conv.lang, ctx)})
        return draft, [Reply((Msg("location.landmark"), got), ask="located")]
    draft = replace(draft, province_code=conv.area_hint)
    if not codes:
        return draft, [Reply((Msg("location.landmark"),), ask="located")]
    if len(codes) > MAX_PLACE_CHOICES:
        return draft, [Reply((Msg("location.landmark"), Msg("location.many", {"n": len(codes)})))]
    draft = replace(draft, place_choices=tuple(codes))
    rows = tuple(
        (Button(_choice_label(_code_place(ctx, c), conv.lang, ctx), f"place:{c}"),) for c in codes
    ) + ((Button(Msg("btn.place_none"), "place:none"),),)
    return draft, [Reply((Msg("location.landmark"), Msg("location.choose")), rows)]


def on_text(conv: Conversation, draft: Draft, text: str, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Reads typed text by the current step: coordinates anywhere, else a landmark, count or note."""
    text = text.strip()
    if not text:
        return draft, [_say(conv, "err.empty")]
    reading = read_coordinates(text)
    if reading is not None and reading.loose and conv.step != "location":
        reading = None  # "3, 5" answering how many is not a position
    if reading is not None and reading.problem:
        return draft, [_say(conv, f"err.coords_{reading.problem}")]
    if reading is not None:
        return place(draft, reading.lat, reading.lon, "typed", conv, ctx, reading.swapped, reading.other)
    if short_map_link(text) is not None:
        return draft, [_say(conv, "err.short_link")]
    if conv.step == "location":
        if len(text) < 3:
            return draft, [_say(conv, "err.landmark_short")]
        return landmark(conv, draft, text, ctx)
    if conv.step == "confirm":  # the optional note (typed again: replaces it)
        if len(text) > MAX_NOTE:
            return draft, [_say(conv, "err.too_long", limit=MAX_NOTE)]
        return replace(draft, note=text, note_done=True), [_say(conv, "note.got")]
    return draft, [_say(conv, "err.tap_choice")]


def on_choice(conv: Conversation, draft: Draft, data: str, ctx: Ctx) -> tuple[Draft, list[Action]]:
    """Applies a button press to the draft."""
    kind, _, value = data.partition(":")
    if kind == "nophoto":
        return replace(draft, no_photo=True), [_say(conv, "photo.skipped")]
    if kind == "who" and value in WHO and conv.step == "who" and not draft.who_multi:  # one tap: on
        return _who_done(replace(draft, who=(value,))), []
    if kind == "who" and value in WHO and draft.who_multi:
        chosen = tuple(w for w in WHO if (w in draft.who) != (w == value))
        return replace(draft, who=chosen), []
    if kind == "who" and value == "done" and draft.who_multi:
        if not draft.who:
            return draft, [_say(conv, "err.who_empty")]
        return _who_done(draft), []
    if kind == "child" and value in ("alone", "adult") and "child" in draft.who:
        return replace(draft, urgency="child_alone" if value == "alone" else "normal"), []
    if kind == "count" and value in COUNTS and draft.who_done:
        return replace(draft, count=value), []
    if kind == "urg" and value in URGENCIES and draft.who_done:
        return replace(draft, urgency=value), []
    if kind == "prov" and (value in draft.neighbours or value == draft.province_code):
        others = tuple(c for c in (draft.province_code, *draft.neighbours) if c and c != value)
        if value == draft.province_code:
            return replace(draft, neighbours=others), []
        return replace(draft, province_code=value, neighbours=others, district_code=None, subdistrict_code=None,
                       team=None, team_chosen=False, near_teams=()), []
    if kind == "team" and value and (value in draft.near_teams or value == draft.team):
        others = tuple(c for c in (draft.team, *draft.near_teams) if c and c != value)
        draft = replace(draft, team=value, team_chosen=True, near_teams=others)
        provinces = tuple(getattr(ctx, "team_provinces", lambda c: ())(value))
        if len(provinces) == 1 and provinces[0] != draft.province_code:
            # the volunteer says the point is in the other province: its district is not known
            others_p = tuple(c for c in (draft.province_code, *draft.neighbours) if c and c != provinces[0])
            draft = replace(draft, province_code=provinces[0], neighbours=others_p, district_code=None, subdistrict_code=None)
        return draft, []
    if kind == "place" and value == "none" and draft.place_choices:
        return replace(draft, place_choices=()), []
    if kind == "place" and value in draft.place_choices:
        return _located(draft, _code_place(ctx, value)), []
    if kind == "sea" and value == "yes" and draft.pending is not None:
        lat, lon, source = draft.pending
        found = ctx.locate(lat, lon)
        if not found.province_code:
            return replace(draft, pending=None), [_say(conv, "err.outside_thailand")]
        got = _say(conv, "location.got", province=ctx.province_name(found.province_code, conv.lang), area=_area(found, conv.lang, ctx))
        return _located(draft, found, lat=lat, lon=lon, location_source=source, landmark=None), [got]
    if kind == "edit" and value in ("photo", "location", "who", "count", "urgency", "note"):
        return _reopen(draft, value), []
    return draft, [_say(conv, "err.stale_button")]


def _who_done(draft: Draft) -> Draft:
    """Who is answered: the count defaults to one person, the urgency follows from who."""
    return replace(draft, who_done=True, who_multi=False, count=draft.count or COUNTS[0],
                   urgency=urgency_of(draft.who, draft.urgency))


def _reopen(draft: Draft, part: str) -> Draft:
    if part == "photo":
        return replace(draft, photos=(), no_photo=False)
    if part == "location":
        return replace(
            draft, lat=None, lon=None, landmark=None, province_code=None, neighbours=(), location_source=None,
            district_code=None, subdistrict_code=None, team=None, team_chosen=False, near_teams=(),
            place_choices=(), pending=None,
        )
    if part == "who":
        return replace(draft, who_done=False, who_multi=True)
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
    conv = replace(conv, step=want, asked_at=asked_at, q=conv.q + 1)
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
    """A child goes on the Child Protection Act's track; begging on the Begging Control Act's;
    everything else on the Destitute Persons Act's."""
    if "child" in who:
        return "child"
    return "begging" if "begging" in who else "destitution"


def _say(conv: Conversation, key: str, **params) -> Reply:
    return Reply((Msg(key, params),))


def _is_error(action: Action) -> bool:
    return isinstance(action, Reply) and action.lines[0].key.startswith("err.")
