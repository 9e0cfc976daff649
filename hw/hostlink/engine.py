"""The frame engine: the accelerator, the receiver, the payload buffer, the walker and the transmit side, tied
together by the engine FSM (decode, check pass, execute pass, response)."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Const, Module, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...interface import protocol
from ...interface.protocol import Cmd, Error, Info, LinkLayout
from ...numeric.config import Config
from ..accelerator import Accelerator, make_accelerator
from ..sequencer import STATUS_BITS, Op
from .checks import UNKNOWN_DESIGN, check_design_hash, check_int
from .framing import FrameReceiver, PayloadReader
from .response import (
    COUNTER_BYTES,
    SRC_COUNTERS,
    SRC_ECHO,
    SRC_INFO,
    SRC_NAK,
    SRC_NONE,
    SRC_RUN,
    FrameTransmitter,
    ResponseMux,
)
from .walker import K_RUN, K_STATE, K_WEIGHTS, CommandPort, PayloadWalker

__all__ = ["FrameEngine"]


class FrameEngine(wiring.Component):
    """The command/response engine around one accelerator, on byte streams (no UART).

    Parameters
    ----------
    cfg : Config
    weights : dict, optional
        Passed to the accelerator (needed when ``cfg.weights_in_rom``).
    buffer_bytes : int, optional
        Payload buffer size (default :meth:`LinkLayout.default_buffer`).
    timeout_cycles : int
        Inter-byte timeout inside a frame, in clock cycles.
    clk_freq, baud : int
        Reported by INFO (0 when unknown).
    design_hash : str
        Reported by INFO: the flow's name for the built design (:func:`rnnaccel.flow.rtl.design_hash`, 16 hex
        digits; :data:`UNKNOWN_DESIGN` when not given). The gateware does not compute it.

    Members
    -------
    i_rx : In(stream.Signature(8))
        Bytes from the host.
    o_tx : Out(stream.Signature(8))
        Bytes to the host.
    busy : Out(1)
        A frame is being executed or the accelerator is busy.
    error : Out(1)
        The last response was a NAK.
    rx_active, tx_active : Out(1)
        A frame is being received / sent.
    """

    def __init__(
        self,
        cfg: Config,
        weights=None,
        *,
        buffer_bytes: int | None = None,
        timeout_cycles: int = 100_000,
        clk_freq: int = 0,
        baud: int = 0,
        design_hash: str = UNKNOWN_DESIGN,
    ):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        check_design_hash(design_hash)
        layout = LinkLayout(cfg)
        if buffer_bytes is None:
            buffer_bytes = layout.default_buffer()
        check_int("buffer_bytes", buffer_bytes, layout.min_buffer(), 0xFFFF)
        check_int("timeout_cycles", timeout_cycles, 1, 0xFFFFFFFF)
        check_int("clk_freq", clk_freq, 0, 0xFFFFFFFF)
        check_int("baud", baud, 0, 0xFFFFFFFF)
        self._accel = make_accelerator(cfg, weights if cfg.weights_in_rom else None)
        self._cfg = cfg
        self._layout = layout
        self._buffer_bytes = buffer_bytes
        self._timeout = timeout_cycles
        self._info = Info(
            version=protocol.VERSION,
            weights_in_rom=cfg.weights_in_rom,
            config_hash=cfg.hash,
            design_hash=design_hash,
            input_size=cfg.input_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            word_bytes=layout.word_bytes,
            state_width=cfg.q_state.width,
            state_frac=cfg.q_state.frac,
            state_record_bytes=layout.state_record_bytes,
            buffer_bytes=buffer_bytes,
            max_steps=layout.max_steps(buffer_bytes),
            clk_freq=clk_freq,
            baud=baud,
            timeout_cycles=timeout_cycles,
        )
        super().__init__(
            {
                "i_rx": In(stream.Signature(8)),
                "o_tx": Out(stream.Signature(8)),
                "busy": Out(1),
                "error": Out(1),
                "rx_active": Out(1),
                "tx_active": Out(1),
            }
        )

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def accelerator(self) -> Accelerator:
        return self._accel

    @property
    def info(self) -> Info:
        """What INFO answers."""
        return self._info

    @property
    def buffer_bytes(self) -> int:
        return self._buffer_bytes

    @property
    def timeout_cycles(self) -> int:
        return self._timeout

    def elaborate(self, platform):
        m = Module()
        acc, rcv, xmt, rp = self._parts(m)
        frame = rcv.o_frame.payload
        reader = PayloadReader(m, rp, frame.length)
        cmd = CommandPort(m, acc)
        walker = PayloadWalker(m, self._cfg, self._layout, acc, reader, cmd)
        resp = ResponseMux(m, self._info, self._layout.word_bytes, acc, xmt, reader, frame.cmd)
        _Control(m, self, self._layout, acc, rcv, xmt, reader, cmd, walker, resp)
        m.d.comb += self.busy.eq(rcv.o_frame.valid | acc.status[STATUS_BITS["busy"]])
        return m

    def _parts(self, m):
        """The accelerator, the receiver, the transmitter and the payload buffer, wired to the ports."""
        cap = self._buffer_bytes
        m.submodules.accel = acc = self._accel
        m.submodules.receiver = rcv = FrameReceiver(cap, self._timeout)
        m.submodules.transmitter = xmt = FrameTransmitter()
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=cap, init=[], attrs={"ram_style": "block"})
        wp = buf.write_port()
        rp = buf.read_port()
        wiring.connect(m, wiring.flipped(self.i_rx), rcv.i_byte)
        wiring.connect(m, xmt.o_byte, wiring.flipped(self.o_tx))
        m.d.comb += [
            wp.addr.eq(rcv.wr_addr),
            wp.data.eq(rcv.wr_data),
            wp.en.eq(rcv.wr_en),
            self.rx_active.eq(rcv.active),
            self.tx_active.eq(xmt.busy),
        ]
        return acc, rcv, xmt, rp


class _Control:
    """The engine FSM: decode a received frame, run the walker's passes or the engine's own commands, answer.

    Emits into ``m`` when made.
    """

    def __init__(self, m: Module, engine: FrameEngine, layout: LinkLayout, acc, rcv, xmt, reader, cmd, walker, resp):
        self._m, self._acc, self._rcv, self._xmt = m, acc, rcv, xmt
        self._reader, self._cmd, self._walker, self._resp = reader, cmd, walker, resp
        self._cfg, self._cap = engine.cfg, engine.buffer_bytes
        self._frame = frame = rcv.o_frame.payload
        self._acc_idle = acc.status[STATUS_BITS["idle"]]
        self._acc_error = acc.status[STATUS_BITS["error"]]
        err_before = Signal()
        nak_led = Signal()
        m.d.comb += engine.error.eq(nak_led)
        known = Signal()
        m.d.comb += known.eq(functools.reduce(operator.or_, [frame.cmd == c for c in Cmd]))
        self._no_payload = functools.reduce(
            operator.or_, [frame.cmd == c for c in (Cmd.INFO, Cmd.RESET_STATE, Cmd.READ_COUNTERS, Cmd.CLEAR_COUNTERS)]
        )
        self._run_max = layout.max_steps(self._cap) * layout.step_bytes
        self._err_before, self._nak_led, self._known = err_before, nak_led, known

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                with m.If(rcv.o_frame.valid):
                    m.next = "DECODE"
            with m.State("DECODE"):
                self._decode()
            self._walk_states()
            self._command_states()
            self._tx_states()

    def _respond(self, cmd_byte, length, source):
        m, resp = self._m, self._resp
        m.d.sync += [resp.tx_cmd.eq(cmd_byte), resp.tx_len.eq(length), resp.src.eq(source), resp.tx_idx.eq(0)]
        m.next = "TX_START"

    def _ack(self, length=0, source=SRC_NONE):
        self._respond(self._frame.cmd | protocol.ACK_FLAG, length, source)
        self._m.d.sync += self._nak_led.eq(0)

    def _nak(self, code):
        resp = self._resp
        self._respond(protocol.NAK, 2, SRC_NAK)
        self._m.d.sync += [resp.nak_code.eq(code), self._nak_led.eq(1), resp.rejected.eq(resp.rejected + 1)]

    def _decode(self):
        """DECODE: NAK a bad frame (in the order of ``docs/hostlink.md``), else start its command."""
        m, frame, walker, cap = self._m, self._frame, self._walker, self._cap
        m.d.sync += [self._err_before.eq(self._acc_error), walker.resp_len.eq(0), walker.walk_exec.eq(0)]
        with m.If(frame.timeout):
            self._nak(Error.TIMEOUT)
        with m.Elif(~frame.crc_ok):
            self._nak(Error.CRC)
        with m.Elif(~self._known):
            self._nak(Error.COMMAND)
        with m.Elif((frame.length > cap) | (self._no_payload & (frame.length != 0))):
            self._nak(Error.LENGTH)
        with m.Elif((frame.cmd == Cmd.WRITE_WEIGHTS) & Const(int(self._cfg.weights_in_rom), 1)):
            self._nak(Error.ROM)
        with m.Elif((frame.cmd == Cmd.RUN) & ((frame.length == 0) | (frame.length > self._run_max))):
            self._nak(Error.LENGTH)
        with m.Else():
            with m.Switch(frame.cmd):
                with m.Case(Cmd.PING):
                    m.d.comb += self._reader.rd_restart.eq(1)
                    self._ack(frame.length, SRC_ECHO)
                with m.Case(Cmd.INFO):
                    self._ack(len(self._resp.info_bytes), SRC_INFO)
                with m.Case(Cmd.READ_COUNTERS):
                    self._ack(COUNTER_BYTES, SRC_COUNTERS)
                with m.Case(Cmd.RESET_STATE):
                    m.next = "DO_RESET"
                with m.Case(Cmd.CLEAR_COUNTERS):
                    m.next = "DO_CLEAR"
                with m.Case(Cmd.WRITE_STATE):
                    m.d.sync += walker.kind.eq(K_STATE)
                    m.next = "CHECK_START"
                with m.Case(Cmd.WRITE_WEIGHTS):
                    m.d.sync += walker.kind.eq(K_WEIGHTS)
                    m.next = "CHECK_START"
                with m.Case(Cmd.RUN):
                    m.d.sync += walker.kind.eq(K_RUN)
                    m.next = "CHECK_START"

    def _walk_states(self):
        """The check pass, then the execute pass; a RUN answers while it executes (outputs stream out)."""
        m, walker, resp, xmt = self._m, self._walker, self._resp, self._xmt
        with m.State("CHECK_START"):
            m.d.comb += walker.walk_go.eq(1)
            m.next = "CHECK"
        with m.State("CHECK"):
            with m.If(walker.walk_fail):
                self._nak(walker.walk_code)
            with m.Elif(walker.walk_done):
                m.d.sync += walker.walk_exec.eq(1)
                with m.If(walker.kind == K_RUN):
                    m.d.sync += [
                        resp.tx_cmd.eq(self._frame.cmd | protocol.ACK_FLAG),
                        resp.tx_len.eq(walker.resp_len),
                        resp.src.eq(SRC_RUN),
                        resp.tx_idx.eq(0),
                        resp.ser_left.eq(0),
                        self._nak_led.eq(0),
                    ]
                    m.next = "RUN_START"
                with m.Else():
                    m.next = "EXEC_START"
        with m.State("EXEC_START"):
            m.d.comb += walker.walk_go.eq(1)
            m.next = "EXEC"
        with m.State("EXEC"):
            with m.If(walker.walk_done):
                m.next = "WAIT_IDLE"
        with m.State("RUN_START"):
            m.d.comb += [walker.walk_go.eq(1), xmt.start.eq(1), resp.run_out.eq(1)]
            m.next = "RUN_EXEC"
        with m.State("RUN_EXEC"):
            m.d.comb += resp.run_out.eq(1)
            with m.If(walker.walk_done):
                m.next = "RUN_DRAIN"
        with m.State("RUN_DRAIN"):
            m.d.comb += resp.run_out.eq(1)
            with m.If(~xmt.busy & self._acc_idle):
                m.next = "FINISH"

    def _command_states(self):
        """RESET_STATE and CLEAR_COUNTERS, then waiting for the accelerator to finish any command."""
        m, cmd = self._m, self._cmd
        with m.State("DO_RESET"):
            m.d.comb += [cmd.valid.eq(1), cmd.op.eq(Op.RESET_STATE)]
            with m.If(cmd.ready):
                m.next = "WAIT_IDLE"
        with m.State("DO_CLEAR"):
            m.d.comb += [cmd.valid.eq(1), cmd.op.eq(Op.CLEAR_COUNTERS)]
            with m.If(cmd.ready):
                m.d.sync += self._err_before.eq(0)
                m.next = "WAIT_IDLE"
        with m.State("WAIT_IDLE"):
            with m.If(self._acc_idle):
                with m.If(self._acc_error & ~self._err_before):
                    self._nak(Error.ACCEL)
                with m.Else():
                    self._ack()

    def _tx_states(self):
        """Send the response, then release the frame (the receiver may take the next)."""
        m, xmt = self._m, self._xmt
        with m.State("TX_START"):
            m.d.comb += xmt.start.eq(1)
            m.next = "TX_WAIT"
        with m.State("TX_WAIT"):
            with m.If(~xmt.busy):
                m.next = "FINISH"
        with m.State("FINISH"):
            m.d.comb += self._rcv.o_frame.ready.eq(1)
            m.next = "IDLE"
