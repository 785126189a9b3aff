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
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(_when("verified_at"))
        batch.add_column(sa.Column("api_key_id", BigId, nullable=True))
        batch.create_foreign_key("fk_auth_sessions_api_key", "api_keys", ["api_key_id"], ["id"])
    op.create_index("ix_auth_sessions_api_key", "auth_sessions", ["api_key_id"],
                    postgresql_where=sa.text("api_key_id IS NOT NULL"),
                    sqlite_where=sa.text("api_key_id IS NOT NULL"))
    with op.batch_alter_table("teammates") as batch:
        batch.add_column(sa.Column("totp_pending_session_id", BigId, nullable=True))
        batch.add_column(_when("totp_pending_expires_at"))
        batch.add_column(_when("exempt_run_started_at"))
        batch.add_column(_when("exempt_last_ended_at"))
    # Sessions opened before this version: the second factor that opened them counts as
    # verified when they began (a bypass code never counts).
    op.execute("UPDATE auth_sessions SET verified_at = created_at "
               "WHERE factor IS NOT NULL AND factor <> 'bypass'")


def downgrade() -> None:
    with op.batch_alter_table("teammates") as batch:
        batch.drop_column("exempt_last_ended_at")
        batch.drop_column("exempt_run_started_at")
        batch.drop_column("totp_pending_expires_at")
        batch.drop_column("totp_pending_session_id")
    op.drop_index("ix_auth_sessions_api_key", table_name="auth_sessions")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_constraint("fk_auth_sessions_api_key", type_="foreignkey")
        batch.drop_column("api_key_id")
        batch.drop_column("verified_at")
