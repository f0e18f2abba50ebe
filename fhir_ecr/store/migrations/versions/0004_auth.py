"""Authorization: the EHR and API-client registries, sessions and tokens, single-use values.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ehr_registration",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("iss", sa.String(1024), nullable=False, unique=True),
        sa.Column("client_id", sa.String(256), nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=True),
        sa.Column("launch_scope", sa.Text, nullable=False),
        sa.Column("patient_scope", sa.Text, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_client",
        sa.Column("client_id", sa.String(256), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("jwks_url", sa.String(1024), nullable=True),
        sa.Column("jwks", sa.Text, nullable=True),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "auth_credential",
        sa.Column("key_hash", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("secret_enc", sa.Text, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_auth_credential_expires", "auth_credential", ["expires"])
    op.create_table(
        "auth_once",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_auth_once_expires", "auth_once", ["expires"])


def downgrade() -> None:
    op.drop_index("ix_auth_once_expires", table_name="auth_once")
    op.drop_table("auth_once")
    op.drop_index("ix_auth_credential_expires", table_name="auth_credential")
    op.drop_table("auth_credential")
    op.drop_table("api_client")
    op.drop_table("ehr_registration")
