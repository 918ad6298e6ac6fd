"""TelegramChannel against the fake Bot API: messages, cards, edits, errors and limits (no database)."""

from __future__ import annotations

from types import SimpleNamespace

import asyncio
import pytest

from bot.settings import Settings
from handlers.telegram import build_application
from handlers.telegram_channel import TelegramChannel
from bot.telegram_cli import register_webhook
from tests.conftest import jpeg
from tests.fake_telegram import FakeTelegram

GROUP, PRIVATE = -100200300, 4242


@pytest.fixture
async def fake():
    async with FakeTelegram() as f:
        yield f


@pytest.fixture
async def channel(fake):
    application = build_application(Settings(_env_file=None, telegram_token="123:ABC", telegram_api_base=fake.url))
    await application.initialize()
    photos = {"k1": jpeg(), "k2": jpeg(color=(10, 200, 10)), "k3": jpeg(color=(10, 10, 200)), "v1": b"OggS" + b"\0" * 60}

    async def photo_bytes(key):
        return photos[key]

    yield TelegramChannel(application.bot, photo_bytes)
    await application.shutdown()


def row(chat, **payload):
    return SimpleNamespace(id=1, chat_id=str(chat), payload={"text": "hello", "buttons": [], "ask": None, "lang": "th", **payload})


def card(**kw):
    return {"card": {"report_id": 1}, "photos": ["k1"], "location": {"lat": 12.9, "lon": 100.8}, "text": "NJ-1 ใหม่",
            "buttons": [[{"label": "รับเรื่อง", "data": "r:1:ack"}]], **kw}


async def test_text_with_buttons_and_long_callback_data_dropped(channel, fake):
    buttons = [[{"label": "A", "data": "a:1"}, {"label": "B", "data": "x" * 65}]]
    r = await channel.send(row(PRIVATE, buttons=buttons), None)
    assert r.ok and r.message_id
    markup = fake.sent("sendMessage")[0].params["reply_markup"]
    assert markup == {"inline_keyboard": [[{"text": "A", "callback_data": "a:1"}]]}


async def test_ask_location_keyboard_only_in_private(channel, fake):
    await channel.send(row(PRIVATE, ask="location"), None)
    await channel.send(row(GROUP, ask="location"), None)
    first, second = fake.sent("sendMessage")
    assert first.params["reply_markup"]["keyboard"][0][0]["request_location"] is True
    assert "reply_markup" not in second.params


async def test_card_is_a_photo_then_edited_in_place(channel, fake):
    r = await channel.send(row(GROUP, **card()), None)
    assert r.ok
    sent = fake.sent("sendPhoto")[0].params
    assert sent["caption"] == "NJ-1 ใหม่" and sent["photo"]["size"] > 0
    assert sent["reply_markup"]["inline_keyboard"][1][0]["url"].startswith("https://www.google.com/maps/")
    again = await channel.send(row(GROUP, **card(text="NJ-1 รับเรื่องแล้ว")), r.message_id)
    assert again.ok and again.message_id == r.message_id
    assert fake.sent("editMessageCaption")[0].params["caption"] == "NJ-1 รับเรื่องแล้ว"
    same = await channel.send(row(GROUP, **card(text="NJ-1 รับเรื่องแล้ว")), r.message_id)
    assert same.ok and same.message_id == r.message_id  # "message is not modified" is a success


async def test_a_new_card_brings_every_photo_and_its_voice_note_as_replies(channel, fake):
    r = await channel.send(row(GROUP, **card(photos=["k1", "k2", "k3"], voice="v1")), None)
    assert r.ok
    album = fake.sent("sendMediaGroup")[0].params
    assert len(album["media"]) == 2 and str(album["reply_parameters"]["message_id"]) == r.message_id
    voice = fake.sent("sendVoice")[0].params
    assert voice["voice"]["size"] == 64 and str(voice["reply_parameters"]["message_id"]) == r.message_id
    assert channel.cost([row(GROUP, **card(photos=["k1", "k2", "k3"], voice="v1"))]) == 4  # 3 photos + voice
    # an edit touches only the card: nothing sent again, and it costs one
    again = await channel.send(row(GROUP, **card(photos=["k1", "k2", "k3"], voice="v1", text="NJ-1 ปิด")), r.message_id)
    assert again.ok and len(fake.sent("sendMediaGroup")) == 1 and len(fake.sent("sendVoice")) == 1
    assert channel.cost([row(GROUP, **card(photos=["k1", "k2"]))], r.message_id) == 1
    # two photos: the second as a single photo reply (an album needs two or more)
    await channel.send(row(GROUP, **card(photos=["k1", "k2"])), None)
    assert len(fake.sent("sendMediaGroup")) == 1 and len(fake.sent("sendPhoto")) == 3


async def test_card_without_photo_is_text_and_long_card_falls_back(channel, fake):
    r = await channel.send(row(GROUP, **card(photos=[])), None)
    assert r.ok and fake.sent("sendMessage")
    long = "ย" * 1500
    before = len(fake.calls)
    r2 = await channel.send(row(GROUP, **card(text=long)), None)  # too long for a caption
    assert r2.ok and fake.sent("sendPhoto") and fake.sent("sendMessage")[-1].params["text"] == long
    # the photo, then the text: two messages, and the limits count both
    assert channel.cost([row(GROUP, **card(text=long))]) == len(fake.calls) - before == 2
    r3 = await channel.send(row(GROUP, **card(text=long + "!")), r2.message_id)  # edit: text, not caption
    assert r3.ok and fake.sent("editMessageText")[-1].params["text"] == long + "!"


