"""The aiohttp application: wiring settings, database, engine, channels and background loops."""

from __future__ import annotations

import asyncio
import gc
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import i18n, metrics
from bot.engine import Engine
from bot.outbox import OutboxWorker, SandboxChannel
from bot.settings import ConfigError, Settings, check_start
from bot.teams import EXAMPLE, import_teams
from flows.deadlines import load_policy
from handlers.base import SERVICES, STARTERS, STOPPERS, ReplyToken, watch
from storage import pipeline, repo
from storage.boundaries import Boundaries
from storage.db import Database
from storage.migrate import at_head, current, upgrade_if_behind
from storage.photos import PhotoStore, open_store

log = structlog.get_logger("namjai.app")
SHUTDOWN_GRACE = 10.0  # seconds the loops have to end their round at shutdown, then to end once cancelled


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
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # shutdown has begun

    @property
    def console(self):
        return self.engine.console

    @staticmethod
    def text(msg, lang: str) -> str:
        """A catalogue message in `lang` (for the console's pages)."""
        return i18n.text(msg, lang)

    @staticmethod
    def fmt_time(at, lang: str) -> str:
        return i18n.fmt_time(at, lang)

    @staticmethod
    def both(msg) -> str:
        """A catalogue message in Thai, then English (for plain HTTP answers of the channels)."""
        return i18n.both(msg)

    async def accept(self, ev, reply: ReplyToken | None = None) -> bool:
        """For webhooks: stores the event durably (before the 200), processes it in the background.
        False when the platform delivered this event before."""
        return await self.accept_task(ev, reply) is not None

    async def accept_task(self, ev, reply: ReplyToken | None = None) -> asyncio.Task | None:
        """`accept`, giving the task that processes the event's conversation up to it (None for a
        redelivery). The order is the inbox's: any replica may process any event."""
        inbox_id = await self.engine.ingest(ev, reply)
        if inbox_id is None:
            return None
        task = self.engine.inbox.kick(ev.address.chat_key)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        watch(task, "inbox")
        return task


async def prepare_database(db: Database, settings: Settings) -> None:
    """Migrates the embedded database; on PostgreSQL the operator runs `namjai db upgrade`."""
    if db.is_sqlite:
        await upgrade_if_behind(db)
    elif not await at_head(db):
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


REAL_DATA = "real_channels"  # cluster_state: a real channel has run on this database


async def guard_sandbox(db: Database, settings: Settings, photos: PhotoStore, now: datetime) -> None:
    """The sandbox never meets real data. With a real channel on, the database is marked for good
    and the sandbox's chats are removed; with the sandbox on, a database that has held real-channel
    data (the mark, or any row of a real platform) refuses to start."""
    real = settings.real_channels()
    if real:
        async with db.transaction() as s:
            await pipeline.state_set(s, REAL_DATA, {"platforms": real}, now)
    if not settings.sandbox:
        async with db.transaction() as s:
            counts, keys = await repo.forget_platform(s, "sandbox")
        for key in keys:
            try:
                await photos.delete(key, mark=False)
            except Exception:  # a missing file is already gone
                log.warning("sandbox_photo_not_deleted")
        if any(counts.values()):
            log.info("sandbox_data_removed", **counts)
        return
    async with db.session() as s:
        marked = (await pipeline.state_all(s)).get(REAL_DATA)
        platforms = await repo.platforms_seen(s)
    seen = sorted(set(platforms) - {"sandbox"} | set((marked or {}).get("platforms", [])))
    if marked is not None or seen:
        raise ConfigError(
            f"this database has held real {', '.join(seen) or 'channel'} data: the sandbox never runs on it; "
            "use a separate database for the sandbox (NAMJAI_DATABASE_URL)"
        )


