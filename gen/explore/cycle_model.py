"""Cycles per time step computed from the schedule, without simulating (issue 18's analytic cycle model).

:func:`cycles_per_step` follows a design's sequencer phase by phase with the latencies its blocks expose
(:data:`~rnnaccel.hw.mvu.PE_LATENCY`, :data:`~rnnaccel.hw.mvu.BIAS_LATENCY`, :func:`~rnnaccel.hw.gates.gate_latency`,
...): the counted cycles of a steady-state step (the accelerator's ``cycles`` counter: busy, not waiting on a
stream) with the input always there and the output always taken, as :func:`rnnaccel.flow.sim_amaranth.step_cycles`
measures them. It returns None for a design it does not model; :func:`modelled` says which.

**Serial datapath** (direct circulant mode): every step is the same. The entry state of each phase (one cycle),
``load`` (``input_size``), each layer's mac phase (``FILL``: the first block's ``k / pack`` weight words; ``RUN``:
``G * (k / lanes) * n_j * k`` issue cycles per tile row, a row's first pass held while the lanes are two rows
ahead of the gate reads; ``DRAIN``: the last pass through the lanes, the serializer and the bias add into the
scratch memory, the row's ``G * k`` gate reads and the gate unit), ``wait_out`` (one), each layer's ``copy``
(``H + 1``) and ``STEP_DONE`` (one). With streamed weights (``weight_source = 'flash'``) a cycle-by-cycle model
of the simulated flash and the datapath's takes (:class:`_WeightStream`) decides when FILL ends and when each
block's first column issues (once its vector is in); the rest is the same.

**Array datapath**: an event model of one sequencer (:func:`array_steps`). The MVU takes a plan when it is idle,
or in the last issue cycle of the one plan in flight (chaining; not for a plan with gaps); a plan issues
``rounds_r * rounds_c * T`` cycles with ``plan_gaps`` idle cycles after each row round but the last, and emits
each row round's segments one a cycle, :func:`mvu_output_delay` cycles after the round's last issue. A plan
phase ends in its launch cycle when the next phase is a plan or a gate phase beside it, else with its plan's
last segment; a gate phase issues one element a cycle (G cycles with stacked projections), beside its plan
only once that plan has written the element's segment of the last gate it reads, and ends with the gate
unit's last output; the step ends in its last phase's last cycle, and the next step starts at its phase
after ``load`` when its input is loaded by then (else at ``load``, a cycle later; past its input projection's
phase too when that plan was prefetched: :func:`~rnnaccel.hw.array.adopt_w0`); the loader takes the next
step's input from the first cycle of phase 1, and the next step's input projection (plan 0) starts once the
step's last plan has started, the input is loaded and the MVU is ready. A step may alternate between two
lengths (an SRU whose input projection is the step's only plan); :func:`cycles_per_step` gives their mean.
With three input buffers (SRU, QRNN: :func:`~rnnaccel.hw.array.input_buffers`) the loader goes on with the
input after the next once that one is in, never in a step's last cycle; its starts follow the input FIFO
(depth ``input_size``, an always-valid stream): the next input is all in a load plus two cycles after a load
started from a full FIFO, and x_1 ``2 input_size - 2`` cycles after x_0 (whose words arrive as it is read).
A one-layer SRU / QRNN (:func:`~rnnaccel.hw.array.projects_two_ahead`) also starts the input projection of the
step after the next, and takes the input after that, from the cycle after its gate phase's last issue, and its
next step starts in the gate phase (the output FIFO has room: an always-ready output stream).
A model run on a design with run-time dimensions follows the design's program with its own layout: the step
ends with its last layer's update, a recurrent plan ahead of a layer it does not have is skipped once the MVU
is ready. Not modelled: with two input buffers, steps shorter than the loader's work plus four cycles
(``input_size``: the input FIFO's refill then paces the loader); with three, a next input not taken during the
step (the sequencer would go through ``IDLE``); delta mode (data-dependent), helper cores and multi-core
designs, the FFT mode. (A serial design with run-time dimensions is modelled: the fixed step plus two cycles per
layer before the model's last.)

**Batched steps** (``time_steps = T > 1``, serial): a whole batch of T steps, cycle by cycle (:func:`_batched`):
the flash model and the pass buffer's fill (a block's words gathered, written into a free half), the lanes (a
pass's first step waits for its half; a tile row's first pass for the gate reads of the row two back), the scratch
writes, the gate phase step by step (a step once the one before has left the gate unit), then the push; the
figure is the batch's counted cycles over T (the input always there: batches are full; not modelled for an input
of fewer than 3 words, whose FIFO may not hold the next step's first word at a step's end).
"""

