"""What every datapath's sequencer shares: the command interface and the sequencer base.

:func:`command_layout` is the command word of :mod:`rnnaccel.interface.commands`
(which defines :class:`Op`, :data:`STATUS_BITS` and the phase codes, re-exported
here for the gateware);
:class:`SequencerBase` owns the members (input/output streams, commands,
status, counters, phase), the stream FIFOs, the counters and the commands
both datapaths decode alike. The array datapath (:mod:`.array`) and the
serial one (:mod:`.serial`) build their phase FSMs on it;
:func:`rnnaccel.hw.accelerator.make_accelerator` picks one by the config.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from ..layout.image import MemoryImage, memory_image
from ..layout.runtime import param_bits, param_names, param_values
from ..interface.commands import PHASE_CLEAR, PHASE_STEP_DONE, STATUS_BITS, Op, command_fields
from . import check_cfg_and_weights

__all__ = [
    "Op",
    "command_layout",
    "weight_stream_members",
    "STATUS_BITS",
    "PHASE_CLEAR",
    "PHASE_STEP_DONE",
    "SequencerBase",
]


def weight_stream_members(cfg: Config) -> dict:
    """The members of an accelerator whose weights arrive as a stream (``weight_source = 'flash'``): ``o_wstart``
    (a read request, the :class:`~rnnaccel.hw.flash.FlashReader`'s ``start``) and ``i_w`` (the words)."""
    from ..layout.image import weight_stream_word_bits
    from .flash import start_layout

    return {
        "o_wstart": Out(stream.Signature(start_layout())),
        "i_w": In(stream.Signature(unsigned(weight_stream_word_bits(cfg)))),
    }


def command_layout(cfg: Config) -> data.StructLayout:
    """The ``i_cmd`` payload: :func:`rnnaccel.interface.commands.command_fields` as an Amaranth layout."""
    return data.StructLayout({name: unsigned(bits) for name, bits in command_fields(cfg).items()})


class SequencerBase(wiring.Component):
    """What both datapaths share: the members, the stream FIFOs, status and counters, the common commands."""

    def __init__(
        self, cfg: Config, weights, prog: list[tuple], image: MemoryImage | None = None, *, delta: bool = False
    ):
        check_cfg_and_weights(cfg, weights, image)
        self._cfg = cfg
        self._delta = bool(delta)
        self._weights = weights
        self._image = image
        self._program = prog
        xs = cfg.q_state.width
        super().__init__(
            {
                "i_x": In(stream.Signature(signed(xs))),
                "o_h": Out(stream.Signature(signed(xs))),
                "i_cmd": In(stream.Signature(command_layout(cfg))),
                "status": Out(3),
                "cycles": Out(32),
                "wait_cycles": Out(32),
                "steps": Out(32),
                "phase": Out(8),
            }
            # delta mode (issue 19): column units skipped (zero delta: circulant k-segments, dense columns)
            # and their multiply-accumulates
            | ({"skipped": Out(32), "skipped_macs": Out(32)} if delta else {})
            # a helper core (issue 14, ``row_slices > 1``): the whole h of each layer, from the exchange
            | ({"i_hx": In(stream.Signature(signed(xs)))} if getattr(cfg, "row_slices", 1) > 1 else {})
            # weights from a stream (issue 13, ``weight_source = 'flash'``): a read request per time step to the
            # source (a byte address and a word count, :func:`rnnaccel.hw.flash.start_layout`) and its words
            | (weight_stream_members(cfg) if getattr(cfg, "weight_source", "onchip") != "onchip" else {})
        )

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def delta(self) -> bool:
        """Delta-network mode is built (the ``skipped`` and ``skipped_macs`` counters exist)."""
        return self._delta

    @property
    def program(self) -> list[tuple]:
        return list(self._program)

    @property
    def image(self) -> MemoryImage | None:
        """The memory image baked into ROM: as given, or built once from the weights
        (:func:`rnnaccel.layout.image.memory_image`); ``None`` when the weights are written at run time."""
        if self._image is None and self._cfg.weights_in_rom:
            self._image = memory_image(self._cfg, self._weights)
        return self._image

    def _stream_fifos(self, m: Module, out_slack: int = 0):
        """The input FIFO (one step of inputs) and the output FIFO (one step of outputs and ``out_slack`` words
        more), on the streams.

        The last phase pushes H words back to back without looking at ``w_rdy`` (``wait_out`` made
        room); a SyncFIFOBuffered of depth 2 cannot take two writes in a row, hence the margin.
        """
        cfg, xs = self._cfg.at_max(), self._cfg.q_state.width  # run-time dimensions: the largest model's
        m.submodules.in_fifo = in_fifo = fifo.SyncFIFOBuffered(width=xs, depth=max(2, cfg.input_size))
        out_depth = max(3, cfg.hidden_size + 1 + out_slack)
        m.submodules.out_fifo = out_fifo = fifo.SyncFIFOBuffered(width=xs, depth=out_depth)
        m.d.comb += [
            in_fifo.w_data.eq(self.i_x.payload),
            in_fifo.w_en.eq(self.i_x.valid),
            self.i_x.ready.eq(in_fifo.w_rdy),
            self.o_h.valid.eq(out_fifo.r_rdy),
            self.o_h.payload.eq(out_fifo.r_data.as_signed()),
            out_fifo.r_en.eq(self.o_h.ready),
        ]
        return in_fifo, out_fifo

    def _status_and_counters(self, m: Module, busy, waiting, error, clearing) -> None:
        m.d.comb += self.status.eq(busy | (~busy << 1) | (error << 2))
        with m.If(busy & ~waiting & ~clearing):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(busy & waiting):
            m.d.sync += self.wait_cycles.eq(self.wait_cycles + 1)

    def _parameter_registers(self) -> dict:
        """Run-time dimensions: one register per :func:`rnnaccel.layout.runtime.param_names` entry (by name),
        reset to the generating model's layout and written by ``SET_PARAM`` (:meth:`_set_param_command`);
        empty without them (the datapath then uses the model's constants)."""
        cfg = self._cfg
        if not cfg.runtime_dims:
            return {}
        names, bits, init = param_names(cfg), param_bits(cfg), param_values(cfg)
        return {n: Signal(bits[n], name=f"prm_{n}", init=init[n]) for n in names}

    @staticmethod
    def _set_param_command(m: Module, prm: dict, cmd, error) -> None:
        """The ``SET_PARAM`` case of the command ``Switch`` (run-time dimensions only): register ``sel`` takes
        ``data``; an unknown ``sel`` or a value wider than its register sets ``error``."""
        if not prm:
            return
        with m.Case(Op.SET_PARAM):
            with m.Switch(cmd.sel):
                for sel, reg in enumerate(prm.values()):
                    with m.Case(sel):
                        with m.If(cmd.data[len(reg) :] == 0):
                            m.d.sync += reg.eq(cmd.data[: len(reg)])
                        with m.Else():  # wider than the register: refused
                            m.d.sync += error.eq(1)
                with m.Default():
                    m.d.sync += error.eq(1)

    def _common_commands(self, m: Module, error) -> None:
        """CLEAR_COUNTERS and unknown opcodes: the last cases of the command ``Switch``."""
        with m.Case(Op.CLEAR_COUNTERS):
            m.d.sync += [self.cycles.eq(0), self.wait_cycles.eq(0), self.steps.eq(0), error.eq(0)]
            if self._delta:
                m.d.sync += [self.skipped.eq(0), self.skipped_macs.eq(0)]
        with m.Default():
            m.d.sync += error.eq(1)

    def _step_done(self, m: Module, busy, count=1) -> None:
        """STEP_DONE: ``steps`` counts ``count`` (a batch's steps, ``time_steps > 1``), then IDLE."""
        with m.State("STEP_DONE"):
            m.d.comb += [busy.eq(1), self.phase.eq(PHASE_STEP_DONE)]
            m.d.sync += self.steps.eq(self.steps + count)
            m.next = "IDLE"
