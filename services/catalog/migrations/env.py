from catalog.adapters.orm import metadata
from chassis import run_alembic_env

run_alembic_env(metadata)
