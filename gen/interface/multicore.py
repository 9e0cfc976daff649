"""Multi-core sessions (issue 14): what a host and :class:`rnnaccel.hw.multicore.MultiCore` agree on.

Three modes (``Config.core_mode``):

* ``programs`` (multi-programming): N independent cores, core i holding its
  own model ``models[i] = (cfg_i, weights_i)``. A *programs session* is a
  list of operations, each naming its core:

  - ``("reset", core)``: zero that core's state;
  - ``("state", core, h, c)``: that core's initial state (raw, (layers, H));
  - ``("run", {core: x, ...})``: stream raw q_state inputs (T_i, input_i) to
    several cores at once; returns ``{core: (T_i, H_i)}``.

* ``layers`` (layer pipeline): one stack of L layers over N cores, core i
  running the contiguous layers ``cfg.core_layer_groups()[i]``
  (:func:`layer_models` gives each core's single-core config and weights).
  Sessions are the ordinary ones (:mod:`.session`: reset, state, run) on the
  whole stack; the stack's golden model is the reference.

* ``helpers`` (helper cores): one stack, every core computing a slice of
  every layer's rows (:func:`helper_models`: the whole weights and
  ``cfg.helper_config(i)`` each). Sessions are the ordinary ones, as in
  ``layers``; the initial state goes to every core
  (:func:`layer_state_commands` broadcasts it: each core holds all of h and c).

The command word is the single core's (:mod:`.commands`) with a ``core``
field of :data:`CORE_BITS` bits above it; :data:`BROADCAST` sends a command
to every core. Input and output words carry the same ``core`` field beside
the data (the output's names the core that produced it; in ``layers`` mode
inputs go to the first core whatever the field, outputs come from the last).
"""

from __future__ import annotations

import numpy as np

from ..numeric.config import Config
from ..numeric.golden import IntegerModel
from .commands import OP, command_fields, pack_command
from .session import GoldenExecutor, execute, state_commands, weight_commands

__all__ = [
    "CORE_BITS",
    "BROADCAST",
    "layer_models",
    "helper_models",
    "stack_models",
    "core_models",
    "check_programs_session",
    "execute_programs",
    "execute_programs_async",
    "ProgramsGolden",
    "layers_golden",
    "programs_golden",
    "layer_state_commands",
    "multicore_command_fields",
    "pack_multicore_command",
    "MultiCommandExecutor",
]

#: Width of the ``core`` field of commands and stream words.
CORE_BITS = 8
#: ``core`` value addressing every core at once (commands only).
BROADCAST = (1 << CORE_BITS) - 1


def _layer_weights(weights, group: range) -> dict:
    """The arrays of the layers in ``group``, renumbered from 0."""
    out = {}
    for key, arr in weights.items():
        head, _, rest = key.partition(".")
        layer = int(head[len("layer") :])
        if layer in group:
            out[f"layer{layer - group.start}.{rest}"] = arr
    return out


def layer_models(cfg: Config, weights) -> list[tuple[Config, dict]]:
    """Each core's (single-core config, weights) of a ``layers`` stack: its layer group as a stack of its own."""
    if cfg.core_mode != "layers":
        raise ValueError(f"layer_models needs core_mode 'layers', not {cfg.core_mode!r}")
    groups = cfg.core_layer_groups()
    return [(cfg.core_config(i), None if weights is None else _layer_weights(weights, g)) for i, g in enumerate(groups)]


def helper_models(cfg: Config, weights) -> list[tuple[Config, dict]]:
    """Each core's (single-core config, weights) of a ``helpers`` design: row slice i of every layer
    (:meth:`Config.helper_config`), the whole weights (the layout takes the core's rows)."""
    if cfg.core_mode != "helpers":
        raise ValueError(f"helper_models needs core_mode 'helpers', not {cfg.core_mode!r}")
    return [(cfg.helper_config(i), weights) for i in range(cfg.cores)]


def stack_models(cfg: Config, weights) -> list[tuple[Config, dict]]:
    """The cores of one stack over several cores: :func:`layer_models` (``layers``) or :func:`helper_models`
    (``helpers``)."""
    if cfg.core_mode == "helpers":
        return helper_models(cfg, weights)
    return layer_models(cfg, weights)


