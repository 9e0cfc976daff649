"""The FFT form of a circulant block product, in fixed point: defined once, for golden model, hardware and training.

A k x k circulant block with defining vector ``w`` (``B[r][c] = w[(r - c) mod k]``)
times a segment ``x`` is the circular convolution ``y[r] = sum_t w[t] x[(r - t) mod k]``,
so ``DFT(y) = DFT(w) * DFT(x)`` bin by bin. For one row block i of a matrix of
such blocks, ``y_i = IDFT(sum_j DFT(w_ij) * DFT(x_j))``: every input segment is
transformed once, every row block inverse-transformed once, and in between a
block costs an element-wise product of two spectra (C-LSTM, CirCNN).

Conventions: ``k = 2**L`` (L >= 2), ``W_k^m = exp(-2 pi i m / k)``, DFT
``X[m] = sum_n x[n] W_k^(m n)``.

**Hermitian packing.** The DFT of a real vector has ``X[k - m] = conj(X[m])``,
and ``X[0]``, ``X[k/2]`` are real, so it is held in k real numbers (the same
storage as ``w``)::

    packed[0] = Re X[0]     packed[1] = Re X[k/2]
    packed[2m] = Re X[m]    packed[2m + 1] = Im X[m]      (m = 1 .. k/2 - 1)

so a complex bin is two adjacent words (one 16-bit memory word holds a bin of
two 8-bit parts).

**Formats.** With ``q`` the segment's format (``q_state``, f fraction bits),
``fs`` the fraction bits of ``q_spectrum``:

* twiddles ``W_k^m = cos(2 pi m/k) - i sin(2 pi m/k)``, m = 0 .. k/2 - 1: cos and
  sin each quantized with the one rule to :data:`TWIDDLE` (Q1.14, 16-bit words),
  so 1 and 0 are exact and ``W^0 = 1``, ``W^(k/4) = -i`` are exact (no multiply);
* forward working values: ``f + L`` fraction bits, ``q.width + L + 1`` bits
  (L guard bits below the input's LSB, one integer bit for rounding creep);
* the forward output ``X' = DFT(x) / k``, packed, narrowed to ``q`` itself
  (its modulus never exceeds max |x|, so a segment's spectrum has the segment's
  format and the block product multiplies the same word widths as direct mode);
* weight spectra ``S = DFT(w)`` (unscaled), packed, quantized to ``q_spectrum``
  from the float defining vectors (:func:`weight_spectra`);
* the spectral accumulator ``P = sum_j S_j X'_j``: exact, ``fs + f`` fraction
  bits (``Config.fft_acc_width`` bits);
* the inverse transform and its output: ``fs + f`` fraction bits, unscaled
  (``Config.fft_out_width`` bits). Since ``P = DFT(y) / k``, the unscaled
  inverse ``y[n] = sum_m P[m] W_k^(-m n)`` is the product itself: no 1/k anywhere.

**Stages** (radix 2, decimation in time, input in bit-reversed order, output in
natural order; stage s = 1 .. L pairs positions ``g 2h + j`` (a) and
``g 2h + j + h`` (b), ``h = 2**(s-1)``, with twiddle ``W_k^(j k / 2h)``). Every
product ``W b`` is formed exactly (f + L + 14 fraction bits forward), then:

* forward, scaled by 1/2 and rounded at every stage, each component with the
  one rule: ``a' = round_shift((a << 14) + W b, 15)``,
  ``b' = round_shift((a << 14) - W b, 15)``; after L stages the output is
  ``DFT(x) / k`` at ``f + L`` fraction bits, narrowed to ``q``
  (:func:`~rnnaccel.numeric.fixedpoint.narrow`: round half up, saturate);
* inverse, unscaled, the product rounded back to the working fraction:
  ``u = round_shift(conj(W) b, 14)`` (exact for the trivial twiddles),
  ``a' = a + u``, ``b' = a - u``; the output is the real part.

A complex product in the accumulator is ``(Sr Xr - Si Xi) + i (Sr Xi + Si Xr)``,
exact: the hardware may use 4 multipliers or the 3-multiply form, the sum is the
same integer. Rounding: ``L + 1`` roundings forward (stages and the narrowing),
one per nontrivial twiddle product inverse, and the final narrowing to ``q_pre``
after the bias is added (:func:`rnnaccel.numeric.golden.fft_projection`).
:mod:`rnnaccel.numeric.bounds` bounds each against float.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .config import Config
from .fixedpoint import QFormat, narrow, quantize, round_shift

__all__ = [
    "TWIDDLE",
    "check_size",
    "stages",
    "twiddles",
    "twiddle_errors",
    "trivial_twiddle",
    "stage_twiddles",
    "bit_reverse",
    "pack",
    "unpack",
    "pack_half",
    "unpack_half",
    "rfft_wide",
    "rfft",
    "spectral_mac",
    "irfft",
    "weight_spectra",
    "spectra_vectors",
    "transform_multiplies",
    "block_multiplies",
    "step_multiplies",
]

#: Format of the twiddle factors' cos and sin words (16 bits: 1.0 is exact).
TWIDDLE = QFormat(16, 14)

_FT = TWIDDLE.frac
_INT64_BITS = 62  # magnitudes below 2**62 leave room for one more addition in int64


def check_size(k: int) -> int:
    """``k`` if it is a transform size (a power of two, 4 to 256), else ValueError."""
    if not isinstance(k, (int, np.integer)) or k < 4 or k > 256 or k & (k - 1):
        raise ValueError(f"the FFT size must be a power of two from 4 to 256, not {k!r}")
    return int(k)


def stages(k: int) -> int:
    """Radix-2 stages of a k-point transform: ``log2 k``."""
    return check_size(k).bit_length() - 1


def _angles(k: int) -> np.ndarray:
    return np.array([math.tau * m / k for m in range(k // 2)])


@functools.lru_cache(maxsize=None)
def _twiddle_table(k: int) -> tuple[np.ndarray, np.ndarray]:
    # the one rounding rule on float64 cos/sin; no value lies near a rounding tie (they are irrational but
    # for 0 and 1, and float cos(pi/2) = 6e-17 rounds to 0), so the words do not depend on the libm
    angle = _angles(k)
    cos = quantize(np.cos(angle), TWIDDLE)
    sin = quantize(np.sin(angle), TWIDDLE)
    cos.flags.writeable = False
    sin.flags.writeable = False
    return cos, sin


def twiddles(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw :data:`TWIDDLE` words ``(cos, sin)`` of ``W_k^m = cos - i sin``, m = 0 .. k/2 - 1 (read-only)."""
    return _twiddle_table(check_size(k))


