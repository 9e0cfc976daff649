# amaranth: UnusedElaboratable=no
"""Tier 1: the PE-array blocks (:mod:`rnnaccel.hw.pe`) on their own, and the MVU built from them.

* :class:`ProcessingElement`: random operands (full range), accumulations of
  random length started by ``i_first``, bubbles (``i_valid`` low) and stalls
  (``en`` low) carrying garbage on every other input, against a NumPy model;
  latency measured.
* :class:`RowReducer`: n = 1..5 inputs, full-range operands (sums wrap at
  ``acc_width`` bits, as modelled), latency measured.
* :class:`ColumnOperand`: the operand of lane r at cycle t of a tile is
  ``x[circulant_index(r, t, T)]`` (circulant) or ``x[t]`` (dense), with bubbles.
* The whole :class:`CirculantMVU` over random configs (hypothesis), bit-exact
  against the golden projection.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Fragment, Module
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnaccel.numeric.circulant import circulant_index
from rnnaccel.numeric.config import preset
from rnnaccel.hw.mvu import BIAS_LATENCY, PE_LATENCY, CirculantMVU, mvu_latency
from rnnaccel.hw.pe import ColumnOperand, ProcessingElement, RowReducer, tree_latency
from rnnaccel.layout.image import plans
from rnnaccel.numeric.model import random_weights

from mvu_ref import hw_rows_to_gates, plan_expected, plan_vectors
from test_mvu import run_harness

#: (block_size, lanes): circulant k = 2..4 and dense tiles of 1..4 lanes.
TILES = [(2, 2), (3, 3), (4, 4), (1, 1), (1, 2), (1, 3), (1, 4)]
TILE_IDS = [f"{'circ' if k > 1 else 'dense'}{lanes}" for k, lanes in TILES]


def tile_cfg(block_size: int, lanes: int, **changes):
    return preset("tiny").replace(block_size=block_size, lanes=lanes, **changes)


def wrap(values, width: int):
    """Two's complement wrap of int64 values to ``width`` bits (what a ``width``-bit register keeps)."""
    v = np.asarray(values, dtype=np.int64)
    half = np.int64(1) << (width - 1)
    return ((v + half) & ((half << 1) - 1)) - half


def simulate(dut, bench):
    top = Module()
    top.domains.sync = ClockDomain()  # also for a design without registers (a 1-input tree)
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def rand_raw(rng, q, size=None):
    return rng.integers(q.min_raw, q.max_raw + 1, size=size)


# ------------------------------------------------------------------ ProcessingElement
def pe_stimulus(cfg, rng, groups: int, bubble: float, stall: float):
    """Cycles of (en, valid, first, last, w, x) and the expected accumulations (groups, T).

    Only enabled, valid cycles carry real operands; every other cycle has
    random garbage on every input but ``en`` / ``i_valid``.
    """
    T = cfg.tile
    circ = cfg.block_size > 1
    cycles, expected = [], []

    def garbage(en, valid):
        w = int(rand_raw(rng, cfg.q_weight)) if circ else rand_raw(rng, cfg.q_weight, T).tolist()
        return (en, valid, int(rng.integers(2)), int(rng.integers(2)), w, rand_raw(rng, cfg.q_state, T).tolist())

    for _ in range(groups):
        n = int(rng.integers(1, 2 * T + 2))
        acc = np.zeros(T, dtype=np.int64)
        for i in range(n):
            while True:
                u = rng.random()
                if u < stall:
                    cycles.append(garbage(0, int(rng.integers(2))))
                elif u < stall + bubble:
                    cycles.append(garbage(1, 0))
                else:
                    break
            w = rand_raw(rng, cfg.q_weight) if circ else rand_raw(rng, cfg.q_weight, T)
            x = rand_raw(rng, cfg.q_state, T)
            acc += np.asarray(w, dtype=np.int64) * x
            cycles.append((1, 1, int(i == 0), int(i == n - 1), int(w) if circ else w.tolist(), x.tolist()))
        expected.append(wrap(acc, cfg.acc_width))
    return cycles, np.array(expected, dtype=np.int64)


