#!/usr/bin/env bash
# The repository is self-contained: no tracked file may refer to the sibling fixtures folder of the workspace
# (by a relative path up from the repository, an absolute path into it, or a path joined in code). Test fixtures live in tests/fixtures (with their sources in
# tests/fixtures/SOURCES.tsv); code comments cite public sources, not private notes.
set -euo pipefail
cd "$(dirname "$0")/../.."

word='shar''ed'   # spelt in two parts so that this file does not match itself
patterns=(
  -e "\.\./${word}"                                # up from the repository
  -e "(^|[^A-Za-z0-9_-])${word}/"                  # the folder by name, relative or absolute
  -e "/ *[\"']${word}[\"']"                        # joined with pathlib's /
)
if hits=$(git grep -n -I -E "${patterns[@]}" -- .); then
  echo "$hits" >&2
  echo "no-shared: the files above refer to a '${word}' folder outside the repository; copy the fixture into" \
       "tests/fixtures/ (with a row in tests/fixtures/SOURCES.tsv) or cite the public source" >&2
  exit 1
fi
echo "no-shared: no tracked file refers to a '${word}' folder"
