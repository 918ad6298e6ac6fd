"""Tests for storage.boundaries (offline province lookup). No network."""

from __future__ import annotations

import json
import math

import geothai
import numpy as np
import pytest
import shapely
from shapely.geometry import shape

from storage.boundaries import (
    NEIGHBOURS_FILE,
    PROVINCES_FILE,
    AreaIndex,
    Boundaries,
    Place,
)


@pytest.fixture(scope="module")
def b() -> Boundaries:
    return Boundaries.default()


def _ref_distance_m(geom, lat: float, lon: float) -> float:
    """Reference metric distance: whole geometry in local equirectangular metres."""
    kx = 111_320.0 * math.cos(math.radians(lat))
    local = shapely.transform(
        geom, lambda c: np.column_stack([(c[:, 0] - lon) * kx, (c[:, 1] - lat) * 111_320.0])
    )
    return local.distance(shapely.Point(0, 0))


# --- shipped data -------------------------------------------------------------

def test_data_has_all_77_provinces_with_geothai_names():
    fc = json.loads(PROVINCES_FILE.read_text(encoding="utf-8"))
    got = {f["properties"]["code"]: (f["properties"]["name_th"], f["properties"]["name_en"])
           for f in fc["features"]}
    want = {p.code: (p.name_th, p.name_en) for p in geothai.provinces()}
    assert len(want) == 77
    assert got == want
    assert got["10"][1] == "Bangkok"
    assert "38" in got  # Bueng Kan
    for f in fc["features"]:
        assert shape(f["geometry"]).is_valid


def test_neighbour_outlines_present():
    fc = json.loads(NEIGHBOURS_FILE.read_text(encoding="utf-8"))
    codes = {f["properties"]["iso_a2"] for f in fc["features"]}
    assert {"MM", "LA", "KH", "MY"} <= codes


def test_province_names(b):
    names = b.province_names()
    assert len(names) == 77
    assert names["20"] == ("ชลบุรี", "Chon Buri")
    assert names["10"][1] == "Bangkok"


def test_default_is_cached():
    assert Boundaries.default() is Boundaries.default()


# --- known points -----------------------------------------------------------------

@pytest.mark.parametrize(
    "lat, lon, code",
    [
        (13.7500, 100.4913, "10"),  # Grand Palace, Bangkok
        (12.9236, 100.8825, "20"),  # Pattaya, Chon Buri
        (18.7883, 98.9853, "50"),   # Chiang Mai old city
        (7.8804, 98.3923, "83"),    # Phuket Town
        (7.0086, 100.4747, "90"),   # Hat Yai, Songkhla
        (9.512, 100.013, "84"),     # Ko Samui, Surat Thani
    ],
)
def test_known_points_inside(b, lat, lon, code):
    p = b.locate(lat, lon)
    assert p.inside and not p.snapped
    assert p.province_code == code
    assert p.province_name_th and p.province_name_en
    assert p.district_code is None
    assert code not in p.neighbours


@pytest.mark.parametrize(
    "lat, lon",
    [
        (17.9757, 102.6331),  # Vientiane, Laos (across the Mekong from Nong Khai)
        (3.1390, 101.6869),   # Kuala Lumpur
        (0.0, 0.0),           # null island
        (10.5, 101.5),        # Gulf of Thailand, ~100 km offshore
        (13.657, 102.563),    # Poipet, Cambodia: ~2.3 km from Thailand, must not snap
        (20.35, 100.08),      # Laos bank of the Mekong opposite Chiang Khong, ~2 km away
    ],
)
def test_known_points_outside(b, lat, lon):
    p = b.locate(lat, lon)
    assert p == Place(False, None, None, None, None, False, ())


@pytest.mark.parametrize(
    "lat, lon",
    [
        (float("nan"), 100.5),
        (13.7, float("inf")),
        (91.0, 100.0),
        (13.7, 181.0),
        (-91.0, 0.0),
    ],
)
def test_invalid_numbers_are_outside(b, lat, lon):
    assert b.locate(lat, lon).inside is False


