"""cocotb test of the generated Verilog of the flash reader wired to the flash model (one module,
``FlashBench`` in sim_tests/test_flash.py): reads at the case's offsets and lengths, queued behind each
other, under back-pressure; the words must equal the case's expected words and the model must report
no protocol violation."""

from __future__ import annotations

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cocotb_support import read_case
from streams import pattern

CASE = read_case()


@cocotb.test()
@cocotb.parametrize(backpressure=["none", "random"])
async def reads_match_image(dut, backpressure):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.start__valid.value = 0
    dut.start__payload.value = 0
    dut.o__ready.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    ready = pattern(backpressure, CASE["seed"])
    want = [int(w) for w in CASE["expected"]]
    reads = [(int(a), int(c)) for a, c in CASE["reads"]]
    got, cycles, pending = [], 0, list(reads)
    offered = None
    while len(got) < len(want):
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < CASE["cycle_limit"], f"{len(got)} of {len(want)} words after {cycles} cycles"
        dut.start__valid.value = int(offered is not None)
        if offered is not None:
            dut.start__payload.value = offered[0] | offered[1] << CASE["addr_bits"]
        take = next(ready)
        dut.o__ready.value = take
        await ReadOnly()
        # this cycle's state, settled: what transfers at the next edge, and whether to offer the next read
        accepted = offered is not None and int(dut.start__ready.value)
        if accepted:
            offered = None
        if take and int(dut.o__valid.value):
            got.append(int(dut.o__payload.value))
        assert not int(dut.error.value), f"flash model error code {int(dut.error_code.value)} at cycle {cycles}"
        if not accepted and offered is None and pending and int(dut.initialized.value) and not int(dut.busy.value):
            offered = pending.pop(0)  # queued: the previous read has issued all its words
    bad = [(k, g, w) for k, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"{len(bad)} of {len(want)} words differ; first (index, got, want): {bad[:5]}"
    await RisingEdge(dut.clk)
    dut.o__ready.value = 1
    for _ in range(50):  # nothing extra
        await RisingEdge(dut.clk)
        await ReadOnly()
        assert not int(dut.o__valid.value)
        assert not int(dut.error.value)
