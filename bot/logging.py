"""Structured logs (structlog): console for people, JSON for machines.

Never log a raw webhook body, a photo, a location, a user id or a token: they are personal data
of vulnerable people or secrets. Log ids of our own rows and counts instead.
"""

from __future__ import annotations

import logging

import structlog


def setup(level: str = "INFO", fmt: str = "console") -> None:
    renderer = structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=level.upper(), format="%(message)s")
    for noisy in ("httpx", "aiohttp.access", "apscheduler", "alembic"):  # alembic: "Context impl …"
        logging.getLogger(noisy).setLevel(logging.WARNING)
