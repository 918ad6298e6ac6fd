"""the console: one-time sign-in links, sessions, indexes for its list and figures

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-02 13:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0009"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TS = sa.DateTime(timezone=True)
S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "console_links",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", S(length=64), nullable=False, unique=True),
        sa.Column("platform", S(length=16), nullable=False),
        sa.Column("user_id", S(length=128), nullable=False),
        sa.Column("user_name", S(length=200), nullable=True),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("lang", S(length=4), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key_hash", S(length=64), nullable=False, unique=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
    )
    op.create_index("ix_console_sessions_expires_at", "console_sessions", ["expires_at"])
    # the console's list (a team's reports by age) and figures (a team's reports of a year)
    op.create_index("ix_reports_team_created", "reports", ["team_id", "created_at"])
    op.create_index(
        "ix_reports_team_open", "reports", ["team_id", "created_at"],
        postgresql_where=sa.text("status <> 'closed'"), sqlite_where=sa.text("status <> 'closed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_reports_team_open", table_name="reports")
    op.drop_index("ix_reports_team_created", table_name="reports")
    op.drop_index("ix_console_sessions_expires_at", table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_links")
