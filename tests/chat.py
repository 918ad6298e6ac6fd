"""Transcript-style helpers: a test plays a chat through the sandbox's JSON API, as a person would."""

from __future__ import annotations

import base64
import itertools
import re

_ids = itertools.count(1)


class Chat:
    def __init__(self, sandbox: "Sandbox", chat: str, user: str, group: bool = False, lang: str | None = None, name: str | None = None):
        self.sb = sandbox
        self.chat, self.user, self.group, self.lang, self.name = chat, user, group, lang, name
        self.seen = 0

    async def post(self, type: str, **fields) -> list[dict]:
        body = {"chat": self.chat, "user": self.user, "group": self.group, "type": type, "after": self.seen, **fields}
        if self.lang:
            body["lang"] = self.lang
        if self.name:
            body["user_name"] = self.name
        body.setdefault("event_id", f"t{next(_ids)}")
        resp = await self.sb.client.post("/sandbox/api/events", json=body)
        assert resp.status == 200, await resp.text()
        data = await resp.json()
        new = data["messages"]
        if new:
            self.seen = max(m["id"] for m in new)
        return new

    async def send(self, text: str, **kw) -> str:
        return joined(await self.post("text", text=text, **kw))

    async def choose(self, data: str) -> str:
        """Presses a button by its data; the question's number (`@N`) is taken from the newest
        message that has such a button when the test does not give it."""
        return joined(await self.post("choice", data=await self.current(data)))

    async def current(self, data: str) -> str:
        if "@" in data:
            return data
        for msg in reversed(await self.messages()):
            for row in msg.get("buttons") or []:
                for b in row:
                    if b["data"] == data or b["data"].startswith(data + "@"):
                        return b["data"]
        return data

    async def command(self, name: str, arg: str = "") -> str:
        return joined(await self.post("command", name=name, arg=arg))

    async def location(self, lat: float, lon: float) -> str:
        return joined(await self.post("location", lat=lat, lon=lon))

    async def photo(self, data: bytes) -> str:
        return joined(await self.post("photo", photo_base64=base64.b64encode(data).decode()))

    async def messages(self) -> list[dict]:
        resp = await self.sb.client.get(f"/sandbox/api/chats/{self.chat}/messages")
        assert resp.status == 200
        return (await resp.json())["messages"]

    async def tap(self, label: str) -> str:
        """Presses the newest button whose label contains `label`."""
        for msg in reversed(await self.messages()):
            for row in msg.get("buttons") or []:
                for b in row:
                    if label in b["label"]:
                        return await self.choose(b["data"])
        raise AssertionError(f"no button {label!r} in {self.chat}")

    async def card(self, ref: str) -> dict:
        """The report's card as it is now (its newest copy, if a fresh one was asked for)."""
        for msg in reversed(await self.messages()):
            if msg.get("card") and ref in msg["text"]:
                return msg
        raise AssertionError(f"no card {ref} in {self.chat}")


class Sandbox:
    def __init__(self, client, services, clock):
        self.client, self.services, self.clock = client, services, clock

    async def settle(self, timeout: float = 5.0) -> None:
        """Waits until the outbox has delivered everything due (bounded)."""
        import asyncio

        from storage import repo

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            await self.services.outbox.deliver_due()
            async with self.services.db.session() as s:
                if not (await repo.outbox_counts(s)).get("pending"):
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("outbox did not settle")

    def volunteer(self, name: str = "alice", lang: str | None = None) -> Chat:
        return Chat(self, f"u-{name}", name, lang=lang, name=name.title())

    def team(self, code: str, user: str = "somchai") -> Chat:
        return Chat(self, f"team-{code}", user, group=True, name=user.title())


def joined(messages: list[dict]) -> str:
    return "\n---\n".join(m["text"] for m in messages)


REF = re.compile(r"NJ-\d{4}-\d{6}")


def ref_in(text: str) -> str:
    m = REF.search(text)
    assert m, f"no reference number in {text!r}"
    return m.group(0)
