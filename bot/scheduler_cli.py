"""`namjai retention` and `namjai sweep`: the scheduler's operator commands (see docs/scheduler.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Optional

import typer


def _now(text: str | None) -> datetime:
    if not text:
        return datetime.now(timezone.utc)
    at = datetime.fromisoformat(text)
    if at.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2027-03-01T09:00+07:00")
    return at


def sched_app_register(app: typer.Typer) -> None:
    @app.command()
    def retention(
        dry_run: bool = typer.Option(False, "--dry-run", help="only print what would be deleted"),
        now: Optional[str] = typer.Option(None, "--now", help="pretend it is this moment (ISO 8601 with zone)"),
    ) -> None:
        """PDPA retention: deletes photos of reports closed more than NAMJAI_PHOTO_RETENTION_DAYS ago
        and detaches reporters after NAMJAI_IDENTITY_RETENTION_DAYS. Counts and outcomes stay."""
        from bot.cli import _run, _settings
        from bot.retention import retention as run_retention
        from storage.photos import PhotoStoreError, open_store

        settings = _settings()
        at = _now(now)
        try:
            photos = open_store(settings)
        except PhotoStoreError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2)

        async def go(db):
            return await run_retention(
                db, photos, at, photo_days=settings.photo_retention_days,
                identity_days=settings.identity_retention_days, dry_run=dry_run,
            )

        r = _run(go)
        verb = "would delete" if dry_run else "deleted"
        typer.echo(f"photos: {verb} {r.photo_files} files of {len(r.photo_reports)} reports closed over {settings.photo_retention_days} days ago")
        for ref in r.photo_reports:
            typer.echo(f"  photos   {ref}")
        verb = "would detach" if dry_run else "detached"
        typer.echo(f"reporters: {verb} {len(r.identity_reports)} reports closed over {settings.identity_retention_days} days ago")
        for ref in r.identity_reports:
            typer.echo(f"  reporter {ref}")

    @app.command()
    def sweep(now: Optional[str] = typer.Option(None, "--now", help="pretend it is this moment (ISO 8601 with zone)")) -> None:
        """Runs one scheduler sweep now (reminders, escalations, follow-ups, drafts, digests); the
        outbox of a running bot delivers what it queued."""
        from bot.cli import _run
        from bot.scheduler import sweep as run_sweep

        at = _now(now)
        n = _run(lambda db: run_sweep(db, at))
        typer.echo(f"{n} messages queued")
