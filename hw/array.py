"""The whole accelerator: memories, MVU, gate units and the sequencer.

Dataflow of one time step (the sequencer's *program*, built in Python from
the config and compiled to one FSM state per phase):

1. ``LOAD``: wait until the loader has the step's input in its input buffer
   (the input store: slot ``x0``'s layout twice, three times for SRU and
   QRNN, :func:`input_buffers`; its own write port). The loader takes
   ``input_size`` words from the input FIFO (a window-2 QRNN first copies
   x_{t-1}, the previous buffer's first half, into the second half).
2. For each layer: ``MVU W`` (input projections into the XP memories), then
   for LSTM/GRU/RNN ``MVU U`` (recurrent projections into HP); a reset-before
   GRU runs ``MVU Urz``, a ``GATE reset`` phase writing r*h into slot ``rh``,
   then ``MVU Un``.
3. ``GATE``: the layer's gate unit streams over the H elements (one per
   cycle, pipelined): reads XP/HP/c/h, writes h' (vector slot ``h{l}``) and
   c'; the last layer also pushes h' into the output FIFO (the sequencer
   first waits until that FIFO is empty: ``WAIT_OUT``).

Overlap across steps (the same for every cell): while step t runs, the loader
takes x_{t+1} into the next input buffer as soon as the FIFO holds all of it
(and no command is waiting; never in the step's last cycle), and with three
buffers x_{t+2} after it; in the last issue cycle of step t's last plan,
the MVU starts layer 0's input projection of step t+1 (``W x_{t+1}``, which
does not depend on h_t) into the other XP buffer (XP is double-buffered by
step parity), so it runs under step t's last gate phase; step t+1 then starts
without ``IDLE`` (and without its ``LOAD`` phase when its input is in) and its ``MVU W`` phase
only waits for that plan's end (or, when it is the step's only plan, adopts
it, so that the next step's run can follow it in turn). A one-layer SRU or
QRNN runs two steps ahead (:func:`projects_two_ahead`).

Overlap inside a step: plans are chained (:class:`~rnnaccel.hw.mvu.CirculantMVU`
takes the next plan in the last issue cycle of the one before, while that one
drains: plans read vector slots, which only gate phases write), and a gate
phase whose slot the plan before it does not read runs beside that plan,
issuing each element once the plan has written its row of the last gate the
phase reads (a reset-before GRU's reset phase beside ``MVU Urz``; an upper
layer's SRU/QRNN update beside its input projection). In a stack of LSTM, RNN
or reset-after GRU layers the program runs layer l+1's recurrent plan ahead of
layer l's gate phase (:func:`recurrent_ahead`: ``W0, U0, U1, GATE 0, W1, U2,
GATE 1, ...``): ``U(l+1)`` reads only the previous step's h(l+1), so layer l's
gate phase runs beside it (the recurrent projections are double-buffered by
layer parity), and each upper layer's gate phase runs beside its ``W``. Gate
phases that read the vector store while the MVU does use a second read port. h_{t+1} needs all
of U h_t, so a recurrent plan never starts before the gate phase writing its
source slot has finished (:func:`loop_bound`).

Between steps the sequencer is ``IDLE`` (never with a prefetched input) and
accepts commands (see :class:`Op`): clear the state, write h or c words
(initial state), write weight/bias words (when not baked into ROM), clear the
counters.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory

from ..numeric.config import Config
from ..layout.image import h_double_buffered, plans, vector_depth, vector_slots
from ..layout.runtime import PLAN_FIELDS
from .buffers import VectorStore, state_ram_attrs
from .gates import GateUnit, gate_latency
from .mvu import CirculantMVU
from .sequencer import PHASE_CLEAR, Op, SequencerBase

__all__ = [
    "ArrayAccelerator",
    "adopt_w0",
    "array_program",
    "chains",
    "input_buffers",
    "launches_early",
    "loop_bound",
    "projects_two_ahead",
    "recurrent_ahead",
]


def loop_bound(cfg: Config) -> int:
    """A lower bound of the array datapath's cycles per step from the recurrence (0 without a recurrent matrix).

    h_{t+1} of a layer needs all of U h_t, and U's first row needs all of h_t: from the cycle h_t is
    complete, the layer's recurrent plan issues its sweep (one tile cycle a clock, after the start
    cycle), the last row drains through the MVU (:func:`rnnaccel.hw.mvu.mvu_latency`), then the last
    element is read (one cycle, ``G`` with stacked projections) and passes the gate unit
    (:attr:`~rnnaccel.hw.gates.GateUnit.latency`). A reset-before GRU's loop goes through the MVU and the gate
    unit twice: ``Un`` (its first row needs all of r * h) starts after both ``Urz``'s sweep (the MVU) and the
    reset phase's last element (r * h: ``Urz``'s last row of r, its first gate, through the MVU and the gate
    unit), then the update as above. Everything else (the other gate
    elements, the input projections) may overlap; the bound is the largest over the layers.
    """
    from .mvu import mvu_latency, plan_gaps

    best = 0  # the model's own sizes (on a run-time-dimension design: the model run, not the largest)
    T, Pr = cfg.tile, cfg.pe_rows
    for layer in range(cfg.num_layers):
        rec = [p for p in plans(cfg) if p.layer == layer and p.dst == "hp"]
        if not rec:
            continue
        reads = len(cfg.layer_gates(layer)) if cfg.stacked_projections else 1
        last, before = rec[-1], 0
        if last.name == "Un":
            # Un starts once the MVU has issued Urz and r * h is complete
            urz = rec[0]
            j = cfg.padded(cfg.row_hidden) // T - 1  # the last tile row of r, in row round j // Pr
            issue = (j // Pr + 1) * urz.rounds_c * T + (j // Pr) * plan_gaps(cfg, urz)
            out = issue + mvu_latency(cfg) - Pr + j % Pr  # the segment's place in its round's serialization
            before = max(urz.sweep_cycles, out + 1 + gate_latency(cfg, "reset"))
        best = max(best, 1 + before + last.sweep_cycles + mvu_latency(cfg) + reads + gate_latency(cfg, "update"))
    return best


def gate_slots(cfg: Config, phase) -> tuple[str, str]:
    """(vector slot gate phase ``phase`` reads, slot it writes). With :func:`~rnnaccel.layout.image.h_double_buffered`
    the update phase writes ``h0b``, the slot that is not h_t's this step (the names swap rows by step parity, for
    the MVU, the gate phases and the host's writes alike)."""
    layer, ph = phase[1], phase[2]
    if ph == "reset":
        return f"h{layer}", "rh"
    if h_double_buffered(cfg):
        return "h0", "h0b"
    if cfg.cell == "sru":
        return ("x0" if layer == 0 else f"h{layer - 1}"), f"h{layer}"
    return f"h{layer}", f"h{layer}"


def dep_phase(prog, plan_list, i) -> int:
    """The plan phase whose output gate phase ``i`` waits for: the last plan of its layer before it (a reset
    phase: the plan just before it)."""
    if prog[i][2] == "reset":
        return i - 1
    layer = prog[i][1]
    return max(j for j in range(i) if prog[j][0] == "mvu" and plan_list[prog[j][1]].layer == layer)


def is_concurrent(cfg: Config, prog, plan_list, i) -> bool:
    """Gate phase ``i`` of ``prog`` runs beside the plans before it: a gate phase right after a plan phase (or
    after a ``wait_out`` right after one), when the plan it waits for (:func:`dep_phase`), or the plans started
    after it if there are any, do not read the slot the gate writes (a reset-before GRU's reset phase beside
    ``MVU Urz``; a layer's update beside its input projection when nothing recurrent follows, or beside the
    next layer's recurrent plan with :func:`recurrent_ahead`; layer 0's update beside its input projection,
    whose run may be the previous step's prefetch: its rows are counted per XP buffer). A plan reading the
    written slot is safe when a later plan has started: the MVU takes the next plan in the last issue cycle of
    the one before, so its reads are over by then."""
    if prog[i][0] != "gate" or i == 0:
        return False
    j = i - 1 if prog[i - 1][0] != "wait_out" or i < 2 else i - 2
    if prog[j][0] != "mvu":
        return False
    d = dep_phase(prog, plan_list, i)
    writes = gate_slots(cfg, prog[i])[1]
    later = [j for j in range(d + 1, i) if prog[j][0] == "mvu"]
    return all(plan_list[prog[j][1]].src != writes for j in (later or [d]))


def chains(prog, concurrent, i) -> bool:
    """Plan phase ``i`` ends as soon as its plan is started: the next phase is another plan, or a gate phase
    beside it (maybe behind a ``wait_out``)."""
    nxt = prog[i + 1 : i + 3]
    if not nxt:
        return False
    beside = (i + 1 in concurrent) or (nxt[0][0] == "wait_out" and i + 2 in concurrent)
    return nxt[0][0] == "mvu" or beside


def adopt_w0(prog, concurrent) -> bool:
    """A step whose input is in and whose input projection (plan 0) was launched during the step before starts
    at phase 2: phase 1 runs plan 0 and ends at once (:func:`chains`), so it would only adopt the run."""
    return len(prog) > 2 and prog[1] == ("mvu", 0) and chains(prog, concurrent, 1)


def launches_early(prog, j) -> bool:
    """Plan phase ``j`` is launched from the last cycle of the phase before it when the MVU takes the plan then:
    a plan other than layer 0's input projection (prefetched, :func:`adopt_w0`) after a gate phase, or as the
    step's phase 2 after an adopted input projection (not with run-time dimensions, whose plans of missing
    layers are skipped). Its source slot is complete: the gate phase's last write lands before the first read."""
    if not 0 < j < len(prog) or prog[j][0] != "mvu" or prog[j][1] == 0:
        return False
    return prog[j - 1][0] == "gate" or j == 2


def recurrent_ahead(cfg: Config) -> bool:
    """The program runs layer l+1's recurrent plan ahead of layer l's gate phase (see :func:`array_program`):
    a stack of two or more layers (with run-time dimensions: ``max_layers``) of LSTM, RNN or reset-after GRU."""
    plain = cfg.cell in ("lstm", "rnn") or (cfg.cell == "gru" and cfg.gru_reset_after)
    return plain and cfg.at_max().num_layers >= 2


