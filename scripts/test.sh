#!/usr/bin/env bash
# Set up (idempotent), lint, and run the whole test suite, as CI does.
#   bash scripts/test.sh            # the CI suite (excludes tests marked slow)
#   bash scripts/test.sh -m ""      # everything, including the full simulator matrix
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
cd "$here"
# lint and format check first (pyproject.toml [tool.ruff]; `ruff format gen hw boards sim_tests scripts`
# fixes the layout) and the layer contract ([tool.importlinter]: an upward import or an import cycle
# between layers fails); any of them fails the suite like a test
"$here/.venv/bin/ruff" check gen hw boards sim_tests scripts
"$here/.venv/bin/ruff" format --check gen hw boards sim_tests scripts
bash "$here/scripts/lint_imports.sh"
if [ $# -eq 0 ]; then
    set -- -m "not slow"
fi
exec "$here/.venv/bin/python" -m pytest -n 2 --dist load --durations=15 "$@"
