"""The golden model: the specification the hardware must meet bit for bit.

Two models share one interface (:class:`GoldenModel`):

* ``IntegerModel``: the bit-exact fixed-point arithmetic of the accelerator.
  It never calls a float transcendental; sigmoid and tanh come from
  :mod:`rnnaccel.numeric.lut`, and every narrowing goes through
  :func:`rnnaccel.numeric.fixedpoint.narrow`.
* ``FloatModel``: the same network in float64 (the reference it is measured
  against, and PyTorch's equations).

Integer arithmetic, per layer and step (formats: fw weights, fx state, fc cell,
fp pre-activation, fa activation; ``ONE = 2**fa``):

1. input projection, per gate: ``xp = narrow(W x + (b << (fw+fx-fp)), fw+fx -> q_pre)``;
2. recurrent projection (LSTM, GRU, RNN): ``hp = narrow(U h + (c << ...), -> q_pre)``;
3. gate pre-activation ``saturate(xp + hp, q_pre)``, then the tables (with fused
   projections, ``datapath = 'serial'``, steps 1-3 are one narrowing:
   ``narrow(W x + U h + ((b + c) << ...))``, :func:`fused_projection`);
4. the element-wise update (below), each product exact, sums aligned exactly to
   the finest fraction involved and narrowed once to the state's format.

With ``circulant_mode = 'fft'`` each ``W x`` / ``U h`` of steps 1-3 is the FFT
form (:func:`fft_projection`): the segments' fixed-point spectra
(:func:`rnnaccel.numeric.fft.rfft`, in q_state), the exact spectral
multiply-accumulate with the stored ``q_spectrum`` spectra, one inverse
transform per row block (:func:`rnnaccel.numeric.fft.irfft`, at
``fs + fx`` fraction bits), then the same bias add and narrowing to q_pre.

The update of each cell is a function (``lstm_update`` ...) so the hardware
gate units are checked against exactly these.

Delta-network mode (``delta=True``, by default when ``cfg.delta_mode``;
:mod:`rnnaccel.numeric.delta` states the definition): each matrix product
multiplies its stored reference vector, kept in the layer's state
(``ref_W``, ``ref_U`` / ``ref_Urz``, ``ref_Un``) and updated only where the
change exceeds the threshold; the integer model accumulates ``W * delta``
into exact memories (``acc_W`` ...) read through the same narrowing as
steps 1-3. The reset-before GRU thresholds ``r*h`` (its own reference, the
hidden-state threshold). Every model counts its matrix-vector work in
``stats`` (:class:`rnnaccel.numeric.delta.WorkStats`; dense counts in normal mode).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from . import fft, lut
from .config import Config
from .delta import WorkStats, propagate, raw_threshold, reference_keys
from .fixedpoint import align, narrow, quantize, saturate, to_float
from .model import LayerMatrices, Weights, dense_matrices, effective_vectors, quantize_weights, spectral_matrices

__all__ = [
    "IntegerModel",
    "FloatModel",
    "GoldenModel",
    "projection",
    "fused_projection",
    "fft_projection",
    "fft_accumulate",
    "fft_segments",
    "lstm_update",
    "gru_gates",
    "gru_candidate_pre",
    "gru_reset_hidden",
    "gru_update",
    "sru_update",
    "qrnn_update",
    "rnn_update",
    "InputError",
]


class InputError(ValueError):
    """Input sequences of the wrong shape or with non-finite values."""


# ----------------------------------------------------------------------------
# Integer building blocks (shared with the hardware tests)
# ----------------------------------------------------------------------------


def projection(cfg: Config, mat: np.ndarray, vec: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Integer ``narrow(mat @ vec + aligned bias)`` in ``q_pre``.

    mat (G, H, C) raw q_weight; vec (N, C) raw q_state; bias (G, H) raw q_pre.
    Returns (N, G, H).
    """
    acc = np.einsum("ghc,nc->ngh", mat.astype(np.int64), vec.astype(np.int64))
    acc = acc + align(bias, cfg.q_pre.frac, cfg.acc_frac)[None]
    return narrow(acc, cfg.acc_frac, cfg.q_pre)