def input_buffers(cfg: Config) -> int:
    """Input vectors the input store holds: three for a cell without a recurrent matrix (SRU, QRNN), two
    otherwise.

    With two, x_{t+1} is loaded while step t runs and ``W x_{t+1}`` follows once it is in; on a one-layer SRU
    or QRNN, whose step is little more than that projection, the load (a word a cycle) then sits between the
    MVU's runs. With a third buffer the loader takes x_{t+2} during step t (into the buffer x_{t-1} used, free
    once step t starts: an SRU's gate phase reads x_t until the step ends), so ``W x_{t+2}`` starts as soon as
    step t+1 does and the MVU runs the input projections back to back. A cell with a recurrent matrix waits
    for h_t anyway (:func:`loop_bound`), so it keeps two."""
    return 3 if cfg.cell in ("sru", "qrnn") else 2


def projects_two_ahead(cfg: Config, prog) -> bool:
    """Step t also starts ``W x_{t+2}``, into its own XP buffer, once its gate phase has issued its last
    element (the phase reads XP only when it issues) and ``W x_{t+1}`` has started: a one-layer SRU or QRNN
    whose step is layer 0's input projection and the gate phase beside it (three input buffers, no run-time
    dimensions). The gate unit's latency then no longer sits between the MVU's runs; the run is adopted as the
    next step's prefetched one when the step ends."""
    plans_ = [p for p in prog if p[0] == "mvu"]
    gates = [p for p in prog if p[0] == "gate"]
    shape = len(gates) == 1 and prog == [("load",), ("mvu", 0), ("wait_out",), gates[0]]
    return input_buffers(cfg) == 3 and not cfg.runtime_dims and plans_ == [("mvu", 0)] and shape


def array_program(cfg: Config) -> list[tuple]:
    """Phases of one time step of the array datapath, in order (see the module docstring).

    With run-time dimensions (``cfg.runtime_dims``) the program is the maximum config's and every layer's
    update gate is preceded by its own ``("wait_out", layer)``: the step ends after the gate phase of layer
    ``layers - 1`` (a register), and only that layer's wait holds the sequencer.

    With :func:`recurrent_ahead` the plans of a stack run in the order ``W0, U0, U1, gate 0, W1, U2, gate 1,
    ..., W(L-1), gate L-1``: ``U(l+1) h(l+1)`` reads only the previous step's state, so it runs before
    layer l's gate phase, which then runs beside it, and layer l's gate phase runs beside ``W l`` (the
    projection memories of the recurrent side are double-buffered by layer parity). With run-time dimensions
    a plan of a layer the model run does not have is then skipped (:meth:`_ArrayBuild.phase_mvu`).

    Without run-time dimensions the last layer's update gate is preceded by ``wait_out``; a gate phase behind
    a ``wait_out`` behind a plan still runs beside that plan (:func:`is_concurrent`, :func:`chains`), so the
    output FIFO drains while the plans run.

    A helper core (``cfg.row_slices > 1``, :mod:`rnnaccel.hw.multicore` ``helpers``) computes its slice of
    every layer's rows; every layer's gate phase pushes its slice of h into the output FIFO (so each layer's
    phases start with a ``wait_out``) and is followed by ``GATHER``, which writes the whole h, every core's
    slice in order, from the exchange stream ``i_hx`` into slot ``h{l}`` before anything reads it: ``W l,
    U l, wait_out, GATE l, GATHER l``, or with :func:`recurrent_ahead` ``wait_out, W0, U0, U1, GATE 0,
    GATHER 0, wait_out, W1, U2, GATE 1, GATHER 1, ...`` (``U(l+1)`` runs beside gate phase and exchange)."""
    runtime = cfg.runtime_dims
    ahead = recurrent_ahead(cfg)
    cfg = cfg.at_max()
    ps = plans(cfg)
    by_layer = {}
    for p in ps:
        by_layer.setdefault(p.layer, []).append(p)
    qrnn2 = cfg.cell == "qrnn" and cfg.qrnn_window == 2
    prog: list[tuple] = []
    prog.append(("load",))
    last = cfg.num_layers - 1
    for layer in range(cfg.num_layers):
        lp = by_layer[layer]
        if cfg.row_slices > 1 and not ahead:
            prog += [("mvu", p.index) for p in lp]
            if qrnn2 and layer < last:
                prog.append(("copy", f"h{layer}"))
            prog += [("wait_out",), ("gate", layer, "update"), ("gather", layer)]
            continue
        if cfg.cell == "gru" and not cfg.gru_reset_after:
            phases = [("mvu", lp[0].index), ("mvu", lp[1].index), ("gate", layer, "reset"), ("mvu", lp[2].index)]
        elif ahead:
            nxt = by_layer.get(layer + 1)
            phases = [("mvu", p.index) for p in (lp if layer == 0 else lp[:1])]
            if nxt:
                phases.append(("mvu", nxt[1].index))  # U of the next layer, ahead of this gate phase
        else:
            phases = [("mvu", p.index) for p in lp]
        if runtime:
            phases.append(("wait_out", layer))  # each layer's: only the model run's last layer waits
        elif cfg.row_slices > 1:
            phases.insert(0, ("wait_out",))  # a helper core pushes every layer's slice (ahead)
        elif layer == last:
            phases.append(("wait_out",))  # just before the gate phase, which may still run beside the last plan
        if qrnn2 and layer < last:
            # h_{t-1} of a window-2 layer that feeds the next: its h (still h_{t-1}, which the next layer's
            # input projection read in the step before) into the slot's second half before the layer's plans,
            # so that its update phase may run beside its input projection
            prog.append(("copy", f"h{layer}"))
        prog += phases
        prog.append(("gate", layer, "update"))
        if cfg.row_slices > 1:
            prog.append(("gather", layer))
    return prog


class ArrayAccelerator(SequencerBase):
    """The accelerator for one config (and, with weights in ROM, one set of weights).

    Members
    -------
    i_x : In(stream of q_state words)
        ``input_size`` words per time step.
    o_h : Out(stream of q_state words)
        The last layer's hidden state, ``hidden_size`` words per step.
    i_cmd : In(stream of :func:`command_layout`)
        Commands, taken only between steps.
    status : Out(3)
        busy, idle, error bits (:data:`STATUS_BITS`).
    cycles, wait_cycles, steps : Out(32)
        Compute cycles (excluding waits on the host), cycles spent waiting for
        input words or output space, and completed time steps.
    phase : Out(8)
        The sequencer's phase: 0 idle, ``i + 1`` while running phase ``i`` of
        :attr:`program`, :data:`PHASE_CLEAR` while clearing the state (for profiling and debugging; the step
        ends in the last cycle of its last phase).
    i_hx : In(stream of q_state words) (a helper core only: ``cfg.row_slices > 1``)
        The exchange: each layer's whole h, every core's slice in order, taken in the ``GATHER`` phase
        (:class:`~rnnaccel.hw.multicore.MultiCore`, ``helpers``); ``o_h`` then carries this core's slice of
        every layer's h.
    skipped, skipped_macs : Out(32) (delta mode only)
        Column units skipped (zero delta: circulant k-segments, dense columns) and their
        multiply-accumulates (:class:`~rnnaccel.hw.mvu.CirculantMVU`).

    ``delta``: build delta-network mode (default ``cfg.delta_mode``; True also with thresholds of 0,
    which is exact). The MVU computes each plan's deltas and skips its inactive columns
    (:mod:`rnnaccel.hw.mvu`); ``RESET_STATE`` also zeroes its references and accumulators.
    """

    def __init__(self, cfg: Config, weights=None, *, image=None, delta: bool | None = None):
        if isinstance(cfg, Config) and cfg.datapath != "array":
            raise ValueError(f"Accelerator is the array datapath; datapath {cfg.datapath!r} needs make_accelerator()")
        if delta is None:
            delta = cfg.delta_mode if isinstance(cfg, Config) else False
        super().__init__(cfg, weights, array_program(cfg) if isinstance(cfg, Config) else [], image=image, delta=delta)

    def elaborate(self, platform):
        return _ArrayBuild(self).module()


