#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 for the test suite.
# Uses a running server when there is one; otherwise installs Debian's postgresql and
# starts it. Prints the SQLAlchemy URL the tests should use on its last line.
set -euo pipefail

URL_TRUST="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TEST_PASSWORD="medlabel-test"
URL_PASSWORD="postgresql+psycopg://postgres:${TEST_PASSWORD}@127.0.0.1:5432/postgres"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
can_connect() { PGPASSWORD="$1" psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; }

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  echo "ensure-postgres: installing PostgreSQL from Debian" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  echo "ensure-postgres: starting PostgreSQL ${version}" >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi

if can_connect ""; then
  echo "$URL_TRUST"
  exit 0
fi
# A fresh Debian cluster uses password auth on TCP: give the postgres role a test password
# through the local socket (peer auth).
as_root su postgres -c "psql -qc \"ALTER USER postgres PASSWORD '${TEST_PASSWORD}'\"" >/dev/null
if can_connect "$TEST_PASSWORD"; then
  echo "$URL_PASSWORD"
  exit 0
fi
echo "ensure-postgres: PostgreSQL is running but refuses the postgres user on 127.0.0.1" >&2
exit 1