from __future__ import annotations

from ..numeric.config import Config
from ..layout.image import bank_packing, plans, serial_col_blocks, vector_slots
from ..hw.array import (
    adopt_w0,
    array_program,
    chains,
    dep_phase,
    input_buffers,
    is_concurrent,
    launches_early,
    projects_two_ahead,
)
from ..hw.datapath import BiasNarrow
from ..hw.gates import gate_latency
from ..hw.mvu import BIAS_LATENCY, PE_LATENCY, plan_gaps
from ..hw.pe import ProcessingElement, tree_latency

__all__ = ["cycles_per_step", "array_steps", "modelled", "mvu_output_delay"]


def mvu_output_delay(cfg: Config) -> int:
    """Cycles from a row round's last issue to its first output segment (``o_valid``): the PE (operand register,
    product, accumulate), the adder tree, the serializer's capture and first item, the bias read, register and
    narrowing."""
    return PE_LATENCY + tree_latency(cfg.pe_cols) + 1 + 1 + BIAS_LATENCY


def modelled(cfg: Config) -> bool:
    """``cfg`` is a design the model covers (an array design may still get None: a step too short, see above)."""
    # run-time dimensions: a model run on the design of its max_* fields (either datapath)
    return cfg.cores == 1 and not cfg.delta_mode and cfg.row_slices == 1 and not cfg.fft_mode


def cycles_per_step(cfg: Config, weight_timing: dict | None = None) -> int | float | None:
    """Counted cycles of a steady-state time step of ``cfg``'s design (the mean of two alternating lengths; an
    ``int`` when every step is the same), or None when the design is not modelled. ``weight_timing``: the
    ``bytes_per_cycle`` / ``latency`` of the weight stream's source (streamed weights; default the board flash's,
    :func:`rnnaccel.hw.weight_source.flash_model_timing`)."""
    if not modelled(cfg):
        return None
    if cfg.datapath == "serial":
        if cfg.time_steps > 1:
            return _batched(cfg, weight_timing)
        return _serial(cfg, weight_timing)
    steps = array_steps(cfg, 9)  # steps 1 to 8
    if steps is None:
        return None
    steady = steps[2:]  # six steps: a period of one or two
    mean = sum(steady) / len(steady)
    return int(mean) if mean == int(mean) else round(mean, 2)


def _serial_mac(cfg: Config, layer: int, start: int = 0, block_start=None) -> int:
    """The cycle after a serial mac phase's RUN and DRAIN states, RUN starting in cycle ``start``: row by row,
    the issue (held while the lanes are two tile rows ahead of the gate reads), the last pass's sums into scratch,
    the gate reads, the gate unit. ``block_start(c)``: the cycle a block whose first column could issue in cycle
    ``c`` does (streamed weights: once its vector is in; default ``c``)."""
    k, lanes = cfg.block_size, cfg.lanes
    groups = k // lanes
    gates = len(cfg.layer_gates(layer))
    rows = cfg.padded(cfg.hidden_size) // k
    blocks = gates * groups * serial_col_blocks(cfg, layer)  # blocks of one tile row, k issue cycles each
    # from a pass's last issue to its last scratch write: the vector read (1), the lanes, the serializer's
    # lanes items after its load, the bias add and narrowing
    to_scratch = 1 + ProcessingElement.LATENCY + lanes + BiasNarrow.LATENCY
    reads = gates * k
    reads_end: list[int] = []
    t = start  # the first issue cycle of row 0
    for r in range(rows):
        if r >= 2:
            t = max(t, reads_end[r - 2] + 1)  # lead >= 2: wait for the gate reads of row r - 2
        if block_start is None:
            t += blocks * k
        else:
            for _ in range(blocks):
                t = block_start(t) + k
        last = t - 1
        written = last + to_scratch + 1  # the write count shows the row's last word
        first = written if r == 0 else max(written, reads_end[r - 1] + 1)
        reads_end.append(first + reads)  # reads run from first + 1
    done = reads_end[-1] + 1 + gate_latency(cfg, "update")
    return done + 1  # the cycle after DRAIN sees done


