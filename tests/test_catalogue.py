"""The one catalogue: every key in Thai and English, every key the code names present, the
volunteer's questions polite in Thai, plurals right in English."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest
import yaml

from bot.i18n import CATALOGUE, catalogue, text
from flows.model import Msg

ROOT = Path(__file__).parent.parent
# What asks the volunteer (or staff) something and waits for the answer.
QUESTIONS = [k for k in yaml.safe_load(CATALOGUE.read_text(encoding="utf-8")) if k.startswith("ask.")] + [
    "menu.title", "consent.notice", "location.sea", "location.choose", "cancel.ask", "followup.ask", "draft.nudge", "rating.ask",
]
POLITE = ("คะ", "ค่ะ", "นะคะ")


def test_every_key_has_thai_and_english():
    for key, texts in catalogue().items():
        assert set(texts) >= {"th", "en"}, key
        for lang in ("th", "en"):
            forms = texts[lang].values() if isinstance(texts[lang], dict) else [texts[lang]]
            assert all(isinstance(f, str) and f.strip() for f in forms), (key, lang)


def test_every_key_the_code_names_is_in_the_catalogue():
    named = set()
    for folder in ("flows", "bot", "handlers"):
        for path in (ROOT / folder).rglob("*.py"):
            named |= set(re.findall(r'Msg\(\s*"([a-z_]+(?:\.[a-z0-9_+\-]+)+)"', path.read_text(encoding="utf-8")))
    missing = sorted(k for k in named if k not in catalogue())
    assert not missing, missing


@pytest.mark.parametrize("key", QUESTIONS)
def test_thai_questions_end_politely(key):
    th = catalogue()[key]["th"]
    last = th.rstrip().rstrip("?:)").rstrip()
    assert last.endswith(POLITE) or re.search(r"(คะ|ค่ะ)\s*(\(|\")", th.splitlines()[-1]), (key, th)


def test_no_calques_and_no_crime_scene():
    everything = "\n".join(str(v["th"]) for v in catalogue().values())
    assert "ถ่ายรูปไม่ได้อย่างปลอดภัย" not in everything
    assert "จุดเกิดเหตุ" not in everything
    plain = "\n".join(v["th"] for k, v in catalogue().items() if k.startswith("outcome"))
    assert "ถูก" not in plain, "outcomes are told without the passive"


@pytest.mark.parametrize("n,want", [(1, "📷 1 photo"), (2, "📷 2 photos"), (4, "📷 4 photos")])
def test_english_plurals(n, want):
    assert text(Msg("sum.photos", {"n": n}), "en") == want


def test_photo_counter_says_how_many_more():
    assert "ส่งเพิ่มได้อีก 3 รูป" in text(Msg("photo.got_more", {"n": 3}), "th")
    assert "1 more" in text(Msg("photo.got_more", {"n": 1}), "en")
    assert "3 more" in text(Msg("photo.got_more", {"n": 3}), "en")


def test_notice_version_in_the_buddhist_era():
    v = Msg("consent.version", {"number": 2, "date": date(2026, 12, 1)})
    assert text(v, "th") == "ฉบับที่ 2 (ธ.ค. 2569)"
    assert text(v, "en") == "version 2 (Dec 2026)"
    assert "ฉบับที่ 2 (ธ.ค. 2569)" in text(Msg("consent.notice", {"version": v}), "th")


def test_child_protection_act_is_a_law_track():
    assert "พ.ร.บ.คุ้มครองเด็ก พ.ศ. 2546" in catalogue()["card.law.child"]["th"]
