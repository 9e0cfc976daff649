"""The serial datapath in FFT mode (``datapath = 'serial'``, ``circulant_mode = 'fft'``).

The circulant blocks of a layer's fused ``[W | U]`` are multiplied in the frequency domain, exactly
:func:`rnnaccel.numeric.golden.fft_projection` (with the fused ``b + c``): the transforms and the
spectral multiply-accumulate are the finished blocks of :mod:`rnnaccel.hw.fft`; the memories, the
commands, the streams, the load, copy and gate phases are those of :mod:`rnnaccel.hw.serial`
(:class:`SerialFFTBuild` builds on its ``_SerialBuild``). Layout: :class:`rnnaccel.layout.image.SerialFFTLayout`.

Schedule of one layer (the phase program is the serial one: ``load``, per layer ``mac``, ``wait_out``,
``copy``; a ``mac`` phase has the states FWD, RUN, DRAIN, GATE):

* **FWD**: the ``NJ`` k-word segments of the layer's ``[input; h]`` (one run of the vector memory, one
  word a cycle) through the :class:`~rnnaccel.hw.fft.ForwardFFT` (segments back to back, one every
  ``period`` cycles); the packed spectra (``q_state``, a bin of two words per beat) go to the
  *spectra store* (``NJ * k/2`` bins, bin b of segment j at ``j * k/2 + b``). About
  ``NJ * period + latency`` cycles.
* **RUN** (per tile row i): for each gate g, the :class:`~rnnaccel.hw.fft.SpectralMAC` takes the row
  block (i, g)'s ``NJ * k/2`` beats back to back, one bin a cycle: the weight bin from the weight bank
  (its words are in beat order, so the address is a counter: ``k/2`` bins per block, ``pack / 2`` bins
  a memory word) and the segment's bin from the spectra store. A row block's sums leave with its last
  column block into the :class:`~rnnaccel.hw.fft.InverseFFT`, which transforms while the MAC runs
  the next gate (it holds the MAC only when a row block is shorter than the inverse's period).
* the inverse's beats (``y[n]`` and ``y[n + k/2]``) meet a bias pair (``b + c`` of both rows, one
  word) in a :class:`~rnnaccel.hw.datapath.BiasNarrow` of two sums (the output at ``fs + f`` fraction
  bits, the bias aligned to it, narrowed once to ``q_pre``) and are written as one word of the
  scratch memory (``G * k/2`` pairs: element n of gate g at word ``g * k/2 + n mod k/2``, half
  ``n >= k/2``);
* **DRAIN** waits for the row's ``G * k / 2`` scratch words, **GATE** runs the gate unit over the k
  elements (as the direct serial datapath), then RUN for the next row.

Cycles per layer: about ``R * G * NJ * k / 2`` (one bin a cycle through the MAC, ``k / 2`` times
fewer than the direct datapath's ``lanes = 2`` ... ``k``: it multiplies four products a cycle), plus
the forward transforms, plus per row the drain (MAC latency, inverse latency and output, bias) and
the gate phase. Stalls: the MAC's input stage holds (the memories re-read the held beat's addresses)
when the inverse transform's input buffer is full; the forward transform's loader likewise holds the
vector read.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory

from .datapath import BiasNarrow
from .fft import ForwardFFT, InverseFFT, SpectralMAC
from .serial import _SerialBuild

__all__ = ["SerialFFTBuild"]


class SerialFFTBuild(_SerialBuild):
    """One elaboration of a :class:`~rnnaccel.hw.serial.SerialAccelerator` in FFT mode (see the module docs)."""

    def __init__(self, top, platform):
        super().__init__(top, platform)
        cfg = self.cfg
        self.half = self.k // 2
        self.ws = cfg.q_spectrum.width
        if self.pack < 2:
            raise ValueError(
                "the FFT serial datapath reads a bin (two q_spectrum words) a cycle: a weight-memory word "
                f"must hold one or more (q_spectrum {cfg.q_spectrum} in SPRAM holds half a bin)"
            )
        self.bpw = self.pack // 2  # bins per weight-memory word
        self.nj_max = max(self.nj(layer) for layer in range(self.L))

    def build(self) -> Module:
        """The module: memories, weight bank, gate units, transforms and MAC, the inverse's output to
        scratch, the gate inputs, status; then the sequencer FSM (as :class:`_SerialBuild`)."""
        self._memories()
        self._out_empty()
        self._weight_bank()
        self._gate_units()
        self._transforms()
        self._mac_issue()
        self._inverse_out()
        self._gate_inputs()
        self._status()
        m = self.m
        with m.FSM(name="seq"):
            self._idle_state()
            self._clear_state()
            self._program_states()
            self.top._step_done(m, self.busy)
        return m

    # ------------------------------------------------------------ memories
    def _memories(self) -> None:
        """The stream FIFOs; the vector and cell-state memories (as the direct datapath), the scratch
        memory (``G * k/2`` words of two pre-activations), the bias memory (pairs) and the spectra store
        (``NJ * k/2`` bins of two ``q_state`` words)."""
        m, half = self.m, self.half
        in_fifo, out_fifo = self.top._stream_fifos(m)
        block = {"ram_style": "block"}
        m.submodules.vectors = vmem = memory.Memory(shape=signed(self.xs), depth=self.vwords, init=[], attrs=block)
        m.submodules.cell_state = cmem = memory.Memory(
            shape=signed(self.cs), depth=self.L * self.Hp, init=[], attrs=block
        )
        m.submodules.scratch = smem = memory.Memory(
            shape=unsigned(2 * self.pw), depth=max(2, self.gmax * half), init=[], attrs=block
        )
        m.submodules.bias = bmem = memory.Memory(
            shape=unsigned(self.bias_bits),
            depth=self.bdepth,
            init=self.image.bias_words if self.image is not None else [],
            attrs=block,
        )
        m.submodules.spectra = xmem = memory.Memory(
            shape=unsigned(2 * self.xs), depth=self.nj_max * half, init=[], attrs=block
        )
        v_r, v_w = vmem.read_port(), vmem.write_port()
        c_r, c_w = cmem.read_port(), cmem.write_port()
        s_r, s_w = smem.read_port(), smem.write_port()
        b_r = bmem.read_port()
        x_r, x_w = xmem.read_port(), xmem.write_port()
        self.in_fifo, self.out_fifo, self.bmem = in_fifo, out_fifo, bmem
        self.v_r, self.v_w, self.c_r, self.c_w, self.s_r, self.s_w, self.b_r = v_r, v_w, c_r, c_w, s_r, s_w, b_r
        self.x_r, self.x_w = x_r, x_w

    # ------------------------------------------------------------ transforms
    def _transforms(self) -> None:
        """The forward transform (its input from the vector memory's read port, held by ``f_adv``; its
        output to the spectra store, in order: ``spectra_written``), the MAC into the inverse."""
        cfg, m = self.cfg, self.m
        m.submodules.fft_forward = fwd = ForwardFFT.from_config(cfg)
        m.submodules.fft_mac = mac = SpectralMAC.from_config(cfg)
        m.submodules.fft_inverse = inv = InverseFFT.from_config(cfg)

        # forward input: a word read from the vector memory (FWD sets f_rd); the read is held while the
        # transform's input buffer is full
        f_rd, f_v1 = Signal(name="fwd_read"), Signal(name="fwd_valid")
        f_adv = Signal(name="fwd_advance")
        va = Signal(range(self.vwords + 1), name="vec_addr")  # FWD's read address
        m.d.comb += [f_adv.eq(~f_v1 | fwd.i_ready), fwd.i_valid.eq(f_v1), fwd.i_data.eq(self.v_r.data)]
        with m.If(f_adv):
            m.d.sync += f_v1.eq(f_rd)

        # forward output -> spectra store, bins in order
        sp_written = Signal(range(self.nj_max * self.half + 1), name="spectra_written")
        x_w = self.x_w
        m.d.comb += [
            fwd.o_ready.eq(1),
            x_w.addr.eq(sp_written),
            x_w.data.eq(Cat(fwd.o_data[0], fwd.o_data[1])),
            x_w.en.eq(fwd.o_valid),
        ]
        with m.If(fwd.o_valid):
            m.d.sync += sp_written.eq(sp_written + 1)

        # MAC -> inverse
        m.d.comb += [
            inv.i_valid.eq(mac.o_valid),
            inv.i_data.eq(mac.o_data),
            mac.o_ready.eq(inv.i_ready),
            inv.o_ready.eq(1),
        ]
        self.fwd, self.mac, self.inv = fwd, mac, inv
        self.f_rd, self.f_adv, self.sp_written, self.va = f_rd, f_adv, sp_written, va

    def _mac_issue(self) -> None:
        """The MAC's issue: beat counters (stage 0: spectra address ``sa``, the layer's weight beat
        ``wc``, the row's beat ``beat``), the operand stage (stage 1: the memories' words) held while the
        MAC is not ready, its addresses then re-read (a SPRAM has no read enable)."""
        m, half, bpw, mac = self.m, self.half, self.bpw, self.mac
        nbins = self.nj_max * half
        row_beats = max(len(self.cfg.layer_gates(layer)) * self.nj(layer) for layer in range(self.L)) * half
        m_rd = Signal(name="mac_read")  # RUN: a beat to issue
        sa = Signal(range(nbins), name="spec_addr")
        sa_wrap = Signal(range(nbins), name="spec_wrap")  # the layer's last bin: NJ k/2 - 1
        sa_last = Signal(range(nbins), name="spec_last_block")  # first bin of the last column block
        wc = Signal(range(self.wdepth * bpw + 1), name="weight_beat")
        w_base = Signal(range(self.wdepth + 1), name="weight_base")
        beat = Signal(range(row_beats + 1), name="row_beat")
        sh = bpw.bit_length() - 1
        wa0 = Signal(range(self.wdepth + 1), name="weight_addr0")
        m.d.comb += wa0.eq(w_base + (wc >> sh))

        v1, first1, last1 = Signal(name="mac_valid1"), Signal(name="mac_first1"), Signal(name="mac_last1")
        sa1 = Signal.like(sa, name="spec_addr1")
        wa1 = Signal.like(wa0, name="weight_addr1")
        sub1 = Signal(range(bpw), name="weight_sub1")
        adv = Signal(name="mac_advance")
        m.d.comb += adv.eq(~v1 | mac.i_ready)
        with m.If(adv):
            m.d.sync += [
                v1.eq(m_rd),
                first1.eq(sa < half),
                last1.eq(sa >= sa_last),
                sa1.eq(sa),
                wa1.eq(wa0),
                sub1.eq(wc[:sh] if sh else 0),
            ]
            with m.If(m_rd):
                m.d.sync += [sa.eq(Mux(sa == sa_wrap, 0, sa + 1)), wc.eq(wc + 1), beat.eq(beat + 1)]
        m.d.comb += [
            self.x_r.addr.eq(Mux(adv, sa, sa1)),
            self.w_addr.eq(Mux(adv, wa0, wa1)),
            self.w_rd.eq(1),
        ]
        # operands: the weight bin (two words of the memory word) and the segment's bin
        words = self.bank.words
        bins = [Cat(words[2 * b], words[2 * b + 1]) for b in range(bpw)]
        w_bin = Array(bins)[sub1] if bpw > 1 else bins[0]
        ws, xs = self.ws, self.xs
        m.d.comb += [
            mac.i_valid.eq(v1),
            mac.i_first.eq(first1),
            mac.i_last.eq(last1),
            mac.i_s[0].eq(w_bin[:ws].as_signed()),
            mac.i_s[1].eq(w_bin[ws:].as_signed()),
            mac.i_x[0].eq(self.x_r.data[:xs].as_signed()),
            mac.i_x[1].eq(self.x_r.data[xs:].as_signed()),
        ]
        self.m_rd, self.sa, self.sa_wrap, self.sa_last, self.wc, self.w_base, self.beat = (
            m_rd,
            sa,
            sa_wrap,
            sa_last,
            wc,
            w_base,
            beat,
        )

    def _inverse_out(self) -> None:
        """The inverse's beats (row block (row, ``out_gate``)): bias pair read, two sums narrowed
        (:class:`~rnnaccel.hw.datapath.BiasNarrow` at the transform's ``fs + f`` fraction bits), one
        scratch word; ``scratch_written`` counts them."""
        cfg, m, half, Hp, gmax, inv = self.cfg, self.m, self.half, self.Hp, self.gmax, self.inv
        i_row = Signal(range(self.R + 1), name="row")
        out_g = Signal(range(gmax + 1), name="out_gate")
        with m.If(inv.o_valid & inv.o_last):
            m.d.sync += out_g.eq(out_g + 1)
        bias_base = Signal(range(self.bdepth + 1), name="bias_base")
        b_r = self.b_r
        m.d.comb += [
            b_r.addr.eq(bias_base + out_g * (Hp // 2) + i_row * half + inv.o_index),
            b_r.en.eq(inv.o_valid),
        ]
        m.submodules.bias_narrow = bn = BiasNarrow(
            cfg, 2, cfg.bias_width, range(gmax * half), acc_width=cfg.fft_out_width, acc_frac=cfg.fft_acc_frac
        )
        m.d.comb += [
            bn.i_valid.eq(inv.o_valid),
            bn.i_sums[0].eq(inv.o_data[0]),
            bn.i_sums[1].eq(inv.o_data[1]),
            bn.i_tag.eq(out_g * half + inv.o_index),
            bn.i_bias.eq(b_r.data),
        ]
        written = Signal(range(gmax * half + 1), name="scratch_written")
        s_w = self.s_w
        m.d.comb += [s_w.addr.eq(bn.o_tag), s_w.data.eq(Cat(bn.o_data[0], bn.o_data[1])), s_w.en.eq(bn.o_valid)]
        with m.If(bn.o_valid):
            m.d.sync += written.eq(written + 1)
        self.i_row, self.out_g, self.bias_base, self.written = i_row, out_g, bias_base, written

    # ------------------------------------------------------------ gate phase of a tile row
    def _gate_inputs(self) -> None:
        """As the direct datapath's, the scratch word of element e of gate g at ``g * k/2 + e mod k/2``,
        its half ``e >= k/2``."""
        m, k, half, L, Hp, gmax, pw = self.m, self.k, self.half, self.L, self.Hp, self.gmax, self.pw
        s_r = self.s_r
        g_el = Signal(range(k + 1), name="gate_element")
        g_sub = Signal(range(max(2, gmax)), name="gate_sub")
        rd_sub = Signal.like(g_sub)
        rd_hi = Signal(name="gate_hi")
        hb = half.bit_length() - 1
        m.d.sync += [rd_sub.eq(g_sub), rd_hi.eq(g_el[hb])]
        m.d.comb += s_r.addr.eq(g_sub * half + g_el[:hb])
        sdata = Signal(signed(pw), name="gate_word")
        m.d.comb += sdata.eq(Mux(rd_hi, s_r.data[pw:], s_r.data[:pw]))
        col = [Signal(signed(pw), name=f"gate_pre{g}") for g in range(gmax - 1)]
        for g in range(gmax - 1):
            with m.If(rd_sub == g):
                m.d.sync += col[g].eq(sdata)
        c_base = Signal(range(L * Hp + 1))
        for g_n, gu in self.gate_units.items():
            for g in range(g_n):
                pre = sdata if g == g_n - 1 else Mux(rd_sub == g, sdata, col[g])
                m.d.comb += [gu.i_xp[g].eq(pre), gu.i_hp[g].eq(0)]
            m.d.comb += [gu.i_c.eq(self.c_r.data), gu.i_h.eq(0), gu.i_x.eq(0), gu.en.eq(1)]
        o_el = Signal(range(k + 1), name="gate_out_element")
        self.g_el, self.g_sub, self.c_base, self.o_el = g_el, g_sub, c_base, o_el

    # ------------------------------------------------------------ phases
    def enter(self, i):
        """Statements on entering phase i (a mac phase: its counters, the layer's bases)."""
        prog = self.prog
        if i >= len(prog) or prog[i][0] != "mac":
            return super().enter(i)
        layer = prog[i][1]
        wb, bb = self.bases[layer]
        n_j, half = self.nj(layer), self.half
        return [
            self.e_cnt.eq(0),
            self.va.eq(self.word_base[self.src_slot(layer)]),
            self.sp_written.eq(0),
            self.sa.eq(0),
            self.sa_wrap.eq(n_j * half - 1),
            self.sa_last.eq((n_j - 1) * half),
            self.wc.eq(0),
            self.w_base.eq(wb // self.pack),
            self.beat.eq(0),
            self.i_row.eq(0),
            self.out_g.eq(0),
            self.bias_base.eq(bb // 2),
            self.c_base.eq(layer * self.Hp),
            self.written.eq(0),
            self.g_el.eq(0),
            self.g_sub.eq(0),
            self.o_el.eq(0),
        ]

    def _mac_phase(self, i, layer, nxt) -> None:
        """mac: FWD (named as the phase), RUN, DRAIN, GATE (see the module docs)."""
        m, k, half, busy, phase = self.m, self.k, self.half, self.busy, self.top.phase
        G, n_j = len(self.cfg.layer_gates(layer)), self.nj(layer)
        run, drain, gate = (f"{self.state_name(i)}_{sub}" for sub in ("RUN", "DRAIN", "GATE"))
        va, e_cnt = self.va, self.e_cnt
        with m.State(self.state_name(i)):
            m.d.comb += [busy.eq(1), phase.eq(i + 1)]
            rd = Signal(name=f"fwd{layer}_rd")
            m.d.comb += [
                rd.eq(e_cnt < n_j * k),
                self.f_rd.eq(rd),
                self.v_r.addr.eq(va),
                self.v_r.en.eq(self.f_adv),
            ]
            with m.If(self.f_adv & rd):
                m.d.sync += [va.eq(va + 1), e_cnt.eq(e_cnt + 1)]
            with m.If(self.sp_written == n_j * half):
                m.next = run
        with m.State(run):
            m.d.comb += [busy.eq(1), phase.eq(i + 1)]
            total = G * n_j * half
            m.d.comb += self.m_rd.eq(self.beat < total)
            with m.If(self.beat == total):
                m.next = drain
        with m.State(drain):
            m.d.comb += [busy.eq(1), phase.eq(i + 1)]
            with m.If(self.written == G * half):
                m.d.sync += [
                    self.written.eq(0),
                    self.g_el.eq(0),
                    self.g_sub.eq(0),
                    self.o_el.eq(0),
                    self.beat.eq(0),
                    self.out_g.eq(0),
                ]
                m.next = gate
        self._mac_gate_state(i, layer, gate, run, nxt)