def run_pe(cfg, cycles):
    """Drive ``cycles``; sample outputs like a consumer sharing the PE's enable. Returns (results, o_valid count)."""
    dut = ProcessingElement(cfg)
    T = cfg.tile
    got, n_valid = [], [0]

    async def bench(ctx):
        flush = [(1, 0, 0, 0, 0 if dut.circulant else [0] * T, [0] * T)] * (dut.latency + 1)
        for en, valid, first, last, w, x in cycles + flush:
            ctx.set(dut.en, en)
            ctx.set(dut.i_valid, valid)
            ctx.set(dut.i_first, first)
            ctx.set(dut.i_last, last)
            ctx.set(dut.i_w, w)
            ctx.set(dut.i_x, x)
            if en:
                n_valid[0] += ctx.get(dut.o_valid)
                if ctx.get(dut.o_last):
                    acc = ctx.get(dut.o_acc)
                    got.append([acc[r] for r in range(T)])
            await ctx.tick()

    simulate(dut, bench)
    return np.array(got, dtype=np.int64).reshape(-1, T), n_valid[0]


@pytest.mark.parametrize("block_size,lanes", TILES, ids=TILE_IDS)
@pytest.mark.parametrize("bubble,stall", [(0.0, 0.0), (0.25, 0.0), (0.2, 0.2)], ids=["dense", "bubbles", "stalls"])
def test_pe_accumulates_like_numpy(block_size, lanes, bubble, stall):
    cfg = tile_cfg(block_size, lanes)
    rng = np.random.default_rng(block_size * 100 + lanes * 10 + int(bubble * 4) + int(stall * 8))
    cycles, want = pe_stimulus(cfg, rng, groups=8, bubble=bubble, stall=stall)
    got, n_valid = run_pe(cfg, cycles)
    np.testing.assert_array_equal(got, want)
    assert n_valid == sum(1 for c in cycles if c[0] and c[1])


def test_pe_accumulator_does_not_overflow_at_full_range():
    # the most negative operands over the widest matrix row: the sum fits acc_width exactly
    cfg = tile_cfg(4, 4)
    T, n = cfg.tile, cfg.max_terms // cfg.tile
    w, x = cfg.q_weight.min_raw, [cfg.q_state.min_raw] * T
    cycles = [(1, 1, int(i == 0), int(i == n - 1), w, x) for i in range(n)]
    got, _ = run_pe(cfg, cycles)
    assert got.tolist() == [[n * w * x[0]] * T]


@pytest.mark.parametrize("input_register", [False, True], ids=["plain", "inreg"])
@pytest.mark.parametrize("block_size,lanes", [(4, 4), (1, 3)], ids=["circ4", "dense3"])
def test_pe_latency_measured(block_size, lanes, input_register):
    cfg = tile_cfg(block_size, lanes)
    dut = ProcessingElement(cfg, input_register=input_register)
    T = cfg.tile
    seen = {}

    async def bench(ctx):
        ctx.set(dut.i_valid, 1)
        ctx.set(dut.i_first, 1)
        ctx.set(dut.i_last, 1)
        ctx.set(dut.i_w, -3 if dut.circulant else [-3 - r for r in range(T)])
        ctx.set(dut.i_x, [5 + r for r in range(T)])
        for cycle in range(8):
            if ctx.get(dut.o_last):
                seen["cycle"] = cycle
                acc = ctx.get(dut.o_acc)
                seen["acc"] = [acc[r] for r in range(T)]
                break
            await ctx.tick()
            ctx.set(dut.i_valid, 0)

    simulate(dut, bench)
    assert seen["cycle"] == dut.latency == ProcessingElement.LATENCY + input_register == 2 + input_register
    ws = [-3] * T if dut.circulant else [-3 - r for r in range(T)]
    assert seen["acc"] == [ws[r] * (5 + r) for r in range(T)]


