#!/usr/bin/env bash
# The repository is self-contained: no tracked file may refer to a `shared` folder beside it (`../shared`) or
# anywhere else (`shared/…`, `/ "shared"` in code). Test fixtures live in tests/fixtures (with their sources in
# tests/fixtures/SOURCES.tsv); code comments cite public sources, not private notes.
set -euo pipefail
cd "$(dirname "$0")/../.."

word='shar''ed'   # spelt in two parts so that this file does not match itself
patterns=(
  -e "\.\./${word}"                                # ../shared
  -e "(^|[^A-Za-z0-9_-])${word}/"                  # shared/…, /work/shared/…
  -e "/ *[\"']${word}[\"']"                        # Path(...) / "shared"
)
if hits=$(git grep -n -I -E "${patterns[@]}" -- . ':!.ci/checks.d/no-shared.sh'); then
  echo "$hits" >&2
  echo "no-shared: the files above refer to a '${word}' folder outside the repository; copy the fixture into" \
       "tests/fixtures/ (with a row in tests/fixtures/SOURCES.tsv) or cite the public source" >&2
  exit 1
fi
echo "no-shared: no tracked file refers to a '${word}' folder"
