"""Tests for storage.boundaries (offline province / district / subdistrict lookup). No network."""

from __future__ import annotations

import json
import math
import os
import struct
import zipfile
from pathlib import Path

import geothai
import numpy as np
import pytest
import shapely

from storage.boundaries import (
    ADMIN_FILE,
    NEIGHBOURS_FILE,
    PROVINCES_FILE,
    SEA_RADIUS_M,
    SNAP_RADIUS_M,
    AreaIndex,
    Boundaries,
    Place,
)

REPO = Path(__file__).resolve().parent.parent
SOURCE = "tha_admbnda_adm3_rtsd_20220121.zip"
SOURCE_DIRS = [os.environ.get("NAMJAI_COD_AB_DIR", ""), REPO.parent / "shared" / "data" / "cod-ab-tha",
               Path("/work/shared/data/cod-ab-tha")]


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


def _shipped_geoms() -> tuple[list[str], np.ndarray]:
    """The shipped subdistricts, decoded independently of Boundaries.from_files."""
    with np.load(ADMIN_FILE) as z:
        coords = np.cumsum(z["delta"].astype(np.int64), axis=0) / 1e5
        geoms = shapely.from_ragged_array(
            shapely.GeometryType.MULTIPOLYGON, coords, (z["ring_offsets"], z["part_offsets"], z["geom_offsets"])
        )
        codes = [f"{c:06d}" for c in z["codes"].tolist()]
    return codes, geoms


# --- shipped data -------------------------------------------------------------

def _source_zip() -> Path | None:
    for d in SOURCE_DIRS:
        if d and (Path(d) / SOURCE).exists():
            return Path(d) / SOURCE
    return None


def test_shipped_data_has_every_subdistrict_of_the_source():
    """The record count in the source shapefile's DBF header (read with the standard library) is
    the number of subdistricts shipped; and every level's codes are consistent."""
    src = _source_zip()
    if src is None:
        pytest.skip("the COD-AB source is not beside the repository (../shared/data/cod-ab-tha)")
    with zipfile.ZipFile(src) as z:
        dbf = next(n for n in z.namelist() if n.endswith(".dbf"))
        with z.open(dbf) as f:
            header = f.read(32)
    (records,) = struct.unpack("<I", header[4:8])
    assert records == 7425
    codes, geoms = _shipped_geoms()
    assert len(codes) == records == len(set(codes)) == Boundaries.default().subdistrict_count
    assert len({c[:4] for c in codes}) == 928 and len({c[:2] for c in codes}) == 77
    assert all(g.is_valid and not g.is_empty for g in geoms)


def test_data_has_all_77_provinces_with_geothai_names(b):
    want = {p.code: (p.name_th, p.name_en) for p in geothai.provinces()}
    assert len(want) == 77
    assert b.province_names() == want
    assert b.name("2004") == ("บางละมุง", "Bang Lamung")
    assert b.name("200402") == ("หนองปรือ", "Nong Prue")
    assert b.other_names()["100101"][1] == "Phraborom Maharatchawang"  # the source spelling, for landmarks
    # the few codes geothai does not know keep the source's names
    assert b.name("104701") == ("บางนา", "Bang Na")


def test_outlines_for_the_sandbox_map_are_the_77_provinces():
    fc = json.loads(PROVINCES_FILE.read_text(encoding="utf-8"))
    assert {f["properties"]["code"] for f in fc["features"]} == {p.code for p in geothai.provinces()}
    assert "COD-AB" in fc["source"]


def test_neighbour_outlines_present():
    fc = json.loads(NEIGHBOURS_FILE.read_text(encoding="utf-8"))
    codes = {f["properties"]["iso_a2"] for f in fc["features"]}
    assert {"MM", "LA", "KH", "MY"} <= codes


def test_default_is_cached():
    assert Boundaries.default() is Boundaries.default()


# --- known points -----------------------------------------------------------------

