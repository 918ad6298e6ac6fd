"""What a staff group's events mean: binding a chat to a team, buttons on a card, comments.

Pure: the engine has already resolved what needs the database (which report a reply points to).
Telegram groups run in privacy mode, so staff act with buttons and replies to the bot's cards;
plain group chatter is ignored.
"""

from __future__ import annotations

import re

from flows.model import (
    Action,
    BindChat,
    Button,
    ChoiceMade,
    CommandReceived,
    Event,
    Msg,
    Reply,
    StaffAction,
    TextReceived,
)
from flows.status import Outcome

BIND_CODE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}$")
CARD_DATA = re.compile(r"^r:(\d+):([a-z]+)(?::([A-Za-z0-9_.\-]*))?$")
MAX_COMMENT = 1000


def group_step(ev: Event, reply_report_id: int | None = None, bound: bool = True) -> list[Action]:
    """Turns a group chat event into the staff actions it asks for."""
    if isinstance(ev, CommandReceived) and ev.name == "bind":
        return [BindChat(ev.arg.strip().upper())]
    if isinstance(ev, CommandReceived) and ev.name == "joined":  # the bot was added to the group
        return [] if bound else [Reply((Msg("group.unbound"),))]
    if isinstance(ev, TextReceived):
        text = ev.text.strip()
        parts = text.split()
        if parts and parts[0].split("@")[0].lower() == "/bind" and len(parts) == 2:
            return [BindChat(parts[1].upper())]
        if BIND_CODE.match(text.upper()):
            return [BindChat(text.upper())]
        if reply_report_id is not None:
            if not text:
                return [Reply((Msg("err.empty"),))]
            if len(text) > MAX_COMMENT:
                return [Reply((Msg("err.too_long", {"limit": MAX_COMMENT}),))]
            return [StaffAction(reply_report_id, "comment", comment=text)]
        return []  # ordinary group chatter is none of our business
    if isinstance(ev, ChoiceMade):
        m = CARD_DATA.match(ev.data)
        if not m:
            return [Reply((Msg("err.stale_button"),))]
        report_id, action, arg = int(m.group(1)), m.group(2), m.group(3) or ""
        if action == "close" and not arg:
            return [outcome_choices(report_id)]
        return [StaffAction(report_id, action, arg)]
    return []


def outcome_choices(report_id: int) -> Reply:
    """Asks which outcome closes the report."""
    rows = tuple((Button(Msg(f"outcome.{o.value}"), f"r:{report_id}:close:{o.value}"),) for o in Outcome)
    return Reply((Msg("staff.choose_outcome", {"report_id": report_id}),), rows)


def transfer_choices(report_id: int, teams: list[tuple[str, Msg]]) -> Reply:
    """Asks which team takes the report over; `teams` are (code, name) candidates."""
    if not teams:
        return Reply((Msg("staff.no_transfer_target"),))
    rows = tuple((Button(name, f"r:{report_id}:transfer:{code}"),) for code, name in teams)
    return Reply((Msg("staff.choose_team"),), rows)
