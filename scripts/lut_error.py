#!/usr/bin/env python3
"""Activation-table error: rnnaccel's tables against an hls4ml-style table.

Prints the max and mean absolute error of

* rnnaccel's default tables (``Config()``), with and without interpolation
  (exactly :func:`rnnaccel.numeric.lut.table_error`);
* an hls4ml-style table computed the way hls4ml's ``nnet_activation.h``
  does it: 1024 entries over [-8, 8) for sigmoid and [-4, 4) for tanh, no
  interpolation and no symmetry, entry i sampled at the LEFT edge of its step,
  ``table[i] = f(2R * (i - N/2) / N)``, looked up with
  ``index = floor((x + R) * N / (2R))`` clamped to [0, N-1], entries stored
  as 18-bit ``ap_fixed<18,8>`` (hls4ml's default ``table_t``: 10 fraction
  bits, AP_TRN, i.e. truncated towards -inf);
* the same hls4ml-style table with its entries rounded to rnnaccel's
  ``q_act`` instead, to separate the cost of the table layout from the cost
  of the word format.

Every variant is evaluated on the same inputs as ``lut.table_error``: every
representable ``q_pre`` value in [-2R, 2R). A plot of the signed error
against the input is written to ``DIR/lut_error.png``.

    python scripts/lut_error.py [--out DIR]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from rnnaccel.numeric import lut
from rnnaccel.numeric.config import Config
from rnnaccel.numeric.fixedpoint import QFormat, quantize

HLS4ML_ENTRIES = 1024
HLS4ML_RANGE = {"sigmoid": 8.0, "tanh": 4.0}
HLS4ML_WORD = QFormat(18, 10)  # ap_fixed<18,8>: 18 bits, 8 integer bits (sign included)


def input_grid(cfg: Config, fn: str) -> np.ndarray:
    """Raw q_pre inputs of ``lut.table_error``: every value in [-2R, 2R) (and 2R itself if representable)."""
    q_in = cfg.q_pre
    rng = cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range
    lim = int(math.ceil(2 * rng * 2**q_in.frac))
    return np.arange(max(q_in.min_raw, -lim), min(q_in.max_raw, lim) + 1, dtype=np.int64)


def hls4ml_table(
    fn: str, entries: int = HLS4ML_ENTRIES, word: QFormat | None = HLS4ML_WORD, truncate: bool = True
) -> np.ndarray:
    """hls4ml-style table as float values: left-edge samples, quantized to ``word``.

    ``truncate`` emulates AP_TRN (floor); otherwise round half up (rnnaccel's rule).
    """
    rng = HLS4ML_RANGE[fn]
    i = np.arange(entries, dtype=np.float64)
    xs = 2 * rng * (i - entries / 2) / entries
    vals = lut.float_fn(fn)(xs)
    if word is None:
        return vals
    if truncate:
        raw = np.clip(np.floor(vals * 2**word.frac), word.min_raw, word.max_raw)
    else:
        raw = quantize(vals, word)
    return raw * 2.0**-word.frac


def hls4ml_lookup(fn: str, x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """hls4ml's lookup: ``index = floor((x + R) * N / (2R))`` clamped to [0, N-1]."""
    rng = HLS4ML_RANGE[fn]
    n = table.size
    index = np.floor((np.asarray(x, dtype=np.float64) + rng) * n / (2 * rng)).astype(np.int64)
    return table[np.clip(index, 0, n - 1)]


def variants(cfg: Config, fn: str) -> list[tuple[str, int, str, np.ndarray, np.ndarray]]:
    """(label, stored words, word format, inputs as float, signed error) for each table of ``fn``."""
    raw = input_grid(cfg, fn)
    x = raw * cfg.q_pre.lsb
    want = lut.float_fn(fn)(x)
    out = []
    for interp in (True, False):
        c = cfg.replace(interpolate=interp)
        got = lut.lookup(c, fn, raw, c.q_pre.frac) * c.q_act.lsb
        label = f"rnnaccel {'interp' if interp else 'no interp'}"
        out.append((label, int(lut.table(c, fn).size), str(c.q_act), x, got - want))
    t = hls4ml_table(fn)
    out.append(("hls4ml ap_fixed<18,8> trunc", t.size, "18b frac 10", x, hls4ml_lookup(fn, x, t) - want))
    t = hls4ml_table(fn, word=cfg.q_act, truncate=False)
    out.append((f"hls4ml-style, {cfg.q_act} round", t.size, str(cfg.q_act), x, hls4ml_lookup(fn, x, t) - want))
    return out


def summary(cfg: Config) -> list[dict]:
    rows = []
    for fn in lut.FUNCTIONS:
        for label, words, word, x, err in variants(cfg, fn):
            rows.append(
                {
                    "fn": fn,
                    "table": label,
                    "words": words,
                    "word": word,
                    "max_abs": float(np.abs(err).max()),
                    "mean_abs": float(np.abs(err).mean()),
                    "points": int(x.size),
                }
            )
    return rows


def plot(cfg: Config, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
    for ax, fn in zip(axes, lut.FUNCTIONS):
        # largest errors first so the small ones stay visible on top
        for label, words, _, x, err in sorted(variants(cfg, fn), key=lambda v: -np.abs(v[4]).max()):
            ax.plot(x, err, linewidth=0.6, label=f"{label} ({words} words)")
        ax.set_title(f"{fn}: approximation error, inputs {cfg.q_pre}, outputs {cfg.q_act}")
        ax.set_xlabel("input")
        ax.set_ylabel("table - exact")
        ax.grid(True, linewidth=0.3)
        ax.legend(fontsize=8, loc="upper right")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/lut", help="directory for lut_error.png (default: out/lut)")
    args = parser.parse_args(argv)
    cfg = Config()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # our numbers must be exactly lut.table_error's
    for fn in lut.FUNCTIONS:
        for interp in (True, False):
            c = cfg.replace(interpolate=interp)
            ref = lut.table_error(c, fn)
            err = next(
                e for label, _, _, _, e in variants(c, fn) if label == f"rnnaccel {'interp' if interp else 'no interp'}"
            )
            assert math.isclose(float(np.abs(err).max()), ref["max_abs"], rel_tol=0, abs_tol=1e-15)

    rows = summary(cfg)
    print(
        f"activation table error, default Config(): inputs {cfg.q_pre}, "
        f"{cfg.table_entries} entries, R sigmoid {cfg.sigmoid_range:g} / tanh {cfg.tanh_range:g}"
    )
    header = f"{'fn':8} {'table':32} {'words':>6} {'word':>12} {'max abs':>11} {'mean abs':>11} {'points':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['fn']:8} {r['table']:32} {r['words']:>6} {r['word']:>12} {r['max_abs']:>11.3e} "
            f"{r['mean_abs']:>11.3e} {r['points']:>7}"
        )
    png = out / "lut_error.png"
    plot(cfg, png)
    print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
