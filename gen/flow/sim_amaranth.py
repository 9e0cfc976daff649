"""Run sessions (:mod:`rnnaccel.interface.session`) on the accelerator in the Amaranth simulator."""

from __future__ import annotations

import numpy as np

from ..numeric.config import Config
from ..interface.session import CommandExecutor, check_session, execute_async

__all__ = ["run_session_amaranth", "step_cycles"]


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
    # a stream that neither takes nor gives a word for this long is stuck (far beyond any step's cycles, a
    # flash-fed one's included): an error instead of a simulation that never ends
    stuck_after = 50 * cfg.ideal_cycles_per_step + 100_000
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
            i = quiet = 0
            ctx.set(dut.o_h.ready, 0)
            while len(got) < need:
                if quiet > stuck_after:
                    raise AssertionError(
                        f"run of {x.shape[0]} steps stuck: no input word taken and no output word given for "
                        f"{quiet} cycles ({i} of {len(words)} input words taken, {len(got)} of {need} output words)"
                    )
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
                quiet = 0 if in_fire or out_fire else quiet + 1
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


def step_cycles(cfg: Config, weights, steps: int, seed: int = 0, on_step=None, weight_timing=None) -> list[int]:
    """Compute cycles of each of ``steps`` seeded random time steps in the Amaranth simulator (cycle for cycle
    the generated design), host stalls not counted: the input stream always valid, the output always ready.

    The array datapath's first step of a sequence is longer than the rest (a step's gate phase overlaps the
    next step's input projection, which the first step cannot), so the last entry is the steady state.
    Designs whose weights are loaded at run time are simulated with their weights unloaded (zeros): the
    schedule does not depend on the data (a delta-mode design's does: it runs here on random inputs).
    ``on_step(n)`` is called after each step. ``weight_timing``: the simulated flash's ``bytes_per_cycle`` /
    ``latency`` for a design with streamed weights (default: the board flash's). Batched steps (``time_steps >
    1``) end together: each step of a batch gets the batch's cycles over its steps (a float when they do not
    divide), and ``steps`` is best a multiple of ``time_steps`` (the last batch holds what is left).
    """
    from amaranth.sim import Simulator

    from ..hw.accelerator import make_accelerator
    from ..interface.commands import Op
    from ..numeric.fixedpoint import quantize
    from .toolchain import require_gateware

    require_gateware(cfg)
    dut = make_accelerator(cfg, weights if cfg.weights_in_rom else None, weight_timing=weight_timing)
    rng = np.random.default_rng(seed)
    words = [int(v) for v in quantize(rng.uniform(-1, 1, size=(steps, cfg.input_size)), cfg.q_state).reshape(-1)]
    per: list[int | float] = []  # each step's cycles (a batch's steps: the batch's over its steps)
    last = [0]  # the counter at the last step's end

    async def bench(ctx):
        ctx.set(dut.i_cmd.payload, {"op": Op.RESET_STATE, "sel": 0, "addr": 0, "data": 0})  # not counted
        ctx.set(dut.i_cmd.valid, 1)
        await ctx.tick()
        ctx.set(dut.i_cmd.valid, 0)
        while ctx.get(dut.phase) != 0:
            await ctx.tick()
        base = ctx.get(dut.cycles)
        ctx.set(dut.o_h.ready, 1)
        i, done = 0, ctx.get(dut.steps)
        while len(per) < steps:
            ctx.set(dut.i_x.valid, int(i < len(words)))
            ctx.set(dut.i_x.payload, words[i] if i < len(words) else 0)
            fire = i < len(words) and ctx.get(dut.i_x.ready)
            await ctx.tick()
            i += int(bool(fire))
            if ctx.get(dut.steps) != done:
                # a batch of n steps (time_steps > 1) ends together: each of its steps gets 1/n of its cycles
                n = ctx.get(dut.steps) - done
                done = ctx.get(dut.steps)
                total = ctx.get(dut.cycles) - base
                each = (total - last[0]) / n
                per.extend([int(each) if each == int(each) else each] * n)
                last[0] = total
                if on_step:
                    on_step(len(per))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return per[:steps]
