"""Loading teams from YAML (`namjai teams import FILE`)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from storage import repo
from storage.db import Database

EXAMPLE = Path(__file__).parent / "data" / "teams" / "thailand.yaml"
KINDS = ("national", "provincial_centre", "municipality")


class TeamFileError(ValueError):
    pass


def read_teams(path: str | Path) -> list[dict]:
    """Reads and checks a teams file; area paths are resolved against the file's folder."""
    path = Path(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    teams = data.get("teams")
    if not isinstance(teams, list) or not teams:
        raise TeamFileError(f"{path}: no 'teams' list")
    seen: set[str] = set()
    out = []
    for i, t in enumerate(teams):
        where = f"{path}: team #{i + 1}"
        for key in ("code", "name_th", "name_en", "kind"):
            if not t.get(key):
                raise TeamFileError(f"{where}: '{key}' is required")
        if t["code"] in seen:
            raise TeamFileError(f"{where}: duplicate code {t['code']}")
        seen.add(t["code"])
        if t["kind"] not in KINDS:
            raise TeamFileError(f"{where}: kind must be one of {KINDS}")
        from geothai import district as geo_district  # only when a team file is read (about 6 MiB)
        from geothai import province as geo_province
        from geothai import subdistrict as geo_subdistrict

        provinces = [str(p) for p in t.get("provinces") or []]
        for p in provinces:
            if geo_province(p) is None:
                raise TeamFileError(f"{where}: unknown province code {p}")
        area_codes = []
        for key, finder, digits in (("districts", geo_district, 4), ("subdistricts", geo_subdistrict, 6)):
            for c in t.get(key) or []:
                c = str(c)
                if len(c) != digits or not c.isdigit() or finder(c) is None:
                    raise TeamFileError(f"{where}: unknown {key[:-1]} code {c} (DOPA codes, see geothai)")
                if provinces and c[:2] not in provinces:
                    raise TeamFileError(f"{where}: {key[:-1]} {c} is not in the team's provinces {provinces}")
                if c in area_codes:
                    raise TeamFileError(f"{where}: {key[:-1]} {c} listed twice")
                area_codes.append(c)
        area = t.get("area")
        if isinstance(area, str):
            area = json.loads((path.parent / area).read_text(encoding="utf-8"))
        if isinstance(area, dict) and area.get("type") == "FeatureCollection":
            feats = area.get("features") or []
            if len(feats) != 1:
                raise TeamFileError(f"{where}: area must hold one polygon feature")
            area = feats[0]["geometry"]
        elif isinstance(area, dict) and area.get("type") == "Feature":
            area = area["geometry"]
        if area is not None and area.get("type") not in ("Polygon", "MultiPolygon"):
            raise TeamFileError(f"{where}: area must be a Polygon or MultiPolygon")
        out.append(
            dict(
                code=t["code"], name_th=t["name_th"], name_en=t["name_en"], kind=t["kind"], provinces=provinces,
                area_codes=area_codes or None, area=area, parent_code=t.get("parent"), fallback=bool(t.get("fallback")), active=True,
            )
        )
    if sum(1 for t in out if t["fallback"]) > 1:
        raise TeamFileError(f"{path}: at most one team may be the fallback")
    return out


async def import_teams(db: Database, path: str | Path) -> tuple[int, int]:
    """Creates or updates the teams of a file; returns (created, updated)."""
    teams = read_teams(path)
    created = updated = 0
    async with db.transaction() as s:
        for fields in teams:
            _, new = await repo.team_upsert(s, **fields)
            created += new
            updated += not new
    return created, updated
