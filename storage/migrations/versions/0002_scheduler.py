"""scheduler: due times on reports, the reminders ledger, draft nudges, PDPA retention marks

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:00:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision: str = '0002'
down_revision: Union[str, None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sched_claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('still_there', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('still_there_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('photos_purged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('identity_purged_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_reports_next_due_at'), ['next_due_at'], unique=False)
        batch_op.create_index(
            'ix_reports_photos_kept', ['closed_at'], unique=False,
            postgresql_where=sa.text('photos_purged_at IS NULL'), sqlite_where=sa.text('photos_purged_at IS NULL'),
        )
        batch_op.create_index(
            'ix_reports_identity_kept', ['closed_at'], unique=False,
            postgresql_where=sa.text('identity_purged_at IS NULL'), sqlite_where=sa.text('identity_purged_at IS NULL'),
        )

    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('nudged_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('reminders_sent',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('step', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('to', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('coalesced', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('report_id', 'kind', 'step', name='uq_reminder')
    )

    # Open reports already in the database: the sweep plans them on its first pass (what is
    # overdue is then sent once, coalesced).
    op.execute("UPDATE reports SET next_due_at = created_at WHERE status <> 'closed'")


def downgrade() -> None:
    op.drop_table('reminders_sent')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('nudged_at')
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.drop_index('ix_reports_identity_kept')
        batch_op.drop_index('ix_reports_photos_kept')
        batch_op.drop_index(batch_op.f('ix_reports_next_due_at'))
        batch_op.drop_column('identity_purged_at')
        batch_op.drop_column('photos_purged_at')
        batch_op.drop_column('still_there_at')
        batch_op.drop_column('still_there')
        batch_op.drop_column('sched_claimed_until')
        batch_op.drop_column('next_due_at')