def test_pe_interface():
    circ, dense = ProcessingElement(tile_cfg(4, 4)), ProcessingElement(tile_cfg(1, 3))
    assert circ.circulant and not dense.circulant
    assert circ.lanes == 4 and dense.lanes == 3
    assert circ.i_w.shape().width == 8  # one q_weight word, broadcast
    assert len(dense.i_w) == 3  # one word per lane
    assert len(circ.o_acc) == 4 and circ.o_acc.shape().elem_shape.width == circ.cfg.acc_width
    with pytest.raises(AttributeError):
        circ.latency = 3
    with pytest.raises(TypeError, match="cfg must be a Config, not 'tiny'"):
        ProcessingElement("tiny")
    with pytest.raises(TypeError, match="cfg must be a Config"):
        ColumnOperand(None)


# ------------------------------------------------------------------ RowReducer
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_row_reducer_sums_and_latency(n):
    cfg = tile_cfg(3, 3)
    T, w = cfg.tile, cfg.acc_width
    dut = RowReducer(cfg, n)
    assert dut.latency == tree_latency(n) == int(np.ceil(np.log2(n)))
    rng = np.random.default_rng(n)
    lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
    steps = 40
    ins = rng.integers(lo, hi + 1, size=(steps, n, T))
    ins[0] = hi  # extremes wrap like the model
    ins[1] = lo
    valids = rng.integers(0, 2, size=steps)
    valids[:2] = 1
    got_v, got_s = [], []
    measured = {}

    async def bench(ctx):
        # latency by measurement: one valid pulse into an idle tree
        ctx.set(dut.i_acc, [[7 * (j + 1) + r for r in range(T)] for j in range(n)])
        ctx.set(dut.i_valid, 1)
        for cycle in range(8):
            if ctx.get(dut.o_valid):
                measured["cycle"] = cycle
                s = ctx.get(dut.o_sum)
                measured["sum"] = [s[r] for r in range(T)]
                break
            await ctx.tick()
            ctx.set(dut.i_valid, 0)
            ctx.set(dut.i_acc, [[0] * T] * n)
        for _ in range(4):
            await ctx.tick()
        # a stream of full-range inputs, one per cycle
        for c in range(steps + dut.latency):
            if c < steps:
                ctx.set(dut.i_acc, ins[c].tolist())
                ctx.set(dut.i_valid, int(valids[c]))
            else:
                ctx.set(dut.i_valid, 0)
            got_v.append(ctx.get(dut.o_valid))
            s = ctx.get(dut.o_sum)
            got_s.append([s[r] for r in range(T)])
            await ctx.tick()

    simulate(dut, bench)
    assert measured["cycle"] == dut.latency
    assert measured["sum"] == [sum(7 * (j + 1) + r for j in range(n)) for r in range(T)]
    L = dut.latency
    np.testing.assert_array_equal(got_v[L:], valids)
    np.testing.assert_array_equal(np.array(got_s[L:]), wrap(ins.sum(axis=1), w))


@pytest.mark.parametrize("bad,exc", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (True, TypeError)])
def test_row_reducer_checks_n_inputs(bad, exc):
    with pytest.raises(exc, match=f"n_inputs must .*, not {bad!r}"):
        RowReducer(tile_cfg(4, 4), bad)


