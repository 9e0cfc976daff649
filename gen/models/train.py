"""Training block-circulant recurrent models in PyTorch, with the hardware's arithmetic.

:class:`CirculantRNN` is a ``torch.nn.Module`` for every cell of rnnaccel
(LSTM, GRU reset-after and reset-before, SRU with the optional highway
projection, QRNN window 1 and 2, RNN), multi-layer, batch-first. Its
parameters are exactly the arrays of ``weights.npz`` (:mod:`rnnaccel.numeric.model`):
per layer the circulant defining vectors ``W`` (G, ceil(H/k), ceil(C/k), k),
the bias ``b`` (G, H), and for LSTM/GRU/RNN ``U`` and ``c``. The forward pass
expands the defining vectors with the one circulant index ``(r - c) mod k``
(:func:`rnnaccel.numeric.circulant.circulant_index`) by tensor indexing, so gradients
reach the defining vectors, and runs the cell equations of
:mod:`rnnaccel.numeric.golden`.

Two switches bring training closer to the accelerator:

* ``fake_quant=True``: weights are quantized to ``q_weight``, biases to
  ``q_pre``, inputs and hidden states to ``q_state``, cell states to
  ``q_cell``, projections and pre-activations to ``q_pre`` and activation
  outputs to ``q_act``, each with the one rule (``floor(x * 2**f + 0.5)``,
  then clip, :func:`rnnaccel.numeric.fixedpoint.quantize`) at exactly the points where
  the integer model narrows, with a straight-through estimator (gradient 1
  inside the format's range, 0 where it saturates);
* ``table_activations=True``: sigmoid and tanh are the accelerator's tables
  (:func:`lookup`, a torch port of :func:`rnnaccel.numeric.lut.lookup` on the input
  quantized to ``q_pre``, or ``q_cell`` for LSTM/SRU's ``tanh(c)``), with the
  true function's derivative backward.

On the serial datapath (``datapath = "serial"``; LSTM and RNN, the cells with a recurrent product) the input and
recurrent projections are accumulated together and narrowed once, as
:func:`rnnaccel.numeric.golden.fused_projection` does.

FFT mode (``circulant_mode = "fft"``) with ``fake_quant``: the weights are the
stored spectra, quantized to ``q_spectrum`` from the float32-rounded defining
vectors by the numeric core (:func:`rnnaccel.numeric.fft.weight_spectra`, as the
export will be), and every projection's value is the integer FFT arithmetic
itself (:func:`rnnaccel.numeric.golden.fft_projection` on the raw operands:
its rounding is defined once, so training cannot drift from the golden model).
Gradients flow through a differentiable stand-in of the same product: the
circulant blocks whose DFT is the quantized spectrum, with a straight-through
estimator from the spectrum back to the defining vectors (gradient 1 where a
spectrum word does not saturate), and 1 from the narrowed projection to its
inputs and weights where it does not saturate. Without ``fake_quant`` the
FFT mode's float forward is the direct one (the same product in exact arithmetic).

Delta-network mode (``delta=True``, by default when ``cfg.delta_mode``;
:mod:`rnnaccel.numeric.delta`): each matrix multiplies its reference vector
(the state keys ``ref_W``, ``ref_U`` / ``ref_Urz``, ``ref_Un``), updated
where ``|v - v_ref|`` exceeds the float threshold (``delta_threshold`` for
layer 0's input, ``delta_threshold_hidden`` for hidden states and the
reset-before GRU's ``r*h``). With ``fake_quant`` every value is a multiple of
q_state's LSB, so the float test is the golden model's raw test and the
projection of the reference is its exact memory narrowed. Gradients reach a
step's input through the elements it propagated (``torch.where``).

With both on, the forward pass in float64 is the integer model's arithmetic:
every value is a multiple of its format's LSB, products and sums are exact in
float64 (while the accumulator stays below 2**53 LSBs, i.e. always for
``acc_width <= 53``), and ``floor(v * 2**f + 0.5)`` on an exact value is the
round-half-up shift of :func:`rnnaccel.numeric.fixedpoint.round_shift`. So the output
equals :meth:`rnnaccel.numeric.golden.IntegerModel.run_float` bit for bit
(``sim_tests/test_train.py``). Parameters are rounded to float32 before
quantizing (as ``weights.npz`` stores them), so the exported model quantizes to
the same integers that training saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..numeric import fft, lut
from ..numeric.circulant import circulant_index, project
from ..numeric.config import Config
from ..numeric.delta import reference_keys
from ..numeric.fixedpoint import QFormat, quantize
from ..numeric.golden import fft_projection
from ..numeric.model import Weights, check_weights, save_model, weight_shapes

__all__ = [
    "CirculantRNN",
    "fake_quantize",
    "lookup",
    "table_activation",
    "init_from_dense",
    "dense_to_weights",
    "expand",
]


# ----------------------------------------------------------------------------
# Building blocks
# ----------------------------------------------------------------------------


def fake_quantize(x: torch.Tensor, q: QFormat) -> torch.Tensor:
    """``quantize`` then dequantize with the one rule, straight-through backward.

    Forward: ``clip(floor(x * 2**f + 0.5), min_raw, max_raw) / 2**f``.
    Backward: gradient 1 where the value is inside the format, 0 where it saturates.
    """
    scale = 2.0**q.frac
    raw = torch.floor(x * scale + 0.5)
    inside = (raw >= q.min_raw) & (raw <= q.max_raw)
    y = raw.clamp(q.min_raw, q.max_raw) / scale
    return y.detach() + (x - x.detach()) * inside


def _round_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    if shift > 0:
        return (x + (1 << (shift - 1))) >> shift
    if shift < 0:
        return x << (-shift)
    return x


def lookup(cfg: Config, fn: str, raw: torch.Tensor, in_frac: int, words: torch.Tensor | None = None) -> torch.Tensor:
    """Torch port of :func:`rnnaccel.numeric.lut.lookup`: raw int64 inputs -> raw ``q_act`` (int64), bit for bit."""
    if words is None:
        words = torch.from_numpy(lut.table(cfg, fn)).to(raw.device)
    raw = raw.to(torch.int64)
    shift = cfg.table_shift(fn, in_frac)
    n = lut.half_entries(cfg)
    neg = raw < 0
    mag = torch.where(neg, -raw, raw)
    idx = mag >> shift
    if cfg.interpolate:
        inside = idx < n
        i0 = torch.clamp(idx, max=n)
        i1 = torch.clamp(idx + 1, max=n)
        rem = mag & ((1 << shift) - 1)
        w0, w1 = words[i0], words[i1]
        interp = w0 + _round_shift((w1 - w0) * rem, shift)
        pos = torch.where(inside, interp, words[n])
    else:
        pos = words[torch.clamp(idx, max=n - 1)]
    one = 1 << cfg.q_act.frac
    out = torch.where(neg, -pos, pos) if fn == "tanh" else torch.where(neg, one - pos, pos)
    return out.clamp(cfg.q_act.min_raw, cfg.q_act.max_raw)


def _true_fn(fn: str, x: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(x) if fn == "sigmoid" else torch.tanh(x)


def table_activation(
    cfg: Config, fn: str, x: torch.Tensor, q_in: QFormat, words: torch.Tensor | None = None
) -> torch.Tensor:
    """Table sigmoid/tanh of float ``x`` read at ``q_in`` (quantized with the one rule, saturated).

    Forward: the accelerator's table output as a float (a multiple of
    ``q_act``'s LSB). Backward: the derivative of the true function at ``x``.
    """
    scale = 2.0**q_in.frac
    raw = torch.floor(x.detach() * scale + 0.5).clamp(q_in.min_raw, q_in.max_raw).to(torch.int64)
    y = lookup(cfg, fn, raw, q_in.frac, words).to(x.dtype) * (2.0**-cfg.q_act.frac)
    t = _true_fn(fn, x)
    return y + (t - t.detach())


def expand(vectors: torch.Tensor, rows: int, cols: int, index: torch.Tensor | None = None) -> torch.Tensor:
    """Defining vectors (..., rb, cb, k) -> dense (..., rows, cols), cropped; differentiable.

    ``B[r][c] = w[(r - c) mod k]``, as :func:`rnnaccel.numeric.circulant.expand`.
    """
    k = vectors.shape[-1]
    if index is None:
        index = _circ_index(k, vectors.device)
    rb, cb = vectors.shape[-3], vectors.shape[-2]
    blocks = vectors[..., index]  # (..., rb, cb, k, k): [r, c] within a block
    dense = blocks.transpose(-3, -2).reshape(*vectors.shape[:-3], rb * k, cb * k)
    return dense[..., :rows, :cols]


def spectrum_ste(vectors: torch.Tensor, q: QFormat) -> tuple[np.ndarray, torch.Tensor]:
    """FFT mode's weights: the raw ``q`` spectra of defining vectors (..., k), and their differentiable stand-in.

    Returns ``(raw, vectors_q)``: ``raw`` the packed spectra quantized by the
    numeric core (:func:`rnnaccel.numeric.fft.weight_spectra` then the one rule),
    bit for bit what :func:`rnnaccel.numeric.model.quantize_weights` stores for the
    same values; ``vectors_q`` the defining vectors whose DFT is the quantized
    spectrum (forward), with gradient 1 to ``vectors`` through every spectrum
    word that does not saturate (straight-through).
    """
    k = vectors.shape[-1]
    spec = fft.weight_spectra(vectors.detach().cpu().numpy())
    raw = quantize(spec, q)
    unclipped = np.floor(spec * 2.0**q.frac + 0.5)
    inside = torch.from_numpy((unclipped >= q.min_raw) & (unclipped <= q.max_raw)).to(vectors.device)
    z = torch.fft.rfft(vectors, dim=-1)
    packed = torch.empty(vectors.shape, dtype=vectors.dtype, device=vectors.device)
    packed[..., 0], packed[..., 1] = z[..., 0].real, z[..., k // 2].real
    packed[..., 2::2], packed[..., 3::2] = z[..., 1 : k // 2].real, z[..., 1 : k // 2].imag
    held = torch.from_numpy(raw * q.lsb).to(vectors.dtype).to(vectors.device)
    ste = held + (packed - packed.detach()) * inside
    re = torch.cat([ste[..., 0:1], ste[..., 2::2], ste[..., 1:2]], dim=-1)
    im = torch.cat([torch.zeros_like(ste[..., 0:1]), ste[..., 3::2], torch.zeros_like(ste[..., 0:1])], dim=-1)
    return raw, torch.fft.irfft(torch.complex(re, im), n=k, dim=-1)


def _raw(x: torch.Tensor, frac: int) -> np.ndarray:
    """Exact raw integers of a fake-quantized tensor (a multiple of ``2**-frac``)."""
    return torch.round(x.detach() * 2.0**frac).to(torch.int64).cpu().numpy()


def _circ_index(k: int, device=None) -> torch.Tensor:
    r = np.arange(k)[:, None]
    c = np.arange(k)[None, :]
    return torch.as_tensor(circulant_index(r, c, k), dtype=torch.long, device=device)


# ----------------------------------------------------------------------------
# The module
# ----------------------------------------------------------------------------


class _Layer(nn.Module):
    def __init__(self, shapes: dict[str, tuple[int, ...]], layer: int, dtype):
        super().__init__()
        for kind in ("W", "b", "U", "c"):
            key = f"layer{layer}.{kind}"
            if key in shapes:
                setattr(self, kind, nn.Parameter(torch.zeros(shapes[key], dtype=dtype)))
            else:
                setattr(self, kind, None)


State = list[dict[str, torch.Tensor]]


class CirculantRNN(nn.Module):
    """A block-circulant recurrent network of any rnnaccel cell, parameterized by defining vectors.

    Parameters
    ----------
    cfg : Config
        The model (cell, sizes, layers, block size, Q formats, tables).
    fake_quant : bool
        Quantize at every point the integer model does (see the module docs).
    table_activations : bool
        Use the accelerator's sigmoid/tanh tables in the forward pass.
    dtype : torch.dtype
        Parameter and compute dtype; float64 (the default) makes
        ``fake_quant=True, table_activations=True`` bit-exact with the
        integer model.
    delta : bool or None
        Delta-network mode (see the module docs); None follows ``cfg.delta_mode``.

    Parameters are ``layers[l].W``, ``.b``, ``.U``, ``.c`` with the shapes of
    ``weights.npz``; initialised to zero (use :meth:`from_weights`,
    :func:`init_from_dense` or :meth:`reset_parameters`).
    """

    def __init__(
        self,
        cfg: Config,
        fake_quant: bool = False,
        table_activations: bool = False,
        dtype: torch.dtype = torch.float64,
        delta: bool | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        self.delta = cfg.delta_mode if delta is None else bool(delta)
        self.fake_quant = fake_quant
        self.table_activations = table_activations
        self.dtype = dtype
        shapes = weight_shapes(cfg)
        self.layers = nn.ModuleList(_Layer(shapes, layer, dtype) for layer in range(cfg.num_layers))
        self.register_buffer("circ_index", _circ_index(cfg.block_size), persistent=False)
        for fn in lut.FUNCTIONS:
            self.register_buffer(f"table_{fn}", torch.from_numpy(lut.table(cfg, fn)), persistent=False)

    # ------------------------------------------------------------ weights
    def reset_parameters(self, seed: int | None = None, scale: float = 1.0) -> "CirculantRNN":
        """Seeded uniform initialisation as :func:`rnnaccel.numeric.model.random_weights` (PyTorch's range)."""
        from ..numeric.model import random_weights

        return self.load_weights(random_weights(self.cfg, seed=seed, scale=scale))

    def load_weights(self, weights: Weights) -> "CirculantRNN":
        """Copy a ``weights.npz`` dict into the parameters (checked against the config)."""
        check_weights(self.cfg, weights)
        with torch.no_grad():
            for layer, mod in enumerate(self.layers):
                for kind in ("W", "b", "U", "c"):
                    p = getattr(mod, kind)
                    if p is not None:
                        p.copy_(torch.as_tensor(np.asarray(weights[f"layer{layer}.{kind}"]), dtype=self.dtype))
        return self

    @classmethod
    def from_weights(cls, cfg: Config, weights: Weights, **kwargs) -> "CirculantRNN":
        """A module holding ``weights`` (a ``weights.npz`` dict); kwargs go to the constructor."""
        return cls(cfg, **kwargs).load_weights(weights)

    def to_weights(self) -> Weights:
        """The parameters as a ``weights.npz`` dict (float32 numpy arrays)."""
        out: Weights = {}
        for layer, mod in enumerate(self.layers):
            for kind in ("W", "b", "U", "c"):
                p = getattr(mod, kind)
                if p is not None:
                    out[f"layer{layer}.{kind}"] = p.detach().cpu().numpy().astype(np.float32)
        return out

    def export(self, directory: str | Path) -> Path:
        """Write a model directory (``rnnaccel.toml``, ``weights.npz``): :func:`rnnaccel.numeric.model.save_model`."""
        return save_model(directory, self.cfg, self.to_weights())

    # ------------------------------------------------------------ arithmetic
    def _q(self, x: torch.Tensor, q: QFormat) -> torch.Tensor:
        return fake_quantize(x, q) if self.fake_quant else x

    def _param(self, p: torch.Tensor, q: QFormat) -> torch.Tensor:
        if not self.fake_quant:
            return p
        # weights.npz stores float32: quantize what the exported model will hold
        return fake_quantize(p.to(torch.float32).to(self.dtype), q)

    def _act(self, fn: str, x: torch.Tensor, q_in: QFormat | None = None) -> torch.Tensor:
        cfg = self.cfg
        if self.table_activations:
            return table_activation(cfg, fn, x, q_in or cfg.q_pre, getattr(self, f"table_{fn}"))
        return self._q(_true_fn(fn, x), cfg.q_act)

    @property
    def _spectral(self) -> bool:
        """FFT mode with the hardware's arithmetic: projections are the integer FFT form."""
        return self.fake_quant and self.cfg.fft_mode

    def _matrices(self, layer: int) -> dict:
        cfg, mod = self.cfg, self.layers[layer]
        h, cols = cfg.hidden_size, cfg.layer_cols(layer)
        out: dict = {"b": self._param(mod.b, cfg.q_pre)}
        for key, p, c in (("W", mod.W, cols), ("U", mod.U, h)):
            if p is None:
                continue
            if self._spectral:  # stored spectra; the stand-in vectors carry the gradients
                out["S" + key], vectors = spectrum_ste(p.to(torch.float32).to(self.dtype), cfg.q_spectrum)
            else:
                vectors = self._param(p, cfg.q_weight)
            out[key] = expand(vectors, h, c, self.circ_index)
        if mod.U is not None:
            out["c"] = self._param(mod.c, cfg.q_pre)
        return out

    def _narrowed(self, value: torch.Tensor, m: dict, terms, bias: torch.Tensor, gates) -> torch.Tensor:
        """A projection narrowed to q_pre: ``value`` (float, differentiable), or in FFT mode the integer FFT form.

        ``terms`` lists (key, vec) of the matrices and inputs; ``bias`` the
        (summed) bias. FFT mode: the golden model's integer arithmetic gives the
        value, ``value`` the gradient where the result does not saturate.
        """
        cfg = self.cfg
        if not self._spectral:
            return self._q(value, cfg.q_pre)
        qp = cfg.q_pre
        pairs = [(m["S" + key][gates], _raw(vec, cfg.q_state.frac)) for key, vec in terms]
        raw = fft_projection(cfg, pairs, _raw(bias, qp.frac))
        inside = torch.from_numpy((raw > qp.min_raw) & (raw < qp.max_raw)).to(value.device)
        exact = torch.from_numpy(raw * qp.lsb).to(value.dtype).to(value.device)
        return exact + (value - value.detach()) * inside

    def _proj(self, m: dict, key: str, vec: torch.Tensor, bias_key: str, gates=slice(None)) -> torch.Tensor:
        """Matrix ``key`` (gates ``gates``: (G, H, C)) x (N, C) + bias -> (N, G, H), narrowed to q_pre."""
        bias = m[bias_key][gates]
        value = torch.einsum("ghc,nc->ngh", m[key][gates], vec) + bias
        return self._narrowed(value, m, [(key, vec)], bias, gates)

    def _vector(self, st: dict, name: str, layer: int, vec: torch.Tensor) -> torch.Tensor:
        """The vector matrix ``name`` multiplies: ``vec``, or in delta mode its reference, updated in ``st``."""
        if not self.delta:
            return vec
        cfg = self.cfg
        th = cfg.delta_threshold if name == "W" and layer == 0 else cfg.delta_threshold_hidden
        ref_key, _ = reference_keys(name)
        ref = st[ref_key]
        ref = torch.where((vec - ref).abs() > th, vec, ref)
        st[ref_key] = ref
        return ref

    def zero_state(self, batch: int, device=None) -> State:
        """The zero state: per layer ``h`` (N, H), ``c`` (LSTM/SRU/QRNN), ``xprev`` (window-2 QRNN).

        Delta mode adds the zero references ``ref_W`` (N, layer columns) and ``ref_U``
        (``ref_Urz`` and ``ref_Un`` for the reset-before GRU) (N, H).
        """
        cfg = self.cfg
        kw = {"dtype": self.dtype, "device": device}
        out = []
        for layer in range(cfg.num_layers):
            st = {"h": torch.zeros(batch, cfg.hidden_size, **kw)}
            if cfg.cell in ("lstm", "sru", "qrnn"):
                st["c"] = torch.zeros(batch, cfg.hidden_size, **kw)
            if cfg.cell == "qrnn" and cfg.qrnn_window == 2:
                st["xprev"] = torch.zeros(batch, cfg.layer_input_size(layer), **kw)
            if self.delta:
                for name, _, _ in cfg.matrices(layer):
                    width = cfg.layer_cols(layer) if name == "W" else cfg.hidden_size
                    st[reference_keys(name)[0]] = torch.zeros(batch, width, **kw)
            out.append(st)
        return out

    def _lstm_update(self, pre: torch.Tensor, c_prev: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """LSTM gates from pre-activations (N, 4, H) in q_pre: (h', c'). The three sigmoids in one table read."""
        cfg, q, act = self.cfg, self._q, self._act
        s = act("sigmoid", pre[:, [0, 1, 3]])
        i, f, o = s[:, 0], s[:, 1], s[:, 2]
        g = act("tanh", pre[:, 2])
        c = q(f * c_prev + i * g, cfg.q_cell)
        h = q(o * act("tanh", c, cfg.q_cell), cfg.q_state)
        return h, c

    def _step(self, m: dict, x: torch.Tensor, st: dict, layer: int = 0) -> tuple[torch.Tensor, dict]:
        cfg = self.cfg
        q, act = self._q, self._act
        cell = cfg.cell
        xin = torch.cat([x, st["xprev"]], dim=1) if cell == "qrnn" and cfg.qrnn_window == 2 else x
        new = dict(st)
        xv = self._vector(new, "W", layer, xin)
        if cfg.fused_projections:
            # serial datapath (LSTM, RNN): W x + U h + (b + c) accumulated together, narrowed once
            bias = m["b"] + m["c"]
            hv = self._vector(new, "U", layer, st["h"])
            pre = self._narrowed(
                torch.einsum("ghc,nc->ngh", m["W"], xv) + torch.einsum("ghc,nc->ngh", m["U"], hv) + bias,
                m,
                [("W", xv), ("U", hv)],
                bias,
                slice(None),
            )
            if cell == "lstm":
                h, new["c"] = self._lstm_update(pre, st["c"])
            else:
                h = q(act("tanh", pre[:, 0]), cfg.q_state)
            new["h"] = h
            return h, new
        xp = self._proj(m, "W", xv, "b")
        if cell == "lstm":
            hp = self._proj(m, "U", self._vector(new, "U", layer, st["h"]), "c")
            h, new["c"] = self._lstm_update(q(xp + hp, cfg.q_pre), st["c"])
        elif cell == "gru":
            # reset-before: U_n multiplies r*h (its own reference in delta mode); its rows of hp are unused
            hp = self._proj(m, "U", self._vector(new, "U" if cfg.gru_reset_after else "Urz", layer, st["h"]), "c")
            r = act("sigmoid", q(xp[:, 0] + hp[:, 0], cfg.q_pre))
            z = act("sigmoid", q(xp[:, 1] + hp[:, 1], cfg.q_pre))
            if cfg.gru_reset_after:
                n_pre = q(xp[:, 2] + r * hp[:, 2], cfg.q_pre)
            else:
                rh = q(r * st["h"], cfg.q_state)
                hn = self._proj(m, "U", self._vector(new, "Un", layer, rh), "c", slice(2, 3))[:, 0]
                n_pre = q(xp[:, 2] + hn, cfg.q_pre)
            n = act("tanh", n_pre)
            h = q((1 - z) * n + z * st["h"], cfg.q_state)
        elif cell == "sru":
            f, r = act("sigmoid", xp[:, 1]), act("sigmoid", xp[:, 2])
            c = q(f * st["c"] + (1 - f) * xp[:, 0], cfg.q_cell)
            hw = xp[:, 3] if xp.shape[1] == 4 else x
            h = q(r * act("tanh", c, cfg.q_cell) + (1 - r) * hw, cfg.q_state)
            new["c"] = c
        elif cell == "qrnn":
            z, f, o = act("tanh", xp[:, 0]), act("sigmoid", xp[:, 1]), act("sigmoid", xp[:, 2])
            c = q(f * st["c"] + (1 - f) * z, cfg.q_cell)
            h = q(o * c, cfg.q_state)
            new["c"] = c
            new["xprev"] = x
        else:
            hp = self._proj(m, "U", self._vector(new, "U", layer, st["h"]), "c")
            h = q(act("tanh", q(xp[:, 0] + hp[:, 0], cfg.q_pre)), cfg.q_state)
        new["h"] = h
        return h, new

    def forward(self, x, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Run sequences ``x`` (N, T, input) (or (T, input)) from ``state`` (default zeros).

        Returns ``(y, state)``: ``y`` (N, T, H) the last layer's hidden state
        at every step, ``state`` the final state, a list per layer of dicts
        ``h`` (N, H), ``c`` (LSTM/SRU/QRNN) and ``xprev`` (window-2 QRNN) (and
        in delta mode the references, :meth:`zero_state`), which a next call
        can continue from.
        """
        cfg = self.cfg
        x = torch.as_tensor(x, dtype=self.dtype, device=self.circ_index.device)
        single = x.dim() == 2
        if single:
            x = x[None]
        if x.dim() != 3 or x.shape[-1] != cfg.input_size:
            raise ValueError(
                f"inputs must have shape (N, T, {cfg.input_size}) or (T, {cfg.input_size}), not {tuple(x.shape)}"
            )
        n, t, _ = x.shape
        if state is None:
            state = self.zero_state(n, x.device)
        else:
            state = [
                {k: self._q(v.to(self.dtype), cfg.q_cell if k == "c" else cfg.q_state) for k, v in st.items()}
                for st in state
            ]
            if self.delta:  # a state without references starts them at zero, as a reset does
                zero = self.zero_state(n, x.device)
                state = [{**z, **st} for z, st in zip(zero, state)]
        mats = [self._matrices(layer) for layer in range(cfg.num_layers)]
        xq = self._q(x, cfg.q_state)
        outs = []
        for step in range(t):
            v = xq[:, step]
            for layer in range(cfg.num_layers):
                v, state[layer] = self._step(mats[layer], v, state[layer], layer)
            outs.append(v)
        y = torch.stack(outs, dim=1)
        return (y[0] if single else y), state


# ----------------------------------------------------------------------------
# From dense weights
# ----------------------------------------------------------------------------


def _dense_layer(entry: Any) -> dict[str, np.ndarray | None]:
    if isinstance(entry, dict):
        return {
            k: (None if entry.get(k) is None else np.asarray(entry[k], dtype=np.float64)) for k in ("W", "b", "U", "c")
        }
    entry = list(entry) + [None] * (4 - len(entry))
    return {k: (None if v is None else np.asarray(v, dtype=np.float64)) for k, v in zip(("W", "b", "U", "c"), entry)}


def dense_to_weights(cfg: Config, layers: Sequence[Any]) -> Weights:
    """Project per-layer dense matrices onto ``cfg``'s block-circulant layout (a ``weights.npz`` dict).

    ``layers[l]`` is a dict (or tuple in this order) ``W`` (G*H, C) gate-stacked
    input matrix, ``b`` (G*H,) bias, and for LSTM/GRU/RNN ``U`` (G*H, H) and
    ``c`` (G*H,) (PyTorch's ``weight_ih_l{l}``, ``bias_ih_l{l}``,
    ``weight_hh_l{l}``, ``bias_hh_l{l}``). A missing bias is zero. Each gate's
    (H, C) matrix is projected with :func:`rnnaccel.numeric.circulant.project`
    (least squares per k x k block).
    """
    if len(layers) != cfg.num_layers:
        raise ValueError(f"{len(layers)} layers of dense weights for a {cfg.num_layers}-layer model")
    h, k = cfg.hidden_size, cfg.block_size
    shapes = weight_shapes(cfg)
    out: Weights = {}
    for layer, entry in enumerate(layers):
        d = _dense_layer(entry)
        g = len(cfg.layer_gates(layer))
        for mkey, bkey, cols in (("W", "b", cfg.layer_cols(layer)), ("U", "c", h)):
            if f"layer{layer}.{mkey}" not in shapes:
                if d[mkey] is not None:
                    raise ValueError(f"layer {layer}: a {cfg.cell} has no recurrent matrix U")
                continue
            mat = d[mkey]
            if mat is None or mat.shape != (g * h, cols):
                raise ValueError(
                    f"layer {layer}: {mkey} must have shape ({g * h}, {cols}) (gates x hidden, cols), "
                    f"not {None if mat is None else mat.shape}"
                )
            out[f"layer{layer}.{mkey}"] = np.stack([project(mat[gi * h : (gi + 1) * h], k) for gi in range(g)]).astype(
                np.float32
            )
            bias = d[bkey] if d[bkey] is not None else np.zeros(g * h)
            if bias.size != g * h:
                raise ValueError(f"layer {layer}: {bkey} must have {g * h} entries, not {bias.size}")
            out[f"layer{layer}.{bkey}"] = bias.reshape(g, h).astype(np.float32)
    check_weights(cfg, out)
    return out


def init_from_dense(cfg: Config, layers: Sequence[Any], **kwargs) -> CirculantRNN:
    """A :class:`CirculantRNN` initialised by projecting dense matrices (see :func:`dense_to_weights`)."""
    return CirculantRNN.from_weights(cfg, dense_to_weights(cfg, layers), **kwargs)