@pytest.mark.parametrize(
    "lat, lon, sub",
    [
        (13.7500, 100.4913, "100101"),  # Grand Palace, Bangkok: Phra Borom Maha Ratchawang
        (12.935, 100.889, "200402"),    # Pattaya, Nong Prue
        (12.9665, 100.8915, "200408"),  # Na Kluea, Bang Lamung
        (18.7883, 98.9853, "500102"),   # Chiang Mai old city: Phra Sing
        (7.8804, 98.3923, "830101"),    # Phuket Town: Talat Yai
        (9.512, 100.013, "8404"),       # Ko Samui, Surat Thani
        # whole districts Natural Earth gave to the wrong province
        (14.654, 101.198, "1911"),      # Muak Lek, Saraburi (not Lopburi)
        (17.23, 98.22, "6305"),         # Tha Song Yang, Tak (not Mae Hong Son)
        (15.80, 105.04, "3412"),        # Kut Khaopun, Ubon Ratchathani (not Amnat Charoen)
        (15.29, 101.52, "3026"),        # Thepharak, Nakhon Ratchasima (not Chaiyaphum)
    ],
)
def test_known_points_inside(b, lat, lon, sub):
    p = b.locate(lat, lon)
    assert p.inside and not p.snapped and not p.sea
    assert p.subdistrict_code.startswith(sub) and p.district_code == p.subdistrict_code[:4]
    assert p.province_code == sub[:2]
    assert p.province_name_th and p.province_name_en and p.district_name_th and p.subdistrict_name_th
    assert (p.district_name_th, p.district_name_en) == b.name(p.district_code)
    assert p.province_code not in p.neighbours