def core_models(models: list[tuple[Config, dict]]) -> list[tuple[Config, dict]]:
    """``programs`` cores: each model as a one-core config (``cores`` and ``core_mode`` at their defaults)."""
    if not 1 <= len(models) <= BROADCAST:
        raise ValueError(f"a multi-core design takes 1 to {BROADCAST} models, not {len(models)}")
    return [(c.replace(cores=1, core_mode=Config.core_mode), w) for c, w in models]


def check_programs_session(ops: list[tuple], n_cores: int) -> None:
    """Every operation known, with its arguments and an existing core; a ValueError naming the first bad one."""
    arity = {"reset": 1, "state": 3, "run": 1}
    for i, op in enumerate(ops):
        if not isinstance(op, tuple) or not op or op[0] not in arity:
            raise ValueError(f"unknown programs-session operation {op!r} (operation {i}; known: {', '.join(arity)})")
        if len(op) - 1 != arity[op[0]]:
            raise ValueError(
                f"programs-session operation {i} ({op[0]!r}) takes {arity[op[0]]} arguments, not {len(op) - 1}"
            )
        cores = list(op[1]) if op[0] == "run" else [op[1]]
        if op[0] == "run" and (not isinstance(op[1], dict) or not op[1]):
            raise ValueError(f"programs-session operation {i}: run takes a non-empty dict core -> inputs")
        for core in cores:
            if not (isinstance(core, (int, np.integer)) and 0 <= core < n_cores):
                raise ValueError(
                    f"programs-session operation {i} ({op[0]!r}) names core {core!r}: "
                    f"the design has cores 0..{n_cores - 1}"
                )


_PROGRAM_METHODS = {"reset": "reset_core", "state": "state_core", "run": "run_cores"}


def execute_programs(ops: list[tuple], executor, n_cores: int) -> list[dict]:
    """Run a programs session; one ``{core: (T, H)}`` per ``run``."""
    check_programs_session(ops, n_cores)
    outs = []
    for kind, *args in ops:
        out = getattr(executor, _PROGRAM_METHODS[kind])(*args)
        if kind == "run":
            outs.append(out)
    return outs


async def execute_programs_async(ops: list[tuple], executor, n_cores: int) -> list[dict]:
    """:func:`execute_programs` for executors whose operations are coroutines."""
    check_programs_session(ops, n_cores)
    outs = []
    for kind, *args in ops:
        out = await getattr(executor, _PROGRAM_METHODS[kind])(*args)
        if kind == "run":
            outs.append(out)
    return outs


class ProgramsGolden:
    """A programs session on one integer golden model per core."""

    def __init__(self, models: list[tuple[Config, dict]]):
        self.models = [IntegerModel(c, w) for c, w in core_models(models)]

    def reset_core(self, core: int) -> None:
        self.models[core].reset()

    def state_core(self, core: int, h, c) -> None:
        self.models[core].set_state_raw(h, c)

    def run_cores(self, xs: dict) -> dict:
        return {core: self.models[core].run_raw(np.asarray(x, dtype=np.int64)) for core, x in xs.items()}


def programs_golden(models: list[tuple[Config, dict]], ops: list[tuple]) -> list[dict]:
    """The golden outputs of a programs session."""
    return execute_programs(ops, ProgramsGolden(models), len(models))


def layers_golden(cfg: Config, weights, ops: list[tuple]) -> list[np.ndarray]:
    """The golden outputs of a layer-pipeline session: the whole stack's ordinary golden model."""
    return execute(ops, GoldenExecutor(cfg, weights))


def layer_state_commands(cfg: Config, h, c) -> list[tuple[int, int, int, int, int]]:
    """(core, op, sel, addr, data) commands writing a stack's initial state into the cores of its layers.

    ``helpers``: every core holds the whole state, in the same layout: one set of commands to
    :data:`BROADCAST`. ``layers``: each core gets :func:`rnnaccel.interface.session.state_commands` of its
    layer group, in its own layout. A window-2 QRNN reads x_{t-1}: for a core after the first that is the
    initial h of the layer before its group, which lives in the core's input store, which no command
    writes; such a state (a nonzero h at a layer that ends a core's group) is refused with a ValueError.
    """
    if cfg.core_mode == "helpers":
        return [(BROADCAST, *cmd) for cmd in state_commands(cfg.helper_config(0), h, c)]
    groups = cfg.core_layer_groups()
    h = None if h is None else np.asarray(h, dtype=np.int64).reshape(cfg.num_layers, cfg.hidden_size)
    c = None if c is None else np.asarray(c, dtype=np.int64).reshape(cfg.num_layers, cfg.hidden_size)
    if cfg.cell == "qrnn" and cfg.qrnn_window == 2 and h is not None:
        for g in groups[1:]:
            if np.any(h[g.start - 1]):
                raise ValueError(
                    f"window-2 QRNN layer pipeline: layer {g.start - 1}'s initial h is the next "
                    f"core's x_(t-1), which no command writes (give it as zeros)"
                )
    cmds = []
    for i, g in enumerate(groups):
        sub = cfg.core_config(i)
        hs = None if h is None else h[g.start : g.stop]
        cs = None if c is None else c[g.start : g.stop]
        cmds += [(i, *cmd) for cmd in state_commands(sub, hs, cs)]
    return cmds


