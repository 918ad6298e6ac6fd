"""The fiscal year's figures: pure functions over the reports a storage query fetched.

Definitions (README "Console figures"):
- The fiscal year FY runs 1 October (FY-1) 00:00 to 30 September FY 24:00, Bangkok time; it is
  shown in the Buddhist Era (FY + 543). A report belongs to the year it was received in.
- Time to acknowledge / reach / close: from receipt (`created_at`) to the first acknowledgement,
  the first "on site", the (last) closing; only reports that got there count.
- Median: the middle value (mean of the two middle ones for an even count). 90th percentile:
  nearest rank, the smallest value with at least 90% of the values at or below it.
- Within the deadline: the share of reports of the year whose milestone was met by the first
  deadline of `policy.yaml` for its track (urgent: wall clock; normal: office hours as the policy
  says); a report that has not met it and whose deadline has passed counts as missed; one whose
  deadline is still ahead is not counted.
- Overdue now: open reports with a milestone past its first deadline now.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Iterable, Sequence

from flows.deadlines import Policy, _offset

BANGKOK_OFFSET = timedelta(hours=7)  # Thailand keeps no daylight saving time
MILESTONES = ("ack", "onsite", "close")


def fiscal_year(at: datetime) -> int:
    """The (Common Era) fiscal year a moment falls in: October 2026 is in FY 2027 (BE 2570)."""
    local = at.astimezone(timezone(BANGKOK_OFFSET))
    return local.year + 1 if local.month >= 10 else local.year


def fiscal_bounds(fy: int) -> tuple[datetime, datetime]:
    """[start, end) of a fiscal year, in UTC."""
    tz = timezone(BANGKOK_OFFSET)
    return (datetime(fy - 1, 10, 1, tzinfo=tz).astimezone(timezone.utc), datetime(fy, 10, 1, tzinfo=tz).astimezone(timezone.utc))


def be(fy: int) -> int:
    return fy + 543


def month_index(at: datetime) -> int:
    """0 for October … 11 for September."""
    m = at.astimezone(timezone(BANGKOK_OFFSET)).month
    return (m - 10) % 12


MONTHS_FY = (10, 11, 12, 1, 2, 3, 4, 5, 6, 7, 8, 9)


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not values:
        return None
    v = sorted(values)
    return v[max(0, math.ceil(q * len(v)) - 1)]


@dataclass(frozen=True)
class Case:
    """One report, as the figures need it."""

    team_id: int
    created_at: datetime
    urgent: bool = False
    status: str = "new"
    acknowledged_at: datetime | None = None
    on_site_at: datetime | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    who: tuple[str, ...] = ()
    repeat: bool = False
    rating: str | None = None  # the reporter's answer, if they gave one


@dataclass
class Figures:
    fy: int
    received: int = 0
    hours: dict = field(default_factory=dict)  # milestone -> {"n", "median", "p90"} in hours
    within: dict = field(default_factory=dict)  # milestone -> {"met", "counted", "share"}
    overdue_now: int = 0
    open_now: int = 0
    outcomes: Counter = field(default_factory=Counter)
    categories: Counter = field(default_factory=Counter)
    repeats: int = 0
    urgent: int = 0
    monthly_received: list = field(default_factory=lambda: [0] * 12)
    monthly_closed: list = field(default_factory=lambda: [0] * 12)
    ratings: Counter = field(default_factory=Counter)  # the reporters' answers (good / ok / bad)


class OfficeClock:
    """`Calendar.add_working` for many reports at once: the office seconds before each day of a
    range of years are summed up once, then a deadline is two bisections, not a walk over days.
    Outside the range it falls back on the calendar itself."""

    def __init__(self, cal, first: date, last: date):
        from bisect import bisect_left

        self.cal, self.first, self.last = cal, first, last
        self._bisect = bisect_left
        self.days: list[date] = []
        self.opens: list[datetime] = []
        self.ends: list[float] = []  # cumulative office seconds at each working day's close
        self.starts: list[float] = []
        day_len = cal.day_length.total_seconds()
        total = 0.0
        d = first
        while d <= last:
            if cal.is_working_day(d):
                self.days.append(d)
                self.opens.append(datetime.combine(d, cal.start, cal.tz).astimezone(timezone.utc))
                self.starts.append(total)
                total += day_len
                self.ends.append(total)
            d += timedelta(days=1)
        self.day_len = day_len

    def add(self, start: datetime, delta: timedelta) -> datetime:
        local = start.astimezone(self.cal.tz).date()
        if delta <= timedelta(0) or not (self.first <= local and local + timedelta(days=60) <= self.last) or not self.days:
            return self.cal.add_working(start, delta)
        i = self._bisect(self.days, local)  # the first working day on or after start's date
        if i < len(self.days) and self.days[i] == local:
            into = min(max((start - self.opens[i]).total_seconds(), 0.0), self.day_len)
            if into >= self.day_len and delta > timedelta(0):
                before = self.ends[i]  # after closing: the next opening
            else:
                before = self.starts[i] + into
        else:
            before = self.starts[i]
        target = before + delta.total_seconds()
        j = self._bisect(self.ends, target)
        return self.opens[j] + timedelta(seconds=target - self.starts[j])


def _deadline_fn(policy: Policy, fy: int):
    clock = OfficeClock(policy.calendar, date(fy - 3, 9, 1), date(fy + 1, 12, 31))
    tracks = {u: {m.name: m for m in policy.track(u).milestones if m.at} for u in (False, True)}

    def deadline(c: Case, milestone: str) -> datetime | None:
        m = tracks[c.urgent].get(milestone)
        if m is None:
            return None
        return clock.add(c.created_at, m.at[0]) if m.clock == "working" else c.created_at + m.at[0]

    return deadline


def first_deadline(c: Case, milestone: str, policy: Policy) -> datetime | None:
    for m in policy.track(c.urgent).milestones:
        if m.name == milestone and m.at:
            return _offset(c.created_at, m, m.at[0], policy.calendar)
    return None


def _reached(c: Case, milestone: str) -> datetime | None:
    if milestone == "ack":
        return c.acknowledged_at or c.on_site_at
    if milestone == "onsite":
        return c.on_site_at
    return c.closed_at if c.status == "closed" else None


_fast: dict = {}


def fast_policy(policy: Policy, fy: int) -> Policy:
    """The same policy with its public holidays around the year listed out: the same deadlines,
    without a holidays lookup (tens of microseconds) for each day of each report. Kept per
    (policy, year): the public holidays of past and coming years are the package's fixed data, and
    the policy object itself is what `load_policy` read once (a new policy is a new key)."""
    cal = policy.calendar
    if not cal.country:
        return policy
    key = (id(policy), fy)
    hit = _fast.get(key)
    if hit is not None and hit[0] is policy:
        return hit[1]
    import holidays

    days = holidays.country_holidays(cal.country, years=range(fy - 3, fy + 2))
    listed = frozenset(d for d in days if d not in cal.not_holidays) | cal.extra
    out = replace(policy, calendar=replace(cal, country=None, extra=listed))
    if len(_fast) > 64:
        _fast.clear()
    _fast[key] = (policy, out)
    return out


def figures(cases: Iterable[Case], fy: int, now: datetime, policy: Policy) -> Figures:
    """The fiscal year's figures of `cases` (one team's, or several teams' together)."""
    return figures_by(cases, fy, now, policy, lambda c: None)[None]


