"""`namjai outbox …`: the messages that failed for good, and putting them back in their queues."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer

outbox_app = typer.Typer(help="Messages the platforms refused for good.", no_args_is_help=True, rich_markup_mode="markdown")


@outbox_app.command("failed")
def failed(limit: int = typer.Option(100, help="Rows to list at most.")) -> None:
    """Lists the outbox rows that failed for good (a platform's permanent refusal), oldest first."""
    from bot.cli import _run
    from storage import pipeline

    async def go(db):
        async with db.session() as s:
            return await pipeline.outbox_failed(s, limit), await pipeline.outbox_failed_count(s)

    rows, total = _run(go)
    if not rows:
        typer.echo("no failed messages")
        return
    typer.echo(f"{'id':>8}  {'platform':<9} {'attempts':>8}  {'created (UTC)':<16}  error")
    for r in rows:
        typer.echo(f"{r.id:>8}  {r.platform:<9} {r.attempts:>8}  {r.created_at:%Y-%m-%d %H:%M}  {(r.last_error or '')[:80]}")
    typer.echo(f"{total} failed in all" + (f" (first {limit} shown)" if total > len(rows) else ""))


@outbox_app.command("retry")
def retry(
    ids: Optional[list[int]] = typer.Argument(None, help="Row ids from `namjai outbox failed`."),
    all_: bool = typer.Option(False, "--all", help="Every failed row."),
) -> None:
    """Puts failed rows back in their chats' queues: they are sent again, in order."""
    from bot.cli import _run
    from storage import pipeline

    if not ids and not all_:
        typer.echo("error: give row ids, or --all", err=True)
        raise typer.Exit(2)

    async def go(db):
        async with db.transaction() as s:
            return await pipeline.outbox_retry(s, None if all_ else ids, datetime.now(timezone.utc))

    typer.echo(f"{_run(go)} messages queued again")
