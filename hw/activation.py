"""Sigmoid and tanh units: a half table in block RAM, odd symmetry, optional interpolation.

:class:`ActivationUnit` computes exactly :func:`rnnaccel.numeric.lut.lookup` (the
golden model of the activation): fold the input to its magnitude, index the
stored half table (:func:`rnnaccel.numeric.lut.table`, the ROM contents) with the
clamped, shifted magnitude, interpolate linearly to the next word if the
config says so, unfold (tanh: negate; sigmoid: ``ONE - y``) and saturate to
``q_act``. Rounding and saturation come from :mod:`rnnaccel.numeric.fixedpoint`.

:class:`ActivationStream` wraps the same pipeline in
:mod:`amaranth.lib.stream` interfaces with back-pressure.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from ..numeric.fixedpoint import hw_round_shift, hw_saturate
from ..numeric.lut import FUNCTIONS, half_entries, table
from .pipeline import Stage

__all__ = ["ActivationUnit", "ActivationStream"]


def _check_params(cfg, fn, in_width, in_frac):
    if not isinstance(cfg, Config):
        raise TypeError(f"cfg must be an rnnaccel Config, not {cfg!r}")
    if not isinstance(fn, str):
        raise TypeError(f"fn must be a string, not {fn!r}")
    if fn not in FUNCTIONS:
        raise ValueError(f"fn must be one of {', '.join(map(repr, FUNCTIONS))}, not {fn!r}")
    if not isinstance(in_width, int) or isinstance(in_width, bool):
        raise TypeError(f"in_width must be an integer, not {in_width!r}")
    if in_width < 2:
        raise ValueError(f"in_width must be 2 or more, not {in_width!r}")
    if not isinstance(in_frac, int) or isinstance(in_frac, bool):
        raise TypeError(f"in_frac must be an integer, not {in_frac!r}")
    if in_frac < 0:
        raise ValueError(f"in_frac must be 0 or more, not {in_frac!r}")
    shift = cfg.table_shift(fn, in_frac)
    if shift < 0:
        raise ValueError(
            f"in_frac={in_frac!r} is too coarse for the {fn} table of this config: "
            f"its step is finer than one input LSB (table shift {shift})"
        )


#: Interpolation remainders of at most this many bits are multiplied by shift-and-add (no DSP).
SHIFT_ADD_MAX_BITS = 6


class _Activation(wiring.Component):
    """The parameters both activation components take, checked once: table, input width and fraction."""

    def __init__(self, cfg: Config, fn: str, in_width: int, in_frac: int):
        _check_params(cfg, fn, in_width, in_frac)
        self._cfg, self._fn, self._in_width, self._in_frac = cfg, fn, in_width, in_frac
        super().__init__(self._members())

    def _members(self) -> dict:
        raise NotImplementedError

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def fn(self) -> str:
        return self._fn

    @property
    def in_width(self) -> int:
        return self._in_width

    @property
    def in_frac(self) -> int:
        return self._in_frac


class ActivationUnit(_Activation):
    """Pipelined table lookup of sigmoid or tanh, bit-exact with :func:`rnnaccel.numeric.lut.lookup`.

    One result per enabled cycle. The stages: register the folded input and
    the clamped table address; read the ROM (a
    :class:`~amaranth.lib.memory.Memory` with one synchronous read port, so
    it maps to block RAM); register ``delta = next - word``; register the
    product ``delta * rem`` (a plain multiply, for a DSP); add the rounded
    product, unfold and saturate into the output register. Without
    interpolation the ROM holds :func:`rnnaccel.numeric.lut.table` as is and the
    delta and product stages are absent.

    With interpolation each ROM row holds a word of :func:`rnnaccel.numeric.lut.table`
    and the next one (the row past the range holds the end word twice). A
    second read port on a one-word ROM would need a second block RAM anyway
    (iCE40 and ECP5 RAMs have one read port each), and Yosys builds such a
    small two-port ROM from logic instead (measured: 563 LUTs on iCE40 for the
    default tanh unit, against 2 SB_RAM40_4K and 196 LUTs with pairs).

    Parameters
    ----------
    cfg : Config
        Table settings (``table_entries``, ranges, ``interpolate``) and ``q_act``.
    fn : str
        ``"sigmoid"`` or ``"tanh"``.
    in_width : int
        Width of the signed input.
    in_frac : int
        Fractional bits of the input (``cfg.q_pre.frac`` for gate
        pre-activations, ``cfg.q_cell.frac`` for ``tanh(c)``).

    Members
    -------
    en : In(1)
        Clock enable (initially 1): when 0 no register moves and the ROM
        ports hold their data.
    i_valid : In(1)
        The input carries an element.
    i_data : In(signed(in_width))
        Raw input with ``in_frac`` fractional bits.
    o_valid : Out(1)
        ``i_valid`` delayed by :attr:`latency` enabled cycles.
    o_data : Out(signed(cfg.q_act.width))
        Raw result in ``cfg.q_act``.

    Raises
    ------
    TypeError
        If a parameter has the wrong type.
    ValueError
        If ``fn`` is unknown, a width or fraction is out of range, or the
        table step is finer than the input's resolution.
    """

    def _members(self) -> dict:
        return {
            "en": In(1, init=1),
            "i_valid": In(1),
            "i_data": In(signed(self._in_width)),
            "o_valid": Out(1),
            "o_data": Out(signed(self._cfg.q_act.width)),
        }

    @property
    def shift(self) -> int:
        """Right shift from the input's magnitude to a table index."""
        return self._cfg.table_shift(self._fn, self._in_frac)

    @property
    def latency(self) -> int:
        """Enabled cycles from ``i_valid`` to ``o_valid``: 6 with interpolation, 3 without."""
        return _latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        cfg, shift = self._cfg, self.shift
        q_act = cfg.q_act
        n = half_entries(cfg)
        words = [int(w) for w in table(cfg, self._fn)]
        p = Stage(m, self.en)

        if cfg.interpolate:
            # one row per step: the word at its start and the next one (the
            # last row, past the range, holds the end word twice)
            row = data.ArrayLayout(signed(q_act.width), 2)
            init = [[words[j], words[min(j + 1, n)]] for j in range(n + 1)]
        else:
            row = signed(q_act.width)
            init = words
        m.submodules.rom = rom = memory.Memory(shape=row, depth=len(init), init=init)
        port = rom.read_port()

        # stage 1: fold to sign and magnitude, clamp the table address
        raw = self.i_data
        neg = raw < 0
        mag = Signal(unsigned(self._in_width), name="mag")
        m.d.comb += mag.eq(Mux(neg, -raw, raw))
        idx = mag >> shift
        inside = idx < n
        neg1 = p.reg(neg, name="neg1")
        valid1 = p.reg(self.i_valid, name="valid1")
        addr1 = p.reg(Mux(inside, idx, n if cfg.interpolate else n - 1), name="addr1", shape=len(port.addr))
        m.d.comb += [port.addr.eq(addr1), port.en.eq(self.en)]

        if cfg.interpolate:
            rem_now = mag[:shift] if shift > 0 else Const(0, 1)
            rem1 = p.reg(Mux(inside, rem_now, 0), name="rem1", shape=unsigned(max(shift, 1)))
            # stage 2: ROM read (the port's data register); stage 3: delta
            neg2, rem2, valid2 = (p.reg(neg1, name="neg2"), p.reg(rem1, name="rem2"), p.reg(valid1, name="valid2"))
            word3 = p.reg(port.data[0], name="word3")
            delta3 = p.reg(port.data[1] - port.data[0], name="delta3")
            neg3, rem3, valid3 = (p.reg(neg2, name="neg3"), p.reg(rem2, name="rem3"), p.reg(valid2, name="valid3"))
            # stage 4: the interpolation product, registered. The remainder has only `shift` bits:
            # up to SHIFT_ADD_MAX_BITS of them, a shift-and-add keeps the product out of the DSPs
            # (the scarce resource on small FPGAs: 8 on an iCE40UP5K); wider, a multiplier (a DSP).
            if shift <= SHIFT_ADD_MAX_BITS:
                terms = [Mux(rem3[i], delta3 << i, 0) for i in range(shift)]
                product = sum(terms[1:], terms[0]) if terms else Const(0, 1)
            else:
                product = delta3 * rem3
            prod4 = p.reg(product, name="prod4")
            word4 = p.reg(word3, name="word4")
            neg4, valid4 = p.reg(neg3, name="neg4"), p.reg(valid3, name="valid4")
            # stage 5: the rounded interpolation, registered (the add and the saturation below were one path)
            pos = p.reg(word4 + hw_round_shift(prod4, shift), name="pos5")
            neg_out, valid_out = p.reg(neg4, name="neg5"), p.reg(valid4, name="valid5")
        else:
            # stage 2: ROM read
            neg_out, valid_out = p.reg(neg1, name="neg2"), p.reg(valid1, name="valid2")
            pos = port.data

        # last stage: unfold by symmetry and saturate into the output register
        if self._fn == "tanh":
            unfolded_expr = Mux(neg_out, -pos, pos)
        else:
            unfolded_expr = Mux(neg_out, (1 << q_act.frac) - pos, pos)
        unfolded = Signal(unfolded_expr.shape(), name="unfolded")
        m.d.comb += unfolded.eq(unfolded_expr)
        with m.If(self.en):
            m.d.sync += [
                self.o_data.eq(hw_saturate(unfolded, q_act)),
                self.o_valid.eq(valid_out),
            ]
        return m


