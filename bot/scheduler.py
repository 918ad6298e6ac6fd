"""Placeholder: reminders, escalations, digests and retention arrive with issue 6."""

from aiohttp import web


def setup(app: web.Application, settings) -> None:
    """Nothing scheduled yet."""
