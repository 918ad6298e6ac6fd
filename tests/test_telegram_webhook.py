"""The Telegram webhook: captured-style Updates → neutral events in the inbox (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flows.model import CommandReceived
import sqlalchemy as sa
from telegram import Bot, Update

from handlers.telegram import map_update
from tests.conftest import jpeg
from tests.fake_telegram import FakeTelegram, TelegramHarness

FIXTURES = Path(__file__).parent / "fixtures" / "telegram"
NOW = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


def mapped(name: str):
    return map_update(Update.de_json(fixture(name), Bot("123:ABC")), NOW, "namjai_test_bot")


# ---------------------------------------------------------------- mapping (pure)


@pytest.mark.parametrize(
    "name, kind, fields",
    [
        ("private_text", "TextReceived", {"text": "สวัสดี", "reply_to": None, "event_id": "900000001"}),
        ("private_command", "CommandReceived", {"name": "start", "arg": "ref-poster-42"}),
        ("photo_sizes", "PhotoReceived", {"media": "AgAD-large", "key": None}),
        ("image_document", "PhotoReceived", {"media": "BQAD-doc"}),
        ("heic_document", "PhotoReceived", {"media": "BQAD-heic"}),  # an iPhone's HEIC as a file
        ("pdf_document", "UnsupportedReceived", {"kind": "file"}),
        ("location", "LocationReceived", {"lat": 12.9277, "lon": 100.8724, "live": False}),
        ("live_location", "LocationReceived", {"lat": 12.9277, "live": True}),
        ("venue", "LocationReceived", {"title": "Walking Street", "lat": 12.9279}),
        ("sticker", "UnsupportedReceived", {"kind": "sticker"}),
        ("voice", "VoiceReceived", {"media": "AwAD"}),
        ("callback_group", "ChoiceMade", {"data": "r:1:ack", "event_id": "cb:4382001234567890123"}),
        ("reply_to_card", "TextReceived", {"reply_to": "31"}),
        ("group_bind", "CommandReceived", {"name": "bind", "arg": "ABCD-EFGH"}),
    ],
)
def test_updates_map_to_neutral_events(name, kind, fields):
    m = mapped(name)
    assert type(m.event).__name__ == kind
    for k, v in fields.items():
        assert getattr(m.event, k) == v, k
    a = m.event.address
    assert a.platform == "telegram" and a.user_id in ("5550001", "7770001")
    assert a.is_group == (a.chat_id.startswith("-"))
    assert m.event.lang_hint == "th"


def test_bot_added_to_a_group_is_a_joined_event():
    m = mapped("my_chat_member")
    assert isinstance(m.event, CommandReceived) and m.event.name == "joined" and m.event.address.is_group


@pytest.mark.parametrize("name", ["live_location_edit", "unknown_type", "new_members"])
def test_updates_without_an_event(name):
    m = mapped(name)
    assert m.event is None and m.migrate is None


def test_migration_both_ways_and_callback_answered():
    assert mapped("migrate_to_chat_id").migrate == ("-4001234567", "-1001234567890")
    assert mapped("migrate_from_chat_id").migrate == ("-4001234567", "-1001234567890")
    assert mapped("callback_group").callback_id == "4382001234567890123"


def test_command_for_another_bot_is_ignored():
    data = fixture("private_command")
    data["message"]["text"] = "/start@some_other_bot"
    assert map_update(Update.de_json(data, Bot("123:ABC")), NOW, "namjai_test_bot").event is None


# ---------------------------------------------------------------- the webhook over HTTP


@pytest.fixture
async def tg(db_url, tmp_path, clock):
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import SERVICES, create_app
    from bot.settings import Settings
    from bot.teams import EXAMPLE

    async with FakeTelegram() as fake:
        settings = Settings(
            _env_file=None, database_url=db_url, photo_dir=str(tmp_path / "photos"), teams_file=str(EXAMPLE),
            telegram_token="123:ABC", telegram_webhook_secret="s3cret", telegram_api_base=fake.url, sweep_seconds=0.2,
        )
        app = create_app(settings, clock=clock)
        async with TestServer(app, host="127.0.0.1") as server, TestClient(server) as client:
            yield TelegramHarness(client, app[SERVICES], fake, clock)


async def inbox(tg) -> list:
    from storage.models import InboxEvent

    async with tg.services.db.session() as s:
        return list((await s.exec(sa.select(InboxEvent.event_id, InboxEvent.payload).order_by(InboxEvent.id))).all())


@pytest.mark.parametrize("secret", [None, "wrong", "s3cret-but-longer", ""])
async def test_wrong_or_missing_secret_is_403_and_stores_nothing(tg, secret):
    assert await tg.post(fixture("private_text"), secret=secret) == 403
    assert await inbox(tg) == []


async def test_every_fixture_is_acknowledged_and_a_repeat_is_stored_once(tg):
    for path in sorted(FIXTURES.glob("*.json")):
        assert await tg.post(json.loads(path.read_text(encoding="utf-8"))) == 200, path.name
    assert await tg.post(fixture("private_text")) == 200  # Telegram delivers it again
    await tg.settle()
    rows = await inbox(tg)
    ids = [r[0] for r in rows]
    assert ids.count("900000001") == 1 and len(ids) == len(set(ids))
    assert "900000008" not in ids  # the live location's update: ignored
    assert "900000015" in ids and "900000018" not in ids  # the bot added to a group; an unknown type
    assert "/bind" in "\n".join(tg.fake.texts(-1001234567890))  # an unbound group is told how to bind
    for _, payload in rows:  # no file URL (it holds the token) is ever stored
        assert "/file/bot" not in json.dumps(payload) and "123:ABC" not in json.dumps(payload)
    assert tg.fake.sent("answerCallbackQuery")


async def test_not_json_is_400(tg):
    resp = await tg.client.post("/telegram/webhook", data=b"{not json", headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"})
    assert resp.status == 400


async def test_group_upgraded_to_supergroup_keeps_its_binding(tg):
    from storage import repo

    async with tg.services.db.transaction() as s:
        team = await repo.team_by_code(s, "pattaya-city")
        await repo.bind_chat(s, "telegram", "-4001234567", team.id, "team", "th", tg.clock())
    assert await tg.post(fixture("migrate_to_chat_id")) == 200
    assert await tg.post(fixture("migrate_from_chat_id")) == 200  # the same fact, seen from the new chat
    async with tg.services.db.session() as s:
        assert await repo.binding_for_chat(s, "telegram", "-4001234567") is None
        moved = await repo.binding_for_chat(s, "telegram", "-1001234567890")
    assert moved is not None and moved.team_id == team.id


async def test_photo_is_fetched_through_the_bot_api_and_stored(tg):
    from storage import repo

    tg.fake.add_file("AgAD-large", jpeg())
    await tg.post(tg.message(5550001, tg.user(5550001), text="สวัสดี"))
    await tg.settle()
    await tg.press(5550001, tg.user(5550001), "consent:yes")
    assert await tg.post(fixture("photo_sizes")) == 200
    await tg.settle()
    assert [c.params["file_id"] for c in tg.fake.sent("getFile")] == ["AgAD-large"]
    async with tg.services.db.session() as s:
        conv = await repo.conversation_get(s, "telegram", "5550001", "5550001")
    assert len(conv.state["draft"]["photos"]) == 1
    assert any("ได้รับรูปแล้ว" in t for t in tg.fake.texts(5550001))


async def test_ask_location_shows_the_share_location_keyboard_in_private(tg):
    v = tg.user(5550001)
    await tg.send(5550001, v, text="สวัสดี")
    await tg.press(5550001, v, "consent:yes")
    await tg.press(5550001, v, "nophoto:")
    kb = tg.fake.keyboards[5550001]
    assert kb["keyboard"][0][0]["request_location"] is True and kb["one_time_keyboard"] is True
