"""cocotb test of the generated Verilog of MultiCore (issue 14): commands addressed to cores, tagged input
words with idle insertion, tagged outputs under back-pressure (and random stalls on the links between
pipeline cores), compared per core with the golden outputs the pytest side computed."""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge

from cocotb_support import read_case

CASE = read_case()


async def _command(dut, word):
    while True:
        await RisingEdge(dut.clk)
        await ReadOnly()
        if (int(dut.status.value) >> 1) & 1:
            break
    await RisingEdge(dut.clk)
    dut.i_cmd__payload.value = word
    dut.i_cmd__valid.value = 1
    while True:
        await ReadOnly()
        fire = int(dut.i_cmd__ready.value)
        await RisingEdge(dut.clk)
        if fire:
            break
    dut.i_cmd__valid.value = 0


async def _send(dut, words, rng, idle):
    pending = list(words)[::-1]
    current = None
    while pending or current is not None:
        await RisingEdge(dut.clk)
        if current is None and rng.random() >= idle:
            current = pending.pop()
        dut.i_x__valid.value = int(current is not None)
        if current is not None:
            dut.i_x__payload.value = current
        await ReadOnly()
        if current is not None and int(dut.i_x__ready.value):
            current = None
    await RisingEdge(dut.clk)
    dut.i_x__valid.value = 0


async def _stall_links(dut, rng, p, bits):
    while True:
        await RisingEdge(dut.clk)
        dut.link_stall.value = sum(1 << b for b in range(bits) if rng.random() < p)


@cocotb.test()
async def multicore_matches_golden(dut):
    rng = random.Random(CASE["seed"])
    xs, xmask = CASE["data_bits"], (1 << CASE["data_bits"]) - 1
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.i_x__valid.value = 0
    dut.i_cmd__valid.value = 0
    dut.o_h__ready.value = 0
    if CASE["link_bits"]:
        dut.link_stall.value = 0
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    for word in CASE["commands"]:
        await _command(dut, word)
    if CASE["link_bits"]:
        cocotb.start_soon(_stall_links(dut, rng, CASE["link_stall"], CASE["link_bits"]))
    sender = cocotb.start_soon(_send(dut, CASE["inputs"], rng, CASE["idle"]))
    want = {int(k): v for k, v in CASE["expected"].items()}
    got = {k: [] for k in want}
    need = sum(len(v) for v in want.values())
    cycles = 0
    while sum(len(v) for v in got.values()) < need:
        await RisingEdge(dut.clk)
        cycles += 1
        assert cycles < CASE["cycle_limit"], f"{got} after {cycles} cycles"
        take = int(rng.random() >= CASE["backpressure"])
        dut.o_h__ready.value = take
        await ReadOnly()
        if take and int(dut.o_h__valid.value):
            word = int(dut.o_h__payload.value)
            core, value = word >> xs, word & xmask
            value -= (1 << xs) if value >> (xs - 1) else 0
            assert core in got, f"output word from core {core}"
            got[core].append(value)
    await sender
    for core in want:
        assert got[core] == want[core], (
            f"core {core}: first differences "
            f"{[(i, g, w) for i, (g, w) in enumerate(zip(got[core], want[core])) if g != w][:5]}"
        )
