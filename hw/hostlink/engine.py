"""The frame engine: the accelerator, the receiver, the payload buffer, the walker and the transmit side, tied
together by the engine FSM (decode, check pass, execute pass, response)."""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ...interface import protocol
from ...interface.protocol import ALL_CORES, CORE_FLAG, Cmd, CoreInfo, Error, Info, LinkLayout
from ...numeric.config import Config
from ..accelerator import Accelerator, make_accelerator
from ..multicore import MultiCore, make_multicore
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
from .walker import K_RUN, K_STATE, K_WEIGHTS, CommandPort, PayloadWalker, StreamPort, per_core

__all__ = ["FrameEngine"]


class FrameEngine(wiring.Component):
    """The command/response engine around one accelerator, on byte streams (no UART).

    A config of several cores (``cfg.cores > 1``) gets a :class:`~rnnaccel.hw.multicore.MultiCore`
    (:func:`~rnnaccel.hw.multicore.make_multicore`): ``layers`` splits the stack ``(cfg, weights)`` over the
    cores and behaves like one core to unaddressed frames (inputs to core 0, outputs from the last);
    ``helpers`` splits every layer's rows over the cores and behaves like one core too (inputs to every core,
    the same state record written to every core, weights loaded core by core);
    ``programs`` runs ``models`` (one (config, weights) per core), unaddressed frames going to core 0.
    Addressed frames (``docs/hostlink.md``) name the core.

    Parameters
    ----------
    cfg : Config
    weights : dict, optional
        Passed to the accelerator (needed when ``cfg.weights_in_rom``).
    models : list of (Config, weights), optional
        A ``programs`` design's models, one per core.
    buffer_bytes : int, optional
        Payload buffer size (default :meth:`LinkLayout.default_buffer`).
    timeout_cycles : int
        Inter-byte timeout inside a frame, in clock cycles.
    clk_freq, baud : int
        Reported by INFO (0 when unknown).
    design_hash : str
        Reported by INFO: the flow's name for the built design (:func:`rnnaccel.flow.rtl.design_hash`, 16 hex
        digits; :data:`UNKNOWN_DESIGN` when not given). The gateware does not compute it.
    weight_source, weight_base :
        Streamed weights (``weight_source = 'flash'``): the source of the stream (a
        :class:`~rnnaccel.hw.flash.FlashSource` on a board; default the simulated flash) and the stream's byte
        address in it (:func:`rnnaccel.hw.accelerator.make_accelerator`'s ``source`` and ``source_base``).

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
        models=None,
        buffer_bytes: int | None = None,
        timeout_cycles: int = 100_000,
        clk_freq: int = 0,
        baud: int = 0,
        design_hash: str = UNKNOWN_DESIGN,
        weight_source=None,
        weight_base: int = 0,
    ):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        check_design_hash(design_hash)
        if cfg.cores > 1:
            self._accel = make_multicore(cfg, weights, models)
            self._mode = cfg.core_mode
            core_cfgs = [c for c, _ in self._accel.models]
        else:
            if models is not None:
                raise ValueError("models are for a programs design of several cores (cfg.cores > 1)")
            fed = {"source": weight_source, "source_base": weight_base} if cfg.weight_source != "onchip" else {}
            self._accel = make_accelerator(cfg, weights if cfg.weights_in_rom else None, **fed)
            self._mode = "single"
            core_cfgs = [cfg]
        self._lays = [LinkLayout(c) for c in core_cfgs]
        # a RUN's geometry per core: the core's own, or the whole stack's (layers: in at core 0, out at the last;
        # helpers: in to every core, out from the exchange)
        stack = self._mode in ("layers", "helpers")
        self._runs = [LinkLayout(cfg)] * len(core_cfgs) if stack else self._lays
        layout = self._runs[0]
        min_buffer = max(max(lay.min_buffer() for lay in self._lays), max(r.step_bytes for r in self._runs))
        if buffer_bytes is None:
            buffer_bytes = protocol.default_buffer(min_buffer)
        check_int("buffer_bytes", buffer_bytes, min_buffer, 0xFFFF)
        check_int("timeout_cycles", timeout_cycles, 1, 0xFFFFFFFF)
        check_int("clk_freq", clk_freq, 0, 0xFFFFFFFF)
        check_int("baud", baud, 0, 0xFFFFFFFF)
        self._cfg = cfg
        self._layout = layout
        self._buffer_bytes = buffer_bytes
        self._timeout = timeout_cycles
        base = cfg if stack else core_cfgs[0]  # INFO's one-core fields: the default target
        cores = tuple(
            CoreInfo(
                weights_in_rom=lay.cfg.weights_in_rom,
                config_hash=lay.cfg.hash,
                input_size=lay.cfg.input_size,
                hidden_size=lay.cfg.hidden_size,
                num_layers=lay.cfg.num_layers,
                word_bytes=lay.word_bytes,
                state_width=lay.cfg.q_state.width,
                state_frac=lay.cfg.q_state.frac,
                state_record_bytes=lay.state_record_bytes,
                max_steps=run.max_steps(buffer_bytes),
            )
            for lay, run in zip(self._lays, self._runs)
        )
        self._info = Info(
            version=protocol.VERSION,
            weights_in_rom=base.weights_in_rom,
            config_hash=base.hash,
            design_hash=design_hash,
            input_size=base.input_size,
            hidden_size=base.hidden_size,
            num_layers=base.num_layers,
            word_bytes=layout.word_bytes,
            state_width=base.q_state.width,
            state_frac=base.q_state.frac,
            state_record_bytes=max(lay.state_record_bytes for lay in self._lays),
            buffer_bytes=buffer_bytes,
            max_steps=layout.max_steps(buffer_bytes),
            clk_freq=clk_freq,
            baud=baud,
            timeout_cycles=timeout_cycles,
            mode=self._mode,
            cores=() if self._mode == "single" else cores,
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
    def accelerator(self) -> Accelerator | MultiCore:
        """The accelerator, or the MultiCore of a design of several cores."""
        return self._accel

    @property
    def mode(self) -> str:
        """``single``, ``programs``, ``layers`` or ``helpers``."""
        return self._mode

    @property
    def n_cores(self) -> int:
        return len(self._lays)

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
        n = self.n_cores
        multi = self._mode != "single"
        core = Signal(8, name="frame_core")  # the frame's core (its core byte, or the default target)
        slot = Signal(range(max(n, 2)), name="frame_slot")  # ... as an index of the per-core tables
        cmd = CommandPort(m, acc, core if multi else None)
        port = StreamPort(m, acc, core if multi else None)
        walker = PayloadWalker(m, self._lays, self._runs, port, reader, cmd, slot)
        word_bytes = per_core([r.word_bytes for r in self._runs], slot)
        resp = ResponseMux(
            m,
            self._info,
            word_bytes,
            max(r.word_bytes for r in self._runs),
            port,
            self._counters(acc, core, slot),
            xmt,
            reader,
            frame.cmd,
        )
        _Control(m, self, acc, rcv, xmt, reader, cmd, walker, resp, core, slot)
        m.d.comb += self.busy.eq(rcv.o_frame.valid | acc.status[STATUS_BITS["busy"]])
        return m

    def _counters(self, acc, core, slot):
        """READ_COUNTERS' cycles, wait cycles, steps and status: the core's; the design's for ALL_CORES
        (cycles with some core busy, the first core's wait cycles, the last core's steps)."""
        if self._mode == "single":
            return Cat(acc.cycles, acc.wait_cycles, acc.steps, acc.status)
        n = self.n_cores
        design = Cat(acc.cycles, acc.core_wait_cycles[0], acc.core_steps[n - 1], acc.status)
        per = Array(
            Cat(acc.core_cycles[i], acc.core_wait_cycles[i], acc.core_steps[i], acc.core_status[i]) for i in range(n)
        )
        return Mux(core == ALL_CORES, design, per[slot])

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

    def __init__(self, m: Module, engine: FrameEngine, acc, rcv, xmt, reader, cmd, walker, resp, core, slot):
        self._m, self._acc, self._rcv, self._xmt = m, acc, rcv, xmt
        self._reader, self._cmd, self._walker, self._resp = reader, cmd, walker, resp
        self._cfg, self._cap = engine.cfg, engine.buffer_bytes
        self._frame = frame = rcv.o_frame.payload
        # idle: the accelerator, and no command waiting in the command port's register
        self._acc_idle = acc.status[STATUS_BITS["idle"]] & ~cmd.pending
        self._acc_error = acc.status[STATUS_BITS["error"]]
        err_before = Signal()
        nak_led = Signal()
        m.d.comb += engine.error.eq(nak_led)
        # the command without the core flag: what the frame asks for
        base = Signal(8, name="frame_base_cmd")
        m.d.comb += base.eq(frame.cmd & ~CORE_FLAG)
        self._base = base
        known = Signal()
        m.d.comb += known.eq(functools.reduce(operator.or_, [base == c for c in Cmd]))
        self._no_payload = functools.reduce(
            operator.or_, [base == c for c in (Cmd.INFO, Cmd.RESET_STATE, Cmd.READ_COUNTERS, Cmd.CLEAR_COUNTERS)]
        )
        self._err_before, self._nak_led, self._known = err_before, nak_led, known
        self._core_checks(m, engine, core, slot)
        runs, lays, cur_slot = engine._runs, engine._lays, self._cur_slot
        self._run_max = per_core([r.max_steps(self._cap) * r.step_bytes for r in runs], cur_slot)
        self._rom = per_core([int(lay.cfg.weights_in_rom) for lay in lays], cur_slot)

        # the frame's checks in the order of ``docs/hostlink.md``: the first that fails is the NAK code, 0 if none
        # does. Registered as the frame arrives, so DECODE starts from a flip-flop (timing: the checks' compare
        # chain no longer feeds the enables of every register DECODE writes)
        check = Signal(4, name="frame_check")
        self._check = check_r = Signal(4, name="frame_check_r")
        rules = [
            (frame.timeout, Error.TIMEOUT),
            (~frame.crc_ok, Error.CRC),
            (~known, Error.COMMAND),
            ((frame.length > self._cap) | (self._no_payload & (frame.length != 0)) | frame.no_core, Error.LENGTH),
            (~self._core_ok, Error.CORE),
            ((base == Cmd.WRITE_WEIGHTS) & self._rom, Error.ROM),
            ((base == Cmd.RUN) & ((frame.length == 0) | (frame.length > self._run_max)), Error.LENGTH),
        ]
        m.d.comb += check.eq(functools.reduce(lambda rest, rule: Mux(rule[0], rule[1], rest), reversed(rules), 0))

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                with m.If(rcv.o_frame.valid):
                    m.d.sync += check_r.eq(check)
                    m.next = "DECODE"
            with m.State("DECODE"):
                self._decode()
            self._walk_states()
            self._command_states()
            self._tx_states()

    def _core_checks(self, m, engine, core, slot):
        """The frame's core (its core byte, or the default target), registered in DECODE; whether it exists
        for the frame's command."""
        frame, base, n = self._frame, self._base, engine.n_cores
        stack = engine.mode in ("layers", "helpers")
        default = ALL_CORES if stack else 0
        cur = Signal(8, name="decode_core")
        m.d.comb += cur.eq(Mux(frame.addressed, frame.core, default))
        # commands that need one core: weights always (each core its own); a state record unless every core
        # holds the same state (helpers: broadcast); a RUN unless the design is one stack (its inputs)
        one_core = base == Cmd.WRITE_WEIGHTS
        if engine.mode != "helpers":
            one_core = one_core | (base == Cmd.WRITE_STATE)
        if not stack:
            one_core = one_core | (base == Cmd.RUN)
        core_ok = Signal(name="core_ok")
        m.d.comb += core_ok.eq((cur < n) | ((cur == ALL_CORES) & ~one_core))
        cur_slot = Signal(range(max(n, 2)), name="decode_slot")
        m.d.comb += cur_slot.eq(Mux(cur < n, cur, 0))
        self._cur_core, self._core_ok, self._cur_slot = cur, core_ok, cur_slot
        self._set_core = [core.eq(cur), slot.eq(cur_slot)]

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
        m, frame, walker, base = self._m, self._frame, self._walker, self._base
        m.d.sync += [self._err_before.eq(self._acc_error), walker.resp_len.eq(0), walker.walk_exec.eq(0)]
        m.d.sync += self._set_core
        with m.If(self._check != 0):
            self._nak(self._check)
        with m.Else():
            with m.Switch(base):
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
