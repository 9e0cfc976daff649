"""Fixed-point arithmetic, defined once for the golden model and the hardware.

Every number in rnnaccel is signed two's complement with a named
:class:`QFormat` (``width`` bits in all, ``frac`` of them fractional). There
is exactly one rounding rule and one saturation rule:

* **rounding**: round half up (towards +infinity), i.e. add half an LSB of the
  target and shift right arithmetically: ``(x + (1 << (s - 1))) >> s``;
* **saturation**: clamp to ``[-2**(width-1), 2**(width-1) - 1]``.

:func:`narrow` is the composition (round, then saturate) used at every point
where a wide value becomes a narrow one. The NumPy functions here are what the
golden model calls; :func:`hw_round_shift`, :func:`hw_saturate` and
:func:`hw_narrow` build the same operations as Amaranth expressions for the
hardware. ``sim_tests/test_fixedpoint.py`` checks the two sides against each
other exhaustively at small widths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = [
    "QFormat",
    "round_shift",
    "saturate",
    "narrow",
    "quantize",
    "to_float",
    "align",
    "hw_round_shift",
    "hw_saturate",
    "hw_narrow",
    "ROUNDING_RULE",
]

#: Human-readable statement of the rounding rule (written into C headers and docs).
ROUNDING_RULE = "round half up: (x + (1 << (s-1))) >> s, arithmetic shift; then saturate to [-2^(w-1), 2^(w-1)-1]"

_Q_RE = re.compile(r"^\s*[Qq]\s*(-?\d+)\s*\.\s*(\d+)\s*$")

MAX_WIDTH = 32


@dataclass(frozen=True)
class QFormat:
    """A signed fixed-point format: ``width`` bits, ``frac`` of them after the point.

    Written ``Qm.n`` (ARM notation): ``m`` integer bits besides the sign, ``n``
    fractional bits, so ``width = 1 + m + n``. ``Q3.12`` is 16 bits with a
    resolution of 2**-12 and a range of [-8, 8).

    Parameters
    ----------
    width : int
        Total number of bits, sign included (2 to 32).
    frac : int
        Number of fractional bits (0 or more; may exceed ``width - 1`` for
        formats of small magnitude, giving negative ``m``).
    """

    width: int
    frac: int

    def __post_init__(self):
        if not isinstance(self.width, int) or isinstance(self.width, bool):
            raise TypeError(f"QFormat width must be an int, not {self.width!r}")
        if not isinstance(self.frac, int) or isinstance(self.frac, bool):
            raise TypeError(f"QFormat frac must be an int, not {self.frac!r}")
        if not 2 <= self.width <= MAX_WIDTH:
            raise ValueError(f"QFormat width must be between 2 and {MAX_WIDTH}, not {self.width!r}")
        if self.frac < 0:
            raise ValueError(f"QFormat frac must be 0 or more, not {self.frac!r}")

    @classmethod
    def parse(cls, text: "str | QFormat") -> "QFormat":
        """Parse ``"Qm.n"`` (for instance ``"Q3.12"``); a QFormat is returned as is."""
        if isinstance(text, QFormat):
            return text
        if not isinstance(text, str):
            raise TypeError(f"a Q format is written like 'Q3.12', not {text!r}")
        match = _Q_RE.match(text)
        if match is None:
            raise ValueError(f"a Q format is written like 'Q3.12' (sign + 3 integer + 12 fraction bits), not {text!r}")
        m, n = int(match.group(1)), int(match.group(2))
        return cls(width=1 + m + n, frac=n)

    @property
    def int_bits(self) -> int:
        """Integer bits besides the sign (the ``m`` of ``Qm.n``)."""
        return self.width - 1 - self.frac

    @property
    def min_raw(self) -> int:
        return -(1 << (self.width - 1))

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - 1)) - 1

    @property
    def lsb(self) -> float:
        """Value of one least significant bit."""
        return 2.0**-self.frac

    @property
    def min_value(self) -> float:
        return self.min_raw * self.lsb

    @property
    def max_value(self) -> float:
        return self.max_raw * self.lsb

    def __str__(self) -> str:
        return f"Q{self.int_bits}.{self.frac}"


# --------------------------------------------------------------------------
# NumPy side (golden model)
# --------------------------------------------------------------------------


def _as_int(x) -> np.ndarray:
    """int64 arrays; object arrays of Python ints stay as they are (exact sums wider than 63 bits)."""
    arr = np.asarray(x)
    if arr.dtype == object and all(isinstance(v, int) for v in arr.flat):
        return arr
    if arr.dtype.kind not in "iu":
        raise TypeError(f"fixed-point operations take integer arrays, not {arr.dtype}")
    return arr.astype(np.int64)


def round_shift(x, shift: int) -> np.ndarray:
    """Divide by ``2**shift`` with the one rounding rule (round half up).

    A negative ``shift`` multiplies exactly by ``2**-shift``.
    """
    x = _as_int(x)
    if shift > 0:
        return (x + (1 << (shift - 1))) >> shift
    if shift < 0:
        return x << (-shift)
    return x


def saturate(x, q: QFormat) -> np.ndarray:
    """Clamp raw integers to the range of ``q`` (the one saturation rule)."""
    return np.clip(_as_int(x), q.min_raw, q.max_raw)


def narrow(x, from_frac: int, q: QFormat) -> np.ndarray:
    """Round raw integers with ``from_frac`` fractional bits to ``q``, then saturate."""
    return saturate(round_shift(x, from_frac - q.frac), q)


def align(x, from_frac: int, to_frac: int) -> np.ndarray:
    """Exact left shift from ``from_frac`` to ``to_frac >= from_frac`` fractional bits."""
    if to_frac < from_frac:
        raise ValueError(f"align only widens: {from_frac} -> {to_frac} fractional bits would round")
    return _as_int(x) << (to_frac - from_frac)


def quantize(x, q: QFormat) -> np.ndarray:
    """Float to raw integers of ``q``: nearest value, ties up, then saturate.

    Non-finite values are refused (they have no fixed-point meaning).
    """
    arr = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("cannot quantize NaN or infinite values")
    scaled = np.floor(arr * (2.0**q.frac) + 0.5)
    scaled = np.clip(scaled, q.min_raw, q.max_raw)
    return scaled.astype(np.int64)


def to_float(raw, q_or_frac: "QFormat | int") -> np.ndarray:
    """Raw integers to float64 values."""
    frac = q_or_frac.frac if isinstance(q_or_frac, QFormat) else int(q_or_frac)
    return np.asarray(raw, dtype=np.float64) * (2.0**-frac)


# --------------------------------------------------------------------------
# Amaranth side (hardware); same rules as expressions
# --------------------------------------------------------------------------


def hw_round_shift(value, shift: int):
    """Amaranth expression: ``value / 2**shift`` rounded half up (signed)."""
    from amaranth.hdl import Value

    value = Value.cast(value)
    if shift > 0:
        # Amaranth's + widens by one bit, so adding the half LSB never wraps
        return (value + (1 << (shift - 1))) >> shift
    if shift < 0:
        return value << (-shift)
    return value


def hw_saturate(value, q: QFormat):
    """Amaranth expression of shape ``signed(q.width)``: ``value`` clamped to ``q``.

    Built as an overflow test on the bits above the target's sign (they must all equal it), not as two
    magnitude compares: a compare against a constant is a carry chain as wide as ``value``, and on the
    narrowing paths it came right after the rounding add's carry chain (issue 15, the iCE40's gate unit).
    """
    from amaranth.hdl import Cat, Const, Mux, Value

    value = Value.cast(value)
    w, width = q.width, len(value)
    lo, hi = Const(q.min_raw, w), Const(q.max_raw, w)
    if value.shape().signed:
        if width <= w:  # fits: sign-extend
            return Cat(value, value[-1].replicate(w - width)).as_signed()
        top = value[w - 1 :]
        fits = top.all() | ~top.any()
        return Mux(fits, value[:w], Mux(value[-1], lo, hi)).as_signed()[:w].as_signed()
    if width < w:  # fits: zero-extend
        return Cat(value, Const(0, w - width)).as_signed()
    over = value[w - 1 :].any()
    return Mux(over, hi, value[:w]).as_signed()[:w].as_signed()


def hw_narrow(value, from_frac: int, q: QFormat):
    """Amaranth expression: :func:`narrow` in hardware."""
    return hw_saturate(hw_round_shift(value, from_frac - q.frac), q)
