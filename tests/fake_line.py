"""A loopback stand-in for LINE's Messaging API (api.line.me and api-data.line.me on one port),
and helpers to build and sign webhook bodies like LINE does.

It speaks just enough for line-bot-sdk 3: reply (single-use, short-lived tokens), push
(X-Line-Retry-Key: a repeated key answers 409 like LINE), message content, the loading
animation, group member profiles and the rich menu calls of `namjai line rich-menu`.
Every call is recorded with its headers; `fail_next` makes the next N calls fail.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable

from aiohttp import web
from aiohttp.test_utils import TestServer

FIXTURES = Path(__file__).parent / "fixtures" / "line"
REPLY_TOKEN_LIFETIME = 60.0  # seconds


def sign(secret: str, body: str | bytes) -> str:
    """The X-Line-Signature LINE puts on a webhook body."""
    raw = body.encode() if isinstance(body, str) else body
    return base64.b64encode(hmac.new(secret.encode(), raw, hashlib.sha256).digest()).decode()


def fixture(name: str) -> dict:
    """A webhook body from tests/fixtures/line/NAME.json."""
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))


_ids = itertools.count(1)


def event_from(name: str, *, user: str | None = None, group: str | None = None, **changes) -> dict:
    """The first event of a fixture, with a fresh webhookEventId and reply token, re-addressed:
    `user` alone → a private chat; `group` (+ `user`) → a group chat. Other keyword arguments
    update the event's `message` / `postback` (e.g. text=…, data=…, id=…)."""
    ev = copy.deepcopy(fixture(name)["events"][0])
    n = next(_ids)
    ev["webhookEventId"] = f"01TESTEVENT{n:015d}"
    if "replyToken" in ev:
        ev["replyToken"] = f"rt-{n}"
    if group is not None:
        ev["source"] = {"type": "group", "groupId": group, **({"userId": user} if user else {})}
    elif user is not None:
        ev["source"] = {"type": "user", "userId": user}
    for key, value in changes.items():
        for part in ("message", "postback"):
            if part in ev and (key in ev[part] or part == "message" and key in ("quotedMessageId", "imageSet")):
                ev[part][key] = value
                break
        else:
            ev[key] = value
    return ev


def body_of(*events: dict, destination: str = "Ubot0000000000000000000000000000") -> str:
    return json.dumps({"destination": destination, "events": list(events)}, ensure_ascii=False)


@dataclass
class Call:
    method: str
    path: str
    headers: dict
    json: dict | None
    status: int = 200


@dataclass
class Sent:
    """A message LINE accepted: to a chat, by reply or push."""

    via: str
    to: str
    message: dict
    id: str
    retry_key: str | None = None

    @property
    def text(self) -> str:
        if self.message.get("type") == "text":
            return self.message["text"]
        return flex_text(self.message.get("contents") or {})


def flex_text(node) -> str:
    """All text components of a Flex container, in order (what a reader sees)."""
    out: list[str] = []

    def walk(n):
        if isinstance(n, dict):
            if n.get("type") == "text" and "text" in n:
                out.append(n["text"])
            for key in ("header", "hero", "body", "footer"):
                if key in n:
                    walk(n[key])
            for c in n.get("contents") or []:
                walk(c)
        elif isinstance(n, list):
            for c in n:
                walk(c)

    walk(node)
    return "\n".join(out)


def flex_postbacks(message: dict) -> list[tuple[str, str]]:
    """(label, data) of the postback buttons of a Flex message."""
    found: list[tuple[str, str]] = []

    def walk(n):
        if isinstance(n, dict):
            a = n.get("action")
            if n.get("type") == "button" and a and a.get("type") == "postback":
                found.append((a["label"], a["data"]))
            for key in ("header", "hero", "body", "footer"):
                if key in n:
                    walk(n[key])
            for c in n.get("contents") or []:
                walk(c)

    walk(message.get("contents") or {})
    return found


