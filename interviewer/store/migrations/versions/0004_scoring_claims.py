"""Scorers sharing the work (interviewer.scoring.claims): a lease on the answer, a claim log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "scoringclaim",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=False),
        sa.Column("scorer", sa.String(length=128), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=400), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoringclaim")),
    )
    with op.batch_alter_table("scoringclaim", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_scoringclaim_answer_id"), ["answer_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_scoringclaim_finished_at"), ["finished_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("scoringclaim", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scoringclaim_finished_at"))
        batch_op.drop_index(batch_op.f("ix_scoringclaim_answer_id"))
    op.drop_table("scoringclaim")
    with op.batch_alter_table("answer", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("claimed_by")
