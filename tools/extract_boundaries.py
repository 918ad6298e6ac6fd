#!/usr/bin/env python3
"""Derive the shipped boundary data (``storage/data/th_admin.npz``) from COD-AB.

Source: the Common Operational Dataset of administrative boundaries for Thailand (COD-AB,
``cod-ab-tha`` on the Humanitarian Data Exchange), subdistrict layer
``tha_admbnda_adm3_rtsd_20220121`` by the Royal Thai Survey Department, published by OCHA ROAP,
release 2022-01-21, licence CC BY-IGO 3.0 (see ``storage/data/LICENSE-data.md``). A zipped ESRI
shapefile (WGS 84) of 7,425 subdistricts with their district (928) and province (77).

What the tool does:

* reads the zip with ``pyshp`` (pure Python; only this tool needs it: ``pip install -e '.[tools]'``);
* keeps each subdistrict's polygon(s) with every vertex of the source, snapped to a 1e-5 degree
  grid (about 1.1 m) with ``shapely.set_precision`` (which keeps the polygons valid);
* names: Thai and English names of provinces, districts and subdistricts from ``geothai`` (DOPA's
  current names) where the code is known there; else the source's names (COD-AB cuts long Thai
  names at 50 bytes, geothai does not). Codes that differ between the two are printed;
* writes one ``numpy`` ``.npz`` file (deflate-compressed): the vertices as delta-encoded int32
  grid units, the ragged-array offsets ``shapely.from_ragged_array`` takes, the subdistrict codes,
  and the names as a UTF-8 JSON blob. Loading it is a ``cumsum`` and one ``from_ragged_array``.

Usage (from the repository root)::

    .venv/bin/pip install -e '.[tools]'
    .venv/bin/python tools/extract_boundaries.py [ZIP] [--out storage/data/th_admin.npz]
    .venv/bin/python tools/extract_boundaries.py --measure [ZIP]   # shipped vs source accuracy
    git show eb87b93:storage/data/th_provinces.geojson > /tmp/ne.geojson   # Natural Earth, as before
    .venv/bin/python tools/extract_boundaries.py --measure --against /tmp/ne.geojson

``--measure`` compares the shipped file with the source at full resolution on seeded random
points (see ``measure`` below) and prints the figures quoted in README.md; ``--against`` also
takes another province set as the truth on the same border points and says how often the one-tap
switch offers its province where the two differ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import geothai
import numpy as np
import shapely

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SOURCE_NAME = "tha_admbnda_adm3_rtsd_20220121.zip"
DEFAULT_SOURCES = [
    REPO.parent / "shared" / "data" / "cod-ab-tha" / SOURCE_NAME,
    Path("/work/shared/data/cod-ab-tha") / SOURCE_NAME,
]
DEFAULT_OUT = REPO / "storage" / "data" / "th_admin.npz"
OUTLINES_NAME = "th_provinces.geojson"  # the sandbox's offline map (drawing only, not lookups)
OUTLINE_TOLERANCE = 0.002  # degrees (about 200 m): enough for a drawing
OUTLINE_COAST_PAD = 0.003  # degrees the drawing's outer edge is pushed out (about 300 m)
GRID = 1e-5
SCALE = 100_000  # grid units per degree
ATTRIBUTION = (
    "Subdistrict boundaries: Royal Thai Survey Department, via OCHA ROAP, Common Operational "
    "Dataset of administrative boundaries for Thailand (COD-AB, cod-ab-tha, 2022-01-21), CC BY-IGO 3.0"
)


def find_source(path: str | None) -> Path:
    candidates = [Path(path)] if path else DEFAULT_SOURCES
    for c in candidates:
        if c.exists():
            return c
    raise SystemExit(f"COD-AB zip not found (tried {', '.join(map(str, candidates))})")


def read_source(zip_path: Path) -> tuple[list[dict], list]:
    """(records, shapely geometries) of the source shapefile, in file order."""
    import shapefile  # pyshp, a tool-only dependency

    reader = shapefile.Reader(str(zip_path))
    records = [rec.as_dict() for rec in reader.records()]
    geoms = [shapely.geometry.shape(s.__geo_interface__) for s in reader.shapes()]
    reader.close()
    return records, geoms


def _names(records: list[dict]) -> tuple[dict, list[str]]:
    """{"p"|"d"|"s": {code: [name_th, name_en]}} and notes on codes geothai does not know."""
    notes: list[str] = []
    out: dict[str, dict[str, list[str]]] = {"p": {}, "d": {}, "s": {}, "alt": {}}
    for rec in records:
        pc, dc, sc = rec["ADM1_PCODE"][2:], rec["ADM2_PCODE"][2:], rec["ADM3_PCODE"][2:]
        for level, code, finder, th, en in (
            ("p", pc, geothai.province, rec["ADM1_TH"], rec["ADM1_EN"]),
            ("d", dc, geothai.district, rec["ADM2_TH"], rec["ADM2_EN"]),
            ("s", sc, geothai.subdistrict, rec["ADM3_TH"], rec["ADM3_EN"]),
        ):
            if code in out[level]:
                continue
            known = finder(code)
            if known is not None:
                out[level][code] = [known.name_th, known.name_en]
                # the source's spelling, where it differs (and is not cut short), for landmarks
                alt = [th.strip() if th.strip() != known.name_th and len(th.encode()) < 50 else "",
                       en.strip() if en.strip().lower() != known.name_en.lower() else ""]
                if any(alt):
                    out["alt"][code] = alt
            else:
                out[level][code] = [th.strip(), en.strip()]
                notes.append(f"{level} {code} {th} / {en}: not in geothai {geothai.DATA_VERSION}, source names kept")
    geo_sub = {s.code for p in geothai.provinces() for d in geothai.districts(p.code) for s in geothai.subdistricts(d.code)}
    for code in sorted(geo_sub - set(out["s"])):
        notes.append(f"s {code}: in geothai, no polygon in the source (a newer split)")
    return out, notes


def build(zip_path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    records, geoms = read_source(zip_path)
    codes = np.array([int(r["ADM3_PCODE"][2:]) for r in records], dtype=np.int32)
    if len(set(codes.tolist())) != len(codes):
        raise SystemExit("duplicate subdistrict codes in the source")
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    fixed = []
    for i in order.tolist():
        g = geoms[i]
        if not g.is_valid:
            g = shapely.make_valid(g)
        g = shapely.set_precision(g, GRID)
        polys = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon" and not p.is_empty]
        if not polys:
            raise SystemExit(f"subdistrict {codes[len(fixed)]} has no polygon after snapping")
        fixed.append(shapely.MultiPolygon(polys))
    kind, coords, offsets = shapely.to_ragged_array(fixed)
    assert kind == shapely.GeometryType.MULTIPOLYGON
    grid = np.rint(coords * SCALE).astype(np.int64)
    delta = np.diff(grid, axis=0, prepend=np.zeros((1, 2), np.int64)).astype(np.int32)
    names, notes = _names(records)
    blob = json.dumps({"names": names, "source": ATTRIBUTION}, ensure_ascii=False, separators=(",", ":"))
    arrays = {
        "codes": codes,
        "delta": delta,
        "ring_offsets": offsets[0].astype(np.int32),
        "part_offsets": offsets[1].astype(np.int32),
        "geom_offsets": offsets[2].astype(np.int32),
        "meta": np.frombuffer(blob.encode("utf-8"), dtype=np.uint8),
    }
    outlines = _outlines(fixed, codes, names)
    return arrays, outlines, notes


def _outlines(geoms: list, codes: np.ndarray, names: dict) -> dict:
    """The 77 provinces' outlines, simplified, as GeoJSON (properties code, name_th, name_en).

    For a drawing only. The outer edge (coast, land borders) is pushed out by OUTLINE_COAST_PAD so
    that a pin on the beach is not shown in the sea after simplification; the borders between
    provinces stay where they are."""
    feats = []
    prov = np.array([f"{c:06d}"[:2] for c in codes.tolist()])
    unions = {}
    for pc in sorted(set(prov.tolist())):
        union = shapely.union_all([g for g, p in zip(geoms, prov) if p == pc], grid_size=GRID)
        # slivers between subdistricts of the simplified source would show as holes: drop them
        shells = [shapely.Polygon(p.exterior) for p in shapely.get_parts(union) if p.geom_type == "Polygon"]
        unions[pc] = shapely.MultiPolygon([p for p in shells if p.area > 1e-6])
    country = shapely.union_all(list(unions.values()), grid_size=GRID)
    for pc, solid in unions.items():
        padded = shapely.buffer(solid, OUTLINE_COAST_PAD, quad_segs=2)
        others = shapely.difference(country, shapely.buffer(solid, GRID))
        grown = shapely.union(solid, shapely.difference(padded, shapely.buffer(others, OUTLINE_COAST_PAD)))
        simple = shapely.set_precision(grown.simplify(OUTLINE_TOLERANCE, preserve_topology=True), 1e-4)
        th, en = names["p"][pc]
        feats.append({"type": "Feature", "properties": {"code": pc, "name_th": th, "name_en": en},
                      "geometry": shapely.geometry.mapping(simple)})
    return {"type": "FeatureCollection", "source": ATTRIBUTION, "features": feats}


# ---------------------------------------------------------------------------
# measurement: shipped data vs the source at full resolution
# ---------------------------------------------------------------------------

def measure(zip_path: Path, n: int = 20_000, seed: int = 11, against: Path | None = None) -> dict:
    """Seeded random points within 5 km of a province border (by the source), and points spread
    over Thailand's box. "Truth" is the source at full resolution (its own float vertices, no
    snapping); the answer is the shipped file through ``storage.boundaries``. Prints and returns:
    province/district/subdistrict agreement, and, among border points put in the wrong province by
    the shipped data, how often the right one is offered by the one-tap switch (``neighbours``).
    """
    from storage.boundaries import NEIGHBOUR_RADIUS_M, Boundaries

    records, geoms = read_source(zip_path)
    sub = np.array([r["ADM3_PCODE"][2:] for r in records])
    tree = shapely.STRtree(geoms)
    prov_geom = {}
    for pc in sorted({c[:2] for c in sub}):
        prov_geom[pc] = shapely.union_all([g for g, c in zip(geoms, sub) if c[:2] == pc], grid_size=GRID)
    borders = shapely.union_all([shapely.boundary(g) for g in prov_geom.values()])
    outline = shapely.boundary(shapely.union_all(list(prov_geom.values()), grid_size=GRID))
    inner = shapely.difference(borders, shapely.buffer(outline, 1e-4))  # province-to-province lines only
    rng = np.random.default_rng(seed)
    b = Boundaries.default()

    def truth(lats, lons):
        pts = shapely.points(lons, lats)
        pairs = tree.query(pts, predicate="intersects")
        out = np.full(len(lats), "", dtype=object)
        for i, g in zip(pairs[0].tolist(), pairs[1].tolist()):
            if not out[i] or sub[g] < out[i]:
                out[i] = sub[g]
        return out

    # 1. points within 5 km of a province-to-province border: sample along the lines, then offset
    lines = [ln for ln in shapely.get_parts(inner) if ln.length > 0]
    lengths = np.array([ln.length for ln in lines])
    pick = rng.choice(len(lines), size=n, p=lengths / lengths.sum())
    frac = rng.uniform(0, 1, n)
    base = shapely.line_interpolate_point(np.array(lines, dtype=object)[pick], frac, normalized=True)
    bx, by = shapely.get_x(base), shapely.get_y(base)
    r = np.sqrt(rng.uniform(0, 1, n)) * NEIGHBOUR_RADIUS_M
    ang = rng.uniform(0, 2 * np.pi, n)
    lats = by + r * np.sin(ang) / 111_320.0
    lons = bx + r * np.cos(ang) / (111_320.0 * np.cos(np.radians(by)))
    want = truth(lats, lons)
    got = b.locate_many(lats, lons)
    keep = np.array([bool(w) for w in want])
    near_border = int(keep.sum())
    wrong = offered = 0
    for w, p, k in zip(want, got, keep):
        if not k:
            continue
        if p.province_code != w[:2]:
            wrong += 1
            offered += w[:2] in p.neighbours
    # 2. points over the whole box
    m = n
    lats2 = rng.uniform(5.6, 20.5, m)
    lons2 = rng.uniform(97.3, 105.7, m)
    want2 = truth(lats2, lons2)
    got2 = b.locate_many(lats2, lons2)
    inside = [(w, p) for w, p in zip(want2, got2) if w]
    same_p = sum(p.province_code == w[:2] for w, p in inside)
    same_d = sum(p.district_code == w[:4] for w, p in inside)
    same_s = sum(p.subdistrict_code == w for w, p in inside)
    res = {
        "border_points": near_border, "border_wrong": wrong, "border_offered": offered,
        "inside_points": len(inside), "same_province": same_p, "same_district": same_d, "same_subdistrict": same_s,
    }
    pct = lambda a, b_: f"{100.0 * a / b_:.3f} %" if b_ else "n/a"  # noqa: E731
    if against is not None:
        # Another province set (GeoJSON, property "code") taken as the truth on the same border
        # points: where it says another province than the shipped data, is its province offered?
        fc = json.loads(Path(against).read_text(encoding="utf-8"))
        ref_codes = [str(f["properties"]["code"]) for f in fc["features"]]
        ref_geoms = [shapely.geometry.shape(f["geometry"]) for f in fc["features"]]
        ref_tree = shapely.STRtree(ref_geoms)
        pairs = ref_tree.query(shapely.points(lons, lats), predicate="intersects")
        ref = {}
        for i, g in zip(pairs[0].tolist(), pairs[1].tolist()):
            ref[i] = min(ref.get(i, "99"), ref_codes[g])
        differ = [(i, ref[i]) for i in range(n) if i in ref and got[i].province_code and got[i].province_code != ref[i]]
        hit = sum(code in got[i].neighbours for i, code in differ)
        # what the volunteer sees: the summary's one-tap buttons (the first MAX_SWITCH other teams),
        # with the example teams (one centre per province)
        from bot.places import PlaceRouter
        from bot.teams import EXAMPLE, read_teams
        from flows.questions import MAX_SWITCH

        router = PlaceRouter(b, read_teams(EXAMPLE))
        tapped = sum(f"pcdp-{code}" in router.locate(lats[i], lons[i]).near_teams[:MAX_SWITCH] for i, code in differ)
        res.update(against_buttons=tapped)
        both = sum(1 for i in range(n) if i in ref and got[i].province_code)
        res.update(against_points=both, against_differ=len(differ), against_offered=hit)
        print(f"against {Path(against).name}: {both:,} border points in both sets, they differ on {len(differ):,} "
              f"({pct(len(differ), both)}); its province is offered for {hit:,} of them ({pct(hit, len(differ))}); "
              f"its centre is on the summary's buttons for {tapped:,} ({pct(tapped, len(differ))})")
    print(f"points within {NEIGHBOUR_RADIUS_M / 1000:.0f} km of a province border (source): {near_border:,}")
    print(f"  shipped data puts {wrong:,} in another province ({pct(wrong, near_border)}); "
          f"the right one is offered for {offered:,} of them ({pct(offered, wrong)})")
    print(f"random points in Thailand (source): {len(inside):,}; same province {pct(same_p, len(inside))}, "
          f"district {pct(same_d, len(inside))}, subdistrict {pct(same_s, len(inside))}")
    assert near_border > n // 2 and len(inside) > m // 4, "measured too few points"
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("zip", nargs="?", help=f"the COD-AB zip ({SOURCE_NAME})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--measure", action="store_true", help="compare the shipped file with the source")
    ap.add_argument("-n", type=int, default=20_000, help="points for --measure")
    ap.add_argument("--against", type=Path, help="with --measure: another province set (GeoJSON, property code)")
    args = ap.parse_args(argv)
    src = find_source(args.zip)
    if args.measure:
        measure(src, args.n, against=args.against)
        return 0
    t0 = time.perf_counter()
    arrays, outlines, notes = build(src)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    outlines_path = args.out.parent / OUTLINES_NAME
    outlines_path.write_text(json.dumps(outlines, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(f"wrote {outlines_path} ({outlines_path.stat().st_size:,} bytes), for drawing only")
    for note in notes:
        print(f"note: {note}")
    print(
        f"wrote {args.out} ({args.out.stat().st_size:,} bytes): {len(arrays['codes']):,} subdistricts, "
        f"{len(arrays['delta']):,} vertices, in {time.perf_counter() - t0:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