async def bind_sandbox_groups(db: Database, now: datetime) -> None:
    """In the sandbox every team has a group chat `team-CODE`, bound from the start."""
    async with db.transaction() as s:
        for team in await repo.teams_all(s):
            chat = f"team-{team.code}"
            if await repo.binding_for_chat(s, "sandbox", chat) is None:
                await repo.bind_chat(s, "sandbox", chat, team.id, "team", "th", now)


def freeze_startup_objects() -> None:
    """Moves every object alive once the server has started (modules, the platforms' SDKs and their
    models, settings, boundary data: about 270,000) out of the garbage collector's reach. They live
    as long as the process, yet each full collection walked them all: 200 ms with the event loop
    stopped, every few seconds under load, which was the webhooks' and the steps' p99."""
    gc.freeze()


def create_app(settings: Settings | None = None, *, clock: Callable[[], datetime] | None = None, boundaries: Boundaries | None = None) -> web.Application:
    settings = settings or Settings()
    check_start(settings)  # ConfigError: one line saying why
    clock = clock or (lambda: datetime.now(timezone.utc))
    # The largest body any route accepts; each route bounds its own (handlers/base.py read_body).
    app = web.Application(client_max_size=max(settings.max_body_bytes, settings.sandbox_max_body_bytes if settings.sandbox else 0),
                          middlewares=[errors_without_personal_data])
    app[STARTERS], app[STOPPERS] = [], []

    async def startup(app: web.Application) -> None:
        from bot.logging import loop_handler

        asyncio.get_running_loop().set_exception_handler(loop_handler)  # no task repr in the logs
        db = Database(settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
        await prepare_database(db, settings)
        photos = open_store(settings)
        await photos.check()
        await guard_sandbox(db, settings, photos, clock())
        engine = Engine(db, boundaries=boundaries or Boundaries.default(), clock=clock, default_lang=settings.default_lang, photos=photos,
                        inbox_concurrency=settings.inbox_concurrency, policy=load_policy(settings.scheduler_policy_file))
        engine.console.public_url = settings.public_url.rstrip("/")
        channels = {}
        if settings.sandbox:
            channels["sandbox"] = SandboxChannel()
            await bind_sandbox_groups(db, clock())
        worker = OutboxWorker(db, channels, clock=clock, batch=settings.outbox_batch, concurrency=settings.outbox_concurrency)
        engine.on_outbox(worker.kick)
        svc = Services(settings, db, engine, photos, worker, clock)
        app[SERVICES] = svc
        for start in app[STARTERS]:  # channels register their senders and media fetchers
            await start(app, svc)
        svc.tasks.append(asyncio.create_task(worker.run(settings.sweep_seconds), name="outbox"))
        svc.tasks.append(asyncio.create_task(_inbox_sweeper(svc, settings.sweep_seconds), name="inbox"))
        freeze_startup_objects()
        log.info("started", sandbox=settings.sandbox, sqlite=db.is_sqlite, channels=sorted(channels))

    async def cleanup(app: web.Application) -> None:
        svc = app.get(SERVICES)
        if svc is None:
            return
        # The loops first, then the channels: a delivery still running must not find its
        # platform client closed (found by tests/test_replicas.py's rolling restart). The loops are
        # asked to end after the round in hand, and cancelled only if they do not: a task cancelled
        # in the middle of a transaction leaves its connection half rolled back, and SQLite's
        # driver could then hang the pool's disposal for ever (seen once in CI).
        svc.stopping.set()
        svc.outbox.stop()
        svc.engine.inbox.stopping = True
        tasks = [t for t in (*svc.tasks, *svc.background, *svc.engine.inbox.tasks()) if not t.done()]
        if tasks:
            _, left = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE)
            for task in left:
                task.cancel()
            if left:
                _, stuck = await asyncio.wait(left, timeout=SHUTDOWN_GRACE)
                if stuck:
                    log.error("tasks_did_not_stop", tasks=sorted(t.get_name() for t in stuck))
        for stop in app[STOPPERS]:
            await stop(app, svc)
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await svc.db.dispose()
        except TimeoutError:
            log.error("database_did_not_close")  # the process ends anyway; the database keeps nothing half done

    app.on_startup.append(startup)
    app.on_cleanup.append(cleanup)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    from handlers import console

    console.setup(app, secure=settings.public_url.startswith("https://"))
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


