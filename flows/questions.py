"""The questions the bot asks a volunteer, the summary to confirm, and the menu. Pure."""

from __future__ import annotations

from flows.cards import area_names, facts
from flows.draft import COUNTS, MAX_PHOTOS, URGENCIES, WHO, Conversation, Ctx, Draft
from flows.model import Button, Msg, Reply


MAX_SWITCH = 3  # one-tap switches offered on the summary


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
            rows.append(tuple(toggle(f"who.{w}", f"who:{w}", w in draft.who) for w in WHO[i : i + 3]))
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
    team_name = getattr(ctx, "team_name", None)
    if team_name is not None and draft.team:
        for code in draft.near_teams[:MAX_SWITCH]:
            rows.append((Button(Msg("btn.switch_team", {"team": team_name(code, conv.lang)}), f"team:{code}"),))
    else:
        for code in draft.neighbours[:MAX_SWITCH]:
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
    province = ctx.province_name(draft.province_code, lang) if draft.province_code else None
    place_name = getattr(ctx, "place_name", None)
    area = area_names(draft.district_code, draft.subdistrict_code, lambda c: place_name(c, lang)) if place_name else None
    lines += facts(draft.lat, draft.lon, draft.landmark, province, draft.who, draft.count, draft.urgency, draft.note, draft.voice, area=area)
    team_name = getattr(ctx, "team_name", None)
    if team_name is not None and draft.team:
        lines.append(Msg("sum.team", {"team": team_name(draft.team, lang)}))
    return lines


def toggle(key: str, data: str, on: bool) -> Button:
    """A multi-choice button, ticked when chosen."""
    return Button(Msg("btn.selected", {"item": Msg(key)}) if on else Msg(key), data)


def menu() -> Reply:
    """The main menu."""
    return Reply(
        (Msg("menu.title"),),
        (
            (Button(Msg("btn.new"), "cmd:new"), Button(Msg("btn.mine"), "cmd:mine")),
            (Button(Msg("btn.help"), "cmd:help"), Button(Msg("btn.lang"), "cmd:lang")),
        ),
    )

