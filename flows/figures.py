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
from dataclasses import dataclass, field
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


def figures(cases: Iterable[Case], fy: int, now: datetime, policy: Policy) -> Figures:
    """The fiscal year's figures of `cases` (one team's, or several teams' together)."""
    start, end = fiscal_bounds(fy)
    f = Figures(fy)
    spans: dict[str, list[float]] = {m: [] for m in MILESTONES}
    met = Counter()
    counted = Counter()
    for c in cases:
        if c.status != "closed":
            f.open_now += 1
            if any(
                _reached(c, m) is None and (d := first_deadline(c, m, policy)) is not None and d <= now for m in MILESTONES
            ):
                f.overdue_now += 1
        if c.closed_at is not None and c.status == "closed" and start <= c.closed_at < end:
            f.monthly_closed[month_index(c.closed_at)] += 1
        if not (start <= c.created_at < end):
            continue
        f.received += 1
        f.urgent += c.urgent
        f.repeats += c.repeat
        f.monthly_received[month_index(c.created_at)] += 1
        f.categories.update(c.who)
        if c.status == "closed" and c.outcome:
            f.outcomes[c.outcome] += 1
        for m in MILESTONES:
            at = _reached(c, m)
            if at is not None:
                spans[m].append((at - c.created_at).total_seconds() / 3600)
            deadline = first_deadline(c, m, policy)
            if deadline is None:
                continue
            if at is not None and at <= deadline:
                met[m] += 1
                counted[m] += 1
            elif at is not None or deadline <= now:
                counted[m] += 1
    for m in MILESTONES:
        v = spans[m]
        f.hours[m] = {"n": len(v), "median": median(v), "p90": percentile(v, 0.9)}
        f.within[m] = {"met": met[m], "counted": counted[m], "share": met[m] / counted[m] if counted[m] else None}
    return f


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
