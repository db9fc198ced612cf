from chassis import run_alembic_env
from psp.adapters.orm import metadata

run_alembic_env(metadata)
