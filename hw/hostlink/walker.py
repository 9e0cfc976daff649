"""The payload walker: a frame's records and input words, walked twice (check pass, then execute pass), and the
accelerator's command port it drives."""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed

from ...interface.protocol import Error
from ...layout.runtime import param_names
from ..pipeline import stream_register
from ..sequencer import Op

__all__ = ["K_STATE", "K_WEIGHTS", "K_RUN", "CommandPort", "StreamPort", "PayloadWalker", "per_core", "choose"]


# payload kinds walked by the engine
K_STATE, K_WEIGHTS, K_RUN = 0, 1, 2


def per_core(values, slot):
    """One constant per core, the one of core ``slot`` (a plain constant when every core has the same)."""
    values = [int(v) for v in values]
    width = max(1, max(v.bit_length() for v in values))
    if len(set(values)) == 1:
        return Const(values[0], width)
    return Array(Const(v, width) for v in values)[slot]


def choose(values, slot):
    """One value per core, the one of core ``slot`` (the value itself for one core)."""
    return values[0] if len(values) == 1 else Array(values)[slot]


class StreamPort:
    """The design's input and output streams as the engine drives them: the accelerator's ``i_x`` / ``o_h``,
    or a :class:`~rnnaccel.hw.multicore.MultiCore`'s tagged ones (``core`` given: the input words' core field).

    Emits into ``m`` when made.
    """

    def __init__(self, m: Module, acc, core=None):
        if core is not None:
            self.x_data = Signal(signed(len(acc.i_x.payload.data)))
            m.d.comb += [acc.i_x.payload.data.eq(self.x_data), acc.i_x.payload.core.eq(core)]
            self.o_data = acc.o_h.payload.data
        else:
            self.x_data = Signal(signed(len(acc.i_x.payload)))
            m.d.comb += acc.i_x.payload.eq(self.x_data)
            self.o_data = acc.o_h.payload
        self.x_valid, self.x_ready = acc.i_x.valid, acc.i_x.ready
        self.o_valid, self.o_ready = acc.o_h.valid, acc.o_h.ready


class CommandPort:
    """The accelerator's ``i_cmd`` stream as signals any driver may set (the walker, the engine's own commands).
    For a :class:`~rnnaccel.hw.multicore.MultiCore`, ``core`` drives the command's core field.

    A command passes a register on its way (timing: the walker's decode no longer reaches the weight memories'
    write enables in the same cycle); ``ready`` takes the next while the register's command leaves, and
    ``pending`` is high while one waits in it (the engine waits for it before it calls the accelerator idle).

    Emits into ``m`` when made.
    """

    def __init__(self, m: Module, acc, core=None):
        cmd_valid = Signal()
        cmd_op = Signal(4)
        cmd_sel = Signal(16)
        cmd_addr = Signal(24)
        cmd_data = Signal(len(acc.i_cmd.payload.data))
        pl = acc.i_cmd.payload
        fields = [(pl.op, cmd_op), (pl.sel, cmd_sel), (pl.addr, cmd_addr), (pl.data, cmd_data)]
        if core is not None:
            fields.append((pl.core, core))
        ready, full, held = stream_register(m, cmd_valid, [src for _, src in fields], acc.i_cmd.ready, name="cmd")
        m.d.comb += acc.i_cmd.valid.eq(full)
        m.d.comb += [dst.eq(h) for (dst, _), h in zip(fields, held)]
        self.valid, self.op, self.sel, self.addr, self.data = cmd_valid, cmd_op, cmd_sel, cmd_addr, cmd_data
        self.ready, self.pending = ready, full


def fits_unsigned(value, width, nbytes):
    """Bits ``width .. 8*nbytes`` of ``value`` are zero."""
    return Const(1, 1) if width >= 8 * nbytes else (value[width : 8 * nbytes] == 0)


