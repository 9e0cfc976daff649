#!/usr/bin/env python3
"""One design, many model sizes: utilization of a run-time-dimension design across models (issue 12, item 3).

SHARP's headline figure on our hardware: a design generated once for the largest model (by default the
lstm-small array, 2x2 PEs of k = 4, 16 multipliers, with ``max_input_size = max_hidden_size = 64`` and
``max_layers = 2``) runs every model of its cell up to those sizes, each in its own compact layout
(``rnnaccel run MODEL --hardware DIR``). For each model of the grid this measures steady-state cycles per
step in simulation (the cycles of a run of 2 + 2 ``--steps`` steps minus those of a run of 2 + ``--steps``
steps, over ``--steps``: steps in full flow, none of them a run's first; seeded random weights and inputs; every
output compared with the model's golden model, bit for bit) against

* the ideal ``MACs / multipliers`` (``Config.ideal_cycles_per_step`` of the model on the design's grid), and
* the recurrence's loop bound, for cells with a recurrent matrix (:func:`rnnaccel.hw.array.loop_bound`):
  from h_t complete, the recurrent plans' sweeps, the MVU's latency and the gate unit's latency for the
  last element, the shortest a step can be when h_{t+1} needs all of U h_t.

    python scripts/bench_adaptive.py                                  # LSTM grid: 5 x 5 sizes, 1-2 layers
    python scripts/bench_adaptive.py --cells all --sizes 8 16 32 64   # every cell variant
    python scripts/bench_adaptive.py --backend amaranth --sizes 8 16 --layers 1 --steps 4   # smoke test
    python scripts/bench_adaptive.py --preset lstm-small-ice40 --cells lstm rnn sru qrnn-w1 qrnn-w2   # serial

``--preset`` picks the design's datapath and grid (``lstm-small-ice40``: the serial datapath, 4 lanes; its loop
bound is reported as 0: the serial step is its passes, which issue input and recurrent columns alike).

Writes ``OUT/adaptive.json``, ``OUT/adaptive.md`` (the table) and ``OUT/adaptive.png`` (utilization against
model size, one panel per layer count). Nothing is asserted: the numbers are for the docs and the notes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rnnaccel.flow.backends import run_session
from rnnaccel.hw.array import loop_bound
from rnnaccel.interface.session import golden_session
from rnnaccel.layout.runtime import DoesNotFit, model_on_design
from rnnaccel.numeric.config import CELL_VARIANTS, preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights

VARIANTS = CELL_VARIANTS


def measure(model, hardware, backend: str, steps: int, seed: int, cache) -> dict:
    """Steady-state cycles per step of ``model`` on ``hardware``; bit-exact check against the golden model."""
    weights = random_weights(model, seed=seed)
    rng = np.random.default_rng(seed)
    x = quantize(rng.uniform(-1, 1, size=(2 + 2 * steps, model.input_size)), model.q_state)
    # two sessions, one run each, of 2 + steps and 2 + 2 steps steps: the difference is ``steps`` steps of a
    # run in full flow (a run that starts from IDLE has a first step that cannot overlap the one before, which
    # a separate measured run after a warm-up run would count)
    exact, total = True, []
    for n in (2 + steps, 2 + 2 * steps):
        ops = [("reset",), ("run", x[:n])]
        got, counters = run_session(model, weights, ops, backend, hardware=hardware, cache_dir=cache)
        want = golden_session(model, weights, ops)
        exact = exact and all(np.array_equal(g, w) for g, w in zip(got, want))
        total.append(counters[0]["cycles"])
    cycles = (total[1] - total[0]) / steps
    run = model_on_design(model, hardware)
    ideal = run.ideal_cycles_per_step
    # the array's recurrence bound; the serial datapath issues a layer's input and recurrent columns in one pass
    # per row group, so its step is the passes (the ideal) plus a drain and a gate phase: no separate bound
    bound = float(loop_bound(run)) if run.datapath == "array" else 0.0
    return {
        "input": model.input_size,
        "hidden": model.hidden_size,
        "layers": model.num_layers,
        "tiles_in": -(-model.input_size // run.tile),
        "tiles_hidden": -(-model.hidden_size // run.tile),
        "ideal": ideal,
        "loop_bound": bound,
        "cycles_per_step": cycles,
        "utilization": ideal / cycles,
        "of_max_bound": max(ideal, bound) / cycles,
        "bit_exact": exact,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="lstm-small", help="the design's base preset (default lstm-small)")
    ap.add_argument("--max", type=int, nargs=3, default=[64, 64, 2], metavar=("IN", "HID", "LAYERS"))
    ap.add_argument("--cells", nargs="+", default=["lstm"], help=f"cell variants or 'all' ({', '.join(VARIANTS)})")
    ap.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 32, 48, 64], help="input and hidden sizes")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=16, help="measured steps per model (in full flow, after 2 steps)")
    ap.add_argument("--backend", default="verilator", choices=["amaranth", "icarus", "verilator"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", help="build cache folder (default ~/.cache/rnnaccel)")
    ap.add_argument("-o", "--out", default="out/adaptive")
    args = ap.parse_args(argv)
    cells = list(VARIANTS) if args.cells == ["all"] else args.cells
    unknown = [c for c in cells if c not in VARIANTS]
    if unknown:
        ap.error(f"unknown cell variant {unknown[0]!r} (known: {', '.join(VARIANTS)})")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = preset(args.preset)
    rows, t0 = [], time.time()
    for name in cells:
        n_in, n_hid, n_layers = args.max
        if VARIANTS[name]["cell"] == "sru":
            n_in = n_hid  # an SRU design without its s projection runs models with input == hidden
        hw = base.replace(
            **VARIANTS[name],
            weights_in_rom=False,
            max_input_size=n_in,
            max_hidden_size=n_hid,
            max_layers=n_layers,
        )
        print(
            f"== {name}: one design for up to {n_in} x {n_hid} x {n_layers} ({hw.pe_rows}x{hw.pe_cols} PEs, "
            f"k={hw.block_size}, {hw.multipliers} multipliers), {args.backend}",
            flush=True,
        )
        print(
            f"   {'in':>3s} {'hid':>3s} {'L':>2s} {'ideal':>6s} {'loop':>6s} {'cycles':>8s} {'util':>6s} {'of max':>6s}"
        )
        for layers in args.layers:
            for n_i in args.sizes:
                for n_h in args.sizes:
                    if VARIANTS[name]["cell"] == "sru" and n_i != n_h:
                        continue
                    try:
                        model = base.replace(
                            **VARIANTS[name],
                            input_size=n_i,
                            hidden_size=n_h,
                            num_layers=layers,
                            name=f"{name}-{n_i}x{n_h}x{layers}",
                        )
                        model_on_design(model, hw)
                    except (DoesNotFit, ValueError) as exc:
                        print(f"   {n_i:3d} {n_h:3d} {layers:2d}  skipped: {str(exc).splitlines()[0]}")
                        continue
                    r = measure(model, hw, args.backend, args.steps, args.seed, args.cache)
                    r["cell"] = name
                    rows.append(r)
                    print(
                        f"   {n_i:3d} {n_h:3d} {layers:2d} {r['ideal']:6d} {r['loop_bound']:6.0f} "
                        f"{r['cycles_per_step']:8.1f} {100 * r['utilization']:5.1f}% {100 * r['of_max_bound']:5.1f}%"
                        + ("" if r["bit_exact"] else "  NOT BIT-EXACT"),
                        flush=True,
                    )
    wall = time.time() - t0
    (out / "adaptive.json").write_text(
        json.dumps(
            {"preset": args.preset, "max": args.max, "backend": args.backend, "steps": args.steps, "rows": rows},
            indent=2,
        )
        + "\n"
    )
    lines = [
        "| cell | input | hidden | layers | ideal | loop bound | cycles/step | utilization | of max(ideal, bound) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['input']} | {r['hidden']} | {r['layers']} | {r['ideal']} | {r['loop_bound']:.0f} | "
            f"{r['cycles_per_step']:.1f} | {100 * r['utilization']:.1f}% | {100 * r['of_max_bound']:.1f}% |"
        )
    (out / "adaptive.md").write_text("\n".join(lines) + "\n")
    _plot(rows, args, out / "adaptive.png")
    bad = [r for r in rows if not r["bit_exact"]]
    print(f"{len(rows)} models, {len(bad)} not bit-exact; wrote {out}/adaptive.{{json,md,png}} ({wall:.0f} s)")
    return 1 if bad else 0


def _plot(rows, args, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: no plot", file=sys.stderr)
        return
    layers = sorted({r["layers"] for r in rows})
    if not layers:
        return
    fig, axes = plt.subplots(1, len(layers), figsize=(6 * len(layers), 4.5), squeeze=False)
    for ax, n_layers in zip(axes[0], layers):
        for cell in dict.fromkeys(r["cell"] for r in rows):
            for n_in in sorted({r["input"] for r in rows}):
                pts = sorted(
                    (r["hidden"], r["utilization"])
                    for r in rows
                    if r["cell"] == cell and r["layers"] == n_layers and r["input"] == n_in
                )
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=f"{cell}, input {n_in}")
        ax.axhline(0.9, color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{n_layers} layer(s) on one design (max {args.max[0]} x {args.max[1]} x {args.max[2]})")
        ax.set_xlabel("hidden size")
        ax.set_ylabel("utilization (ideal / measured cycles)")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    raise SystemExit(main())
