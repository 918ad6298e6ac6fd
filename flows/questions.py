"""The questions the bot asks a volunteer, the summary to confirm, and the menu. Pure.

After the photo a report needs: the location (shared: two taps), who was seen (one tap: the
category also says how urgent it is; "child" asks whether the child is alone), and "send" on the
summary. The summary carries a default count ("1 person") that a tap changes, a one-tap "in
danger now", and takes a typed note or voice note, which is optional. See docs/report-flow.mmd.
"""

from __future__ import annotations

from flows.cards import area_names, facts
from flows.draft import COUNTS, MAX_PHOTOS, URGENT, WHO, Conversation, Ctx, Draft
from flows.model import Button, Msg, Reply


MAX_SWITCH = 3  # one-tap switches offered on the summary
VERSION_SEP = "@"  # a question's buttons carry "@<question number>": an older one is stale
UNVERSIONED = ("cmd:", "lang:", "still:")  # buttons that act whenever they are pressed


def next_missing(draft: Draft) -> str:
    """The first thing the draft still lacks, or `confirm`."""
    if not draft.photos and not draft.no_photo:
        return "photo"
    if not draft.has_location:
        return "location"
    if not draft.who_done:
        return "who"
    if "child" in draft.who and draft.urgency is None:
        return "child"
    return "confirm"


def urgency_of(who: tuple[str, ...], current: str | None) -> str | None:
    """The urgency the people seen imply: a sick or injured person needs care; a child's depends
    on whether the child is alone (None: ask); a danger the volunteer marked stays."""
    if current == "danger":
        return current
    if "sick" in who:
        return "injury"
    if "child" in who:
        return "child_alone" if current == "child_alone" else (None if current is None or current == "injury" else current)
    return "normal"


def question(conv: Conversation, ctx: Ctx) -> Reply:
    """The message that asks for the current step's answer (its buttons carry the question's number)."""
    return versioned(_question(conv, ctx), conv.q)


def _question(conv: Conversation, ctx: Ctx) -> Reply:
    draft = conv.draft
    assert draft is not None
    s = conv.step
    if s == "photo":
        return Reply((Msg("ask.photo", {"max": MAX_PHOTOS}),), ((Button(Msg("btn.nophoto"), "nophoto:"),),), ask="photo")
    if s == "location":
        return Reply((Msg("ask.location"),), (), ask="location")
    if s == "who":
        if draft.who_multi:  # changing the answer from the summary: several may be ticked
            rows = [tuple(toggle(f"who.{w}", f"who:{w}", w in draft.who) for w in WHO[i : i + 3]) for i in range(0, len(WHO), 3)]
            rows.append((Button(Msg("btn.done"), "who:done"),))
            return Reply((Msg("ask.who_many"),), tuple(rows))
        rows = [tuple(Button(Msg(f"who.{w}"), f"who:{w}") for w in WHO[i : i + 3]) for i in range(0, len(WHO), 3)]
        return Reply((Msg("ask.who"),), tuple(rows))
    if s == "child":
        return Reply((Msg("ask.child_alone"),), ((Button(Msg("btn.child_alone"), "child:alone"), Button(Msg("btn.child_adult"), "child:adult")),))
    return confirm_message(conv, ctx)


def versioned(reply: Reply, q: int) -> Reply:
    """The reply with its step buttons numbered by question (menu and language buttons are not)."""
    rows = tuple(
        tuple(b if b.data.startswith(UNVERSIONED) else Button(b.label, f"{b.data}{VERSION_SEP}{q}") for b in row)
        for row in reply.buttons
    )
    return Reply(reply.lines, rows, reply.ask, reply.edit, question=True)


def confirm_message(conv: Conversation, ctx: Ctx) -> Reply:
    """The summary to send: send now, the count to change in one tap, one tap for "in danger",
    one tap to switch to a neighbouring province's team near a border; the note is optional."""
    draft = conv.draft
    assert draft is not None
    lines = [Msg("confirm.title"), *summary_lines(draft, conv.lang, ctx), Msg("confirm.note_hint")]
    send = "btn.send_urgent" if draft.urgent else "btn.send"
    rows: list[tuple[Button, ...]] = [(Button(Msg(send), "confirm:send"),)]
    count = draft.count or COUNTS[0]
    rows.append(tuple(toggle(f"count.{c}", f"count:{c}", c == count) for c in COUNTS))
    if draft.urgency not in URGENT:
        rows.append((Button(Msg("btn.danger"), "urg:danger"),))
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
    lines += facts(draft.lat, draft.lon, draft.landmark, province, draft.who, draft.count or COUNTS[0], draft.urgency, draft.note, draft.voice, area=area)
    team_name = getattr(ctx, "team_name", None)
    if team_name is not None and draft.team:
        lines.append(Msg("sum.team", {"team": team_name(draft.team, lang)}))
    return lines


def toggle(key: str, data: str, on: bool) -> Button:
    """A choice button, ticked when chosen."""
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
