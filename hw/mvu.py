"""The chessboard-divided circulant matrix-vector unit (MVU).

Structure (Gemmini-style hierarchy, built by loops; blocks in :mod:`rnnaccel.hw.pe`):

* :class:`~rnnaccel.hw.pe.ProcessingElement` ``pe_{p}_{q}``: one PE, T
  multiplier lanes with T accumulators (latency 2: product, accumulate),
  reading its own weight bank ``pe_{p}_{q}_weights``;
* the ``pe_rows x pe_cols`` grid of PEs;
* :class:`~rnnaccel.hw.pe.ColumnOperand` ``col_{q}``: one input register per
  PE column, shared down the column (latency 0);
* :class:`~rnnaccel.hw.pe.RowReducer` ``row_{p}_tree``: a pipelined adder tree
  per PE row reducing the PE columns' partial sums into the output segment
  (latency ``ceil(log2(pe_cols))``);
* a serializer emitting the row round's output segments one per cycle;
* the bias add and the narrowing to ``q_pre`` (:func:`rnnaccel.numeric.golden.projection`).

Schedule (:mod:`rnnaccel.layout.image`): for each row round I, for each column round
J, T cycles t; PE (p, q) works on tile (I*P_r + p, J*P_c + q). At t = 0 the
column's rotating register loads segment ``J*P_c + q`` of the source vector;
circulant lanes multiply the bank's one word w[t] by the register
(lane r holds x[(r - t) mod T], :func:`rnnaccel.numeric.circulant.circulant_index`),
dense lanes multiply column t of the tile (T words) by x[t].

Pipeline, cycles after an issue cycle (stage 0: weight and vector addresses):

====================  =====  ==============================================
stage                 cycle  block
====================  =====  ==============================================
memory read           1      weight banks, vector banks; ``ColumnOperand``
product               2      ``ProcessingElement`` (first of its 2 cycles)
accumulate            3      ``ProcessingElement``
adder tree            +L     ``RowReducer``, L = ceil(log2(pe_cols))
result capture        +1     serializer buffer (all PE rows at once)
serializer            +P_r   one output segment per cycle
bias read, narrow     +2     bias memory, :func:`rnnaccel.numeric.fixedpoint.hw_narrow`
====================  =====  ==============================================

Timing: the controller issues one tile cycle per clock with no stalls inside
a plan; the only wait is a gap after a row round shorter than ``pe_rows``
cycles so the serializer can drain. Cycles of one plan, start to done:
``sweep_cycles + gaps + latency`` (:attr:`CirculantMVU.latency`).
"""

from __future__ import annotations

from amaranth.hdl import Array, ClockSignal, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from . import check_cfg_and_weights
from ..numeric.fixedpoint import hw_narrow
from ..layout.image import (MatrixPlan, bank_packing, bank_word_bits, bank_words, bias_words, plans, vector_depth,
                     vector_slots, weight_bank_depth, weight_banks, weight_word_bits)
from .pe import ColumnOperand, ProcessingElement, RowReducer, tree_latency

__all__ = ["CirculantMVU", "mvu_latency", "plan_cycles", "plan_gaps", "spram_bank", "uses_spram_primitives"]


def uses_spram_primitives(cfg: Config, platform) -> bool:
    """SPRAM weight banks become SB_SPRAM256KA primitives: ``weight_ram = huge`` on an iCE40 platform.

    Yosys cannot infer SPRAM from a memory with initial contents, and Amaranth
    memories always have them; elsewhere (simulation, generic Verilog) a bank
    is an ordinary memory with the same behaviour.
    """
    return cfg.weight_ram == "huge" and str(getattr(platform, "family", "")).lower() == "ice40"


