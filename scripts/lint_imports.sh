#!/usr/bin/env bash
# The layer contract of pyproject.toml [tool.importlinter], checked by import-linter.
# The installed package maps gen/ -> rnnaccel, hw/ -> rnnaccel.hw, boards/ -> rnnaccel.boards
# (setuptools package-dir); import-linter walks a package's folder, so this lays the installed
# shape out as links to the sources in a temporary folder and checks that.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
# gen/ is the package root (with its subpackages); hw/ and boards/ are linked in beside them
(cd "$here/gen" && find . -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
    mkdir -p "$tree/rnnaccel/$(dirname "$f")"; ln -s "$here/gen/$f" "$tree/rnnaccel/$f"
done
for d in hw boards; do
    mkdir -p "$tree/rnnaccel/$d"
    for f in "$here/$d"/*.py; do ln -s "$f" "$tree/rnnaccel/$d/"; done
done
cd "$here"
PYTHONPATH="$tree" exec "$here/.venv/bin/lint-imports" "$here/pyproject.toml" --no-cache "$@"
