"""The board top: clocking, reset, status LEDs and the UART host link around the accelerator.

``BoardTop(cfg, weights, pll=None)`` works on any amaranth-boards
platform that has a ``uart`` resource and a default clock. Without ``pll``
the design runs from the board's oscillator (12 MHz on the iCEBreaker,
25 MHz on the ULX3S); with one (:func:`rnnaccel.boards.pll.plan_pll`, whose
parameters come from the toolchain's own calculators ``icepll`` / ``ecppll``)
the PLL makes the clock, and the design is held in reset until it locks. On iCE40 the PLL is an
``SB_PLL40_PAD`` fed straight from the oscillator's pad (on the iCEBreaker
the 12 MHz clock is on the PLL's own pin), so the board's clock pin must be
a PLL pad. LEDs: ``led`` 0 (or
``led_g`` 0) = busy, 1 (or ``led_r`` 0) = error, 2 = UART receive, 3 = UART
transmit, where the board has them.

A config of several cores is a MultiCore behind the link (``docs/hostlink.md``, addressed frames): a
``layers`` config splits its stack over the cores, a ``helpers`` config every layer's rows; a ``programs``
design takes ``models``, one (config, weights) per core.
"""

from __future__ import annotations


from amaranth.hdl import ClockDomain, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

from .platforms import BoardError
from .pll import PLL

__all__ = ["BoardTop"]


def _leds(platform):
    """Up to four single LED outputs of the platform, in order."""
    out = []
    names = [("led", i) for i in range(8)]
    if not _has(platform, "led", 0):
        names = [("led_g", 0), ("led_r", 0), ("led_g", 1), ("led_g", 2)]
    for name, number in names:
        if len(out) == 4:
            break
        if _has(platform, name, number):
            out.append(platform.request(name, number, dir="-"))
    return out


def _has(platform, name, number) -> bool:
    try:
        platform.lookup(name, number)
        return True
    except Exception:
        return False


class BoardTop(Elaboratable):
    def __init__(
        self,
        cfg,
        weights=None,
        *,
        models=None,
        pll: PLL | None = None,
        baud: int = 115200,
        design_hash: str | None = None,
        flash_offset: int | None = None,
    ):
        self.cfg = cfg
        self.flash_offset = flash_offset
        self.models = models
        self.design_hash = design_hash
        self.weights = weights
        self.pll = pll
        self.baud = baud
        self.achieved_mhz: float | None = pll.achieved_mhz if pll else None

    def elaborate(self, platform):
        from ..hw.hostlink import HostLink

        if platform is None:
            raise BoardError("BoardTop needs a board platform (see rnnaccel.boards.platforms)")
        m = Module()
        default_hz = platform.default_clk_frequency
        family = getattr(platform, "family", "").lower()
        if self.pll is not None:
            achieved = self.pll.achieved_mhz
            platform.add_file("rnnaccel_pll.v", self.pll.verilog)
            clk_in = platform.request(platform.default_clk, dir="-")
            if family == "ice40":
                clk_src = clk_in.io  # SB_PLL40_PAD: the pad goes straight to the PLL
            else:
                m.submodules.clk_in = clk_buf = io.Buffer("i", clk_in)
                clk_src = clk_buf.i
            m.domains.sync = cd_sync = ClockDomain("sync")
            locked = Signal()
            # no explicit constraint on the PLL output: nextpnr derives it from the PLL's parameters
            # (the input pad's constraint comes from the board resource); a constraint on an Amaranth
            # signal names a net that flattening may rename, and nextpnr would ignore it
            m.submodules.pll = Instance("rnnaccel_pll", i_clock_in=clk_src, o_clock_out=cd_sync.clk, o_locked=locked)
            m.d.comb += ResetSignal("sync").eq(~locked)
            clk_hz = achieved * 1e6
        else:
            clk_hz = default_hz
            self.achieved_mhz = default_hz / 1e6
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        stream = {}
        if self.cfg.weight_source == "flash":  # the weights from the board's flash, behind the bitstream
            from ..hw.flash import FlashSource
            from ..layout.image import weight_stream_word_bits
            from .flash import default_flash_offset

            offset = default_flash_offset(platform) if self.flash_offset is None else self.flash_offset
            # the reader's init waits are converted at the clock (an upper bound of it is enough)
            source = FlashSource(weight_stream_word_bits(self.cfg), clk_hz=clk_hz)
            stream = {"weight_source": source, "weight_base": offset}
        link = HostLink(
            self.cfg,
            clk_hz,
            self.baud,
            weights=self.weights if self.cfg.weights_in_rom else None,
            models=self.models,
            **({"design_hash": self.design_hash} if self.design_hash else {}),
            **stream,
        )
        m.submodules.link = link
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [link.rx.eq(rx.i), tx.o.eq(link.tx)]
        for i, (led, sig) in enumerate(zip(_leds(platform), [link.led_busy, link.led_error, link.led_rx, link.led_tx])):
            buf = io.Buffer("o", led)
            m.submodules[f"led{i}"] = buf
            m.d.comb += buf.o.eq(sig)
        return m
