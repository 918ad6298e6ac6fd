"""PDPA retention: how long Namjai keeps a closed report's photos and its reporter.

- The photos and voice note of a report closed more than `photo_days` ago are deleted: the files
  first, then the report's list (a file another report still names is kept: the store is
  content-addressed). The store remembers each key it deleted, so its links then say "deleted by
  retention" (410), not "missing" (404).
- The reporter of a report closed more than `identity_days` ago is detached
  (`sched_repo.detach_identity`).
- Counts, outcomes and the history stay; each purge is a history entry by `system:retention`.
- Any stored file that neither a report nor a draft names (a draft's photo left behind by a
  crash, a file of a removed sandbox) is deleted once it is an hour old (`ORPHAN_GRACE`: a photo
  just downloaded is named by its draft a moment later).

Run at night by the scheduler (bot/scheduler.py, `NAMJAI_RETENTION_AT`) and by
`namjai retention [--dry-run]` (bot/scheduler_cli.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from storage import repo, sched_repo
from storage.db import Database

log = structlog.get_logger("namjai.scheduler")  # the logger its lines have always come from


@dataclass
class RetentionResult:
    photo_reports: list[str] = field(default_factory=list)  # refs whose photos went
    photo_files: int = 0
    identity_reports: list[str] = field(default_factory=list)  # refs whose reporter was detached
    orphan_files: int = 0  # stored files nothing named


ORPHAN_GRACE = timedelta(hours=1)


async def delete_orphans(db: Database, photos, now: datetime, *, dry_run: bool = False) -> int:
    """Deletes the stored files that no report and no draft names, older than `ORPHAN_GRACE`."""
    listing = getattr(photos, "stored", None)
    if listing is None:
        return 0
    files = await listing()
    async with db.session() as s:
        used = await sched_repo.media_in_use(s)
    orphans = sorted(k for k, at in files if k not in used and at <= now - ORPHAN_GRACE)
    if not dry_run:
        for key in orphans:
            await photos.delete(key, mark=False)  # nothing names an orphan
    return len(orphans)


async def retention(db: Database, photos, now: datetime, *, photo_days: int = 90, identity_days: int = 365, dry_run: bool = False, batch: int = 500) -> RetentionResult:
    """Deletes the photos of reports closed more than `photo_days` ago (files, then the list) and
    detaches the reporter of reports closed more than `identity_days` ago. Counts, outcomes and the
    history stay. `dry_run`: only says what would go."""
    out = RetentionResult()
    photo_cut = now - timedelta(days=photo_days)
    ident_cut = now - timedelta(days=identity_days)
    for _ in range(10_000):
        async with db.transaction() as s:
            reports = await sched_repo.photos_to_purge(s, photo_cut, batch if not dry_run else 10**9)
            if not reports:
                break
            ids = [r.id for r in reports]
            counts = {r.id: len(sched_repo.media_keys(r.photos, r.voice)) for r in reports}
            keys = {k for r in reports for k in sched_repo.media_keys(r.photos, r.voice)}
            gone = keys - await sched_repo.photo_keys_kept(s, ids)
            out.photo_reports += [r.ref for r in reports if r.photos or r.voice]
            out.photo_files += len(gone)
            if dry_run:
                break
            for key in sorted(gone):  # the files first: never a list naming a photo kept by mistake
                try:
                    await photos.delete(key)
                except ValueError:
                    log.warning("retention_bad_key")
            await sched_repo.purge_photos(s, ids, now)
            for rid, n in counts.items():
                if n:
                    await repo.history_add(s, report_id=rid, at=now, actor="system:retention", action="photos_purged", detail={"photos": n})
    for _ in range(10_000):
        async with db.transaction() as s:
            reports = await sched_repo.identities_to_detach(s, ident_cut, batch if not dry_run else 10**9)
            if not reports:
                break
            out.identity_reports += [r.ref for r in reports]
            if dry_run:
                break
            await sched_repo.detach_identity(s, reports, now)
            for r in reports:
                await repo.history_add(s, report_id=r.id, at=now, actor="system:retention", action="identity_purged")
    out.orphan_files = await delete_orphans(db, photos, now, dry_run=dry_run)
    if not dry_run and (out.photo_reports or out.identity_reports or out.orphan_files):
        log.info("retention", photo_reports=len(out.photo_reports), photo_files=out.photo_files, identities=len(out.identity_reports), orphan_files=out.orphan_files)
    return out
