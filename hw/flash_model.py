"""Simulation models of weight memories: a quad-SPI NOR flash at pin level, and a bandwidth/latency source.

:class:`QSPIFlashModel` is a small Amaranth component holding a byte image
that answers, at pin level and in the same clock domain as the controller,
the subset of the Winbond W25Q command set (and the Micron variant of
0xEB) that :class:`~rnnaccel.hw.flash.FlashReader` uses, following the
datasheet's framing:

* ``0xAB`` release from deep power-down (the model starts powered down, as a
  flash is after an iCE40 has configured from it); no other command is
  accepted while powered down, and none within tRES1 after the release;
* ``0xB9`` power down; ``0x06``/``0x04`` write enable/disable; ``0x50``
  write enable for volatile status register (for the next command only);
* ``0x01`` (SR1, or SR1 and SR2) and ``0x31`` (SR2) write status register:
  needs ``0x50`` (volatile, immediate) or ``0x06`` (non-volatile: BUSY for
  ``tw_cycles``, then WEL clears); executed when CS rises on a byte boundary;
* ``0x05``/``0x35`` read status register 1/2 (on IO1);
* ``0xEB`` fast read quad I/O: address (and the mode byte, if the part has
  one) on IO0-IO3, the part's dummy clocks, then data from the falling edge
  of the last dummy clock, two clocks per byte, high nibble first, the
  address wrapping at the end of the array; mode bits M5-4 = 10 enter
  continuous read mode (the next command starts with its address);
* ``0x6B`` fast read quad output: address on IO0, 8 dummy clocks, data on IO0-IO3
  (with a 4-byte-address part also ``0xEC`` and ``0x6C``, their 4-byte forms);
* ``0xFF`` (continuous read mode reset) is accepted and does nothing.

Quad reads need the QE bit (status register 2, bit 1) when the part says
so; while QE = 0 IO3 is HOLD#, which must be driven high.
The model checks the protocol and latches the first violation in
``error_code`` (:class:`FlashError`): both sides driving a line, an input
bit not driven, HOLD# low, a command while powered down, busy, or within
tRES1, CS high for less than tSHSL, a status write without a write enable
or ending inside a byte, an unknown command, a line changing while SCK is
high, CS changing while SCK is high (mode 0 only). Its outputs change on
the cycle it sees SCK fall (zero clock-to-output delay), and undriven lines
read 1 (pull-ups).

:class:`MemoryModelSource` has :class:`~rnnaccel.hw.flash.FlashReader`'s
stream interface (``start``, ``o``, ``busy``, ``initialized``) in front of a
byte image with a configurable bandwidth (bytes per cycle, any fraction) and
latency: an external memory as the weight feed sees it, for schedules and
benchmarks. :func:`flash_timing` gives the values that imitate a flash reader.
"""

from __future__ import annotations

import math
from enum import IntEnum
from fractions import Fraction

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal
from amaranth.lib import fifo, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from .flash import W25Q128JV, FlashPart, QSPIPinsSignature, start_layout

__all__ = ["FlashError", "QSPIFlashModel", "MemoryModelSource", "flash_timing", "transfer_cycle"]


class FlashError(IntEnum):
    NONE = 0
    CONTENTION = 1  # the flash drives a line the controller drives too
    HOLD = 2  # QE = 0 and IO3 (HOLD#) not driven high while selected
    QUAD_DISABLED = 3  # a quad read with QE = 0
    POWERED_DOWN = 4  # a command other than 0xAB in deep power-down
    TRES1 = 5  # CS fell within tRES1 after 0xAB
    UNKNOWN_COMMAND = 6
    WRITE_NOT_ENABLED = 7  # a status write without 0x06 / 0x50 before it
    PARTIAL_BYTE = 8  # CS rose inside a byte of a command that needs whole bytes
    SETUP = 9  # a driven line or an output enable changed while SCK was high
    MODE = 10  # CS changed while SCK was high
    BUSY = 11  # a command other than 0x05 during a non-volatile write
    TSHSL = 12  # CS high for fewer than tshsl_cycles
    UNDRIVEN = 13  # the flash sampled an input line nobody drove


# phases of a command
_IDLE, _CMD, _ADDR, _MODE, _DUMMY, _DATA, _WDATA, _RDSR, _IGNORE = range(9)


