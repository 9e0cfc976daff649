"""The payload walker: a frame's records and input words, walked twice (check pass, then execute pass), and the
accelerator's command port it drives."""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal

from ...interface.protocol import Error
from ..sequencer import Op

__all__ = ["K_STATE", "K_WEIGHTS", "K_RUN", "CommandPort", "PayloadWalker"]


# payload kinds walked by the engine
K_STATE, K_WEIGHTS, K_RUN = 0, 1, 2


class CommandPort:
    """The accelerator's ``i_cmd`` stream as signals any driver may set (the walker, the engine's own commands).

    Emits into ``m`` when made.
    """

    def __init__(self, m: Module, acc):
        cmd_valid = Signal()
        cmd_op = Signal(4)
        cmd_sel = Signal(16)
        cmd_addr = Signal(24)
        cmd_data = Signal(len(acc.i_cmd.payload.data))
        m.d.comb += [
            acc.i_cmd.valid.eq(cmd_valid),
            acc.i_cmd.payload.op.eq(cmd_op),
            acc.i_cmd.payload.sel.eq(cmd_sel),
            acc.i_cmd.payload.addr.eq(cmd_addr),
            acc.i_cmd.payload.data.eq(cmd_data),
        ]
        self.valid, self.op, self.sel, self.addr, self.data = cmd_valid, cmd_op, cmd_sel, cmd_addr, cmd_data
        self.ready = acc.i_cmd.ready


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

    Emits into ``m`` when made.

    Parameters
    ----------
    m : Module
    cfg : Config
    lay : LinkLayout
    acc : Accelerator
    reader : PayloadReader
    cmd : CommandPort
    """

    def __init__(self, m: Module, cfg, lay, acc, reader, cmd: CommandPort):
        self._cfg, self._lay, self._acc, self._reader, self._cmd = cfg, lay, acc, reader, cmd
        n_in = cfg.input_size
        W = lay.word_bytes
        nb = lay.weight_banks
        rec_bytes = max(lay.state_record_bytes, 5, W, *(lay.weight_bytes(s) for s in range(nb + 1)))
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

        self._unit_length(m)
        self._decode_units(m)
        with m.FSM(name="walk") as walk_fsm:
            with m.State("W_IDLE"):
                with m.If(self.walk_go):
                    m.d.comb += reader.rd_restart.eq(1)
                    m.d.sync += [self.u_cnt.eq(0), self.hdr_done.eq(0), self.x_cnt.eq(0)]
                    m.next = "W_READ"
            with m.State("W_READ"):
                self._read_state(m)
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
        lay = self._lay
        nb = lay.weight_banks
        self._wk_bits, self._wb_bits = lay.weight_bits(0), lay.weight_bits(nb)
        wk_bytes, wb_bytes = lay.weight_bytes(0), lay.weight_bytes(nb)
        is_bias = Signal()
        m.d.comb += is_bias.eq(self.w_sel == nb)
        with m.Switch(self.kind):
            with m.Case(K_STATE):
                m.d.comb += self.u_len.eq(lay.state_record_bytes)
            with m.Case(K_WEIGHTS):
                m.d.comb += self.u_len.eq(Mux(~self.hdr_done, 5, Mux(is_bias, wb_bytes, wk_bytes)))
            with m.Default():
                m.d.comb += self.u_len.eq(lay.word_bytes)
        self._is_bias = is_bias
        self._wk_bytes, self._wb_bytes = wk_bytes, wb_bytes

    def _decode_units(self, m):
        """The fields of the unit in ``rec`` and whether each kind of unit is in range."""
        cfg, lay, rec = self._cfg, self._lay, self.rec
        xs, cs = cfg.q_state.width, cfg.q_cell.width
        W = lay.word_bytes
        nb = lay.weight_banks
        wk_bits, wb_bits, wk_bytes, wb_bytes = self._wk_bits, self._wb_bits, self._wk_bytes, self._wb_bytes
        is_bias, w_addr = self._is_bias, self.w_addr
        # decoded units
        st_op, st_sel, st_addr = rec[0:8], rec[8:24], rec[24:48]
        st_data = rec[48 : 48 + 8 * lay.state_data_bytes]
        st_is_vec = st_op == Op.WRITE_VEC
        st_is_c = st_op == Op.WRITE_C
        st_ok = Signal()
        m.d.comb += st_ok.eq(
            (
                st_is_vec
                & (st_sel < lay.vector_sels)
                & (st_addr < lay.vector_rows)
                & fits_unsigned(st_data, xs, lay.state_data_bytes)
            )
            | (st_is_c & (st_sel == 0) & (st_addr < lay.cell_words) & fits_unsigned(st_data, cs, lay.state_data_bytes))
        )
        hd_sel, hd_addr = rec[0:16], rec[16:40]
        hd_ok = hd_sel <= nb
        wt_ok = Signal()
        m.d.comb += wt_ok.eq(
            Mux(
                is_bias,
                (w_addr < lay.weight_depth(nb)) & fits_unsigned(rec, wb_bits, wb_bytes),
                (w_addr < lay.weight_depth(0)) & fits_unsigned(rec, wk_bits, wk_bytes),
            )
        )
        x_word = rec[: 8 * W]
        x_ok = Signal()
        if xs >= 8 * W:
            m.d.comb += x_ok.eq(1)
        else:
            top = x_word[xs - 1 : 8 * W]  # sign bit and the extension above it
            m.d.comb += x_ok.eq((top == 0) | (top == (1 << len(top)) - 1))
        self._st = (st_ok, st_op, st_sel, st_addr, st_data)
        self._hd = (hd_ok, hd_sel, hd_addr)
        self._wt_ok = wt_ok
        self._x = (x_ok, x_word)

    def _read_state(self, m):
        """W_READ: collect ``u_len`` bytes into ``rec``; at the payload's end, check it ended on a unit boundary."""
        reader, u_cnt, kind = self._reader, self.u_cnt, self.kind
        m.d.comb += reader.walk_take.eq(1)
        with m.If(reader.b_valid):
            m.d.sync += self.rec.word_select(u_cnt, 8).eq(reader.data)
            with m.If(u_cnt == self.u_len - 1):
                m.d.sync += u_cnt.eq(0)
                m.next = "W_ACT"
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

    def _act_state(self, m):
        """W_ACT: check the unit (check pass) or issue it to the accelerator (execute pass), then advance."""
        acc, cmd, kind, rec, hdr_done = self._acc, self._cmd, self.kind, self.rec, self.hdr_done
        xs = self._cfg.q_state.width
        st_ok, st_op, st_sel, st_addr, st_data = self._st
        hd_ok = self._hd[0]
        x_ok, x_word = self._x
        ok = Signal()
        issue = Signal()  # this unit becomes an accelerator command / input word
        accepted = Signal()  # ... and the accelerator took it (or nothing to take)
        advance = Signal()
        with m.Switch(kind):
            with m.Case(K_STATE):
                m.d.comb += [
                    ok.eq(st_ok),
                    issue.eq(1),
                    cmd.op.eq(st_op),
                    cmd.sel.eq(st_sel),
                    cmd.addr.eq(st_addr),
                    cmd.data.eq(st_data),
                ]
                m.d.comb += accepted.eq(acc.i_cmd.ready)
            with m.Case(K_WEIGHTS):
                with m.If(~hdr_done):
                    m.d.comb += [ok.eq(hd_ok), issue.eq(0), accepted.eq(1)]
                with m.Else():
                    m.d.comb += [
                        ok.eq(self._wt_ok),
                        issue.eq(1),
                        cmd.op.eq(Op.WRITE_WEIGHT),
                        cmd.sel.eq(self.w_sel),
                        cmd.addr.eq(self.w_addr),
                        cmd.data.eq(Mux(self._is_bias, rec[: self._wb_bits], rec[: self._wk_bits])),
                        accepted.eq(acc.i_cmd.ready),
                    ]
            with m.Default():
                m.d.comb += [ok.eq(x_ok), issue.eq(1), acc.i_x.payload.eq(x_word[:xs]), accepted.eq(acc.i_x.ready)]
        with m.If(self.walk_exec):
            with m.If(issue):
                with m.If(kind == K_RUN):
                    m.d.comb += acc.i_x.valid.eq(1)
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
            m.next = "W_READ"
            self._advance(m)

    def _advance(self, m):
        """The bookkeeping after a unit: the weight header's row pointer, the RUN step count and response length."""
        H, n_in = self._cfg.hidden_size, self._cfg.input_size
        W = self._lay.word_bytes
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
                    m.d.sync += [x_cnt.eq(0), self.resp_len.eq(self.resp_len + H * W)]
                with m.Else():
                    m.d.sync += x_cnt.eq(x_cnt + 1)