def figures_by(cases: Iterable[Case], fy: int, now: datetime, policy: Policy, key) -> dict:
    """The figures of all `cases` (under None) and of each group `key(case)` names, in one pass
    (each report's deadlines computed once)."""
    policy = fast_policy(policy, fy)
    deadline = _deadline_fn(policy, fy)
    start, end = fiscal_bounds(fy)
    acc: dict = {}

    def bucket(k):
        if k not in acc:
            acc[k] = (Figures(fy), {m: [] for m in MILESTONES}, Counter(), Counter())
        return acc[k]

    bucket(None)
    for c in cases:
        k = key(c)
        targets = [bucket(None)] if k is None else [bucket(None), bucket(k)]
        in_year = start <= c.created_at < end
        reached = {m: _reached(c, m) for m in MILESTONES}
        if in_year:
            deadlines = {m: deadline(c, m) for m in MILESTONES}
            overdue = c.status != "closed" and any(reached[m] is None and deadlines[m] is not None and deadlines[m] <= now for m in MILESTONES)
        else:  # only "overdue now" is asked of it: the (wall-clock) close deadline first, lazily
            deadlines = {}
            overdue = c.status != "closed" and any(
                reached[m] is None and (d := deadline(c, m)) is not None and d <= now for m in ("close", "ack", "onsite")
            )
        for f, spans, met, counted in targets:
            _add(f, spans, met, counted, c, deadlines, reached, overdue, in_year, start, end, now)
    out = {}
    for k, (f, spans, met, counted) in acc.items():
        for m in MILESTONES:
            v = spans[m]
            f.hours[m] = {"n": len(v), "median": median(v), "p90": percentile(v, 0.9)}
            f.within[m] = {"met": met[m], "counted": counted[m], "share": met[m] / counted[m] if counted[m] else None}
        out[k] = f
    return out


