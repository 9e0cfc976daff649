"""Run sessions (:mod:`rnnaccel.interface.session`) on the accelerator in the Amaranth simulator."""

from __future__ import annotations

import numpy as np

from ..numeric.config import Config
from ..interface.session import CommandExecutor, check_session, execute_async

__all__ = ["run_session_amaranth"]


def run_session_amaranth(
    cfg: Config,
    weights,
    ops: list[tuple],
    *,
    idle: float = 0.0,
    backpressure: float = 0.0,
    seed: int = 0,
    vcd: str | None = None,
    progress=None,
    delta: bool | None = None,
    hardware: Config | None = None,
):
    """Execute ``ops`` on the accelerator of ``cfg.datapath``; returns (outputs, counters).

    ``idle`` / ``backpressure``: probability of a gap on the input stream /
    of ``ready`` low on the output stream each cycle (seeded). ``counters``
    lists, per ``run`` operation, the accelerator's cycle, wait-cycle and step
    counters after it (delta mode: also ``skipped``, the column tiles skipped, and
    ``skipped_macs``, their multiply-accumulates). ``delta``: build the array's
    delta mode (default ``cfg.delta_mode``; True also with thresholds of 0).
    """
    from amaranth.sim import Simulator

    from ..hw.accelerator import make_accelerator
    from .toolchain import require_gateware

    check_session(ops)
    if hardware is None:
        hardware = cfg
    else:
        from ..layout.runtime import model_on_design

        cfg = model_on_design(cfg, hardware)
    require_gateware(hardware)
    dut = make_accelerator(hardware, weights if hardware.weights_in_rom else None, delta=delta)
    keys = ("cycles", "wait_cycles", "steps") + (("skipped", "skipped_macs") if getattr(dut, "delta", False) else ())
    rng = np.random.default_rng(seed)
    H = cfg.hidden_size
    counters: list[dict] = []

    class Bench(CommandExecutor):
        """The session's commands and streams on the simulated accelerator (one testbench context)."""

        def __init__(self, ctx):
            super().__init__(cfg, weights)
            self.ctx = ctx

        async def command(self, op, sel=0, addr=0, data=0):
            ctx = self.ctx
            while not (ctx.get(dut.status) >> 1) & 1:
                await ctx.tick()
            ctx.set(dut.i_cmd.payload, {"op": op, "sel": sel, "addr": addr, "data": data})
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready)
            ctx.set(dut.i_cmd.valid, 0)
            await ctx.tick()

        async def wait_idle(self):
            ctx = self.ctx
            await ctx.tick()
            while not (ctx.get(dut.status) >> 1) & 1:
                await ctx.tick()

        async def stream(self, x):
            ctx = self.ctx
            words = [int(v) for v in x.reshape(-1)]
            got: list[int] = []
            need = x.shape[0] * H
            i = 0
            ctx.set(dut.o_h.ready, 0)
            while len(got) < need:
                # drive input
                if i < len(words) and not (idle and rng.random() < idle):
                    ctx.set(dut.i_x.valid, 1)
                    ctx.set(dut.i_x.payload, words[i])
                else:
                    ctx.set(dut.i_x.valid, 0)
                ready = 0 if (backpressure and rng.random() < backpressure) else 1
                ctx.set(dut.o_h.ready, ready)
                in_fire = ctx.get(dut.i_x.valid) and ctx.get(dut.i_x.ready)
                out_fire = ready and ctx.get(dut.o_h.valid)
                if out_fire:
                    got.append(ctx.get(dut.o_h.payload))
                    if progress is not None:
                        progress(1)
                await ctx.tick()
                if in_fire:
                    i += 1
            ctx.set(dut.i_x.valid, 0)
            ctx.set(dut.o_h.ready, 0)
            await self.wait_idle()
            # nothing lost or duplicated: every input word taken, no output word beyond the run's
            if i != len(words) or ctx.get(dut.o_h.valid):
                raise AssertionError(
                    f"run of {x.shape[0]} steps: {i} of {len(words)} input words taken, "
                    f"extra output word pending: {bool(ctx.get(dut.o_h.valid))}"
                )
            counters.append({k: ctx.get(getattr(dut, k)) for k in keys})
            return np.array(got, dtype=np.int64).reshape(x.shape[0], H)

    outs: list[np.ndarray] = []

    async def bench(ctx):
        ex = Bench(ctx)
        await ex.prepare()
        outs.extend(await execute_async(ops, ex))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return outs, counters
