"""Deadlines, reminders and escalations as pure functions of a report's facts and the clock.

The policy is data (bot/data/policy.yaml). Working time is Bangkok office hours on working days,
Thai public holidays excluded; urgent reports run on the wall clock. Nothing here does I/O
except `load_policy`, which reads the YAML file once.

A report's *episode* starts when it is submitted, transferred or reopened; each milestone (ack,
onsite, close) has a chain of steps counted from that start, the i-th step going to chain[i].
A step is identified by (kind, step) = (milestone, "EPISODE.LEVEL"): the ledger key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from pathlib import Path
from typing import Iterable, Sequence
from zoneinfo import ZoneInfo

import yaml

from flows.model import Msg

POLICY_FILE = Path(__file__).resolve().parent.parent / "bot" / "data" / "policy.yaml"
MILESTONES = ("ack", "onsite", "close")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DUR = re.compile(r"(\d+)\s*([dhms])")


# ---------------------------------------------------------------- policy


@dataclass(frozen=True)
class Calendar:
    """Office hours on working days, in one time zone, public holidays excluded."""

    tz: ZoneInfo = ZoneInfo("Asia/Bangkok")
    start: time = time(8, 30)
    end: time = time(16, 30)
    weekdays: frozenset[int] = frozenset(range(5))
    country: str | None = "TH"
    extra: frozenset[date] = frozenset()
    not_holidays: frozenset[date] = frozenset()

    @cached_property
    def _holidays(self):
        import holidays

        return holidays.country_holidays(self.country) if self.country else {}

    @property
    def day_length(self) -> timedelta:
        return datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)

    def is_holiday(self, d: date) -> bool:
        if d in self.extra:
            return True
        return d not in self.not_holidays and d in self._holidays

    def is_working_day(self, d: date) -> bool:
        return d.weekday() in self.weekdays and not self.is_holiday(d)

    def local(self, at: datetime) -> datetime:
        return at.astimezone(self.tz)

    def add_working(self, start: datetime, delta: timedelta) -> datetime:
        """`start` plus `delta` of office time (an instant outside office hours waits for the next opening)."""
        remaining = delta
        t = self.local(start)
        d = t.date()
        for _ in range(3700):  # ten years of days: a policy cannot ask for more
            if self.is_working_day(d):
                opens = datetime.combine(d, self.start, self.tz)
                closes = datetime.combine(d, self.end, self.tz)
                cur = max(t, opens)
                if cur < closes or (cur == closes and remaining == timedelta(0)):
                    avail = closes - cur
                    if remaining <= avail:
                        return (cur + remaining).astimezone(timezone.utc)
                    remaining -= avail
            d += timedelta(days=1)
            t = datetime.combine(d, time(0), self.tz)
        raise ValueError("no working time within ten years: check the policy's working days")

    def next_opening(self, at: datetime) -> datetime:
        return self.add_working(at, timedelta(0))


@dataclass(frozen=True)
class Milestone:
    name: str  # ack | onsite | close
    clock: str  # wall | working
    at: tuple[timedelta, ...]  # the i-th step is due this long after the episode start


@dataclass(frozen=True)
class Track:
    milestones: tuple[Milestone, ...]


@dataclass(frozen=True)
class Policy:
    calendar: Calendar = field(default_factory=Calendar)
    chain: tuple[str, ...] = ("team", "supervisors", "director")
    urgent: Track = Track(())
    normal: Track = Track(())
    followup_normal: timedelta = timedelta(hours=2)
    followup_urgent: timedelta = timedelta(minutes=20)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(7, 0)
    draft_nudge: timedelta = timedelta(minutes=30)
    draft_drop: timedelta = timedelta(hours=24)
    daily_at: time = time(8, 30)
    weekly_day: int = 0
    weekly_at: time = time(8, 30)
    overdue_list_max: int = 10

    def track(self, urgent: bool) -> Track:
        return self.urgent if urgent else self.normal


def parse_duration(text: str | int | float, day: timedelta = timedelta(days=1)) -> timedelta:
    """`15m`, `4h`, `2d`, `1d4h` (a day is `day` long: an office day on a working clock)."""
    if isinstance(text, (int, float)):
        return timedelta(seconds=text)
    s = str(text).strip().lower()
    parts = _DUR.findall(s)
    if not parts or _DUR.sub("", s).strip():
        raise ValueError(f"bad duration {text!r}: use e.g. 15m, 4h, 2d")
    total = timedelta(0)
    for n, unit in parts:
        n = int(n)
        total += {"d": day * n, "h": timedelta(hours=n), "m": timedelta(minutes=n), "s": timedelta(seconds=n)}[unit]
    return total


def _time(text: str) -> time:
    h, m = str(text).split(":")
    return time(int(h), int(m))


def policy_from_dict(data: dict) -> Policy:
    wh = data.get("working_hours") or {}
    hol = data.get("holidays") or {}
    cal = Calendar(
        tz=ZoneInfo(data.get("timezone", "Asia/Bangkok")),
        start=_time(wh.get("start", "08:30")),
        end=_time(wh.get("end", "16:30")),
        weekdays=frozenset(WEEKDAYS.index(d[:3].lower()) for d in data.get("working_days", WEEKDAYS[:5])),
        country=hol.get("country", "TH"),
        extra=frozenset(date.fromisoformat(str(d)) for d in hol.get("extra") or ()),
        not_holidays=frozenset(date.fromisoformat(str(d)) for d in hol.get("not_holidays") or ()),
    )
    chain = tuple(data.get("chain") or ("team", "supervisors", "director"))

    def track(spec: dict | None) -> Track:
        spec = spec or {}
        default_clock = spec.get("clock", "working")
        out = []
        for name, m in (spec.get("milestones") or {}).items():
            if name not in MILESTONES:
                raise ValueError(f"unknown milestone {name!r} (one of {MILESTONES})")
            if isinstance(m, dict):
                clock, at = m.get("clock", default_clock), m.get("at") or ()
            else:
                clock, at = default_clock, m
            if clock not in ("wall", "working"):
                raise ValueError(f"clock must be wall or working, not {clock!r}")
            day = cal.day_length if clock == "working" else timedelta(days=1)
            steps = tuple(parse_duration(x, day) for x in at)
            if len(steps) > len(chain):
                raise ValueError(f"{name}: {len(steps)} steps but the chain has {len(chain)} roles")
            if list(steps) != sorted(steps):
                raise ValueError(f"{name}: the steps must be in increasing order")
            out.append(Milestone(name, clock, steps))
        return Track(tuple(out))

    fu = data.get("followup") or {}
    quiet = data.get("quiet_hours") or {}
    drafts = data.get("drafts") or {}
    digest = data.get("digest") or {}
    return Policy(
        calendar=cal,
        chain=chain,
        urgent=track(data.get("urgent")),
        normal=track(data.get("normal")),
        followup_normal=parse_duration(fu.get("normal", "2h")),
        followup_urgent=parse_duration(fu.get("urgent", "20m")),
        quiet_start=_time(quiet.get("start", "21:00")),
        quiet_end=_time(quiet.get("end", "07:00")),
        draft_nudge=parse_duration(drafts.get("nudge_after", "30m")),
        draft_drop=parse_duration(drafts.get("drop_after", "24h")),
        daily_at=_time(digest.get("daily_at", "08:30")),
        weekly_day=WEEKDAYS.index(str(digest.get("weekly_day", "mon"))[:3].lower()),
        weekly_at=_time(digest.get("weekly_at", "08:30")),
        overdue_list_max=int(digest.get("overdue_list_max", 10)),
    )


_loaded: dict[str, Policy] = {}


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy of a YAML file (the shipped bot/data/policy.yaml by default), read once."""
    p = str(Path(path) if path else POLICY_FILE)
    if p not in _loaded:
        with open(p, encoding="utf-8") as f:
            _loaded[p] = policy_from_dict(yaml.safe_load(f) or {})
    return _loaded[p]


