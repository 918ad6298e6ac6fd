"""What `namjai serve` leaves out at start: alembic on a database at the newest revision, the parts
of line-bot-sdk the bot does not use (handlers/line_sdk.py), rich and pygments (bot/cli.py)."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout


# ---------------------------------------------------------------- the schema's revision


def test_head_revision_read_from_the_files_is_alembics():
    from alembic.script import ScriptDirectory

    from storage.migrate import alembic_config, head_revision

    assert head_revision() == ScriptDirectory.from_config(alembic_config()).get_current_head()


async def test_at_head_after_upgrade_only(db_url):
    from storage.db import Database
    from storage.migrate import at_head, current, stored_revision, upgrade

    db = Database(db_url)
    try:
        if db.is_sqlite:  # a fresh file: no version table yet
            assert await stored_revision(db) is None and not await at_head(db)
            await upgrade(db, "0009")
            assert await stored_revision(db) == "0009" and not await at_head(db)
        await upgrade(db)
        assert await stored_revision(db) == await current(db)
        assert await at_head(db)
    finally:
        await db.dispose()


def test_prepare_database_on_a_migrated_database_does_not_import_alembic(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path}/namjai.db"
    out = run_python(f"""
        import asyncio, sys
        from bot.app import prepare_database
        from bot.settings import Settings
        from storage.db import Database

        async def start():
            db = Database({url!r})
            await prepare_database(db, Settings(database_url={url!r}, sandbox=False))
            await db.dispose()

        asyncio.run(start())  # the first start migrates
        print("first", "alembic" in sys.modules)
        for name in [m for m in sys.modules if m == "alembic" or m.startswith(("alembic.", "mako"))]:
            del sys.modules[name]
        asyncio.run(start())  # a restart finds the schema at head
        print("second", "alembic" in sys.modules)
    """)
    assert out.split() == ["first", "True", "second", "False"]


def test_a_database_behind_is_migrated_at_start(tmp_path):
    import asyncio

    from bot.app import prepare_database
    from bot.settings import Settings
    from storage.db import Database
    from storage.migrate import head_revision, stored_revision, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path}/namjai.db"

    async def go():
        db = Database(url)
        try:
            await upgrade(db, "0005")
            await prepare_database(db, Settings(database_url=url, sandbox=False))
            return await stored_revision(db)
        finally:
            await db.dispose()

    assert asyncio.run(go()) == head_revision()


# ---------------------------------------------------------------- line-bot-sdk, by the parts used


LAZY = ["linebot", "linebot.v3", "linebot.v3.messaging", "linebot.v3.messaging.api", "linebot.v3.messaging.models",
        "linebot.v3.webhooks", "linebot.v3.webhooks.models", "linebot.v3.models"]


def _exported(package: str) -> list[str]:
    path = Path(importlib.util.find_spec("linebot").origin).parent.joinpath(*package.split(".")[1:], "__init__.py")
    names = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom):
            names += [a.asname or a.name for a in node.names]
    return names


def test_the_lazy_packages_give_every_name_their_init_exports():
    """Each name of each package's __init__ resolves, to the object the eager package gives."""
    out = run_python(f"""
        import importlib, sys
        import handlers.line_sdk
        lazy = {{}}
        for pkg, names in {({p: _exported(p) for p in LAZY})!r}.items():
            m = importlib.import_module(pkg)
            lazy[pkg] = {{n: getattr(m, n) for n in names}}
        # the same objects as the SDK's own modules define
        bad = [(p, n) for p, got in lazy.items() for n, v in got.items()
               if getattr(v, "__module__", None) and not isinstance(v, str)
               and getattr(sys.modules[v.__module__], getattr(v, "__name__", n), None) is not v]
        print(sum(len(v) for v in lazy.values()), bad)
    """)
    count, bad = out.split(" ", 1)
    assert int(count) > 300 and bad.strip() == "[]"


def test_the_line_channel_loads_a_fraction_of_the_sdk():
    out = run_python("""
        import sys
        import handlers.line
        print(sum(1 for m in sys.modules if m.startswith("linebot")), "linebot.v3.messaging.api.messaging_api" in sys.modules)
    """)
    count, sync_api = out.split()
    assert int(count) < 200 and sync_api == "False"  # eager: 330 modules, the sync API among them


async def test_the_async_api_checks_its_arguments_on_first_call():
    import handlers.line_sdk  # noqa: F401
    from linebot.v3.messaging import AsyncApiClient, AsyncMessagingApi, Configuration
    from pydantic.v1 import ValidationError

    async with AsyncApiClient(Configuration(access_token="x", host="http://127.0.0.1:9")) as client:
        api = AsyncMessagingApi(client)
        with pytest.raises(ValidationError):
            api.push_message("not a PushMessageRequest")
        with pytest.raises(ValidationError):  # and again: the checking model is kept
            api.push_message(12)


# ---------------------------------------------------------------- rich and pygments


def test_serve_imports_its_libraries_without_rich():
    out = run_python("""
        import sys
        from bot import cli
        cli._import_libraries_lean()
        import bot.app, handlers.telegram, handlers.line
        import httpx, structlog.dev
        print("rich" in sys.modules, "pygments" in sys.modules, callable(httpx.main))
        # cryptography (installed here beside the test extras) stays out: python-telegram-bot
        # would import it for Telegram Passport only
        print(sys.modules.get("cryptography") is None, sys.modules.get("cryptography.fernet") is None)
        import rich  # still importable afterwards (typer's help)
        print(rich.__name__)
    """)
    assert out.split() == ["False", "False", "True", "True", "True", "rich"]


# ---------------------------------------------------------------- the neighbouring countries' mask


def test_the_neighbour_mask_is_built_when_a_point_is_in_no_subdistrict():
    from storage.boundaries import ADMIN_FILE, NEIGHBOURS_FILE, Boundaries

    b = Boundaries.from_files(ADMIN_FILE, NEIGHBOURS_FILE)
    assert b._mask is None
    assert b.locate(13.7563, 100.5018).province_code == "10"  # Bangkok: inside, no mask needed
    assert b._mask is None
    # Vientiane: 0.8 km from a Nong Khai subdistrict, so snapped to it but for the mask
    laos = b.locate(17.9667, 102.6000)
    assert not laos.inside and laos.province_code is None and not laos.snapped
    assert b._mask is not None and len(b._mask[0]) > 5
    assert b.locate(17.9667, 102.6000) == laos
    assert Boundaries.from_files(ADMIN_FILE, None).locate(17.9667, 102.6000).snapped  # without a mask
