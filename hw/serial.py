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
  of two halves of ``G * k`` words, the half picked by the tile row's parity;
* once the row's ``G * k / lanes`` passes are in its half, the gate unit
  (:class:`rnnaccel.hw.gates.GateUnit`, projections in ``i_xp``, ``i_hp`` zero)
  takes the row's k elements, reading the G gates of an element over G cycles,
  while the lanes run the next row's passes (into the other half); new h goes
  to slot ``hn`` (not the h slot the passes read), new c to the cell-state
  memory;
* after the last row's gate phase, ``hn`` is copied to the layer's h slot (and,
  for the last layer, pushed to the output stream).

SRU and QRNN (no recurrent product) pass over the input columns alone; the
SRU's highway ``x_t`` is read beside the passes on a second vector read port,
and a window-2 QRNN's ``shift`` phases keep ``x_{t-1}`` behind ``x_t``
(:func:`serial_program`).

Batched steps (``time_steps = T > 1``, SRU and QRNN with streamed weights, issue 13): a batch of up to T
steps (:data:`BATCH_GAP`) runs each pass once per step of the batch from a two-half pass buffer that the weight
stream fills (:meth:`_SerialBuild._weight_fill`), so each weight is fetched once per batch; the gate phase runs
step by step, h goes to the step's own vector, a ``push`` phase sends the batch's outputs
(docs/architecture.md, "Several time steps per weight fetch").

Cycles per layer and step: about ``G * Hp * cols / lanes`` (the multiplies)
plus, once per layer, the last row's pipeline drain and gate phase (``G * k``
reads and the gate unit's latency).

Blocks shared with the array datapath: the weight bank (:class:`rnnaccel.hw.datapath.WeightBank`), the
rotating register (:class:`rnnaccel.hw.pe.ColumnOperand` of weights), the lanes (a
:class:`rnnaccel.hw.pe.ProcessingElement` of ``lanes`` lanes, a weight per lane, the vector word
broadcast), the serializer and the bias add and narrow (:class:`rnnaccel.hw.datapath.Serializer`,
:class:`rnnaccel.hw.datapath.BiasNarrow`). ROM contents come from the design's memory image
(:attr:`rnnaccel.hw.sequencer.SequencerBase.image`).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import memory

from ..numeric.config import Config
from ..layout.image import (
    bank_packing,
    bank_word_bits,
    bias_rows,
    bias_word_bits,
    serial_col_blocks,
    serial_layer_bases,
    vector_depth,
    vector_slots,
    weight_bank_depth,
    weight_stream_layer_words,
    weight_stream_step_words,
)
from .datapath import BiasNarrow, Serializer, WeightBank
from .gates import GateUnit
from .pe import ColumnOperand, ProcessingElement
from .sequencer import PHASE_CLEAR, Op, SequencerBase

__all__ = ["SerialAccelerator", "serial_program", "BATCH_GAP"]

#: Batched steps: cycles the load waits after a step's last input word for the next step's first word before it
#: closes the batch (the host link's walker gives a 16-bit word every two cycles)
BATCH_GAP = 32


def serial_program(cfg: Config) -> list[tuple]:
    """Phases of one time step (``phase`` reports ``index + 1``)."""
    # a window-2 QRNN reads [x_t; x_{t-1}] from one slot: a shift phase first moves the slot's x_{t-1} half
    # (the words a layer's input holds) behind it, before the load (layer 0) or the copy (a layer's h, the
    # next layer's input) overwrites it
    window = cfg.cell == "qrnn" and cfg.qrnn_window == 2
    if cfg.time_steps > 1:
        # a batch of up to T steps: its inputs, each layer's passes and gate phases for every step of the
        # batch, then the last layer's outputs, step by step (SRU and QRNN: no layer reads its own h). A
        # window-2 QRNN's step t reads [x_t; x_{t-1}] from its own vector: ``carry`` copies the previous
        # batch's last x (or h) behind step 0's before the load (or the layer) overwrites it, ``chain`` each
        # step's behind the next one's
        prog = [("carry", "x0"), ("load",), ("chain", "x0")] if window else [("load",)]
        for layer in range(cfg.num_layers):
            feeds = window and layer < cfg.num_layers - 1  # its h is the next layer's window
            prog += ([("carry", f"h{layer}")] if feeds else []) + [("mac", layer)]
            prog += [("chain", f"h{layer}")] if feeds else []
        return prog + [("push",)]
    # run-time dimensions: the largest model's program; every layer has its own wait_out, which holds only in the
    # model's last layer (``layers`` - 1), whose copy pushes the outputs and ends the step
    runtime = cfg.runtime_dims
    cfg = cfg.at_max()
    prog: list[tuple] = [("shift", "x0")] if window else []
    prog.append(("load",))
    for layer in range(cfg.num_layers):
        prog.append(("mac", layer))
        if runtime:
            prog.append(("wait_out", layer))
        if layer == cfg.num_layers - 1:
            if not runtime:
                prog.append(("wait_out",))
        elif window:
            prog.append(("shift", f"h{layer}"))
        prog.append(("copy", layer))
    return prog


class SerialAccelerator(SequencerBase):
    """The serial-datapath accelerator; members as :class:`rnnaccel.hw.array.ArrayAccelerator`."""

    def __init__(self, cfg: Config, weights=None, *, image=None):
        if isinstance(cfg, Config) and cfg.datapath != "serial":
            raise ValueError(f"SerialAccelerator needs datapath = 'serial', not {cfg.datapath!r}")
        super().__init__(cfg, weights, serial_program(cfg) if isinstance(cfg, Config) else [], image=image)
        if self.stream_words and self.stream_words >= 1 << len(self.o_wstart.payload.count):
            raise ValueError(
                f"a time step reads {self.stream_words} weight words, more than a stream request counts "
                f"({(1 << len(self.o_wstart.payload.count)) - 1})"
            )

    @property
    def weight_depth(self) -> int:
        """Memory words of the weight bank (after SPRAM packing; the largest model's with run-time dimensions)."""
        return weight_bank_depth(self._cfg.at_max())

    @property
    def stream_words(self) -> int:
        """Words one time step takes from the weight stream (``weight_source = 'flash'``; 0 with on-chip weights):
        the read count of its request on ``o_wstart``."""
        return 0 if self._cfg.weight_source == "onchip" else weight_stream_step_words(self._cfg)

    def elaborate(self, platform):
        """The module: a :class:`_SerialBuild` emits it block by block (in FFT mode
        ``circulant_mode = 'fft'``, :class:`rnnaccel.hw.serial_fft.SerialFFTBuild`)."""
        if self._cfg.fft_mode:
            from .serial_fft import SerialFFTBuild  # it builds on _SerialBuild

            return SerialFFTBuild(self, platform).build()
        return _SerialBuild(self, platform).build()


