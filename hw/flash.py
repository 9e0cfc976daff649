"""Words from the board's quad-SPI NOR flash as a stream: the reader, its pin layer, flash part descriptions.

:class:`FlashReader` reads a quad-SPI NOR flash with the "fast read quad I/O"
command (``0xEB``: opcode on IO0, address and mode byte on IO0-IO3, dummy
clocks, then data on IO0-IO3, two clocks per byte) and delivers the bytes
as an :mod:`amaranth.lib.stream` of ``word_width``-bit words. A read is
started by a ``start`` transfer carrying the byte address and a word count
(0: until the next start); the words come out in address order, the first
byte in the word's low bits (little endian, as ``numpy.frombuffer(...,
"<u2")`` reads them). When the consumer stops taking words the reader stops
the SPI clock (with CS still asserted: a NOR flash is static, the next clock
edge resumes the burst), so nothing is lost or read twice.

Timing: SPI mode 0. SCK is a register toggled every ``divider`` system
clocks (SCK = clk / (2 * divider)); the reader changes its outputs on the
cycle SCK falls and the flash samples them when it rises; the flash changes
its outputs after a falling edge and the reader samples them ``sample_delay``
cycles after it raised SCK (0 with a zero-delay model on the same wires,
2 through :class:`QSPIFlashPHY`'s registered I/O buffers). In the data phase
a nibble takes one SCK period, so the reader delivers ``1 / (4 * divider)``
bytes per system cycle; a read costs ``8 + 2 * address_bytes + 2 + dummy``
SCK periods (20 for the W25Q128JV) before its first byte.

Before the first read the reader runs the part's ``init`` sequence (single
SPI, one CS-framed command per entry, each followed by a wait). For the
Winbond W25Q family that is ``0xAB`` (release from deep power-down: the
iCE40 powers the flash down after configuration unless the bitstream is
packed with ``icepack -s``; wait tRES1 = 3 us), ``0x50`` (write enable for
volatile status register) and ``0x31 0x02`` (status register 2 with QE = 1,
a volatile write: no wear, no tW; the "IQ" parts, as on the iCEBreaker,
have QE fixed at 1 anyway). IO2/IO3 double as WP#/HOLD# while QE = 0, so
in the single-SPI phases the reader drives them high. Micron N25Q/MT25Q
parts need no QE bit (quad commands always use DQ2/DQ3) and take 10 dummy
clocks for 0xEB by default, without a mode byte (:data:`MT25Q`).

:class:`QSPIFlashPHY` puts the reader on the pins: registered I/O buffers
(``io.FFBuffer``) for CS, SCK and each data line, so ``sample_delay`` is
:data:`PHY_SAMPLE_DELAY`; on ECP5 SCK goes through the ``USRMCLK``
primitive (the configuration clock pin is not a user pin there).
:func:`request_flash_ports` finds the pins: the ``spi_flash_4x`` resource
where the board declares it (amaranth-boards' iCEBreaker), else a quad
resource made from the pins of a 1x ``spi_flash`` that has ``wp``/``hold``
(the ULX3S: IO2 = WP#, IO3 = HOLD#). On iCE40 these are the configuration
SPI pins: user I/O once the device is configured. :class:`FlashSource` is
the two together for a board.

Simulation models live in :mod:`rnnaccel.hw.flash_model`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from amaranth.hdl import Array, Cat, Const, Instance, Module, Mux, ResetInserter, Signal
from amaranth.lib import data, fifo, io, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "FlashPart",
    "W25Q128JV",
    "MT25Q",
    "PARTS",
    "QSPIPinsSignature",
    "start_layout",
    "FlashReader",
    "QSPIFlashPHY",
    "PHY_SAMPLE_DELAY",
    "FlashPorts",
    "request_flash_ports",
    "FlashSource",
    "init_program",
]


@dataclass(frozen=True)
class FlashPart:
    """What the reader needs to know about a flash part (and what the model imitates).

    ``init`` entries are (command bytes, wait in ns after CS rises), sent in
    single-SPI mode before the first read. ``mode_byte`` is sent after the
    address on four lines (2 clocks; ``None``: no mode clocks); the dummy
    clocks follow with every line released. ``needs_qe``: quad commands
    only work once the QE status bit is set (the model checks it).
    """

    name: str
    read_command: int = 0xEB
    quad_address: bool = True
    address_bytes: int = 3
    mode_byte: int | None = 0xFF
    dummy_cycles: int = 4
    needs_qe: bool = True
    init: tuple[tuple[bytes, float], ...] = ()
    size: int = 16 << 20
    max_sck_hz: float = 104e6

    def replace(self, **changes) -> "FlashPart":
        return replace(self, **changes)

    @property
    def header_clocks(self) -> int:
        """SCK periods from CS low to the clock that samples the first data nibble (exclusive)."""
        a = 8 * self.address_bytes
        return 8 + (a // 4 if self.quad_address else a) + (2 if self.mode_byte is not None else 0) + self.dummy_cycles


#: Winbond W25Q128JV (the iCEBreaker's flash; also fitted to ULX3S boards): 0xEB with M7-0 = 0xFF
#: (M5-4 != 10: no continuous read mode) and 4 dummy clocks; wake from power-down, QE set volatile.
W25Q128JV = FlashPart(
    name="W25Q128JV",
    init=(
        (b"\xab", 3000.0),  # release from deep power-down, tRES1 = 3 us
        (b"\x50", 0.0),  # write enable for volatile status register
        (b"\x31\x02", 50.0),
    ),  # write status register 2: QE = 1 (volatile, tSHSL2 = 50 ns)
)

#: Micron MT25Q / N25Q: no QE bit, 0xEB with 10 dummy clocks (the nonvolatile configuration default), no
#: mode byte; 0xAB releases the MT25Q from deep power-down (the wait is conservative).
MT25Q = FlashPart(name="MT25Q", mode_byte=None, dummy_cycles=10, needs_qe=False, init=((b"\xab", 50000.0),))

PARTS = {"w25q128jv": W25Q128JV, "mt25q": MT25Q}

#: Cycles from the reader raising SCK to the sampled nibble reaching it through :class:`QSPIFlashPHY`
#: (output register, then input register).
PHY_SAMPLE_DELAY = 2


class QSPIPinsSignature(wiring.Signature):
    """Pin-level quad-SPI, from the controller's side: ``cs`` is asserted-high (the pin layer inverts),
    ``dq_oe`` enables each line's driver, ``dq_i`` is what the lines carry."""

    def __init__(self):
        super().__init__(
            {
                "sck": Out(1),
                "cs": Out(1),
                "dq_o": Out(4),
                "dq_oe": Out(4),
                "dq_i": In(4),
            }
        )


