"""The aiohttp application: wiring settings, database, engine, channels and background loops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.engine import Engine
from bot.outbox import OutboxWorker, SandboxChannel
from bot.settings import Settings
from bot.teams import EXAMPLE, import_teams
from storage import repo
from storage.boundaries import Boundaries
from storage.db import Database
from storage.migrate import current, upgrade
from storage.photos import PhotoStore, open_store

log = structlog.get_logger("namjai.app")
SERVICES = web.AppKey("services", "Services")
# Channels and the scheduler add `async def start(app, services)` / `stop(app, services)` here.
STARTERS = web.AppKey("starters", list)
STOPPERS = web.AppKey("stoppers", list)


@dataclass
class Services:
    settings: Settings
    db: Database
    engine: Engine
    photos: PhotoStore
    outbox: OutboxWorker
    clock: Callable[[], datetime]
    tasks: list[asyncio.Task] = field(default_factory=list)
    background: set[asyncio.Task] = field(default_factory=set)

    _last_of_chat: dict[str, asyncio.Task] = field(default_factory=dict)

    async def accept(self, ev) -> bool:
        """For webhooks: stores the event durably (before the 200), processes it in the background.
        Events of one chat are processed in the order they were stored (a photo, then the
        location, then a tap). False when the platform delivered this event before."""
        return await self.accept_task(ev) is not None

    async def accept_task(self, ev) -> asyncio.Task | None:
        """`accept`, giving the task that processes the event (None for a redelivery)."""
        inbox_id = await self.engine.ingest(ev)
        if inbox_id is None:
            return None
        chat = ev.address.chat_key
        task = asyncio.create_task(self._process_after(self._last_of_chat.get(chat), inbox_id))
        self._last_of_chat[chat] = task
        self.background.add(task)
        task.add_done_callback(lambda t: self._forget(chat, t))
        return task

    async def _process_after(self, previous: asyncio.Task | None, inbox_id: int) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its failure is its own (and it stays in the inbox)
        await self.engine.process(inbox_id)

    def _forget(self, chat: str, task: asyncio.Task) -> None:
        self.background.discard(task)
        if self._last_of_chat.get(chat) is task:
            del self._last_of_chat[chat]


async def prepare_database(db: Database, settings: Settings) -> None:
    """Migrates the embedded database; on PostgreSQL the operator runs `namjai db upgrade`."""
    if db.is_sqlite:
        await upgrade(db)
    else:
        from alembic.script import ScriptDirectory

        from storage.migrate import alembic_config

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        have = await current(db)
        if have != head:
            raise RuntimeError(f"database schema is at {have}, code needs {head}: run `namjai db upgrade`")
    async with db.session() as s:
        has_teams = bool(await repo.teams_all(s))
    if not has_teams:
        source = settings.teams_file or (EXAMPLE if settings.sandbox else None)
        if source:
            created, _ = await import_teams(db, source)
            log.info("teams_imported", file=str(source), created=created)


async def bind_sandbox_groups(db: Database, now: datetime) -> None:
    """In the sandbox every team has a group chat `team-CODE`, bound from the start."""
    async with db.transaction() as s:
        for team in await repo.teams_all(s):
            chat = f"team-{team.code}"
            if await repo.binding_for_chat(s, "sandbox", chat) is None:
                await repo.bind_chat(s, "sandbox", chat, team.id, "team", "th", now)


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None, boundaries: Boundaries | None = None) -> web.Application:
    settings = settings or Settings()
    clock = clock or (lambda: datetime.now(timezone.utc))
    app = web.Application(client_max_size=25 * 1024 * 1024)
    app[STARTERS], app[STOPPERS] = [], []

    async def startup(app: web.Application) -> None:
        db = Database(settings.database_url)
        await prepare_database(db, settings)
        photos = open_store(settings)
        await photos.check()
        engine = Engine(db, boundaries=boundaries or Boundaries.default(), clock=clock, default_lang=settings.default_lang, photos=photos)
        channels = {}
        if settings.sandbox:
            channels["sandbox"] = SandboxChannel()
            await bind_sandbox_groups(db, clock())
        worker = OutboxWorker(db, channels, clock=clock, batch=settings.outbox_batch)
        engine.on_outbox(worker.kick)
        svc = Services(settings, db, engine, photos, worker, clock)
        app[SERVICES] = svc
        for start in app[STARTERS]:  # channels register their senders and media fetchers
            await start(app, svc)
        svc.tasks.append(asyncio.create_task(worker.run(settings.sweep_seconds), name="outbox"))
        svc.tasks.append(asyncio.create_task(_inbox_sweeper(engine, settings.sweep_seconds), name="inbox"))
        log.info("started", sandbox=settings.sandbox, sqlite=db.is_sqlite, channels=sorted(channels))

    async def cleanup(app: web.Application) -> None:
        svc = app.get(SERVICES)
        if svc is None:
            return
        for stop in app[STOPPERS]:
            await stop(app, svc)
        tasks = [*svc.tasks, *svc.background]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=10)
            if stuck:
                log.error("tasks_did_not_stop", tasks=sorted(t.get_name() for t in stuck))
        await svc.db.dispose()

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    if settings.sandbox:
        from handlers import sandbox

        sandbox.setup(app)
    if settings.telegram_token:
        from handlers import telegram

        telegram.setup(app, settings)
    if settings.line_channel_secret and settings.line_access_token:
        from handlers import line

        line.setup(app, settings)
    if settings.scheduler:
        from bot import scheduler

        scheduler.setup(app, settings)
    return app


async def _inbox_sweeper(engine: Engine, interval: float) -> None:
    """Processes events stored but never processed (a crash between the 200 and the work)."""
    while True:
        await asyncio.sleep(interval * 5)
        try:
            await engine.process_pending(older_than=timedelta(seconds=interval * 5))
        except Exception:
            log.exception("inbox_sweep_error")


async def healthz(request: web.Request) -> web.Response:
    svc: Services = request.app[SERVICES]
    async with svc.db.session() as s:
        counts = await repo.outbox_counts(s)
    metrics.OUTBOX_PENDING.set(counts.get("pending", 0))
    blocked = metrics.quota_blocked()
    warnings = [f"{p}: push quota spent, messages wait in the outbox" for p in blocked]
    return web.json_response({"ok": True, "outbox": counts, "warnings": warnings})


async def metrics_view(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
