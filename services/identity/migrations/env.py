from chassis import run_alembic_env
from identity.adapters.orm import metadata

run_alembic_env(metadata)
