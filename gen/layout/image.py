"""The hardware's memory layout: matrix plans, vector slots and weight images.

This is where the chessboard division lives, shared by the weight-image
writer, the hardware address generators and the tests:

* A **matrix plan** is one matrix-vector product the MVU runs: the gate-stacked
  matrix (rows = gates x padded hidden size; a helper core's row slice of
  each gate, ``Config.row_hidden`` from ``row_offset``) cut into T x T tiles (T = k for
  circulant weights, the lane count for dense ones), a grid of ``br x bc``
  tiles swept over the ``pe_rows x pe_cols`` PE grid. Tile (i, j) goes to PE
  (i mod P_r, j mod P_c); the sweep visits row rounds ``I`` (tile rows
  ``I*P_r + p``) and, inside a round, column rounds ``J`` (tile columns
  ``J*P_c + q``), T cycles per tile.
* **Weight banks**: PE (p, q) reads only its own bank, one word per cycle in
  sweep order, so a bank is the concatenation, over plans, rounds I, rounds J
  and cycles t, of the word PE (p, q) needs: the defining-vector word w[t]
  (circulant) or column t of the dense tile (T words). Tiles outside the
  matrix (grid not divisible by the PE grid) are zero. The read address is a
  plain counter.
* **Vector slots**: vectors the MVU reads (layer inputs, hidden states) are
  stored as T-word segments in P_c banks; segment j lives in bank ``j mod P_c``
  at row ``base + j // P_c``, so in column round J every PE column q reads
  row ``base + J`` of its own bank.

The serial datapath (``datapath = 'serial'``, :mod:`rnnaccel.hw.serial`) has
one weight bank and one-word memories; its layout is here too:

* **Serial weight bank**: per layer, per tile row i, per gate g, the fused
  row of blocks ``[W_g | U_g]`` (column blocks of the input, then of h), each
  block its k-word defining vector. The lanes' pass over row group s reads a
  block's words rotated by ``s * lanes`` (:func:`serial_weight_address`).
* **Serial vector memory**: element e of a slot at word ``base * T + e``
  (the slots of :func:`vector_slots` with one bank), so layer l's [input; h]
  is one contiguous run; ``hn`` holds the new h of the layer being computed.
* **Serial bias memory**: per layer, per gate, per padded row, ``b + c``
  (``cfg.bias_width`` bits, one word per row).

With ``circulant_mode = 'fft'`` the serial datapath (:mod:`rnnaccel.hw.serial_fft`) has its own
layout (:class:`SerialFFTLayout`):

* **Weight bank**: the same order, per layer, per tile row (row block) i, per gate g, per column
  block j of ``[W_g | U_g]``, k words: the block's packed Hermitian weight spectrum in
  ``q_spectrum`` (:mod:`rnnaccel.numeric.fft`). A memory word holds whole bins (two packed words,
  the first in the low bits): two words in block RAM, ``16 / q_spectrum.width`` in SPRAM.
* **Bias memory**: pairs, the ``b + c`` of rows ``i*k + n`` and ``i*k + n + k/2`` (n < k/2) in one
  word (the first in the low bits), per layer, gate, tile row, n: the inverse transform emits
  those two outputs together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..numeric.config import Config, ceil_div
from ..numeric.model import Weights, quantize_weights

__all__ = [
    "pack_words",
    "bank_packing",
    "bank_words",
    "MatrixPlan",
    "plans",
    "VectorSlot",
    "vector_slots",
    "h_double_buffered",
    "weight_banks",
    "bias_image",
    "bias_words",
    "bias_word_bits",
    "bias_rows",
    "weight_bank_words",
    "tile_of",
    "weight_bank_depth",
    "serial_col_blocks",
    "serial_weight_image",
    "serial_layer_bases",
    "serial_weight_address",
    "weight_stream_layer_words",
    "weight_stream_step_words",
    "weight_stream_addresses",
    "weight_stream_word_bits",
    "weight_stream_bytes",
    "MemoryImage",
    "memory_image",
    "DatapathLayout",
    "ArrayLayout",
    "SerialLayout",
    "SerialFFTLayout",
    "LAYOUTS",
    "layout_of",
]


def pack_words(values, width: int) -> int:
    """Pack signed integers (lane 0 in the low bits) into one unsigned memory word."""
    mask = (1 << width) - 1
    out = 0
    for i, v in enumerate(values):
        out |= (int(v) & mask) << (width * i)
    return out


@dataclass(frozen=True)
class MatrixPlan:
    """One matrix-vector product of the sequencer's schedule."""

    index: int  #: position in the schedule (all layers)
    layer: int
    name: str  #: W, U, Urz or Un
    gate0: int  #: first gate of the stacked rows
    gates: int  #: number of gates stacked
    rows: int  #: padded rows (gates * padded hidden)
    cols: int  #: padded columns
    br: int  #: tile rows
    bc: int  #: tile columns
    rounds_r: int  #: ceil(br / pe_rows)
    rounds_c: int  #: ceil(bc / pe_cols)
    weight_base: int  #: first word of this plan in every weight bank
    bias_base: int  #: first segment of this plan in the bias memory
    src: str  #: vector slot the MVU reads
    dst: str  #: "xp" (input projections) or "hp" (recurrent projections)

    @property
    def words_per_bank(self) -> int:
        return self.rounds_r * self.rounds_c * self.tile_cycles

    tile_cycles: int = 1  #: T

    @property
    def sweep_cycles(self) -> int:
        """Issue cycles of the sweep (T per tile round)."""
        return self.rounds_r * self.rounds_c * self.tile_cycles


