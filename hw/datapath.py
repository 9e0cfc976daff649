"""Blocks both datapaths build from: the weight bank, the serializer and the bias-add-and-narrow stage.

The array datapath (:class:`rnnaccel.hw.mvu.CirculantMVU`, one bank per PE, T-word output segments) and
the serial one (:class:`rnnaccel.hw.serial.SerialAccelerator`, one bank, one output word a cycle) build
these with their own sizes; the MAC lanes they share are :class:`rnnaccel.hw.pe.ProcessingElement` and
the rotating operand register :class:`rnnaccel.hw.pe.ColumnOperand`.

* :class:`WeightBank`: one weight memory, ``pack`` weights a word (:func:`rnnaccel.layout.image.bank_packing`),
  one address for reads and writes (a single-port RAM or SPRAM can hold it), ROM when the weights are
  baked in (its words from the design's :class:`rnnaccel.layout.image.MemoryImage`), SB_SPRAM256KA
  primitives where :func:`uses_spram_primitives` says so.
* :class:`Serializer`: takes ``n`` items at once and emits them one per cycle, with their positions.
* :class:`BiasNarrow`: adds the aligned bias to one or T sums and narrows them to ``q_pre``
  (:func:`rnnaccel.numeric.fixedpoint.hw_narrow`), two cycles.
"""

from __future__ import annotations

from amaranth.hdl import Array, ClockSignal, Const, Instance, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from ..numeric.fixedpoint import hw_narrow
from ..layout.image import bank_packing, bank_word_bits, weight_word_bits

__all__ = ["uses_spram_primitives", "spram_bank", "WeightBank", "Serializer", "BiasNarrow"]


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


class WeightBank:
    """One weight bank, built into module ``m`` as memory (or primitives) ``name``.

    A memory word holds ``pack`` weight words (:func:`rnnaccel.layout.image.bank_packing`; the first in
    the low bits), each :func:`rnnaccel.layout.image.weight_word_bits` wide. Reads and writes share one
    address, ``addr = wr_en ? wr_addr : rd_addr`` (writes happen only between steps, reads only while
    computing), so a single-port RAM holds the bank: ``ram_style`` ``huge`` (SPRAM) for
    ``weight_ram = huge``, else ``block``; SB_SPRAM256KA primitives where :func:`uses_spram_primitives`
    says so. With ``cfg.weights_in_rom`` the bank is a ROM of ``init`` (the bank's memory words from
    the design's :class:`rnnaccel.layout.image.MemoryImage`) and the write signals are unused.

    The caller drives ``rd_addr`` and ``rd_en`` (and ``wr_en``, ``wr_addr``, ``wr_data``); ``data`` is
    the memory word one cycle after the read, :attr:`words` its weight words, :meth:`select` one of them.
    """

    def __init__(self, m: Module, cfg: Config, platform, name: str, depth: int, init=None):
        self.pack, self.word_bits = bank_packing(cfg), weight_word_bits(cfg)
        mem_word = bank_word_bits(cfg)
        addr_range = range(max(2, depth))
        self.rd_addr = Signal(addr_range, name=f"{name}_rd_addr")
        self.rd_en = Signal(name=f"{name}_rd_en")
        self.wr_en = Signal(name=f"{name}_wsel")
        self.wr_addr = Signal(addr_range, name=f"{name}_wr_addr")
        self.wr_data = Signal(mem_word, name=f"{name}_wr_data")
        self.addr = addr = Signal(addr_range, name=f"{name}_addr")
        writable = not cfg.weights_in_rom
        m.d.comb += addr.eq(Mux(self.wr_en, self.wr_addr, self.rd_addr) if writable else self.rd_addr)
        if uses_spram_primitives(cfg, platform):
            self.data = spram_bank(m, name, depth, addr, self.wr_data[:16], self.wr_en)
            return
        if not writable and init is None:
            raise ValueError(f"weight bank {name}: a ROM needs its words (init)")
        m.submodules[name] = mem = memory.Memory(
            shape=unsigned(mem_word),
            depth=max(2, depth),
            init=list(init) if not writable else [],
            attrs={"ram_style": "huge" if cfg.weight_ram == "huge" else "block"},
        )
        rp = mem.read_port()
        m.d.comb += [rp.addr.eq(addr), rp.en.eq(self.rd_en)]
        if writable:
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(addr), wp.data.eq(self.wr_data), wp.en.eq(self.wr_en)]
        self.data = rp.data

    @property
    def words(self) -> list:
        """The ``pack`` weight words of :attr:`data`, the first in the low bits (unsigned slices)."""
        b = self.word_bits
        return [self.data[i * b : (i + 1) * b] for i in range(self.pack)]

    def select(self, sub):
        """Weight word ``sub`` of :attr:`data` (``sub`` is registered with the read); :attr:`data` if ``pack`` is 1."""
        return Array(self.words)[sub] if self.pack > 1 else self.data


