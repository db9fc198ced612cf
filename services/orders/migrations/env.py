from chassis import run_alembic_env
from orders.adapters.orm import metadata

run_alembic_env(metadata)
