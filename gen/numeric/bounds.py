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
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from . import lut
from .config import Config
from .fixedpoint import QFormat
from .model import LayerMatrices

__all__ = ["StepBound", "lut_error", "narrow_error", "step_error_bound", "float_step_bound"]

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
    lim = int(np.ceil(2 * rng * 2 ** q_in.frac))
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


def step_error_bound(cfg: Config, mats: LayerMatrices, x: np.ndarray, state: dict, inter: dict) -> StepBound:
    """Bound of ``|integer step - float step|`` for one layer and one step.

    Parameters
    ----------
    cfg : Config
    mats : LayerMatrices
        The float model's matrices of this layer (quantized parameters; only
        GRU reset-before reads them, for ``|U_n|``).
    x : (N, C) float
        The layer input (dequantized), without the QRNN window.
    state : dict
        The float state before the step (``h``, ``c``; dequantized integer state).
    inter : dict
        Intermediates of :meth:`rnnaccel.numeric.golden.FloatModel.step_detail`
        (``xp``, ``hp``, and ``hp_n`` for GRU reset-before).
    """
    fa, fx, fc, fp = cfg.q_act.frac, cfg.q_state.frac, cfg.q_cell.frac, cfg.q_pre.frac
    qp, qc, qs = cfg.q_pre, cfg.q_cell, cfg.q_state
    ep = narrow_error(cfg.acc_frac, qp)
    sig = lut.float_fn("sigmoid")
    tanh = lut.float_fn("tanh")

    def act(fn, p, d, q_in=qp):
        f = sig if fn == "sigmoid" else tanh
        return f(p), lut_error(cfg, fn, q_in) + _deriv_sup(fn, p, d) * d

    xp, hp = inter["xp"], inter["hp"]
    out = StepBound(h=None)
    chk = out.checks
    # fused projections narrow W x + U h + b + c once: the pre-activation is off by e_p, not 2 e_p,
    # and xp, hp never exist on their own (nothing to saturate)
    fused = cfg.fused_projections
    epre = ep if fused else 2 * ep
    if not fused:
        chk.append(("xp", xp, np.full_like(xp, ep), qp))
        if hp is not None:
            chk.append(("hp", hp, np.full_like(hp, ep), qp))
    cell = cfg.cell
    T = out.terms

    if cell == "lstm":
        pre = xp + hp
        chk.append(("pre", pre, np.full_like(pre, epre), qp))
        i, ei = act("sigmoid", pre[:, 0], epre)
        f, ef = act("sigmoid", pre[:, 1], epre)
        g, eg = act("tanh", pre[:, 2], epre)
        o, eo = act("sigmoid", pre[:, 3], epre)
        c = state["c"]
        c_new = f * c + i * g
        ec = ef * np.abs(c) + _mul(i, ei, g, eg) + narrow_error(max(fa + fc, 2 * fa), qc)
        tc, etc = act("tanh", c_new, ec, qc)
        eh = _mul(o, eo, tc, etc) + narrow_error(2 * fa, qs)
        h_new = o * tc
        T.update(i=ei, f=ef, g=eg, o=eo, tanh_c=etc)
    elif cell == "gru":
        h = state["h"]
        r, er = act("sigmoid", xp[:, 0] + hp[:, 0], 2 * ep)
        z, ez = act("sigmoid", xp[:, 1] + hp[:, 1], 2 * ep)
        chk.append(("pre_rz", xp[:, :2] + hp[:, :2], np.full_like(xp[:, :2], 2 * ep), qp))
        if cfg.gru_reset_after:
            n_pre = xp[:, 2] + r * hp[:, 2]
            en_pre = ep + _mul(r, er, hp[:, 2], ep) + narrow_error(max(fp, fa + fp), qp)
        else:
            erh = er * np.abs(h) + narrow_error(fa + fx, qs)
            chk.append(("rh", r * h, erh, qs))
            hn = inter["hp_n"]
            ehn = np.einsum("hc,nc->nh", np.abs(mats.U[2]), erh) + ep
            chk.append(("hp_n", hn, ehn, qp))
            n_pre = xp[:, 2] + hn
            en_pre = ep + ehn
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
        f, ef = act("sigmoid", xp[:, 1], ep)
        r, er = act("sigmoid", xp[:, 2], ep)
        c_new = f * c + (1 - f) * xt
        ec = _mix(xt, ep, c, 0.0, f, ef) + narrow_error(max(fa + fc, fa + fp), qc)
        tc, etc = act("tanh", c_new, ec, qc)
        if xp.shape[1] == 4:
            hw, ehw, hw_frac = xp[:, 3], ep, fp
        else:
            hw, ehw, hw_frac = x, 0.0, fx
        eh = _mix(hw, ehw, tc, etc, r, er) + narrow_error(max(2 * fa, fa + hw_frac), qs)
        h_new = r * tc + (1 - r) * hw
        T.update(f=ef, r=er, tanh_c=etc)
    elif cell == "qrnn":
        c = state["c"]
        z, ez = act("tanh", xp[:, 0], ep)
        f, ef = act("sigmoid", xp[:, 1], ep)
        o, eo = act("sigmoid", xp[:, 2], ep)
        c_new = f * c + (1 - f) * z
        ec = _mix(z, ez, c, 0.0, f, ef) + narrow_error(max(fa + fc, 2 * fa), qc)
        eh = _mul(o, eo, c_new, ec) + narrow_error(fa + fc, qs)
        h_new = o * c_new
        T.update(z=ez, f=ef, o=eo)
    elif cell == "rnn":
        pre = xp[:, 0] + hp[:, 0]
        chk.append(("pre", pre, np.full_like(pre, epre), qp))
        h_new, et = act("tanh", pre, epre)
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
    """Run one float step (``model`` a FloatModel with quantized parameters) and bound it.

    Returns ``(h_float, new_state, StepBound)``.
    """
    h, new, inter = model.step_detail(layer, x, state)
    return h, new, step_error_bound(model.cfg, model.mats[layer], x, state, inter)
