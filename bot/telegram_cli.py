"""`namjai telegram …`: register the webhook (with its secret and the command menu), or poll.

bot/cli.py adds this sub-app with one line; the work is in testable coroutines below.
"""

from __future__ import annotations

import asyncio
import re

import typer

from bot.i18n import text as render
from flows.model import Msg

telegram_app = typer.Typer(help="Telegram: webhook registration and development polling.", no_args_is_help=True, rich_markup_mode="markdown")

PRIVATE_COMMANDS = ("start", "new", "mine", "cancel", "help", "lang")
GROUP_COMMANDS = ("bind",)
SECRET_CHARS = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


async def set_commands(bot) -> None:
    """The command menu from the catalogue: Thai by default, English for English-language apps."""
    from telegram import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats

    for scope, names in ((BotCommandScopeAllPrivateChats(), PRIVATE_COMMANDS), (BotCommandScopeAllGroupChats(), GROUP_COMMANDS)):
        for lang, code in (("th", None), ("en", "en")):
            commands = [BotCommand(name, render(Msg(f"tg.cmd.{name}"), lang)) for name in names]
            await bot.set_my_commands(commands, scope=scope, language_code=code)


async def register_webhook(bot, url: str, secret: str, drop_pending: bool = False) -> None:
    from handlers.telegram import ALLOWED_UPDATES

    await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES, drop_pending_updates=drop_pending, max_connections=40)
    await set_commands(bot)


def _settings():
    from bot.cli import _settings as load

    settings = load()
    if not settings.telegram_token:
        typer.echo("error: set NAMJAI_TELEGRAM_TOKEN (from @BotFather)", err=True)
        raise typer.Exit(2)
    return settings


@telegram_app.command("set-webhook")
def set_webhook(
    url: str = typer.Option(None, help="default: NAMJAI_PUBLIC_URL + /telegram/webhook"),
    drop_pending: bool = typer.Option(False, help="discard updates Telegram holds for the bot"),
) -> None:
    """Registers the webhook with its secret (NAMJAI_TELEGRAM_WEBHOOK_SECRET) and the command menu."""
    from handlers.telegram import WEBHOOK_PATH, build_application

    settings = _settings()
    secret = settings.telegram_webhook_secret.get_secret_value() if settings.telegram_webhook_secret else ""
    if not SECRET_CHARS.match(secret):
        typer.echo("error: NAMJAI_TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -", err=True)
        raise typer.Exit(2)
    url = url or settings.public_url.rstrip("/") + WEBHOOK_PATH
    if not url.startswith("https://"):
        typer.echo("warning: Telegram only delivers webhooks to https:// URLs", err=True)

    async def go():
        application = build_application(settings)
        await application.initialize()
        try:
            await register_webhook(application.bot, url, secret, drop_pending)
            return application.bot.username
        finally:
            await application.shutdown()

    username = asyncio.run(go())
    typer.echo(f"webhook of @{username} set to {url} (secret set, command menu in th/en)")


def poster_link(username: str, province: str) -> str:
    """The deep link a team's QR poster opens: the bot, with the area it names."""
    return f"https://t.me/{username}?start=p-{province}"


@telegram_app.command("poster")
def poster(
    province: str = typer.Option(..., help="the DOPA code of the poster's province, e.g. 20 for Chon Buri"),
    out: str = typer.Option(None, help="write the QR code here (.png or .svg)"),
) -> None:
    """Prints the deep link (and draws the QR code) for a team's poster: scanning it opens the bot
    with the poster's province as the report's area."""
    from geothai import province as geo_province

    from handlers.telegram import build_application

    if geo_province(province) is None:
        typer.echo(f"error: no province with code {province!r}", err=True)
        raise typer.Exit(2)
    settings = _settings()

    async def go():
        application = build_application(settings)
        await application.initialize()
        try:
            return application.bot.username
        finally:
            await application.shutdown()

    link = poster_link(asyncio.run(go()), province)
    typer.echo(link)
    if out:
        import segno

        segno.make(link, error="m").save(out, scale=10, border=4)
        typer.echo(f"QR code written to {out}", err=True)


@telegram_app.command("poll")
def poll() -> None:
    """Development: removes the webhook, serves the app on NAMJAI_HOST:NAMJAI_PORT and feeds
    getUpdates into the same path as the webhook. Stop with Ctrl-C."""
    from aiohttp import web

    from bot.app import create_app
    from handlers.telegram import TELEGRAM

    settings = _settings()

    async def go():
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        tg = app[TELEGRAM]
        try:
            await tg.bot.delete_webhook()
            await set_commands(tg.bot)
            typer.echo(f"polling as @{tg.bot.username}; app on http://{settings.host}:{settings.port}/ (Ctrl-C stops)")
            await tg.poll()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        pass
