"""The accelerator of a config: the datapath it names, behind one interface.

:func:`make_accelerator` returns :class:`~rnnaccel.hw.array.ArrayAccelerator`
or :class:`~rnnaccel.hw.serial.SerialAccelerator`; both have the members of
:class:`~rnnaccel.hw.sequencer.SequencerBase` (streams, commands, counters,
phase). :func:`program` is the datapath's list of phases for one time step.
"""

from __future__ import annotations

from ..numeric.config import Config
from .array import ArrayAccelerator, array_program
from .sequencer import SequencerBase
from .serial import SerialAccelerator, serial_program

__all__ = ["make_accelerator", "program", "Accelerator"]

#: Either datapath's accelerator (for annotations).
Accelerator = SequencerBase


def make_accelerator(
    cfg: Config,
    weights=None,
    *,
    image=None,
    delta: bool | None = None,
    source=None,
    source_base: int = 0,
    weight_timing: dict | None = None,
) -> SequencerBase:
    """The accelerator of ``cfg.datapath``: :class:`ArrayAccelerator` or :class:`SerialAccelerator`.

    With weights in ROM it needs ``weights`` or, built once by the caller, their memory ``image``
    (:func:`rnnaccel.layout.image.memory_image`). ``delta``: build the array's delta-network mode
    (default ``cfg.delta_mode``; True builds it even with thresholds of 0, which is exact).

    With ``weight_source = 'flash'`` the accelerator comes joined to its weight source
    (:class:`~rnnaccel.hw.weight_source.SourcedAccelerator`, the same members): ``source`` (a
    :class:`~rnnaccel.hw.flash.FlashSource` on a board), by default the simulated flash holding the weight
    stream (``weight_timing``: its ``bytes_per_cycle`` / ``latency`` instead of the flash's); ``source_base`` is
    the stream's byte address in the source.
    """
    if cfg.datapath == "serial":
        acc = SerialAccelerator(cfg, weights, image=image)
        if cfg.weight_source == "onchip":
            return acc
        from .weight_source import SourcedAccelerator

        return SourcedAccelerator(acc, source, base=source_base, timing=weight_timing)
    if delta is None:
        return ArrayAccelerator(cfg, weights, image=image)
    return ArrayAccelerator(cfg, weights, image=image, delta=delta)


def program(cfg: Config) -> list[tuple]:
    """Phases of one time step, in order (each datapath's own list)."""
    return serial_program(cfg) if cfg.datapath == "serial" else array_program(cfg)
