"""Routing as data: which team is responsible for a place.

A team serves provinces, districts or subdistricts (DOPA codes of 2, 4 or 6 digits) and,
optionally, a polygon. The most specific match wins: a polygon holding the point, then a team
listing the subdistrict, then one listing the district, then the province's centre, then the
national fallback. Pure: the caller has looked the point up in the boundaries and polygons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

REPEAT_RADIUS_M = 150.0
REPEAT_WINDOW_DAYS = 14


@dataclass(frozen=True)
class TeamArea:
    code: str
    provinces: tuple[str, ...]
    has_area: bool = False
    fallback: bool = False
    parent: str | None = None  # the provincial centre a municipality works with
    codes: tuple[str, ...] = ()  # district (4-digit) and subdistrict (6-digit) codes served


MAX_TRANSFER_CHOICES = 8
EDGE_RADIUS_M = 1_000.0  # near another team's area inside the same province (a municipality)
BORDER_RADIUS_M = 5_000.0  # near another province (the boundary data may be off)


def choose_team(
    teams: Sequence[TeamArea], province_code: str | None, polygon_hits: Iterable[str],
    district_code: str | None = None, subdistrict_code: str | None = None,
) -> str | None:
    """The responsible team's code: the most specific match (polygon, subdistrict, district),
    else the province's team, else the fallback."""
    hits = set(polygon_hits)
    for t in teams:
        if t.has_area and t.code in hits and (province_code is None or not t.provinces or province_code in t.provinces):
            return t.code
    for code in (subdistrict_code, district_code):
        if code:
            for t in teams:
                if code in t.codes:
                    return t.code
    if province_code:
        for t in teams:
            if not t.has_area and not t.codes and not t.fallback and province_code in t.provinces:
                return t.code
    for t in teams:
        if t.fallback:
            return t.code
    return None


def reachable_team(teams: Sequence[TeamArea], code: str, bound: set[str], province_code: str | None = None) -> str | None:
    """The nearest team up the chain from `code` that has a chat to post a report in: the team,
    its parent centre, the centre of the report's province, then the national fallback; None when
    none of them has a chat (the volunteer is then given the hotline)."""
    by_code = {t.code: t for t in teams}
    chain: list[str] = []
    seen = set()
    c: str | None = code
    while c and c in by_code and c not in seen:  # the team and its parents
        seen.add(c)
        chain.append(c)
        c = by_code[c].parent
    if province_code:  # the province's centre
        chain += [t.code for t in teams if not t.has_area and not t.codes and not t.fallback and province_code in t.provinces]
    chain += [t.code for t in teams if t.fallback]
    return next((c for c in chain if c in bound), None)


def unreachable_teams(teams: Sequence[TeamArea], bound: set[str]) -> dict[str, str | None]:
    """Each team without a chat of its own: the team its reports go to instead (None: nobody)."""
    return {
        t.code: reachable_team(teams, t.code, bound, t.provinces[0] if len(t.provinces) == 1 else None)
        for t in teams if t.code not in bound
    }


def near_teams(
    teams: Sequence[TeamArea], found: str | None, province_code: str | None,
    near_subdistricts: Mapping[str, float], near_polygons: Mapping[str, float],
) -> tuple[str, ...]:
    """Other teams within reach of a point, nearest first: the team of every subdistrict within
    BORDER_RADIUS_M when it lies in another province, or within EDGE_RADIUS_M in the same one,
    and every polygon team within EDGE_RADIUS_M. Never the fallback, never `found`."""
    by_code = {t.code: t for t in teams}
    best: dict[str, float] = {}
    for sub, d in near_subdistricts.items():
        reach = BORDER_RADIUS_M if sub[:2] != province_code else EDGE_RADIUS_M
        if d > reach:
            continue
        code = choose_team(teams, sub[:2], (), sub[:4], sub)
        if code is not None and d < best.get(code, math.inf):
            best[code] = d
    for code, d in near_polygons.items():
        if code in by_code and d <= EDGE_RADIUS_M and d < best.get(code, math.inf):
            best[code] = d
    return tuple(
        c for c, _ in sorted(best.items(), key=lambda kv: (kv[1], kv[0]))
        if c != found and c in by_code and not by_code[c].fallback
    )


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
