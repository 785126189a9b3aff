"""reminders per deadline: which teammates a reminder is for (everyone still to enroll, or,
under `security_keys` with two deadlines, those without any method or those with only an
app), and when the allowed methods last switched (the start of `methods_enforce_at`)

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

When = services.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("enrollment_reminders") as batch:
        batch.add_column(sa.Column("audience", sa.String(length=16), nullable=False,
                                   server_default="all"))
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("methods_switched_at", When, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("methods_switched_at")
    with op.batch_alter_table("enrollment_reminders") as batch:
        batch.drop_column("audience")
