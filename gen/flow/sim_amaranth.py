"""Run sessions (:mod:`rnnaccel.interface.session`) on the accelerator in the Amaranth simulator."""

from __future__ import annotations

import numpy as np

from ..numeric.config import Config
from ..interface.session import OP, state_commands, weight_commands

__all__ = ["run_session_amaranth"]


def run_session_amaranth(cfg: Config, weights, ops: list[tuple], *, idle: float = 0.0, backpressure: float = 0.0,
                         seed: int = 0, vcd: str | None = None, progress=None):
    """Execute ``ops`` on the accelerator of ``cfg.datapath``; returns (outputs, counters).

    ``idle`` / ``backpressure``: probability of a gap on the input stream /
    of ``ready`` low on the output stream each cycle (seeded). ``counters``
    lists, per ``run`` operation, the accelerator's cycle, wait-cycle and step
    counters after it.
    """
    from amaranth.sim import Simulator

    from ..hw.accelerator import make_accelerator

    dut = make_accelerator(cfg, weights if cfg.weights_in_rom else None)
    rng = np.random.default_rng(seed)
    H = cfg.hidden_size
    outs: list[np.ndarray] = []
    counters: list[dict] = []

    async def send_cmd(ctx, op, sel=0, addr=0, data=0):
        while not (ctx.get(dut.status) >> 1) & 1:
            await ctx.tick()
        ctx.set(dut.i_cmd.payload, {"op": op, "sel": sel, "addr": addr, "data": data})
        ctx.set(dut.i_cmd.valid, 1)
        await ctx.tick().until(dut.i_cmd.ready)
        ctx.set(dut.i_cmd.valid, 0)
        await ctx.tick()

    async def wait_idle(ctx):
        await ctx.tick()
        while not (ctx.get(dut.status) >> 1) & 1:
            await ctx.tick()

    async def bench(ctx):
        if not cfg.weights_in_rom:
            for cmd in weight_commands(cfg, weights):
                await send_cmd(ctx, *cmd)
        await send_cmd(ctx, OP["RESET_STATE"])
        await wait_idle(ctx)
        await send_cmd(ctx, OP["CLEAR_COUNTERS"])
        for op in ops:
            if op[0] == "reset":
                await send_cmd(ctx, OP["RESET_STATE"])
                await wait_idle(ctx)
            elif op[0] == "state":
                await send_cmd(ctx, OP["RESET_STATE"])
                await wait_idle(ctx)
                for cmd in state_commands(cfg, op[1], op[2]):
                    await send_cmd(ctx, *cmd)
            elif op[0] == "run":
                x = np.asarray(op[1], dtype=np.int64)
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
                await wait_idle(ctx)
                # nothing lost or duplicated: every input word taken, no output word beyond the run's
                if i != len(words) or ctx.get(dut.o_h.valid):
                    raise AssertionError(f"run of {x.shape[0]} steps: {i} of {len(words)} input words taken, "
                                         f"extra output word pending: {bool(ctx.get(dut.o_h.valid))}")
                outs.append(np.array(got, dtype=np.int64).reshape(x.shape[0], H))
                counters.append({"cycles": ctx.get(dut.cycles), "wait_cycles": ctx.get(dut.wait_cycles),
                                 "steps": ctx.get(dut.steps)})
            else:
                raise ValueError(f"unknown session operation {op[0]!r}")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return outs, counters
