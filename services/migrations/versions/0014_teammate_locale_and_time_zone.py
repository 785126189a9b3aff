"""a teammate's language (BCP 47: en, de, es; NULL until chosen: English) and time zone
(IANA name; NULL: UTC)

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("teammates") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=16), nullable=True))
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teammates") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("locale")