def _serial(cfg: Config, weight_timing: dict | None = None) -> int:
    k = cfg.block_size
    fill = k // bank_packing(cfg)
    stream = _WeightStream(cfg, weight_timing) if cfg.weight_source != "onchip" else None
    window = cfg.cell == "qrnn" and cfg.qrnn_window == 2
    shift_x = 1 + cfg.input_size + 1 if window else 0  # shift x0 (entry, reads, the last write)
    t = shift_x + 1 + cfg.input_size  # load (the step's first entry cycle raises its weight request)
    for layer in range(cfg.num_layers):
        if window and layer:
            t += 1 + cfg.hidden_size + 1  # the previous layer's shift of its h slot, before its copy
        t += 1  # entry
        if stream is None:
            t = _serial_mac(cfg, layer, t + fill)  # FILL, RUN + DRAIN
        else:
            # FILL takes the first block's words; RUN starts the second cycle after the last (FILL sees them all)
            blocks = stream.blocks(layer)
            run = stream.fetch(t) + 2
            t = _serial_mac(cfg, layer, run, blocks)
        if cfg.runtime_dims:
            t += 2  # run-time dimensions: every layer's own wait_out (entry and one cycle)
        t += 1 + cfg.hidden_size + 1  # copy
    if not cfg.runtime_dims:
        t += 2  # wait_out (entry and one cycle), before the last layer's copy
    return t + 1  # STEP_DONE


