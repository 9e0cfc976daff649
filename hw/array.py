"""The whole accelerator: memories, MVU, gate units and the sequencer.

Dataflow of one time step (the sequencer's *program*, built in Python from
the config and compiled to one FSM state per phase):

1. ``LOAD``: ``input_size`` words from the input FIFO into vector slot ``x0``
   (a window-2 QRNN first copies x_t to the x_{t-1} half: ``COPY``).
2. For each layer: ``MVU W`` (input projections into the XP memories), then
   for LSTM/GRU/RNN ``MVU U`` (recurrent projections into HP); a reset-before
   GRU runs ``MVU Urz``, a ``GATE reset`` phase writing r*h into slot ``rh``,
   then ``MVU Un``. The input-projection phase is its own phase, so batching
   it over several steps later changes the program, not the datapath.
3. ``GATE``: the layer's gate unit streams over the H elements (one per
   cycle, pipelined): reads XP/HP/c/h, writes h' (vector slot ``h{l}``) and
   c'; the last layer also pushes h' into the output FIFO (the sequencer
   first waits until that FIFO is empty: ``WAIT_OUT``).

Between steps the sequencer is ``IDLE`` and accepts commands (see
:class:`Op`): clear the state, write h or c words (initial state), write
weight/bias words (when not baked into ROM), clear the counters.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory

from ..numeric.config import Config
from ..layout.image import plans, vector_depth, vector_slots
from .buffers import VectorStore, state_ram_attrs
from .gates import GateUnit
from .mvu import CirculantMVU
from .sequencer import PHASE_CLEAR, Op, SequencerBase

__all__ = ["ArrayAccelerator", "array_program"]


def array_program(cfg: Config) -> list[tuple]:
    """Phases of one time step of the array datapath, in order (see the module docstring)."""
    ps = plans(cfg)
    by_layer = {}
    for p in ps:
        by_layer.setdefault(p.layer, []).append(p)
    qrnn2 = cfg.cell == "qrnn" and cfg.qrnn_window == 2
    prog: list[tuple] = []
    if qrnn2:
        prog.append(("copy", "x0"))
    prog.append(("load",))
    last = cfg.num_layers - 1
    for layer in range(cfg.num_layers):
        lp = by_layer[layer]
        if cfg.cell == "gru" and not cfg.gru_reset_after:
            prog += [("mvu", lp[0].index), ("mvu", lp[1].index), ("gate", layer, "reset"), ("mvu", lp[2].index)]
        else:
            prog += [("mvu", p.index) for p in lp]
        if layer == last:
            prog.append(("wait_out",))
        if qrnn2 and layer < last:
            prog.append(("copy", f"h{layer}"))
        prog.append(("gate", layer, "update"))
    return prog


class ArrayAccelerator(SequencerBase):
    """The accelerator for one config (and, with weights in ROM, one set of weights).

    Members
    -------
    i_x : In(stream of q_state words)
        ``input_size`` words per time step.
    o_h : Out(stream of q_state words)
        The last layer's hidden state, ``hidden_size`` words per step.
    i_cmd : In(stream of :func:`command_layout`)
        Commands, taken only between steps.
    status : Out(3)
        busy, idle, error bits (:data:`STATUS_BITS`).
    cycles, wait_cycles, steps : Out(32)
        Compute cycles (excluding waits on the host), cycles spent waiting for
        input words or output space, and completed time steps.
    phase : Out(8)
        The sequencer's phase: 0 idle, ``i + 1`` while running phase ``i`` of
        :attr:`program`, :data:`PHASE_CLEAR` while clearing the state,
        :data:`PHASE_STEP_DONE` at the end of a step (for profiling and debugging).
    """

    def __init__(self, cfg: Config, weights=None):
        if isinstance(cfg, Config) and cfg.datapath != "array":
            raise ValueError(f"Accelerator is the array datapath; datapath {cfg.datapath!r} needs make_accelerator()")
        super().__init__(cfg, weights, array_program(cfg) if isinstance(cfg, Config) else [])

    def elaborate(self, platform):
        cfg = self._cfg
        T, Pc = cfg.tile, cfg.pe_cols
        H = cfg.hidden_size
        Hp = cfg.padded(H)
        segs_h = Hp // T
        xs, cs, pw = cfg.q_state.width, cfg.q_cell.width, cfg.q_pre.width
        L = cfg.num_layers
        slots = vector_slots(cfg)
        vdepth = vector_depth(cfg)
        gmax = max(len(cfg.layer_gates(layer)) for layer in range(L))
        m = Module()

        # ------------------------------------------------------------ blocks
        m.submodules.store = store = VectorStore(cfg)
        m.submodules.mvu = mvu = CirculantMVU(cfg, self._weights)
        in_fifo, out_fifo = self._stream_fifos(m)

        # projection memories, T words per row: one per gate (all gates of an element read in one
        # cycle) or, with cfg.stacked_projections, one per side holding gate g at rows g*segs_h...
        # (read over G cycles per element)
        stacked = cfg.stacked_projections
        n_proj, proj_depth = (1, gmax * segs_h) if stacked else (gmax, segs_h)
        proj = state_ram_attrs(T * pw, proj_depth)
        xp_mem = [memory.Memory(shape=unsigned(T * pw), depth=proj_depth, init=[], attrs=proj) for _ in range(n_proj)]
        hp_mem = [memory.Memory(shape=unsigned(T * pw), depth=proj_depth, init=[], attrs=proj) for _ in range(n_proj)]
        for g in range(n_proj):
            m.submodules[f"xp{g}"] = xp_mem[g]
            m.submodules[f"hp{g}"] = hp_mem[g]
        c_mem = memory.Memory(shape=signed(cs), depth=L * Hp, init=[], attrs=state_ram_attrs(cs, L * Hp))
        m.submodules.cell_state = c_mem

        # gate units: one per distinct (gate count, phase)
        gate_units = {}
        for layer in range(L):
            phases = ["update"] + (["reset"] if cfg.cell == "gru" and not cfg.gru_reset_after else [])
            for ph in phases:
                key = (len(cfg.layer_gates(layer)), ph)
                if key not in gate_units:
                    gu = GateUnit(cfg, layer=layer, phase=ph)
                    gate_units[key] = gu
                    m.submodules[f"gate_{key[0]}_{ph}"] = gu

        # ------------------------------------------------------------ MVU outputs -> XP/HP
        ps = mvu.plan_list
        w_gate = Signal(range(gmax + 1))
        w_row = Signal(range(segs_h + 1))
        w_dst_hp = Signal()
        xp_w = [mem.write_port() for mem in xp_mem]
        hp_w = [mem.write_port() for mem in hp_mem]
        if stacked:
            w_addr = Signal(range(max(2, proj_depth)))
            m.d.comb += w_addr.eq(w_gate * segs_h + w_row)
            m.d.comb += [xp_w[0].addr.eq(w_addr), xp_w[0].data.eq(mvu.o_data.as_value()),
                         xp_w[0].en.eq(mvu.o_valid & ~w_dst_hp),
                         hp_w[0].addr.eq(w_addr), hp_w[0].data.eq(mvu.o_data.as_value()),
                         hp_w[0].en.eq(mvu.o_valid & w_dst_hp)]
        else:
            for g in range(gmax):
                m.d.comb += [xp_w[g].addr.eq(w_row), xp_w[g].data.eq(mvu.o_data.as_value()),
                             xp_w[g].en.eq(mvu.o_valid & ~w_dst_hp & (w_gate == g)),
                             hp_w[g].addr.eq(w_row), hp_w[g].data.eq(mvu.o_data.as_value()),
                             hp_w[g].en.eq(mvu.o_valid & w_dst_hp & (w_gate == g))]
        with m.If(mvu.o_valid):
            m.d.sync += w_row.eq(w_row + 1)
            with m.If(w_row == segs_h - 1):
                m.d.sync += [w_row.eq(0), w_gate.eq(w_gate + 1)]

        # read ports for the gate phase
        xp_r = [mem.read_port() for mem in xp_mem]
        hp_r = [mem.read_port() for mem in hp_mem]
        c_r = c_mem.read_port()
        c_w = c_mem.write_port()

        # ------------------------------------------------------------ shared counters
        # element walker (issue side) and writer (result side) over a vector slot
        e_cnt = Signal(range(max(H, cfg.input_size, vdepth * Pc, L * Hp) + 2))
        e_lane = Signal(range(T))
        e_bank = Signal(range(Pc))
        e_row = Signal(range(vdepth + 1))
        e_seg = Signal(range(max(segs_h, slots["x0"].segments) + 1))
        o_cnt = Signal.like(e_cnt)
        o_lane = Signal(range(T))
        o_bank = Signal(range(Pc))
        o_row = Signal(range(vdepth + 1))

        def next_segment(bank, row):
            """Advance (bank, row) to the next segment: segment j lives in bank j % Pc, row base + j // Pc."""
            if Pc == 1:
                m.d.sync += row.eq(row + 1)
            else:
                m.d.sync += bank.eq(bank + 1)
                with m.If(bank == Pc - 1):
                    m.d.sync += [bank.eq(0), row.eq(row + 1)]

        def walk(lane, bank, row, seg=None):
            """Advance (lane, bank, row[, seg]) by one element."""
            with m.If(lane == T - 1):
                m.d.sync += lane.eq(0)
                if seg is not None:
                    m.d.sync += seg.eq(seg + 1)
                next_segment(bank, row)
            with m.Else():
                m.d.sync += lane.eq(lane + 1)

        # defaults
        vec_rd_addr = [Signal(range(vdepth), name=f"vec_rd_addr{q}") for q in range(Pc)]
        vec_rd_en = Signal()
        m.d.comb += [store.rd_en.eq(vec_rd_en)]
        for q in range(Pc):
            m.d.comb += store.rd_addr[q].eq(vec_rd_addr[q])
        m.d.comb += mvu.vec_data.eq(store.rd_data)

        # per-cycle registered lane/bank of the element read (data arrives next cycle)
        rd_lane = Signal(range(T))
        rd_bank = Signal(range(Pc))
        m.d.sync += [rd_lane.eq(e_lane), rd_bank.eq(e_bank)]
        rd_word = Signal(signed(xs))
        m.d.comb += rd_word.eq(Array(Array(store.rd_data[q][r] for r in range(T)) for q in range(Pc))[rd_bank][rd_lane])

        # gate unit inputs (shared by all units; only the active one gets i_valid)
        def lane_sel(rdata, width):
            words = data.View(data.ArrayLayout(signed(width), T), rdata)
            return words[rd_lane]
        # stacked projections: e_sub walks the gates of the element being issued; the words of
        # gates 0..G-2 wait in col_xp/col_hp and the last gate's word goes straight to the unit
        e_sub = Signal(range(max(2, gmax)))
        rd_sub = Signal.like(e_sub)
        m.d.sync += rd_sub.eq(e_sub)
        if stacked:
            # a word is kept whenever one arrives; only those read in a gate phase are ever used
            col_xp = [Signal(signed(pw), name=f"col_xp{g}") for g in range(gmax - 1)]
            col_hp = [Signal(signed(pw), name=f"col_hp{g}") for g in range(gmax - 1)]
            for g in range(gmax - 1):
                with m.If(rd_sub == g):
                    m.d.sync += [col_xp[g].eq(lane_sel(xp_r[0].data, pw)), col_hp[g].eq(lane_sel(hp_r[0].data, pw))]
            for key, gu in gate_units.items():
                g_n = key[0]
                for g in range(g_n):
                    last_x, last_h = lane_sel(xp_r[0].data, pw), lane_sel(hp_r[0].data, pw)
                    if g == gmax - 1:
                        x_g, h_g = last_x, last_h
                    else:
                        x_g = Mux(rd_sub == g, last_x, col_xp[g])
                        h_g = Mux(rd_sub == g, last_h, col_hp[g])
                    m.d.comb += [gu.i_xp[g].eq(x_g), gu.i_hp[g].eq(h_g)]
            proj_addr = Signal(range(max(2, proj_depth)))
            m.d.comb += [proj_addr.eq(e_sub * segs_h + e_seg), xp_r[0].addr.eq(proj_addr), hp_r[0].addr.eq(proj_addr)]
        else:
            for key, gu in gate_units.items():
                g_n = key[0]
                for g in range(g_n):
                    m.d.comb += [gu.i_xp[g].eq(lane_sel(xp_r[g].data, pw)), gu.i_hp[g].eq(lane_sel(hp_r[g].data, pw))]
            for g in range(gmax):
                m.d.comb += [xp_r[g].addr.eq(e_seg), hp_r[g].addr.eq(e_seg)]
        for gu in gate_units.values():
            m.d.comb += [gu.i_c.eq(c_r.data), gu.i_h.eq(rd_word), gu.i_x.eq(rd_word), gu.en.eq(1)]
        c_base = Signal(range(L * Hp + 1))
        m.d.comb += c_r.addr.eq(c_base + e_cnt)

        # ------------------------------------------------------------ counters / status
        busy = Signal()
        waiting = Signal()
        error = Signal()
        clearing = Signal()
        self._status_and_counters(m, busy, waiting, error, clearing)

        # vector-store writes: one mux, driven by the active phase
        wr_en = Signal()
        wr_bank = Signal(range(Pc))
        wr_row = Signal(range(vdepth))
        wr_mask = Signal(T)
        wr_word = Signal(signed(xs))
        wr_seg = Signal(T * xs)
        wr_full = Signal()
        m.d.comb += [store.wr_en.eq(wr_en), store.wr_bank.eq(wr_bank), store.wr_row.eq(wr_row),
                     store.wr_mask.eq(wr_mask)]
        with m.If(wr_full):
            m.d.comb += store.wr_data.eq(wr_seg)
        with m.Else():
            for r in range(T):
                m.d.comb += store.wr_data[r].eq(wr_word)

        cmd = self.i_cmd.payload

        # ------------------------------------------------------------ FSM
        prog = self._program

        launched = Signal()

        def start_walk(src, dst, dst_seg0=0):
            """Issue walker at element 0 of slot ``src``; result walker at segment ``dst_seg0`` of ``dst``."""
            s, d = slots[src], slots[dst]
            return [e_cnt.eq(0), e_sub.eq(0), e_lane.eq(0), e_seg.eq(0), e_bank.eq(0), e_row.eq(s.base),
                    o_cnt.eq(0), o_lane.eq(0), o_bank.eq(dst_seg0 % Pc), o_row.eq(d.base + dst_seg0 // Pc)]

        def enter(i):
            """Statements run on the transition into phase ``i`` (set up its counters)."""
            if i >= len(prog):
                return []
            phase = prog[i]
            kind = phase[0]
            if kind == "load":
                return start_walk("x0", "x0")
            if kind == "copy":
                return start_walk(phase[1], phase[1], slots[phase[1]].segments // 2)
            if kind == "mvu":
                plan = ps[phase[1]]
                return [launched.eq(0), w_gate.eq(plan.gate0), w_row.eq(0), w_dst_hp.eq(plan.dst == "hp")]
            if kind == "gate":
                layer, ph = phase[1], phase[2]
                if ph == "reset":
                    src, dst = f"h{layer}", "rh"
                elif cfg.cell == "sru":
                    src, dst = ("x0" if layer == 0 else f"h{layer - 1}"), f"h{layer}"
                else:
                    src, dst = f"h{layer}", f"h{layer}"
                return start_walk(src, dst) + [c_base.eq(layer * Hp)]
            return []

        def state_name(i):
            return f"P{i}_{'_'.join(str(a) for a in prog[i])}"

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += busy.eq(0)
                m.d.comb += self.i_cmd.ready.eq(1)
                with m.If(self.i_cmd.valid):
                    with m.Switch(cmd.op):
                        with m.Case(Op.NOP):
                            pass
                        with m.Case(Op.RESET_STATE):
                            m.d.sync += [e_cnt.eq(0), e_bank.eq(0), e_row.eq(0)]
                            m.next = "CLEAR"
                        with m.Case(Op.WRITE_VEC):
                            m.d.comb += [wr_en.eq(1), wr_row.eq(cmd.addr), wr_word.eq(cmd.data[:xs])]
                            # sel = bank * T + lane, decoded by a small table (T need not be a power of two)
                            sel_bank = Array(Const(i // T, range(Pc)) for i in range(Pc * T))
                            sel_lane = Array(Const(1 << (i % T), T) for i in range(Pc * T))
                            m.d.comb += [wr_bank.eq(sel_bank[cmd.sel]), wr_mask.eq(sel_lane[cmd.sel])]
                            with m.If((cmd.sel >= Pc * T) | (cmd.addr >= vdepth)):
                                m.d.comb += wr_en.eq(0)
                                m.d.sync += error.eq(1)
                        with m.Case(Op.WRITE_C):
                            m.d.comb += [c_w.addr.eq(cmd.addr), c_w.data.eq(cmd.data[:cs]),
                                         c_w.en.eq(cmd.addr < L * Hp)]
                            with m.If(cmd.addr >= L * Hp):
                                m.d.sync += error.eq(1)
                        with m.Case(Op.WRITE_WEIGHT):
                            if cfg.weights_in_rom:
                                m.d.sync += error.eq(1)
                            else:
                                n_banks = cfg.pe_rows * Pc
                                in_range = (((cmd.sel < n_banks) & (cmd.addr < mvu.weight_depth)) |
                                            ((cmd.sel == n_banks) & (cmd.addr < mvu.bias_depth)))
                                m.d.comb += [mvu.wr_en.eq(in_range), mvu.wr_bank.eq(cmd.sel),
                                             mvu.wr_addr.eq(cmd.addr), mvu.wr_data.eq(cmd.data)]
                                with m.If(~in_range):
                                    m.d.sync += error.eq(1)
                        self._common_commands(m, error)
                with m.Elif(in_fifo.r_rdy):
                    m.next = state_name(0)
                    m.d.sync += enter(0)

            with m.State("CLEAR"):
                m.d.comb += [busy.eq(1), clearing.eq(1), self.phase.eq(PHASE_CLEAR)]
                # zero every vector row of every bank, and the cell state
                m.d.comb += [wr_en.eq(1), wr_bank.eq(e_bank), wr_row.eq(e_row), wr_mask.eq((1 << T) - 1),
                             wr_full.eq(1), wr_seg.eq(0)]
                m.d.comb += [c_w.addr.eq(e_cnt), c_w.data.eq(0), c_w.en.eq(e_cnt < L * Hp)]
                m.d.sync += e_cnt.eq(e_cnt + 1)
                next_segment(e_bank, e_row)
                with m.If(e_cnt >= max(vdepth * Pc, L * Hp) - 1):
                    m.next = "IDLE"

            for i, phase in enumerate(prog):
                nxt = state_name(i + 1) if i + 1 < len(prog) else "STEP_DONE"
                enter_next = (lambda i=i: enter(i + 1))
                with m.State(state_name(i)):
                    m.d.comb += [busy.eq(1), self.phase.eq(i + 1)]
                    kind = phase[0]
                    if kind == "load":
                        m.d.comb += [in_fifo.r_en.eq(1), waiting.eq(~in_fifo.r_rdy)]
                        m.d.comb += [wr_en.eq(in_fifo.r_rdy), wr_bank.eq(e_bank), wr_row.eq(e_row),
                                     wr_mask.eq(Const(1, T) << e_lane), wr_word.eq(in_fifo.r_data.as_signed())]
                        with m.If(in_fifo.r_rdy):
                            m.d.sync += e_cnt.eq(e_cnt + 1)
                            walk(e_lane, e_bank, e_row)
                            with m.If(e_cnt == cfg.input_size - 1):
                                m.next = nxt
                                m.d.sync += enter_next()
                    elif kind == "copy":
                        # segments 0..S-1 of the slot -> S..2S-1 (x_t becomes x_{t-1})
                        s = slots[phase[1]]
                        half = s.segments // 2
                        cp_v = Signal(name=f"copy{i}_v")
                        src_bank = Signal(range(Pc), name=f"copy{i}_src_bank")
                        issue = Signal(name=f"copy{i}_issue")
                        m.d.comb += issue.eq(e_cnt < half)
                        m.d.comb += vec_rd_en.eq(issue)
                        for q in range(Pc):
                            m.d.comb += vec_rd_addr[q].eq(e_row)
                        m.d.sync += [cp_v.eq(issue), src_bank.eq(e_bank)]
                        with m.If(issue):
                            m.d.sync += e_cnt.eq(e_cnt + 1)
                            next_segment(e_bank, e_row)
                        rd_seg = Array(store.rd_data[q].as_value() for q in range(Pc))[src_bank]
                        m.d.comb += [wr_en.eq(cp_v), wr_bank.eq(o_bank), wr_row.eq(o_row),
                                     wr_mask.eq((1 << T) - 1), wr_full.eq(1), wr_seg.eq(rd_seg)]
                        with m.If(cp_v):
                            m.d.sync += o_cnt.eq(o_cnt + 1)
                            next_segment(o_bank, o_row)
                            with m.If(o_cnt == half - 1):
                                m.next = nxt
                                m.d.sync += enter_next()
                    elif kind == "mvu":
                        plan = ps[phase[1]]
                        m.d.comb += [mvu.plan.eq(plan.index), mvu.start.eq(~launched)]
                        m.d.sync += launched.eq(1)
                        for q in range(Pc):
                            m.d.comb += vec_rd_addr[q].eq(mvu.vec_addr[q])
                        m.d.comb += vec_rd_en.eq(mvu.vec_en)
                        with m.If(mvu.done):
                            m.next = nxt
                            m.d.sync += enter_next()
                    elif kind == "wait_out":
                        m.d.comb += waiting.eq(out_fifo.level != 0)
                        with m.If(out_fifo.level == 0):
                            m.next = nxt
                            m.d.sync += enter_next()
                    elif kind == "gate":
                        layer, ph = phase[1], phase[2]
                        gu = gate_units[(len(cfg.layer_gates(layer)), ph)]
                        issue = Signal(name=f"gate{i}_issue")
                        m.d.comb += issue.eq(e_cnt < H)
                        for q in range(Pc):
                            m.d.comb += vec_rd_addr[q].eq(e_row)
                        v1 = Signal(name=f"gate{i}_v1")
                        m.d.comb += gu.i_valid.eq(v1)
                        if stacked:
                            # read the gates the phase uses (the reset phase needs only r, gate 0)
                            g_last = 0 if ph == "reset" else len(cfg.layer_gates(layer)) - 1
                            last = Signal(name=f"gate{i}_last")
                            m.d.comb += [last.eq(issue & (e_sub == g_last)), vec_rd_en.eq(last), c_r.en.eq(last),
                                         xp_r[0].en.eq(issue), hp_r[0].en.eq(issue)]
                            m.d.sync += v1.eq(last)
                            with m.If(issue):
                                m.d.sync += e_sub.eq(e_sub + 1)
                            with m.If(last):
                                m.d.sync += [e_sub.eq(0), e_cnt.eq(e_cnt + 1)]
                                walk(e_lane, e_bank, e_row, e_seg)
                        else:
                            m.d.comb += vec_rd_en.eq(issue)
                            for g in range(gmax):
                                m.d.comb += [xp_r[g].en.eq(issue), hp_r[g].en.eq(issue)]
                            m.d.comb += c_r.en.eq(issue)
                            m.d.sync += v1.eq(issue)
                            with m.If(issue):
                                m.d.sync += e_cnt.eq(e_cnt + 1)
                                walk(e_lane, e_bank, e_row, e_seg)
                        # results
                        is_last = layer == L - 1 and ph == "update"
                        m.d.comb += [wr_en.eq(gu.o_valid), wr_bank.eq(o_bank), wr_row.eq(o_row),
                                     wr_mask.eq(Const(1, T) << o_lane), wr_word.eq(gu.o_h)]
                        if ph == "update" and cfg.cell in ("lstm", "sru", "qrnn"):
                            m.d.comb += [c_w.addr.eq(c_base + o_cnt), c_w.data.eq(gu.o_c), c_w.en.eq(gu.o_valid)]
                        if is_last:
                            m.d.comb += [out_fifo.w_data.eq(gu.o_h), out_fifo.w_en.eq(gu.o_valid)]
                        with m.If(gu.o_valid):
                            m.d.sync += o_cnt.eq(o_cnt + 1)
                            walk(o_lane, o_bank, o_row)
                            with m.If(o_cnt == H - 1):
                                m.next = nxt
                                m.d.sync += enter_next()

            self._step_done(m, busy)
        return m

