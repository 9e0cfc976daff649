"""Block-circulant matrices: the index rule, expansion, projection and padding.

A matrix is cut into k x k blocks; block (i, j) is circulant with defining
vector ``w`` (length k): ``B[r][c] = w[circulant_index(r, c, k)]`` with
``circulant_index(r, c, k) = (r - c) mod k``.

The same function tells the hardware which input word a lane multiplies:
computing a block's product one defining word per cycle,
``acc[r] += w[t] * x[circulant_index(r, t, k)]`` at cycle t, which is what a
rotating input register realizes (after t rotations, lane r sees
``x[(r - t) mod k]``). Defining vectors are stored as arrays of shape
``(rows / k, cols / k, k)``; with k = 1 the same layout holds a dense matrix.
"""

from __future__ import annotations

import numpy as np

from .config import ceil_div

__all__ = ["circulant_index", "expand", "project", "pad_matrix", "is_block_circulant"]


def circulant_index(r, c, k: int):
    """The one circulant index: word of the defining vector at block position (r, c).

    Also: the input word lane ``r`` multiplies at cycle ``c`` of a block.
    """
    return (np.asarray(r) - np.asarray(c)) % k


def expand(vectors: np.ndarray) -> np.ndarray:
    """Defining vectors ``(rb, cb, k)`` to the dense ``(rb*k, cb*k)`` matrix."""
    vectors = np.asarray(vectors)
    if vectors.ndim != 3:
        raise ValueError(f"defining vectors have shape (row blocks, col blocks, k), not {vectors.shape}")
    rb, cb, k = vectors.shape
    r = np.arange(k)[:, None]
    c = np.arange(k)[None, :]
    idx = circulant_index(r, c, k)  # (k, k)
    blocks = vectors[:, :, idx]  # (rb, cb, k, k)
    return blocks.transpose(0, 2, 1, 3).reshape(rb * k, cb * k)


def pad_matrix(dense: np.ndarray, k: int) -> np.ndarray:
    """Zero-pad a matrix so both sides are multiples of k."""
    dense = np.asarray(dense)
    rows, cols = dense.shape
    out = np.zeros((ceil_div(rows, k) * k, ceil_div(cols, k) * k), dtype=dense.dtype)
    out[:rows, :cols] = dense
    return out


def project(dense: np.ndarray, k: int) -> np.ndarray:
    """Nearest block-circulant matrix (least squares, per block) as defining vectors.

    ``w[d]`` is the mean of the block's entries on circulant diagonal d. Where
    the matrix does not fill its last blocks (sizes not multiples of k) only
    the real entries are averaged; a diagonal with no real entry gets 0.
    Returns float64 of shape ``(ceil(rows/k), ceil(cols/k), k)``.
    """
    dense = np.asarray(dense, dtype=np.float64)
    if dense.ndim != 2:
        raise ValueError(f"project takes a 2-D matrix, not shape {dense.shape}")
    rows, cols = dense.shape
    padded = pad_matrix(dense, k)
    mask = pad_matrix(np.ones((rows, cols)), k)
    rb, cb = padded.shape[0] // k, padded.shape[1] // k
    # blocks: (rb, cb, k, k)
    blocks = padded.reshape(rb, k, cb, k).transpose(0, 2, 1, 3)
    mblocks = mask.reshape(rb, k, cb, k).transpose(0, 2, 1, 3)
    diag = circulant_index(np.arange(k)[:, None], np.arange(k)[None, :], k)  # (k, k)
    onehot = (diag[None, :, :] == np.arange(k)[:, None, None]).astype(np.float64)  # (d, k, k)
    sums = np.einsum("ijrc,drc->ijd", blocks * mblocks, onehot)
    counts = np.einsum("ijrc,drc->ijd", mblocks, onehot)
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)


def is_block_circulant(dense: np.ndarray, k: int, atol: float = 0.0) -> bool:
    """True when every k x k block of ``dense`` (sides multiples of k) is circulant."""
    dense = np.asarray(dense)
    if dense.shape[0] % k or dense.shape[1] % k:
        return False
    return bool(np.allclose(expand(project(dense, k)), dense, atol=atol, rtol=0))
