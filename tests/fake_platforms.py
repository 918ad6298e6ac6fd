"""The fake Telegram Bot API and the fake LINE platform in a process of their own, so that they
outlive the replicas a test kills: `python -m tests.fake_platforms PORT_FILE`.

It starts tests/fake_telegram.py's FakeTelegram and tests/fake_line.py's FakeLine on free loopback
ports, stamps every message they accept with the time it arrived (time.time(), the same clock in
every process of the machine), and serves a small control API on a third port:

  GET  /info                      {"telegram": url, "line": url, "token": …, "line_token": …}
  GET  /telegram/calls?since=N    calls from index N: {i, t, method, chat, ok, text, message_id, markup}
  GET  /line/sent?since=N         accepted LINE messages from index N: {i, t, via, to, type, text, postbacks}
  GET  /line/calls?since=N        LINE calls (path, status) from index N
  POST /telegram/files            {"file_id": data_base64, …}
  POST /line/contents             {"message_id": data_base64, …}
  POST /line/issue                {"events": […]}: registers their reply tokens as LINE issued them

The three URLs are written as JSON to PORT_FILE once everything listens. It imports no pytest.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from tests.fake_line import FakeLine, flex_postbacks
from tests.fake_telegram import FakeTelegram

MESSAGE_METHODS = ("sendMessage", "sendPhoto", "sendLocation", "editMessageText", "editMessageCaption", "editMessageReplyMarkup")


class StampedTelegram(FakeTelegram):
    """FakeTelegram that keeps, per call, when it was answered and the message it made."""

    def __post_init__(self):
        super().__post_init__()
        self.stamps: list[float] = []
        self.results: list[int | None] = []
        self._last_mid: int | None = None

    def _message(self, params, **content):
        msg = super()._message(params, **content)
        self._last_mid = msg["message_id"]
        return msg

    async def _api(self, request):
        resp = await super()._api(request)
        while len(self.stamps) < len(self.calls):  # no await since the call was appended
            self.stamps.append(time.time())
            c = self.calls[len(self.results)]
            mid = c.params.get("message_id")
            if c.ok and c.method.startswith("send"):
                mid = self._last_mid
            self.results.append(int(mid) if mid not in (None, "") else None)
        return resp


@dataclass
class StampedLine(FakeLine):
    stamps: list[float] = field(default_factory=list)

    def _accept(self, via, to, messages, retry_key=None):
        out = super()._accept(via, to, messages, retry_key)
        while len(self.stamps) < len(self.sent):
            self.stamps.append(time.time())
        return out


def control_app(tg: StampedTelegram, line: StampedLine) -> web.Application:
    async def info(request):
        return web.json_response({"telegram": tg.url, "line": line.url, "token": tg.token, "line_token": line.access_token})

    async def tg_calls(request):
        since = int(request.query.get("since", 0))
        out = []
        for i in range(since, len(tg.stamps)):
            c = tg.calls[i]
            p = c.params
            out.append({
                "i": i, "t": tg.stamps[i], "method": c.method, "ok": c.ok,
                "chat": str(p.get("chat_id")) if p.get("chat_id") is not None else None,
                "text": p.get("text") or p.get("caption") or "", "message_id": tg.results[i],
                "markup": p.get("reply_markup") if isinstance(p.get("reply_markup"), dict) else None,
                "callback_query_id": p.get("callback_query_id"),
            })
        return web.json_response(out)

    async def line_sent(request):
        since = int(request.query.get("since", 0))
        out = []
        for i in range(since, len(line.stamps)):
            s = line.sent[i]
            out.append({"i": i, "t": line.stamps[i], "via": s.via, "to": s.to, "type": s.message.get("type"), "text": s.text,
                        "postbacks": flex_postbacks(s.message) if s.message.get("type") == "flex" else []})
        return web.json_response(out)

    async def line_calls(request):
        since = int(request.query.get("since", 0))
        return web.json_response([{"i": i, "path": c.path, "status": c.status} for i, c in enumerate(line.calls[since:], since)])

    async def tg_files(request):
        for k, v in (await request.json()).items():
            tg.add_file(k, base64.b64decode(v))
        return web.json_response({"ok": True})

    async def line_contents(request):
        for k, v in (await request.json()).items():
            line.contents[k] = base64.b64decode(v)
        return web.json_response({"ok": True})

    async def line_issue(request):
        for ev in (await request.json())["events"]:
            line.issue(ev)
        return web.json_response({"ok": True})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_get("/info", info)
    app.router.add_get("/telegram/calls", tg_calls)
    app.router.add_get("/line/sent", line_sent)
    app.router.add_get("/line/calls", line_calls)
    app.router.add_post("/telegram/files", tg_files)
    app.router.add_post("/line/contents", line_contents)
    app.router.add_post("/line/issue", line_issue)
    return app


async def main(port_file: str) -> None:
    tg = await StampedTelegram().start()
    line = await StampedLine(clock=time.time).start()
    runner = web.AppRunner(control_app(tg, line), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    tmp = Path(port_file + ".tmp")
    tmp.write_text(json.dumps({"control": f"http://127.0.0.1:{port}", "telegram": tg.url, "line": line.url}))
    tmp.rename(port_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    await tg.stop()
    await line.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
