"""The building blocks of the MVU's PE array (Gemmini-style: lanes -> PE -> grid).

* :class:`ProcessingElement`: one PE, ``T = cfg.tile`` multiplier lanes, each
  with its own accumulator. A registered product, then an accumulate: latency 2.
  The serial datapath (:mod:`rnnaccel.hw.serial`) builds its row of lanes from
  it too (``lanes = cfg.lanes``, a weight per lane, the vector word broadcast).
* :class:`ColumnOperand`: the input register one PE column shares (and, with
  ``width = q_weight.width``, the serial datapath's rotating weight register). Circulant
  weights: a rotating register, lane ``r`` at cycle ``t`` of a tile holds
  ``x[(r - t) mod T]`` (:func:`rnnaccel.numeric.circulant.circulant_index`); dense
  weights: every lane gets ``x[t]``. Latency 0 (the operand of the current
  cycle is a multiplexer output, the register holds the next ones).
* :class:`RowReducer`: the pipelined adder tree summing the accumulators of the
  PEs of one PE row lane-wise into an output segment. One register level per
  halving: latency ``ceil(log2(n_inputs))`` (0 for one input, a pass-through).

The grid itself (``pe_rows x pe_cols`` of these, with weight banks, the
controller, the serializer and the bias add) is built by
:class:`rnnaccel.hw.mvu.CirculantMVU`. Each block's ``latency`` is what the
MVU's :func:`rnnaccel.hw.mvu.mvu_latency` adds up and what tests model delays
from.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, ResetSignal, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config

__all__ = ["ProcessingElement", "ColumnOperand", "RowReducer", "tree_latency", "uses_ecp5_dsp_registers"]

#: Operand bits of one ECP5 MULT18X18D port.
ECP5_MULT_WIDTH = 18


def uses_ecp5_dsp_registers(platform, *widths: int) -> bool:
    """A registered product becomes a MULT18X18D with its own output register: on an ECP5 platform, operands
    of at most 18 bits.

    Yosys maps ``*`` to a MULT18X18D with no registers and leaves the product register in the fabric, so
    every product pays the routing from the DSP back out to that register (with the way in, the array MVU's
    worst path on the ULX3S once the other paths were registered). Elsewhere (simulation, generic Verilog)
    the product register is a plain Amaranth register.
    """
    family = str(getattr(platform, "family", "")).lower()
    return family == "ecp5" and all(w <= ECP5_MULT_WIDTH for w in widths)


def _ecp5_registered_multiply(m: Module, name: str, a, b, en, width: int):
    """``a * b`` into the output register of a MULT18X18D, clocked by ``sync`` with enable ``en`` (one enabled
    cycle of latency, like a product register in the fabric). Returns the product's low ``width`` bits, signed.

    The operands come from fabric registers, not the DSP's input registers: a block RAM output (5.8 ns clock to
    output without its own output register) routed straight into a DSP input register was the worse path."""
    sa, sb = Signal(signed(ECP5_MULT_WIDTH), name=f"{name}_a"), Signal(signed(ECP5_MULT_WIDTH), name=f"{name}_b")
    p = Signal(2 * ECP5_MULT_WIDTH, name=f"{name}_p")
    m.d.comb += [sa.eq(a), sb.eq(b)]  # sign-extended to the port
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_OUTPUT_CLK="CLK0",
        p_REG_OUTPUT_CE="CE0",
        p_REG_OUTPUT_RST="RST0",
        p_REG_INPUTA_CLK="NONE",
        p_REG_INPUTB_CLK="NONE",
        p_REG_INPUTC_CLK="NONE",
        p_REG_PIPELINE_CLK="NONE",
        p_RESETMODE="SYNC",
        **{f"i_A{i}": sa[i] for i in range(ECP5_MULT_WIDTH)},
        **{f"i_B{i}": sb[i] for i in range(ECP5_MULT_WIDTH)},
        **{f"i_C{i}": Const(0, 1) for i in range(ECP5_MULT_WIDTH)},
        i_SIGNEDA=Const(1, 1),
        i_SIGNEDB=Const(1, 1),
        i_SOURCEA=Const(0, 1),
        i_SOURCEB=Const(0, 1),
        i_CLK0=ClockSignal("sync"),
        i_CE0=en,
        i_RST0=ResetSignal("sync", allow_reset_less=True),
        **{f"i_{port}{i}": Const(0, 1) for port in ("CLK", "RST") for i in (1, 2, 3)},
        **{f"i_CE{i}": Const(1, 1) for i in (1, 2, 3)},
        **{f"o_P{i}": p[i] for i in range(2 * ECP5_MULT_WIDTH)},
    )
    return p[:width].as_signed()


def tree_latency(n_inputs: int) -> int:
    """Register levels of an adder tree over ``n_inputs`` operands: ``ceil(log2(n_inputs))``."""
    if not isinstance(n_inputs, int) or isinstance(n_inputs, bool):
        raise TypeError(f"n_inputs must be an int, not {n_inputs!r}")
    if n_inputs < 1:
        raise ValueError(f"n_inputs must be 1 or more, not {n_inputs!r}")
    return (n_inputs - 1).bit_length()


def _check_cfg(cfg) -> Config:
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be a Config, not {cfg!r}")
    return cfg


class _TileComponent(wiring.Component):
    """What a PE and its column operand share: the config, its T lanes, circulant or dense, a fixed latency."""

    #: Enabled cycles from the inputs to the outputs (set by each subclass).
    LATENCY = 0

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def lanes(self) -> int:
        """Lanes (``cfg.tile`` unless given)."""
        return getattr(self, "_lanes", None) or self._cfg.tile

    @property
    def circulant(self) -> bool:
        """Circulant weights (one word broadcast to the lanes, a rotating operand) or dense ones."""
        return self._cfg.circulant

    @property
    def latency(self) -> int:
        """:attr:`LATENCY`."""
        return self.LATENCY


class ProcessingElement(_TileComponent):
    """One PE: ``T = cfg.tile`` multiplier lanes and ``T`` accumulators.

    Every cycle with ``en`` high, lane ``r`` registers the product
    ``w_r * i_x[r]`` (``w_r`` is ``i_w`` for circulant weights, broadcast to
    every lane, or ``i_w[r]`` for dense weights); one cycle later, if the
    operands were valid, the product is accumulated: ``acc[r] = product``
    when ``i_first`` was set with them, ``acc[r] + product`` otherwise.
    Invalid operands (``i_valid`` low) are bubbles: nothing is accumulated.

    The products are plain ``*`` of two signals registered into a signal, so
    Yosys maps each lane to one DSP block (``q_weight x q_state``).
    Accumulators are ``cfg.acc_width`` bits, wide enough never to overflow
    (:attr:`rnnaccel.numeric.config.Config.acc_width`).

    Parameters
    ----------
    cfg : Config
        The configuration: ``cfg.tile`` lanes; circulant weights
        (``cfg.circulant``) or dense ones.
    lanes : int or None
        Lanes, ``cfg.tile`` by default (the serial datapath: ``cfg.lanes``).
    per_lane_weights : bool or None
        One weight per lane (``i_w`` an array) instead of one broadcast to every lane; by default
        ``not cfg.circulant``.
    broadcast_x : bool
        One operand ``i_x`` shared by every lane (the serial datapath's vector word) instead of one
        per lane.
    x_width : int or None
        Bits of an operand, ``q_state.width`` by default (delta mode: ``q_state.width + 1``, a
        difference of two q_state words).
    input_register : bool
        Register the operands (and their control) before the multiply: one more cycle of latency
        (:attr:`latency`), and the path from the memories that feed ``i_w`` / ``i_x`` ends at a register
        instead of running through the multiplier (the array MVU's critical path on the ECP5).
        On an ECP5 platform (:func:`uses_ecp5_dsp_registers`) each lane's product register is its
        MULT18X18D's output register; the results and the latency are the same.

    Members
    -------
    en : In(1, init=1)
        Clock enable: while low the PE holds all its state (products, control
        pipeline, accumulators and outputs), as if the clock had not ticked.
        A consumer of ``o_*`` stalled with the same enable sees each result once.
    i_valid : In(1)
        ``i_w`` / ``i_x`` (and ``i_first`` / ``i_last``) are an operand pair.
    i_first : In(1)
        This product starts a new accumulation (``acc = product``).
    i_last : In(1)
        This product ends the accumulation: ``o_last`` marks the result.
    i_w : In(signed(q_weight.width)) or In(ArrayLayout(signed(q_weight.width), T))
        Circulant: the one defining-vector word of this cycle, shared by every
        lane. Dense (``per_lane_weights``): one weight per lane (column ``t`` of the tile).
    i_x : In(ArrayLayout(signed(q_state.width), T)) or In(signed(q_state.width))
        The operand of each lane (from a :class:`ColumnOperand`), or one for all (``broadcast_x``).
    o_acc : Out(ArrayLayout(signed(acc_width), T))
        The accumulators (registers).
    o_valid : Out(1)
        ``o_acc`` took a new product in the last enabled cycle.
    o_last : Out(1)
        ``o_acc`` holds a finished accumulation (its last product went in
        ``latency`` enabled cycles after ``i_last``).

    Raises
    ------
    TypeError
        If ``cfg`` is not a :class:`~rnnaccel.numeric.config.Config`.
    """

    #: Enabled cycles from an operand pair to ``o_acc`` including its product (without the input register).
    LATENCY = 2

    def __init__(
        self,
        cfg: Config,
        *,
        lanes: int | None = None,
        per_lane_weights=None,
        broadcast_x: bool = False,
        x_width: int | None = None,
        input_register: bool = False,
    ):
        self._cfg = _check_cfg(cfg)
        self._input_register = bool(input_register)
        self._x_width = cfg.q_state.width if x_width is None else x_width
        if lanes is not None and (not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1):
            raise ValueError(f"lanes must be an int of 1 or more, not {lanes!r}")
        self._lanes = lanes
        self._per_lane_w = (not self.circulant) if per_lane_weights is None else bool(per_lane_weights)
        self._broadcast_x = bool(broadcast_x)
        T = self.lanes
        ws, xs = cfg.q_weight.width, self._x_width
        w_shape = data.ArrayLayout(signed(ws), T) if self._per_lane_w else signed(ws)
        x_shape = signed(xs) if self._broadcast_x else data.ArrayLayout(signed(xs), T)
        super().__init__(
            {
                "en": In(1, init=1),
                "i_valid": In(1),
                "i_first": In(1),
                "i_last": In(1),
                "i_w": In(w_shape),
                "i_x": In(x_shape),
                "o_acc": Out(data.ArrayLayout(signed(cfg.acc_width), T)),
                "o_valid": Out(1),
                "o_last": Out(1),
            }
        )

    @property
    def latency(self) -> int:
        """:attr:`LATENCY`, plus one with the input register."""
        return self.LATENCY + self._input_register

    @property
    def per_lane_weights(self) -> bool:
        """``i_w`` holds one weight per lane (else one for all)."""
        return self._per_lane_w

    @property
    def broadcast_x(self) -> bool:
        """``i_x`` is one operand for all lanes (else one per lane)."""
        return self._broadcast_x

    def elaborate(self, platform):
        cfg = self._cfg
        T = self.lanes
        ws, xs, acc_w = cfg.q_weight.width, self._x_width, cfg.acc_width
        m = Module()

        prod = [Signal(signed(ws + xs), name=f"prod{r}") for r in range(T)]
        acc = [Signal(signed(acc_w), name=f"acc{r}") for r in range(T)]
        p_valid = Signal(name="prod_valid")
        p_first = Signal(name="prod_first")
        p_last = Signal(name="prod_last")

        ins = (self.i_valid, self.i_first, self.i_last, self.i_w, self.i_x)
        if self._input_register:
            # stage 0: the operands and their control, registered (held with en like every stage)
            regs = [Signal(v.shape(), name=f"in_{n}") for n, v in zip(("valid", "first", "last", "w", "x"), ins)]
            with m.If(self.en):
                m.d.sync += [r.eq(v) for r, v in zip(regs, ins)]
            ins = regs
        i_valid, i_first, i_last, i_w, i_x = ins
        operands = [(i_w[r] if self._per_lane_w else i_w, i_x if self._broadcast_x else i_x[r]) for r in range(T)]
        dsp = uses_ecp5_dsp_registers(platform, ws, xs)
        if dsp:  # stage 1's product registers are the DSPs' own output registers
            for r, (w, x) in enumerate(operands):
                m.d.comb += prod[r].eq(_ecp5_registered_multiply(m, f"mult{r}", w, x, self.en, ws + xs))
        with m.If(self.en):
            # stage 1: products (one DSP per lane) and the control that travels with them; stage 2 accumulates
            m.d.sync += [p_valid.eq(i_valid), p_first.eq(i_first), p_last.eq(i_last)]
            if not dsp:
                for r, (w, x) in enumerate(operands):
                    m.d.sync += prod[r].eq(w * x)
            m.d.sync += [self.o_valid.eq(p_valid), self.o_last.eq(p_valid & p_last)]
            with m.If(p_valid):
                for a, p in zip(acc, prod):
                    m.d.sync += a.eq(Mux(p_first, p, a + p))
        for r in range(T):
            m.d.comb += self.o_acc[r].eq(acc[r])
        return m


class ColumnOperand(_TileComponent):
    """The input register shared by the PEs of one PE column.

    A tile takes ``T`` cycles ``t = 0 .. T-1``. At ``t = 0`` (``i_load``) the
    column's input segment ``x`` (``T`` words) arrives on ``i_seg`` and is the
    operand at once; in each later cycle the register supplies it:

    * circulant weights: lane ``r`` gets ``x[(r - t) mod T]``
      (:func:`rnnaccel.numeric.circulant.circulant_index`), a register rotating by
      one lane per cycle;
    * dense weights: every lane gets ``x[t]``, the register shifting the next
      word into lane 0.

    The register advances in cycles with ``i_valid`` high, so a tile's cycles
    need not be consecutive.

    Parameters
    ----------
    cfg : Config
        The configuration: ``cfg.tile`` lanes, circulant or dense.
    width : int or None
        Bits of a word, ``q_state.width`` by default (the serial datapath rotates
        ``q_weight.width`` weights).

    Members
    -------
    i_valid : In(1)
        The operand ``o_x`` is used this cycle: advance the register.
    i_load : In(1)
        Cycle ``t = 0``: take the segment from ``i_seg``.
    i_seg : In(ArrayLayout(signed(q_state.width), T))
        The input segment (read when ``i_load``).
    o_x : Out(ArrayLayout(signed(q_state.width), T))
        Each lane's operand this cycle (combinational from ``i_seg`` / the register).

    Raises
    ------
    TypeError
        If ``cfg`` is not a :class:`~rnnaccel.numeric.config.Config`.
    """

    #: Cycles from ``i_seg`` (with ``i_load``) to ``o_x``: combinational.
    LATENCY = 0

    def __init__(self, cfg: Config, *, width: int | None = None):
        self._cfg = _check_cfg(cfg)
        self._width = cfg.q_state.width if width is None else width
        word = data.ArrayLayout(signed(self._width), cfg.tile)
        super().__init__(
            {
                "i_valid": In(1),
                "i_load": In(1),
                "i_seg": In(word),
                "o_x": Out(word),
            }
        )

    def elaborate(self, platform):
        T, xs = self._cfg.tile, self._width
        m = Module()
        seg = [self.i_seg[r] for r in range(T)]
        rot = [Signal(signed(xs), name=f"rot{r}") for r in range(T)]
        if self.circulant:
            # lane r at cycle t holds x[(r - t) mod T]: rotate up by one lane per cycle
            for r in range(T):
                m.d.comb += self.o_x[r].eq(Mux(self.i_load, seg[r], rot[r]))
            with m.If(self.i_valid):
                for r in range(T):
                    m.d.sync += rot[r].eq(self.o_x[(r - 1) % T])
        else:
            # dense: every lane multiplies x[t]; the register shifts x[t+1] into lane 0
            cur = Signal(signed(xs), name="xt")
            m.d.comb += cur.eq(Mux(self.i_load, seg[0], rot[0]))
            for r in range(T):
                m.d.comb += self.o_x[r].eq(cur)
            with m.If(self.i_valid):
                for r in range(T):
                    m.d.sync += rot[r].eq(Mux(self.i_load, seg[(r + 1) % T], rot[(r + 1) % T]))
        return m


class RowReducer(wiring.Component):
    """Pipelined adder tree: the lane-wise sum of ``n_inputs`` accumulator vectors.

    Level ``l`` adds neighbouring pairs of level ``l - 1`` (an odd one out is
    registered unchanged), one register per level, so the sum of the inputs
    of cycle ``c`` is on ``o_sum`` in cycle ``c + latency``; ``i_valid`` travels
    with it. Sums wrap at ``cfg.acc_width`` bits (the accumulator width is
    chosen so the whole matrix row never overflows).

    Parameters
    ----------
    cfg : Config
        The configuration (``cfg.tile`` lanes of ``cfg.acc_width`` bits).
    n_inputs : int
        Accumulator vectors summed (the PEs of one row, ``cfg.pe_cols``), 1 or more.

    Members
    -------
    i_valid : In(1)
        Marks the inputs of this cycle; delayed to ``o_valid``.
    i_acc : In(ArrayLayout(ArrayLayout(signed(acc_width), T), n_inputs))
        The accumulator vectors.
    o_valid : Out(1)
    o_sum : Out(ArrayLayout(signed(acc_width), T))
        ``sum(i_acc[j][r] for j)`` of ``latency`` cycles earlier.

    Raises
    ------
    TypeError
        If ``cfg`` is not a :class:`~rnnaccel.numeric.config.Config` or ``n_inputs`` not an int.
    ValueError
        If ``n_inputs`` is less than 1.
    """

    def __init__(self, cfg: Config, n_inputs: int):
        self._cfg = _check_cfg(cfg)
        self._latency = tree_latency(n_inputs)
        self._n = n_inputs
        vec = data.ArrayLayout(signed(cfg.acc_width), cfg.tile)
        super().__init__(
            {
                "i_valid": In(1),
                "i_acc": In(data.ArrayLayout(vec, n_inputs)),
                "o_valid": Out(1),
                "o_sum": Out(vec),
            }
        )

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def n_inputs(self) -> int:
        return self._n

    @property
    def latency(self) -> int:
        """Register levels, ``ceil(log2(n_inputs))``: cycles from ``i_acc`` to ``o_sum``."""
        return self._latency

    def elaborate(self, platform):
        T, acc_w = self._cfg.tile, self._cfg.acc_width
        m = Module()
        level = [[self.i_acc[j][r] for r in range(T)] for j in range(self._n)]
        valid = self.i_valid
        for lv in range(self._latency):
            nxt_valid = Signal(name=f"level{lv}_valid")
            m.d.sync += nxt_valid.eq(valid)
            nxt = []
            for a in range(0, len(level), 2):
                s = [Signal(signed(acc_w), name=f"level{lv}_{a // 2}_{r}") for r in range(T)]
                if a + 1 < len(level):
                    m.d.sync += [s[r].eq(level[a][r] + level[a + 1][r]) for r in range(T)]
                else:
                    m.d.sync += [s[r].eq(level[a][r]) for r in range(T)]
                nxt.append(s)
            level, valid = nxt, nxt_valid
        m.d.comb += self.o_valid.eq(valid)
        for r in range(T):
            m.d.comb += self.o_sum[r].eq(level[0][r])
        return m