def multicore_command_fields(cfgs: list[Config]) -> dict[str, int]:
    """The MultiCore command word's fields and widths from bit 0 up: the single core's (``data`` as wide
    as the widest core's), then ``core`` (:data:`CORE_BITS`)."""
    fields = [command_fields(c) for c in cfgs]
    widths = {name: max(f[name] for f in fields) for name in fields[0]}
    return {**widths, "core": CORE_BITS}


def pack_multicore_command(cfgs: list[Config], core: int, op: int, sel: int = 0, addr: int = 0, data: int = 0) -> int:
    """A MultiCore command word as one integer (what a simulator drives on ``i_cmd__payload``)."""
    if not 0 <= int(core) <= BROADCAST:
        raise ValueError(f"command field core = {core!r} does not fit {CORE_BITS} bits")
    fields = multicore_command_fields(cfgs)
    if int(data) >= 1 << fields["data"]:
        raise ValueError(f"command data {data:#x} does not fit {fields['data']} bits")
    below = sum(bits for name, bits in fields.items() if name != "core")
    return pack_command(op, sel, addr, data) | int(core) << below


class MultiCommandExecutor:
    """Session operations as MultiCore commands, for a simulated MultiCore (coroutines).

    A subclass gives ``command(core, op, sel, addr, data)`` (waits until the design is idle, sends one
    command; ``core`` may be :data:`BROADCAST`), ``wait_idle()`` and ``stream(xs)`` (feeds
    ``{core: (T, input)}`` raw inputs at once, returns ``{core: (T, H)}``). ``models`` are the cores'
    (config, weights). Programs sessions call ``reset_core`` / ``state_core`` / ``run_cores``
    (:func:`execute_programs_async`), layer-pipeline sessions ``reset`` / ``state`` / ``run``
    (:func:`rnnaccel.interface.session.execute_async`) with ``stack`` the stack's config.
    """

    def __init__(self, models: list[tuple[Config, dict]], stack: Config | None = None):
        self.models, self.stack = models, stack

    async def prepare(self) -> None:
        for i, (cfg, w) in enumerate(self.models):
            if not cfg.weights_in_rom:
                for cmd in weight_commands(cfg, w):
                    await self.command(i, *cmd)
        await self.command(BROADCAST, OP["RESET_STATE"])
        await self.wait_idle()
        await self.command(BROADCAST, OP["CLEAR_COUNTERS"])

    # programs sessions
    async def reset_core(self, core: int) -> None:
        await self.command(core, OP["RESET_STATE"])
        await self.wait_idle()

    async def state_core(self, core: int, h, c) -> None:
        await self.reset_core(core)
        for cmd in state_commands(self.models[core][0], h, c):
            await self.command(core, *cmd)

    async def run_cores(self, xs: dict) -> dict:
        return await self.stream({core: np.asarray(x, dtype=np.int64) for core, x in xs.items()})

    # layer-pipeline sessions
    async def reset(self) -> None:
        await self.command(BROADCAST, OP["RESET_STATE"])
        await self.wait_idle()

    async def state(self, h, c) -> None:
        cmds = layer_state_commands(self.stack, h, c)
        await self.reset()
        for cmd in cmds:
            await self.command(*cmd)

    async def run(self, x) -> np.ndarray:
        return (await self.stream({0: np.asarray(x, dtype=np.int64)}))[len(self.models) - 1]

    async def command(self, core: int, op: int, sel: int = 0, addr: int = 0, data: int = 0) -> None:
        raise NotImplementedError

    async def wait_idle(self) -> None:
        raise NotImplementedError

    async def stream(self, xs: dict) -> dict:
        raise NotImplementedError