def spram_bank(m: Module, name: str, depth: int, addr, wdata, wen):
    """A memory of SB_SPRAM256KA primitives (16K x 16 each), cascaded by depth; returns the read data.

    One address for reads and writes; read data arrive one cycle after the
    address, like a synchronous read port.
    """
    from amaranth.hdl import Instance

    blocks = -(-depth // 16384)
    sel_bits = max(1, (blocks - 1).bit_length())
    sel = Signal(sel_bits, name=f"{name}_sel")
    m.d.sync += sel.eq(addr >> 14) if blocks > 1 else sel.eq(0)
    outs = []
    for b in range(blocks):
        dout = Signal(16, name=f"{name}_{b}_dout")
        cs = (addr >> 14) == b if blocks > 1 else Const(1, 1)
        m.submodules[f"{name}_{b}"] = Instance(
            "SB_SPRAM256KA",
            i_ADDRESS=addr[:14], i_DATAIN=wdata, i_MASKWREN=Const(0b1111, 4), i_WREN=wen, i_CHIPSELECT=cs,
            i_CLOCK=ClockSignal("sync"), i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
            o_DATAOUT=dout)
        outs.append(dout)
    return Array(outs)[sel] if blocks > 1 else outs[0]


def mvu_latency(cfg: Config) -> int:
    """Cycles from the MVU's last issue cycle to ``done``.

    memory read (1) + PE (:attr:`ProcessingElement.LATENCY`: product and
    accumulate, 2) + adder tree (:func:`~rnnaccel.hw.pe.tree_latency` of
    ``pe_cols``: ceil(log2(pe_cols))) + result capture (1) + serializer (up to
    pe_rows) + bias read (1) + narrow (1).
    """
    return 1 + ProcessingElement.LATENCY + tree_latency(cfg.pe_cols) + 1 + cfg.pe_rows + 2


def plan_gaps(cfg: Config, plan: MatrixPlan) -> int:
    """Idle cycles inserted after each row round so the serializer keeps up."""
    return max(0, cfg.pe_rows - plan.rounds_c * cfg.tile)


def plan_cycles(cfg: Config, plan: MatrixPlan) -> int:
    """Cycles from ``start`` to ``done`` for one plan (upper bound from the schedule)."""
    return 1 + plan.sweep_cycles + plan.rounds_r * plan_gaps(cfg, plan) + mvu_latency(cfg)


class CirculantMVU(wiring.Component):
    """Matrix-vector unit for every plan of a config (:func:`rnnaccel.layout.image.plans`).

    Parameters
    ----------
    cfg : Config
        The configuration.
    weights : dict or None
        Float weights (model directory layout). Baked into the weight and
        bias ROMs when ``cfg.weights_in_rom``; otherwise the banks start at
        zero and are written through ``wr_*`` at run time.

    Members
    -------
    start : In(1)
        Pulse to start plan ``plan`` (ignored while busy).
    plan : In(range(len(plans)))
    busy, done : Out(1)
        ``done`` pulses in the cycle the last output segment is valid.
    vec_addr : Out(array of pe_cols rows), vec_en : Out(1), vec_data : In(pe_cols x T words)
        Read ports into the vector banks (synchronous, one cycle latency).
    o_valid, o_seg, o_data : Out
        Output segment ``o_seg`` (tile row of the plan): T words in ``q_pre``,
        bias added and narrowed.
    wr_en, wr_bank, wr_addr, wr_data : In
        Run-time write of weight bank ``wr_bank`` (p * pe_cols + q) or, with
        ``wr_bank == pe_rows * pe_cols``, of the bias memory.
    """

    def __init__(self, cfg: Config, weights=None):
        check_cfg_and_weights(cfg, weights)
        self._cfg = cfg
        self._weights = weights
        self._plans = plans(cfg)
        T = cfg.tile
        self._T = T
        self._vdepth = vector_depth(cfg)
        self._wdepth = sum(p.words_per_bank for p in self._plans)
        self._bdepth = sum(p.br for p in self._plans)
        self._wword = weight_word_bits(cfg)
        self._pack = bank_packing(cfg)       # weight words per memory word (SPRAM banks pack 16 bits)
        self._mem_word = bank_word_bits(cfg)
        self._mem_depth = weight_bank_depth(cfg)
        max_br = max(p.br for p in self._plans)
        self._wr_words = max(self._wdepth, self._bdepth)
        super().__init__({
            "start": In(1),
            "plan": In(range(len(self._plans))),
            "busy": Out(1),
            "done": Out(1),
            "vec_addr": Out(data.ArrayLayout(range(self._vdepth), cfg.pe_cols)),
            "vec_en": Out(1),
            "vec_data": In(data.ArrayLayout(data.ArrayLayout(signed(cfg.q_state.width), T), cfg.pe_cols)),
            "o_valid": Out(1),
            "o_seg": Out(range(max_br)),
            "o_data": Out(data.ArrayLayout(signed(cfg.q_pre.width), T)),
            "wr_en": In(1),
            "wr_bank": In(range(cfg.pe_rows * cfg.pe_cols + 1)),
            "wr_addr": In(range(self._wr_words)),
            "wr_data": In(max(self._mem_word, cfg.q_pre.width * T)),
        })

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def weight_depth(self) -> int:
        """Memory words of each weight bank (after SPRAM packing)."""
        return self._mem_depth

    @property
    def bias_depth(self) -> int:
        """Rows of the bias memory."""
        return self._bdepth

    @property
    def plan_list(self) -> list[MatrixPlan]:
        return list(self._plans)

    @property
    def tree_levels(self) -> int:
        """Register levels of each PE row's adder tree (:attr:`RowReducer.latency`)."""
        return tree_latency(self._cfg.pe_cols)

    @property
    def latency(self) -> int:
        """Cycles from the last issue cycle to ``done`` (:func:`mvu_latency`)."""
        return mvu_latency(self._cfg)

    def plan_gaps(self, plan: MatrixPlan) -> int:
        return plan_gaps(self._cfg, plan)

    def plan_cycles(self, plan: MatrixPlan) -> int:
        return plan_cycles(self._cfg, plan)

    def elaborate(self, platform):
        cfg, T = self._cfg, self._T
        Pr, Pc = cfg.pe_rows, cfg.pe_cols
        acc_w = cfg.acc_width
        m = Module()

        # ---------------------------------------------------------- memories
        if cfg.weights_in_rom:
            banks_img = weight_banks(cfg, self._weights)
            bias_img = bias_words(cfg, self._weights)
        else:
            banks_img = bias_img = None
        wmems = [[None] * Pc for _ in range(Pr)]
        ram_style = "huge" if cfg.weight_ram == "huge" else "block"
        spram_prims = uses_spram_primitives(cfg, platform)
        for p in range(Pr):
            for q in range(Pc):
                if spram_prims:
                    wmems[p][q] = "spram"
                    continue
                init = bank_words(cfg, banks_img[p][q]) if banks_img is not None else []
                mem = memory.Memory(shape=unsigned(self._mem_word), depth=self._mem_depth, init=init,
                                    attrs={"ram_style": ram_style})
                m.submodules[f"pe_{p}_{q}_weights"] = mem
                wmems[p][q] = mem
        bmem = memory.Memory(shape=unsigned(cfg.q_pre.width * T), depth=self._bdepth,
                             init=bias_img if bias_img is not None else [],
                             attrs={"ram_style": "block"})
        m.submodules.bias = bmem

        wsel = [[Signal(name=f"pe_{p}_{q}_wsel") for q in range(Pc)] for p in range(Pr)]
        if not cfg.weights_in_rom:
            for p in range(Pr):
                for q in range(Pc):
                    m.d.comb += wsel[p][q].eq(self.wr_en & (self.wr_bank == p * Pc + q))
                    if wmems[p][q] == "spram":
                        continue
                    wp = wmems[p][q].write_port()
                    m.d.comb += [wp.data.eq(self.wr_data[:self._mem_word]), wp.en.eq(wsel[p][q])]
                    wmems[p][q] = (wmems[p][q], wp)
            bwp = bmem.write_port()
            m.d.comb += [bwp.addr.eq(self.wr_addr), bwp.data.eq(self.wr_data[:cfg.q_pre.width * T]),
                         bwp.en.eq(self.wr_en & (self.wr_bank == Pr * Pc))]

        # -------------------------------------------------------- plan table
        nplans = len(self._plans)
        slots_base = {}
        for name, slot in vector_slots(cfg).items():
            slots_base[name] = slot.base

        def table(values, shape):
            return Array(Const(v, shape) for v in values)

        wbase_t = table([p.weight_base for p in self._plans], range(self._wdepth + 1))
        rr_t = table([p.rounds_r for p in self._plans], range(max(p.rounds_r for p in self._plans) + 1))
        rc_t = table([p.rounds_c for p in self._plans], range(max(p.rounds_c for p in self._plans) + 1))
        br_t = table([p.br for p in self._plans], range(max(p.br for p in self._plans) + 1))
        bbase_t = table([p.bias_base for p in self._plans], range(self._bdepth + 1))
        vbase_t = table([slots_base[p.src] for p in self._plans], range(self._vdepth + 1))
        gap_t = table([self.plan_gaps(p) for p in self._plans], range(Pr + 1))

        # -------------------------------------------------------- controller
        cur = Signal(range(nplans))
        I = Signal(range(max(p.rounds_r for p in self._plans) + 1))
        J = Signal(range(max(p.rounds_c for p in self._plans) + 1))
        t = Signal(range(T))
        wa = Signal(range(self._wdepth + 1))
        gap = Signal(range(Pr + 1))
        issuing = Signal()
        waiting = Signal()
        draining = Signal()

        rr, rc = rr_t[cur], rc_t[cur]
        issue = Signal()
        m.d.comb += issue.eq(issuing & ~waiting)
        m.d.comb += self.busy.eq(issuing | draining)

        with m.If(self.start & ~self.busy):
            m.d.sync += [cur.eq(self.plan), I.eq(0), J.eq(0), t.eq(0), wa.eq(wbase_t[self.plan]),
                         issuing.eq(1), waiting.eq(0), draining.eq(1)]
        with m.Elif(issue):
            m.d.sync += [wa.eq(wa + 1), t.eq(t + 1)]
            with m.If(t == T - 1):
                m.d.sync += [t.eq(0), J.eq(J + 1)]
                with m.If(J == rc - 1):
                    m.d.sync += [J.eq(0), I.eq(I + 1)]
                    with m.If(gap_t[cur] != 0):
                        m.d.sync += [waiting.eq(1), gap.eq(gap_t[cur] - 1)]
                    with m.If(I == rr - 1):
                        m.d.sync += [issuing.eq(0), waiting.eq(0)]
        with m.Elif(waiting):
            m.d.sync += gap.eq(gap - 1)
            with m.If(gap == 0):
                m.d.sync += waiting.eq(0)

        # stage 0 control
        first0 = Signal()
        last0 = Signal()
        m.d.comb += [first0.eq((J == 0) & (t == 0)), last0.eq((J == rc - 1) & (t == T - 1))]
        for q in range(Pc):
            m.d.comb += self.vec_addr[q].eq(vbase_t[cur] + J)
        m.d.comb += self.vec_en.eq(issue & (t == 0))
        wrd = [[None] * Pc for _ in range(Pr)]
        shift = (self._pack - 1).bit_length()
        sub = Signal(range(self._pack), name="weight_sub")     # which packed word, one cycle after the read
        if self._pack > 1:
            m.d.sync += sub.eq(wa[:shift])
        for p in range(Pr):
            for q in range(Pc):
                if wmems[p][q] == "spram":
                    addr = Signal(range(self._mem_depth), name=f"pe_{p}_{q}_addr")
                    m.d.comb += addr.eq(Mux(wsel[p][q], self.wr_addr, wa >> shift))
                    data_out = spram_bank(m, f"pe_{p}_{q}_weights", self._mem_depth, addr, self.wr_data[:16],
                                          wsel[p][q])
                    if self._pack > 1:
                        words = Array(data_out[i * self._wword:(i + 1) * self._wword] for i in range(self._pack))
                        wrd[p][q] = words[sub]
                    else:
                        wrd[p][q] = data_out
                    continue
                if isinstance(wmems[p][q], tuple):
                    mem, wp = wmems[p][q]
                    rp = mem.read_port()
                    # one address for both ports, so a single-port RAM (SPRAM) can hold the bank;
                    # writes happen only between steps, reads only during sweeps
                    addr = Signal(range(self._mem_depth), name=f"pe_{p}_{q}_addr")
                    m.d.comb += [addr.eq(Mux(wsel[p][q], self.wr_addr, wa >> shift)), rp.addr.eq(addr),
                                 wp.addr.eq(addr), rp.en.eq(issue)]
                else:
                    rp = wmems[p][q].read_port()
                    m.d.comb += [rp.addr.eq(wa >> shift), rp.en.eq(issue)]
                if self._pack > 1:
                    words = Array(rp.data[i * self._wword:(i + 1) * self._wword] for i in range(self._pack))
                    wrd[p][q] = words[sub]
                else:
                    wrd[p][q] = rp.data

        # ------------------------------------------------------ stage 1: operands
        v1, t0_1, first1, last1 = Signal(), Signal(), Signal(), Signal()
        I1 = Signal.like(I)
        m.d.sync += [v1.eq(issue), t0_1.eq(t == 0), first1.eq(first0), last1.eq(last0), I1.eq(I)]
        cols = []
        for q in range(Pc):
            col = ColumnOperand(cfg)
            m.submodules[f"col_{q}"] = col
            m.d.comb += [col.i_valid.eq(v1), col.i_load.eq(t0_1), col.i_seg.eq(self.vec_data[q])]
            cols.append(col)

        # ------------------------------------------------------ stages 2-3: the PE grid
        pes = [[None] * Pc for _ in range(Pr)]
        for p in range(Pr):
            for q in range(Pc):
                pe = ProcessingElement(cfg)
                m.submodules[f"pe_{p}_{q}"] = pe
                m.d.comb += [pe.en.eq(1), pe.i_valid.eq(v1), pe.i_first.eq(first1), pe.i_last.eq(last1),
                             pe.i_w.eq(wrd[p][q]), pe.i_x.eq(cols[q].o_x)]
                pes[p][q] = pe

        # ------------------------------------------------------ adder tree per PE row
        rows = []
        for p in range(Pr):
            tree = RowReducer(cfg, Pc)
            m.submodules[f"row_{p}_tree"] = tree
            m.d.comb += tree.i_valid.eq(pes[p][0].o_last)
            for q in range(Pc):
                m.d.comb += tree.i_acc[q].eq(pes[p][q].o_acc)
            rows.append(tree)
        # the tile row round I travels beside the products and the tree
        tI = I1
        for i in range(ProcessingElement.LATENCY + self.tree_levels):
            nxt_I = Signal.like(I, name=f"round_I{i + 2}")
            m.d.sync += nxt_I.eq(tI)
            tI = nxt_I
        tv = rows[0].o_valid

        # ------------------------------------------------------ capture + serializer
        outbuf = [[Signal(signed(acc_w), name=f"row_{p}_sum{r}") for r in range(T)] for p in range(Pr)]
        ser_cnt = Signal(range(Pr + 1))
        ser_base = Signal(range(max(p.br for p in self._plans) + Pr + 1))
        with m.If(tv):
            for p in range(Pr):
                m.d.sync += [outbuf[p][r].eq(rows[p].o_sum[r]) for r in range(T)]
            m.d.sync += [ser_cnt.eq(Pr), ser_base.eq(tI * Pr)]
        with m.Elif(ser_cnt != 0):
            for p in range(Pr - 1):
                m.d.sync += [outbuf[p][r].eq(outbuf[p + 1][r]) for r in range(T)]
            m.d.sync += [ser_cnt.eq(ser_cnt - 1), ser_base.eq(ser_base + 1)]
        emit = Signal()
        m.d.comb += emit.eq((ser_cnt != 0) & (ser_base < br_t[cur]))

        # ------------------------------------------------------ bias + narrow
        brp = bmem.read_port()
        m.d.comb += [brp.addr.eq(bbase_t[cur] + ser_base), brp.en.eq(emit)]
        e1 = Signal()
        seg1 = Signal(range(max(p.br for p in self._plans) + Pr + 1))
        sum1 = [Signal(signed(acc_w), name=f"out_sum{r}") for r in range(T)]
        m.d.sync += [e1.eq(emit), seg1.eq(ser_base)]
        with m.If(emit):
            m.d.sync += [sum1[r].eq(outbuf[0][r]) for r in range(T)]
        shift = cfg.acc_frac - cfg.q_pre.frac
        pw = cfg.q_pre.width
        o_valid = Signal()
        m.d.sync += [o_valid.eq(e1), self.o_seg.eq(seg1)]
        for r in range(T):
            b = brp.data[r * pw:(r + 1) * pw].as_signed()
            total = sum1[r] + (b << shift)
            with m.If(e1):
                m.d.sync += self.o_data[r].eq(hw_narrow(total, cfg.acc_frac, cfg.q_pre))
        m.d.comb += self.o_valid.eq(o_valid)

        last_seg = Signal()
        m.d.comb += last_seg.eq(o_valid & (self.o_seg == br_t[cur] - 1))
        m.d.comb += self.done.eq(last_seg)
        with m.If(last_seg & ~issuing):
            m.d.sync += draining.eq(0)
        return m
