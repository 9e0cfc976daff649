"""Stream harness around the MVU, for testing and benchmarking it on its own (tiers 1 and 2; test-only).

``MVUHarness(cfg, weights, plan)``: the words of the plan's source vector go
in on ``i`` (padded length ``plan.cols``, in order), the plan's output words
(``plan.rows`` words of ``q_pre``: bias added and narrowed, gate-stacked) come
out on ``o``. Input words are written into a :class:`VectorStore`; when the
vector is complete the MVU runs; its output segments go into a FIFO that holds
a whole result, so the MVU never waits, and leave it word by word under
``o.ready``. The next vector may stream in while a result drains; the MVU
starts again only once the FIFO is empty.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from rnnaccel.numeric.config import Config
from rnnaccel.layout.image import vector_slots
from rnnaccel.hw.buffers import VectorStore
from rnnaccel.hw.mvu import CirculantMVU

__all__ = ["MVUHarness"]


class MVUHarness(wiring.Component):
    def __init__(self, cfg: Config, weights, plan: int = 0):
        self._cfg = cfg
        self._weights = weights
        self._mvu_probe = CirculantMVU(cfg, weights)
        plans = self._mvu_probe.plan_list
        if not 0 <= plan < len(plans):
            raise ValueError(f"plan must be in range({len(plans)}), not {plan!r}")
        self._plan = plans[plan]
        self.cycles = Signal(32)
        super().__init__(
            {
                "i": In(stream.Signature(signed(cfg.q_state.width))),
                "o": Out(stream.Signature(signed(cfg.q_pre.width))),
                "mvu_cycles": Out(32),
            }
        )

    @property
    def plan(self):
        return self._plan

    def elaborate(self, platform):
        cfg, plan = self._cfg, self._plan
        T = cfg.tile
        m = Module()
        m.submodules.store = store = VectorStore(cfg)
        m.submodules.mvu = mvu = self._mvu_probe
        slot = vector_slots(cfg)[plan.src]

        # ---- input loader: element e -> bank (e//T) % Pc, row base + (e//T)//Pc, lane e%T
        e_seg = Signal(range(plan.bc + 1))
        e_lane = Signal(range(T))
        have = Signal()
        running = Signal()
        m.d.comb += self.i.ready.eq(~have & ~running)
        m.d.comb += [
            store.wr_bank.eq(e_seg % cfg.pe_cols),
            store.wr_row.eq(slot.base + e_seg // cfg.pe_cols),
            store.wr_mask.eq(1 << e_lane),
            store.wr_en.eq(self.i.valid & self.i.ready),
        ]
        for r in range(T):
            m.d.comb += store.wr_data[r].eq(self.i.payload)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += e_lane.eq(e_lane + 1)
            with m.If(e_lane == T - 1):
                m.d.sync += [e_lane.eq(0), e_seg.eq(e_seg + 1)]
                with m.If(e_seg == plan.bc - 1):
                    m.d.sync += [e_seg.eq(0), have.eq(1)]

        # ---- output FIFO (whole result) and word serializer
        pw = cfg.q_pre.width
        # +1: SyncFIFOBuffered of depth 2 cannot take two writes on consecutive cycles
        m.submodules.ofifo = ofifo = fifo.SyncFIFOBuffered(width=T * pw, depth=plan.br + 1)
        m.d.comb += [ofifo.w_data.eq(mvu.o_data.as_value()), ofifo.w_en.eq(mvu.o_valid)]

        start = Signal()
        m.d.comb += [
            start.eq(have & ~running & ~mvu.busy & (ofifo.level == 0) & ~ofifo.r_rdy),
            mvu.start.eq(start),
            mvu.plan.eq(plan.index),
        ]
        with m.If(start):
            m.d.sync += [running.eq(1), have.eq(0), self.mvu_cycles.eq(0)]
        with m.If(running):
            m.d.sync += self.mvu_cycles.eq(self.mvu_cycles + 1)
        with m.If(mvu.done):
            m.d.sync += running.eq(0)

        # vector reads: the MVU owns them
        for q in range(cfg.pe_cols):
            m.d.comb += store.rd_addr[q].eq(mvu.vec_addr[q])
        m.d.comb += [store.rd_en.eq(mvu.vec_en), mvu.vec_data.eq(store.rd_data)]

        lane = Signal(range(T))
        words = data.ArrayLayout(signed(pw), T)
        view = data.View(words, ofifo.r_data)
        m.d.comb += [self.o.valid.eq(ofifo.r_rdy), self.o.payload.eq(view[lane])]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += lane.eq(lane + 1)
            with m.If(lane == T - 1):
                m.d.sync += lane.eq(0)
        m.d.comb += ofifo.r_en.eq(self.o.valid & self.o.ready & (lane == T - 1))
        return m
