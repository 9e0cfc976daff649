"""The accelerator's command interface, without Amaranth: opcodes, the command word, status, phases.

Everything that drives an accelerator (the golden session runner, the
Amaranth and cocotb backends, the host link's engine, the C header and the
manifest) takes these from here; the gateware builds its ``i_cmd`` layout
from :func:`command_fields` (:func:`rnnaccel.hw.sequencer.command_layout`).

A command word is, from bit 0 up: ``op`` (4 bits), ``sel`` (16), ``addr``
(24), ``data`` (the widest memory word a command writes, at least 32 bits).
"""

from __future__ import annotations

import enum

from ..numeric.config import Config

__all__ = ["Op", "OP", "PHASE_CLEAR", "PHASE_STEP_DONE", "STATUS_BITS", "command_fields", "pack_command"]


class Op(enum.IntEnum):
    """Command opcodes (the ``op`` field)."""

    NOP = 0
    RESET_STATE = 1  #: zero every h, c, r*h and x_{t-1} word
    WRITE_VEC = 2  #: vector store: sel = bank * T + lane, addr = row, data = q_state word
    WRITE_C = 3  #: cell state: addr = layer * padded(H) + element, data = q_cell word
    WRITE_WEIGHT = 4  #: sel = weight bank (p * pe_cols + q; pe_rows*pe_cols = bias), addr = word, data = packed word
    CLEAR_COUNTERS = 5  #: zero the cycle, wait and step counters and the error flag
    SET_PARAM = 6  #: run-time dimensions only: sel = parameter (rnnaccel.layout.runtime.param_names), data = value


#: The opcodes by name (for code that speaks in strings, such as session files and the manifest).
OP = {op.name: int(op) for op in Op}

#: ``phase`` while the state is being cleared, and in the last cycle of a step.
PHASE_CLEAR = 254
PHASE_STEP_DONE = 255

#: Bits of ``status``.
STATUS_BITS = {"busy": 0, "idle": 1, "error": 2}


def command_fields(cfg: Config) -> dict[str, int]:
    """The command word's fields and their widths, from bit 0 up."""
    from ..layout.image import bank_word_bits, bias_word_bits

    return {"op": 4, "sel": 16, "addr": 24, "data": max(32, bank_word_bits(cfg), bias_word_bits(cfg))}


def pack_command(op: int, sel: int = 0, addr: int = 0, data: int = 0) -> int:
    """The command word as one integer (what a simulator drives on ``i_cmd__payload``)."""
    for name, value, bits in (("op", op, 4), ("sel", sel, 16), ("addr", addr, 24)):
        if not 0 <= int(value) < 1 << bits:
            raise ValueError(f"command field {name} = {value!r} does not fit {bits} bits")
    if int(data) < 0:
        raise ValueError(f"command data must be the unsigned word, not {data!r}")
    return int(op) | int(sel) << 4 | int(addr) << 20 | int(data) << 44
