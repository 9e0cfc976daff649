#!/usr/bin/env python3
"""Cycles per step of one core against N cores (issue 14, Peng et al.), in the three modes.

Runs :class:`rnnaccel.hw.multicore.MultiCore` in the Amaranth simulator (cycle-exact with its Verilog) with no
host stalls, and takes the steady state from the cycle at which each step's last output word leaves
(steps after ``--warmup``):

* **programs** (multi-programming): N independent models of the preset's shape (seeded differently), all
  streams at once. One core has to time-share them: a round of one step of every model costs the sum of
  their one-core cycles per step (measured on a one-core design each; no cost is charged for switching
  models, which favours the single core). N cores: the cycles per round of the concurrent run.
* **layers** (layer pipeline): a stack of N x ``--layers-per-core`` layers of the preset; one core runs the
  whole stack, N cores one group of layers each.
* **helpers** (helper cores): one model of the preset's cell and core with ``--helpers-size`` inputs and
  hidden units (``--helpers-layers`` layers; wide layers are what this mode is for); one core runs it
  alone, N cores each compute a slice of every layer's rows and exchange their h slices after each layer.
  The exchange column: cycles per step with some core in its exchange (``GATHER``) phase, measured by the
  MultiCore's ``exchange_cycles`` counter (part of it runs beside the next step's input projection).

Speed-up = one core / N cores; ideal N (for programs the models' sum over their largest). Peng et al. report
1.98x (multi-programming), 1.91x (multithreading) and 1.88x (helper cores) for 2 cores.

    python scripts/bench_multicore.py                        # lstm-small shape, 2 and 4 cores, all modes
    python scripts/bench_multicore.py --steps 12 --warmup 3 --helpers-layers 1,2 --plot docs/multicore.png
    python scripts/bench_multicore.py --modes "" --merge A.json --merge B.json --plot P.png   # table/plot of runs
    python scripts/bench_multicore.py --preset tiny --cores 2 --steps 12 --json out/multicore.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rnnaccel.flow.sim_multicore import run_layers_amaranth, run_programs_amaranth
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights


def steady(when: list[int], hidden: int, warmup: int) -> float:
    """Cycles per step after ``warmup`` steps, from the arrival cycle of each step's last word."""
    done = [when[(s + 1) * hidden - 1] for s in range(len(when) // hidden)]
    k = min(warmup, len(done) - 2)
    return (done[-1] - done[k]) / (len(done) - 1 - k)


def _inputs(cfg, steps, seed):
    rng = np.random.default_rng(seed)
    return quantize(rng.uniform(-1, 1, size=(steps, cfg.input_size)), cfg.q_state)


def bench_programs(base, n: int, steps: int, warmup: int) -> dict:
    cfgs = [base.replace(seed=i) for i in range(n)]
    models = [(c, random_weights(c, 100 + i)) for i, c in enumerate(cfgs)]
    xs = {i: _inputs(c, steps, i) for i, c in enumerate(cfgs)}
    one = []
    for i, model in enumerate(models):
        _, info = run_programs_amaranth([model], [("reset", 0), ("run", {0: xs[i]})])
        one.append(steady(info["runs"][0]["when"][0], cfgs[i].hidden_size, warmup))
    _, info = run_programs_amaranth(models, [("run", xs)])
    when = info["runs"][0]["when"]
    # a round: every model one step further; the slowest core sets the pace
    multi = max(steady(when[i], cfgs[i].hidden_size, warmup) for i in range(n))
    return {
        "mode": "programs",
        "cores": n,
        "one_core": sum(one),
        "per_model_one_core": one,
        "n_cores": multi,
        "speedup": sum(one) / multi,
        "ideal": sum(one) / max(one),
    }


def bench_layers(base, n: int, per_core: int, steps: int, warmup: int) -> dict:
    stack = base.replace(num_layers=n * per_core)
    w = random_weights(stack, 7)
    x = _inputs(stack, steps, 0)
    _, info1 = run_layers_amaranth(stack.replace(cores=1, core_mode="layers"), w, [("reset",), ("run", x)])
    one = steady(info1["runs"][0]["when"][0], stack.hidden_size, warmup)
    multi_cfg = stack.replace(cores=n, core_mode="layers")
    _, info = run_layers_amaranth(multi_cfg, w, [("reset",), ("run", x)])
    multi = steady(info["runs"][0]["when"][n - 1], stack.hidden_size, warmup)
    return {
        "mode": "layers",
        "cores": n,
        "layers": stack.num_layers,
        "one_core": one,
        "n_cores": multi,
        "speedup": one / multi,
        "ideal": float(n),
    }


def bench_helpers(base, n: int, size: int, layers: int, steps: int, warmup: int) -> dict:
    model = base.replace(input_size=size, hidden_size=size, num_layers=layers)
    w = random_weights(model, 7)
    x = _inputs(model, steps, 0)
    ops = [("reset",), ("run", x)]
    _, info1 = run_layers_amaranth(model.replace(cores=1, core_mode="layers"), w, ops)
    one = steady(info1["runs"][0]["when"][0], size, warmup)
    _, info = run_layers_amaranth(model.replace(cores=n, core_mode="helpers"), w, ops)
    multi = steady(info["runs"][0]["when"][n - 1], size, warmup)
    return {
        "mode": "helpers",
        "cores": n,
        "layers": layers,
        "size": size,
        "one_core": one,
        "n_cores": multi,
        "exchange": info["runs"][0]["exchange_cycles"] / steps,
        "speedup": one / multi,
        "ideal": float(n),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lstm-small", help="the core and model shape (default lstm-small)")
    ap.add_argument("--cores", default="2,4", help="core counts, comma-separated (default 2,4)")
    ap.add_argument("--steps", type=int, default=16, help="time steps per stream (default 16)")
    ap.add_argument("--warmup", type=int, default=4, help="steps left out of the steady state (default 4)")
    ap.add_argument("--layers-per-core", type=int, default=1, help="layers mode: stack of N x this (default 1)")
    ap.add_argument("--helpers-size", type=int, default=128, help="helpers mode: input and hidden size (default 128)")
    ap.add_argument(
        "--helpers-layers",
        default="1",
        help="helpers mode: layers, comma-separated for several workloads (default 1; with 2 or more the exchange "
        "of every layer but the last is on the step's critical path)",
    )
    ap.add_argument("--modes", default="programs,layers,helpers")
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument(
        "--merge", action="append", default=[], help="rows of an earlier run (its --json) to show beside this run's"
    )
    ap.add_argument("--plot", help="write a PNG of speed-up against cores per mode here (needs matplotlib)")
    args = ap.parse_args(argv)
    base = preset(args.preset)
    rows = [r for f in args.merge for r in json.loads(Path(f).read_text())]
    t0 = time.time()
    for mode in filter(None, args.modes.split(",")):
        for n in (int(c) for c in args.cores.split(",")):
            start = len(rows)
            if mode == "programs":
                rows.append(bench_programs(base, n, args.steps, args.warmup))
            elif mode == "helpers":
                for layers in (int(v) for v in args.helpers_layers.split(",")):
                    rows.append(bench_helpers(base, n, args.helpers_size, layers, args.steps, args.warmup))
            else:
                rows.append(bench_layers(base, n, args.layers_per_core, args.steps, args.warmup))
            for r in rows[start:]:
                r.update(steps=args.steps, warmup=args.warmup)
            print(f"  {mode} x{n}: done ({time.time() - t0:.0f} s)", file=sys.stderr)
    print(
        f"{base.name}: {base.cell} {base.input_size}x{base.hidden_size}, k={base.block_size}, "
        f"{base.pe_rows}x{base.pe_cols} PEs per core; steady state over steps "
        + ", ".join(sorted({f"{r.get('warmup', '?')}..{r.get('steps', 0) - 1}" for r in rows}))
    )
    print(
        f"{'mode':9} {'cores':>5} {'workload':>26} {'1 core':>9} {'N cores':>9} {'speed-up':>9} {'ideal':>6} "
        f"{'Peng (2 cores)':>14} {'exchange':>9}"
    )
    for r in rows:
        load = {
            "programs": f"{r['cores']} models",
            "layers": f"{r.get('layers')}-layer stack",
            "helpers": f"{r.get('layers')}-layer {r.get('size')}x{r.get('size')}",
        }[r["mode"]]
        peng = {"programs": "1.98x", "layers": "1.91x", "helpers": "1.88x"}[r["mode"]] if r["cores"] == 2 else ""
        xc = f"{r['exchange']:.1f}" if "exchange" in r else ""
        print(
            f"{r['mode']:9} {r['cores']:>5} {load:>26} {r['one_core']:>9.1f} {r['n_cores']:>9.1f} "
            f"{r['speedup']:>8.2f}x {r['ideal']:>5.2f}x {peng:>14} {xc:>9}"
        )
    print(
        "cycles per step: programs, one step of every model (one core time-shares them); layers and helpers, one "
        "step of the stack; exchange: helpers' cycles per step with some core in its GATHER phase"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.plot:
        _plot(rows, base, Path(args.plot))
    return 0


def _plot(rows, base, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    # one group of bars per workload (mode and, for helpers, layers), one bar per core count; a tick marks ideal
    groups = list(dict.fromkeys((r["mode"], r.get("layers") if r["mode"] == "helpers" else None) for r in rows))
    counts = sorted({r["cores"] for r in rows})
    width = 0.8 / len(counts)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for j, n in enumerate(counts):
        xs, ys, ideal = [], [], []
        for g, key in enumerate(groups):
            for r in rows:
                if r["cores"] == n and (r["mode"], r.get("layers") if r["mode"] == "helpers" else None) == key:
                    xs.append(g + (j - (len(counts) - 1) / 2) * width)
                    ys.append(r["speedup"])
                    ideal.append(r["ideal"])
        bars = ax.bar(xs, ys, width * 0.9, label=f"{n} cores")
        ax.bar_label(bars, labels=[f"{y:.2f}x" for y in ys], fontsize=8)
        ax.hlines(ideal, [x - width * 0.45 for x in xs], [x + width * 0.45 for x in xs], colors="black", linewidth=1)
    names = []
    for mode, layers in groups:
        size = next((r["size"] for r in rows if r["mode"] == "helpers"), 0)
        names.append(mode if layers is None else f"{mode}\n{layers}-layer {size}x{size}")
    ax.set_xticks(range(len(groups)), names)
    ax.set_title(f"speed-up over one core ({base.name} cores, cycles per step; black: ideal)")
    ax.set_ylabel("speed-up")
    ax.set_ylim(0, 1.2 * max(max(r["speedup"], r["ideal"]) for r in rows))
    ax.legend(loc="upper left", ncols=len(counts))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    sys.exit(main())
