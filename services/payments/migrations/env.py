from chassis import run_alembic_env
from payments.adapters.orm import metadata

run_alembic_env(metadata)
