"""cocotb test module driving a generated multi-core design (:class:`rnnaccel.hw.multicore.MultiCore` as
``rnnaccel_top``) in Icarus or Verilator.

Run by :mod:`rnnaccel.flow.backends` through :func:`rnnaccel.flow.rtl.run_cocotb`. ``RNNACCEL_JOB``
names a pickle this package wrote: ``mode`` (``programs`` or ``layers``), ``models`` (each core's
config and weights), ``stack`` (the layer pipeline's whole config) and ``ops`` (a programs session or
an ordinary one). Inputs go in with random idle cycles (``RNNACCEL_IDLE``; in ``programs`` mode the
words of the cores' streams interleave at random), outputs come out under random back-pressure
(``RNNACCEL_BACKPRESSURE``), seeded by ``RNNACCEL_STALL_SEED``. Results and counters go to
``RNNACCEL_RESULT``.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

import cocotb
from cocotb.triggers import RisingEdge

from rnnaccel.interface.multicore import (
    CORE_BITS,
    MultiCommandExecutor,
    execute_programs_async,
    pack_multicore_command,
)
from rnnaccel.interface.session import execute_async
from rnnaccel.flow.cocotb_common import DUTPins


class MultiTB(DUTPins, MultiCommandExecutor):
    """Clock, reset, the tagged command word and the tagged input and output streams."""

    def __init__(self, dut, job: dict, idle: float, backpressure: float, seed: int):
        super().__init__(job["models"], job["stack"])
        self._start(dut, idle, backpressure, seed)
        self.layers = job["mode"] in ("layers", "helpers")  # one stack: outputs tagged with the last core
        self.cfgs = [c for c, _ in self.models]
        self.xs = max(c.q_state.width for c in self.cfgs)
        self.words_out = 0

    async def command(self, core, op, sel=0, addr=0, data=0):
        await self.send_command(pack_multicore_command(self.cfgs, core, op, sel, addr, data))

    async def _drive(self, queues: dict):
        """Every core's words in order, the cores interleaved at random among those ready to take one."""
        dut, mask = self.dut, (1 << self.xs) - 1
        pos = {core: 0 for core in queues}
        while any(pos[c] < len(q) for c, q in queues.items()):
            if self.idle and self.rng.random() < self.idle:
                dut.i_x__valid.value = 0
                await RisingEdge(dut.clk)
                continue
            left = [c for c, q in queues.items() if pos[c] < len(q)]
            rdy = int(dut.x_ready.value)
            ready = [c for c in left if self.layers or (rdy >> c) & 1] or left
            core = self.rng.choice(ready)
            dut.i_x__payload.value = (queues[core][pos[core]] & mask) | core << self.xs
            dut.i_x__valid.value = 1
            await RisingEdge(dut.clk)
            while not int(dut.i_x__ready.value):
                await RisingEdge(dut.clk)
            pos[core] += 1
            dut.i_x__valid.value = 0
        dut.i_x__valid.value = 0

    async def _collect(self, want: dict) -> dict:
        dut = self.dut
        got = {core: [] for core in want}
        while any(len(got[c]) < n for c, n in want.items()):
            ready = 0 if (self.backpressure and self.rng.random() < self.backpressure) else 1
            dut.o_h__ready.value = ready
            await RisingEdge(dut.clk)
            if ready and int(dut.o_h__valid.value):
                word = int(dut.o_h__payload.value)
                core = word >> self.xs & ((1 << CORE_BITS) - 1)
                value = word & ((1 << self.xs) - 1)
                value -= (value >> (self.xs - 1)) << self.xs
                assert core in got and len(got[core]) < want[core], f"unexpected output word from core {core}"
                got[core].append(value)
                self.words_out += 1
                if self.progress_path and self.words_out % self.cfgs[core].hidden_size == 0:
                    Path(self.progress_path).write_text(str(self.words_out // self.cfgs[core].hidden_size))
        dut.o_h__ready.value = 0
        return got

    async def stream(self, xs: dict) -> dict:
        queues = {core: [int(v) for v in np.asarray(x).reshape(-1)] for core, x in xs.items()}
        if self.layers:
            last = len(self.models) - 1
            shapes = {last: (next(iter(xs.values())).shape[0], self.cfgs[last].hidden_size)}
        else:
            shapes = {core: (x.shape[0], self.cfgs[core].hidden_size) for core, x in xs.items()}
        driver = cocotb.start_soon(self._drive(queues))
        got = await self._collect({core: shape[0] * shape[1] for core, shape in shapes.items()})
        await driver
        await self.wait_idle()
        assert not int(self.dut.o_h__valid.value), "an output word beyond the run's steps is pending"
        n = len(self.models)
        steps_bits = int(self.dut.core_steps.value)
        self.counts.append(
            {
                "cycles": int(self.dut.cycles.value),
                "core_steps": [steps_bits >> (32 * i) & 0xFFFFFFFF for i in range(n)],
            }
        )
        return {core: np.array(got[core], dtype=np.int64).reshape(shapes[core]) for core in got}


@cocotb.test()
async def replay_multicore_session(dut):
    """Replay the job's session and record the outputs and counters."""
    job = pickle.loads(Path(os.environ["RNNACCEL_JOB"]).read_bytes())
    tb = MultiTB(
        dut,
        job,
        float(os.environ.get("RNNACCEL_IDLE", "0")),
        float(os.environ.get("RNNACCEL_BACKPRESSURE", "0")),
        int(os.environ.get("RNNACCEL_STALL_SEED", "0")),
    )
    await tb.reset_pin()
    await tb.prepare()
    result = {}
    if job["mode"] in ("layers", "helpers"):
        outs = await execute_async(job["ops"], tb)
        for i, out in enumerate(outs):
            result[f"out{i}"] = out
        result["steps"] = np.array([c["core_steps"][-1] for c in tb.counts], dtype=np.int64)
    else:
        outs = await execute_programs_async(job["ops"], tb, len(tb.models))
        for i, out in enumerate(outs):
            result[f"out{i}_cores"] = np.array(sorted(out), dtype=np.int64)
            for core, y in out.items():
                result[f"out{i}_core{core}"] = y
        result["core_steps"] = np.array([c["core_steps"] for c in tb.counts], dtype=np.int64)
    result["cycles"] = np.array([c["cycles"] for c in tb.counts], dtype=np.int64)
    assert int(dut.status.value) >> 2 & 1 == 0, "the design flagged a command error"
    np.savez(os.environ["RNNACCEL_RESULT"], **result)