# ---------------------------------------------------------------- a report's facts


@dataclass(frozen=True)
class Facts:
    """What the deadlines depend on: the report and its history of (at, action)."""

    report_id: int
    urgent: bool
    status: str
    created_at: datetime
    history: tuple[tuple[datetime, str], ...] = ()
    has_reporter: bool = True


@dataclass(frozen=True)
class Episode:
    index: int  # 0 for the first assignment; +1 for each transfer or reopening
    start: datetime
    acked_at: datetime | None
    onsite_at: datetime | None
    closed: bool


def episode(f: Facts) -> Episode:
    """The report's current episode: since the last submit/transfer/reopen, what has been met."""
    start, index = f.created_at, 0
    events = sorted(f.history, key=lambda e: e[0])
    for at, action in events:
        if action in ("transfer", "reopen"):
            start, index = at, index + 1
    acked = onsite = None
    for at, action in events:
        if at < start:
            continue
        if action in ("ack", "onsite") and acked is None:
            acked = at
        if action == "onsite" and onsite is None:
            onsite = at
    closed = f.status == "closed"
    return Episode(index, start, acked, onsite, closed)


@dataclass(frozen=True)
class Due:
    """One step of a chain: a ledger key, when it falls due, who hears about it."""

    kind: str  # ack | onsite | close | followup
    step: str  # "EPISODE.LEVEL" (followup: "0")
    level: int
    due_at: datetime
    to: str  # a chain role, or "reporter"
    deadline: datetime  # when the milestone was due (level 0): what "overdue" counts from


