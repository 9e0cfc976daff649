"""An accelerator whose weights are streamed (``weight_source = 'flash'``), joined to its weight source.

The serial datapath built with ``weight_source = 'flash'`` has no weight bank:
it asks for one time step's weights on ``o_wstart`` (byte address 0, the
step's word count) and takes them from ``i_w`` in the order it uses them
(:func:`rnnaccel.layout.image.weight_stream_addresses`). :class:`SourcedAccelerator`
puts a source behind those two ports and offers the accelerator's other
members unchanged, so every harness, the host link and the board tops take it
as they take an on-chip design:

* in simulation (the default source): :class:`~rnnaccel.hw.flash_model.MemoryModelSource`
  holding the stream image (:func:`rnnaccel.layout.image.weight_stream_bytes`) with the
  bandwidth and first-word latency of the board's flash read by
  :class:`~rnnaccel.hw.flash.FlashReader` through its pin registers (:func:`flash_model_timing`:
  W25Q128JV, SCK at half the system clock, a quarter byte per cycle), cycle for cycle the reader's
  timing;
* on a board: :class:`~rnnaccel.hw.flash.FlashSource` (the reader on the flash pins), the image
  written at ``base`` of the flash beside the bitstream.

The request's address is offset by ``base`` on its way to the source.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring

from ..layout.image import weight_stream_bytes, weight_stream_word_bits
from .flash import PHY_SAMPLE_DELAY, W25Q128JV, FlashPart
from .flash_model import MemoryModelSource, flash_timing

__all__ = ["SourcedAccelerator", "flash_model_timing", "simulated_flash"]

#: The accelerator's members that face the weight source (:func:`rnnaccel.hw.sequencer.weight_stream_members`).
SOURCE_PORTS = ("o_wstart", "i_w")


def flash_model_timing(part: FlashPart = W25Q128JV, divider: int = 1) -> dict:
    """``bytes_per_cycle`` and ``latency`` of the board's flash as the gateware reads it (``divider``: system clocks
    per SCK half period), for :class:`~rnnaccel.hw.flash_model.MemoryModelSource`."""
    return flash_timing(part, divider, PHY_SAMPLE_DELAY)


def simulated_flash(cfg, image, *, base: int = 0, bytes_per_cycle=None, latency: int | None = None):
    """A :class:`~rnnaccel.hw.flash_model.MemoryModelSource` holding the weight stream of ``cfg`` and its memory
    ``image`` at ``base``, timed as the board's flash (:func:`flash_model_timing`) unless
    ``bytes_per_cycle`` / ``latency`` are given."""
    timing = flash_model_timing()
    if bytes_per_cycle is not None:
        timing["bytes_per_cycle"] = bytes_per_cycle
    if latency is not None:
        timing["latency"] = latency
    return MemoryModelSource(
        weight_stream_bytes(cfg, image), word_width=weight_stream_word_bits(cfg), base=base, **timing
    )


class SourcedAccelerator(wiring.Component):
    """``accelerator`` (built with ``weight_source = 'flash'``) with ``source`` behind its weight stream.

    Parameters
    ----------
    accelerator : SequencerBase
        The accelerator; its ``o_wstart`` / ``i_w`` go to the source, its other members are this
        component's.
    source : wiring.Component, optional
        Has ``start`` and ``o`` as :class:`~rnnaccel.hw.flash.FlashReader` (the reader, :class:`FlashSource`,
        :class:`MemoryModelSource`). Default: :func:`simulated_flash` of the accelerator's image.
    base : int
        Byte address of the stream image in the source (added to every request).
    timing : dict, optional
        ``bytes_per_cycle`` and/or ``latency`` of the default source instead of the flash's.
    """

    def __init__(self, accelerator, source=None, *, base: int = 0, timing: dict | None = None):
        if not all(name in accelerator.signature.members for name in SOURCE_PORTS):
            raise TypeError(f"{accelerator!r} has no weight stream (build it with weight_source = 'flash')")
        if not isinstance(base, int) or base < 0:
            raise ValueError(f"base must be a non-negative int, not {base!r}")
        self._acc = accelerator
        self._base = base
        if source is not None and timing:
            raise ValueError("timing is for the default (simulated) source, not a given one")
        if source is None:
            source = simulated_flash(accelerator.cfg, accelerator.image, base=base, **(timing or {}))
        self._source = source
        width = len(self._source.o.payload)
        if width != len(accelerator.i_w.payload):
            raise ValueError(
                f"the source's words are {width} bits, the accelerator takes {len(accelerator.i_w.payload)}"
            )
        members = {n: m for n, m in accelerator.signature.members.items() if n not in SOURCE_PORTS}
        super().__init__(members)

    # the accelerator's own properties, for the harnesses
    @property
    def accelerator(self):
        return self._acc

    @property
    def source(self):
        return self._source

    @property
    def cfg(self):
        return self._acc.cfg

    @property
    def delta(self) -> bool:
        return self._acc.delta

    @property
    def program(self) -> list[tuple]:
        return self._acc.program

    @property
    def image(self):
        return self._acc.image

    @property
    def stream_words(self) -> int:
        return self._acc.stream_words

    def elaborate(self, platform):
        m = Module()
        acc, src = self._acc, self._source
        m.submodules.core = acc
        m.submodules.weight_source = src
        for name, member in self.signature.members.items():
            outer, inner = getattr(self, name), getattr(acc, name)
            if member.is_signature:
                wiring.connect(m, wiring.flipped(outer), inner)
            elif member.flow == wiring.In:
                m.d.comb += inner.eq(outer)
            else:
                m.d.comb += outer.eq(inner)
        m.d.comb += [
            src.start.valid.eq(acc.o_wstart.valid),
            src.start.payload.addr.eq(acc.o_wstart.payload.addr + self._base),
            src.start.payload.count.eq(acc.o_wstart.payload.count),
            acc.o_wstart.ready.eq(src.start.ready),
        ]
        wiring.connect(m, src.o, acc.i_w)
        return m
