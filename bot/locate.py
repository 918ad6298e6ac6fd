"""Point → province, district and team, for one point or a CSV file (`namjai locate`)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO

from bot.teams import EXAMPLE, read_teams
from flows.routing import TeamArea, choose_team
from storage.boundaries import AreaIndex, Boundaries

HEADER = ["lat", "lon", "province_code", "province_name_th", "district_code", "team"]


class Locator:
    def __init__(self, teams: list[dict], boundaries: Boundaries | None = None):
        self.boundaries = boundaries or Boundaries.default()
        self.areas = [TeamArea(t["code"], tuple(t["provinces"] or ()), t["area"] is not None, t["fallback"]) for t in teams]
        self.index = AreaIndex({t["code"]: t["area"] for t in teams if t["area"]})

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
        return cls([dict(code=t.code, provinces=t.provinces, area=t.area, fallback=t.fallback) for t in teams])

    def _team(self, place, hits) -> str | None:
        if not place.inside:
            return None
        return choose_team(self.areas, place.province_code, hits)

    def locate(self, lat: float, lon: float) -> dict:
        place = self.boundaries.locate(lat, lon)
        hits = self.index.hits(lat, lon) if place.inside else []
        return {
            "province_code": place.province_code,
            "province_name_th": place.province_name_th,
            "province_name_en": place.province_name_en,
            "district_code": place.district_code,
            "team": self._team(place, hits),
            "neighbours": place.neighbours,
        }

    def locate_csv(self, src: IO[str], sink: IO[str]) -> int:
        """Reads `lat,lon` rows (a header row is skipped) and writes the CSV of HEADER; returns rows."""
        rows = []
        for rec in csv.reader(src):
            if len(rec) < 2:
                continue
            try:
                rows.append((float(rec[0]), float(rec[1]), rec[0].strip(), rec[1].strip()))
            except ValueError:
                continue  # a header or a broken row
        lats = [r[0] for r in rows]
        lons = [r[1] for r in rows]
        places = self.boundaries.locate_many(lats, lons)
        hits = self.index.hits_many(lats, lons)
        w = csv.writer(sink, lineterminator="\n")
        w.writerow(HEADER)
        for (_, _, lat_s, lon_s), place, hit in zip(rows, places, hits):
            w.writerow([lat_s, lon_s, place.province_code or "", place.province_name_th or "", place.district_code or "", self._team(place, hit) or ""])
        return len(rows)
