#!/bin/sh
# Run once by the postgres image's entrypoint, when the data directory is first initialised (the
# ConfigMap is mounted executable, so the entrypoint runs it instead of sourcing it into itself).
#
# Creates the role board-api connects as. It may log in to the wealist database and create and
# use tables in its public schema; it is no superuser and may not create roles or databases, so a
# compromised API cannot take the server. The superuser's credentials stay in this namespace.
#
# The name and password come from the board-api-db Secret; psql's :'var' / :"var" quote them, so
# any character is safe. Later password changes: ALTER ROLE (see the README, "Password rotation").
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --no-password --no-psqlrc \
  --set=app_user="$APP_DB_USER" --set=app_password="$APP_DB_PASSWORD" --set=db="$POSTGRES_DB" <<'SQL'
CREATE ROLE :"app_user" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'app_password';
REVOKE ALL ON DATABASE :"db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"db" TO :"app_user";
GRANT USAGE, CREATE ON SCHEMA public TO :"app_user";
SQL