class _SerialBuild:
    """One elaboration of a :class:`SerialAccelerator`: the module ``m``, the sizes and the shared signals.

    :meth:`build` calls one method per block, in a fixed order: Amaranth names (and deduplicates)
    signals, memories, ports and submodules in the order they are made, so the order is part of the
    generated Verilog. A method makes its signals as locals (a signal without an explicit name is named
    after its variable) and keeps those later blocks use as attributes of the same name.
    """

    def __init__(self, top: SerialAccelerator, platform):
        # run-time dimensions (issue 12): the memories, counters and program are the largest model's; the
        # layout constants that depend on the model's shape are registers (:meth:`p`)
        self.runtime = top.cfg.runtime_dims
        cfg = top.cfg.at_max()
        self.top, self.cfg, self.platform = top, cfg, platform
        self.image = top.image
        self.prog = top._program
        k = self.k = cfg.block_size
        self.Ln = cfg.lanes
        self.S = k // self.Ln  # row groups per block
        self.pack = bank_packing(cfg)
        self.kp = k // self.pack  # weight-memory words per block
        self.H, self.Hp = cfg.hidden_size, cfg.padded(cfg.hidden_size)
        self.R = self.Hp // k  # tile rows
        self.L = cfg.num_layers
        self.xs, self.cs, self.pw, self.ws = cfg.q_state.width, cfg.q_cell.width, cfg.q_pre.width, cfg.q_weight.width
        self.acc_w = cfg.acc_width
        self.vrows = vector_depth(cfg)
        self.vwords = self.vrows * k
        self.gmax = max(len(cfg.layer_gates(layer)) for layer in range(self.L))
        self.bases = serial_layer_bases(cfg)
        self.streamed = cfg.weight_source != "onchip"  # weights from i_w, no bank (issue 13)
        self.T = cfg.time_steps  # steps per batch (issue 13): > 1 runs each pass once per step of the batch
        self.batched = self.T > 1
        self.njmax = max(self.nj(layer) for layer in range(self.L))
        win = cfg.qrnn_window if cfg.cell == "qrnn" else 1
        # batched: a step's vector in a slot (x0: the layer-0 columns; h: the hidden state, twice in a window)
        self.stride = {"x0": self.nj(0) * k} | {f"h{layer}": self.Hp * win for layer in range(self.L)}
        self.highway = False
        self.wdepth = top.weight_depth
        self.bdepth = bias_rows(cfg)
        self.mem_word = bank_word_bits(cfg)
        self.bias_bits = bias_word_bits(cfg)  # a bias-memory word (cfg.bias_width; a pair in FFT mode)
        # first word of each vector slot (a layer reads its h contiguous after its src_slot)
        self.word_base = {name: slot.base * k for name, slot in vector_slots(cfg).items()}
        self.prm = top._parameter_registers()
        self.m = Module()

    def p(self, name, const):
        """Parameter ``name`` (:func:`rnnaccel.layout.runtime.param_names`): its register with run-time
        dimensions, else ``const``, the model's constant."""
        return self.prm.get(name, const)

    def slot_word(self, name):
        """First word of vector slot ``name`` (``x0`` is always at word 0)."""
        base = self.word_base[name]
        return base if name == "x0" else self.p(f"slot_{name}", base)

    def is_last_layer(self, layer):
        """``layer`` is the model's last (a register compare with run-time dimensions)."""
        if self.runtime:
            return self.prm["layers"] == layer + 1
        return layer == self.L - 1

    def nj(self, layer):
        """Column blocks of a layer's fused [input; h] columns."""
        return serial_col_blocks(self.cfg, layer)

    @staticmethod
    def src_slot(layer):
        """The vector slot a layer reads as its input (its h follows it)."""
        return f"h{layer - 1}" if layer else "x0"

    def build(self) -> Module:
        """The whole module: the datapath blocks, then the sequencer FSM (IDLE, CLEAR, one state or
        more per phase of the program, STEP_DONE), then each mac phase's gate phase (:meth:`_gate_engine`,
        which runs beside the FSM's RUN and DRAIN states)."""
        self.gate_jobs = []
        self._memories()
        self._out_empty()
        if self.streamed:
            self._weight_request()
        else:
            self._weight_bank()
        self._gate_units()
        if self.batched:
            self._weight_fill()
        elif self.streamed:
            self._weight_stream()
        else:
            self._weight_fetch()
        self._lanes()
        self._serializer()
        self._gate_inputs()
        self._status()
        m = self.m
        with m.FSM(name="seq"):
            self._idle_state()
            self._clear_state()
            self._program_states()
            self.top._step_done(m, self.busy, self.batch if self.batched else 1)
        for job in self.gate_jobs:
            self._gate_engine(*job)
        return m

    def _out_empty(self) -> None:
        """``out_empty``: the output FIFO is empty, registered (timing: the FIFO level's add and compare no
        longer feed the sequencer's state enables). Never early: an empty FIFO cannot be read, so it stays
        empty unless written in that cycle; one cycle late when it drains just then (a phase waiting for it)."""
        self.out_empty = Signal(init=1, name="out_empty")
        self.m.d.sync += self.out_empty.eq((self.out_fifo.level == 0) & ~self.out_fifo.w_en)

    # ------------------------------------------------------------ memories and FIFOs
    def _memories(self) -> None:
        """The stream FIFOs; the vector, cell-state, scratch (two halves of ``gmax * k`` words: the ``G * k``
        pre-activations of a tile row, the half picked by the row's parity) and bias memories, one word
        wide, and their ports."""
        cfg, m = self.cfg, self.m
        in_fifo, out_fifo = self.top._stream_fifos(m)
        block = {"ram_style": "block"}
        m.submodules.vectors = vmem = memory.Memory(shape=signed(self.xs), depth=self.vwords, init=[], attrs=block)
        m.submodules.cell_state = cmem = memory.Memory(
            shape=signed(self.cs), depth=self.L * self.Hp, init=[], attrs=block
        )
        m.submodules.scratch = smem = memory.Memory(
            shape=signed(self.pw), depth=2 * self.T * self.gmax * self.k, init=[], attrs=block
        )
        m.submodules.bias = bmem = memory.Memory(
            shape=unsigned(cfg.bias_width),
            depth=self.bdepth,
            init=self.image.bias_words if self.image is not None else [],
            attrs=block,
        )
        v_r, v_w = vmem.read_port(), vmem.write_port()
        c_r, c_w = cmem.read_port(), cmem.write_port()
        s_r, s_w = smem.read_port(), smem.write_port()
        b_r = bmem.read_port()
        # the SRU highway x_t (G = 3: input size = hidden size): read beside the passes, a port of its own
        self.highway = cfg.cell == "sru" and any(len(cfg.layer_gates(lyr)) == 3 for lyr in range(self.L))
        self.v_x = vmem.read_port() if self.highway else None
        if self.batched:
            # the pass buffer: two halves of a pass's blocks, a block's k weights a word (the rotating register
            # loads a word at a block's first column)
            m.submodules.pass_buffer = pmem = memory.Memory(
                shape=unsigned(self.k * self.ws), depth=2 * self.njmax, init=[], attrs=block
            )
            self.p_r, self.p_w = pmem.read_port(), pmem.write_port()
        self.in_fifo, self.out_fifo, self.bmem = in_fifo, out_fifo, bmem
        self.v_r, self.v_w, self.c_r, self.c_w, self.s_r, self.s_w, self.b_r = v_r, v_w, c_r, c_w, s_r, s_w, b_r

    # ------------------------------------------------------------ weight bank
    def _weight_bank(self) -> None:
        """The weight bank (:class:`~rnnaccel.hw.datapath.WeightBank`), ``pack`` weights a word: one address
        for reads and writes, ROM when the weights are baked in, SB_SPRAM256KA primitives on iCE40."""
        image = self.image
        init = image.weight_banks[0][0] if image is not None else None
        bank = WeightBank(self.m, self.cfg, self.platform, "weights", self.wdepth, init)
        # the fetch address and read, the IDLE state's write select, address and data; the read word
        self.w_addr, self.w_rd, self.w_data = bank.rd_addr, bank.rd_en, bank.data
        self.w_sel, self.w_waddr, self.w_wdata = bank.wr_en, bank.wr_addr, bank.wr_data
        self.bank = bank

    def _weight_request(self) -> None:
        """Streamed weights: the time step's read request on ``o_wstart`` (address 0, the step's
        :attr:`SerialAccelerator.stream_words`), raised when a step starts (IDLE) and held until taken."""
        m, top = self.m, self.top
        pending = Signal(name="wstart_pending")
        m.d.comb += [
            top.o_wstart.valid.eq(pending),
            top.o_wstart.payload.addr.eq(0),
            top.o_wstart.payload.count.eq(top.stream_words),
        ]
        with m.If(top.o_wstart.ready):
            m.d.sync += pending.eq(0)
        self.wstart_pending = pending

    def _gate_units(self) -> None:
        """The gate units, one per distinct gate count (``gate_units[G]``)."""
        cfg = self.cfg
        gate_units = {}
        for layer in range(self.L):
            g_n = len(cfg.layer_gates(layer))
            if g_n not in gate_units:
                gate_units[g_n] = gu = GateUnit(cfg, layer=layer, phase="update")
                self.m.submodules[f"gate_{g_n}"] = gu
        self.gate_units = gate_units

    # ------------------------------------------------------------ weight fetch -> shadow register
    def _weight_fetch(self) -> None:
        """The shadow register (the next block's vector, ``pack`` weights shifted in per read) and the
        fetch walker: the block whose words are being read, one block ahead of the lanes."""
        m, k, pack, kp, S, L, wdepth = self.m, self.k, self.pack, self.kp, self.S, self.L, self.wdepth
        ws, words = self.ws, self.bank.words
        shadow = [Signal(signed(ws), name=f"shadow{t}") for t in range(k)]
        w_valid = Signal(name="weight_valid")
        m.d.sync += w_valid.eq(self.w_rd)
        with m.If(w_valid):
            for t in range(k - pack):
                m.d.sync += shadow[t].eq(shadow[t + pack])
            for q in range(pack):
                m.d.sync += shadow[k - pack + q].eq(words[q].as_signed())

        f_n = Signal(range(kp), name="fetch_word")
        f_j = Signal(range(max(self.nj(layer) for layer in range(L)) + 1), name="fetch_col")
        f_s = Signal(range(S), name="fetch_group")
        f_rb = Signal(range(wdepth + 1), name="fetch_row_base")  # packed base of (i, g)
        f_ba = Signal(range(wdepth + 1), name="fetch_block_base")
        off = Signal(range(kp), name="fetch_offset")
        m.d.comb += off.eq((f_s * (self.Ln // pack) + f_n) % kp if kp > 1 else 0)
        m.d.comb += self.w_addr.eq(f_ba + off)
        self.shadow = shadow
        self.f_n, self.f_j, self.f_s, self.f_rb, self.f_ba = f_n, f_j, f_s, f_rb, f_ba

    def _weight_stream(self) -> None:
        """Streamed weights: ``i_w``'s words (``pack`` weights a word, in the fetch walker's order:
        :func:`rnnaccel.layout.image.weight_stream_addresses`) are taken while the phase wants them
        (``weight_want``), the next block's vector is not complete (``fetch_count < kp``, or the block before is
        handed to the lanes this cycle: ``weight_handoff``, a block's first issue) and the layer has words left
        (``fetch_left``). A word taken is registered (``weight_word``) and shifted into the shadow register a
        cycle later, as a bank read is: the lanes' rotating register loads the shadow the cycle after a block's
        first issue, before the next block's first word arrives, so the next block's words are taken from the
        first issue on and a stream of a word a cycle keeps up with the lanes."""
        m, k, pack, kp, ws = self.m, self.k, self.pack, self.kp, self.ws
        top = self.top
        shadow = [Signal(signed(ws), name=f"shadow{t}") for t in range(k)]
        most = max(weight_stream_layer_words(self.cfg, layer) for layer in range(self.L))
        f_cnt = Signal(range(kp + 1), name="fetch_count")
        f_left = Signal(range(most + 1), name="fetch_left")
        want, handoff, take = Signal(name="weight_want"), Signal(name="weight_handoff"), Signal(name="weight_take")
        m.d.comb += [
            top.i_w.ready.eq(want & ((f_cnt != kp) | handoff) & (f_left != 0)),
            take.eq(top.i_w.valid & top.i_w.ready),
        ]
        w_valid = Signal(name="weight_valid")
        w_word = Signal.like(top.i_w.payload, name="weight_word")
        m.d.sync += w_valid.eq(take)
        with m.If(take):
            m.d.sync += [w_word.eq(top.i_w.payload), f_left.eq(f_left - 1)]
        with m.If(w_valid):
            for t in range(k - pack):
                m.d.sync += shadow[t].eq(shadow[t + pack])
            for q in range(pack):
                m.d.sync += shadow[k - pack + q].eq(w_word[q * ws : (q + 1) * ws].as_signed())
        with m.If(handoff):
            m.d.sync += f_cnt.eq(take)
        with m.Elif(take):
            m.d.sync += f_cnt.eq(f_cnt + 1)
        self.shadow, self.f_cnt, self.f_left, self.w_want, self.w_handoff = shadow, f_cnt, f_left, want, handoff

    def _weight_fill(self) -> None:
        """Batched steps (``time_steps > 1``): ``i_w``'s words gathered into a block's vector (``shadow``, ``kp``
        words, ``fill_count`` of them in) and written to the pass buffer, a block a word, at
        ``fill_half * njmax + fill_block``; a pass's last block marks its half full (``pass_full``), and the
        lanes mark it free after the pass's last step. A complete vector is written once its half is free; a
        word is taken when the vector has room or is written in the same cycle (the write reads the vector
        before the word shifts in), while the phase wants words (``weight_want``) and the layer has words left."""
        m, k, pack, kp, ws, top, njmax = self.m, self.k, self.pack, self.kp, self.ws, self.top, self.njmax
        shadow = [Signal(signed(ws), name=f"shadow{t}") for t in range(k)]
        most = max(weight_stream_layer_words(self.cfg, layer) for layer in range(self.L))
        f_cnt = Signal(range(kp + 1), name="fill_count")
        f_left = Signal(range(most + 1), name="fetch_left")
        f_j = Signal(range(njmax), name="fill_block")
        f_nj = Signal(range(njmax + 1), name="fill_blocks")  # the layer's blocks per pass
        f_half = Signal(name="fill_half")
        full = [Signal(name=f"pass_full{h}") for h in range(2)]
        want, take, wr = Signal(name="weight_want"), Signal(name="weight_take"), Signal(name="fill_write")
        free = ~Mux(f_half, full[1], full[0])
        m.d.comb += [
            wr.eq((f_cnt == kp) & free),
            top.i_w.ready.eq(want & ((f_cnt != kp) | free) & (f_left != 0)),
            take.eq(top.i_w.valid & top.i_w.ready),
        ]
        with m.If(take):
            m.d.sync += f_left.eq(f_left - 1)
            for t in range(k - pack):
                m.d.sync += shadow[t].eq(shadow[t + pack])
            for q in range(pack):
                m.d.sync += shadow[k - pack + q].eq(top.i_w.payload[q * ws : (q + 1) * ws].as_signed())
        m.d.sync += f_cnt.eq(Mux(wr, 0, f_cnt) + take)
        m.d.comb += [
            self.p_w.addr.eq(f_half * njmax + f_j),
            self.p_w.data.eq(Cat(*(w.as_unsigned() for w in shadow))),
            self.p_w.en.eq(wr),
        ]
        with m.If(wr):
            m.d.sync += f_j.eq(f_j + 1)
            with m.If(f_j == f_nj - 1):
                m.d.sync += [f_j.eq(0), f_half.eq(~f_half)]
                with m.If(f_half):
                    m.d.sync += full[1].eq(1)
                with m.Else():
                    m.d.sync += full[0].eq(1)
        self.shadow, self.f_cnt, self.f_left, self.w_want = shadow, f_cnt, f_left, want
        self.f_j, self.f_nj, self.f_half, self.pass_full = f_j, f_nj, f_half, full

    def fetch_step(self, layer):
        """One fetch read this cycle (``w_rd`` set by the caller); advance the walker."""
        m, kp, S = self.m, self.kp, self.S
        f_n, f_j, f_s, f_rb, f_ba = self.f_n, self.f_j, self.f_s, self.f_rb, self.f_ba
        n_j = self.nj(layer)
        nj_last = self.p(f"nj_last{layer}", n_j - 1)
        row_words = self.p(f"row_words{layer}", n_j * kp)
        m.d.sync += f_n.eq(f_n + 1)
        with m.If(f_n == kp - 1):
            m.d.sync += [f_n.eq(0), f_j.eq(f_j + 1), f_ba.eq(f_ba + kp)]
            with m.If(f_j == nj_last):
                m.d.sync += [f_j.eq(0), f_s.eq(f_s + 1), f_ba.eq(f_rb)]
                with m.If(f_s == S - 1):
                    m.d.sync += [f_s.eq(0), f_rb.eq(f_rb + row_words), f_ba.eq(f_rb + row_words)]

    # ------------------------------------------------------------ issue walker and lanes
    def _lanes(self) -> None:
        """The issue walker (stage 0: row, gate, row group, column of the pass) and the lanes: operands
        from the rotating register (stage 1, :class:`~rnnaccel.hw.pe.ColumnOperand` of weights), products
        (stage 2, one DSP per lane) and accumulators (stage 3) in a :class:`~rnnaccel.hw.pe.ProcessingElement`
        of ``lanes`` lanes; the pass's (row, gate, row group), latched at its last issue for the serializer."""
        m, k, Ln, S, L, shadow = self.m, self.k, self.Ln, self.S, self.L, self.shadow
        i_row = Signal(range(self.R + 1), name="row")
        i_g = Signal(range(self.gmax), name="gate")
        i_s = Signal(range(S), name="group")
        pcnt = Signal(range(max(self.nj(layer) for layer in range(L)) * k + 1), name="pass_cycle")
        va = Signal(range(self.vwords + 1), name="vec_addr")
        issue = Signal(name="issue")
        first0, last0 = Signal(), Signal()
        c0 = Signal(range(k))
        m.d.comb += c0.eq(pcnt % k)

        # stage 1: operands: the rotating weight register (loaded from the shadow register at a block's
        # first column) and the vector word, broadcast
        v1, first1, last1, load1 = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(issue), first1.eq(first0), last1.eq(last0), load1.eq(issue & (c0 == 0))]
        m.submodules.weight_rot = rot = ColumnOperand(self.cfg, width=self.ws)
        m.d.comb += [rot.i_valid.eq(v1), rot.i_load.eq(load1)]
        i_t = l_half = None
        if self.batched:
            i_t = Signal(range(self.T), name="step")  # the step of the batch a pass runs for
            l_half = Signal(name="pass_half")  # the pass buffer half the lanes read
            # the block's vector from the pass buffer, read at its first column's issue (stage 0)
            p_r, ws = self.p_r, self.ws
            m.d.comb += [
                p_r.addr.eq(l_half * self.njmax + (pcnt >> (k.bit_length() - 1))),
                p_r.en.eq(issue & (c0 == 0)),
            ]
            m.d.comb += [rot.i_seg[t].eq(p_r.data[t * ws : (t + 1) * ws].as_signed()) for t in range(k)]
        else:
            m.d.comb += [rot.i_seg[t].eq(shadow[t]) for t in range(k)]

        # stages 2 and 3: products (one DSP per lane) and accumulators
        m.submodules.lanes = pe = ProcessingElement(self.cfg, lanes=Ln, per_lane_weights=True, broadcast_x=True)
        m.d.comb += [pe.en.eq(1), pe.i_valid.eq(v1), pe.i_first.eq(first1), pe.i_last.eq(last1)]
        m.d.comb += [pe.i_x.eq(self.v_r.data)] + [pe.i_w[lane].eq(rot.o_x[lane]) for lane in range(Ln)]

        # the pass's (row, gate, row group), latched at its last issue and used when its sums are done
        pend_g = Signal.like(i_g)
        pend_s = Signal.like(i_s)
        pend_row = Signal.like(i_row)
        pend_t = Signal.like(i_t) if self.batched else None
        with m.If(issue & last0):
            m.d.sync += [pend_g.eq(i_g), pend_s.eq(i_s), pend_row.eq(i_row)]
            if self.batched:
                m.d.sync += pend_t.eq(i_t)
        self.i_row, self.i_g, self.i_s, self.pcnt, self.va, self.issue = i_row, i_g, i_s, pcnt, va, issue
        self.first0, self.last0, self.c0 = first0, last0, c0
        self.pe, self.pend_g, self.pend_s, self.pend_row = pe, pend_g, pend_s, pend_row
        self.i_t, self.l_half, self.pend_t = i_t, l_half, pend_t

    # ------------------------------------------------------------ serializer, bias, narrow -> scratch
    def _serializer(self) -> None:
        """A pass's ``lanes`` sums, one a cycle (:class:`~rnnaccel.hw.datapath.Serializer`): the fused bias word
        added, narrowed once to ``q_pre`` (:class:`~rnnaccel.hw.datapath.BiasNarrow`), written to scratch word
        ``(tile row mod 2) * gmax * k + gate * k + row``; ``scratch_written`` counts the writes not yet taken
        by the gate unit (a row's ``G * k`` are taken when its gate phase starts)."""
        cfg, m, k, Ln, Hp, gmax, pe = self.cfg, self.m, self.k, self.Ln, self.Hp, self.gmax, self.pe
        b_r, s_w = self.b_r, self.s_w
        m.submodules.serializer = ser = Serializer(Ln, signed(self.acc_w), range(k + 1))
        ser_g = Signal.like(self.i_g)
        ser_row = Signal.like(self.i_row)  # the pass's tile row (the lanes may be a row ahead of the gates)
        ser_t = Signal.like(self.i_t) if self.batched else None  # the pass's step of the batch
        m.d.comb += [ser.i_load.eq(pe.o_last), ser.i_pos.eq(self.pend_s * Ln)]
        m.d.comb += [ser.i_items[lane].eq(pe.o_acc[lane]) for lane in range(Ln)]
        with m.If(pe.o_last):
            m.d.sync += [ser_g.eq(self.pend_g), ser_row.eq(self.pend_row)]
            if self.batched:
                m.d.sync += ser_t.eq(self.pend_t)
        half = self.T * gmax * k  # a scratch half: a tile row's G * k pre-activations of every step
        ser_pos = ser.o_pos  # row inside the tile row
        bias_base = Signal(range(self.bdepth + 1))  # this layer's first bias word
        if self.runtime:  # g * hp for the gate of the pass (gmax <= 4: shifts and an add, no multiplier)
            hp = self.prm["hp"]
            g_off = Array([Const(0, 1), hp, hp << 1, (hp << 1) + hp][:gmax])[ser_g]
        else:
            g_off = ser_g * Hp
        m.d.comb += [b_r.addr.eq(bias_base + g_off + ser_row * k + ser_pos), b_r.en.eq(ser.o_valid)]
        m.submodules.bias_narrow = bn = BiasNarrow(cfg, 1, cfg.bias_width, range(2 * half))
        tag = ser_row[0] * half + ser_g * k + ser_pos
        if self.batched:
            tag = tag + ser_t * (gmax * k)
        m.d.comb += [
            bn.i_valid.eq(ser.o_valid),
            bn.i_sums[0].eq(ser.o_item),
            bn.i_tag.eq(tag),
            bn.i_bias.eq(b_r.data),
        ]
        written = Signal(range(2 * half + 1), name="scratch_written")
        m.d.comb += [s_w.addr.eq(bn.o_tag), s_w.data.eq(bn.o_data[0]), s_w.en.eq(bn.o_valid)]
        with m.If(bn.o_valid):
            m.d.sync += written.eq(written + 1)
        self.bias_base, self.written, self.bn = bias_base, written, bn

    # ------------------------------------------------------------ gate phase of a tile row
    def _gate_inputs(self) -> None:
        """The gate phase's inputs: scratch read at ``(gate_row mod 2) * gmax * k + gate_sub * k +
        gate_element``, the first G - 1 gates of an element held in ``gate_pre*`` until the last is read, and
        the cell-state read; ``c_base`` (the layer's first cell-state word), ``gate_row`` (the row being read;
        rows whose reads are done), ``gate_out_row`` and ``gate_out_element`` (outputs written) for the gate
        phase (:meth:`_gate_engine`)."""
        m, k, L, Hp, gmax, pw = self.m, self.k, self.L, self.Hp, self.gmax, self.pw
        s_r = self.s_r
        g_el = Signal(range(k + 1), name="gate_element")
        g_sub = Signal(range(max(2, gmax)), name="gate_sub")
        g_row = Signal(range(self.R + 1), name="gate_row")
        rd_sub = Signal.like(g_sub)
        m.d.sync += rd_sub.eq(g_sub)
        half = self.T * gmax * k
        s_addr = g_row[0] * half + g_sub * k + g_el
        if self.batched:
            self.g_t, self.o_t = Signal(range(self.T), name="gate_step"), Signal(range(self.T), name="gate_out_step")
            # elements in the gate unit (a step's reads of a row start once the step before is written: its c)
            self.g_flight = Signal(range(2 * k + 64), name="gate_in_flight")
            s_addr = s_addr + self.g_t * (gmax * k)
        m.d.comb += s_r.addr.eq(s_addr)
        col = [Signal(signed(pw), name=f"gate_pre{g}") for g in range(gmax - 1)]
        for g in range(gmax - 1):
            with m.If(rd_sub == g):
                m.d.sync += col[g].eq(s_r.data)
        c_base = Signal(range(L * Hp + 1))
        for g_n, gu in self.gate_units.items():
            for g in range(g_n):
                pre = s_r.data if g == g_n - 1 else Mux(rd_sub == g, s_r.data, col[g])
                m.d.comb += [gu.i_xp[g].eq(pre), gu.i_hp[g].eq(0)]
            i_x = self.v_x.data if self.highway else 0
            m.d.comb += [gu.i_c.eq(self.c_r.data), gu.i_h.eq(0), gu.i_x.eq(i_x), gu.en.eq(1)]
        o_el = Signal(range(k + 1), name="gate_out_element")
        o_row = Signal(range(self.R + 1), name="gate_out_row")
        self.g_el, self.g_sub, self.c_base, self.o_el = g_el, g_sub, c_base, o_el
        self.g_row, self.o_row = g_row, o_row
        # mac_lead = row - gate_row in a mac phase, kept as a register (timing: the issue's hold compares it
        # with 2 instead of comparing the two row counters through an adder); phase entry clears it
        self.lead = lead = Signal(range(self.R + 2), name="mac_lead")
        self.i_row_inc, self.g_row_inc = Signal(name="mac_row_inc"), Signal(name="gate_row_inc")
        m.d.sync += lead.eq(lead + self.i_row_inc - self.g_row_inc)

    # ------------------------------------------------------------ status, counters, phase entry
    def _status(self) -> None:
        """Status and counters (:class:`SequencerBase`); the element counter of CLEAR, load and copy and the
        copy phase's write a cycle behind its read (``cp_v``, ``cp_a``)."""
        busy, waiting, error, clearing = Signal(), Signal(), Signal(), Signal()
        self.top._status_and_counters(self.m, busy, waiting, error, clearing)

        e_cnt = Signal(range(max(self.vwords, self.L * self.Hp, self.cfg.input_size, self.H) + 2))
        cp_v = Signal()
        cp_a = Signal(range(self.vwords + 1))
        self.busy, self.waiting, self.error, self.clearing = busy, waiting, error, clearing
        self.e_cnt, self.cp_v, self.cp_a = e_cnt, cp_v, cp_a
        if self.batched:
            # the batch's steps (the load counts them) and the step a load or push phase is at
            self.batch = Signal(range(self.T + 1), name="batch")
            self.b_t = Signal(range(self.T), name="batch_step")
            self.b_base = Signal(range(self.vwords + 1), name="batch_base")
            self.prev_batch = Signal(range(self.T + 1), name="prev_batch")  # the batch before (window carry)

    def _program_states(self) -> None:
        """The states of the program's phases, each behind its entry state (``entry_name``), which runs the
        phase's :meth:`enter` statements (timing: the counters and walkers a phase sets up are loaded in a
        state of their own, not under the compares that end the phase before; one cycle per phase)."""
        m = self.m
        for i, phase in enumerate(self.prog):
            with m.State(self.entry_name(i)):
                m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1)]
                m.d.sync += self.enter(i)
                m.next = self.state_name(i)
            nxt = self.entry_name(i + 1)
            kind = phase[0]
            if kind == "load":
                self._load_phase(i, nxt)
            elif kind == "wait_out":
                self._wait_out_phase(i, nxt)
            elif kind == "copy":
                self._copy_phase(i, phase[1], nxt)
            elif kind == "shift":
                self._shift_phase(i, phase[1], nxt)
            elif kind == "push":
                self._push_phase(i, nxt)
            elif kind in ("carry", "chain"):
                self._window_phase(i, kind, phase[1], nxt)
            else:
                self._mac_phase(i, phase[1], nxt)

    def entry_name(self, i):
        """The entry state of phase i (``STEP_DONE`` after the last)."""
        return f"E{self.state_name(i)}" if i < len(self.prog) else "STEP_DONE"

    def state_name(self, i):
        """The FSM state of phase i (a mac phase's first state, FILL; the others add a suffix)."""
        return f"P{i}_{'_'.join(str(a) for a in self.prog[i])}"

    def enter(self, i):
        """Statements on entering phase i (counters and walkers)."""
        prog = self.prog
        if i >= len(prog):
            return []
        kind = prog[i][0]
        if kind in ("load", "copy", "wait_out", "shift", "push", "carry", "chain"):
            batch = [self.b_t.eq(0), self.b_base.eq(0)] if self.batched else []
            return [self.e_cnt.eq(0), self.cp_v.eq(0), *batch]
        layer = prog[i][1]
        wb, bb = self.bases[layer]
        pack = self.pack
        if self.batched:
            fetch = [
                self.f_cnt.eq(0),
                self.f_left.eq(weight_stream_layer_words(self.cfg, layer)),
                self.f_j.eq(0),
                self.f_nj.eq(self.nj(layer)),
                self.f_half.eq(0),
                self.pass_full[0].eq(0),
                self.pass_full[1].eq(0),
                self.l_half.eq(0),
                self.i_t.eq(0),
                self.g_t.eq(0),
                self.o_t.eq(0),
                self.g_flight.eq(0),
            ]
        elif self.streamed:
            fetch = [self.f_cnt.eq(0), self.f_left.eq(weight_stream_layer_words(self.cfg, layer))]
        else:
            wbase = self.p(f"wbase{layer}", wb // pack)
            fetch = [self.f_n.eq(0), self.f_j.eq(0), self.f_s.eq(0), self.f_rb.eq(wbase), self.f_ba.eq(wbase)]
        return [
            self.e_cnt.eq(0),
            *fetch,
            self.i_row.eq(0),
            self.i_g.eq(0),
            self.i_s.eq(0),
            self.pcnt.eq(0),
            self.va.eq(self.slot_word(self.src_slot(layer))),
            self.bias_base.eq(self.p(f"bbase{layer}", bb)),
            self.c_base.eq(self.p(f"c_base{layer}", layer * self.Hp)),
            self.written.eq(0),
            self.g_el.eq(self.k),  # no row being read
            self.g_sub.eq(0),
            self.g_row.eq(0),
            self.lead.eq(0),
            self.o_el.eq(0),
            self.o_row.eq(0),
        ]

    # ------------------------------------------------------------ IDLE and CLEAR
    def _idle_state(self) -> None:
        """IDLE: decode a command (writes to the vector, cell-state, weight and bias memories; RESET_STATE
        goes to CLEAR), or start a step when the input FIFO has a word."""
        cfg, m, top, k, xs, L, Hp = self.cfg, self.m, self.top, self.k, self.xs, self.L, self.Hp
        v_w, c_w, error, mem_word = self.v_w, self.c_w, self.error, self.mem_word
        cmd = top.i_cmd.payload
        with m.State("IDLE"):
            m.d.comb += top.i_cmd.ready.eq(1)
            with m.If(top.i_cmd.valid):
                with m.Switch(cmd.op):
                    with m.Case(Op.NOP):
                        pass
                    with m.Case(Op.RESET_STATE):
                        m.d.sync += self.e_cnt.eq(0)
                        m.next = "CLEAR"
                    with m.Case(Op.WRITE_VEC):
                        ok = (cmd.sel < k) & (cmd.addr < self.vrows)
                        m.d.comb += [
                            v_w.addr.eq(cmd.addr * k + cmd.sel[: max(1, (k - 1).bit_length())]),
                            v_w.data.eq(cmd.data[:xs]),
                            v_w.en.eq(ok),
                        ]
                        with m.If(~ok):
                            m.d.sync += error.eq(1)
                    with m.Case(Op.WRITE_C):
                        ok = cmd.addr < L * Hp
                        m.d.comb += [c_w.addr.eq(cmd.addr), c_w.data.eq(cmd.data[: self.cs]), c_w.en.eq(ok)]
                        with m.If(~ok):
                            m.d.sync += error.eq(1)
                    with m.Case(Op.WRITE_WEIGHT):
                        if cfg.weights_in_rom:
                            m.d.sync += error.eq(1)
                        else:
                            to_w = (cmd.sel == 0) & (cmd.addr < self.wdepth)
                            to_b = (cmd.sel == 1) & (cmd.addr < self.bdepth)
                            bw = self.bmem.write_port()
                            m.d.comb += [
                                self.w_sel.eq(to_w),
                                self.w_waddr.eq(cmd.addr),
                                self.w_wdata.eq(cmd.data[:mem_word]),
                                bw.addr.eq(cmd.addr),
                                bw.data.eq(cmd.data[: self.bias_bits]),
                                bw.en.eq(to_b),
                            ]
                            with m.If(~(to_w | to_b)):
                                m.d.sync += error.eq(1)
                    top._set_param_command(m, self.prm, cmd, error)
                    top._common_commands(m, error)
            with m.Elif(self.in_fifo.r_rdy):
                m.next = self.entry_name(0)
                if self.streamed:
                    m.d.sync += self.wstart_pending.eq(1)

    def _clear_state(self) -> None:
        """CLEAR: zero the vector and cell-state memories, a word of each a cycle."""
        m, e_cnt, v_w, c_w, vwords, LHp = self.m, self.e_cnt, self.v_w, self.c_w, self.vwords, self.L * self.Hp
        with m.State("CLEAR"):
            m.d.comb += [self.busy.eq(1), self.clearing.eq(1), self.top.phase.eq(PHASE_CLEAR)]
            m.d.comb += [
                v_w.addr.eq(e_cnt),
                v_w.data.eq(0),
                v_w.en.eq(e_cnt < vwords),
                c_w.addr.eq(e_cnt),
                c_w.data.eq(0),
                c_w.en.eq(e_cnt < LHp),
            ]
            m.d.sync += e_cnt.eq(e_cnt + 1)
            if self.batched:
                m.d.sync += self.prev_batch.eq(0)  # no step before: the window's x_{t-1} is zero
            with m.If(e_cnt >= max(vwords, LHp) - 1):
                m.next = "IDLE"

    # ------------------------------------------------------------ phases
    def _load_phase(self, i, nxt) -> None:
        """load: the step's inputs from the input FIFO into slot x0.

        Batched steps: the step's inputs into its own vector of x0; after its last word the next step joins
        the batch if its first word is in the FIFO, or arrives within :data:`BATCH_GAP` cycles (a host that
        feeds slower than a word a cycle, such as the host link's walker, still fills its batches; the gap
        counts as waiting), up to T steps."""
        m, e_cnt, v_w, in_fifo = self.m, self.e_cnt, self.v_w, self.in_fifo
        base = self.word_base["x0"] + (self.b_base if self.batched else 0)
        between = Signal(name="batch_between") if self.batched else None  # waiting for the next step's first word
        with m.State(self.state_name(i)):
            m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1)]
            take = in_fifo.r_rdy & ~between if self.batched else in_fifo.r_rdy
            m.d.comb += [
                in_fifo.r_en.eq(~between if self.batched else 1),
                self.waiting.eq(~in_fifo.r_rdy),
                v_w.addr.eq(base + e_cnt),
                v_w.data.eq(in_fifo.r_data.as_signed()),
                v_w.en.eq(take),
            ]
            if self.batched:
                b_t, gap = self.b_t, Signal(range(BATCH_GAP + 1), name="batch_gap")
                next_step = [e_cnt.eq(0), b_t.eq(b_t + 1), self.b_base.eq(self.b_base + self.stride["x0"])]
                with m.If(between):
                    with m.If(in_fifo.r_rdy):
                        m.d.sync += [between.eq(0), *next_step]
                    with m.Elif(gap == BATCH_GAP - 1):
                        m.d.sync += between.eq(0)
                        m.next = nxt
                    with m.Else():
                        m.d.sync += gap.eq(gap + 1)
            with m.If(take):
                m.d.sync += e_cnt.eq(e_cnt + 1)
                with m.If(e_cnt == self.p("input_size", self.cfg.input_size) - 1):
                    if self.batched:
                        m.d.sync += self.batch.eq(b_t + 1)
                        with m.If(b_t == self.T - 1):
                            m.next = nxt
                        with m.Elif(in_fifo.level >= 2):  # the next step's first word is there
                            m.d.sync += next_step
                        with m.Else():
                            m.d.sync += [between.eq(1), gap.eq(0)]
                    else:
                        m.next = nxt

    def _wait_out_phase(self, i, nxt) -> None:
        """wait_out: until the output FIFO is empty (room for the last layer's copy to push H words). With
        run-time dimensions every layer has one (``("wait_out", layer)``), which holds in the model's last layer
        only; there a window-2 QRNN's shift of the layer's h (for a next layer the model does not have) is
        skipped."""
        m = self.m
        with m.State(self.state_name(i)):
            wait, go = ~self.out_empty, self.out_empty
            holds = None
            if len(self.prog[i]) > 1:
                holds = self.is_last_layer(self.prog[i][1])
                wait, go = holds & wait, ~holds | go
            m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1), self.waiting.eq(wait)]
            with m.If(go):
                if holds is not None and i + 1 < len(self.prog) and self.prog[i + 1][0] == "shift":
                    with m.If(holds):
                        m.next = self.entry_name(i + 2)  # the copy
                    with m.Else():
                        m.next = nxt
                else:
                    m.next = nxt

    def _copy_phase(self, i, layer, nxt) -> None:
        """copy: slot hn to the layer's h slot (and, for the model's last layer, to the output stream; with
        run-time dimensions the step then ends)."""
        src, dst = self.slot_word("hn"), self.slot_word(f"h{layer}")
        last = self.is_last_layer(layer)
        end = last if self.runtime and layer < self.L - 1 else None
        self._move(i, f"copy{layer}", src, dst, self.p("hidden_size", self.H), last, nxt, end=end)

    def _shift_phase(self, i, slot, nxt) -> None:
        """shift (window-2 QRNN): a slot's first ``n`` words (x_t, or a layer's h_t) to words ``n ..`` (x_{t-1}
        of the next step's [x_t; x_{t-1}]); ``n`` the input size of the layer reading the slot."""
        n = self.p("input_size", self.cfg.input_size) if slot == "x0" else self.p("hidden_size", self.H)
        base = self.slot_word(slot)
        self._move(i, f"shift_{slot}", base, base + n, n, False, nxt)

    def _push_phase(self, i, nxt) -> None:
        """push (batched steps): the last layer's h of each step of the batch to the output stream, a step's H
        words once the output FIFO is empty (it holds one step), read in a cycle and pushed the next."""
        m, e_cnt, cp_v, b_t, b_base, out_fifo = self.m, self.e_cnt, self.cp_v, self.b_t, self.b_base, self.out_fifo
        wait, push = self.state_name(i), f"{self.state_name(i)}_OUT"
        with m.State(wait):
            m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1), self.waiting.eq(~self.out_empty)]
            with m.If(self.out_empty):
                m.next = push
        with m.State(push):
            m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1)]
            rd = Signal(name="push_rd")
            src = self.word_base[f"h{self.L - 1}"]
            m.d.comb += [rd.eq(e_cnt < self.H), self.v_r.addr.eq(src + b_base + e_cnt), self.v_r.en.eq(rd)]
            m.d.sync += cp_v.eq(rd)
            with m.If(rd):
                m.d.sync += e_cnt.eq(e_cnt + 1)
            m.d.comb += [out_fifo.w_data.eq(self.v_r.data), out_fifo.w_en.eq(cp_v)]
            with m.If(cp_v & ~rd):
                m.d.sync += [e_cnt.eq(0), b_t.eq(b_t + 1), b_base.eq(b_base + self.stride[f"h{self.L - 1}"])]
                with m.If(b_t == self.batch - 1):
                    m.d.sync += self.prev_batch.eq(self.batch)
                    m.next = nxt
                with m.Else():
                    m.next = wait

    def _window_phase(self, i, kind, slot, nxt) -> None:
        """carry / chain (batched window-2 QRNN): a step's first ``n`` words of ``slot`` (x_t, or a layer's h_t)
        to words ``n ..`` of the next step's vector (its x_{t-1} half). ``carry``: the previous batch's last step
        to step 0 (before the load or the layer writes step 0); ``chain``: step t - 1 to step t, t = 1 .. batch - 1.
        Element e read in a cycle and written the next, as :meth:`_move`."""
        m, e_cnt, cp_v, cp_a, b_t, b_base = self.m, self.e_cnt, self.cp_v, self.cp_a, self.b_t, self.b_base
        v_r, v_w = self.v_r, self.v_w
        n = self.cfg.input_size if slot == "x0" else self.H
        base, stride = self.word_base[slot], self.stride[slot]
        with m.State(self.state_name(i)):
            m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1)]
            if kind == "carry":
                # b_base: the previous batch's last step (none after a reset: every word is zero then)
                src = base + Mux(self.prev_batch == 0, 0, (self.prev_batch - 1) * stride)
                dst = base + n
            else:
                src, dst = base + b_base, base + b_base + stride + n
            rd = Signal(name=f"{kind}_{slot}_rd")
            more = (self.batch > 1) if kind == "chain" else 1
            m.d.comb += [rd.eq((e_cnt < n) & more), v_r.addr.eq(src + e_cnt), v_r.en.eq(rd)]
            m.d.sync += [cp_v.eq(rd), cp_a.eq(dst + e_cnt)]
            with m.If(rd):
                m.d.sync += e_cnt.eq(e_cnt + 1)
            m.d.comb += [v_w.addr.eq(cp_a), v_w.data.eq(v_r.data), v_w.en.eq(cp_v)]
            with m.If(~rd & ~cp_v):
                if kind == "carry":
                    m.next = nxt
                else:
                    # the next pair of steps, or done after steps batch - 2 -> batch - 1
                    with m.If(b_t + 2 >= self.batch):
                        m.next = nxt
                    with m.Else():
                        m.d.sync += [e_cnt.eq(0), b_t.eq(b_t + 1), b_base.eq(b_base + stride)]

    def _move(self, i, name, src, dst, n, push, nxt, *, end=None) -> None:
        """Phase i: vector words ``src ..`` to ``dst ..`` (``n`` of them; ``push``: to the output stream too),
        element e read in a cycle and written the next; then phase ``nxt``, or the step's end when ``end``
        (a signal) is set."""
        m, e_cnt, cp_v, cp_a = self.m, self.e_cnt, self.cp_v, self.cp_a
        v_r, v_w = self.v_r, self.v_w
        with m.State(self.state_name(i)):
            m.d.comb += [self.busy.eq(1), self.top.phase.eq(i + 1)]
            rd = Signal(name=f"{name}_rd")
            m.d.comb += [rd.eq(e_cnt < n), v_r.addr.eq(src + e_cnt), v_r.en.eq(rd)]
            m.d.sync += [cp_v.eq(rd), cp_a.eq(dst + e_cnt)]
            with m.If(rd):
                m.d.sync += e_cnt.eq(e_cnt + 1)
            m.d.comb += [v_w.addr.eq(cp_a), v_w.data.eq(v_r.data), v_w.en.eq(cp_v)]
            if push is not False:  # True, or a signal (run-time dimensions: the model's last layer)
                w_en = cp_v if push is True else cp_v & push
                m.d.comb += [self.out_fifo.w_data.eq(v_r.data), self.out_fifo.w_en.eq(w_en)]
            with m.If(cp_v & ~rd):
                if end is None:
                    m.next = nxt
                else:
                    with m.If(end):
                        m.next = self.entry_name(len(self.prog))
                    with m.Else():
                        m.next = nxt

    def _mac_phase(self, i, layer, nxt) -> None:
        """mac: a layer's passes and gate phases, states FILL (named as the phase), RUN, DRAIN.

        FILL fetches the first block's vector into the shadow register; RUN issues the passes of the tile
        rows back to back (one column a cycle, fetching the next block meanwhile); the gate phase of a row
        (:meth:`_gate_engine`) runs during the next row's passes, on the other scratch half. A row's first
        pass waits while the gate phase of the row two back has not read its half (never at the sizes of
        the presets: a row's passes take ``S * n_j`` times the ``G * k`` gate reads). DRAIN, after the last
        row's passes, waits for the last gate phase, then the next phase.
        """
        m, k, kp, S, busy, phase = self.m, self.k, self.kp, self.S, self.busy, self.top.phase
        pcnt, va, i_s, i_g, c0, i_row = self.pcnt, self.va, self.i_s, self.i_g, self.c0, self.i_row
        G, n_j = len(self.cfg.layer_gates(layer)), self.nj(layer)
        src_base = self.slot_word(self.src_slot(layer))
        pass_last = self.p(f"pass_last{layer}", n_j * k - 1)  # a pass's last column
        rows = self.p("rows", self.R)
        run, drain = (f"{self.state_name(i)}_{sub}" for sub in ("RUN", "DRAIN"))
        gate_on, done = Signal(name=f"gate{layer}_on"), Signal(name=f"gate{layer}_done")
        self.gate_jobs.append((layer, gate_on, done))
        with m.State(self.state_name(i)):
            # the first block's vector into the shadow register (kp reads, or kp stream words)
            m.d.comb += [busy.eq(1), phase.eq(i + 1)]
            if self.batched:  # the pass buffer: RUN waits for a pass's blocks
                m.d.comb += self.w_want.eq(1)
                m.next = run
            elif self.streamed:
                m.d.comb += self.w_want.eq(1)
                with m.If(self.f_cnt == kp):
                    m.next = run
            else:
                m.d.comb += self.w_rd.eq(1)
                self.fetch_step(layer)
                with m.If(self.f_n == kp - 1):
                    m.next = run
        with m.State(run):
            m.d.comb += [busy.eq(1), phase.eq(i + 1), gate_on.eq(1)]
            hold = Signal(name=f"mac{layer}_hold")
            lead_hold = (pcnt == 0) & (i_g == 0) & (i_s == 0) & (self.lead >= 2)  # row > gate_row + 1
            if self.batched:
                # a pass's first step waits for its blocks in the pass buffer (counted in ``cycles``)
                i_t, l_half, full = self.i_t, self.l_half, self.pass_full
                first = (pcnt == 0) & (i_t == 0)
                starved = Signal(name=f"mac{layer}_starved")
                m.d.comb += [starved.eq(first & ~Mux(l_half, full[1], full[0])), hold.eq((lead_hold & first) | starved)]
                m.d.comb += self.w_want.eq(1)
            elif self.streamed:
                # a block's first column waits for its vector (counted in ``cycles``: the step's own time, not
                # the host's); the stream fills the register meanwhile
                starved = Signal(name=f"mac{layer}_starved")
                m.d.comb += [starved.eq((c0 == 0) & (self.f_cnt != kp)), hold.eq(lead_hold | starved)]
                m.d.comb += [self.w_want.eq(1), self.w_handoff.eq(~hold & (c0 == 0))]
            else:
                m.d.comb += hold.eq(lead_hold)
            with m.If(~hold):
                m.d.comb += [
                    self.issue.eq(1),
                    self.first0.eq(pcnt == 0),
                    self.last0.eq(pcnt == pass_last),
                    self.v_r.addr.eq(va),
                    self.v_r.en.eq(1),
                ]
                if not self.streamed:  # streamed: weight_handoff at c0 == 0
                    # fetch the next block during this one's first kp cycles
                    with m.If(c0 < kp):
                        m.d.comb += self.w_rd.eq(1)
                        self.fetch_step(layer)
                m.d.sync += [pcnt.eq(pcnt + 1), va.eq(va + 1)]
                if self.batched:
                    # the pass again for the batch's next step (its input follows in the slot); after the last,
                    # the pass buffer half is free and the walker moves on
                    with m.If(pcnt == pass_last):
                        m.d.sync += pcnt.eq(0)
                        with m.If(i_t != self.batch - 1):
                            m.d.sync += i_t.eq(i_t + 1)
                        with m.Else():
                            m.d.sync += [i_t.eq(0), va.eq(src_base), l_half.eq(~l_half)]
                            with m.If(l_half):
                                m.d.sync += full[1].eq(0)
                            with m.Else():
                                m.d.sync += full[0].eq(0)
                    advance = (pcnt == pass_last) & (i_t == self.batch - 1)
                else:
                    advance = pcnt == pass_last
                with m.If(advance):
                    m.d.sync += [pcnt.eq(0), va.eq(src_base), i_s.eq(i_s + 1)]
                    with m.If(i_s == S - 1):
                        m.d.sync += [i_s.eq(0), i_g.eq(i_g + 1)]
                        with m.If(i_g == G - 1):
                            m.d.sync += [i_g.eq(0), i_row.eq(i_row + 1)]
                            m.d.comb += self.i_row_inc.eq(1)
                            with m.If(i_row == rows - 1):
                                m.next = drain
        with m.State(drain):
            m.d.comb += [busy.eq(1), phase.eq(i + 1), gate_on.eq(1)]
            with m.If(done):
                m.next = nxt

    def _gate_engine(self, layer, gate_on, done) -> None:
        """The gate phases of a mac phase (active with ``gate_on``: its RUN and DRAIN states), one tile
        row after the other, each when the row's ``G * k`` scratch words are written: G scratch reads per
        element (gate g at word ``(row mod 2) * gmax * k + g * k + element``), then the gate unit; new h
        to slot hn, new c (lstm, sru, qrnn) to the cell-state memory. ``done`` with the last row's last output.

        Batched steps (``time_steps > 1``): a row's gate phase starts once the ``batch * G * k`` words of all
        its steps are written and runs step by step (step t's words at ``t * gmax * k`` in the row's half), a
        step's reads once the step before has left the gate unit (its c is written); new h to the layer's h
        slot, step t's vector at ``t * Hp``."""
        cfg, m, k = self.cfg, self.m, self.k
        R = self.p("rows", self.R)
        g_el, g_sub, g_row, o_el, o_row, c_base = self.g_el, self.g_sub, self.g_row, self.o_el, self.o_row, self.c_base
        written = self.written
        G = len(cfg.layer_gates(layer))
        gu = self.gate_units[G]
        rd = Signal(name=f"gate{layer}_rd")
        last_sub = Signal(name=f"gate{layer}_last_sub")
        start = Signal(name=f"gate{layer}_start")
        v_gate = Signal(name=f"gate{layer}_valid")
        batched = self.batched
        if batched:
            g_t, o_t, flight = self.g_t, self.o_t, self.g_flight
            row_words = self.batch * (G * k)
            ready = Mux(g_t == 0, written >= row_words, flight == 0)
        else:
            row_words, ready = G * k, written >= G * k
        with m.If(gate_on):
            m.d.comb += [
                rd.eq(g_el < k),
                start.eq(~rd & (g_row < R) & ready),
                last_sub.eq(rd & (g_sub == G - 1)),
                self.s_r.en.eq(rd),
                self.c_r.addr.eq(c_base + g_row * k + g_el),
                self.c_r.en.eq(last_sub),
                gu.i_valid.eq(v_gate),
            ]
            if self.highway and G == 3:  # the element's x_t, the layer's input word, read with its c
                x_addr = self.slot_word(self.src_slot(layer)) + g_row * k + g_el
                if batched:
                    x_addr = x_addr + g_t * (self.nj(layer) * k)
                m.d.comb += [self.v_x.addr.eq(x_addr), self.v_x.en.eq(last_sub)]
            m.d.sync += v_gate.eq(last_sub)
            # a row's reads start: take its words from the count (a write may land in the same cycle)
            with m.If(start):
                m.d.sync += [g_el.eq(0), g_sub.eq(0)]
                if batched:
                    with m.If(g_t == 0):
                        m.d.sync += written.eq(written + self.bn.o_valid - row_words)
                else:
                    m.d.sync += written.eq(written + self.bn.o_valid - row_words)
            with m.If(rd):
                m.d.sync += g_sub.eq(g_sub + 1)
            with m.If(last_sub):
                m.d.sync += [g_sub.eq(0), g_el.eq(g_el + 1)]
                with m.If(g_el == k - 1):
                    if batched:
                        with m.If(g_t == self.batch - 1):
                            m.d.sync += [g_t.eq(0), g_row.eq(g_row + 1)]
                            m.d.comb += self.g_row_inc.eq(1)
                        with m.Else():
                            m.d.sync += g_t.eq(g_t + 1)
                    else:
                        m.d.sync += g_row.eq(g_row + 1)
                        m.d.comb += self.g_row_inc.eq(1)
            out_pos = o_row * k + o_el
            if batched:
                m.d.sync += flight.eq(flight + last_sub - gu.o_valid)
                h_addr = self.word_base[f"h{layer}"] + o_t * self.stride[f"h{layer}"] + out_pos
            else:
                h_addr = self.slot_word("hn") + out_pos
            # batched: h goes straight to the slot the next layer reads, so the padding rows stay zero
            h_en = gu.o_valid & (out_pos < self.H) if batched and self.H != self.Hp else gu.o_valid
            m.d.comb += [
                self.v_w.addr.eq(h_addr),
                self.v_w.data.eq(gu.o_h),
                self.v_w.en.eq(h_en),
            ]
            if cfg.cell != "rnn":  # lstm, sru, qrnn: a cell state
                m.d.comb += [self.c_w.addr.eq(c_base + out_pos), self.c_w.data.eq(gu.o_c), self.c_w.en.eq(gu.o_valid)]
            with m.If(gu.o_valid):
                m.d.sync += o_el.eq(o_el + 1)
                with m.If(o_el == k - 1):
                    if batched:
                        m.d.sync += [o_el.eq(0), o_t.eq(o_t + 1)]
                        with m.If(o_t == self.batch - 1):
                            m.d.sync += [o_t.eq(0), o_row.eq(o_row + 1)]
                            with m.If(o_row == R - 1):
                                m.d.comb += done.eq(1)
                    else:
                        m.d.sync += [o_el.eq(0), o_row.eq(o_row + 1)]
                        with m.If(o_row == R - 1):
                            m.d.comb += done.eq(1)

    def _mac_gate_state(self, i, layer, gate, run, nxt) -> None:
        """GATE of a mac phase of the FFT build (:class:`~rnnaccel.hw.serial_fft.SerialFFTBuild`, after its
        DRAIN; the direct build overlaps it with the next row's passes, :meth:`_gate_engine`): G scratch
        reads per element (gate g at word ``g * k + element``), then the gate unit; new h to slot hn, new c
        (lstm) to the cell-state memory."""
        cfg, m, k, busy = self.cfg, self.m, self.k, self.busy
        g_el, g_sub, o_el, i_row, c_base = self.g_el, self.g_sub, self.o_el, self.i_row, self.c_base
        G = len(cfg.layer_gates(layer))
        gu = self.gate_units[G]
        with m.State(gate):
            m.d.comb += [busy.eq(1), self.top.phase.eq(i + 1)]
            rd = Signal(name=f"gate{layer}_rd")
            last_sub = Signal(name=f"gate{layer}_last_sub")
            m.d.comb += [
                rd.eq(g_el < k),
                last_sub.eq(rd & (g_sub == G - 1)),
                self.s_r.en.eq(rd),
                self.c_r.addr.eq(c_base + i_row * k + g_el),
                self.c_r.en.eq(last_sub),
            ]
            v_gate = Signal(name=f"gate{layer}_valid")
            m.d.sync += v_gate.eq(last_sub)
            m.d.comb += gu.i_valid.eq(v_gate)
            with m.If(rd):
                m.d.sync += g_sub.eq(g_sub + 1)
            with m.If(last_sub):
                m.d.sync += [g_sub.eq(0), g_el.eq(g_el + 1)]
            out_pos = i_row * k + o_el
            m.d.comb += [
                self.v_w.addr.eq(self.word_base["hn"] + out_pos),
                self.v_w.data.eq(gu.o_h),
                self.v_w.en.eq(gu.o_valid),
            ]
            if cfg.cell != "rnn":  # lstm, sru, qrnn: a cell state
                m.d.comb += [self.c_w.addr.eq(c_base + out_pos), self.c_w.data.eq(gu.o_c), self.c_w.en.eq(gu.o_valid)]
            with m.If(gu.o_valid):
                m.d.sync += o_el.eq(o_el + 1)
                with m.If(o_el == k - 1):
                    m.d.sync += i_row.eq(i_row + 1)
                    with m.If(i_row == self.R - 1):
                        m.next = nxt
                    with m.Else():
                        m.next = run
