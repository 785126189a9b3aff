"""worker heartbeats: which workers are alive; indexes that keep the stall check cheap

/metrics and /readyz check for a stall on every scrape and probe: the pending invitations
(few, but for a rollout under way) through a partial index, the latest send through one on
sent_at, never a scan of every invitation ever sent.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

from services.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("queues", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("beat_at", UTCDateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_invitations_pending", "enrollment_invitations", ["lease_until"],
                    postgresql_where=sa.text("status = 'pending'"),
                    sqlite_where=sa.text("status = 'pending'"))
    op.create_index("ix_invitations_sent_at", "enrollment_invitations", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_invitations_sent_at", "enrollment_invitations")
    op.drop_index("ix_invitations_pending", "enrollment_invitations")
    op.drop_table("worker_heartbeats")