@pytest.mark.parametrize(
    "lat, lon",
    [
        (17.9757, 102.6331),  # Vientiane, Laos (across the Mekong from Nong Khai)
        (3.1390, 101.6869),   # Kuala Lumpur
        (0.0, 0.0),           # null island
        (10.5, 101.5),        # Gulf of Thailand, ~100 km offshore
        (13.657, 102.563),    # Poipet, Cambodia: ~2.3 km from Thailand, must not snap
        (20.37, 100.115),     # Laos bank of the Mekong by the Golden Triangle (Ton Pheung)
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


def test_snapped_just_off_pattaya_beach(b):
    p = b.locate(12.93, 100.86)
    assert p.inside and p.snapped and not p.sea
    assert p.subdistrict_code == "200402" and 0 < p.distance_m <= SNAP_RADIUS_M


def test_a_point_in_the_gulf_is_at_sea_near_sattahip(b):
    p = b.locate(12.5, 100.95)
    assert not p.inside and p.sea
    assert p.province_code == "20" and p.district_code == "2009"  # Sattahip's islands
    assert SNAP_RADIUS_M < p.distance_m <= SEA_RADIUS_M


def test_border_point_lists_other_province(b):
    # Bang Sue, Bangkok, near the Nonthaburi boundary.
    lat, lon = 13.80, 100.52
    p = b.locate(lat, lon)
    assert p.province_code == "10" and not p.snapped
    assert p.neighbours[0] == "12"
    codes, geoms = _shipped_geoms()
    near = {}
    for c, g in zip(codes, geoms):
        if c[:2] != "10":
            d = _ref_distance_m(g, lat, lon)
            if d <= 5_000:
                near[c[:2]] = min(d, near.get(c[:2], math.inf))
    assert p.neighbours == tuple(c for c, _ in sorted(near.items(), key=lambda kv: kv[1]))


def test_neighbours_match_reference_on_random_points(b):
    codes, geoms = _shipped_geoms()
    prov = np.array([c[:2] for c in codes])
    rng = np.random.default_rng(7)
    lats = rng.uniform(12.5, 15.5, 60)
    lons = rng.uniform(99.5, 102.0, 60)
    box = shapely.box(99.3, 12.3, 102.2, 15.7)
    sel = np.flatnonzero(shapely.intersects(geoms, box))
    checked = 0
    for lat, lon in zip(lats.tolist(), lons.tolist()):
        p = b.locate(lat, lon)
        if p.province_code is None:
            continue
        dists: dict[str, float] = {}
        for i in sel.tolist():
            d = _ref_distance_m(geoms[i], lat, lon)
            dists[prov[i]] = min(d, dists.get(prov[i], math.inf))
        if p.snapped:
            assert 0 < dists[p.province_code] <= SEA_RADIUS_M
            assert dists[p.province_code] == pytest.approx(min(dists.values()), abs=1e-6)
        else:
            assert dists[p.province_code] == 0
        want = tuple(c for d, c in sorted((d, c) for c, d in dists.items())
                     if d <= 5_000 and c != p.province_code)
        assert p.neighbours == want
        checked += 1
    assert checked > 25


def test_near_subdistricts(b):
    near = b.near_subdistricts(12.935, 100.889, 1_000)
    assert near["200402"] == 0 and all(d <= 1_000 for d in near.values())
    assert b.near_subdistricts(float("nan"), 100.0) == {}


# --- vectorised ---------------------------------------------------------------

def test_locate_many_agrees_with_locate(b):
    rng = np.random.default_rng(2024)
    lats = rng.uniform(5.6, 20.5, 400).tolist()
    lons = rng.uniform(97.3, 105.7, 400).tolist()
    # a few fixed ones: coast, sea, border, invalid
    lats += [12.5, 12.93, 13.80, 0.0, float("nan"), 95.0, 13.657]
    lons += [100.95, 100.86, 100.52, 0.0, 100.0, 100.0, 102.563]
    many = b.locate_many(lats, lons)
    assert len(many) == len(lats)
    assert many == [b.locate(la, lo) for la, lo in zip(lats, lons)]
    kinds = {(p.inside, p.snapped, p.sea) for p in many}
    assert {(True, False, False), (True, True, False), (False, True, True), (False, False, False)} <= kinds


def test_locate_many_edge_cases(b):
    assert b.locate_many([], []) == []
    assert b.locate_many(np.array([13.75]), np.array([100.4913]))[0].province_code == "10"
    with pytest.raises(ValueError):
        b.locate_many([1.0, 2.0], [1.0])


# --- synthetic data: exact radius rules ---------------------------------------------

def _square_fc(code: str, x0: float, y0: float, x1: float, y1: float) -> dict:
    return {"type": "Feature", "properties": {"code": code, "name_th": "ท" + code, "name_en": "S" + code},
            "geometry": shapely.geometry.mapping(shapely.box(x0, y0, x1, y1))}


def test_snap_sea_and_neighbour_radii_synthetic():
    # Two provinces side by side around latitude 10.5, one neighbour country to the south.
    subs = {"type": "FeatureCollection", "features": [
        _square_fc("010101", 100.0, 10.0, 101.0, 11.0),
        _square_fc("020101", 101.0, 10.0, 102.0, 11.0),
    ]}
    country = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"iso_a2": "XX"},
         "geometry": shapely.geometry.mapping(shapely.box(100.0, 9.0, 102.0, 9.9))}]}
    bb = Boundaries.from_geojson(subs, country, names={"p": {"01": ("จ1", "P1"), "02": ("จ2", "P2")}})
    km = 1 / 111.32
    # 0.5 km north of "01": snapped; 20 km: at sea near it; 35 km: outside
    p = bb.locate(11.0 + 0.5 * km, 100.5)
    assert p.inside and p.snapped and not p.sea and p.subdistrict_code == "010101"
    p = bb.locate(11.0 + 20 * km, 100.5)
    assert not p.inside and p.sea and p.province_code == "01" and p.distance_m == pytest.approx(20_000, rel=1e-3)
    assert bb.locate(11.0 + 35 * km, 100.5) == Place(False, None, None, None, None, False, ())
    # inside the neighbour country, ~11 km from "01": outside (never snapped)
    assert bb.locate(9.895, 100.5).province_code is None
    # in the 0.1 deg gap between the country and "01" (~0.5 km from "01"): snapped
    assert bb.locate(9.995, 100.5).snapped is True
    # 4 km west of the 01/02 border (in "01"): "02" is a neighbour; 6 km: it is not
    kx = 111.32 * math.cos(math.radians(10.5))
    p = bb.locate(10.5, 101.0 - 4 / kx)
    assert p.province_code == "01" and p.neighbours == ("02",) and p.province_name_en == "P1"
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


def test_area_index_near():
    idx = AreaIndex({"team-a": SQUARE})
    assert idx.near(13.5, 100.5) == {"team-a": 0.0}
    d = idx.near(14.0 + 0.5 / 111.32, 100.5, 1_000)["team-a"]
    assert d == pytest.approx(500, rel=1e-3)
    assert idx.near(14.0 + 2 / 111.32, 100.5, 1_000) == {}


def test_area_index_empty_and_bad_type():
    assert AreaIndex({}).hits(13.5, 100.5) == []
    assert AreaIndex({}).hits_many([13.5], [100.5]) == [[]]
    with pytest.raises(ValueError):
        AreaIndex({"x": {"type": "Point", "coordinates": [100.0, 13.0]}})
