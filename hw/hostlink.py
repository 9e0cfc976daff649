"""Host link: the accelerator behind a UART, driven by framed commands.

:class:`HostLink` is what goes on a board: UART pins in and out, LED-able
status, and inside it a :class:`FrameEngine` wrapping one
:func:`~rnnaccel.hw.accelerator.make_accelerator` accelerator. The engine is a generic
command/response machine (protocol: :mod:`rnnaccel.interface.protocol`,
``docs/hostlink.md``):

1. :class:`FrameReceiver` hunts for SYNC, reads command and length, stores
   the payload in a byte buffer and checks the CRC; an inter-byte timeout
   ends a truncated frame and the receiver hunts for SYNC again.
2. The engine checks the frame (CRC, command, length) and, for commands
   that carry records, *walks the payload twice*: a check pass that
   validates every field without touching the accelerator, then an execute
   pass that turns records into ``i_cmd`` commands and input words into
   ``i_x`` words. A rejected frame therefore changes nothing.
3. :class:`FrameTransmitter` sends the response (ACK with data, or NAK with
   an error code), taking its payload from a constant table (INFO), a
   snapshot of the counters, the buffer (PING echo) or, during RUN, straight
   from the accelerator's ``o_h`` stream, so outputs need no buffer.

Every frame gets exactly one response; bytes that arrive while the engine is
busy with a frame are not taken (the UART receiver drops them).
"""

from __future__ import annotations

import functools
import operator

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..interface import protocol
from ..interface.protocol import CRC, SYNC, Cmd, Error, Info, LinkLayout
from ..numeric.config import Config
from .accelerator import Accelerator, make_accelerator
from .sequencer import STATUS_BITS, Op
from .uart import UARTRx, UARTTx, uart_divisor

__all__ = ["FrameReceiver", "FrameTransmitter", "FrameEngine", "HostLink", "FRAME_LAYOUT"]


#: INFO's design hash when the flow gave none (:func:`rnnaccel.flow.rtl.design_hash` names a built design).
UNKNOWN_DESIGN = "0" * 16


def _check_design_hash(value):
    if not (isinstance(value, str) and len(value) == 16 and all(ch in "0123456789abcdef" for ch in value)):
        raise ValueError(f"design_hash must be 16 lower-case hex digits, not {value!r}")


#: What the receiver hands to the engine for each frame.
FRAME_LAYOUT = data.StructLayout({"cmd": 8, "length": 16, "crc_ok": 1, "timeout": 1})