def _latency(cfg: Config) -> int:
    # input/address register, ROM read, [delta, product, rounded sum,] output register
    return 6 if cfg.interpolate else 3


class ActivationStream(_Activation):
    """:class:`ActivationUnit` between two :mod:`amaranth.lib.stream` interfaces.

    Back-pressure stalls the whole pipeline: its clock enable is
    ``~(o.valid & ~o.ready)``, so nothing moves while the output holds an
    element that is not taken, and ``i.ready`` is that same enable. Nothing
    is lost (an element enters only at an enabled edge, when it is accepted)
    and nothing is duplicated (an output element leaves only at an enabled
    edge, when it is taken). ``o.valid`` is a register of the pipeline and
    never depends on ``o.ready``; only ``i.ready`` does (combinationally,
    which streams allow). A stall costs no throughput and no skid buffer's
    area; the price is the enable's fan-out from ``o.ready``, negligible for
    a unit this size.

    Parameters
    ----------
    cfg, fn, in_width, in_frac :
        As for :class:`ActivationUnit`.

    Members
    -------
    i : In(stream.Signature(signed(in_width)))
        Raw inputs with ``in_frac`` fractional bits.
    o : Out(stream.Signature(signed(cfg.q_act.width)))
        Raw results in ``cfg.q_act``, in input order.

    Raises
    ------
    TypeError, ValueError
        As for :class:`ActivationUnit`.
    """

    def _members(self) -> dict:
        return {
            "i": In(stream.Signature(signed(self._in_width))),
            "o": Out(stream.Signature(signed(self._cfg.q_act.width))),
        }

    @property
    def latency(self) -> int:
        """Cycles from acceptance to ``o.valid`` when the output is never stalled."""
        return _latency(self._cfg)

    def elaborate(self, platform):
        m = Module()
        m.submodules.unit = unit = ActivationUnit(self._cfg, self._fn, self._in_width, self._in_frac)
        advance = Signal(name="advance")
        m.d.comb += [
            advance.eq(~(unit.o_valid & ~self.o.ready)),
            unit.en.eq(advance),
            self.i.ready.eq(advance),
            unit.i_valid.eq(self.i.valid),
            unit.i_data.eq(self.i.payload),
            self.o.valid.eq(unit.o_valid),
            self.o.payload.eq(unit.o_data),
        ]
        return m
