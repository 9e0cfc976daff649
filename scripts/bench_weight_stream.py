#!/usr/bin/env python3
"""Cycles per time step with the weights streamed from the flash (``weight_source = 'flash'``, issue 13).

For each serial design: the step's cycles with on-chip weights and with the weights streamed from the
simulated flash, measured in the Amaranth simulator (``step_cycles``: no host stalls), beside the analytic cycle
model's figure and the stream's own bound (the step's stream bytes divided by the bandwidth, plus the first
word's latency). ``--bandwidth`` sweeps the source's bytes per cycle for the first design: where the stream stops
being the bound and the lanes are.

    python scripts/bench_weight_stream.py                  # about 2 minutes
    python scripts/bench_weight_stream.py --json out/stream.json
    python scripts/bench_weight_stream.py --large          # + a model larger than the iCE40UP5K (4 min)

``--large``: a 448x448 LSTM (k = 8, 4 lanes, the serial datapath of lstm512-ice40), 196 KiB of 8-bit weights
against the iCE40UP5K's 143 KiB of on-chip memory (128 KiB SPRAM, 15 KiB EBR), two steps from the simulated
flash in Verilator, checked bit for bit against the golden model, its cycles per step beside the cycle model's
and the time per step at the iCEBreaker's 12 MHz.

Nothing here is asserted: the numbers are for the docs and the notes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from fractions import Fraction
from pathlib import Path

from rnnaccel.explore.cycle_model import cycles_per_step
from rnnaccel.flow.sim_amaranth import step_cycles
from rnnaccel.hw.weight_source import flash_model_timing
from rnnaccel.layout.image import weight_stream_step_words, weight_stream_word_bits
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.model import random_weights

ICE40 = preset("lstm-small-ice40")

#: (label, config): the lstm-small-ice40 shape with its lanes, and with lanes = k (each weight streamed once)
DESIGNS = [
    ("lstm 32x32 k4 4 lanes", ICE40),
    ("lstm 32x32 k8 8 lanes", ICE40.replace(block_size=8, lanes=8)),
    ("lstm 32x32 k8 2 lanes", ICE40.replace(block_size=8, lanes=2)),
    ("rnn 64x64 k16 16 lanes", ICE40.replace(cell="rnn", input_size=64, hidden_size=64, block_size=16, lanes=16)),
]

BANDWIDTHS = [Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1), Fraction(2)]

#: a model larger than the iCE40UP5K's on-chip memory (``--large``): the lstm448-flash-ice40 preset
LARGE = preset("lstm448-flash-ice40")
UP5K_ONCHIP_BYTES = 4 * 32 * 1024 + 30 * 512  # four SPRAMs and thirty 4-kbit EBRs


def stream_bytes(cfg) -> int:
    return weight_stream_step_words(cfg) * weight_stream_word_bits(cfg) // 8


def measure(cfg, timing=None, steps: int = 2) -> int:
    sim = step_cycles(cfg, random_weights(cfg, seed=1), steps, weight_timing=timing)
    return sim[-1]


def run_large(cache: Path) -> dict:
    """The model larger than the chip: two steps in Verilator from the simulated flash, bit-exact."""
    import numpy as np

    from rnnaccel.flow.backends import run_session
    from rnnaccel.interface.session import golden_session

    cfg = LARGE
    model = cycles_per_step(cfg)
    print(
        f"\n{cfg.name}: {cfg.weight_bytes} weight bytes (the iCE40UP5K holds {UP5K_ONCHIP_BYTES} on chip), "
        f"{stream_bytes(cfg)} stream bytes per step; Verilator (several minutes) ..."
    )
    t0 = time.time()
    weights = random_weights(cfg, seed=1)
    x = np.random.default_rng(2).integers(-4096, 4096, size=(2, cfg.input_size))
    ops = [("reset",), ("run", x)]
    got, counters = run_session(cfg, weights, ops, "verilator", cache_dir=cache)
    exact = all(np.array_equal(g, w) for g, w in zip(got, golden_session(cfg, weights, ops)))
    per_step = counters[-1]["cycles"] / counters[-1]["steps"]
    print(
        f"bit-exact: {exact}; {per_step:.0f} cycles per step (cycle model {model}, on-chip ideal "
        f"{cfg.ideal_cycles_per_step}); {per_step / 12e6 * 1e3:.1f} ms per step at 12 MHz ({time.time() - t0:.0f} s)"
    )
    return {"bit_exact": exact, "cycles_per_step": per_step, "model": model, "weight_bytes": cfg.weight_bytes}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--no-bandwidth", action="store_true", help="skip the bandwidth sweep")
    ap.add_argument("--large", action="store_true", help="also run the 448x448 LSTM in Verilator (bit-exact)")
    ap.add_argument("--cache", type=Path, default=Path("out/bench_weight_stream"), help="Verilator build folder")
    args = ap.parse_args()
    flash = flash_model_timing()
    print(f"flash model: {flash['bytes_per_cycle']} bytes per cycle, {flash['latency']} cycles to the first word")
    rows = []
    print(f"{'design':26s} {'onchip':>8s} {'flash':>8s} {'model':>8s} {'bound':>8s} {'x onchip':>9s} {'stream B':>9s}")
    for label, base in DESIGNS:
        t0 = time.time()
        onchip = measure(base.replace(weight_source="onchip"))
        cfg = base.replace(weight_source="flash")
        got = measure(cfg)
        model = cycles_per_step(cfg)
        nbytes = stream_bytes(cfg)
        bound = math.ceil(nbytes / flash["bytes_per_cycle"]) + flash["latency"]
        rows.append(
            {
                "design": label,
                "onchip": onchip,
                "flash": got,
                "model": model,
                "stream_bound": bound,
                "stream_bytes": nbytes,
            }
        )
        print(
            f"{label:26s} {onchip:8d} {got:8d} {model:8d} {bound:8d} {got / onchip:9.2f} {nbytes:9d}"
            f"   ({time.time() - t0:.0f} s)"
        )
    sweep = []
    if not args.no_bandwidth:
        label, base = DESIGNS[1]
        cfg = base.replace(weight_source="flash")
        onchip = rows[1]["onchip"]
        print(f"\nbandwidth sweep, {label} (on-chip {onchip} cycles per step):")
        print(f"{'bytes/cycle':>11s} {'measured':>9s} {'model':>8s} {'bound':>8s} {'x onchip':>9s}")
        for bpc in BANDWIDTHS:
            timing = {"bytes_per_cycle": bpc, "latency": flash["latency"]}
            got = measure(cfg, timing)
            model = cycles_per_step(cfg, timing)
            bound = math.ceil(stream_bytes(cfg) / bpc) + flash["latency"]
            sweep.append({"bytes_per_cycle": str(bpc), "measured": got, "model": model, "stream_bound": bound})
            print(f"{str(bpc):>11s} {got:9d} {model:8d} {bound:8d} {got / onchip:9.2f}")
    large = None
    if args.large:
        large = run_large(args.cache)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"flash": {k: str(v) for k, v in flash.items()}, "designs": rows, "sweep": sweep, "large": large},
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
