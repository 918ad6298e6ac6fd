"""Routing as data: which team is responsible for a place.

A municipality's polygon wins over its province's centre; a province's centre wins over the
national fallback. Pure: the caller has looked the point up in the polygons already.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

REPEAT_RADIUS_M = 150.0
REPEAT_WINDOW_DAYS = 14


@dataclass(frozen=True)
class TeamArea:
    code: str
    provinces: tuple[str, ...]
    has_area: bool = False
    fallback: bool = False
    parent: str | None = None  # the provincial centre a municipality works with


MAX_TRANSFER_CHOICES = 8


def choose_team(teams: Sequence[TeamArea], province_code: str | None, polygon_hits: Iterable[str]) -> str | None:
    """The responsible team's code: polygon match, else the province's team, else the fallback."""
    hits = set(polygon_hits)
    for t in teams:
        if t.has_area and t.code in hits and (province_code is None or not t.provinces or province_code in t.provinces):
            return t.code
    if province_code:
        for t in teams:
            if not t.has_area and not t.fallback and province_code in t.provinces:
                return t.code
    for t in teams:
        if t.fallback:
            return t.code
    return None


def province_in_text(text: str, names: dict[str, tuple[str, str]]) -> str | None:
    """The province a typed landmark names (Thai or English name), longest name first, or None."""
    low = text.lower()
    hits = []
    for code, (th, en) in names.items():
        for name in (th, en.lower()):
            if name and name in low:
                hits.append((len(name), code))
    return max(hits)[1] if hits else None


def transfer_candidates(teams: Sequence[TeamArea], current: str, province_code: str | None) -> list[str]:
    """Teams a report may be handed to: those serving its province, the current team's parent
    centre, and the national fallback (never the current team)."""
    by_code = {t.code: t for t in teams}
    out = [t.code for t in teams if t.code != current and province_code and province_code in t.provinces]
    parent = by_code.get(current).parent if current in by_code else None
    if parent and parent in by_code and parent not in out:
        out.insert(0, parent)
    out += [t.code for t in teams if t.fallback and t.code != current and t.code not in out]
    return out[:MAX_TRANSFER_CHOICES]


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine)."""
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def bbox_around(lat: float, lon: float, radius_m: float = REPEAT_RADIUS_M) -> tuple[float, float, float, float]:
    """(min_lat, max_lat, min_lon, max_lon) of a square that holds the circle, for an index query."""
    dlat = radius_m / 111_320.0
    dlon = radius_m / (111_320.0 * max(math.cos(math.radians(lat)), 0.01))
    return lat - dlat, lat + dlat, lon - dlon, lon + dlon


def repeats(lat: float, lon: float, candidates: Iterable[tuple[int, float, float]], radius_m: float = REPEAT_RADIUS_M) -> list[int]:
    """Ids of earlier reports (id, lat, lon) within `radius_m`: possible repeat sightings."""
    return [rid for rid, a, b in candidates if distance_m(lat, lon, a, b) <= radius_m]