def plans(cfg: Config) -> list[MatrixPlan]:
    """Every matrix-vector product of one time step, in schedule order."""
    out = []
    T = cfg.tile
    wbase = bbase = 0
    for layer in range(cfg.num_layers):
        for name, rows, cols in cfg.matrices(layer):
            br, bc = rows // T, cols // T
            rr, rc = ceil_div(br, cfg.pe_rows), ceil_div(bc, cfg.pe_cols)
            if name == "W":
                src, dst, gate0 = ("x0" if layer == 0 else f"h{layer - 1}"), "xp", 0
            elif name == "Un":
                src, dst, gate0 = "rh", "hp", 2
            else:
                src, dst, gate0 = f"h{layer}", "hp", 0
            gates = rows // cfg.padded(cfg.row_hidden)
            p = MatrixPlan(
                index=len(out),
                layer=layer,
                name=name,
                gate0=gate0,
                gates=gates,
                rows=rows,
                cols=cols,
                br=br,
                bc=bc,
                rounds_r=rr,
                rounds_c=rc,
                weight_base=wbase,
                bias_base=bbase,
                src=src,
                dst=dst,
                tile_cycles=T,
            )
            out.append(p)
            wbase += p.words_per_bank
            bbase += br
    return out


@dataclass(frozen=True)
class VectorSlot:
    name: str
    words: int  #: padded length
    segments: int
    base: int  #: first row in every vector bank


def h_double_buffered(cfg: Config) -> bool:
    """The array datapath keeps a one-layer LSTM, RNN or reset-after GRU's h twice (slots ``h0`` and ``h0b``), by
    step parity: the update phase writes h_{t+1} into one while ``U`` still reads h_t from the other, so the
    phase runs beside ``U`` instead of after it (issue 12). ``h0b`` follows ``h0``; the hardware swaps the two
    names' rows by step parity for its own reads and writes and for the host's (a host writes h_t to slot h0).
    Not with run-time dimensions or a helper core's row slice (their slot addressing stays single)."""
    plain = cfg.cell in ("lstm", "rnn") or (cfg.cell == "gru" and cfg.gru_reset_after)
    single = cfg.num_layers == 1 and not cfg.runtime_dims and cfg.row_slices == 1
    return cfg.datapath == "array" and plain and single


