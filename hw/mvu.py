"""The chessboard-divided circulant matrix-vector unit (MVU).

Structure (Gemmini-style hierarchy, built by loops; blocks in :mod:`rnnaccel.hw.pe` and, shared with
the serial datapath, :mod:`rnnaccel.hw.datapath`):

* :class:`~rnnaccel.hw.pe.ProcessingElement` ``pe_{p}_{q}``: one PE, T
  multiplier lanes with T accumulators (latency 3 here: operand register, product, accumulate),
  reading its own weight bank ``pe_{p}_{q}_weights`` (a :class:`~rnnaccel.hw.datapath.WeightBank`);
* the ``pe_rows x pe_cols`` grid of PEs;
* :class:`~rnnaccel.hw.pe.ColumnOperand` ``col_{q}``: one input register per
  PE column, shared down the column (latency 0);
* :class:`~rnnaccel.hw.pe.RowReducer` ``row_{p}_tree``: a pipelined adder tree
  per PE row reducing the PE columns' partial sums into the output segment
  (latency ``ceil(log2(pe_cols))``);
* :class:`~rnnaccel.hw.datapath.Serializer` ``serializer``, emitting the row round's output segments
  one per cycle;
* :class:`~rnnaccel.hw.datapath.BiasNarrow` ``bias_narrow``: the bias add and the narrowing to
  ``q_pre`` (:func:`rnnaccel.numeric.golden.projection`).

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
operand register      2      ``ProcessingElement`` (first of its 3 cycles)
product               3      ``ProcessingElement``
accumulate            4      ``ProcessingElement``
adder tree            +L     ``RowReducer``, L = ceil(log2(pe_cols))
result capture        +1     serializer buffer (all PE rows at once)
serializer            +P_r   one output segment per cycle
bias read, narrow     +3     bias memory, bias register, :func:`rnnaccel.numeric.fixedpoint.hw_narrow`
====================  =====  ==============================================

Timing: the controller issues one tile cycle per clock with no stalls inside
a plan; the only wait is a gap after a row round shorter than ``pe_rows``
cycles so the serializer can drain. Cycles of one plan, start to done:
``sweep_cycles + gaps + latency`` (:attr:`CirculantMVU.latency`).

Chaining: a plan may start in the last issue cycle of the one before (``ready``), so its sweep
follows without a bubble while the earlier plan's rows drain; the plan number travels down the
pipeline beside the row round (the serializer's position tag carries it above the segment), so the
row count, the bias read, ``done`` and ``o_plan`` follow the plan each segment belongs to. At most
two plans are in flight; a plan with gaps between its row rounds only starts on an idle MVU.

Delta mode (``delta``, by default ``cfg.delta_mode``; :mod:`rnnaccel.numeric.delta`), generated only
then: a plan starts with a **delta pass**, one row of the source slot (``pe_cols`` segments) per
cycle: the source words and the plan's references (memory ``delta_refs``, one row per column round,
rows ``ref_base`` onwards) give ``delta = v - v_ref`` where ``|v - v_ref| >`` the plan's raw threshold,
else 0 (``q_state.width + 1`` bits), written into the delta store (``delta_store``, row J = column
round J) while the references are updated where the delta is not zero. A column round is *active*
when one of its real tiles has a nonzero delta; the active rounds are appended to a list
(``active{i}``, ``active_count``). The sweep then runs, per row round, only the listed column
rounds (the weight address ``row base + J*T + t``, the operand from the delta store). Circulant
weights need all T cycles of an active round (the rotating operand); dense weights spend cycle t on
column t of the tile, so the list also keeps each round's mask of active column slots
(``active_mask{i}``: column t of one of the round's tiles changed) and the sweep jumps from slot to
slot (a priority encoder), the operand word picked from the delta store's row: a dense PE skips
single columns, as EdgeDRNN does. With no active round each row round takes one cycle of zero
operands, so its outputs are still emitted. The row
round's partial sums are added to the exact accumulator of the output row (memory ``delta_acc``,
indexed like the bias memory: it holds ``M v_ref``), written back, and ``narrow(acc + aligned
bias)`` is the output. ``clr_en``/``clr_addr`` zero references and accumulators (``RESET_STATE``);
``skip_tiles`` / ``skip_macs`` count the units with a zero delta in each delta-pass cycle (circulant:
real column tiles, k-segments; dense: real columns) and their multiply-accumulates (the plan's rows
times k or 1 each): the golden model's ``WorkStats`` skipped block columns. Extra cycles per plan:
``rounds_c + 1`` for the pass, one more of latency (:func:`delta_pass_cycles`).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from . import check_cfg_and_weights
from ..layout.image import (
    MatrixPlan,
    MemoryImage,
    bank_packing,
    bank_word_bits,
    memory_image,
    plans,
    vector_depth,
    vector_slots,
    h_double_buffered,
    weight_bank_depth,
    weight_word_bits,
)
from ..layout.runtime import PLAN_FIELDS, param_bits
from .buffers import state_ram_attrs
from .datapath import BiasNarrow, Serializer, WeightBank, spram_bank, uses_spram_primitives
from .pe import ColumnOperand, ProcessingElement, RowReducer, tree_latency

__all__ = [
    "CirculantMVU",
    "mvu_latency",
    "plan_cycles",
    "plan_gaps",
    "delta_pass_cycles",
    "spram_bank",
    "uses_spram_primitives",
]


#: Cycles of a PE in the MVU: operand register, product, accumulate (:class:`~rnnaccel.hw.pe.ProcessingElement`
#: with ``input_register``: the memories' read data ends at a register, not at the multiplier's output).
PE_LATENCY = ProcessingElement.LATENCY + 1
#: Cycles of the MVU's bias add and narrowing: bias read, the bias word registered, add and narrow
#: (:class:`~rnnaccel.hw.datapath.BiasNarrow` with ``bias_register``).
BIAS_LATENCY = BiasNarrow.LATENCY + 1


def mvu_latency(cfg: Config, delta: bool | None = None) -> int:
    """Cycles from the MVU's last issue cycle to ``done``.

    memory read (1) + PE (:data:`PE_LATENCY`: operand register, product and
    accumulate, 3) + adder tree (:func:`~rnnaccel.hw.pe.tree_latency` of
    ``pe_cols``: ceil(log2(pe_cols))) + result capture (1) + serializer (up to
    pe_rows) + bias read (1) + bias register (1) + narrow (1); in delta mode (``delta``, by default ``cfg.delta_mode``)
    one more: the accumulator read and add.
    """
    extra = 1 if (cfg.delta_mode if delta is None else delta) else 0
    return 1 + PE_LATENCY + tree_latency(cfg.pe_cols) + 1 + cfg.pe_rows + BIAS_LATENCY + extra


def delta_pass_cycles(cfg: Config, plan: MatrixPlan, delta: bool | None = None) -> int:
    """Cycles a delta-mode plan spends on its delta pass before the sweep (0 in normal mode)."""
    return plan.rounds_c + 1 if (cfg.delta_mode if delta is None else delta) else 0


def plan_gaps(cfg: Config, plan: MatrixPlan) -> int:
    """Idle cycles inserted after each row round so the serializer keeps up."""
    return max(0, cfg.pe_rows - plan.rounds_c * cfg.tile)


def plan_cycles(cfg: Config, plan: MatrixPlan, delta: bool | None = None) -> int:
    """Cycles from ``start`` to ``done`` for one plan (upper bound from the schedule; in delta mode the
    dense sweep plus the delta pass: skipped column rounds only shorten it)."""
    return (
        1
        + delta_pass_cycles(cfg, plan, delta)
        + plan.sweep_cycles
        + plan.rounds_r * plan_gaps(cfg, plan)
        + mvu_latency(cfg, delta)
    )


class CirculantMVU(wiring.Component):
    """Matrix-vector unit for every plan of a config (:func:`rnnaccel.layout.image.plans`).

    Parameters
    ----------
    cfg : Config
        The configuration.
    weights : dict or None
        Float or quantized weights (model directory layout), when no ``image`` is given: their
        :func:`rnnaccel.layout.image.memory_image` is taken.
    image : MemoryImage or None
        The design's memory image (:func:`rnnaccel.layout.image.memory_image`, built once per design by
        the caller), baked into the weight and bias ROMs when ``cfg.weights_in_rom``; otherwise the
        banks start at zero and are written through ``wr_*`` at run time.

    Members
    -------
    start : In(1)
        Pulse to start plan ``plan``; taken only with ``ready`` (ignored otherwise).
    plan : In(range(len(plans)))
    ready : Out(1)
        A ``start`` is taken in this cycle: nothing in flight, or (chaining) the running plan is in its last
        issue cycle or draining, no other plan drains, and ``plan`` needs no gap between its row rounds
        (its first row round then follows the last one's without a bubble). Delta mode: once the running
        plan has issued its last cycle (the next plan's delta pass runs while it drains).
    busy, done : Out(1)
        ``busy``: a plan is in flight. ``done`` pulses in the cycle the last output segment of a plan is valid.
    o_plan : Out(range(len(plans)))
        The plan of the output segment (and of ``done``): with chaining two plans can be in flight.
    vec_addr : Out(array of pe_cols rows), vec_en : Out(1), vec_data : In(pe_cols x T words)
        Read ports into the vector banks (synchronous, one cycle latency).
    o_valid, o_seg, o_data : Out
        Output segment ``o_seg`` (tile row of the plan): T words in ``q_pre``,
        bias added and narrowed.
    wr_en, wr_bank, wr_addr, wr_data : In
        Run-time write of weight bank ``wr_bank`` (p * pe_cols + q) or, with
        ``wr_bank == pe_rows * pe_cols``, of the bias memory.
    clr_en, clr_addr : In (delta mode only)
        Zero row ``clr_addr`` of the references and of the accumulators (:attr:`delta_clear_depth` rows).
    skip_tiles, skip_macs : Out (delta mode only)
        Units found with a zero delta in this cycle of a delta pass (circulant: column tiles; dense:
        columns), and their multiply-accumulates.
    plan_wbase, plan_rr, plan_rc, plan_br, plan_bbase, plan_vbase, plan_gap : In (run-time dimensions only)
        The plan table (:data:`rnnaccel.layout.runtime.PLAN_FIELDS`), one entry per plan of the maximum config,
        from the accelerator's parameter registers; without run-time dimensions the table is constant.
    delta : bool or None
        Delta-network mode (the module docstring); by default ``cfg.delta_mode``.
    """

    def __init__(self, cfg: Config, weights=None, *, image: MemoryImage | None = None, delta: bool | None = None):
        check_cfg_and_weights(cfg, weights, image)
        cfg = cfg.at_max()  # run-time dimensions: sized for the largest model
        self._cfg = cfg
        self._delta = cfg.delta_mode if delta is None else bool(delta)
        self._weights = weights
        self._image = image
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
        self._rdepth = sum(p.rounds_c for p in self._plans)  # delta mode: reference rows
        members = {}
        if self._delta:
            max_macs = max(p.rows for p in self._plans) * T * cfg.pe_cols
            members = {
                "clr_en": In(1),
                "clr_addr": In(range(self.delta_clear_depth)),
                "skip_tiles": Out(range(cfg.pe_cols * T + 1)),
                "skip_macs": Out(range(max_macs + 1)),
            }
        if h_double_buffered(cfg):
            members["vec_alt"] = In(1)  # h0 is in slot h0b this step (the accelerator's step parity)
        if cfg.runtime_dims:
            bits = param_bits(cfg)
            for f in PLAN_FIELDS:
                width = max(bits[f"plan{p.index}_{f}"] for p in self._plans)
                members[f"plan_{f}"] = In(data.ArrayLayout(unsigned(width), len(self._plans)))
        super().__init__(
            members
            | {
                "start": In(1),
                "plan": In(range(len(self._plans))),
                "ready": Out(1),
                "busy": Out(1),
                "done": Out(1),
                "o_plan": Out(range(len(self._plans))),
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
    def image(self) -> MemoryImage | None:
        """The memory image baked into ROM (``None`` when the weights are written at run time)."""
        if self._image is None and self._cfg.weights_in_rom:
            self._image = memory_image(self._cfg, self._weights)
        return self._image

    @property
    def delta(self) -> bool:
        """Delta-network mode is built."""
        return self._delta

    @property
    def delta_clear_depth(self) -> int:
        """Rows ``clr_addr`` walks to zero the references and the accumulators (delta mode)."""
        return max(self._rdepth, self._bdepth, 1)

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
        return mvu_latency(self._cfg, self._delta)

    def plan_gaps(self, plan: MatrixPlan) -> int:
        return plan_gaps(self._cfg, plan)

    def plan_cycles(self, plan: MatrixPlan) -> int:
        return plan_cycles(self._cfg, plan, self._delta)

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
        self.delta = mvu._delta
        self.m = Module()

    def module(self) -> Module:
        self.memories()
        self.plan_table()
        if self.delta:
            self.delta_controller()
        else:
            self.controller()
        self.weight_reads()
        self.grid()
        self.serializer()
        self.bias_narrow()
        return self.m

    def memories(self):
        """Weight banks (:class:`~rnnaccel.hw.datapath.WeightBank`: ROM, RAM, or SPRAM primitives) and the
        bias memory, with their write ports."""
        m, cfg, u, T, Pr, Pc = self.m, self.cfg, self.u, self.T, self.Pr, self.Pc
        image = u.image
        banks = [[None] * Pc for _ in range(Pr)]
        for p in range(Pr):
            for q in range(Pc):
                init = image.weight_banks[p][q] if image is not None else None
                bank = WeightBank(m, cfg, self.platform, f"pe_{p}_{q}_weights", u._mem_depth, init)
                if not cfg.weights_in_rom:
                    m.d.comb += [
                        bank.wr_en.eq(u.wr_en & (u.wr_bank == p * Pc + q)),
                        bank.wr_addr.eq(u.wr_addr),
                        bank.wr_data.eq(u.wr_data[: u._mem_word]),
                    ]
                banks[p][q] = bank
        bmem = memory.Memory(
            shape=unsigned(cfg.q_pre.width * T),
            depth=u._bdepth,
            init=image.bias_words if image is not None else [],
            attrs={"ram_style": "block"},
        )
        m.submodules.bias = bmem
        if not cfg.weights_in_rom:
            bwp = bmem.write_port()
            m.d.comb += [
                bwp.addr.eq(u.wr_addr),
                bwp.data.eq(u.wr_data[: cfg.q_pre.width * T]),
                bwp.en.eq(u.wr_en & (u.wr_bank == Pr * Pc)),
            ]
        self.bmem, self.banks = bmem, banks

    def plan_table(self):
        """Per-plan constants, indexed by the running plan."""
        u, plans_ = self.u, self.plans
        slots_base = {}
        for name, slot in vector_slots(self.cfg).items():
            slots_base[name] = slot.base

        self.vbase = lambda cur: self.vbase_t[cur]

        def table(values, shape):
            return Array(Const(v, shape) for v in values)

        if self.cfg.runtime_dims:  # the plan table is the accelerator's parameter registers
            self.wbase_t, self.rr_t, self.rc_t, self.br_t = u.plan_wbase, u.plan_rr, u.plan_rc, u.plan_br
            self.bbase_t, self.vbase_t, self.gap_t = u.plan_bbase, u.plan_vbase, u.plan_gap
            return
        self.wbase_t = table([p.weight_base for p in plans_], range(u._wdepth + 1))
        self.rr_t = table([p.rounds_r for p in plans_], range(max(p.rounds_r for p in plans_) + 1))
        self.rc_t = table([p.rounds_c for p in plans_], range(max(p.rounds_c for p in plans_) + 1))
        self.br_t = table([p.br for p in plans_], range(self.max_br + 1))
        self.bbase_t = table([p.bias_base for p in plans_], range(u._bdepth + 1))
        self.vbase_t = table([slots_base[p.src] for p in plans_], range(u._vdepth + 1))
        if h_double_buffered(self.cfg):
            # h0 double-buffered by step parity: a plan reading h0 reads slot h0b when ``vec_alt``
            alt = table([slots_base["h0b" if p.src == "h0" else p.src] for p in plans_], range(u._vdepth + 1))
            self.vbase = lambda cur: Mux(u.vec_alt, alt[cur], self.vbase_t[cur])
        self.gap_t = table([u.plan_gaps(p) for p in plans_], range(self.Pr + 1))

    def in_flight(self, inflight, can_chain):
        """Count the plans in flight (started, last segment not out); ``ready`` when none is, or when
        ``can_chain``; ``busy`` while one is. Returns the taken ``start``."""
        m, u = self.m, self.u
        m.d.comb += [u.ready.eq((inflight == 0) | can_chain), u.busy.eq(inflight != 0)]
        taken = Signal(name="start_taken")
        m.d.comb += taken.eq(u.start & u.ready)
        with m.If(taken & ~u.done):
            m.d.sync += inflight.eq(inflight + 1)
        with m.Elif(~taken & u.done):
            m.d.sync += inflight.eq(inflight - 1)
        return taken

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

        rr, self.rc = self.rr_t[cur], self.rc_t[cur]
        self.issue = issue = Signal()
        m.d.comb += issue.eq(issuing & ~waiting)
        # chaining: plans in flight (started, last segment not out yet); a plan may start in the last issue
        # cycle of the one before, so its sweep follows without a bubble while that one drains
        inflight = Signal(range(3), name="inflight")
        last_issue = Signal(name="last_issue")
        m.d.comb += last_issue.eq(issue & (t == T - 1) & (J == self.rc - 1) & (I == rr - 1))
        can_chain = (inflight == 1) & ((~issuing & ~waiting) | last_issue) & (self.gap_t[u.plan] == 0)
        taken = self.in_flight(inflight, can_chain)

        with m.If(taken):
            m.d.sync += [
                cur.eq(u.plan),
                I.eq(0),
                J.eq(0),
                t.eq(0),
                wa.eq(self.wbase_t[u.plan]),
                issuing.eq(1),
                waiting.eq(0),
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
        if self.delta:
            # the delta controller drives first0 / last0 and the source reads of its delta pass
            first0, last0 = self.first0, self.last0
        else:
            self.first0 = first0 = Signal()
            self.last0 = last0 = Signal()
            m.d.comb += [first0.eq((J == 0) & (t == 0)), last0.eq((J == self.rc - 1) & (t == T - 1))]
            for q in range(Pc):
                m.d.comb += u.vec_addr[q].eq(self.vbase(self.cur) + J)
            m.d.comb += u.vec_en.eq(issue & (t == 0))
        shift = (u._pack - 1).bit_length()
        sub = Signal(range(u._pack), name="weight_sub")  # which packed word, one cycle after the read
        if u._pack > 1:
            m.d.sync += sub.eq(wa[:shift])
        wrd = [[None] * Pc for _ in range(Pr)]
        for p in range(Pr):
            for q in range(Pc):
                bank = self.banks[p][q]
                m.d.comb += [bank.rd_addr.eq(wa >> shift), bank.rd_en.eq(issue)]
                wrd[p][q] = bank.select(sub)
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
        # delta mode: the operands are deltas, one bit wider than q_state, from the delta store
        xw = {"width": cfg.q_state.width + 1} if self.delta else {}
        delta_dense = self.delta and not cfg.circulant
        if delta_dense:
            # dense delta mode: the sweep jumps over column slots, so each cycle's word x[t] is picked
            # from the delta store's row (read every cycle) instead of a shifting register
            t1 = Signal.like(self.t, name="operand_t")
            m.d.sync += t1.eq(self.t)
            words = [Array(self.delta_seg[q][ln] for ln in range(self.T))[t1] for q in range(Pc)]
        for q in range(Pc if not delta_dense else 0):
            col = ColumnOperand(cfg, **xw)
            m.submodules[f"col_{q}"] = col
            seg = self.delta_seg[q] if self.delta else u.vec_data[q]
            m.d.comb += [col.i_valid.eq(v1), col.i_load.eq(t0_1), col.i_seg.eq(seg)]
            cols.append(col)
        pes = [[None] * Pc for _ in range(Pr)]
        for p in range(Pr):
            for q in range(Pc):
                xw_pe = cfg.q_state.width + 1 if self.delta else None
                pe = ProcessingElement(cfg, x_width=xw_pe, input_register=True)
                assert pe.latency == PE_LATENCY
                m.submodules[f"pe_{p}_{q}"] = pe
                m.d.comb += [
                    pe.en.eq(1),
                    pe.i_valid.eq(v1),
                    pe.i_first.eq(first1),
                    pe.i_last.eq(last1),
                    pe.i_w.eq(self.wrd[p][q]),
                ]
                if delta_dense:
                    m.d.comb += [pe.i_x[ln].eq(words[q]) for ln in range(self.T)]
                else:
                    m.d.comb += pe.i_x.eq(cols[q].o_x)
                pes[p][q] = pe
        rows = []
        for p in range(Pr):
            tree = RowReducer(cfg, Pc)
            m.submodules[f"row_{p}_tree"] = tree
            m.d.comb += tree.i_valid.eq(pes[p][0].o_last)
            for q in range(Pc):
                m.d.comb += tree.i_acc[q].eq(pes[p][q].o_acc)
            rows.append(tree)
        # the tile row round I and the plan travel beside the products and the tree (with chaining the
        # outputs of one plan drain while the next one issues)
        cur1 = Signal.like(self.cur, name="round_plan1")
        m.d.sync += cur1.eq(self.cur)
        tI, tP = I1, cur1
        for i in range(PE_LATENCY + u.tree_levels):
            nxt_I = Signal.like(self.I, name=f"round_I{i + 2}")
            nxt_P = Signal.like(self.cur, name=f"round_plan{i + 2}")
            m.d.sync += [nxt_I.eq(tI), nxt_P.eq(tP)]
            tI, tP = nxt_I, nxt_P
        self.rows, self.tI, self.tP = rows, tI, tP

    def serializer(self):
        """Capture every PE row's segment at once, then emit them one per cycle
        (:class:`~rnnaccel.hw.datapath.Serializer`); a row round's segments past the plan's rows are not emitted."""
        m, T, Pr, rows = self.m, self.T, self.Pr, self.rows
        seg = data.ArrayLayout(signed(self.cfg.acc_width), T)
        # the position tag: the segment in the low bits, the plan above (counting up never reaches it)
        self.pos_bits = pb = (self.max_br + Pr).bit_length()
        self.tag_shape = unsigned(pb + len(self.cur))
        m.submodules.serializer = ser = Serializer(Pr, seg, self.tag_shape)
        pos0 = Signal(pb, name="round_pos")
        m.d.comb += [pos0.eq(self.tI * Pr), ser.i_load.eq(rows[0].o_valid), ser.i_pos.eq(Cat(pos0, self.tP))]
        m.d.comb += [ser.i_items[p].eq(rows[p].o_sum) for p in range(Pr)]
        self.emit = emit = Signal()
        self.s_pos, self.s_plan = ser.o_pos[:pb], ser.o_pos[pb:]
        m.d.comb += emit.eq(ser.o_valid & (self.s_pos < self.br_t[self.s_plan]))
        self.ser = ser

    def bias_narrow(self):
        """Bias read, add and narrow to ``q_pre`` (:class:`~rnnaccel.hw.datapath.BiasNarrow`); ``done`` with
        the plan's last segment."""
        m, u, cfg, T, ser, emit, pb = self.m, self.u, self.cfg, self.T, self.ser, self.emit, self.pos_bits
        if self.delta:
            emit, sums, tag = self.delta_accumulate()
        else:
            sums, tag = ser.o_item, ser.o_pos
        brp = self.bmem.read_port()
        m.d.comb += [brp.addr.eq(self.bbase_t[tag[pb:]] + tag[:pb]), brp.en.eq(emit)]
        m.submodules.bias_narrow = bn = BiasNarrow(cfg, T, cfg.q_pre.width, self.tag_shape, bias_register=True)
        assert bn.latency == BIAS_LATENCY
        m.d.comb += [bn.i_valid.eq(emit), bn.i_sums.eq(sums), bn.i_tag.eq(tag), bn.i_bias.eq(brp.data)]
        m.d.comb += [u.o_valid.eq(bn.o_valid), u.o_seg.eq(bn.o_tag[:pb]), u.o_plan.eq(bn.o_tag[pb:])]
        m.d.comb += u.o_data.eq(bn.o_data)

        last_seg = Signal()
        m.d.comb += last_seg.eq(u.o_valid & (u.o_seg == self.br_t[u.o_plan] - 1))
        m.d.comb += u.done.eq(last_seg)

    # ------------------------------------------------------------------ delta mode
    def delta_controller(self):
        """Delta mode: the delta pass (references, delta store, the active-round list), then the sweep
        over the active column rounds only (see the module docstring)."""
        m, u, cfg, T, Pr, Pc = self.m, self.u, self.cfg, self.T, self.Pr, self.Pc
        plans_ = self.plans
        xs = cfg.q_state.width
        dw = xs + 1
        max_rc = max(p.rounds_c for p in plans_)
        max_rr = max(p.rounds_r for p in plans_)

        def table(values, shape):
            return Array(Const(v, shape) for v in values)

        rbase, acc = [], 0
        for p in plans_:
            rbase.append(acc)
            acc += p.rounds_c
        rbase_t = table(rbase, range(u._rdepth + 1))
        # raw thresholds (layer 0's input, else the hidden states'); |delta| < 2**xs, so clamp there
        ths = [
            min(cfg.delta_threshold_raw if (p.layer == 0 and p.name == "W") else cfg.delta_threshold_h_raw, 1 << xs)
            for p in plans_
        ]
        th_t = table(ths, range((1 << xs) + 1))
        rowT_t = table([p.rounds_c * T for p in plans_], range(max_rc * T + 1))
        # column round r holds real tiles r*Pc + q < bc: rounds below real_t[q] for PE column q
        real_t = [table([-(-(p.bc - q) // Pc) for p in plans_], range(max_rc + 1)) for q in range(Pc)]

        self.cur = cur = Signal(range(len(plans_)))
        self.I = I = Signal(range(max_rr + 1))
        self.t = t = Signal(range(T))
        self.issuing = issuing = Signal()
        waiting = Signal()
        gap = Signal(range(Pr + 1))
        rr, self.rc = self.rr_t[cur], self.rc_t[cur]

        # ---- the delta pass: read source row r and reference row r; one cycle later compute and write
        dpass = Signal(name="delta_pass")
        r = Signal(range(max_rc + 1), name="delta_row")
        dv1 = Signal(name="delta_valid")
        dr1 = Signal(range(max_rc + 1), name="delta_row1")
        count = Signal(range(max_rc + 1), name="active_count")
        rlen = Signal(range(max_rc * T + 1), name="active_len")  # count * T: a row round's issue cycles
        active = Array(Signal(range(max(2, max_rc)), name=f"active{i}") for i in range(max_rc))
        # chaining: the next plan's delta pass may start once this one has issued its last cycle (its
        # list and operands are no longer read) while its rows drain; its first row round then comes
        # at least rounds_c + 3 cycles after this one's last, enough for a serializer of up to 4 rows
        inflight = Signal(range(3), name="inflight")
        can_chain = (inflight == 1) & ~issuing & ~waiting & ~dpass & ~dv1 if Pr <= 4 else Const(0)
        taken = self.in_flight(inflight, can_chain)
        for q in range(Pc):
            m.d.comb += u.vec_addr[q].eq(self.vbase(cur) + r)
        m.d.comb += u.vec_en.eq(dpass)
        m.d.sync += [dv1.eq(dpass), dr1.eq(r)]

        row_bits = Pc * T * xs
        # shallow, wide memories: block RAM only when big (:func:`~rnnaccel.hw.buffers.state_ram_attrs`)
        rdepth, sdepth = max(2, u._rdepth), max(2, max_rc)
        refmem = memory.Memory(shape=unsigned(row_bits), depth=rdepth, init=[], attrs=state_ram_attrs(row_bits, rdepth))
        dstore = memory.Memory(
            shape=unsigned(Pc * T * dw), depth=sdepth, init=[], attrs=state_ram_attrs(Pc * T * dw, sdepth)
        )
        m.submodules.delta_refs, m.submodules.delta_store = refmem, dstore
        ref_rp, ref_wp = refmem.read_port(), refmem.write_port()
        ds_rp, ds_wp = dstore.read_port(), dstore.write_port()
        m.d.comb += [ref_rp.addr.eq(rbase_t[cur] + r), ref_rp.en.eq(dpass)]
        refs = data.View(data.ArrayLayout(data.ArrayLayout(signed(xs), T), Pc), ref_rp.data)
        th = th_t[cur]
        new_ref, deltas, tile_act, real, keeps = [], [], [], [], []
        for q in range(Pc):
            rl = Signal(name=f"delta_real{q}")
            m.d.comb += rl.eq(dr1 < real_t[q][cur])
            real.append(rl)
            lane_act = []
            for ln in range(T):
                v, ref = u.vec_data[q][ln], refs[q][ln]
                diff = Signal(signed(dw), name=f"delta_diff{q}_{ln}")
                keep = Signal(name=f"delta_keep{q}_{ln}")
                m.d.comb += [diff.eq(v - ref), keep.eq(((diff > th) | (diff < -th)) & rl)]
                deltas.append(Mux(keep, diff, 0)[:dw])
                new_ref.append(Mux(keep, v, ref)[:xs])
                lane_act.append(keep)
            ta = Signal(name=f"delta_tile_active{q}")
            m.d.comb += ta.eq(Cat(*lane_act).any())
            tile_act.append(ta)
            keeps.append(lane_act)
        row_active = Cat(*tile_act).any()
        dense = not cfg.circulant
        if dense:
            # dense weights: a PE spends cycle t of a tile on column t, so the unit skipped is a column slot
            # (J, t): column t of the round's pe_cols tiles (one column with one PE column)
            slot_act = [Signal(name=f"delta_slot_active{ln}") for ln in range(T)]
            for ln in range(T):
                m.d.comb += slot_act[ln].eq(Cat(*[keeps[q][ln] for q in range(Pc)]).any())
            skipped = Signal(range(Pc * T + 1), name="delta_skipped")
            m.d.comb += skipped.eq(sum(Mux(real[q], T - sum(keeps[q]), 0) for q in range(Pc)))
            slots = Signal(range(T + 1), name="delta_slots")
            m.d.comb += slots.eq(sum(slot_act))
        else:
            skipped = Signal(range(Pc + 1), name="delta_skipped")
            m.d.comb += skipped.eq(sum((real[q] & ~tile_act[q]) for q in range(Pc)))
        unit_macs = table([p.rows * (1 if dense else T) for p in plans_], range(max(p.rows for p in plans_) * T + 1))
        m.d.comb += [u.skip_tiles.eq(Mux(dv1, skipped, 0)), u.skip_macs.eq(Mux(dv1, skipped * unit_macs[cur], 0))]
        # references: the pass's writes, or zeros while the sequencer clears
        clr_ref = u.clr_en & (u.clr_addr < u._rdepth)
        m.d.comb += [
            ref_wp.addr.eq(Mux(u.clr_en, u.clr_addr, rbase_t[cur] + dr1)),
            ref_wp.data.eq(Mux(u.clr_en, 0, Cat(*new_ref))),
            ref_wp.en.eq(Mux(u.clr_en, clr_ref, dv1)),
            ds_wp.addr.eq(dr1),
            ds_wp.data.eq(Cat(*deltas)),
            ds_wp.en.eq(dv1),
        ]

        # ---- the sweep over the listed column rounds (dense: their active column slots only)
        empty = Signal(name="no_active_round")
        m.d.comb += empty.eq(count == 0)
        n = Signal(range(max_rc + 1), name="active_pos")
        J = Signal(range(max(2, max_rc)), name="sweep_J")
        n_last = Signal(range(max_rc + 1), name="active_last")
        m.d.comb += [J.eq(Mux(empty, 0, active[n])), n_last.eq(Mux(empty, 0, count - 1))]
        n_next = Mux(n == n_last, 0, n + 1)
        has_next = Signal(name="sweep_has_next")  # another cycle in this column round
        next_t, first_next, start_t = Signal.like(t), Signal.like(t), Signal.like(t)
        if dense:
            masks = Array(Signal(T, name=f"active_mask{i}") for i in range(max_rc))
            first0_t = Signal.like(t, name="active_first0")  # first slot of list entry 0

            def lowest(bits, name):
                """The lowest set bit of ``bits`` (0 when none)."""
                idx = Signal.like(t, name=name)
                for b in reversed(range(T)):
                    with m.If(bits[b]):
                        m.d.comb += idx.eq(b)
                return idx

            mask_n = masks[n]
            above = [mask_n[b] & (t < b) for b in range(T)]
            m.d.comb += [
                has_next.eq(Cat(*above).any() & ~empty),
                next_t.eq(lowest(above, "sweep_next_t")),
                first_next.eq(Mux(empty, 0, lowest(masks[n_next], "sweep_first_next"))),
                start_t.eq(Mux(empty & row_active, lowest(slot_act, "sweep_first_new"), first0_t)),
            ]
        else:
            m.d.comb += [has_next.eq((t != T - 1) & ~empty), next_t.eq(t + 1)]
        self.J = J
        rowbase = Signal(range(u._wdepth + 1), name="sweep_row_base")
        self.wa = wa = Signal(range(u._wdepth + 1), name="sweep_wa")
        m.d.comb += wa.eq(rowbase + J * T + t)
        self.issue = issue = Signal()
        m.d.comb += issue.eq(issuing & ~waiting)
        rfirst = Signal(name="sweep_round_first")  # the next issue starts a row round
        self.first0, self.last0 = first0, last0 = Signal(), Signal()
        m.d.comb += [first0.eq(rfirst), last0.eq((n == n_last) & ~has_next)]
        # the operands of column round J, one cycle after the read (circulant: the segment at t = 0)
        m.d.comb += [ds_rp.addr.eq(J), ds_rp.en.eq(issue & ((t == 0) if not dense else 1))]
        self.delta_seg = data.View(data.ArrayLayout(data.ArrayLayout(signed(dw), T), Pc), ds_rp.data)
        # a row round shorter than pe_rows cycles waits so the serializer can drain
        gapv = Signal(range(Pr + 1), name="sweep_gap")
        if Pr > 1:
            rl_now = Mux(empty, 1, rlen)
            with m.If(rl_now < Pr):
                m.d.comb += gapv.eq(Pr - rl_now)

        with m.If(taken):
            m.d.sync += [cur.eq(u.plan), r.eq(0), dpass.eq(1), count.eq(0), rlen.eq(0)]
            if dense:
                m.d.sync += first0_t.eq(0)
        with m.If(dpass):
            m.d.sync += r.eq(r + 1)
            with m.If(r == self.rc - 1):
                m.d.sync += dpass.eq(0)
        with m.If(dv1):
            with m.If(row_active):
                m.d.sync += [active[count].eq(dr1), count.eq(count + 1)]
                if dense:
                    m.d.sync += [masks[count].eq(Cat(*slot_act)), rlen.eq(rlen + slots)]
                    with m.If(empty):
                        m.d.sync += first0_t.eq(start_t)
                else:
                    m.d.sync += rlen.eq(rlen + T)
            with m.If(dr1 == self.rc - 1):
                m.d.sync += [issuing.eq(1), waiting.eq(0), I.eq(0), n.eq(0), t.eq(start_t), rfirst.eq(1)]
                m.d.sync += rowbase.eq(self.wbase_t[cur])
        with m.Elif(issue):
            m.d.sync += rfirst.eq(0)
            with m.If(has_next):
                m.d.sync += t.eq(next_t)
            with m.Else():
                m.d.sync += [t.eq(first_next), n.eq(n_next)]
                with m.If(n == n_last):
                    m.d.sync += [I.eq(I + 1), rowbase.eq(rowbase + rowT_t[cur]), rfirst.eq(1)]
                    with m.If(gapv != 0):
                        m.d.sync += [waiting.eq(1), gap.eq(gapv - 1)]
                    with m.If(I == rr - 1):
                        m.d.sync += [issuing.eq(0), waiting.eq(0)]
        with m.Elif(waiting):
            m.d.sync += gap.eq(gap - 1)
            with m.If(gap == 0):
                m.d.sync += waiting.eq(0)

    def delta_accumulate(self):
        """Delta mode: the serializer's partial sums plus the stored exact accumulators (read with the
        emit, added and written back one cycle later); returns (valid, sums, position) for the bias stage."""
        m, u, cfg, T, ser = self.m, self.u, self.cfg, self.T, self.ser
        aw = cfg.acc_width
        adepth = max(2, u._bdepth)
        accmem = memory.Memory(shape=unsigned(T * aw), depth=adepth, init=[], attrs=state_ram_attrs(T * aw, adepth))
        m.submodules.delta_acc = accmem
        rp, wp = accmem.read_port(), accmem.write_port()
        m.d.comb += [rp.addr.eq(self.bbase_t[self.s_plan] + self.s_pos), rp.en.eq(self.emit)]
        e_a = Signal(name="acc_valid")
        pos_a = Signal.like(ser.o_pos, name="acc_pos")  # the tag (plan and segment)
        part = Signal.like(ser.o_item, name="acc_partial")
        m.d.sync += [e_a.eq(self.emit), pos_a.eq(ser.o_pos)]
        with m.If(self.emit):
            m.d.sync += part.eq(ser.o_item)
        old = data.View(data.ArrayLayout(signed(aw), T), rp.data)
        total = Signal(data.ArrayLayout(signed(aw), T), name="acc_total")
        for ln in range(T):
            m.d.comb += total[ln].eq(part[ln] + old[ln])
        clr_acc = u.clr_en & (u.clr_addr < u._bdepth)
        m.d.comb += [
            wp.addr.eq(Mux(u.clr_en, u.clr_addr, self.bbase_t[pos_a[self.pos_bits :]] + pos_a[: self.pos_bits])),
            wp.data.eq(Mux(u.clr_en, 0, total.as_value())),
            wp.en.eq(Mux(u.clr_en, clr_acc, e_a)),
        ]
        return e_a, total, pos_a
