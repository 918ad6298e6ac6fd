"""Which province, district or subdistrict a typed landmark names. Pure.

A ``Gazetteer`` is built once from the boundary data's names (code -> (name_th, name_en), codes of
2, 4 or 6 digits) plus a few common short forms (``ALIASES``). ``find(text)`` answers the most
specific places the text is consistent with:

* every name found in the text is a *match* (Thai: as a substring, since Thai has no spaces
  between words; English: as whole words, case, spaces and hyphens ignored, so "Chonburi" is
  "Chon Buri"); a match inside a longer match is dropped ("วัฒนา" inside "วัฒนานคร"), and so are
  two district/subdistrict names that cross each other ("หัวลำ" and "ลำโพ" in "หัวลำโพง");
* a district or subdistrict name cannot end inside a syllable ("สถาน" in "สถานี") nor start after
  a leading vowel; short (under 4 letters, marks not counted) or everyday names ("ดอน", "ตลาด",
  "แหลม", "เมือง" for the capital district, …) count only after a marker such as
  ต./ตำบล/แขวง/อ./อำเภอ/เขต/จ./จังหวัด; province names and short forms always count, and a
  province's name means the province even where a subdistrict elsewhere has it too ("ขอนแก่น");
* each matched place scores the number of matches that name it or one of its parents; the places
  with the best score win. "ตลาดนาเกลือ พัทยา": Na Kluea is a
  subdistrict in three provinces, but only the one in Bang Lamung (Pattaya) fits both names.

Several winners mean the name is shared: the caller offers them as a choice.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

# Common short forms and names of towns that are not an administrative unit -> code(s).
ALIASES: dict[str, str | tuple[str, ...]] = {
    "กรุงเทพฯ": "10", "กรุงเทพ": "10", "กทม.": "10", "กทม": "10", "bangkok": "10", "bkk": "10",
    "krung thep": "10",
    # Pattaya City is tambon Nong Prue and tambon Na Kluea of Bang Lamung
    "พัทยา": ("200402", "200408"), "pattaya": ("200402", "200408"),
    "โคราช": "30", "korat": "30", "khorat": "30",
    "อยุธยา": "14", "ayutthaya": "14", "ayuthaya": "14",
    "นครศรีฯ": "80", "นครศรี": "80",
    "สุราษฎร์ฯ": "84", "สุราษฎร์": "84",
    "อุบลฯ": "34", "อุบล": "34",
    "โคราชฯ": "30",
    "ชลบุรีฯ": "20",
}

# Thai names that are everyday words: they count only after an administrative marker.
COMMON_WORDS = frozenset({
    "ตลาด", "ในเมือง", "ท่าเรือ", "สะพาน", "บ้านใหม่", "ปากน้ำ", "บ้านนา", "บ้านกลาง", "เวียง",
    "หัวเวียง", "ในเวียง", "เมืองเก่า", "นาดี", "ทุ่งนา", "บ้านเก่า", "วัดใหม่", "ห้วย", "บ้านบ่อ",
    "กลางเวียง", "โรงเรียน", "วังใหม่", "สวนหลวง", "ท่าช้าง", "บางรัก", "คลอง", "แหลม", "ท่าเรือ",
    "สถานี", "ชายทะเล", "หน้าเมือง", "เมือง",
})
MIN_THAI = 4  # Thai district/subdistrict names of fewer letters (marks not counted) need a marker
# Marks and vowels written after the consonant they belong to: a name cannot end right before one
# (it would end inside a syllable: "สถาน" in "สถานี"); leading vowels cannot precede a name.
_TH_FOLLOWING = set("ะัาำิีึืฺุู็่้๊๋์ํๅ")
_TH_LEADING = set("เแโใไ")
MIN_ENGLISH = 4
MARKERS_TH = ("ตำบล", "ต.", "แขวง", "อำเภอ", "อ.", "เขต", "จังหวัด", "จ.")
_MARKERS_EN = ("tambon", "amphoe", "khet", "khwaeng", "district", "subdistrict", "province", "changwat")
_TH_PREFIXES = ("เขต", "อำเภอ", "กิ่งอำเภอ", "ตำบล", "แขวง", "จังหวัด")
_WORD = re.compile(r"[a-z]+")


def _squash(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower()
    return _WORD.findall(text)


class Gazetteer:
    def __init__(self, names: Mapping[str, tuple[str, str]], aliases: Mapping[str, str | tuple[str, ...]] | None = None,
                 other_names: Mapping[str, tuple[str, str]] | None = None):
        """``other_names``: more spellings of the same codes (code -> (th, en), "" for none)."""
        self.names = dict(names)
        self._strong: set[str] = set()  # province names and aliases: no length or syllable rule
        self._th: dict[str, set[str]] = {}
        self._en: dict[str, set[str]] = {}
        self._en_max_words = 1
        for code, (th, en) in self.names.items():
            for form in self._thai_forms(th):
                self._th.setdefault(form, set()).add(code)
                if len(code) == 2:
                    self._strong.add(form)
            if len(code) == 4 and code.endswith("01") and th.startswith("เมือง"):
                # the capital district is written "อ.เมือง" without the province's name
                self._th.setdefault("เมือง", set()).add(code)
            self._add_en(en, code)
        for code, (th, en) in (other_names or {}).items():
            for form in self._thai_forms(th):
                self._th.setdefault(form, set()).add(code)
            self._add_en(en, code)
        for alias, alias_codes in (ALIASES if aliases is None else aliases).items():
            for code in (alias_codes,) if isinstance(alias_codes, str) else alias_codes:
                if not any(ord(ch) > 0x0E00 for ch in alias):
                    self._add_en(alias, code)
                else:
                    self._th.setdefault(alias, set()).add(code)
                    self._strong.add(alias)

    @staticmethod
    def _thai_forms(th: str) -> list[str]:
        th = (th or "").strip()
        if not th:
            return []
        forms = [th]
        for prefix in _TH_PREFIXES:
            if th.startswith(prefix) and len(th) > len(prefix) + 1:
                forms.append(th[len(prefix):].strip())
        return forms

    def _add_en(self, en: str, code: str) -> None:
        words = _squash(en or "")
        if not words:
            return
        key = "".join(words)
        self._en.setdefault(key, set()).add(code)
        self._en_max_words = max(self._en_max_words, len(words))

    # ------------------------------------------------------------------ matching

    @staticmethod
    def _province_first(codes: set[str]) -> frozenset[str]:
        """A province's name also borne by a subdistrict elsewhere ("ขอนแก่น") means the province."""
        provinces = {c for c in codes if len(c) == 2}
        if not provinces:
            return frozenset(codes)
        return frozenset(c for c in codes if c[:2] in provinces)

    def _matches(self, text: str) -> list[tuple[tuple[str, int, int], frozenset[str]]]:
        found: list[tuple[tuple[str, int, int], frozenset[str]]] = []
        t = unicodedata.normalize("NFC", text)
        for name, codes in self._th.items():
            start = t.find(name)
            while start >= 0:
                if self._thai_ok(t, name, start):
                    found.append((("th", start, start + len(name)), self._province_first(codes)))
                start = t.find(name, start + 1)
        words = _squash(text)
        for i in range(len(words)):
            for n in range(1, self._en_max_words + 1):
                if i + n > len(words):
                    break
                key = "".join(words[i : i + n])
                codes = self._en.get(key)
                if not codes:
                    continue
                marked = i > 0 and words[i - 1] in _MARKERS_EN
                if len(key) < MIN_ENGLISH and not marked and key not in ("bkk",):
                    continue
                found.append((("en", i, i + n), self._province_first(codes)))
        # drop a match lying inside a longer one of the same script, then two Thai names that
        # overlap without one holding the other ("หัวลำ" and "ลำโพ" in "หัวลำโพง": a word neither is)
        keep = []
        for span, codes in found:
            kind, a, b = span
            inner = any(k == kind and x <= a and b <= y and (x, y) != (a, b) for (k, x, y), _ in found)
            if not inner:
                keep.append((span, codes))
        out = []
        for span, codes in keep:
            kind, a, b = span
            crossed = kind == "th" and t[a:b] not in self._strong and any(
                k == kind and (x < a < y < b or a < x < b < y) and t[x:y] not in self._strong for (k, x, y), _ in keep
            )
            if not crossed:
                out.append((span, codes))
        return out

    def _thai_ok(self, text: str, name: str, start: int) -> bool:
        end = start + len(name)
        if name in self._strong:
            return True
        if end < len(text) and text[end] in _TH_FOLLOWING:
            return False  # the name would end inside a syllable
        if start > 0 and text[start - 1] in _TH_LEADING:
            return False
        letters = sum(1 for ch in name if unicodedata.category(ch) != "Mn")
        if letters >= MIN_THAI and name not in COMMON_WORDS:
            return True
        before = text[:start].rstrip()
        return before.endswith(MARKERS_TH)

    def find(self, text: str) -> list[str]:
        """The most specific places ``text`` names, best first by code (empty: none)."""
        matches = self._matches(text or "")
        if not matches:
            return []
        candidates = set().union(*(codes for _, codes in matches))

        def chain(code: str) -> set[str]:
            return {code[:n] for n in (2, 4, 6) if len(code) >= n}

        spans_of: dict[str, set] = {}
        for c in candidates:
            ch = chain(c)
            spans_of[c] = {span for span, codes in matches if codes & ch}
        best = max(len(v) for v in spans_of.values())
        top = {c for c, v in spans_of.items() if len(v) == best}
        # a child named only by its parent's own name adds nothing: keep the parent ("บ้านบึง" is the
        # district, not the subdistrict of the same name in it)
        top = {c for c in top if not any(o != c and c.startswith(o) for o in top)}
        return sorted(top)
