"""The serial datapath (``datapath = 'serial'``): one row of lanes, one-word memories, fused projections.

For models whose weights fill a small FPGA (``lstm512-ice40``: 128 KiB of
circulant weights in the iCE40UP5K's four SPRAMs), where the array's T-word
wide vector, projection and bias memories would not fit in block RAM.
Same external interface as :class:`rnnaccel.hw.array.ArrayAccelerator` (streams,
commands, counters), so the harness, the host link and the board tops take
either (:func:`rnnaccel.hw.accelerator.make_accelerator`).

Schedule of one layer (layout in :mod:`rnnaccel.layout.image`, "serial"):

* for each tile row i (k hidden elements), for each gate g, for each row
  group s (``k / lanes`` of them), one **pass**: ``lanes`` accumulators take
  rows ``i*k + s*lanes ..`` of gate g over the fused columns [input; h],
  one column per cycle. The column's word is read from the vector memory
  and broadcast; lane l multiplies it by ``w[(s*lanes + l - c) mod k]``
  (:func:`rnnaccel.numeric.circulant.circulant_index`), taken from a rotating
  register of the block's defining vector. The next block's vector is
  fetched into a shadow register during the current block (``k / pack``
  weight-memory reads of its k cycles), so a pass runs one column per cycle
  without a bubble.
* a pass's ``lanes`` sums get the fused bias ``b + c`` and are narrowed once
  to ``q_pre`` (:func:`rnnaccel.numeric.golden.fused_projection`) into a scratch memory
  of ``G * k`` words;
* after the row's ``G * k / lanes`` passes, the gate unit
  (:class:`rnnaccel.hw.gates.GateUnit`, projections in ``i_xp``, ``i_hp`` zero)
  takes the row's k elements, reading the G gates of an element over G cycles;
  new h goes to slot ``hn``, new c to the cell-state memory;
* after the last row, ``hn`` is copied to the layer's h slot (and, for the
  last layer, pushed to the output stream).

Cycles per layer and step: about ``G * Hp * cols / lanes`` (the multiplies)
plus, per tile row, ``G * k`` for the gate unit and a few of pipeline.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory

from ..numeric.config import Config
from ..numeric.fixedpoint import hw_narrow
from ..layout.image import (bank_packing, bank_word_bits, bank_words, bias_rows, bias_words, serial_col_blocks,
                     serial_layer_bases, vector_depth, vector_slots, weight_bank_depth, weight_banks)
from .gates import GateUnit
from .mvu import spram_bank, uses_spram_primitives
from .sequencer import PHASE_CLEAR, Op, SequencerBase

__all__ = ["SerialAccelerator", "serial_program"]


def serial_program(cfg: Config) -> list[tuple]:
    """Phases of one time step (``phase`` reports ``index + 1``)."""
    prog: list[tuple] = [("load",)]
    for layer in range(cfg.num_layers):
        prog.append(("mac", layer))
        if layer == cfg.num_layers - 1:
            prog.append(("wait_out",))
        prog.append(("copy", layer))
    return prog


class SerialAccelerator(SequencerBase):
    """The serial-datapath accelerator; members as :class:`rnnaccel.hw.array.ArrayAccelerator`."""

    def __init__(self, cfg: Config, weights=None):
        if isinstance(cfg, Config) and cfg.datapath != "serial":
            raise ValueError(f"SerialAccelerator needs datapath = 'serial', not {cfg.datapath!r}")
        super().__init__(cfg, weights, serial_program(cfg) if isinstance(cfg, Config) else [])

    @property
    def weight_depth(self) -> int:
        """Memory words of the weight bank (after SPRAM packing)."""
        return weight_bank_depth(self._cfg)

    def elaborate(self, platform):
        cfg = self._cfg
        k, Ln = cfg.block_size, cfg.lanes
        S = k // Ln                               # row groups per block
        pack = bank_packing(cfg)
        kp = k // pack                            # weight-memory words per block
        H, Hp = cfg.hidden_size, cfg.padded(cfg.hidden_size)
        R = Hp // k                               # tile rows
        L = cfg.num_layers
        xs, cs, pw, ws = cfg.q_state.width, cfg.q_cell.width, cfg.q_pre.width, cfg.q_weight.width
        acc_w = cfg.acc_width
        slots = vector_slots(cfg)
        vwords = vector_depth(cfg) * k
        gmax = max(len(cfg.layer_gates(layer)) for layer in range(L))
        bases = serial_layer_bases(cfg)
        wdepth = self.weight_depth
        bdepth = bias_rows(cfg)
        mem_word = bank_word_bits(cfg)
        m = Module()

        def nj(layer):
            return serial_col_blocks(cfg, layer)

        # first word of each vector slot, and the slot a layer reads with its h (contiguous after it)
        word_base = {name: slot.base * k for name, slot in slots.items()}

        def src_slot(layer):
            return f"h{layer - 1}" if layer else "x0"

        # ------------------------------------------------------------ memories and FIFOs
        in_fifo, out_fifo = self._stream_fifos(m)
        block = {"ram_style": "block"}
        m.submodules.vectors = vmem = memory.Memory(shape=signed(xs), depth=vwords, init=[], attrs=block)
        m.submodules.cell_state = cmem = memory.Memory(shape=signed(cs), depth=L * Hp, init=[], attrs=block)
        m.submodules.scratch = smem = memory.Memory(shape=signed(pw), depth=gmax * k, init=[], attrs=block)
        m.submodules.bias = bmem = memory.Memory(
            shape=unsigned(cfg.bias_width), depth=bdepth,
            init=bias_words(cfg, self._weights) if cfg.weights_in_rom else [], attrs=block)
        v_r, v_w = vmem.read_port(), vmem.write_port()
        c_r, c_w = cmem.read_port(), cmem.write_port()
        s_r, s_w = smem.read_port(), smem.write_port()
        b_r = bmem.read_port()

        # weight bank: one address for reads and writes (single-port RAM / SPRAM)
        w_addr = Signal(range(max(2, wdepth)), name="weight_addr")     # fetch address
        w_rd = Signal(name="weight_rd")
        w_sel = Signal(name="weight_wsel")
        w_wdata = Signal(mem_word)
        w_waddr = Signal(range(max(2, wdepth)))
        addr = Signal(range(max(2, wdepth)), name="weight_bank_addr")
        m.d.comb += addr.eq(Mux(w_sel, w_waddr, w_addr))
        if uses_spram_primitives(cfg, platform):
            w_data = spram_bank(m, "weights", wdepth, addr, w_wdata[:16], w_sel)
        else:
            init = bank_words(cfg, weight_banks(cfg, self._weights)[0][0]) if cfg.weights_in_rom else []
            m.submodules.weights = wmem = memory.Memory(
                shape=unsigned(mem_word), depth=max(2, wdepth), init=init,
                attrs={"ram_style": "huge" if cfg.weight_ram == "huge" else "block"})
            wr = wmem.read_port()
            m.d.comb += [wr.addr.eq(addr), wr.en.eq(w_rd)]
            if not cfg.weights_in_rom:
                wwp = wmem.write_port()
                m.d.comb += [wwp.addr.eq(addr), wwp.data.eq(w_wdata), wwp.en.eq(w_sel)]
            w_data = wr.data

        # gate units (one per distinct gate count)
        gate_units = {}
        for layer in range(L):
            g_n = len(cfg.layer_gates(layer))
            if g_n not in gate_units:
                gate_units[g_n] = gu = GateUnit(cfg, layer=layer, phase="update")
                m.submodules[f"gate_{g_n}"] = gu

        # ------------------------------------------------------------ weight fetch -> shadow register
        shadow = [Signal(signed(ws), name=f"shadow{t}") for t in range(k)]
        w_valid = Signal(name="weight_valid")
        m.d.sync += w_valid.eq(w_rd)
        with m.If(w_valid):
            for t in range(k - pack):
                m.d.sync += shadow[t].eq(shadow[t + pack])
            for q in range(pack):
                m.d.sync += shadow[k - pack + q].eq(w_data[q * ws:(q + 1) * ws].as_signed())

        # fetch walker: the block whose words are being read (one block ahead of the lanes)
        f_n = Signal(range(kp), name="fetch_word")
        f_j = Signal(range(max(nj(layer) for layer in range(L)) + 1), name="fetch_col")
        f_s = Signal(range(S), name="fetch_group")
        f_rb = Signal(range(wdepth + 1), name="fetch_row_base")   # packed base of (i, g)
        f_ba = Signal(range(wdepth + 1), name="fetch_block_base")
        off = Signal(range(kp), name="fetch_offset")
        m.d.comb += off.eq((f_s * (Ln // pack) + f_n) % kp if kp > 1 else 0)
        m.d.comb += w_addr.eq(f_ba + off)

        def fetch_step(layer):
            """One fetch read this cycle (``w_rd`` set by the caller); advance the walker."""
            n_j = nj(layer)
            m.d.sync += f_n.eq(f_n + 1)
            with m.If(f_n == kp - 1):
                m.d.sync += [f_n.eq(0), f_j.eq(f_j + 1), f_ba.eq(f_ba + kp)]
                with m.If(f_j == n_j - 1):
                    m.d.sync += [f_j.eq(0), f_s.eq(f_s + 1), f_ba.eq(f_rb)]
                    with m.If(f_s == S - 1):
                        m.d.sync += [f_s.eq(0), f_rb.eq(f_rb + n_j * kp), f_ba.eq(f_rb + n_j * kp)]

        # ------------------------------------------------------------ issue walker (stage 0)
        i_row = Signal(range(R + 1), name="row")
        i_g = Signal(range(gmax), name="gate")
        i_s = Signal(range(S), name="group")
        pcnt = Signal(range(max(nj(layer) for layer in range(L)) * k + 1), name="pass_cycle")
        va = Signal(range(vwords + 1), name="vec_addr")
        issue = Signal(name="issue")
        first0, last0 = Signal(), Signal()
        c0 = Signal(range(k))
        m.d.comb += c0.eq(pcnt % k)

        # stage 1: operands
        v1, first1, last1, load1 = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(issue), first1.eq(first0), last1.eq(last0), load1.eq(issue & (c0 == 0))]
        rot = [Signal(signed(ws), name=f"rot{t}") for t in range(k)]
        opnd = [Mux(load1, shadow[t], rot[t]) for t in range(k)]
        with m.If(v1):
            for t in range(k):
                m.d.sync += rot[t].eq(opnd[(t - 1) % k])
        xw = v_r.data

        # stage 2: products (one DSP per lane); stage 3: accumulate
        prod = [Signal(signed(ws + xs), name=f"prod{l}") for l in range(Ln)]
        acc = [Signal(signed(acc_w), name=f"acc{l}") for l in range(Ln)]
        p_valid, p_first, p_last, a_last = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [p_valid.eq(v1), p_first.eq(first1), p_last.eq(last1), a_last.eq(p_valid & p_last)]
        for lane in range(Ln):
            m.d.sync += prod[lane].eq(opnd[lane] * xw)
            with m.If(p_valid):
                m.d.sync += acc[lane].eq(Mux(p_first, prod[lane], acc[lane] + prod[lane]))

        # the pass's (gate, row group), latched at its last issue and used when its sums are done
        pend_g = Signal.like(i_g)
        pend_s = Signal.like(i_s)
        with m.If(issue & last0):
            m.d.sync += [pend_g.eq(i_g), pend_s.eq(i_s)]

        # ------------------------------------------------------------ serializer, bias, narrow -> scratch
        outbuf = [Signal(signed(acc_w), name=f"sum{l}") for l in range(Ln)]
        ser_cnt = Signal(range(Ln + 1))
        ser_g = Signal.like(i_g)
        ser_pos = Signal(range(k + 1))                   # row inside the tile row
        bias_base = Signal(range(bdepth + 1))            # this layer's first bias word
        with m.If(a_last):
            m.d.sync += [outbuf[lane].eq(acc[lane]) for lane in range(Ln)]
            m.d.sync += [ser_cnt.eq(Ln), ser_g.eq(pend_g), ser_pos.eq(pend_s * Ln)]
        with m.Elif(ser_cnt != 0):
            m.d.sync += [outbuf[lane].eq(outbuf[lane + 1]) for lane in range(Ln - 1)]
            m.d.sync += [ser_cnt.eq(ser_cnt - 1), ser_pos.eq(ser_pos + 1)]
        emit = Signal()
        m.d.comb += emit.eq(ser_cnt != 0)
        m.d.comb += [b_r.addr.eq(bias_base + ser_g * Hp + i_row * k + ser_pos), b_r.en.eq(emit)]
        e1, e2 = Signal(), Signal()
        sum1 = Signal(signed(acc_w))
        sa1 = Signal(range(gmax * k))
        pre2 = Signal(signed(pw))
        sa2 = Signal.like(sa1)
        m.d.sync += [e1.eq(emit), e2.eq(e1), sa2.eq(sa1)]
        with m.If(emit):
            m.d.sync += [sum1.eq(outbuf[0]), sa1.eq(ser_g * k + ser_pos)]
        shift = cfg.acc_frac - cfg.q_pre.frac
        with m.If(e1):
            m.d.sync += pre2.eq(hw_narrow(sum1 + (b_r.data.as_signed() << shift), cfg.acc_frac, cfg.q_pre))
        written = Signal(range(gmax * k + 1), name="scratch_written")
        m.d.comb += [s_w.addr.eq(sa2), s_w.data.eq(pre2), s_w.en.eq(e2)]
        with m.If(e2):
            m.d.sync += written.eq(written + 1)

        # ------------------------------------------------------------ gate phase of a tile row
        g_el = Signal(range(k + 1), name="gate_element")
        g_sub = Signal(range(max(2, gmax)), name="gate_sub")
        rd_sub = Signal.like(g_sub)
        m.d.sync += rd_sub.eq(g_sub)
        m.d.comb += s_r.addr.eq(g_sub * k + g_el)
        col = [Signal(signed(pw), name=f"gate_pre{g}") for g in range(gmax - 1)]
        for g in range(gmax - 1):
            with m.If(rd_sub == g):
                m.d.sync += col[g].eq(s_r.data)
        c_base = Signal(range(L * Hp + 1))
        for g_n, gu in gate_units.items():
            for g in range(g_n):
                pre = s_r.data if g == g_n - 1 else Mux(rd_sub == g, s_r.data, col[g])
                m.d.comb += [gu.i_xp[g].eq(pre), gu.i_hp[g].eq(0)]
            m.d.comb += [gu.i_c.eq(c_r.data), gu.i_h.eq(0), gu.i_x.eq(0), gu.en.eq(1)]
        o_el = Signal(range(k + 1), name="gate_out_element")

        # ------------------------------------------------------------ status and counters
        busy, waiting, error, clearing = Signal(), Signal(), Signal(), Signal()
        self._status_and_counters(m, busy, waiting, error, clearing)

        e_cnt = Signal(range(max(vwords, L * Hp, cfg.input_size, H) + 2))
        cp_v = Signal()
        cp_a = Signal(range(vwords + 1))
        cmd = self.i_cmd.payload
        prog = self._program
        vrows = vector_depth(cfg)

        def state_name(i):
            return f"P{i}_{'_'.join(str(a) for a in prog[i])}"

        def enter(i):
            """Statements on entering phase i (counters and walkers)."""
            if i >= len(prog):
                return []
            kind = prog[i][0]
            if kind in ("load", "copy", "wait_out"):
                return [e_cnt.eq(0), cp_v.eq(0)]
            layer = prog[i][1]
            wb, bb = bases[layer]
            return [e_cnt.eq(0), f_n.eq(0), f_j.eq(0), f_s.eq(0), f_rb.eq(wb // pack), f_ba.eq(wb // pack),
                    i_row.eq(0), i_g.eq(0), i_s.eq(0), pcnt.eq(0), va.eq(word_base[src_slot(layer)]),
                    bias_base.eq(bb), c_base.eq(layer * Hp), written.eq(0), g_el.eq(0), g_sub.eq(0), o_el.eq(0)]

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                m.d.comb += self.i_cmd.ready.eq(1)
                with m.If(self.i_cmd.valid):
                    with m.Switch(cmd.op):
                        with m.Case(Op.NOP):
                            pass
                        with m.Case(Op.RESET_STATE):
                            m.d.sync += e_cnt.eq(0)
                            m.next = "CLEAR"
                        with m.Case(Op.WRITE_VEC):
                            ok = (cmd.sel < k) & (cmd.addr < vrows)
                            m.d.comb += [v_w.addr.eq(cmd.addr * k + cmd.sel[:max(1, (k - 1).bit_length())]),
                                         v_w.data.eq(cmd.data[:xs]), v_w.en.eq(ok)]
                            with m.If(~ok):
                                m.d.sync += error.eq(1)
                        with m.Case(Op.WRITE_C):
                            ok = cmd.addr < L * Hp
                            m.d.comb += [c_w.addr.eq(cmd.addr), c_w.data.eq(cmd.data[:cs]), c_w.en.eq(ok)]
                            with m.If(~ok):
                                m.d.sync += error.eq(1)
                        with m.Case(Op.WRITE_WEIGHT):
                            if cfg.weights_in_rom:
                                m.d.sync += error.eq(1)
                            else:
                                to_w = (cmd.sel == 0) & (cmd.addr < wdepth)
                                to_b = (cmd.sel == 1) & (cmd.addr < bdepth)
                                bw = bmem.write_port()
                                m.d.comb += [w_sel.eq(to_w), w_waddr.eq(cmd.addr), w_wdata.eq(cmd.data[:mem_word]),
                                             bw.addr.eq(cmd.addr), bw.data.eq(cmd.data[:cfg.bias_width]),
                                             bw.en.eq(to_b)]
                                with m.If(~(to_w | to_b)):
                                    m.d.sync += error.eq(1)
                        self._common_commands(m, error)
                with m.Elif(in_fifo.r_rdy):
                    m.next = state_name(0)
                    m.d.sync += enter(0)

            with m.State("CLEAR"):
                m.d.comb += [busy.eq(1), clearing.eq(1), self.phase.eq(PHASE_CLEAR)]
                m.d.comb += [v_w.addr.eq(e_cnt), v_w.data.eq(0), v_w.en.eq(e_cnt < vwords),
                             c_w.addr.eq(e_cnt), c_w.data.eq(0), c_w.en.eq(e_cnt < L * Hp)]
                m.d.sync += e_cnt.eq(e_cnt + 1)
                with m.If(e_cnt >= max(vwords, L * Hp) - 1):
                    m.next = "IDLE"

            for i, phase in enumerate(prog):
                nxt = state_name(i + 1) if i + 1 < len(prog) else "STEP_DONE"
                kind = phase[0]
                if kind == "load":
                    with m.State(state_name(i)):
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1)]
                        m.d.comb += [in_fifo.r_en.eq(1), waiting.eq(~in_fifo.r_rdy),
                                     v_w.addr.eq(word_base["x0"] + e_cnt), v_w.data.eq(in_fifo.r_data.as_signed()),
                                     v_w.en.eq(in_fifo.r_rdy)]
                        with m.If(in_fifo.r_rdy):
                            m.d.sync += e_cnt.eq(e_cnt + 1)
                            with m.If(e_cnt == cfg.input_size - 1):
                                m.next = nxt
                                m.d.sync += enter(i + 1)
                elif kind == "wait_out":
                    with m.State(state_name(i)):
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1), waiting.eq(out_fifo.level != 0)]
                        with m.If(out_fifo.level == 0):
                            m.next = nxt
                            m.d.sync += enter(i + 1)
                elif kind == "copy":
                    layer = phase[1]
                    last_layer = layer == L - 1
                    with m.State(state_name(i)):
                        # hn -> h{layer} (and the output stream): read element e, write it a cycle later
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1)]
                        rd = Signal(name=f"copy{layer}_rd")
                        m.d.comb += [rd.eq(e_cnt < H), v_r.addr.eq(word_base["hn"] + e_cnt), v_r.en.eq(rd)]
                        m.d.sync += [cp_v.eq(rd), cp_a.eq(word_base[f"h{layer}"] + e_cnt)]
                        with m.If(rd):
                            m.d.sync += e_cnt.eq(e_cnt + 1)
                        m.d.comb += [v_w.addr.eq(cp_a), v_w.data.eq(v_r.data), v_w.en.eq(cp_v)]
                        if last_layer:
                            m.d.comb += [out_fifo.w_data.eq(v_r.data), out_fifo.w_en.eq(cp_v)]
                        with m.If(cp_v & ~rd):
                            m.next = nxt
                            m.d.sync += enter(i + 1)
                else:  # mac
                    layer = phase[1]
                    G, n_j = len(cfg.layer_gates(layer)), nj(layer)
                    gu = gate_units[G]
                    src_base = word_base[src_slot(layer)]
                    fill, run, drain, gate = (f"{state_name(i)}_{sub}" for sub in ("FILL", "RUN", "DRAIN", "GATE"))
                    with m.State(state_name(i)):
                        # the first block's vector into the shadow register (kp reads)
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1), w_rd.eq(1)]
                        fetch_step(layer)
                        with m.If(f_n == kp - 1):
                            m.next = run
                    with m.State(run):
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1), issue.eq(1),
                                     first0.eq(pcnt == 0), last0.eq(pcnt == n_j * k - 1),
                                     v_r.addr.eq(va), v_r.en.eq(1)]
                        # fetch the next block during this one's first kp cycles
                        with m.If(c0 < kp):
                            m.d.comb += w_rd.eq(1)
                            fetch_step(layer)
                        m.d.sync += [pcnt.eq(pcnt + 1), va.eq(va + 1)]
                        with m.If(pcnt == n_j * k - 1):
                            m.d.sync += [pcnt.eq(0), va.eq(src_base), i_s.eq(i_s + 1)]
                            with m.If(i_s == S - 1):
                                m.d.sync += [i_s.eq(0), i_g.eq(i_g + 1)]
                                with m.If(i_g == G - 1):
                                    m.d.sync += i_g.eq(0)
                                    m.next = drain
                    with m.State(drain):
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1)]
                        with m.If(written == G * k):
                            m.d.sync += [written.eq(0), g_el.eq(0), g_sub.eq(0), o_el.eq(0)]
                            m.next = gate
                    with m.State(gate):
                        # G scratch reads per element (gate g at word g * k + element), then the gate unit
                        m.d.comb += [busy.eq(1), self.phase.eq(i + 1)]
                        rd = Signal(name=f"gate{layer}_rd")
                        last_sub = Signal(name=f"gate{layer}_last_sub")
                        m.d.comb += [rd.eq(g_el < k), last_sub.eq(rd & (g_sub == G - 1)), s_r.en.eq(rd),
                                     c_r.addr.eq(c_base + i_row * k + g_el), c_r.en.eq(last_sub)]
                        v_gate = Signal(name=f"gate{layer}_valid")
                        m.d.sync += v_gate.eq(last_sub)
                        m.d.comb += gu.i_valid.eq(v_gate)
                        with m.If(rd):
                            m.d.sync += g_sub.eq(g_sub + 1)
                        with m.If(last_sub):
                            m.d.sync += [g_sub.eq(0), g_el.eq(g_el + 1)]
                        out_pos = i_row * k + o_el
                        m.d.comb += [v_w.addr.eq(word_base["hn"] + out_pos), v_w.data.eq(gu.o_h),
                                     v_w.en.eq(gu.o_valid)]
                        if cfg.cell == "lstm":
                            m.d.comb += [c_w.addr.eq(c_base + out_pos), c_w.data.eq(gu.o_c), c_w.en.eq(gu.o_valid)]
                        with m.If(gu.o_valid):
                            m.d.sync += o_el.eq(o_el + 1)
                            with m.If(o_el == k - 1):
                                m.d.sync += i_row.eq(i_row + 1)
                                with m.If(i_row == R - 1):
                                    m.next = nxt
                                    m.d.sync += enter(i + 1)
                                with m.Else():
                                    m.next = run

            self._step_done(m, busy)
        return m
