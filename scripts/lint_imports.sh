#!/usr/bin/env bash
# The layer contract of pyproject.toml [tool.importlinter], checked by import-linter.
# The installed package maps gen/ -> rnnaccel, hw/ -> rnnaccel.hw, boards/ -> rnnaccel.boards
# (setuptools package-dir); import-linter walks a package's folder, so this lays the installed
# shape out as links to the sources in a temporary folder and checks that.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree/rnnaccel/hw" "$tree/rnnaccel/boards"
for f in "$here"/gen/*.py; do ln -s "$f" "$tree/rnnaccel/"; done
for f in "$here"/hw/*.py; do ln -s "$f" "$tree/rnnaccel/hw/"; done
for f in "$here"/boards/*.py; do ln -s "$f" "$tree/rnnaccel/boards/"; done
cd "$here"
PYTHONPATH="$tree" exec "$here/.venv/bin/lint-imports" "$here/pyproject.toml" --no-cache "$@"
