"""What the scheduler says: reminders and escalations, the reporter's follow-up question, nudges of
unfinished reports, digests. Pure: messages are catalogue keys (`Msg`), buttons carry our data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Sequence

from flows.deadlines import AGE_BUCKETS, Due, Facts, Policy, age_bucket, duration_msg, overdue, volunteer_send_at
from flows.model import Button, Msg, Reply

STILL_DATA = re.compile(r"^still:(\d+):(yes|no)$")
LEVEL_KEY = {"team": "remind.team", "supervisors": "remind.supervisors", "director": "remind.director"}


@dataclass(frozen=True)
class ReportBrief:
    id: int
    ref: str
    urgent: bool
    created_at: datetime
    team_name: str = ""
    still_there: bool | None = None
    still_there_at: datetime | None = None


def reminder(r: ReportBrief, dues: Sequence[Due], role: str, now: datetime, buttons: tuple = (), chat_role: str | None = None) -> Reply:
    """A reminder (role team) or an escalation (supervisors, director): which report, how old, what
    is overdue and by how long, with the card's own buttons. `chat_role`: the role of the chat it
    is posted in, when lower than `role` (no chat of that role bound): said so."""
    lines = [Msg(LEVEL_KEY.get(role, "remind.team"), {"ref": r.ref, "team": r.team_name})]
    if chat_role is not None and chat_role != role:
        lines.append(Msg("remind.no_role_chat", {"role": Msg(f"role.{role}"), "here": Msg(f"role.{chat_role}")}))
    if r.urgent:
        lines.append(Msg("remind.urgent"))
    lines.append(Msg("remind.age", {"age": duration_msg(now - r.created_at), "at": r.created_at}))
    for d in dues:
        lines.append(Msg(f"remind.overdue.{d.kind}", {"by": duration_msg(now - d.deadline)}))
    if r.still_there is not None:
        lines.append(Msg("card.still_there.yes" if r.still_there else "card.still_there.no", {"at": r.still_there_at}))
    return Reply(tuple(lines), buttons)


def followup_question(r: ReportBrief) -> Reply:
    """Asks the reporter, once, whether the person is still there."""
    row = (Button(Msg("followup.yes"), f"still:{r.id}:yes"), Button(Msg("followup.no"), f"still:{r.id}:no"))
    return Reply((Msg("followup.ask", {"ref": r.ref}),), (row,))


def may_answer(reporter_platform: str | None, reporter_user: str | None, platform: str, user_id: str | None) -> bool:
    """Who may answer a question put to a report's reporter (still there? how well handled?):
    that reporter, on the platform they reported from; nobody once their identity was purged."""
    return bool(reporter_platform and reporter_user) and reporter_platform == platform and reporter_user == user_id


def parse_still(data: str) -> tuple[int, bool] | None:
    """`still:<report_id>:yes|no` → (report_id, still there?)."""
    m = STILL_DATA.match(data)
    return (int(m.group(1)), m.group(2) == "yes") if m else None


def still_answered(ref: str, yes: bool, open_: bool) -> Reply:
    if not open_:
        return Reply((Msg("followup.closed", {"ref": ref}),))
    return Reply((Msg("followup.thanks_yes" if yes else "followup.thanks_no", {"ref": ref}),))


# ---------------------------------------------------------------- the reporter's rating (issue 13)

RATINGS = ("good", "ok", "bad")  # three faces, best first
RATE_DATA = re.compile(r"^rate:(\d+):(good|ok|bad)$")


def rating_due(status: str, told: bool, asked_at: datetime | None, reporter_chat: str | None, now: datetime, policy: Policy) -> datetime | None:
    """When to ask the reporter how well their report was handled: once (never asked before),
    after they were told of its closing, outside the quiet hours (at their end if now is inside);
    None: not to ask."""
    if status != "closed" or not told or asked_at is not None or not reporter_chat:
        return None
    return volunteer_send_at(now, policy, urgent=False)  # never urgent: it waits for the morning


def rating_question(report_id: int, ref: str) -> Reply:
    """Three faces, one tap; not answering is fine (the question says so)."""
    row = tuple(Button(Msg(f"rating.{r}"), f"rate:{report_id}:{r}") for r in RATINGS)
    return Reply((Msg("rating.ask", {"ref": ref}),), (row,))


def parse_rating(data: str) -> tuple[int, str] | None:
    """`rate:<report_id>:good|ok|bad` → (report_id, rating)."""
    m = RATE_DATA.match(data)
    return (int(m.group(1)), m.group(2)) if m else None


def rating_accepted(asked_at: datetime | None, rating: str | None) -> bool:
    """The answer counts when the question was asked and not answered yet (one tap: the first)."""
    return asked_at is not None and rating is None


def rating_answered(ref: str, counted: bool) -> Reply:
    return Reply((Msg("rating.thanks" if counted else "rating.already", {"ref": ref}),))


def draft_nudge() -> Reply:
    return Reply(
        (Msg("draft.nudge"),),
        ((Button(Msg("btn.continue"), "cmd:start"), Button(Msg("btn.cancel"), "cmd:cancel")),),
    )


def draft_dropped() -> Reply:
    return Reply((Msg("draft.dropped"),), ((Button(Msg("btn.new"), "cmd:new"),),))


@dataclass(frozen=True)
class OverdueItem:
    ref: str
    urgent: bool
    what: tuple[tuple[str, timedelta], ...]  # (milestone, overdue by)


def digest_tally(open_reports: Sequence[tuple[str, Facts]], policy: Policy, now: datetime) -> tuple[dict[str, int], list[OverdueItem]]:
    """A team's open reports counted by age, and those overdue: urgent first, most overdue first."""
    by_age: dict[str, int] = {}
    late = []
    for ref, f in open_reports:
        b = age_bucket(now - f.created_at)
        by_age[b] = by_age.get(b, 0) + 1
        what = overdue(f, policy, now)
        if what:
            late.append(OverdueItem(ref, f.urgent, tuple(what)))
    late.sort(key=lambda i: (not i.urgent, -max(by for _, by in i.what)))
    return by_age, late


def daily_digest(team_name: str, day: date, new: int, by_age: dict[str, int], overdue: Sequence[OverdueItem], max_items: int = 10) -> Reply:
    """The morning digest of a team's group."""
    open_total = sum(by_age.values())
    lines = [Msg("digest.title", {"team": team_name, "day": day.isoformat()})]
    lines.append(Msg("digest.new", {"n": new}))
    lines.append(Msg("digest.open", {"n": open_total}))
    for b in AGE_BUCKETS:
        if by_age.get(b):
            lines.append(Msg(f"digest.age.{b}", {"n": by_age[b]}))
    if overdue:
        lines.append(Msg("digest.overdue", {"n": len(overdue)}))
        for item in overdue[:max_items]:
            what = [Msg(f"digest.what.{k}", {"by": duration_msg(by)}) for k, by in item.what]
            lines.append(Msg("digest.overdue_item", {"ref": item.ref, "what": what, "mark": "🚨 " if item.urgent else ""}))
        if len(overdue) > max_items:
            lines.append(Msg("digest.more", {"n": len(overdue) - max_items}))
    return Reply(tuple(lines))


def weekly_summary(team_name: str, week_of: date, new: int, closed: int, open_: int, overdue: int) -> Reply:
    """Monday's summary of a team's week for its supervisors."""
    return Reply(
        (
            Msg("weekly.title", {"team": team_name, "day": week_of.isoformat()}),
            Msg("weekly.line", {"new": new, "closed": closed, "open": open_, "overdue": overdue}),
        )
    )