def _pow2_at_least(n: int) -> int:
    return 1 << max(8, (max(n, 1) - 1).bit_length())


class QSPIFlashModel(wiring.Component):
    """Pin-level model of a quad-SPI NOR flash holding ``image`` (see the module docstring).

    Parameters
    ----------
    image : bytes-like
        Contents from address 0; the rest of the array reads 0xFF (erased).
    part : FlashPart
        Dummy clocks, mode byte, address width, whether quad reads need QE.
    size : int
        Array size in bytes (a power of two; default the smallest holding the image, at least 256).
    base : int
        Flash address of the image's first byte: address ``a`` reads array index ``(a - base) mod size``
        (so a weight image at the board's offset needs no array below it; ``base = 0``: the datasheet's
        wrap at the end of the array).
    qe, powered_down : bool
        QE bit and deep power-down state at reset.
    clk_hz : float
        Clock frequency the timing limits are converted with (tRES1 = ``tres1_ns``).
    tshsl_cycles, tw_cycles : int
        Minimum CS-high cycles; duration of a non-volatile status write.

    Members
    -------
    pins : In(QSPIPinsSignature())
    error : Out(1), error_code : Out(8)
        Sticky: the first protocol violation (:class:`FlashError`).
    qe, powered_down, busy : Out(1)
    reads : Out(16)
        Read commands that reached their data phase.
    """

    def __init__(
        self,
        image,
        *,
        part: FlashPart = W25Q128JV,
        size: int | None = None,
        base: int = 0,
        qe: bool = False,
        powered_down: bool = True,
        clk_hz: float = 100e6,
        tres1_ns: float = 3000.0,
        tshsl_cycles: int = 1,
        tw_cycles: int = 200,
    ):
        image = bytes(image)
        size = _pow2_at_least(len(image)) if size is None else size
        if size & (size - 1) or size < len(image):
            raise ValueError(f"size must be a power of two holding the image ({len(image)} bytes), not {size}")
        self._image = image
        self._size = size
        self._base = base
        self._part = part
        self._qe0 = bool(qe)
        self._pd0 = bool(powered_down)
        self._tres1 = math.ceil(tres1_ns * 1e-9 * clk_hz)
        self._tshsl = tshsl_cycles
        self._tw = tw_cycles
        super().__init__(
            {
                "pins": In(QSPIPinsSignature()),
                "error": Out(1),
                "error_code": Out(8),
                "qe": Out(1),
                "powered_down": Out(1),
                "busy": Out(1),
                "reads": Out(16),
            }
        )

    def elaborate(self, platform):
        return _ModelLogic(self).build()


