"""Delta-network mode (issue 19): thresholding, the stored references, and the work counters.

A slowly changing input stream makes most of each step's matrix-vector work
redundant. In delta mode (``Config.delta_threshold``, ``delta_threshold_h``)
every matrix product ``M v`` of a layer (the input matrix W with the layer's
input, the recurrent matrix U with h, the reset-before GRU's U_n with r*h)
keeps a **reference** ``v_ref`` (the last propagated value of each element)
and a **memory** ``acc = M v_ref``. Per step, per element::

    delta = v - v_ref  if |v - v_ref| > threshold  else 0
    v_ref = v          where delta != 0
    acc  += M delta    (columns with delta = 0 skipped)

Integer model (the specification; raw q_state integers): the threshold is
``floor(t * 2**q_state.frac)`` (:func:`raw_threshold`; for integers the raw
test equals the float test ``|v - v_ref| > t`` on the quantized values). The
memory is the exact accumulator, ``acc_width`` bits at ``acc_frac`` fraction
bits (q_weight.frac + q_state.frac), without the bias: it always equals
``M v_ref`` exactly, and every element of ``v_ref`` is a q_state value, so it
is bounded as the normal accumulator is and **never saturates**. A gate reads
it as today's projection reads its accumulator: ``narrow(acc + aligned bias,
acc_frac -> q_pre)`` (fused projections: ``narrow(acc_W + acc_U + aligned
(b + c))``). So the delta-mode projection is the normal projection of the
reference, and with threshold 0 (``v_ref = v`` after every step) delta mode
is bit-identical to the normal model. Element-wise updates use the true
states (h, c, and the SRU highway x), never the references. FFT mode keeps
the same definition (the projection of the reference, by the FFT form; the
spectral accumulator can hold ``sum_j S_j X_j`` of the references, updated by
the segments whose delta is not zero).

Thresholds: ``delta_threshold`` for layer 0's input; ``delta_threshold_h``
(default ``delta_threshold``) for every hidden-state vector: each layer's h,
the inputs of layers after the first (the hidden state of the layer below)
and the reset-before GRU's ``r*h`` (a q_state vector U_n multiplies).

Reset (and :meth:`~rnnaccel.numeric.golden.GoldenModel.set_state`) clears the
references and memories to zero.

:class:`WorkStats` counts, per step and sequence, the columns swept, the
columns skipped (zero delta), the block columns skipped (a k-segment of
zero delta over its whole length: a circulant block column, the unit the PE's
rotating register works on) and the effective multiply-accumulates (active
block columns times k times the matrix's padded rows) against the dense
count (``Config.matrices``: padded rows x padded columns; padding columns
never change, so they are skipped in delta mode).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import Config

__all__ = ["propagate", "raw_threshold", "WorkStats", "reference_keys"]


def raw_threshold(cfg: Config, hidden: bool) -> int:
    """The threshold in raw q_state units: of the hidden states (``hidden``) or of layer 0's input."""
    return cfg.delta_threshold_h_raw if hidden else cfg.delta_threshold_raw


def propagate(vec, ref, threshold):
    """``(delta, new_ref)``: ``delta = vec - ref`` where ``|vec - ref| > threshold``, else 0; ``ref`` updated there.

    NumPy arrays of raw integers with an integer threshold (the golden model),
    or floats with a float threshold (the float model).
    """
    diff = vec - ref
    mask = np.abs(diff) > threshold
    return np.where(mask, diff, 0), np.where(mask, vec, ref)


def reference_keys(name: str) -> tuple[str, str]:
    """State keys of matrix ``name``'s reference and memory (``ref_W``, ``acc_W``; ``U``/``Urz``, ``Un``)."""
    return f"ref_{name}", f"acc_{name}"


