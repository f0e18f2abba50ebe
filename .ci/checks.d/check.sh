#!/usr/bin/env bash
# The quality gate (#14): ruff check, ruff format --check and mypy, as `make check` runs them.
set -euo pipefail
cd "$(dirname "$0")/../.."
make check
