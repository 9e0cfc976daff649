"""Block-circulant math: the index rule, expand, project (least squares), pad,
and the rotating-register reading of circulant_index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnaccel.numeric.circulant import circulant_index, expand, is_block_circulant, pad_matrix, project

SETTINGS = settings(max_examples=60, deadline=None)


def shapes(max_blocks=4, max_k=6):
    return st.tuples(st.integers(1, max_blocks), st.integers(1, max_blocks), st.integers(1, max_k))


# ------------------------------------------------------------------ expand
@given(shapes(), st.integers(0, 2**32 - 1))
@SETTINGS
def test_expand_definition(shape, seed):
    rb, cb, k = shape
    rng = np.random.default_rng(seed)
    w = rng.integers(-100, 100, size=(rb, cb, k))
    dense = expand(w)
    assert dense.shape == (rb * k, cb * k)
    assert dense.dtype == w.dtype
    for i in range(rb):
        for j in range(cb):
            for r in range(k):
                for c in range(k):
                    assert dense[i * k + r, j * k + c] == w[i, j, (r - c) % k]


def test_expand_k3_by_hand():
    w = np.array([[[1, 2, 3]]])
    assert expand(w).tolist() == [[1, 3, 2], [2, 1, 3], [3, 2, 1]]


def test_expand_k1_is_dense():
    m = np.arange(12).reshape(3, 4)
    assert np.array_equal(expand(m[:, :, None]), m)


def test_expand_rejects_wrong_rank():
    with pytest.raises(ValueError):
        expand(np.zeros((4, 4)))


def test_circulant_index_values():
    k = 5
    r, c = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    idx = circulant_index(r, c, k)
    assert np.array_equal(idx, (r - c) % k)
    assert idx.min() == 0 and idx.max() == k - 1
    # each diagonal word appears once in every row and column
    for d in range(k):
        assert np.all((idx == d).sum(axis=0) == 1) and np.all((idx == d).sum(axis=1) == 1)
    assert circulant_index(0, 1, 4) == 3


# ------------------------------------------------------------------ project
@given(shapes(), st.integers(0, 2**32 - 1))
@SETTINGS
def test_project_recovers_circulant_exactly(shape, seed):
    """Exact for fixed-point weights (dyadic values: the sums of a diagonal are exact)."""
    rb, cb, k = shape
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(rb, cb, k)) / 64.0  # Q1.6 weights
    got = project(expand(w), k)
    assert got.shape == w.shape and got.dtype == np.float64
    assert np.array_equal(got, w)


@given(shapes(), st.integers(0, 2**32 - 1))
@SETTINGS
def test_project_recovers_float_circulant(shape, seed):
    """Arbitrary floats: the mean of k equal values is within a few ulp (summation rounding)."""
    rb, cb, k = shape
    w = np.random.default_rng(seed).normal(size=(rb, cb, k))
    np.testing.assert_allclose(project(expand(w), k), w, rtol=8 * np.finfo(float).eps, atol=0)


@given(shapes(), st.integers(0, 2**32 - 1))
@SETTINGS
def test_project_recovers_integer_circulant_exactly(shape, seed):
    rb, cb, k = shape
    w = np.random.default_rng(seed).integers(-128, 128, size=(rb, cb, k))
    assert np.array_equal(project(expand(w), k), w.astype(np.float64))
    assert is_block_circulant(expand(w), k)


def lstsq_block(block: np.ndarray, k: int) -> np.ndarray:
    """Brute force: least-squares defining vector of one (possibly partial) block.

    ``block`` holds only the real entries (blocks start at multiples of k, so
    local indices r, c give the diagonal (r - c) % k).
    """
    rows, cols = block.shape
    a = np.zeros((rows * cols, k))
    b = np.zeros(rows * cols)
    for r in range(rows):
        for c in range(cols):
            a[r * cols + c, (r - c) % k] = 1.0
            b[r * cols + c] = block[r, c]
    sol, *_ = np.linalg.lstsq(a, b, rcond=None)  # minimum norm: 0 for diagonals with no entry
    return sol


@given(st.integers(2, 5), st.integers(1, 13), st.integers(1, 13), st.integers(0, 2**32 - 1))
@SETTINGS
def test_project_is_least_squares_per_block(k, rows, cols, seed):
    dense = np.random.default_rng(seed).normal(size=(rows, cols))
    got = project(dense, k)
    rb, cb = -(-rows // k), -(-cols // k)
    assert got.shape == (rb, cb, k)
    for i in range(rb):
        for j in range(cb):
            block = dense[i * k : (i + 1) * k, j * k : (j + 1) * k]  # only real entries
            want = lstsq_block(block, k)
            np.testing.assert_allclose(got[i, j], want, rtol=0, atol=1e-12)


def test_project_partial_blocks_7x5_k3():
    rng = np.random.default_rng(7)
    dense = rng.normal(size=(7, 5))
    got = project(dense, 3)
    assert got.shape == (3, 2, 3)
    for i in range(3):
        for j in range(2):
            want = lstsq_block(dense[i * 3 : (i + 1) * 3, j * 3 : (j + 1) * 3], 3)
            np.testing.assert_allclose(got[i, j], want, rtol=0, atol=1e-12)
    # the corner block holds two real entries, (6, 3) on diagonal 0 and (6, 4) on diagonal 2;
    # diagonal 1 has none and gets 0
    assert got[2, 1].tolist() == [dense[6, 3], 0.0, dense[6, 4]]
    # the bottom row of blocks has one real row: row 6 against cols 0..2 -> diagonals 0, 2, 1
    assert got[2, 0].tolist() == [dense[6, 0], dense[6, 2], dense[6, 1]]


@given(st.integers(2, 5), st.integers(1, 10), st.integers(1, 10), st.integers(0, 2**32 - 1))
@SETTINGS
def test_project_is_optimal_against_perturbations(k, rows, cols, seed):
    """No other block-circulant matrix is closer on the real entries."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(rows, cols))
    w = project(dense, k)

    def err(vectors):
        return np.sum((expand(vectors)[:rows, :cols] - dense) ** 2)

    best = err(w)
    for _ in range(5):
        assert err(w + 1e-3 * rng.normal(size=w.shape)) >= best - 1e-12


