#!/usr/bin/env bash
# Start the local PostgreSQL cluster when it is installed but not running (Debian's pg_ctlcluster).
# Prints what it did; never fails the build by itself: tests that need PostgreSQL say why they skip,
# and CI (MECR_REQUIRE_POSTGRES=1) makes a missing server an error.
set -u
if pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  exit 0
fi
if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d /etc/postgresql ]; then
  exit 0   # not installed: scripts/check-prereqs.sh says so, and how to get it
fi
version=$(ls /etc/postgresql | sort -V | tail -n 1)
echo "ensure-postgres: starting PostgreSQL $version/main"
pg_ctlcluster --skip-systemctl-redirect "$version" main start || \
  echo "ensure-postgres: could not start PostgreSQL (are you root?)" >&2
for _ in $(seq 1 30); do
  pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && exit 0
  sleep 1
done
echo "ensure-postgres: PostgreSQL did not become ready" >&2
exit 0