def fused_projection(
    cfg: Config, W: np.ndarray, U: np.ndarray, x: np.ndarray, h: np.ndarray, b: np.ndarray, c: np.ndarray
) -> np.ndarray:
    """Fused projections (``datapath = 'serial'``): ``narrow(W x + U h + aligned (b + c))`` in ``q_pre``.

    One accumulation over [x; h] and one narrowing, where :func:`projection`
    narrows ``W x + b`` and ``U h + c`` separately. ``b + c`` is exact
    (``cfg.bias_width`` bits). Returns (N, G, H).
    """
    return projection(
        cfg,
        np.concatenate([W, U], axis=2),
        np.concatenate([x, h], axis=1),
        np.asarray(b, np.int64) + np.asarray(c, np.int64),
    )


def fft_segments(cfg: Config, vec: np.ndarray, blocks: int) -> np.ndarray:
    """Raw vectors (N, C) cut into ``blocks`` segments of k words (N, blocks, k), zero-padded at the end."""
    k = cfg.block_size
    vec = np.asarray(vec, dtype=np.int64)
    out = np.zeros((vec.shape[0], blocks * k), dtype=np.int64)
    out[:, : vec.shape[1]] = vec
    return out.reshape(vec.shape[0], blocks, k)


def fft_accumulate(cfg: Config, pairs, narrow_x=narrow) -> np.ndarray:
    """FFT-mode products ``sum_pairs S x`` before the bias: (N, G, rows padded) raw at ``cfg.fft_acc_frac``.

    ``pairs`` lists (spectra (G, rb, cb, k) raw q_spectrum, vec (N, C) raw
    q_state); with fused projections there are two (W with [x], U with h) and
    their column blocks are accumulated together. Each segment's spectrum is
    :func:`rnnaccel.numeric.fft.rfft` (``narrow_x`` is its final narrowing into
    q_state: :func:`~rnnaccel.numeric.fixedpoint.narrow`; the quantization
    report passes a counting one), the products accumulate exactly
    (:func:`~rnnaccel.numeric.fft.spectral_mac`) and each row block is
    inverse-transformed once (:func:`~rnnaccel.numeric.fft.irfft`). May hold
    Python integers (object array) where the values pass int64.
    """
    k = cfg.block_size
    L = cfg.fft_stages
    specs, segs = [], []
    for spectra, vec in pairs:
        wide = fft.rfft_wide(fft_segments(cfg, vec, spectra.shape[2]))
        segs.append(narrow_x(wide, cfg.q_state.frac + L, cfg.q_state))
        specs.append(spectra)
    acc = fft.spectral_mac(np.concatenate(specs, axis=2), np.concatenate(segs, axis=1))  # (N, G, rb, k)
    y = fft.irfft(acc)
    return y.reshape(y.shape[0], y.shape[1], y.shape[2] * k)


def fft_projection(cfg: Config, pairs, bias: np.ndarray) -> np.ndarray:
    """FFT mode: ``narrow(sum_pairs S x + aligned bias)`` in ``q_pre`` (N, G, H), as :func:`projection`.

    ``pairs``: see :func:`fft_accumulate`; ``bias`` (G, H) raw q_pre (``b + c``,
    ``cfg.bias_width`` bits, with fused projections). The inverse transform's
    output has ``fs + fx`` fraction bits; the bias is aligned to it exactly and
    the sum narrowed once.
    """
    bias = np.asarray(bias, dtype=np.int64)
    y = fft_accumulate(cfg, pairs)[:, :, : bias.shape[1]]
    acc = y + align(bias, cfg.q_pre.frac, cfg.fft_acc_frac)[None]
    return narrow(acc, cfg.fft_acc_frac, cfg.q_pre).astype(np.int64)


def _project(cfg: Config, m: LayerMatrices, key: str, vec: np.ndarray, bias: np.ndarray, gates=slice(None)):
    """The layer's ``W`` or ``U`` (gates ``gates``) times ``vec`` plus ``bias``, in the config's circulant mode."""
    if cfg.fft_mode:
        return fft_projection(cfg, [(getattr(m, "S" + key)[gates], vec)], bias[gates])
    return projection(cfg, getattr(m, key)[gates], vec, bias[gates])


