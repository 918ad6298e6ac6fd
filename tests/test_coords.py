"""Table tests for flows.coords.parse_coordinates."""

from __future__ import annotations

import pytest

from flows.coords import parse_coordinates

BKK = (13.7563, 100.5018)
# 13°45'22.7"N 100°30'06.5"E
BKK_DMS = (13 + 45 / 60 + 22.7 / 3600, 100 + 30 / 60 + 6.5 / 3600)

CASES: list[tuple[str, tuple[float, float] | None]] = [
    # --- decimal -----------------------------------------------------------------
    ("13.7563, 100.5018", BKK),
    ("13.7563 100.5018", BKK),
    ("13.7563,100.5018", BKK),
    ("13.7563;100.5018", BKK),
    ("  I am here: 13.7563, 100.5018 near the market.", BKK),
    ("13.7563N 100.5018E", BKK),
    ("13.7563 N, 100.5018 E", BKK),
    ("N13.7563 E100.5018", BKK),
    ("N 13.7563, E 100.5018", BKK),
    ("13.7563N100.5018E", BKK),
    ("S 33.8688 E 151.2093", (-33.8688, 151.2093)),
    ("100.5018E 13.7563N", BKK),  # letters win over order
    ("33.8688S 151.2093E", (-33.8688, 151.2093)),
    ("-33.8688, 151.2093", (-33.8688, 151.2093)),
    ("40.7128, -74.0060", (40.7128, -74.0060)),
    ("100.5018, 13.7563", BKK),  # first value out of latitude range: swap
    ("13.7563°, 100.5018°", BKK),
    ("13.7563\u00a0100.5018", BKK),
    ("13.7563 −100.5018", (13.7563, -100.5018)),  # Unicode minus sign
    # --- degrees, minutes, seconds ------------------------------------------------
    ("13°45'22.7\"N 100°30'06.5\"E", BKK_DMS),
    ("13°45′22.7″N 100°30′06.5″E", BKK_DMS),
    ("13°45’22.7”N 100°30’06.5”E", BKK_DMS),
    ("13º45'22.7''N, 100º30'06.5''E", BKK_DMS),
    ("13 45 22.7 N 100 30 6.5 E", BKK_DMS),
    ("N 13°45'22.7\" E 100°30'06.5\"", BKK_DMS),
    ("13°45.378'N 100°30.108'E", (13 + 45.378 / 60, 100 + 30.108 / 60)),
    ("33°51'54\"S 151°12'34\"E", (-(33 + 51 / 60 + 54 / 3600), 151 + 12 / 60 + 34 / 3600)),
    # --- Thai digits and words -----------------------------------------------------
    ("๑๓.๗๕๖๓, ๑๐๐.๕๐๑๘", BKK),
    ("พิกัด ๑๓.๗๕๖๓ ๑๐๐.๕๐๑๘ ค่ะ", BKK),
    ("ละติจูด 13.75 ลองจิจูด 100.50", (13.75, 100.50)),
    ("ละติจูด: ๑๓.๗๕ ลองจิจูด: ๑๐๐.๕๐", (13.75, 100.50)),
    ("ลองจิจูด 100.50 ละติจูด 13.75", (13.75, 100.50)),
    ("Lat: 13.7563, Long: 100.5018", BKK),
    ("Lat 13.75 Long 100.50.", (13.75, 100.50)),
    ("latitude=13.7563 longitude=100.5018", BKK),
    # --- map links ----------------------------------------------------------------
    ("https://www.google.com/maps?q=13.7563,100.5018", BKK),
    ("https://maps.google.com/?ll=13.75,100.50", (13.75, 100.50)),
    ("https://www.google.com/maps/place/Grand+Palace/@13.7563,100.5018,17z", BKK),
    (
        "https://www.google.com/maps/place/Wat+Pho/@13.7400,100.4900,15z/"
        "data=!3m1!4b1!4m6!3m5!1s0x0:0x0!8m2!3d13.7563!4d100.5018!16s",
        BKK,
    ),
    ("https://www.google.com/maps/search/?api=1&query=13.7563%2C100.5018", BKK),
    ("https://maps.apple.com/?ll=13.75,100.50&q=Dropped%20Pin", (13.75, 100.50)),
    ("https://maps.apple.com/?q=13.75,100.50", (13.75, 100.50)),
    ("https://www.openstreetmap.org/#map=17/13.7563/100.5018", BKK),
    ("https://www.openstreetmap.org/?mlat=13.75&mlon=100.50#map=17/13.70/100.40", (13.75, 100.50)),
    ("geo:13.75,100.50", (13.75, 100.50)),
    ("geo:0,0?q=13.75,100.50(Shelter)", (13.75, 100.50)),
    (
        "[ตำแหน่งที่ตั้ง] ตลาดนัดจตุจักร\nถนนกำแพงเพชร 2 กรุงเทพมหานคร\n"
        "https://maps.google.com/maps?q=13.7997,100.5500",
        (13.7997, 100.5500),
    ),
    # --- not coordinates ----------------------------------------------------------
    ("https://maps.app.goo.gl/xyz123AbC", None),
    ("https://maps.app.goo.gl/3FvQ8zR1hJk2", None),
    ("โทร 081-234-5678", None),
    ("+66 81 234 5678", None),
    ("081.234.5678", None),
    ("13/05/2024", None),
    ("2024-05-13", None),
    ("13.05.2024 10.30", None),
    ("NJ-2569-000123", None),
    ("เลขที่อ้างอิง NJ-2569-000123 ค่ะ", None),
    ("13.7563", None),
    ("13.7563, 100", None),
    ("13 100", None),
    ("", None),
    ("hello there", None),
    ("95.5, 100.5", None),  # both out of latitude range
    ("13.75, 190.5", None),  # longitude out of range
    ("13.75N 100.50N", None),  # two latitudes
    ("13°75'00\"N 100°30'00\"E", None),  # minutes >= 60
    ("https://www.google.com/maps?q=95.0,100.0", None),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_parse_coordinates(text: str, expected: tuple[float, float] | None) -> None:
    result = parse_coordinates(text)
    if expected is None:
        assert result is None
    else:
        assert result is not None
        assert result == pytest.approx(expected, abs=1e-4)


def test_result_is_tuple_of_floats() -> None:
    result = parse_coordinates("13.7563, 100.5018")
    assert isinstance(result, tuple)
    assert all(isinstance(v, float) for v in result)


# --- what was typed, impossible values included (read_coordinates) ------------------------

from flows.coords import Reading, read_coordinates, short_map_link  # noqa: E402

READINGS: list[tuple[str, Reading | None]] = [
    ("13.7563, 100.5018", Reading(13.7563, 100.5018)),
    # longitude first: flagged, never silent
    ("100.5018, 13.7563", Reading(13.7563, 100.5018, swapped=True)),
    ("100.5018,13.7563", Reading(13.7563, 100.5018, swapped=True)),
    # letters say which is which: not a swap
    ("100.5018E 13.7563N", Reading(13.7563, 100.5018)),
    # both orders are positions: the other one is offered to the caller
    ("13.75, 45.5", Reading(13.75, 45.5, other=(45.5, 13.75))),
    # impossible: a problem, never a landmark
    ("0,0", Reading(0.0, 0.0, problem="zero", loose=True)),
    ("0.0, 0.0", Reading(0.0, 0.0, problem="zero")),
    ("91, 181", Reading(91.0, 181.0, problem="out_of_range", loose=True)),
    ("95.5, 100.5", Reading(95.5, 100.5, problem="out_of_range")),
    ("13.75, 190.5", Reading(13.75, 190.5, problem="out_of_range")),
    ("https://www.google.com/maps?q=95.0,100.0", Reading(95.0, 100.0, problem="out_of_range")),
    ("lat 95 lon 100", Reading(95.0, 100.0, problem="out_of_range")),
    ("ละติจูด 13.75 ลองจิจูด 100.50", Reading(13.75, 100.5)),
    # a whole message of two integers is meant as coordinates
    ("13, 100", Reading(13.0, 100.0, other=None, loose=True)),
    # not coordinates at all
    ("โทร 081-234-5678", None),
    ("13 100", None),
    ("ตลาดนาเกลือ พัทยา", None),
    ("NJ-2569-000123", None),
    ("https://maps.app.goo.gl/3FvQ8zR1hJk2", None),
]


@pytest.mark.parametrize(("text", "expected"), READINGS)
def test_read_coordinates(text: str, expected: Reading | None) -> None:
    assert read_coordinates(text) == expected


def test_zero_zero_is_never_a_position() -> None:
    assert parse_coordinates("0.0, 0.0") is None


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("https://maps.app.goo.gl/3FvQ8zR1hJk2", "https://maps.app.goo.gl/3FvQ8zR1hJk2"),
        ("อยู่ตรงนี้ค่ะ https://maps.app.goo.gl/xyz123AbC?g_st=il ขอบคุณ", "https://maps.app.goo.gl/xyz123AbC?g_st=il"),
        ("(https://goo.gl/maps/AbCdEf12345).", "https://goo.gl/maps/AbCdEf12345"),
        ("http://MAPS.APP.GOO.GL/abc", "http://MAPS.APP.GOO.GL/abc"),
        ("https://goo.gl/xyz", None),  # a goo.gl link that is not a map
        ("https://maps.app.goo.gl/", None),  # no link id
        ("https://maps.app.goo.gl.evil.example/abc", None),
        ("https://www.google.com/maps?q=13.75,100.5", None),  # a long link: read directly
        ("hello", None),
    ],
)
def test_short_map_link(text: str, link: str | None) -> None:
    assert short_map_link(text) == link
