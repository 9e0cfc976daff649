"""N cores behind one interface (issue 14, Peng et al.): multi-programming, the layer pipeline, helper cores.

Every core is the ordinary accelerator (:func:`rnnaccel.hw.accelerator.make_accelerator`) of a one-core
config, instantiated N times; :class:`MultiCore` adds only the glue:

* **commands**: ``i_cmd`` is the core's command word with a ``core`` field
  (:data:`rnnaccel.interface.multicore.CORE_BITS` bits above ``data``). A
  command is latched, then offered to its core, or to every core for
  :data:`~rnnaccel.interface.multicore.BROADCAST`, each taking it when it
  is idle; the next command is accepted once all have. A command for a core
  that does not exist is dropped and sets the error bit (nothing changes).
  ``CLEAR_COUNTERS`` also clears the MultiCore's own error bit and ``cycles``.
* **programs** (multi-programming): ``i_x`` words carry ``core`` beside
  ``data`` and go to that core's input stream (a word for a missing core is
  dropped and sets the error bit); ``x_ready`` shows each core's input
  ``ready`` so a host can interleave streams without blocking on a busy core.
  Outputs of all cores are merged round robin onto ``o_h``, tagged with their core.
* **layers** (layer pipeline): ``i_x`` feeds core 0 (``core`` ignored); core
  i's ``o_h`` flows through a FIFO of ``link_depth`` words into core i+1's
  ``i_x``; ``o_h`` is the last core's, tagged N-1. Core i runs its layer
  group of step t while core i-1 runs step t+1.
* **helpers** (helper cores): every core holds the whole stack and computes
  its slice of every layer's rows (:meth:`Config.helper_config`). ``i_x``
  words go to every core at once (``core`` ignored). After each layer's gate
  phase every core has pushed its slice of h; the exchange forwards core 0's
  slice, then core 1's, ..., one word a cycle, to every core's ``i_hx`` at
  once (each core's ``GATHER`` phase writes the whole vector into its store:
  an all-gather over a shared bus), and the last layer's words also to
  ``o_h``, tagged N-1 as in ``layers`` mode. ``exchange_cycles`` counts the
  cycles in which some core is in its ``GATHER`` phase (the exchange's cost,
  waiting for the slowest core's slice included).

``status`` is the core's (busy, idle, error) over the whole design: idle when
every core is idle, no command is pending and every link FIFO is empty.
``cycles`` counts cycles with some core busy, ``core_steps`` each core's step
counter; ``core_cycles``, ``core_wait_cycles`` and ``core_status`` are each
core's own ``cycles``, ``wait_cycles`` and ``status`` (the host link reports
them per core). With ``link_stalls`` (tests) an input ``link_stall`` (two bits
per link: writer side, reader side) holds a link's transfer for a cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from ..interface.commands import Op
from ..interface.multicore import (
    BROADCAST,
    CORE_BITS,
    core_models,
    multicore_command_fields,
    stack_models,
)
from .accelerator import make_accelerator

__all__ = ["MultiCore", "make_multicore", "multicore_command_layout"]


def multicore_command_layout(cfgs: list[Config]) -> data.StructLayout:
    """``i_cmd``: op, sel, addr, data (widest over the cores), then ``core``
    (:func:`rnnaccel.interface.multicore.multicore_command_fields`)."""
    return data.StructLayout({n: unsigned(b) for n, b in multicore_command_fields(cfgs).items()})


def make_multicore(cfg: Config, weights=None, models=None, **kw) -> "MultiCore":
    """The MultiCore of ``cfg``: ``layers``: the stack ``(cfg, weights)`` split over ``cfg.cores`` cores;
    ``programs``: ``models`` (one (config, weights) per core, ``cfg.cores`` of them; default ``cfg`` on every core)."""
    if cfg.core_mode in ("layers", "helpers"):
        return MultiCore(stack_models(cfg, weights), cfg.core_mode, **kw)
    models = models if models is not None else [(cfg, weights)] * cfg.cores
    if len(models) != cfg.cores:
        raise ValueError(f"config has cores = {cfg.cores}, {len(models)} models given")
    return MultiCore(models, "programs", **kw)


class MultiCore(wiring.Component):
    """N accelerator cores behind one command port and one tagged stream pair (see the module docstring).

    Parameters
    ----------
    models : list of (Config, weights)
        Each core's one-core config and weights (weights may be None when not in ROM).
    mode : str
        ``programs``, ``layers`` or ``helpers`` (each core's config then one row slice of the same model:
        :func:`rnnaccel.interface.multicore.helper_models`).
    link_depth : int
        Words of the FIFO between two pipeline cores (``layers``); default one step (hidden size), 0 connects
        the cores' streams directly.
    link_stalls : bool
        Add the ``link_stall`` test input.
    """

    def __init__(
        self,
        models: list[tuple[Config, dict]],
        mode: str = "programs",
        *,
        link_depth: int | None = None,
        link_stalls: bool = False,
    ):
        if mode not in ("programs", "layers", "helpers"):
            raise ValueError(f"MultiCore mode must be 'programs', 'layers' or 'helpers', not {mode!r}")
        self._models = core_models(models) if mode != "helpers" else list(models)
        self._mode = mode
        cfgs = [c for c, _ in self._models]
        n = len(cfgs)
        if mode == "layers":
            for a, b in zip(cfgs, cfgs[1:]):
                if b.input_size != a.hidden_size or b.q_state != a.q_state:
                    raise ValueError("layer pipeline: each core's input must be the previous core's hidden state")
        if mode == "helpers":
            same = cfgs[0].replace(row_slice=0, name="")
            for i, c in enumerate(cfgs):
                if (c.row_slices, c.row_slice) != (n, i) or c.replace(row_slice=0, name="") != same:
                    raise ValueError(f"helper cores: core {i} must be row slice {i} of {n} of one model")
        self._link_depth = cfgs[0].hidden_size if link_depth is None else link_depth
        self._link_stalls = link_stalls and mode == "layers" and n > 1
        self._xs = max(c.q_state.width for c in cfgs)
        word = data.StructLayout({"data": signed(self._xs), "core": unsigned(CORE_BITS)})
        members = {
            "i_x": In(stream.Signature(word)),
            "o_h": Out(stream.Signature(word)),
            "i_cmd": In(stream.Signature(multicore_command_layout(cfgs))),
            "x_ready": Out(n),
            "status": Out(3),
            "cycles": Out(32),
            "core_steps": Out(data.ArrayLayout(unsigned(32), n)),
            "core_cycles": Out(data.ArrayLayout(unsigned(32), n)),
            "core_wait_cycles": Out(data.ArrayLayout(unsigned(32), n)),
            "core_status": Out(data.ArrayLayout(unsigned(3), n)),
        }
        if self._link_stalls:
            members["link_stall"] = In(2 * (n - 1))
        if mode == "helpers":
            members["exchange_cycles"] = Out(32)
        super().__init__(members)

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def models(self) -> list[tuple[Config, dict]]:
        return list(self._models)

    @property
    def link_depth(self) -> int:
        return self._link_depth

    @property
    def n_cores(self) -> int:
        return len(self._models)

    def elaborate(self, platform):
        m = Module()
        cores = []
        for i, (cfg, w) in enumerate(self._models):
            core = make_accelerator(cfg, w if cfg.weights_in_rom else None)
            m.submodules[f"core{i}"] = core
            cores.append(core)
        bad = Signal(name="bad_core")
        pend = self._commands(m, cores, bad)
        links_empty = self._streams(m, cores, bad)

        idle = Signal()
        m.d.comb += idle.eq(Cat(*[c.status[1] for c in cores]).all() & (pend == 0) & links_empty)
        error = Cat(*[c.status[2] for c in cores]).any() | bad
        m.d.comb += self.status.eq(Cat(~idle, idle, error))
        with m.If(Cat(*[c.status[0] for c in cores]).any()):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        with m.If(self.i_cmd.valid & self.i_cmd.ready & (self.i_cmd.payload.op == Op.CLEAR_COUNTERS)):
            m.d.sync += [self.cycles.eq(0), bad.eq(0)]
        for i, core in enumerate(cores):
            m.d.comb += [
                self.core_steps[i].eq(core.steps),
                self.core_cycles[i].eq(core.cycles),
                self.core_wait_cycles[i].eq(core.wait_cycles),
                self.core_status[i].eq(core.status),
            ]
        return m

    def _commands(self, m: Module, cores, bad) -> Signal:
        """Latch a command, offer it to its core(s) until each has taken it; returns the pending mask."""
        n = len(cores)
        pend = Signal(n, name="cmd_pending")
        held = Signal(self.i_cmd.payload.shape(), name="cmd_held")
        cmd = self.i_cmd.payload
        m.d.comb += self.i_cmd.ready.eq(pend == 0)
        with m.If(self.i_cmd.valid & self.i_cmd.ready):
            m.d.sync += held.eq(cmd)
            with m.If(cmd.core == BROADCAST):
                m.d.sync += pend.eq((1 << n) - 1)
            with m.Elif(cmd.core < n):
                m.d.sync += pend.eq(Const(1, n) << cmd.core)
            with m.Else():
                m.d.sync += bad.eq(1)
        taken = Signal(n, name="cmd_taken")
        for i, core in enumerate(cores):
            p = core.i_cmd.payload
            m.d.comb += [
                core.i_cmd.valid.eq(pend[i]),
                p.op.eq(held.op),
                p.sel.eq(held.sel),
                p.addr.eq(held.addr),
                p.data.eq(held.data[: len(p.data)]),
                taken[i].eq(core.i_cmd.valid & core.i_cmd.ready),
            ]
        with m.If(taken.any()):
            m.d.sync += pend.eq(pend & ~taken)
        return pend

    def _streams(self, m: Module, cores, bad):
        """Inputs to the cores, links between pipeline cores, outputs merged; returns 'every link empty'."""
        n = len(cores)
        word = self.i_x.payload
        if self._mode == "helpers":
            self._exchange(m, cores)
            return Const(1)
        if self._mode == "layers":
            c0 = cores[0]
            m.d.comb += [
                c0.i_x.valid.eq(self.i_x.valid),
                c0.i_x.payload.eq(word.data),
                self.i_x.ready.eq(c0.i_x.ready),
                self.x_ready.eq(c0.i_x.ready),
            ]
            empties = [self._link(m, i, cores[i], cores[i + 1]) for i in range(n - 1)]
            last = cores[-1]
            m.d.comb += [
                self.o_h.valid.eq(last.o_h.valid),
                self.o_h.payload.data.eq(last.o_h.payload),
                self.o_h.payload.core.eq(n - 1),
                last.o_h.ready.eq(self.o_h.ready),
            ]
            return Cat(*empties).all() if empties else Const(1)
        # programs: demultiplex inputs by core, merge outputs round robin
        ready_any = Signal()
        for i, core in enumerate(cores):
            hit = word.core == i
            m.d.comb += [
                core.i_x.valid.eq(self.i_x.valid & hit),
                core.i_x.payload.eq(word.data),
                self.x_ready[i].eq(core.i_x.ready),
            ]
            with m.If(hit):
                m.d.comb += ready_any.eq(core.i_x.ready)
        missing = word.core >= n
        m.d.comb += self.i_x.ready.eq(ready_any | missing)
        with m.If(self.i_x.valid & missing):
            m.d.sync += bad.eq(1)
        self._merge(m, cores)
        return Const(1)

    def _exchange(self, m: Module, cores) -> None:
        """helpers: inputs to every core at once; the all-gather of each layer's h slices (see the module
        docstring), the last layer's also to ``o_h``."""
        n, cfg = len(cores), self._models[0][0]
        all_in = Signal(name="x_all_ready")
        m.d.comb += all_in.eq(Cat(*[c.i_x.ready for c in cores]).all())
        for core in cores:
            m.d.comb += [core.i_x.valid.eq(self.i_x.valid & all_in), core.i_x.payload.eq(self.i_x.payload.data)]
        m.d.comb += [self.i_x.ready.eq(all_in), self.x_ready.eq(all_in.replicate(n))]
        # the slice being forwarded (its core and word) and the layer it belongs to
        src = Signal(range(n), name="xc_core")
        cnt = Signal(range(cfg.row_hidden), name="xc_word")
        layer = Signal(range(cfg.num_layers), name="xc_layer")
        last = Signal(name="xc_last_layer")
        valid, payload = Signal(name="xc_valid"), Signal(signed(self._xs), name="xc_data")
        m.d.comb += [
            last.eq(layer == cfg.num_layers - 1),
            valid.eq(Array(c.o_h.valid for c in cores)[src]),
            payload.eq(Array(c.o_h.payload for c in cores)[src]),
        ]
        gathering = Cat(*[c.i_hx.ready for c in cores])  # the cores in their GATHER phase
        with m.If(gathering.any()):
            m.d.sync += self.exchange_cycles.eq(self.exchange_cycles + 1)
        with m.If(self.i_cmd.valid & self.i_cmd.ready & (self.i_cmd.payload.op == Op.CLEAR_COUNTERS)):
            m.d.sync += self.exchange_cycles.eq(0)
        take = Signal(name="xc_take")
        sinks = gathering.all() & (self.o_h.ready | ~last)
        m.d.comb += take.eq(valid & sinks)
        for i, core in enumerate(cores):
            m.d.comb += [
                core.i_hx.valid.eq(take),
                core.i_hx.payload.eq(payload),
                core.o_h.ready.eq(take & (src == i)),
            ]
        m.d.comb += [
            self.o_h.valid.eq(valid & last & gathering.all()),
            self.o_h.payload.data.eq(payload),
            self.o_h.payload.core.eq(n - 1),
        ]
        with m.If(take):
            m.d.sync += cnt.eq(cnt + 1)
            with m.If(cnt == cfg.row_hidden - 1):
                m.d.sync += [cnt.eq(0), src.eq(src + 1)]
                with m.If(src == n - 1):
                    m.d.sync += [src.eq(0), layer.eq(Mux(last, 0, layer + 1))]

    def _link(self, m: Module, i: int, src, dst):
        """core i's o_h -> FIFO -> core i+1's i_x (with the test stalls); returns 'this link is empty'."""
        stall_w = self.link_stall[2 * i] if self._link_stalls else Const(0)
        stall_r = self.link_stall[2 * i + 1] if self._link_stalls else Const(0)
        if self._link_depth == 0:
            stall = stall_w | stall_r
            m.d.comb += [
                dst.i_x.valid.eq(src.o_h.valid & ~stall),
                dst.i_x.payload.eq(src.o_h.payload),
                src.o_h.ready.eq(dst.i_x.ready & ~stall),
            ]
            return Const(1)
        q = fifo.SyncFIFOBuffered(width=len(src.o_h.payload), depth=max(2, self._link_depth))
        m.submodules[f"link{i}"] = q
        m.d.comb += [
            q.w_data.eq(src.o_h.payload),
            q.w_en.eq(src.o_h.valid & ~stall_w),
            src.o_h.ready.eq(q.w_rdy & ~stall_w),
            dst.i_x.valid.eq(q.r_rdy & ~stall_r),
            dst.i_x.payload.eq(q.r_data),
            q.r_en.eq(dst.i_x.ready & ~stall_r),
        ]
        return q.level == 0

    def _merge(self, m: Module, cores) -> None:
        """Round-robin merge of the cores' outputs; a choice is held while ``o_h`` is not ready."""
        n = len(cores)
        rr = Signal(range(n), name="out_rr")
        held, locked = Signal(range(n), name="out_held"), Signal(name="out_locked")
        pick = Signal(range(n), name="out_pick")
        valids = Cat(*[c.o_h.valid for c in cores])
        with m.Switch(rr):
            for r in range(n):
                with m.Case(r):
                    order = [(r + j) % n for j in range(n)]
                    m.d.comb += pick.eq(order[-1])
                    for j in reversed(order):  # the first valid in round-robin order wins
                        with m.If(valids[j]):
                            m.d.comb += pick.eq(j)
        sel = Mux(locked, held, pick)
        for i, core in enumerate(cores):
            with m.If(sel == i):
                m.d.comb += [
                    self.o_h.valid.eq(core.o_h.valid),
                    self.o_h.payload.data.eq(core.o_h.payload),
                    self.o_h.payload.core.eq(i),
                    core.o_h.ready.eq(self.o_h.ready),
                ]
        m.d.sync += [locked.eq(self.o_h.valid & ~self.o_h.ready), held.eq(sel)]
        with m.If(self.o_h.valid & self.o_h.ready):
            m.d.sync += rr.eq(Mux(sel == n - 1, 0, sel + 1))
