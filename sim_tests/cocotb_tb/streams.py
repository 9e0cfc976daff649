"""Stream source/sink models shared by the cocotb test modules (valid/ready, idle insertion, back-pressure)."""

from __future__ import annotations

import itertools
import random

from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge


#: Per-cycle 0/1 patterns for idle insertion (``i``) and back-pressure (``o``).
PATTERNS = ("none", "cycle", "random")


def pattern(kind: str, seed: int):
    """Per-cycle 0/1 pattern: ``none`` (always 1), ``cycle`` (1, 1, 1, 0, ...) or seeded ``random``."""
    if kind == "none":
        return itertools.repeat(1)
    if kind == "cycle":
        return itertools.cycle([1, 1, 1, 0])
    if kind == "random":
        rng = random.Random(seed)
        return (int(rng.random() < 0.6) for _ in itertools.count())
    raise ValueError(f"unknown pattern {kind!r}")


class TB:
    """Clock, reset, a stream source on ``i`` and a stream sink on ``o``.

    Each side acts once per cycle: after the rising edge it drives its
    signals, then in the read-only phase it sees whether a transfer happens at
    the next edge (``valid & ready``), so there are no races with the DUT's
    registers in either simulator.
    """

    def __init__(self, dut):
        self.dut = dut
        self.cycles = 0
        Clock(dut.clk, 10, unit="ns").start()
        dut.rst.value = 1
        dut.i__valid.value = 0
        dut.i__payload.value = 0
        dut.o__ready.value = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    async def send(self, values, idle):
        """Offer ``values`` on ``i``; ``idle`` gives 1 when a new element may be offered this cycle."""
        dut = self.dut
        pending = list(values)[::-1]
        current = None
        while pending or current is not None:
            await RisingEdge(dut.clk)
            if current is None and next(idle):
                current = pending.pop()
            dut.i__valid.value = int(current is not None)
            if current is not None:
                dut.i__payload.value = current
            await ReadOnly()
            if current is not None and int(dut.i__ready.value):
                current = None
        await RisingEdge(dut.clk)
        dut.i__valid.value = 0

    async def receive(self, count, ready, limit):
        """Take ``count`` elements from ``o``; ``ready`` gives o.ready per cycle."""
        dut = self.dut
        out = []
        while len(out) < count:
            await RisingEdge(dut.clk)
            self.cycles += 1
            assert self.cycles <= limit, f"only {len(out)} of {count} outputs after {limit} cycles"
            take = next(ready)
            dut.o__ready.value = take
            await ReadOnly()
            if int(dut.o__valid.value) and take:
                out.append(dut.o__payload.value.to_signed())
        return out
