"""Offline point -> Thai province, district and subdistrict lookup.

Data and accuracy
-----------------
* ``data/th_admin.npz``: Thailand's 7,425 subdistricts (tambon / khwaeng) with their district
  (928) and province (77), DOPA codes, from the Common Operational Dataset of administrative
  boundaries (COD-AB, Royal Thai Survey Department via OCHA ROAP, release 2022-01-21, CC BY-IGO
  3.0; see ``data/LICENSE-data.md``), every vertex of the source snapped to a 1e-5 degree grid
  (about 1 m). Thai/English names from ``geothai`` (DOPA's names), else the source's. Derived by
  ``tools/extract_boundaries.py``, which also writes ``data/th_provinces.geojson`` (simplified
  province outlines, for the sandbox's drawing only).
* ``data/neighbours.geojson``: the outlines of Myanmar, Laos, Cambodia, Malaysia and Vietnam
  (Natural Earth, public domain), used only as a mask: a point outside every Thai subdistrict but
  inside a neighbouring country is "outside Thailand", never snapped. A point inside a Thai
  subdistrict is Thai whatever the mask says.
* The source is the simplified copy published for web use: against an independent province set
  it agrees on the province for 99.3 % of random points (Natural Earth: 95.4 %). Near a border a
  point may still land on the wrong side: ``Place.neighbours`` lists every other province within
  ``NEIGHBOUR_RADIUS_M`` (5 km) so the user can switch with one tap.
* A point in no subdistrict (on the coast line, in water, in a sliver between two subdistricts)
  snaps to the nearest subdistrict within ``SNAP_RADIUS_M`` (``Place.snapped``); up to
  ``SEA_RADIUS_M`` it is "in the sea near" the nearest subdistrict (``Place.sea``: ``inside`` is
  False, the codes and names are the nearest subdistrict's, the caller asks to confirm); farther
  out it is outside.
* Distances use a local equirectangular approximation (1 deg latitude = 111.32 km, 1 deg
  longitude = 111.32 km * cos(latitude)); its error is negligible at these distances.

Everything is pure computation once the file is loaded (``Boundaries.default()`` loads it once
per process): subdistrict polygons (at most ~200 vertices each) indexed by a shapely ``STRtree``;
``locate_many`` is fully vectorised.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape

__all__ = ["AreaIndex", "Boundaries", "Place"]

DATA_DIR = Path(__file__).resolve().parent / "data"
ADMIN_FILE = DATA_DIR / "th_admin.npz"
PROVINCES_FILE = DATA_DIR / "th_provinces.geojson"  # simplified outlines, for drawing only
NEIGHBOURS_FILE = DATA_DIR / "neighbours.geojson"

M_PER_DEG = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
SNAP_RADIUS_M = 1_000.0
SEA_RADIUS_M = 30_000.0
NEIGHBOUR_RADIUS_M = 5_000.0
_MAX_PIECE_VERTICES = 64
_MAX_SPLIT_DEPTH = 16
_GRID_SCALE = 100_000  # grid units per degree in th_admin.npz


@dataclass(frozen=True)
class Place:
    inside: bool                    # False: outside Thailand, or in the sea (see ``sea``)
    province_code: str | None       # DOPA 2-digit code, e.g. "20"
    province_name_th: str | None
    province_name_en: str | None
    district_code: str | None       # DOPA 4-digit code, e.g. "2004"
    snapped: bool                   # on the coast / in water: snapped to the nearest subdistrict
    neighbours: tuple[str, ...]     # OTHER province codes within 5 km of the point, nearest first
    district_name_th: str | None = None
    district_name_en: str | None = None
    subdistrict_code: str | None = None  # DOPA 6-digit code, e.g. "200402"
    subdistrict_name_th: str | None = None
    subdistrict_name_en: str | None = None
    sea: bool = False               # beyond the snap radius, in the sea near the named subdistrict
    distance_m: float = 0.0         # from the point to that subdistrict (snapped or sea)


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

def _metric_distances(geoms: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Distance in metres from each point (lat[i], lon[i]) to geoms[i], in a local
    equirectangular frame centred on the point."""
    if not len(geoms):
        return np.zeros(0)
    ky = M_PER_DEG
    kx = M_PER_DEG * np.cos(np.radians(lat))
    coords, cidx = shapely.get_coordinates(geoms, return_index=True)
    coords = coords.copy()
    coords[:, 0] = (coords[:, 0] - lon[cidx]) * kx[cidx]
    coords[:, 1] = (coords[:, 1] - lat[cidx]) * ky
    local = shapely.set_coordinates(np.array(geoms, dtype=object).copy(), coords)
    return shapely.distance(local, _ORIGIN)


