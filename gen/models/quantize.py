"""Choosing the Q formats of a model: one format per tensor class.

A model has six classes of fixed-point tensors (:class:`rnnaccel.numeric.config.Config`):

=============  ===============================================================
``q_weight``   the matrices W and U (circulant defining vectors)
``q_pre``      biases, projections ``xp``/``hp``, summed gate pre-activations,
               GRU's candidate pre-activation and reset-before ``U_n (r h)``
``q_state``    the inputs and every hidden state (and reset-before ``r h``)
``q_cell``     the cell state of LSTM, SRU and QRNN
``q_act``      sigmoid/tanh outputs (in [-1, 1]; its width is all that matters)
``q_spectrum`` the stored weight spectra (``circulant_mode = 'fft'``: each
               block's DFT, Hermitian-packed, :mod:`rnnaccel.numeric.fft`)
=============  ===============================================================

:func:`choose_formats` keeps every width (unless ``widths`` changes it) and
picks, per class, the most fractional bits that still hold the largest value
seen, with the one rounding rule (:func:`rnnaccel.numeric.fixedpoint.quantize`:
``floor(x * 2**f + 0.5)``, then clip): a value *saturates* in a format when the
clip changes it. Sources of the largest value:

* ``q_weight``: the largest |weight| (may give negative integer bits, e.g.
  ``Q-2.9``, which the config allows for weights);
* ``q_pre``: the largest |bias|; with calibration inputs also every observed
  pre-activation; without them, the activation tables' input range (a
  pre-activation beyond it only reaches the tables' constant tails);
* ``q_state``: calibration inputs and hidden states (config kept without them);
* ``q_cell``: calibration cell states (config kept without them);
* ``q_act``: ``width - 2`` fraction bits (holds 1.0 exactly);
* ``q_spectrum`` (FFT mode): the largest |real or imaginary part| of the
  weight spectra, computed from the float defining vectors (negative integer
  bits allowed, as for weights); direct mode stores no spectra and keeps the
  config's (so a direct-mode config is unchanged). The segments' spectra need
  no format of their own: ``DFT(x) / k`` never exceeds max |x|, so they are
  held in ``q_state``.

Then the config's rules: ``q_pre.frac <= q_weight.frac + q_state.frac`` (biases
align exactly; FFT mode: ``q_spectrum.frac + q_state.frac``, the inverse
transform's fraction) and the table step no finer than the resolution of ``q_pre`` and
``q_cell``. A chosen format that breaks a rule is backed off (fewer fraction
bits for the first rule, more for the second) and the report says so. Forced
formats (``force={"q_state": "Q2.13"}`` or keyword ``q_state="Q2.13"``) are
used as given; if they break a rule the :class:`~rnnaccel.numeric.config.ConfigError`
propagates.

The report (a JSON-able dict) gives per class the format, where it came from,
the observed max |value|, and saturation counts: ``saturations`` over the
float calibration run (and the weights/biases themselves) in the chosen
format, and ``integer_saturations`` counted while running the bit-exact
integer arithmetic of :mod:`rnnaccel.numeric.golden` over the calibration inputs with
the chosen config (:func:`integer_saturations`, checked bit for bit against
:class:`~rnnaccel.numeric.golden.IntegerModel` in the tests). The integer run can
exceed the float range by a few LSBs (rounded states feed the next step); a
chosen format it saturates but the float run does not is widened by one
integer bit (up to four times) and the report notes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..numeric import fft, lut
from ..numeric.config import Config
from ..numeric.fixedpoint import QFormat, align, quantize, round_shift
from ..numeric.golden import FloatModel, InputError, fft_accumulate
from ..numeric.model import Weights, check_weights, dense_matrices, quantize_weights, spectral_matrices

__all__ = [
    "CLASSES",
    "choose_formats",
    "fit_format",
    "count_saturations",
    "calibrate",
    "Calibration",
    "integer_saturations",
    "format_report",
]

#: The tensor classes, as Config field names.
CLASSES = ("q_weight", "q_pre", "q_state", "q_cell", "q_act", "q_spectrum")

_ALIASES = {
    "weight": "q_weight",
    "pre": "q_pre",
    "state": "q_state",
    "cell": "q_cell",
    "act": "q_act",
    "spectrum": "q_spectrum",
}

#: Most fraction bits beyond ``width - 1`` a weight format may get (tiny weights).
MAX_EXTRA_WEIGHT_FRAC = 16


def _cls_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in CLASSES:
        raise ValueError(f"unknown tensor class {name!r} (known: {', '.join(CLASSES)})")
    return name


# ----------------------------------------------------------------------------
# Saturation of the one rounding rule
# ----------------------------------------------------------------------------


def count_saturations(values, q: QFormat) -> int:
    """How many of ``values`` the clip of :func:`~rnnaccel.numeric.fixedpoint.quantize` changes in ``q``."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return 0
    scaled = np.floor(v * (2.0**q.frac) + 0.5)
    return int(np.count_nonzero((scaled > q.max_raw) | (scaled < q.min_raw)))


