"""The volunteers, teams and staff of the multi-replica test and benchmark (no pytest here).

Volunteers on Telegram and LINE send whole reports without waiting for the bot's replies (some
send the photo and the location before anything else); each team's group chat is bound with an
invite, and a staff member there presses "acknowledge" on every card that arrives. `Observer`
reads what the fake platforms received and tells each volunteer's messages, the cards, and the
limits as measured at the platform.
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tests.cluster import Cluster, Sender

SCRIPTS = ("text-first", "media-first")
EVENTS = {"text-first": 10, "media-first": 10}  # webhook events of one volunteer's report, by script
CANDIDATES = [
    (16.45, 102.83), (15.25, 104.85), (17.40, 102.80), (18.80, 98.98), (19.90, 99.83), (8.43, 99.96),
    (7.00, 100.47), (14.98, 102.10), (16.82, 100.26), (15.70, 100.13), (13.53, 99.81), (9.14, 99.33),
    (17.16, 104.15), (16.25, 103.25), (16.05, 103.65), (15.80, 102.03), (14.35, 100.55), (17.00, 100.25),
]
STEP = 0.0025  # degrees between two volunteers' points: ~275 m, more than the 150 m of a repeat
KILL_WINDOW = (5.0, 1.0)  # seconds before and after a kill -9 in which the killed replica's last sends arrive
REF = re.compile(r"NJ-\d{4}-\d{6}")
ACK = re.compile(r"^r:(\d+):ack$")


def jpeg(seed: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (seed * 37 % 256, seed * 91 % 256, 120)).save(buf, "JPEG")
    return buf.getvalue()


def normal(text: str, names: tuple[str, ...] = ()) -> str:
    """A message as compared between volunteers: the names of their team and place (longest first),
    reference numbers and all other numbers (times, coordinates in links) blanked."""
    for name in names:
        text = text.replace(name, "<place>")
    return re.sub(r"\d+", "#", REF.sub("NJ-#", text))


@dataclass
class Team:
    code: str
    platform: str  # where its group chat is
    group: str  # chat id
    staff: str  # user id of the staff member who presses
    points: list[tuple[float, float]] = field(default_factory=list)
    names: tuple[str, ...] = ()  # the team's and the place's names, th and en, longest first


@dataclass
class Volunteer:
    n: int
    platform: str
    script: str
    team: Team
    point: tuple[float, float]

    @property
    def chat(self) -> str:
        return str(7_000_000 + self.n) if self.platform == "telegram" else f"U{self.n:032x}"

    @property
    def kind(self) -> tuple[str, str]:
        return (self.platform, self.script)

    def normal(self, text: str) -> str:
        return normal(text, self.team.names)


async def plan_teams(cluster: Cluster, n_teams: int, per_team: int, telegram_groups: int) -> list[Team]:
    """Teams with points where every volunteer of a team lands in the same subdistrict, with no
    neighbouring province or team to choose: the same questions for all of them."""
    from bot.reports import Reports
    from storage.boundaries import Boundaries
    from storage.db import Database

    db = Database(cluster.db_url)
    reports = Reports(Boundaries.default(), lambda: datetime.now(timezone.utc))
    teams: list[Team] = []
    try:
        async with db.session() as s:
            ctx = await reports.flow_context(s, datetime.now(timezone.utc))
        used: set[str] = set()
        for lat, lon in CANDIDATES:
            base = ctx.locate(lat, lon)
            if not base.inside or not base.team or base.team in used or base.near_teams or base.neighbours:
                continue
            pts = []
            for k in range(64):
                p = (lat + STEP * (k % 8), lon + STEP * (k // 8))
                loc = ctx.locate(*p)
                if (loc.team, loc.subdistrict_code) == (base.team, base.subdistrict_code) and not loc.near_teams and not loc.neighbours:
                    pts.append(p)
                if len(pts) == per_team:
                    break
            if len(pts) < per_team:
                continue
            i = len(teams)
            platform = "telegram" if i < telegram_groups else "line"
            group = str(-1001000000000 - i) if platform == "telegram" else f"C{i:032x}"
            staff = str(8_000_000 + i) if platform == "telegram" else f"U{0xfff000 + i:032x}"
            names = {ctx.team_name(base.team, lang) for lang in ("th", "en")}
            for code in (base.province_code, base.district_code, base.subdistrict_code):
                if code:
                    names |= {ctx.place_name(code, lang) for lang in ("th", "en")}
            names = tuple(sorted((n for n in names if n), key=len, reverse=True))
            teams.append(Team(base.team, platform, group, staff, pts, names))
            used.add(base.team)
            if len(teams) == n_teams:
                return teams
    finally:
        await db.dispose()
    raise RuntimeError(f"only {len(teams)} teams with {per_team} clean points among the candidates")


def tg_user(uid: str) -> dict:
    return {"id": int(uid), "is_bot": False, "first_name": f"V{uid}", "language_code": "th"}


async def bind(sender: Sender, cluster: Cluster, team: Team, url: str | None = None) -> None:
    code = await cluster.create_invite(team.code)
    text = f"/bind {code}"
    if team.platform == "telegram":
        await sender.telegram(sender.tg_message(int(team.group), tg_user(team.staff), text=text,
                                                entities=[{"offset": 0, "length": 5, "type": "bot_command"}]), url)
    else:
        await sender.line(sender.line_event("text", user=team.staff, group=team.group, text=text), url=url)


async def report(sender: Sender, v: Volunteer, url: str | None = None) -> float:
    """One volunteer's whole report, posted as fast as the webhook answers (no waiting for replies);
    returns when its last event (confirm:send) was first posted."""
    lat, lon = v.point
    if v.platform == "telegram":
        user, chat = tg_user(v.chat), int(v.chat)
        fid = f"AgADphoto{v.n}"
        await sender.tg_file(fid, jpeg(v.n))
        photo = lambda: sender.tg_message(chat, user, photo=[{"file_id": fid, "file_unique_id": f"u{v.n}", "width": 640, "height": 480}])  # noqa: E731
        location = lambda: sender.tg_message(chat, user, location={"latitude": lat, "longitude": lon})  # noqa: E731
        press = lambda d: sender.tg_press(chat, user, d)  # noqa: E731
        hello = lambda: sender.tg_message(chat, user, text="สวัสดี")  # noqa: E731
        post = lambda u: sender.telegram(u, url)  # noqa: E731
    else:
        mid = f"img{v.n}"
        await sender.line_content(mid, jpeg(v.n))
        photo = lambda: sender.line_event("image", user=v.chat, id=mid)  # noqa: E731
        location = lambda: sender.line_event("location", user=v.chat, latitude=lat, longitude=lon, title="")  # noqa: E731
        press = lambda d: sender.line_event("postback_group", user=v.chat, data=d)  # noqa: E731
        hello = lambda: sender.line_event("text", user=v.chat, text="สวัสดี")  # noqa: E731
        post = lambda e: sender.line(e, url=url)  # noqa: E731
    rest = [press(d) for d in ("who:homeless", "who:done", "count:1", "urg:normal", "note:skip", "confirm:send")]
    if v.script == "text-first":
        events = [hello(), press("consent:yes"), photo(), location(), *rest]
    else:  # a photo before consent is not kept (PDPA: never downloaded): the bot asks, it is sent again
        events = [photo(), location(), press("consent:yes"), photo(), *rest]
    assert len(events) == EVENTS[v.script]
    last = 0.0
    for ev in events:
        last = time.time()
        await post(ev)
    return last


class Observer:
    """What the fake platforms received, read incrementally."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.tg: list[dict] = []
        self.line: list[dict] = []
        self.pressed: set[int] = set()

    def poll(self) -> None:
        self.tg += self.cluster.telegram_calls(len(self.tg))
        self.line += self.cluster.line_sent(len(self.line))

    def messages(self, platform: str, chat: str) -> list[dict]:
        """What a chat received, in the order the platform accepted it: {t, text}."""
        if platform == "telegram":
            return [c for c in self.tg if c["ok"] and c["chat"] == chat and c["method"] in ("sendMessage", "sendPhoto", "sendLocation")]
        return [m for m in self.line if m["to"] == chat]

    def cards(self) -> dict[int, list[tuple[str, str, int | None, float]]]:
        """report id -> the card posts (platform, chat, message id, arrival) that carried its ack button."""
        out: dict[int, list] = defaultdict(list)
        for c in self.tg:
            if c["ok"] and c["method"] in ("sendMessage", "sendPhoto") and c["markup"]:
                for row in c["markup"].get("inline_keyboard", []):
                    for b in row:
                        m = ACK.match(b.get("callback_data") or "")
                        if m:
                            out[int(m.group(1))].append(("telegram", c["chat"], c["message_id"], c["t"]))
        for s in self.line:
            for _, data in s["postbacks"]:
                m = ACK.match(data)
                if m:
                    out[int(m.group(1))].append(("line", s["to"], None, s["t"]))
        return out

    async def press_new_cards(self, sender: Sender, teams: dict[str, Team], url: str | None = None) -> int:
        """Staff acknowledge every card not pressed yet; returns how many presses went out."""
        jobs = []
        for rid, posts in self.cards().items():
            if rid in self.pressed:
                continue
            platform, chat, mid, _ = posts[0]
            team = teams[chat]
            self.pressed.add(rid)
            if platform == "telegram":
                jobs.append(sender.telegram(sender.tg_press(int(chat), tg_user(team.staff), f"r:{rid}:ack", mid or 1), url))
            else:
                jobs.append(sender.line(sender.line_event("postback_group", user=team.staff, group=chat, data=f"r:{rid}:ack"), url=url))
        await asyncio.gather(*jobs)
        return len(jobs)

    # ---- the platform's limits, measured where the messages arrived

    def telegram_peaks(self) -> tuple[int, dict[str, int]]:
        """The most Telegram messages in any rolling second (all chats) and in any rolling minute per group."""
        msgs = [c for c in self.tg if c["method"] in MESSAGE_METHODS and c["chat"]]
        overall = peak(sorted(c["t"] for c in msgs), 1.0)
        per_group = {}
        for chat in {c["chat"] for c in msgs if c["chat"].startswith("-")}:
            per_group[chat] = peak(sorted(c["t"] for c in msgs if c["chat"] == chat), 60.0)
        return overall, per_group


def kill_duplicate(got: list[tuple[str, float]], expected: list[str], killed_at: float, window: tuple[float, float] = KILL_WINDOW) -> int | None:
    """The one duplicate class a `kill -9` leaves (Telegram has no idempotency key): a message the
    platform took from the killed replica just before it died, whose "sent" was never committed,
    sent again after its lease. `got`: a chat's (message, arrival) in order. The index of that
    first copy when removing it gives `expected`, else None."""
    for i, (text, t) in enumerate(got):
        if killed_at - window[0] <= t <= killed_at + window[1] and any(x == text for x, _ in got[i + 1:]):
            if [x for j, (x, _) in enumerate(got) if j != i] == expected:
                return i
    return None


MESSAGE_METHODS = ("sendMessage", "sendPhoto", "sendLocation", "editMessageText", "editMessageCaption", "editMessageReplyMarkup")


def peak(times: list[float], window: float) -> int:
    """The most of `times` (sorted) in any window of `window` seconds."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


async def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = await check()
        if got:
            return got
        await asyncio.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s")
