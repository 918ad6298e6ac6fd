"""LINE delivery: reply tokens, retry keys, throttling, the monthly quota, message building, photo links."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta
from types import SimpleNamespace

from bot import metrics
from handlers.line import RETRY_KEY_NS, retry_key
from handlers.line_messages import build_messages, check_photo_link, photo_url
from storage import repo

USER = "U00000000000000000000000000000c01"
GROUP = "C00000000000000000000000000000c02"
_rows = itertools.count(1000)


def row(line, chat=USER, text="สวัสดีค่ะ", token=None, **payload):
    return SimpleNamespace(id=next(_rows), created_at=line.clock(), chat_id=chat, platform="line",
                           reply_token=token, reply_until=line.clock() + timedelta(seconds=50) if token else None,
                           reply_ambiguous=False, payload={"text": text, "buttons": [], "ask": None, "lang": "th", **payload})


def channel(line):
    return line.services.outbox.channels["line"]


def bot(line):
    from handlers.line import LINE

    return line.client.app[LINE]


async def test_reply_token_first_then_push_and_never_a_late_one(line):
    fake, ch = line.fake, channel(line)
    fake.reply_tokens["tok-1"] = (USER, line.clock().timestamp())
    first = await ch.send(row(line, token="tok-1"), None)
    second = await ch.send(row(line, token="tok-1"), None)  # the token is single-use: pushed
    assert first.ok and second.ok and [s.via for s in fake.to(USER)] == ["reply", "push"]
    assert first.message_id == fake.to(USER)[0].id

    fake.reply_tokens["tok-2"] = (USER, line.clock().timestamp())
    late = row(line, token="tok-2")
    line.clock.advance(seconds=55)  # too old to try
    assert (await ch.send(late, None)).ok
    assert fake.to(USER)[-1].via == "push"
    assert not [c for c in fake.calls if c.path.endswith("/reply") and c.json["replyToken"] == "tok-2"]


async def test_a_refused_reply_token_falls_back_to_push(line):
    fake, ch = line.fake, channel(line)
    result = await ch.send(row(line, token="never-issued"), None)
    assert result.ok and [s.via for s in fake.to(USER)] == ["push"]
    assert [c.status for c in fake.calls if c.path.endswith("/reply")] == [400]


async def test_a_retried_push_is_delivered_once(line):
    fake, ch = line.fake, channel(line)
    r = row(line)
    fake.fail_next(500, path="/v2/bot/message/push", deliver=True)  # accepted, but the answer is lost
    first = await ch.send(r, None)
    assert not first.ok and not first.permanent and first.retry_after is None
    second = await ch.send(r, None)
    assert second.ok
    assert len(fake.to(USER)) == 1
    keys = [c.headers["X-Line-Retry-Key"] for c in fake.pushes()]
    assert keys == [retry_key(r)] * 2 and [c.status for c in fake.pushes()] == [500, 409]
    assert uuid.UUID(keys[0]).version == 5
    assert retry_key(r) == str(uuid.uuid5(RETRY_KEY_NS, f"outbox:{r.id}:{r.created_at.isoformat()}"))


async def test_throttling_waits_as_asked(line):
    fake, ch = line.fake, channel(line)
    fake.fail_next(429, path="/v2/bot/message/push", message="Too many requests", headers={"Retry-After": "7"})
    assert (await ch.send(row(line), None)).retry_after == 7.0
    fake.fail_next(429, path="/v2/bot/message/push", message="Too many requests")
    assert (await ch.send(row(line), None)).retry_after == 60.0
    fake.fail_next(503, path="/v2/bot/message/push")
    r = await ch.send(row(line), None)
    assert not r.ok and not r.permanent and r.retry_after is None
    fake.fail_next(400, path="/v2/bot/message/push", message="The request body has 1 error(s)")
    assert (await ch.send(row(line), None)).permanent


async def test_monthly_quota_keeps_the_message_for_later(line):
    fake, svc = line.fake, line.services
    before = metrics.QUOTA_REFUSED.labels("line")._value.get()
    async with svc.db.transaction() as s:
        added = await repo.outbox_add(s, platform="line", chat_id=USER, payload=row(line).payload,
                                      next_attempt_at=line.clock(), created_at=line.clock())
        await s.flush()
        row_id = added.id
    fake.fail_next(429, path="/v2/bot/message/push", message="You have reached your monthly limit.")
    await svc.outbox.deliver_due()
    async with svc.db.session() as s:
        kept = await repo.outbox_get(s, row_id)
    assert kept.status == "pending" and kept.next_attempt_at == line.clock() + timedelta(hours=1)
    assert metrics.QUOTA_REFUSED.labels("line")._value.get() == before + 1
    assert not fake.to(USER)
    health = await (await line.client.get("/healthz")).json()
    assert health["warnings"] == ["line: push quota spent, messages wait in the outbox"]  # the operator sees it
    line.clock.advance(hours=1, seconds=1)
    await svc.outbox.deliver_due()
    assert len(fake.to(USER)) == 1
    assert (await (await line.client.get("/healthz")).json())["warnings"] == []


def test_quick_replies_for_private_chats_within_limits():
    buttons = [[{"label": f"ตัวเลือกที่ยาวมากมากมากมาก {i}", "data": f"x:{i}"}] for i in range(15)]
    [msg] = build_messages({"text": "เลือก", "buttons": buttons, "ask": "location", "lang": "th"}, USER, str)
    items = msg.to_dict()["quickReply"]["items"]
    assert len(items) == 13 and items[0]["action"]["type"] == "location"
    assert all(len(i["action"]["label"]) <= 20 for i in items)
    assert items[1]["action"]["displayText"] == buttons[0][0]["label"] and items[1]["action"]["data"] == "x:0"
    [photo] = build_messages({"text": "ส่งรูป", "buttons": [], "ask": "photo", "lang": "en"}, USER, str)
    assert [i["action"]["type"] for i in photo.to_dict()["quickReply"]["items"]] == ["camera", "cameraRoll"]
    [plain] = build_messages({"text": "hi", "buttons": [], "lang": "th"}, USER, str)
    assert plain.to_dict() == {"type": "text", "text": "hi"}


def test_group_choices_and_cards_are_flex():
    buttons = [[{"label": "ช่วยเหลือ ณ จุดเกิดเหตุ", "data": "r:1:close:helped"}]]
    [msg] = build_messages({"text": "ผลการดำเนินการ", "buttons": buttons, "lang": "th"}, GROUP, str)
    assert msg.to_dict()["type"] == "flex"
    card = {"text": "NJ-2569-000001\nเมืองพัทยา", "buttons": buttons, "photos": ["k1", "k2"], "lang": "th",
            "location": {"lat": 12.9, "lon": 100.8}, "card": {"report_id": 1, "urgent": True, "title": "NJ-2569-000001"}}
    [flex] = build_messages(card, GROUP, lambda key: f"https://x.example/line/photos/{key}")
    d = flex.to_dict()
    assert d["altText"] == "NJ-2569-000001"
    assert d["contents"]["hero"]["url"] == "https://x.example/line/photos/k1"
    assert "https://x.example/line/photos/k2" in str(d) and "google.com/maps" in str(d)


def test_photo_links_are_signed_and_expire(clock):
    secret = b"s3cret"
    url = photo_url("https://namjai.example/", secret, "abc123", clock(), 24)
    assert url.startswith("https://namjai.example/line/photos/abc123?exp=")
    query = dict(p.split("=") for p in url.split("?")[1].split("&"))
    assert check_photo_link(secret, "abc123", query["exp"], query["sig"], clock())
    assert not check_photo_link(secret, "abc124", query["exp"], query["sig"], clock())
    assert not check_photo_link(b"other", "abc123", query["exp"], query["sig"], clock())
    assert not check_photo_link(secret, "abc123", str(int(query["exp"]) + 3600), query["sig"], clock())
    assert not check_photo_link(secret, "abc123", query["exp"], query["sig"], clock.advance(hours=26))


async def test_expired_photo_link_is_refused(line):
    from tests.conftest import jpeg

    stored = await line.services.photos.put(jpeg())
    url = photo_url("", bot(line).secret, stored.key, line.clock(), 1)
    assert (await line.client.get(url)).status == 200
    line.clock.advance(hours=3)
    assert (await line.client.get(url)).status == 403
    assert (await line.client.get(f"/line/photos/{stored.key}")).status == 403
