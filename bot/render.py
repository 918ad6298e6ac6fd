"""Rendering: a neutral reply or card becomes the payload of an outbox row, every text in the
chat's language from the catalogue. Channels only lay the payload out; they never translate."""

from __future__ import annotations

from bot.i18n import lines as render_lines
from bot.i18n import text as render
from flows.model import Card, Msg, Reply


def render_buttons(rows, lang: str) -> list[list[dict]]:
    return [[{"label": render(b.label, lang), "data": b.data} for b in row] for row in rows]


def _ask_labels(ask: str | None, lang: str) -> dict:
    if ask == "location":
        return {"ask_location": render(Msg("line.ask_location"), lang), "share_location": render(Msg("tg.share_location"), lang)}
    if ask == "photo":
        return {"camera": render(Msg("line.camera"), lang), "camera_roll": render(Msg("line.camera_roll"), lang)}
    return {}


def render_reply(reply: Reply, lang: str) -> dict:
    """A neutral outgoing message: what every channel knows how to show."""
    payload = {"text": render_lines(reply.lines, lang), "buttons": render_buttons(reply.buttons, lang), "ask": reply.ask, "lang": lang}
    if reply.question:
        payload["question"] = True  # a later reply with "edit" may replace it in place
    if reply.edit:
        payload["edit"] = True
    ui = _ask_labels(reply.ask, lang)
    if ui:
        payload["ui"] = ui
    return payload


def render_card(c: Card, lang: str) -> dict:
    ui = {
        "map": render(Msg("line.map"), lang),
        "open_map": render(Msg("tg.open_map"), lang),
        "voice": render(Msg("line.voice"), lang),
        "photo_n": [render(Msg("line.photo_n", {"n": n}), lang) for n in range(1, len(c.photos) + 1)],
        "photo_deleted": render(Msg("card.photo_deleted"), lang),
        "photo_missing": render(Msg("card.photo_missing"), lang),
    }
    return {
        "text": render_lines(c.lines, lang),
        "buttons": render_buttons(c.buttons, lang),
        "photos": list(c.photos),
        "voice": c.voice,
        "location": {"lat": c.lat, "lon": c.lon} if c.lat is not None else None,
        "card": {"report_id": c.report_id, "urgent": c.urgent, "title": render(c.lines[0], lang)},
        "lang": lang,
        "ui": ui,
    }
