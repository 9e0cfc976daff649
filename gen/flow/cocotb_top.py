"""cocotb test module driving the generated accelerator Verilog (``rnnaccel_top``).

Run by :func:`rnnaccel.flow.backends.run_backend` (and the end-to-end tests) through
:func:`rnnaccel.flow.rtl.run_cocotb`. It replays a session file
(:func:`rnnaccel.interface.session.save_session`) named by ``RNNACCEL_SESSION``, with
idle cycles on the input stream and back-pressure on the output stream
(probabilities ``RNNACCEL_IDLE`` and ``RNNACCEL_BACKPRESSURE``, seeded by
``RNNACCEL_STALL_SEED``), and writes the hidden states and counters to
``RNNACCEL_RESULT``; finished steps are counted in ``RNNACCEL_PROGRESS``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

import cocotb
from cocotb.triggers import RisingEdge

from rnnaccel.numeric.config import Config
from rnnaccel.interface.session import CommandExecutor, execute_async, load_session
from rnnaccel.interface.commands import pack_command
from rnnaccel.flow.cocotb_common import DUTPins


class TB(DUTPins, CommandExecutor):
    """Clock, reset, and the command / input / output stream models."""

    def __init__(self, dut, cfg: Config, weights, idle: float, backpressure: float, seed: int):
        super().__init__(cfg, weights)
        self._start(dut, idle, backpressure, seed)
        self.steps_done = 0

    async def command(self, op: int, sel: int = 0, addr: int = 0, data: int = 0):
        await self.send_command(pack_command(op, sel, addr, data))

    async def _drive(self, words: list[int]):
        dut = self.dut
        width = self.cfg.q_state.width
        for w in words:
            while self.idle and self.rng.random() < self.idle:
                dut.i_x__valid.value = 0
                await RisingEdge(dut.clk)
            dut.i_x__payload.value = w & ((1 << width) - 1)
            dut.i_x__valid.value = 1
            await RisingEdge(dut.clk)
            while not int(dut.i_x__ready.value):
                await RisingEdge(dut.clk)
        dut.i_x__valid.value = 0

    async def _collect(self, n: int) -> list[int]:
        dut = self.dut
        got: list[int] = []
        H = self.cfg.hidden_size
        while len(got) < n:
            ready = 0 if (self.backpressure and self.rng.random() < self.backpressure) else 1
            dut.o_h__ready.value = ready
            await RisingEdge(dut.clk)
            if ready and int(dut.o_h__valid.value):
                got.append(dut.o_h__payload.value.to_signed())
                if len(got) % H == 0:
                    self.steps_done += 1
                    if self.progress_path and (self.steps_done % 4 == 0 or len(got) == n):
                        Path(self.progress_path).write_text(str(self.steps_done))
        dut.o_h__ready.value = 0
        return got

    async def stream(self, x: np.ndarray) -> np.ndarray:
        words = [int(v) for v in np.asarray(x).reshape(-1)]
        driver = cocotb.start_soon(self._drive(words))
        got = await self._collect(x.shape[0] * self.cfg.hidden_size)
        await driver
        await self.wait_idle()
        assert not int(self.dut.o_h__valid.value), "an output word beyond the run's steps is pending"
        return np.array(got, dtype=np.int64).reshape(x.shape[0], self.cfg.hidden_size)

    async def run(self, x) -> np.ndarray:
        """The session's ``run``, then the counters after it (kept in :attr:`counts`)."""
        out = await super().run(x)
        self.counts.append(self.counters())
        return out

    def counters(self) -> dict:
        keys = ("cycles", "wait_cycles", "steps") + (("skipped", "skipped_macs") if self.cfg.delta_mode else ())
        return {k: int(getattr(self.dut, k).value) for k in keys}


@cocotb.test()
async def replay_session(dut):
    """Replay the session file and record hidden states and counters."""
    cfg = Config.load(os.environ["RNNACCEL_CONFIG"])
    ops = load_session(os.environ["RNNACCEL_SESSION"])
    weights = None
    if not cfg.weights_in_rom:
        with np.load(os.environ["RNNACCEL_WEIGHTS"]) as data:
            weights = {k: data[k] for k in data.files}
    tb = TB(
        dut,
        cfg,
        weights,
        float(os.environ.get("RNNACCEL_IDLE", "0")),
        float(os.environ.get("RNNACCEL_BACKPRESSURE", "0")),
        int(os.environ.get("RNNACCEL_STALL_SEED", "0")),
    )
    await tb.reset_pin()
    await tb.prepare()
    outs = await execute_async(ops, tb)
    counters = tb.counts
    assert int(dut.status.value) >> 2 & 1 == 0, "the accelerator flagged a command error"
    result = {f"out{i}": o for i, o in enumerate(outs)}
    for key in counters[0] if counters else ():
        result[key] = np.array([c[key] for c in counters], dtype=np.int64)
    np.savez(os.environ["RNNACCEL_RESULT"], **result)
