"""Tier 1: the chessboard MVU in the Amaranth simulator, bit-exact against the golden projection."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from rnnaccel.numeric.config import preset
from mvu_harness import MVUHarness
from rnnaccel.layout.image import plans
from rnnaccel.numeric.model import random_weights

from mvu_ref import hw_rows_to_gates, plan_expected, plan_vectors


def run_harness(cfg, weights, plan_index, vectors, seed=0, idle=0.0, backpressure=0.0):
    dut = MVUHarness(cfg, weights, plan_index)
    plan = dut.plan
    rng = np.random.default_rng(seed)
    out = []
    n_out = len(vectors) * plan.rows

    async def feed(ctx):
        for vec in vectors:
            for word in vec:
                while idle and rng.random() < idle:
                    await ctx.tick()
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, int(word))
                await ctx.tick().until(dut.i.ready)
                ctx.set(dut.i.valid, 0)

    async def drain(ctx):
        while len(out) < n_out:
            ready = 0 if (backpressure and rng.random() < backpressure) else 1
            ctx.set(dut.o.ready, ready)
            await ctx.tick()
            # sample what was transferred on that edge
        ctx.set(dut.o.ready, 0)

    async def monitor(ctx):
        async for _, _, valid, ready, payload, _ in ctx.tick().sample(
            dut.o.valid, dut.o.ready, dut.o.payload, dut.mvu_cycles
        ):
            if valid and ready:
                out.append(payload)
            if len(out) >= n_out:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(drain)
    sim.add_process(monitor)
    sim.run_until(1e-8 * (len(vectors) * (plan.sweep_cycles * 4 + plan.rows * 4 + plan.cols * 4 + 200)))
    return np.array(out, dtype=np.int64).reshape(len(vectors), plan.rows), dut


CASES = [
    ("tiny", {}),
    ("tiny", {"pe_rows": 2, "pe_cols": 2}),
    ("tiny", {"pe_rows": 3, "pe_cols": 1, "hidden_size": 10, "input_size": 6}),
    ("tiny", {"block_size": 1, "lanes": 3, "pe_rows": 2, "pe_cols": 2, "hidden_size": 7, "input_size": 5}),
    ("tiny", {"block_size": 2, "lanes": 2, "pe_rows": 4, "pe_cols": 3, "hidden_size": 6, "input_size": 10}),
    ("lstm-small", {}),
]


@pytest.mark.parametrize("name,changes", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_mvu_matches_golden(name, changes):
    cfg = preset(name).replace(**changes)
    weights = random_weights(cfg, seed=3)
    for plan in plans(cfg):
        x = plan_vectors(cfg, plan, 2, seed=plan.index)
        got, _ = run_harness(cfg, weights, plan.index, x, seed=1, idle=0.2, backpressure=0.3)
        want = plan_expected(cfg, weights, plan, x)
        np.testing.assert_array_equal(hw_rows_to_gates(cfg, plan, got), want)


def test_mvu_saturates_like_golden():
    cfg = preset("tiny").replace(q_pre="Q2.11")
    weights = random_weights(cfg, seed=5, scale=6.0)
    plan = plans(cfg)[0]
    x = plan_vectors(cfg, plan, 2, seed=9, extreme=True)
    got, _ = run_harness(cfg, weights, 0, x)
    want = plan_expected(cfg, weights, plan, x)
    assert (np.abs(want) == cfg.q_pre.max_raw).any() or (want == cfg.q_pre.min_raw).any(), "case must saturate"
    np.testing.assert_array_equal(hw_rows_to_gates(cfg, plan, got), want)
