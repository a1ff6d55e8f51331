#!/bin/sh
# First start: create the cluster and the sandbox database, password from the environment.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}" > "$pwfile"
    # UTF-8 explicitly: a minimal image has no locale, and SQL_ASCII would hand clients bytes.
    initdb --username=postgres --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 --auth-host=scram-sha-256 --auth-local=peer -D "$PGDATA"
    rm -f "$pwfile"
    echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    psql -v ON_ERROR_STOP=1 -c "CREATE USER sandbox PASSWORD '${POSTGRES_PASSWORD}'" \
         -c "CREATE DATABASE sandbox OWNER sandbox"
    pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -D "$PGDATA" -c listen_addresses='*'
