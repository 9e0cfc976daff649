"""Tier 1 end to end: the whole accelerator in the Amaranth simulator, bit-exact against the golden model."""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.interface.session import golden_session
from rnnaccel.hw.accelerator import program
from rnnaccel.hw.array import loop_bound
from rnnaccel.numeric.config import CELL_VARIANTS, preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights
from rnnaccel.flow.sim_amaranth import run_session_amaranth

from sessions import (
    E2E_CASES,
    assert_full_session_matches,
    case_config,
    full_session,
    input_projection_saturates,
    saturating_session,
)


@pytest.mark.parametrize("stacked", [False, True], ids=["per-gate", "stacked"])
@pytest.mark.parametrize("case_id,name,changes", E2E_CASES, ids=[c[0] for c in E2E_CASES])
def test_session_bit_exact_with_stalls(case_id, name, changes, stacked):
    """Per-gate or stacked projection memories (cfg.stacked_projections): the same results."""
    cfg = case_config(name, {**changes, "stacked_projections": stacked})
    weights = random_weights(cfg, seed=11)
    ops = full_session(cfg, seed=5)
    got, counters = run_session_amaranth(cfg, weights, ops, idle=0.25, backpressure=0.35, seed=2)
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)
    # state really carried: the second chunk differs from running it from zero
    fresh = golden_session(cfg, weights, [("reset",), ops[2]])
    assert not np.array_equal(fresh[0], want[1])


@pytest.mark.parametrize("cell", ["lstm", "gru", "qrnn", "sru"])
def test_input_paced_at_the_step_never_hangs(cell):
    """An input stream about as fast as the steps (a host link's pace): the FIFO may fill up with the next
    input in a step's last cycle. Before the fix the loader then took it as the next step's prefetched input
    while that step waited in ``load`` for its own: a hang (one of these twelve sessions for each of LSTM, GRU
    and QRNN; SRU, whose loader now runs up to three inputs ahead, checks that schedule). Bit-exact, every
    step."""
    cfg = case_config("tiny", {"cell": cell})
    weights = random_weights(cfg, seed=3)
    for f in (1.0, 1.2, 1.4):
        idle = 1 - cfg.input_size / (f * cfg.ideal_cycles_per_step)  # a vector's words over about a step
        for seed in range(4):
            rng = np.random.default_rng(seed)
            ops = [("reset",), ("run", quantize(rng.uniform(-1, 1, size=(24, cfg.input_size)), cfg.q_state))]
            got, counters = run_session_amaranth(cfg, weights, ops, idle=idle, seed=seed)
            np.testing.assert_array_equal(got[0], golden_session(cfg, weights, ops)[0])
            assert counters[0]["steps"] == 24


@pytest.mark.parametrize("case_id,name,changes", E2E_CASES, ids=[c[0] for c in E2E_CASES])
def test_stacked_projections_lengthen_only_the_gate_phase(case_id, name, changes):
    """Stacked projections read the G gates of an element over G cycles: (G - 1) H more cycles per
    layer and step at most (the last layer's gate phase overlaps the next step's input projection,
    which hides part of them), the same results."""
    cfg = case_config(name, {**changes, "stacked_projections": True})
    weights = random_weights(cfg, seed=11)
    ops = full_session(cfg, seed=5)[:2]
    got_flat, flat = run_session_amaranth(cfg.replace(stacked_projections=False), weights, ops)
    got_stacked, stacked = run_session_amaranth(cfg, weights, ops)
    extra = sum(len(cfg.layer_gates(layer)) - 1 for layer in range(cfg.num_layers)) * cfg.hidden_size
    assert stacked[0]["steps"] == flat[0]["steps"] == 3
    assert 0 <= stacked[0]["cycles"] - flat[0]["cycles"] <= 3 * extra
    for a, b in zip(got_flat, got_stacked):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "cell,extra", [("lstm", {}), ("gru", {"gru_reset_after": False}), ("sru", {}), ("qrnn", {}), ("rnn", {})]
)
def test_saturation_matches_golden(cell, extra):
    cfg = case_config("tiny", {"cell": cell, "q_pre": "Q2.11", "q_cell": "Q1.11", "q_state": "Q1.12", **extra})
    weights = random_weights(cfg, seed=4, scale=8.0)
    ops = saturating_session(cfg, seed=1)
    got, _ = run_session_amaranth(cfg, weights, ops)
    want = golden_session(cfg, weights, ops)
    np.testing.assert_array_equal(got[0], want[0])
    assert input_projection_saturates(cfg, weights, ops[1][1]), "the case must overflow q_pre"


@pytest.mark.parametrize("ram", ["block", "huge"])
def test_runtime_weight_loading(ram):
    cfg = case_config("tiny", {"weights_in_rom": False, "pe_rows": 2, "weight_ram": ram})
    weights = random_weights(cfg, seed=8)
    ops = full_session(cfg, seed=3)
    got, _ = run_session_amaranth(cfg, weights, ops, idle=0.1, backpressure=0.1)
    for g, w in zip(got, golden_session(cfg, weights, ops)):
        np.testing.assert_array_equal(g, w)


