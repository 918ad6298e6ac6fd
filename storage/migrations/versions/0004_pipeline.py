"""the pipeline across replicas: conversation order, reply tokens, chat queues, shared limits

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as b:
        b.add_column(sa.Column("conv_key", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False, server_default=""))
        b.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("reply_token", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=True))
        b.add_column(sa.Column("reply_until", sa.DateTime(timezone=True), nullable=True))
    # Events stored before this version: each its own conversation (their order was per process).
    op.execute("UPDATE inbox SET conv_key = platform || '#' || event_id WHERE conv_key = ''")
    op.create_index("ix_inbox_conv_pending", "inbox", ["conv_key", "id"], postgresql_where=PENDING, sqlite_where=PENDING)
    with op.batch_alter_table("outbox", schema=None) as b:
        b.add_column(sa.Column("reply_until", sa.DateTime(timezone=True), nullable=True))
        b.add_column(sa.Column("reply_ambiguous", sa.Boolean(), nullable=False, server_default=sa.false()))
        b.add_column(sa.Column("source_event", sa.Integer(), nullable=True))
        b.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_outbox_chat_pending", "outbox", ["platform", "chat_id", "id"], postgresql_where=PENDING, sqlite_where=PENDING)
    op.create_table(
        "rate_marks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("bucket", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_rate_marks_bucket_at", "rate_marks", ["bucket", "at"])
    op.create_table(
        "cluster_state",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("cluster_state")
    op.drop_index("ix_rate_marks_bucket_at", table_name="rate_marks")
    op.drop_table("rate_marks")
    op.drop_index("ix_outbox_chat_pending", table_name="outbox")
    with op.batch_alter_table("outbox", schema=None) as b:
        for c in ("not_before", "source_event", "reply_ambiguous", "reply_until"):
            b.drop_column(c)
    op.drop_index("ix_inbox_conv_pending", table_name="inbox")
    with op.batch_alter_table("inbox", schema=None) as b:
        for c in ("reply_until", "reply_token", "next_attempt_at", "conv_key"):
            b.drop_column(c)
