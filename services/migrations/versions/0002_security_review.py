"""security review: host sessions, expiring join tokens, case-insensitive unique emails

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

import services.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _refuse_case_duplicates()
    with op.batch_alter_table("auth_sessions") as batch_op:
        batch_op.add_column(sa.Column("origin", sa.String(length=16), nullable=False,
                                      server_default="password"))
    with op.batch_alter_table("teammates") as batch_op:
        batch_op.add_column(sa.Column("join_expires_at",
                                      services.models.UTCDateTime(timezone=True), nullable=True))
    op.create_index("ux_teammates_workspace_lower_email", "teammates",
                    ["workspace_id", sa.text("lower(email)")], unique=True,
                    postgresql_where=sa.text("status <> 'removed'"),
                    sqlite_where=sa.text("status <> 'removed'"))
    # Join links sent before this migration get the default lifetime from now on.
    op.execute(sa.text(
        "UPDATE teammates SET join_expires_at = :until WHERE join_token_hash IS NOT NULL"
    ).bindparams(sa.bindparam("until", _week_from_now(),
                              type_=services.models.UTCDateTime(timezone=True))))


def downgrade() -> None:
    op.drop_index("ux_teammates_workspace_lower_email", table_name="teammates")
    with op.batch_alter_table("teammates") as batch_op:
        batch_op.drop_column("join_expires_at")
    with op.batch_alter_table("auth_sessions") as batch_op:
        batch_op.drop_column("origin")


def _refuse_case_duplicates() -> None:
    """Stop, naming them, if two teammates of a workspace differ only in case: which one is
    the real person is for an operator to decide, so nothing is merged here."""
    rows = op.get_bind().execute(sa.text(
        "SELECT w.slug, lower(t.email), count(*) FROM teammates t "
        "JOIN workspaces w ON w.id = t.workspace_id WHERE t.status <> 'removed' "
        "GROUP BY w.slug, lower(t.email) HAVING count(*) > 1 ORDER BY 1, 2")).all()
    if rows:
        listed = "; ".join(f"{slug}: {email} ({n} rows)" for slug, email, n in rows)
        raise RuntimeError(
            "Teammates whose addresses differ only in case must be resolved before this "
            f"upgrade (remove or rename all but one of each): {listed}")


def _week_from_now():  # type: ignore[no-untyped-def]
    from datetime import timedelta

    return services.models.utcnow() + timedelta(days=7)
