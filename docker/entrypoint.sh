#!/bin/sh
# Apply the database migrations first when TOWER_MIGRATE=1, then run the command
# (gunicorn by default; `tower worker`, `tower db upgrade`, ... when given).
# Migrating here, once, keeps several gunicorn workers from racing to create the
# schema of a fresh database.
set -eu

if [ "${TOWER_MIGRATE:-0}" = "1" ]; then
    tower db upgrade
fi

exec "$@"
