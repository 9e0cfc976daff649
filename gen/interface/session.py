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

__all__ = [
    "OP",
    "SESSION_OPS",
    "state_commands",
    "param_commands",
    "weight_commands",
    "check_session",
    "execute",
    "execute_async",
    "GoldenExecutor",
    "CommandExecutor",
    "golden_session",
    "sessions_for_batch",
    "save_session",
    "load_session",
]


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


def param_commands(cfg: Config) -> list[tuple[int, int, int, int]]:
    """``SET_PARAM`` commands loading ``cfg``'s layout into a design with run-time dimensions (none without)."""
    if not cfg.runtime_dims:
        return []
    from ..layout.runtime import param_values

    return [(OP["SET_PARAM"], sel, 0, value) for sel, value in enumerate(param_values(cfg).values())]


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


#: Session operations and their argument counts.
SESSION_OPS = {"reset": 0, "state": 2, "run": 1}


def check_session(ops: list[tuple]) -> None:
    """Every operation known and with its arguments; a ValueError naming the first bad one."""
    for i, op in enumerate(ops):
        if not isinstance(op, tuple) or not op or op[0] not in SESSION_OPS:
            raise ValueError(
                f"unknown session operation {op[0] if isinstance(op, tuple) and op else op!r} "
                f"(operation {i}; known: {', '.join(SESSION_OPS)})"
            )
        if len(op) - 1 != SESSION_OPS[op[0]]:
            raise ValueError(
                f"session operation {i} ({op[0]!r}) takes {SESSION_OPS[op[0]]} arguments, not {len(op) - 1}"
            )


def execute(ops: list[tuple], executor) -> list[np.ndarray]:
    """Run a session on an executor: the one place operations are dispatched.

    An executor has ``reset()``, ``state(h, c)`` and ``run(x) -> (T, H)`` raw
    integers (the golden model's :class:`GoldenExecutor`, the board's
    :class:`rnnaccel.boards.driver.LinkClient`); returns one array per ``run``.
    """
    check_session(ops)
    outs = []
    for kind, *args in ops:
        out = getattr(executor, kind)(*args)
        if kind == "run":
            outs.append(out)
    return outs


async def execute_async(ops: list[tuple], executor) -> list[np.ndarray]:
    """:func:`execute` for executors whose operations are coroutines (the simulators' testbenches)."""
    check_session(ops)
    outs = []
    for kind, *args in ops:
        out = await getattr(executor, kind)(*args)
        if kind == "run":
            outs.append(out)
    return outs


class GoldenExecutor:
    """Session operations on the integer golden model."""

    def __init__(self, cfg: Config, weights):
        self.model = IntegerModel(cfg, weights)

    def reset(self) -> None:
        self.model.reset()

    def state(self, h, c) -> None:
        self.model.set_state_raw(h, c)

    def run(self, x) -> np.ndarray:
        return self.model.run_raw(np.asarray(x, dtype=np.int64))


class CommandExecutor:
    """Session operations as accelerator commands, for a simulated accelerator (coroutines).

    A subclass gives ``command(op, sel, addr, data)`` (waits until the
    accelerator is idle, then sends one command), ``wait_idle()`` and
    ``stream(x)`` (feeds the (T, input) raw inputs, collects the (T, H)
    outputs). :meth:`prepare` loads run-time weights, clears the state and the
    counters, as every backend does before a session.
    """

    def __init__(self, cfg: Config, weights):
        self.cfg, self.weights = cfg, weights

    async def prepare(self) -> None:
        for cmd in param_commands(self.cfg):
            await self.command(*cmd)
        if not self.cfg.weights_in_rom:
            for cmd in weight_commands(self.cfg, self.weights):
                await self.command(*cmd)
        await self.reset()
        await self.command(OP["CLEAR_COUNTERS"])

    async def reset(self) -> None:
        await self.command(OP["RESET_STATE"])
        await self.wait_idle()

    async def state(self, h, c) -> None:
        await self.reset()
        for cmd in state_commands(self.cfg, h, c):
            await self.command(*cmd)

    async def run(self, x) -> np.ndarray:
        return await self.stream(np.asarray(x, dtype=np.int64))

    async def command(self, op: int, sel: int = 0, addr: int = 0, data: int = 0) -> None:
        raise NotImplementedError

    async def wait_idle(self) -> None:
        raise NotImplementedError

    async def stream(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def golden_session(cfg: Config, weights, ops: list[tuple]) -> list[np.ndarray]:
    """Run a session on the integer golden model; one (T, H) raw array per ``run``."""
    return execute(ops, GoldenExecutor(cfg, weights))


def sessions_for_batch(x_raw: np.ndarray) -> list[tuple]:
    """A batch (N, T, input) as one session: reset before every sequence."""
    ops: list[tuple] = []
    for seq in x_raw:
        ops += [("reset",), ("run", seq)]
    return ops


def save_session(path, ops: list[tuple]) -> None:
    """Write a session to an .npz file (for a simulator process to replay): each argument an array or None."""
    import json

    check_session(ops)
    arrays, desc = {}, []
    for i, (kind, *args) in enumerate(ops):
        entry = [kind]
        for j, arr in enumerate(args, start=1):
            key = None
            if arr is not None:
                key = f"op{i}_{j}"
                arrays[key] = np.asarray(arr, dtype=np.int64)
            entry.append(key)
        desc.append(entry)
    np.savez(path, __ops__=np.array(json.dumps(desc)), **arrays)


def load_session(path) -> list[tuple]:
    """The session :func:`save_session` wrote."""
    import json

    with np.load(path, allow_pickle=False) as data:
        desc = json.loads(str(data["__ops__"]))
        ops = [(entry[0], *(data[k] if k is not None else None for k in entry[1:])) for entry in desc]
    check_session(ops)
    return ops
