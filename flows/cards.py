"""What staff see on a report's card, what the reporter is told, and reference numbers. Pure."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Callable
from zoneinfo import ZoneInfo

from flows.model import Button, Card, Msg, Reply
from flows.deadlines import duration_msg
from flows.status import OPEN_STATUSES, REPORTER_TOLD, UNDO_WINDOW, Status, allowed_actions

BANGKOK = ZoneInfo("Asia/Bangkok")


def be_year(at: datetime) -> int:
    """The Buddhist Era year of a moment, in Bangkok."""
    return at.astimezone(BANGKOK).year + 543


def format_ref(year_be: int, seq: int) -> str:
    """`NJ-2569-000123`."""
    return f"NJ-{year_be}-{seq:06d}"


@dataclass(frozen=True)
class ReportView:
    id: int
    ref: str
    status: str
    created_at: datetime
    who: tuple[str, ...] = ()
    count: str | None = None
    urgency: str | None = None
    urgent: bool = False
    note: str | None = None
    lat: float | None = None
    lon: float | None = None
    landmark: str | None = None
    province_code: str | None = None
    district_code: str | None = None
    subdistrict_code: str | None = None
    photos: tuple[str, ...] = ()
    voice: str | None = None
    law_track: str = "destitution"
    team_name: str = ""
    outcome: str | None = None
    repeats: tuple[str, ...] = ()  # refs of possible earlier sightings nearby
    last_comment: str | None = None
    still_there: bool | None = None  # the reporter's answer to the scheduler's follow-up
    still_there_at: datetime | None = None
    photos_purged: bool = False  # its photos were deleted by PDPA retention (reports.photos_purged_at)
    relayed_from: str = ""  # the team the place belongs to, which has no chat: the report came here
    unreachable: bool = False  # no chat up the chain could be given the report: the reporter is told
    now: datetime | None = None  # when the view was taken: the card's waiting time counts to it
    accepted_by: str | None = None  # display name of who accepted it (first ack or on-site)
    accepted_at: datetime | None = None
    closed_by: str | None = None  # display name of who closed it
    closed_by_key: str | None = None  # platform:user of who closed it (may undo within UNDO_WINDOW)
    closed_at: datetime | None = None


def area_names(district: str | None, subdistrict: str | None, name: Callable[[str], str]) -> Msg | None:
    """The district and subdistrict as one line ("ต.หนองปรือ อ.บางละมุง"), or None."""
    if not district:
        return None
    key = "sum.area_bkk" if district.startswith("10") else "sum.area"
    if not subdistrict:
        key += "_district"
    return Msg(key, {"district": name(district), "subdistrict": name(subdistrict) if subdistrict else ""})


def facts(lat, lon, landmark, province: str | None, who, count, urgency, note, voice, area: Msg | None = None) -> list[Msg]:
    """The lines that describe a sighting, the same on the volunteer's summary and on the card.
    `area`: the district and subdistrict line (see `area_names`)."""
    lines = []
    if lat is not None and lon is not None:
        lines.append(Msg("sum.location", {"lat": f"{lat:.5f}", "lon": f"{lon:.5f}"}))
    elif landmark:
        lines.append(Msg("sum.landmark", {"text": landmark}))
    if area is not None:
        lines.append(area)
    lines.append(Msg("sum.province", {"province": province}) if province else Msg("sum.province_unknown"))
    if who:
        lines.append(Msg("sum.who", {"who": [Msg(f"who.{w}") for w in who]}))
    if count:
        lines.append(Msg("sum.count", {"count": Msg(f"count.{count}")}))
    if urgency:
        lines.append(Msg("sum.urgency", {"urgency": Msg(f"urg.{urgency}")}))
    if note:
        lines.append(Msg("sum.note", {"note": note}))
    if voice:
        lines.append(Msg("sum.voice"))
    return lines


def card(view: ReportView, province_name: Callable[[str], str]) -> Card:
    """A report's card for its team's group, with the buttons its status allows."""
    lines = [Msg("card.title_urgent" if view.urgent else "card.title", {"ref": view.ref})]
    lines.append(Msg("card.status", {"status": Msg(f"status.{view.status}")}))
    if view.outcome:
        lines.append(Msg("card.outcome", {"outcome": Msg(f"outcome.{view.outcome}")}))
    lines.append(Msg("card.team", {"team": view.team_name}))
    if view.relayed_from:
        lines.append(Msg("card.relayed", {"team": view.relayed_from}))
    if view.now is not None and Status(view.status) in OPEN_STATUSES:
        lines.append(Msg("card.waiting", {"age": duration_msg(view.now - view.created_at)}))
    if view.accepted_at is not None:
        lines.append(Msg("card.accepted", {"who": view.accepted_by or "-", "at": view.accepted_at}))
    if view.status == Status.CLOSED and view.closed_at is not None:
        lines.append(Msg("card.closed_by", {"who": view.closed_by or "-", "at": view.closed_at}))
    province = province_name(view.province_code) if view.province_code else None
    area = area_names(view.district_code, view.subdistrict_code, province_name)
    lines += facts(view.lat, view.lon, view.landmark, province, view.who, view.count, view.urgency, view.note, view.voice, area=area)
    if view.photos_purged:
        lines.append(Msg("card.photo_deleted"))
    if view.landmark and view.lat is None:
        lines.append(Msg("card.location_to_confirm"))
    lines.append(Msg(f"card.law.{view.law_track}"))
    if view.repeats:
        lines.append(Msg("card.repeats", {"refs": ", ".join(view.repeats)}))
    if view.last_comment:
        lines.append(Msg("card.last_comment", {"text": view.last_comment}))
    if view.still_there is not None:
        lines.append(Msg("card.still_there.yes" if view.still_there else "card.still_there.no", {"at": view.still_there_at}))
    lines.append(Msg("card.reported_at", {"at": view.created_at}))
    return Card(view.id, tuple(lines), card_buttons(view), view.photos, view.lat, view.lon, view.urgent, view.voice)


def card_buttons(view: ReportView) -> tuple:
    """The buttons of a report's card: what its status allows (a reminder carries them too)."""
    buttons = []
    actions = allowed_actions(Status(view.status))
    row = tuple(Button(Msg(f"act.{a}"), f"r:{view.id}:{a}") for a in actions if a in ("ack", "onsite"))
    if row:
        buttons.append(row)
    row = tuple(Button(Msg(f"act.{a}"), f"r:{view.id}:{a}") for a in actions if a in ("close", "transfer"))
    if row:
        buttons.append(row)
    if view.status == Status.CLOSED:
        row = (Button(Msg("act.reopen"), f"r:{view.id}:reopen"),)
        if undo_open(view):
            row = (Button(Msg("act.undo"), f"r:{view.id}:undo"),) + row
        buttons.append(row)
    return tuple(buttons)


