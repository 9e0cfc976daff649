#!/usr/bin/env bash
# Set up (idempotent) and run the main job on the built-in default: generate the
# Verilog of the lstm-small preset, simulate it with cocotb in Icarus, compare
# with the golden model bit for bit and print the verdict and cycle figures.
#   bash scripts/demo.sh [rnnaccel demo options, e.g. --simulator verilator --preset gru-small]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$here/scripts/setup.sh"
cd "$here"
exec "$here/.venv/bin/rnnaccel" demo "$@"
