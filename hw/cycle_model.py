"""Cycles per time step computed from the schedule, without simulating (issue 18's analytic cycle model).

:func:`cycles_per_step` follows a design's sequencer phase by phase with the latencies its blocks expose
(:attr:`~rnnaccel.hw.pe.ProcessingElement.LATENCY`, :attr:`~rnnaccel.hw.datapath.BiasNarrow.LATENCY`,
:func:`~rnnaccel.hw.gates.gate_latency`, ...): the counted cycles of a steady-state step (the accelerator's
``cycles`` counter: busy, not waiting on a stream) with the input always there and the output always taken.
It returns None for a design it does not model yet; :data:`MODELLED` says which.

Modelled: the **serial datapath** (direct circulant mode, one core, any cell it takes). Per step: the entry
state of each phase (one cycle), ``load`` (``input_size``), each layer's mac phase (``FILL``: the first
block's ``k / pack`` weight words; ``RUN``: ``G * (k / lanes) * n_j * k`` issue cycles per tile row, a row's
first pass held while the lanes are two rows ahead of the gate phase; ``DRAIN``: the last pass through the
lanes, the serializer and the bias add into the scratch memory, the row's ``G * k`` gate reads and the gate
unit), ``wait_out`` (one), each layer's ``copy`` (``H + 1``) and ``STEP_DONE`` (one).

Not modelled yet: the array datapath (its overlapped schedule: the prefetched input projection, chained
plans, gate phases beside plans), the FFT mode, multi-core designs and delta mode (data-dependent).
"""

from __future__ import annotations

from ..numeric.config import Config
from ..layout.image import bank_packing, serial_col_blocks
from .datapath import BiasNarrow
from .gates import gate_latency
from .pe import ProcessingElement

__all__ = ["cycles_per_step", "MODELLED", "modelled"]

#: What :func:`cycles_per_step` covers (the rest returns None).
MODELLED = "serial datapath, direct circulant mode, one core"


def modelled(cfg: Config) -> bool:
    """``cfg`` is a design :func:`cycles_per_step` models."""
    return (
        cfg.datapath == "serial"
        and not cfg.fft_mode
        and cfg.cores == 1
        and not cfg.runtime_dims
        and not cfg.delta_mode
        and cfg.row_slices == 1
    )


def cycles_per_step(cfg: Config) -> int | None:
    """Counted cycles of one steady-state time step of ``cfg``'s design (None when not :func:`modelled`)."""
    if not modelled(cfg):
        return None
    return _serial(cfg)


def _serial_mac(cfg: Config, layer: int) -> int:
    """Cycles of a serial mac phase's RUN and DRAIN states: row by row, the issue (held while the lanes are
    two tile rows ahead of the gate reads), the last pass's sums into scratch, the gate reads, the gate unit."""
    k, lanes = cfg.block_size, cfg.lanes
    groups = k // lanes
    gates = len(cfg.layer_gates(layer))
    rows = cfg.padded(cfg.hidden_size) // k
    passes = gates * groups * serial_col_blocks(cfg, layer) * k  # issue cycles of one tile row
    # from a pass's last issue to its last scratch write: the vector read (1), the lanes, the serializer's
    # lanes items after its load, the bias add and narrowing
    to_scratch = 1 + ProcessingElement.LATENCY + lanes + BiasNarrow.LATENCY
    reads = gates * k
    issue_end: list[int] = []
    reads_end: list[int] = []
    t = 0  # the first issue cycle of row 0
    for r in range(rows):
        if r >= 2:
            t = max(t, reads_end[r - 2] + 1)  # lead >= 2: wait for the gate reads of row r - 2
        last = t + passes - 1
        issue_end.append(last)
        written = last + to_scratch + 1  # the write count shows the row's last word
        start = written if r == 0 else max(written, reads_end[r - 1] + 1)
        reads_end.append(start + reads)  # reads run from start + 1
        t = last + 1
    done = reads_end[-1] + 1 + gate_latency(cfg, "update")
    return done + 1  # RUN from cycle 0 to the cycle DRAIN sees done


def _serial(cfg: Config) -> int:
    k = cfg.block_size
    fill = k // bank_packing(cfg)
    total = 1 + cfg.input_size  # load
    for layer in range(cfg.num_layers):
        total += 1 + fill + _serial_mac(cfg, layer)  # entry, FILL, RUN + DRAIN
        total += 1 + cfg.hidden_size + 1  # copy
    total += 2  # wait_out (entry and one cycle)
    total += 1  # STEP_DONE
    return total
