"""Commands that work from every step, however they arrive: a platform command, a menu button
(`cmd:NAME`), or a keyword typed in Thai or English."""

from __future__ import annotations

from flows.model import ChoiceMade, CommandReceived, Event, TextReceived

COMMANDS = ("start", "new", "cancel", "help", "mine", "lang", "hotline")

# Typed keywords, compared after trimming and lower-casing. Data, not prose: what people type.
KEYWORDS: dict[str, str] = {
    "cancel": "cancel", "ยกเลิก": "cancel", "stop": "cancel", "หยุด": "cancel",
    "help": "help", "ช่วยเหลือ": "help", "ช่วยด้วย": "help", "วิธีใช้": "help", "?": "help",
    "1300": "hotline", "สายด่วน": "hotline", "hotline": "hotline", "โทร 1300": "hotline",
    "new": "new", "new report": "new", "แจ้งใหม่": "new", "แจ้งเหตุ": "new", "รายงานใหม่": "new",
    "my reports": "mine", "รายงานของฉัน": "mine", "เรื่องของฉัน": "mine", "status": "mine", "สถานะ": "mine",
    "language": "lang", "ภาษา": "lang",
    "start": "start", "เริ่ม": "start", "hi": "start", "hello": "start", "สวัสดี": "start",
}

ALIASES = {"report": "new", "myreports": "mine", "reports": "mine", "language": "lang"}


def command_of(ev: Event) -> str | None:
    """The command an event carries, or None."""
    if isinstance(ev, CommandReceived):
        name = ALIASES.get(ev.name, ev.name)
        return name if name in COMMANDS else "help"
    if isinstance(ev, ChoiceMade) and ev.data.startswith("cmd:"):
        name = ev.data[4:]
        return name if name in COMMANDS else None
    if isinstance(ev, TextReceived):
        text = ev.text.strip().lower()
        if text.startswith("/"):
            name = text[1:].split()[0].split("@")[0] if len(text) > 1 else ""
            name = ALIASES.get(name, name)
            return name if name in COMMANDS else "help"
        return KEYWORDS.get(text)
    return None