def vector_slots(cfg: Config) -> dict[str, VectorSlot]:
    """Slots of the vector banks: layer-0 input, each layer's hidden state, GRU's r*h (``time_steps`` > 1: the
    input and hidden-state slots hold a vector per step of a batch); ``h0b`` when :func:`h_double_buffered`."""
    T = cfg.tile
    win = cfg.qrnn_window if cfg.cell == "qrnn" else 1
    steps = cfg.time_steps  # a batch of T steps (serial, issue 13): step t's vector at t * the one-step size
    sizes = {"x0": cfg.padded(cfg.layer_cols(0)) * steps}
    for layer in range(cfg.num_layers):
        # a window-2 QRNN layer's h slot also holds h_{t-1} for the next layer
        sizes[f"h{layer}"] = cfg.padded(cfg.hidden_size) * win * steps
    if h_double_buffered(cfg):
        sizes["h0b"] = cfg.padded(cfg.hidden_size)
    if cfg.cell == "gru" and not cfg.gru_reset_after:
        sizes["rh"] = cfg.padded(cfg.hidden_size)
    for name in layout_of(cfg).extra_slots:
        sizes[name] = cfg.padded(cfg.hidden_size)
    out, base = {}, 0
    for name, words in sizes.items():
        segs = words // T
        out[name] = VectorSlot(name, words, segs, base)
        base += ceil_div(segs, cfg.pe_cols)
    return out


def vector_depth(cfg: Config) -> int:
    """Rows of each vector bank."""
    slots = vector_slots(cfg)
    return max(s.base + ceil_div(s.segments, cfg.pe_cols) for s in slots.values())


def _dense_padded(cfg: Config, vectors: np.ndarray, rows: int, cols: int) -> np.ndarray:
    from ..numeric.circulant import expand

    out = np.zeros((cfg.padded(rows), cfg.padded(cols)), dtype=np.int64)
    out[:rows, :cols] = expand(vectors)[:rows, :cols]
    return out


def tile_of(cfg: Config, qweights: Weights, plan: MatrixPlan, i: int, j: int) -> np.ndarray:
    """Words of tile (i, j) of a plan, one row per cycle t: shape (T,) circulant or (T, T) dense [t, lane]."""
    T = cfg.tile
    hp_tiles = cfg.padded(cfg.row_hidden) // T  # a helper core: its slice of each gate's rows
    g = plan.gate0 + i // hp_tiles
    li = cfg.row_offset // T + i % hp_tiles
    key = f"layer{plan.layer}.{'W' if plan.name == 'W' else 'U'}"
    vec = qweights[key][g]
    if cfg.circulant:
        return np.asarray(vec[li, j, :], dtype=np.int64)
    cols = cfg.layer_cols(plan.layer) if plan.name == "W" else cfg.hidden_size
    dense = _dense_padded(cfg, vec, cfg.hidden_size, cols)
    block = dense[li * T : (li + 1) * T, j * T : (j + 1) * T]  # [lane r, t]
    return block.T.copy()


def weight_banks(cfg: Config, weights: Weights) -> list[list[np.ndarray]]:
    """Contents of the ``pe_rows x pe_cols`` weight banks, raw q_weight integers.

    Each bank is (depth,) for circulant weights or (depth, T) for dense ones,
    ``depth = sum(plan.words_per_bank)``. ``weights`` may be float or already
    :class:`~rnnaccel.numeric.model.QuantizedWeights`.
    """
    return layout_of(cfg).weight_banks(quantize_weights(cfg, weights))


def _array_weight_banks(cfg: Config, qw: Weights) -> list[list[np.ndarray]]:
    T = cfg.tile
    ps = plans(cfg)
    depth = sum(p.words_per_bank for p in ps)
    shape = (depth,) if cfg.circulant else (depth, T)
    banks = [[np.zeros(shape, dtype=np.int64) for _ in range(cfg.pe_cols)] for _ in range(cfg.pe_rows)]
    for plan in ps:
        addr = plan.weight_base
        for I in range(plan.rounds_r):
            for J in range(plan.rounds_c):
                for p in range(cfg.pe_rows):
                    for q in range(cfg.pe_cols):
                        i, j = I * cfg.pe_rows + p, J * cfg.pe_cols + q
                        if i < plan.br and j < plan.bc:
                            banks[p][q][addr : addr + T] = tile_of(cfg, qw, plan, i, j)
                addr += T
    return banks