def test_cycles_per_step_reported():
    cfg = case_config("tiny", {})
    weights = random_weights(cfg, seed=1)
    x = np.zeros((4, cfg.input_size), dtype=np.int64)
    _, counters = run_session_amaranth(cfg, weights, [("reset",), ("run", x)])
    per_step = counters[0]["cycles"] / counters[0]["steps"]
    assert counters[0]["steps"] == 4 and counters[0]["wait_cycles"] == 0
    assert per_step >= cfg.ideal_cycles_per_step


def test_program_keeps_input_projection_separate():
    for case_id, name, changes in E2E_CASES:
        cfg = case_config(name, changes)
        if cfg.datapath != "array":  # the serial datapath's passes are not MVU plans
            continue
        prog = program(cfg)
        mvu_phases = [p for p in prog if p[0] == "mvu"]
        assert len(mvu_phases) == sum(len(cfg.matrices(layer)) for layer in range(cfg.num_layers)), case_id


def test_out_of_range_commands_set_error_and_change_nothing():
    """WRITE_VEC / WRITE_C / WRITE_WEIGHT outside their memories, and unknown opcodes, flag an error."""
    from amaranth.sim import Simulator

    from rnnaccel.hw.array import ArrayAccelerator
    from rnnaccel.hw.sequencer import Op
    from rnnaccel.layout.image import vector_depth

    cfg = case_config("tiny", {"weights_in_rom": False})
    dut = ArrayAccelerator(cfg)
    bad = [
        (Op.WRITE_VEC, 0, vector_depth(cfg), 1),
        (Op.WRITE_VEC, cfg.pe_cols * cfg.tile, 0, 1),
        (Op.WRITE_C, 0, cfg.num_layers * cfg.padded(cfg.hidden_size), 1),
        (Op.WRITE_WEIGHT, 0, 10**6, 1),
        (Op.WRITE_WEIGHT, cfg.pe_rows * cfg.pe_cols + 1, 0, 1),
        (9, 0, 0, 0),
    ]
    flags = []

    async def bench(ctx):
        for op, sel, addr, data in bad:
            ctx.set(dut.i_cmd.payload, {"op": int(op), "sel": sel, "addr": addr, "data": data})
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.i_cmd.valid, 0)
            await ctx.tick()
            flags.append((ctx.get(dut.status) >> 2) & 1)
            ctx.set(dut.i_cmd.payload, {"op": int(Op.CLEAR_COUNTERS), "sel": 0, "addr": 0, "data": 0})
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick()
            ctx.set(dut.i_cmd.valid, 0)
            await ctx.tick()
            assert (ctx.get(dut.status) >> 2) & 1 == 0

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert flags == [1] * len(bad)


@pytest.mark.slow
def test_lstm512_ecp5_bit_exact():
    """The lstm512-ecp5 preset itself (512x512 LSTM, k = 16, 4x2 PEs of 16 lanes, stacked projections, weights
    in ROM): two steps with the state carried, bit-exact against the golden model (about a minute in the
    Amaranth simulator)."""
    from rnnaccel.numeric.config import preset
    from rnnaccel.numeric.fixedpoint import quantize

    cfg = preset("lstm512-ecp5")
    weights = random_weights(cfg, seed=3)
    x = quantize(np.random.default_rng(4).uniform(-1, 1, size=(2, cfg.input_size)), cfg.q_state)
    ops = [("reset",), ("run", x)]
    got, counters = run_session_amaranth(cfg, weights, ops)
    want = golden_session(cfg, weights, ops)
    np.testing.assert_array_equal(got[0], want[0])
    assert np.count_nonzero(want[0]) > cfg.hidden_size  # not a trivially zero state
    assert counters[0]["steps"] == 2


@pytest.mark.parametrize("variant", sorted(CELL_VARIANTS))
@pytest.mark.parametrize("shape", ["tiny", "lstm-small"])
def test_steps_respect_ideal_and_loop_bound(variant, shape):
    """Chained plans and gate phases beside their plan stay bit-exact, and no step beats the two lower bounds
    (:func:`rnnaccel.hw.array.loop_bound`, the ideal): a bound the schedule could beat would be wrong."""
    cfg = preset(shape).replace(**CELL_VARIANTS[variant])
    weights = random_weights(cfg, seed=3)
    rng = np.random.default_rng(3)
    x = quantize(rng.uniform(-1, 1, size=(8, cfg.input_size)), cfg.q_state)
    ops = [("reset",), ("run", x[:2]), ("run", x[2:])]
    got, counters = run_session_amaranth(cfg, weights, ops)
    for g, w in zip(got, golden_session(cfg, weights, ops), strict=True):
        np.testing.assert_array_equal(g, w)
    per_step = (counters[1]["cycles"] - counters[0]["cycles"]) / 6
    assert per_step >= cfg.ideal_cycles_per_step
    assert per_step >= loop_bound(cfg)