def _fused(cfg: Config, m: LayerMatrices, x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Fused projections in the config's circulant mode."""
    if cfg.fft_mode:
        return fft_projection(cfg, [(m.SW, x), (m.SU, h)], np.asarray(m.b, np.int64) + np.asarray(m.c, np.int64))
    return fused_projection(cfg, m.W, m.U, x, h, m.b, m.c)


class _Work:
    """One layer's step: the vector each matrix multiplies (its reference in delta mode), counted in ``stats``.

    ``new`` is the layer's new state (references are written into it);
    ``thresholds`` (input, hidden) are raw integers or floats.
    """

    def __init__(self, cfg: Config, layer: int, new: dict, delta: bool, thresholds, stats: WorkStats | None):
        self.cfg, self.layer, self.new, self.delta, self.thresholds, self.stats = (
            cfg,
            layer,
            new,
            delta,
            thresholds,
            stats,
        )

    def vector(self, name: str, vec: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(the vector matrix ``name`` multiplies, its delta or None in normal mode)."""
        d = None
        if self.delta:
            th = self.thresholds[0] if name == "W" and self.layer == 0 else self.thresholds[1]
            ref_key, _ = reference_keys(name)
            d, self.new[ref_key] = propagate(vec, self.new[ref_key], th)
            vec = self.new[ref_key]
        if self.stats is not None:
            self.stats.record(self.layer, name, d, vec.shape[0])
        return vec, d


class _Projector:
    """The integer projections of one layer's step; in delta mode from the accumulated memories."""

    def __init__(self, cfg: Config, m: LayerMatrices, work: _Work | None):
        self.cfg, self.m, self.work = cfg, m, work

    def _vector(self, name, vec):
        return (vec, None) if self.work is None else self.work.vector(name, vec)

    def _accumulate(self, name: str, key: str, d: np.ndarray, gates) -> np.ndarray:
        """``acc_name += M d`` (exact, acc_frac fraction bits); returns the new memory."""
        _, acc_key = reference_keys(name)
        acc = self.work.new[acc_key] + np.einsum("ghc,nc->ngh", getattr(self.m, key)[gates].astype(np.int64), d)
        self.work.new[acc_key] = acc
        return acc

    def project(self, name: str, key: str, vec: np.ndarray, bias: np.ndarray, gates=slice(None)) -> np.ndarray:
        """Matrix ``key`` (gates ``gates``; ``name`` as in ``Config.matrices``) times ``vec`` plus bias, in q_pre."""
        cfg = self.cfg
        vec, d = self._vector(name, vec)
        if d is None or cfg.fft_mode:
            return _project(cfg, self.m, key, vec, bias, gates)
        acc = self._accumulate(name, key, d, gates)
        return narrow(acc + align(bias[gates], cfg.q_pre.frac, cfg.acc_frac)[None], cfg.acc_frac, cfg.q_pre)

    def fused(self, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Fused projections (serial datapath), in delta mode ``narrow(acc_W + acc_U + aligned (b + c))``."""
        cfg, m = self.cfg, self.m
        x, dx = self._vector("W", x)
        h, dh = self._vector("U", h)
        if dx is None or cfg.fft_mode:
            return _fused(cfg, m, x, h)
        acc = self._accumulate("W", "W", dx, slice(None)) + self._accumulate("U", "U", dh, slice(None))
        bias = np.asarray(m.b, np.int64) + np.asarray(m.c, np.int64)
        return narrow(acc + align(bias, cfg.q_pre.frac, cfg.acc_frac)[None], cfg.acc_frac, cfg.q_pre)


def _sum_narrow(terms: list[tuple[np.ndarray, int]], q) -> np.ndarray:
    """Sum exact products (value, frac) aligned to the finest fraction, narrowed once to q.

    Exact for every format: when the aligned sum could pass int64 (formats near 32 bits, e.g. q_act
    Q0.31 with q_cell Q1.30), it is formed in Python integers, as wide as the hardware's.
    """
    top = max(f for _, f in terms)
    bits = max(int(np.max(np.abs(np.asarray(v, dtype=np.int64)), initial=0)).bit_length() + top - f for v, f in terms)
    if bits + len(terms) < 63:
        total = sum(align(v, f, top) for v, f in terms)
        return narrow(total, top, q)
    total = sum(np.asarray(v, dtype=np.int64).astype(object) << (top - f) for v, f in terms)
    return narrow(total, top, q).astype(np.int64)  # the one rounding and saturation rule, on exact ints


def _one(cfg: Config) -> int:
    return 1 << cfg.q_act.frac


def lstm_update(cfg: Config, pre: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pre (N, 4, H) in q_pre (gates i, f, g, o); c (N, H) in q_cell -> (h', c')."""
    fa, fp, fc = cfg.q_act.frac, cfg.q_pre.frac, cfg.q_cell.frac
    i = lut.lookup(cfg, "sigmoid", pre[:, 0], fp)
    f = lut.lookup(cfg, "sigmoid", pre[:, 1], fp)
    g = lut.lookup(cfg, "tanh", pre[:, 2], fp)
    o = lut.lookup(cfg, "sigmoid", pre[:, 3], fp)
    c_new = _sum_narrow([(f * c, fa + fc), (i * g, 2 * fa)], cfg.q_cell)
    tc = lut.lookup(cfg, "tanh", c_new, fc)
    h_new = narrow(o * tc, 2 * fa, cfg.q_state)
    return h_new, c_new


def gru_gates(cfg: Config, xp: np.ndarray, hp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r and z (q_act) from projections xp, hp (N, 3, H)."""
    fp = cfg.q_pre.frac
    r = lut.lookup(cfg, "sigmoid", saturate(xp[:, 0] + hp[:, 0], cfg.q_pre), fp)
    z = lut.lookup(cfg, "sigmoid", saturate(xp[:, 1] + hp[:, 1], cfg.q_pre), fp)
    return r, z


def gru_candidate_pre(cfg: Config, xp_n: np.ndarray, hp_n: np.ndarray, r: np.ndarray | None) -> np.ndarray:
    """Pre-activation of n: reset-after ``xp_n + r * hp_n``; reset-before (r None) ``xp_n + hp_n``."""
    if r is None:
        return saturate(xp_n + hp_n, cfg.q_pre)
    fa, fp = cfg.q_act.frac, cfg.q_pre.frac
    return _sum_narrow([(xp_n, fp), (r * hp_n, fa + fp)], cfg.q_pre)


def gru_update(cfg: Config, n_pre: np.ndarray, z: np.ndarray, h: np.ndarray) -> np.ndarray:
    """h' = (1 - z) * tanh(n_pre) + z * h, all in the shared arithmetic."""
    fa, fx, fp = cfg.q_act.frac, cfg.q_state.frac, cfg.q_pre.frac
    n = lut.lookup(cfg, "tanh", n_pre, fp)
    return _sum_narrow([((_one(cfg) - z) * n, 2 * fa), (z * h, fa + fx)], cfg.q_state)


def gru_reset_hidden(cfg: Config, r: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Reset-before GRU: ``r * h`` narrowed to q_state (the vector U_n multiplies)."""
    return narrow(r * h, cfg.q_act.frac + cfg.q_state.frac, cfg.q_state)


def sru_update(cfg: Config, xp: np.ndarray, c: np.ndarray, highway: np.ndarray, highway_frac: int):
    """xp (N, G, H): x~, f, r (, s). highway: x (q_state) or the s projection (q_pre)."""
    fa, fp, fc = cfg.q_act.frac, cfg.q_pre.frac, cfg.q_cell.frac
    f = lut.lookup(cfg, "sigmoid", xp[:, 1], fp)
    r = lut.lookup(cfg, "sigmoid", xp[:, 2], fp)
    c_new = _sum_narrow([(f * c, fa + fc), ((_one(cfg) - f) * xp[:, 0], fa + fp)], cfg.q_cell)
    tc = lut.lookup(cfg, "tanh", c_new, fc)
    h_new = _sum_narrow([(r * tc, 2 * fa), ((_one(cfg) - r) * highway, fa + highway_frac)], cfg.q_state)
    return h_new, c_new


def qrnn_update(cfg: Config, xp: np.ndarray, c: np.ndarray):
    """xp (N, 3, H): z, f, o pre-activations; c (N, H) -> (h', c')."""
    fa, fp, fc = cfg.q_act.frac, cfg.q_pre.frac, cfg.q_cell.frac
    z = lut.lookup(cfg, "tanh", xp[:, 0], fp)
    f = lut.lookup(cfg, "sigmoid", xp[:, 1], fp)
    o = lut.lookup(cfg, "sigmoid", xp[:, 2], fp)
    c_new = _sum_narrow([(f * c, fa + fc), ((_one(cfg) - f) * z, 2 * fa)], cfg.q_cell)
    h_new = narrow(o * c_new, fa + fc, cfg.q_state)
    return h_new, c_new


def rnn_update(cfg: Config, pre: np.ndarray) -> np.ndarray:
    """pre (N, 1, H) -> h' = tanh(pre) in q_state."""
    t = lut.lookup(cfg, "tanh", pre[:, 0], cfg.q_pre.frac)
    return narrow(t, cfg.q_act.frac, cfg.q_state)


# ----------------------------------------------------------------------------
# Float building blocks
# ----------------------------------------------------------------------------


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def _float_step(
    cfg: Config, m: LayerMatrices, x: np.ndarray, st: dict, work: _Work | None = None
) -> tuple[np.ndarray, dict, dict]:
    """One float step of one layer. Returns (h', new state, intermediates).

    ``work``: delta mode and counting (:class:`_Work`; the step points it at
    its new state, where the references are written). Float delta mode
    multiplies the references directly (no memories: float sums of deltas
    would drift from ``M v_ref`` by rounding).
    """
    cell = cfg.cell
    if cell == "qrnn" and cfg.qrnn_window == 2:
        xin = np.concatenate([x, st["xprev"]], axis=1)
    else:
        xin = x
    new = dict(st)
    if work is not None:
        work.new = new

    def vec(name, v):
        return v if work is None else work.vector(name, v)[0]

    u_name = "Urz" if cell == "gru" and not cfg.gru_reset_after else "U"
    xp = np.einsum("ghc,nc->ngh", m.W, vec("W", xin)) + m.b[None]
    hp = np.einsum("ghc,nc->ngh", m.U, vec(u_name, st["h"])) + m.c[None] if m.U is not None else None
    inter = {"xp": xp, "hp": hp}
    if cell == "lstm":
        pre = xp + hp
        i, f, g, o = _sig(pre[:, 0]), _sig(pre[:, 1]), np.tanh(pre[:, 2]), _sig(pre[:, 3])
        c = f * st["c"] + i * g
        h = o * np.tanh(c)
        new["c"] = c
    elif cell == "gru":
        r, z = _sig(xp[:, 0] + hp[:, 0]), _sig(xp[:, 1] + hp[:, 1])
        if cfg.gru_reset_after:
            n = np.tanh(xp[:, 2] + r * hp[:, 2])
        else:
            rh = r * st["h"]
            hn = np.einsum("hc,nc->nh", m.U[2], vec("Un", rh)) + m.c[2][None]
            inter["hp_n"] = hn
            n = np.tanh(xp[:, 2] + hn)
        h = (1 - z) * n + z * st["h"]
    elif cell == "sru":
        f, r = _sig(xp[:, 1]), _sig(xp[:, 2])
        c = f * st["c"] + (1 - f) * xp[:, 0]
        hw = xp[:, 3] if xp.shape[1] == 4 else x
        h = r * np.tanh(c) + (1 - r) * hw
        new["c"] = c
    elif cell == "qrnn":
        z, f, o = np.tanh(xp[:, 0]), _sig(xp[:, 1]), _sig(xp[:, 2])
        c = f * st["c"] + (1 - f) * z
        h = o * c
        new["c"] = c
        new["xprev"] = x
    else:
        h = np.tanh(xp[:, 0] + hp[:, 0])
    new["h"] = h
    return h, new, inter


def _int_step(
    cfg: Config, m: LayerMatrices, x: np.ndarray, st: dict, work: _Work | None = None
) -> tuple[np.ndarray, dict]:
    """One integer step of one layer; x (N, C) raw q_state. ``work``: delta mode and counting (:class:`_Work`)."""
    cell = cfg.cell
    if cell == "qrnn" and cfg.qrnn_window == 2:
        xin = np.concatenate([x, st["xprev"]], axis=1)
    else:
        xin = x
    new = dict(st)
    if work is not None:
        work.new = new
    proj = _Projector(cfg, m, work)
    if cfg.fused_projections:
        pre = proj.fused(xin, st["h"])
        if cell == "lstm":
            h, new["c"] = lstm_update(cfg, pre, st["c"])
        else:
            h = rnn_update(cfg, pre)
        new["h"] = h
        return h, new
    xp = proj.project("W", "W", xin, m.b)
    if cell == "lstm":
        hp = proj.project("U", "U", st["h"], m.c)
        h, new["c"] = lstm_update(cfg, saturate(xp + hp, cfg.q_pre), st["c"])
    elif cell == "gru":
        # reset-before: only r and z multiply h directly; U_n multiplies r*h below
        if cfg.gru_reset_after:
            hp = proj.project("U", "U", st["h"], m.c)
        else:
            hp = proj.project("Urz", "U", st["h"], m.c, slice(0, 2))
        r, z = gru_gates(cfg, xp, hp)
        if cfg.gru_reset_after:
            n_pre = gru_candidate_pre(cfg, xp[:, 2], hp[:, 2], r)
        else:
            rh = gru_reset_hidden(cfg, r, st["h"])
            hn = proj.project("Un", "U", rh, m.c, slice(2, 3))[:, 0]
            n_pre = gru_candidate_pre(cfg, xp[:, 2], hn, None)
        h = gru_update(cfg, n_pre, z, st["h"])
    elif cell == "sru":
        if xp.shape[1] == 4:
            hw, hw_frac = xp[:, 3], cfg.q_pre.frac
        else:
            hw, hw_frac = x, cfg.q_state.frac
        h, new["c"] = sru_update(cfg, xp, st["c"], hw, hw_frac)
    elif cell == "qrnn":
        h, new["c"] = qrnn_update(cfg, xp, st["c"])
        new["xprev"] = x
    else:
        hp = proj.project("U", "U", st["h"], m.c)
        h = rnn_update(cfg, saturate(xp + hp, cfg.q_pre))
    new["h"] = h
    return h, new


# ----------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------


@dataclass
class GoldenModel:
    """Common interface: stateful over calls, batched over sequences.

    ``run(x)`` takes float inputs of shape (T, input) or (N, T, input) and
    returns the last layer's hidden state at every step, same leading shape.
    State persists across calls (streaming) until :meth:`reset`;
    :meth:`set_state` gives an initial state.

    ``delta``: delta-network mode (:mod:`rnnaccel.numeric.delta`); None (the
    default) follows ``cfg.delta_mode`` (a threshold above 0), True runs it
    with the config's thresholds even when they are 0 (exact, and counting
    the columns that do not change). ``stats`` counts the matrix-vector work
    of every run (:class:`~rnnaccel.numeric.delta.WorkStats`), kept across
    :meth:`reset` until ``stats.clear()``.
    """

    cfg: Config
    weights: Weights
    state: list[dict] | None = field(default=None, init=False)
    delta: bool | None = None

    integer = False

    def __post_init__(self):
        self.delta = self.cfg.delta_mode if self.delta is None else bool(self.delta)
        self.stats = WorkStats(self.cfg)
        self._prepare()

    def _thresholds(self):
        """(input, hidden) thresholds: raw q_state integers, or floats for the float model."""
        if self.integer:
            return raw_threshold(self.cfg, False), raw_threshold(self.cfg, True)
        return self.cfg.delta_threshold, self.cfg.delta_threshold_hidden

    def _work(self, layer: int) -> _Work:
        return _Work(self.cfg, layer, {}, self.delta, self._thresholds(), self.stats)

    # subclasses fill in
    def _prepare(self):
        raise NotImplementedError

    def _zero_state(self, n: int) -> list[dict]:
        h = self.cfg.hidden_size
        dt = np.int64 if self.integer else np.float64
        out = []
        for layer in range(self.cfg.num_layers):
            st = {"h": np.zeros((n, h), dt)}
            if self.cfg.cell in ("lstm", "sru", "qrnn"):
                st["c"] = np.zeros((n, h), dt)
            if self.cfg.cell == "qrnn" and self.cfg.qrnn_window == 2:
                st["xprev"] = np.zeros((n, self.cfg.layer_input_size(layer)), dt)
            if self.delta:
                self._zero_delta_state(st, layer, n, dt)
            out.append(st)
        return out

    def _zero_delta_state(self, st: dict, layer: int, n: int, dt) -> None:
        """Delta mode: zero references (and, integer direct mode, zero memories) of every matrix of the layer."""
        cfg = self.cfg
        hp = cfg.padded(cfg.hidden_size)
        for name, rows, _ in cfg.matrices(layer):
            ref_key, acc_key = reference_keys(name)
            width = cfg.layer_cols(layer) if name == "W" else cfg.hidden_size
            st[ref_key] = np.zeros((n, width), dt)
            if self.integer and not cfg.fft_mode:
                st[acc_key] = np.zeros((n, rows // hp, cfg.hidden_size), np.int64)

    def zero_state(self, n: int = 1) -> list[dict]:
        """A zero state for ``n`` sequences (per layer: h, and c / xprev where the cell has them)."""
        return self._zero_state(n)

    def reset(self) -> None:
        """Forget the state; the next call starts from zeros (or what :meth:`set_state` gives)."""
        self.state = None

    def set_state(self, h=None, c=None, batch: int = 1) -> None:
        """Initial state in float: h, c of shape (layers, H) or (layers, N, H)."""
        n = batch
        for arr in (h, c):
            if arr is not None and np.ndim(arr) == 3:
                n = np.shape(arr)[1]
        st = self._zero_state(n)
        for key, arr in (("h", h), ("c", c)):
            if arr is None:
                continue
            if key == "c" and self.cfg.cell not in ("lstm", "sru", "qrnn"):
                raise InputError(f"a {self.cfg.cell} has no cell state")
            arr = np.asarray(arr, dtype=np.float64)
            if arr.ndim == 2:
                arr = np.broadcast_to(arr[:, None, :], (arr.shape[0], n, arr.shape[1]))
            if arr.shape != (self.cfg.num_layers, n, self.cfg.hidden_size):
                raise InputError(
                    f"initial {key} has shape {arr.shape}, expected "
                    f"({self.cfg.num_layers}, {self.cfg.hidden_size}) or (layers, N, hidden)"
                )
            for layer in range(self.cfg.num_layers):
                st[layer][key] = self._encode(arr[layer], self.cfg.q_state if key == "h" else self.cfg.q_cell)
        self._link_window(st)
        self.state = st

    def _link_window(self, st: list[dict]) -> None:
        """Window-2 QRNN: a layer's previous input is the previous hidden state of the layer below."""
        if self.cfg.cell == "qrnn" and self.cfg.qrnn_window == 2:
            for layer in range(1, self.cfg.num_layers):
                st[layer]["xprev"] = st[layer - 1]["h"].copy()

    def _check_input(self, x) -> tuple[np.ndarray, bool]:
        x = np.asarray(x)
        if x.dtype.kind not in "fiu":
            raise InputError(f"inputs must be numbers, not {x.dtype}")
        if x.ndim not in (2, 3):
            n = self.cfg.input_size
            raise InputError(f"inputs must have shape (T, {n}) or (N, T, {n}), not {x.shape}")
        if x.shape[-1] != self.cfg.input_size:
            raise InputError(f"inputs have width {x.shape[-1]}, the model's input size is {self.cfg.input_size}")
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise InputError("inputs contain NaN or infinite values")
        single = x.ndim == 2
        return (x[None] if single else x), single

    def run(self, x) -> np.ndarray:
        """Run sequences; returns hidden states (float for FloatModel, raw ints for IntegerModel)."""
        xb, single = self._check_input(x)
        n, t, _ = xb.shape
        if self.state is None or self.state[0]["h"].shape[0] != n:
            if self.state is None:
                self.state = self._zero_state(n)
            elif self.state[0]["h"].shape[0] == 1:
                self.state = [{k: np.repeat(v, n, axis=0) for k, v in st.items()} for st in self.state]
            else:
                raise InputError(
                    f"the carried state is for {self.state[0]['h'].shape[0]} sequences, "
                    f"these inputs hold {n}: call reset() first"
                )
        xq = self._encode(xb, self.cfg.q_state)
        if t == 0:
            y = np.zeros((n, 0, self.cfg.hidden_size), np.int64 if self.integer else np.float64)
            return y[0] if single else y
        outs = []
        for step in range(t):
            v = xq[:, step]
            self.stats.begin_step(n)
            for layer in range(self.cfg.num_layers):
                v, self.state[layer] = self._step(layer, v, self.state[layer])
            outs.append(v)
        y = np.stack(outs, axis=1)
        return y[0] if single else y

    def run_float(self, x) -> np.ndarray:
        """:meth:`run`, dequantized to float64 for the integer model."""
        y = self.run(x)
        return to_float(y, self.cfg.q_state) if self.integer else y


class IntegerModel(GoldenModel):
    """Bit-exact fixed-point model (the specification of the hardware)."""

    integer = True

    def _prepare(self):
        self.qweights = quantize_weights(self.cfg, self.weights)
        if self.cfg.fft_mode:
            self.mats = spectral_matrices(self.cfg, self.qweights)
        else:
            self.mats = dense_matrices(self.cfg, self.qweights)

    def _encode(self, x, q):
        x = np.asarray(x)
        return x.astype(np.int64) if x.dtype.kind in "iu" else quantize(x, q)

    def _step(self, layer, v, st):
        return _int_step(self.cfg, self.mats[layer], v, st, self._work(layer))

    def set_state_raw(self, h=None, c=None) -> None:
        """Initial state as raw integers of shape (layers, H) (one sequence)."""
        st = self._zero_state(1)
        for layer in range(self.cfg.num_layers):
            if h is not None:
                st[layer]["h"] = np.asarray(h, dtype=np.int64)[layer][None].copy()
            if c is not None and "c" in st[layer]:
                st[layer]["c"] = np.asarray(c, dtype=np.int64)[layer][None].copy()
        self._link_window(st)
        self.state = st

    def run_raw(self, x_raw) -> np.ndarray:
        """Run with inputs already raw q_state integers."""
        return self.run(np.asarray(x_raw, dtype=np.int64))


class FloatModel(GoldenModel):
    """Float64 reference of the same network (exact sigmoid/tanh).

    ``quantized_params``: use the parameters the integer model holds, as floats
    (:func:`rnnaccel.numeric.model.effective_vectors`): biases in q_pre, weights
    in q_weight, or in FFT mode the defining vectors whose DFT is exactly the
    stored ``q_spectrum`` spectrum. In FFT mode ``mats[layer].SW``/``SU`` hold
    the raw stored spectra either way (for :mod:`rnnaccel.numeric.bounds`).
    """

    integer = False

    def __init__(self, cfg: Config, weights: Weights, quantized_params: bool = False, delta: bool | None = None):
        self.quantized_params = quantized_params
        super().__init__(cfg, weights, delta)

    def _prepare(self):
        w = self.weights
        if self.quantized_params or self.cfg.fft_mode:
            q = quantize_weights(self.cfg, w)
            if self.quantized_params:
                w = effective_vectors(self.cfg, q)
        self.mats = dense_matrices(self.cfg, {k: np.asarray(v, dtype=np.float64) for k, v in w.items()})
        if self.cfg.fft_mode:
            spectra = spectral_matrices(self.cfg, q)
            self.mats = [dataclasses.replace(m, SW=sm.SW, SU=sm.SU) for m, sm in zip(self.mats, spectra)]

    def _encode(self, x, q):
        return np.asarray(x, dtype=np.float64)

    def _step(self, layer, v, st):
        h, new, _ = _float_step(self.cfg, self.mats[layer], v, st, self._work(layer))
        return h, new

    def step_detail(self, layer: int, x: np.ndarray, st: dict):
        """One float step with its intermediates (for error analysis; not counted in ``stats``)."""
        work = _Work(self.cfg, layer, {}, self.delta, self._thresholds(), None) if self.delta else None
        return _float_step(self.cfg, self.mats[layer], x, st, work)