def in_quiet_hours(at: datetime, policy: Policy) -> bool:
    t = policy.calendar.local(at).time()
    qs, qe = policy.quiet_start, policy.quiet_end
    return (qs <= t or t < qe) if qs > qe else (qs <= t < qe)


def after_quiet_hours(at: datetime, policy: Policy) -> datetime:
    """`at`, or the end of the quiet hours it falls in."""
    if not in_quiet_hours(at, policy):
        return at
    local = policy.calendar.local(at)
    d = local.date() if local.time() < policy.quiet_end else local.date() + timedelta(days=1)
    return datetime.combine(d, policy.quiet_end, policy.calendar.tz).astimezone(timezone.utc)


def volunteer_send_at(now: datetime, policy: Policy, urgent: bool = False) -> datetime:
    """The quiet-hours hold: when a message to a volunteer (a reporter) may go out. Nothing in the
    quiet hours, except about an urgent report they made; otherwise held to the end of them. The
    one rule for the follow-up question, the rating question and the plan's reporter steps."""
    return now if urgent else after_quiet_hours(now, policy)


def chain_fallback(role: str, chain: Sequence[str], has_chat) -> str | None:
    """The escalation fallback: the role whose chat hears a step meant for `role`: `role` itself
    if a chat of it is bound, else the nearest role below it in the chain (no director chat: the
    supervisors; no supervisors: the team). `has_chat(role)` says whether one is bound; None when
    no chat of any role at or below `role` is."""
    i = list(chain).index(role) if role in chain else 0
    for j in range(i, -1, -1):
        if has_chat(chain[j]):
            return chain[j]
    return None


def _offset(start: datetime, m: Milestone, delta: timedelta, cal: Calendar) -> datetime:
    if m.clock == "working":
        return cal.add_working(start, delta)
    return start + delta


def due_steps(f: Facts, policy: Policy) -> list[Due]:
    """Every step still relevant for the report now: those of its unmet milestones, and the
    reporter's follow-up while nobody has acknowledged. Sent or not: see `plan`."""
    ep = episode(f)
    if ep.closed:
        return []
    cal = policy.calendar
    out: list[Due] = []
    for m in policy.track(f.urgent).milestones:
        if (m.name == "ack" and ep.acked_at) or (m.name == "onsite" and ep.onsite_at):
            continue
        deadline = None
        for level, delta in enumerate(m.at):
            at = _offset(ep.start, m, delta, cal)
            deadline = deadline or at
            out.append(Due(m.name, f"{ep.index}.{level}", level, at, policy.chain[level], deadline))
    if f.has_reporter and ep.acked_at is None:
        at = f.created_at + (policy.followup_urgent if f.urgent else policy.followup_normal)
        if not f.urgent:
            at = after_quiet_hours(at, policy)
        out.append(Due("followup", "0", 0, at, "reporter", at))
    return out


@dataclass(frozen=True)
class Plan:
    send: tuple[Due, ...]  # one per milestone: its highest level that fell due
    coalesced: tuple[Due, ...]  # fell due too but superseded (downtime): recorded, not sent
    next_due_at: datetime | None  # the earliest step still ahead


