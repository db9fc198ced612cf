from chassis import run_alembic_env
from inventory.adapters.orm import metadata

run_alembic_env(metadata)
