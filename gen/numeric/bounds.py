"""Rigorous one-step error bound of the integer model against the float model.

Setting: one layer, one time step. The integer model (:class:`~rnnaccel.numeric.golden.IntegerModel`)
and the float model built with ``quantized_params=True`` start from the *same*
state (the float state is the dequantized integer state) and read the same
input (dequantized), so the matrix-vector products agree exactly and every
difference comes from the fixed-point steps. :func:`step_error_bound` gives,
elementwise, ``|h_int - h_float|`` (and ``|c_int - c_float|``) <= bound.

Error sources (``lsb(q) = 2**-q.frac``):

* narrowing a value with more fraction bits than ``q``: ``lsb(q)/2``
  (round half up; none when no bits are dropped). A projection ``W x + b``
  is exact in the accumulator, so ``xp`` and ``hp`` are each off by at most
  ``e_p = lsb(q_pre)/2`` and their saturating sum by ``2 e_p = lsb(q_pre)``
  (fused projections, ``datapath = 'serial'``: one narrowing, ``e_p``);
* a table lookup ``LUT_f(p_int)`` with ``|p_int - p| <= d``:
  ``|LUT_f(p_int) - f(p)| <= E_f(q_in) + d * sup|f'|`` where ``E_f`` is the
  measured table error over every representable input of ``q_in``
  (:func:`rnnaccel.numeric.lut.table_error` on [-2R, 2R], both ends included, plus
  ``1 - f(2R)`` for the constant tail beyond) and ``sup|f'|`` is taken over [p-d, p+d] (mean value
  theorem; at most 1/4 for sigmoid, 1 for tanh);
* products of two inexact operands:
  ``|a' b' - a b| <= |a| e_b + |b| e_a + e_a e_b`` (the second-order term
  keeps the bound rigorous); a convex mix ``y = u + s (v - u)`` (GRU's
  ``(1-z) n + z h``, the cell updates of SRU and QRNN, SRU's highway)
  gives ``e_u (1-s) + e_v s + e_s |v - u| + e_s (e_u + e_v)``.

Per cell (float values ``a`` taken from the float step, errors ``e_a`` from the
rules above; ``N(q)`` is the narrowing error into ``q``):

* LSTM: ``e_c' = e_f |c| + [i, g] + N(q_cell)``;
  ``e_h = [o, tanh c'] + N(q_state)`` with ``tanh`` read at ``q_cell``.
* GRU reset-after: ``e_npre = e_p + [r, hp_n] + N(q_pre)``; reset-before:
  ``e_rh = e_r |h| + N(q_state)``, ``e_hn = |U_n| e_rh + e_p``,
  ``e_npre = e_p + e_hn``; both: ``e_h = mix(n, h; z) + N(q_state)``.
* SRU: ``e_c' = mix(x~, c; f) + N(q_cell)``, ``e_h = mix(hw, tanh c'; r) + N(q_state)``
  with ``hw`` the input (exact) or the ``s`` projection (``e_p``).
* QRNN: ``e_c' = mix(z, c; f) + N(q_cell)``, ``e_h = [o, c'] + N(q_state)``.
* RNN: ``e_h = e_tanh(pre) + N(q_state)``.

Assumption: nothing saturates (projections, sums, cell and hidden state stay
inside their formats); :meth:`StepBound.saturation_free` checks this for the
float values widened by their error bounds. A ``1e-12`` slack covers float64
rounding in the float model.

**FFT mode** (``circulant_mode = 'fft'``, :mod:`rnnaccel.numeric.fft`): a
projection is no longer exact before its narrowing. :func:`projection_error`
bounds ``|y_int - (B x + b)|`` per element, with ``x_int`` within ``e_x`` of ``x``
(zero except for GRU reset-before's ``r h``), from the formats:

* input error through the exact map: ``|B| e_x``;
* forward transform of each segment j, stage by stage in modulus, with
  ``M_j = max |x_int|`` over the segment (the exact stage values are partial
  DFTs scaled by ``2**-s``, never larger), ``d_s`` the largest twiddle
  quantization error ``|W_q - W|`` of stage s and ``l_F = 2**-(fx + L)``:
  ``e_s = e_(s-1) (2 + d_s) / 2 + d_s M_j / 2 + l_F / sqrt(2)``, then the
  narrowing to q_state (``lsb/2`` on the real bins 0 and k/2, ``lsb/sqrt(2)``
  on the complex ones): ``e_X[j, m]``;
* spectral products (exact): ``E_P[m] = sum_j |S_j[m]| e_X[j, m]``; against the
  float weights (``params = 'float'``) also the spectrum quantization
  ``sum_j |dS[m]| |X'_j[m]|`` with ``|dS| <= lsb(q_spectrum)/2`` per component;
* the unscaled inverse: the error of its input adds at most
  ``E = sum over all k bins of E_P[m]`` to every output; its own arithmetic
  ``e_s = e_(s-1) (2 + d_s) + d_s M_I + l_A / sqrt(2)`` (the rounding term only on
  stages with a nontrivial twiddle, ``l_A = 2**-(fs + fx)``), where ``M_I`` bounds
  the exact output of the row block (every intermediate of a decimation-in-time
  inverse is a mean of outputs times phases, so never larger):
  ``M_I = max |B x_int| + E``;
* the narrowing to q_pre after the bias: ``lsb(q_pre)/2``.

With ``params = 'quantized'`` (the default) the float model holds the
parameters the integer model stores (``FloatModel(quantized_params=True)``:
in FFT mode the defining vectors whose DFT is the stored spectrum), so the
bound covers the fixed-point arithmetic; with ``params = 'float'`` it holds the
float weights and biases, and the bound adds their quantization: direct mode
``lsb(q_weight)/2 * sum |x_int|`` per projection, FFT mode the spectrum term
above, and ``lsb(q_pre)/2`` per bias.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import fft, lut
from .circulant import expand
from .config import Config
from .fixedpoint import QFormat
from .model import LayerMatrices

__all__ = [
    "StepBound",
    "lut_error",
    "narrow_error",
    "projection_error",
    "fft_forward_error",
    "fft_inverse_error",
    "step_error_bound",
    "float_step_bound",
    "PARAMS",
]

#: What the float model's parameters are: the integer model's (dequantized) or the float weights.
PARAMS = ("quantized", "float")

FLOAT_SLACK = 1e-12


@functools.lru_cache(maxsize=256)
def lut_error(cfg: Config, fn: str, q_in: QFormat) -> float:
    """Max |lookup - f| over every representable input of ``q_in`` (tail included).

    :func:`rnnaccel.numeric.lut.table_error` measures [-2R, 2R] but, for a format whose
    range is exactly [-2R, 2R), skips its most negative value; the endpoints
    are measured here too.
    """
    err = lut.table_error(cfg, fn, q_in)["max_abs"]
    rng = cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range
    lim = int(np.ceil(2 * rng * 2**q_in.frac))
    ends = np.array([max(q_in.min_raw, -lim), min(q_in.max_raw, lim)], dtype=np.int64)
    got = lut.lookup(cfg, fn, ends, q_in.frac) * cfg.q_act.lsb
    err = max(err, float(np.max(np.abs(got - lut.float_fn(fn)(ends * q_in.lsb)))))
    if q_in.max_value > 2 * rng or q_in.min_value < -2 * rng:
        # beyond R the lookup is constant; f moves at most 1 - f(2R) past +-2R
        err += float(1.0 - lut.float_fn(fn)(2 * rng))
    return err


def narrow_error(from_frac: int, q: QFormat) -> float:
    """Rounding error of :func:`rnnaccel.numeric.fixedpoint.narrow` from ``from_frac`` bits into ``q``."""
    return q.lsb / 2 if from_frac > q.frac else 0.0


def _deriv_sup(fn: str, p: np.ndarray, d) -> np.ndarray:
    """sup |f'| over [p - d, p + d] (f' is even and decreasing in |x|)."""
    a = np.maximum(np.abs(p) - d, 0.0)
    if fn == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-a))
        return s * (1.0 - s)
    return 1.0 - np.tanh(a) ** 2


def _mul(a, ea, b, eb):
    return np.abs(a) * eb + np.abs(b) * ea + ea * eb


def _mix(u, eu, v, ev, s, es):
    """Error of u + s (v - u) (= (1-s) u + s v), s in [0, 1]."""
    return eu * (1 - s) + ev * s + es * np.abs(v - u) + es * (eu + ev)


def _segments(x: np.ndarray, blocks: int, k: int) -> np.ndarray:
    out = np.zeros((x.shape[0], blocks * k))
    out[:, : x.shape[1]] = x
    return out.reshape(x.shape[0], blocks, k)


def _bin_modulus(packed: np.ndarray) -> np.ndarray:
    """|X[m]| for m = 0 .. k/2 of packed spectra (..., k)."""
    re, im = fft.unpack_half(packed)
    return np.hypot(re, im)


def _half_weights(k: int) -> np.ndarray:
    """How often bin m = 0 .. k/2 appears in the full Hermitian spectrum (1, 2, ..., 2, 1)."""
    w = np.full(k // 2 + 1, 2.0)
    w[0] = w[-1] = 1.0
    return w


def _quantization_modulus(q: QFormat, k: int) -> np.ndarray:
    """Largest modulus of a packed bin's rounding error in ``q``: lsb/2 on bins 0 and k/2, lsb/sqrt(2) inside."""
    e = np.full(k // 2 + 1, q.lsb / np.sqrt(2.0))
    e[0] = e[-1] = q.lsb / 2
    return e


def _stage_twiddle_error(k: int, s: int) -> float:
    return float(np.max(fft.twiddle_errors(k)[fft.stage_twiddles(k, s)]))


def _stage_rounds(k: int, s: int) -> bool:
    """Stage s of the inverse rounds (it has a twiddle other than 1 and -i)."""
    return bool(np.any(~fft.trivial_twiddle(k, fft.stage_twiddles(k, s))))


def fft_forward_error(k: int, q: QFormat, xmax) -> np.ndarray:
    """Bound of ``|rfft(x)[m] - DFT(x)[m] / k|`` (modulus, real units), (..., k/2 + 1), for ``max |x| <= xmax``.

    :func:`rnnaccel.numeric.fft.rfft` of segments in ``q``: the L forward stages
    (see the module docs), then the narrowing to ``q``; valid while the
    narrowing does not saturate (``DFT(x)/k`` plus this bound inside ``q``).
    """
    L = fft.stages(k)
    lsb_f = 2.0 ** -(q.frac + L)
    xmax = np.asarray(xmax, dtype=np.float64)
    e = np.zeros_like(xmax)
    for s in range(1, L + 1):
        d = _stage_twiddle_error(k, s)
        e = e * (2 + d) / 2 + d * xmax / 2 + lsb_f / np.sqrt(2.0)
    return e[..., None] + _quantization_modulus(q, k)


def fft_inverse_error(k: int, frac: int, ymax) -> np.ndarray:
    """Bound of ``|irfft(P) - IDFT(P)|`` (real units) for packed ``P`` with ``frac`` fraction bits.

    ``IDFT`` is the exact unscaled inverse ``sum_m P[m] W_k^(-m n)`` and
    ``ymax`` bounds its outputs' magnitude (every intermediate of the
    decimation-in-time inverse is a mean of outputs times phases). The error of
    the inverse's own arithmetic: twiddle quantization and the rounding of each
    nontrivial twiddle product (see the module docs).
    """
    lsb = 2.0**-frac
    ymax = np.asarray(ymax, dtype=np.float64)
    e = np.zeros_like(ymax)
    for s in range(1, fft.stages(k) + 1):
        d = _stage_twiddle_error(k, s)
        e = e * (2 + d) + d * ymax + (lsb / np.sqrt(2.0) if _stage_rounds(k, s) else 0.0)
    return e


def projection_error(
    cfg: Config, terms, biases: int = 1, params: str = "quantized", checks: list | None = None
) -> np.ndarray:
    """Bound of ``|projection_int - (sum B x + bias)|`` (N, G, H) for the config's circulant mode.

    ``terms`` lists ``(B, S, x, e_x)``: the float model's dense matrix B (G, H, C),
    the raw stored spectra S (G, H/k, C/k, k; FFT mode, else unused), the float
    input x (N, C) and the bound ``e_x`` (N, C) of ``|x_int - x|`` (None: exact).
    Several terms are fused projections (one accumulation, one narrowing).
    ``biases``: the bias words added (1, or 2 for ``b + c``). ``checks``
    (optional) receives saturation checks. See the module docs for the terms.
    """
    if params not in PARAMS:
        raise ValueError(f"params must be one of {', '.join(PARAMS)}, not {params!r}")
    qp = cfg.q_pre
    n = terms[0][2].shape[0]
    g, h = terms[0][0].shape[:2]
    out = np.zeros((n, g, h))
    for B, _, x, ex in terms:
        if ex is not None:
            out += np.einsum("ghc,nc->ngh", np.abs(B), ex)
        if not cfg.fft_mode and params == "float":
            xabs = np.abs(x) if ex is None else np.abs(x) + ex
            out += cfg.q_weight.lsb / 2 * xabs.sum(axis=1)[:, None, None]
            if checks is not None:
                checks.append(("weights", B, np.zeros_like(B), cfg.q_weight))
    if cfg.fft_mode:
        out += _fft_error(cfg, terms, params, checks)[:, :, :h]
        out += narrow_error(cfg.fft_acc_frac, qp)
    else:
        out += narrow_error(cfg.acc_frac, qp)
    if params == "float":
        out += biases * qp.lsb / 2
    return out


def _fft_error(cfg: Config, terms, params: str, checks: list | None) -> np.ndarray:
    """The transforms' share of :func:`projection_error`: (N, G, padded rows).

    ``M_I`` comes from the circulant blocks the stored spectra realize, every
    row of them (the padding rows' outputs pass through the inverse too).
    """
    k = cfg.block_size
    qs, qsp = cfg.q_state, cfg.q_spectrum
    ep = exact = None
    for _, S, x, ex in terms:
        cb = S.shape[2]
        xs = _segments(x, cb, k)
        exs = np.zeros_like(xs) if ex is None else _segments(ex, cb, k)
        xmax = np.abs(xs).max(axis=-1) + exs.max(axis=-1)  # (N, cb)
        e_x = fft_forward_error(k, qs, xmax)  # (N, cb, k/2 + 1)
        s_mod = _bin_modulus(S * qsp.lsb)  # (G, rb, cb, k/2 + 1)
        term = np.einsum("grjm,njm->ngrm", s_mod, e_x)
        spec = np.fft.rfft(xs, axis=-1) / k
        spec_x = np.abs(spec) + exs.max(axis=-1)[..., None]  # |X'(x_int)|
        if params == "float":  # assumes the float spectra do not saturate (float_step_bound checks it)
            term = term + np.einsum("m,njm->nm", _quantization_modulus(qsp, k), spec_x)[:, None, None, :]
        if checks is not None:
            checks.append(("input spectra", spec_x, e_x, qs))
        ep = term if ep is None else ep + term
        # |B_eff x_int| on every row of the blocks the spectra realize
        full = np.stack([expand(v) for v in fft.spectra_vectors(S * qsp.lsb)])  # (G, rb k, cb k)
        flat, eflat = xs.reshape(xs.shape[0], -1), exs.reshape(exs.shape[0], -1)
        y = np.abs(np.einsum("grc,nc->ngr", full, flat)) + np.einsum("grc,nc->ngr", np.abs(full), eflat)
        exact = y if exact is None else exact + y
    n, g, rb = ep.shape[:3]
    E = np.einsum("ngrm,m->ngr", ep, _half_weights(k))  # through the inverse
    m_inv = exact.reshape(n, g, rb, k).max(axis=-1) + E
    return np.repeat(E + fft_inverse_error(k, cfg.fft_acc_frac, m_inv), k, axis=2)


@dataclass
class StepBound:
    """Elementwise error bounds of one step; ``checks`` lists (name, float value, bound, format)."""

    h: np.ndarray
    c: np.ndarray | None = None
    terms: dict[str, np.ndarray] = field(default_factory=dict)
    checks: list[tuple[str, np.ndarray, np.ndarray, QFormat]] = field(default_factory=list)

    def saturating(self) -> list[str]:
        """Names of the values that could leave their format (violating the assumption)."""
        bad = []
        for name, v, e, q in self.checks:
            if np.any(v + e > q.max_value) or np.any(v - e < q.min_value):
                bad.append(f"{name} ({q}): max |value| {float(np.max(np.abs(v))):.4g}")
        return bad

    def saturation_free(self) -> bool:
        return not self.saturating()


def step_error_bound(
    cfg: Config, mats: LayerMatrices, x: np.ndarray, state: dict, inter: dict, params: str = "quantized"
) -> StepBound:
    """Bound of ``|integer step - float step|`` for one layer and one step.

    Parameters
    ----------
    cfg : Config
    mats : LayerMatrices
        The float model's matrices of this layer (:class:`~rnnaccel.numeric.golden.FloatModel`;
        in FFT mode with the stored spectra ``SW``, ``SU``).
    x : (N, C) float
        The layer input (dequantized), without the QRNN window.
    state : dict
        The float state before the step (``h``, ``c``; dequantized integer state).
    inter : dict
        Intermediates of :meth:`rnnaccel.numeric.golden.FloatModel.step_detail`
        (``xp``, ``hp``, and ``hp_n`` for GRU reset-before).
    params : str
        ``quantized``: the float model holds the integer model's parameters
        (``quantized_params=True``); ``float``: the float weights and biases
        (their quantization is bounded too).
    """
    fa, fx, fc, fp = cfg.q_act.frac, cfg.q_state.frac, cfg.q_cell.frac, cfg.q_pre.frac
    qp, qc, qs = cfg.q_pre, cfg.q_cell, cfg.q_state
    sig = lut.float_fn("sigmoid")
    tanh = lut.float_fn("tanh")

    def act(fn, p, d, q_in=qp):
        f = sig if fn == "sigmoid" else tanh
        return f(p), lut_error(cfg, fn, q_in) + _deriv_sup(fn, p, d) * d

    xp, hp = inter["xp"], inter["hp"]
    out = StepBound(h=None)
    chk = out.checks
    xin = np.concatenate([x, state["xprev"]], axis=1) if cfg.cell == "qrnn" and cfg.qrnn_window == 2 else x
    # fused projections narrow W x + U h + b + c once: the pre-activation has one projection error,
    # and xp, hp never exist on their own (nothing to saturate)
    fused = cfg.fused_projections
    if fused:
        epre = projection_error(
            cfg, [(mats.W, mats.SW, xin, None), (mats.U, mats.SU, state["h"], None)], 2, params, chk
        )
    else:
        ep = projection_error(cfg, [(mats.W, mats.SW, xin, None)], 1, params, chk)
        chk.append(("xp", xp, ep, qp))
        if hp is not None:
            ep_h = projection_error(cfg, [(mats.U, mats.SU, state["h"], None)], 1, params, chk)
            chk.append(("hp", hp, ep_h, qp))
            epre = ep + ep_h
    cell = cfg.cell
    T = out.terms

    if cell == "lstm":
        pre = xp + hp
        chk.append(("pre", pre, epre, qp))
        i, ei = act("sigmoid", pre[:, 0], epre[:, 0])
        f, ef = act("sigmoid", pre[:, 1], epre[:, 1])
        g, eg = act("tanh", pre[:, 2], epre[:, 2])
        o, eo = act("sigmoid", pre[:, 3], epre[:, 3])
        c = state["c"]
        c_new = f * c + i * g
        ec = ef * np.abs(c) + _mul(i, ei, g, eg) + narrow_error(max(fa + fc, 2 * fa), qc)
        tc, etc = act("tanh", c_new, ec, qc)
        eh = _mul(o, eo, tc, etc) + narrow_error(2 * fa, qs)
        h_new = o * tc
        T.update(i=ei, f=ef, g=eg, o=eo, tanh_c=etc)
    elif cell == "gru":
        h = state["h"]
        r, er = act("sigmoid", xp[:, 0] + hp[:, 0], epre[:, 0])
        z, ez = act("sigmoid", xp[:, 1] + hp[:, 1], epre[:, 1])
        chk.append(("pre_rz", xp[:, :2] + hp[:, :2], epre[:, :2], qp))
        if cfg.gru_reset_after:
            n_pre = xp[:, 2] + r * hp[:, 2]
            en_pre = ep[:, 2] + _mul(r, er, hp[:, 2], ep_h[:, 2]) + narrow_error(max(fp, fa + fp), qp)
        else:
            erh = er * np.abs(h) + narrow_error(fa + fx, qs)
            chk.append(("rh", r * h, erh, qs))
            hn = inter["hp_n"]
            ehn = projection_error(
                cfg, [(mats.U[2:3], None if mats.SU is None else mats.SU[2:3], r * h, erh)], 1, params, chk
            )[:, 0]
            chk.append(("hp_n", hn, ehn, qp))
            n_pre = xp[:, 2] + hn
            en_pre = ep[:, 2] + ehn
            T.update(rh=erh, hp_n=ehn)
        chk.append(("n_pre", n_pre, en_pre, qp))
        n, en = act("tanh", n_pre, en_pre)
        eh = _mix(n, en, h, 0.0, z, ez) + narrow_error(max(2 * fa, fa + fx), qs)
        h_new = (1 - z) * n + z * h
        c_new, ec = None, None
        T.update(r=er, z=ez, n_pre=en_pre, n=en)
    elif cell == "sru":
        c = state["c"]
        xt = xp[:, 0]
        f, ef = act("sigmoid", xp[:, 1], ep[:, 1])
        r, er = act("sigmoid", xp[:, 2], ep[:, 2])
        c_new = f * c + (1 - f) * xt
        ec = _mix(xt, ep[:, 0], c, 0.0, f, ef) + narrow_error(max(fa + fc, fa + fp), qc)
        tc, etc = act("tanh", c_new, ec, qc)
        if xp.shape[1] == 4:
            hw, ehw, hw_frac = xp[:, 3], ep[:, 3], fp
        else:
            hw, ehw, hw_frac = x, 0.0, fx
        eh = _mix(hw, ehw, tc, etc, r, er) + narrow_error(max(2 * fa, fa + hw_frac), qs)
        h_new = r * tc + (1 - r) * hw
        T.update(f=ef, r=er, tanh_c=etc)
    elif cell == "qrnn":
        c = state["c"]
        z, ez = act("tanh", xp[:, 0], ep[:, 0])
        f, ef = act("sigmoid", xp[:, 1], ep[:, 1])
        o, eo = act("sigmoid", xp[:, 2], ep[:, 2])
        c_new = f * c + (1 - f) * z
        ec = _mix(z, ez, c, 0.0, f, ef) + narrow_error(max(fa + fc, 2 * fa), qc)
        eh = _mul(o, eo, c_new, ec) + narrow_error(fa + fc, qs)
        h_new = o * c_new
        T.update(z=ez, f=ef, o=eo)
    elif cell == "rnn":
        pre = xp[:, 0] + hp[:, 0]
        chk.append(("pre", pre, epre[:, 0], qp))
        h_new, et = act("tanh", pre, epre[:, 0])
        eh = et + narrow_error(fa, qs)
        c_new, ec = None, None
    else:  # pragma: no cover - Config rejects other cells
        raise ValueError(cell)

    if c_new is not None:
        chk.append(("c", c_new, ec, qc))
        out.c = ec + FLOAT_SLACK
    chk.append(("h", h_new, eh, qs))
    out.h = eh + FLOAT_SLACK
    return out


def float_step_bound(model, layer: int, x: np.ndarray, state: dict):
    """Run one float step (``model`` a FloatModel) and bound it.

    The bound's ``params`` follow the model: ``quantized`` with
    ``quantized_params=True``, ``float`` otherwise. Returns ``(h_float, new_state, StepBound)``.
    """
    h, new, inter = model.step_detail(layer, x, state)
    params = "quantized" if model.quantized_params else "float"
    bound = step_error_bound(model.cfg, model.mats[layer], x, state, inter, params)
    cfg = model.cfg
    if cfg.fft_mode and params == "float":
        # the spectrum term assumes |dS| <= lsb/2: quantizing (round to nearest) saturates a float spectrum
        # word only past half an LSB beyond the range, hence the negative margin
        q = cfg.q_spectrum
        for key in ("W", "U"):
            if f"layer{layer}.{key}" in model.weights:
                spec = fft.weight_spectra(model.weights[f"layer{layer}.{key}"])
                bound.checks.append((f"{key} spectra", spec, np.full_like(spec, -q.lsb / 2), q))
    return h, new, bound