@functools.lru_cache(maxsize=None)
def twiddle_errors(k: int) -> np.ndarray:
    """``|W_quantized - W|`` (modulus) for m = 0 .. k/2 - 1: the twiddle quantization error."""
    cos, sin = twiddles(k)
    angle = _angles(k)
    err = np.hypot(cos * TWIDDLE.lsb - np.cos(angle), sin * TWIDDLE.lsb - np.sin(angle))
    err = np.where(trivial_twiddle(k, np.arange(k // 2)), 0.0, err)  # 1 and -i are exact
    err.flags.writeable = False
    return err


def trivial_twiddle(k: int, m) -> np.ndarray:
    """Twiddles 1 and -i (m = 0, k/4): exact words, so their products are exact and cost no multiply."""
    m = np.asarray(m)
    return (m == 0) | (m == k // 4)


def stage_twiddles(k: int, s: int) -> np.ndarray:
    """Twiddle indices m of stage s (1 .. L): ``j * k / 2h`` for positions j < h = 2**(s-1)."""
    h = 1 << (s - 1)
    return np.arange(h) * (k // (2 * h))


@functools.lru_cache(maxsize=None)
def bit_reverse(k: int) -> np.ndarray:
    """The bit-reversal permutation of ``range(k)`` (the input order of a decimation-in-time transform)."""
    bits = stages(k)
    out = np.array([int(format(i, f"0{bits}b")[::-1], 2) for i in range(k)])
    out.flags.writeable = False
    return out


# ----------------------------------------------------------------------------
# Hermitian packing
# ----------------------------------------------------------------------------


def pack_half(re, im) -> np.ndarray:
    """Bins 0 .. k/2 of a real signal's spectrum, real and imaginary parts (..., k/2 + 1), to k packed reals."""
    re, im = np.asarray(re), np.asarray(im)
    half = re.shape[-1] - 1
    out = np.empty(re.shape[:-1] + (2 * half,), dtype=np.result_type(re, im))
    out[..., 0] = re[..., 0]
    out[..., 1] = re[..., half]
    out[..., 2::2] = re[..., 1:half]
    out[..., 3::2] = im[..., 1:half]
    return out


def unpack_half(packed) -> tuple[np.ndarray, np.ndarray]:
    """k packed reals to bins 0 .. k/2 ``(re, im)`` (the imaginary parts of bins 0 and k/2 are 0)."""
    packed = np.asarray(packed)
    k = packed.shape[-1]
    half = k // 2
    re = np.zeros(packed.shape[:-1] + (half + 1,), dtype=packed.dtype)
    im = np.zeros_like(re)
    re[..., 0] = packed[..., 0]
    re[..., half] = packed[..., 1]
    re[..., 1:half] = packed[..., 2::2]
    im[..., 1:half] = packed[..., 3::2]
    return re, im


def pack(re, im) -> np.ndarray:
    """A full spectrum (..., k) of a real signal to k packed reals (bins above k/2 are dropped)."""
    k = np.shape(re)[-1]
    return pack_half(np.asarray(re)[..., : k // 2 + 1], np.asarray(im)[..., : k // 2 + 1])


def unpack(packed) -> tuple[np.ndarray, np.ndarray]:
    """k packed reals to the full Hermitian spectrum (..., k): ``X[k - m] = conj(X[m])``."""
    re_h, im_h = unpack_half(packed)
    k = np.shape(packed)[-1]
    mirror = np.arange(k // 2 - 1, 0, -1)
    re = np.concatenate([re_h, re_h[..., mirror]], axis=-1)
    im = np.concatenate([im_h, -im_h[..., mirror]], axis=-1)
    return re, im


# ----------------------------------------------------------------------------
# Exact integer helpers
# ----------------------------------------------------------------------------


def _max_bits(*arrays) -> int:
    return max((int(np.max(np.abs(a), initial=0)).bit_length() for a in arrays), default=0)


def _widen(*arrays):
    """Arrays as Python-int object arrays (exact beyond 63 bits)."""
    return tuple(a if a.dtype == object else a.astype(object) for a in arrays)


def _ints(x) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == object:
        return arr
    if arr.dtype.kind not in "iu":
        raise TypeError(f"the fixed-point transforms take integer arrays, not {arr.dtype}")
    return arr.astype(np.int64)


def _butterfly_pairs(v: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    k = v.shape[-1]
    blocks = v.reshape(v.shape[:-1] + (k // (2 * h), 2, h))
    return blocks[..., 0, :], blocks[..., 1, :]


def _join(top: np.ndarray, bot: np.ndarray) -> np.ndarray:
    both = np.stack([top, bot], axis=-2)
    return both.reshape(both.shape[:-3] + (-1,))


# ----------------------------------------------------------------------------
# The transforms
# ----------------------------------------------------------------------------


def rfft_wide(x) -> np.ndarray:
    """Forward stages of :func:`rfft` without the final narrowing.

    ``x`` (..., k) raw integers with f fraction bits; returns the packed
    ``DFT(x) / k`` (..., k) at ``f + L`` fraction bits (int64: at most
    ``width + L + 1`` bits for a ``width``-bit input).
    """
    x = _ints(x)
    if x.dtype == object:
        x = x.astype(np.int64)
    k = x.shape[-1]
    L = stages(k)
    cos, sin = twiddles(k)
    re = x[..., bit_reverse(k)] << L
    im = np.zeros_like(re)
    for s in range(1, L + 1):
        h = 1 << (s - 1)
        m = stage_twiddles(k, s)
        c, d = cos[m], sin[m]
        ar, br = _butterfly_pairs(re, h)
        ai, bi = _butterfly_pairs(im, h)
        # W b = (c - i d)(br + i bi), exact at f + L + 14 fraction bits
        tr = c * br + d * bi
        ti = c * bi - d * br
        ar, ai = ar << _FT, ai << _FT
        re = _join(round_shift(ar + tr, _FT + 1), round_shift(ar - tr, _FT + 1))
        im = _join(round_shift(ai + ti, _FT + 1), round_shift(ai - ti, _FT + 1))
    return pack(re, im)


def rfft(x, q: QFormat) -> np.ndarray:
    """The fixed-point real FFT of segments: raw ``x`` (..., k) in ``q`` -> packed ``DFT(x) / k`` raw in ``q``.

    L stages, each scaled by 1/2 and rounded (see the module docs), then
    narrowed from ``q.frac + L`` fraction bits to ``q`` (round half up, saturate).
    """
    x = _ints(x)
    return narrow(rfft_wide(x), q.frac + stages(x.shape[-1]), q)


def spectral_mac(spectra, segments) -> np.ndarray:
    """Exact frequency-domain multiply-accumulate across column blocks.

    ``spectra`` (..., cb, k) packed raw weight spectra; ``segments`` (N, cb, k)
    packed raw input spectra. Returns ``P`` (N, ..., k) packed:
    ``P[m] = sum_j S_j[m] X_j[m]``, bins 0 and k/2 real products, the others
    complex ``(Sr Xr - Si Xi, Sr Xi + Si Xr)``; exact integers (int64 while the
    sum fits, else Python integers).
    """
    S, X = _ints(spectra), _ints(segments)
    cb = S.shape[-2]
    if X.shape[-2] != cb or X.shape[-1] != S.shape[-1]:
        raise ValueError(f"spectra {S.shape} and segments {X.shape} differ in column blocks or size")
    bits = _max_bits(S) + _max_bits(X) + math.ceil(math.log2(2 * cb)) + 1
    if bits > _INT64_BITS or S.dtype == object or X.dtype == object:
        S, X = _widen(S, X)
        Xb = X.reshape((X.shape[0],) + (1,) * (S.ndim - 2) + X.shape[1:])  # N in front of the spectra's axes

        def mul(a, b):
            return (S[None][..., a] * Xb[..., b]).sum(axis=-2)
    else:

        def mul(a, b):
            return np.einsum("...jm,njm->n...m", S[..., a], X[..., b])

    dc, nyq, real, imag = slice(0, 1), slice(1, 2), slice(2, None, 2), slice(3, None, 2)
    re = mul(real, real) - mul(imag, imag)
    out = np.empty(re.shape[:-1] + (S.shape[-1],), dtype=re.dtype)
    out[..., dc] = mul(dc, dc)
    out[..., nyq] = mul(nyq, nyq)
    out[..., real] = re
    out[..., imag] = mul(real, imag) + mul(imag, real)
    return out


def irfft(packed) -> np.ndarray:
    """The fixed-point inverse real FFT: packed ``P`` (..., k) raw -> real ``y`` (..., k), same fraction bits.

    Unscaled, ``y[n] = Re sum_m P[m] W_k^(-m n)`` over the full Hermitian
    spectrum, L radix-2 stages with every twiddle product rounded back to the
    working fraction (see the module docs). Exact integers (int64 while the
    products fit, else Python integers).
    """
    p = _ints(packed)
    k = p.shape[-1]
    L = stages(k)
    re, im = unpack(p)
    rev = bit_reverse(k)
    re, im = re[..., rev], im[..., rev]
    cos, sin = twiddles(k)
    for s in range(1, L + 1):
        h = 1 << (s - 1)
        m = stage_twiddles(k, s)
        c, d = cos[m], sin[m]
        ar, br = _butterfly_pairs(re, h)
        ai, bi = _butterfly_pairs(im, h)
        if re.dtype == object or _max_bits(ar, br, ai, bi) + _FT + 3 > _INT64_BITS:
            ar, br, ai, bi = _widen(ar, br, ai, bi)
            c, d = _widen(c, d)
        # conj(W) b = (c + i d)(br + i bi), rounded back to the working fraction
        ur = round_shift(c * br - d * bi, _FT)
        ui = round_shift(c * bi + d * br, _FT)
        re = _join(ar + ur, ar - ur)
        im = _join(ai + ui, ai - ui)
    return re


# ----------------------------------------------------------------------------
# Weight spectra (float, at quantize time)
# ----------------------------------------------------------------------------


def weight_spectra(vectors) -> np.ndarray:
    """Packed ``DFT(w)`` (float64) of defining vectors (..., k): what is quantized to ``q_spectrum``."""
    w = np.asarray(vectors, dtype=np.float64)
    check_size(w.shape[-1])
    spec = np.fft.rfft(w, axis=-1)
    return pack_half(spec.real, spec.imag)


def spectra_vectors(packed) -> np.ndarray:
    """Inverse of :func:`weight_spectra`: the real defining vectors (float64) whose DFT is ``packed``."""
    re, im = unpack_half(np.asarray(packed, dtype=np.float64))
    return np.fft.irfft(re + 1j * im, n=np.shape(packed)[-1], axis=-1)


# ----------------------------------------------------------------------------
# Counted multiplies
# ----------------------------------------------------------------------------


def transform_multiplies(k: int) -> int:
    """Real multiplies of one forward or inverse transform: 4 per nontrivial twiddle product.

    Every butterfly whose twiddle is neither 1 nor -i multiplies (both
    transforms run all k/2 butterflies of each of the L stages).
    """
    total = 0
    for s in range(1, stages(k) + 1):
        m = stage_twiddles(k, s)
        total += int(np.count_nonzero(~trivial_twiddle(k, m))) * (k // (2 << (s - 1)))
    return 4 * total


def block_multiplies(k: int, complex_multiplies: int = 4) -> int:
    """Real multiplies of one block's spectral product: 2 real bins + (k/2 - 1) complex products."""
    return 2 + complex_multiplies * (k // 2 - 1)


def step_multiplies(cfg: Config) -> dict:
    """Multiplies of one time step (all layers), counted from the schedule, for both circulant modes.

    Direct: ``rows * cols`` per matrix (k^2 per k x k block). FFT: a forward
    transform per input segment of every matrix (the segments of ``[x; h]``
    once each with fused projections), a spectral product per block, an
    inverse transform per row block of every matrix (one per row block of the
    fused ``[W | U]``). ``fft`` is None when k is not a transform size.
    """
    k = cfg.block_size
    direct = sum(r * c for layer in range(cfg.num_layers) for _, r, c in cfg.matrices(layer))
    out = {
        "direct": direct,
        "fft": None,
        "fft_3mult": None,
        "forward_transforms": None,
        "inverse_transforms": None,
        "blocks": None,
    }
    if not (4 <= k <= 256 and k & (k - 1) == 0):
        return out
    fwd = inv = blocks = 0
    for layer in range(cfg.num_layers):
        mats = cfg.matrices(layer)
        for i, (_, r, c) in enumerate(mats):
            fwd += c // k
            blocks += (r // k) * (c // k)
            if not (cfg.fused_projections and i > 0):  # fused: [W | U] shares the row blocks of W
                inv += r // k
    t = transform_multiplies(k)
    out.update(
        forward_transforms=fwd,
        inverse_transforms=inv,
        blocks=blocks,
        fft=(fwd + inv) * t + blocks * block_multiplies(k, 4),
        fft_3mult=(fwd + inv) * t + blocks * block_multiplies(k, 3),
    )
    return out
