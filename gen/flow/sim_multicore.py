"""Multi-core sessions (:mod:`rnnaccel.interface.multicore`) on :class:`rnnaccel.hw.multicore.MultiCore`
in the Amaranth simulator, with random idle and back-pressure on every stream.

:func:`run_programs_amaranth` runs a programs session (one model per core),
:func:`run_layers_amaranth` an ordinary session on a stack pipelined over
``cfg.cores`` cores. Both return ``(outputs, info)``: ``info["runs"]`` lists,
per ``run`` operation, the cycle (counted from the start of the operation) at
which each output word of each core arrived (``{core: [cycle, ...]}``), the
wall cycles of the operation and the design's ``cycles`` and ``core_steps``
after it (what :mod:`scripts/bench_multicore.py` reads).
"""

from __future__ import annotations

import numpy as np

from ..numeric.config import Config
from ..interface.multicore import MultiCommandExecutor, check_programs_session, execute_programs_async
from ..interface.session import check_session, execute_async

__all__ = ["run_programs_amaranth", "run_layers_amaranth", "simulate_multicore"]


def run_programs_amaranth(models: list[tuple[Config, dict]], ops: list[tuple], **kw):
    """A programs session on N independent cores (``models[i]`` on core i)."""
    check_programs_session(ops, len(models))
    from ..hw.multicore import MultiCore

    return simulate_multicore(lambda: MultiCore(models, "programs", link_depth=kw.pop("link_depth", None)), ops, **kw)


def run_layers_amaranth(cfg: Config, weights, ops: list[tuple], *, link_depth: int | None = None, **kw):
    """An ordinary session (reset, state, run) on the stack ``cfg`` over ``cfg.cores`` cores: pipelined
    (``core_mode = 'layers'``) or sharing every layer's rows (``'helpers'``)."""
    check_session(ops)
    from ..hw.multicore import make_multicore

    stalls = kw.get("link_stall", 0.0) > 0 and cfg.core_mode == "layers"
    return simulate_multicore(
        lambda: make_multicore(cfg, weights, link_depth=link_depth, link_stalls=stalls),
        ops,
        stack=cfg,
        **kw,
    )