# ------------------------------------------------------------------ ColumnOperand
@pytest.mark.parametrize("block_size,lanes", TILES, ids=TILE_IDS)
def test_column_operand_follows_circulant_index(block_size, lanes):
    cfg = tile_cfg(block_size, lanes)
    T = cfg.tile
    dut = ColumnOperand(cfg)
    assert dut.latency == 0 and dut.lanes == T
    rng = np.random.default_rng(block_size * 10 + lanes)
    tiles = rand_raw(rng, cfg.q_state, (6, T))
    checks = []

    async def bench(ctx):
        for x in tiles:
            for t in range(T):
                while rng.random() < 0.3:  # bubble: garbage everywhere, the register holds
                    ctx.set(dut.i_valid, 0)
                    ctx.set(dut.i_load, int(rng.integers(2)))
                    ctx.set(dut.i_seg, rand_raw(rng, cfg.q_state, T).tolist())
                    await ctx.tick()
                ctx.set(dut.i_valid, 1)
                ctx.set(dut.i_load, int(t == 0))
                ctx.set(dut.i_seg, x.tolist() if t == 0 else rand_raw(rng, cfg.q_state, T).tolist())
                o = ctx.get(dut.o_x)
                checks.append((x, t, [o[r] for r in range(T)]))
                await ctx.tick()

    simulate(dut, bench)
    assert len(checks) == len(tiles) * T
    lanes_r = np.arange(T)
    for x, t, got in checks:
        want = x[circulant_index(lanes_r, t, T)] if dut.circulant else np.full(T, x[t])
        assert got == want.tolist(), (x, t)


# ------------------------------------------------------------------ the MVU built from them
def test_mvu_hierarchy_and_latency():
    cfg = preset("tiny").replace(pe_rows=2, pe_cols=3)
    mvu = CirculantMVU(cfg, random_weights(cfg, seed=0))
    frag = Fragment.get(mvu, None)
    names = {name for _, name, _ in frag.subfragments}
    for p in range(2):
        assert f"row_{p}_tree" in names
        for q in range(3):
            assert {f"pe_{p}_{q}", f"pe_{p}_{q}_weights", f"col_{q}"} <= names
    assert "bias" in names
    assert mvu.tree_levels == tree_latency(3) == 2
    # memory read + PE + tree + capture + serializer + bias read + narrow
    assert mvu.latency == mvu_latency(cfg) == 1 + PE_LATENCY + 2 + 1 + 2 + BIAS_LATENCY
    assert (PE_LATENCY, BIAS_LATENCY) == (3, 3)


Q_FORMATS = [
    {},  # Q1.6 x Q3.12 -> Q4.11
    {"q_weight": "Q1.4", "q_state": "Q3.8", "q_pre": "Q3.7"},  # narrower, saturates more
]


@st.composite
def mvu_cases(draw):
    k = draw(st.sampled_from([1, 2, 3, 4]))
    lanes = draw(st.integers(1, 4)) if k == 1 else k
    cell = draw(st.sampled_from(["rnn", "gru", "lstm"]))
    changes = dict(
        cell=cell,
        block_size=k,
        lanes=lanes,
        input_size=draw(st.integers(1, 12)),
        hidden_size=draw(st.integers(1, 12)),
        pe_rows=draw(st.integers(1, 3)),
        pe_cols=draw(st.integers(1, 3)),
        gru_reset_after=draw(st.booleans()),
        **draw(st.sampled_from(Q_FORMATS)),
    )
    cfg = preset("tiny").replace(**changes)
    plan = draw(st.integers(0, len(plans(cfg)) - 1))
    scale = draw(st.sampled_from([1.0, 4.0]))
    seed = draw(st.integers(0, 2**16))
    return cfg, plan, scale, seed


@given(mvu_cases())
@settings(max_examples=12, deadline=None)
def test_mvu_random_configs_match_golden(case):
    cfg, plan_index, scale, seed = case
    weights = random_weights(cfg, seed=seed, scale=scale)
    plan = plans(cfg)[plan_index]
    x = plan_vectors(cfg, plan, 2, seed=seed)
    got, _ = run_harness(cfg, weights, plan.index, x, seed=seed, idle=0.2, backpressure=0.3)
    want = plan_expected(cfg, weights, plan, x)
    np.testing.assert_array_equal(hw_rows_to_gates(cfg, plan, got), want)
