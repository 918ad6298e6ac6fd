"""`namjai`: the operator's command line. Each command is a thin wrapper over a testable module."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Optional

import typer


# Optional imports of libraries the server uses, not wanted by it: structlog formats exceptions
# with rich when it can (ours never reach that formatter: bot/logging.py renders them itself) and
# httpx (python-telegram-bot's client) loads its command-line client, rich and pygments. Together
# 5 MiB and 0.1 s at the server's start; typer still imports rich when it prints help or an error.
_NOT_FOR_LIBRARIES = ("rich", "pygments")
# Not a dependency of ours, but installed beside us by other packages (the test extras' moto):
# python-telegram-bot imports it when it can, for Telegram Passport, which the server never uses.
# About 7 MiB resident and 0.1 s (measured on 3 Dec); kept out for the server's whole life, so
# that it runs as it does where only our own dependencies are installed.
_NOT_FOR_THE_SERVER = ("cryptography",)


def _import_libraries_lean() -> None:
    for name in _NOT_FOR_THE_SERVER:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]  (an ImportError for `import cryptography`)
    if any(name in sys.modules for name in (*_NOT_FOR_LIBRARIES, "structlog", "httpx")):
        return
    for name in _NOT_FOR_LIBRARIES:
        sys.modules[name] = None  # type: ignore[assignment]  (an ImportError for `import rich`)
    try:
        import httpx  # noqa: F401
        import structlog  # noqa: F401
    finally:
        for name in _NOT_FOR_LIBRARIES:
            del sys.modules[name]


app = typer.Typer(help="Namjai: reports of destitute persons from volunteers to the responsible team.", no_args_is_help=True, rich_markup_mode="markdown")
db_app = typer.Typer(help="Database schema.", no_args_is_help=True, rich_markup_mode="markdown")
teams_app = typer.Typer(help="Teams, their areas and their group chats.", no_args_is_help=True, rich_markup_mode="markdown")
app.add_typer(db_app, name="db")
app.add_typer(teams_app, name="teams")


def _settings():
    from bot.logging import setup
    from bot.settings import Settings

    settings = Settings()
    setup(settings.log_level, settings.log_format)
    return settings


def _db():
    from storage.db import Database

    return Database(_settings().database_url)


def _run(coro_fn):
    """Runs `coro_fn(db)` and disposes the engine."""
    db = _db()

    async def main():
        try:
            return await coro_fn(db)
        finally:
            await db.dispose()

    return asyncio.run(main())


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"namjai {version('namjai')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Namjai: reports of destitute persons from volunteers to the responsible team."""


def _where_data_lives(settings) -> list[str]:
    """Where this process keeps its data, as the operator would look for it."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        db = str(Path(url.database or "").resolve()) if url.database else "in memory"
    else:
        db = url.render_as_string(hide_password=True)
    photos = settings.photo_store or str(Path(settings.photo_dir).resolve())
    return [f"database: {db}", f"photos:   {photos}"]


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Address to listen on (default NAMJAI_HOST, else 127.0.0.1)."),
    port: Optional[int] = typer.Option(None, help="Port to listen on (default NAMJAI_PORT, else 8080)."),
) -> None:
    """Starts the bot (web sandbox, webhooks, delivery, scheduler) on NAMJAI_HOST:NAMJAI_PORT."""
    _import_libraries_lean()
    import errno
    import socket

    from aiohttp import web

    from bot.app import create_app
    from bot.settings import ConfigError
    from storage.photos import PhotoStoreError, open_store

    settings = _settings()
    host = host or settings.host
    port = settings.port if port is None else port
    update = {"host": host, "port": port}
    if "public_url" not in settings.model_fields_set:
        update["public_url"] = f"http://{host}:{port}"
    settings = settings.model_copy(update=update)
    try:
        # Bind first: a taken port is one line, before anything else starts.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as e:
        sock.close()
        why = "is already in use (another namjai, or another program?)" if e.errno == errno.EADDRINUSE else f"cannot be opened: {e.strerror}"
        typer.echo(f"error: {host}:{port} {why}; choose another with --port or NAMJAI_PORT", err=True)
        raise typer.Exit(2)
    try:
        open_store(settings)  # bad photo store settings: one line, before anything starts
        typer.echo(f"Namjai on http://{host}:{port}/" + (" (sandbox at /sandbox/)" if settings.sandbox else ""))
        for line in _where_data_lives(settings):
            typer.echo(f"  {line}")
        from bot.logging import access_logger

        web.run_app(create_app(settings), sock=sock, print=None, access_log_class=access_logger(settings.log_remote_addr))
    except (PhotoStoreError, ConfigError) as e:  # also a store that does not answer at start-up (its check)
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    finally:
        sock.close()


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Applies the migrations up to REVISION."""
    from storage.migrate import current, upgrade

    async def go(db):
        await upgrade(db, revision)
        return await current(db)

    typer.echo(f"schema at {_run(go)}")