def test_snapped_in_songkhla_lake(b):
    p = b.locate(7.35, 100.40)
    assert p.inside and p.snapped
    assert p.province_code == "90"
    assert p.province_code not in p.neighbours


def test_snapped_just_off_pattaya_beach(b):
    p = b.locate(12.93, 100.86)
    assert p.inside and p.snapped
    assert p.province_code == "20"


def test_border_point_lists_other_province(b):
    # Bang Sue, Bangkok, ~3 km from the Nonthaburi boundary in this data set.
    lat, lon = 13.80, 100.52
    p = b.locate(lat, lon)
    assert p.province_code == "10" and not p.snapped
    assert p.neighbours[0] == "12"
    fc = json.loads(PROVINCES_FILE.read_text(encoding="utf-8"))
    geoms = {f["properties"]["code"]: shape(f["geometry"]) for f in fc["features"]}
    assert _ref_distance_m(geoms["12"], lat, lon) < 5_000
    # every listed neighbour really is within 5 km, and every province within 5 km is listed
    want = sorted((d, c) for c, g in geoms.items()
                  if c != "10" and (d := _ref_distance_m(g, lat, lon)) <= 5_000)
    assert p.neighbours == tuple(c for _, c in want)


def test_neighbours_match_reference_on_random_points(b):
    fc = json.loads(PROVINCES_FILE.read_text(encoding="utf-8"))
    geoms = {f["properties"]["code"]: shape(f["geometry"]) for f in fc["features"]}
    rng = np.random.default_rng(7)
    lats = rng.uniform(12.5, 15.5, 120)
    lons = rng.uniform(99.5, 102.0, 120)
    checked = 0
    for lat, lon in zip(lats.tolist(), lons.tolist()):
        p = b.locate(lat, lon)
        if not p.inside:
            continue
        dists = {c: _ref_distance_m(g, lat, lon) for c, g in geoms.items()}
        if p.snapped:
            assert 0 < dists[p.province_code] <= 25_000
            assert dists[p.province_code] == pytest.approx(min(dists.values()), abs=1e-6)
        else:
            assert dists[p.province_code] == 0
        want = tuple(c for d, c in sorted((d, c) for c, d in dists.items())
                     if d <= 5_000 and c != p.province_code)
        assert p.neighbours == want
        checked += 1
    assert checked > 50


# --- vectorised ---------------------------------------------------------------

def test_locate_many_agrees_with_locate(b):
    rng = np.random.default_rng(2024)
    lats = rng.uniform(5.6, 20.5, 400).tolist()
    lons = rng.uniform(97.3, 105.7, 400).tolist()
    # a few fixed ones: coast, lake, border, invalid
    lats += [7.35, 12.93, 13.80, 0.0, float("nan"), 95.0, 13.657]
    lons += [100.40, 100.86, 100.52, 0.0, 100.0, 100.0, 102.563]
    many = b.locate_many(lats, lons)
    assert len(many) == len(lats)
    assert many == [b.locate(la, lo) for la, lo in zip(lats, lons)]
    kinds = {(p.inside, p.snapped) for p in many}
    assert {(True, False), (True, True), (False, False)} <= kinds


def test_locate_many_edge_cases(b):
    assert b.locate_many([], []) == []
    assert b.locate_many(np.array([13.75]), np.array([100.4913]))[0].province_code == "10"
    with pytest.raises(ValueError):
        b.locate_many([1.0, 2.0], [1.0])


# --- synthetic data: exact radius rules ---------------------------------------------

def _square_fc(code: str, x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Feature", "properties": {"code": code, "name_th": "ท" + code, "name_en": "P" + code},
            "geometry": shapely.geometry.mapping(shapely.box(x0, y0, x1, y1))}