def _add(f, spans, met, counted, c, deadlines, reached, overdue, in_year, start, end, now) -> None:
    if c.status != "closed":
        f.open_now += 1
        f.overdue_now += overdue
    if c.closed_at is not None and c.status == "closed" and start <= c.closed_at < end:
        f.monthly_closed[month_index(c.closed_at)] += 1
    if not in_year:
        return
    f.received += 1
    f.urgent += c.urgent
    f.repeats += c.repeat
    f.monthly_received[month_index(c.created_at)] += 1
    f.categories.update(c.who)
    if c.status == "closed" and c.outcome:
        f.outcomes[c.outcome] += 1
    if c.rating:
        f.ratings[c.rating] += 1
    for m in MILESTONES:
        at = reached[m]
        if at is not None:
            spans[m].append((at - c.created_at).total_seconds() / 3600)
        deadline = deadlines[m]
        if deadline is None:
            continue
        if at is not None and at <= deadline:
            met[m] += 1
            counted[m] += 1
        elif at is not None or deadline <= now:
            counted[m] += 1


def bar_chart_svg(series: Sequence[tuple[str, Sequence[int], str]], labels: Sequence[str], title: str, width: int = 560, height: int = 200) -> str:
    """A grouped monthly bar chart as an SVG string (no script): `series` is (name, values, colour)."""
    from html import escape

    pad_l, pad_b, pad_t = 32, 28, 22
    n = len(labels)
    top = max([1] + [v for _, vals, _ in series for v in vals])
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    slot = plot_w / max(n, 1)
    bar = slot * 0.8 / max(len(series), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<title>{escape(title)}</title>',
        f'<text x="{pad_l}" y="14" font-size="12">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 8}" y2="{pad_t + plot_h}" stroke="#888"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 8}" font-size="10" text-anchor="end">{top}</text>',
    ]
    for i, label in enumerate(labels):
        x0 = pad_l + i * slot + slot * 0.1
        for j, (name, vals, colour) in enumerate(series):
            v = vals[i]
            h = plot_h * v / top
            parts.append(
                f'<rect x="{x0 + j * bar:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                f'<title>{escape(name)} {escape(label)}: {v}</title></rect>'
            )
        parts.append(f'<text x="{pad_l + i * slot + slot / 2:.1f}" y="{height - 10}" font-size="10" text-anchor="middle">{escape(label)}</text>')
    for j, (name, _, colour) in enumerate(series):
        parts.append(f'<rect x="{width - 150}" y="{4 + j * 12}" width="10" height="8" fill="{colour}"/>'
                     f'<text x="{width - 136}" y="{12 + j * 12}" font-size="10">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------- the same figures, in SQL
#
# On PostgreSQL the figures are aggregated by the database (storage.console_repo.figures_by_team):
# medians by percentile_cont(0.5), the 90th percentile by percentile_disc(0.9) (nearest rank, as
# above), the deadlines by the expressions below. A working-clock deadline is the office clock's
# `OfficeClock.add`, spelled with a table of calendar days: each day says whether it is a working
# day and gives the openings of the next working days from it on, so that a report's deadline is a
# join on its local date and a little arithmetic. The same calendar (`fast_policy`) as the Python
# path gives the same deadlines, hence the same numbers (tests/test_console.py compares them).


@dataclass(frozen=True)
class DuePlan:
    """What the SQL needs to know of the policy's first deadlines."""

    day_seconds: float  # an office day's length
    tz: str  # the calendar's time zone (its local date is the join key)
    steps: dict  # (urgent, milestone) -> ("wall" | "working", seconds), or None: no deadline
    columns: int  # openings per day row: enough for the longest working-clock step

    def working(self) -> bool:
        return any(v and v[0] == "working" for v in self.steps.values())


def due_plan(policy: Policy) -> DuePlan:
    day = policy.calendar.day_length.total_seconds()
    steps = {}
    longest = 0.0
    for urgent in (False, True):
        ms = {m.name: m for m in policy.track(urgent).milestones if m.at}
        for name in MILESTONES:
            m = ms.get(name)
            if m is None:
                steps[(urgent, name)] = None
                continue
            secs = m.at[0].total_seconds()
            steps[(urgent, name)] = (m.clock, secs)
            if m.clock == "working":
                longest = max(longest, secs)
    return DuePlan(day, getattr(policy.calendar.tz, "key", "Asia/Bangkok"), steps, 2 + math.ceil(longest / day) if day else 2)


def office_table(cal, first: date, last: date, columns: int) -> tuple[list[date], list[bool], list[list[datetime]]]:
    """For each calendar day from `first` to `last`: whether it is a working day, and the openings
    (UTC) of the `columns` working days from it on (itself first when it is one). An instant's
    deadline of D office seconds: on a working day after its closing, or not on a working day,
    start from the next opening (into = 0); otherwise into = the office time already gone that day;
    the deadline is opening[k] + (into + D - n·L), n = ceil((into + D) / L) - 1, k = n (+1 after
    closing) — `OfficeClock.add`, a closing being the deadline when the time runs out exactly."""
    working: list[date] = []
    d, after = first, 0
    while (d <= last or after < columns) and d <= last + timedelta(days=400):
        if cal.is_working_day(d):
            working.append(d)
            after += d > last
        d += timedelta(days=1)
    opens = [datetime.combine(w, cal.start, cal.tz).astimezone(timezone.utc) for w in working]
    from bisect import bisect_left

    days, work, cols = [], [], [[] for _ in range(columns)]
    d = first
    while d <= last:
        i = bisect_left(working, d)
        days.append(d)
        work.append(i < len(working) and working[i] == d)
        for k in range(columns):
            cols[k].append(opens[i + k] if i + k < len(opens) else None)
        d += timedelta(days=1)
    return days, work, cols


def assemble(fy: int, main: Iterable[dict], monthly: Iterable[tuple], closed: Iterable[tuple], outcomes: Iterable[tuple],
             categories: Iterable[tuple], ratings: Iterable[tuple] = ()) -> dict:
    """The figures (all under None, each team under its id) from the SQL aggregates: `main` one
    row per team and one for all (team_id None), the others (team_id, key, count) per team."""
    out: dict = {None: Figures(fy)}

    def f(k) -> Figures:
        if k not in out:
            out[k] = Figures(fy)
        return out[k]

    for row in main:
        x = f(row["team_id"])
        x.received, x.urgent, x.repeats = row["received"], row["urgent"], row["repeats"]
        x.open_now, x.overdue_now = row["open_now"], row["overdue_now"]
        for m in MILESTONES:
            med, p90 = row[f"med_{m}"], row[f"p90_{m}"]
            x.hours[m] = {"n": row[f"n_{m}"], "median": None if med is None else float(med), "p90": None if p90 is None else float(p90)}
            met, counted = row[f"met_{m}"], row[f"counted_{m}"]
            x.within[m] = {"met": met, "counted": counted, "share": met / counted if counted else None}
    for rows, field_ in ((monthly, "monthly_received"), (closed, "monthly_closed")):
        for team, month, n in rows:
            for k in (None, team):
                getattr(f(k), field_)[int(month)] += n
    for rows, field_ in ((outcomes, "outcomes"), (categories, "categories"), (ratings, "ratings")):
        for team, key, n in rows:
            for k in (None, team):
                getattr(f(k), field_)[key] += n
    for x in out.values():
        for m in MILESTONES:
            x.hours.setdefault(m, {"n": 0, "median": None, "p90": None})
            x.within.setdefault(m, {"met": 0, "counted": 0, "share": None})
    return out
