"""worker heartbeats: which workers are alive, for the stall signal in /metrics and /readyz

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

from services.models import UTCDateTime

revision = "0007"
down_revision = "0006"
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


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
