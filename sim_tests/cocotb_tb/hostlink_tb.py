"""cocotb test of the generated Verilog of HostLink: the host driver talks to the UART pins.

The same :class:`rnnaccel.boards.driver.LinkClient` that drives a board
runs in a :func:`cocotb.task.bridge` thread; its transport
(:class:`CocotbUARTTransport`) turns ``write`` into bits on ``rx`` and
decodes ``tx`` back into bytes, ``read`` and ``pause`` waiting in simulated
time through :func:`cocotb.task.resume`. The session's hidden states and the
counters go to a result file that the pytest side compares with the golden
model.
"""

from __future__ import annotations

import numpy as np

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from cocotb_support import read_case
from link_model import LinkExerciser, random_program
from rnnaccel.boards.driver import LinkClient, SimulatedTransport
from rnnaccel.interface.protocol import decode_info
from rnnaccel.numeric.config import Config
from rnnaccel.interface.session import load_session
from rnnaccel.numeric.model import random_weights

CASE = read_case()
PERIOD_NS = 10


class CocotbUARTTransport(SimulatedTransport):
    """A byte transport on the ``rx`` / ``tx`` pins of the DUT (8N1, ``divisor`` clocks per bit).

    ``read`` / ``pause`` are called from the driver's thread and wait in
    simulated time; seconds are simulated seconds of the ``clk_freq`` clock.
    """

    def __init__(self, dut, divisor: int, clk_freq: float, buffer_bytes: int, timeout_cycles: int):
        super().__init__(clk_freq, 10 * divisor + 1, buffer_bytes, timeout_cycles)
        self.dut, self.divisor = dut, divisor
        self.framing_errors = 0
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._watch())

    async def _drive(self):
        dut, d = self.dut, self.divisor
        dut.rx.value = 1
        while True:
            if not self._tx:
                await ClockCycles(dut.clk, d)
                continue
            byte = self._tx.popleft()
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                dut.rx.value = bit
                await ClockCycles(dut.clk, d)

    async def _watch(self):
        dut, d = self.dut, self.divisor
        while True:
            await FallingEdge(dut.tx)
            await ClockCycles(dut.clk, max(1, d // 2))
            if int(dut.tx.value):
                continue
            byte = 0
            for i in range(8):
                await ClockCycles(dut.clk, d)
                byte |= int(dut.tx.value) << i
            await ClockCycles(dut.clk, d)
            if int(dut.tx.value):
                self._rx.append(byte)
            else:
                self.framing_errors += 1

    async def _wait_bytes(self, n: int, cycles: int):
        chunk = self.byte_cycles
        waited = 0
        while len(self._rx) < n and waited < cycles:
            await ClockCycles(self.dut.clk, chunk)
            waited += chunk

    # blocking interface for the driver (runs in the bridge thread while the simulator waits)
    def _wait_for(self, n: int, timeout: float) -> None:
        resume(self._wait_bytes)(n, max(1, int(timeout / self.period)))

    def pause(self, seconds: float) -> None:
        resume(self._pause)(seconds)

    async def _pause(self, seconds: float):
        await ClockCycles(self.dut.clk, max(1, int(seconds / self.period)))


async def start(dut) -> CocotbUARTTransport:
    """Clock, reset, and a transport on the pins."""
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    return CocotbUARTTransport(dut, CASE["divisor"], CASE["clk_freq"], CASE["buffer_bytes"], CASE["timeout_cycles"])


@cocotb.test()
async def driver_session_over_uart(dut):
    """INFO, PING, weights (unless in ROM), then the session (reset, run, state, run) and the counters."""
    cfg = Config.load(CASE["config"])
    ops = load_session(CASE["session"])
    transport = await start(dut)

    def host():
        dev = LinkClient(transport, cfg)
        assert dev.ping(b"\xa5hello\x00") == b"\xa5hello\x00"
        if not cfg.weights_in_rom:
            dev.load_weights(random_weights(cfg, seed=CASE["weights_seed"]))
        outs = dev.session(ops)
        return outs, dev.counters(), dev.device

    outs, counters, info = await bridge(host)()
    assert info.config_hash == cfg.hash and info.design_hash == CASE["design_hash"]
    assert transport.framing_errors == 0
    result = {f"out{i}": o for i, o in enumerate(outs)}
    result.update({k: np.array(counters[k]) for k in ("cycles", "wait_cycles", "steps", "status", "rejected")})
    np.savez(CASE["result"], **result)


@cocotb.test()
async def link_program_over_uart(dut):
    """A seeded program of requests and damaged traffic (``link_model.random_program``), every answer checked
    against the Python model of the device."""
    cfg = Config.load(CASE["config"])
    transport = await start(dut)
    info = decode_info(bytes.fromhex(CASE["info"]))

    def host():
        ex = LinkExerciser(transport, cfg, random_weights(cfg, seed=CASE["weights_seed"]), info)
        if not cfg.weights_in_rom:
            ex.load_weights(CASE["weights_seed"])
        ex.reset()  # the state memories still hold the previous test's state (a reset pulse keeps them)
        random_program(ex, np.random.default_rng(CASE["seed"]), CASE["actions"])
        return ex.requests, ex.damaged

    requests, damaged = await bridge(host)()
    assert transport.framing_errors == 0
    np.savez(CASE["program_result"], requests=requests, damaged=damaged)
