"""Report statuses, the one table of allowed transitions, outcomes, and who may do what.

A report has a lifecycle status; each staff action moves it along the table below, and every
move is appended to the report's history by the caller. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum


class Status(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    ON_SITE = "on_site"
    CLOSED = "closed"
    REOPENED = "reopened"
    TRANSFERRED = "transferred"


OPEN_STATUSES = frozenset(s for s in Status if s is not Status.CLOSED)


class Outcome(StrEnum):
    SHELTER = "shelter"  # admitted to a shelter for destitute persons
    FAMILY = "family"  # returned to family or home community
    REFERRED_HOSPITAL = "referred_hospital"
    REFERRED_DISABILITY = "referred_disability"  # Dept. of Empowerment of Persons with Disabilities
    REFERRED_CHILD = "referred_child"  # child protection
    REFERRED_IMMIGRATION = "referred_immigration"
    REFERRED_POLICE = "referred_police"
    REFERRED_MUNICIPALITY = "referred_municipality"
    HELPED_ON_SITE = "helped_on_site"
    DECLINED = "declined"
    NOT_FOUND = "not_found"
    DUPLICATE = "duplicate"
    OUT_OF_SCOPE = "out_of_scope"


class Role(StrEnum):
    STAFF = "staff"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


ROLE_RANK = {Role.STAFF: 1, Role.SUPERVISOR: 2, Role.ADMIN: 3}

# action -> (statuses it may start from, the status it leads to, the least role that may do it)
# "comment" changes nothing but the history; "transfer" changes the team as well.
TRANSITIONS: dict[str, tuple[frozenset[Status], Status | None, Role]] = {
    "ack": (frozenset({Status.NEW, Status.TRANSFERRED, Status.REOPENED}), Status.ACKNOWLEDGED, Role.STAFF),
    "onsite": (
        frozenset({Status.NEW, Status.TRANSFERRED, Status.REOPENED, Status.ACKNOWLEDGED}),
        Status.ON_SITE,
        Role.STAFF,
    ),
    "close": (OPEN_STATUSES, Status.CLOSED, Role.STAFF),
    "transfer": (OPEN_STATUSES, Status.TRANSFERRED, Role.STAFF),
    "reopen": (frozenset({Status.CLOSED}), Status.REOPENED, Role.SUPERVISOR),
    # the one who closed a report may take it back within UNDO_WINDOW; after that only a supervisor
    "undo": (frozenset({Status.CLOSED}), Status.REOPENED, Role.STAFF),
    "comment": (frozenset(Status), None, Role.STAFF),
}

UNDO_WINDOW = timedelta(minutes=10)

# Statuses the reporter hears about, in plain words.
REPORTER_TOLD = frozenset({Status.ACKNOWLEDGED, Status.ON_SITE, Status.CLOSED, Status.REOPENED})


@dataclass(frozen=True)
class Decision:
    ok: bool
    new_status: Status | None = None
    error: str | None = None  # catalogue key explaining the refusal


def may_undo(closed_by: str | None, actor: str | None, closed_at, now) -> bool:
    """Whether `actor` may still undo the close: they closed it, less than UNDO_WINDOW ago."""
    return bool(closed_by and actor and closed_by == actor and closed_at and now - closed_at <= UNDO_WINDOW)


def can_start(action: str, status: Status, role: Role | None) -> Decision:
    """Whether someone with `role` may begin `action` (open its picker) on a report in `status`:
    the rules of `decide` that come before the outcome or the team is chosen."""
    if role is None:
        return Decision(False, error="staff.not_member")
    rule = TRANSITIONS.get(action)
    if rule is None:
        return Decision(False, error="staff.unknown_action")
    sources, target, least = rule
    if ROLE_RANK[role] < ROLE_RANK[least]:
        return Decision(False, error="staff.not_allowed")
    if status not in sources:
        return Decision(False, error="staff.already_closed" if status is Status.CLOSED else "staff.not_now")
    return Decision(True, new_status=target)


def decide(
    action: str, status: Status, role: Role | None, *, arg: str = "", same_team: bool = True, undo_ok: bool = False
) -> Decision:
    """Whether `action` is allowed on a report in `status` by someone with `role`.
    `undo_ok`: the actor closed the report within UNDO_WINDOW (see `may_undo`)."""
    start = can_start(action, status, role)
    if not start.ok:
        return start
    if action == "close":
        try:
            Outcome(arg)
        except ValueError:
            return Decision(False, error="staff.need_outcome")
    if action == "undo" and not undo_ok:
        return Decision(False, error="staff.undo_expired")
    if action == "transfer" and (not arg or same_team):
        return Decision(False, error="staff.need_team")
    return Decision(True, new_status=start.new_status if start.new_status is not None else status)


def allowed_actions(status: Status) -> list[str]:
    """The card's buttons for a report in `status` (comment is a reply, not a button)."""
    return [
        a for a, (src, _, least) in TRANSITIONS.items()
        if status in src and a not in ("comment", "undo") and least is Role.STAFF
    ]


@dataclass(frozen=True)
class Effect:
    """What an allowed action does to a report: the fields to set and the history's detail."""

    changes: dict
    detail: dict


def effect(
    action: str,
    new_status: Status,
    now,
    *,
    acknowledged_at=None,
    on_site_at=None,
    arg: str = "",
    comment: str | None = None,
    team_id: int | None = None,
    target_team_id: int | None = None,
    target_code: str | None = None,
) -> Effect:
    """The one rule of what a status change does to a report (timestamps, outcome, team), for the
    chat's buttons and the console alike. `decide` must have allowed the action first."""
    if action == "comment":
        return Effect({}, {"comment": comment})
    changes: dict = {"status": new_status, "updated_at": now, "next_due_at": now}  # the scheduler re-plans
    detail: dict = {}
    if new_status == Status.ACKNOWLEDGED:
        changes["acknowledged_at"] = acknowledged_at or now
    elif new_status == Status.ON_SITE:
        changes["on_site_at"] = on_site_at or now
        changes["acknowledged_at"] = acknowledged_at or now
    elif new_status == Status.CLOSED:
        changes["closed_at"], changes["outcome"] = now, arg
        detail["outcome"] = arg
    elif new_status == Status.REOPENED:
        changes["closed_at"], changes["outcome"] = None, None
    if target_team_id is not None:
        changes["team_id"] = target_team_id
        detail["from_team"], detail["to_team"] = team_id, target_code
    if comment:
        detail["comment"] = comment
    return Effect(changes, detail)
