"""security keys and passkeys: credentials, challenges, the teammate's user handle, the
policy's allowed methods and their deadline, the kept count of teammates with a key

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = services.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("teammates") as batch:
        batch.add_column(sa.Column("webauthn_user_handle", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("webauthn_enabled_at", When, nullable=True))
    op.create_index("ux_teammates_webauthn_user_handle", "teammates", ["webauthn_user_handle"],
                    unique=True)
    with op.batch_alter_table("auth_sessions") as batch:
        batch.add_column(sa.Column("credential_id", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("allowed_methods", sa.String(length=16), nullable=False,
                                   server_default="any"))
        batch.add_column(sa.Column("methods_enforce_at", When, nullable=True))
    with op.batch_alter_table("workspace_counts") as batch:
        batch.add_column(sa.Column("with_keys", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "webauthn_credentials",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("teammate_id", BigId, sa.ForeignKey("teammates.id"), nullable=False),
        sa.Column("credential_id", sa.LargeBinary(), nullable=False, unique=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("rp_id", sa.String(length=253), nullable=False),
        sa.Column("transports", sa.JSON(), nullable=False),
        sa.Column("backed_up", sa.Boolean(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("last_used_at", When, nullable=True),
    )
    op.create_index("ix_webauthn_credentials_teammate_id", "webauthn_credentials", ["teammate_id"])
    op.create_table(
        "webauthn_challenges",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("challenge_hash", sa.String(length=64), nullable=False, unique=True),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("teammate_id", BigId, sa.ForeignKey("teammates.id"), nullable=True),
        sa.Column("auth_session_id", BigId, sa.ForeignKey("auth_sessions.id"), nullable=True),
        sa.Column("workspace_id", BigId, sa.ForeignKey("workspaces.id"), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.Column("used_at", When, nullable=True),
    )
    op.create_index("ix_webauthn_challenges_teammate_id", "webauthn_challenges", ["teammate_id"])
    op.create_index("ix_webauthn_challenges_expires_at", "webauthn_challenges", ["expires_at"])


def downgrade() -> None:
    op.drop_table("webauthn_challenges")
    op.drop_table("webauthn_credentials")
    with op.batch_alter_table("workspace_counts") as batch:
        batch.drop_column("with_keys")
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("methods_enforce_at")
        batch.drop_column("allowed_methods")
    with op.batch_alter_table("auth_sessions") as batch:
        batch.drop_column("credential_id")
    op.drop_index("ux_teammates_webauthn_user_handle", table_name="teammates")
    with op.batch_alter_table("teammates") as batch:
        batch.drop_column("webauthn_enabled_at")
        batch.drop_column("webauthn_user_handle")