class _ArrayBuild:
    """Builds :class:`ArrayAccelerator`'s module: one method per concern, emitted in a fixed order.

    The blocks (vector store, MVU, projection and cell-state memories, the input
    store, gate units), the MVU-to-projection writes, the element walkers, the
    gate units' inputs, the vector-store write mux, then the sequencer FSM (the
    ``IDLE`` command decode, ``CLEAR``, one state per phase of the program;
    :meth:`end_step` ends a step in its last phase's last cycle), the loader FSM and the prefetch of the next
    step's input projection, which run beside it.
    """

    def __init__(self, acc: ArrayAccelerator):
        self.acc = acc
        self.runtime = acc.cfg.runtime_dims
        cfg = self.cfg = acc.cfg.at_max()  # run-time dimensions: the memories hold the largest model
        self.T, self.Pc = cfg.tile, cfg.pe_cols
        # a helper core (row_slices > 1) computes H = its slice of the rows, from segment seg0 of h; the
        # vector slots and the cell state hold every element (Hp per layer)
        self.helper = cfg.row_slices > 1
        self.H = cfg.row_hidden
        self.Hp = cfg.padded(cfg.hidden_size)
        self.segs_h = cfg.padded(self.H) // self.T
        self.seg0 = cfg.row_offset // self.T
        self.xs, self.cs, self.pw = cfg.q_state.width, cfg.q_cell.width, cfg.q_pre.width
        self.L = cfg.num_layers
        self.slots = vector_slots(cfg)
        self.vdepth = vector_depth(cfg)
        self.gmax = max(len(cfg.layer_gates(layer)) for layer in range(self.L))
        self.stacked = cfg.stacked_projections
        self.prog = acc._program
        self.plan_list = plans(cfg)
        # gate phases started with their plan (their rows are issued as the plan writes them)
        self.concurrent = {i for i in range(len(self.prog)) if self.is_concurrent(i)}
        # the plans they wait for: layer 0's input projection (plan 0, maybe prefetched in the step before) is
        # followed by its rows per XP buffer (``x_rows``), any other by the cc_* registers armed at its launch
        self.dep_phases = {self.dep_phase(i) for i in self.concurrent if self.prog[self.dep_phase(i)][1] != 0}
        # phase 1 is layer 0's input projection, chained: a step whose input projection was prefetched skips it
        self.adopt_w0 = adopt_w0(self.prog, self.concurrent)
        self.two_ahead = self.adopt_w0 and projects_two_ahead(self.cfg, self.prog)
        self.beside_w0 = any(self.prog[self.dep_phase(i)][1] == 0 for i in self.concurrent)
        # the next layer's U runs ahead: recurrent projections double-buffered by layer parity
        self.ahead = recurrent_ahead(acc.cfg)
        self.hp_halves = 2 if self.ahead else 1
        # ... of which those reading the vector store need a second read port (the MVU has the first)
        self.second_read = any(self.gate_reads_store(self.prog[i]) for i in self.concurrent)
        # h0 double-buffered by step parity: slot name h0 (h_t) is at slot h0b's rows when ``h_par`` is set
        self.h_double = h_double_buffered(cfg)
        self.h_par = Signal(name="h_par")
        # a step's end enters phases 1 to 3 of the next in the cycle h_par flips: none may be a gate phase, whose
        # entry takes its slots' rows from h_par
        assert not (self.h_double and any(ph[0] == "gate" for ph in self.prog[1:4])), self.prog
        self.m = Module()

    def gate_reads_store(self, phase) -> bool:
        """The gate phase reads a word of the vector store per element (GRU: h; SRU above layer 0: x)."""
        return self.cfg.cell == "gru" or (self.cfg.cell == "sru" and phase[1] > 0)

    def gate_slots(self, phase) -> tuple[str, str]:
        """(slot the gate phase reads, slot it writes)."""
        return gate_slots(self.cfg, phase)

    def dep_phase(self, i) -> int:
        return dep_phase(self.prog, self.plan_list, i)

    def is_concurrent(self, i) -> bool:
        return is_concurrent(self.cfg, self.prog, self.plan_list, i)

    def need_gates(self, i) -> int:
        """Concurrent gate phase ``i``: gates of its plan's output before the last one it reads."""
        plan = self.plan_list[self.prog[self.dep_phase(i)][1]]
        layer, ph = self.prog[i][1], self.prog[i][2]
        last = 0 if ph == "reset" else len(self.cfg.layer_gates(layer)) - 1
        return min(last, plan.gate0 + plan.gates - 1) - plan.gate0

    def module(self) -> Module:
        self.parameters()
        self.blocks()
        self.projection_writes()
        self.walkers()
        self.gate_inputs()
        self.status_and_store_writes()
        self.sequencer()
        return self.m

    # ------------------------------------------------------------------ run-time dimensions
    def parameters(self):
        """Run-time dimensions: one register per :func:`rnnaccel.layout.runtime.param_names` entry, reset to
        the generating model's layout and written by ``SET_PARAM`` (``prm``). Without them, :meth:`p`
        gives the model's constants and nothing is built."""
        self.prm = self.acc._parameter_registers()

    def p(self, name, const):
        """Parameter ``name``: its register with run-time dimensions, else ``const`` (the config's value; also
        for a parameter the cell does not have, such as a window-1 design's ``x0_half``)."""
        return self.prm.get(name, const)

    def slot_base(self, name):
        """First row of vector slot ``name`` (``x0`` is always at row 0)."""
        base = self.slots[name].base
        if self.h_double and name in ("h0", "h0b"):
            swap = self.h_par if name == "h0" else ~self.h_par
            return Mux(swap, self.slots["h0b"].base, self.slots["h0"].base)
        return base if name == "x0" else self.p(f"slot_{name}", base)

    def host_row(self, addr):
        """The vector-store row a host's ``WRITE_VEC`` at row ``addr`` writes: with a double-buffered h, a row of
        slot h0 or h0b (adjacent, h0b behind h0) is taken by name, so that a host writing h0 writes this step's
        h_t whatever the step parity."""
        if not self.h_double:
            return addr
        h0, h0b = self.slots["h0"], self.slots["h0b"]
        rows = h0b.base - h0.base
        assert rows == -(-h0b.segments // self.Pc)  # h0b right behind h0, the same size
        row = Signal.like(addr, name="host_row")
        self.m.d.comb += row.eq(addr)
        with self.m.If(self.h_par & (addr >= h0.base) & (addr < h0b.base + rows)):
            self.m.d.comb += row.eq(Mux(addr < h0b.base, addr + rows, addr - rows))
        return row

    # ------------------------------------------------------------------ blocks
    def blocks(self):
        m, cfg, T = self.m, self.cfg, self.T
        m.submodules.store = self.store = VectorStore(cfg, second_read=self.second_read)
        if self.acc.delta:
            m.submodules.mvu = self.mvu = CirculantMVU(cfg, image=self.acc.image, delta=True)
        else:
            m.submodules.mvu = self.mvu = CirculantMVU(cfg, image=self.acc.image)
        if self.h_double:
            m.d.comb += self.mvu.vec_alt.eq(self.h_par)
        if self.runtime:
            for p in self.mvu.plan_list:
                for f in PLAN_FIELDS:
                    m.d.comb += getattr(self.mvu, f"plan_{f}")[p.index].eq(self.prm[f"plan{p.index}_{f}"])
        # the output FIFO holds a step's outputs and two words more: the previous step's last two outputs may
        # still be in it when the next step's wait_out comes right after the step's end (:meth:`phase_wait_out`)
        # a step of a two-ahead design may enter its gate phase from the last cycle of the step before, past its
        # wait_out (:meth:`end_step`): a word more of room
        slack = 3 if self.two_ahead else 2
        self.in_fifo, self.out_fifo = self.acc._stream_fifos(m, out_slack=slack)
        # projection memories, T words per row: one per gate (all gates of an element read in one
        # cycle) or, with cfg.stacked_projections, one per side holding gate g at rows g*segs_h...
        # (read over G cycles per element)
        # XP holds two buffers (step parity): the next step's input projection is written while the
        # gate unit reads this step's
        self.n_proj, self.proj_depth = (1, self.gmax * self.segs_h) if self.stacked else (self.gmax, self.segs_h)
        proj = state_ram_attrs(T * self.pw, self.hp_halves * self.proj_depth)
        xproj = state_ram_attrs(T * self.pw, 2 * self.proj_depth)
        self.xp_mem = [
            memory.Memory(shape=unsigned(T * self.pw), depth=2 * self.proj_depth, init=[], attrs=xproj)
            for _ in range(self.n_proj)
        ]
        self.hp_mem = [
            memory.Memory(shape=unsigned(T * self.pw), depth=self.hp_halves * self.proj_depth, init=[], attrs=proj)
            for _ in range(self.n_proj)
        ]
        for g in range(self.n_proj):
            m.submodules[f"xp{g}"] = self.xp_mem[g]
            m.submodules[f"hp{g}"] = self.hp_mem[g]
        L, Hp, cs = self.L, self.Hp, self.cs
        self.c_mem = memory.Memory(shape=signed(cs), depth=L * Hp, init=[], attrs=state_ram_attrs(cs, L * Hp))
        m.submodules.cell_state = self.c_mem
        self.input_store()
        # gate units: one per distinct (gate count, phase)
        self.gate_units = {}
        for layer in range(L):
            phases = ["update"] + (["reset"] if cfg.cell == "gru" and not cfg.gru_reset_after else [])
            for ph in phases:
                key = (len(cfg.layer_gates(layer)), ph)
                if key not in self.gate_units:
                    gu = GateUnit(cfg, layer=layer, phase=ph)
                    self.gate_units[key] = gu
                    m.submodules[f"gate_{key[0]}_{ph}"] = gu

    def input_store(self):
        """The MVU's input-vector store: slot ``x0``'s layout :func:`input_buffers` times (buffer b at rows
        ``b * R``).

        Its own write port (the loader, ``CLEAR``) and two read ports: one for the MVU's input
        projection of layer 0, one for the loader's window-2 copy or the SRU gate phase of layer 0.
        Step t reads buffer ``xb`` (``xp_par`` with two buffers); the loader fills the buffers in turn.
        """
        m, T, Pc, xs = self.m, self.T, self.Pc, self.xs
        x0 = self.slots["x0"]
        assert x0.base == 0
        self.R = R = max(1, -(-x0.segments // Pc))
        self.NB = NB = input_buffers(self.cfg)
        self.xp_par = Signal(name="xp_par")
        self.xb = self.xp_par if NB == 2 else Signal(range(NB), name="x_buf")
        self.in_wr_en, self.in_wr_full = Signal(name="in_wr_en"), Signal(name="in_wr_full")
        self.in_wr_bank = Signal(range(Pc), name="in_wr_bank")
        self.in_wr_row = Signal(range(NB * R), name="in_wr_row")
        self.in_wr_mask, self.in_wr_word = Signal(T, name="in_wr_mask"), Signal(signed(xs), name="in_wr_word")
        self.in_wr_seg = Signal(T * xs, name="in_wr_seg")
        self.in_aux_addr, self.in_aux_en = Signal(range(NB * R), name="in_aux_addr"), Signal(name="in_aux_en")
        self.in_mvu_addr = Signal(range(NB * R), name="in_mvu_addr")
        self.in_mvu_data, self.in_aux_data = [], []
        # the second read port: the window-2 QRNN's copy of x_t, the SRU gate's highway input x_t
        self.aux_reads = self.cfg.cell == "sru" or (self.cfg.cell == "qrnn" and self.cfg.qrnn_window == 2)
        wdata = Signal(T * xs, name="in_wr_data")
        with m.If(self.in_wr_full):
            m.d.comb += wdata.eq(self.in_wr_seg)
        with m.Else():
            m.d.comb += wdata.eq(self.in_wr_word.replicate(T))
        for q in range(Pc):
            attrs = state_ram_attrs(T * xs, NB * R)
            mem = memory.Memory(shape=unsigned(T * xs), depth=NB * R, init=[], attrs=attrs)
            m.submodules[f"xin{q}"] = mem
            wp = mem.write_port(granularity=xs)
            m.d.comb += [
                wp.addr.eq(self.in_wr_row),
                wp.data.eq(wdata),
                wp.en.eq(self.in_wr_mask & (self.in_wr_en & (self.in_wr_bank == q)).replicate(T)),
            ]
            rp_mvu = mem.read_port()
            m.d.comb += rp_mvu.addr.eq(self.in_mvu_addr)
            self.in_mvu_data.append(rp_mvu.data)
            if self.aux_reads:
                # a second read port doubles the memory in block RAM: only the cells that read x beside the MVU
                rp_aux = mem.read_port()
                m.d.comb += [rp_aux.addr.eq(self.in_aux_addr), rp_aux.en.eq(self.in_aux_en)]
                self.in_aux_data.append(data.View(data.ArrayLayout(signed(xs), T), rp_aux.data))

    def xb_next(self, b, k=1):
        """The input buffer ``k`` after ``b`` (the loader fills them in turn)."""
        for _ in range(k):
            b = ~b if self.NB == 2 else Mux(b == self.NB - 1, 0, b + 1)
        return b

    def xb_prev(self, b):
        """The input buffer before ``b``."""
        return ~b if self.NB == 2 else Mux(b == 0, self.NB - 1, b - 1)

    def xb_row(self, b):
        """Input buffer ``b``'s first row."""
        return Mux(b, self.R, 0) if self.NB == 2 else b * self.R

    def projection_writes(self):
        """MVU output segments -> XP/HP rows, gate by gate.

        The destination is the output's plan (``mvu.o_plan``: with chaining a plan drains while the next
        one issues): its first gate and side are constants, its XP buffer (step parity) was kept at its
        launch (``plan_par``); ``w_gate``/``w_row`` count its segments from its first (``o_seg == 0``)."""
        m, mvu, segs_h = self.m, self.mvu, self.segs_h
        plist = mvu.plan_list
        self.w_gate = w_gate = Signal(range(self.gmax + 1))
        self.w_row = w_row = Signal(range(segs_h + 1))
        # per input-projection plan, the XP buffers of its (at most two) runs in flight: written at launch
        # (``par_wp``), read for its outputs (``par_rp``), the read pointer moving on at its ``done``
        self.plan_par = {}
        par_of = []
        for p in plist:
            if p.dst == "hp":
                par_of.append(Const(0, 1))
                continue
            q = [Signal(name=f"plan{p.index}_par{j}") for j in range(2)]
            wp, rp = Signal(name=f"plan{p.index}_par_wp"), Signal(name=f"plan{p.index}_par_rp")
            self.plan_par[p.index] = (q, wp)
            par_of.append(Array(q)[rp])
            with m.If(mvu.done & (mvu.o_plan == p.index)):
                m.d.sync += rp.eq(~rp)
        o_gate, o_row = Signal.like(w_gate, name="o_gate"), Signal.like(w_row, name="o_row")
        self.w_par = w_par = Signal(name="w_par")
        w_dst_hp = Signal(name="w_dst_hp")
        # the HP half of the output's layer (0 without double-buffering)
        hp_base = Signal(range(max(2, self.hp_halves * self.proj_depth)), name="w_hp_base")
        if self.hp_halves > 1:
            m.d.comb += hp_base.eq(Array(Const((p.layer % 2) * self.proj_depth) for p in plist)[mvu.o_plan])
        first = mvu.o_seg == 0
        m.d.comb += [
            o_gate.eq(Mux(first, Array(Const(p.gate0, range(self.gmax + 1)) for p in plist)[mvu.o_plan], w_gate)),
            o_row.eq(Mux(first, 0, w_row)),
            w_dst_hp.eq(Array(Const(p.dst == "hp", 1) for p in plist)[mvu.o_plan]),
            w_par.eq(Array(par_of)[mvu.o_plan]),
        ]
        xp_w = [mem.write_port() for mem in self.xp_mem]
        hp_w = [mem.write_port() for mem in self.hp_mem]
        if self.stacked:
            w_addr = Signal(range(max(2, self.proj_depth)))
            m.d.comb += w_addr.eq(o_gate * segs_h + o_row)
            m.d.comb += [
                xp_w[0].addr.eq(w_par * self.proj_depth + w_addr),
                xp_w[0].data.eq(mvu.o_data.as_value()),
                xp_w[0].en.eq(mvu.o_valid & ~w_dst_hp),
                hp_w[0].addr.eq(hp_base + w_addr),
                hp_w[0].data.eq(mvu.o_data.as_value()),
                hp_w[0].en.eq(mvu.o_valid & w_dst_hp),
            ]
        else:
            for g in range(self.gmax):
                m.d.comb += [
                    xp_w[g].addr.eq(w_par * segs_h + o_row),
                    xp_w[g].data.eq(mvu.o_data.as_value()),
                    xp_w[g].en.eq(mvu.o_valid & ~w_dst_hp & (o_gate == g)),
                    hp_w[g].addr.eq(hp_base + o_row),
                    hp_w[g].data.eq(mvu.o_data.as_value()),
                    hp_w[g].en.eq(mvu.o_valid & w_dst_hp & (o_gate == g)),
                ]
        with m.If(mvu.o_valid):
            m.d.sync += [w_row.eq(o_row + 1), w_gate.eq(o_gate)]
            with m.If(o_row == self.p("segs_h", segs_h) - 1):
                m.d.sync += [w_row.eq(0), w_gate.eq(o_gate + 1)]

    # ------------------------------------------------------------------ walkers
    def walkers(self):
        """Read ports of the gate phase; the element walker (issue side) and writer (result side)."""
        m, cfg, T, Pc, L, Hp = self.m, self.cfg, self.T, self.Pc, self.L, self.Hp
        self.xp_r = [mem.read_port() for mem in self.xp_mem]
        self.hp_r = [mem.read_port() for mem in self.hp_mem]
        self.c_r = self.c_mem.read_port()
        self.c_w = self.c_mem.write_port()
        e_max = max(self.H, cfg.input_size, self.vdepth * Pc, L * Hp)
        if self.acc.delta:
            e_max = max(e_max, self.mvu.delta_clear_depth)
        self.e_cnt = Signal(range(e_max + 2))
        self.e_lane = Signal(range(T))
        self.e_bank = Signal(range(Pc))
        self.e_row = Signal(range(self.vdepth + 1))
        self.e_seg = Signal(range(max(self.segs_h, self.slots["x0"].segments) + 1))
        self.o_cnt = Signal.like(self.e_cnt)
        self.o_lane = Signal(range(T))
        self.o_bank = Signal(range(Pc))
        self.o_row = Signal(range(self.vdepth + 1))
        # vector-store read defaults
        self.vec_rd_addr = [Signal(range(self.vdepth), name=f"vec_rd_addr{q}") for q in range(Pc)]
        self.vec_rd_en = Signal()
        # the first read port is the MVU's (also while a gate phase runs beside its plan), unless a copy
        # phase, or a gate phase without a second port, takes it (the MVU does not read then)
        m.d.comb += [self.vec_rd_addr[q].eq(self.mvu.vec_addr[q]) for q in range(Pc)]
        m.d.comb += self.vec_rd_en.eq(self.mvu.vec_en)
        store = self.store
        m.d.comb += [store.rd_en.eq(self.vec_rd_en)]
        for q in range(Pc):
            m.d.comb += store.rd_addr[q].eq(self.vec_rd_addr[q])
        # the run's input buffer (with two buffers, its step parity; the name is kept from then)
        self.mvu_src_in, self.mvu_xpar = Signal(name="mvu_src_in"), Signal(range(self.NB), name="mvu_xpar")
        src_in1 = Signal(name="mvu_src_in1")  # the source of the read whose data arrives now
        m.d.sync += src_in1.eq(self.mvu_src_in)
        m.d.comb += [
            self.in_mvu_addr.eq(self.mvu_xpar * self.R + self.mvu.vec_addr[0]),
            self.mvu.vec_data.eq(Mux(src_in1, Cat(*self.in_mvu_data), store.rd_data.as_value())),
        ]
        # per-cycle registered lane/bank of the element read (data arrives next cycle)
        self.rd_lane = Signal(range(T))
        self.rd_bank = Signal(range(Pc))
        m.d.sync += [self.rd_lane.eq(self.e_lane), self.rd_bank.eq(self.e_bank)]
        self.rd_word = Signal(signed(self.xs))
        self.x_from_in, rd_from_in = Signal(name="x_from_in"), Signal(name="rd_from_in")
        m.d.sync += rd_from_in.eq(self.x_from_in)
        # the gate phases' reads: the second read port when one runs beside the MVU, else the MVU's
        if self.second_read:
            self.g_rd_addr = [Signal(range(self.vdepth), name=f"gate_rd_addr{q}") for q in range(Pc)]
            self.g_rd_en = Signal(name="gate_rd_en")
            m.d.comb += [store.rd2_en.eq(self.g_rd_en)] + [store.rd2_addr[q].eq(self.g_rd_addr[q]) for q in range(Pc)]
            g_data = store.rd2_data
        else:
            self.g_rd_addr, self.g_rd_en, g_data = self.vec_rd_addr, self.vec_rd_en, store.rd_data
        vec_word = Array(Array(g_data[q][r] for r in range(T)) for q in range(Pc))[self.rd_bank][self.rd_lane]
        if self.aux_reads:
            in_words = Array(Array(self.in_aux_data[q][r] for r in range(T)) for q in range(Pc))
            in_word = in_words[self.rd_bank][self.rd_lane]
            m.d.comb += self.rd_word.eq(Mux(rd_from_in, in_word, vec_word))
        else:
            m.d.comb += self.rd_word.eq(vec_word)

    def next_segment(self, bank, row):
        """Advance (bank, row) to the next segment: segment j lives in bank j % Pc, row base + j // Pc."""
        m = self.m
        if self.Pc == 1:
            m.d.sync += row.eq(row + 1)
        else:
            m.d.sync += bank.eq(bank + 1)
            with m.If(bank == self.Pc - 1):
                m.d.sync += [bank.eq(0), row.eq(row + 1)]

    def walk(self, lane, bank, row, seg=None):
        """Advance (lane, bank, row[, seg]) by one element."""
        m = self.m
        with m.If(lane == self.T - 1):
            m.d.sync += lane.eq(0)
            if seg is not None:
                m.d.sync += seg.eq(seg + 1)
            self.next_segment(bank, row)
        with m.Else():
            m.d.sync += lane.eq(lane + 1)

    def lane_sel(self, rdata, width):
        words = data.View(data.ArrayLayout(signed(width), self.T), rdata)
        return words[self.rd_lane]

    def gate_inputs(self):
        """The gate units' inputs (shared by all units; only the active one gets ``i_valid``).

        Stacked projections: ``e_sub`` walks the gates of the element being issued; the words of
        gates 0..G-2 wait in ``col_xp``/``col_hp`` and the last gate's word goes straight to the unit.
        """
        m, gmax, pw, segs_h = self.m, self.gmax, self.pw, self.segs_h
        xp_r, hp_r, lane_sel = self.xp_r, self.hp_r, self.lane_sel
        self.e_sub = e_sub = Signal(range(max(2, gmax)))
        # the gate phase's HP half (its layer's parity; set on entry)
        self.hp_base = Signal(range(max(2, self.hp_halves * self.proj_depth)), name="gate_hp_base")
        rd_sub = Signal.like(e_sub)
        m.d.sync += rd_sub.eq(e_sub)
        if self.stacked:
            # a word is kept whenever one arrives; only those read in a gate phase are ever used
            col_xp = [Signal(signed(pw), name=f"col_xp{g}") for g in range(gmax - 1)]
            col_hp = [Signal(signed(pw), name=f"col_hp{g}") for g in range(gmax - 1)]
            for g in range(gmax - 1):
                with m.If(rd_sub == g):
                    m.d.sync += [col_xp[g].eq(lane_sel(xp_r[0].data, pw)), col_hp[g].eq(lane_sel(hp_r[0].data, pw))]
            for key, gu in self.gate_units.items():
                for g in range(key[0]):
                    last_x, last_h = lane_sel(xp_r[0].data, pw), lane_sel(hp_r[0].data, pw)
                    if g == gmax - 1:
                        x_g, h_g = last_x, last_h
                    else:
                        x_g = Mux(rd_sub == g, last_x, col_xp[g])
                        h_g = Mux(rd_sub == g, last_h, col_hp[g])
                    m.d.comb += [gu.i_xp[g].eq(x_g), gu.i_hp[g].eq(h_g)]
            proj_addr = Signal(range(max(2, self.proj_depth)))
            m.d.comb += [
                proj_addr.eq(e_sub * segs_h + self.e_seg),
                xp_r[0].addr.eq(self.xp_par * self.proj_depth + proj_addr),
                hp_r[0].addr.eq(self.hp_base + proj_addr),
            ]
        else:
            for key, gu in self.gate_units.items():
                for g in range(key[0]):
                    m.d.comb += [gu.i_xp[g].eq(lane_sel(xp_r[g].data, pw)), gu.i_hp[g].eq(lane_sel(hp_r[g].data, pw))]
            for g in range(gmax):
                m.d.comb += [
                    xp_r[g].addr.eq(self.xp_par * segs_h + self.e_seg),
                    hp_r[g].addr.eq(self.hp_base + self.e_seg),
                ]
        for gu in self.gate_units.values():
            m.d.comb += [gu.i_c.eq(self.c_r.data), gu.i_h.eq(self.rd_word), gu.i_x.eq(self.rd_word), gu.en.eq(1)]
        self.c_base = Signal(range(self.L * self.Hp + 1))
        m.d.comb += self.c_r.addr.eq(self.c_base + self.e_cnt)

    def status_and_store_writes(self):
        """Status and counters; the vector-store write mux, driven by the active phase."""
        m, T, Pc = self.m, self.T, self.Pc
        self.busy, self.waiting = Signal(name="busy"), Signal(name="waiting")
        self.error, self.clearing = Signal(name="error"), Signal(name="clearing")
        self.acc._status_and_counters(m, self.busy, self.waiting, self.error, self.clearing)
        if self.acc.delta:
            acc, mvu = self.acc, self.mvu
            with m.If(mvu.skip_tiles != 0):
                m.d.sync += [
                    acc.skipped.eq(acc.skipped + mvu.skip_tiles),
                    acc.skipped_macs.eq(acc.skipped_macs + mvu.skip_macs),
                ]
        self.wr_en = Signal()
        self.wr_bank = Signal(range(Pc))
        self.wr_row = Signal(range(self.vdepth))
        self.wr_mask = Signal(T)
        self.wr_word = Signal(signed(self.xs))
        self.wr_seg = Signal(T * self.xs)
        self.wr_full = Signal()
        store = self.store
        m.d.comb += [
            store.wr_en.eq(self.wr_en),
            store.wr_bank.eq(self.wr_bank),
            store.wr_row.eq(self.wr_row),
            store.wr_mask.eq(self.wr_mask),
        ]
        with m.If(self.wr_full):
            m.d.comb += store.wr_data.eq(self.wr_seg)
        with m.Else():
            for r in range(T):
                m.d.comb += store.wr_data[r].eq(self.wr_word)

    # ------------------------------------------------------------------ sequencer
    def start_walk(self, src, dst, dst_seg0=0, src_seg0=0):
        """Issue walker at segment ``src_seg0`` of slot ``src``; result walker at segment ``dst_seg0`` of ``dst``
        (with run-time dimensions ``dst_seg0`` is the h slot's second half: ``copy_bank``, ``copy_row{l}``)."""
        Pc = self.Pc
        if self.runtime and dst_seg0:
            o_bank, o_row = self.prm["copy_bank"], self.prm[f"copy_row{dst[1:]}"]
        else:
            o_bank, o_row = dst_seg0 % Pc, self.slot_base(dst) + dst_seg0 // Pc
        return [
            self.e_cnt.eq(0),
            self.e_sub.eq(0),
            self.e_lane.eq(0),
            self.e_seg.eq(0),
            self.e_bank.eq(src_seg0 % Pc),
            self.e_row.eq(self.slot_base(src) + src_seg0 // Pc),
            self.o_cnt.eq(0),
            self.o_lane.eq(0),
            self.o_bank.eq(o_bank),
            self.o_row.eq(o_row),
        ]

    def enter(self, i):
        """Statements run on the transition into phase ``i`` (set up its counters)."""
        prog = self.prog
        if i >= len(prog):
            return []
        phase = prog[i]
        kind = phase[0]
        if kind == "copy":
            return self.start_walk(phase[1], phase[1], self.slots[phase[1]].segments // 2)
        if kind == "mvu":
            return [self.launched.eq(0)]
        if kind == "gather":
            return self.start_walk(f"h{phase[1]}", f"h{phase[1]}")
        if kind == "gate":
            layer = phase[1]
            src, dst = self.gate_slots(phase)
            # a helper core's elements start at its slice (seg0) in the slots and the cell state
            enter = self.start_walk(src, dst, self.seg0, self.seg0)
            enter.append(self.c_base.eq(self.p(f"c_base{layer}", layer * self.Hp + self.seg0 * self.T)))
            if self.hp_halves > 1:
                enter.append(self.hp_base.eq((layer % 2) * self.proj_depth))
            return enter
        return []

    def state_name(self, i):
        return f"P{i}_{'_'.join(str(a) for a in self.prog[i])}"

    def goto(self, j):
        """Into phase ``j`` next cycle, its :meth:`enter` statements with it."""
        self.m.next = self.state_name(j)
        self.m.d.sync += self.enter(j)

    def advance(self, i):
        """Leave phase ``i`` for the next one (or end the step: :meth:`end_step`); from a gate phase into a plan
        phase through :meth:`enter_plan`."""
        if i + 1 >= len(self.prog):
            self.end_step()
        elif self.prog[i][0] == "gate" and self.early_launch(i + 1):
            self.enter_plan(i + 1)
        else:
            self.goto(i + 1)

    def early_launch(self, j) -> bool:
        """Plan phase ``j`` may be launched from the last cycle of the phase before it (:func:`launches_early`)."""
        return not self.runtime and launches_early(self.prog, j)

    def enter_plan(self, j, ahead=0):
        """Enter plan phase ``j`` from the last cycle of the phase before it, launching its plan in that cycle when
        the MVU takes it (a plan of the next step when ``ahead``: :meth:`launch`): a chained phase is then
        skipped, another entered as launched; else entered as usual."""
        m, mvu = self.m, self.mvu
        plan = self.plan_list[self.prog[j][1]]
        m.d.comb += self.mvu_plan.eq(plan.index)
        with m.If(mvu.ready):
            self.launch(plan, ahead)
            if j in self.dep_phases:
                m.d.sync += [self.cc_plan.eq(plan.index), self.cc_rows.eq(0), self.cc_done.eq(0)]
            if chains(self.prog, self.concurrent, j):
                self.goto(j + 1)
            else:
                self.goto(j)
                m.d.sync += self.launched.eq(1)  # after enter(j), which clears it
        with m.Else():
            self.goto(j)

    def sequencer(self):
        m = self.m
        self.launched = Signal()
        handlers = {
            "load": self.phase_load,
            "copy": self.phase_copy,
            "mvu": self.phase_mvu,
            "wait_out": self.phase_wait_out,
            "gate": self.phase_gate,
            "gather": self.phase_gather,
        }
        self.overlap_registers()
        with m.FSM(name="seq") as fsm:
            with m.State("IDLE"):
                self.idle()
            with m.State("CLEAR"):
                self.clear()
            for i, phase in enumerate(self.prog):
                with m.State(self.state_name(i)):
                    m.d.comb += [self.busy.eq(1), self.acc.phase.eq(i + 1)]
                    handlers[phase[0]](i, phase)
        self.loader()
        self.prefetch(fsm)

    def overlap_registers(self):
        """Flags shared by the sequencer, the loader and the prefetch of the next step's input projection."""
        m = self.m
        self.xready = Signal(name="xready")  # the next step's input is in input buffer xp_par (or ~xp_par)
        self.pre = Signal(name="pre")  # the next step's input was taken during this step
        self.w0_pre = Signal(name="w0_pre")  # layer 0's input projection of the next step was started
        self.pre_done = Signal(name="pre_done")  # ... and is done
        # the step after the next's, started during this step (:func:`projects_two_ahead`), and done
        self.w0_pre2, self.pre_done2 = Signal(name="w0_pre2"), Signal(name="pre_done2")
        self.ld_start, self.ld_target = Signal(name="ld_start"), Signal(range(self.NB), name="ld_target")
        if self.NB > 2:
            # the input after the next one: taken during this step into buffer xb + 2, loaded; the loader works on it
            self.pre2, self.xready2 = Signal(name="pre2"), Signal(name="xready2")
            # and the one after that, taken into this step's own buffer once the step's gate phase has issued
            # its last element (:func:`projects_two_ahead` designs: nothing reads the buffer after that)
            self.pre3, self.xready3 = Signal(name="pre3"), Signal(name="xready3")
            self.ld_lvl = Signal(range(4), name="ld_lvl")  # how far ahead the loader's input is (0: the next)
        self.ending = Signal(name="step_ending")  # the step's last cycle (:meth:`end_step`)
        self.ld_loading = Signal(name="ld_loading")
        self.mvu_start = Signal(name="mvu_start")
        self.mvu_plan = Signal(range(len(self.mvu.plan_list)), name="mvu_plan")
        m.d.comb += [self.mvu.start.eq(self.mvu_start), self.mvu.plan.eq(self.mvu_plan)]
        # the plan a concurrent gate phase runs beside: its output segments so far, and its end
        mvu, max_br = self.mvu, max(p.br for p in self.plan_list)
        self.cc_plan = Signal(range(len(self.plan_list)), name="cc_plan")
        self.cc_rows = Signal(range(max_br + 1), name="cc_rows")
        self.cc_done = Signal(name="cc_done")
        if self.dep_phases:
            with m.If(mvu.o_valid & (mvu.o_plan == self.cc_plan)):
                m.d.sync += self.cc_rows.eq(self.cc_rows + 1)
            with m.If(mvu.done & (mvu.o_plan == self.cc_plan)):
                m.d.sync += self.cc_done.eq(1)
        # layer 0's input projection: its output segments so far in each XP buffer (reset when a run of it is
        # launched into the buffer, :meth:`launch`; the runs of two steps may be in flight, one per buffer)
        if self.beside_w0:
            w0 = self.plan_list[0]
            self.x_rows = [Signal(range(w0.br + 1), name=f"x_rows{b}") for b in range(2)]
            for b in range(2):
                with m.If(mvu.o_valid & (mvu.o_plan == 0) & (self.w_par == b)):
                    m.d.sync += self.x_rows[b].eq(self.x_rows[b] + 1)

    def launch(self, plan, ahead=0):
        """Start the MVU on ``plan`` of this step, or of the ``ahead``-th step after it: its projections go to
        that step's XP buffer (step parity), an input projection reads that step's input buffer; only when
        ``mvu.ready`` (the caller checks it, and drives ``mvu_plan`` whether or not it launches)."""
        m = self.m
        par = ~self.xp_par if ahead % 2 else self.xp_par
        m.d.comb += self.mvu_start.eq(1)
        m.d.sync += [self.mvu_xpar.eq(self.xb_next(self.xb, ahead)), self.mvu_src_in.eq(plan.src == "x0")]
        if plan.index == 0 and self.beside_w0:
            m.d.sync += Array(self.x_rows)[par].eq(0)
        if plan.index in self.plan_par:
            q, wp = self.plan_par[plan.index]
            m.d.sync += [Array(q)[wp].eq(par), wp.eq(~wp)]

    def end_step(self):
        """End of a step, in the last cycle of its last phase: count it, flip the step parities; then straight into
        the next step's phase after ``load`` when its input is in already (after its input projection's phase
        too when :func:`adopt_w0` and that plan was launched), into ``load`` when it was taken, else ``IDLE``."""
        m = self.m
        m.d.sync += [self.acc.steps.eq(self.acc.steps + 1), self.xp_par.eq(~self.xp_par), self.pre.eq(0)]
        m.d.comb += self.ending.eq(1)
        if self.NB > 2:
            # the next step's input becomes the step's own, the one after it the next (:meth:`loader` sets
            # ``xready`` itself when it finishes that one now)
            m.d.sync += [
                self.xb.eq(self.xb_next(self.xb)),
                self.pre.eq(self.pre2),
                self.pre2.eq(self.pre3),
                self.pre3.eq(0),
                self.xready2.eq(self.xready3),
                self.xready3.eq(0),
                self.ld_lvl.eq(Mux(self.ld_lvl > 1, self.ld_lvl - 1, 0)),
            ]
        if self.h_double:
            m.d.sync += self.h_par.eq(~self.h_par)  # the h written this step is h_t of the next
        with m.If(self.pre & self.xready):
            # what the load phase would do (the input after it, when it is in, is the next step's)
            m.d.sync += self.xready.eq(self.xready2 if self.NB > 2 else 0)
            if self.adopt_w0:
                # the next step's input projection is running (or done), and its phase would only adopt it
                with m.If(self.w0_pre):
                    m.d.sync += [self.w0_pre.eq(0), self.pre_done.eq(0)]
                    if self.two_ahead:
                        # the run of the step after it (if started) becomes the next step's prefetched run
                        m.d.sync += [
                            self.w0_pre.eq(self.w0_pre2),
                            self.pre_done.eq(self.pre_done2),
                            self.w0_pre2.eq(0),
                            self.pre_done2.eq(0),
                        ]
                    if self.early_launch(2):
                        self.enter_plan(2, ahead=1)  # the next step's plan
                    elif self.two_ahead:
                        # past wait_out when the output FIFO has room for the gate phase's words already (a
                        # word more than wait_out asks: this cycle's push is not in its level yet)
                        out_fifo = self.out_fifo
                        with m.If(out_fifo.level + self.H <= out_fifo.depth - 2):
                            self.goto(3)
                        with m.Else():
                            self.goto(2)
                    else:
                        self.goto(2)
                with m.Else():
                    self.goto(1)
            else:
                self.goto(1)
        with m.Elif(self.pre):
            self.goto(0)
        with m.Else():
            m.next = "IDLE"

    def loader(self):
        """Input words from the FIFO into input buffer ``ld_target``; a window-2 QRNN first copies x_t
        (the other buffer's first half) into its second half. Sets ``xready`` when done."""
        m, cfg, T, Pc, R, in_fifo = self.m, self.cfg, self.T, self.Pc, self.R, self.in_fifo
        half = self.slots["x0"].segments // 2
        buf = Signal(range(self.NB), name="ld_buf")
        cnt = Signal(range(max(cfg.input_size, half) + 1), name="ld_cnt")
        lane, bank = Signal(range(T), name="ld_lane"), Signal(range(Pc), name="ld_bank")
        row = Signal(range(R + 1), name="ld_row")
        o_cnt, o_bank = Signal.like(cnt, name="ld_o_cnt"), Signal(range(Pc), name="ld_o_bank")
        o_row = Signal(range(2 * R + 1), name="ld_o_row")
        cp_v, src_bank = Signal(name="ld_cp_v"), Signal(range(Pc), name="ld_src_bank")
        qrnn2 = cfg.cell == "qrnn" and cfg.qrnn_window == 2
        with m.FSM(name="loader") as lfsm:
            with m.State("L_IDLE"):
                with m.If(self.ld_start):
                    m.d.sync += [
                        buf.eq(self.ld_target),
                        cnt.eq(0),
                        lane.eq(0),
                        bank.eq(0),
                        row.eq(0),
                        o_cnt.eq(0),
                        o_bank.eq(self.p("x0_half_bank", half % Pc)),
                        o_row.eq(self.p("x0_half_row", half // Pc)),
                        cp_v.eq(0),
                    ]
                    m.next = "L_COPY" if qrnn2 else "L_LOAD"
            if qrnn2:
                with m.State("L_COPY"):
                    issue = Signal(name="ld_cp_issue")
                    m.d.comb += [
                        issue.eq(cnt < self.p("x0_half", half)),
                        self.in_aux_en.eq(issue),
                        self.in_aux_addr.eq(self.xb_row(self.xb_prev(buf)) + row),
                    ]
                    m.d.sync += [cp_v.eq(issue), src_bank.eq(bank)]
                    with m.If(issue):
                        m.d.sync += cnt.eq(cnt + 1)
                        self.next_segment(bank, row)
                    rd_seg = Array(self.in_aux_data[q].as_value() for q in range(Pc))[src_bank]
                    m.d.comb += [
                        self.in_wr_en.eq(cp_v),
                        self.in_wr_bank.eq(o_bank),
                        self.in_wr_row.eq(self.xb_row(buf) + o_row),
                        self.in_wr_mask.eq((1 << T) - 1),
                        self.in_wr_full.eq(1),
                        self.in_wr_seg.eq(rd_seg),
                    ]
                    with m.If(cp_v):
                        m.d.sync += o_cnt.eq(o_cnt + 1)
                        self.next_segment(o_bank, o_row)
                        with m.If(o_cnt == self.p("x0_half", half) - 1):
                            m.d.sync += [cnt.eq(0), lane.eq(0), bank.eq(0), row.eq(0)]
                            m.next = "L_LOAD"
            with m.State("L_LOAD"):
                m.d.comb += [self.ld_loading.eq(1), in_fifo.r_en.eq(1)]
                m.d.comb += [
                    self.in_wr_en.eq(in_fifo.r_rdy),
                    self.in_wr_bank.eq(bank),
                    self.in_wr_row.eq(self.xb_row(buf) + row),
                    self.in_wr_mask.eq(Const(1, T) << lane),
                    self.in_wr_word.eq(in_fifo.r_data.as_signed()),
                ]
                with m.If(in_fifo.r_rdy):
                    m.d.sync += cnt.eq(cnt + 1)
                    self.walk(lane, bank, row)
                    with m.If(cnt == self.p("input_size", cfg.input_size) - 1):
                        if self.NB > 2:
                            # its level after this cycle's shift, when the step ends now
                            lvl = Mux(self.ending & (self.ld_lvl > 1), self.ld_lvl - 1, self.ld_lvl)
                            m.d.sync += self.ld_lvl.eq(0)
                            with m.If(lvl == 3):
                                m.d.sync += self.xready3.eq(1)
                            with m.Elif(lvl == 2):
                                m.d.sync += self.xready2.eq(1)
                            with m.Else():
                                m.d.sync += self.xready.eq(1)
                        else:
                            m.d.sync += self.xready.eq(1)
                        m.next = "L_IDLE"
        self.ld_idle = lfsm.ongoing("L_IDLE")

    def prefetch(self, fsm):
        """While step t runs: take x_{t+1} once it is all in the FIFO (and no command waits), then, once
        the MVU has finished step t's plans, start layer 0's input projection of step t+1 into the other
        XP buffer. Commands are taken only in ``IDLE``, which a step with a prefetched input skips."""
        m, acc, mvu = self.m, self.acc, self.mvu
        n = len(self.prog)
        last_mvu = max(i for i, p in enumerate(self.prog) if p[0] == "mvu")
        in_step = Signal(name="in_step")
        post_mvu = Signal(name="post_mvu")
        m.d.comb += in_step.eq(Cat(*[fsm.ongoing(self.state_name(i)) for i in range(1, n)]).any())
        if self.runtime:
            # the step's last plan is the last of layer ``layers - 1``
            for layer in range(self.L):
                last_l = max(
                    i for i, p in enumerate(self.prog) if p[0] == "mvu" and self.mvu.plan_list[p[1]].layer == layer
                )
                with m.If(self.prm["layers"] == layer + 1):
                    m.d.comb += post_mvu.eq(self.after_plan(fsm, last_l))
        else:
            m.d.comb += post_mvu.eq(self.after_plan(fsm, last_mvu))
        # not in the step's last cycle: the step ends by what ``pre`` was (:meth:`end_step`), so an input taken
        # then would be marked as the next step's while the next step waits for its own in ``load``
        # the loader may take an input: in the step but not in its last cycle (the step ends by what ``pre`` was,
        # :meth:`end_step`, so an input taken then would be marked as the next step's while the next step waits
        # for its own in ``load``), idle, the FIFO holding all of it, no command waiting
        can_take = (
            in_step
            & ~self.ending
            & self.ld_idle
            & (self.in_fifo.level >= self.p("input_size", self.cfg.input_size))
            & ~acc.i_cmd.valid
        )
        with m.If(can_take & ~self.xready & ~self.pre):
            m.d.comb += [self.ld_start.eq(1), self.ld_target.eq(self.xb_next(self.xb))]
            m.d.sync += self.pre.eq(1)
        if self.NB > 2:
            # the input after it, once that one is in (its buffer, x_{t-1}'s, is free from the step's start)
            with m.If(can_take & self.pre & self.xready & ~self.pre2):
                m.d.comb += [self.ld_start.eq(1), self.ld_target.eq(self.xb_next(self.xb, 2))]
                m.d.sync += [self.pre2.eq(1), self.ld_lvl.eq(2)]
        if self.two_ahead:
            # and the one after that into the step's own buffer, once the step's gate phase (its last phase) has
            # issued its last element
            self.issued = fsm.ongoing(self.state_name(len(self.prog) - 1)) & (self.e_cnt == self.H)
            with m.If(can_take & self.pre2 & self.xready2 & ~self.pre3 & self.issued):
                m.d.comb += [self.ld_start.eq(1), self.ld_target.eq(self.xb)]
                m.d.sync += [self.pre3.eq(1), self.ld_lvl.eq(3)]
        # a done of plan 0 is the prefetched run's unless the sequencer waits in plan 0's phase for the run it
        # launched there (which finishes first)
        k0 = next(i for i, p in enumerate(self.prog) if p[0] == "mvu" and p[1] == 0)
        own = fsm.ongoing(self.state_name(k0)) & self.launched
        if self.two_ahead:
            # runs finish in order: the next step's first, then the one after it's (which becomes the next
            # step's when this step ends, adopting the first)
            with m.If(mvu.done & (mvu.o_plan == 0) & ~own):
                with m.If(self.w0_pre & ~self.pre_done):
                    with m.If(~self.ending):
                        m.d.sync += self.pre_done.eq(1)
                with m.Elif(self.w0_pre2):
                    with m.If(self.ending):
                        m.d.sync += self.pre_done.eq(1)
                    with m.Else():
                        m.d.sync += self.pre_done2.eq(1)
        else:
            with m.If(mvu.done & (mvu.o_plan == 0) & self.w0_pre & ~own):
                m.d.sync += self.pre_done.eq(1)
        w0 = self.mvu.plan_list[0]
        assert w0.layer == 0 and w0.name == "W" and w0.src == "x0"
        with m.If(post_mvu & self.xready & ~self.w0_pre):
            m.d.comb += self.mvu_plan.eq(w0.index)
            with m.If(mvu.ready):
                self.launch(w0, ahead=1)
                m.d.sync += [self.w0_pre.eq(1), self.pre_done.eq(0)]
        if self.two_ahead:
            # the step after the next's, into this step's XP buffer, once the gate phase has issued its last
            # element (it reads XP only then) and its input is in (not in the step's last cycle: the run would
            # be the next step's, :meth:`end_step` shifting the flags by what was started before)
            with m.If(self.issued & ~self.ending & self.w0_pre & ~self.w0_pre2 & self.xready2):
                m.d.comb += self.mvu_plan.eq(w0.index)
                with m.If(mvu.ready):
                    self.launch(w0, ahead=2)
                    m.d.sync += [self.w0_pre2.eq(1), self.pre_done2.eq(0)]

    def after_plan(self, fsm, i):
        """The sequencer is past phase ``i`` (a plan), or in it with the plan started: the MVU may take the
        next step's input projection as soon as it is ready (chained behind the plan)."""
        later = [fsm.ongoing(self.state_name(j)) for j in range(i + 1, len(self.prog))]
        return Cat(*later, fsm.ongoing(self.state_name(i)) & self.launched).any()

    def idle(self):
        """Between steps: take commands; start a step when an input word is waiting."""
        m, cfg, acc, T, Pc, xs = self.m, self.cfg, self.acc, self.T, self.Pc, self.xs
        L, Hp, error, mvu = self.L, self.Hp, self.error, self.mvu
        cmd = acc.i_cmd.payload
        m.d.comb += self.busy.eq(0)
        m.d.comb += acc.i_cmd.ready.eq(1)
        with m.If(acc.i_cmd.valid):
            with m.Switch(cmd.op):
                with m.Case(Op.NOP):
                    pass
                with m.Case(Op.RESET_STATE):
                    m.d.sync += [self.e_cnt.eq(0), self.e_bank.eq(0), self.e_row.eq(0)]
                    m.next = "CLEAR"
                with m.Case(Op.WRITE_VEC):
                    m.d.comb += [
                        self.wr_en.eq(1),
                        self.wr_row.eq(self.host_row(cmd.addr)),
                        self.wr_word.eq(cmd.data[:xs]),
                    ]
                    # sel = bank * T + lane, decoded by a small table (T need not be a power of two)
                    sel_bank = Array(Const(i // T, range(Pc)) for i in range(Pc * T))
                    sel_lane = Array(Const(1 << (i % T), T) for i in range(Pc * T))
                    m.d.comb += [self.wr_bank.eq(sel_bank[cmd.sel]), self.wr_mask.eq(sel_lane[cmd.sel])]
                    with m.If((cmd.sel >= Pc * T) | (cmd.addr >= self.vdepth)):
                        m.d.comb += self.wr_en.eq(0)
                        m.d.sync += error.eq(1)
                with m.Case(Op.WRITE_C):
                    c_w = self.c_w
                    m.d.comb += [c_w.addr.eq(cmd.addr), c_w.data.eq(cmd.data[: self.cs]), c_w.en.eq(cmd.addr < L * Hp)]
                    with m.If(cmd.addr >= L * Hp):
                        m.d.sync += error.eq(1)
                with m.Case(Op.WRITE_WEIGHT):
                    if cfg.weights_in_rom:
                        m.d.sync += error.eq(1)
                    else:
                        n_banks = cfg.pe_rows * Pc
                        in_range = ((cmd.sel < n_banks) & (cmd.addr < mvu.weight_depth)) | (
                            (cmd.sel == n_banks) & (cmd.addr < mvu.bias_depth)
                        )
                        m.d.comb += [
                            mvu.wr_en.eq(in_range),
                            mvu.wr_bank.eq(cmd.sel),
                            mvu.wr_addr.eq(cmd.addr),
                            mvu.wr_data.eq(cmd.data),
                        ]
                        with m.If(~in_range):
                            m.d.sync += error.eq(1)
                acc._set_param_command(m, self.prm, cmd, error)
                acc._common_commands(m, error)
        with m.Elif(self.in_fifo.r_rdy):
            m.d.comb += [self.ld_start.eq(1), self.ld_target.eq(self.xb)]
            self.goto(0)

    def clear(self):
        """Zero every vector row of every bank, and the cell state."""
        m, T, L, Hp = self.m, self.T, self.L, self.Hp
        m.d.comb += [self.busy.eq(1), self.clearing.eq(1), self.acc.phase.eq(PHASE_CLEAR)]
        m.d.comb += [
            self.wr_en.eq(1),
            self.wr_bank.eq(self.e_bank),
            self.wr_row.eq(self.e_row),
            self.wr_mask.eq((1 << T) - 1),
            self.wr_full.eq(1),
            self.wr_seg.eq(0),
        ]
        m.d.comb += [self.c_w.addr.eq(self.e_cnt), self.c_w.data.eq(0), self.c_w.en.eq(self.e_cnt < L * Hp)]
        m.d.comb += [
            self.in_wr_en.eq(self.e_row < self.NB * self.R),
            self.in_wr_bank.eq(self.e_bank),
            self.in_wr_row.eq(self.e_row),
            self.in_wr_mask.eq((1 << T) - 1),
            self.in_wr_full.eq(1),
            self.in_wr_seg.eq(0),
        ]
        m.d.sync += self.e_cnt.eq(self.e_cnt + 1)
        self.next_segment(self.e_bank, self.e_row)
        last = max(self.vdepth * self.Pc, self.NB * self.R * self.Pc, L * Hp)
        if self.acc.delta:
            # delta mode: the references and the exact accumulators too (the golden model's reset)
            last = max(last, self.mvu.delta_clear_depth)
            m.d.comb += [self.mvu.clr_en.eq(1), self.mvu.clr_addr.eq(self.e_cnt)]
        with m.If(self.e_cnt >= last - 1):
            m.next = "IDLE"

    def phase_load(self, i, phase):
        """Wait until the loader has this step's input in buffer ``xp_par`` (at once if it was prefetched)."""
        m, in_fifo = self.m, self.in_fifo
        m.d.comb += self.waiting.eq(~self.xready & self.ld_loading & ~in_fifo.r_rdy)
        with m.If(self.xready):
            m.d.sync += self.xready.eq(0)
            self.advance(i)

    def phase_copy(self, i, phase):
        """Segments 0..S-1 of the slot -> S..2S-1 (x_t becomes x_{t-1})."""
        m, Pc, T = self.m, self.Pc, self.T
        half = self.p("segs_h", self.slots[phase[1]].segments // 2)  # an h slot: [h; h_prev]
        e_cnt, e_bank, e_row = self.e_cnt, self.e_bank, self.e_row
        cp_v = Signal(name=f"copy{i}_v")
        src_bank = Signal(range(Pc), name=f"copy{i}_src_bank")
        issue = Signal(name=f"copy{i}_issue")
        m.d.comb += issue.eq(e_cnt < half)
        m.d.comb += self.vec_rd_en.eq(issue)
        for q in range(Pc):
            m.d.comb += self.vec_rd_addr[q].eq(e_row)
        m.d.sync += [cp_v.eq(issue), src_bank.eq(e_bank)]
        with m.If(issue):
            m.d.sync += e_cnt.eq(e_cnt + 1)
            self.next_segment(e_bank, e_row)
        rd_seg = Array(self.store.rd_data[q].as_value() for q in range(Pc))[src_bank]
        m.d.comb += [
            self.wr_en.eq(cp_v),
            self.wr_bank.eq(self.o_bank),
            self.wr_row.eq(self.o_row),
            self.wr_mask.eq((1 << T) - 1),
            self.wr_full.eq(1),
            self.wr_seg.eq(rd_seg),
        ]
        with m.If(cp_v):
            m.d.sync += self.o_cnt.eq(self.o_cnt + 1)
            self.next_segment(self.o_bank, self.o_row)
            with m.If(self.o_cnt == half - 1):
                self.advance(i)

    def phase_mvu(self, i, phase):
        """Start the MVU on the phase's plan (unless it was started during the last step: layer 0's input
        projection); the vector banks' read ports are the MVU's.

        Chaining: when the next phase is another plan (which never reads this one's projections: plans
        read vector slots, written only by gate phases), the phase ends as soon as its plan is started, and
        the next plan starts in the last issue cycle of this one (``mvu.ready``) while it drains. A phase
        before anything else waits for its plan's last segment (``done`` of this plan: earlier ones are
        out by then, as the MVU finishes plans in order)."""
        m, mvu = self.m, self.mvu
        plan = mvu.plan_list[phase[1]]
        if self.runtime and self.ahead and plan.layer > 0:
            # run-time dimensions with the recurrent plans ahead: a layer the model run does not have. The
            # phase still waits until the MVU could take a plan (the running one's last issue cycle): a gate
            # phase beside it may write the slot the running plan reads (:func:`is_concurrent`)
            with m.If(self.prm["layers"] <= plan.layer):
                with m.If(mvu.ready):
                    self.advance(i)
            with m.Else():
                self.run_plan(i, plan)
        else:
            self.run_plan(i, plan)

    def run_plan(self, i, plan):
        """:meth:`phase_mvu` for a plan that runs."""
        m, mvu = self.m, self.mvu
        prefetchable = plan.index == 0
        chain = chains(self.prog, self.concurrent, i)
        mine_done = mvu.done & (mvu.o_plan == plan.index)
        want = ~self.launched & ~self.w0_pre if prefetchable else ~self.launched
        m.d.comb += self.mvu_plan.eq(plan.index)
        with m.If(want & mvu.ready):
            self.launch(plan)
            m.d.sync += self.launched.eq(1)
            if i in self.dep_phases:
                m.d.sync += [self.cc_plan.eq(plan.index), self.cc_rows.eq(0), self.cc_done.eq(0)]
            if chain:
                self.advance(i)
        if prefetchable:
            # launched here (not prefetched): wait for it, the next step's run may already follow it;
            # prefetched: done already, or wait for that run's done
            with m.If(self.launched):
                if not chain:
                    with m.If(mine_done):
                        self.advance(i)
            with m.Elif(self.w0_pre):
                with m.If(self.pre_done | mine_done | chain):
                    m.d.sync += [self.w0_pre.eq(0), self.pre_done.eq(0)]
                    self.advance(i)
                with m.Else():
                    # still running: wait for it as if launched here, so that the next step's run may be
                    # prefetched behind it (:meth:`after_plan`)
                    m.d.sync += [self.w0_pre.eq(0), self.launched.eq(1)]
        elif not chain:
            with m.If(mine_done):
                self.advance(i)

    def phase_wait_out(self, i, phase):
        """Wait until the output FIFO has room for the gate phase's H words and one more (it pushes them without
        looking; SyncFIFOBuffered's margin): with its depth of H + 3, two words of the step before may remain."""
        m, out_fifo = self.m, self.out_fifo
        room = out_fifo.level + self.p("hidden_size", self.H) <= out_fifo.depth - 1
        if len(phase) > 1:  # run-time dimensions: only the last layer's wait holds
            room = room | (self.prm["layers"] != phase[1] + 1)
        m.d.comb += self.waiting.eq(~room)
        with m.If(room):
            self.advance(i)

    def phase_gate(self, i, phase):
        """The layer's gate unit over the H elements: issue reads, then write h' (and c', the output)."""
        m, cfg, L = self.m, self.cfg, self.L
        H = self.p("hidden_size", self.H)
        layer, ph = phase[1], phase[2]
        gu = self.gate_units[(len(cfg.layer_gates(layer)), ph)]
        e_cnt, e_sub = self.e_cnt, self.e_sub
        issue = Signal(name=f"gate{i}_issue")
        if i in self.concurrent:
            # beside its plan: an element is issued once the plan has written its row of the last gate read
            k = self.need_gates(i)
            segs = self.p("segs_h", self.segs_h)
            need = (segs * k if k else 0) + self.e_seg
            if self.prog[self.dep_phase(i)][1] == 0:  # the step's input projection: its rows in XP buffer xp_par
                written = Array(self.x_rows)[self.xp_par] > need
            else:
                written = self.cc_done | (self.cc_rows > need)
            m.d.comb += issue.eq((e_cnt < H) & written)
        else:
            m.d.comb += issue.eq(e_cnt < H)
        # the element's read enable; the vector store's port only for a phase that reads it (else the port stays
        # the MVU's, which may run beside this phase)
        rd_en = Signal(name=f"gate{i}_rd")
        if self.gate_reads_store(phase):
            m.d.comb += self.g_rd_en.eq(rd_en)
            for q in range(self.Pc):
                m.d.comb += self.g_rd_addr[q].eq(self.e_row)
        if cfg.cell == "sru" and layer == 0:
            # x_t is in input buffer xp_par (slot x0's rows from 0)
            m.d.comb += [
                self.x_from_in.eq(1),
                self.in_aux_addr.eq(self.xb * self.R + self.e_row),
                self.in_aux_en.eq(rd_en),
            ]
        v1 = Signal(name=f"gate{i}_v1")
        m.d.comb += gu.i_valid.eq(v1)
        if self.stacked:
            # read the gates the phase uses (the reset phase needs only r, gate 0)
            g_last = 0 if ph == "reset" else len(cfg.layer_gates(layer)) - 1
            last = Signal(name=f"gate{i}_last")
            m.d.comb += [
                last.eq(issue & (e_sub == g_last)),
                rd_en.eq(last),
                self.c_r.en.eq(last),
                self.xp_r[0].en.eq(issue),
                self.hp_r[0].en.eq(issue),
            ]
            m.d.sync += v1.eq(last)
            with m.If(issue):
                m.d.sync += e_sub.eq(e_sub + 1)
            with m.If(last):
                m.d.sync += [e_sub.eq(0), e_cnt.eq(e_cnt + 1)]
                self.walk(self.e_lane, self.e_bank, self.e_row, self.e_seg)
        else:
            m.d.comb += rd_en.eq(issue)
            for g in range(self.gmax):
                m.d.comb += [self.xp_r[g].en.eq(issue), self.hp_r[g].en.eq(issue)]
            m.d.comb += self.c_r.en.eq(issue)
            m.d.sync += v1.eq(issue)
            with m.If(issue):
                m.d.sync += e_cnt.eq(e_cnt + 1)
                self.walk(self.e_lane, self.e_bank, self.e_row, self.e_seg)
        # results (a helper core pushes its slice of every layer's h: the exchange)
        is_last = (layer == L - 1 or self.helper) and ph == "update"
        m.d.comb += [
            self.wr_en.eq(gu.o_valid),
            self.wr_bank.eq(self.o_bank),
            self.wr_row.eq(self.o_row),
            self.wr_mask.eq(Const(1, self.T) << self.o_lane),
            self.wr_word.eq(gu.o_h),
        ]
        if ph == "update" and cfg.cell in ("lstm", "sru", "qrnn"):
            c_w = self.c_w
            m.d.comb += [c_w.addr.eq(self.c_base + self.o_cnt), c_w.data.eq(gu.o_c), c_w.en.eq(gu.o_valid)]
        if self.runtime and ph == "update":
            # the step's last layer is a register: push its h, then end the step
            is_last = self.prm["layers"] == layer + 1
            m.d.comb += [self.out_fifo.w_data.eq(gu.o_h), self.out_fifo.w_en.eq(gu.o_valid & is_last)]
        elif is_last:
            m.d.comb += [self.out_fifo.w_data.eq(gu.o_h), self.out_fifo.w_en.eq(gu.o_valid)]
        with m.If(gu.o_valid):
            m.d.sync += self.o_cnt.eq(self.o_cnt + 1)
            self.walk(self.o_lane, self.o_bank, self.o_row)
            with m.If(self.o_cnt == H - 1):
                if self.runtime and ph == "update" and layer < L - 1:
                    with m.If(is_last):
                        self.end_step()
                    with m.Else():
                        self.advance(i)
                else:
                    self.advance(i)

    def phase_gather(self, i, phase):
        """A helper core: the whole h of the layer, every core's slice in order, from the exchange stream
        ``i_hx`` into slot ``h{l}`` (one word a cycle; the core's own slice comes back too)."""
        m, hx = self.m, self.acc.i_hx
        m.d.comb += [
            hx.ready.eq(1),
            self.wr_en.eq(hx.valid),
            self.wr_bank.eq(self.o_bank),
            self.wr_row.eq(self.o_row),
            self.wr_mask.eq(Const(1, self.T) << self.o_lane),
            self.wr_word.eq(hx.payload),
        ]
        with m.If(hx.valid):
            m.d.sync += self.o_cnt.eq(self.o_cnt + 1)
            self.walk(self.o_lane, self.o_bank, self.o_row)
            with m.If(self.o_cnt == self.cfg.hidden_size - 1):
                self.advance(i)