def start_layout(address_bytes: int = 3, count_width: int = 24) -> data.StructLayout:
    """Payload of the ``start`` stream: byte address, and word count (0 = until the next start)."""
    return data.StructLayout({"addr": 8 * address_bytes, "count": count_width})


def init_program(part: FlashPart, clk_hz: float, cs_high_cycles: int) -> list[tuple[int, bool, int]]:
    """The part's init sequence as (byte, last byte of its command, cycles to wait after CS rises)."""
    out = []
    for cmd, wait_ns in part.init:
        if not cmd:
            raise ValueError(f"{part.name}: an init command needs at least one byte")
        wait = max(cs_high_cycles, math.ceil(wait_ns * 1e-9 * clk_hz))
        for k, byte in enumerate(cmd):
            last = k == len(cmd) - 1
            out.append((int(byte), last, wait if last else 0))
    return out


def _check_int(name, value, low):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value!r}")


def swap_nibbles(value, width: int):
    """Bytes of ``value`` (an Amaranth value) with their two nibbles exchanged."""
    return Cat(*(Cat(value[8 * b + 4 : 8 * b + 8], value[8 * b : 8 * b + 4]) for b in range(width // 8)))


class FlashReader(wiring.Component):
    """Quad-SPI NOR flash reader streaming ``word_width``-bit words from a byte address.

    Parameters
    ----------
    word_width : int
        Bits per output word, a multiple of 8 (bytes in little-endian order).
    part : FlashPart
        Protocol of the flash (default :data:`W25Q128JV`).
    command, dummy_cycles, mode_byte :
        Override the part's read command, dummy clocks and mode byte.
    divider : int
        System clocks per SCK half period (SCK = clk / (2 * divider)).
    sample_delay : int
        Cycles from raising SCK until the data lines are sampled (see the module docstring).
    fifo_depth : int
        Words buffered between the SPI side and ``o`` (default: enough for full speed).
    count_width : int
        Width of the word count of a read.
    clk_hz : float
        Upper bound of the system clock (the init waits are computed from it).
    cs_high_cycles : int
        Minimum cycles CS stays high between commands (tSHSL).

    Members
    -------
    start : In(stream.Signature(start_layout))
        ``addr`` (byte address) and ``count`` (words; 0 = until the next start). Accepted whenever
        ``initialized``. A start accepted while ``busy`` aborts the running read: the words of the old
        read that were not transferred on ``o`` before are dropped (``o.valid`` is low in the cycle the
        start is accepted). A start accepted when not busy queues behind the words still buffered.
    o : Out(stream.Signature(word_width))
        The words.
    busy : Out(1)
        A read is issuing words (CS asserted), or one is pending.
    initialized : Out(1)
        The init sequence is done.
    pins : Out(QSPIPinsSignature())
        To :class:`QSPIFlashPHY` or, in simulation, a flash model.
    """

    def __init__(
        self,
        word_width: int = 8,
        *,
        part: FlashPart = W25Q128JV,
        command: int | None = None,
        dummy_cycles: int | None = None,
        mode_byte: int | None | str = "part",
        divider: int = 1,
        sample_delay: int = 0,
        fifo_depth: int | None = None,
        count_width: int = 24,
        clk_hz: float = 100e6,
        cs_high_cycles: int = 2,
    ):
        _check_int("word_width", word_width, 8)
        if word_width % 8:
            raise ValueError(f"word_width must be a multiple of 8, not {word_width}")
        changes = {}
        if command is not None:
            changes["read_command"] = command
        if dummy_cycles is not None:
            changes["dummy_cycles"] = dummy_cycles
        if mode_byte != "part":
            changes["mode_byte"] = mode_byte
        part = part.replace(**changes) if changes else part
        _check_int("read command", part.read_command, 0)
        if part.read_command > 0xFF:
            raise ValueError(f"the read command is one byte, not {part.read_command:#x}")
        _check_int("dummy_cycles", part.dummy_cycles, 0)
        if part.address_bytes not in (3, 4):
            raise ValueError(f"address_bytes must be 3 or 4, not {part.address_bytes!r}")
        if part.mode_byte is not None:
            _check_int("mode_byte", part.mode_byte, 0)
            if part.mode_byte > 0xFF:
                raise ValueError(f"mode_byte is one byte, not {part.mode_byte:#x}")
            if not part.quad_address:
                raise ValueError("a mode byte is only sent by quad I/O commands (quad_address=True)")
        if part.dummy_cycles + (2 if part.mode_byte is not None else 0) < 1:
            raise ValueError("at least one mode or dummy clock is needed to turn the data lines around")
        _check_int("divider", divider, 1)
        _check_int("sample_delay", sample_delay, 0)
        _check_int("count_width", count_width, 1)
        _check_int("cs_high_cycles", cs_high_cycles, 1)
        if fifo_depth is None:
            # the words a full-speed burst has in flight while the oldest waits to be taken
            fifo_depth = 2 + -(-(sample_delay + 3) // (word_width // 2 * divider))
        _check_int("fifo_depth", fifo_depth, 2)
        if not (isinstance(clk_hz, (int, float)) and clk_hz > 0):
            raise ValueError(f"clk_hz must be a positive number, not {clk_hz!r}")
        self._part = part
        self._word_width = word_width
        self._divider = divider
        self._sample_delay = sample_delay
        self._fifo_depth = fifo_depth
        self._count_width = count_width
        self._cs_high = cs_high_cycles
        self._init = init_program(part, clk_hz, cs_high_cycles)
        super().__init__(
            {
                "start": In(stream.Signature(start_layout(part.address_bytes, count_width))),
                "o": Out(stream.Signature(word_width)),
                "busy": Out(1),
                "initialized": Out(1),
                "pins": Out(QSPIPinsSignature()),
            }
        )

    part = property(lambda self: self._part)
    word_width = property(lambda self: self._word_width)
    divider = property(lambda self: self._divider)
    sample_delay = property(lambda self: self._sample_delay)
    fifo_depth = property(lambda self: self._fifo_depth)

    @property
    def bytes_per_cycle(self) -> float:
        """Peak data rate in bytes per system cycle (4 bits per SCK period)."""
        return 1 / (4 * self._divider)

    @property
    def cycles_per_word(self) -> int:
        return 2 * self._divider * (self._word_width // 4)

    def elaborate(self, platform):
        return _ReaderLogic(self).build()


class _ReaderLogic:
    """The gateware of one :class:`FlashReader`, emitted into ``m`` part by part, in a fixed order.

    Amaranth names a signal after the variable it is created under and numbers duplicates in creation
    order, so each part creates its signals under the same local names (keep them, and the order) and
    leaves the ones later parts use as attributes.
    """

    #: IO0 data, IO2 = WP# and IO3 = HOLD# held high, IO1 is the flash's
    SINGLE_OE = 0b1101

    def __init__(self, reader: FlashReader):
        self.r = reader
        self.m = Module()
        part, W = reader._part, reader._word_width
        self.part, self.W, self.div = part, W, reader._divider
        self.NW = W // 4  # nibbles (SCK periods) per word
        self.A = A = 8 * part.address_bytes
        self.quad = quad = part.quad_address
        self.mode_clks = mode_clks = 2 if part.mode_byte is not None else 0
        self.H = 8 + (A // 4 if quad else A) + mode_clks  # clocks with the controller driving
        self.D = self.H + part.dummy_cycles  # first data clock
        self.hdr = 8 + A + 4 * mode_clks

    def build(self) -> Module:
        self._clock_and_pins()
        self._start_control()
        self._word_fifo()
        self._sampling()
        self._command_registers()
        self._init_rom()
        self._fsm()
        self._latch_start()
        return self.m

    def single(self, bit):
        """Single-SPI outputs: ``bit`` on IO0."""
        return [self.dq_o.eq(Cat(bit, Const(0, 1), Const(1, 1), Const(1, 1))), self.dq_oe.eq(self.SINGLE_OE)]

    def _clock_and_pins(self):
        m, div = self.m, self.div
        # ---- SCK timing: one tick every `div` cycles
        if div > 1:
            timer = Signal(range(div))
            tick = Signal()
            m.d.comb += tick.eq(timer == 0)
            m.d.sync += timer.eq(Mux(tick, div - 1, timer - 1))
        else:
            tick = Const(1)
        self.tick = tick

        sck, cs = Signal(), Signal()
        dq_o, dq_oe = Signal(4, name="dq_o"), Signal(4, name="dq_oe")
        pins = self.r.pins
        m.d.comb += [pins.sck.eq(sck), pins.cs.eq(cs), pins.dq_o.eq(dq_o), pins.dq_oe.eq(dq_oe)]
        self.sck, self.cs, self.dq_o, self.dq_oe = sck, cs, dq_o, dq_oe

    def _start_control(self):
        m, r = self.m, self.r
        # ---- pending start
        pend = Signal()
        pend_addr = Signal(self.A)
        pend_count = Signal(r._count_width)
        initialized = Signal()
        reading = Signal()  # state READ: CS asserted for a read
        flush = Signal()
        m.d.comb += [
            r.start.ready.eq(initialized),
            flush.eq(r.start.valid & r.start.ready & reading),
            r.initialized.eq(initialized),
            r.busy.eq(reading | pend),
        ]
        self.pend, self.pend_addr, self.pend_count = pend, pend_addr, pend_count
        self.initialized, self.reading, self.flush = initialized, reading, flush

    def _word_fifo(self):
        m, r, flush = self.m, self.r, self.flush
        # ---- word FIFO, reset on abort
        q = fifo.SyncFIFOBuffered(width=self.W, depth=r._fifo_depth)
        m.submodules.fifo = ResetInserter(flush)(q)
        m.d.comb += [
            r.o.payload.eq(q.r_data),
            r.o.valid.eq(q.r_rdy & ~flush),
            q.r_en.eq(r.o.ready & ~flush),
        ]
        reserved = Signal(range(r._fifo_depth + 1))  # words started on the bus, not yet in the FIFO
        reserve = Signal()
        written = Signal()
        with m.If(flush):
            m.d.sync += reserved.eq(0)
        with m.Elif(reserve & ~written):
            m.d.sync += reserved.eq(reserved + 1)
        with m.Elif(written & ~reserve):
            m.d.sync += reserved.eq(reserved - 1)
        # room for one more word, from last cycle's occupancy (off the critical path): safe, because
        # occupancy only grows by a reservation, and a reservation last cycle denies it this cycle
        room_q, reserve_q, room = Signal(), Signal(), Signal()
        m.d.sync += [room_q.eq(q.level + reserved < r._fifo_depth), reserve_q.eq(reserve)]
        m.d.comb += room.eq(room_q & ~reserve_q)
        self.q, self.reserve, self.written, self.room = q, reserve, written, room

    def _sampling(self):
        m, r, flush, W = self.m, self.r, self.flush, self.W
        # ---- sampling pipeline: (valid, last nibble of a word) per data clock
        strobe, strobe_last = Signal(), Signal()
        cap, cap_last = strobe, strobe_last
        for k in range(r._sample_delay):
            v, lst = Signal(name=f"sample_v{k}"), Signal(name=f"sample_last{k}")
            m.d.sync += [v.eq(cap & ~flush), lst.eq(cap_last)]
            cap, cap_last = v, lst
        acc = Signal(W)
        shifted = Signal(W)
        m.d.comb += shifted.eq(Cat(acc[4:], r.pins.dq_i))
        with m.If(cap & ~flush):
            m.d.sync += acc.eq(shifted)
        m.d.comb += [
            self.written.eq(cap & cap_last & ~flush),
            self.q.w_en.eq(self.written),
            self.q.w_data.eq(swap_nibbles(shifted, W)),
        ]
        self.strobe, self.strobe_last = strobe, strobe_last

    def _command_registers(self):
        # ---- command engine
        sr = Signal(self.hdr)
        hclk = Signal(range(self.D + 1))  # SCK periods done in this command (saturates at D)
        nib = Signal(range(self.NW))
        words_left = Signal(self.r._count_width)
        unbounded = Signal()
        exhausted = Signal()  # a counted read has issued all its words
        gap = Signal(range(max(self.r._cs_high, 2) + 1))
        self.sr, self.hclk, self.nib, self.words_left = sr, hclk, nib, words_left
        self.unbounded, self.exhausted, self.gap = unbounded, exhausted, gap

    def _init_rom(self):
        m = self.m
        # init program
        prog = self.r._init
        n_init = len(prog)
        ii = Signal(range(n_init + 1))
        ibits = Signal(range(9))
        wait_max = max([w for _, _, w in prog] + [1])
        iwait = Signal(range(wait_max + 1))
        rom_byte_next = Signal(8)
        if n_init:
            rom_byte = Array(Const(b, 8) for b, _, _ in prog)[ii]
            rom_last = Array(Const(int(lst), 1) for _, lst, _ in prog)[ii]
            rom_wait = Array(Const(w, iwait.shape()) for _, _, w in prog)[ii]
            m.d.comb += rom_byte_next.eq(Array(Const(b, 8) for b, _, _ in prog + [(0, True, 0)])[ii + 1])
        else:
            rom_byte, rom_last, rom_wait = Const(0, 8), Const(1, 1), Const(0, iwait.shape())
        self.n_init, self.ii, self.ibits, self.iwait, self.rom_byte_next = n_init, ii, ibits, iwait, rom_byte_next
        self.rom_byte, self.rom_last, self.rom_wait = rom_byte, rom_last, rom_wait

        # after the fall that ends clock `hclk - 1`: shift by that clock's width, drive clock `hclk`
        sr, hclk = self.sr, self.hclk
        sr_next = Signal(self.hdr)
        wide_prev = (hclk > 8) if self.quad else Const(0)
        m.d.comb += sr_next.eq(Mux(wide_prev, Cat(Const(0, 4), sr[:-4]), Cat(Const(0, 1), sr[:-1])))
        self.sr_next = sr_next

    def _fsm(self):
        with self.m.FSM(name="flash"):
            self._init_states()
            self._idle_state()
            self._read_state()
            self._gap_state()

    def _init_states(self):
        m, tick, sck, sr, ii, ibits = self.m, self.tick, self.sck, self.sr, self.ii, self.ibits
        with m.State("INIT"):
            with m.If(ii == self.n_init):
                m.d.sync += self.initialized.eq(1)
                m.next = "IDLE"
            with m.Elif(tick):
                m.d.sync += [self.cs.eq(1), sr[-8:].eq(self.rom_byte), ibits.eq(0)]
                m.d.sync += self.single(self.rom_byte[7])
                m.next = "INIT_SHIFT"
        with m.State("INIT_SHIFT"):
            with m.If(tick & ~sck):
                m.d.sync += [sck.eq(1), ibits.eq(ibits + 1)]
            with m.Elif(tick & sck):
                m.d.sync += sck.eq(0)
                with m.If(ibits == 8):
                    with m.If(self.rom_last):
                        m.next = "INIT_END"
                    with m.Else():
                        m.d.sync += [ii.eq(ii + 1), sr[-8:].eq(self.rom_byte_next), ibits.eq(0)]
                        m.d.sync += self.single(self.rom_byte_next[7])
                with m.Else():
                    m.d.sync += sr[-8:].eq(sr[-8:] << 1)
                    m.d.sync += self.single(sr[-2])
        with m.State("INIT_END"):
            with m.If(tick):
                m.d.sync += [self.cs.eq(0), self.dq_oe.eq(0), self.iwait.eq(self.rom_wait), ii.eq(ii + 1)]
                m.next = "INIT_WAIT"
        with m.State("INIT_WAIT"):
            with m.If(self.iwait != 0):
                m.d.sync += self.iwait.eq(self.iwait - 1)
            with m.Else():
                m.next = "INIT"

    def _idle_state(self):
        m, part, pend_count = self.m, self.part, self.pend_count
        with m.State("IDLE"):
            with m.If(self.pend & self.tick):
                cmd_addr_mode = [Const(part.mode_byte, 8)] if self.mode_clks else []
                m.d.sync += [
                    self.cs.eq(1),
                    self.pend.eq(0),
                    self.sr.eq(Cat(*cmd_addr_mode, self.pend_addr, Const(part.read_command, 8))),
                    self.hclk.eq(0),
                    self.nib.eq(0),
                    self.words_left.eq(pend_count),
                    self.unbounded.eq(pend_count == 0),
                    self.exhausted.eq(0),
                ]
                m.d.sync += self.single(Const((part.read_command >> 7) & 1, 1))
                m.next = "READ"

    def _read_state(self):
        m, tick, sck, cs, hclk, nib, NW = self.m, self.tick, self.sck, self.cs, self.hclk, self.nib, self.NW
        dq_oe, gap, cs_high = self.dq_oe, self.gap, self.r._cs_high
        with m.State("READ"):
            m.d.comb += self.reading.eq(1)
            in_data = hclk == self.D
            with m.If(self.pend):  # abort: SCK low, then CS high
                with m.If(tick & sck):
                    m.d.sync += sck.eq(0)
                with m.Elif(tick):
                    m.d.sync += [cs.eq(0), dq_oe.eq(0), gap.eq(cs_high - 1)]
                    m.next = "GAP"
            with m.Elif(tick & sck):  # falling edge: outputs for clock `hclk`
                self._read_fall()
            with m.Elif(tick):  # SCK low: raise it, or finish
                with m.If(~in_data):
                    m.d.sync += [sck.eq(1), hclk.eq(hclk + 1)]
                with m.Elif((nib == 0) & self.exhausted):
                    m.d.sync += [cs.eq(0), dq_oe.eq(0), gap.eq(cs_high - 1)]
                    m.next = "GAP"
                with m.Elif((nib != 0) | self.room):
                    m.d.sync += [sck.eq(1), nib.eq(Mux(nib == NW - 1, 0, nib + 1))]
                    m.d.comb += [self.strobe.eq(1), self.strobe_last.eq(nib == NW - 1)]
                    with m.If(nib == 0):
                        m.d.comb += self.reserve.eq(1)
                        with m.If(~self.unbounded):
                            m.d.sync += [
                                self.words_left.eq(self.words_left - 1),
                                self.exhausted.eq(self.words_left == 1),
                            ]

    def _read_fall(self):
        """Falling edge in READ: shift the header, drive the lines for clock ``hclk``."""
        m, hclk, sr_next, H = self.m, self.hclk, self.sr_next, self.H
        m.d.sync += [self.sck.eq(0), self.sr.eq(sr_next)]
        with m.If((hclk < 8) | (Const(not self.quad) & (hclk < H))):
            m.d.sync += self.single(sr_next[-1])
        with m.Elif(hclk < H):
            m.d.sync += [self.dq_o.eq(sr_next[-4:]), self.dq_oe.eq(0b1111)]
        with m.Else():
            m.d.sync += self.dq_oe.eq(0)

    def _gap_state(self):
        m, gap = self.m, self.gap
        with m.State("GAP"):
            with m.If(gap != 0):
                m.d.sync += gap.eq(gap - 1)
            with m.Else():
                m.next = "IDLE"

    def _latch_start(self):
        m, start = self.m, self.r.start
        # after the FSM: a start accepted in the cycle IDLE takes the previous one wins (READ then aborts)
        with m.If(start.valid & start.ready):
            m.d.sync += [
                self.pend.eq(1),
                self.pend_addr.eq(start.payload.addr),
                self.pend_count.eq(start.payload.count),
            ]


# ----------------------------------------------------------------------------------------- pins


@dataclass
class FlashPorts:
    """I/O ports of a quad-SPI flash: ``cs`` (asserted when the port's value is 1, inversion is the port's),
    ``dq`` (4 lines, IO0 first), ``clk`` (``None`` on ECP5, where SCK goes through ``USRMCLK``)."""

    cs: object
    dq: object
    clk: object | None


def _has_resource(platform, name, number) -> bool:
    from amaranth.build import ResourceError

    try:
        platform.lookup(name, number)
        return True
    except ResourceError:
        return False


def request_flash_ports(platform, number: int = 0) -> FlashPorts:
    """The flash's ports on ``platform``: ``spi_flash_4x`` if declared, else a quad resource built from a 1x
    ``spi_flash`` with ``wp``/``hold`` pins (added to the platform as ``spi_flash_4x``)."""
    from amaranth.build import Pins, PinsN, Resource, ResourceError, Subsignal

    if not _has_resource(platform, "spi_flash_4x", number):
        if not _has_resource(platform, "spi_flash", number):
            raise ResourceError(f"the platform declares no spi_flash_4x or spi_flash resource #{number}")
        res = platform.lookup("spi_flash", number)
        pins = {}
        for sub in res.ios:
            p = sub.ios[0]
            pins[sub.name] = list(p.names)  # connector pins already resolved to device pins
        missing = [n for n in ("cs", "copi", "cipo", "wp", "hold") if n not in pins]
        if missing:
            raise ResourceError(f"spi_flash #{number} has no {', '.join(missing)} pins: no quad mode on this board")
        ios = [Subsignal("cs", PinsN(" ".join(pins["cs"]), dir="o"))]
        if "clk" in pins:
            ios.append(Subsignal("clk", Pins(" ".join(pins["clk"]), dir="o")))
        dq = " ".join(pins[n][0] for n in ("copi", "cipo", "wp", "hold"))
        ios.append(Subsignal("dq", Pins(dq, dir="io")))
        platform.add_resources([Resource("spi_flash_4x", number, *ios, res.attrs)])
    res = platform.lookup("spi_flash_4x", number)
    names = [sub.name for sub in res.ios]
    dirs = {n: "-" for n in names}
    port = platform.request("spi_flash_4x", number, dir=dirs)
    return FlashPorts(cs=port.cs, dq=port.dq, clk=port.clk if "clk" in names else None)


class QSPIFlashPHY(wiring.Component):
    """Registered I/O buffers between :class:`FlashReader` pins and the flash's ports.

    Every output (CS, SCK, each line's value and enable) goes through one register and every input
    through one, so the reader's ``sample_delay`` must be :data:`PHY_SAMPLE_DELAY`. Without a
    ``clk`` port (ECP5: the configuration clock is reached through ``USRMCLK``) SCK is registered once
    in logic and handed to a ``USRMCLK`` instance.
    """

    def __init__(self, ports: FlashPorts):
        self._ports = ports
        if len(ports.dq) != 4:
            raise ValueError(f"a quad-SPI flash has 4 data lines, not {len(ports.dq)}")
        super().__init__({"pins": In(QSPIPinsSignature())})

    def elaborate(self, platform):
        m = Module()
        p = self._ports
        m.submodules.cs = cs = io.FFBuffer("o", p.cs)
        m.d.comb += cs.o.eq(self.pins.cs)
        if p.clk is not None:
            m.submodules.clk = clk = io.FFBuffer("o", p.clk)
            m.d.comb += clk.o.eq(self.pins.sck)
        else:
            sck_q = Signal()
            m.d.sync += sck_q.eq(self.pins.sck)
            m.submodules.usrmclk = Instance("USRMCLK", i_USRMCLKI=sck_q, i_USRMCLKTS=Const(0, 1), a_keep=1)
        for k in range(4):
            buf = io.FFBuffer("io", p.dq[k])
            m.submodules[f"dq{k}"] = buf
            m.d.comb += [buf.o.eq(self.pins.dq_o[k]), buf.oe.eq(self.pins.dq_oe[k]), self.pins.dq_i[k].eq(buf.i)]
        return m


class FlashSource(wiring.Component):
    """:class:`FlashReader` on the board's flash pins (or on given :class:`FlashPorts`, e.g. simulation ports).

    Members are the reader's (``start``, ``o``, ``busy``, ``initialized``); keyword arguments go to it
    (``sample_delay`` is fixed at :data:`PHY_SAMPLE_DELAY`).
    """

    def __init__(self, word_width: int = 8, *, ports: FlashPorts | None = None, number: int = 0, **reader_args):
        if "sample_delay" in reader_args:
            raise TypeError("FlashSource sets sample_delay itself (PHY_SAMPLE_DELAY)")
        self._ports = ports
        self._number = number
        self.reader = FlashReader(word_width, sample_delay=PHY_SAMPLE_DELAY, **reader_args)
        members = {k: v for k, v in self.reader.signature.members.items() if k != "pins"}
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ports = self._ports
        if ports is None:
            if platform is None:
                raise TypeError("FlashSource needs a platform with a flash, or ports=FlashPorts(...)")
            ports = request_flash_ports(platform, self._number)
        m.submodules.reader = r = self.reader
        m.submodules.phy = phy = QSPIFlashPHY(ports)
        wiring.connect(m, r.pins, phy.pins)
        m.d.comb += [
            r.start.valid.eq(self.start.valid),
            r.start.payload.eq(self.start.payload),
            self.start.ready.eq(r.start.ready),
            self.o.valid.eq(r.o.valid),
            self.o.payload.eq(r.o.payload),
            r.o.ready.eq(self.o.ready),
            self.busy.eq(r.busy),
            self.initialized.eq(r.initialized),
        ]
        return m
