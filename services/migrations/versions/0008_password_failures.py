"""consecutive wrong passwords per (workspace, email): the per-teammate password bound

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "password_failures",
        sa.Column("key", sa.String(length=64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", services.models.UTCDateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("password_failures")
