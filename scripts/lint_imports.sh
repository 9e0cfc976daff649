#!/usr/bin/env bash
# The layer contract of pyproject.toml [tool.importlinter], checked by import-linter.
# The installed package maps gen/ -> rnnaccel, hw/ -> rnnaccel.hw, boards/ -> rnnaccel.boards
# (setuptools package-dir); import-linter walks a package's folder, so this lays the installed
# shape out as links to the sources in a temporary folder and checks that.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
# link the sources of folder $1 (with its subpackages) in as $2 under the temporary tree
link_tree() {
    (cd "$here/$1" && find . -name '*.py' -not -path '*/__pycache__/*') | while read -r f; do
        mkdir -p "$tree/$2/$(dirname "$f")"; ln -s "$here/$1/$f" "$tree/$2/$f"
    done
}
# gen/ is the package root (with its subpackages); hw/ and boards/ (with theirs, e.g. hw/hostlink/) beside them
link_tree gen rnnaccel
link_tree hw rnnaccel/hw
link_tree boards rnnaccel/boards
cd "$here"
PYTHONPATH="$tree" exec "$here/.venv/bin/lint-imports" "$here/pyproject.toml" --no-cache "$@"
