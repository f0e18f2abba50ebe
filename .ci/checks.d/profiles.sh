#!/usr/bin/env bash
# The committed IG output (profiles/generated, docs/profiles) must be what the FSH sources compile to.
set -euo pipefail
profiles/build --check