@web.middleware
async def errors_without_personal_data(request: web.Request, handler):
    """An unexpected error answers 500 and is logged by its class and route only (aiohttp's own
    line would name the remote address, and the exception's message may carry SQL parameters)."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        resource = request.match_info.route.resource
        log.error("request_failed", route=resource.canonical if resource is not None else "(no route)", error=type(exc).__name__, exc_info=exc)
        raise web.HTTPInternalServerError() from None


async def _inbox_sweeper(svc: Services, interval: float) -> None:
    """Drains conversations that nobody is on: events stored but not processed (a crash between the
    200 and the work, on this replica or another) and retries that fell due. Also forgets the
    platform limits' old marks."""
    rounds = 0
    while not svc.stopping.is_set():
        try:
            async with asyncio.timeout(interval):
                await svc.stopping.wait()
            return
        except TimeoutError:
            pass
        rounds += 1
        try:
            await svc.engine.process_pending(older_than=timedelta(seconds=interval * 5))
            if rounds % 30 == 0:
                async with svc.db.transaction() as s:
                    await pipeline.rate_prune(s, svc.clock() - timedelta(minutes=5))
                await prune_personal(svc)
        except Exception:
            log.exception("inbox_sweep_error")


async def prune_personal(svc: Services) -> dict[str, int]:
    """PDPA: processed events lose their payload after `inbox_payload_hours`; delivered messages of
    real platforms go then too; a declined volunteer's delivered messages go at once."""
    now = svc.clock()
    async with svc.db.transaction() as s:
        counts = await pipeline.prune_personal(s, now, now - timedelta(hours=svc.settings.inbox_payload_hours))
    if any(counts.values()):
        await svc.db.checkpoint()
        log.info("personal_data_pruned", **counts)
    return counts


async def cluster_health(svc: Services) -> dict:
    """What /healthz and /metrics tell of the whole cluster, read from the database."""
    async with svc.db.session() as s:
        counts = await repo.outbox_counts(s)
        state = await pipeline.state_all(s)
        unreachable = await teams_without_chat(s)
    quota = sorted(k.split(":", 1)[1] for k, v in state.items() if k.startswith("quota:") and v)
    metrics.OUTBOX_PENDING.set(counts.get("pending", 0))
    metrics.OUTBOX_FAILED.set(counts.get("failed", 0))
    for platform in ("line", "telegram"):
        metrics.QUOTA_BLOCKED.labels(platform).set(1 if platform in quota else 0)
    warnings = [f"{p}: push quota spent, messages wait in the outbox" for p in quota]
    if counts.get("failed"):
        warnings.append(f"{counts['failed']} outbox messages failed for good: see `namjai outbox failed`")
    # teams whose own chat is not bound: where their reports go instead (null: to no chat at all)
    return {"outbox": counts, "quota_spent": quota, "warnings": warnings, "unreachable_teams": unreachable}


async def teams_without_chat(s) -> dict[str, str | None]:
    """Each active team with no team chat bound, and the team up the chain its reports go to."""
    from bot.reports import team_area
    from flows import routing

    teams = await repo.teams_all(s)
    ids = await repo.bound_team_ids(s)
    return routing.unreachable_teams([team_area(t) for t in teams], {t.code for t in teams if t.id in ids})


async def healthz(request: web.Request) -> web.Response:
    svc: Services = request.app[SERVICES]
    health = await cluster_health(svc)
    return web.json_response({"ok": True, **health})


async def metrics_view(request: web.Request) -> web.Response:
    svc: Services = request.app[SERVICES]
    try:
        await cluster_health(svc)
    except Exception:  # metrics still answer while the database is away
        log.warning("metrics_without_database")
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
