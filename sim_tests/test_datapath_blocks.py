"""The blocks both datapaths share (issue 11, items 2 and 3): the weight bank, the serializer, the bias add
and narrow stage (:mod:`rnnaccel.hw.datapath`), the serial form of the PE (``lanes``, a weight per lane, the
operand broadcast), and the memory image a design is built from once (:class:`rnnaccel.layout.image.MemoryImage`)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import ClockDomain, Fragment, Module, signed
from amaranth.sim import Simulator

from rnnaccel.hw.accelerator import make_accelerator
from rnnaccel.hw.datapath import BiasNarrow, Serializer, WeightBank
from rnnaccel.hw.mvu import CirculantMVU
from rnnaccel.hw.pe import ProcessingElement
from rnnaccel.layout.image import bank_words, bias_words, memory_image, weight_banks
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import align, narrow
from rnnaccel.numeric.model import random_weights

SERIAL = preset("tiny").replace(datapath="serial", lanes=2, pe_cols=1, name="serial")


def simulate(dut, bench):
    top = Module()
    top.domains.sync = ClockDomain()
    top.submodules.dut = dut
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def rand_raw(rng, q, size=None):
    return rng.integers(q.min_raw, q.max_raw + 1, size=size)


# ------------------------------------------------------------------ the PE in the serial datapath's form
@pytest.mark.parametrize("lanes", [1, 2, 4])
def test_pe_per_lane_weights_broadcast_x(lanes):
    """Lane l accumulates w_l * x over a group, with bubbles, as the serial datapath's lanes do."""
    cfg = SERIAL.replace(lanes=lanes)
    dut = ProcessingElement(cfg, lanes=lanes, per_lane_weights=True, broadcast_x=True)
    assert dut.lanes == lanes and dut.per_lane_weights and dut.broadcast_x and dut.latency == 2
    assert len(dut.i_w) == lanes and dut.i_x.shape() == signed(cfg.q_state.width)
    rng = np.random.default_rng(lanes)
    cycles, want = [], []
    for _ in range(4):
        n = int(rng.integers(1, 7))
        acc = np.zeros(lanes, dtype=np.int64)
        for i in range(n):
            if rng.random() < 0.3:
                cycles.append((0, 0, 0, rand_raw(rng, cfg.q_weight, lanes).tolist(), int(rand_raw(rng, cfg.q_state))))
            w, x = rand_raw(rng, cfg.q_weight, lanes), int(rand_raw(rng, cfg.q_state))
            acc += w * x
            cycles.append((1, int(i == 0), int(i == n - 1), w.tolist(), x))
        want.append(acc.tolist())
    got = []

    async def bench(ctx):
        for valid, first, last, w, x in cycles + [(0, 0, 0, [0] * lanes, 0)] * 3:
            ctx.set(dut.i_valid, valid)
            ctx.set(dut.i_first, first)
            ctx.set(dut.i_last, last)
            ctx.set(dut.i_w, w)
            ctx.set(dut.i_x, x)
            if ctx.get(dut.o_last):
                got.append([ctx.get(dut.o_acc)[r] for r in range(lanes)])
            await ctx.tick()

    simulate(dut, bench)
    assert got == want
    with pytest.raises(ValueError, match="lanes"):
        ProcessingElement(cfg, lanes=0)


# ------------------------------------------------------------------ Serializer, BiasNarrow
def test_serializer_emits_items_in_order():
    dut = Serializer(3, signed(12), range(32))
    seen = []

    async def bench(ctx):
        for cycle in range(12):
            load = cycle in (0, 5)
            ctx.set(dut.i_load, load)
            ctx.set(dut.i_items, [cycle * 10 + i - 20 for i in range(3)])
            ctx.set(dut.i_pos, 7 if cycle == 0 else 20)
            if ctx.get(dut.o_valid):
                seen.append((cycle, ctx.get(dut.o_item), ctx.get(dut.o_pos)))
            await ctx.tick()

    simulate(dut, bench)
    assert seen == [(1, -20, 7), (2, -19, 8), (3, -18, 9), (6, 30, 20), (7, 31, 21), (8, 32, 22)]


