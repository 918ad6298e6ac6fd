"""The sandbox is a development channel and never meets real data (issue 10), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import SERVICES, create_app
from bot.settings import ConfigError, Settings
from storage import repo
from storage.photos import PhotoMissing
from tests.fake_line import SECRET, FakeLine
from tests.test_e2e_sandbox import full_report

REPO = Path(__file__).resolve().parent.parent


def _line(**kw) -> Settings:
    return Settings(_env_file=None, line_channel_secret=SECRET, line_access_token="t0ken", **kw)


def test_sandbox_unset_is_on_only_without_a_real_channel():
    assert Settings(_env_file=None).sandbox is True
    assert Settings(_env_file=None, telegram_token="123:ABC", telegram_webhook_secret="s").sandbox is False
    assert _line().sandbox is False
    assert Settings(_env_file=None, line_access_token="only-the-token").sandbox is False  # any credential counts


@pytest.mark.parametrize("real", [
    dict(telegram_token="123:ABC", telegram_webhook_secret="s"),
    dict(line_channel_secret=SECRET, line_access_token="t0ken"),
], ids=["telegram", "line"])
def test_sandbox_on_with_a_real_channel_refuses_in_one_line(real):
    with pytest.raises(ConfigError) as e:
        create_app(Settings(_env_file=None, sandbox=True, **real))
    message = str(e.value)
    assert "\n" not in message and "NAMJAI_SANDBOX" in message and "real channel" in message


def test_serve_refuses_sandbox_with_telegram_in_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAMJAI_")}
    env.update({"NAMJAI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/n.db", "NAMJAI_SANDBOX": "true",
                "NAMJAI_TELEGRAM_TOKEN": "123:ABC", "NAMJAI_TELEGRAM_WEBHOOK_SECRET": "s3cret", "NAMJAI_SCHEDULER": "false",
                "PYTHONPATH": str(REPO), "NAMJAI_PORT": str(_free_port())})
    done = subprocess.run([sys.executable, "-c", "from bot.cli import main; main()", "serve"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: NAMJAI_SANDBOX is on together with a real channel (telegram)")
    assert not (tmp_path / "n.db").exists()  # refused before anything was created


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SANDBOX_ROUTES = [
    ("GET", "/"), ("GET", "/sandbox/"), ("GET", "/sandbox/static/sandbox.js"), ("GET", "/sandbox/api/teams"),
    ("GET", "/sandbox/api/chats/team-pcdp-10/messages"), ("GET", "/sandbox/photos/" + "a" * 64 + ".jpg?as=anyone"),
    ("GET", "/sandbox/api/provinces.geojson"), ("POST", "/sandbox/api/events"),
]


async def test_every_sandbox_route_is_404_beside_a_real_channel(line):
    """The issue's attack: with LINE configured and NAMJAI_SANDBOX left unset, no sandbox route answers."""
    assert line.services.settings.sandbox is False
    for method, path in SANDBOX_ROUTES:
        resp = await line.client.request(method, path, json={"chat": "team-pcdp-10", "type": "choice", "data": "r:1:close:shelter"})
        assert resp.status == 404, (method, path, resp.status)
    assert "sandbox" not in line.services.outbox.channels


async def _start(settings, clock):
    app = create_app(settings, clock=clock)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return app, server


async def test_a_database_that_held_real_channel_data_refuses_the_sandbox(db_url, tmp_path, clock):
    fake = await FakeLine(clock=lambda: clock().timestamp()).start()
    try:
        real = _line(database_url=db_url, photo_dir=str(tmp_path / "p"), line_api_host=fake.url, scheduler=False,
                     teams_file=str(REPO / "bot/data/teams/thailand.yaml"))
        real = real.model_copy(update={"line_access_token": real.line_access_token.__class__(fake.access_token)})
        app, server = await _start(real, clock)
        await server.close()
    finally:
        await fake.close()
    with pytest.raises(ConfigError) as e:
        app, server = await _start(Settings(_env_file=None, database_url=db_url, photo_dir=str(tmp_path / "p"), scheduler=False), clock)
        await server.close()
    assert "\n" not in str(e.value) and "this database has held real line data" in str(e.value)


async def test_a_real_platform_row_alone_refuses_the_sandbox(db, db_url, tmp_path, clock):
    """Even without the mark (a database from before it): one Telegram binding is enough."""
    app, server = await _start(Settings(_env_file=None, database_url=db_url, photo_dir=str(tmp_path / "p"), scheduler=False), clock)
    await server.close()  # a first sandbox start: the example teams
    async with db.transaction() as s:
        team = (await repo.teams_all(s))[0]
        await repo.bind_chat(s, "telegram", "-100123", team.id, "team", "th", clock())
    with pytest.raises(ConfigError, match="this database has held real telegram data"):
        app, server = await _start(Settings(_env_file=None, database_url=db_url, photo_dir=str(tmp_path / "p"), scheduler=False), clock)
        await server.close()


async def test_turning_the_sandbox_off_removes_its_chats_reports_and_photos(sandbox, db_url, tmp_path, clock):
    ref = await full_report(sandbox.volunteer("played"), photo=True)
    await sandbox.settle()
    svc = sandbox.services
    async with svc.db.session() as s:
        report = await repo.report_by_ref(s, ref)
        assert await repo.binding_for_chat(s, "sandbox", "team-pattaya-city") is not None
    key = report.photos[0]
    fake = await FakeLine(clock=lambda: clock().timestamp()).start()
    try:
        real = _line(database_url=db_url, photo_dir=str(tmp_path / "photos"), line_api_host=fake.url, scheduler=False)
        real = real.model_copy(update={"line_access_token": real.line_access_token.__class__(fake.access_token)})
        app, server = await _start(real, clock)
        try:
            svc2 = app[SERVICES]
            async with svc2.db.session() as s:
                assert "sandbox" not in await repo.platforms_seen(s)
                assert await repo.report_by_ref(s, ref) is None
            with pytest.raises(PhotoMissing):  # gone without a trace: nothing names it any more
                await svc2.photos.get(key)
            assert [p for p in (tmp_path / "photos").rglob("*") if p.is_file()] == []
        finally:
            await server.close()
    finally:
        await fake.close()


@pytest.mark.parametrize("setting,value", [("inbox_payload_hours", 48), ("photo_retention_days", 365),
                                           ("identity_retention_days", 3650), ("max_body_bytes", 100_000_000)])
def test_settings_that_break_the_privacy_notice_or_the_body_limit_refuse_to_start(setting, value):
    with pytest.raises(ConfigError) as e:
        create_app(Settings(_env_file=None, **{setting: value}))
    assert "\n" not in str(e.value) and f"NAMJAI_{setting.upper()}" in str(e.value)


def test_the_privacy_notice_states_the_limits_the_defaults_keep():
    from bot.i18n import text
    from flows.model import Msg

    s = Settings(_env_file=None)
    notice = text(Msg("consent.notice", {"version": "v"}), "en")
    assert s.inbox_payload_hours == 24 and "at most 1 day" in notice
    assert s.photo_retention_days == 90 and "90 days after it is closed" in notice
    assert s.identity_retention_days == 365 and "1 year after it is closed" in notice
    assert "after 24 hours without an answer" in notice  # bot/data/policy.yaml drafts.drop_after
    assert "we keep no photo or voice note" in notice and "delete everything you sent at once" in notice
