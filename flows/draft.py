"""The state of a volunteer's conversation and of the report being drafted. Plain data."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Protocol

from flows.model import LocationReceived, PhotoReceived, VoiceReceived

NOTICE_VERSION = "2026-12-v2"  # stored with each consent; shown as NOTICE_LABEL
NOTICE_LABEL = (2, date(2026, 12, 1))  # shown as "ฉบับที่ 2 (ธ.ค. 2569)" / "version 2 (Dec 2026)"
MAX_PHOTOS = 4
MAX_NOTE = 1000
MAX_TEXT = 2000

WHO = ("homeless", "begging", "child", "elderly", "disabled", "sick", "mental", "foreign", "other")
COUNTS = ("1", "2", "3-5", "6+")
URGENCIES = ("danger", "injury", "child_alone", "normal")
URGENT = frozenset({"danger", "injury", "child_alone"})
LANGS = ("th", "en")
KINDS = ("sticker", "video", "audio", "file")
MEDIA = (PhotoReceived, LocationReceived, VoiceReceived)


@dataclass(frozen=True)
class Located:
    """What the map data says of a point (filled by the engine's boundary lookup)."""

    inside: bool
    province_code: str | None = None
    neighbours: tuple[str, ...] = ()  # other provinces within reach of the point (one tap)
    district_code: str | None = None
    subdistrict_code: str | None = None
    sea: bool = False  # in the sea near the subdistrict named (not inside): ask to confirm
    distance_m: float = 0.0  # from the point to that subdistrict (on the coast or at sea)
    team: str | None = None  # the team the place goes to (when the context knows the teams)
    near_teams: tuple[str, ...] = ()  # other teams whose area is within reach (one tap)


class Ctx(Protocol):
    now: datetime

    def locate(self, lat: float, lon: float) -> Located: ...

    def province_in_text(self, text: str) -> str | None: ...

    def province_name(self, code: str, lang: str) -> str: ...

    # Optional (a context without them falls back to provinces only; see flows.report):
    #   places_in_text(text) -> list[str]: the most specific place codes a landmark names
    #   place_of(code) -> Located: a place by its code (2, 4 or 6 digits), with its team
    #   place_name(code, lang) -> str: a province, district or subdistrict name
    #   team_name(code, lang) -> str; team_provinces(code) -> tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    photos: tuple[str, ...] = ()
    no_photo: bool = False
    lat: float | None = None
    lon: float | None = None
    location_source: str | None = None  # shared | typed | landmark
    landmark: str | None = None
    province_code: str | None = None
    neighbours: tuple[str, ...] = ()
    district_code: str | None = None
    subdistrict_code: str | None = None
    team: str | None = None  # the team found for the place, or the one the volunteer chose
    team_chosen: bool = False  # the volunteer switched to `team` with the one-tap button
    near_teams: tuple[str, ...] = ()  # other teams offered in one tap
    place_choices: tuple[str, ...] = ()  # places a typed landmark may mean (a shared name)
    pending: tuple[float, float, str] | None = None  # a point at sea waiting for confirmation
    who: tuple[str, ...] = ()
    who_done: bool = False
    who_multi: bool = False  # "who" reopened from the summary: several may be ticked, then Done
    count: str | None = None
    urgency: str | None = None
    note: str | None = None
    note_done: bool = False
    voice: str | None = None  # a voice message, kept as the note's attachment
    started_at: str | None = None

    @property
    def has_location(self) -> bool:
        return self.lat is not None or self.landmark is not None

    @property
    def urgent(self) -> bool:
        return self.urgency in URGENT

    @property
    def location_to_confirm(self) -> bool:
        return self.lat is None and self.landmark is not None


@dataclass(frozen=True)
class Conversation:
    lang: str = "th"
    lang_chosen: bool = False
    consent_version: str | None = None
    consent_at: str | None = None
    step: str = "idle"  # idle | consent | photo | location | who | child | confirm
    draft: Draft | None = None
    asked_at: str | None = None  # when the current question was asked (for the nudge of drafts)
    area_hint: str | None = None  # a province code from the QR poster's deep link (`/start p-20`)
    q: int = 0  # the number of the question last asked: buttons of an older one are stale
    cancel_asked: bool = False  # "cancel" was asked to be confirmed (the draft has a photo or place)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Conversation":
        if not data:
            return cls()
        d = dict(data)
        draft = d.pop("draft", None)
        if draft is not None:
            draft = Draft(**{k: tuple(v) if isinstance(v, list) else v for k, v in draft.items()})
        known = {f for f in cls.__dataclass_fields__}
        return cls(draft=draft, **{k: v for k, v in d.items() if k in known})
