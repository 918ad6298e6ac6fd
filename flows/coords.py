"""Parse geographic coordinates that people paste into a chat.

Pure functions, standard library only, no I/O (short links are never resolved).

Supported inputs (see ``parse_coordinates``):

* decimal degrees: ``13.7563, 100.5018``, ``13.7563 100.5018``, ``-33.86;151.2``,
  with hemisphere letters before or after the number (``13.7563N 100.5018E``,
  ``N13.7563 E100.5018``);
* degrees-minutes-seconds and degrees-decimal-minutes, with ASCII or typographic
  marks (``13°45'22.7"N 100°30'06.5"E``, ``13°45.378'N``, ``13 45 22.7 N 100 30 6.5 E``);
* Thai digits (๐-๙) and full-width characters anywhere;
* labelled values: ``lat 13.75 lon 100.50``, ``ละติจูด 13.75 ลองจิจูด 100.50``;
* map links: Google Maps, Apple Maps, OpenStreetMap, Bing and ``geo:`` URIs.

``read_coordinates`` tells more than ``parse_coordinates``: impossible values (out of range, or
(0, 0)) are reported as such instead of being dropped, and a pair read longitude first is
flagged (with the other order) so the caller can check which order lands in Thailand.
``short_map_link`` finds a short map link (``maps.app.goo.gl``, ``goo.gl/maps``) that only the
server can follow (see ``bot.maplinks``).
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

from dataclasses import dataclass

__all__ = ["Reading", "SHORT_LINK_HOSTS", "parse_coordinates", "read_coordinates", "short_map_link"]

# --------------------------------------------------------------------------- #
# Normalisation
# --------------------------------------------------------------------------- #

_THAI_DIGITS = str.maketrans("๐๑๒๓๔๕๖๗๘๙", "0123456789")

# Applied before NFKC (NFKC would turn "º" into "o" and "˚" into a combining mark).
_MARKS = str.maketrans(
    {
        "º": "°",  # masculine ordinal indicator, often used as a degree sign
        "˚": "°",  # ring above
        "′": "'",  # prime
        "‘": "'",
        "’": "'",
        "`": "'",
        "´": "'",
        "″": '"',  # double prime
        "“": '"',
        "”": '"',
        "〃": '"',
        "−": "-",  # minus sign
        "‐": "-",  # hyphen
        "\u00a0": " ",
        "\u202f": " ",
        "\u200b": "",  # zero-width space (common in Thai text)
    }
)


def _normalise(text: str) -> str:
    text = text.translate(_MARKS)
    text = unicodedata.normalize("NFKC", text)
    text = text.translate(_THAI_DIGITS).translate(_MARKS)
    if "%" in text:
        text = unquote(text)
    return text.replace("''", '"')


# --------------------------------------------------------------------------- #
# Helpers
# --------------------------------------------------------------------------- #

_NUM = r"[-+]?\d{1,3}(?:\.\d+)?"


def _valid(lat: float, lon: float) -> bool:
    return -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0


def _pair(lat: float, lon: float) -> tuple[float, float] | None:
    return (lat, lon) if _valid(lat, lon) else None


# --------------------------------------------------------------------------- #
# Stage 1: map links and URIs (explicit lat, lon order, no swapping)
# --------------------------------------------------------------------------- #

# Patterns that give the pin (the place itself) come first; viewport centres last.
_LINK_PIN_PATTERNS = [
    # Google Maps place data: ...!3d<lat>!4d<lon>
    re.compile(rf"!3d({_NUM})!4d({_NUM})(?!\.?\d)", re.ASCII),
    # Query parameters (Google q/ll/query/destination..., Apple ll/q/sll/daddr, Bing cp)
    re.compile(
        r"[?&#](?:q|ll|sll|query|daddr|saddr|center|destination|origin|cp|coordinates|near|"
        r"location|loc)=(?:loc:)?\s*"
        rf"({_NUM})\s*[,~+ ]\s*({_NUM})(?!\.?\d)",
        re.ASCII | re.IGNORECASE,
    ),
    # geo: URI (RFC 5870)
    re.compile(rf"\bgeo:({_NUM}),({_NUM})(?!\.?\d)", re.ASCII | re.IGNORECASE),
]
_LINK_VIEWPORT_PATTERNS = [
    # Google Maps viewport: /@<lat>,<lon>,17z
    re.compile(rf"/@({_NUM}),({_NUM})(?!\.?\d)", re.ASCII),
    # OpenStreetMap: #map=<zoom>/<lat>/<lon>
    re.compile(rf"[#&]map=\d{{1,2}}(?:\.\d+)?/({_NUM})/({_NUM})(?!\.?\d)", re.ASCII),
]

# Separate parameters: OpenStreetMap marker (mlat/mlon) and generic lat/lon.
_LINK_LAT = re.compile(rf"[?&;](?:mlat|lat|latitude)=({_NUM})(?!\.?\d)", re.ASCII | re.IGNORECASE)
_LINK_LON = re.compile(
    rf"[?&;](?:mlon|lon|lng|long|longitude)=({_NUM})(?!\.?\d)", re.ASCII | re.IGNORECASE
)


def _first_pair(patterns: list[re.Pattern[str]], text: str) -> tuple[float, float] | None:
    for pattern in patterns:
        for match in pattern.finditer(text):
            lat, lon = float(match.group(1)), float(match.group(2))
            if lat == 0.0 and lon == 0.0:
                # "geo:0,0?q=..." means "no position, search the query" on Android.
                continue
            result = _pair(lat, lon)
            if result is not None:
                return result
    return None


def _from_links(text: str) -> tuple[float, float] | None:
    result = _first_pair(_LINK_PIN_PATTERNS, text)
    if result is not None:
        return result
    lat_match, lon_match = _LINK_LAT.search(text), _LINK_LON.search(text)
    if lat_match and lon_match:
        result = _pair(float(lat_match.group(1)), float(lon_match.group(1)))
        if result is not None:
            return result
    return _first_pair(_LINK_VIEWPORT_PATTERNS, text)


# --------------------------------------------------------------------------- #
# Stage 2: labelled values ("lat 13.75 lon 100.5", "ละติจูด 13.75 ลองจิจูด 100.5")
# --------------------------------------------------------------------------- #

_THAI_NEG = {"ใต้", "ตะวันตก"}
_LABEL_VALUE = (
    r"\s*[:=]?\s*(?P<tdir>เหนือ|ใต้|ตะวันออก|ตะวันตก)?\s*[:=]?\s*"
    rf"(?P<num>{_NUM})(?!\.?\d)(?:\s*°)?(?:\s*(?P<hemi>[NSEWnsew])(?![A-Za-z]))?"
)
_LAT_LABELLED = re.compile(
    r"(?:(?<![A-Za-z])(?:latitude|lat)(?![A-Za-z])\.?|ละติจูด|ลติจูด|ละติจูต)" + _LABEL_VALUE,
    re.ASCII | re.IGNORECASE,
)
_LON_LABELLED = re.compile(
    r"(?:(?<![A-Za-z])(?:longitude|long|lng|lon)(?![A-Za-z])\.?|ลองจิจูด|ลองติจูด|ลองจิจูต)"
    + _LABEL_VALUE,
    re.ASCII | re.IGNORECASE,
)


def _labelled_value(match: re.Match[str]) -> float:
    value = float(match.group("num"))
    hemi = (match.group("hemi") or "").upper()
    if match.group("tdir") in _THAI_NEG or hemi in ("S", "W"):
        return -abs(value)
    if match.group("tdir") or hemi in ("N", "E"):
        return abs(value)
    return value


def _from_labels(text: str) -> tuple[float, float] | None:
    lat_match, lon_match = _LAT_LABELLED.search(text), _LON_LABELLED.search(text)
    if lat_match and lon_match:
        return _pair(_labelled_value(lat_match), _labelled_value(lon_match))
    return None


# --------------------------------------------------------------------------- #
# Stage 3: free text (decimal, DMS, hemisphere letters)
# --------------------------------------------------------------------------- #

_COMPONENT = re.compile(
    r"""
    (?<![\w.])                                   # not glued to a word or a number
    (?:(?P<h1>[NSEW])\s*)?                       # leading hemisphere letter
    (?P<sign>[-+])?
    (?P<deg>\d{1,3}(?:\.\d+)?)(?!\d)(?!\.\d)     # degrees (integer or decimal)
    (?:
        \s*(?P<degmark>°)                        # 13°45'22.7"  /  13°45.378'  /  13.75°
        (?:\s*(?P<min>\d{1,2}(?:\.\d+)?)(?!\.?\d)\s*'
           (?:\s*(?P<sec>\d{1,2}(?:\.\d+)?)(?!\.?\d)\s*")?
        )?
      |
        \s+(?P<min2>\d{1,2}(?:\.\d+)?)(?!\.?\d)   # 13 45 22.7 N  (letter required)
        (?:\s+(?P<sec2>\d{1,2}(?:\.\d+)?)(?!\.?\d))?
        (?=\s*[NSEW](?![A-Za-z]))
    )?
    (?(h1)|(?:\s*(?P<h2>[NSEW])(?![A-Za-z]))?)   # trailing letter (only without a leading one)
    """,
    re.ASCII | re.VERBOSE | re.IGNORECASE,
)

_SEPARATOR = re.compile(r"\s*[,;/]?\s*", re.ASCII)
# "13.7563N100.5018E": split after a trailing hemisphere letter glued to the next number.
_GLUED_HEMI = re.compile(r"(?<=[\d°'\"])([NSEW])(?=[-+]?\d)", re.ASCII | re.IGNORECASE)


class _Component:
    __slots__ = ("value", "hemi", "strong")

    def __init__(self, match: re.Match[str]) -> None:
        deg_text = match.group("deg")
        minutes_text = match.group("min") or match.group("min2")
        seconds_text = match.group("sec") or match.group("sec2")
        degrees = float(deg_text)
        minutes = float(minutes_text) if minutes_text else 0.0
        seconds = float(seconds_text) if seconds_text else 0.0
        if minutes_text and "." in deg_text:
            raise ValueError("decimal degrees cannot be followed by minutes")
        if seconds_text and "." in minutes_text:  # type: ignore[operator]
            raise ValueError("decimal minutes cannot be followed by seconds")
        if minutes >= 60 or seconds >= 60:
            raise ValueError("minutes and seconds must be below 60")
        self.hemi = (match.group("h1") or match.group("h2") or "").upper()
        magnitude = degrees + minutes / 60.0 + seconds / 3600.0
        if self.hemi in ("S", "W"):
            self.value = -magnitude
        elif self.hemi in ("N", "E"):
            self.value = magnitude
        else:
            self.value = -magnitude if match.group("sign") == "-" else magnitude
        # "Strong" means clearly a coordinate: a decimal part or a DMS marker.
        self.strong = bool("." in deg_text or match.group("degmark") or minutes_text)


def _combine(first: _Component, second: _Component) -> tuple[float, float] | None:
    if not (first.strong and second.strong):
        return None
    lat_hemis, lon_hemis = ("N", "S"), ("E", "W")
    if first.hemi or second.hemi:
        if first.hemi in lon_hemis or second.hemi in lat_hemis:
            # Only swap when the letters do not contradict each other.
            if first.hemi in lat_hemis or second.hemi in lon_hemis:
                return None
            return _pair(second.value, first.value)
        if first.hemi in lat_hemis and second.hemi in lat_hemis:
            return None
        return _pair(first.value, second.value)
    lat, lon = first.value, second.value
    if not -90.0 <= lat <= 90.0 and -90.0 <= lon <= 90.0:
        lat, lon = lon, lat
    return _pair(lat, lon)


def _from_free_text(text: str) -> tuple[float, float] | None:
    text = _GLUED_HEMI.sub(r"\1 ", text)
    matches = [m for m in _COMPONENT.finditer(text) if m.group("deg")]
    for first, second in zip(matches, matches[1:]):
        if not _SEPARATOR.fullmatch(text, first.end(), second.start()):
            continue
        try:
            result = _combine(_Component(first), _Component(second))
        except ValueError:
            continue
        if result is not None:
            return result
    return None


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def parse_coordinates(text: str) -> tuple[float, float] | None:
    """Return ``(lat, lon)`` found in ``text``, or ``None``.

    Rules, in order:

    1. map links and ``geo:`` URIs (Google, Apple, OpenStreetMap, Bing) give lat, lon
       in the order the link defines; short links without numbers give ``None``;
    2. labelled values (``lat``/``lon``, ``ละติจูด``/``ลองจิจูด``) in any order;
    3. two adjacent numbers in free text, separated by spaces, a comma, a semicolon or
       a slash. Each must have a decimal part or DMS marks, so phone numbers, dates,
       reference numbers and single numbers are ignored. N/S/E/W letters are honoured;
       without letters the order is (lat, lon), swapped only when the first value is
       outside [-90, 90] and the second inside.

    Out-of-range values and (0, 0) are rejected (``read_coordinates`` says why).
    """
    if not text:
        return None
    normalised = _normalise(text)
    for stage in (_from_links, _from_labels, _from_free_text):
        result = stage(normalised)
        if result is not None:
            return None if result == (0.0, 0.0) else result
    return None


# --------------------------------------------------------------------------- #
# Readings: what was typed, including impossible values
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Reading:
    """Coordinates read from a message.

    ``problem``: ``"out_of_range"`` (a latitude beyond 90 or a longitude beyond 180) or ``"zero"``
    (0, 0: a phone with no fix); ``lat``/``lon`` are then what was typed. Otherwise ``lat``/``lon``
    is the pair in the order the rules give, ``swapped`` tells that the text gave the longitude
    first (the values were in the wrong order for a latitude), and ``other`` is the other order
    when it is also a valid pair (an unlabelled pair: the caller picks the one in Thailand).
    """

    lat: float
    lon: float
    swapped: bool = False
    other: tuple[float, float] | None = None
    problem: str | None = None
    loose: bool = False  # only whole numbers ("0,0", "91, 181"): coordinates where a place is asked


# The whole message is two numbers (integers allowed) separated by a comma: meant as coordinates.
_BARE_PAIR = re.compile(rf"\s*\(?\s*({_NUM})\s*,\s*({_NUM})\s*\)?\s*", re.ASCII)
_ANY_PAIR = re.compile(rf"(?<![\w.])({_NUM})\s*[,;]\s*({_NUM})(?![\w.])", re.ASCII)
_HEMI_LETTER = re.compile(r"\d\s*[°'\"]?\s*[NSEWnsew](?![A-Za-z])|(?<![A-Za-z])[NSEWnsew]\s*\d", re.ASCII)


def _bad(lat: float, lon: float) -> str | None:
    if lat == 0.0 and lon == 0.0:
        return "zero"
    if not _valid(lat, lon):
        return "out_of_range"
    return None


def read_coordinates(text: str) -> Reading | None:
    """What ``text`` says of a position, or ``None`` when it gives no coordinates.

    A well-formed pair of decimal numbers (or a message that is only two comma-separated
    numbers) that cannot be a position gives a ``Reading`` with its ``problem``, never ``None``,
    so that it is not taken for a landmark.
    """
    if not text:
        return None
    normalised = _normalise(text)
    link = _from_links(normalised)
    if link is not None:
        return Reading(link[0], link[1])
    labelled = _from_labels(normalised)
    if labelled is not None:
        return Reading(*labelled, problem=_bad(*labelled))
    lat_m, lon_m = _LAT_LABELLED.search(normalised), _LON_LABELLED.search(normalised)
    if lat_m and lon_m:  # labelled, but not a position
        lat, lon = _labelled_value(lat_m), _labelled_value(lon_m)
        return Reading(lat, lon, problem=_bad(lat, lon) or "out_of_range")
    free = _from_free_text(normalised)
    if free is not None:
        lat, lon = free
        problem = _bad(lat, lon)
        if problem:
            return Reading(lat, lon, problem=problem)
        raw = _first_raw_pair(normalised)
        lettered = bool(_HEMI_LETTER.search(normalised))
        swapped = (raw is not None and not lettered and raw == (lon, lat) and raw != (lat, lon))
        other = None
        if not lettered and raw is not None and not swapped and _valid(lon, lat) and lat != lon:
            other = (lon, lat)
        return Reading(lat, lon, swapped=swapped, other=other)
    # Pairs the parser refuses: out of range, or (0, 0), typed as numbers.
    m = _BARE_PAIR.fullmatch(normalised)
    if m is None:
        m = _decimal_pair(normalised)
    if m is not None:
        a, b = float(m.group(1)), float(m.group(2))
        loose = "." not in m.group(1) and "." not in m.group(2)
        problem = _bad(a, b)
        if problem and _bad(b, a):
            return Reading(a, b, problem=problem, loose=loose)
        if problem:  # only the other order is a position: longitude first
            return Reading(b, a, swapped=True, loose=loose)
        return Reading(a, b, other=(b, a) if _valid(b, a) and a != b else None, loose=loose)
    return None


def _first_raw_pair(text: str) -> tuple[float, float] | None:
    m = _ANY_PAIR.search(text)
    return (float(m.group(1)), float(m.group(2))) if m else None


def _decimal_pair(text: str) -> re.Match[str] | None:
    """Two decimal numbers side by side that the range rules rejected (e.g. ``95.5, 100.5``)."""
    for m in _ANY_PAIR.finditer(text):
        if "." in m.group(1) and "." in m.group(2):
            return m
    return None


# --------------------------------------------------------------------------- #
# Short map links
# --------------------------------------------------------------------------- #

# host -> path prefix that marks a map link ("" for every path)
SHORT_LINK_HOSTS: dict[str, str] = {"maps.app.goo.gl": "", "goo.gl": "/maps"}
_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)


def short_map_link(text: str, hosts: dict[str, str] | None = None) -> str | None:
    """The first short map link in ``text`` (``https://maps.app.goo.gl/…``, ``https://goo.gl/maps/…``)."""
    hosts = SHORT_LINK_HOSTS if hosts is None else hosts
    for m in _URL.finditer(text or ""):
        url = m.group(0).rstrip(").,;!?")
        rest = url.split("://", 1)[1]
        host, _, path = rest.partition("/")
        host = host.lower().split("@")[-1]
        prefix = hosts.get(host)
        if prefix is not None and ("/" + path).startswith(prefix or "/") and len(path.strip("/")) > len(prefix.strip("/")):
            return url
    return None
