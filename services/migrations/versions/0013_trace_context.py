"""trace context kept with events, outbox messages and webhook deliveries (OpenTelemetry)

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("events", "outbox", "webhook_deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("trace_context", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in ("events", "outbox", "webhook_deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("trace_context")
