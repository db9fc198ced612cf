#!/bin/sh
# Run once by the postgres image on an empty data volume: a database and a login role per
# service, each database owned by its service's role and closed to everyone else, so that
# no service can read another's data. The roles share POSTGRES_PASSWORD: this is for
# Compose on a workstation; Kubernetes takes per-service credentials (docs/deploy.md).
set -eu
for service in catalog identity inventory notifications orders payments psp; do
  psql --no-psqlrc -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v service="$service" -v password="$POSTGRES_PASSWORD" <<'SQL'
CREATE ROLE :"service" LOGIN PASSWORD :'password';
CREATE DATABASE :"service" OWNER :"service";
REVOKE ALL ON DATABASE :"service" FROM PUBLIC;
SQL
done