def _holds(lo: float, hi: float, q: QFormat) -> bool:
    return count_saturations(np.array([lo, hi]), q) == 0


def fit_format(
    lo: float, hi: float, width: int, min_int_bits: int | None = 0, max_frac: int | None = None
) -> tuple[QFormat, bool]:
    """The ``width``-bit format with the most fraction bits that holds [lo, hi] without saturating.

    ``min_int_bits`` bounds the integer bits from below (``None``: no bound,
    down to ``-(MAX_EXTRA_WEIGHT_FRAC)``). Returns ``(format, holds)``; when
    even 0 fraction bits saturate, the widest range (``frac = 0``) and False.
    """
    top = width - 1 - (min_int_bits if min_int_bits is not None else -MAX_EXTRA_WEIGHT_FRAC)
    if max_frac is not None:
        top = min(top, max_frac)
    for frac in range(max(top, 0), -1, -1):
        q = QFormat(width, frac)
        if _holds(lo, hi, q):
            return q, True
    return QFormat(width, 0), False


# ----------------------------------------------------------------------------
# Float calibration run
# ----------------------------------------------------------------------------


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Calibration:
    """Values of every tensor class seen in a float run (plus the parameters)."""

    values: dict[str, list[np.ndarray]] = field(default_factory=lambda: {c: [] for c in CLASSES})
    sequences: int = 0
    steps: int = 0

    def add(self, cls: str, arr) -> None:
        self.values[cls].append(np.asarray(arr, dtype=np.float64).ravel())

    def array(self, cls: str) -> np.ndarray:
        parts = self.values[cls]
        return np.concatenate(parts) if parts else np.zeros(0)

    def range(self, cls: str) -> tuple[float, float] | None:
        a = self.array(cls)
        return (float(a.min()), float(a.max())) if a.size else None


def _zero_state(cfg: Config, n: int, dtype) -> list[dict]:
    out = []
    for layer in range(cfg.num_layers):
        st = {"h": np.zeros((n, cfg.hidden_size), dtype)}
        if cfg.cell in ("lstm", "sru", "qrnn"):
            st["c"] = np.zeros((n, cfg.hidden_size), dtype)
        if cfg.cell == "qrnn" and cfg.qrnn_window == 2:
            st["xprev"] = np.zeros((n, cfg.layer_input_size(layer)), dtype)
        out.append(st)
    return out


