"""teammate and 2FA counts kept per workspace; indexes for the teammates counted one by one

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspace_counts",
        sa.Column("workspace_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  sa.ForeignKey("workspaces.id"), primary_key=True),
        sa.Column("teammates", sa.Integer(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
    )
    op.execute("""
        INSERT INTO workspace_counts (workspace_id, teammates, enrolled)
        SELECT w.id,
               (SELECT count(*) FROM teammates t
                 WHERE t.workspace_id = w.id AND t.status <> 'removed'),
               (SELECT count(*) FROM teammates t
                 WHERE t.workspace_id = w.id AND t.status <> 'removed'
                   AND t.totp_enabled_at IS NOT NULL)
        FROM workspaces w
    """)
    op.create_index("ix_teammates_unjoined", "teammates", ["workspace_id"],
                    postgresql_where=sa.text("status = 'invited'"),
                    sqlite_where=sa.text("status = 'invited'"))
    op.create_index("ix_teammates_exempt", "teammates", ["workspace_id"],
                    postgresql_where=sa.text("exempt_until IS NOT NULL"),
                    sqlite_where=sa.text("exempt_until IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("ix_teammates_exempt", table_name="teammates")
    op.drop_index("ix_teammates_unjoined", table_name="teammates")
    op.drop_table("workspace_counts")