@pytest.mark.parametrize(
    "n,fused,breg",
    [(4, False, True), (4, False, False), (1, True, False)],
    ids=["array-T4", "T4-plain", "serial-fused"],
)
def test_bias_narrow_is_the_golden_narrowing(n, fused, breg):
    cfg = preset("tiny") if not fused else SERIAL
    bb = cfg.bias_width if fused else cfg.q_pre.width
    dut = BiasNarrow(cfg, n, bb, range(64), bias_register=breg)
    assert dut.latency == 2 + breg
    rng = np.random.default_rng(n)
    lim = 1 << (cfg.acc_width - 3)
    sums = rng.integers(-lim, lim, size=(20, n))
    sums[0] = lim - 1  # saturates
    bias = rng.integers(-(1 << (bb - 1)), 1 << (bb - 1), size=(20, n))
    want = narrow(sums + align(bias, cfg.q_pre.frac, cfg.acc_frac), cfg.acc_frac, cfg.q_pre)
    got = {}

    async def bench(ctx):
        for c in range(len(sums) + dut.latency):
            ctx.set(dut.i_valid, c < len(sums) and c % 3 != 2)
            if c < len(sums):
                ctx.set(dut.i_sums, sums[c].tolist())
                ctx.set(dut.i_tag, c)
            if 0 < c <= len(sums):  # the bias word arrives a cycle after the sums, as from a read port
                ctx.set(dut.i_bias, sum((int(v) & ((1 << bb) - 1)) << (r * bb) for r, v in enumerate(bias[c - 1])))
            if ctx.get(dut.o_valid):
                got[ctx.get(dut.o_tag)] = [ctx.get(dut.o_data)[r] for r in range(n)]
            await ctx.tick()

    simulate(dut, bench)
    assert sorted(got) == [c for c in range(len(sums)) if c % 3 != 2]
    for c, values in got.items():
        assert values == want[c].tolist(), c


# ------------------------------------------------------------------ WeightBank
@pytest.mark.parametrize("rom", [True, False], ids=["rom", "ram"])
def test_weight_bank_reads_writes_and_unpacks(rom):
    """One address for reads and writes; SPRAM packing: two 8-bit weights a word, ``select`` picks one."""
    cfg = SERIAL.replace(weights_in_rom=rom, weight_ram="block" if rom else "huge")
    pack = 1 if rom else 2
    words = [(3 * a + 1) & ((1 << (8 * pack)) - 1) for a in range(8)]
    top = Module()
    bank = WeightBank(top, cfg, None, "bank", 8, words if rom else None)
    assert bank.pack == pack and len(bank.words) == pack
    seen = []

    async def bench(ctx):
        if not rom:
            for a, w in enumerate(words):
                ctx.set(bank.wr_en, 1)
                ctx.set(bank.wr_addr, a)
                ctx.set(bank.wr_data, w)
                ctx.set(bank.rd_addr, 7 - a)  # ignored while writing: one address
                await ctx.tick()
            ctx.set(bank.wr_en, 0)
        for a in range(8):
            ctx.set(bank.rd_addr, a)
            ctx.set(bank.rd_en, 1)
            await ctx.tick()
            seen.append([ctx.get(w) for w in bank.words])

    sim_top = Module()
    sim_top.domains.sync = ClockDomain()
    sim_top.submodules.bank = top
    sim = Simulator(sim_top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == [[(w >> (8 * i)) & 0xFF for i in range(pack)] for w in words]
    unused = Module()
    unused._MustUse__silence = True
    with pytest.raises(ValueError, match="needs its words"):
        WeightBank(unused, SERIAL, None, "rom", 8, None)


# ------------------------------------------------------------------ the memory image, built once
@pytest.mark.parametrize("name", ["tiny", "lstm-small-ice40"])
def test_memory_image_is_what_the_banks_hold(name):
    cfg = preset(name)
    w = random_weights(cfg, seed=3)
    img = memory_image(cfg, w)
    banks = weight_banks(cfg, w)
    assert [[list(b) for b in row] for row in img.weight_banks] == [[bank_words(cfg, b) for b in row] for row in banks]
    assert list(img.bias_words) == bias_words(cfg, w)
    # a component given the image builds the same design as one given the weights
    by_weights = verilog.convert(make_accelerator(cfg, w), name="top", emit_src=False)
    by_image = verilog.convert(make_accelerator(cfg, image=img), name="top", emit_src=False)
    assert by_image == by_weights
    with pytest.raises(ValueError, match="weights are needed"):
        make_accelerator(cfg)


def test_shared_blocks_in_both_hierarchies():
    cfg = preset("tiny")
    mvu = CirculantMVU(cfg, image=memory_image(cfg, random_weights(cfg, seed=0)))
    names = {name for _, name, _ in Fragment.get(mvu, None).subfragments}
    assert {"serializer", "bias_narrow", "pe_0_0", "pe_0_0_weights", "bias"} <= names
    acc = make_accelerator(SERIAL, random_weights(SERIAL, seed=0))
    names = {name for _, name, _ in Fragment.get(acc, None).subfragments}
    assert {"weights", "weight_rot", "lanes", "serializer", "bias_narrow"} <= names