def simulate_multicore(
    build,
    ops: list[tuple],
    *,
    stack: Config | None = None,
    idle: float = 0.0,
    backpressure: float = 0.0,
    link_stall: float = 0.0,
    seed: int = 0,
    vcd: str | None = None,
):
    """Run ``ops`` on the MultiCore ``build()`` returns (``stack``: a layer-pipeline session of that stack).

    ``idle``: probability that the host leaves a cycle without an input word (between words);
    ``backpressure``: of ``o_h.ready`` low in a cycle; ``link_stall``: of each side of each link
    between pipeline cores holding for a cycle. Seeded by ``seed``.
    """
    from amaranth.sim import Simulator

    from .toolchain import require_gateware

    dut = build()
    models = dut.models
    for cfg, _ in models:
        require_gateware(cfg, multicore=True)
    n = dut.n_cores
    rng = np.random.default_rng(seed)
    runs: list[dict] = []
    layers = dut.mode in ("layers", "helpers")  # one stack: inputs to the design, outputs tagged N-1
    n_stall = 2 * (n - 1) if dut.mode == "layers" and link_stall > 0 and n > 1 else 0

    class Bench(MultiCommandExecutor):
        def __init__(self, ctx):
            super().__init__(models, stack)
            self.ctx = ctx

        async def tick(self):
            if n_stall:
                bits = sum(1 << b for b in range(n_stall) if rng.random() < link_stall)
                self.ctx.set(dut.link_stall, bits)
            await self.ctx.tick()

        async def command(self, core, op, sel=0, addr=0, data=0):
            ctx = self.ctx
            while not (ctx.get(dut.status) >> 1) & 1:
                await self.tick()
            ctx.set(dut.i_cmd.payload, {"core": core, "op": op, "sel": sel, "addr": addr, "data": data})
            ctx.set(dut.i_cmd.valid, 1)
            while not ctx.get(dut.i_cmd.ready):
                await self.tick()
            await self.tick()
            ctx.set(dut.i_cmd.valid, 0)

        async def wait_idle(self):
            ctx = self.ctx
            await self.tick()
            while not (ctx.get(dut.status) >> 1) & 1:
                await self.tick()

        async def stream(self, xs):
            ctx = self.ctx
            queues = {core: [int(v) for v in x.reshape(-1)] for core, x in xs.items()}
            pos = {core: 0 for core in xs}
            if layers:
                T = next(iter(xs.values())).shape[0]
                want = {n - 1: T * models[-1][0].hidden_size}
                shapes = {n - 1: (T, models[-1][0].hidden_size)}
            else:
                want = {core: x.shape[0] * models[core][0].hidden_size for core, x in xs.items()}
                shapes = {core: (x.shape[0], models[core][0].hidden_size) for core, x in xs.items()}
            got = {core: [] for core in want}
            when = {core: [] for core in want}
            cur = None  # the core whose word is on i_x (held until taken)
            cycle = 0
            ctx.set(dut.o_h.ready, 0)
            while any(len(got[c]) < want[c] for c in want):
                if cur is None and not (idle and rng.random() < idle):
                    left = [c for c in queues if pos[c] < len(queues[c])]
                    rdy = ctx.get(dut.x_ready)
                    ready = [c for c in left if layers or (rdy >> c) & 1]
                    if ready:
                        cur = ready[int(rng.integers(len(ready)))]
                if cur is not None:
                    ctx.set(dut.i_x.payload, {"core": cur, "data": queues[cur][pos[cur]]})
                    ctx.set(dut.i_x.valid, 1)
                else:
                    ctx.set(dut.i_x.valid, 0)
                ready_out = 0 if (backpressure and rng.random() < backpressure) else 1
                ctx.set(dut.o_h.ready, ready_out)
                in_fire = cur is not None and ctx.get(dut.i_x.ready)
                if ready_out and ctx.get(dut.o_h.valid):
                    word = ctx.get(dut.o_h.payload)
                    core = int(word["core"]) if isinstance(word, dict) else int(word.core)
                    value = int(word["data"]) if isinstance(word, dict) else int(word.data)
                    if core not in got or len(got[core]) >= want[core]:
                        raise AssertionError(f"unexpected output word from core {core}")
                    got[core].append(value)
                    when[core].append(cycle)
                await self.tick()
                cycle += 1
                if in_fire:
                    pos[cur] += 1
                    cur = None
            ctx.set(dut.i_x.valid, 0)
            ctx.set(dut.o_h.ready, 0)
            await self.wait_idle()
            if any(pos[c] != len(queues[c]) for c in queues) or ctx.get(dut.o_h.valid):
                raise AssertionError(
                    f"input words taken {pos} of {[len(q) for q in queues.values()]}, "
                    f"extra output pending: {bool(ctx.get(dut.o_h.valid))}"
                )
            runs.append(
                {
                    "when": when,
                    "wall": cycle,
                    "cycles": ctx.get(dut.cycles),
                    "core_steps": [int(ctx.get(dut.core_steps[i])) for i in range(n)],
                    "status": ctx.get(dut.status),
                    # helpers: cycles with some core in its exchange (GATHER) phase, since CLEAR_COUNTERS
                    **({"exchange_cycles": ctx.get(dut.exchange_cycles)} if dut.mode == "helpers" else {}),
                }
            )
            return {core: np.array(got[core], dtype=np.int64).reshape(shapes[core]) for core in got}

    outs: list = []

    async def bench(ctx):
        ex = Bench(ctx)
        await ex.prepare()
        if stack is not None:
            outs.extend(await execute_async(ops, ex))
        else:
            outs.extend(await execute_programs_async(ops, ex, n))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return outs, {"runs": runs}
