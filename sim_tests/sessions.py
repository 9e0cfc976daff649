"""Seeded host sessions for end-to-end tests (shared by the Amaranth and cocotb tiers)."""

from __future__ import annotations

import numpy as np

from rnnaccel.numeric.config import Config, preset
from rnnaccel.numeric.fixedpoint import quantize

#: (id, preset, changes): every cell type and variant, 1 and 2 layers, dense and circulant, several PE grids.
E2E_CASES = [
    ("lstm-k4-1x2", "tiny", {}),
    ("lstm-2layer-k4-2x2", "tiny", {"num_layers": 2, "pe_rows": 2, "pe_cols": 2}),
    (
        "lstm-dense-L3-2x2-odd",
        "tiny",
        {"block_size": 1, "lanes": 3, "hidden_size": 7, "input_size": 5, "pe_rows": 2, "pe_cols": 2},
    ),
    ("gru-after-k4-1x2", "tiny", {"cell": "gru"}),
    (
        "gru-after-2layer-k2-3x1",
        "tiny",
        {"cell": "gru", "num_layers": 2, "block_size": 2, "lanes": 2, "pe_rows": 3, "pe_cols": 1, "hidden_size": 6},
    ),
    ("gru-before-k4-1x2", "tiny", {"cell": "gru", "gru_reset_after": False}),
    (
        "gru-before-2layer-dense-L2-2x3",
        "tiny",
        {
            "cell": "gru",
            "gru_reset_after": False,
            "num_layers": 2,
            "block_size": 1,
            "lanes": 2,
            "pe_rows": 2,
            "pe_cols": 3,
        },
    ),
    ("sru-k4-1x2", "tiny", {"cell": "sru"}),
    ("sru-proj-2layer-k4-2x1", "tiny", {"cell": "sru", "input_size": 12, "num_layers": 2, "pe_rows": 2, "pe_cols": 1}),
    ("qrnn-w2-k4-1x2", "tiny", {"cell": "qrnn"}),
    ("qrnn-w2-2layer-k4-2x2", "tiny", {"cell": "qrnn", "num_layers": 2, "pe_rows": 2, "pe_cols": 2}),
    (
        "qrnn-w1-dense-L4-1x1",
        "tiny",
        {"cell": "qrnn", "qrnn_window": 1, "block_size": 1, "lanes": 4, "pe_rows": 1, "pe_cols": 1, "hidden_size": 6},
    ),
    ("rnn-k4-1x2", "tiny", {"cell": "rnn"}),
    (
        "rnn-2layer-k8-1x1",
        "tiny",
        {"cell": "rnn", "num_layers": 2, "block_size": 8, "lanes": 8, "pe_cols": 1, "hidden_size": 12},
    ),
    # the serial datapath's window-2 QRNN (its shift phases) and SRU (the highway's second vector read port)
    (
        "qrnn-w2-2layer-serial-k4-L2",
        "tiny",
        {"cell": "qrnn", "datapath": "serial", "lanes": 2, "pe_cols": 1, "num_layers": 2, "hidden_size": 8},
    ),
    (
        "sru-2layer-serial-k4-L1",
        "tiny",
        {"cell": "sru", "datapath": "serial", "lanes": 1, "pe_cols": 1, "num_layers": 2, "input_size": 8},
    ),
]


def case_config(name: str, changes: dict) -> Config:
    return preset(name).replace(**changes)


def full_session(cfg: Config, seed: int = 0) -> list[tuple]:
    """A sequence split across two calls (state carried), a reset, then an initial state and a run."""
    rng = np.random.default_rng(seed)

    def seq(t):
        return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)

    h0 = quantize(rng.uniform(-0.8, 0.8, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
    c0 = (
        quantize(rng.uniform(-1.5, 1.5, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
        if cfg.cell in ("lstm", "sru", "qrnn")
        else None
    )
    return [
        ("reset",),
        ("run", seq(3)),
        ("run", seq(2)),
        ("reset",),
        ("run", seq(2)),
        ("state", h0, c0),
        ("run", seq(2)),
    ]


def saturating_session(cfg: Config, seed: int = 0) -> list[tuple]:
    """Inputs at the extremes of q_state, so every narrowing point saturates with large weights."""
    rng = np.random.default_rng(seed)
    x = rng.choice([cfg.q_state.min_raw, cfg.q_state.max_raw, 0], size=(4, cfg.input_size))
    return [("reset",), ("run", x)]


def input_projection_saturates(cfg: Config, weights, x_raw: np.ndarray) -> bool:
    """True when layer 0's input projection of ``x_raw`` overflows q_pre (so narrowing saturates)."""
    from rnnaccel.numeric.fixedpoint import align, round_shift
    from rnnaccel.numeric.model import dense_matrices, quantize_weights

    m = dense_matrices(cfg, quantize_weights(cfg, weights))[0]
    x = np.asarray(x_raw, dtype=np.int64)
    if cfg.cell == "qrnn" and cfg.qrnn_window == 2:
        x = np.concatenate([x, np.zeros_like(x)], axis=1)
    acc = np.einsum("ghc,nc->ngh", m.W, x) + align(m.b, cfg.q_pre.frac, cfg.acc_frac)[None]
    wide = round_shift(acc, cfg.acc_frac - cfg.q_pre.frac)
    return bool(((wide > cfg.q_pre.max_raw) | (wide < cfg.q_pre.min_raw)).any())


def assert_full_session_matches(got: list, want: list, counters: list[dict]) -> None:
    """A :func:`full_session` run: its four runs equal the golden model's bit for bit, all 9 steps done."""
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert counters[-1]["steps"] == 9