def undo_open(view: ReportView) -> bool:
    """The closed card still offers "undo" (to the one who closed it) for UNDO_WINDOW."""
    return bool(view.closed_by_key and view.closed_at and view.now and view.now - view.closed_at <= UNDO_WINDOW)


def picker(c: Card, ref: str, prompt: str, rows: tuple[tuple[Button, ...], ...]) -> Card:
    """The card itself, its buttons replaced by a choice (an outcome, a team) and a way back:
    staff see which report they are closing, and the card (updated) is what they see after."""
    back = (Button(Msg("act.back"), f"r:{c.report_id}:card"),)
    return replace(c, lines=c.lines + (Msg(prompt, {"ref": ref}),), buttons=rows + (back,))


def reporter_update(view: ReportView, status: str) -> Reply | None:
    """What the reporter is told when their report moves to `status` (None: nothing)."""
    if Status(status) not in REPORTER_TOLD:
        return None
    params = {"ref": view.ref, "team": view.team_name}
    if status == Status.CLOSED:
        params["outcome"] = Msg(f"outcome_plain.{view.outcome}")
    return Reply((Msg(f"tell.{status}", params),))


def submitted(view: ReportView) -> Reply:
    """The reporter's confirmation with the reference number."""
    lines = [Msg("submitted", {"ref": view.ref, "team": view.team_name})]
    if view.unreachable:  # nobody can be shown it in a chat yet: a person on the phone can
        lines.append(Msg("submitted.unreachable"))
    if view.urgent:
        lines.append(Msg("urgent.numbers"))
    lines.append(Msg("submitted.after"))
    return Reply(tuple(lines), ((Button(Msg("btn.new"), "cmd:new"), Button(Msg("btn.mine"), "cmd:mine")),))


def my_reports(views: list[ReportView]) -> Reply:
    """The reporter's recent reports, each with its status."""
    if not views:
        return Reply((Msg("mine.none"),))
    lines = [Msg("mine.title")]
    for v in views:
        lines.append(Msg("mine.item", {"ref": v.ref, "status": Msg(f"status.{v.status}"), "at": v.created_at}))
    return Reply(tuple(lines))