def plan(steps: Sequence[Due], sent: Iterable[tuple[str, str]], now: datetime, policy: Policy | None = None, urgent: bool = False) -> Plan:
    """What to send now, given the ledger's (kind, step) keys: what fell due is sent once; after
    downtime several steps of a milestone collapse into its highest one. With `policy`, what goes
    to the reporter of a non-urgent report waits for the end of the quiet hours."""
    sent = set(sent)
    if policy is not None and volunteer_send_at(now, policy, urgent) > now:
        held = volunteer_send_at(now, policy, urgent)
        steps = [replace(d, due_at=max(d.due_at, held)) if d.to == "reporter" else d for d in steps]
    done_level: dict[tuple[str, str], int] = {}
    for d in steps:
        if (d.kind, d.step) in sent:
            ep = d.step.split(".")[0]
            done_level[(d.kind, ep)] = max(done_level.get((d.kind, ep), -1), d.level)
    send: dict[str, Due] = {}
    coalesced: list[Due] = []
    ahead: list[datetime] = []
    for d in steps:
        if (d.kind, d.step) in sent:
            continue
        if d.level <= done_level.get((d.kind, d.step.split(".")[0]), -1):
            continue  # a later step of this chain was already sent
        if d.due_at > now:
            ahead.append(d.due_at)
            continue
        best = send.get(d.kind)
        if best is None or d.level > best.level:
            if best is not None:
                coalesced.append(best)
            send[d.kind] = d
        else:
            coalesced.append(d)
    order = {k: i for i, k in enumerate((*MILESTONES, "followup"))}
    return Plan(
        tuple(sorted(send.values(), key=lambda d: order.get(d.kind, 9))),
        tuple(coalesced),
        min(ahead) if ahead else None,
    )


def overdue(f: Facts, policy: Policy, now: datetime) -> list[tuple[str, timedelta]]:
    """The report's missed milestones now, with how long ago each fell due (for digests)."""
    seen: dict[str, timedelta] = {}
    for d in due_steps(f, policy):
        if d.kind != "followup" and d.level == 0 and d.deadline <= now:
            seen[d.kind] = now - d.deadline
    return sorted(seen.items(), key=lambda kv: MILESTONES.index(kv[0]))


# ---------------------------------------------------------------- drafts, digests


def draft_action(asked_at: datetime, nudged_at: datetime | None, now: datetime, policy: Policy, urgent: bool = False) -> str | None:
    """What an unfinished report needs now: "drop", "nudge" or nothing. Quiet hours hold both
    (an urgent draft may be nudged at night)."""
    if now - asked_at >= policy.draft_drop:
        return None if in_quiet_hours(now, policy) else "drop"
    if now - asked_at >= policy.draft_nudge and (nudged_at is None or nudged_at < asked_at):
        if in_quiet_hours(now, policy) and not urgent:
            return None
        return "nudge"
    return None


def daily_slot(now: datetime, policy: Policy) -> date | None:
    """The working day whose morning digest is due now (from daily_at until closing time)."""
    cal = policy.calendar
    local = cal.local(now)
    if not cal.is_working_day(local.date()):
        return None
    if policy.daily_at <= local.time() < cal.end:
        return local.date()
    return None


def weekly_slot(now: datetime, policy: Policy) -> date | None:
    """The weekly summary's day (this week's weekly_day) once its time has come, that week."""
    local = policy.calendar.local(now)
    day = local.date() - timedelta(days=(local.weekday() - policy.weekly_day) % 7)
    if datetime.combine(day, policy.weekly_at, policy.calendar.tz) <= local:
        return day
    return None


def age_bucket(age: timedelta) -> str:
    if age < timedelta(days=1):
        return "lt1d"
    if age < timedelta(days=3):
        return "1to3d"
    if age < timedelta(days=7):
        return "3to7d"
    return "gt7d"


AGE_BUCKETS = ("lt1d", "1to3d", "3to7d", "gt7d")


def duration_msg(d: timedelta) -> Msg:
    """A duration in words: `45 min`, `3 h 20 min`, `2 d 4 h`."""
    minutes = max(0, int(d.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return Msg("dur.dh", {"d": days, "h": hours})
    if hours:
        return Msg("dur.hm", {"h": hours, "m": mins})
    return Msg("dur.min", {"m": mins})