def bank_packing(cfg: Config) -> int:
    """Weight words per memory word: 16 / q_weight.width for SPRAM banks (``weight_ram = huge``), else 1.

    The serial FFT layout keeps whole bins in a word: 2 in block RAM (:class:`SerialFFTLayout`).
    """
    return layout_of(cfg).bank_packing


def weight_word_bits(cfg: Config) -> int:
    """Bits of the weights a PE reads per cycle: one q_weight (or q_spectrum) word (circulant) or T of them (dense)."""
    return cfg.weight_format.width * (1 if cfg.circulant else cfg.tile)


def bank_word_bits(cfg: Config) -> int:
    """Bits of one weight-bank memory word (:func:`weight_word_bits` x :func:`bank_packing`)."""
    return weight_word_bits(cfg) * bank_packing(cfg)


def bank_words(cfg: Config, bank: np.ndarray) -> list[int]:
    """A weight bank (from :func:`weight_banks`) as unsigned memory words, as the hardware stores them.

    Dense banks pack a cycle's T words (lane 0 in the low bits); SPRAM banks pack
    :func:`bank_packing` consecutive cycles' words (the first in the low bits).
    """
    ws = cfg.weight_format.width
    if bank.ndim == 2:
        return [pack_words(row, ws) for row in bank]
    per = bank_packing(cfg)
    if per == 1:
        return [int(v) & ((1 << ws) - 1) for v in bank]
    padded = np.zeros(-(-len(bank) // per) * per, dtype=np.int64)
    padded[: len(bank)] = bank
    return [pack_words(group, ws) for group in padded.reshape(-1, per)]


def bias_image(cfg: Config, weights: Weights) -> np.ndarray:
    """Bias memory: one row of T raw q_pre words per output segment of every plan, shape (rows, T)."""
    qw = quantize_weights(cfg, weights)
    T, H, r0 = cfg.tile, cfg.row_hidden, cfg.row_offset  # a helper core: its slice of the rows
    hp = cfg.padded(H)
    ps = plans(cfg)
    out = np.zeros((sum(p.br for p in ps), T), dtype=np.int64)
    for plan in ps:
        b = qw[f"layer{plan.layer}.{'b' if plan.name == 'W' else 'c'}"]
        stacked = np.zeros(plan.gates * hp, dtype=np.int64)
        for gi in range(plan.gates):
            stacked[gi * hp : gi * hp + H] = b[plan.gate0 + gi][r0 : r0 + H]
        out[plan.bias_base : plan.bias_base + plan.br] = stacked.reshape(plan.br, T)
    return out


def bias_words(cfg: Config, weights: Weights) -> list[int]:
    """The bias memory as unsigned words (:func:`bias_word_bits` wide), as the hardware stores them."""
    return layout_of(cfg).bias_words(quantize_weights(cfg, weights))


def bias_word_bits(cfg: Config) -> int:
    """Bits of one bias-memory word: T q_pre words (array) or one ``b + c`` (serial)."""
    return layout_of(cfg).bias_word_bits


def bias_rows(cfg: Config) -> int:
    """Words of the bias memory."""
    return layout_of(cfg).bias_rows


def weight_bank_words(cfg: Config) -> int:
    """Weight words of each weight bank (before SPRAM packing)."""
    return layout_of(cfg).weight_bank_words


def weight_bank_depth(cfg: Config) -> int:
    """Memory words of each weight bank (after SPRAM packing)."""
    return ceil_div(weight_bank_words(cfg), bank_packing(cfg))


# ----------------------------------------------------------------------------- serial datapath
def serial_layer_bases(cfg: Config) -> list[tuple[int, int]]:
    """(weight word base, bias word base) of each layer in the serial memories (unpacked words)."""
    out, wb, bb = [], 0, 0
    Hp = cfg.padded(cfg.hidden_size)
    for layer in range(cfg.num_layers):
        out.append((wb, bb))
        wb += cfg.weight_words(layer)
        bb += len(cfg.layer_gates(layer)) * Hp
    return out


def serial_col_blocks(cfg: Config, layer: int) -> int:
    """Column blocks of a layer's fused [W | U] rows (input blocks, then hidden-state blocks; SRU and QRNN:
    input blocks only)."""
    return sum(c for _, _, c in cfg.matrices(layer)) // cfg.block_size


def serial_weight_image(cfg: Config, weights: Weights) -> np.ndarray:
    """The serial datapath's weight bank, raw q_weight integers (see the module docstring)."""
    qw = quantize_weights(cfg, weights)
    parts = []
    for layer in range(cfg.num_layers):
        mats = [qw[f"layer{layer}.W"]] + ([qw[f"layer{layer}.U"]] if cfg.has_recurrent_matrix else [])
        fused = np.concatenate(mats, axis=2)  # (G, R, NJ, k)
        parts.append(np.asarray(fused, dtype=np.int64).transpose(1, 0, 2, 3).ravel())  # i, g, j, t
    return np.concatenate(parts)


def serial_weight_address(cfg: Config, layer: int, i: int, g: int, s: int, j: int, n: int) -> int:
    """Packed bank word holding weights ``n * pack ..`` of the block (g, i, j) as row group ``s`` reads them.

    Row group s (rows ``s * lanes ..`` of the block) starts its reads at the
    defining vector's word ``s * lanes``, so the lanes' rotating register
    starts at ``w[s * lanes]`` (:func:`rnnaccel.numeric.circulant.circulant_index`).
    """
    k, pack = cfg.block_size, bank_packing(cfg)
    kp = k // pack
    nj = serial_col_blocks(cfg, layer)
    G = len(cfg.layer_gates(layer))
    base = serial_layer_bases(cfg)[layer][0] // pack
    return base + ((i * G + g) * nj + j) * kp + (s * cfg.lanes // pack + n) % kp


def weight_stream_layer_words(cfg: Config, layer: int) -> int:
    """Words a layer of the serial datapath takes from its weight stream per time step (``weight_source =
    'flash'``): every block's defining vector once per row group, ``G * R * S * nj * kp`` words."""
    k, pack = cfg.block_size, bank_packing(cfg)
    G, R, S = len(cfg.layer_gates(layer)), cfg.padded(cfg.hidden_size) // k, k // cfg.lanes
    return G * R * S * serial_col_blocks(cfg, layer) * (k // pack)


def weight_stream_step_words(cfg: Config) -> int:
    """Words one time step takes from the weight stream (every layer's :func:`weight_stream_layer_words`)."""
    return sum(weight_stream_layer_words(cfg, layer) for layer in range(cfg.num_layers))


def weight_stream_addresses(cfg: Config) -> np.ndarray:
    """The weight-bank words of one time step in the order the serial datapath uses them (layers, tile rows,
    gates, row groups, column blocks, the block's words from the row group's first: the fetch walker's
    :func:`serial_weight_address` order). A stream of these words replaces the bank (``weight_source =
    'flash'``); a block is in it once per row group (``block_size / lanes`` times), so ``lanes = block_size``
    streams each weight once."""
    k, pack = cfg.block_size, bank_packing(cfg)
    kp, S = k // pack, k // cfg.lanes
    parts = []
    for layer in range(cfg.num_layers):
        G, R, nj = len(cfg.layer_gates(layer)), cfg.padded(cfg.hidden_size) // k, serial_col_blocks(cfg, layer)
        grid = np.meshgrid(np.arange(R), np.arange(G), np.arange(S), np.arange(nj), np.arange(kp), indexing="ij")
        parts.append(np.asarray(serial_weight_address(cfg, layer, *grid)).ravel())  # elementwise on the grid
    return np.concatenate(parts)


def weight_stream_word_bits(cfg: Config) -> int:
    """Bits of a weight-stream word: a weight-bank word rounded up to whole bytes (the stream is bytes)."""
    return ceil_div(bank_word_bits(cfg), 8) * 8


def weight_stream_bytes(cfg: Config, image: "MemoryImage") -> bytes:
    """One time step's weight stream (``weight_source = 'flash'``) as bytes: the bank words of ``image`` in
    :func:`weight_stream_addresses` order, each little endian in :func:`weight_stream_word_bits` bits (the
    image a flash holds behind the bitstream and the simulation's flash model serves)."""
    bank = np.asarray(image.weight_banks[0][0], dtype=np.uint64)
    words = bank[weight_stream_addresses(cfg)]
    nbytes = weight_stream_word_bits(cfg) // 8
    out = np.zeros((words.size, nbytes), dtype=np.uint8)
    for b in range(nbytes):
        out[:, b] = (words >> np.uint64(8 * b)) & np.uint64(0xFF)
    return out.tobytes()


def _serial_bias(cfg: Config, qw: Weights) -> np.ndarray:
    H, Hp = cfg.hidden_size, cfg.padded(cfg.hidden_size)
    parts = []
    for layer in range(cfg.num_layers):
        b = np.asarray(qw[f"layer{layer}.b"], dtype=np.int64)
        if cfg.has_recurrent_matrix:  # the fused bias b + c (SRU and QRNN have b alone)
            b = b + np.asarray(qw[f"layer{layer}.c"], dtype=np.int64)
        rows = np.zeros((b.shape[0], Hp), dtype=np.int64)
        rows[:, :H] = b
        parts.append(rows.ravel())
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- per-datapath layouts
@dataclass(frozen=True)
class MemoryImage:
    """A design's weight and bias memories as the hardware stores them (unsigned memory words).

    Built once per design (:func:`memory_image`, :meth:`DatapathLayout.image`) and handed to the
    components that bake it into ROM (:class:`rnnaccel.hw.mvu.CirculantMVU`,
    :class:`rnnaccel.hw.serial.SerialAccelerator`) and to the image writer.
    """

    #: ``weight_banks[p][q]``: bank (p, q)'s memory words (:func:`bank_words`); the serial datapath has one, [0][0]
    weight_banks: tuple[tuple[tuple[int, ...], ...], ...]
    #: The bias memory's words (:func:`bias_words`)
    bias_words: tuple[int, ...]


def memory_image(cfg: Config, weights: Weights) -> MemoryImage:
    """The :class:`MemoryImage` of ``cfg`` and ``weights`` (float or quantized): :meth:`DatapathLayout.image`."""
    return layout_of(cfg).image(quantize_weights(cfg, weights))


class DatapathLayout:
    """What differs between the datapaths' memory layouts; :func:`layout_of` picks one by ``cfg.datapath``.

    The module's functions (:func:`weight_banks`, :func:`bias_words`, :func:`bias_rows`, ...) ask the
    config's layout, so no function here branches on the datapath.
    """

    #: Vector slots beyond the inputs, hidden states and GRU's r*h (one padded hidden vector each).
    extra_slots: tuple[str, ...] = ()

    def __init__(self, cfg: Config):
        self.cfg = cfg

    @property
    def bank_packing(self) -> int:
        """Weight words per weight-bank memory word (:func:`bank_packing`)."""
        return self.cfg.bank_packing

    @property
    def bias_word_bits(self) -> int:
        raise NotImplementedError

    @property
    def bias_rows(self) -> int:
        raise NotImplementedError

    @property
    def weight_bank_words(self) -> int:
        raise NotImplementedError

    def weight_banks(self, qw: Weights) -> list[list[np.ndarray]]:
        raise NotImplementedError

    def bias_words(self, qw: Weights) -> list[int]:
        raise NotImplementedError

    def image(self, qw: Weights) -> MemoryImage:
        """The memory words of :meth:`weight_banks` (packed by :func:`bank_words`) and :meth:`bias_words`."""
        banks = tuple(tuple(tuple(bank_words(self.cfg, bank)) for bank in row) for row in self.weight_banks(qw))
        return MemoryImage(weight_banks=banks, bias_words=tuple(self.bias_words(qw)))


class ArrayLayout(DatapathLayout):
    """The array datapath: chessboard plans over the PE grid, T-word vector and bias rows."""

    @property
    def bias_word_bits(self) -> int:
        return self.cfg.q_pre.width * self.cfg.tile

    @property
    def bias_rows(self) -> int:
        return sum(p.br for p in plans(self.cfg))

    @property
    def weight_bank_words(self) -> int:
        return sum(p.words_per_bank for p in plans(self.cfg))

    def weight_banks(self, qw: Weights) -> list[list[np.ndarray]]:
        return _array_weight_banks(self.cfg, qw)

    def bias_words(self, qw: Weights) -> list[int]:
        return [pack_words(row, self.cfg.q_pre.width) for row in bias_image(self.cfg, qw)]


class SerialLayout(DatapathLayout):
    """The serial datapath: one weight bank of fused [W | U] rows, one-word vector and bias memories."""

    extra_slots = ("hn",)

    @property
    def bias_word_bits(self) -> int:
        return self.cfg.bias_width

    @property
    def bias_rows(self) -> int:
        cfg = self.cfg
        Hp = cfg.padded(cfg.hidden_size)
        return sum(len(cfg.layer_gates(layer)) * Hp for layer in range(cfg.num_layers))

    @property
    def weight_bank_words(self) -> int:
        return self.cfg.weight_words()

    def weight_banks(self, qw: Weights) -> list[list[np.ndarray]]:
        return [[serial_weight_image(self.cfg, qw)]]

    def bias_words(self, qw: Weights) -> list[int]:
        mask = (1 << self.cfg.bias_width) - 1
        return [int(v) & mask for v in _serial_bias(self.cfg, qw)]


class SerialFFTLayout(SerialLayout):
    """The serial datapath in FFT mode: weight spectra by row block and column block, bias pairs.

    The weight bank has the serial order (per layer, tile row i, gate g, column block j of the fused
    ``[W | U]``), each block's k words its packed spectrum (``q_spectrum``); a memory word holds whole
    bins (:attr:`bank_packing`: 2 in block RAM, ``16 / q_spectrum.width`` in SPRAM, where a width of 16
    leaves half a bin per word). The bias memory holds the fused ``b + c`` of rows ``i*k + n`` and
    ``i*k + n + k/2`` in one word (see the module docstring).
    """

    @property
    def bank_packing(self) -> int:
        return self.cfg.bank_packing if self.cfg.weight_ram == "huge" else 2

    @property
    def bias_word_bits(self) -> int:
        return 2 * self.cfg.bias_width

    @property
    def bias_rows(self) -> int:
        return super().bias_rows // 2

    def bias_words(self, qw: Weights) -> list[int]:
        cfg = self.cfg
        k, bw = cfg.block_size, cfg.bias_width
        pairs = _serial_bias(cfg, qw).reshape(-1, 2, k // 2)  # (layer, gate, tile row), half, n
        mask = (1 << bw) - 1
        return [(int(lo) & mask) | ((int(hi) & mask) << bw) for lo, hi in zip(pairs[:, 0].ravel(), pairs[:, 1].ravel())]


LAYOUTS: dict[str, type[DatapathLayout]] = {"array": ArrayLayout, "serial": SerialLayout}


def layout_of(cfg: Config) -> DatapathLayout:
    """The memory layout of ``cfg.datapath`` (:class:`SerialFFTLayout` for the serial one in FFT mode)."""
    if cfg.datapath == "serial" and cfg.fft_mode:
        return SerialFFTLayout(cfg)
    return LAYOUTS[cfg.datapath](cfg)