class Serializer(wiring.Component):
    """Takes ``n`` items at once and emits them one per cycle, item 0 first.

    In a cycle with ``i_load`` the items and the position of item 0 are captured; in each following
    cycle ``o_valid`` is high with ``o_item`` (item 0, 1, ...) at position ``o_pos`` (``i_pos``, then one
    more per item) until the n items are out. A new ``i_load`` restarts it.

    Parameters
    ----------
    n : int
        Items per load (PE rows of the array, lanes of the serial datapath).
    item_shape : shape
        One item (T accumulators, or one).
    pos_shape : shape
        The position counter.
    """

    def __init__(self, n: int, item_shape, pos_shape):
        self._n = n
        self._item_shape = item_shape
        super().__init__(
            {
                "i_load": In(1),
                "i_items": In(data.ArrayLayout(item_shape, n)),
                "i_pos": In(pos_shape),
                "o_valid": Out(1),
                "o_item": Out(item_shape),
                "o_pos": Out(pos_shape),
            }
        )

    def elaborate(self, platform):
        m, n = Module(), self._n
        buf = [Signal(self._item_shape, name=f"item{i}") for i in range(n)]
        cnt = Signal(range(n + 1), name="count")
        with m.If(self.i_load):
            m.d.sync += [buf[i].eq(self.i_items[i]) for i in range(n)]
            m.d.sync += [cnt.eq(n), self.o_pos.eq(self.i_pos)]
        with m.Elif(cnt != 0):
            m.d.sync += [buf[i].eq(buf[i + 1]) for i in range(n - 1)]
            m.d.sync += [cnt.eq(cnt - 1), self.o_pos.eq(self.o_pos + 1)]
        m.d.comb += [self.o_valid.eq(cnt != 0), self.o_item.eq(buf[0])]
        return m


class BiasNarrow(wiring.Component):
    """Bias add and narrowing to ``q_pre`` of ``n`` accumulator sums (one or T), two cycles (three with the
    bias register).

    Cycle 0 (``i_valid``): the sums and ``i_tag`` are registered while the caller reads the bias word
    (its read port addressed in the same cycle). Cycle 1: the bias word arrives on ``i_bias`` (``n``
    values of ``bias_bits`` each, value 0 in the low bits), each value is aligned to the accumulator
    (``acc_frac - q_pre.frac`` bits up), added, narrowed with
    :func:`rnnaccel.numeric.fixedpoint.hw_narrow` and registered: ``o_valid``, ``o_tag``, ``o_data``.

    Parameters
    ----------
    cfg : Config
    n : int
        Sums per cycle.
    bias_bits : int
        Bits of one stored bias value (``q_pre.width``; ``cfg.bias_width`` for the fused ``b + c``).
    tag_shape : shape
        What travels with the sums (output segment, scratch address).
    acc_width, acc_frac : int or None
        Width and fraction bits of the sums: ``cfg.acc_width`` and ``cfg.acc_frac`` by default; the FFT
        datapath passes ``cfg.fft_out_width`` and ``cfg.fft_acc_frac`` (the inverse transform's output,
        :func:`rnnaccel.numeric.golden.fft_projection`).
    bias_register : bool
        Register the bias word (and the sums beside it) when it arrives, and add and narrow a cycle later:
        :attr:`latency` 3 instead of 2, and the memory's read data ends at a register (the array MVU's
        worst path on the ECP5 after issue 15's other registers).
    """

    #: Cycles from ``i_valid`` to ``o_valid`` (without the bias register).
    LATENCY = 2

    def __init__(
        self, cfg: Config, n: int, bias_bits: int, tag_shape, *, acc_width=None, acc_frac=None, bias_register=False
    ):
        self._cfg, self._n, self._bias_bits, self._tag_shape = cfg, n, bias_bits, tag_shape
        self._bias_register = bool(bias_register)
        self._acc_width = cfg.acc_width if acc_width is None else acc_width
        self._acc_frac = cfg.acc_frac if acc_frac is None else acc_frac
        super().__init__(
            {
                "i_valid": In(1),
                "i_sums": In(data.ArrayLayout(signed(self._acc_width), n)),
                "i_tag": In(tag_shape),
                "i_bias": In(n * bias_bits),
                "o_valid": Out(1),
                "o_tag": Out(tag_shape),
                "o_data": Out(data.ArrayLayout(signed(cfg.q_pre.width), n)),
            }
        )

    @property
    def latency(self) -> int:
        """:attr:`LATENCY`, plus one with the bias register."""
        return self.LATENCY + self._bias_register

    def elaborate(self, platform):
        cfg, n, bb = self._cfg, self._n, self._bias_bits
        m = Module()
        e1 = Signal(name="valid1")
        tag1 = Signal(self._tag_shape, name="tag1")
        acc_width, acc_frac = self._acc_width, self._acc_frac
        sum1 = [Signal(signed(acc_width), name=f"sum{r}") for r in range(n)]
        m.d.sync += [e1.eq(self.i_valid), tag1.eq(self.i_tag)]
        with m.If(self.i_valid):
            m.d.sync += [sum1[r].eq(self.i_sums[r]) for r in range(n)]
        bias = self.i_bias
        if self._bias_register:
            # cycle 1: the bias word arrives and is registered with the sums; the add is a cycle later
            e2 = Signal(name="valid2")
            tag2 = Signal(self._tag_shape, name="tag2")
            sum2 = [Signal(signed(acc_width), name=f"sum2_{r}") for r in range(n)]
            bias = Signal.like(self.i_bias, name="bias2")
            m.d.sync += [e2.eq(e1), tag2.eq(tag1)]
            with m.If(e1):
                m.d.sync += [bias.eq(self.i_bias)] + [sum2[r].eq(sum1[r]) for r in range(n)]
            e1, tag1, sum1 = e2, tag2, sum2
        m.d.sync += [self.o_valid.eq(e1), self.o_tag.eq(tag1)]
        shift = acc_frac - cfg.q_pre.frac
        with m.If(e1):
            for r in range(n):
                b = bias[r * bb : (r + 1) * bb].as_signed()
                m.d.sync += self.o_data[r].eq(hw_narrow(sum1[r] + (b << shift), acc_frac, cfg.q_pre))
        return m
