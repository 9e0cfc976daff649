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
from ..layout.image import (
    MatrixPlan,
    bank_packing,
    bank_word_bits,
    bank_words,
    bias_words,
    plans,
    vector_depth,
    vector_slots,
    weight_bank_depth,
    weight_banks,
    weight_word_bits,
)
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
            i_ADDRESS=addr[:14],
            i_DATAIN=wdata,
            i_MASKWREN=Const(0b1111, 4),
            i_WREN=wen,
            i_CHIPSELECT=cs,
            i_CLOCK=ClockSignal("sync"),
            i_STANDBY=Const(0, 1),
            i_SLEEP=Const(0, 1),
            i_POWEROFF=Const(1, 1),
            o_DATAOUT=dout,
        )
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
        self._pack = bank_packing(cfg)  # weight words per memory word (SPRAM banks pack 16 bits)
        self._mem_word = bank_word_bits(cfg)
        self._mem_depth = weight_bank_depth(cfg)
        max_br = max(p.br for p in self._plans)
        self._wr_words = max(self._wdepth, self._bdepth)
        super().__init__(
            {
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
            }
        )

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
        return _MVUBuild(self, platform).module()


class _MVUBuild:
    """Builds :class:`CirculantMVU`'s module in pipeline order: memories, plan table, controller,
    weight reads (stage 0), operands and the PE grid (stages 1-3), adder trees, serializer, bias and narrow."""

    def __init__(self, mvu: CirculantMVU, platform):
        self.u = mvu
        self.platform = platform
        self.cfg, self.T = mvu._cfg, mvu._T
        self.Pr, self.Pc = self.cfg.pe_rows, self.cfg.pe_cols
        self.plans = mvu._plans
        self.max_br = max(p.br for p in self.plans)
        self.m = Module()

    def module(self) -> Module:
        self.memories()
        self.plan_table()
        self.controller()
        self.weight_reads()
        self.grid()
        self.serializer()
        self.bias_narrow()
        return self.m

    def memories(self):
        """Weight banks (ROM, RAM, or SPRAM primitives) and the bias memory, with their write ports."""
        m, cfg, u, T, Pr, Pc = self.m, self.cfg, self.u, self.T, self.Pr, self.Pc
        if cfg.weights_in_rom:
            banks_img = weight_banks(cfg, u._weights)
            bias_img = bias_words(cfg, u._weights)
        else:
            banks_img = bias_img = None
        wmems = [[None] * Pc for _ in range(Pr)]
        ram_style = "huge" if cfg.weight_ram == "huge" else "block"
        spram_prims = uses_spram_primitives(cfg, self.platform)
        for p in range(Pr):
            for q in range(Pc):
                if spram_prims:
                    wmems[p][q] = "spram"
                    continue
                init = bank_words(cfg, banks_img[p][q]) if banks_img is not None else []
                mem = memory.Memory(
                    shape=unsigned(u._mem_word), depth=u._mem_depth, init=init, attrs={"ram_style": ram_style}
                )
                m.submodules[f"pe_{p}_{q}_weights"] = mem
                wmems[p][q] = mem
        bmem = memory.Memory(
            shape=unsigned(cfg.q_pre.width * T),
            depth=u._bdepth,
            init=bias_img if bias_img is not None else [],
            attrs={"ram_style": "block"},
        )
        m.submodules.bias = bmem
        self.bmem = bmem

        wsel = [[Signal(name=f"pe_{p}_{q}_wsel") for q in range(Pc)] for p in range(Pr)]
        if not cfg.weights_in_rom:
            for p in range(Pr):
                for q in range(Pc):
                    m.d.comb += wsel[p][q].eq(u.wr_en & (u.wr_bank == p * Pc + q))
                    if wmems[p][q] == "spram":
                        continue
                    wp = wmems[p][q].write_port()
                    m.d.comb += [wp.data.eq(u.wr_data[: u._mem_word]), wp.en.eq(wsel[p][q])]
                    wmems[p][q] = (wmems[p][q], wp)
            bwp = bmem.write_port()
            m.d.comb += [
                bwp.addr.eq(u.wr_addr),
                bwp.data.eq(u.wr_data[: cfg.q_pre.width * T]),
                bwp.en.eq(u.wr_en & (u.wr_bank == Pr * Pc)),
            ]
        self.wmems, self.wsel = wmems, wsel

    def plan_table(self):
        """Per-plan constants, indexed by the running plan."""
        u, plans_ = self.u, self.plans
        slots_base = {}
        for name, slot in vector_slots(self.cfg).items():
            slots_base[name] = slot.base

        def table(values, shape):
            return Array(Const(v, shape) for v in values)

        self.wbase_t = table([p.weight_base for p in plans_], range(u._wdepth + 1))
        self.rr_t = table([p.rounds_r for p in plans_], range(max(p.rounds_r for p in plans_) + 1))
        self.rc_t = table([p.rounds_c for p in plans_], range(max(p.rounds_c for p in plans_) + 1))
        self.br_t = table([p.br for p in plans_], range(self.max_br + 1))
        self.bbase_t = table([p.bias_base for p in plans_], range(u._bdepth + 1))
        self.vbase_t = table([slots_base[p.src] for p in plans_], range(u._vdepth + 1))
        self.gap_t = table([u.plan_gaps(p) for p in plans_], range(self.Pr + 1))

    def controller(self):
        """Row rounds I, column rounds J, tile cycle t; the gap after a short row round."""
        m, u, T, Pr = self.m, self.u, self.T, self.Pr
        plans_ = self.plans
        self.cur = cur = Signal(range(len(plans_)))
        self.I = I = Signal(range(max(p.rounds_r for p in plans_) + 1))
        self.J = J = Signal(range(max(p.rounds_c for p in plans_) + 1))
        self.t = t = Signal(range(T))
        self.wa = wa = Signal(range(u._wdepth + 1))
        gap = Signal(range(Pr + 1))
        self.issuing = issuing = Signal()
        waiting = Signal()
        self.draining = draining = Signal()

        rr, self.rc = self.rr_t[cur], self.rc_t[cur]
        self.issue = issue = Signal()
        m.d.comb += issue.eq(issuing & ~waiting)
        m.d.comb += u.busy.eq(issuing | draining)

        with m.If(u.start & ~u.busy):
            m.d.sync += [
                cur.eq(u.plan),
                I.eq(0),
                J.eq(0),
                t.eq(0),
                wa.eq(self.wbase_t[u.plan]),
                issuing.eq(1),
                waiting.eq(0),
                draining.eq(1),
            ]
        with m.Elif(issue):
            m.d.sync += [wa.eq(wa + 1), t.eq(t + 1)]
            with m.If(t == T - 1):
                m.d.sync += [t.eq(0), J.eq(J + 1)]
                with m.If(J == self.rc - 1):
                    m.d.sync += [J.eq(0), I.eq(I + 1)]
                    with m.If(self.gap_t[cur] != 0):
                        m.d.sync += [waiting.eq(1), gap.eq(self.gap_t[cur] - 1)]
                    with m.If(I == rr - 1):
                        m.d.sync += [issuing.eq(0), waiting.eq(0)]
        with m.Elif(waiting):
            m.d.sync += gap.eq(gap - 1)
            with m.If(gap == 0):
                m.d.sync += waiting.eq(0)

    def weight_reads(self):
        """Stage 0: vector and weight addresses; each bank's word (unpacked when SPRAM packs several)."""
        m, u, T, Pr, Pc = self.m, self.u, self.T, self.Pr, self.Pc
        J, t, wa, issue = self.J, self.t, self.wa, self.issue
        self.first0 = first0 = Signal()
        self.last0 = last0 = Signal()
        m.d.comb += [first0.eq((J == 0) & (t == 0)), last0.eq((J == self.rc - 1) & (t == T - 1))]
        for q in range(Pc):
            m.d.comb += u.vec_addr[q].eq(self.vbase_t[self.cur] + J)
        m.d.comb += u.vec_en.eq(issue & (t == 0))
        wrd = [[None] * Pc for _ in range(Pr)]
        shift = (u._pack - 1).bit_length()
        sub = Signal(range(u._pack), name="weight_sub")  # which packed word, one cycle after the read
        if u._pack > 1:
            m.d.sync += sub.eq(wa[:shift])

        def unpack(word):
            if u._pack > 1:
                words = Array(word[i * u._wword : (i + 1) * u._wword] for i in range(u._pack))
                return words[sub]
            return word

        for p in range(Pr):
            for q in range(Pc):
                wmem, wsel = self.wmems[p][q], self.wsel[p][q]
                if wmem == "spram":
                    addr = Signal(range(u._mem_depth), name=f"pe_{p}_{q}_addr")
                    m.d.comb += addr.eq(Mux(wsel, u.wr_addr, wa >> shift))
                    wrd[p][q] = unpack(spram_bank(m, f"pe_{p}_{q}_weights", u._mem_depth, addr, u.wr_data[:16], wsel))
                    continue
                if isinstance(wmem, tuple):
                    mem, wp = wmem
                    rp = mem.read_port()
                    # one address for both ports, so a single-port RAM (SPRAM) can hold the bank;
                    # writes happen only between steps, reads only during sweeps
                    addr = Signal(range(u._mem_depth), name=f"pe_{p}_{q}_addr")
                    m.d.comb += [
                        addr.eq(Mux(wsel, u.wr_addr, wa >> shift)),
                        rp.addr.eq(addr),
                        wp.addr.eq(addr),
                        rp.en.eq(issue),
                    ]
                else:
                    rp = wmem.read_port()
                    m.d.comb += [rp.addr.eq(wa >> shift), rp.en.eq(issue)]
                wrd[p][q] = unpack(rp.data)
        self.wrd = wrd

    def grid(self):
        """Stage 1: column operands; stages 2-3: the PE grid; then one adder tree per PE row."""
        m, u, cfg, Pr, Pc = self.m, self.u, self.cfg, self.Pr, self.Pc
        v1, t0_1, first1, last1 = Signal(), Signal(), Signal(), Signal()
        I1 = Signal.like(self.I)
        m.d.sync += [
            v1.eq(self.issue),
            t0_1.eq(self.t == 0),
            first1.eq(self.first0),
            last1.eq(self.last0),
            I1.eq(self.I),
        ]
        cols = []
        for q in range(Pc):
            col = ColumnOperand(cfg)
            m.submodules[f"col_{q}"] = col
            m.d.comb += [col.i_valid.eq(v1), col.i_load.eq(t0_1), col.i_seg.eq(u.vec_data[q])]
            cols.append(col)
        pes = [[None] * Pc for _ in range(Pr)]
        for p in range(Pr):
            for q in range(Pc):
                pe = ProcessingElement(cfg)
                m.submodules[f"pe_{p}_{q}"] = pe
                m.d.comb += [
                    pe.en.eq(1),
                    pe.i_valid.eq(v1),
                    pe.i_first.eq(first1),
                    pe.i_last.eq(last1),
                    pe.i_w.eq(self.wrd[p][q]),
                    pe.i_x.eq(cols[q].o_x),
                ]
                pes[p][q] = pe
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
        for i in range(ProcessingElement.LATENCY + u.tree_levels):
            nxt_I = Signal.like(self.I, name=f"round_I{i + 2}")
            m.d.sync += nxt_I.eq(tI)
            tI = nxt_I
        self.rows, self.tI = rows, tI

    def serializer(self):
        """Capture every PE row's segment at once, then emit them one per cycle."""
        m, T, Pr, rows = self.m, self.T, self.Pr, self.rows
        acc_w = self.cfg.acc_width
        tv = rows[0].o_valid
        outbuf = [[Signal(signed(acc_w), name=f"row_{p}_sum{r}") for r in range(T)] for p in range(Pr)]
        ser_cnt = Signal(range(Pr + 1))
        self.ser_base = ser_base = Signal(range(self.max_br + Pr + 1))
        with m.If(tv):
            for p in range(Pr):
                m.d.sync += [outbuf[p][r].eq(rows[p].o_sum[r]) for r in range(T)]
            m.d.sync += [ser_cnt.eq(Pr), ser_base.eq(self.tI * Pr)]
        with m.Elif(ser_cnt != 0):
            for p in range(Pr - 1):
                m.d.sync += [outbuf[p][r].eq(outbuf[p + 1][r]) for r in range(T)]
            m.d.sync += [ser_cnt.eq(ser_cnt - 1), ser_base.eq(ser_base + 1)]
        self.emit = emit = Signal()
        m.d.comb += emit.eq((ser_cnt != 0) & (ser_base < self.br_t[self.cur]))
        self.outbuf = outbuf

    def bias_narrow(self):
        """Bias read, add and narrow to ``q_pre``; ``done`` with the plan's last segment."""
        m, u, cfg, T, Pr = self.m, self.u, self.cfg, self.T, self.Pr
        acc_w, cur, ser_base, emit = cfg.acc_width, self.cur, self.ser_base, self.emit
        brp = self.bmem.read_port()
        m.d.comb += [brp.addr.eq(self.bbase_t[cur] + ser_base), brp.en.eq(emit)]
        e1 = Signal()
        seg1 = Signal(range(self.max_br + Pr + 1))
        sum1 = [Signal(signed(acc_w), name=f"out_sum{r}") for r in range(T)]
        m.d.sync += [e1.eq(emit), seg1.eq(ser_base)]
        with m.If(emit):
            m.d.sync += [sum1[r].eq(self.outbuf[0][r]) for r in range(T)]
        shift = cfg.acc_frac - cfg.q_pre.frac
        pw = cfg.q_pre.width
        o_valid = Signal()
        m.d.sync += [o_valid.eq(e1), u.o_seg.eq(seg1)]
        for r in range(T):
            b = brp.data[r * pw : (r + 1) * pw].as_signed()
            total = sum1[r] + (b << shift)
            with m.If(e1):
                m.d.sync += u.o_data[r].eq(hw_narrow(total, cfg.acc_frac, cfg.q_pre))
        m.d.comb += u.o_valid.eq(o_valid)

        last_seg = Signal()
        m.d.comb += last_seg.eq(o_valid & (u.o_seg == self.br_t[cur] - 1))
        m.d.comb += u.done.eq(last_seg)
        with m.If(last_seg & ~self.issuing):
            m.d.sync += self.draining.eq(0)
