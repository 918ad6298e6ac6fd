"""Real processes for the multi-replica test and benchmark (no pytest here):

- a fresh PostgreSQL database of the run's own (created, migrated, teams imported, dropped);
- the fake Telegram and LINE platforms in a process of their own (tests/fake_platforms.py);
- an S3-compatible server (moto's server mode) with a bucket every replica shares;
- N `namjai serve` replicas, each on its own port, configured by environment variables only;
- haproxy in front (round robin, health check on /healthz), from a configuration written here;
- a sender that posts Telegram updates and LINE webhook bodies (signed) through haproxy and
  redelivers whatever was not answered 200, as the platforms do.

Everything listens on 127.0.0.1 only. `Cluster.close()` ends only the processes it started.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from tests.fake_line import body_of, event_from, sign

ROOT = Path(__file__).resolve().parent.parent
PG_DSN = os.environ.get("NAMJAI_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
TG_TOKEN = "123:ABC"
TG_SECRET = "cluster-webhook-secret"
LINE_SECRET = "cluster-channel-secret"
LINE_TOKEN = "test-access-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, data=None, timeout: float = 10.0):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read() or b"null")


def wait_for(check, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = check()
            if got:
                return got
        except Exception as e:  # not up yet
            last = e
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s ({last})")


async def pg_exec(sql: str, dsn: str = PG_DSN) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_available() -> str | None:
    """None when the PostgreSQL server answers, else why not."""
    try:
        asyncio.run(pg_exec("SELECT 1"))
    except Exception as e:
        return str(e)
    return None


@dataclass
class Replica:
    index: int
    port: int
    log: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    """The processes of one run. Use `start()`, then `close()` (also on failure)."""

    replicas: int = 3
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="namjai-cluster-")))
    env_extra: dict = field(default_factory=dict)
    log_level: str = "WARNING"
    s3: bool = True  # photos in a bucket of moto's S3 server; False: one folder the replicas share (one host)

    def __post_init__(self):
        self.db_name = f"namjai_cluster_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        base = PG_DSN.split("://", 1)[1].rsplit("/", 1)[0]
        self.db_url = f"postgresql+asyncpg://{base}/{self.db_name}"
        self.db_dsn = f"postgresql://{base}/{self.db_name}"
        self.procs: list[subprocess.Popen] = []
        self.nodes: list[Replica] = []
        self.fakes: dict = {}
        self.s3_env: dict = {}
        self.lb_port = free_port()
        self.haproxy: subprocess.Popen | None = None
        self._db_created = False
        self.forced_stops = 0  # SIGTERMs that needed a SIGKILL after `kill`'s wait

    # ------------------------------------------------------------ lifecycle

    def start(self, first: int | None = None) -> "Cluster":
        """Starts everything; with `first`, only that many replicas (`start_rest` the others)."""
        asyncio.run(pg_exec(f'CREATE DATABASE "{self.db_name}"'))
        self._db_created = True
        self.start_fakes()
        if self.s3:
            self.start_s3()
        else:
            self.s3_env = {"NAMJAI_PHOTO_DIR": str(self.workdir / "photos")}
        self.cli("db", "upgrade")
        self.cli("teams", "import", str(ROOT / "bot" / "data" / "teams" / "thailand.yaml"))
        self.nodes = [Replica(i, free_port(), self.workdir / f"replica{i}.log") for i in range(self.replicas)]
        for node in self.nodes[:first]:
            self.start_replica(node.index)
        for node in self.nodes[:first]:
            self.wait_healthy(node.index)
        self.start_haproxy()
        return self

    def start_rest(self) -> None:
        rest = [n for n in self.nodes if n.proc is None]
        for node in rest:
            self.start_replica(node.index)
        for node in rest:
            self.wait_healthy(node.index)
            self.wait_lb_sees(node.index)

    def close(self) -> None:
        for node in self.nodes:
            if node.proc and node.proc.poll() is None:
                node.proc.terminate()
        for p in [*(n.proc for n in self.nodes if n.proc), *self.procs]:
            if p.poll() is None:
                p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self._db_created:
            asyncio.run(pg_exec(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
            self._db_created = False

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    def _spawn(self, args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
        out = open(log, "ab")
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        return proc

    # ------------------------------------------------------------ the parts

    def start_fakes(self) -> None:
        port_file = self.workdir / "fakes.json"
        proc = self._spawn([sys.executable, "-m", "tests.fake_platforms", str(port_file)], self.workdir / "fakes.log")
        self.procs.append(proc)
        wait_for(lambda: port_file.exists(), 30, "fake platforms")
        self.fakes = json.loads(port_file.read_text())

    def start_s3(self) -> None:
        port = free_port()
        proc = self._spawn([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], self.workdir / "s3.log")
        self.procs.append(proc)
        endpoint = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2), 60, "moto S3 server")
        bucket = f"namjai-{uuid.uuid4().hex[:12]}"
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/{bucket}", method="PUT"), timeout=10)
        self.s3_env = {
            "NAMJAI_PHOTO_STORE": f"s3://{bucket}/photos", "NAMJAI_S3_ENDPOINT": endpoint, "NAMJAI_S3_REGION": "us-east-1",
            "NAMJAI_S3_ACCESS_KEY": "namjai-test", "NAMJAI_S3_SECRET_KEY": "namjai-test-secret",
        }

    def env(self, port: int | None = None) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NAMJAI_") and k != "DATABASE_URL"}
        env.update({
            "NAMJAI_DATABASE_URL": self.db_url, "NAMJAI_HOST": "127.0.0.1", "NAMJAI_PORT": str(port or 0),
            "NAMJAI_PUBLIC_URL": f"http://127.0.0.1:{self.lb_port}", "NAMJAI_SANDBOX": "false",
            "NAMJAI_TELEGRAM_TOKEN": TG_TOKEN, "NAMJAI_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "NAMJAI_TELEGRAM_API_BASE": self.fakes["telegram"],
            "NAMJAI_LINE_CHANNEL_SECRET": LINE_SECRET, "NAMJAI_LINE_ACCESS_TOKEN": LINE_TOKEN,
            "NAMJAI_LINE_API_HOST": self.fakes["line"], "NAMJAI_LOG_LEVEL": self.log_level, "NAMJAI_LOG_FORMAT": "json",
            "NAMJAI_SWEEP_SECONDS": "0.5", "NAMJAI_DB_POOL_SIZE": "10", "NAMJAI_DB_MAX_OVERFLOW": "2",
            **self.s3_env, **self.env_extra,
        })
        return env

    def cli(self, *args: str) -> str:
        out = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", *args], cwd=ROOT, env=self.env(),
                             capture_output=True, text=True, timeout=120)
        if out.returncode:
            raise RuntimeError(f"namjai {' '.join(args)}: {out.stderr[-2000:]}")
        return out.stdout

    def start_replica(self, i: int) -> None:
        node = self.nodes[i]
        node.proc = self._spawn([sys.executable, "-c", "from bot.cli import main; main()", "serve"], node.log, self.env(node.port))

    def healthy(self, i: int) -> bool:
        try:
            return http_json(self.nodes[i].url + "/healthz", timeout=2).get("ok") is True
        except Exception:
            return False

    def wait_healthy(self, i: int, timeout: float = 180) -> None:
        node = self.nodes[i]

        def up():
            if node.proc.poll() is not None:
                raise RuntimeError(f"replica {i} exited: {node.log.read_text()[-2000:]}")
            return self.healthy(i)

        try:
            wait_for(up, timeout, f"replica {i}")
        except RuntimeError as e:
            raise TimeoutError(str(e)) from None

    def kill(self, i: int, sig: int = signal.SIGKILL, wait: float = 90) -> None:
        """Signals replica i and waits for it to exit; a graceful stop (SIGTERM) that takes longer
        than `wait` is ended with SIGKILL, as Docker's stop_grace_period does (counted)."""
        proc = self.nodes[i].proc
        proc.send_signal(sig)
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.forced_stops += 1
            proc.kill()
            proc.wait(30)

    def restart(self, i: int, sig: int = signal.SIGTERM) -> None:
        """Stops replica i (SIGTERM: graceful; SIGKILL: a crash), starts it again, waits until healthy."""
        self.kill(i, sig)
        self.start_replica(i)
        self.wait_healthy(i)

    def rolling_restart(self, pause: float = 1.0) -> None:
        for node in self.nodes:
            self.restart(node.index, signal.SIGTERM)
            self.wait_lb_sees(node.index)
            time.sleep(pause)

    def wait_lb_sees(self, i: int, timeout: float = 20) -> None:
        """Until haproxy's health check has the replica back up (its stats socket)."""
        def up():
            out = subprocess.run(["sh", "-c", f"echo 'show stat' | socat stdio unix-connect:{self.workdir}/haproxy.sock"],
                                 capture_output=True, text=True, timeout=5)
            if out.returncode:  # no socat: wait two health-check intervals instead
                time.sleep(1.2)
                return True
            for line in out.stdout.splitlines():
                parts = line.split(",")
                if len(parts) > 17 and parts[0] == "replicas" and parts[1] == f"r{i}":
                    return parts[17] == "UP"
            return False

        wait_for(up, timeout, f"haproxy sees replica {i}")

    # ------------------------------------------------------------ haproxy

    def haproxy_config(self) -> str:
        servers = "\n".join(
            f"    server r{n.index} 127.0.0.1:{n.port} check inter 1s fall 3 rise 1" for n in self.nodes
        )
        return f"""global
    maxconn 2000
    stats socket {self.workdir}/haproxy.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout check 5s
    retries 2
    option redispatch
frontend webhooks
    bind 127.0.0.1:{self.lb_port}
    default_backend replicas
backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
{servers}
"""

    def start_haproxy(self) -> None:
        if HAPROXY is None:
            raise RuntimeError("haproxy is not installed (Debian: apt-get install haproxy)")
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(self.haproxy_config())
        check = subprocess.run([HAPROXY, "-c", "-f", str(cfg)], capture_output=True, text=True)
        if check.returncode:
            raise RuntimeError(f"haproxy configuration: {check.stdout}{check.stderr}")
        self.haproxy = self._spawn([HAPROXY, "-db", "-f", str(cfg)], self.workdir / "haproxy.log")
        self.procs.append(self.haproxy)
        wait_for(lambda: http_json(self.lb_url + "/healthz", timeout=2).get("ok"), 30, "haproxy")

    @property
    def lb_url(self) -> str:
        return f"http://127.0.0.1:{self.lb_port}"

    # ------------------------------------------------------------ what the fakes saw

    def telegram_calls(self, since: int = 0) -> list[dict]:
        return http_json(f"{self.fakes['control']}/telegram/calls?since={since}", timeout=30)

    def line_sent(self, since: int = 0) -> list[dict]:
        return http_json(f"{self.fakes['control']}/line/sent?since={since}", timeout=30)

    def line_calls(self, since: int = 0) -> list[dict]:
        return http_json(f"{self.fakes['control']}/line/calls?since={since}", timeout=30)

    # ------------------------------------------------------------ the database

    async def query(self, sql: str, *args):
        import asyncpg

        conn = await asyncpg.connect(self.db_dsn, timeout=5)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    async def create_invite(self, team: str) -> str:
        from bot.engine import Engine
        from storage.boundaries import Boundaries
        from storage.db import Database

        db = Database(self.db_url)
        try:
            return await Engine(db, boundaries=Boundaries.default()).create_invite(team)
        finally:
            await db.dispose()

    async def idle(self) -> bool:
        """Nothing pending anywhere: inbox and outbox both done (or failed)."""
        rows = await self.query(
            "SELECT (SELECT count(*) FROM inbox WHERE status = 'pending') AS i, (SELECT count(*) FROM outbox WHERE status = 'pending') AS o"
        )
        return rows[0]["i"] == 0 and rows[0]["o"] == 0


