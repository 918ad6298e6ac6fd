"""Structured logs (structlog): console for people, JSON for machines.

Never log a raw webhook body, a photo, a location, a user id or a token: they are personal data
of vulnerable people or secrets. Log ids of our own rows and counts instead.

What this module enforces for everything else:
- an exception is logged as its class names and frames, never its message: a database error's
  message carries the SQL parameters (chat ids, texts, coordinates), an HTTP client's the URL
  (Telegram's carry the bot token). `safe_traceback`.
- the standard library's records (aiohttp, asyncio) go through the same rule (`SafeFormatter`),
  and the event loop's "exception never retrieved" is logged without the task's repr (`loop_handler`).
- HTTP requests are logged by route, never by path or query (chat ids, photo keys, link
  signatures), and without the remote address unless `NAMJAI_LOG_REMOTE_ADDR` (`AccessLogger`).
"""

from __future__ import annotations

import logging
import sys
import traceback

import structlog
from aiohttp.abc import AbstractAccessLogger


def safe_traceback(exc: BaseException) -> str:
    """Frames and exception class names of an exception and its causes, no message."""
    lines: list[str] = []
    seen: set[int] = set()
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    for e in reversed(chain):
        lines.append("Traceback (most recent call last):")
        for frame in traceback.extract_tb(e.__traceback__):
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        lines.append(f"{type(e).__module__}.{type(e).__qualname__} (message not logged)")
    return "\n".join(lines)


def _exc_of(exc_info) -> BaseException | None:
    if exc_info is True:
        return sys.exc_info()[1]
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1]
    return None


def safe_exc_info(logger, method_name, event_dict):
    """structlog processor: `exc_info` rendered by `safe_traceback` (in place of format_exc_info)."""
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        exc = _exc_of(exc_info)
        if exc is not None:
            event_dict["exception"] = safe_traceback(exc)
    event_dict.pop("stack_info", None)
    return event_dict


class SafeFormatter(logging.Formatter):
    """Standard library records: the message as written by its library, exceptions without text."""

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return safe_traceback(ei[1]) if ei and ei[1] is not None else ""

    def formatStack(self, stack_info) -> str:  # noqa: N802
        return ""


_loop_log = structlog.get_logger("namjai.loop")


def loop_handler(loop, context: dict) -> None:
    """The event loop's last resort ("Task exception was never retrieved" and the like): the
    message and the exception's frames, not the task's or the future's repr."""
    exc = context.get("exception")
    _loop_log.error("unhandled_in_event_loop", what=str(context.get("message", ""))[:80],
                    exception=safe_traceback(exc) if exc is not None else None)


class AccessLogger(AbstractAccessLogger):
    """One line per request: method, route pattern, status and time; the remote address only
    when the operator turned it on (`remote = True`, set from NAMJAI_LOG_REMOTE_ADDR)."""

    remote = False
    _log = structlog.get_logger("namjai.access")

    def log(self, request, response, time) -> None:
        resource = request.match_info.route.resource if request.match_info is not None else None
        route = resource.canonical if resource is not None else "(no route)"
        fields = dict(method=request.method, route=route, status=response.status, ms=round(time * 1000, 1))
        if self.remote:
            fields["remote"] = request.remote
        self._log.info("http", **fields)


def access_logger(remote: bool) -> type[AccessLogger]:
    return type("NamjaiAccessLogger", (AccessLogger,), {"remote": bool(remote)})


def setup(level: str = "INFO", fmt: str = "console", *, cache: bool = False) -> None:
    """Configures structlog and the standard library's logging. Loggers are not cached on first use
    (`cache`): a cached module logger would keep an earlier configuration's output and processors."""
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            safe_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=cache,
    )
    logging.basicConfig(level=level.upper(), format="%(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(SafeFormatter("%(message)s"))
    # aiosqlite and SQLAlchemy log SQL parameters (chat ids, texts) at DEBUG: never below WARNING;
    # alembic: "Context impl …"
    for noisy in ("httpx", "httpcore", "aiohttp.access", "apscheduler", "alembic", "aiosqlite", "sqlalchemy", "asyncpg", "telegram", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