def _check_int(name, value, minimum, maximum=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        rng = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {rng}, not {value!r}")


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
        _check_int("capacity", capacity, 1, 0xFFFF)
        _check_int("timeout_cycles", timeout_cycles, 1)
        self._capacity = capacity
        self._timeout = timeout_cycles
        super().__init__({
            "i_byte": In(stream.Signature(8)),
            "o_frame": Out(stream.Signature(FRAME_LAYOUT)),
            "wr_addr": Out(range(capacity)),
            "wr_data": Out(8),
            "wr_en": Out(1),
            "active": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cap = self._capacity
        m.submodules.crc = crc = CRC.create()     # over cmd .. crc_lo; a good frame leaves the residue
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)
        timer = Signal(range(self._timeout + 1))
        crc_ok = Signal()
        timed_out = Signal()
        byte = self.i_byte.payload
        take = Signal()
        m.d.comb += [take.eq(self.i_byte.valid & self.i_byte.ready),
                     self.o_frame.payload.cmd.eq(cmd), self.o_frame.payload.length.eq(length),
                     self.o_frame.payload.crc_ok.eq(crc_ok), self.o_frame.payload.timeout.eq(timed_out),
                     self.wr_addr.eq(count), self.wr_data.eq(byte), crc.data.eq(byte)]
        complete = Signal()     # the frame ended with its last CRC byte (not a timeout)
        # the CRC register takes a byte a cycle after it: in HOLD it has seen the whole frame
        m.d.comb += crc_ok.eq(complete & crc.match_detected)

        def in_frame(on_byte):
            """Common body of the states inside a frame: CRC, timeout, then the state's own step."""
            m.d.comb += [self.i_byte.ready.eq(1), self.active.eq(1)]
            m.d.comb += crc.valid.eq(take)
            with m.If(take):
                m.d.sync += timer.eq(0)
                on_byte()
            with m.Else():
                m.d.sync += timer.eq(timer + 1)
                with m.If(timer == self._timeout - 1):
                    m.d.sync += [timed_out.eq(1), complete.eq(0)]
                    m.next = "HOLD"

        with m.FSM(name="rx"):
            with m.State("HUNT"):
                m.d.comb += self.i_byte.ready.eq(1)
                with m.If(take & (byte == SYNC)):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [cmd.eq(0), length.eq(0), timer.eq(0)]
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
                    m.d.sync += [length[8:].eq(byte), count.eq(0)]
                    with m.If(Cat(length[:8], byte) == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                in_frame(step)
            with m.State("PAYLOAD"):
                def step():
                    m.d.comb += self.wr_en.eq(count < cap)
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == length):
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
        super().__init__({
            "start": In(1),
            "cmd": In(8),
            "length": In(16),
            "i_payload": In(stream.Signature(8)),
            "o_byte": Out(stream.Signature(8)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cmd = Signal(8)
        length = Signal(16)
        count = Signal(16)
        m.submodules.crc = crc = CRC.create()     # over cmd .. payload; sent high byte first
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

        with m.FSM(name="tx"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.comb += crc.start.eq(1)
                    m.d.sync += [cmd.eq(self.cmd), length.eq(self.length), count.eq(0)]
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
                m.d.comb += [self.busy.eq(1), out.valid.eq(self.i_payload.valid),
                             out.payload.eq(self.i_payload.payload), self.i_payload.ready.eq(out.ready)]
                m.d.comb += crc.valid.eq(sent)
                with m.If(sent):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count + 1 == length):
                        m.next = "CRC0"
            with m.State("CRC0"):    # the CRC register took the last byte a cycle ago
                send(crc.crc[8:], "CRC1", covered=False)
            with m.State("CRC1"):
                send(crc.crc[:8], "IDLE", covered=False)
        return m


# payload kinds walked by the engine
_K_STATE, _K_WEIGHTS, _K_RUN = 0, 1, 2
# response payload sources
_SRC_INFO, _SRC_COUNTERS, _SRC_NAK, _SRC_ECHO, _SRC_RUN, _SRC_NONE = range(6)


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

    def __init__(self, cfg: Config, weights=None, *, buffer_bytes: int | None = None, timeout_cycles: int = 100_000,
                 clk_freq: int = 0, baud: int = 0, design_hash: str = UNKNOWN_DESIGN):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        _check_design_hash(design_hash)
        layout = LinkLayout(cfg)
        if buffer_bytes is None:
            buffer_bytes = layout.default_buffer()
        _check_int("buffer_bytes", buffer_bytes, layout.min_buffer(), 0xFFFF)
        _check_int("timeout_cycles", timeout_cycles, 1, 0xFFFFFFFF)
        _check_int("clk_freq", clk_freq, 0, 0xFFFFFFFF)
        _check_int("baud", baud, 0, 0xFFFFFFFF)
        self._accel = make_accelerator(cfg, weights if cfg.weights_in_rom else None)
        self._cfg = cfg
        self._layout = layout
        self._buffer_bytes = buffer_bytes
        self._timeout = timeout_cycles
        self._info = Info(
            version=protocol.VERSION, weights_in_rom=cfg.weights_in_rom, config_hash=cfg.hash,
            design_hash=design_hash, input_size=cfg.input_size, hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers, word_bytes=layout.word_bytes, state_width=cfg.q_state.width,
            state_frac=cfg.q_state.frac, state_record_bytes=layout.state_record_bytes, buffer_bytes=buffer_bytes,
            max_steps=layout.max_steps(buffer_bytes), clk_freq=clk_freq, baud=baud, timeout_cycles=timeout_cycles)
        super().__init__({
            "i_rx": In(stream.Signature(8)),
            "o_tx": Out(stream.Signature(8)),
            "busy": Out(1),
            "error": Out(1),
            "rx_active": Out(1),
            "tx_active": Out(1),
        })

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
        cfg, lay = self._cfg, self._layout
        cap = self._buffer_bytes
        H, n_in = cfg.hidden_size, cfg.input_size
        xs, cs = cfg.q_state.width, cfg.q_cell.width
        W = lay.word_bytes
        nb = lay.weight_banks
        m = Module()

        m.submodules.accel = acc = self._accel
        m.submodules.receiver = rcv = FrameReceiver(cap, self._timeout)
        m.submodules.transmitter = xmt = FrameTransmitter()
        m.submodules.buffer = buf = memory.Memory(shape=8, depth=cap, init=[], attrs={"ram_style": "block"})
        wp = buf.write_port()
        rp = buf.read_port()
        wiring.connect(m, wiring.flipped(self.i_rx), rcv.i_byte)
        wiring.connect(m, xmt.o_byte, wiring.flipped(self.o_tx))
        m.d.comb += [wp.addr.eq(rcv.wr_addr), wp.data.eq(rcv.wr_data), wp.en.eq(rcv.wr_en),
                     self.rx_active.eq(rcv.active), self.tx_active.eq(xmt.busy)]
        frame = rcv.o_frame.payload
        acc_idle = acc.status[STATUS_BITS["idle"]]
        acc_error = acc.status[STATUS_BITS["error"]]

        # ------------------------------------------------ buffer reader: the payload as a byte stream
        # It has two consumers, never at once: the payload walker (while it walks) and the PING echo
        # (while the transmitter sends the payload). ``b_ready`` is chosen by who owns the reader now,
        # never by a response source left over from an earlier frame.
        rd_ptr = Signal(17)
        b_valid = Signal()
        b_ready = Signal()
        walk_take = Signal()    # the walker consumes the byte on offer
        echo_take = Signal()    # the echo source consumes the byte on offer
        walking = Signal()      # the walker owns the reader
        m.d.comb += b_ready.eq(Mux(walking, walk_take, echo_take))
        rd_restart = Signal()
        exhausted = Signal()
        m.d.comb += [rp.addr.eq(rd_ptr), rp.en.eq(~b_valid | b_ready),
                     exhausted.eq(~b_valid & (rd_ptr >= frame.length))]
        with m.If(rd_restart):
            m.d.sync += [rd_ptr.eq(0), b_valid.eq(0)]
        with m.Elif(rp.en):
            with m.If(rd_ptr < frame.length):
                m.d.sync += [rd_ptr.eq(rd_ptr + 1), b_valid.eq(1)]
            with m.Else():
                m.d.sync += b_valid.eq(0)

        # ------------------------------------------------ accelerator command / input muxes
        cmd_valid = Signal()
        cmd_op = Signal(4)
        cmd_sel = Signal(16)
        cmd_addr = Signal(24)
        cmd_data = Signal(len(acc.i_cmd.payload.data))
        m.d.comb += [acc.i_cmd.valid.eq(cmd_valid), acc.i_cmd.payload.op.eq(cmd_op),
                     acc.i_cmd.payload.sel.eq(cmd_sel), acc.i_cmd.payload.addr.eq(cmd_addr),
                     acc.i_cmd.payload.data.eq(cmd_data)]

        # ------------------------------------------------ payload walker (check pass, then execute pass)
        rec_bytes = max(lay.state_record_bytes, 5, W, *(lay.weight_bytes(s) for s in range(nb + 1)))
        rec = Signal(8 * rec_bytes)
        u_cnt = Signal(range(rec_bytes))
        u_len = Signal(range(rec_bytes + 1))
        kind = Signal(2)
        walk_exec = Signal()
        walk_go = Signal()
        walk_done = Signal()
        walk_fail = Signal()
        walk_code = Signal(8)
        hdr_done = Signal()
        w_sel = Signal(16)
        w_addr = Signal(25)
        x_cnt = Signal(range(max(2, n_in)))
        resp_len = Signal(16)

        wk_bits, wb_bits = lay.weight_bits(0), lay.weight_bits(nb)
        wk_bytes, wb_bytes = lay.weight_bytes(0), lay.weight_bytes(nb)
        is_bias = Signal()
        m.d.comb += is_bias.eq(w_sel == nb)
        with m.Switch(kind):
            with m.Case(_K_STATE):
                m.d.comb += u_len.eq(lay.state_record_bytes)
            with m.Case(_K_WEIGHTS):
                m.d.comb += u_len.eq(Mux(~hdr_done, 5, Mux(is_bias, wb_bytes, wk_bytes)))
            with m.Default():
                m.d.comb += u_len.eq(W)

        def fits_unsigned(value, width, nbytes):
            """Bits ``width .. 8*nbytes`` of ``value`` are zero."""
            return Const(1, 1) if width >= 8 * nbytes else (value[width:8 * nbytes] == 0)

        # decoded units
        st_op, st_sel, st_addr = rec[0:8], rec[8:24], rec[24:48]
        st_data = rec[48:48 + 8 * lay.state_data_bytes]
        st_is_vec = st_op == Op.WRITE_VEC
        st_is_c = st_op == Op.WRITE_C
        st_ok = Signal()
        m.d.comb += st_ok.eq(
            (st_is_vec & (st_sel < lay.vector_sels) & (st_addr < lay.vector_rows)
             & fits_unsigned(st_data, xs, lay.state_data_bytes))
            | (st_is_c & (st_sel == 0) & (st_addr < lay.cell_words) & fits_unsigned(st_data, cs, lay.state_data_bytes)))
        hd_sel, hd_addr = rec[0:16], rec[16:40]
        hd_ok = hd_sel <= nb
        wt_ok = Signal()
        m.d.comb += wt_ok.eq(Mux(is_bias, (w_addr < lay.weight_depth(nb)) & fits_unsigned(rec, wb_bits, wb_bytes),
                                 (w_addr < lay.weight_depth(0)) & fits_unsigned(rec, wk_bits, wk_bytes)))
        x_word = rec[:8 * W]
        x_ok = Signal()
        if xs >= 8 * W:
            m.d.comb += x_ok.eq(1)
        else:
            top = x_word[xs - 1:8 * W]   # sign bit and the extension above it
            m.d.comb += x_ok.eq((top == 0) | (top == (1 << len(top)) - 1))

        with m.FSM(name="walk") as walk_fsm:
            with m.State("W_IDLE"):
                with m.If(walk_go):
                    m.d.comb += rd_restart.eq(1)
                    m.d.sync += [u_cnt.eq(0), hdr_done.eq(0), x_cnt.eq(0)]
                    m.next = "W_READ"
            with m.State("W_READ"):
                m.d.comb += walk_take.eq(1)
                with m.If(b_valid):
                    m.d.sync += rec.word_select(u_cnt, 8).eq(rp.data)
                    with m.If(u_cnt == u_len - 1):
                        m.d.sync += u_cnt.eq(0)
                        m.next = "W_ACT"
                    with m.Else():
                        m.d.sync += u_cnt.eq(u_cnt + 1)
                with m.Elif(exhausted):
                    end_ok = Signal()
                    with m.Switch(kind):
                        with m.Case(_K_STATE):
                            m.d.comb += end_ok.eq(u_cnt == 0)
                        with m.Case(_K_WEIGHTS):
                            m.d.comb += end_ok.eq((u_cnt == 0) & hdr_done)
                        with m.Default():
                            m.d.comb += end_ok.eq((u_cnt == 0) & (x_cnt == 0))
                    with m.If(end_ok):
                        m.next = "W_DONE"
                    with m.Else():
                        m.d.sync += walk_code.eq(Error.LENGTH)
                        m.next = "W_FAIL"
            with m.State("W_ACT"):
                ok = Signal()
                issue = Signal()     # this unit becomes an accelerator command / input word
                accepted = Signal()  # ... and the accelerator took it (or nothing to take)
                advance = Signal()
                with m.Switch(kind):
                    with m.Case(_K_STATE):
                        m.d.comb += [ok.eq(st_ok), issue.eq(1), cmd_op.eq(st_op), cmd_sel.eq(st_sel),
                                     cmd_addr.eq(st_addr), cmd_data.eq(st_data)]
                        m.d.comb += accepted.eq(acc.i_cmd.ready)
                    with m.Case(_K_WEIGHTS):
                        with m.If(~hdr_done):
                            m.d.comb += [ok.eq(hd_ok), issue.eq(0), accepted.eq(1)]
                        with m.Else():
                            m.d.comb += [ok.eq(wt_ok), issue.eq(1), cmd_op.eq(Op.WRITE_WEIGHT),
                                         cmd_sel.eq(w_sel), cmd_addr.eq(w_addr),
                                         cmd_data.eq(Mux(is_bias, rec[:wb_bits], rec[:wk_bits])),
                                         accepted.eq(acc.i_cmd.ready)]
                    with m.Default():
                        m.d.comb += [ok.eq(x_ok), issue.eq(1), acc.i_x.payload.eq(x_word[:xs]),
                                     accepted.eq(acc.i_x.ready)]
                with m.If(walk_exec):
                    with m.If(issue):
                        with m.If(kind == _K_RUN):
                            m.d.comb += acc.i_x.valid.eq(1)
                        with m.Else():
                            m.d.comb += cmd_valid.eq(1)
                    m.d.comb += advance.eq(accepted)
                with m.Else():
                    with m.If(ok):
                        m.d.comb += advance.eq(1)
                    with m.Else():
                        m.d.sync += walk_code.eq(Error.RANGE)
                        m.next = "W_FAIL"
                with m.If(advance):
                    m.next = "W_READ"
                    with m.Switch(kind):
                        with m.Case(_K_WEIGHTS):
                            with m.If(~hdr_done):
                                m.d.sync += [hdr_done.eq(1), w_sel.eq(hd_sel), w_addr.eq(hd_addr)]
                            with m.Else():
                                m.d.sync += w_addr.eq(w_addr + 1)
                        with m.Case(_K_RUN):
                            with m.If(x_cnt == n_in - 1):
                                m.d.sync += [x_cnt.eq(0), resp_len.eq(resp_len + H * W)]
                            with m.Else():
                                m.d.sync += x_cnt.eq(x_cnt + 1)
            with m.State("W_DONE"):
                m.d.comb += walk_done.eq(1)
                m.next = "W_IDLE"
            with m.State("W_FAIL"):
                m.d.comb += walk_fail.eq(1)
                m.next = "W_IDLE"
        m.d.comb += walking.eq(~walk_fsm.ongoing("W_IDLE"))

        # ------------------------------------------------ response payload sources
        src = Signal(3)
        tx_cmd = Signal(8)
        tx_len = Signal(16)
        tx_idx = Signal(range(max(len(protocol.encode_info(self._info)), 16) + 1))
        nak_code = Signal(8)
        info_bytes = protocol.encode_info(self._info)
        info_rom = Array(Const(b, 8) for b in info_bytes)
        # the counters do not move while the accelerator is idle between frames: no snapshot needed
        rejected = Signal(16)
        snap = Signal(8 * 15)
        m.d.comb += snap.eq(Cat(acc.cycles, acc.wait_cycles, acc.steps, Cat(acc.status, Const(0, 5)), rejected))
        m.d.comb += [xmt.cmd.eq(tx_cmd), xmt.length.eq(tx_len)]

        # RUN: o_h words, sign-extended to W bytes, little endian
        ser = Signal(8 * W)
        ser_left = Signal(range(W + 1))
        run_out = Signal()      # the engine is in a RUN response
        m.d.comb += acc.o_h.ready.eq(run_out & (ser_left == 0))
        with m.If(acc.o_h.valid & acc.o_h.ready):
            m.d.sync += [ser.eq(acc.o_h.payload), ser_left.eq(W)]

        pl = xmt.i_payload
        with m.Switch(src):
            with m.Case(_SRC_INFO):
                m.d.comb += [pl.valid.eq(1), pl.payload.eq(info_rom[tx_idx])]
            with m.Case(_SRC_COUNTERS):
                m.d.comb += [pl.valid.eq(1), pl.payload.eq(snap.word_select(tx_idx, 8))]
            with m.Case(_SRC_NAK):
                m.d.comb += [pl.valid.eq(1), pl.payload.eq(Mux(tx_idx == 0, nak_code, frame.cmd))]
            with m.Case(_SRC_ECHO):
                m.d.comb += [pl.valid.eq(b_valid), pl.payload.eq(rp.data), echo_take.eq(pl.ready)]
            with m.Case(_SRC_RUN):
                m.d.comb += [pl.valid.eq(ser_left != 0), pl.payload.eq(ser[:8])]
                with m.If(pl.ready & (ser_left != 0)):
                    m.d.sync += [ser.eq(ser >> 8), ser_left.eq(ser_left - 1)]
        with m.If(pl.valid & pl.ready):
            m.d.sync += tx_idx.eq(tx_idx + 1)

        # ------------------------------------------------ the engine
        err_before = Signal()
        nak_led = Signal()
        m.d.comb += self.error.eq(nak_led)
        known = Signal()
        m.d.comb += known.eq(functools.reduce(operator.or_, [frame.cmd == c for c in Cmd]))
        no_payload = functools.reduce(operator.or_, [frame.cmd == c for c in
                                                     (Cmd.INFO, Cmd.RESET_STATE, Cmd.READ_COUNTERS,
                                                      Cmd.CLEAR_COUNTERS)])
        run_max = lay.max_steps(cap) * lay.step_bytes

        def respond(cmd_byte, length, source):
            m.d.sync += [tx_cmd.eq(cmd_byte), tx_len.eq(length), src.eq(source), tx_idx.eq(0)]
            m.next = "TX_START"

        def ack(length=0, source=_SRC_NONE):
            respond(frame.cmd | protocol.ACK_FLAG, length, source)
            m.d.sync += nak_led.eq(0)

        def nak(code):
            respond(protocol.NAK, 2, _SRC_NAK)
            m.d.sync += [nak_code.eq(code), nak_led.eq(1), rejected.eq(rejected + 1)]

        with m.FSM(name="engine"):
            with m.State("IDLE"):
                with m.If(rcv.o_frame.valid):
                    m.next = "DECODE"
            with m.State("DECODE"):
                m.d.sync += [err_before.eq(acc_error), resp_len.eq(0), walk_exec.eq(0)]
                with m.If(frame.timeout):
                    nak(Error.TIMEOUT)
                with m.Elif(~frame.crc_ok):
                    nak(Error.CRC)
                with m.Elif(~known):
                    nak(Error.COMMAND)
                with m.Elif((frame.length > cap) | (no_payload & (frame.length != 0))):
                    nak(Error.LENGTH)
                with m.Elif((frame.cmd == Cmd.WRITE_WEIGHTS) & Const(int(cfg.weights_in_rom), 1)):
                    nak(Error.ROM)
                with m.Elif((frame.cmd == Cmd.RUN) & ((frame.length == 0) | (frame.length > run_max))):
                    nak(Error.LENGTH)
                with m.Else():
                    with m.Switch(frame.cmd):
                        with m.Case(Cmd.PING):
                            m.d.comb += rd_restart.eq(1)
                            ack(frame.length, _SRC_ECHO)
                        with m.Case(Cmd.INFO):
                            ack(len(info_bytes), _SRC_INFO)
                        with m.Case(Cmd.READ_COUNTERS):
                            ack(15, _SRC_COUNTERS)
                        with m.Case(Cmd.RESET_STATE):
                            m.next = "DO_RESET"
                        with m.Case(Cmd.CLEAR_COUNTERS):
                            m.next = "DO_CLEAR"
                        with m.Case(Cmd.WRITE_STATE):
                            m.d.sync += kind.eq(_K_STATE)
                            m.next = "CHECK_START"
                        with m.Case(Cmd.WRITE_WEIGHTS):
                            m.d.sync += kind.eq(_K_WEIGHTS)
                            m.next = "CHECK_START"
                        with m.Case(Cmd.RUN):
                            m.d.sync += kind.eq(_K_RUN)
                            m.next = "CHECK_START"
            with m.State("CHECK_START"):
                m.d.comb += walk_go.eq(1)
                m.next = "CHECK"
            with m.State("CHECK"):
                with m.If(walk_fail):
                    nak(walk_code)
                with m.Elif(walk_done):
                    m.d.sync += walk_exec.eq(1)
                    with m.If(kind == _K_RUN):
                        m.d.sync += [tx_cmd.eq(frame.cmd | protocol.ACK_FLAG), tx_len.eq(resp_len),
                                     src.eq(_SRC_RUN), tx_idx.eq(0), ser_left.eq(0), nak_led.eq(0)]
                        m.next = "RUN_START"
                    with m.Else():
                        m.next = "EXEC_START"
            with m.State("EXEC_START"):
                m.d.comb += walk_go.eq(1)
                m.next = "EXEC"
            with m.State("EXEC"):
                with m.If(walk_done):
                    m.next = "WAIT_IDLE"
            with m.State("RUN_START"):
                m.d.comb += [walk_go.eq(1), xmt.start.eq(1), run_out.eq(1)]
                m.next = "RUN_EXEC"
            with m.State("RUN_EXEC"):
                m.d.comb += run_out.eq(1)
                with m.If(walk_done):
                    m.next = "RUN_DRAIN"
            with m.State("RUN_DRAIN"):
                m.d.comb += run_out.eq(1)
                with m.If(~xmt.busy & acc_idle):
                    m.next = "FINISH"
            with m.State("DO_RESET"):
                m.d.comb += [cmd_valid.eq(1), cmd_op.eq(Op.RESET_STATE)]
                with m.If(acc.i_cmd.ready):
                    m.next = "WAIT_IDLE"
            with m.State("DO_CLEAR"):
                m.d.comb += [cmd_valid.eq(1), cmd_op.eq(Op.CLEAR_COUNTERS)]
                with m.If(acc.i_cmd.ready):
                    m.d.sync += err_before.eq(0)
                    m.next = "WAIT_IDLE"
            with m.State("WAIT_IDLE"):
                with m.If(acc_idle):
                    with m.If(acc_error & ~err_before):
                        nak(Error.ACCEL)
                    with m.Else():
                        ack()
            with m.State("TX_START"):
                m.d.comb += xmt.start.eq(1)
                m.next = "TX_WAIT"
            with m.State("TX_WAIT"):
                with m.If(~xmt.busy):
                    m.next = "FINISH"
            with m.State("FINISH"):
                m.d.comb += rcv.o_frame.ready.eq(1)
                m.next = "IDLE"
        m.d.comb += self.busy.eq(rcv.o_frame.valid | acc.status[STATUS_BITS["busy"]])
        return m


class HostLink(wiring.Component):
    """The accelerator behind a UART: what a board top instantiates.

    Parameters
    ----------
    cfg : Config
    clk_freq : int or float
        Clock frequency in Hz.
    baud : int or float
        UART bit rate; the divisor ``round(clk_freq / baud)`` must be within 2%.
    weights : dict, optional
        Passed to the accelerator (needed when ``cfg.weights_in_rom``).
    buffer_bytes : int, optional
        Payload buffer (default :meth:`LinkLayout.default_buffer`).
    timeout : float
        Inter-byte timeout inside a frame, in seconds (default 20 ms); or
    timeout_cycles : int, optional
        the same in clock cycles (overrides ``timeout``).
    led_hold : int, optional
        Cycles an activity LED stays lit after activity (default ``clk_freq / 20``).
    design_hash : str
        Passed to :class:`FrameEngine` (INFO's design hash).

    Members
    -------
    rx : In(1)
        UART receive pin (from the host; asynchronous, idle high).
    tx : Out(1)
        UART transmit pin (to the host).
    led_busy : Out(1)
        A frame is being executed or the accelerator is busy.
    led_error : Out(1)
        The last response was a NAK.
    led_rx, led_tx : Out(1)
        Receive / transmit activity, stretched to ``led_hold`` cycles.
    """

    def __init__(self, cfg: Config, clk_freq, baud=115200, weights=None, *, buffer_bytes: int | None = None,
                 timeout: float = 0.02, timeout_cycles: int | None = None, led_hold: int | None = None,
                 design_hash: str = UNKNOWN_DESIGN):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        self._divisor = uart_divisor(clk_freq, baud)
        if timeout_cycles is None:
            if not (isinstance(timeout, (int, float)) and timeout > 0):
                raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
            timeout_cycles = max(int(round(clk_freq * timeout)), 1)
        _check_int("timeout_cycles", timeout_cycles, 1, 0xFFFFFFFF)
        if timeout_cycles < 20 * self._divisor:
            raise ValueError(f"timeout_cycles {timeout_cycles!r} is shorter than two bytes on the line "
                             f"({20 * self._divisor} cycles)")
        if led_hold is None:
            led_hold = max(1, int(clk_freq) // 20)
        _check_int("led_hold", led_hold, 1)
        self._led_hold = led_hold
        self._engine = FrameEngine(cfg, weights, buffer_bytes=buffer_bytes, timeout_cycles=timeout_cycles,
                                   clk_freq=int(round(clk_freq)), baud=int(round(baud)), design_hash=design_hash)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "led_busy": Out(1),
            "led_error": Out(1),
            "led_rx": Out(1),
            "led_tx": Out(1),
        })

    @property
    def cfg(self) -> Config:
        return self._engine.cfg

    @property
    def engine(self) -> FrameEngine:
        return self._engine

    @property
    def accelerator(self) -> Accelerator:
        return self._engine.accelerator

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def info(self) -> Info:
        return self._engine.info

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.engine = eng = self._engine
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o_data, eng.i_rx)
        wiring.connect(m, eng.o_tx, utx.i_data)
        m.d.comb += [self.led_busy.eq(eng.busy), self.led_error.eq(eng.error)]
        for led, active in ((self.led_rx, eng.rx_active), (self.led_tx, eng.tx_active)):
            hold = Signal(range(self._led_hold + 1))
            with m.If(active):
                m.d.sync += hold.eq(self._led_hold)
            with m.Elif(hold != 0):
                m.d.sync += hold.eq(hold - 1)
            m.d.comb += led.eq(active | (hold != 0))
        return m
