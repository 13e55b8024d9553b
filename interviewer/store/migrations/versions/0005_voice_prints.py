"""Voice prints per interview (proctoring: the same voice in several interviews).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 18:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voiceprint",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("interview_id", sa.Integer(), nullable=False),
        sa.Column("answer_id", sa.Integer(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("vector", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["interview_id"],
            ["interview.id"],
            name=op.f("fk_voiceprint_interview_id_interview"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voiceprint")),
    )
    with op.batch_alter_table("voiceprint", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_voiceprint_interview_id"), ["interview_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("voiceprint", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voiceprint_interview_id"))
    op.drop_table("voiceprint")
