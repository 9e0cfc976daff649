"""UART receiver and transmitter (8N1) with byte streams.

The bit period is ``divisor`` clock cycles (``round(clk_freq / baud)``).
The receiver synchronizes the pin (two flip-flops), waits for a falling
edge, checks the start bit half a bit later and then samples every bit in
its middle (mid-bit sampling; with an integer divisor the error over the 10
bits of a frame stays under half a bit as long as the baud rates differ by
less than about 4%). A byte whose stop bit reads 0 is dropped (``framing_error``);
a byte that arrives while the previous one still waits in the output is
dropped (``overrun``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "uart_divisor"]


def uart_divisor(clk_freq: float, baud: float, tolerance: float = 0.02) -> int:
    """Clock cycles per bit for ``baud`` at ``clk_freq``; :class:`ValueError` when off by more than ``tolerance``."""
    if not (isinstance(clk_freq, (int, float)) and clk_freq > 0):
        raise ValueError(f"clk_freq must be a positive number, not {clk_freq!r}")
    if not (isinstance(baud, (int, float)) and baud > 0):
        raise ValueError(f"baud must be a positive number, not {baud!r}")
    divisor = round(clk_freq / baud)
    if divisor < 2:
        raise ValueError(f"baud {baud!r} is too fast for a {clk_freq!r} Hz clock (needs at least 2 cycles per bit)")
    error = abs(clk_freq / divisor - baud) / baud
    if error > tolerance:
        raise ValueError(
            f"baud {baud!r} at {clk_freq!r} Hz: divisor {divisor} is off by {100 * error:.1f}% "
            f"(more than {100 * tolerance:.0f}%)"
        )
    return divisor


def _check_divisor(divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"divisor must be an int, not {divisor!r}")
    if divisor < 2:
        raise ValueError(f"divisor must be at least 2 clock cycles per bit, not {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver, 8 data bits, no parity, 1 stop bit, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 2).

    Members
    -------
    rx : In(1)
        The pin (asynchronous; idle high).
    o_data : Out(stream.Signature(8))
        Received bytes. ``valid`` stays high until the byte is taken.
    framing_error, overrun : Out(1)
        One-cycle pulses: a byte with a bad stop bit, or a byte dropped because
        the previous one had not been taken.
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__(
            {
                "rx": In(1, init=1),
                "o_data": Out(stream.Signature(8)),
                "framing_error": Out(1),
                "overrun": Out(1),
            }
        )

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(d))
        bits = Signal(range(8))
        shreg = Signal(8)
        valid = Signal()
        m.d.comb += [self.o_data.valid.eq(valid), self.o_data.payload.eq(shreg)]
        with m.If(self.o_data.ready):
            m.d.sync += valid.eq(0)
        data = Signal(8)

        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):  # a glitch, not a start bit
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    m.d.sync += [data.eq(Cat(data[1:], rx)), timer.eq(d - 1), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(valid & ~self.o_data.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [shreg.eq(data), valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.framing_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                # a line held low: wait for it to go idle before looking for a start bit
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter, 8N1, LSB first.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (at least 2).

    Members
    -------
    i_data : In(stream.Signature(8))
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : Out(1)
        The pin (registered, idle high).
    busy : Out(1)
        A byte is being sent.
    """

    def __init__(self, divisor: int):
        _check_divisor(divisor)
        self._divisor = divisor
        super().__init__(
            {
                "i_data": In(stream.Signature(8)),
                "tx": Out(1, init=1),
                "busy": Out(1),
            }
        )

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        left = Signal(range(10))
        shreg = Signal(9)

        with m.FSM(name="tx"):
            with m.State("IDLE"):
                m.d.comb += self.i_data.ready.eq(1)
                with m.If(self.i_data.valid):
                    m.d.sync += [
                        shreg.eq(Cat(self.i_data.payload, Const(1, 1))),
                        self.tx.eq(0),
                        timer.eq(d - 1),
                        left.eq(9),
                    ]
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += timer.eq(timer - 1)
                with m.If(timer == 0):
                    with m.If(left == 0):
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += [self.tx.eq(shreg[0]), shreg.eq(shreg >> 1), left.eq(left - 1), timer.eq(d - 1)]
        return m