class PayloadWalker:
    """Walks the buffered payload unit by unit (a state record, a weight header or row, an input word).

    A pass starts with ``walk_go``; ``walk_exec`` low makes it the check pass (every field validated, nothing
    issued; a bad one ends it with ``walk_fail`` and ``walk_code``), high the execute pass (records become
    ``i_cmd`` commands, input words ``i_x`` words). ``walk_done`` ends a pass that reached the payload's end.
    In a RUN pass ``resp_len`` counts up the response bytes (``H * W`` per whole time step); the engine zeroes it
    for each frame and takes it at the end of the check pass.

    Several cores (a MultiCore): every size and bound is the one of core ``slot`` (the frame's core, checked
    to exist before a walk), records and weights in that core's own layout; RUN words in ``runs[slot]``'s
    (the core's own, or the whole stack's in ``layers`` mode).

    Emits into ``m`` when made.

    Parameters
    ----------
    m : Module
    lays : list of LinkLayout
        Each core's layout (one for a one-core design).
    runs : list of LinkLayout
        The geometry of a RUN addressed to each core (input words, response words).
    port : StreamPort
    reader : PayloadReader
    cmd : CommandPort
    slot : Value
        The frame's core (ignored for one core).
    """

    def __init__(self, m: Module, lays, runs, port: StreamPort, reader, cmd: CommandPort, slot):
        self._lays, self._runs, self._port, self._reader, self._cmd = lays, runs, port, reader, cmd
        self._slot = slot
        rec_bytes = max(
            max(lay.state_record_bytes, 5, *(lay.weight_bytes(s) for s in range(lay.weight_banks + 1))) for lay in lays
        )
        rec_bytes = max(rec_bytes, *(r.word_bytes for r in runs))
        n_in = max(r.hw.input_size for r in runs)
        # run-time dimensions (one core): the RUN geometry follows the SET_PARAM records the link forwards
        self._rt = len(runs) == 1 and runs[0].cfg.runtime_dims
        if self._rt:
            assert param_names(runs[0].cfg)[:2] == ["input_size", "hidden_size"]
            self.rt_in = Signal(range(n_in + 1), init=runs[0].cfg.input_size)
            self.rt_out = Signal(16, init=runs[0].out_step_bytes)
        self.rec = Signal(8 * rec_bytes)
        self.u_cnt = Signal(range(rec_bytes))
        self.u_len = Signal(range(rec_bytes + 1))
        self.kind = Signal(2)
        self.walk_exec = Signal()
        self.walk_go = Signal()
        self.walk_done = Signal()
        self.walk_fail = Signal()
        self.walk_code = Signal(8)
        self.hdr_done = Signal()
        self.w_sel = Signal(16)
        self.w_addr = Signal(25)
        self.x_cnt = Signal(range(max(2, n_in)))
        self.resp_len = Signal(16)
        self._ok_r = Signal()  # the unit in rec is in range (registered in W_CHECK)
        self._u_last = Signal.like(self.u_cnt)  # u_len - 1 (registered in W_LEN)

        self._unit_length(m)
        self._decode_units(m)
        with m.FSM(name="walk") as walk_fsm:
            with m.State("W_IDLE"):
                with m.If(self.walk_go):
                    m.d.comb += reader.rd_restart.eq(1)
                    m.d.sync += [self.u_cnt.eq(0), self.hdr_done.eq(0), self.x_cnt.eq(0)]
                    m.next = "W_LEN"
            with m.State("W_LEN"):  # the unit's length, registered (timing: kind/w_sel -> u_len -> the byte count)
                m.d.sync += self._u_last.eq(self.u_len - 1)
                m.next = "W_READ"
            with m.State("W_READ"):
                self._read_state(m)
            with m.State("W_CHECK"):  # the unit's range check, registered (timing: rec -> compares -> enables)
                m.d.sync += self._ok_r.eq(self._unit_ok(m))
                m.next = "W_ACT"
            with m.State("W_ACT"):
                self._act_state(m)
            with m.State("W_DONE"):
                m.d.comb += self.walk_done.eq(1)
                m.next = "W_IDLE"
            with m.State("W_FAIL"):
                m.d.comb += self.walk_fail.eq(1)
                m.next = "W_IDLE"
        m.d.comb += reader.walking.eq(~walk_fsm.ongoing("W_IDLE"))

    def _unit_length(self, m):
        """``u_len``: the bytes of the unit being read."""
        lays, slot = self._lays, self._slot
        nbs = [lay.weight_banks for lay in lays]
        is_bias = Signal()
        m.d.comb += is_bias.eq(self.w_sel == per_core(nbs, slot))
        wk_bytes = per_core([lay.weight_bytes(0) for lay in lays], slot)
        wb_bytes = per_core([lay.weight_bytes(nb) for lay, nb in zip(lays, nbs)], slot)
        with m.Switch(self.kind):
            with m.Case(K_STATE):
                m.d.comb += self.u_len.eq(per_core([lay.state_record_bytes for lay in lays], slot))
            with m.Case(K_WEIGHTS):
                m.d.comb += self.u_len.eq(Mux(~self.hdr_done, 5, Mux(is_bias, wb_bytes, wk_bytes)))
            with m.Default():
                m.d.comb += self.u_len.eq(per_core([r.word_bytes for r in self._runs], slot))
        self._is_bias = is_bias

    def _decode_units(self, m):
        """The fields of the unit in ``rec`` and whether each kind of unit is in range (for core ``slot``)."""
        rec, slot = self.rec, self._slot
        is_bias, w_addr = self._is_bias, self.w_addr
        st_op, st_sel, st_addr = rec[0:8], rec[8:24], rec[24:48]
        st_is_vec = st_op == Op.WRITE_VEC
        st_is_c = st_op == Op.WRITE_C
        hd_sel, hd_addr = rec[0:16], rec[16:40]
        st_oks, st_datas, hd_oks, wt_oks, w_datas = [], [], [], [], []
        for i, lay in enumerate(self._lays):
            cfg, nb = lay.cfg, lay.weight_banks
            xs, cs, d = cfg.q_state.width, cfg.q_cell.width, lay.state_data_bytes
            wk_bits, wb_bits = lay.weight_bits(0), lay.weight_bits(nb)
            st_data = rec[48 : 48 + 8 * d]
            st_ok = Signal(name=f"st_ok{i}" if len(self._lays) > 1 else "st_ok")
            st_good = (
                st_is_vec & (st_sel < lay.vector_sels) & (st_addr < lay.vector_rows) & fits_unsigned(st_data, xs, d)
            ) | (st_is_c & (st_sel == 0) & (st_addr < lay.cell_words) & fits_unsigned(st_data, cs, d))
            if lay.params:  # run-time dimensions: SET_PARAM records (the accelerator checks each register's width)
                st_good |= (
                    (st_op == Op.SET_PARAM)
                    & (st_sel < lay.params)
                    & (st_addr == 0)
                    & fits_unsigned(st_data, lay.param_bits, d)
                )
            m.d.comb += st_ok.eq(st_good)
            wt_ok = Signal(name=f"wt_ok{i}" if len(self._lays) > 1 else "wt_ok")
            m.d.comb += wt_ok.eq(
                Mux(
                    is_bias,
                    (w_addr < lay.weight_depth(nb)) & fits_unsigned(rec, wb_bits, lay.weight_bytes(nb)),
                    (w_addr < lay.weight_depth(0)) & fits_unsigned(rec, wk_bits, lay.weight_bytes(0)),
                )
            )
            st_oks.append(st_ok)
            st_datas.append(st_data)
            hd_oks.append(hd_sel <= nb)
            wt_oks.append(wt_ok)
            w_datas.append(Mux(is_bias, rec[:wb_bits], rec[:wk_bits]))
        x_oks, x_words = [], []
        xw = len(self._port.x_data)
        for i, run in enumerate(self._runs):
            xs, W = run.cfg.q_state.width, run.word_bytes
            x_word = rec[: 8 * W]
            x_ok = Signal(name=f"x_ok{i}" if len(self._runs) > 1 else "x_ok")
            if xs >= 8 * W:
                m.d.comb += x_ok.eq(1)
            else:
                top = x_word[xs - 1 : 8 * W]  # sign bit and the extension above it
                m.d.comb += x_ok.eq((top == 0) | (top == (1 << len(top)) - 1))
            x_val = Signal(signed(xw), name=f"x_word{i}" if len(self._runs) > 1 else "x_word")
            m.d.comb += x_val.eq(x_word[:xs].as_signed())
            x_oks.append(x_ok)
            x_words.append(x_val)
        self._st = (choose(st_oks, slot), st_op, st_sel, st_addr, choose(st_datas, slot))
        self._hd = (choose(hd_oks, slot), hd_sel, hd_addr)
        self._wt_ok = choose(wt_oks, slot)
        self._w_data = choose(w_datas, slot)
        self._x = (choose(x_oks, slot), choose(x_words, slot))

    def _read_state(self, m):
        """W_READ: collect ``u_len`` bytes into ``rec``; at the payload's end, check it ended on a unit boundary."""
        reader, u_cnt, kind = self._reader, self.u_cnt, self.kind
        m.d.comb += reader.walk_take.eq(1)
        with m.If(reader.b_valid):
            m.d.sync += self.rec.word_select(u_cnt, 8).eq(reader.data)
            with m.If(u_cnt == self._u_last):
                m.d.sync += u_cnt.eq(0)
                m.next = "W_CHECK"
            with m.Else():
                m.d.sync += u_cnt.eq(u_cnt + 1)
        with m.Elif(reader.exhausted):
            end_ok = Signal()
            with m.Switch(kind):
                with m.Case(K_STATE):
                    m.d.comb += end_ok.eq(u_cnt == 0)
                with m.Case(K_WEIGHTS):
                    m.d.comb += end_ok.eq((u_cnt == 0) & self.hdr_done)
                with m.Default():
                    m.d.comb += end_ok.eq((u_cnt == 0) & (self.x_cnt == 0))
            with m.If(end_ok):
                m.next = "W_DONE"
            with m.Else():
                m.d.sync += self.walk_code.eq(Error.LENGTH)
                m.next = "W_FAIL"

    def _unit_ok(self, m):
        """Whether the unit in ``rec`` is in range for its kind (combinational)."""
        ok = Signal(name="unit_ok")
        with m.Switch(self.kind):
            with m.Case(K_STATE):
                m.d.comb += ok.eq(self._st[0])
            with m.Case(K_WEIGHTS):
                m.d.comb += ok.eq(Mux(self.hdr_done, self._wt_ok, self._hd[0]))
            with m.Default():
                m.d.comb += ok.eq(self._x[0])
        return ok

    def _act_state(self, m):
        """W_ACT: check the unit (check pass) or issue it to the accelerator (execute pass), then advance."""
        port, cmd, kind, hdr_done = self._port, self._cmd, self.kind, self.hdr_done
        _, st_op, st_sel, st_addr, st_data = self._st
        x_word = self._x[1]
        ok = self._ok_r
        issue = Signal()  # this unit becomes an accelerator command / input word
        accepted = Signal()  # ... and the accelerator took it (or nothing to take)
        advance = Signal()
        with m.Switch(kind):
            with m.Case(K_STATE):
                m.d.comb += [
                    issue.eq(1),
                    cmd.op.eq(st_op),
                    cmd.sel.eq(st_sel),
                    cmd.addr.eq(st_addr),
                    cmd.data.eq(st_data),
                ]
                m.d.comb += accepted.eq(cmd.ready)
            with m.Case(K_WEIGHTS):
                with m.If(~hdr_done):
                    m.d.comb += [issue.eq(0), accepted.eq(1)]
                with m.Else():
                    m.d.comb += [
                        issue.eq(1),
                        cmd.op.eq(Op.WRITE_WEIGHT),
                        cmd.sel.eq(self.w_sel),
                        cmd.addr.eq(self.w_addr),
                        cmd.data.eq(self._w_data),
                        accepted.eq(cmd.ready),
                    ]
            with m.Default():
                m.d.comb += [issue.eq(1), port.x_data.eq(x_word), accepted.eq(port.x_ready)]
        if self._rt:  # a forwarded SET_PARAM of the sizes sets the RUN geometry
            with m.If(self.walk_exec & issue & accepted & (kind == K_STATE) & (st_op == Op.SET_PARAM)):
                with m.If(st_sel == 0):
                    m.d.sync += self.rt_in.eq(st_data)
                with m.If(st_sel == 1):
                    m.d.sync += self.rt_out.eq(st_data * self._runs[0].word_bytes)
        with m.If(self.walk_exec):
            with m.If(issue):
                with m.If(kind == K_RUN):
                    m.d.comb += port.x_valid.eq(1)
                with m.Else():
                    m.d.comb += cmd.valid.eq(1)
            m.d.comb += advance.eq(accepted)
        with m.Else():
            with m.If(ok):
                m.d.comb += advance.eq(1)
            with m.Else():
                m.d.sync += self.walk_code.eq(Error.RANGE)
                m.next = "W_FAIL"
        with m.If(advance):
            m.next = "W_LEN"
            self._advance(m)

    def _advance(self, m):
        """The bookkeeping after a unit: the weight header's row pointer, the RUN step count and response length."""
        runs, slot = self._runs, self._slot
        if self._rt:
            n_in, out_step = self.rt_in, self.rt_out
        else:
            n_in = per_core([r.cfg.input_size for r in runs], slot)
            out_step = per_core([r.out_step_bytes for r in runs], slot)
        hdr_done, w_addr, x_cnt = self.hdr_done, self.w_addr, self.x_cnt
        hd_sel, hd_addr = self._hd[1:]
        with m.Switch(self.kind):
            with m.Case(K_WEIGHTS):
                with m.If(~hdr_done):
                    m.d.sync += [hdr_done.eq(1), self.w_sel.eq(hd_sel), w_addr.eq(hd_addr)]
                with m.Else():
                    m.d.sync += w_addr.eq(w_addr + 1)
            with m.Case(K_RUN):
                with m.If(x_cnt == n_in - 1):
                    m.d.sync += [x_cnt.eq(0), self.resp_len.eq(self.resp_len + out_step)]
                with m.Else():
                    m.d.sync += x_cnt.eq(x_cnt + 1)
