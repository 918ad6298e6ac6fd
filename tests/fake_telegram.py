"""A fake Telegram Bot API on 127.0.0.1 (random port): enough of it for python-telegram-bot.

It records every call (method, params, whether it succeeded), answers with proper
`{"ok": true, "result": ...}` objects (Messages with increasing message_id), keeps the messages it
"sent" so edits behave like Telegram's (not modified, no text to edit), serves files, and can be
told to fail the next N calls with 429 (parameters.retry_after) or 500.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

BOT_ID = 123
BOT_USERNAME = "namjai_test_bot"


@dataclass
class Call:
    method: str
    params: dict
    ok: bool


@dataclass
class Failure:
    remaining: int
    status: int
    retry_after: int | None
    methods: frozenset[str] | None


@dataclass
class FakeTelegram:
    token: str = "123:ABC"
    calls: list[Call] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    updates: list[dict] = field(default_factory=list)
    messages: dict[tuple[int, int], dict] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    keyboards: dict[int, dict | None] = field(default_factory=dict)  # the last reply_markup sent to each chat
    url: str = ""

    def __post_init__(self):
        self._ids = itertools.count(1000)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------ control

    def fail_next(self, n: int, status: int = 429, retry_after: int | None = 1, methods=None) -> None:
        """The next `n` calls (of `methods`, or any) answer `status` (429 carries retry_after)."""
        self.failures.append(Failure(n, status, retry_after if status == 429 else None, frozenset(methods) if methods else None))

    def add_file(self, file_id: str, data: bytes) -> None:
        self.files[file_id] = data

    def sent(self, method: str | None = None, ok: bool = True) -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method) and c.ok == ok]

    def texts(self, chat_id: int | str) -> list[str]:
        """Texts and captions successfully sent to a chat, in order."""
        out = []
        for c in self.sent():
            if c.method in ("sendMessage", "sendPhoto") and str(c.params.get("chat_id")) == str(chat_id):
                out.append(c.params.get("text") or c.params.get("caption") or "")
        return out

    # ------------------------------------------------------------ server

    async def start(self) -> "FakeTelegram":
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._api)
        app.router.add_get("/file/bot{token}/{path:.+}", self._file)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    async def _params(self, request: web.Request) -> dict:
        params: dict = dict(request.query)
        if request.content_type == "application/json":
            params.update(await request.json())
        elif request.can_read_body:
            form = await request.post()
            for k, v in form.items():
                if hasattr(v, "file"):
                    data = v.file.read()
                    params[k] = {"filename": v.filename, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                else:
                    params[k] = v
        for k in ("reply_markup", "allowed_updates", "commands", "scope", "media", "reply_parameters"):
            if isinstance(params.get(k), str):
                params[k] = json.loads(params[k])
        return params

    def _failure(self, method: str) -> Failure | None:
        for f in self.failures:
            if f.remaining > 0 and (f.methods is None or method in f.methods):
                f.remaining -= 1
                return f
        return None

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await self._params(request)
        failure = self._failure(method)
        if failure is not None:
            self.calls.append(Call(method, params, False))
            if failure.status == 429:
                body = {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {failure.retry_after}",
                        "parameters": {"retry_after": failure.retry_after}}
            else:
                body = {"ok": False, "error_code": failure.status, "description": "Internal Server Error"}
            return web.json_response(body, status=failure.status)
        handler = getattr(self, "m_" + method, None)
        if handler is None:
            self.calls.append(Call(method, params, False))
            return web.json_response({"ok": False, "error_code": 404, "description": "Not Found: method not found"}, status=404)
        try:
            result = await handler(params)
        except BadRequest as e:
            self.calls.append(Call(method, params, False))
            return web.json_response({"ok": False, "error_code": 400, "description": f"Bad Request: {e}"}, status=400)
        self.calls.append(Call(method, params, True))
        return web.json_response({"ok": True, "result": result})

    async def _file(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            raise web.HTTPUnauthorized()
        file_id = request.match_info["path"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        if file_id not in self.files:
            raise web.HTTPNotFound()
        return web.Response(body=self.files[file_id], content_type="application/octet-stream")

    # ------------------------------------------------------------ methods

    def _chat(self, chat_id) -> dict:
        cid = int(chat_id)
        return {"id": cid, "type": "private", "first_name": "V"} if cid > 0 else {"id": cid, "type": "supergroup", "title": "Team"}

    def _message(self, params: dict, **content) -> dict:
        mid = next(self._ids)
        msg = {"message_id": mid, "date": int(time.time()), "chat": self._chat(params["chat_id"]),
               "from": {"id": BOT_ID, "is_bot": True, "first_name": "Namjai", "username": BOT_USERNAME}, **content}
        if (params.get("reply_markup") or {}).get("inline_keyboard"):  # Telegram echoes inline keyboards only
            msg["reply_markup"] = params["reply_markup"]
        self.keyboards[int(params["chat_id"])] = params.get("reply_markup")
        self.messages[(int(params["chat_id"]), mid)] = msg
        return msg

    def _find(self, params: dict) -> dict:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self.messages:
            raise BadRequest("message to edit not found")
        return self.messages[key]

    async def m_getMe(self, p):
        return {"id": BOT_ID, "is_bot": True, "first_name": "Namjai", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def m_sendMessage(self, p):
        if not p.get("text"):
            raise BadRequest("message text is empty")
        return self._message(p, text=p["text"])

    async def m_sendPhoto(self, p):
        photo = [{"file_id": f"sent{next(self._ids)}", "file_unique_id": "u", "width": 640, "height": 480}]
        content = {"photo": photo}
        if p.get("caption"):
            content["caption"] = p["caption"]
        return self._message(p, **content)

    async def m_sendMediaGroup(self, p):
        media = p.get("media") or []
        if not 2 <= len(media) <= 10:
            raise BadRequest("wrong number of media in the album")
        out = []
        for item in media:
            ref = str(item.get("media", ""))
            attached = p.get(ref[len("attach://"):]) if ref.startswith("attach://") else None
            if ref.startswith("attach://") and not isinstance(attached, dict):
                raise BadRequest("file of the album not attached")
            photo = [{"file_id": f"sent{next(self._ids)}", "file_unique_id": "u", "width": 640, "height": 480}]
            out.append(self._message(p, photo=photo, media_group_id="g1"))
        return out

    async def m_sendVoice(self, p):
        if not isinstance(p.get("voice"), (dict, str)):
            raise BadRequest("voice file is required")
        return self._message(p, voice={"file_id": f"sent{next(self._ids)}", "file_unique_id": "u", "duration": 1})

    async def m_sendLocation(self, p):
        return self._message(p, location={"latitude": float(p["latitude"]), "longitude": float(p["longitude"])})

    async def m_editMessageText(self, p):
        msg = self._find(p)
        if "text" not in msg:
            raise BadRequest("there is no text in the message to edit")
        if msg["text"] == p["text"] and msg.get("reply_markup") == p.get("reply_markup"):
            raise BadRequest("message is not modified: specified new message content and reply markup are exactly the same")
        msg["text"], msg["reply_markup"] = p["text"], p.get("reply_markup")
        return msg

    async def m_editMessageCaption(self, p):
        msg = self._find(p)
        if "photo" not in msg:
            raise BadRequest("there is no caption in the message to edit")
        if msg.get("caption") == p.get("caption") and msg.get("reply_markup") == p.get("reply_markup"):
            raise BadRequest("message is not modified: specified new message content and reply markup are exactly the same")
        msg["caption"], msg["reply_markup"] = p.get("caption"), p.get("reply_markup")
        return msg

    async def m_editMessageReplyMarkup(self, p):
        msg = self._find(p)
        msg["reply_markup"] = p.get("reply_markup")
        return msg

    async def m_answerCallbackQuery(self, p):
        return True

    async def m_setWebhook(self, p):
        return True

    async def m_deleteWebhook(self, p):
        return True

    async def m_setMyCommands(self, p):
        return True

    async def m_getFile(self, p):
        file_id = p["file_id"]
        if file_id not in self.files:
            raise BadRequest("invalid file_id")
        return {"file_id": file_id, "file_unique_id": "u" + file_id, "file_size": len(self.files[file_id]),
                "file_path": f"photos/{file_id}.jpg"}

    async def m_getUpdates(self, p):
        offset = int(p.get("offset") or 0)
        deadline = time.monotonic() + min(float(p.get("timeout") or 0), 0.5)
        while True:
            out = [u for u in self.updates if u["update_id"] >= offset]
            if out or time.monotonic() >= deadline:
                return out
            await asyncio.sleep(0.02)


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------- driving the app like Telegram would


class TelegramHarness:
    """Posts Updates to the app's webhook as Telegram would, and waits (bounded) for the work."""

    def __init__(self, client, services, fake: FakeTelegram, clock, secret: str = "s3cret"):
        self.client, self.services, self.fake, self.clock, self.secret = client, services, fake, clock, secret
        self._update_ids = itertools.count(700_000_001)
        self._cb_ids = itertools.count(1)

    async def post(self, update: dict, secret: str | None = "default") -> int:
        headers = {}
        secret = self.secret if secret == "default" else secret
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        resp = await self.client.post("/telegram/webhook", json=update, headers=headers)
        await resp.read()
        return resp.status

    def update(self, **body) -> dict:
        return {"update_id": next(self._update_ids), **body}

    @staticmethod
    def user(uid: int, name: str = "Malee", lang: str = "th") -> dict:
        return {"id": uid, "is_bot": False, "first_name": name, "language_code": lang}

    @staticmethod
    def chat(cid: int) -> dict:
        return {"id": cid, "type": "private", "first_name": "V"} if cid > 0 else {"id": cid, "type": "supergroup", "title": "G"}

    def message(self, chat_id: int, user: dict, **content) -> dict:
        return self.update(message={"message_id": next(self.fake._ids), "date": int(time.time()), "chat": self.chat(chat_id), "from": user, **content})

    async def send(self, chat_id: int, user: dict, **content) -> list[str]:
        """Posts a message, waits for the bot, returns the texts the chat received meanwhile."""
        before = len(self.fake.texts(chat_id))
        assert await self.post(self.message(chat_id, user, **content)) == 200
        await self.settle()
        return self.fake.texts(chat_id)[before:]

    def button_message(self, chat_id: int, data: str) -> dict:
        """The newest message of a chat that carries a button with this callback data."""
        for (cid, _), msg in sorted(self.fake.messages.items(), key=lambda kv: kv[0][1], reverse=True):
            if cid != int(chat_id):
                continue
            for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []):
                if any(b.get("callback_data") == data for b in row):
                    return msg
        raise AssertionError(f"no button {data!r} in chat {chat_id}")

    def current(self, chat_id: int, data: str) -> str:
        """`data` as the newest button of the chat carries it: with the question's number (`@N`)
        added when the test did not give it."""
        if "@" in data:
            return data
        for (cid, _), msg in sorted(self.fake.messages.items(), key=lambda kv: kv[0][1], reverse=True):
            if cid != int(chat_id):
                continue
            for row in (msg.get("reply_markup") or {}).get("inline_keyboard", []):
                for b in row:
                    d = b.get("callback_data") or ""
                    if d == data or d.startswith(data + "@"):
                        return d
        return data

    async def press(self, chat_id: int, user: dict, data: str, message: dict | None = None) -> list[str]:
        data = self.current(chat_id, data)
        message = message or self.button_message(chat_id, data)
        before = len(self.fake.texts(chat_id))
        q = {"id": f"cbq{next(self._cb_ids)}", "from": user, "chat_instance": "ci", "data": data, "message": message}
        assert await self.post(self.update(callback_query=q)) == 200
        await self.settle()
        return self.fake.texts(chat_id)[before:]

    async def settle(self, timeout: float = 10.0, advance: bool = False) -> None:
        """Waits until background processing is done and the outbox has nothing due; with
        `advance`, moves the manual clock to deferred rows so that they become due."""
        import sqlalchemy as sa

        from storage.models import OutboxMessage

        svc = self.services
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            if svc.background:
                await asyncio.wait(list(svc.background), timeout=max(0.01, deadline - loop.time()))
                continue
            await svc.outbox.deliver_due()
            async with svc.db.session() as s:
                rows = (await s.exec(
                    sa.select(OutboxMessage.chat_id, OutboxMessage.next_attempt_at).where(OutboxMessage.status == "pending").order_by(OutboxMessage.id)
                )).all()
            if not rows and not svc.background:
                return
            heads: dict = {}
            for chat, at in rows:  # a chat's oldest row goes first: the rest wait for it
                heads.setdefault(chat, at)
            due = [at for at in heads.values() if at <= self.clock()]
            if not due:
                if not advance:
                    return  # what is left waits for its time (throttled, backing off)
                self.clock.now = max(self.clock.now, min(heads.values()))
            await asyncio.sleep(0.02)
        async with svc.db.session() as s:
            left = (await s.exec(sa.select(OutboxMessage.id, OutboxMessage.next_attempt_at, OutboxMessage.attempts, OutboxMessage.last_error, OutboxMessage.claimed_until).where(OutboxMessage.status == "pending"))).all()
        raise AssertionError(f"Telegram outbox did not settle: now {self.clock()}, background {len(svc.background)}, pending {left}")