def test_snap_and_neighbour_radii_synthetic():
    # Two provinces side by side around latitude 10.5, one neighbour country to the south.
    provinces = {"type": "FeatureCollection", "features": [
        _square_fc("01", 100.0, 10.0, 101.0, 11.0),
        _square_fc("02", 101.0, 10.0, 102.0, 11.0),
    ]}
    country = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"iso_a2": "XX"},
         "geometry": shapely.geometry.mapping(shapely.box(100.0, 9.0, 102.0, 9.9))}]}
    bb = Boundaries(provinces, country)
    deg_lat_km = 111.32
    # 20 km north of "01": snapped; 30 km north: outside
    p = bb.locate(11.0 + 20 / deg_lat_km, 100.5)
    assert p.inside and p.snapped and p.province_code == "01" and p.neighbours == ()
    assert bb.locate(11.0 + 30 / deg_lat_km, 100.5).inside is False
    # inside the neighbour country, ~11 km from "01": outside (never snapped)
    assert bb.locate(9.895, 100.5).inside is False
    # in the 0.1 deg gap between the country and "01" (~5 km from "01"): snapped
    assert bb.locate(9.955, 100.5).snapped is True
    # 4 km west of the 01/02 border (in "01"): "02" is a neighbour; 6 km: it is not
    kx = deg_lat_km * math.cos(math.radians(10.5))
    p = bb.locate(10.5, 101.0 - 4 / kx)
    assert p.province_code == "01" and p.neighbours == ("02",)
    assert bb.locate(10.5, 101.0 - 6 / kx).neighbours == ()
    # on the shared edge: the lower code wins, consistently in both paths
    assert bb.locate(10.5, 101.0).province_code == "01"
    assert bb.locate_many([10.5], [101.0])[0].province_code == "01"


# --- AreaIndex --------------------------------------------------------------------

SQUARE = {"type": "Polygon", "coordinates": [[[100.0, 13.0], [101.0, 13.0], [101.0, 14.0],
                                              [100.0, 14.0], [100.0, 13.0]]]}


def test_area_index_square():
    idx = AreaIndex({"team-a": SQUARE})
    assert idx.hits(13.5, 100.5) == ["team-a"]
    assert idx.hits(14.5, 100.5) == []
    assert idx.hits(13.0, 100.5) == ["team-a"]  # on the edge counts
    assert idx.hits(float("nan"), 100.5) == []
    assert idx.hits_many([13.5, 14.5, 13.2], [100.5, 100.5, 100.9]) == [["team-a"], [], ["team-a"]]


def test_area_index_overlaps_features_and_collections():
    half = {"type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [[[100.5, 13.0], [102.0, 13.0], [102.0, 14.0],
                                                             [100.5, 14.0], [100.5, 13.0]]]}}
    far = {"type": "Feature", "properties": {},
           "geometry": {"type": "MultiPolygon", "coordinates": [[[[110.0, 1.0], [111.0, 1.0], [111.0, 2.0],
                                                                 [110.0, 1.0]]]]}}
    idx = AreaIndex({
        "a": SQUARE,
        "b": half,
        "c": {"type": "FeatureCollection", "features": [far, half]},
        "empty": {"type": "FeatureCollection", "features": []},
    })
    assert idx.hits(13.5, 100.75) == ["a", "b", "c"]
    assert idx.hits(13.5, 100.25) == ["a"]
    assert idx.hits(1.2, 110.5) == ["c"]
    assert idx.hits_many([13.5, 1.2, 50.0], [100.75, 110.5, 50.0]) == [["a", "b", "c"], ["c"], []]


def test_area_index_empty_and_bad_type():
    assert AreaIndex({}).hits(13.5, 100.5) == []
    assert AreaIndex({}).hits_many([13.5], [100.5]) == [[]]
    with pytest.raises(ValueError):
        AreaIndex({"x": {"type": "Point", "coordinates": [100.0, 13.0]}})
