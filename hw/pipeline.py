"""Helpers for clock-enabled pipelines.

Every pipelined block in :mod:`rnnaccel.hw` follows one convention: all of its
registers (and the read ports of its ROMs) share one clock enable ``en``;
when ``en`` is 0 nothing moves. A value entering at an enabled edge leaves
``latency`` enabled edges later, so a block's ``latency`` is counted in
enabled cycles and a stall of any length changes nothing but the timing.

:class:`Stage` builds such registers and delay lines so the components read
as dataflow (``p.reg(a * b, name="prod")``) and the enable is never forgotten.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal, Value

__all__ = ["Stage", "stream_register"]


class Stage:
    """Registers under one clock enable, added to a module's ``sync`` domain.

    Parameters
    ----------
    m : Module
        The module the registers are added to.
    en : Value
        The clock enable shared by every register made here.
    domain : str
        Clock domain of the registers.
    """

    def __init__(self, m: Module, en, domain: str = "sync"):
        if not isinstance(m, Module):
            raise TypeError(f"Stage needs an amaranth Module, not {m!r}")
        self._m = m
        self._en = Value.cast(en)
        self._domain = domain

    def reg(self, expr, *, name: str, shape=None) -> Signal:
        """A register loaded with ``expr`` at every enabled edge.

        Parameters
        ----------
        expr : ValueLike
            The value registered.
        name : str
            Name of the register (it appears in the generated Verilog).
        shape : ShapeLike, optional
            Shape of the register; defaults to the shape of ``expr``.
        """
        value = Value.cast(expr)
        sig = Signal(value.shape() if shape is None else Shape.cast(shape), name=name)
        with self._m.If(self._en):
            self._m.d[self._domain] += sig.eq(value)
        return sig

    def delay(self, expr, cycles: int, *, name: str):
        """``expr`` delayed by ``cycles`` enabled edges (a shift register).

        ``cycles == 0`` returns ``expr`` itself. The taps are named
        ``{name}_d1`` ... ``{name}_d{cycles}``.
        """
        if not isinstance(cycles, int) or cycles < 0:
            raise ValueError(f"a delay is 0 or more cycles, not {cycles!r}")
        value = Value.cast(expr)
        for k in range(1, cycles + 1):
            value = self.reg(value, name=f"{name}_d{k}")
        return value


def stream_register(m: Module, valid, payloads, out_ready, *, take=1, name: str):
    """A one-entry register on a valid/ready stream, added to ``m``: its output starts from flip-flops, and it
    takes the next element while the one it holds leaves (full throughput, no skid buffer: ``ready`` still
    depends on ``out_ready``).

    Parameters
    ----------
    m : Module
    valid : Value
        The upstream element is valid.
    payloads : list of Value
        The upstream element's fields.
    out_ready : Value
        Downstream takes the held element this cycle (when ``full``).
    take : Value
        Gates ``ready`` (the register takes nothing while it is low).
    name : str
        Prefix of the registers' names.

    Returns
    -------
    (ready, full, held)
        Upstream's ready, downstream's valid, and the held fields (one register per payload).
    """
    full = Signal(name=f"{name}_full")
    held = [Signal(Value.cast(v).shape(), name=f"{name}_held{i}") for i, v in enumerate(payloads)]
    ready = Signal(name=f"{name}_ready")
    m.d.comb += ready.eq(take & (~full | out_ready))
    with m.If(valid & ready):
        m.d.sync += [h.eq(v) for h, v in zip(held, payloads)]
        m.d.sync += full.eq(1)
    with m.Elif(out_ready):
        m.d.sync += full.eq(0)
    return ready, full, held