@pytest.mark.parametrize(
    "status, expect",
    [(429, dict(ok=False, retry_after=7.0, permanent=False)), (500, dict(ok=False, retry_after=None, permanent=False)),
     (403, dict(ok=False, permanent=True)), (400, dict(ok=False, permanent=True))],
)
async def test_errors_map_to_send_results(channel, fake, status, expect):
    fake.fail_next(1, status=status, retry_after=7)
    r = await channel.send(row(PRIVATE), None)
    for k, v in expect.items():
        assert getattr(r, k) == v, (k, r)
    assert "123:ABC" not in (r.error or "")


def test_limits_are_declared_for_the_shared_limiter(channel):
    """The channel names its buckets; the outbox holds them in the database (tests/test_pipeline.py)."""
    assert channel.limits(row(PRIVATE)) == [("telegram", 30, 1.03)]
    assert channel.limits(row(GROUP)) == [("telegram", 30, 1.03), (f"telegram:{GROUP}", 20, 60.03)]


async def test_set_webhook_with_secret_and_command_menus(channel, fake):
    await register_webhook(channel.bot, "https://namjai.example/telegram/webhook", "s3cret")
    hook = fake.sent("setWebhook")[0].params
    assert hook["secret_token"] == "s3cret" and "callback_query" in hook["allowed_updates"]
    menus = fake.sent("setMyCommands")
    assert len(menus) == 4  # private and group scopes, in Thai (default) and English
    en_private = next(c for c in menus if c.params.get("language_code") == "en" and c.params["scope"]["type"] == "all_private_chats")
    assert {c["command"] for c in en_private.params["commands"]} == {"start", "new", "mine", "cancel", "help", "lang"}
    th_private = next(c for c in menus if "language_code" not in c.params and c.params["scope"]["type"] == "all_private_chats")
    assert th_private.params["commands"][1]["description"] == "แจ้งเรื่องใหม่"


async def test_polling_feeds_the_same_path(fake):
    import asyncio

    from handlers.telegram import Telegram

    settings = Settings(_env_file=None, telegram_token="123:ABC", telegram_api_base=fake.url)
    got = []

    class Svc:
        clock = staticmethod(lambda: None)
        background: set = set()

        async def accept_task(self, ev):
            got.append(ev)
            return asyncio.create_task(asyncio.sleep(0))

    tg = Telegram(settings)
    tg.application = build_application(settings)
    await tg.application.initialize()
    tg.svc = Svc()
    fake.updates = [
        {"update_id": 5, "message": {"message_id": 1, "date": 0, "chat": {"id": 9, "type": "private"}, "from": {"id": 9, "is_bot": False, "first_name": "a"}, "text": "hi"}},
        {"update_id": 6, "message": {"message_id": 2, "date": 0, "chat": {"id": 9, "type": "private"}, "from": {"id": 9, "is_bot": False, "first_name": "a"}, "text": "/help"}},
    ]
    stop = asyncio.Event()
    task = asyncio.create_task(tg.poll(stop, timeout=1))
    for _ in range(100):
        if len(got) >= 2:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 5)
    await tg.application.shutdown()
    assert [type(e).__name__ for e in got] == ["TextReceived", "CommandReceived"]
    offsets = [c.params.get("offset") for c in fake.sent("getUpdates")]
    assert "7" in [str(o) for o in offsets]  # confirmed past what was stored


async def test_poster_command_prints_the_deep_link_and_draws_the_qr(fake, tmp_path):
    import os
    import sys

    out = tmp_path / "poster.png"
    env = {**os.environ, "NAMJAI_TELEGRAM_TOKEN": "123:ABC", "NAMJAI_TELEGRAM_API_BASE": fake.url,
           "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/x.db", "NAMJAI_LOG_LEVEL": "WARNING"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "telegram", "poster", "--province", "20", "--out", str(out),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    from tests.fake_telegram import BOT_USERNAME

    assert stdout.decode().strip() == f"https://t.me/{BOT_USERNAME}?start=p-20"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_refusal_is_an_alert_and_falls_back_to_a_message_when_too_late(channel, fake):
    GROUP_CHAT = -1001234567890
    r = await channel.send(row(GROUP_CHAT, text="ไม่ได้อยู่ในทีม", notice=True, event="cb:4382"), None)
    assert r.ok and not fake.texts(GROUP_CHAT)
    alert = fake.sent("answerCallbackQuery")[-1].params
    assert str(alert["callback_query_id"]) == "4382" and alert.get("show_alert") in (True, "true", "True")
    fake.fail_next(1, status=400, methods={"answerCallbackQuery"})  # "query is too old"
    r = await channel.send(row(GROUP_CHAT, text="ไม่ได้อยู่ในทีม", notice=True, event="cb:4383"), None)
    assert r.ok and fake.texts(GROUP_CHAT) == ["ไม่ได้อยู่ในทีม"]
