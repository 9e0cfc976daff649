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
  8-MAC array that skipped perfectly (a lower bound, **not** a measured cycle
  count: there is no delta gateware yet);
* ``max err`` / ``rms err``: the last layer's hidden state against the exact
  outputs (threshold 0), in float units.

Every number is counted from the golden model (``IntegerModel.stats``,
:class:`rnnaccel.numeric.delta.WorkStats`); none comes from hardware.

    .venv/bin/python scripts/bench_delta.py
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


def bench(cfg: Config, x: np.ndarray, thresholds, hidden: float | None, seed: int) -> list[dict]:
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
    return rows


def table(title: str, rows: list[dict]) -> str:
    out = [
        title,
        f"{'thr x':>7} {'thr h':>7} {'skip col':>9} {'skip blk':>9} {'MACs/step':>10} {'of dense':>9} "
        f"{'MACs/8':>7} {'max err':>9} {'rms err':>9}",
    ]
    for r in rows:
        out.append(
            f"{r['threshold']:7.3f} {r['threshold_h']:7.3f} {100 * r['skip_cols']:8.1f}% "
            f"{100 * r['skip_blocks']:8.1f}% {r['macs_per_step']:10.1f} {100 * r['mac_fraction']:8.1f}% "
            f"{r['ideal_cycles_8']:7.1f} {r['max_err']:9.5f} {r['rms_err']:9.5f}"
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
    print("all counts from the integer golden model (IntegerModel.stats); MACs/8 is an ideal bound, not cycles")
    result = {}
    for k in args.k:
        cfg = Config(
            cell=args.cell,
            input_size=inp,
            hidden_size=args.hidden_size,
            num_layers=args.layers,
            block_size=k,
            lanes=4 if k == 1 else k,
            pe_rows=1,
            pe_cols=2,
            seed=args.seed,
        )
        rows = bench(cfg, x, args.thresholds, args.hidden, args.seed)
        title = (
            f"\n{cfg.num_layers}-layer {cfg.cell}, input {inp}, hidden {cfg.hidden_size}, k = {k}"
            f"{' (dense)' if k == 1 else ''}, random weights (seed {args.seed})"
        )
        print(table(title, rows))
        result[f"k{k}"] = rows
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"input": described, "results": result}, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