class _WeightStream:
    """The weight stream of a serial design with ``weight_source = 'flash'`` in the simulation, cycle by cycle:
    the flash model (:func:`rnnaccel.hw.weight_source.flash_model_timing`: a request accepted in the step's cycle 0,
    ``latency`` cycles, then ``bytes_per_cycle`` while its two-word FIFO has room; a word written is taken from the
    next cycle) and the datapath, which takes a block's ``k / pack`` words from the previous block's first issue
    on (FILL: from its first cycle)."""

    def __init__(self, cfg: Config, timing: dict | None = None):
        from fractions import Fraction

        from ..hw.weight_source import flash_model_timing
        from ..layout.image import weight_stream_word_bits

        timing = {**flash_model_timing(), **(timing or {})}
        word = weight_stream_word_bits(cfg) // 8
        rate = min(Fraction(timing["bytes_per_cycle"]), Fraction(word))
        self.num, self.need = rate.numerator, rate.denominator * word  # a word's credit in 1/den bytes
        self.kp = cfg.block_size // bank_packing(cfg)
        self.cfg = cfg
        self.cycle = 0  # the producer's next cycle
        self.wait = timing["latency"] + 1  # cycle 0 accepts the request, then the latency
        self.credit = 0
        self.level = 0  # words in the FIFO
        self.arrive: list[int] = []  # cycle each word in the FIFO becomes readable

    def tick(self, ready: bool) -> bool:
        """Cycle ``self.cycle`` with the datapath's ``ready``: whether it takes a word."""
        c = self.cycle
        take = ready and bool(self.arrive) and self.arrive[0] <= c
        if self.wait:
            self.wait -= 1
        elif self.level < 2:
            self.credit += self.num
            if self.credit >= self.need:
                self.credit -= self.need
                self.level += 1
                self.arrive.append(c + 1)
        if take:
            self.level -= 1
            self.arrive.pop(0)
        self.cycle = c + 1
        return take

    def _run_to(self, end: int, ready_from: int | None = None, want: int = 0) -> int:
        """Advance the producer to cycle ``end`` (exclusive) with the datapath not taking; or, with
        ``ready_from``, from there taking words until ``want`` are taken: the cycle of the last take."""
        taken, last = 0, None
        while True:
            c = self.cycle
            if ready_from is None and c >= end:
                return -1
            if self.tick(ready_from is not None and c >= ready_from and taken < want):
                taken, last = taken + 1, c
            if ready_from is not None and taken == want:
                return last

    def fetch(self, start: int) -> int:
        """The cycle the datapath takes the last of a block's words, taking from cycle ``start`` on."""
        return self._run_to(start, start, self.kp)

    def blocks(self, layer: int):
        """``block_start`` of :func:`_serial_mac` for a layer whose first block's words FILL took."""
        from ..layout.image import weight_stream_layer_words

        left = [weight_stream_layer_words(self.cfg, layer) // self.kp - 1]  # blocks still to fetch
        ready = [None]  # the cycle the next block's vector is complete (None: FILL's, already there)

        def block_start(c: int) -> int:
            s = c if ready[0] is None else max(c, ready[0])
            if left[0]:
                ready[0] = self.fetch(s) + 1  # the next block's words, from this issue on
                left[0] -= 1
            return s

        return block_start


def _batched(cfg: Config, weight_timing: dict | None = None) -> int | float | None:
    """Counted cycles of a step of a full batch (``time_steps > 1``): the batch's over T (see the module docstring)."""
    from ..hw.serial import serial_program

    if cfg.input_size < 3:
        return None
    n, H = cfg.time_steps, cfg.hidden_size
    stream = _WeightStream(cfg, weight_timing)  # the batch's request is taken in its cycle 0
    c = 0  # the entry cycle of the phase
    for phase in serial_program(cfg):
        kind = phase[0]
        if kind == "load":
            c += 1 + n * cfg.input_size
        elif kind in ("carry", "chain"):
            words = cfg.input_size if phase[1] == "x0" else H
            c += words + 3 if kind == "carry" else 1 + (n - 1) * (words + 2)
        elif kind == "mac":
            while stream.cycle < c + 1:  # no words taken outside the mac phases' FILL, RUN and DRAIN states
                stream.tick(False)
            c = _batched_mac(cfg, phase[1], c + 1, stream)
        else:  # push: a step's H words, the output FIFO empty before each (a counted cycle), then STEP_DONE
            total = c + 1 + n * (H + 2) + 1
    return int(total / n) if total % n == 0 else round(total / n, 2)


def _batched_mac(cfg: Config, layer: int, fill: int, stream: "_WeightStream") -> int:
    """A batched mac phase from its FILL cycle, register by register as :class:`rnnaccel.hw.serial.SerialAccelerator`
    builds it: the next phase's entry cycle."""
    from ..layout.image import weight_stream_layer_words

    k, lanes, n = cfg.block_size, cfg.lanes, cfg.time_steps
    kp = k // bank_packing(cfg)
    G, S, R = len(cfg.layer_gates(layer)), k // lanes, cfg.padded(cfg.hidden_size) // k
    nj = serial_col_blocks(cfg, layer)
    lat = gate_latency(cfg, "update")
    to_scratch = 1 + ProcessingElement.LATENCY + lanes + BiasNarrow.LATENCY
    row_words, outputs = n * G * k, R * n * k
    # the fill: words in the vector, words left, block, half, the halves' full flags
    f_cnt, f_left, f_j, f_half, full = 0, weight_stream_layer_words(cfg, layer), 0, 0, [False, False]
    # the lanes: pass half, step, gate, group, row, column; lead = row - gate row
    l_half = i_t = i_g = i_s = i_row = pcnt = lead = 0
    run = False  # FILL, then RUN (and DRAIN once the last pass issued)
    issuing = True
    writes: dict[int, int] = {}  # scratch writes per cycle
    valid_out: dict[int, int] = {}  # gate unit outputs per cycle
    written = g_sub = g_row = g_t = flight = done = 0
    g_el = k
    c = fill
    while True:
        # the fill (FILL, RUN and DRAIN want words)
        free = not full[f_half]
        wr = f_cnt == kp and free
        take = stream.tick((f_cnt != kp or free) and f_left != 0)
        # the lanes (RUN)
        row_inc = g_row_inc = False
        clear = None
        if run and issuing:
            first = pcnt == 0 and i_t == 0
            hold = (first and i_g == 0 and i_s == 0 and lead >= 2) or (first and not full[l_half])
            if not hold:
                if pcnt == nj * k - 1:
                    pcnt = 0
                    for j in range(lanes):  # the serializer's items, the rep's sums narrowed into scratch
                        t = c + to_scratch - (lanes - 1) + j
                        writes[t] = writes.get(t, 0) + 1
                    if i_t != n - 1:
                        i_t += 1
                    else:
                        i_t, clear, l_half = 0, l_half, 1 - l_half
                        i_s += 1
                        if i_s == S:
                            i_s, i_g = 0, i_g + 1
                            if i_g == G:
                                i_g, i_row, row_inc = 0, i_row + 1, True
                                if i_row == R:
                                    issuing = False  # DRAIN from the next cycle
                else:
                    pcnt += 1
        # the gate phase (RUN and DRAIN)
        o_valid = valid_out.pop(c, 0)
        bn_valid = writes.pop(c, 0)
        start_take = 0
        last_sub = False
        if run:
            rd = g_el < k
            ready = written >= row_words if g_t == 0 else flight == 0
            start = not rd and g_row < R and ready
            last_sub = rd and g_sub == G - 1
            if start:
                g_el, g_sub = 0, 0
                start_take = row_words if g_t == 0 else 0
            elif rd:
                g_sub += 1
            if last_sub:
                valid_out[c + 1 + lat] = 1
                g_sub, g_el = 0, g_el + 1
                if g_el == k:
                    if g_t == n - 1:
                        g_t, g_row, g_row_inc = 0, g_row + 1, True
                    else:
                        g_t += 1
            done += o_valid
            if done == outputs:
                return c + 1
        written += bn_valid - start_take
        flight += int(last_sub) - o_valid
        lead += int(row_inc) - int(g_row_inc)
        # the fill's registers (after the lanes' clear: different halves)
        if take:
            f_left -= 1
        f_cnt = (0 if wr else f_cnt) + int(take)
        if clear is not None:
            full[clear] = False
        if wr:
            f_j += 1
            if f_j == nj:
                f_j, full[f_half], f_half = 0, True, 1 - f_half
        run = True
        c += 1


class _MVU:
    """The MVU's plans in flight: their start, last issue and output segment cycles."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.plans = plans(cfg)
        self.runs: list[tuple[int, int, int, list[int]]] = []  # (plan, start, last issue, segment cycles)
        self.delay = mvu_output_delay(cfg)

    def ready(self, c: int, idx: int) -> bool:
        """A start of plan ``idx`` is taken in cycle ``c``: nothing in flight, or one plan in flight whose last
        issue cycle has come and a plan without gaps (in flight: started before ``c``, last segment not before)."""
        inflight = [r for r in self.runs if r[1] < c and r[3][-1] >= c]
        if not inflight:
            return True
        return len(inflight) == 1 and c >= inflight[0][2] and plan_gaps(self.cfg, self.plans[idx]) == 0

    def takes(self, idx: int, c: int) -> int:
        """The first cycle from ``c`` in which the MVU takes a start of plan ``idx``."""
        while not self.ready(c, idx):
            c += 1
        return c

    def start(self, idx: int, c: int) -> tuple[int, int, int, list[int]]:
        """Launch plan ``idx`` in the first cycle from ``c`` the MVU takes it; the run."""
        c = self.takes(idx, c)
        cfg, p = self.cfg, self.plans[idx]
        rnd, gap = p.rounds_c * cfg.tile, plan_gaps(cfg, p)
        ends = [c + (i + 1) * rnd + i * gap for i in range(p.rounds_r)]  # each round's last issue cycle
        segs = [ends[j // cfg.pe_rows] + self.delay + j % cfg.pe_rows for j in range(p.br)]
        run = (idx, c, ends[-1], segs)
        self.runs.append(run)
        return run


def array_steps(cfg: Config, steps: int) -> list[int] | None:
    """Counted cycles of steps 1 .. ``steps`` - 1 (from the second step on; the first, which cannot overlap a step
    before it, is left out) of an array design; None when not modelled (see the module docstring)."""
    if cfg.datapath != "array" or not modelled(cfg):
        return None
    # with run-time dimensions the program and its plan numbers are the design's (the max_* config's), the
    # timing the model run's own layout (plans of its layers keep their numbers); the step ends with the update
    # phase of the run's last layer, and an ahead plan of a layer it does not have is skipped once the MVU is
    # ready (hw/array.py: phase_mvu); no plan is launched early (launches_early)
    runtime, hw = cfg.runtime_dims, cfg.at_max()
    prog = array_program(cfg)
    hw_pl, pl = plans(hw), plans(cfg)
    H, T, I, L = cfg.hidden_size, cfg.tile, cfg.input_size, cfg.num_layers
    segs_h = cfg.padded(H) // T
    concurrent = {i for i in range(len(prog)) if is_concurrent(hw, prog, hw_pl, i)}
    last_mvu = max(i for i, p in enumerate(prog) if p[0] == "mvu" and hw_pl[p[1]].layer < L)
    adopt = adopt_w0(prog, concurrent)
    mvu = _MVU(cfg)
    # the loader's cycles for a step's input: a window-2 QRNN first copies x_t into the x_(t-1) half (a segment
    # a cycle, then one more), then the input words, one a cycle
    qrnn2 = cfg.cell == "qrnn" and cfg.qrnn_window == 2
    load = I + (vector_slots(cfg)["x0"].segments // 2 + 1 if qrnn2 else 0)
    c = 0  # entry of the first step's load phase; the loader started in IDLE's last cycle
    xready = c + load
    # the loader's starts, input by input (x_k's at starts[k]); with three input buffers it takes x_{t+2} during
    # step t once x_{t+1} is in. The stream is always valid: the FIFO (depth I) holds the next input's words a
    # load plus two cycles after the last load started from a full FIFO, and x_1's 2I - 2 cycles after x_0's
    # (the stream's first words arrive while x_0 is read)
    ahead = input_buffers(cfg) - 1
    starts, readies = [c - 1], [xready]
    # a one-layer SRU / QRNN also starts the input projection of the step after the next (and takes the input
    # after that into its own buffer) once its gate phase has issued its last element, and enters the next
    # step's gate phase past wait_out
    two = adopt and projects_two_ahead(hw, prog)
    pre_run = None  # the next step's input projection, started during this step
    pre_run2 = None  # the one of the step after it
    step_done = []
    first = 0  # the step's first phase: 1 when its input was in by the last cycle of the step before (2: below)
    for _ in range(steps):
        runs: dict[int, tuple] = {}
        post_mvu = loader = None
        issued = None  # the first cycle after the step's last gate issue (a two-ahead design's)
        if first >= 2:  # phase 1 skipped: it would have adopted the prefetched input projection
            runs[0], pre_run = pre_run, None
            loader = c
            if last_mvu == 1:
                post_mvu = c
        for i, ph in enumerate(prog):
            if i < first:
                continue
            entry, kind = c, ph[0]
            if i == 1:
                loader = entry  # the loader takes the next step's input from phase 1's first cycle
            if kind == "load":
                end = max(entry, xready)
            elif kind == "mvu" and hw_pl[ph[1]].layer >= L:  # a layer the run does not have: skipped
                end = mvu.takes(0, entry)  # the MVU's ready, for the plan number it sees (0)
            elif kind == "mvu":
                idx = ph[1]
                chain = chains(prog, concurrent, i)
                if idx == 0 and pre_run is not None:  # started during the step before
                    run, pre_run = pre_run, None
                    end = entry if chain else max(entry, run[3][-1])
                    started = entry + 1
                else:
                    # launched from the phase before's last cycle when the MVU takes it then (launches_early)
                    early = not runtime and launches_early(prog, i)
                    early = early and (prog[i - 1][0] == "gate" or (i == 2 and first == 2))
                    run = mvu.start(idx, entry - 1 if early else entry)
                    end = run[1] if chain else run[3][-1]
                    started = run[1] + 1
                runs[idx] = run
                if i == last_mvu:
                    post_mvu = started
            elif kind == "wait_out":
                end = entry  # the output FIFO drained long before
            elif kind == "copy":
                end = entry + vector_slots(cfg)[ph[1]].segments // 2
            elif kind == "gate":
                layer, sub = ph[1], ph[2]
                reads = (1 if sub == "reset" else len(cfg.layer_gates(layer))) if cfg.stacked_projections else 1
                if i in concurrent:
                    run = runs[prog[dep_phase(prog, hw_pl, i)][1]]
                    plan = pl[run[0]]
                    last = 0 if sub == "reset" else len(cfg.layer_gates(layer)) - 1
                    k = min(last, plan.gate0 + plan.gates - 1) - plan.gate0
                    t = entry
                    for e in range(H):  # an element issues once its segment of gate k is out (a cycle later)
                        t = max(t, run[3][segs_h * k + e // T] + 1) + reads
                    last_read = t - 1
                else:
                    last_read = entry + H * reads - 1
                issued = last_read + 1
                end = last_read + 1 + gate_latency(cfg, sub)
            else:  # gather: a helper core's exchange (not modelled)
                return None
            c = end + 1
            if kind == "gate" and ph[2] == "update" and ph[1] == L - 1:
                break  # the run's last layer: the step ends (the design may have more)
        step_done.append(c)  # the step ended in cycle c - 1; straight into the next (its input was taken)
        if ahead == 1:
            xready = loader + 1 + load
            if step_done[-1] - loader < load + 4:
                return None  # the input FIFO's refill paces the loader: not modelled
        else:
            # the inputs the loader takes during this step (never in its last cycle), in order
            t = len(step_done) - 1
            while len(starts) <= t + ahead + two:
                k = len(starts)
                s = max(loader, readies[k - 1], starts[k - 1] + (2 * I - 2 if k == 1 else load + 2))
                if k == t + 3:  # into this step's own buffer, once its gate phase has issued its last element
                    s = max(s, issued)
                if s >= c - 1:
                    break
                starts.append(s)
                readies.append(s + 1 + load)
            if len(starts) <= t + 1:
                return None  # the next step's input is not taken during this one (IDLE): not modelled
            xready = readies[t + 1]
        if pre_run2 is not None:  # started during the step before
            pre_run, pre_run2 = pre_run2, None
        else:
            pre_run = mvu.start(0, max(post_mvu, xready))
        if two and len(readies) > t + 2:
            # the step after the next's: its input in, this step's gate phase issued, the next step's run started
            when = mvu.takes(0, max(issued, readies[t + 2], pre_run[1] + 1))
            if when <= c - 2:  # not in the step's last cycle
                pre_run2 = mvu.start(0, when)
        first = 1 if xready <= c - 1 else 0  # the step ends in cycle c - 1
        if first and adopt and pre_run[1] <= c - 2:  # its launch is seen (w0_pre) in the step's last cycle
            first = 3 if two else 2  # a two-ahead design's step enters its gate phase (the output FIFO drained)
    return [b - a for a, b in zip(step_done, step_done[1:])]
