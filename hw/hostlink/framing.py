"""Framing: the receiver (SYNC hunt, header, payload into the buffer, CRC check, inter-byte timeout) and the
reader that plays a stored payload back as a byte stream."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ...interface.protocol import CORE_FLAG, CRC, SYNC
from .checks import check_int

__all__ = ["FRAME_LAYOUT", "FrameReceiver", "PayloadReader"]


#: What the receiver hands to the engine for each frame. An addressed frame (``cmd`` has
#: :data:`~rnnaccel.interface.protocol.CORE_FLAG`) has its first payload byte in ``core``, not in the buffer,
#: and ``length`` counts the rest; ``no_core``: it was addressed but had no payload at all.
FRAME_LAYOUT = data.StructLayout(
    {"cmd": 8, "length": 16, "crc_ok": 1, "timeout": 1, "addressed": 1, "core": 8, "no_core": 1}
)


class FrameReceiver(wiring.Component):
    """Frame parser: SYNC hunt, header, payload into a buffer, CRC check, inter-byte timeout.

    Parameters
    ----------
    capacity : int
        Payload buffer bytes; payload bytes beyond it are counted (and
        covered by the CRC) but not stored.
    timeout_cycles : int
        Cycles without a byte, inside a frame, after which the frame ends with
        ``timeout`` set and the receiver hunts for SYNC again.

    Members
    -------
    i_byte : In(stream.Signature(8))
        Received bytes; not taken while a finished frame waits on ``o_frame``.
    o_frame : Out(stream.Signature(FRAME_LAYOUT))
        One element per frame (good, bad CRC or timed out); the payload stays
        in the buffer until ``ready``.
    wr_addr, wr_data, wr_en : Out
        The buffer's write port.
    active : Out(1)
        Inside a frame.
    """

    def __init__(self, capacity: int, timeout_cycles: int):
        check_int("capacity", capacity, 1, 0xFFFF)
        check_int("timeout_cycles", timeout_cycles, 1)
        self._capacity = capacity
        self._timeout = timeout_cycles
        super().__init__(
            {
                "i_byte": In(stream.Signature(8)),
                "o_frame": Out(stream.Signature(FRAME_LAYOUT)),
                "wr_addr": Out(range(capacity)),
                "wr_data": Out(8),
                "wr_en": Out(1),
                "active": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cap = self._capacity
        m.submodules.crc = crc = CRC.create()  # over cmd .. crc_lo; a good frame leaves the residue
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)
        last = Signal()  # the next payload byte is the last (registered: count + 1 == length, off the enables)
        timer = Signal(range(self._timeout + 1))
        crc_ok = Signal()
        timed_out = Signal()
        core = Signal(8)
        no_core = Signal()
        addressed = Signal()
        m.d.comb += addressed.eq((cmd & CORE_FLAG) != 0)
        byte = self.i_byte.payload
        take = Signal()
        # the inter-byte timeout, one cycle ahead: ``expire`` is set in the cycle where ``timer`` reaches
        # ``timeout - 1`` with no byte taken, from a compare registered the cycle before
        expire = Signal(name="rx_expire")
        m.d.comb += [
            take.eq(self.i_byte.valid & self.i_byte.ready),
            self.o_frame.payload.cmd.eq(cmd),
            self.o_frame.payload.length.eq(length),
            self.o_frame.payload.crc_ok.eq(crc_ok),
            self.o_frame.payload.timeout.eq(timed_out),
            self.o_frame.payload.addressed.eq(addressed),
            self.o_frame.payload.core.eq(core),
            self.o_frame.payload.no_core.eq(no_core),
            self.wr_addr.eq(count),
            self.wr_data.eq(byte),
            crc.data.eq(byte),
        ]
        complete = Signal()  # the frame ended with its last CRC byte (not a timeout)
        # the CRC register takes a byte a cycle after it: in HOLD it has seen the whole frame
        m.d.comb += crc_ok.eq(complete & crc.match_detected)

        def in_frame(on_byte):
            """Common body of the states inside a frame: CRC, timeout, then the state's own step."""
            m.d.comb += [self.i_byte.ready.eq(1), self.active.eq(1)]
            m.d.comb += crc.valid.eq(take)
            with m.If(take):
                m.d.sync += [timer.eq(0), expire.eq(self._timeout == 1)]
                on_byte()
            with m.Else():
                m.d.sync += [timer.eq(timer + 1), expire.eq(timer == self._timeout - 2)]
                with m.If(expire):
                    m.d.sync += [timed_out.eq(1), complete.eq(0)]
                    m.next = "HOLD"

        with m.FSM(name="rx"):
            with m.State("HUNT"):
                m.d.comb += self.i_byte.ready.eq(1)
                with m.If(take & (byte == SYNC)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [cmd.eq(0), length.eq(0), timer.eq(0), core.eq(0), no_core.eq(0)]
                    m.d.sync += expire.eq(self._timeout == 1)
                    m.next = "CMD"
            with m.State("CMD"):

                def step():
                    m.d.sync += cmd.eq(byte)
                    m.next = "LEN0"

                in_frame(step)
            with m.State("LEN0"):

                def step():
                    m.d.sync += length[:8].eq(byte)
                    m.next = "LEN1"

                in_frame(step)
            with m.State("LEN1"):

                def step():
                    m.d.sync += [length[8:].eq(byte), count.eq(0), last.eq(Cat(length[:8], byte) == 1)]
                    with m.If(Cat(length[:8], byte) == 0):
                        m.d.sync += no_core.eq(addressed)
                        m.next = "CRC0"
                    with m.Elif(addressed):
                        m.next = "CORE"
                    with m.Else():
                        m.next = "PAYLOAD"

                in_frame(step)
            with m.State("CORE"):  # an addressed frame's core byte: kept aside, not counted in the length

                def step():
                    m.d.sync += [core.eq(byte), length.eq(length - 1), last.eq(length == 2)]
                    with m.If(length == 1):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"

                in_frame(step)
            with m.State("PAYLOAD"):

                def step():
                    m.d.comb += self.wr_en.eq(count < cap)
                    m.d.sync += [count.eq(count + 1), last.eq(count + 2 == length)]
                    with m.If(last):
                        m.next = "CRC0"

                in_frame(step)
            with m.State("CRC0"):

                def step():
                    m.next = "CRC1"

                in_frame(step)
            with m.State("CRC1"):

                def step():
                    m.d.sync += [complete.eq(1), timed_out.eq(0)]
                    m.next = "HOLD"

                in_frame(step)
            with m.State("HOLD"):
                m.d.comb += self.o_frame.valid.eq(1)
                with m.If(self.o_frame.ready):
                    m.next = "HUNT"
        return m


class PayloadReader:
    """The buffered payload as a byte stream, emitted into the engine's module.

    It has two consumers, never at once: the payload walker (while it walks) and the PING echo
    (while the transmitter sends the payload). ``b_ready`` is chosen by who owns the reader now,
    never by a response source left over from an earlier frame.

    Attributes
    ----------
    b_valid : Signal
        ``data`` holds the next payload byte.
    data : Value
        The byte on offer (the buffer's read data).
    walk_take, echo_take : Signal
        The walker / the echo source consumes the byte on offer (driven by them).
    walking : Signal
        The walker owns the reader (driven by the walker).
    rd_restart : Signal
        Start again from the payload's first byte.
    exhausted : Signal
        No byte on offer and none left to read.
    """

    def __init__(self, m: Module, rp, length):
        rd_ptr = Signal(17)
        b_valid = Signal()
        b_ready = Signal()
        walk_take = Signal()  # the walker consumes the byte on offer
        echo_take = Signal()  # the echo source consumes the byte on offer
        walking = Signal()  # the walker owns the reader
        m.d.comb += b_ready.eq(Mux(walking, walk_take, echo_take))
        rd_restart = Signal()
        exhausted = Signal()
        # more == (rd_ptr < length), kept as a register (timing: the 17-bit compare fed the walker's enables;
        # now it only feeds this flip-flop). Both consumers restart the reader before they read, and the
        # frame's length holds until the frame is released.
        more = Signal()
        m.d.comb += [rp.addr.eq(rd_ptr), rp.en.eq(~b_valid | b_ready), exhausted.eq(~b_valid & ~more)]
        with m.If(rd_restart):
            m.d.sync += [rd_ptr.eq(0), b_valid.eq(0), more.eq(length != 0)]
        with m.Elif(rp.en):
            with m.If(more):
                m.d.sync += [rd_ptr.eq(rd_ptr + 1), b_valid.eq(1), more.eq(rd_ptr + 1 < length)]
            with m.Else():
                m.d.sync += b_valid.eq(0)
        self.b_valid, self.data = b_valid, rp.data
        self.walk_take, self.echo_take, self.walking = walk_take, echo_take, walking
        self.rd_restart, self.exhausted = rd_restart, exhausted
