"""sessions remember their last second factor and the API key that opened them; a new
phone's pending secret belongs to one session and expires; exemption runs are remembered

Revision ID: 0007
Revises: 0006
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _when(name: str) -> sa.Column:
    return sa.Column(name, services.models.UTCDateTime(timezone=True), nullable=True)


def upgrade() -> None:
    # Plain ADD COLUMN (nullable columns): SQLite needs no table copy for it.
    op.add_column("auth_sessions", _when("verified_at"))
    op.add_column("auth_sessions", sa.Column("api_key_id", BigId, nullable=True))
    if op.get_bind().dialect.name == "postgresql":  # SQLite cannot add a constraint later
        op.create_foreign_key("fk_auth_sessions_api_key", "auth_sessions", "api_keys",
                              ["api_key_id"], ["id"])
    op.create_index("ix_auth_sessions_api_key", "auth_sessions", ["api_key_id"],
                    postgresql_where=sa.text("api_key_id IS NOT NULL"),
                    sqlite_where=sa.text("api_key_id IS NOT NULL"))
    op.add_column("teammates", sa.Column("totp_pending_session_id", BigId, nullable=True))
    for name in ("totp_pending_expires_at", "exempt_run_started_at", "exempt_last_ended_at"):
        op.add_column("teammates", _when(name))
    # Sessions opened before this version: the second factor that opened them counts as
    # verified when they began (a bypass code never counts).
    op.execute("UPDATE auth_sessions SET verified_at = created_at "
               "WHERE factor IS NOT NULL AND factor <> 'bypass'")


def downgrade() -> None:
    for name in ("exempt_last_ended_at", "exempt_run_started_at", "totp_pending_expires_at",
                 "totp_pending_session_id"):
        op.drop_column("teammates", name)
    op.drop_index("ix_auth_sessions_api_key", table_name="auth_sessions")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("fk_auth_sessions_api_key", "auth_sessions", type_="foreignkey")
    op.drop_column("auth_sessions", "api_key_id")
    op.drop_column("auth_sessions", "verified_at")
