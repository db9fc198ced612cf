from chassis import run_alembic_env
from notifications.adapters.orm import metadata

run_alembic_env(metadata)
