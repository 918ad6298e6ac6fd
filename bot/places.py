"""Where a place is and which team it goes to, answered from in-memory data for the flows.

Wiring only: the boundaries (storage.boundaries), the teams' areas and the landmark gazetteer
(flows.places) are put together here; the rules are in flows.routing and flows.places.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from flows import routing
from flows.draft import Located
from flows.places import Gazetteer
from storage.boundaries import NEIGHBOUR_RADIUS_M, AreaIndex, Boundaries, Place

_GAZETTEERS: "weakref.WeakKeyDictionary[Boundaries, Gazetteer]" = weakref.WeakKeyDictionary()


def gazetteer(boundaries: Boundaries) -> Gazetteer:
    """The landmark names of a boundary set (built once per set, about 40 ms)."""
    g = _GAZETTEERS.get(boundaries)
    if g is None:
        names = {**boundaries.province_names(), **boundaries.district_names(), **boundaries.subdistrict_names()}
        g = _GAZETTEERS[boundaries] = Gazetteer(names, other_names=boundaries.other_names())
    return g


def _get(t: Any, key: str, default=None):
    return t.get(key, default) if isinstance(t, Mapping) else getattr(t, key, default)


def team_area(t: Any) -> routing.TeamArea:
    """What routing needs to know of a team (a storage Team row or a dict from a teams file)."""
    return routing.TeamArea(
        _get(t, "code"), tuple(_get(t, "provinces") or ()), _get(t, "area") is not None, bool(_get(t, "fallback")),
        _get(t, "parent_code") or _get(t, "parent"), tuple(_get(t, "area_codes") or ()),
    )


class PlaceRouter:
    """Boundaries + teams: a point or a code -> `Located` with its team and the teams in reach."""

    def __init__(self, boundaries: Boundaries, teams: Iterable[Any], index: AreaIndex | None = None):
        self.boundaries = boundaries
        self.teams = list(teams)
        self.areas = [team_area(t) for t in self.teams]
        self.index = index if index is not None else AreaIndex({_get(t, "code"): _get(t, "area") for t in self.teams if _get(t, "area")})
        self._by_code = {_get(t, "code"): t for t in self.teams}

    # -- points and codes

    def team_of(self, place: Place, polygon_hits: Iterable[str] = ()) -> str | None:
        if not place.province_code:
            return routing.choose_team(self.areas, None, ())
        return routing.choose_team(self.areas, place.province_code, polygon_hits, place.district_code, place.subdistrict_code)

    def locate(self, lat: float, lon: float) -> Located:
        p = self.boundaries.locate(lat, lon)
        if not p.province_code:
            return Located(False)
        hits = self.index.hits(lat, lon) if p.inside else []
        team = self.team_of(p, hits)
        near: tuple[str, ...] = ()
        if self.teams:
            subs = self.boundaries.near_subdistricts(lat, lon, NEIGHBOUR_RADIUS_M)
            polys = self.index.near(lat, lon, routing.EDGE_RADIUS_M)
            near = routing.near_teams(self.areas, team, p.province_code, subs, polys)
        return Located(
            p.inside, p.province_code, p.neighbours, p.district_code, p.subdistrict_code, p.sea, p.distance_m,
            team, near,
        )

    def place_of(self, code: str) -> Located:
        """A place named by its code (2, 4 or 6 digits): its team, no neighbours (no point)."""
        prov = code[:2]
        dist = code[:4] if len(code) >= 4 else None
        sub = code if len(code) == 6 else None
        team = routing.choose_team(self.areas, prov, (), dist, sub)
        return Located(True, prov, (), dist, sub, team=team)

    def places_in_text(self, text: str) -> list[str]:
        return gazetteer(self.boundaries).find(text)

    # -- names

    def place_name(self, code: str, lang: str) -> str:
        names = self.boundaries.name(code)
        if names is None:
            return code
        return names[0] if lang == "th" else names[1]

    def team_name(self, code: str, lang: str) -> str:
        t = self._by_code.get(code)
        if t is None:
            return code
        return _get(t, "name_th") if lang == "th" else _get(t, "name_en")

    def team_provinces(self, code: str) -> tuple[str, ...]:
        t = self._by_code.get(code)
        return tuple(_get(t, "provinces") or ()) if t is not None else ()
