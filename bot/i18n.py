"""Renders catalogue messages (`flows.model.Msg`) in Thai or English from bot/locales/messages.yaml."""

from __future__ import annotations

import string
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml
from babel.dates import format_datetime

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
    return data


def fmt_time(at: datetime, lang: str) -> str:
    """A moment in Bangkok time; Thai readers get the Buddhist Era year."""
    local = at.astimezone(BANGKOK)
    lang = lang if lang in LANGS else DEFAULT_LANG
    year = local.year + 543 if lang == "th" else local.year
    day = _day(local.date(), lang)
    return text(Msg("time.at", {"day": day, "year": year, "time": f"{local:%H:%M}"}), lang)


@lru_cache(maxsize=4096)
def _day(d, lang: str) -> str:
    """`2 ธ.ค.`: babel takes milliseconds for it, and a console page shows hundreds of dates."""
    return format_datetime(datetime(d.year, d.month, d.day, 12), "d MMM", locale=lang)


def text(msg: Msg | str, lang: str = DEFAULT_LANG) -> str:
    """The message in `lang` (Thai when the language is unknown)."""
    if isinstance(msg, str):
        return msg
    lang = lang if lang in LANGS else DEFAULT_LANG
    entry = catalogue().get(msg.key)
    if entry is None:
        raise KeyError(f"no catalogue entry {msg.key!r}")
    params = {k: _value(v, lang) for k, v in msg.params.items()}
    return string.Formatter().vformat(entry[lang], (), params)


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
    if isinstance(v, (list, tuple)):
        return ", ".join(str(_value(x, lang)) for x in v)
    return v
