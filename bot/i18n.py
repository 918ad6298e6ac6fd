"""Renders catalogue messages (`flows.model.Msg`) in Thai or English from bot/locales/messages.yaml."""

from __future__ import annotations

from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel.dates import format_date

from flows.cards import BANGKOK
from flows.model import Msg

CATALOGUE = Path(__file__).parent / "locales" / "messages.yaml"
LANGS = ("th", "en")
DEFAULT_LANG = "th"


@cache
def catalogue() -> dict[str, dict[str, str]]:
    with open(CATALOGUE, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    for key, texts in data.items():
        missing = [lang for lang in LANGS if lang not in texts]
        if missing:
            raise ValueError(f"catalogue key {key!r} lacks {missing}")
        for lang in LANGS:
            if isinstance(texts[lang], dict) and set(texts[lang]) != {"one", "other"}:
                raise ValueError(f"catalogue key {key!r} ({lang}): plural forms are one and other")
    return data


def fmt_month(d: date, lang: str) -> str:
    """A month and year ("พ.ย. 2569", "Nov 2026"): Thai readers get the Buddhist Era year."""
    lang = lang if lang in LANGS else DEFAULT_LANG
    year = d.year + 543 if lang == "th" else d.year
    return f"{format_date(d, 'MMM', locale=lang)} {year}"


def fmt_time(at: datetime, lang: str) -> str:
    """A moment in Bangkok time; Thai readers get the Buddhist Era year."""
    local = at.astimezone(BANGKOK)
    lang = lang if lang in LANGS else DEFAULT_LANG
    year = local.year + 543 if lang == "th" else local.year
    day = _day(local.date(), lang)
    return text(Msg("time.at", {"day": day, "year": year, "time": f"{local:%H:%M}"}), lang)


@lru_cache(maxsize=4096)
def _day(d, lang: str) -> str:
    """"3 ธ.ค." / "3 Dec" (babel parses the pattern and loads the locale each call: cached per day)."""
    return format_date(d, "d MMM", locale=lang)


def text(msg: Msg | str, lang: str = DEFAULT_LANG) -> str:
    """The message in `lang` (Thai when the language is unknown)."""
    if isinstance(msg, str):
        return msg
    lang = lang if lang in LANGS else DEFAULT_LANG
    entry = catalogue().get(msg.key)
    if entry is None:
        raise KeyError(f"no catalogue entry {msg.key!r}")
    params = {k: _value(v, lang) for k, v in msg.params.items()}
    pattern = entry[lang]
    if isinstance(pattern, dict):  # plural forms, chosen by the parameter n
        pattern = pattern["one"] if msg.params.get("n") == 1 else pattern["other"]
    return pattern.format_map(params)  # str.format_map: the same fields as string.Formatter, in C


def both(msg: Msg) -> str:
    """The message in Thai, then in English (for a page that does not know its reader's language)."""
    return "\n".join(text(msg, lang) for lang in LANGS)


def lines(msgs, lang: str) -> str:
    return "\n".join(text(m, lang) for m in msgs)


def _value(v: Any, lang: str) -> Any:
    if isinstance(v, Msg):
        return text(v, lang)
    if isinstance(v, datetime):
        return fmt_time(v, lang)
    if isinstance(v, date):
        return fmt_month(v, lang)
    if isinstance(v, (list, tuple)):
        return ", ".join(str(_value(x, lang)) for x in v)
    return v
