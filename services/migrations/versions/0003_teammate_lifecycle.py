"""teammate lifecycle: a removed teammate's address may be added again

Uniqueness of addresses is the case-insensitive partial index of 0002 (teammates not
removed); the exact (workspace_id, email) constraint of 0001 would keep a removed address
from ever coming back, so it goes.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# SQLite's constraint from 0001 has no name; this convention names it for the batch rebuild.
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s_%(column_1_name)s"}
UNIQUE_INDEX = "ux_teammates_workspace_lower_email"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("teammates_workspace_id_email_key", "teammates", type_="unique")
        return
    # SQLite rebuilds the table; the functional index is dropped first and made again after,
    # since the rebuild cannot reflect an expression index.
    op.drop_index(UNIQUE_INDEX, table_name="teammates")
    with op.batch_alter_table("teammates", naming_convention=NAMING, recreate="always") as batch:
        batch.drop_constraint("uq_teammates_workspace_id_email", type_="unique")
    _unique_index()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("teammates_workspace_id_email_key", "teammates",
                                    ["workspace_id", "email"])
        return
    op.drop_index(UNIQUE_INDEX, table_name="teammates")
    with op.batch_alter_table("teammates", naming_convention=NAMING, recreate="always") as batch:
        batch.create_unique_constraint("uq_teammates_workspace_id_email", ["workspace_id", "email"])
    _unique_index()


def _unique_index() -> None:
    op.create_index(UNIQUE_INDEX, "teammates", ["workspace_id", sa.text("lower(email)")],
                    unique=True, sqlite_where=sa.text("status <> 'removed'"))
