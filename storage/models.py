"""The tables. Dumb on purpose: the rules live in `flows/`.

Every datetime is timezone-aware (UTC in the database).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(sa.TypeDecorator):
    """A timezone-aware datetime on every engine (SQLite hands back naive ones: they are UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None:
            if value.tzinfo is None:
                raise ValueError("naive datetime: use timezone-aware datetimes")
            value = value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=nullable, index=index))


def _json(nullable: bool = True) -> Any:
    return Field(default=None, sa_column=sa.Column(sa.JSON, nullable=nullable))


class Team(SQLModel, table=True):
    __tablename__ = "teams"
    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True, index=True)
    name_th: str = Field(max_length=300)
    name_en: str = Field(max_length=300)
    kind: str = Field(max_length=32)  # national | provincial_centre | municipality
    provinces: Optional[list] = _json()
    area_codes: Optional[list] = _json()  # DOPA district (4) / subdistrict (6) codes served
    area: Optional[dict] = _json()  # GeoJSON geometry of a municipality
    parent_code: Optional[str] = Field(default=None, max_length=64)
    fallback: bool = False
    active: bool = True


class ChatBinding(SQLModel, table=True):
    """A group chat bound to a team, in a role: the team itself, its supervisors, its director."""

    __tablename__ = "chat_bindings"
    __table_args__ = (sa.UniqueConstraint("platform", "chat_id", name="uq_binding_chat"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    team_id: int = Field(foreign_key="teams.id", index=True)
    role: str = Field(default="team", max_length=16)  # team | supervisors | director
    lang: str = Field(default="th", max_length=4)
    created_at: Optional[datetime] = _ts(nullable=False)


class Invite(SQLModel, table=True):
    __tablename__ = "invites"
    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(max_length=16, unique=True)
    team_id: int = Field(foreign_key="teams.id")
    role: str = Field(default="team", max_length=16)
    created_at: Optional[datetime] = _ts(nullable=False)
    expires_at: Optional[datetime] = _ts(nullable=False)
    used_at: Optional[datetime] = _ts()
    used_by: Optional[str] = Field(default=None, max_length=160)


class Member(SQLModel, table=True):
    """A person's role in a team beyond plain staff (supervisor, admin), granted by an operator."""

    __tablename__ = "members"
    __table_args__ = (sa.UniqueConstraint("team_id", "platform", "user_id", name="uq_member"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    team_id: int = Field(foreign_key="teams.id", index=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    role: str = Field(default="staff", max_length=16)
    name: Optional[str] = Field(default=None, max_length=200)


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (sa.UniqueConstraint("platform", "chat_id", "user_id", name="uq_conversation"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    user_id: str = Field(default="", max_length=128)
    state: Optional[dict] = _json()
    lang: str = Field(default="th", max_length=4)
    step: str = Field(default="idle", max_length=16, index=True)
    consent_version: Optional[str] = Field(default=None, max_length=32)
    consent_at: Optional[datetime] = _ts()
    asked_at: Optional[datetime] = _ts(index=True)
    updated_at: Optional[datetime] = _ts(nullable=False)
    nudged_at: Optional[datetime] = _ts()  # scheduler: when the unfinished report was last nudged


class Report(SQLModel, table=True):
    __tablename__ = "reports"
    __table_args__ = (
        sa.Index("ix_reports_geo", "lat", "lon"),
        sa.Index("ix_reports_reporter", "reporter_platform", "reporter_user"),
        # scheduler (issue 6): closed reports whose photos / reporter identity are still kept
        sa.Index("ix_reports_photos_kept", "closed_at", postgresql_where=sa.text("photos_purged_at IS NULL"), sqlite_where=sa.text("photos_purged_at IS NULL")),
        sa.Index("ix_reports_identity_kept", "closed_at", postgresql_where=sa.text("identity_purged_at IS NULL"), sqlite_where=sa.text("identity_purged_at IS NULL")),
        # the console (issue 13): a team's reports by age, and its open ones
        sa.Index("ix_reports_team_created", "team_id", "created_at"),
        sa.Index("ix_reports_team_open", "team_id", "created_at", postgresql_where=sa.text("status <> 'closed'"), sqlite_where=sa.text("status <> 'closed'")),
        # migration 0010: an administrator's list (every team's open reports by age), a team's
        # closings by month
        sa.Index("ix_reports_open_created", "created_at", "id", postgresql_where=sa.text("status <> 'closed'"), sqlite_where=sa.text("status <> 'closed'")),
        sa.Index("ix_reports_team_closed", "team_id", "closed_at", postgresql_where=sa.text("status = 'closed'"), sqlite_where=sa.text("status = 'closed'")),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    ref: str = Field(max_length=20, unique=True)
    team_id: int = Field(foreign_key="teams.id", index=True)
    status: str = Field(default="new", max_length=16, index=True)
    outcome: Optional[str] = Field(default=None, max_length=32)
    urgent: bool = False
    urgency: Optional[str] = Field(default=None, max_length=16)
    who: Optional[list] = _json()
    count: Optional[str] = Field(default=None, max_length=8)
    note: Optional[str] = Field(default=None, max_length=2000)
    lat: Optional[float] = None
    lon: Optional[float] = None
    location_source: Optional[str] = Field(default=None, max_length=16)
    landmark: Optional[str] = Field(default=None, max_length=300)
    location_to_confirm: bool = False
    province_code: Optional[str] = Field(default=None, max_length=4, index=True)
    district_code: Optional[str] = Field(default=None, max_length=8)
    subdistrict_code: Optional[str] = Field(default=None, max_length=8)
    photos: Optional[list] = _json()
    voice: Optional[str] = Field(default=None, max_length=80)  # a voice note's key in the photo store
    law_track: str = Field(default="destitution", max_length=16)
    repeat_of: Optional[list] = _json()
    reporter_platform: Optional[str] = Field(default=None, max_length=16)
    reporter_chat: Optional[str] = Field(default=None, max_length=128)
    reporter_user: Optional[str] = Field(default=None, max_length=128)
    reporter_lang: str = Field(default="th", max_length=4)
    created_at: Optional[datetime] = _ts(nullable=False, index=True)
    updated_at: Optional[datetime] = _ts(nullable=False)
    acknowledged_at: Optional[datetime] = _ts()
    on_site_at: Optional[datetime] = _ts()
    closed_at: Optional[datetime] = _ts(index=True)
    # --- scheduler (issue 6): when the sweep must next look at this report (indexed: a sweep
    # reads what is due, not what is open), its lease, the reporter's answer, PDPA retention.
    next_due_at: Optional[datetime] = _ts(index=True)
    sched_claimed_until: Optional[datetime] = _ts()
    still_there: Optional[bool] = None
    still_there_at: Optional[datetime] = _ts()
    photos_purged_at: Optional[datetime] = _ts()
    identity_purged_at: Optional[datetime] = _ts()
    # --- the reporter's rating (issue 13): asked once after the closing was told, answered or not
    rating_asked_at: Optional[datetime] = _ts()
    rating: Optional[str] = Field(default=None, max_length=8)  # good | ok | bad


class ReportEvent(SQLModel, table=True):
    """The report's history: every transition and comment, with who and when."""

    __tablename__ = "report_events"
    id: Optional[int] = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="reports.id", index=True)
    at: Optional[datetime] = _ts(nullable=False)
    actor: Optional[str] = Field(default=None, max_length=160)
    actor_name: Optional[str] = Field(default=None, max_length=200)
    action: str = Field(max_length=16)
    from_status: Optional[str] = Field(default=None, max_length=16)
    to_status: Optional[str] = Field(default=None, max_length=16)
    detail: Optional[dict] = _json()


class CardMessage(SQLModel, table=True):
    """Where a report's card was posted, so it can be edited in place or replied to."""

    __tablename__ = "card_messages"
    __table_args__ = (sa.Index("ix_card_chat_msg", "platform", "chat_id", "message_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="reports.id", index=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    message_id: str = Field(max_length=128)
    created_at: Optional[datetime] = _ts(nullable=False)


class Counter(SQLModel, table=True):
    __tablename__ = "counters"
    name: str = Field(primary_key=True, max_length=32)
    value: int = 0


class InboxEvent(SQLModel, table=True):
    """Every platform event received, stored before the webhook answers; processed once, in the
    order received within its conversation (`conv_key`: platform and chat)."""

    __tablename__ = "inbox"
    __table_args__ = (
        sa.UniqueConstraint("platform", "event_id", name="uq_inbox_event"),
        sa.Index("ix_inbox_pending", "status", "id"),
        sa.Index("ix_inbox_conv_pending", "conv_key", "id",
                 postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'")),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    event_id: str = Field(max_length=128)
    conv_key: str = Field(default="", max_length=160)  # "platform:chat": one order per conversation
    payload: Optional[dict] = _json(nullable=False)
    status: str = Field(default="pending", max_length=12)  # pending | done | failed
    attempts: int = 0
    error: Optional[str] = Field(default=None, max_length=500)
    received_at: Optional[datetime] = _ts(nullable=False)
    next_attempt_at: Optional[datetime] = _ts()  # after a failed attempt: not before this
    claimed_until: Optional[datetime] = _ts()
    processed_at: Optional[datetime] = _ts()
    # LINE: the event's reply token (single use, about a minute), given to the outbox rows it causes
    reply_token: Optional[str] = Field(default=None, max_length=256)
    reply_until: Optional[datetime] = _ts()


class OutboxMessage(SQLModel, table=True):
    """Every message the bot sends is a row here first, then delivered by its channel."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_due", "status", "next_attempt_at"),
        sa.Index("ix_outbox_chat", "platform", "chat_id", "id"),
        sa.Index("ix_outbox_chat_pending", "platform", "chat_id", "id",
                 postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'")),
    )
    id: Optional[int] = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=128)
    payload: Optional[dict] = _json(nullable=False)
    report_id: Optional[int] = Field(default=None, index=True)
    card_edit: bool = False  # update the report's card in this chat instead of a new message
    reply_token: Optional[str] = Field(default=None, max_length=256)  # the causing event's (LINE)
    reply_until: Optional[datetime] = _ts()  # the reply token is not tried after this
    reply_ambiguous: bool = False  # a reply was sent but its answer was lost (5xx, time-out)
    source_event: Optional[int] = Field(default=None)  # the inbox row whose processing wrote it
    not_before: Optional[datetime] = _ts()  # scheduled (quiet hours): joins its chat's queue then
    status: str = Field(default="pending", max_length=12)  # pending | sent | failed
    attempts: int = 0
    next_attempt_at: Optional[datetime] = _ts(nullable=False)
    claimed_until: Optional[datetime] = _ts()
    created_at: Optional[datetime] = _ts(nullable=False)
    sent_at: Optional[datetime] = _ts()
    message_id: Optional[str] = Field(default=None, max_length=128)
    last_error: Optional[str] = Field(default=None, max_length=500)


class AccessLog(SQLModel, table=True):
    """Who saw a report's personal data (photos, location), for the PDPA."""

    __tablename__ = "access_log"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: Optional[datetime] = _ts(nullable=False)
    report_id: Optional[int] = Field(default=None, index=True)
    actor: str = Field(max_length=160)
    what: str = Field(max_length=64)


class ReminderSent(SQLModel, table=True):
    """The scheduler's ledger: one row per reminder, escalation, follow-up, nudge or digest, written
    in the same transaction as its outbox rows. The UNIQUE key makes a second send impossible
    (another replica, a restart, a retry). `report_id` is 0 for what is not about one report."""

    __tablename__ = "reminders_sent"
    __table_args__ = (sa.UniqueConstraint("report_id", "kind", "step", name="uq_reminder"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    report_id: int = Field(default=0)
    kind: str = Field(max_length=16)  # ack | onsite | close | followup | draft | digest | weekly
    step: str = Field(max_length=80)
    due_at: Optional[datetime] = _ts()
    sent_at: Optional[datetime] = _ts(nullable=False)
    to: Optional[str] = Field(default=None, max_length=16)  # the chain role, reporter, volunteer
    coalesced: bool = False  # superseded by a later step after downtime: recorded, not sent


class RateMark(SQLModel, table=True):
    """One message sent through a platform limit (a bucket: "telegram", "telegram:CHAT", "line"),
    shared by every replica: a sliding window counts the marks of the last seconds."""

    __tablename__ = "rate_marks"
    __table_args__ = (sa.Index("ix_rate_marks_bucket_at", "bucket", "at"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    bucket: str = Field(max_length=160)
    at: Optional[datetime] = _ts(nullable=False)


class ClusterState(SQLModel, table=True):
    """Facts about the whole cluster that /healthz reports (a platform's spent push quota)."""

    __tablename__ = "cluster_state"
    key: str = Field(primary_key=True, max_length=64)
    value: Optional[dict] = _json()
    updated_at: Optional[datetime] = _ts(nullable=False)


class ConsoleLink(SQLModel, table=True):
    """A one-time sign-in link to the console (issue 13): only the token's SHA-256 is kept."""

    __tablename__ = "console_links"
    id: Optional[int] = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    platform: str = Field(max_length=16)
    user_id: str = Field(max_length=128)
    user_name: Optional[str] = Field(default=None, max_length=200)
    scope: Optional[dict] = _json(nullable=False)  # flows.console.Scope.to_dict() + the grants
    lang: str = Field(default="th", max_length=4)
    created_at: Optional[datetime] = _ts(nullable=False)
    expires_at: Optional[datetime] = _ts(nullable=False)
    used_at: Optional[datetime] = _ts()


class ConsoleSession(SQLModel, table=True):
    """A console session (aiohttp-session's storage): the cookie holds a random key, the row its
    SHA-256, so any replica can serve it and a stolen database holds no live cookie."""

    __tablename__ = "console_sessions"
    id: Optional[int] = Field(default=None, primary_key=True)
    key_hash: str = Field(max_length=64, unique=True)
    data: Optional[dict] = _json(nullable=False)
    created_at: Optional[datetime] = _ts(nullable=False)
    expires_at: Optional[datetime] = _ts(nullable=False, index=True)
    ended_at: Optional[datetime] = _ts()