# ---------------------------------------------------------------- the platforms' side


_UPDATE_IDS = itertools.count(900_000_001)
_MESSAGE_IDS = itertools.count(1)
_CB_IDS = itertools.count(1)


@dataclass
class Sender:
    """Posts webhooks through the load balancer and redelivers until answered 200."""

    cluster: Cluster
    session: aiohttp.ClientSession
    redeliveries: int = 0
    posts: int = 0
    sent_at: dict = field(default_factory=dict)  # event key -> first post time (time.time())

    def __post_init__(self):
        # shared by every sender of this process: a second sender on the same cluster (the
        # benchmark's rounds) must not repeat update ids, which the bot would take as redeliveries
        self._update_ids, self._message_ids, self._cb_ids = _UPDATE_IDS, _MESSAGE_IDS, _CB_IDS

    async def _post(self, path: str, data: bytes, headers: dict, key: str, url: str | None = None) -> None:
        url = (url or self.cluster.lb_url) + path
        self.sent_at.setdefault(key, time.time())
        delay = 0.1
        for attempt in range(400):
            self.posts += 1
            if attempt:
                self.redeliveries += 1
            try:
                async with self.session.post(url, data=data, headers=headers, timeout=aiohttp.ClientTimeout(total=20)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        raise RuntimeError(f"{path}: never answered 200")

    # ---- Telegram

    async def telegram(self, update: dict, url: str | None = None) -> None:
        await self._post("/telegram/webhook", json.dumps(update).encode(),
                         {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"},
                         f"tg:{update['update_id']}", url)

    def tg_message(self, chat: int, user: dict, **content) -> dict:
        chat_obj = {"id": chat, "type": "private", "first_name": "V"} if chat > 0 else {"id": chat, "type": "supergroup", "title": "G"}
        return {"update_id": next(self._update_ids),
                "message": {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat_obj, "from": user, **content}}

    def tg_press(self, chat: int, user: dict, data: str, message_id: int = 1) -> dict:
        chat_obj = {"id": chat, "type": "private", "first_name": "V"} if chat > 0 else {"id": chat, "type": "supergroup", "title": "G"}
        msg = {"message_id": message_id, "date": int(time.time()), "chat": chat_obj,
               "from": {"id": 123, "is_bot": True, "first_name": "Namjai", "username": "namjai_test_bot"}, "text": "…"}
        return {"update_id": next(self._update_ids),
                "callback_query": {"id": f"cbq{next(self._cb_ids)}", "from": user, "chat_instance": "ci", "data": data, "message": msg}}

    async def tg_file(self, file_id: str, data: bytes) -> None:
        async with self.session.post(f"{self.cluster.fakes['control']}/telegram/files", json={file_id: base64.b64encode(data).decode()}) as r:
            assert r.status == 200

    # ---- LINE

    async def line(self, *events: dict, url: str | None = None) -> None:
        async with self.session.post(f"{self.cluster.fakes['control']}/line/issue", json={"events": list(events)}) as r:
            assert r.status == 200
        raw = body_of(*events)
        await self._post("/line/webhook", raw.encode(), {"X-Line-Signature": sign(LINE_SECRET, raw), "Content-Type": "application/json"},
                         "line:" + events[0]["webhookEventId"], url)

    async def line_content(self, message_id: str, data: bytes) -> None:
        async with self.session.post(f"{self.cluster.fakes['control']}/line/contents", json={message_id: base64.b64encode(data).decode()}) as r:
            assert r.status == 200

    @staticmethod
    def line_event(name: str, **kw) -> dict:
        return event_from(name, **kw)
