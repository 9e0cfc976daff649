"""The host link's top: the frame engine behind a UART, with activity LEDs."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ...interface.protocol import Info
from ...numeric.config import Config
from ..accelerator import Accelerator
from ..multicore import MultiCore
from ..uart import UARTRx, UARTTx, uart_divisor
from .checks import UNKNOWN_DESIGN, check_int
from .engine import FrameEngine

__all__ = ["HostLink"]


class HostLink(wiring.Component):
    """The accelerator behind a UART: what a board top instantiates.

    Parameters
    ----------
    cfg : Config
    clk_freq : int or float
        Clock frequency in Hz.
    baud : int or float
        UART bit rate; the divisor ``round(clk_freq / baud)`` must be within 2%.
    weights : dict, optional
        Passed to the accelerator (needed when ``cfg.weights_in_rom``).
    models : list of (Config, weights), optional
        A ``programs`` design's models, one per core (:class:`FrameEngine`).
    buffer_bytes : int, optional
        Payload buffer (default :meth:`LinkLayout.default_buffer`).
    timeout : float
        Inter-byte timeout inside a frame, in seconds (default 20 ms); or
    timeout_cycles : int, optional
        the same in clock cycles (overrides ``timeout``).
    led_hold : int, optional
        Cycles an activity LED stays lit after activity (default ``clk_freq / 20``).
    design_hash : str
        Passed to :class:`FrameEngine` (INFO's design hash).
    weight_source, weight_base :
        Passed to :class:`FrameEngine` (streamed weights: their source and its byte address).

    Members
    -------
    rx : In(1)
        UART receive pin (from the host; asynchronous, idle high).
    tx : Out(1)
        UART transmit pin (to the host).
    led_busy : Out(1)
        A frame is being executed or the accelerator is busy.
    led_error : Out(1)
        The last response was a NAK.
    led_rx, led_tx : Out(1)
        Receive / transmit activity, stretched to ``led_hold`` cycles.
    """

    def __init__(
        self,
        cfg: Config,
        clk_freq,
        baud=115200,
        weights=None,
        *,
        models=None,
        buffer_bytes: int | None = None,
        timeout: float = 0.02,
        timeout_cycles: int | None = None,
        led_hold: int | None = None,
        design_hash: str = UNKNOWN_DESIGN,
        weight_source=None,
        weight_base: int = 0,
    ):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        self._divisor = uart_divisor(clk_freq, baud)
        if timeout_cycles is None:
            if not (isinstance(timeout, (int, float)) and timeout > 0):
                raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
            timeout_cycles = max(int(round(clk_freq * timeout)), 1)
        check_int("timeout_cycles", timeout_cycles, 1, 0xFFFFFFFF)
        if timeout_cycles < 20 * self._divisor:
            raise ValueError(
                f"timeout_cycles {timeout_cycles!r} is shorter than two bytes on the line ({20 * self._divisor} cycles)"
            )
        if led_hold is None:
            led_hold = max(1, int(clk_freq) // 20)
        check_int("led_hold", led_hold, 1)
        self._led_hold = led_hold
        self._engine = FrameEngine(
            cfg,
            weights,
            models=models,
            buffer_bytes=buffer_bytes,
            timeout_cycles=timeout_cycles,
            clk_freq=int(round(clk_freq)),
            baud=int(round(baud)),
            design_hash=design_hash,
            weight_source=weight_source,
            weight_base=weight_base,
        )
        super().__init__(
            {
                "rx": In(1, init=1),
                "tx": Out(1, init=1),
                "led_busy": Out(1),
                "led_error": Out(1),
                "led_rx": Out(1),
                "led_tx": Out(1),
            }
        )

    @property
    def cfg(self) -> Config:
        return self._engine.cfg

    @property
    def engine(self) -> FrameEngine:
        return self._engine

    @property
    def accelerator(self) -> Accelerator | MultiCore:
        return self._engine.accelerator

    @property
    def divisor(self) -> int:
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def info(self) -> Info:
        return self._engine.info

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.engine = eng = self._engine
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o_data, eng.i_rx)
        wiring.connect(m, eng.o_tx, utx.i_data)
        m.d.comb += [self.led_busy.eq(eng.busy), self.led_error.eq(eng.error)]
        for led, active in ((self.led_rx, eng.rx_active), (self.led_tx, eng.tx_active)):
            hold = Signal(range(self._led_hold + 1))
            with m.If(active):
                m.d.sync += hold.eq(self._led_hold)
            with m.Elif(hold != 0):
                m.d.sync += hold.eq(hold - 1)
            m.d.comb += led.eq(active | (hold != 0))
        return m
