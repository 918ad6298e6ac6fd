"""the console's speed and the reporters' rating: indexes for an administrator's list and a team's
closings by month; the rating asked once after the closing is told, and its answer

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 16:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0010"
down_revision: Union[str, None] = "0009"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column("reports", sa.Column("rating_asked_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("reports", sa.Column("rating", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    op.create_index(
        "ix_reports_open_created", "reports", ["created_at", "id"],
        postgresql_where=sa.text("status <> 'closed'"), sqlite_where=sa.text("status <> 'closed'"),
    )
    op.create_index(
        "ix_reports_team_closed", "reports", ["team_id", "closed_at"],
        postgresql_where=sa.text("status = 'closed'"), sqlite_where=sa.text("status = 'closed'"),
    )


def downgrade() -> None:
    op.drop_index("ix_reports_team_closed", table_name="reports")
    op.drop_index("ix_reports_open_created", table_name="reports")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("rating")
        batch.drop_column("rating_asked_at")
