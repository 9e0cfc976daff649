"""Host-side view of the accelerator: sessions of operations and their commands.

A *session* is what a user does to a stateful accelerator: a list of
operations executed in order,

* ``("reset",)``: zero the state;
* ``("state", h, c)``: set an initial state (raw integers, shape (layers, H),
  c may be None);
* ``("run", x)``: stream raw q_state inputs of shape (T, input) through it
  and collect (T, H) hidden states.

Every backend (golden, Amaranth simulator, Icarus, Verilator, and later the
board's UART link) executes the same sessions, so their results can be
compared bit for bit. This module turns operations into command words
(:class:`rnnaccel.interface.commands.Op`) and runs sessions on the golden model.
"""

from __future__ import annotations

import numpy as np

from ..numeric.config import Config
from ..numeric.golden import IntegerModel
from ..layout.image import bank_words, bias_words, vector_slots, weight_banks
from .commands import OP

__all__ = ["OP", "state_commands", "weight_commands", "golden_session", "sessions_for_batch"]



def _mask(v: int, width: int) -> int:
    return int(v) & ((1 << width) - 1)


def state_commands(cfg: Config, h: np.ndarray | None, c: np.ndarray | None) -> list[tuple[int, int, int, int]]:
    """(op, sel, addr, data) commands writing an initial state (raw integers, (layers, H))."""
    T, Pc = cfg.tile, cfg.pe_cols
    slots = vector_slots(cfg)
    Hp = cfg.padded(cfg.hidden_size)
    cmds = []
    if h is not None:
        h = np.asarray(h, dtype=np.int64).reshape(cfg.num_layers, cfg.hidden_size)
        for layer in range(cfg.num_layers):
            s = slots[f"h{layer}"]
            for e, v in enumerate(h[layer]):
                seg = e // T
                bank, row, lane = seg % Pc, s.base + seg // Pc, e % T
                cmds.append((OP["WRITE_VEC"], bank * T + lane, row, _mask(v, cfg.q_state.width)))
    if c is not None:
        c = np.asarray(c, dtype=np.int64).reshape(cfg.num_layers, cfg.hidden_size)
        for layer in range(cfg.num_layers):
            for e, v in enumerate(c[layer]):
                cmds.append((OP["WRITE_C"], 0, layer * Hp + e, _mask(v, cfg.q_cell.width)))
    return cmds


def weight_commands(cfg: Config, weights) -> list[tuple[int, int, int, int]]:
    """Commands loading every weight bank and the bias memory (for ``weights_in_rom = False``)."""
    cmds = []
    banks = weight_banks(cfg, weights)
    for p in range(cfg.pe_rows):
        for q in range(cfg.pe_cols):
            for addr, word in enumerate(bank_words(cfg, banks[p][q])):
                cmds.append((OP["WRITE_WEIGHT"], p * cfg.pe_cols + q, addr, word))
    for addr, word in enumerate(bias_words(cfg, weights)):
        cmds.append((OP["WRITE_WEIGHT"], cfg.pe_rows * cfg.pe_cols, addr, word))
    return cmds


def golden_session(cfg: Config, weights, ops: list[tuple]) -> list[np.ndarray]:
    """Run a session on the integer golden model; one (T, H) raw array per ``run``."""
    model = IntegerModel(cfg, weights)
    outs = []
    for op in ops:
        if op[0] == "reset":
            model.reset()
        elif op[0] == "state":
            model.set_state_raw(op[1], op[2])
        elif op[0] == "run":
            outs.append(model.run_raw(np.asarray(op[1], dtype=np.int64)))
        else:
            raise ValueError(f"unknown session operation {op[0]!r}")
    return outs


def sessions_for_batch(x_raw: np.ndarray) -> list[tuple]:
    """A batch (N, T, input) as one session: reset before every sequence."""
    ops: list[tuple] = []
    for seq in x_raw:
        ops += [("reset",), ("run", seq)]
    return ops


def save_session(path, ops: list[tuple]) -> None:
    """Write a session to an .npz file (for a simulator process to replay)."""
    import json

    arrays, desc = {}, []
    for i, op in enumerate(ops):
        if op[0] == "reset":
            desc.append(["reset"])
        elif op[0] == "state":
            entry = ["state", None, None]
            for j, arr in ((1, op[1]), (2, op[2])):
                if arr is not None:
                    arrays[f"op{i}_{j}"] = np.asarray(arr, dtype=np.int64)
                    entry[j] = f"op{i}_{j}"
            desc.append(entry)
        elif op[0] == "run":
            arrays[f"op{i}_1"] = np.asarray(op[1], dtype=np.int64)
            desc.append(["run", f"op{i}_1"])
        else:
            raise ValueError(f"unknown session operation {op[0]!r}")
    np.savez(path, __ops__=np.array(json.dumps(desc)), **arrays)


def load_session(path) -> list[tuple]:
    import json

    with np.load(path, allow_pickle=False) as data:
        desc = json.loads(str(data["__ops__"]))
        ops = []
        for entry in desc:
            if entry[0] == "reset":
                ops.append(("reset",))
            elif entry[0] == "state":
                ops.append(("state", *(data[k] if k is not None else None for k in entry[1:])))
            else:
                ops.append(("run", data[entry[1]]))
    return ops