class _ModelLogic:
    """The gateware of one :class:`QSPIFlashModel`, emitted into ``m`` part by part, in a fixed order.

    Amaranth names a signal after the variable it is created under and numbers duplicates in creation
    order, so each part creates its signals under the same local names (keep them, and the order) and
    leaves the ones later parts use as attributes.
    """

    def __init__(self, model: QSPIFlashModel):
        self.fm = model
        self.m = Module()
        self.part = part = model._part
        self.A = A = 8 * part.address_bytes
        self.abits = model._size.bit_length() - 1
        self.has_mode = part.mode_byte is not None
        # fast read quad I/O and quad output; 0xEC/0x6C are their 4-byte-address forms
        self.reads_io, self.reads_out = ((0xEB, 0xEC), (0x6B, 0x6C)) if A == 32 else ((0xEB,), (0x6B,))

    def build(self) -> Module:
        self._array()
        self._edges()
        self._registers()
        self._outputs()
        self._timers()
        self._checks()
        self._cs_edges()
        self._rising_edges()
        self._falling_edges()
        self._first_error()
        return self.m

    def flag(self, code, cond=None):
        """Raise the comb flag of ``code`` (where ``cond`` holds) in the current context."""
        m = self.m
        if cond is None:
            m.d.comb += self.flags[code].eq(1)
        else:
            with m.If(cond):
                m.d.comb += self.flags[code].eq(1)

    def _array(self):
        fm = self.fm
        fill = [0xFF] * (fm._size - len(fm._image))
        self.m.submodules.array = mem = memory.Memory(shape=8, depth=fm._size, init=list(fm._image) + fill)
        rp = mem.read_port(domain="comb")
        self.rp = rp

    def _edges(self):
        m, p = self.m, self.fm.pins
        sck, cs, din, doe = p.sck, p.cs, p.dq_o, p.dq_oe
        sck_q, cs_q = Signal(), Signal()
        m.d.sync += [sck_q.eq(sck), cs_q.eq(cs)]
        rise = Signal()
        fall = Signal()
        cs_fall = Signal()
        cs_rise = Signal()
        m.d.comb += [
            rise.eq(cs & cs_q & sck & ~sck_q),
            fall.eq(cs & cs_q & ~sck & sck_q),
            cs_fall.eq(cs & ~cs_q),
            cs_rise.eq(~cs & cs_q),
        ]
        self.sck, self.cs, self.din, self.doe, self.sck_q, self.cs_q = sck, cs, din, doe, sck_q, cs_q
        self.rise, self.fall, self.cs_fall, self.cs_rise = rise, fall, cs_fall, cs_rise

    def _registers(self):
        fm, part = self.fm, self.part
        phase = Signal(range(9))
        cnt = Signal(8)  # rising edges in this phase (saturating)
        cmd = Signal(8)
        quad_addr = Signal()
        addr = Signal(self.A)
        mode = Signal(8)
        ndummy = Signal(range(max(part.dummy_cycles, 8) + 1))
        wbuf = Signal(16)
        wbits = Signal(8)
        sr1_bits = Signal(8, init=0)  # BP/TB/SEC/SRP bits (2..7)
        sr2 = Signal(8, init=0b10 if fm._qe0 else 0)
        wel, vwe = Signal(), Signal()
        pd = Signal(init=int(fm._pd0))
        busy_cnt = Signal(range(fm._tw + 1))
        tres_cnt = Signal(range(fm._tres1 + 1))
        shsl = Signal(range(fm._tshsl + 1), init=fm._tshsl)
        cont = Signal()
        first = Signal()
        daddr = Signal(self.abits)
        dlow = Signal()
        rbit = Signal(3)
        out, drive = Signal(4), Signal(4)
        out_n, drive_n = Signal(4), Signal(4)
        lat_o, lat_oe = Signal(4), Signal(4)
        reads = Signal(16)
        self.phase, self.cnt, self.cmd, self.quad_addr, self.addr, self.mode = phase, cnt, cmd, quad_addr, addr, mode
        self.ndummy, self.wbuf, self.wbits, self.sr1_bits, self.sr2 = ndummy, wbuf, wbits, sr1_bits, sr2
        self.wel, self.vwe, self.pd, self.busy_cnt, self.tres_cnt = wel, vwe, pd, busy_cnt, tres_cnt
        self.shsl, self.cont, self.first, self.daddr, self.dlow, self.rbit = shsl, cont, first, daddr, dlow, rbit
        self.out, self.drive, self.out_n, self.drive_n = out, drive, out_n, drive_n
        self.lat_o, self.lat_oe, self.reads = lat_o, lat_oe, reads
        self.qe = sr2[1]
        self.busy = busy_cnt != 0
        self.sr1 = Cat(self.busy, wel, sr1_bits[2:])

    def _outputs(self):
        m, fm = self.m, self.fm
        out, drive, out_n, drive_n = self.out, self.drive, self.out_n, self.drive_n
        m.d.comb += [fm.qe.eq(self.qe), fm.powered_down.eq(self.pd), fm.busy.eq(self.busy), fm.reads.eq(self.reads)]
        m.d.comb += [out_n.eq(out), drive_n.eq(drive)]
        m.d.sync += [out.eq(out_n), drive.eq(drive_n)]
        m.d.comb += fm.pins.dq_i.eq((out_n & drive_n) | ~drive_n)
        start = Signal(self.abits)  # the array index of the read address
        m.d.comb += start.eq(self.addr - fm._base)
        m.d.comb += self.rp.addr.eq(Mux(self.first, start, self.daddr))
        self.start = start

        # one comb flag per violation, raised inside the context where it is detected; the lowest code wins
        self.flags = {c: Signal(name=f"err_{c.name.lower()}") for c in FlashError if c is not FlashError.NONE}

    def _timers(self):
        m, busy_cnt, tres_cnt, shsl, tshsl = self.m, self.busy_cnt, self.tres_cnt, self.shsl, self.fm._tshsl
        # ---- timers
        with m.If(busy_cnt == 1):
            m.d.sync += self.wel.eq(0)
        with m.If(busy_cnt != 0):
            m.d.sync += busy_cnt.eq(busy_cnt - 1)
        with m.If(tres_cnt != 0):
            m.d.sync += tres_cnt.eq(tres_cnt - 1)
        with m.If(~self.cs & (shsl != tshsl)):
            m.d.sync += shsl.eq(shsl + 1)

    def _checks(self):
        m, flag, cs, cs_q, sck, din, doe = self.m, self.flag, self.cs, self.cs_q, self.sck, self.din, self.doe
        lat_o, lat_oe, cnt = self.lat_o, self.lat_oe, self.cnt
        # ---- checks that hold in every cycle
        flag(FlashError.CONTENTION, (self.drive_n & doe) != 0)
        flag(FlashError.SETUP, cs & cs_q & sck & self.sck_q & ((doe != lat_oe) | ((din & doe) != (lat_o & lat_oe))))
        flag(FlashError.MODE, (self.cs_fall | self.cs_rise) & sck)
        with m.If(self.rise):
            m.d.sync += [lat_o.eq(din), lat_oe.eq(doe)]
            with m.If(cnt != 0xFF):
                m.d.sync += cnt.eq(cnt + 1)
            flag(FlashError.HOLD, Const(self.part.needs_qe) & ~self.qe & ~(doe[3] & din[3]))

    def _cs_edges(self):
        m, fm, flag, phase, cnt = self.m, self.fm, self.flag, self.phase, self.cnt
        wel, vwe, pd = self.wel, self.vwe, self.pd
        # ---- CS edges
        with m.If(self.cs_fall):
            flag(FlashError.TSHSL, self.shsl != fm._tshsl)
            flag(FlashError.TRES1, self.tres_cnt != 0)
            m.d.sync += [cnt.eq(0), self.wbits.eq(0), self.drive.eq(0)]
            with m.If(self.cont):
                m.d.sync += [phase.eq(_ADDR), self.cmd.eq(0xEB), self.quad_addr.eq(1)]
            with m.Else():
                m.d.sync += phase.eq(_CMD)
        with m.If(self.cs_rise):
            m.d.comb += self.drive_n.eq(0)
            m.d.sync += [phase.eq(_IDLE), self.shsl.eq(0), self.first.eq(0)]
            exact = (phase == _IGNORE) & (cnt == 8)
            with m.Switch(self.cmd):
                with m.Case(0xAB):
                    with m.If((phase == _IGNORE) & (cnt >= 8)):
                        m.d.sync += [pd.eq(0), self.tres_cnt.eq(fm._tres1)]
                with m.Case(0xB9):
                    with m.If(exact):
                        m.d.sync += pd.eq(1)
                with m.Case(0x06):
                    with m.If(exact):
                        m.d.sync += wel.eq(1)
                with m.Case(0x04):
                    with m.If(exact):
                        m.d.sync += wel.eq(0)
                with m.Case(0x50):
                    with m.If(exact):
                        m.d.sync += vwe.eq(1)
                with m.Case(0x01, 0x31):
                    with m.If(phase == _WDATA):
                        self._status_write()

    def _status_write(self):
        """CS rose after a status register write's data: check it, write the register(s)."""
        m, flag, wbits, wbuf, cmd = self.m, self.flag, self.wbits, self.wbuf, self.cmd
        vwe, wel, sr1_bits, sr2 = self.vwe, self.wel, self.sr1_bits, self.sr2
        whole = (wbits != 0) & (wbits[:3] == 0) & (wbits <= 16)
        flag(FlashError.PARTIAL_BYTE, ~whole)
        flag(FlashError.WRITE_NOT_ENABLED, whole & ~vwe & ~wel)
        with m.If(whole & (vwe | wel)):
            with m.If(cmd == 0x31):
                m.d.sync += sr2.eq(wbuf[:8] & 0x7B)
            with m.Elif(wbits == 8):
                m.d.sync += sr1_bits.eq(wbuf[:8] & 0xFC)
            with m.Else():
                m.d.sync += [sr1_bits.eq(wbuf[8:16] & 0xFC), sr2.eq(wbuf[:8] & 0x7B)]
            with m.If(~vwe):
                m.d.sync += self.busy_cnt.eq(self.fm._tw)
        m.d.sync += vwe.eq(0)

    def _rising_edges(self):
        m, flag, din, doe, cnt, phase, part = self.m, self.flag, self.din, self.doe, self.cnt, self.phase, self.part
        mode, reads, first = self.mode, self.reads, self.first
        # ---- rising edges: the flash samples
        with m.If(self.rise):
            with m.Switch(phase):
                with m.Case(_CMD):
                    self._sample_command()
                with m.Case(_ADDR):
                    self._sample_address()
                with m.Case(_MODE):
                    flag(FlashError.UNDRIVEN, doe != 0b1111)
                    m.d.sync += mode.eq(Cat(din, mode[:4]))
                    with m.If(cnt == 1):
                        m.d.sync += [
                            cnt.eq(0),
                            phase.eq(_DUMMY),
                            self.ndummy.eq(part.dummy_cycles),
                            self.cont.eq(mode[:2] == 0b10),
                        ]  # M5-4 of Cat(din, mode[:4])
                        if part.dummy_cycles == 0:
                            m.d.sync += [phase.eq(_DATA), first.eq(1), reads.eq(reads + 1)]
                with m.Case(_DUMMY):
                    with m.If(cnt + 1 == self.ndummy):
                        m.d.sync += [phase.eq(_DATA), first.eq(1), reads.eq(reads + 1)]
                with m.Case(_WDATA):
                    flag(FlashError.UNDRIVEN, ~doe[0])
                    wbuf, wbits = self.wbuf, self.wbits
                    m.d.sync += [wbuf.eq(Cat(din[0], wbuf[:15])), wbits.eq(Mux(wbits == 0xFF, wbits, wbits + 1))]

    def _sample_command(self):
        """A rising edge in the command byte: shift it in, and after its last bit decode it."""
        m, flag, cmd, cnt, phase, vwe = self.m, self.flag, self.cmd, self.cnt, self.phase, self.vwe
        reads_io, reads_out = self.reads_io, self.reads_out
        cmd_n = Cat(self.din[0], cmd[:7])
        flag(FlashError.UNDRIVEN, ~self.doe[0])
        m.d.sync += cmd.eq(cmd_n)
        with m.If(cnt == 7):
            m.d.sync += cnt.eq(0)
            with m.If(cmd_n != 0x50):
                m.d.sync += vwe.eq(vwe & ((cmd_n == 0x01) | (cmd_n == 0x31)))
            with m.If(self.pd & (cmd_n != 0xAB)):
                flag(FlashError.POWERED_DOWN)
                m.d.sync += phase.eq(_IGNORE)
            with m.Elif(self.busy & (cmd_n != 0x05)):
                flag(FlashError.BUSY)
                m.d.sync += phase.eq(_IGNORE)
            with m.Else():
                with m.Switch(cmd_n):
                    with m.Case(*reads_io, *reads_out):
                        with m.If(Const(self.part.needs_qe) & ~self.qe):
                            flag(FlashError.QUAD_DISABLED)
                            m.d.sync += phase.eq(_IGNORE)
                        with m.Else():
                            m.d.sync += [phase.eq(_ADDR), self.quad_addr.eq(sum(cmd_n == c for c in reads_io) != 0)]
                    with m.Case(0x01, 0x31):
                        m.d.sync += phase.eq(_WDATA)
                    with m.Case(0x05, 0x35):
                        m.d.sync += [phase.eq(_RDSR), self.rbit.eq(7)]
                    with m.Case(0xAB, 0xB9, 0x06, 0x04, 0x50, 0xFF):
                        m.d.sync += [phase.eq(_IGNORE), cnt.eq(8)]
                    with m.Default():
                        flag(FlashError.UNKNOWN_COMMAND)
                        m.d.sync += phase.eq(_IGNORE)

    def _sample_address(self):
        """A rising edge in the address: shift it in, and after its last bit go on to mode, dummy or data."""
        m, flag, din, doe, addr, cnt, phase = self.m, self.flag, self.din, self.doe, self.addr, self.cnt, self.phase
        quad_addr, A, part = self.quad_addr, self.A, self.part
        with m.If(quad_addr):
            flag(FlashError.UNDRIVEN, doe != 0b1111)
            m.d.sync += addr.eq(Cat(din, addr[:-4]))
        with m.Else():
            flag(FlashError.UNDRIVEN, ~doe[0])
            m.d.sync += addr.eq(Cat(din[0], addr[:-1]))
        with m.If(Mux(quad_addr, cnt == A // 4 - 1, cnt == A - 1)):
            m.d.sync += cnt.eq(0)
            with m.If(quad_addr & Const(self.has_mode)):
                m.d.sync += phase.eq(_MODE)
            with m.Else():
                m.d.sync += [phase.eq(_DUMMY), self.ndummy.eq(Mux(quad_addr, part.dummy_cycles, 8))]
                with m.If(Mux(quad_addr, part.dummy_cycles, 8) == 0):
                    m.d.sync += [phase.eq(_DATA), self.first.eq(1), self.reads.eq(self.reads + 1)]

    def _falling_edges(self):
        m, rp, out_n, drive_n, daddr, dlow = self.m, self.rp, self.out_n, self.drive_n, self.daddr, self.dlow
        # ---- falling edges: the flash drives
        with m.If(self.fall):
            with m.Switch(self.phase):
                with m.Case(_DATA):
                    m.d.comb += drive_n.eq(0b1111)
                    with m.If(self.first):
                        m.d.comb += out_n.eq(rp.data[4:])
                        m.d.sync += [self.first.eq(0), daddr.eq(self.start), dlow.eq(1)]
                    with m.Elif(dlow):
                        m.d.comb += out_n.eq(rp.data[:4])
                        m.d.sync += [daddr.eq(daddr + 1), dlow.eq(0)]
                    with m.Else():
                        m.d.comb += out_n.eq(rp.data[4:])
                        m.d.sync += dlow.eq(1)
                with m.Case(_RDSR):
                    value = Mux(self.cmd == 0x05, self.sr1, self.sr2)
                    m.d.comb += [drive_n.eq(0b0010), out_n.eq(Cat(Const(0, 1), value.bit_select(self.rbit, 1)))]
                    m.d.sync += self.rbit.eq(self.rbit - 1)

    def _first_error(self):
        m, fm = self.m, self.fm
        # ---- first error wins, sticky
        err = Signal()
        code = Signal(8)
        m.d.comb += [fm.error.eq(err), fm.error_code.eq(code)]
        with m.If(~err):
            for k, (c, f) in enumerate(self.flags.items()):
                with m.If(f) if k == 0 else m.Elif(f):
                    m.d.sync += [err.eq(1), code.eq(int(c))]


def flash_timing(part: FlashPart = W25Q128JV, divider: int = 1, sample_delay: int = 0) -> dict:
    """Bandwidth and first-word latency of :class:`~rnnaccel.hw.flash.FlashReader` for
    :class:`MemoryModelSource` (``divider = 1``: exact for the first word; otherwise within a divider)."""
    bpc = Fraction(1, 4 * divider)
    # the start is registered, CS falls a cycle later, the header takes 2 * divider cycles per clock, then
    # the sampling delay; the reader's output FIFO adds a cycle over the model's
    latency = 2 * divider * part.header_clocks + sample_delay + 1
    return {"bytes_per_cycle": bpc, "latency": latency}


def transfer_cycle(accept_cycle: int, n: int, word_bytes: int, bytes_per_cycle, latency: int) -> int:
    """:class:`MemoryModelSource`'s timing: the cycle word ``n`` of a read accepted in ``accept_cycle`` is
    transferred in when ``o.ready`` stays high."""
    rate = min(Fraction(bytes_per_cycle), Fraction(word_bytes))
    return accept_cycle + 1 + latency + math.ceil((n + 1) * word_bytes / rate)


class MemoryModelSource(wiring.Component):
    """A byte image behind a bus of ``bytes_per_cycle`` bandwidth and ``latency`` cycles, as a word stream.

    Same members as :class:`~rnnaccel.hw.flash.FlashReader` (``start``, ``o``, ``busy``,
    ``initialized``, without pins), same start/abort/count semantics and byte order. ``image`` sits at
    address ``base`` (addresses are taken modulo the image size rounded up to a power of two).

    Timing, exactly: with ``o.ready`` held high, word ``n`` (0-based) of a read whose start is
    accepted in cycle ``c`` is transferred in cycle ``c + 1 + latency + ceil((n + 1) * B / r)``, where
    ``B`` is the bytes per word and ``r = min(bytes_per_cycle, B)`` (at most one word per cycle). Bytes
    are only moved while the output FIFO has room, so back-pressure stalls the bus, and the bus does
    not bank unused bandwidth.
    """

    def __init__(
        self,
        image,
        word_width: int = 8,
        *,
        bytes_per_cycle=1,
        latency: int = 0,
        address_bytes: int = 3,
        count_width: int = 24,
        fifo_depth: int = 2,
        base: int = 0,
    ):
        if word_width % 8 or word_width <= 0:
            raise ValueError(f"word_width must be a positive multiple of 8, not {word_width!r}")
        rate = Fraction(bytes_per_cycle)
        if rate <= 0:
            raise ValueError(f"bytes_per_cycle must be positive, not {bytes_per_cycle!r}")
        if not isinstance(latency, int) or latency < 0:
            raise ValueError(f"latency must be a non-negative int, not {latency!r}")
        if not isinstance(fifo_depth, int) or fifo_depth < 1:
            raise ValueError(f"fifo_depth must be a positive int, not {fifo_depth!r}")
        self._image = bytes(image)
        self._size = _pow2_at_least(len(self._image))
        self._base = base
        self._wb = word_width // 8
        self._rate = min(rate, Fraction(self._wb))
        self._latency = latency
        self._abytes = address_bytes
        self._count_width = count_width
        self._depth = fifo_depth
        super().__init__(
            {
                "start": In(stream.Signature(start_layout(address_bytes, count_width))),
                "o": Out(stream.Signature(word_width)),
                "busy": Out(1),
                "initialized": Out(1),
            }
        )

    @property
    def rate(self) -> Fraction:
        """Effective bytes per cycle (at most one word per cycle)."""
        return self._rate

    def transfer_cycle(self, accept_cycle: int, n: int) -> int:
        """Cycle in which word ``n`` is transferred without back-pressure (see the class docstring)."""
        return transfer_cycle(accept_cycle, n, self._wb, self._rate, self._latency)

    def elaborate(self, platform):
        m = Module()
        wb = self._wb
        abits = self._size.bit_length() - 1
        mem = memory.Memory(
            shape=8, depth=self._size, init=list(self._image) + [0xFF] * (self._size - len(self._image))
        )
        m.submodules.image = mem
        num, den = self._rate.numerator, self._rate.denominator
        need = den * wb  # credit of one word, in units of 1/den bytes

        active = Signal()
        flush = Signal()
        accept = Signal()
        m.d.comb += [
            self.initialized.eq(1),
            self.start.ready.eq(1),
            accept.eq(self.start.valid),
            flush.eq(accept & active),
            self.busy.eq(active),
        ]
        q = fifo.SyncFIFO(width=8 * wb, depth=self._depth)
        m.submodules.fifo = ResetInserter(flush)(q)
        m.d.comb += [
            self.o.payload.eq(q.r_data),
            self.o.valid.eq(q.r_rdy & ~flush),
            q.r_en.eq(self.o.ready & ~flush),
        ]

        addr = Signal(abits)
        left = Signal(self._count_width)
        unbounded = Signal()
        wait = Signal(range(self._latency + 1))
        credit = Signal(range(need + num + 1))
        ports = []
        for k in range(wb):
            rp = mem.read_port(domain="comb")
            m.d.comb += rp.addr.eq(addr + k)
            ports.append(rp.data)
        m.d.comb += q.w_data.eq(Cat(*ports))

        emit = Signal()
        with m.If(active & (wait != 0)):
            m.d.sync += wait.eq(wait - 1)
        with m.Elif(active & q.w_rdy):
            total = credit + num
            with m.If(total >= need):
                m.d.comb += emit.eq(1)
                m.d.sync += [credit.eq(total - need), addr.eq(addr + wb)]
                with m.If(~unbounded):
                    m.d.sync += left.eq(left - 1)
                    with m.If(left == 1):
                        m.d.sync += active.eq(0)
            with m.Else():
                m.d.sync += credit.eq(total)
        with m.If(accept):
            count = self.start.payload.count
            m.d.sync += [
                active.eq(1),
                addr.eq(self.start.payload.addr - self._base),
                left.eq(count),
                unbounded.eq(count == 0),
                wait.eq(self._latency),
                credit.eq(0),
            ]
        m.d.comb += q.w_en.eq(emit & ~flush)
        return m
