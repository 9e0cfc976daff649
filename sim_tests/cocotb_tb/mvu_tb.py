"""cocotb test of the generated Verilog of MVUHarness (the chessboard MVU with its vector store):
source vectors in on ``i`` with idle insertion, projections out on ``o`` under back-pressure,
compared word for word with the golden projection computed by the pytest side."""

from __future__ import annotations

import cocotb

from cocotb_support import read_case
from streams import PATTERNS, TB, pattern

CASE = read_case()


@cocotb.test()
@cocotb.parametrize(idle=["none", "cycle", "random"], backpressure=["none", "random"])
async def projections_match_golden(dut, idle, backpressure):
    words = [int(v) for v in CASE["inputs"]]
    want = [int(v) for v in CASE["expected"]]
    tb = TB(dut)
    await tb.reset()
    seed = CASE["seed"] + 10 * PATTERNS.index(idle) + PATTERNS.index(backpressure)
    sender = cocotb.start_soon(tb.send(words, pattern(idle, seed)))
    got = await tb.receive(len(want), pattern(backpressure, seed + 1), limit=CASE["cycle_limit"])
    await sender
    care = CASE["care"]
    bad = [(k, g, w) for k, (g, w, c) in enumerate(zip(got, want, care)) if c and g != w]
    assert not bad, f"{len(bad)} of {sum(care)} words differ; first (index, got, want): {bad[:5]}"
