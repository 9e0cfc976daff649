#!/usr/bin/env python3
"""Cycles per step of one core against N cores (issue 14, Peng et al.), in both built modes.

Runs :class:`rnnaccel.hw.multicore.MultiCore` in the Amaranth simulator (cycle-exact with its Verilog) with no
host stalls, and takes the steady state from the cycle at which each step's last output word leaves
(steps after ``--warmup``):

* **programs** (multi-programming): N independent models of the preset's shape (seeded differently), all
  streams at once. One core has to time-share them: a round of one step of every model costs the sum of
  their one-core cycles per step (measured on a one-core design each; no cost is charged for switching
  models, which favours the single core). N cores: the cycles per round of the concurrent run.
* **layers** (layer pipeline): a stack of N x ``--layers-per-core`` layers of the preset; one core runs the
  whole stack, N cores one group of layers each.

Speed-up = one core / N cores; ideal N (for programs the models' sum over their largest). Peng et al. report
1.98x (multi-programming) and 1.91x (multithreading) for 2 cores.

    python scripts/bench_multicore.py                        # lstm-small shape, 2 and 4 cores
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="lstm-small", help="the core and model shape (default lstm-small)")
    ap.add_argument("--cores", default="2,4", help="core counts, comma-separated (default 2,4)")
    ap.add_argument("--steps", type=int, default=16, help="time steps per stream (default 16)")
    ap.add_argument("--warmup", type=int, default=4, help="steps left out of the steady state (default 4)")
    ap.add_argument("--layers-per-core", type=int, default=1, help="layers mode: stack of N x this (default 1)")
    ap.add_argument("--modes", default="programs,layers")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    base = preset(args.preset)
    rows = []
    t0 = time.time()
    for mode in args.modes.split(","):
        for n in (int(c) for c in args.cores.split(",")):
            if mode == "programs":
                rows.append(bench_programs(base, n, args.steps, args.warmup))
            else:
                rows.append(bench_layers(base, n, args.layers_per_core, args.steps, args.warmup))
            r = rows[-1]
            print(f"  {mode} x{n}: done ({time.time() - t0:.0f} s)", file=sys.stderr)
    print(
        f"{base.name}: {base.cell} {base.input_size}x{base.hidden_size}, k={base.block_size}, "
        f"{base.pe_rows}x{base.pe_cols} PEs per core; steady state over steps {args.warmup}..{args.steps - 1}"
    )
    print(
        f"{'mode':9} {'cores':>5} {'workload':>26} {'1 core':>9} {'N cores':>9} {'speed-up':>9} {'ideal':>6} "
        f"{'Peng (2 cores)':>14}"
    )
    for r in rows:
        load = f"{r['cores']} models" if r["mode"] == "programs" else f"{r['layers']}-layer stack"
        peng = {"programs": "1.98x", "layers": "1.91x"}[r["mode"]] if r["cores"] == 2 else ""
        print(
            f"{r['mode']:9} {r['cores']:>5} {load:>26} {r['one_core']:>9.1f} {r['n_cores']:>9.1f} "
            f"{r['speedup']:>8.2f}x {r['ideal']:>5.2f}x {peng:>14}"
        )
    print(
        "cycles per step: programs, one step of every model (one core time-shares them); layers, one step of the stack"
    )
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
