"""Telegram-only queries: a group upgraded to a supergroup changes its chat id."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import repo

PLATFORM = "telegram"


async def move_binding(s: AsyncSession, old_chat_id: str, new_chat_id: str) -> bool:
    """Moves a group's team binding to the chat's new id; False when there was nothing to move
    (not bound, or already moved: Telegram reports a migration twice, from both chats)."""
    if old_chat_id == new_chat_id:
        return False
    binding = await repo.binding_for_chat(s, PLATFORM, old_chat_id)
    if binding is None or await repo.binding_for_chat(s, PLATFORM, new_chat_id) is not None:
        return False
    binding.chat_id = new_chat_id
    await s.flush()
    return True
