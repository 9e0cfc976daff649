"""Fixed point: the NumPy rules against pure-Python references, and the
Amaranth expressions (hw_round_shift, hw_saturate, hw_narrow) against the
NumPy side, exhaustively at small widths and with hypothesis at large ones."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from amaranth.hdl import Cat, Module, Shape, Signal, signed, unsigned
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnaccel.numeric.fixedpoint import (
    MAX_WIDTH,
    QFormat,
    align,
    hw_narrow,
    hw_round_shift,
    hw_saturate,
    narrow,
    quantize,
    round_shift,
    saturate,
    to_float,
)


# --------------------------------------------------------------------------
# pure-Python references
# --------------------------------------------------------------------------


def ref_round_shift(x: int, s: int) -> int:
    """x / 2**s rounded half up: floor(x / 2**s + 1/2) (exact for s <= 0)."""
    if s <= 0:
        return x * 2 ** (-s)
    return math.floor(Fraction(x, 2**s) + Fraction(1, 2))


def ref_saturate(x: int, width: int) -> int:
    lo, hi = -(2 ** (width - 1)), 2 ** (width - 1) - 1
    return min(max(x, lo), hi)


def ref_narrow(x: int, from_frac: int, q: QFormat) -> int:
    return ref_saturate(ref_round_shift(x, from_frac - q.frac), q.width)


# --------------------------------------------------------------------------
# QFormat
# --------------------------------------------------------------------------


def test_qformat_parse_q3_12():
    q = QFormat.parse("Q3.12")
    assert (q.width, q.frac, q.int_bits) == (16, 12, 3)
    assert str(q) == "Q3.12"
    assert q.min_raw == -32768 and q.max_raw == 32767
    assert q.lsb == 2.0**-12
    assert q.min_value == -8.0 and q.max_value == 8.0 - 2.0**-12


@pytest.mark.parametrize("text", ["Q0.15", "Q3.12", "Q15.16", "Q1.0", "Q-1.9", "Q7.0", "Q0.1"])
def test_qformat_str_parse_round_trip(text):
    q = QFormat.parse(text)
    assert str(q) == text
    assert QFormat.parse(str(q)) == q
    assert QFormat.parse(q) is q


def test_qformat_parse_is_lenient_about_case_and_spaces():
    assert QFormat.parse(" q3 . 12 ") == QFormat(16, 12)


@given(width=st.integers(2, MAX_WIDTH), frac=st.integers(0, 40))
@settings(max_examples=200, deadline=None)
def test_qformat_round_trip_all(width, frac):
    q = QFormat(width, frac)
    assert QFormat.parse(str(q)) == q


@pytest.mark.parametrize("text", ["Q3", "3.12", "Q3.", "Q.12", "Q3.12.1", "", "Qa.b", "Q3.-1"])
def test_qformat_parse_rejects_malformed(text):
    with pytest.raises(ValueError, match="Q3.12"):
        QFormat.parse(text)


@pytest.mark.parametrize(
    "width, frac, exc",
    [
        (1, 0, ValueError),
        (33, 0, ValueError),
        (8, -1, ValueError),
        (8.0, 0, TypeError),
        (True, 0, TypeError),
        (8, 1.5, TypeError),
    ],
)
def test_qformat_rejects_bad_fields(width, frac, exc):
    with pytest.raises(exc):
        QFormat(width, frac)


def test_qformat_parse_rejects_non_string():
    with pytest.raises(TypeError):
        QFormat.parse(16)


# --------------------------------------------------------------------------
# NumPy side against references
# --------------------------------------------------------------------------

ALL8 = np.arange(-128, 256, dtype=np.int64)  # every signed and unsigned 8-bit value


@pytest.mark.parametrize("shift", range(-2, 7))
def test_round_shift_exhaustive_8bit(shift):
    got = round_shift(ALL8, shift)
    want = [ref_round_shift(int(x), shift) for x in ALL8]
    assert got.tolist() == want


def test_round_shift_ties_go_up():
    # exactly half an LSB: +0.5 -> 1, -0.5 -> 0, +1.5 -> 2, -1.5 -> -1
    assert round_shift(np.array([1, -1, 3, -3]), 1).tolist() == [1, 0, 2, -1]
    assert round_shift(np.array([2, -2, 6, -6]), 2).tolist() == [1, 0, 2, -1]


def test_round_shift_refuses_floats():
    with pytest.raises(TypeError):
        round_shift(np.array([1.5]), 1)


@pytest.mark.parametrize("width", range(2, 9))
def test_saturate_exhaustive(width):
    q = QFormat(width, 0)
    got = saturate(ALL8, q)
    assert got.tolist() == [ref_saturate(int(x), width) for x in ALL8]


@pytest.mark.parametrize("width", range(2, 7))
@pytest.mark.parametrize("shift", range(-2, 6))
def test_narrow_exhaustive(width, shift):
    q = QFormat(width, 3)
    from_frac = q.frac + shift
    got = narrow(ALL8, from_frac, q)
    assert got.tolist() == [ref_narrow(int(x), from_frac, q) for x in ALL8]


def test_narrow_large_values():
    q = QFormat(16, 11)
    xs = np.array([2**40, -(2**40), 2**26 - 1, -(2**26), 12345678901, -98765432109], dtype=np.int64)
    assert narrow(xs, 18, q).tolist() == [ref_narrow(int(x), 18, q) for x in xs]


def test_align():
    assert align(np.array([3, -3]), 2, 5).tolist() == [24, -24]
    with pytest.raises(ValueError):
        align(np.array([1]), 5, 2)


def test_quantize_ties_go_up():
    q = QFormat(8, 2)  # lsb 0.25
    xs = np.array([0.125, -0.125, 0.375, -0.375, 0.1, -0.1, 0.0])
    assert quantize(xs, q).tolist() == [1, 0, 2, -1, 0, 0, 0]


def test_quantize_saturates():
    q = QFormat(8, 4)
    assert quantize(np.array([100.0, -100.0, 7.96875, -8.0]), q).tolist() == [127, -128, 127, -128]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_quantize_refuses_non_finite(bad):
    with pytest.raises(ValueError):
        quantize(np.array([0.0, bad]), QFormat(16, 8))


@given(st.lists(st.floats(-200, 200, allow_nan=False), min_size=1, max_size=20), st.integers(2, 32), st.integers(0, 20))
@settings(max_examples=200, deadline=None)
def test_quantize_matches_reference(values, width, frac):
    q = QFormat(width, frac)
    want = [ref_saturate(math.floor(Fraction(v) * 2**frac + Fraction(1, 2)), width) for v in values]
    assert quantize(np.array(values), q).tolist() == want


def test_to_float():
    assert to_float(np.array([4096, -2048]), QFormat(16, 12)).tolist() == [1.0, -0.5]
    assert to_float(np.array([3]), 1).tolist() == [1.5]


# --------------------------------------------------------------------------
# Amaranth side against the NumPy side
# --------------------------------------------------------------------------


def _decode(packed: int, layout: list[Shape]) -> list[int]:
    out, off = [], 0
    for shape in layout:
        v = (packed >> off) & ((1 << shape.width) - 1)
        if shape.signed and shape.width and v >> (shape.width - 1):
            v -= 1 << shape.width
        out.append(v)
        off += shape.width
    return out


def hw_eval(in_shape: Shape, builders, values) -> np.ndarray:
    """Evaluate Amaranth expressions of one input signal for many input values.

    ``builders`` are functions of the input Signal returning an expression.
    One module computes all of them combinationally (packed into one wide
    signal); one testbench sweeps ``values``. Returns (len(values), len(builders)).
    """
    m = Module()
    x = Signal(in_shape)
    outs, layout = [], []
    for build in builders:
        expr = build(x)
        o = Signal(expr.shape())
        m.d.comb += o.eq(expr)
        outs.append(o)
        layout.append(expr.shape())
    packed = Signal(sum(s.width for s in layout))
    m.d.comb += packed.eq(Cat(*outs))
    results: list[list[int]] = []

    async def bench(ctx):
        for v in values:
            ctx.set(x, int(v))
            results.append(_decode(ctx.get(packed), layout))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results, dtype=object)


def _all_values(shape: Shape) -> np.ndarray:
    if shape.signed:
        return np.arange(-(1 << (shape.width - 1)), 1 << (shape.width - 1), dtype=np.int64)
    return np.arange(0, 1 << shape.width, dtype=np.int64)


SMALL_SHIFTS = range(-2, 6)
SMALL_TARGETS = [QFormat(w, f) for w in range(2, 7) for f in (0, 2)]
SMALL_SHAPES = [s(w) for w in range(1, 9) for s in (signed, unsigned)]


@pytest.mark.parametrize("in_shape", SMALL_SHAPES, ids=repr)
def test_hw_matches_numpy_exhaustive(in_shape):
    values = _all_values(in_shape)
    cases, builders = [], []
    for s in SMALL_SHIFTS:
        cases.append(("round_shift", s, None))
        builders.append(lambda x, s=s: hw_round_shift(x, s))
    for q in SMALL_TARGETS:
        cases.append(("saturate", None, q))
        builders.append(lambda x, q=q: hw_saturate(x, q))
    for q in SMALL_TARGETS:
        for s in SMALL_SHIFTS:
            if q.frac + s < 0:
                continue
            cases.append(("narrow", q.frac + s, q))
            builders.append(lambda x, q=q, ff=q.frac + s: hw_narrow(x, ff, q))
    got = hw_eval(in_shape, builders, values)
    for col, (kind, arg, q) in enumerate(cases):
        if kind == "round_shift":
            want = round_shift(values, arg)
        elif kind == "saturate":
            want = saturate(values, q)
        else:
            want = narrow(values, arg, q)
        mismatch = [(int(v), g, int(w)) for v, g, w in zip(values, got[:, col], want) if g != w]
        assert not mismatch, f"{kind} shift/from_frac={arg} q={q} on {in_shape}: (in, hw, numpy) {mismatch[:5]}"


@pytest.mark.parametrize("in_shape", [signed(5), unsigned(5), signed(12), unsigned(1)], ids=repr)
@pytest.mark.parametrize("q", [QFormat(2, 0), QFormat(4, 1), QFormat(8, 3), QFormat(16, 11)], ids=str)
def test_hw_saturate_and_narrow_have_target_shape(in_shape, q):
    x = Signal(in_shape)
    assert hw_saturate(x, q).shape() == signed(q.width)
    for shift in (-2, 0, 3):
        if q.frac + shift >= 0:
            assert hw_narrow(x, q.frac + shift, q).shape() == signed(q.width)


def test_hw_round_shift_zero_is_identity():
    x = Signal(signed(7))
    assert hw_round_shift(x, 0) is x


@st.composite
def large_case(draw):
    width = draw(st.integers(2, 40))
    is_signed = draw(st.booleans())
    shape = signed(width) if is_signed else unsigned(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    edges = [lo, hi, 0, min(hi, 1), max(lo, -1), lo + 1, hi - 1]
    values = draw(st.lists(st.integers(lo, hi), min_size=8, max_size=48)) + [e for e in edges if lo <= e <= hi]
    tw = draw(st.integers(2, 32))
    tf = draw(st.integers(0, 24))
    shifts = draw(st.lists(st.integers(-6, 44), min_size=1, max_size=4, unique=True))
    # include values around the saturation thresholds of the target after each shift
    for s in shifts:
        for bound in (-(1 << (tw - 1)), (1 << (tw - 1)) - 1):
            for t in (bound, bound + 1):
                for off in (-1, 0, 1):
                    v = (t << s) - (1 << (s - 1)) + off if s > 0 else (t >> -s) + off
                    if lo <= v <= hi:
                        values.append(v)
    return shape, np.array(sorted(set(values)), dtype=np.int64), QFormat(tw, tf), shifts


@given(large_case())
@settings(max_examples=300, deadline=None)
def test_hw_matches_numpy_large_widths(case):
    in_shape, values, q, shifts = case
    builders = [lambda x: hw_saturate(x, q)]
    cases = [("saturate", None)]
    for s in shifts:
        builders.append(lambda x, s=s: hw_round_shift(x, s))
        cases.append(("round_shift", s))
        if q.frac + s >= 0:
            builders.append(lambda x, s=s: hw_narrow(x, q.frac + s, q))
            cases.append(("narrow", q.frac + s))
    got = hw_eval(in_shape, builders, values)
    for col, (kind, arg) in enumerate(cases):
        if kind == "saturate":
            want = [ref_saturate(int(v), q.width) for v in values]
        elif kind == "round_shift":
            want = [ref_round_shift(int(v), arg) for v in values]
        else:
            want = [ref_narrow(int(v), arg, q) for v in values]
        if kind == "saturate":
            np_side = saturate(values, q).tolist()
        elif kind == "round_shift":
            np_side = round_shift(values, arg).tolist()
        else:
            np_side = narrow(values, arg, q).tolist()
        assert np_side == want, f"numpy {kind} {arg} {q} disagrees with the reference"
        assert list(got[:, col]) == want, f"hw {kind} {arg} {q} on {in_shape}"
