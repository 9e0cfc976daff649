#!/usr/bin/env python3
"""Cycles per time step against the batch (``time_steps`` T) and the weight bandwidth (issue 13; Sung and Park).

A serial SRU whose weights stream from the simulated flash is bound by the stream: a step needs every weight
word once, the lanes use a word a cycle, the board's flash gives a quarter byte a cycle. With T > 1 a weight
fetched once serves the T steps of a batch, so a step costs ``max(stream, T * compute) / T`` plus the
per-step overheads (the input's load, the output's push, each layer's last gate phase). The ceiling is the
arithmetic intensity: a circulant block already reuses each weight k times inside a step, so the lanes need
one weight word a cycle whatever k; batching gains at most the stream's time over the lanes' time (4x with
8-bit weights at a quarter byte a cycle, 8x with 16-bit weights), and a dense datapath (no reuse inside a
step) would be needed for more.

Measured in the Amaranth simulator (``step_cycles``: the input always there, the output always taken; two
whole batches, each step a batch's cycles over T), for T in 1, 2, 4, 8, 16 and several bandwidths, beside the
on-chip design's cycles (T = 1, the same lanes) and the bound ``max(stream, T * lanes-time) / T``. The latency
cost: a batch's first output comes after the whole batch (about T times its per-step cycles after its last
input), printed as ``first out``.

    python scripts/bench_time_steps.py                      # about 10 minutes
    python scripts/bench_time_steps.py --plot docs/time_steps.png --json out/time_steps.json

Nothing here is asserted: the numbers are for the docs and the notes.
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

from rnnaccel.flow.sim_amaranth import step_cycles
from rnnaccel.hw.weight_source import flash_model_timing
from rnnaccel.layout.image import weight_stream_step_words, weight_stream_word_bits
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import QFormat
from rnnaccel.numeric.model import random_weights

#: a 64x64 SRU (its x highway), k = 4, 4 lanes, 8-bit weights, streamed from the flash; and with 16-bit weights
SRU = preset("tiny").replace(
    cell="sru",
    input_size=64,
    hidden_size=64,
    datapath="serial",
    lanes=4,
    pe_cols=1,
    weight_source="flash",
    weights_in_rom=True,
    name="sru64-flash",
)
DESIGNS = [
    ("sru 64x64 k4 4 lanes, 8-bit weights", SRU),
    ("sru 64x64 k4 4 lanes, 16-bit", SRU.replace(q_weight=QFormat(16, 14))),
]
STEPS = [1, 2, 4, 8, 16]
BANDWIDTHS = [Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1)]


def measure(cfg, weights, T, bandwidth):
    timing = {"bytes_per_cycle": float(bandwidth), "latency": flash_model_timing()["latency"]}
    c = cfg.replace(time_steps=T)
    per = step_cycles(c, weights, 2 * T, weight_timing=timing)
    return sum(per) / len(per)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--plot", type=Path, help="cycles per step against T, a line per bandwidth (PNG)")
    args = ap.parse_args()
    rows = []
    started = time.time()
    for label, cfg in DESIGNS:
        weights = random_weights(cfg, seed=1)
        onchip = step_cycles(cfg.replace(weight_source="onchip"), weights, 2)[-1]
        word_bytes = weight_stream_word_bits(cfg) // 8
        stream_bytes = weight_stream_step_words(cfg) * word_bytes
        lanes_time = cfg.ideal_cycles_per_step
        print(f"\n{label}: {stream_bytes} stream bytes a step, the lanes' {lanes_time} cycles; on chip {onchip}")
        print(f"{'B/cycle':>8} {'T':>3} {'cycles/step':>12} {'bound':>8} {'vs T=1':>7} {'first out':>10}")
        for bw in BANDWIDTHS:
            base = None
            for T in STEPS:
                got = measure(cfg, weights, T, bw)
                base = base or got
                bound = max(float(stream_bytes / bw), T * lanes_time) / T
                first_out = got * T  # the batch's outputs come after its last layer's gate phase
                rows.append(
                    dict(
                        design=label,
                        bytes_per_cycle=float(bw),
                        time_steps=T,
                        cycles_per_step=got,
                        bound=bound,
                        speedup=base / got,
                        onchip=onchip,
                        first_output_cycles=first_out,
                    )
                )
                print(f"{str(bw):>8} {T:>3} {got:>12.1f} {bound:>8.0f} {base / got:>6.2f}x {first_out:>10.0f}")
    print(f"\n({time.time() - started:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(DESIGNS), figsize=(6 * len(DESIGNS), 4), squeeze=False)
        for ax, (label, _) in zip(axes[0], DESIGNS):
            for bw in BANDWIDTHS:
                pts = [r for r in rows if r["design"] == label and r["bytes_per_cycle"] == float(bw)]
                ax.plot(
                    [r["time_steps"] for r in pts], [r["cycles_per_step"] for r in pts], "o-", label=f"{bw} B/cycle"
                )
            ax.axhline(pts[0]["onchip"], color="k", ls="--", label="on-chip weights, T = 1")
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("time steps per weight fetch (T)")
            ax.set_ylabel("cycles per step")
            ax.set_title(label)
            ax.legend(fontsize=8)
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