@db_app.command("current")
def db_current() -> None:
    """Prints the schema revision of the database."""
    from storage.migrate import current

    typer.echo(_run(current) or "empty")


@teams_app.command("import")
def teams_import(file: Path) -> None:
    """Creates or updates the teams of a YAML FILE (see bot/data/teams/README.md)."""
    from bot.teams import TeamFileError, import_teams
    from storage.migrate import upgrade

    async def go(db):
        if db.is_sqlite:
            await upgrade(db)
        return await import_teams(db, file)

    try:
        created, updated = _run(go)
    except (TeamFileError, FileNotFoundError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{created} teams created, {updated} updated")


KIND_NAMES = {"national": "national", "provincial_centre": "provincial centre", "municipality": "municipality"}


@teams_app.command("list")
def teams_list() -> None:
    """Lists the teams, the provinces they serve and their bound chats."""
    from storage import repo
    from storage.migrate import upgrade

    async def go(db):
        from bot.app import teams_without_chat

        if db.is_sqlite:
            await upgrade(db)
        rows = []
        async with db.session() as s:
            for t in await repo.teams_all(s, active_only=False):
                chats = await repo.bindings_for_team(s, t.id, ("team", "supervisors", "director"))
                rows.append((t, len(chats)))
            unreachable = await teams_without_chat(s)
        return rows, unreachable

    rows, unreachable = _run(go)
    if not rows:
        typer.echo("no teams yet: `namjai teams import FILE` (see bot/data/teams/README.md)")
        return
    # GOES-TO: where a team's reports go when it has no team chat (up the chain; NOBODY: the
    # reporter is given the hotline); "-" when it has its own
    table = [("CODE", "KIND", "PROVINCES", "AREA", "CHATS", "GOES-TO", "NAME")]
    for t, chats in rows:
        area = ", ".join(filter(None, ["own area" if t.area else "", ",".join(t.area_codes or []), "fallback" if t.fallback else ""]))
        kind = KIND_NAMES.get(t.kind, t.kind) + ("" if t.active else " (inactive)")
        goes = "-" if t.code not in unreachable else (unreachable[t.code] or "NOBODY")
        table.append((t.code, kind, ",".join(t.provinces or []) or "-", area or "-", str(chats), goes, t.name_th))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


@teams_app.command("invite")
def teams_invite(team: str, role: str = typer.Option("team", help="team | supervisors | director"), days: int = 7) -> None:
    """Prints a one-time code; sending `/bind CODE` in a group chat binds that group to TEAM."""
    from datetime import timedelta

    from bot.engine import Engine

    if role not in ("team", "supervisors", "director"):
        typer.echo("error: role must be team, supervisors or director", err=True)
        raise typer.Exit(2)

    async def go(db):
        from storage.boundaries import Boundaries

        return await Engine(db, boundaries=Boundaries.default()).create_invite(team, role, timedelta(days=days))

    try:
        code = _run(go)
    except KeyError:
        typer.echo(f"error: no team {team!r} (see `namjai teams list`)", err=True)
        raise typer.Exit(2)
    typer.echo(f"Send this line in the {role} group chat within {days} days:\n/bind {code}")


@teams_app.command("grant")
def teams_grant(team: str, user: str, role: str = typer.Argument(..., help="staff | supervisor | admin")) -> None:
    """Gives USER (`telegram:123`, `line:U…`, `sandbox:alice`) a ROLE in TEAM."""
    from storage import repo

    if role not in ("staff", "supervisor", "admin") or ":" not in user:
        typer.echo("error: USER is platform:id and ROLE is staff, supervisor or admin", err=True)
        raise typer.Exit(2)
    platform, user_id = user.split(":", 1)

    async def go(db):
        async with db.transaction() as s:
            t = await repo.team_by_code(s, team)
            if t is None:
                return False
            await repo.member_set(s, t.id, platform, user_id, role)
            return True

    if not _run(go):
        typer.echo(f"error: no team {team!r}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{user} is {role} of {team}")


@app.command()
def locate(
    lat: Optional[float] = typer.Argument(None),
    lon: Optional[float] = typer.Argument(None),
    csv_file: Optional[Path] = typer.Option(None, "--csv", help="a file of lat,lon rows"),
    out: Optional[Path] = typer.Option(None, "--out", help="where to write the CSV (default: standard output)"),
    teams_file: Optional[Path] = typer.Option(None, "--teams", help="teams YAML (default: the database's teams, else the example)"),
) -> None:
    """Prints the province, district and team for a point, or for each row of a CSV file."""
    from bot.locate import Locator

    locator = Locator.from_teams_file(teams_file) if teams_file else _run(Locator.from_database)
    if csv_file is not None:
        with open(csv_file, newline="", encoding="utf-8") as src:
            sink = open(out, "w", newline="", encoding="utf-8") if out else sys.stdout
            try:
                n, bad = locator.locate_csv(src, sink)
            finally:
                if out:
                    sink.close()
        where = f" to {out}" if out else ""
        typer.echo(f"{n} rows written{where}; {bad} could not be read (see the error column)", err=True)
        return
    if lat is None or lon is None:
        typer.echo("error: give LAT LON, or --csv FILE", err=True)
        raise typer.Exit(2)
    r = locator.locate(lat, lon)
    if r["error"]:
        typer.echo(f"{lat}, {lon}: {r['error']}", err=True)
        raise typer.Exit(2)
    if r["sea"]:
        typer.echo(
            f"{lat}, {lon}: in the sea, {r['distance_m'] / 1000:.1f} km from {r['subdistrict_name_th']} "
            f"({r['subdistrict_name_en']}), {r['district_name_en']}, {r['province_name_en']}: no team until confirmed"
        )
        raise typer.Exit(1)
    if not r["inside"]:
        typer.echo(f"{lat}, {lon}: outside Thailand (no province, no team)")
        raise typer.Exit(1)
    lines = [
        f"province: {r['province_code']} {r['province_name_th']} ({r['province_name_en']})",
        f"district: {r['district_code']} {r['district_name_th']} ({r['district_name_en']})",
        f"subdistrict: {r['subdistrict_code']} {r['subdistrict_name_th']} ({r['subdistrict_name_en']})",
        f"team: {r['team']}",
    ]
    if r["snapped"]:
        lines.append(f"(off the coast line: {r['distance_m']:.0f} m from the nearest subdistrict)")
    if r["neighbours"]:
        names = ", ".join(f"{c} {n[1] if n else c}" for c, n in zip(r["neighbours"], r["neighbour_names"]))
        lines.append(f"near the border with: {names}")
    if r["near_teams"]:
        lines.append("one tap to: " + ", ".join(f"{c} ({n})" for c, n in zip(r["near_teams"], r["near_team_names"])))
    typer.echo("\n".join(lines))


console_app = typer.Typer(help="The web console: sign-in links.", no_args_is_help=True)
app.add_typer(console_app, name="console")


@console_app.command("link")
def console_link(team: str, user: str, lang: str = typer.Option("th", help="th | en")) -> None:
    """Prints a one-time console link (10 minutes) for USER (`telegram:123`, `sandbox:alice`):
    their granted roles, and staff of TEAM at least."""
    if ":" not in user:
        typer.echo("error: USER is platform:id (telegram:123, line:U…, sandbox:alice)", err=True)
        raise typer.Exit(2)
    settings = _settings()

    async def go(db):
        from bot.engine import Engine
        from storage.boundaries import Boundaries

        engine = Engine(db, boundaries=Boundaries.default())
        engine.console.public_url = settings.public_url.rstrip("/")
        return await engine.console.link_for(team, user, lang)

    try:
        url = _run(go)
    except KeyError:
        typer.echo(f"error: no team {team!r} (see `namjai teams list`)", err=True)
        raise typer.Exit(2)
    typer.echo(f"Open within 10 minutes, once:\n{url}")


from bot.telegram_cli import telegram_app; app.add_typer(telegram_app, name="telegram")  # noqa: E402,E702

from bot.line_cli import line_app; app.add_typer(line_app, name="line")  # noqa: E402,E702


from bot.scheduler_cli import sched_app_register; sched_app_register(app)  # noqa: E402,E702

from bot.outbox_cli import outbox_app; app.add_typer(outbox_app, name="outbox")  # noqa: E402,E702


def main() -> None:
    app()


if __name__ == "__main__":
    main()
