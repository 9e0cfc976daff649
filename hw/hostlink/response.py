"""The transmit side: the frame transmitter and the mux of response payload sources (INFO, counters, NAK, PING
echo, the RUN outputs)."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ...interface import protocol
from ...interface.protocol import CRC, SYNC
from ..pipeline import stream_register

__all__ = [
    "FrameTransmitter",
    "ResponseMux",
    "SRC_INFO",
    "SRC_COUNTERS",
    "SRC_NAK",
    "SRC_ECHO",
    "SRC_RUN",
    "SRC_NONE",
    "COUNTER_BYTES",
]


# response payload sources
SRC_INFO, SRC_COUNTERS, SRC_NAK, SRC_ECHO, SRC_RUN, SRC_NONE = range(6)
#: READ_COUNTERS' payload: cycles, wait cycles, steps, status, rejected frames.
COUNTER_BYTES = 15


class FrameTransmitter(wiring.Component):
    """Sends one frame: SYNC, command, length, ``length`` payload bytes pulled from ``i_payload``, CRC.

    Members
    -------
    start : In(1)
        Begin a frame with ``cmd`` and ``length`` (sampled when idle).
    cmd : In(8)
    length : In(16)
    i_payload : In(stream.Signature(8))
        The payload, exactly ``length`` bytes.
    o_byte : Out(stream.Signature(8))
        The frame's bytes.
    busy : Out(1)
        A frame is being sent (high from the cycle after ``start`` until the last CRC byte is taken).
    """

    def __init__(self):
        super().__init__(
            {
                "start": In(1),
                "cmd": In(8),
                "length": In(16),
                "i_payload": In(stream.Signature(8)),
                "o_byte": Out(stream.Signature(8)),
                "busy": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        cmd = Signal(8)
        length = Signal(16)
        taken = Signal(16)  # payload bytes taken from i_payload
        more = Signal()  # taken < length (registered: the compare is off the handshake's path)
        in_payload = Signal()
        m.submodules.crc = crc = CRC.create()  # over cmd .. payload; sent high byte first
        out = self.o_byte
        sent = Signal()
        m.d.comb += [sent.eq(out.valid & out.ready), crc.data.eq(out.payload)]

        def send(value, nxt=None, covered=True):
            """Offer ``value``; when it is taken, fold it into the CRC (``covered``) and go to ``nxt``."""
            m.d.comb += [self.busy.eq(1), out.valid.eq(1), out.payload.eq(value)]
            if covered:
                m.d.comb += crc.valid.eq(sent)
            with m.If(sent):
                if nxt is not None:
                    m.next = nxt

        # the payload passes a register, so the CRC and the UART start from a flip-flop, not from the payload
        # sources (the buffer's block RAM, the INFO table, the output serializer); ``length`` bytes in all
        inp = self.i_payload
        pl_ready, full, (held,) = stream_register(
            m, inp.valid, [inp.payload], in_payload & out.ready, take=in_payload & more, name="tx_payload"
        )
        with m.FSM(name="tx"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length), taken.eq(0), more.eq(self.length != 0)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                send(SYNC, "CMD", covered=False)
            with m.State("CMD"):
                send(cmd, "LEN0")
            with m.State("LEN0"):
                send(length[:8], "LEN1")
            with m.State("LEN1"):
                send(length[8:])
                with m.If(sent):
                    with m.If(length == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [
                    self.busy.eq(1),
                    in_payload.eq(1),
                    out.valid.eq(full),
                    out.payload.eq(held),
                    inp.ready.eq(pl_ready),
                    crc.valid.eq(sent),
                ]
                with m.If(inp.valid & pl_ready):
                    m.d.sync += [taken.eq(taken + 1), more.eq(taken + 1 != length)]
                with m.If(sent & ~more):  # the register held the last byte
                    m.next = "CRC0"
            with m.State("CRC0"):  # the CRC register took the last byte a cycle ago
                send(crc.crc[8:], "CRC1", covered=False)
            with m.State("CRC1"):
                send(crc.crc[:8], "IDLE", covered=False)
        return m


class ResponseMux:
    """The transmitter's header and payload: one of the ``SRC_*`` sources, chosen per response by ``src``.

    The payload comes from a constant table (INFO), the counters (which do not move while the
    accelerator is idle between frames: no snapshot needed), the NAK code and command, the buffer
    (PING echo, through the reader) or, during RUN, straight from the accelerator's ``o_h`` stream:
    words sign-extended to ``W`` bytes, little endian, so outputs need no buffer.

    Emits into ``m`` when made. The engine sets ``src``, ``tx_cmd``, ``tx_len``, ``tx_idx`` (to 0) and
    ``nak_code`` per response, counts ``rejected`` frames and raises ``run_out`` while it is in a RUN
    response (``ser_left`` to 0 before one starts).

    Parameters
    ----------
    m : Module
    info : Info
        What INFO answers.
    word_bytes : Value
        ``W``: bytes per output word (of the RUN's core).
    max_word_bytes : int
        The most ``word_bytes`` can be.
    port : StreamPort
        The design's output stream.
    counters : Value
        cycles, wait cycles, steps (32 bits each) and the 3 status bits of the counters asked for.
    xmt : FrameTransmitter
    reader : PayloadReader
    frame_cmd : Value
        The command of the frame being answered (a NAK's second byte).
    """

    def __init__(
        self, m: Module, info, word_bytes, max_word_bytes: int, port, counters, xmt: FrameTransmitter, reader, frame_cmd
    ):
        W = max_word_bytes
        src = Signal(3)
        tx_cmd = Signal(8)
        tx_len = Signal(16)
        tx_idx = Signal(range(max(len(protocol.encode_info(info)), 16) + 1))
        nak_code = Signal(8)
        info_bytes = protocol.encode_info(info)
        info_rom = Array(Const(b, 8) for b in info_bytes)
        # the counters do not move while the accelerator is idle between frames: no snapshot needed
        rejected = Signal(16)
        snap = Signal(8 * COUNTER_BYTES)
        m.d.comb += snap.eq(Cat(counters[:96], Cat(counters[96:99], Const(0, 5)), rejected))
        m.d.comb += [xmt.cmd.eq(tx_cmd), xmt.length.eq(tx_len)]

        # RUN: o_h words, sign-extended to W bytes, little endian
        ser = Signal(8 * W)
        ser_left = Signal(range(W + 1))
        run_out = Signal()  # the engine is in a RUN response
        m.d.comb += port.o_ready.eq(run_out & (ser_left == 0))
        with m.If(port.o_valid & port.o_ready):
            m.d.sync += [ser.eq(port.o_data), ser_left.eq(word_bytes)]

        pl = xmt.i_payload
        with m.Switch(src):
            with m.Case(SRC_INFO):
                m.d.comb += [pl.valid.eq(1), pl.payload.eq(info_rom[tx_idx])]
            with m.Case(SRC_COUNTERS):
                m.d.comb += [pl.valid.eq(1), pl.payload.eq(snap.word_select(tx_idx, 8))]
            with m.Case(SRC_NAK):
                m.d.comb += [pl.valid.eq(1), pl.payload.eq(Mux(tx_idx == 0, nak_code, frame_cmd))]
            with m.Case(SRC_ECHO):
                m.d.comb += [pl.valid.eq(reader.b_valid), pl.payload.eq(reader.data), reader.echo_take.eq(pl.ready)]
            with m.Case(SRC_RUN):
                m.d.comb += [pl.valid.eq(ser_left != 0), pl.payload.eq(ser[:8])]
                with m.If(pl.ready & (ser_left != 0)):
                    m.d.sync += [ser.eq(ser >> 8), ser_left.eq(ser_left - 1)]
        with m.If(pl.valid & pl.ready):
            m.d.sync += tx_idx.eq(tx_idx + 1)
        self.src, self.tx_cmd, self.tx_len, self.tx_idx, self.nak_code = src, tx_cmd, tx_len, tx_idx, nak_code
        self.info_bytes, self.rejected, self.ser_left, self.run_out = info_bytes, rejected, ser_left, run_out
