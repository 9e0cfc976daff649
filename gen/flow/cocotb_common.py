"""What the cocotb testbenches of one core (:mod:`.cocotb_top`) and of a MultiCore (:mod:`.cocotb_multicore`)
share: the clock, the reset pin, the idle status bit and the command handshake (no cocotb test here)."""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

__all__ = ["DUTPins"]


class DUTPins:
    """Mixin over a design with ``clk``, ``rst``, ``status`` (bit 1: idle) and the streams ``i_cmd``, ``i_x``,
    ``o_h``: starts the clock, holds the streams quiet, pulses reset, waits for idle, sends a command word."""

    def _start(self, dut, idle: float, backpressure: float, seed: int) -> None:
        self.dut = dut
        self.idle, self.backpressure = idle, backpressure
        self.rng = random.Random(seed)
        self.progress_path = os.environ.get("RNNACCEL_PROGRESS")
        self.counts: list[dict] = []
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.i_x__valid.value = 0
        dut.i_cmd__valid.value = 0
        dut.o_h__ready.value = 0

    async def reset_pin(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def idle_now(self) -> bool:
        return bool((int(self.dut.status.value) >> 1) & 1)

    async def wait_idle(self):
        await RisingEdge(self.dut.clk)
        while not self.idle_now():
            await RisingEdge(self.dut.clk)

    async def send_command(self, word: int):
        """Wait until idle, then hand ``word`` over on ``i_cmd`` (valid until taken)."""
        while not self.idle_now():
            await RisingEdge(self.dut.clk)
        self.dut.i_cmd__payload.value = word
        self.dut.i_cmd__valid.value = 1
        await RisingEdge(self.dut.clk)
        while not int(self.dut.i_cmd__ready.value):
            await RisingEdge(self.dut.clk)
        self.dut.i_cmd__valid.value = 0
        await RisingEdge(self.dut.clk)
