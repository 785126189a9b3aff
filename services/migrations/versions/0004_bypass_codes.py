"""admin-issued bypass codes; the factor a session was opened with

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teammates") as batch:
        batch.add_column(sa.Column("bypass_code_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("bypass_expires_at",
                                   services.models.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("factor", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("factor")
    with op.batch_alter_table("teammates") as batch:
        batch.drop_column("bypass_expires_at")
        batch.drop_column("bypass_code_hash")
