# amaranth: UnusedElaboratable=no
"""ActivationUnit and ActivationStream in the Amaranth simulator, against rnnaccel.numeric.lut.lookup.

Every raw input of small formats (both functions, interpolation on and off,
inputs from q_pre and q_cell, clamped tails, shift 0, an activation format
that cannot hold ONE), random inputs for the default config, random clock
enable stalls, and the stream wrapper under random input gaps and random
output back-pressure.
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from rnnaccel.numeric import lut
from rnnaccel.numeric.config import Config
from rnnaccel.numeric.fixedpoint import QFormat
from rnnaccel.hw.activation import ActivationStream, ActivationUnit

FUNCTIONS = ("sigmoid", "tanh")


def run_unit(dut: ActivationUnit, raws, *, seed: int, stall: float = 0.0, gap: float = 0.0) -> list[int]:
    """Push ``raws`` through ``dut`` with random enable stalls and input gaps; return its outputs.

    One testbench drives and collects: an element enters at an enabled edge
    with ``i_valid`` and leaves at an enabled edge with ``o_valid``; the
    number of enabled edges between the two must equal ``dut.latency``.
    """
    rng = random.Random(seed)
    raws = [int(v) for v in raws]
    got: list[int] = []

    async def bench(ctx):
        k, edge = 0, 0
        entered: list[int] = []
        limit = 4 * len(raws) + 100 + dut.latency * 4
        for _ in range(limit):
            if len(got) == len(raws):
                return
            en = int(rng.random() >= stall)
            push = k < len(raws) and rng.random() >= gap
            ctx.set(dut.en, en)
            ctx.set(dut.i_valid, int(push))
            if push:
                ctx.set(dut.i_data, raws[k])
            *_, o_valid, o_data = await ctx.tick().sample(dut.o_valid, dut.o_data)
            if en:
                if o_valid:
                    assert edge - entered[len(got)] == dut.latency, "latency differs from dut.latency"
                    got.append(o_data)
                if push:
                    entered.append(edge)
                    k += 1
                edge += 1
        raise AssertionError(f"only {len(got)} of {len(raws)} results came out")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


def check(cfg: Config, fn: str, q_in: QFormat, raws, **kw):
    dut = ActivationUnit(cfg, fn, q_in.width, q_in.frac)
    got = np.array(run_unit(dut, raws, **kw), dtype=np.int64)
    want = lut.lookup(cfg, fn, np.asarray(raws, dtype=np.int64), q_in.frac)
    bad = np.nonzero(got != want)[0]
    assert bad.size == 0, f"{fn} {q_in} of {cfg.q_act}: {bad.size} mismatches, first " + ", ".join(
        f"raw {raws[i]}: got {got[i]} want {want[i]}" for i in bad[:5]
    )


def all_raws(q: QFormat) -> np.ndarray:
    return np.arange(q.min_raw, q.max_raw + 1, dtype=np.int64)


# Small configs: q_pre widths 8..12, interpolation on and off, table settings
# that give large and zero shifts, clamped tails, and q_act without room for ONE.
SMALL = {
    "w8": dict(q_pre="Q3.4", q_cell="Q2.5", q_act="Q1.6", table_entries=16),
    "w8-shift0": dict(q_pre="Q3.4", q_cell="Q3.4", q_act="Q1.6", table_entries=256, tanh_range=8.0),
    "w9-q0act": dict(q_pre="Q4.4", q_cell="Q3.5", q_act="Q0.7", table_entries=32, sigmoid_range=4.0),
    "w10": dict(q_pre="Q3.6", q_cell="Q4.5", q_act="Q1.8", table_entries=64),
    "w11-narrowrange": dict(
        q_pre="Q5.5", q_cell="Q2.8", q_act="Q1.9", table_entries=32, sigmoid_range=2.0, tanh_range=1.0
    ),
    "w12": dict(q_pre="Q3.8", q_cell="Q4.7", q_act="Q1.14", table_entries=128),
}


def small_config(name: str, interpolate: bool) -> Config:
    return Config(q_state="Q3.8", interpolate=interpolate, **SMALL[name])


@pytest.mark.parametrize("interpolate", [True, False], ids=["interp", "nointerp"])
@pytest.mark.parametrize("name", list(SMALL))
def test_exhaustive_small(name, interpolate):
    cfg = small_config(name, interpolate)
    for k, fn in enumerate(FUNCTIONS):
        for j, q_in in enumerate((cfg.q_pre, cfg.q_cell)):
            check(cfg, fn, q_in, all_raws(q_in), seed=10 * k + j, stall=0.1)


@pytest.mark.parametrize("fn", FUNCTIONS)
@pytest.mark.parametrize("interpolate", [True, False], ids=["interp", "nointerp"])
def test_default_random(fn, interpolate):
    cfg = Config(interpolate=interpolate)
    rng = np.random.default_rng(1234)
    for q_in in (cfg.q_pre, cfg.q_cell):
        edges = [q_in.min_raw, q_in.min_raw + 1, -1, 0, 1, q_in.max_raw - 1, q_in.max_raw]
        # table boundaries: every multiple of the step near the range end, and one off
        step = 1 << cfg.table_shift(fn, q_in.frac)
        n = lut.half_entries(cfg)
        bounds = [s * b + d for b in (1, n - 1, n, n + 1) for d in (-1, 0, 1) for s in (1, -1)]
        wide = rng.integers(q_in.min_raw, q_in.max_raw + 1, 1500)
        near = rng.integers(-4 * n * step, 4 * n * step, 1500)
        raws = np.clip(np.concatenate([edges, bounds, wide, near]), q_in.min_raw, q_in.max_raw)
        check(cfg, fn, q_in, raws, seed=7, stall=0.2, gap=0.1)


def test_latency_values():
    assert ActivationUnit(Config(), "sigmoid", 16, 11).latency == 6
    assert ActivationUnit(Config(interpolate=False), "tanh", 16, 11).latency == 3


# --------------------------------------------------------------------------
# stream wrapper
# --------------------------------------------------------------------------


def run_stream(dut: ActivationStream, raws, *, seed: int, p_valid: float, p_ready: float) -> list[int]:
    rng = random.Random(seed)
    raws = [int(v) for v in raws]
    got: list[int] = []

    async def bench(ctx):
        k = 0
        offered = False
        held = None
        for _ in range(20 * len(raws) + 100):
            if len(got) == len(raws):
                return
            # a producer keeps an offered element until it is taken
            if not offered and k < len(raws) and rng.random() < p_valid:
                offered = True
            ctx.set(dut.i.valid, int(offered))
            if offered:
                ctx.set(dut.i.payload, raws[k])
            # o.valid must not depend on o.ready
            ctx.set(dut.o.ready, 0)
            v0 = ctx.get(dut.o.valid)
            ctx.set(dut.o.ready, 1)
            assert ctx.get(dut.o.valid) == v0, "o.valid depends on o.ready"
            ready = int(rng.random() < p_ready)
            ctx.set(dut.o.ready, ready)
            *_, i_ready, o_valid, o_payload = await ctx.tick().sample(dut.i.ready, dut.o.valid, dut.o.payload)
            if held is not None:
                assert (o_valid, o_payload) == (1, held), "an offered output changed before it was taken"
                held = None
            if o_valid and ready:
                got.append(o_payload)
            elif o_valid:
                held = o_payload
            if offered and i_ready:
                offered = False
                k += 1
        raise AssertionError(f"only {len(got)} of {len(raws)} results came out")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize(
    "p_valid,p_ready", [(1.0, 1.0), (0.7, 0.5), (0.3, 0.9), (1.0, 0.2)], ids=["full", "mixed", "sparse", "backpressure"]
)
@pytest.mark.parametrize("interpolate", [True, False], ids=["interp", "nointerp"])
def test_stream_random(p_valid, p_ready, interpolate):
    cfg = small_config("w10", interpolate)
    for k, fn in enumerate(FUNCTIONS):
        dut = ActivationStream(cfg, fn, cfg.q_pre.width, cfg.q_pre.frac)
        raws = np.random.default_rng(99 + k).integers(cfg.q_pre.min_raw, cfg.q_pre.max_raw + 1, 600)
        got = run_stream(dut, raws, seed=5 + k, p_valid=p_valid, p_ready=p_ready)
        want = lut.lookup(cfg, fn, raws, cfg.q_pre.frac)
        assert got == [int(v) for v in want]


# --------------------------------------------------------------------------
# parameters and generated Verilog
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ActivationUnit, ActivationStream])
def test_parameter_checks(cls):
    cfg = Config()
    with pytest.raises(TypeError, match=r"'lstm'"):
        cls("lstm", "tanh", 16, 11)
    with pytest.raises(ValueError, match=r"'relu'"):
        cls(cfg, "relu", 16, 11)
    with pytest.raises(TypeError, match=r"16\.0"):
        cls(cfg, "tanh", 16.0, 11)
    with pytest.raises(ValueError, match=r"in_width must be 2 or more, not 1"):
        cls(cfg, "tanh", 1, 0)
    with pytest.raises(ValueError, match=r"in_frac must be 0 or more, not -1"):
        cls(cfg, "tanh", 16, -1)
    with pytest.raises(ValueError, match=r"in_frac=0 is too coarse"):
        cls(cfg, "tanh", 16, 0)


def test_verilog_rom_and_determinism():
    cfg = Config()
    texts = [verilog.convert(ActivationStream(cfg, "tanh", 16, 11), name="act", emit_src=False) for _ in range(2)]
    assert texts[0] == texts[1]
    # the table is a memory (block RAM), not a mux tree: one array of (word, next word) rows
    # with a single synchronous read port
    assert re.search(r"reg \[31:0\] rom ?\[128:0\];", texts[0])
    assert len(re.findall(r"<= rom\[", texts[0])) == 1
