#!/bin/sh
# The rehearsal's stand-in for the postgres image's docker-entrypoint.sh: the same steps, in the
# same order, with the same defaults, so that what the image does with the rendered environment
# (POSTGRES_USER/PASSWORD/DB, PGDATA, the scripts mounted in /docker-entrypoint-initdb.d) is what
# the rehearsal does. It runs inside the rehearsed container: as its uid, on its volumes.
set -eu

# Like the image: options alone mean "postgres OPTIONS"; any other command runs as it is.
case "${1:-}" in -*) set -- postgres "$@" ;; esac
[ "${1:-}" = postgres ] || exec "$@"

PGDATA=${PGDATA:-/var/lib/postgresql/data}
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export PGDATA

# Like the image: create the data directory and make it private; fail if the volume forbids it.
mkdir -p "$PGDATA"
chmod 700 "$PGDATA" 2>/dev/null || :

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "Error: Database is uninitialized and superuser password is not specified." >&2
    exit 1
  fi
  # The image feeds the password through a process substitution; a file in the private /tmp
  # emptyDir does the same here (sh has no process substitution).
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a word list, as in the image
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" ${POSTGRES_INITDB_ARGS:-}
  rm -f "$pwfile"
  # initdb trusts local and loopback connections; the image adds password authentication for
  # every other host, which is how every other pod reaches the server.
  printf '\nhost all all all %s\n' "${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" >>"$PGDATA/pg_hba.conf"
  # The image's postgresql.conf listens on every address; initdb's default is localhost only.
  printf "listen_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

  # A temporary server on the unix socket only, for the set-up.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
  export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
  if [ "$POSTGRES_DB" != postgres ]; then
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc --dbname postgres \
      --set db="$POSTGRES_DB" <<'SQL'
CREATE DATABASE :"db" ;
SQL
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sh)
        # Executable scripts are run, others are sourced (the image does the same).
        # shellcheck source=/dev/null
        if [ -x "$f" ]; then echo "running $f"; "$f"; else echo "sourcing $f"; . "$f"; fi ;;
      *.sql)
        echo "running $f"
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \
          --dbname "$POSTGRES_DB" -f "$f" ;;
      *"/*") ;;  # the directory is empty or absent
      *) echo "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  unset PGPASSWORD
  echo "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
