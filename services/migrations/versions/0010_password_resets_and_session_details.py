"""password reset links (hashed, single use); sessions keep the address and browser that
opened them

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, services.models.UTCDateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    # Plain ADD COLUMN (nullable columns): SQLite needs no table copy for it.
    op.add_column("auth_sessions", sa.Column("ip", sa.String(64), nullable=True))
    op.add_column("auth_sessions", sa.Column("user_agent", sa.String(256), nullable=True))
    op.create_table(
        "password_resets",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("teammate_id", BigId, sa.ForeignKey("teammates.id"), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _when("created_at", nullable=False),
        _when("expires_at", nullable=False),
        _when("used_at"),
        _when("voided_at"),
    )
    op.create_index("ix_password_resets_teammate_created", "password_resets",
                    ["teammate_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_password_resets_teammate_created", table_name="password_resets")
    op.drop_table("password_resets")
    op.drop_column("auth_sessions", "user_agent")
    op.drop_column("auth_sessions", "ip")
