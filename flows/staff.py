"""What a staff group's events mean: binding a chat to a team, buttons on a card, comments.

Pure: the engine has already resolved what needs the database (which report a reply points to).
Telegram groups run in privacy mode, so staff act with buttons and replies to the bot's cards;
plain group chatter is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

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
from flows.deadlines import duration_msg
from flows.status import Outcome

GROUP_COMMANDS = {"open": "open", "เรื่องค้าง": "open", "open reports": "open", "help": "help", "ช่วยเหลือ": "help", "วิธีใช้": "help"}
REGION = "~"  # transfer data "~3": the teams of the provinces whose code starts with 3


@dataclass(frozen=True)
class ListOpen:
    """A team's chat asked for its open reports (`/open`, "เรื่องค้าง"), oldest first."""


def group_command(ev: Event) -> str | None:
    """A staff command in a group: `/open` and `/help` (any @bot suffix), or the same words typed."""
    if isinstance(ev, CommandReceived):
        return GROUP_COMMANDS.get(ev.name.lower())
    if isinstance(ev, TextReceived):
        text = ev.text.strip().lower()
        if text.startswith("/"):
            text = text[1:].split()[0].split("@")[0] if len(text) > 1 else ""
        return GROUP_COMMANDS.get(text)
    return None

BIND_CODE = re.compile(r"^[A-Z2-9]{4}-[A-Z2-9]{4}$")
CARD_DATA = re.compile(r"^r:(\d+):([a-z]+)(?::([A-Za-z0-9_.\-~]*))?$")
MAX_COMMENT = 1000


def group_step(ev: Event, reply_report_id: int | None = None, bound: bool = True) -> list[Action]:
    """Turns a group chat event into the staff actions it asks for."""
    if isinstance(ev, CommandReceived) and ev.name == "bind":
        return [BindChat(ev.arg.strip().upper())]
    if isinstance(ev, CommandReceived) and ev.name == "joined":  # the bot was added to the group
        return [] if bound else [Reply((Msg("group.unbound"),))]
    command = group_command(ev)
    if command == "help":
        return [Reply((Msg("group.help" if bound else "group.unbound"),))]
    if command == "open":
        return [ListOpen()] if bound else [Reply((Msg("group.unbound"),))]
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
        return [StaffAction(report_id, action, arg)]
    return []


OPEN_LIST_LIMIT = 10


def open_list(reports: list[tuple[int, str, str, bool, timedelta]], total: int) -> Reply:
    """A team's open reports, oldest first: (id, ref, status, urgent, age); `total` in all."""
    if not reports:
        return Reply((Msg("open.none"),))
    lines = [Msg("open.title", {"n": total})]
    for _, ref, status, urgent, age in reports:
        lines.append(Msg("open.item_urgent" if urgent else "open.item", {"ref": ref, "status": Msg(f"status.{status}"), "age": duration_msg(age)}))
    if total > len(reports):
        lines.append(Msg("open.more", {"n": total - len(reports)}))
    rows = [Button(Msg("open.button", {"ref": ref}), f"r:{rid}:show") for rid, ref, *_ in reports]
    return Reply(tuple(lines), tuple(tuple(rows[i : i + 2]) for i in range(0, len(rows), 2)))


def outcome_rows(report_id: int) -> tuple[tuple[Button, ...], ...]:
    """The outcomes that close a report, one button each."""
    return tuple((Button(Msg(f"outcome.{o.value}"), f"r:{report_id}:close:{o.value}"),) for o in Outcome)


def transfer_rows(report_id: int, teams: list[tuple[str, Msg]], regions: list[str] = ()) -> tuple[tuple[Button, ...], ...]:
    """The teams that may take the report over (`teams`: (code, name)), then, where the province
    is unknown or the team is elsewhere, one button per region of the country (`regions`: the
    first digits of province codes) that opens that region's teams."""
    rows = tuple((Button(name, f"r:{report_id}:transfer:{code}"),) for code, name in teams)
    pairs = [Button(Msg(f"region.{r}"), f"r:{report_id}:transfer:{REGION}{r}") for r in regions]
    return rows + tuple(tuple(pairs[i : i + 2]) for i in range(0, len(pairs), 2))
