"""Sigmoid and tanh lookup tables: contents and lookup, defined once.

A table covers [-R, R) with ``cfg.table_entries`` entries of step
``2R / entries`` (R and the entry count are powers of two, so the index of an
input is a right shift). Odd symmetry stores only the half [0, R):

* ``tanh(-x) = -tanh(x)``, ``sigmoid(-x) = 1 - sigmoid(x)``.

Without interpolation the stored half has ``N = entries / 2`` words sampled
at the midpoints of their steps (``f((j + 1/2) * step)``) and inputs beyond R
use the last word. With interpolation it has ``N + 1`` words sampled at the
step edges (``f(j * step)``, the last one at R) and a linear interpolation
between neighbours, rounded with the shared rounding rule; inputs at or
beyond R return the last word.

:func:`table` gives the stored words (the hardware ROM's ``init=`` and the
golden model use the same array); :func:`lookup` is the golden model of the
activation unit.
"""

from __future__ import annotations

import math

import numpy as np

from .config import Config
from .fixedpoint import QFormat, quantize, round_shift, saturate

__all__ = ["FUNCTIONS", "table", "lookup", "float_fn", "table_error", "half_entries"]

FUNCTIONS = ("sigmoid", "tanh")


def float_fn(fn: str):
    if fn == "sigmoid":
        return lambda x: 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
    if fn == "tanh":
        return lambda x: np.tanh(np.asarray(x, dtype=np.float64))
    raise ValueError(f"unknown activation {fn!r} (known: {', '.join(FUNCTIONS)})")


def _range(cfg: Config, fn: str) -> float:
    if fn not in FUNCTIONS:
        raise ValueError(f"unknown activation {fn!r} (known: {', '.join(FUNCTIONS)})")
    return cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range


def half_entries(cfg: Config) -> int:
    """Entries of the stored half table (before the interpolation end point)."""
    return cfg.table_entries // 2


def table(cfg: Config, fn: str) -> np.ndarray:
    """Stored words (raw integers in ``cfg.q_act``) of the half table of ``fn``."""
    rng = _range(cfg, fn)
    n = half_entries(cfg)
    step = 2.0 * rng / cfg.table_entries
    if cfg.interpolate:
        xs = np.arange(n + 1, dtype=np.float64) * step
    else:
        xs = (np.arange(n, dtype=np.float64) + 0.5) * step
    return quantize(float_fn(fn)(xs), cfg.q_act)


def lookup(cfg: Config, fn: str, raw, in_frac: int, words: np.ndarray | None = None) -> np.ndarray:
    """Golden activation: raw inputs with ``in_frac`` fraction bits -> raw ``cfg.q_act``.

    This is bit for bit what the hardware activation unit computes.
    """
    words = table(cfg, fn) if words is None else words
    raw = np.asarray(raw, dtype=np.int64)
    shift = cfg.table_shift(fn, in_frac)
    n = half_entries(cfg)
    neg = raw < 0
    mag = np.where(neg, -raw, raw)
    idx = mag >> shift
    if cfg.interpolate:
        inside = idx < n
        i0 = np.minimum(idx, n)
        i1 = np.minimum(idx + 1, n)
        rem = mag & ((1 << shift) - 1)
        delta = words[i1] - words[i0]
        interp = words[i0] + round_shift(delta * rem, shift)
        pos = np.where(inside, interp, words[n])
    else:
        pos = words[np.minimum(idx, n - 1)]
    one = 1 << cfg.q_act.frac
    if fn == "tanh":
        out = np.where(neg, -pos, pos)
    else:
        out = np.where(neg, one - pos, pos)
    return saturate(out, cfg.q_act)


def table_error(cfg: Config, fn: str, q_in: QFormat | None = None) -> dict[str, float]:
    """Max and mean absolute error of :func:`lookup` against the float function.

    Evaluated at every representable input of ``q_in`` (default ``cfg.q_pre``)
    in [-2R, 2R), so the clamped tails count too.
    """
    q_in = cfg.q_pre if q_in is None else q_in
    rng = _range(cfg, fn)
    lim = int(math.ceil(2 * rng * 2**q_in.frac))
    raw = np.arange(max(q_in.min_raw, -lim), min(q_in.max_raw, lim) + 1, dtype=np.int64)
    got = lookup(cfg, fn, raw, q_in.frac) * cfg.q_act.lsb
    want = float_fn(fn)(raw * q_in.lsb)
    err = np.abs(got - want)
    return {
        "max_abs": float(err.max()),
        "mean_abs": float(err.mean()),
        "points": int(raw.size),
        "stored_words": int(table(cfg, fn).size),
    }