def _check_calib(cfg: Config, x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != cfg.input_size:
        raise InputError(
            f"calibration inputs must have shape (N, T, {cfg.input_size}) or (T, {cfg.input_size}), not {np.shape(x)}"
        )
    if not np.all(np.isfinite(x)):
        raise InputError("calibration inputs contain NaN or infinite values")
    return x


def calibrate(cfg: Config, weights: Weights, calib_x=None) -> Calibration:
    """Collect the values of every class: parameters, and a float run over ``calib_x`` (N, T, input).

    The float run is :class:`~rnnaccel.numeric.golden.FloatModel` step by step
    (``step_detail``) with the float weights; GRU's candidate pre-activation,
    reset-before ``r h`` and the activation outputs are recomputed from the
    intermediates with the same equations.
    """
    cal = Calibration()
    for key, value in weights.items():
        kind = key.rsplit(".", 1)[1]
        cal.add("q_weight" if kind in ("W", "U") else "q_pre", value)
        if kind in ("W", "U") and cfg.fft_mode:
            cal.add("q_spectrum", fft.weight_spectra(value))
    if calib_x is None:
        return cal
    x = _check_calib(cfg, calib_x)
    n, t, _ = x.shape
    cal.sequences, cal.steps = n, t
    model = FloatModel(cfg, weights)
    state = _zero_state(cfg, n, np.float64)
    cell = cfg.cell
    for step in range(t):
        v = x[:, step]
        for layer in range(cfg.num_layers):
            st = state[layer]
            cal.add("q_state", v)
            h, new, inter = model.step_detail(layer, v, st)
            xp, hp = inter["xp"], inter["hp"]
            acts = []
            if cell == "lstm":
                pre = xp + hp
                cal.add("q_pre", xp), cal.add("q_pre", hp), cal.add("q_pre", pre)
                acts += [_sig(pre[:, [0, 1, 3]]), np.tanh(pre[:, 2]), np.tanh(new["c"])]
            elif cell == "gru":
                rz = xp[:, :2] + hp[:, :2]
                r = _sig(rz[:, 0])
                cal.add("q_pre", xp), cal.add("q_pre", hp[:, :2]), cal.add("q_pre", rz)
                if cfg.gru_reset_after:
                    cal.add("q_pre", hp[:, 2])
                    n_pre = xp[:, 2] + r * hp[:, 2]
                else:
                    cal.add("q_state", r * st["h"])
                    cal.add("q_pre", inter["hp_n"])
                    n_pre = xp[:, 2] + inter["hp_n"]
                cal.add("q_pre", n_pre)
                acts += [_sig(rz), np.tanh(n_pre)]
            elif cell == "sru":
                cal.add("q_pre", xp)
                acts += [_sig(xp[:, 1:3]), np.tanh(new["c"])]
            elif cell == "qrnn":
                cal.add("q_pre", xp)
                acts += [np.tanh(xp[:, 0]), _sig(xp[:, 1:3])]
            else:
                pre = xp + hp
                cal.add("q_pre", xp), cal.add("q_pre", hp), cal.add("q_pre", pre)
                acts.append(np.tanh(pre[:, 0]))
            for a in acts:
                cal.add("q_act", a)
            if "c" in new:
                cal.add("q_cell", new["c"])
            state[layer] = new
            v = h
        cal.add("q_state", v)  # the last layer's output
    return cal


# ----------------------------------------------------------------------------
# Integer run that counts saturations (mirrors rnnaccel.numeric.golden._int_step)
# ----------------------------------------------------------------------------


class _Counter:
    def __init__(self):
        self.counts = {c: 0 for c in CLASSES}

    def sat(self, x, q: QFormat, cls: str) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != object:
            x = x.astype(np.int64)
        bad = (x > q.max_raw) | (x < q.min_raw)
        self.counts[cls] += int(np.count_nonzero(bad))
        return np.clip(x, q.min_raw, q.max_raw).astype(np.int64)

    def narrow(self, x, from_frac: int, q: QFormat, cls: str) -> np.ndarray:
        return self.sat(round_shift(x, from_frac - q.frac), q, cls)

    def sum_narrow(self, terms, q: QFormat, cls: str) -> np.ndarray:
        top = max(f for _, f in terms)
        total = sum(align(v, f, top) for v, f in terms)
        return self.narrow(total, top, q, cls)


def _count_step(cfg: Config, m, x: np.ndarray, st: dict, cnt: _Counter):
    """One integer step of one layer, as ``rnnaccel.numeric.golden._int_step``, counting every saturation."""
    fa, fp, fc, fx = cfg.q_act.frac, cfg.q_pre.frac, cfg.q_cell.frac, cfg.q_state.frac
    qp, qs, qc = cfg.q_pre, cfg.q_state, cfg.q_cell
    one = 1 << fa
    L = lut.lookup

    def narrow_x(v, from_frac, q):  # the segments' spectra narrowed into q_state
        return cnt.narrow(v, from_frac, q, "q_state")

    def proj(key, vec, bias, gates=None, sl=slice(None)):
        if cfg.fft_mode:
            spectra = getattr(m, "S" + key)[sl]
            y = fft_accumulate(cfg, [(spectra, vec)], narrow_x)[:, :, : bias.shape[1]]
            acc, frac = y + align(bias[sl], fp, cfg.fft_acc_frac)[None], cfg.fft_acc_frac
        else:
            acc = np.einsum("ghc,nc->ngh", getattr(m, key)[sl].astype(np.int64), vec.astype(np.int64))
            acc, frac = acc + align(bias[sl], fp, cfg.acc_frac)[None], cfg.acc_frac
        out = round_shift(acc, frac - fp)
        if gates is not None:  # count only the gates the cell uses
            cnt.sat(out[:, gates], qp, "q_pre")
            return np.clip(out, qp.min_raw, qp.max_raw).astype(np.int64)
        return cnt.sat(out, qp, "q_pre")

    cell = cfg.cell
    xin = np.concatenate([x, st["xprev"]], axis=1) if cell == "qrnn" and cfg.qrnn_window == 2 else x
    new = dict(st)
    if cfg.fused_projections:  # serial datapath: W x + U h + (b + c), one narrowing (golden.fused_projection)
        bc = np.asarray(m.b, np.int64) + np.asarray(m.c, np.int64)
        if cfg.fft_mode:
            y = fft_accumulate(cfg, [(m.SW, xin), (m.SU, st["h"])], narrow_x)[:, :, : bc.shape[1]]
            pre = cnt.narrow(y + align(bc, fp, cfg.fft_acc_frac)[None], cfg.fft_acc_frac, qp, "q_pre")
        else:
            acc = np.einsum(
                "ghc,nc->ngh",
                np.concatenate([m.W, m.U], axis=2).astype(np.int64),
                np.concatenate([xin, st["h"]], axis=1).astype(np.int64),
            )
            pre = cnt.narrow(acc + align(bc, fp, cfg.acc_frac)[None], cfg.acc_frac, qp, "q_pre")
        if cell == "lstm":
            i, f, g, o = (L(cfg, fn, pre[:, j], fp) for j, fn in enumerate(("sigmoid", "sigmoid", "tanh", "sigmoid")))
            c = cnt.sum_narrow([(f * st["c"], fa + fc), (i * g, 2 * fa)], qc, "q_cell")
            h = cnt.narrow(o * L(cfg, "tanh", c, fc), 2 * fa, qs, "q_state")
            new["c"] = c
        else:
            h = cnt.narrow(L(cfg, "tanh", pre[:, 0], fp), fa, qs, "q_state")
        new["h"] = h
        return h, new
    xp = proj("W", xin, m.b)
    if cell == "lstm":
        hp = proj("U", st["h"], m.c)
        pre = cnt.sat(xp + hp, qp, "q_pre")
        i, f, g, o = (L(cfg, fn, pre[:, j], fp) for j, fn in enumerate(("sigmoid", "sigmoid", "tanh", "sigmoid")))
        c = cnt.sum_narrow([(f * st["c"], fa + fc), (i * g, 2 * fa)], qc, "q_cell")
        h = cnt.narrow(o * L(cfg, "tanh", c, fc), 2 * fa, qs, "q_state")
        new["c"] = c
    elif cell == "gru":
        hp = proj("U", st["h"], m.c, gates=None if cfg.gru_reset_after else [0, 1])
        r = L(cfg, "sigmoid", cnt.sat(xp[:, 0] + hp[:, 0], qp, "q_pre"), fp)
        z = L(cfg, "sigmoid", cnt.sat(xp[:, 1] + hp[:, 1], qp, "q_pre"), fp)
        if cfg.gru_reset_after:
            n_pre = cnt.sum_narrow([(xp[:, 2], fp), (r * hp[:, 2], fa + fp)], qp, "q_pre")
        else:
            rh = cnt.narrow(r * st["h"], fa + fx, qs, "q_state")
            hn = proj("U", rh, m.c, sl=slice(2, 3))[:, 0]
            n_pre = cnt.sat(xp[:, 2] + hn, qp, "q_pre")
        n = L(cfg, "tanh", n_pre, fp)
        h = cnt.sum_narrow([((one - z) * n, 2 * fa), (z * st["h"], fa + fx)], qs, "q_state")
    elif cell == "sru":
        hw, hw_frac = (xp[:, 3], fp) if xp.shape[1] == 4 else (x, fx)
        f = L(cfg, "sigmoid", xp[:, 1], fp)
        r = L(cfg, "sigmoid", xp[:, 2], fp)
        c = cnt.sum_narrow([(f * st["c"], fa + fc), ((one - f) * xp[:, 0], fa + fp)], qc, "q_cell")
        tc = L(cfg, "tanh", c, fc)
        h = cnt.sum_narrow([(r * tc, 2 * fa), ((one - r) * hw, fa + hw_frac)], qs, "q_state")
        new["c"] = c
    elif cell == "qrnn":
        z = L(cfg, "tanh", xp[:, 0], fp)
        f = L(cfg, "sigmoid", xp[:, 1], fp)
        o = L(cfg, "sigmoid", xp[:, 2], fp)
        c = cnt.sum_narrow([(f * st["c"], fa + fc), ((one - f) * z, 2 * fa)], qc, "q_cell")
        h = cnt.narrow(o * c, fa + fc, qs, "q_state")
        new["c"] = c
        new["xprev"] = x
    else:
        hp = proj("U", st["h"], m.c)
        pre = cnt.sat(xp + hp, qp, "q_pre")
        h = cnt.narrow(L(cfg, "tanh", pre[:, 0], fp), fa, qs, "q_state")
    new["h"] = h
    return h, new


def integer_saturations(cfg: Config, weights: Weights, calib_x) -> tuple[dict[str, int], np.ndarray]:
    """Saturations per class of the bit-exact integer arithmetic over ``calib_x``.

    Counts quantizing the weights (``q_weight``), biases (``q_pre``) and inputs
    (``q_state``), then every saturating narrowing of the run. ``q_act`` is
    never counted (the tables are built inside :mod:`rnnaccel.numeric.lut`). Returns
    ``(counts, outputs)``; ``outputs`` are the raw last-layer hidden states,
    equal to :meth:`rnnaccel.numeric.golden.IntegerModel.run`.
    """
    x = _check_calib(cfg, calib_x)
    cnt = _Counter()
    for key, value in weights.items():
        kind = key.rsplit(".", 1)[1]
        if kind not in ("W", "U"):
            cnt.counts["q_pre"] += count_saturations(value, cfg.q_pre)
        elif cfg.fft_mode:
            cnt.counts["q_spectrum"] += count_saturations(fft.weight_spectra(value), cfg.q_spectrum)
        else:
            cnt.counts["q_weight"] += count_saturations(value, cfg.q_weight)
    cnt.counts["q_state"] += count_saturations(x, cfg.q_state)
    qw = quantize_weights(cfg, weights)
    mats = spectral_matrices(cfg, qw) if cfg.fft_mode else dense_matrices(cfg, qw)
    xq = quantize(x, cfg.q_state)
    n, t, _ = x.shape
    state = _zero_state(cfg, n, np.int64)
    outs = []
    for step in range(t):
        v = xq[:, step]
        for layer in range(cfg.num_layers):
            v, state[layer] = _count_step(cfg, mats[layer], v, state[layer], cnt)
        outs.append(v)
    return cnt.counts, np.stack(outs, axis=1)


# ----------------------------------------------------------------------------
# Choosing
# ----------------------------------------------------------------------------


def _table_min_frac(cfg: Config) -> int:
    """Fewest fraction bits an input of the tables (q_pre, q_cell) may have: ``table_shift >= 0``."""
    return max(-cfg.table_shift(fn, 0) for fn in lut.FUNCTIONS)


def choose_formats(
    cfg: Config,
    weights: Weights,
    calib_x=None,
    widths: Mapping[str, int] | None = None,
    force: Mapping[str, Any] | None = None,
    headroom: float = 1.0,
    count_integer: bool = True,
    **forced,
) -> tuple[Config, dict]:
    """Pick the Q formats of ``cfg`` for ``weights`` (and calibration inputs).

    Parameters
    ----------
    cfg : Config
        The model; its formats' widths are kept unless ``widths`` changes them.
    weights : dict
        The ``weights.npz`` arrays (float).
    calib_x : array, optional
        Float calibration inputs (N, T, input) or (T, input).
    widths : mapping, optional
        New widths per class, e.g. ``{"q_state": 12, "q_weight": 6}``.
    force, **forced : QFormat or "Qm.n"
        Formats used as given, e.g. ``force={"q_pre": "Q5.10"}`` or ``q_pre="Q5.10"``.
    headroom : float
        Observed ranges are multiplied by this before fitting (1.0: exactly
        the observed range).
    count_integer : bool
        Also run the integer arithmetic over ``calib_x`` and count saturations.

    Returns
    -------
    (Config, report)
        The config with the chosen formats (validated), and a dict:
        ``classes`` -> per class ``format``, ``source``, ``observed_max``,
        ``values``, ``saturations``, ``integer_saturations`` (or None),
        ``forced``; ``notes`` (back-offs and what was kept);
        ``calibration`` (sequences, steps).
    """
    check_weights(cfg, weights)
    widths = {_cls_name(k): int(v) for k, v in (widths or {}).items()}
    forced_all: dict[str, QFormat] = {}
    for k, v in {**(force or {}), **forced}.items():
        forced_all[_cls_name(k)] = QFormat.parse(v)
    if headroom < 1.0 or not math.isfinite(headroom):
        raise ValueError(f"headroom must be a finite number >= 1, not {headroom!r}")
    ch = _FormatChooser(cfg, calibrate(cfg, weights, calib_x), widths, forced_all, headroom, calib_x is not None)
    ch.weight_formats()
    ch.state_formats()
    ch.pre_and_act_formats()
    for cls, q in forced_all.items():
        ch.chosen[cls] = q
        ch.source[cls] = "forced"
    new_cfg = ch.apply_rules()
    int_counts = None
    if calib_x is not None and count_integer:
        new_cfg, int_counts = ch.widen_for_integer_run(weights, calib_x, new_cfg)
    return new_cfg, ch.report(new_cfg, int_counts)


class _FormatChooser:
    """The state of one :func:`choose_formats`: calibration, widths, forced formats, choices and notes."""

    def __init__(self, cfg: Config, cal, widths: dict, forced_all: dict, headroom: float, have_calib: bool):
        self.cfg, self.cal, self.widths, self.forced_all = cfg, cal, widths, forced_all
        self.headroom, self.have_calib = headroom, have_calib
        self.notes: list[str] = []
        self.chosen: dict[str, QFormat] = {}
        self.source: dict[str, str] = {}
        self.min_frac = _table_min_frac(cfg)

    def width_of(self, cls: str) -> int:
        return self.widths.get(cls, getattr(self.cfg, cls).width)

    def observed(self, cls: str):
        rng = self.cal.range(cls)
        if rng is None:
            return None
        return rng[0] * self.headroom, rng[1] * self.headroom

    def weight_formats(self) -> None:
        """q_weight (negative integer bits allowed), and q_spectrum in FFT mode (kept in direct mode)."""
        cfg, chosen, source, width_of = self.cfg, self.chosen, self.source, self.width_of
        rng = self.observed("q_weight")
        if rng is not None and max(abs(rng[0]), abs(rng[1])) > 0:
            chosen["q_weight"], ok = fit_format(*rng, width_of("q_weight"), min_int_bits=None)
            source["q_weight"] = "largest |weight|"
            if not ok:
                self.notes.append(
                    f"q_weight: the weights do not fit {width_of('q_weight')} bits even with 0 fraction bits"
                )
        else:
            chosen["q_weight"] = _rewidth(cfg.q_weight, width_of("q_weight"))
            source["q_weight"] = "config (all weights are zero)"
        rng = self.observed("q_spectrum")
        if cfg.fft_mode and rng is not None and max(abs(rng[0]), abs(rng[1])) > 0:
            chosen["q_spectrum"], ok = fit_format(*rng, width_of("q_spectrum"), min_int_bits=None)
            source["q_spectrum"] = "largest |part| of the weight spectra"
            if not ok:
                self.notes.append(
                    f"q_spectrum: the spectra do not fit {width_of('q_spectrum')} bits even with 0 fraction bits"
                )
        else:
            chosen["q_spectrum"] = _rewidth(cfg.q_spectrum, width_of("q_spectrum"))
            source["q_spectrum"] = (
                "config (all weights are zero)"
                if cfg.fft_mode
                else "config (circulant_mode 'direct' stores no spectra)"
            )

    def state_formats(self) -> None:
        """q_state, q_cell: from calibration, or the config's."""
        cfg, chosen, source = self.cfg, self.chosen, self.source
        for cls, what in (("q_state", "inputs and hidden states"), ("q_cell", "cell states")):
            rng = self.observed(cls)
            if rng is not None and max(abs(rng[0]), abs(rng[1])) > 0:
                chosen[cls], ok = fit_format(*rng, self.width_of(cls), min_int_bits=0)
                source[cls] = f"calibration {what}"
                if not ok:
                    self.notes.append(f"{cls}: the observed {what} do not fit {self.width_of(cls)} bits")
            else:
                chosen[cls] = _rewidth(getattr(cfg, cls), self.width_of(cls))
                source[cls] = "config" + ("" if self.have_calib else " (no calibration inputs)")
                if cls == "q_cell" and cfg.cell not in ("lstm", "sru", "qrnn"):
                    source[cls] = f"config (a {cfg.cell} has no cell state)"

    def pre_and_act_formats(self) -> None:
        """q_pre: biases and calibration pre-activations, or biases and the table range; q_act holds 1.0."""
        cfg, chosen, source, width_of = self.cfg, self.chosen, self.source, self.width_of
        rng = self.observed("q_pre")
        lo, hi = rng if rng is not None else (0.0, 0.0)
        if self.have_calib:
            source["q_pre"] = "largest |bias| and calibration pre-activations"
        else:
            r = max(cfg.sigmoid_range, cfg.tanh_range)
            lo, hi = min(lo, -r), max(hi, r - 2.0 ** -(width_of("q_pre")))
            source["q_pre"] = f"largest |bias| and the tables' input range ±{r:g} (no calibration inputs)"
        chosen["q_pre"], ok = fit_format(lo, hi, width_of("q_pre"), min_int_bits=0)
        if not ok:
            self.notes.append(f"q_pre: the observed values do not fit {width_of('q_pre')} bits")
        w = width_of("q_act")
        chosen["q_act"] = QFormat(w, w - 2)
        source["q_act"] = "activations in [-1, 1] (width - 2 fraction bits)"

    def apply_rules(self) -> Config:
        """The config rules: back off chosen (not forced) formats; the config (ConfigError for forced ones)."""
        cfg, chosen, forced_all, min_frac = self.cfg, self.chosen, self.forced_all, self.min_frac
        for cls in ("q_pre", "q_cell"):
            q = chosen[cls]
            if cls not in forced_all and q.frac < min_frac:
                chosen[cls] = QFormat(q.width, min(min_frac, q.width - 1))
                self.notes.append(
                    f"{cls}: {q} has a resolution coarser than the activation tables' step "
                    f"(table_entries {cfg.table_entries}, ranges {cfg.sigmoid_range:g}/{cfg.tanh_range:g}); "
                    f"backed off to {chosen[cls]}, which may saturate"
                )
        wcls = "q_spectrum" if cfg.fft_mode else "q_weight"
        acc_frac = chosen[wcls].frac + chosen["q_state"].frac
        q = chosen["q_pre"]
        if "q_pre" not in forced_all and q.frac > acc_frac:
            chosen["q_pre"] = QFormat(q.width, acc_frac)
            self.notes.append(
                f"q_pre: {q} has more fraction bits than the accumulator ({acc_frac} = {wcls}.frac + "
                f"q_state.frac); backed off to {chosen['q_pre']} (more range, coarser)"
            )
        return cfg.replace(**chosen)  # raises ConfigError for forced formats that break a rule

    def widen_for_integer_run(self, weights, calib_x, new_cfg: Config):
        """The integer run can exceed the float range by a few LSBs: widen what it saturates (up to 4 times)."""
        chosen, min_frac = self.chosen, self.min_frac
        int_counts = None
        for attempt in range(5):
            int_counts, _ = integer_saturations(new_cfg, weights, calib_x)
            widen = [
                cls
                for cls in ("q_pre", "q_state", "q_cell")
                if attempt < 4
                and int_counts[cls]
                and cls not in self.forced_all
                and chosen[cls].frac > 0
                and count_saturations(self.cal.array(cls), chosen[cls]) == 0
                and (cls == "q_state" or chosen[cls].frac > min_frac)
            ]
            if not widen:
                break
            for cls in widen:
                q = chosen[cls]
                chosen[cls] = QFormat(q.width, q.frac - 1)
                self.notes.append(
                    f"{cls}: the integer run saturated {int_counts[cls]} value(s) in {q} (the float run "
                    f"none); widened to {chosen[cls]}"
                )
            new_cfg = self.apply_rules()
        return new_cfg, int_counts

    def report(self, new_cfg: Config, int_counts) -> dict:
        """Per class: format, source, observed range, saturations (q_act and the unstored weight class never
        counted); the notes; the calibration's size."""
        cfg, cal = self.cfg, self.cal
        unused = ("q_act", "q_weight" if cfg.fft_mode else "q_spectrum")
        classes = {}
        for cls in CLASSES:
            arr = cal.array(cls)
            q = getattr(new_cfg, cls)
            classes[cls] = {
                "format": str(q),
                "width": q.width,
                "frac": q.frac,
                "source": self.source[cls],
                "forced": cls in self.forced_all,
                "observed_max": float(np.abs(arr).max()) if arr.size else None,
                "values": int(arr.size),
                "saturations": count_saturations(arr, q),
                "integer_saturations": None if int_counts is None or cls in unused else int(int_counts[cls]),
            }
        if not self.have_calib:
            self.notes.append(
                "no calibration inputs: q_state and q_cell kept from the config; saturation counts cover "
                "the weights and biases only"
            )
        return {
            "classes": classes,
            "notes": self.notes,
            "calibration": {"sequences": cal.sequences, "steps": cal.steps},
        }


def _rewidth(q: QFormat, width: int) -> QFormat:
    """Same integer bits at a new width (fraction bits absorb the change, at least 0)."""
    if width == q.width:
        return q
    return QFormat(width, max(0, width - 1 - q.int_bits))


def format_report(report: dict) -> str:
    """The report as a text table (one line per class, then the notes)."""
    lines = [f"{'class':10} {'format':9} {'max |value|':>12} {'values':>9} {'sat float':>9} {'sat int':>8}  source"]
    for cls, r in report["classes"].items():
        mx = "-" if r["observed_max"] is None else f"{r['observed_max']:.6g}"
        si = "-" if r["integer_saturations"] is None else str(r["integer_saturations"])
        lines.append(f"{cls:10} {r['format']:9} {mx:>12} {r['values']:>9} {r['saturations']:>9} {si:>8}  {r['source']}")
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