@dataclass
class FakeLine:
    access_token: str = "test-access-token"
    clock: Callable[[], float] = time.monotonic  # for the reply tokens' lifetime
    calls: list[Call] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)  # message id -> bytes (blob API)
    names: dict[str, str] = field(default_factory=dict)  # user id -> display name
    rich_menus: dict[str, dict] = field(default_factory=dict)
    rich_menu_images: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    default_rich_menu: str | None = None
    reply_tokens: dict[str, tuple[str, float]] = field(default_factory=dict)  # token -> (chat, issued)
    used_tokens: set[str] = field(default_factory=set)
    retry_keys: dict[str, list[str]] = field(default_factory=dict)
    _failures: list[tuple[str, int, dict, dict]] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(500000000000001))
    server: TestServer | None = None

    # ---- test controls

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def issue(self, event: dict) -> dict:
        """Registers the reply token of a webhook event as LINE would have issued it."""
        token = event.get("replyToken")
        if token:
            src = event["source"]
            chat = src.get("groupId") or src.get("roomId") or src.get("userId")
            self.reply_tokens[token] = (chat, self.clock())
        return event

    def fail_next(self, status: int, n: int = 1, *, path: str = "/v2/bot/message/", message: str = "error", headers: dict | None = None, deliver: bool = False) -> None:
        """The next N calls whose path starts with `path` answer `status`. With deliver=True the
        message is accepted first (the answer is lost on the way back)."""
        for _ in range(n):
            self._failures.append((path, status, {"message": message}, {**(headers or {}), **({"x-deliver": "1"} if deliver else {})}))

    def to(self, chat: str) -> list[Sent]:
        return [s for s in self.sent if s.to == chat]

    def texts(self, chat: str) -> list[str]:
        return [s.text for s in self.to(chat)]

    def pushes(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/v2/bot/message/push"]

    # ---- server

    async def start(self) -> "FakeLine":
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_post("/v2/bot/message/reply", self._reply)
        app.router.add_post("/v2/bot/message/push", self._push)
        app.router.add_get("/v2/bot/message/{id}/content", self._content)
        app.router.add_post("/v2/bot/chat/loading/start", self._loading)
        app.router.add_get("/v2/bot/group/{group}/member/{user}", self._member)
        app.router.add_get("/v2/bot/room/{room}/member/{user}", self._member)
        app.router.add_post("/v2/bot/richmenu", self._richmenu_create)
        app.router.add_post("/v2/bot/richmenu/validate", self._richmenu_validate)
        app.router.add_get("/v2/bot/richmenu/list", self._richmenu_list)
        app.router.add_delete("/v2/bot/richmenu/{id}", self._richmenu_delete)
        app.router.add_post("/v2/bot/richmenu/{id}/content", self._richmenu_image)
        app.router.add_post("/v2/bot/user/all/richmenu/{id}", self._richmenu_default)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    async def _record(self, request: web.Request) -> tuple[Call, web.Response | None, bool]:
        data = None
        if request.content_type == "application/json" and request.can_read_body:
            data = await request.json()
        call = Call(request.method, request.path, dict(request.headers), data)
        self.calls.append(call)
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            call.status = 401
            return call, web.json_response({"message": "Authentication failed"}, status=401), False
        for i, (prefix, status, body, headers) in enumerate(self._failures):
            if request.path.startswith(prefix):
                del self._failures[i]
                call.status = status
                deliver = bool(headers.pop("x-deliver", None))
                return call, web.json_response(body, status=status, headers=headers), deliver
        return call, None, False

    def _accept(self, via: str, to: str, messages: list[dict], retry_key: str | None = None) -> list[dict]:
        out = []
        for m in messages:
            mid = str(next(self._ids))
            self.sent.append(Sent(via, to, m, mid, retry_key))
            out.append({"id": mid, "quoteToken": f"q{mid}"})
        return out

    async def _reply(self, request: web.Request) -> web.Response:
        call, failure, deliver = await self._record(request)
        body = call.json or {}
        token = body.get("replyToken")
        issued = self.reply_tokens.get(token)
        if failure is not None and not deliver:
            return failure
        if issued is None or token in self.used_tokens or self.clock() - issued[1] > REPLY_TOKEN_LIFETIME:
            call.status = 400
            return web.json_response({"message": "Invalid reply token"}, status=400)
        self.used_tokens.add(token)
        sent = self._accept("reply", issued[0], body.get("messages") or [])
        return failure if failure is not None else web.json_response({"sentMessages": sent})

    async def _push(self, request: web.Request) -> web.Response:
        call, failure, deliver = await self._record(request)
        body = call.json or {}
        key = request.headers.get("X-Line-Retry-Key")
        if key and key in self.retry_keys:
            call.status = 409
            return web.json_response(
                {"message": "The retry key is already accepted", "sentMessages": [{"id": i, "quoteToken": "q"} for i in self.retry_keys[key]]},
                status=409, headers={"x-line-accepted-request-id": "accepted-1"},
            )
        if failure is not None and not deliver:
            return failure
        sent = self._accept("push", body.get("to"), body.get("messages") or [], key)
        if key:
            self.retry_keys[key] = [s["id"] for s in sent]
        return failure if failure is not None else web.json_response({"sentMessages": sent})

    async def _content(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        if failure is not None:
            return failure
        data = self.contents.get(request.match_info["id"])
        if data is None:
            call.status = 404
            return web.json_response({"message": "Not found"}, status=404)
        return web.Response(body=data, content_type="image/jpeg")

    async def _loading(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        return failure if failure is not None else web.json_response({}, status=202)

    async def _member(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        if failure is not None:
            return failure
        user = request.match_info["user"]
        if user not in self.names:
            call.status = 404
            return web.json_response({"message": "Not found"}, status=404)
        return web.json_response({"displayName": self.names[user], "userId": user})

    async def _richmenu_create(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        if failure is not None:
            return failure
        rid = f"richmenu-{len(self.rich_menus) + 1:032x}"
        self.rich_menus[rid] = call.json or {}
        return web.json_response({"richMenuId": rid})

    async def _richmenu_validate(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        if failure is not None:
            return failure
        areas = (call.json or {}).get("areas") or []
        if not areas or len(areas) > 20:
            return web.json_response({"message": "invalid areas"}, status=400)
        return web.json_response({})

    async def _richmenu_list(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"richmenus": [{"richMenuId": k, **v} for k, v in self.rich_menus.items()]})

    async def _richmenu_delete(self, request: web.Request) -> web.Response:
        await self._record(request)
        self.rich_menus.pop(request.match_info["id"], None)
        return web.json_response({})

    async def _richmenu_image(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        if failure is not None:
            return failure
        rid = request.match_info["id"]
        if rid not in self.rich_menus:
            return web.json_response({"message": "Not found"}, status=404)
        self.rich_menu_images[rid] = (request.content_type, await request.read())
        return web.json_response({})

    async def _richmenu_default(self, request: web.Request) -> web.Response:
        call, failure, _ = await self._record(request)
        if failure is not None:
            return failure
        self.default_rich_menu = request.match_info["id"]
        return web.json_response({})


# ---------------------------------------------------------------- the app under test, driven like LINE

SECRET = "test-channel-secret"


class LineHarness:
    """The whole app on a loopback port with LINE pointed at a FakeLine."""

    def __init__(self, client, services, clock, fake: FakeLine):
        self.client, self.services, self.clock, self.fake = client, services, clock, fake

    async def post(self, *events: dict, signature: str | None = None, body: str | None = None):
        for ev in events:
            self.fake.issue(ev)
        raw = body if body is not None else body_of(*events)
        sig = signature if signature is not None else sign(SECRET, raw)
        return await self.client.post("/line/webhook", data=raw.encode(), headers={"X-Line-Signature": sig, "Content-Type": "application/json"})

    async def send(self, *events: dict) -> None:
        resp = await self.post(*events)
        assert resp.status == 200, await resp.text()
        await self.settle()

    async def settle(self, timeout: float = 10.0) -> None:
        """Waits (bounded) until every stored event is processed and the outbox has sent what is due."""
        import asyncio

        from sqlalchemy import func
        from sqlmodel import select

        from storage import repo
        from storage.models import InboxEvent

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if self.services.background:
                await asyncio.sleep(0.02)
                continue
            await self.services.outbox.deliver_due()
            async with self.services.db.session() as s:
                pending_in = (await s.exec(select(func.count()).select_from(InboxEvent).where(InboxEvent.status == "pending"))).one()
                counts = await repo.outbox_counts(s)
            if not pending_in and not counts.get("pending") and not self.services.background:
                return
            await asyncio.sleep(0.05)
        raise AssertionError("LINE harness did not settle")

    def user(self, user_id: str) -> "LineChat":
        return LineChat(self, user_id, None)

    def group(self, group_id: str, user_id: str) -> "LineChat":
        return LineChat(self, user_id, group_id)


class LineChat:
    """One person in one LINE chat (private, or a group when `group` is set)."""

    def __init__(self, h: LineHarness, user: str, group: str | None):
        self.h, self.user, self.group = h, user, group
        self.chat = group or user
        self.seen = len(h.fake.to(self.chat))

    def event(self, name: str, **changes) -> dict:
        return event_from(name, user=self.user, group=self.group, **changes)

    async def act(self, *events: dict) -> list[Sent]:
        await self.h.send(*events)
        return self.new()

    def new(self) -> list[Sent]:
        mine = self.h.fake.to(self.chat)
        out, self.seen = mine[self.seen:], len(mine)
        return out

    async def follow(self) -> str:
        return _joined(await self.act(self.event("follow")))

    async def text(self, text: str, **kw) -> str:
        return _joined(await self.act(self.event("text", text=text, **kw)))

    async def postback(self, data: str) -> str:
        """Presses a button: `data` as our buttons carry it, the question's number (`@N`) taken
        from the newest message of the chat that has such a button when not given."""
        return _joined(await self.act(self.event("postback_group", data=self.current(data))))

    def current(self, data: str) -> str:
        if "@" in data:
            return data
        for sent in reversed(self.h.fake.to(self.chat)):
            for d in _postback_data(sent.message):
                if d == data or d.startswith(data + "@"):
                    return d
        return data

    async def image(self, data: bytes, message_id: str | None = None) -> str:
        mid = message_id or f"img{next(_ids)}"
        self.h.fake.contents[mid] = data
        return _joined(await self.act(self.event("image", id=mid)))

    async def location(self, lat: float, lon: float, title: str = "Walking Street") -> str:
        return _joined(await self.act(self.event("location", latitude=lat, longitude=lon, title=title)))


def _postback_data(node) -> list[str]:
    """Every postback's data in a message (quick replies, Flex buttons), in order."""
    if isinstance(node, dict):
        found = [node["data"]] if node.get("type") == "postback" and "data" in node else []
        return found + [d for v in node.values() for d in _postback_data(v)]
    if isinstance(node, list):
        return [d for v in node for d in _postback_data(v)]
    return []


def _joined(sent: list[Sent]) -> str:
    return "\n---\n".join(s.text for s in sent)


def quick_replies(sent: Sent) -> list[dict]:
    return [i["action"] for i in ((sent.message.get("quickReply") or {}).get("items") or [])]


GROUP_FIXTURE_ID = "Ca56f94637c0123456789abcdef012345"  # the group of the group fixtures
