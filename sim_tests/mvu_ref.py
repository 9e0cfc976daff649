"""Golden expectations for MVU plans (shared by tier-1 and tier-2 MVU tests)."""

from __future__ import annotations

import numpy as np

from rnnaccel.numeric.config import Config
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.golden import projection
from rnnaccel.layout.image import MatrixPlan
from rnnaccel.numeric.model import dense_matrices, quantize_weights


def plan_vectors(cfg: Config, plan: MatrixPlan, n: int, seed: int, extreme: bool = False) -> np.ndarray:
    """n random source vectors (raw q_state) of the plan, zero in the padding."""
    rng = np.random.default_rng(seed)
    real = cfg.layer_cols(plan.layer) if plan.name == "W" else cfg.hidden_size
    x = np.zeros((n, plan.cols), dtype=np.int64)
    if extreme:
        x[:, :real] = rng.choice([cfg.q_state.min_raw, cfg.q_state.max_raw], size=(n, real))
    else:
        x[:, :real] = quantize(rng.uniform(-1.5, 1.5, size=(n, real)), cfg.q_state)
    return x


def plan_expected(cfg: Config, weights, plan: MatrixPlan, x: np.ndarray) -> np.ndarray:
    """Golden output of a plan for vectors x (n, cols): (n, gates, hidden) raw q_pre."""
    qw = quantize_weights(cfg, weights)
    mats = dense_matrices(cfg, qw)[plan.layer]
    H = cfg.hidden_size
    real = cfg.layer_cols(plan.layer) if plan.name == "W" else H
    mat = mats.W if plan.name == "W" else mats.U[plan.gate0 : plan.gate0 + plan.gates]
    bias = mats.b if plan.name == "W" else mats.c[plan.gate0 : plan.gate0 + plan.gates]
    return projection(cfg, mat, x[:, :real], bias)


def hw_rows_to_gates(cfg: Config, plan: MatrixPlan, words: np.ndarray) -> np.ndarray:
    """Hardware output words (n, rows) -> (n, gates, hidden), dropping padded rows."""
    hp = cfg.padded(cfg.hidden_size)
    return words.reshape(words.shape[0], plan.gates, hp)[:, :, : cfg.hidden_size]