def _boxes(lat: np.ndarray, lon: np.ndarray, radius_m: float):
    dlat = radius_m / M_PER_DEG
    dlon = radius_m / np.maximum(M_PER_DEG * np.cos(np.radians(lat)), 1.0)
    return shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)


class Boundaries:
    """Thai subdistricts (with their district and province) plus neighbouring-country outlines."""

    def __init__(self, codes: Sequence[str], geoms: Sequence, names: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
                 neighbours: Mapping[str, Any] | Path | None = None):
        """``codes``: 6-digit DOPA subdistrict codes; ``geoms``: their shapely (Multi)Polygons;
        ``names``: {"p"|"d"|"s": {code: (name_th, name_en)}} (missing names are empty);
        ``neighbours``: a GeoJSON FeatureCollection of neighbouring countries (the mask), or the
        path of one (read when the mask is first needed)."""
        codes = [str(c) for c in codes]
        if len(set(codes)) != len(codes):
            raise ValueError("duplicate subdistrict codes")
        if any(len(c) != 6 or not c.isdigit() for c in codes):
            raise ValueError("subdistrict codes are 6 digits")
        order = sorted(range(len(codes)), key=lambda i: codes[i])  # lowest code wins on a shared edge
        self._sub = [codes[i] for i in order]
        geo = np.asarray([geoms[i] for i in order], dtype=object)
        names = names or {}
        self._prov_codes = sorted({c[:2] for c in self._sub})
        self._dist_codes = sorted({c[:4] for c in self._sub})
        pidx = {c: i for i, c in enumerate(self._prov_codes)}
        didx = {c: i for i, c in enumerate(self._dist_codes)}
        self._sub_prov = np.asarray([pidx[c[:2]] for c in self._sub], dtype=np.int64)
        self._sub_dist = np.asarray([didx[c[:4]] for c in self._sub], dtype=np.int64)
        self._names: dict[str, tuple[str, str]] = {}
        for level, keys in (("p", self._prov_codes), ("d", self._dist_codes), ("s", self._sub)):
            got = names.get(level, {})
            for c in keys:
                th, en = (tuple(got[c]) + ("", ""))[:2] if c in got else ("", "")
                self._names[c] = (th or "", en or "")
        self._alt = {c: (tuple(v) + ("", ""))[:2] for c, v in (names.get("alt") or {}).items()}
        self._geoms = geo
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)
        # The neighbouring countries' mask is built on first need (a point in no subdistrict):
        # splitting their outlines takes about half of the load's time.
        self._neighbours: Mapping[str, Any] | Path | None = neighbours
        self._mask: tuple[np.ndarray, Any] | None = None
        self._mask_lock = threading.Lock()
        self._places: dict[tuple[int, bool, tuple[str, ...]], Place] = {}

    # -- construction ------------------------------------------------------

    @classmethod
    def from_files(cls, admin_path: str | Path, neighbours_path: str | Path | None) -> "Boundaries":
        """Loads ``th_admin.npz`` (see tools/extract_boundaries.py) and the neighbours' GeoJSON."""
        with np.load(admin_path, allow_pickle=False) as z:
            coords = np.cumsum(z["delta"], axis=0, dtype=np.int64) / _GRID_SCALE
            offsets = (z["ring_offsets"], z["part_offsets"], z["geom_offsets"])
            codes = [f"{c:06d}" for c in z["codes"].tolist()]
            meta = json.loads(z["meta"].tobytes().decode("utf-8"))
        geoms = shapely.from_ragged_array(shapely.GeometryType.MULTIPOLYGON, coords, offsets)
        return cls(codes, geoms, meta["names"], Path(neighbours_path) if neighbours_path else None)

    @classmethod
    def from_geojson(cls, subdistricts: Mapping[str, Any], neighbours: Mapping[str, Any] | None = None,
                     names: Mapping[str, Mapping[str, Sequence[str]]] | None = None) -> "Boundaries":
        """From a FeatureCollection whose features carry ``code`` (6 digits) and optionally
        ``name_th``/``name_en`` (the subdistrict's); ``names`` adds province/district names."""
        codes, geoms = [], []
        all_names: dict[str, dict[str, Sequence[str]]] = {k: dict(v) for k, v in (names or {}).items()}
        for feat in subdistricts["features"]:
            props = feat["properties"]
            codes.append(str(props["code"]))
            geoms.append(_to_geometry(feat["geometry"]))
            all_names.setdefault("s", {})[str(props["code"])] = (props.get("name_th") or "", props.get("name_en") or "")
        return cls(codes, geoms, all_names, neighbours)

    @classmethod
    def default(cls) -> "Boundaries":
        """The shipped data set, loaded once per process."""
        return _default_boundaries(cls)

    # -- public API ----------------------------------------------------------

    def province_names(self) -> dict[str, tuple[str, str]]:
        """code -> (name_th, name_en), sorted by code."""
        return {c: self._names[c] for c in self._prov_codes}

    def district_names(self) -> dict[str, tuple[str, str]]:
        return {c: self._names[c] for c in self._dist_codes}

    def subdistrict_names(self) -> dict[str, tuple[str, str]]:
        return {c: self._names[c] for c in self._sub}

    def other_names(self) -> dict[str, tuple[str, str]]:
        """code -> (name_th, name_en): the source's spellings where they differ from the names
        above ("" where they do not), for reading landmarks."""
        return dict(self._alt)

    def name(self, code: str) -> tuple[str, str] | None:
        """(name_th, name_en) of a province (2 digits), district (4) or subdistrict (6) code."""
        return self._names.get(code)

    @property
    def subdistrict_count(self) -> int:
        return len(self._sub)

    def locate(self, lat: float, lon: float) -> Place:
        lat_f, lon_f = _scalar_float(lat), _scalar_float(lon)
        if not _valid_scalar(lat_f, lon_f):
            return _OUTSIDE
        return self.locate_many(np.array([lat_f]), np.array([lon_f]))[0]

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
        vlat, vlon = lat_a[valid], lon_a[valid]
        pts = shapely.points(vlon, vlat)

        # 1. inside a subdistrict (lowest code wins on a shared edge or an overlap)
        sub = np.full(valid.size, -1, dtype=np.int64)
        pairs = self._tree.query(pts, predicate="intersects")
        if pairs.shape[1]:
            big = np.iinfo(np.int64).max
            best = np.full(valid.size, big, dtype=np.int64)
            np.minimum.at(best, pairs[0], pairs[1])
            sub = np.where(best == big, -1, best)
        inside = np.flatnonzero(sub >= 0)
        if inside.size:
            near = self._near(vlat, vlon, inside, NEIGHBOUR_RADIUS_M, exclude_prov=self._sub_prov[sub[inside]])
            for i in inside.tolist():
                s = int(sub[i])
                result[valid[i]] = self._place(s, self._neighbour_codes(near.get(i, {}), int(self._sub_prov[s])))

        # 2. in no subdistrict: inside a neighbouring country -> outside
        rest = np.flatnonzero(sub < 0)
        npieces, ntree = self._neighbour_mask() if rest.size else (None, None)
        if rest.size and len(npieces):
            npairs = ntree.query(pts[rest], predicate="intersects")
            in_country = np.zeros(rest.size, dtype=bool)
            in_country[npairs[0]] = True
            rest = rest[~in_country]
        # 3. the nearest subdistrict: snapped within SNAP_RADIUS_M, "in the sea near" up to SEA_RADIUS_M
        if rest.size:
            nearest = self._nearest(vlat, vlon, rest, SEA_RADIUS_M)
            todo = [i for i in rest.tolist() if i in nearest]
            prov_near = self._near(vlat, vlon, np.asarray(todo, dtype=np.int64), NEIGHBOUR_RADIUS_M) if todo else {}
            for i in todo:
                s, d = nearest[i]
                own = int(self._sub_prov[s])
                dists = {p: dd for p, dd in prov_near.get(i, {}).items()}
                result[valid[i]] = self._place(s, self._neighbour_codes(dists, own), distance_m=d)
        return result

    def near_subdistricts(self, lat: float, lon: float, radius_m: float = NEIGHBOUR_RADIUS_M) -> dict[str, float]:
        """Every subdistrict within ``radius_m`` of the point: code -> metres (0 inside)."""
        lat_f, lon_f = _scalar_float(lat), _scalar_float(lon)
        if not _valid_scalar(lat_f, lon_f):
            return {}
        la, lo = np.array([lat_f]), np.array([lon_f])
        cand = self._tree.query(_boxes(la, lo, radius_m)[0], predicate="intersects")
        if not len(cand):
            return {}
        d = _metric_distances(self._geoms[cand], np.full(len(cand), lat_f), np.full(len(cand), lon_f))
        return {self._sub[g]: float(x) for g, x in sorted(zip(cand.tolist(), d.tolist()), key=lambda t: t[1]) if x <= radius_m}

    # -- internals -----------------------------------------------------------

    def _neighbour_mask(self) -> tuple[np.ndarray, Any]:
        """The neighbouring countries' outlines in pieces, and their tree (built once)."""
        with self._mask_lock:
            if self._mask is None:
                source = self._neighbours
                if isinstance(source, Path):
                    source = json.loads(source.read_text(encoding="utf-8"))
                n_geoms: list = []
                for feat in (source or {}).get("features", ()):
                    n_geoms.extend(_split(_to_geometry(feat["geometry"])))
                pieces = np.asarray(n_geoms, dtype=object)
                shapely.prepare(pieces)
                self._mask = (pieces, shapely.STRtree(pieces))
                self._neighbours = None
            return self._mask

    def _candidates(self, lats: np.ndarray, lons: np.ndarray, which: np.ndarray, radius_m: float):
        """(point index into which, subdistrict index) pairs whose bboxes meet the radius box."""
        pairs = self._tree.query(_boxes(lats[which], lons[which], radius_m), predicate="intersects")
        return pairs[0], pairs[1]

    def _near(self, lats: np.ndarray, lons: np.ndarray, which: np.ndarray, radius_m: float,
              exclude_prov: np.ndarray | None = None) -> dict[int, dict[int, float]]:
        """For the points ``which``: province index -> metres, for every province within
        ``radius_m``; ``exclude_prov`` (aligned with ``which``) leaves out one province per point."""
        p_idx, g_idx = self._candidates(lats, lons, which, radius_m)
        out: dict[int, dict[int, float]] = {}
        if not len(p_idx):
            return out
        provs = self._sub_prov[g_idx]
        if exclude_prov is not None:
            other = provs != exclude_prov[p_idx]
            p_idx, g_idx, provs = p_idx[other], g_idx[other], provs[other]
            if not len(p_idx):
                return out
        pt = which[p_idx]
        dist = _metric_distances(self._geoms[g_idx], lats[pt], lons[pt])
        keep = dist <= radius_m
        for key, pv, d in zip(pt[keep].tolist(), provs[keep].tolist(), dist[keep].tolist()):
            row = out.setdefault(key, {})
            if d < row.get(pv, math.inf):
                row[pv] = d
        return out

    def _nearest(self, lats: np.ndarray, lons: np.ndarray, which: np.ndarray, radius_m: float) -> dict[int, tuple[int, float]]:
        """For the points ``which``: (nearest subdistrict index, metres) within ``radius_m``.

        The STRtree's nearest in degrees bounds the metric search: a subdistrict at d degrees is at
        most d * 111.32 km away, and nothing nearer in metres can be farther than that in degrees
        once longitude is shrunk by cos(latitude); the shortlist in that box is measured in metres.
        """
        out: dict[int, tuple[int, float]] = {}
        if not len(which):
            return out
        lat, lon = lats[which], lons[which]
        pts = shapely.points(lon, lat)
        max_deg = radius_m / (M_PER_DEG * math.cos(math.radians(24.0)))
        (qi, _), ddeg = self._tree.query_nearest(pts, max_distance=max_deg, return_distance=True)
        if not len(qi):
            return out
        best_deg = np.full(len(which), np.inf)
        np.minimum.at(best_deg, qi, ddeg)
        has = np.flatnonzero(np.isfinite(best_deg))
        reach = np.minimum(best_deg[has] * M_PER_DEG * 1.0001 + 1.0, radius_m)
        dlat = reach / M_PER_DEG
        dlon = reach / np.maximum(M_PER_DEG * np.cos(np.radians(lat[has])), 1.0)
        boxes = shapely.box(lon[has] - dlon, lat[has] - dlat, lon[has] + dlon, lat[has] + dlat)
        p_idx, g_idx = self._tree.query(boxes, predicate="intersects")
        pt = has[p_idx]
        dist = _metric_distances(self._geoms[g_idx], lat[pt], lon[pt])
        # per point: the smallest distance, then the lowest code among equals
        order = np.lexsort((g_idx, dist, pt))
        first = np.ones(len(order), dtype=bool)
        first[1:] = pt[order][1:] != pt[order][:-1]
        for k in order[first].tolist():
            if dist[k] <= radius_m:
                out[int(which[pt[k]])] = (int(g_idx[k]), float(dist[k]))
        return out

    def _neighbour_codes(self, dists: Mapping[int, float], own: int) -> tuple[str, ...]:
        others = sorted((d, p) for p, d in dists.items() if p != own and d <= NEIGHBOUR_RADIUS_M)
        return tuple(self._prov_codes[p] for _, p in others)

    def _place(self, s: int, neighbours: tuple[str, ...], distance_m: float = 0.0) -> Place:
        snapped = distance_m > 0.0
        sea = distance_m > SNAP_RADIUS_M
        if not snapped:
            key = (s, False, neighbours)
            cached = self._places.get(key)
            if cached is not None:
                return cached
        code = self._sub[s]
        p, d = code[:2], code[:4]
        pn, dn, sn = self._names[p], self._names[d], self._names[code]
        place = Place(not sea, p, pn[0], pn[1], d, snapped, neighbours, dn[0], dn[1], code, sn[0], sn[1],
                      sea, round(distance_m, 1))
        if not snapped and len(self._places) < 200_000:
            self._places[key] = place
        return place


@functools.cache
def _default_boundaries(cls: type[Boundaries]) -> Boundaries:
    return cls.from_files(ADMIN_FILE, NEIGHBOURS_FILE)


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

    def near(self, lat: float, lon: float, radius_m: float = NEIGHBOUR_RADIUS_M) -> dict[str, float]:
        """Areas within ``radius_m`` of the point: name -> metres (0 inside), nearest first."""
        lat_f, lon_f = _scalar_float(lat), _scalar_float(lon)
        if not _valid_scalar(lat_f, lon_f) or not len(self._geoms):
            return {}
        la, lo = np.array([lat_f]), np.array([lon_f])
        cand = self._tree.query(_boxes(la, lo, radius_m)[0], predicate="intersects")
        if not len(cand):
            return {}
        d = _metric_distances(self._geoms[cand], np.full(len(cand), lat_f), np.full(len(cand), lon_f))
        out: dict[str, float] = {}
        for g, x in zip(cand.tolist(), d.tolist()):
            name = self._names[int(self._owner[g])]
            if x <= radius_m and x < out.get(name, math.inf):
                out[name] = x
        return dict(sorted(out.items(), key=lambda kv: (kv[1], kv[0])))