def test_project_k1_is_identity():
    m = np.random.default_rng(1).normal(size=(5, 3))
    assert np.array_equal(project(m, 1)[:, :, 0], m)


def test_project_rejects_wrong_rank():
    with pytest.raises(ValueError):
        project(np.zeros((2, 2, 2)), 2)


def test_is_block_circulant():
    w = np.random.default_rng(2).normal(size=(2, 3, 4))
    dense = expand(w)
    assert is_block_circulant(dense, 4)
    dense2 = dense.copy()
    dense2[0, 1] += 1.0
    assert not is_block_circulant(dense2, 4)
    assert not is_block_circulant(dense[:7], 4)  # sides not multiples of k


# ------------------------------------------------------------------ pad_matrix
@pytest.mark.parametrize("rows, cols, k", [(7, 5, 3), (8, 8, 4), (1, 1, 5), (4, 9, 4), (3, 3, 1), (16, 2, 16)])
def test_pad_matrix(rows, cols, k):
    m = np.arange(1, rows * cols + 1, dtype=np.int16).reshape(rows, cols)
    p = pad_matrix(m, k)
    assert p.shape == (-(-rows // k) * k, -(-cols // k) * k)
    assert p.shape[0] % k == 0 and p.shape[1] % k == 0
    assert p.dtype == m.dtype
    assert np.array_equal(p[:rows, :cols], m)
    assert not p[rows:, :].any() and not p[:, cols:].any()
    if rows % k == 0 and cols % k == 0:
        assert np.array_equal(p, m)


# ------------------------------------------------------------------ the hardware reading
@pytest.mark.parametrize("k", range(1, 9))
def test_circulant_index_is_rotating_register(k):
    """Lane r of a k-word register rotated by one each cycle holds x[circulant_index(r, t, k)]."""
    x = np.arange(100, 100 + k)
    reg = x.copy()  # cycle 0: lane r holds x[r]
    for t in range(3 * k + 1):
        for r in range(k):
            assert reg[r] == x[circulant_index(r, t, k)]
        reg = np.array([reg[(r - 1) % k] for r in range(k)])  # new[r] = old[(r - 1) % k]


@given(st.integers(1, 8), st.integers(0, 2**32 - 1))
@SETTINGS
def test_time_domain_product_matches_expand(k, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=k)
    x = rng.integers(-(2**15), 2**15, size=k)
    acc = np.zeros(k, dtype=np.int64)
    for t in range(k):  # one defining word per cycle, every lane at once
        for r in range(k):
            acc[r] += w[t] * x[(r - t) % k]
    assert np.array_equal(acc, expand(w[None, None, :]) @ x)


@given(shapes(max_blocks=3, max_k=5), st.integers(0, 2**32 - 1))
@SETTINGS
def test_blockwise_time_domain_matvec(shape, seed):
    """A whole block-circulant mat-vec through the rotating register, block by block."""
    rb, cb, k = shape
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, size=(rb, cb, k))
    x = rng.integers(-(2**15), 2**15, size=cb * k)
    y = np.zeros(rb * k, dtype=np.int64)
    for i in range(rb):
        for j in range(cb):
            reg = x[j * k : (j + 1) * k].copy()
            for t in range(k):
                y[i * k : (i + 1) * k] += w[i, j, t] * reg
                reg = np.roll(reg, 1)  # new[r] = old[(r - 1) % k]
    assert np.array_equal(y, expand(w) @ x)
