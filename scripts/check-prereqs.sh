#!/usr/bin/env bash
# `make test` prerequisites beyond Python 3.11: one line for each thing that is missing, saying what is then
# skipped and how to get it. Never fails by itself: the tests that need what is missing skip with the reason
# shown, and CI (MECR_REQUIRE_POSTGRES=1, MECR_REQUIRE_BROWSER=1) turns those skips into failures.
set -u
backends="${MECR_TEST_BACKENDS:-sqlite,postgres}"

if [[ ",$backends," == *",postgres,"* && -z "${MECR_TEST_PG_URL:-}" ]] \
   && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "make test: no PostgreSQL on 127.0.0.1:5432, so the PostgreSQL half of the tests is skipped; get it with" \
       "'apt-get install postgresql' (user postgres, trust auth for 127.0.0.1) or set MECR_TEST_PG_URL" >&2
fi

chromium="${MECR_CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x "$chromium" ]] && ! command -v "$chromium" >/dev/null 2>&1; then
  echo "make test: no Chromium at $chromium, so the browser tests are skipped; get it with" \
       "'apt-get install chromium' or set MECR_CHROMIUM to a Chromium binary" >&2
fi
exit 0
