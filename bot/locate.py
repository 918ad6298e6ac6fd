"""Point → province, district, subdistrict and team, for one point or a CSV file (`namjai locate`)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import IO

from bot.places import PlaceRouter
from bot.teams import EXAMPLE, read_teams
from storage.boundaries import Boundaries

HEADER = [
    "lat", "lon", "province_code", "province_name_th", "district_code", "team",
    "district_name_th", "subdistrict_code", "subdistrict_name_th", "near", "error",
]


def coordinate_error(lat: float, lon: float) -> str | None:
    """Why a pair cannot be a position (None: it can)."""
    if not (math.isfinite(lat) and math.isfinite(lon)):
        return "not a number"
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return "invalid coordinates (latitude -90..90, longitude -180..180)"
    if lat == 0.0 and lon == 0.0:
        return "invalid coordinates (0, 0: no position)"
    return None


class Locator:
    def __init__(self, teams: list[dict], boundaries: Boundaries | None = None):
        self.boundaries = boundaries or Boundaries.default()
        self.router = PlaceRouter(self.boundaries, teams)
        self.index = self.router.index

    @classmethod
    def from_teams_file(cls, path: str | Path) -> "Locator":
        return cls(read_teams(path))

    @classmethod
    async def from_database(cls, db) -> "Locator":
        from storage import repo

        async with db.session() as s:
            try:
                teams = await repo.teams_all(s)
            except Exception:  # no schema yet
                teams = []
        if not teams:
            return cls.from_teams_file(EXAMPLE)
        return cls([
            dict(code=t.code, name_th=t.name_th, name_en=t.name_en, provinces=t.provinces, area_codes=t.area_codes,
                 area=t.area, fallback=t.fallback, parent_code=t.parent_code)
            for t in teams
        ])

    def _team(self, place, hits) -> str | None:
        if not place.inside:
            return None
        return self.router.team_of(place, hits)

    def locate(self, lat: float, lon: float) -> dict:
        """Everything known of a point; `error` says why impossible coordinates were not looked up."""
        error = coordinate_error(lat, lon)
        place = self.boundaries.locate(lat, lon)
        hits = self.index.hits(lat, lon) if place.inside else []
        near = self.router.locate(lat, lon).near_teams if place.inside else ()
        return {
            "error": error,
            "inside": place.inside,
            "sea": place.sea,
            "snapped": place.snapped,
            "distance_m": place.distance_m,
            "province_code": place.province_code,
            "province_name_th": place.province_name_th,
            "province_name_en": place.province_name_en,
            "district_code": place.district_code,
            "district_name_th": place.district_name_th,
            "district_name_en": place.district_name_en,
            "subdistrict_code": place.subdistrict_code,
            "subdistrict_name_th": place.subdistrict_name_th,
            "subdistrict_name_en": place.subdistrict_name_en,
            "team": self._team(place, hits),
            "neighbours": place.neighbours,
            "neighbour_names": [self.boundaries.name(c) for c in place.neighbours],
            "near_teams": near,
            "near_team_names": [self.router.team_name(c, "en") for c in near],
        }

    def locate_csv(self, src: IO[str], sink: IO[str]) -> tuple[int, int]:
        """Reads `lat,lon` rows (a first row that is not numbers is a header) and writes the CSV
        of HEADER; a row that cannot be read is kept with `error` filled. Returns (rows, errors)."""
        rows: list[tuple[str, str, float, float, str | None]] = []
        for n, rec in enumerate(csv.reader(src)):
            if not rec or not any(c.strip() for c in rec):
                continue
            lat_s = rec[0].strip()
            lon_s = rec[1].strip() if len(rec) > 1 else ""
            try:
                lat, lon = float(lat_s), float(lon_s)
            except ValueError:
                if n == 0:
                    continue  # a header
                rows.append((lat_s, lon_s, math.nan, math.nan, "not a number" if len(rec) > 1 else "missing longitude"))
                continue
            rows.append((lat_s, lon_s, lat, lon, coordinate_error(lat, lon)))
        places = self.boundaries.locate_many([r[2] for r in rows], [r[3] for r in rows])
        ok = [i for i, r in enumerate(rows) if r[4] is None]
        hits_ok = self.index.hits_many([rows[i][2] for i in ok], [rows[i][3] for i in ok])
        hits: dict[int, list[str]] = dict(zip(ok, hits_ok))
        w = csv.writer(sink, lineterminator="\n")
        w.writerow(HEADER)
        errors = 0
        for i, ((lat_s, lon_s, _, _, error), place) in enumerate(zip(rows, places)):
            if error is None and not place.inside:
                error = (
                    f"in the sea, {place.distance_m / 1000:.1f} km from {place.subdistrict_name_en}, "
                    f"{place.district_name_en}, {place.province_name_en}" if place.sea else "outside Thailand"
                )
            errors += rows[i][4] is not None
            inside = place.inside
            w.writerow([
                lat_s, lon_s,
                place.province_code if inside else "", place.province_name_th if inside else "",
                place.district_code if inside else "", (self._team(place, hits.get(i, [])) or "") if inside else "",
                place.district_name_th if inside else "", place.subdistrict_code if inside else "",
                place.subdistrict_name_th if inside else "", " ".join(place.neighbours) if inside else "",
                error or "",
            ])
        return len(rows), errors
