#!/usr/bin/env python3
"""Measure cycles per time step against the ideal, and where the extra cycles go.

Runs the accelerator in the Amaranth simulator (the same design the Verilog
comes from, cycle for cycle) on seeded random inputs and counts, every clock,
which phase of the sequencer's program is running (the ``phase`` port). Also
measures each matrix-vector plan of the MVU on its own (``MVUHarness``:
start to done) against its ideal ``rows * cols / multipliers``.

    python scripts/bench_cycles.py                       # lstm-small and gru-small, every cell type
    python scripts/bench_cycles.py --preset tiny --steps 4 --json out/bench.json
    python scripts/bench_cycles.py --preset lstm-small --layers 2 --steps 16   # the cell types on 2 layers
    python scripts/bench_cycles.py --preset lstm512-ice40 --steps 1   # serial datapath: ~1.5 min in pysim

Nothing here is asserted: the numbers are for the docs and the notes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from rnnaccel.numeric.config import CELL_VARIANTS, preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.hw.accelerator import make_accelerator, program
from rnnaccel.hw.array import loop_bound
from rnnaccel.explore.cycle_model import cycles_per_step
from rnnaccel.hw.sequencer import PHASE_CLEAR, PHASE_STEP_DONE
from rnnaccel.numeric.model import random_weights

VARIANTS = CELL_VARIANTS


def profile_steps(cfg, weights, steps: int, seed: int = 0) -> dict:
    """Run ``steps`` time steps; count cycles per program phase (no host stalls)."""
    from amaranth.sim import Simulator

    dut = make_accelerator(cfg, weights if cfg.weights_in_rom else None)
    prog = program(cfg)
    rng = np.random.default_rng(seed)
    x = quantize(rng.uniform(-1, 1, size=(steps, cfg.input_size)), cfg.q_state)
    words = [int(v) for v in x.reshape(-1)]
    hist: Counter = Counter()
    result = {}

    async def bench(ctx):
        # clear the state first (not counted)
        ctx.set(dut.i_cmd.payload, {"op": 1, "sel": 0, "addr": 0, "data": 0})
        ctx.set(dut.i_cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.i_cmd.valid, 0)
        while ctx.get(dut.phase) != 0:
            await ctx.tick()
        got, i = 0, 0
        ctx.set(dut.o_h.ready, 1)
        first = None  # the cycle counter when the first step is done (it cannot overlap a step before it)
        while got < steps * cfg.hidden_size or ctx.get(dut.phase) != 0:
            if first is None and ctx.get(dut.steps) >= 1:
                first = ctx.get(dut.cycles)
            if i < len(words):
                ctx.set(dut.i_x.valid, 1)
                ctx.set(dut.i_x.payload, words[i])
            else:
                ctx.set(dut.i_x.valid, 0)
            fire_in = ctx.get(dut.i_x.valid) and ctx.get(dut.i_x.ready)
            if ctx.get(dut.o_h.valid):
                got += 1
            ph = ctx.get(dut.phase)
            if ph != 0:
                hist[ph] += 1
            await ctx.tick()
            if fire_in:
                i += 1
        result.update(cycles=ctx.get(dut.cycles), wait=ctx.get(dut.wait_cycles), steps=ctx.get(dut.steps))
        result["steady"] = (result["cycles"] - first) / (result["steps"] - 1) if result["steps"] > 1 else None

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    phases = {}
    for ph, n in sorted(hist.items()):
        if ph == PHASE_STEP_DONE:
            name = "step done"
        elif ph == PHASE_CLEAR:
            name = "clear"
        else:
            p = prog[ph - 1]
            name = " ".join(str(a) for a in p)
        phases[name] = phases.get(name, 0) + n / steps
    result["per_step"] = result["cycles"] / result["steps"]
    result["phases_per_step"] = phases
    return result


def mvu_plans(cfg, weights) -> list[dict]:
    """Start-to-done cycles of every MVU plan, measured on the harness."""
    from amaranth.sim import Simulator

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sim_tests"))
    from mvu_harness import MVUHarness  # the MVU on its own, behind streams (a test harness)
    from rnnaccel.layout.image import plans

    out = []
    for plan in plans(cfg):
        dut = MVUHarness(cfg, weights, plan.index)
        measured = {}

        async def bench(ctx, dut=dut, plan=plan, measured=measured):
            ctx.set(dut.o.ready, 1)
            for _ in range(plan.cols):
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, 1)
                await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            n = 0
            while n < plan.rows:
                if ctx.get(dut.o.valid):
                    n += 1
                await ctx.tick()
            measured["cycles"] = ctx.get(dut.mvu_cycles)

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()
        ideal = plan.rows * plan.cols / cfg.multipliers
        out.append(
            {
                "layer": plan.layer,
                "matrix": plan.name,
                "rows": plan.rows,
                "cols": plan.cols,
                "ideal": ideal,
                "sweep": plan.sweep_cycles,
                "measured": measured["cycles"],
                "overhead": measured["cycles"] - plan.sweep_cycles,
            }
        )
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", action="append", help="presets (default: lstm-small gru-small)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument(
        "--no-variants",
        dest="variants",
        action="store_false",
        help="skip every cell type on the first preset's shape (skipped for a serial-datapath preset)",
    )
    ap.add_argument("--layers", type=int, help="the cell-type table on this many layers (default: the preset's)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    names = args.preset or ["lstm-small", "gru-small"]
    results = {"presets": {}, "variants": {}}
    t0 = time.time()
    for name in names:
        cfg = preset(name)
        w = random_weights(cfg)
        print(
            f"== {name}: {cfg.num_layers}-layer {cfg.cell} {cfg.input_size}->{cfg.hidden_size}, k={cfg.block_size}, "
            f"PEs {cfg.pe_rows}x{cfg.pe_cols}, {cfg.multipliers} multipliers",
            flush=True,
        )
        # the serial datapath has no separate MVU plans (its passes are part of the "mac" phase)
        plans_ = mvu_plans(cfg, w) if cfg.datapath == "array" else []
        for p in plans_:
            print(
                f"   MVU layer {p['layer']} {p['matrix']:3s} {p['rows']}x{p['cols']}: ideal {p['ideal']:.0f}, "
                f"sweep {p['sweep']}, measured start-to-done {p['measured']} (+{p['overhead']} latency/gaps)"
            )
        prof = profile_steps(cfg, w, args.steps)
        steady = prof["steady"]
        print(
            f"   step: {prof['per_step']:.1f} cycles over all {prof['steps']} steps; steady state (after the first) "
            + (f"{steady:.1f} (utilization {100 * cfg.ideal_cycles_per_step / steady:.1f}%)" if steady else "-")
            + f"; cycle model {cycles_per_step(cfg)}; ideal {cfg.ideal_cycles_per_step}"
        )
        for ph, n in prof["phases_per_step"].items():
            print(f"      {ph:24s} {n:8.1f}")
        results["presets"][name] = {"mvu": plans_, "step": prof, "ideal": cfg.ideal_cycles_per_step}
    base = preset(names[0])
    if args.layers:
        base = base.replace(num_layers=args.layers)
    variants = VARIANTS if args.variants and base.datapath == "array" else {}
    if variants:
        print(f"== every cell type on the {names[0]} shape, {base.num_layers} layer(s) ({args.steps} steps each)")
        print(
            "   steady state: the steps after the first (which cannot overlap a step before it); util = ideal /"
            " steady; of max = max(ideal, loop bound) / steady; model = the analytic cycle model"
        )
        print(
            f"   {'cell':22s} {'all steps':>9s} {'steady':>7s} {'model':>6s} {'ideal':>6s} {'util':>6s} {'loop':>6s}"
            f" {'of max':>6s}  beyond the ideal (per step over all steps)"
        )
    for label, changes in variants.items():
        cfg = base.replace(**changes)
        w = random_weights(cfg)
        prof = profile_steps(cfg, w, args.steps)
        extra = prof["per_step"] - cfg.ideal_cycles_per_step
        mvu_sweep = sum(p.sweep_cycles for p in __import__("rnnaccel.layout.image", fromlist=["plans"]).plans(cfg))
        mvu_time = sum(v for k, v in prof["phases_per_step"].items() if k.startswith("mvu"))
        gate_time = sum(v for k, v in prof["phases_per_step"].items() if k.startswith("gate"))
        other = prof["per_step"] - mvu_time - gate_time
        bound = loop_bound(cfg)
        target = max(cfg.ideal_cycles_per_step, bound)
        steady = prof["steady"] or prof["per_step"]
        model = cycles_per_step(cfg)
        print(
            f"   {label:22s} {prof['per_step']:9.1f} {steady:7.1f} {model if model is not None else '-':>6} "
            f"{cfg.ideal_cycles_per_step:6d} {100 * cfg.ideal_cycles_per_step / steady:5.1f}% {bound:6.0f} "
            f"{100 * target / steady:5.1f}%  +{extra:.0f}: MVU phases beyond the sweep "
            f"{mvu_time - mvu_sweep:.0f} (negative: hidden under the gate phase), gate phases {gate_time:.0f}, "
            f"load/copy/wait/step {other:.0f}"
        )
        results["variants"][label] = {
            "step": prof,
            "model": model,
            "ideal": cfg.ideal_cycles_per_step,
            "mvu_sweep": mvu_sweep,
            "loop_bound": bound,
        }
    print(f"({time.time() - t0:.1f} s)")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
