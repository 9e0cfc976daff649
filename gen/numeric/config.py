"""The one configuration object: a model and the accelerator that runs it.

:class:`Config` is frozen; everything (golden model, components, weight-image
writer, table generator, CLI, tests) takes it. Derived quantities are
properties, invariants are checked at construction, and every violation
raises :class:`ConfigError` naming the field, the offending value and the
rule. Presets are the default config with changes (:func:`preset`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from .fixedpoint import QFormat

__all__ = [
    "Config",
    "ConfigError",
    "CELLS",
    "CELL_VARIANTS",
    "DATAPATHS",
    "CIRCULANT_MODES",
    "CORE_MODES",
    "MAX_CORES",
    "WEIGHT_SOURCES",
    "FIELDS",
    "gate_names",
    "PRESETS",
    "preset",
    "ceil_div",
]

#: Cell types and the gates (rows of the stacked projection matrices), in order.
CELLS = ("lstm", "gru", "sru", "qrnn", "rnn")

#: Every cell variant by name: the fields that select it (benchmarks and tests iterate over these).
CELL_VARIANTS: dict[str, dict] = {
    "lstm": {"cell": "lstm"},
    "gru-after": {"cell": "gru", "gru_reset_after": True},
    "gru-before": {"cell": "gru", "gru_reset_after": False},
    "sru": {"cell": "sru"},
    "qrnn-w1": {"cell": "qrnn", "qrnn_window": 1},
    "qrnn-w2": {"cell": "qrnn", "qrnn_window": 2},
    "rnn": {"cell": "rnn"},
}

#: Datapaths (see :class:`Config`, ``datapath``).
DATAPATHS = ("array", "serial")
#: Cells the serial datapath runs
SERIAL_CELLS = ("lstm", "rnn", "sru", "qrnn")

#: How a circulant block's product is computed (see :class:`Config`, ``circulant_mode``).
CIRCULANT_MODES = ("direct", "fft")

#: How several cores share work (see :class:`Config`, ``core_mode``).
CORE_MODES = ("programs", "layers", "helpers")

#: Most cores of one design.
MAX_CORES = 16

#: Where the weights come from (see :class:`Config`, ``weight_source``).
WEIGHT_SOURCES = ("onchip", "flash")


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def gate_names(cell: str, input_size: int | None = None, hidden_size: int | None = None) -> tuple[str, ...]:
    """Gate names of ``cell`` in weight order (PyTorch order where PyTorch has the cell).

    SRU has a fourth projection ``s`` (the scaled highway) when its input size
    differs from its hidden size.
    """
    if cell == "lstm":
        return ("i", "f", "g", "o")
    if cell == "gru":
        return ("r", "z", "n")
    if cell == "sru":
        if input_size is not None and hidden_size is not None and input_size != hidden_size:
            return ("x", "f", "r", "s")
        return ("x", "f", "r")
    if cell == "qrnn":
        return ("z", "f", "o")
    if cell == "rnn":
        return ("h",)
    raise ValueError(f"unknown cell {cell!r}")


class ConfigError(ValueError):
    """An invalid configuration value or combination.

    Attributes
    ----------
    field : str
        The offending field.
    value : Any
        Its value.
    rule : str
        The rule it breaks.
    """

    def __init__(self, field: str, value: Any, rule: str):
        self.field, self.value, self.rule = field, value, rule
        shown = repr(str(value)) if isinstance(value, QFormat) else repr(value)
        super().__init__(f"config field {field!r} = {shown}: {rule}")


_Q_FIELDS = ("q_weight", "q_state", "q_cell", "q_pre", "q_act", "q_spectrum")

#: Fields added after the first presets were recorded: written to the TOML (and so hashed) only when they
#: differ from their default or ``circulant_mode`` is not ``direct``, so every earlier config keeps its bytes
#: and its hash.
_LATE_FIELDS = ("circulant_mode", "q_spectrum")

#: Delta-mode fields (issue 19): written to the TOML (and so hashed) only when they differ from their default,
#: so every config without them keeps its bytes and its hash. ``delta_threshold_h`` defaults to None.
_DELTA_FIELDS = ("delta_threshold", "delta_threshold_h")

#: Multi-core fields (issue 14): written to the TOML (and so hashed) only when they differ from their default.
_CORE_FIELDS = ("cores", "core_mode", "row_slices", "row_slice")

#: Run-time dimension fields (issue 12): written to the TOML (and so hashed) only when they differ from their
#: default (0: the model's own size).
_MAX_FIELDS = ("max_input_size", "max_hidden_size", "max_layers")

#: Weight-stream fields (issue 13): written to the TOML (and so hashed) only when they differ from their default.
_STREAM_FIELDS = ("weight_source", "time_steps")


@dataclass(frozen=True)
class Config:
    """A recurrent model and the accelerator that runs it.

    Parameters
    ----------
    cell : str
        ``lstm``, ``gru``, ``sru``, ``qrnn`` or ``rnn``.
    input_size, hidden_size, num_layers : int
        Model shape. Layers after the first take the previous layer's hidden state.
    gru_reset_after : bool
        GRU variant: ``True`` is PyTorch's (reset applied after the recurrent
        product, ONNX ``linear_before_reset=1``), ``False`` is reset-before.
    qrnn_window : int
        QRNN convolution width over time, 1 or 2.
    block_size : int
        Circulant block size k; 1 means dense weights.
    pe_rows, pe_cols : int
        The PE grid (chessboard division).
    lanes : int
        Multiplier lanes per PE. On the array datapath it must equal
        ``block_size`` for circulant weights; for dense weights it is the tile
        size (L x L tiles, L weights read per cycle). On the serial datapath it
        is the lane count, a power of two dividing ``block_size``.
    q_weight, q_state, q_cell, q_pre, q_act : QFormat
        Formats of weights, inputs and hidden states, LSTM/SRU/QRNN cell state,
        gate pre-activations (and biases), and activation outputs.
    q_spectrum : QFormat
        Format of the stored weight spectra with ``circulant_mode = 'fft'``
        (each block's DFT, Hermitian-packed into k real words; see
        :mod:`rnnaccel.numeric.fft`); unused in direct mode.
    table_entries : int
        Entries of each activation table over its whole range [-R, R) (a power
        of two); odd symmetry stores half of them.
    sigmoid_range, tanh_range : float
        R for each table, a power of two.
    interpolate : bool
        Linear interpolation between table entries.
    weights_in_rom : bool
        Bake weights into the bitstream (ROM) rather than loading them at run time.
    weight_ram : str
        Memory kind of the weight banks: ``block`` (block RAM / EBR) or
        ``huge`` (iCE40 UltraPlus SPRAM: 16-bit words, no initial contents, so
        weights are loaded at run time; weights are packed 16 bits per word).
    stacked_projections : bool
        Layout of the gate-projection memories. ``False``: one memory per
        gate for each of the input and recurrent projections, so the gate
        phase reads all gates of an element in one cycle (one element per
        cycle). ``True``: all gates stacked in one memory per side (two
        memories in all, deep instead of many shallow ones, so they map to
        block RAM rather than flip-flops); the gate phase reads the G gates
        of an element over G cycles. Same results, fewer resources, a longer
        gate phase: the setting for small FPGAs such as the iCE40UP5K.
    datapath : str
        ``array`` (default): the chessboard PE grid; each PE has k lanes and
        computes a whole k x k circulant block in k cycles, and the input and
        recurrent projections are separate matrix-vector products.
        ``serial``: one row of ``lanes`` multipliers (``lanes`` dividing
        ``block_size``), every memory one word wide, and the input and
        recurrent products of a gate accumulated in one pass over [x; h]
        (*fused projections*: one narrowing of ``W x + U h + b + c``, so the
        golden model rounds once where the array rounds twice). LSTM, RNN,
        SRU and QRNN (SRU and QRNN have no recurrent product: one pass over
        x, the SRU highway read beside the gate phase, a window-2 QRNN's
        x_{t-1} kept behind x_t); circulant_mode 'fft' for LSTM and RNN.
        The setting for models whose weights fill a small FPGA's memory,
        such as ``lstm512-ice40`` (see docs/architecture.md).
    circulant_mode : str
        ``direct`` (default): a k x k circulant block times a segment is k^2
        multiply-accumulates of the defining vector (time domain). ``fft``:
        the C-LSTM form, ``y_i = IFFT(sum_j FFT(w_ij) * FFT(x_j))`` with the
        fixed-point transforms of :mod:`rnnaccel.numeric.fft`, weights stored
        as spectra in ``q_spectrum``; needs ``block_size`` a power of two, 4
        or more. The golden model, quantization and training support it; the
        gateware does not yet (generating or simulating it is refused).
    cores : int
        Cores of the design (1 to 16; default 1, the single accelerator).
        More than one is built by :class:`rnnaccel.hw.multicore.MultiCore`
        (``run``, ``generate``; board builds for ``programs`` and ``layers``).
    core_mode : str
        How the cores share work. ``programs`` (default): independent cores,
        each running its own model and streams (this config is one core's;
        the others are given beside it). ``layers``: the layers of this
        stack spread over the cores in contiguous groups
        (:meth:`core_layer_groups`), h streamed core to core. ``helpers``:
        the cores share every layer, each computing an equal slice of its
        rows (:meth:`helper_config`), and exchange their h slices after each
        layer; array datapath, not the reset-before GRU (its ``r*h`` needs
        every row's r), ``hidden_size`` a multiple of ``cores`` x the tile.
        Both written to ``rnnaccel.toml`` only when not the default.
    row_slices, row_slice : int
        One helper core's share of the rows (set on each core's config by
        :meth:`helper_config`; users set ``cores`` and ``core_mode``): the
        core computes rows ``row_slice * H / row_slices`` up to the next
        slice of every gate of every layer, and holds the whole h. 1 and 0
        (the default): every row. Written to the TOML only when set.
    delta_threshold : float
        Delta-network mode (issue 19; :mod:`rnnaccel.numeric.delta`): a
        non-negative threshold in the units of the inputs (q_state values).
        Each layer keeps the last propagated input and hidden state; an
        element propagates its change only when ``|x - x_ref|`` exceeds the
        threshold, and the pre-activation memories accumulate ``W * delta``
        exactly. In raw q_state units the test is ``|x - x_ref| >
        floor(threshold * 2**q_state.frac)`` (:attr:`delta_threshold_raw`). 0,
        the default, is exact and off. Written to the TOML only when not 0.
    delta_threshold_h : float or None
        Threshold of the hidden states (the recurrent inputs, the inputs of
        layers after the first, the reset-before GRU's ``r*h``); None (the
        default) takes ``delta_threshold``. Written to the TOML only when set.
    max_input_size, max_hidden_size, max_layers : int
        Run-time dimensions (issue 12; :mod:`rnnaccel.layout.runtime`): the
        largest input, hidden size and layer count the generated design runs.
        0, the default, is the model's own size; when any is set, the design is
        generated for these sizes, its layout constants (sizes, plan table,
        vector slots) become registers that ``SET_PARAM`` commands load, and it
        runs any model of the same cell and formats up to them (``rnnaccel run
        MODEL --hardware DIR``). One core, no delta mode, weights written at
        run time (``weights_in_rom = false``); on the serial datapath direct
        mode, on-chip weights and ``time_steps = 1``. Written to the TOML only
        when set.
    weight_source : str
        Where the datapath reads its weights (issue 13). ``onchip`` (the
        default): weight banks in block RAM or SPRAM. ``flash``: no weight
        bank; the weights arrive as a word stream from an external source
        in the order the datapath uses them (:func:`rnnaccel.layout.image.weight_stream_words`),
        requested once per time step: the board's quad-SPI flash
        (:class:`rnnaccel.hw.flash.FlashSource`) on a board, a model of it with
        the same bandwidth and latency (:class:`rnnaccel.hw.flash_model.MemoryModelSource`)
        in simulation. The model is then bounded by the flash, not by the
        chip's memory, and a step waits for its weights at the flash's rate.
        Serial datapath, direct mode, one core, weights fixed at generation
        (``weights_in_rom = true``: the stream image is written into the flash
        beside the bitstream), ``weight_ram = block``. Written to the TOML only
        when not the default.
    time_steps : int
        Time steps per weight fetch (T, issue 13; Sung and Park). With T > 1
        a batch of up to T steps (as many as the input stream delivers with
        gaps of at most 32 cycles between steps, so a sequence of any length,
        split across calls, runs) fetches
        every weight once: each pass over a weight row runs once per step of
        the batch, from a double-buffered pass buffer the stream fills while
        the previous row's passes run. Results do not change (integer
        accumulation is exact); a batch's first output comes after all of its
        inputs. For cells without a recurrent product (SRU, QRNN), whose
        every projection depends on x only; serial datapath with
        streamed weights (``weight_source = 'flash'``: on-chip weights are
        read a word a cycle, so batching gains nothing). 1 to 64; written to
        the TOML only when not 1.
    seed : int
        Seed for every random choice (weights of ``new``, test data).
    """

    cell: str = "lstm"
    input_size: int = 16
    hidden_size: int = 16
    num_layers: int = 1
    gru_reset_after: bool = True
    qrnn_window: int = 2
    block_size: int = 4
    pe_rows: int = 1
    pe_cols: int = 2
    lanes: int = 4
    q_weight: QFormat = QFormat(8, 6)
    q_state: QFormat = QFormat(16, 12)
    q_cell: QFormat = QFormat(16, 11)
    q_pre: QFormat = QFormat(16, 11)
    q_act: QFormat = QFormat(16, 14)
    q_spectrum: QFormat = QFormat(8, 5)
    table_entries: int = 256
    sigmoid_range: float = 8.0
    tanh_range: float = 4.0
    interpolate: bool = True
    weights_in_rom: bool = True
    weight_ram: str = "block"
    stacked_projections: bool = False
    datapath: str = "array"
    circulant_mode: str = "direct"
    delta_threshold: float = 0.0
    delta_threshold_h: float | None = None
    cores: int = 1
    core_mode: str = "programs"
    row_slices: int = 1
    row_slice: int = 0
    max_input_size: int = 0
    max_hidden_size: int = 0
    max_layers: int = 0
    weight_source: str = "onchip"
    time_steps: int = 1
    seed: int = 0
    name: str = "custom"

    # ------------------------------------------------------------------ checks
    def __post_init__(self):
        for qf in _Q_FIELDS:
            value = getattr(self, qf)
            if not isinstance(value, QFormat):
                try:
                    object.__setattr__(self, qf, QFormat.parse(value))
                except (TypeError, ValueError) as exc:
                    raise ConfigError(qf, value, str(exc)) from None
        for fname in ("sigmoid_range", "tanh_range", "delta_threshold", "delta_threshold_h"):
            value = getattr(self, fname)
            if isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, fname, float(value))
        self._validate()

    def _validate_serial(self):
        """Rules of ``datapath = 'serial'`` (see the class docstring)."""
        self._check(
            self.cell in SERIAL_CELLS,
            "cell",
            f"datapath 'serial' runs {', '.join(SERIAL_CELLS)} (one fused projection per gate; not the GRU, whose "
            f"candidate takes its recurrent projection apart)",
        )
        if self.fft_mode:
            self._check(
                self.has_recurrent_matrix,
                "cell",
                "datapath 'serial' with circulant_mode 'fft' is built for lstm and rnn",
            )
        self._check(
            self.block_size >= 4 and _is_pow2(self.block_size),
            "block_size",
            "datapath 'serial' needs circulant blocks of a power of two, 4 or more",
        )
        self._check(
            _is_pow2(self.lanes) and self.block_size % self.lanes == 0,
            "lanes",
            f"datapath 'serial' needs a power-of-two lane count dividing block_size ({self.block_size})",
        )
        self._check(self.pe_rows == 1, "pe_rows", "datapath 'serial' has one row of lanes: set pe_rows = 1")
        self._check(self.pe_cols == 1, "pe_cols", "datapath 'serial' has one row of lanes: set pe_cols = 1")
        if self.weight_ram == "huge" and 16 % self.weight_format.width == 0:  # else the SPRAM rule below speaks
            self._check(
                self.lanes % self.bank_packing == 0,
                "lanes",
                f"datapath 'serial' with SPRAM weights reads {self.bank_packing} weights per word: "
                f"lanes must be a multiple",
            )

    def _validate_fft_accumulator(self):
        """Rules of ``circulant_mode = 'fft'`` on the spectral accumulator (see :attr:`fft_acc_width`)."""
        self._check(
            self.q_pre.frac <= self.fft_acc_frac,
            "q_pre",
            f"has {self.q_pre.frac} fractional bits, more than the spectral accumulator's "
            f"{self.fft_acc_frac} (q_spectrum.frac + q_state.frac): biases could not be aligned exactly",
        )
        self._check(
            self.fft_acc_width <= 62,
            "q_spectrum",
            f"with q_state this gives a {self.fft_acc_width}-bit spectral accumulator, wider than the 62 "
            f"bits supported",
        )

    def _validate_cores(self):
        """Rules of ``cores`` and ``core_mode`` (see the class docstring)."""
        self._check(1 <= self.cores <= MAX_CORES, "cores", f"must be between 1 and {MAX_CORES}")
        self._check(self.core_mode in CORE_MODES, "core_mode", f"must be one of {', '.join(CORE_MODES)}")
        self._check(1 <= self.row_slices <= MAX_CORES, "row_slices", f"must be between 1 and {MAX_CORES}")
        self._check(0 <= self.row_slice < self.row_slices, "row_slice", "must be between 0 and row_slices - 1")
        if self.core_mode == "helpers" and self.cores > 1:
            self._check(self.row_slices == 1, "row_slices", "is set per core by core_mode 'helpers': leave it 1")
            self._validate_helpers("core_mode", self.cores)
        if self.row_slices > 1:
            self._check(self.cores == 1, "cores", "a helper core's config (row_slices > 1) is one core")
            self._validate_helpers("row_slices", self.row_slices)
        if self.core_mode == "layers":
            self._check(
                self.cores <= self.num_layers,
                "cores",
                f"core_mode 'layers' gives each core at least one layer: at most num_layers ({self.num_layers}) cores",
            )

    def _validate_helpers(self, fname: str, n: int):
        """Rules of cores sharing rows (``core_mode = 'helpers'``, or one of its cores: ``row_slices``)."""
        self._check(self.datapath == "array", fname, "helper cores (cores sharing rows) are built on datapath 'array'")
        self._check(
            not (self.cell == "gru" and not self.gru_reset_after),
            fname,
            "helper cores need every gate row-local: the reset-before GRU's r*h needs every row's r "
            "(use gru_reset_after = true)",
        )
        self._check(
            self.hidden_size % (n * self.tile) == 0,
            fname,
            f"{n} helper cores split hidden_size ({self.hidden_size}) into whole tiles of {self.tile}: "
            f"it must be a multiple of {n * self.tile}",
        )

    def _validate_runtime_dims(self):
        """Rules of the run-time dimension fields (see the class docstring)."""
        for fname, own in (
            ("max_input_size", self.input_size),
            ("max_hidden_size", self.hidden_size),
            ("max_layers", self.num_layers),
        ):
            # an integer already (the type rules of _validate run first)
            value = getattr(self, fname)
            self._check(value == 0 or value >= own, fname, f"must be 0 (the model's own) or at least {own}")
        if not self.runtime_dims:
            return
        if self.datapath == "serial":
            rule = "run-time dimensions (max_* fields) on datapath 'serial' are built"
            self._check(self.circulant_mode == "direct", "circulant_mode", f"{rule} for 'direct' only")
            self._check(self.weight_source == "onchip", "weight_source", f"{rule} for 'onchip' weights only")
            self._check(self.time_steps == 1, "time_steps", f"{rule} for 1 only")
        self._check(self.cores == 1, "cores", "run-time dimensions (max_* fields) are built for one core")
        self._check(self.row_slices == 1, "row_slices", "run-time dimensions (max_* fields) are built for one core")
        self._check(not self.delta_mode, "delta_threshold", "run-time dimensions (max_* fields) need it 0")
        self._check(
            not self.weights_in_rom,
            "weights_in_rom",
            "a design with run-time dimensions (max_* fields) loads each model's weights: set it false",
        )
        top = (self.max_input_size or self.input_size, self.max_hidden_size or self.hidden_size)
        if top + (self.max_layers or self.num_layers,) != (self.input_size, self.hidden_size, self.num_layers):
            try:
                self.at_max()
            except ConfigError as exc:
                fname = {"input_size": "max_input_size", "hidden_size": "max_hidden_size", "num_layers": "max_layers"}
                field = fname.get(exc.field) or next(f for f in _MAX_FIELDS if getattr(self, f))
                raise ConfigError(
                    field, getattr(self, field), f"the largest model of the design is not a valid config: {exc.rule}"
                ) from None

    def _validate_weight_source(self):
        """Rules of ``weight_source`` (see the class docstring)."""
        self._check(
            self.weight_source in WEIGHT_SOURCES, "weight_source", f"must be one of {', '.join(WEIGHT_SOURCES)}"
        )
        if self.weight_source == "onchip":
            return
        why = f"weight_source {self.weight_source!r}"
        self._check(self.datapath == "serial", "datapath", f"{why} streams weights into datapath 'serial' only")
        self._check(not self.fft_mode, "circulant_mode", f"{why} is built for circulant_mode 'direct'")
        self._check(self.cores == 1, "cores", f"{why} is built for one core")
        self._check(
            self.weights_in_rom,
            "weights_in_rom",
            f"{why}: the weights are fixed when the design is generated (written into the flash): set it true",
        )
        self._check(self.weight_ram == "block", "weight_ram", f"{why} builds no weight bank: leave it 'block'")

    def _validate_time_steps(self):
        """Rules of ``time_steps`` (see the class docstring)."""
        self._check(1 <= self.time_steps <= 64, "time_steps", "must be 1 to 64")
        if self.time_steps == 1:
            return
        why = f"time_steps {self.time_steps}"
        self._check(
            self.weight_source != "onchip",
            "weight_source",
            f"{why} batches the steps of streamed weights: set weight_source = 'flash' (on-chip weights are read "
            f"a word a cycle, batching would gain nothing)",
        )
        self._check(
            not self.has_recurrent_matrix,
            "cell",
            f"{why} is built for the cells whose projections all depend on x: sru and qrnn (the recurrent half "
            f"of lstm, gru and rnn cannot be batched, and their input half is not built yet)",
        )

    def _validate_delta(self):
        """Rules of the delta-mode thresholds (see the class docstring)."""
        span = 2.0 ** (self.q_state.int_bits + 1)
        for fname in ("delta_threshold", "delta_threshold_h"):
            value = getattr(self, fname)
            if value is None and fname == "delta_threshold_h":
                continue
            self._check(
                isinstance(value, float),
                fname,
                "must be a number (in the units of the inputs and hidden "
                "states)" + (", or left out" if fname == "delta_threshold_h" else ""),
            )
            self._check(math.isfinite(value) and value >= 0, fname, "must be a finite number, 0 or more (0 = exact)")
            self._check(
                value < span,
                fname,
                f"must be below {span:g}, the span of q_state ({self.q_state}): no change can exceed that",
            )

    def _check(self, ok: bool, fname: str, rule: str):
        if not ok:
            raise ConfigError(fname, getattr(self, fname), rule)

    def _validate(self):
        types = {f.name: f.type for f in dataclasses.fields(self)}
        for fname, ftype in types.items():
            value = getattr(self, fname)
            if ftype in ("int", int):
                self._check(isinstance(value, int) and not isinstance(value, bool), fname, "must be an integer")
            elif ftype in ("bool", bool):
                self._check(isinstance(value, bool), fname, "must be true or false")
            elif ftype in ("float", float):
                self._check(isinstance(value, float), fname, "must be a number")
            elif ftype in ("str", str):
                self._check(isinstance(value, str), fname, "must be a string")
        self._check(self.cell in CELLS, "cell", f"must be one of {', '.join(CELLS)}")
        for fname in ("input_size", "hidden_size", "num_layers", "block_size", "pe_rows", "pe_cols", "lanes"):
            self._check(getattr(self, fname) >= 1, fname, "must be 1 or more")
        self._check(self.input_size <= 4096, "input_size", "must be at most 4096")
        self._check(self.hidden_size <= 4096, "hidden_size", "must be at most 4096")
        self._check(self.num_layers <= 16, "num_layers", "must be at most 16")
        self._check(self.qrnn_window in (1, 2), "qrnn_window", "must be 1 or 2")
        self._check(self.block_size <= 256, "block_size", "must be at most 256")
        self._check(self.datapath in DATAPATHS, "datapath", f"must be one of {', '.join(DATAPATHS)}")
        self._check(
            self.circulant_mode in CIRCULANT_MODES, "circulant_mode", f"must be one of {', '.join(CIRCULANT_MODES)}"
        )
        self._validate_cores()
        if self.fft_mode:
            self._check(
                self.block_size >= 4 and _is_pow2(self.block_size),
                "circulant_mode",
                f"'fft' needs circulant blocks of a power of two, 4 or more (block_size {self.block_size})",
            )
        if self.datapath == "serial":
            self._validate_serial()
        elif self.block_size > 1:
            self._check(
                self.lanes == self.block_size,
                "lanes",
                f"must equal block_size ({self.block_size}) for circulant weights: a PE computes one "
                f"k x k block with k lanes (datapath = 'serial' runs fewer lanes)",
            )
        else:
            self._check(self.lanes <= 64, "lanes", "dense tile size must be at most 64")
        self._check(self.seed >= 0, "seed", "must be 0 or more")
        self._validate_delta()
        self._validate_runtime_dims()
        self._validate_weight_source()
        self._validate_time_steps()
        self._check(self.weight_ram in ("block", "huge"), "weight_ram", "must be 'block' or 'huge' (iCE40 SPRAM)")
        if self.weight_ram == "huge":
            self._check(
                not self.weights_in_rom,
                "weight_ram",
                "'huge' (SPRAM) cannot hold initial contents: set weights_in_rom = false",
            )
            wname = "q_spectrum" if self.fft_mode else "q_weight"
            self._check(
                self.block_size > 1 and 16 % self.weight_format.width == 0,
                "weight_ram",
                f"'huge' packs circulant weight words into 16-bit SPRAM words: needs block_size > 1 and a "
                f"{wname} width dividing 16 (block_size {self.block_size}, {wname} {self.weight_format})",
            )
        if self.cell == "qrnn" and self.qrnn_window == 2:
            self._check(
                self.input_size % self.tile == 0,
                "input_size",
                f"must be a multiple of the tile ({self.tile}) for a window-2 QRNN: "
                f"the hardware keeps [x_t, x_t-1] in whole segments",
            )
            if self.num_layers > 1:
                self._check(
                    self.hidden_size % self.tile == 0,
                    "hidden_size",
                    f"must be a multiple of the tile ({self.tile}) for a multi-layer window-2 QRNN",
                )
        self._check(self.q_act.int_bits >= 0, "q_act", "needs at least 0 integer bits to hold values in [-1, 1)")
        self._check(self.q_state.int_bits >= 0, "q_state", "needs at least 0 integer bits")
        self._check(self.q_cell.int_bits >= 0, "q_cell", "needs at least 0 integer bits")
        self._check(self.q_pre.int_bits >= 0, "q_pre", "needs at least 0 integer bits")
        if self.fft_mode:
            self._validate_fft_accumulator()
        else:
            self._check(
                self.q_pre.frac <= self.acc_frac,
                "q_pre",
                f"has {self.q_pre.frac} fractional bits, more than the accumulator's {self.acc_frac} "
                f"(q_weight.frac + q_state.frac): biases could not be aligned exactly",
            )
            self._check(
                self.q_pre.width <= self.acc_width,
                "q_pre",
                f"is {self.q_pre.width} bits wide, wider than the {self.acc_width}-bit accumulator",
            )
            self._check(
                self.acc_width <= 62,
                "q_weight",
                f"with q_state this gives a {self.acc_width}-bit accumulator, wider than the 62 bits supported",
            )
        self._check(
            self.table_entries >= 4 and _is_pow2(self.table_entries) and self.table_entries <= 65536,
            "table_entries",
            "must be a power of two between 4 and 65536",
        )
        for fname in ("sigmoid_range", "tanh_range"):
            value = getattr(self, fname)
            self._check(value > 0 and _is_pow2_float(value), fname, "must be a power of two (0.5, 1, 2, 4, 8, ...)")
            fn = fname.split("_")[0]
            # tables index q_pre; tanh also indexes the cell state of cells that have one
            inputs = ("q_pre", "q_cell") if fn == "tanh" and self.cell in ("lstm", "sru", "qrnn") else ("q_pre",)
            for qname in inputs:
                step_shift = self.table_shift(fn, getattr(self, qname).frac)
                self._check(
                    step_shift >= 0,
                    fname,
                    f"table step 2*R/table_entries is finer than the resolution of {qname} "
                    f"({getattr(self, qname)}): use fewer entries or a wider range",
                )

    # ---------------------------------------------------------------- derived
    def core_layer_groups(self) -> list[range]:
        """Layers of each core in ``core_mode = 'layers'``: contiguous groups, the first ones a layer
        longer when ``cores`` does not divide ``num_layers``; one group of every layer otherwise."""
        n = self.cores if self.core_mode == "layers" else 1
        base, extra = divmod(self.num_layers, n)
        groups, first = [], 0
        for i in range(n):
            count = base + (1 if i < extra else 0)
            groups.append(range(first, first + count))
            first += count
        return groups

    def core_config(self, core: int) -> "Config":
        """The single-core config of core ``core`` in ``core_mode = 'layers'``: its layers, their input size.

        Its layer 0 is layer ``core_layer_groups()[core].start`` of this stack (input size ``input_size``
        for the first core, ``hidden_size`` after), and it has ``cores = 1``.
        """
        group = self.core_layer_groups()[core]
        return self.replace(
            cores=1,
            core_mode=Config.core_mode,
            num_layers=len(group),
            input_size=self.layer_input_size(group.start),
            name=f"{self.name}.core{core}",
        )

    def helper_config(self, core: int) -> "Config":
        """The single-core config of core ``core`` in ``core_mode = 'helpers'``: the whole model, computing
        row slice ``core`` of ``cores`` (``row_slices``, ``row_slice``)."""
        if self.core_mode != "helpers":
            raise ValueError(f"helper_config needs core_mode 'helpers', not {self.core_mode!r}")
        return self.replace(
            cores=1,
            core_mode=Config.core_mode,
            row_slices=self.cores,
            row_slice=core,
            name=f"{self.name}.core{core}",
        )

    @property
    def row_hidden(self) -> int:
        """Rows of each gate this core computes: ``hidden_size / row_slices`` (all of them by default)."""
        return self.hidden_size // self.row_slices

    @property
    def row_offset(self) -> int:
        """First row of each gate this core computes (its slice's first hidden element)."""
        return self.row_slice * self.row_hidden

    @property
    def gates(self) -> tuple[str, ...]:
        """Gate names of layer 0 (see :meth:`layer_gates`)."""
        return self.layer_gates(0)

    def layer_input_size(self, layer: int) -> int:
        """Width of the vector a layer reads each step (before any QRNN window)."""
        return self.input_size if layer == 0 else self.hidden_size

    def layer_gates(self, layer: int) -> tuple[str, ...]:
        return gate_names(self.cell, self.layer_input_size(layer), self.hidden_size)

    def layer_cols(self, layer: int) -> int:
        """Columns of the layer's input matrix (the QRNN window stacks inputs)."""
        n = self.layer_input_size(layer)
        return n * self.qrnn_window if self.cell == "qrnn" else n

    @property
    def has_recurrent_matrix(self) -> bool:
        """LSTM, GRU and RNN multiply the hidden state; SRU and QRNN do not."""
        return self.cell in ("lstm", "gru", "rnn")

    @property
    def bank_packing(self) -> int:
        """Weight words per weight-memory word: ``16 / q_weight.width`` in SPRAM (``weight_ram = huge``), else 1."""
        return 16 // self.weight_format.width if self.weight_ram == "huge" else 1

    @property
    def fused_projections(self) -> bool:
        """One accumulation of ``W x + U h`` per gate (``datapath = 'serial'``), narrowed once (a cell without
        a recurrent matrix, SRU or QRNN, has ``W x`` alone: its projection is the same either way)."""
        return self.datapath == "serial" and self.has_recurrent_matrix

    @property
    def fft_mode(self) -> bool:
        """Circulant blocks computed in the frequency domain (``circulant_mode = 'fft'``)."""
        return self.circulant_mode == "fft"

    @property
    def weight_format(self) -> QFormat:
        """Format of a stored weight word: ``q_spectrum`` in FFT mode, else ``q_weight``."""
        return self.q_spectrum if self.fft_mode else self.q_weight

    @property
    def circulant(self) -> bool:
        """Block-circulant weights (``block_size > 1``); dense weights otherwise."""
        return self.block_size > 1

    @property
    def tile(self) -> int:
        """Side of the square tile one PE computes: k (circulant) or the lane count (dense)."""
        return self.block_size if self.circulant else self.lanes

    def padded(self, n: int) -> int:
        """``n`` rounded up to a whole number of tiles (zero padding)."""
        return ceil_div(n, self.tile) * self.tile

    @property
    def multipliers(self) -> int:
        """Multipliers of the design's MAC lanes: lanes x PEs, times the cores (each core a full PE array)."""
        return self.lanes * self.pe_rows * self.pe_cols * self.cores

    def matrices(self, layer: int) -> list[tuple[str, int, int]]:
        """(name, rows, cols) of the layer's matrices in the order the hardware runs them.

        Rows are gates stacked, each gate's rows padded to whole tiles.
        """
        g = len(self.layer_gates(layer))
        hp = self.padded(self.hidden_size)
        rp = self.padded(self.row_hidden)  # a helper core's rows: its slice of each gate
        out = [("W", g * rp, self.padded(self.layer_cols(layer)))]
        if self.cell == "gru" and not self.gru_reset_after:
            # reset-before: U_n multiplies r*h, which needs r first
            out += [("Urz", 2 * rp, hp), ("Un", rp, hp)]
        elif self.has_recurrent_matrix:
            out.append(("U", g * rp, hp))
        return out

    @property
    def acc_frac(self) -> int:
        """Fractional bits of a matrix-vector accumulator: weight x state."""
        return self.q_weight.frac + self.q_state.frac

    @property
    def max_terms(self) -> int:
        """Most products summed into one accumulator (the widest padded matrix; both with fused projections)."""
        if self.fused_projections:
            return max(sum(c for _, _, c in self.matrices(layer)) for layer in range(self.num_layers))
        return max(c for layer in range(self.num_layers) for _, _, c in self.matrices(layer))

    @property
    def bias_width(self) -> int:
        """Bits of one stored bias: q_pre, or one more for the fused ``b + c``."""
        return self.q_pre.width + (1 if self.fused_projections else 0)

    @property
    def acc_width(self) -> int:
        """Accumulator width that can never overflow: products, their sum, plus the aligned bias."""
        product = self.q_weight.width + self.q_state.width
        sums = product + max(1, math.ceil(math.log2(self.max_terms)))
        bias = self.bias_width + max(0, self.acc_frac - self.q_pre.frac)
        return max(sums, bias) + 1

    @property
    def fft_stages(self) -> int:
        """Radix-2 stages of a k-point transform (``log2 k``)."""
        return self.block_size.bit_length() - 1

    @property
    def fft_blocks(self) -> int:
        """Most column blocks summed into one spectral accumulator (both matrices with fused projections)."""
        return self.max_terms // self.block_size

    @property
    def fft_acc_frac(self) -> int:
        """Fraction bits of the spectral accumulator and of the inverse transform: spectrum x state."""
        return self.q_spectrum.frac + self.q_state.frac

    @property
    def fft_acc_width(self) -> int:
        """Width of the spectral accumulator ``sum_j S_j X_j``, which never overflows.

        A bin's real part sums two products per column block (``Sr Xr - Si Xi``).
        """
        product = self.q_spectrum.width + self.q_state.width
        return product + max(1, math.ceil(math.log2(2 * self.fft_blocks))) + 1

    @property
    def fft_out_width(self) -> int:
        """Width of the unscaled inverse transform's values and of its output plus the aligned bias.

        The inverse grows by at most one bit per stage from the accumulator (one more for rounding).
        """
        grown = self.fft_acc_width + self.fft_stages + 1
        bias = self.bias_width + max(0, self.fft_acc_frac - self.q_pre.frac)
        return max(grown, bias) + 1

    def table_shift(self, fn: str, in_frac: int) -> int:
        """Right shift turning an input with ``in_frac`` fraction bits into a table index."""
        rng = self.sigmoid_range if fn == "sigmoid" else self.tanh_range
        step_log2 = int(round(math.log2(2 * rng))) - int(round(math.log2(self.table_entries)))
        return in_frac + step_log2

    def weight_words(self, layer: int | None = None) -> int:
        """Weight words stored (circulant: k per block; dense: every entry)."""
        layers = range(self.num_layers) if layer is None else [layer]
        total = 0
        for lyr in layers:
            for _, r, c in self.matrices(lyr):
                total += r * c // self.block_size
        return total

    def dense_weight_words(self, layer: int | None = None) -> int:
        """Weight words the same model would need uncompressed (unpadded)."""
        layers = range(self.num_layers) if layer is None else [layer]
        total = 0
        for lyr in layers:
            g = len(self.layer_gates(lyr))
            total += g * self.hidden_size * self.layer_cols(lyr)
            if self.has_recurrent_matrix:
                total += g * self.hidden_size * self.hidden_size
        return total

    @property
    def weight_bytes(self) -> int:
        return ceil_div(self.weight_words() * self.weight_format.width, 8)

    @property
    def dense_weight_bytes(self) -> int:
        return ceil_div(self.dense_weight_words() * self.q_weight.width, 8)

    def tile_grid(self, rows: int, cols: int) -> tuple[int, int]:
        return rows // self.tile, cols // self.tile

    def mvu_cycles(self, rows: int, cols: int) -> int:
        """Cycles the multipliers spend on one matrix, pipeline latency excluded.

        Array: the chessboard sweep. Serial: ``rows * cols / lanes`` (its passes
        run the matrix's columns inside the fused [W | U] rows, one per cycle).
        """
        if self.datapath == "serial":
            return rows * cols // self.lanes
        br, bc = self.tile_grid(rows, cols)
        return ceil_div(br, self.pe_rows) * ceil_div(bc, self.pe_cols) * self.tile

    @property
    def ideal_cycles_per_step(self) -> int:
        """Multiply-accumulates of one time step (all layers) over the multipliers (of every core: a layer
        pipeline's steady state; with ``programs`` cores, steps counted over all the cores' streams)."""
        macs = sum(r * c for layer in range(self.num_layers) for _, r, c in self.matrices(layer))
        return ceil_div(macs, self.multipliers)

    @property
    def delta_threshold_hidden(self) -> float:
        """Threshold of the hidden states: ``delta_threshold_h``, or ``delta_threshold`` when that is None."""
        return self.delta_threshold if self.delta_threshold_h is None else self.delta_threshold_h

    @property
    def delta_mode(self) -> bool:
        """Delta-network mode is on: a threshold is above 0 (0 is exact and off)."""
        return self.delta_threshold > 0 or self.delta_threshold_hidden > 0

    @property
    def runtime_dims(self) -> bool:
        """The design has run-time dimensions: a ``max_*`` field is set (see :meth:`at_max`)."""
        return bool(self.max_input_size or self.max_hidden_size or self.max_layers)

    def at_max(self) -> "Config":
        """The config at its largest run-time sizes (the hardware's capacity); itself without ``max_*`` fields."""
        if not self.runtime_dims:
            return self
        return self.replace(
            input_size=self.max_input_size or self.input_size,
            hidden_size=self.max_hidden_size or self.hidden_size,
            num_layers=self.max_layers or self.num_layers,
        )

    def with_limits_of(self, hardware: "Config") -> "Config":
        """This model's config carrying ``hardware``'s run-time limits (its ``max_*`` fields, resolved)."""
        hw = hardware.at_max()
        return self.replace(max_input_size=hw.input_size, max_hidden_size=hw.hidden_size, max_layers=hw.num_layers)

    @property
    def delta_threshold_raw(self) -> int:
        """The input threshold in raw q_state units, ``floor(delta_threshold * 2**q_state.frac)``.

        For an integer d, ``|d| > floor(t)`` exactly when ``|d| > t``: the raw
        test is the float test on the quantized values.
        """
        return math.floor(self.delta_threshold * 2.0**self.q_state.frac)

    @property
    def delta_threshold_h_raw(self) -> int:
        """The hidden-state threshold in raw q_state units (see :attr:`delta_threshold_raw`)."""
        return math.floor(self.delta_threshold_hidden * 2.0**self.q_state.frac)

    # ---------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        """Every field (Q formats as ``"Qm.n"``), but :data:`_LATE_FIELDS` only when they matter.

        ``circulant_mode`` and ``q_spectrum`` are left out while both hold their
        defaults in direct mode, and ``cores`` and ``core_mode`` while each holds its
        default, so configs written before they existed keep their TOML bytes and
        hash; :meth:`from_dict` restores the defaults.
        """
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in _LATE_FIELDS and not self.fft_mode and value == f.default:
                continue
            if f.name in _DELTA_FIELDS and value == f.default:
                continue
            if f.name in _CORE_FIELDS and value == f.default:
                continue
            if f.name in _MAX_FIELDS and value == f.default:
                continue
            if f.name in _STREAM_FIELDS and value == f.default:
                continue
            out[f.name] = str(value) if isinstance(value, QFormat) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                unknown[0], data[unknown[0]], f"is not a config field (known: {', '.join(sorted(known))})"
            )
        return cls(**data)

    def to_toml(self) -> str:
        return tomli_w.dumps({"rnnaccel": self.to_dict()})

    @classmethod
    def from_toml(cls, text: str) -> "Config":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("<file>", "...", f"is not valid TOML: {exc}") from None
        if "rnnaccel" not in data or not isinstance(data["rnnaccel"], dict):
            raise ConfigError("<file>", sorted(data), "needs an [rnnaccel] table")
        return cls.from_dict(data["rnnaccel"])

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_toml())

    @classmethod
    def load(cls, path: str | Path) -> "Config":
        return cls.from_toml(Path(path).read_text())

    @property
    def hash(self) -> str:
        """Short SHA-256 of the canonical TOML (names artefacts and build caches)."""
        return hashlib.sha256(self.to_toml().encode()).hexdigest()[:16]

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


#: Every config field, in order (``to_dict`` may leave out the late ones; these are all that ``from_dict`` takes).
FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Config))


def _is_pow2(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def _is_pow2_float(x: float) -> bool:
    m, _ = math.frexp(x)
    return m == 0.5


_DEFAULT = Config()

PRESETS: dict[str, Config] = {
    "tiny": _DEFAULT.replace(name="tiny", input_size=8, hidden_size=8, block_size=4, lanes=4, pe_rows=1, pe_cols=2),
    "lstm-small": _DEFAULT.replace(
        name="lstm-small", input_size=32, hidden_size=32, block_size=4, lanes=4, pe_rows=2, pe_cols=2
    ),
    "gru-small": _DEFAULT.replace(
        name="gru-small", cell="gru", input_size=32, hidden_size=32, block_size=4, lanes=4, pe_rows=2, pe_cols=2
    ),
    # the lstm-small model shape on the iCE40UP5K (iCEBreaker): the serial datapath (4 lanes + 3 gate
    # multipliers of the 8 DSPs, one-word memories: 17 of 30 EBR), 512-entry tables without interpolation.
    # (The array datapath with one PE needs 33 EBR since its overlapped schedule added the input store.)
    "lstm-small-ice40": _DEFAULT.replace(
        name="lstm-small-ice40",
        input_size=32,
        hidden_size=32,
        block_size=4,
        lanes=4,
        pe_rows=1,
        pe_cols=1,
        datapath="serial",
        table_entries=512,
        interpolate=False,
    ),
    # 512x512 LSTM, k = 16: its 128 KiB of weights fill the UP5K's four SPRAMs; the serial datapath
    # (4 lanes, one-word memories, fused projections) fits the rest in 30 EBR and 8 DSPs
    "lstm512-ice40": _DEFAULT.replace(
        name="lstm512-ice40",
        input_size=512,
        hidden_size=512,
        block_size=16,
        lanes=4,
        pe_rows=1,
        pe_cols=1,
        q_weight=QFormat(8, 7),
        weights_in_rom=False,
        weight_ram="huge",
        datapath="serial",
        table_entries=512,
        interpolate=False,
    ),
    # the same 512x512 LSTM (k = 16, 8-bit weights) on the ULX3S-85F (ECP5): the array datapath with 4x2 PEs of
    # 16 lanes (128 multipliers + 6 in the gate unit, of 156), weights in ROM in block RAM, stacked projection
    # memories (per-gate ones spread 64 wide EBRs over the die and did not route); 3x3 and 3x2 PEs did not
    # route either (docs/boards.md)
    "lstm512-ecp5": _DEFAULT.replace(
        name="lstm512-ecp5",
        input_size=512,
        hidden_size=512,
        block_size=16,
        lanes=16,
        pe_rows=4,
        pe_cols=2,
        q_weight=QFormat(8, 7),
        stacked_projections=True,
    ),
}

# a model larger than the chip (issue 13): a 448x448 LSTM, k = 8, 196 KiB of 8-bit weights against the UP5K's
# 143 KiB of on-chip memory, streamed from the iCEBreaker's SPI flash (quad I/O) once per step by lstm512-ice40's
# serial datapath; the weights are part of the flash image written behind the bitstream
PRESETS["lstm448-flash-ice40"] = PRESETS["lstm512-ice40"].replace(
    name="lstm448-flash-ice40",
    input_size=448,
    hidden_size=448,
    block_size=8,
    weights_in_rom=True,
    weight_ram="block",
    weight_source="flash",
)


def preset(name: str) -> Config:
    """A named preset; :class:`KeyError` with the known names otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})") from None
