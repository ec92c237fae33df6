"""Alembic environment of the billing tables (version table ``alembic_version``)."""

from backend.adapters.orm import metadata
from billtalk.db import run_env

run_env(metadata)
