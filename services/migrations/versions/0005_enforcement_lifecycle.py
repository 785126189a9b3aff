"""grace periods, reminders, exemptions, and the join email as an invitation

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column:
    return sa.Column(name, services.models.UTCDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("grace_period_hours", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(_when("required_at"))
        batch.add_column(_when("enforce_at"))
    with op.batch_alter_table("teammates") as batch:
        batch.add_column(_when("exempt_until"))
        batch.add_column(sa.Column("exempt_reason", sa.String(length=500), nullable=True))
        batch.add_column(_when("join_sent_at"))
    op.create_table(
        "enrollment_reminders",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("workspaces.id"), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("due_at", services.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        _when("sent_at"),
        sa.Column("created_at", services.models.UTCDateTime(timezone=True), nullable=False),
    )
    # What older versions knew without these columns. A workspace requiring 2FA was turned on
    # by its latest policy change (there were no grace periods yet); a teammate who has not
    # joined has had their join email if its send was recorded for their current link.
    op.execute("""
        UPDATE workspaces SET required_at = COALESCE(
            (SELECT max(e.time) FROM events e
              WHERE e.workspace_id = workspaces.id AND e.type = 'twofa.policy.changed'),
            created_at)
        WHERE require_two_factor
    """)
    op.execute("""
        UPDATE teammates SET join_sent_at = (
            SELECT s.sent_at FROM sent_emails s
             WHERE s.key = 'join:' || CAST(teammates.id AS VARCHAR) || ':' || teammates.join_nonce)
        WHERE status = 'invited' AND join_nonce IS NOT NULL
    """)
    op.create_index("ix_enrollment_reminders_workspace_id", "enrollment_reminders",
                    ["workspace_id"])
    op.create_index("ix_reminders_status_due", "enrollment_reminders", ["status", "due_at"])


def downgrade() -> None:
    op.drop_table("enrollment_reminders")
    with op.batch_alter_table("teammates") as batch:
        batch.drop_column("join_sent_at")
        batch.drop_column("exempt_reason")
        batch.drop_column("exempt_until")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("enforce_at")
        batch.drop_column("required_at")
        batch.drop_column("grace_period_hours")
