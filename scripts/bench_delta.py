#!/usr/bin/env python3
"""Delta-network mode (issue 19), numeric benchmark: work skipped and error against the threshold.

For a model (default: the EdgeDRNN shape, GRU input 16, hidden 16, 2 layers,
seeded random weights, k = 4 and k = 1 (dense)) and an input stream that
changes slowly (default: a mix of sines plus a smoothed random walk; or the
test sequences of a UCR/UEA data set shipped in sktime, ``--dataset``), runs
the integer golden model in delta mode for each threshold (the same value for
inputs and hidden states unless ``--hidden``) and prints:

* ``skip col``: share of matrix columns skipped (zero delta), all matrices;
* ``skip blk``: share of block columns skipped (a k-segment with no change;
  the unit a circulant PE skips; = columns for k = 1);
* ``MACs/step``: effective multiply-accumulates per step (active block columns
  x k x padded rows) and their share of the dense count;
* ``MACs/8``: that count over 8 multipliers, the ideal cycles per step of an
  8-MAC array that skipped perfectly (a lower bound, not a measured cycle
  count: ``--simulate`` measures those);
* ``max err`` / ``rms err``: the last layer's hidden state against the exact
  outputs (threshold 0), in float units.

Those are counted from the golden model (``IntegerModel.stats``,
:class:`rnnaccel.numeric.delta.WorkStats`). With ``--simulate`` the delta
gateware (array datapath) runs the first sequence in the Amaranth simulator
(cycle-exact with the Verilog) and adds, per threshold, the measured cycles per
step (after ``--warmup`` steps) and the column tiles it skipped (its ``skipped``
counter, checked against the golden model's outputs bit for bit); the table
ends with the dense schedule (delta mode off) and the delta hardware at
threshold 0. The two default shapes have 8 multipliers each: k = 4 on 2 x 1
PEs of 4 lanes, and dense (k = 1) on one PE of 8 lanes.

    .venv/bin/python scripts/bench_delta.py
    .venv/bin/python scripts/bench_delta.py --simulate --sequences 1 --steps 120
    .venv/bin/python scripts/bench_delta.py --dataset JapaneseVowels --json /tmp/delta.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from rnnaccel.numeric.config import Config
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.numeric.model import random_weights

THRESHOLDS = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


def synthetic_stream(n: int, t: int, channels: int, seed: int) -> np.ndarray:
    """(n, t, channels): per channel a sum of two slow sines (random frequency and phase) plus a smoothed walk."""
    rng = np.random.default_rng(seed)
    steps = np.arange(t)[None, :, None]
    f = rng.uniform(0.005, 0.05, size=(n, 1, channels, 2))
    ph = rng.uniform(0, 2 * np.pi, size=(n, 1, channels, 2))
    amp = rng.uniform(0.2, 0.6, size=(n, 1, channels, 2))
    sines = (amp * np.sin(2 * np.pi * f * steps[..., None] + ph)).sum(axis=-1)
    walk = np.cumsum(rng.normal(scale=0.02, size=(n, t, channels)), axis=1)
    kernel = np.ones(8) / 8
    smooth = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 1, walk)
    return sines + smooth


def dataset_stream(name: str, n: int) -> tuple[np.ndarray, str]:
    """The first ``n`` test sequences at their true lengths, end to end as one stream (1, sum T, C)."""
    from rnnaccel.models.datasets import load_split

    split = load_split(name, "test")
    parts = [split.X[i, : split.lengths[i]].astype(np.float64) for i in range(min(n, len(split.X)))]
    x = np.concatenate(parts)[None]
    x = x / max(1e-9, np.abs(x).max()) * 2.0  # into +-2 (q_state Q3.12 holds +-8)
    return x, (
        f"{name} test split: {len(parts)} sequences end to end, {x.shape[1]} steps x {x.shape[2]} channels, "
        f"scaled to +-2"
    )


def simulate(cfg: Config, w, x: np.ndarray, warmup: int, delta: bool | None = None) -> dict:
    """Cycles per step of the first sequence in the Amaranth simulator (after ``warmup`` steps), skipped tiles."""
    from rnnaccel.flow.sim_amaranth import run_session_amaranth
    from rnnaccel.interface.session import golden_session
    from rnnaccel.numeric.fixedpoint import quantize

    xq = quantize(x[0], cfg.q_state)
    ops = [("reset",), ("run", xq[:warmup]), ("run", xq[warmup:])]
    got, counters = run_session_amaranth(cfg, w, ops, delta=delta)
    want = golden_session(cfg, w, ops)
    assert all(np.array_equal(g, v) for g, v in zip(got, want)), "the gateware differs from the golden model"
    steps = xq.shape[0] - warmup
    out = {"cycles_per_step": (counters[-1]["cycles"] - counters[0]["cycles"]) / steps}
    if "skipped" in counters[-1]:
        out["skipped_per_step"] = (counters[-1]["skipped"] - counters[0]["skipped"]) / steps
    return out


def bench(
    cfg: Config, x: np.ndarray, thresholds, hidden: float | None, seed: int, sim: bool = False, warmup: int = 8
) -> list[dict]:
    w = random_weights(cfg, seed=seed)
    rows = []
    exact = None
    for th in thresholds:
        c = cfg.replace(delta_threshold=th, delta_threshold_h=hidden)
        m = IntegerModel(c, w, delta=True)
        y = m.run_float(x)
        if exact is None:
            exact = y if th == 0 else IntegerModel(cfg, w).run_float(x)
        err = y - exact
        s = m.stats
        rows.append(
            {
                "threshold": th,
                "threshold_h": c.delta_threshold_hidden,
                "skip_cols": s.skip_fraction,
                "skip_blocks": s.block_skip_fraction,
                "macs_per_step": s.macs_per_step,
                "dense_macs_per_step": s.dense_macs_per_step,
                "mac_fraction": s.mac_fraction,
                "ideal_cycles_8": s.macs_per_step / 8,
                "max_err": float(np.abs(err).max()),
                "rms_err": float(np.sqrt(np.mean(err**2))),
                "by_matrix": {
                    k: v["block_cols_skipped"] / v["block_cols"] for k, v in s.as_dict()["by_matrix"].items()
                },
            }
        )
        if sim:
            rows[-1].update(simulate(c, w, x, warmup, delta=True))
    if sim:
        rows.append({"threshold": None, "label": "dense schedule (delta off)", **simulate(cfg, w, x, warmup)})
    return rows


def table(title: str, rows: list[dict]) -> str:
    out = [
        title,
        f"{'thr x':>7} {'thr h':>7} {'skip col':>9} {'skip blk':>9} {'MACs/step':>10} {'of dense':>9} "
        f"{'MACs/8':>7} {'max err':>9} {'rms err':>9}",
    ]
    sim = "cycles_per_step" in rows[0]
    if sim:
        out[1] += f" {'cyc/step':>9} {'skip/step':>9}"
    for r in rows:
        if r["threshold"] is None:
            out.append(f"{r['label']}: {r['cycles_per_step']:.1f} cycles per step (measured)")
            continue
        extra = f" {r['cycles_per_step']:9.1f} {r.get('skipped_per_step', 0):9.2f}" if sim else ""
        out.append(
            f"{r['threshold']:7.3f} {r['threshold_h']:7.3f} {100 * r['skip_cols']:8.1f}% "
            f"{100 * r['skip_blocks']:8.1f}% {r['macs_per_step']:10.1f} {100 * r['mac_fraction']:8.1f}% "
            f"{r['ideal_cycles_8']:7.1f} {r['max_err']:9.5f} {r['rms_err']:9.5f}" + extra
        )
    out.append(
        f"(dense: {rows[0]['dense_macs_per_step']} MACs per step, "
        f"{rows[0]['dense_macs_per_step'] / 8:.0f} ideal cycles on 8 multipliers)"
    )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cell", default="gru")
    ap.add_argument("--input", type=int, default=16)
    ap.add_argument("--hidden-size", type=int, default=16)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--k", type=int, nargs="+", default=[4, 1], help="block sizes (1 = dense)")
    ap.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    ap.add_argument(
        "--hidden", type=float, default=None, help="hidden-state threshold (default: the same as each input threshold)"
    )
    ap.add_argument("--dataset", default=None, help="a UCR/UEA set shipped in sktime (e.g. JapaneseVowels)")
    ap.add_argument("--sequences", type=int, default=8)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the rows as JSON")
    ap.add_argument("--simulate", action="store_true", help="measure cycles per step of the delta gateware")
    ap.add_argument("--warmup", type=int, default=8, help="steps before the measured ones (--simulate)")
    args = ap.parse_args(argv)

    if args.dataset:
        x, described = dataset_stream(args.dataset, args.sequences)
        inp = x.shape[2]
    else:
        inp = args.input
        x = synthetic_stream(args.sequences, args.steps, inp, args.seed)
        described = (
            f"synthetic: {args.sequences} sequences x {args.steps} steps x {inp} channels, "
            f"two slow sines + a smoothed random walk per channel (seed {args.seed})"
        )
    print(f"input: {described}")
    print("counts from the integer golden model (IntegerModel.stats); MACs/8 is an ideal bound, not cycles")
    if args.simulate:
        print(
            f"cyc/step, skip/step: measured in the Amaranth simulator on the first sequence (steps {args.warmup} "
            f"onwards); EdgeDRNN reports 190 cycles per step for this shape"
        )
    result = {}
    for k in args.k:
        cfg = Config(
            cell=args.cell,
            input_size=inp,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            block_size=k,
            lanes=8 if k == 1 else k,  # 8 multipliers: one PE of 8 lanes, or 2 x 1 PEs of k = 4
            pe_rows=1 if k == 1 else 8 // k,
            pe_cols=1,
            seed=args.seed,
        )
        rows = bench(cfg, x, args.thresholds, args.hidden, args.seed, args.simulate, args.warmup)
        title = (
            f"\n{cfg.num_layers}-layer {cfg.cell}, input {inp}, hidden {cfg.hidden_size}, k = {k}"
            f"{' (dense)' if k == 1 else ''}, {cfg.pe_rows} x {cfg.pe_cols} PEs of {cfg.lanes} lanes, "
            f"random weights (seed {args.seed})"
        )
        print(table(title, rows))
        result[f"k{k}"] = rows
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"input": described, "results": result}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
