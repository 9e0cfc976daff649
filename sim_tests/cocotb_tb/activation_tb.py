"""cocotb test of the generated Verilog of ActivationStream, bit-exact with rnnaccel.numeric.lut.lookup.

The case (config, function, input format, input values, seed) comes from the
JSON file named by ``RNNACCEL_TB_CASE`` (see ``sim_tests/cocotb_support.py``);
the expected outputs are computed here with :func:`rnnaccel.numeric.lut.lookup`.
Every test sends all the values through the ``i`` stream with idle
insertion and takes them from ``o`` under back-pressure, then compares the
whole output sequence (nothing lost, duplicated or reordered).
"""

from __future__ import annotations

import cocotb
import numpy as np

from cocotb_support import read_case
from streams import PATTERNS, TB, pattern
from rnnaccel.numeric import lut
from rnnaccel.numeric.config import Config

CASE = read_case()
CFG = Config.from_dict(CASE["config"])


@cocotb.test()
@cocotb.parametrize(idle=list(PATTERNS), backpressure=["none", "random"])
async def stream_matches_lookup(dut, idle, backpressure):
    values = [int(v) for v in CASE["values"]]
    want = lut.lookup(CFG, CASE["fn"], np.array(values, dtype=np.int64), CASE["in_frac"]).tolist()
    tb = TB(dut)
    await tb.reset()
    seed = CASE["seed"] + 10 * PATTERNS.index(idle) + PATTERNS.index(backpressure)
    sender = cocotb.start_soon(tb.send(values, pattern(idle, seed)))
    got = await tb.receive(len(values), pattern(backpressure, seed + 1), limit=4 * len(values) + 100)
    await sender
    mismatches = [(k, values[k], g, w) for k, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not mismatches, (
        f"{len(mismatches)} of {len(values)} outputs differ; first (index, raw, got, want): {mismatches[:5]}"
    )
    if idle == "none" and backpressure == "none":
        # full throughput: one result per cycle after the pipeline fills
        assert tb.cycles <= len(values) + CASE["latency"] + 2, f"{tb.cycles} cycles for {len(values)} values"