@dataclass
class WorkStats:
    """Matrix-vector work of a golden model's runs (kept across :meth:`reset`; :meth:`clear` empties it).

    Totals are summed over every sequence and step run; ``per_step`` holds,
    per time step, arrays (one entry per sequence of the batch) summed over
    layers and matrices: ``macs``, ``cols_skipped``, ``block_cols_skipped``.
    ``by_matrix[(layer, name)]`` holds the same totals per matrix.
    """

    cfg: Config
    steps: int = 0
    cols: int = 0
    cols_skipped: int = 0
    block_cols: int = 0
    block_cols_skipped: int = 0
    macs: int = 0
    dense_macs: int = 0
    per_step: list[dict[str, np.ndarray]] = field(default_factory=list)
    by_matrix: dict[tuple[int, str], dict[str, int]] = field(default_factory=dict)

    def __post_init__(self):
        self._shapes = {
            (layer, name): (rows, cols)
            for layer in range(self.cfg.num_layers)
            for name, rows, cols in self.cfg.matrices(layer)
        }

    def clear(self) -> None:
        self.steps = self.cols = self.cols_skipped = self.block_cols = self.block_cols_skipped = 0
        self.macs = self.dense_macs = 0
        self.per_step, self.by_matrix = [], {}

    def begin_step(self, n: int) -> None:
        """A new time step of ``n`` sequences."""
        self.steps += n
        z = np.zeros(n, np.int64)
        self.per_step.append({"macs": z.copy(), "cols_skipped": z.copy(), "block_cols_skipped": z.copy()})

    def record(self, layer: int, name: str, delta: np.ndarray | None, n: int) -> None:
        """Matrix ``name`` of ``layer`` multiplied ``delta`` (N, C) this step; None: every column (normal mode)."""
        rows, cols = self._shapes[(layer, name)]
        k = self.cfg.block_size
        blocks = cols // k
        if delta is None:
            active_cols = np.full(n, cols, np.int64)
            active_blocks = np.full(n, blocks, np.int64)
        else:
            nz = np.zeros((n, cols), bool)
            nz[:, : delta.shape[1]] = np.asarray(delta) != 0
            active_cols = nz.sum(axis=1)
            active_blocks = nz.reshape(n, blocks, k).any(axis=2).sum(axis=1)
        macs = active_blocks * k * rows
        skipped, bskipped = cols - active_cols, blocks - active_blocks
        tot = self.by_matrix.setdefault(
            (layer, name),
            {"cols": 0, "cols_skipped": 0, "block_cols": 0, "block_cols_skipped": 0, "macs": 0, "dense_macs": 0},
        )
        for key, value in (
            ("cols", cols * n),
            ("cols_skipped", int(skipped.sum())),
            ("block_cols", blocks * n),
            ("block_cols_skipped", int(bskipped.sum())),
            ("macs", int(macs.sum())),
            ("dense_macs", rows * cols * n),
        ):
            tot[key] += value
            setattr(self, key, getattr(self, key) + value)
        if self.per_step:
            cur = self.per_step[-1]
            cur["macs"] += macs
            cur["cols_skipped"] += skipped
            cur["block_cols_skipped"] += bskipped

    # ------------------------------------------------------------ summaries
    @property
    def skip_fraction(self) -> float:
        """Share of the matrix columns skipped (zero delta)."""
        return self.cols_skipped / self.cols if self.cols else 0.0

    @property
    def block_skip_fraction(self) -> float:
        """Share of the block columns (k-segments) skipped."""
        return self.block_cols_skipped / self.block_cols if self.block_cols else 0.0

    @property
    def macs_per_step(self) -> float:
        """Effective multiply-accumulates per step and sequence."""
        return self.macs / self.steps if self.steps else 0.0

    @property
    def dense_macs_per_step(self) -> int:
        """Multiply-accumulates of one dense step (every padded matrix entry), all layers."""
        return sum(r * c for r, c in self._shapes.values())

    @property
    def mac_fraction(self) -> float:
        """Effective over dense multiply-accumulates."""
        return self.macs / self.dense_macs if self.dense_macs else 1.0

    def as_dict(self) -> dict:
        """Totals and shares as plain numbers (for a JSON report)."""
        return {
            "steps": self.steps,
            "cols": self.cols,
            "cols_skipped": self.cols_skipped,
            "block_cols": self.block_cols,
            "block_cols_skipped": self.block_cols_skipped,
            "macs": self.macs,
            "dense_macs": self.dense_macs,
            "skip_fraction": self.skip_fraction,
            "block_skip_fraction": self.block_skip_fraction,
            "macs_per_step": self.macs_per_step,
            "dense_macs_per_step": self.dense_macs_per_step,
            "mac_fraction": self.mac_fraction,
            "by_matrix": {f"layer{layer}.{name}": dict(v) for (layer, name), v in sorted(self.by_matrix.items())},
        }
