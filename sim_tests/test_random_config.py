"""The safety net: random whole configs, bit-exact against the golden model.

* :func:`test_random_config_bit_exact`: hypothesis draws a whole valid config from the real field
  space (every cell and variant, 1-3 layers, sizes 1-24 including non-multiples of the tile, dense and
  circulant, PE grids up to 3x3, both datapaths, stacked projections, ROM and run-time weights, block
  RAM and SPRAM weight banks, Q formats, table sizes and ranges, interpolation, 1-3 cores in the
  ``layers`` and ``programs`` modes), seeded random weights
  and a random session (reset, runs carrying the state, an initial state; random input stalls and
  output back-pressure), runs it in the Amaranth simulator and compares every output word with the
  golden model; where the analytic cycle model applies (:mod:`rnnaccel.explore.cycle_model`), the cycle counter
  equals its cycles per step times the steps. A fixed-seed budget runs in CI; ``-m slow`` runs 600 examples.
* :func:`test_raw_fields_valid_or_one_line_error`: raw field combinations (a valid draw with up to three
  fields replaced by arbitrary values, wrong types and unknown fields included): either the config
  constructs, and then it simulates bit-exact, or it raises :class:`ConfigError` with a one-line
  message naming the field.
* :func:`test_soak_lstm_small_verilator`: 600 steps of ``lstm-small`` in Verilator (cocotb), random
  idle cycles and back-pressure, bit-exact and every output counted (slow tier, and 2000 steps there).

CI budgets (the suite's time): 3 valid configs per cell variant, 20 raw-field draws, 8 run-time-dimension
configs, 4 streamed-weight configs; ``-m slow`` runs 600 of each draw and the soaks.

The draw (exact ranges) is documented at :func:`valid_fields`; a failure prints the config as TOML
(hypothesis ``note``) so it can be replayed with :func:`check_case`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from rnnaccel.flow.backends import run_programs_session, run_session
from rnnaccel.explore.cycle_model import cycles_per_step
from rnnaccel.numeric.config import CELLS, CIRCULANT_MODES, DATAPATHS, SERIAL_CELLS, Config, ConfigError, preset
from rnnaccel.numeric.fixedpoint import QFormat, quantize
from rnnaccel.interface.multicore import programs_golden
from rnnaccel.interface.session import golden_session
from rnnaccel.numeric.model import random_weights

FIELDS = tuple(f.name for f in dataclasses.fields(Config))
Q_FIELDS = ("q_weight", "q_state", "q_cell", "q_pre", "q_act", "q_spectrum")
CELL_STATE = ("lstm", "sru", "qrnn")  # cells with a cell state c

MAX_SIZE = 24  # input and hidden sizes drawn from 1..MAX_SIZE
MAX_STEPS = 3  # steps per run operation
MAX_Q_WIDTH = 32  # widest Q format drawn (QFormat's limit)
MAX_PRODUCT = 50  # q_weight.width + q_state.width at most (with the sum and the bias, the 62-bit accumulator)

_COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: CI budget: about a minute on one core (sizes up to 24, up to 12 steps per session)
CI = settings(max_examples=3, **_COMMON)  # per cell variant (7 variants: 21 configs)
CI_RAW = settings(max_examples=20, **_COMMON)  # the slow tier draws 600
CI_RUNTIME = settings(max_examples=8, **_COMMON)  # run-time dimensions, any cell variant
CI_STREAMED = settings(max_examples=4, **_COMMON)  # weights streamed from the flash (the serial cells)
#: the slow tier (``pytest -m slow sim_tests/test_random_config.py``)
SLOW = settings(max_examples=600, **_COMMON)
SLOW_RAW = settings(max_examples=600, **_COMMON)


# ----------------------------------------------------------------------------- the draw
def _pow2_dividing(k: int, at_least: int = 1) -> list[int]:
    return [1 << e for e in range(k.bit_length()) if k % (1 << e) == 0 and (1 << e) >= at_least]


@st.composite
def _state_format(draw, min_width=4, max_width=None, max_int=6):
    """A format with 0 or more integer bits (q_state, q_cell, q_pre, q_act): width and integer bits."""
    width = draw(st.integers(min_width, max_width or MAX_Q_WIDTH))
    int_bits = draw(st.integers(0, min(max_int, width - 1)))
    return QFormat(width, width - 1 - int_bits)


#: every cell and variant (the CI tier draws a few configs of each)
VARIANTS = [
    {"cell": "lstm"},
    {"cell": "gru", "gru_reset_after": True},
    {"cell": "gru", "gru_reset_after": False},
    {"cell": "sru"},
    {"cell": "qrnn", "qrnn_window": 1},
    {"cell": "qrnn", "qrnn_window": 2},
    {"cell": "rnn"},
]
#: the variants of the serial datapath (streamed weights)
STREAMED_VARIANTS = [v for v in VARIANTS if v["cell"] in SERIAL_CELLS]
VARIANT_IDS = [
    "-".join(str(v) for v in variant.values()).replace("True", "after").replace("False", "before")
    for variant in VARIANTS
]


@st.composite
def valid_fields(draw, variant: dict | None = None, runtime: bool = False, streamed: bool = False) -> dict:
    """Every field of a config the rules accept, drawn from the field space (dependent fields derived).

    * ``cell``: lstm, gru, sru, qrnn, rnn; ``gru_reset_after`` true/false; ``qrnn_window`` 1/2;
      ``num_layers`` 1-3.
    * ``input_size``, ``hidden_size``: 1-24; a window-2 QRNN takes whole tiles for the input (and the
      hidden size with 2+ layers): a multiple of the tile up to 24, or one tile when it is wider.
    * ``datapath``: array, or serial (lstm, rnn, sru and qrnn).
    * array: ``block_size`` 1 (a third of draws), 2-8 or 9-32; ``lanes`` = k when k > 1, 1-8 for dense
      weights (the tile); ``pe_rows``, ``pe_cols`` 1-3.
    * serial: ``block_size`` 4, 8, 16, 32; ``lanes`` a power of two dividing k (with SPRAM a multiple
      of its packing); PE grid 1x1.
    * ``stacked_projections``, ``weights_in_rom``, ``interpolate``: true/false; ``weight_ram`` block, or
      huge when weights are loaded at run time, k > 1 and the weight width divides 16 (serial: packing <= k).
    * ``q_state``, ``q_cell``: 4-32 bits with 0-6 integer bits; ``q_act`` 4-32 bits with 0-2 integer
      bits; ``q_weight`` 2-32 bits (width + q_state's at most 50) with 0 to width + 2 fraction bits;
      ``q_pre`` 4-32 bits, 0-6 integer bits but at most q_weight.frac + q_state.frac fraction bits.
    * ``sigmoid_range``, ``tanh_range``: 0.5-64 (powers of two); ``table_entries`` 4-1024 (powers of
      two) with a table step no finer than the resolution of each table input (q_pre, q_cell).
    * ``cores`` 1 (half the draws), 2 or 3; ``core_mode`` ``layers`` (at most ``num_layers`` cores: the
      stack split over the cores), ``programs`` (every core a copy of the config with its own weights
      and its own session, the streams interleaved at random) or, on the array datapath without a
      reset-before GRU, ``helpers`` (every core a slice of every layer's rows; ``hidden_size`` then a
      multiple of cores x tile up to 24).
    * ``delta_threshold`` (array, one core; a quarter of the draws): 0, 1 or 3 LSBs of q_state, 0.05 or
      0.3; ``delta_threshold_h`` unset, 0, 2 LSBs or 0.1 (otherwise both left at 0 / unset).
    * run-time dimensions (one core, no delta mode; serial: direct mode, on-chip weights; a quarter of the
      draws): ``weights_in_rom``
      false and ``max_input_size``, ``max_hidden_size``, ``max_layers`` each 0 (the model's own) or its
      size plus 0-8 (layers plus 0-1; whole tiles where the QRNN needs them): the model then runs on the
      design of its largest config (:func:`check_case`), loading its own layout by ``SET_PARAM``.
    * ``weight_source`` (serial, direct mode, one core, weights in ROM, at most 4 row groups: ``lanes >= k / 4``;
      half of those draws): flash (the weights streamed from the simulated flash, :mod:`rnnaccel.hw.weight_source`),
      else onchip; with it, ``time_steps`` (an SRU or a QRNN, half of those draws): 2, 3, 4 or 16.
    * ``seed`` 0-3, ``name`` "random".
    * ``circulant_mode``: direct, or fft for half the serial lstm and rnn configs (k is a power of two >= 4) with
      ``q_spectrum`` 2-32 bits (width + q_state's at most 50; 8 or fewer bits for SPRAM, which must hold a
      bin a word) and q_spectrum.frac + q_state.frac >= q_pre.frac; ``q_spectrum`` the default otherwise.

    ``variant`` fixes the cell (and its variant field) instead of drawing it; ``runtime`` forces run-time
    dimensions (one core; either datapath); ``streamed`` forces streamed weights (serial, direct mode, one core,
    weights in ROM; ``variant`` a serial cell) and sizes up to 12.
    """
    cell = variant["cell"] if variant else draw(st.sampled_from(CELLS))
    datapath = draw(st.sampled_from(DATAPATHS)) if cell in SERIAL_CELLS else "array"
    if streamed:
        datapath = "serial"
    f: dict = {
        "cell": cell,
        "datapath": datapath,
        "gru_reset_after": draw(st.booleans()),
        "qrnn_window": draw(st.sampled_from([1, 2])),
        "num_layers": draw(st.integers(1, 3)),
        "stacked_projections": draw(st.booleans()),
        "weights_in_rom": True if streamed else draw(st.booleans()),
        "interpolate": draw(st.booleans()),
    }
    f.update(variant or {})

    # formats (every width QFormat allows; q_weight + q_state kept inside the 62-bit accumulator)
    f["q_state"] = draw(_state_format())
    qw_width = draw(st.integers(2, min(MAX_Q_WIDTH, MAX_PRODUCT - f["q_state"].width)))
    f["q_weight"] = QFormat(qw_width, draw(st.integers(0, qw_width + 2)))
    f["q_cell"] = draw(_state_format())
    f["q_act"] = draw(_state_format(max_int=2))
    acc_frac = f["q_weight"].frac + f["q_state"].frac
    pre_width = draw(st.integers(4, MAX_Q_WIDTH))
    lo = max(0, pre_width - 1 - acc_frac)  # q_pre.frac <= acc_frac
    pre_int = draw(st.integers(lo, max(lo, min(6, pre_width - 1))))
    f["q_pre"] = QFormat(pre_width, pre_width - 1 - pre_int)
    fft = datapath == "serial" and cell in ("lstm", "rnn") and not streamed and not runtime and draw(st.booleans())
    if fft:  # q_spectrum: q_pre aligns to the spectral accumulator, which stays inside 62 bits
        need = f["q_pre"].frac - f["q_state"].frac
        qs_width = draw(st.integers(max(2, need - 2), min(MAX_Q_WIDTH, MAX_PRODUCT - f["q_state"].width)))
        f["circulant_mode"] = "fft"
        f["q_spectrum"] = QFormat(qs_width, draw(st.integers(max(0, need), qs_width + 2)))
        qw_width = qs_width  # the stored word's width (weight_ram, lanes below)

    # tables: 2 * R / entries no finer than the LSB of every table input
    frac_sig = f["q_pre"].frac
    frac_tanh = min(frac_sig, f["q_cell"].frac) if cell in CELL_STATE else frac_sig
    sig_log = draw(st.integers(max(-1, 1 - frac_sig), 6))
    tanh_log = draw(st.integers(max(-1, 1 - frac_tanh), 6))
    f["sigmoid_range"], f["tanh_range"] = 2.0**sig_log, 2.0**tanh_log
    top = min(10, frac_sig + 1 + sig_log, frac_tanh + 1 + tanh_log)
    f["table_entries"] = 1 << draw(st.integers(2, top))

    # datapath geometry and weight memory
    if datapath == "serial":
        k = draw(st.sampled_from([4, 8, 16, 32]))
        f["pe_rows"] = f["pe_cols"] = 1
    else:
        k = draw(st.one_of(st.just(1), st.integers(2, 8), st.integers(9, 32)))  # a third dense
        f["pe_rows"], f["pe_cols"] = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    f["block_size"] = k
    huge_ok = not f["weights_in_rom"] and k > 1 and 16 % qw_width == 0
    if datapath == "serial":
        huge_ok = huge_ok and 16 // qw_width <= k and (not fft or qw_width <= 8)
    f["weight_ram"] = draw(st.sampled_from(["block", "huge"])) if huge_ok else "block"
    if datapath == "serial":
        pack = 16 // qw_width if f["weight_ram"] == "huge" else 1
        # streamed weights repeat a block's vector once per row group (k / lanes): at most 4 keep sessions short
        f["lanes"] = draw(st.sampled_from([n for n in _pow2_dividing(k, pack) if not streamed or n >= k // 4]))
    else:
        f["lanes"] = k if k > 1 else draw(st.integers(1, 8))
    tile = k if k > 1 else f["lanes"]

    # shape
    top = MAX_SIZE // 2 if streamed else MAX_SIZE  # suite budget: a streamed step is several times longer

    def size(whole_tiles: bool) -> int:
        if whole_tiles:
            return tile * draw(st.integers(1, max(1, top // tile)))
        return draw(st.integers(1, top))

    qrnn2 = cell == "qrnn" and f["qrnn_window"] == 2
    f["input_size"] = size(qrnn2)
    f["hidden_size"] = size(qrnn2 and f["num_layers"] > 1)
    f["cores"] = 1 if runtime or streamed else draw(st.one_of(st.just(1), st.integers(2, 3)))
    modes = ["programs", "layers"]
    rows_local = not (cell == "gru" and not f["gru_reset_after"])  # the reset-before GRU's r*h needs every r
    if datapath == "array" and not runtime and rows_local and f["cores"] * tile <= MAX_SIZE:
        modes.append("helpers")
    f["core_mode"] = draw(st.sampled_from(modes))
    if f["core_mode"] == "layers":
        f["cores"] = min(f["cores"], f["num_layers"])
    if f["core_mode"] == "helpers" and f["cores"] > 1:  # each core a slice of whole tiles of every gate
        share = f["cores"] * tile
        f["hidden_size"] = share * draw(st.integers(1, max(1, MAX_SIZE // share)))
    # delta mode (array datapath, one core): threshold 0 most of the time, else a few LSBs to a large value
    if datapath == "array" and f["cores"] == 1 and not runtime and draw(st.integers(0, 3)) == 0:
        lsb = 2.0 ** -f["q_state"].frac
        f["delta_threshold"] = draw(st.sampled_from([0.0, lsb, 3 * lsb, 0.05, 0.3]))
        f["delta_threshold_h"] = draw(st.sampled_from([None, 0.0, 2 * lsb, 0.1]))
    elif f["cores"] == 1 and not fft and not streamed and (runtime or draw(st.integers(0, 3)) == 0):
        # run-time dimensions: a design for larger sizes runs this model
        f["weights_in_rom"] = False
        step = tile if qrnn2 else 1
        grow = st.one_of(st.just(None), st.integers(0, max(1, 8 // step)))
        g_in, g_hid, g_l = draw(grow), draw(grow), draw(st.one_of(st.just(None), st.integers(0, 1)))
        if g_in is not None:
            f["max_input_size"] = f["input_size"] + step * g_in
        if g_hid is not None:
            h_step = step if (qrnn2 and (f["num_layers"] > 1 or g_l)) else 1
            f["max_hidden_size"] = f["hidden_size"] + h_step * g_hid
        if g_l is not None:
            f["max_layers"] = f["num_layers"] + g_l
        if qrnn2 and f.get("max_layers", f["num_layers"]) > 1 and f["hidden_size"] % tile:
            f["hidden_size"] = tile * max(1, -(-f["hidden_size"] // tile))  # window-2 stacks need whole tiles
            f.pop("max_hidden_size", None)
        if cell == "sru" and (g_in is not None or g_hid is not None):
            # the design's layer 0 has an SRU's s projection exactly when the model's has: grow both alike
            grown = g_in if g_in is not None else g_hid
            f["max_input_size"], f["max_hidden_size"] = f["input_size"] + grown, f["hidden_size"] + grown
        if not any(f.get(k) for k in ("max_input_size", "max_hidden_size", "max_layers")):
            f["max_layers"] = f["num_layers"]  # limits equal to the model's own: still a run-time design
    # weights streamed from the flash (issue 13): serial datapath, direct mode, one core, weights fixed
    stream_ok = datapath == "serial" and not fft and f["cores"] == 1 and f["weights_in_rom"] and f["lanes"] >= k // 4
    if streamed or (stream_ok and draw(st.booleans())):
        f["weight_source"] = "flash"
        # batched steps (issue 13): the cells whose projections all depend on x, half of those draws
        if cell in ("sru", "qrnn") and draw(st.booleans()):
            f["time_steps"] = draw(st.sampled_from([2, 3, 4, 16]))
    f["seed"] = draw(st.integers(0, 3))
    f["name"] = "random"
    return f


def _either(good, *bad):
    """Half the time a value of the field's valid range, half the time an out-of-range value or a wrong type."""
    return st.one_of(good, st.sampled_from(bad))


_Q_TEXT = st.builds(lambda m, n: f"Q{m}.{n}", st.integers(-3, 8), st.integers(0, 26))

#: raw values per field: each either from the field's own range or a bad value (out of range, wrong type)
RAW = {
    "cell": _either(st.sampled_from(CELLS), "lstmx", "LSTM", "", 3),
    "input_size": _either(st.integers(1, MAX_SIZE), 0, -2, 4097, "8", True, 8.0),
    "hidden_size": _either(st.integers(1, MAX_SIZE), 0, -1, 4097, "8", False, 8.0),
    "num_layers": _either(st.integers(1, 3), 0, -1, 17, "2", 1.0),
    "gru_reset_after": _either(st.booleans(), 1, 0, "true"),
    "qrnn_window": _either(st.sampled_from([1, 2]), 0, 3, -1, "2", 2.0),
    "block_size": _either(st.integers(1, 16), 0, -1, 257, "4", 4.0),
    "pe_rows": _either(st.integers(1, 3), 0, -1, "1", 1.5),
    "pe_cols": _either(st.integers(1, 3), 0, -2, "2", None),
    "lanes": _either(st.integers(1, 16), 0, -1, 65, "4"),
    **{
        q: _either(
            st.one_of(_Q_TEXT, st.builds(QFormat, st.integers(2, 32), st.integers(0, 26))),
            "Q3",
            "3.12",
            "Q3.12.1",
            "q1.6x",
            "Q40.2",
            "Q-9.3",
            12,
            None,
            1.5,
        )
        for q in Q_FIELDS
    },
    "table_entries": _either(st.sampled_from([4, 8, 64, 256, 1024]), -1, 0, 2, 3, 100, 131072, "256", 256.0),
    "sigmoid_range": _either(st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 1, 4]), 0.25, 3.0, 0.0, -4.0, True, "8"),
    "tanh_range": _either(st.sampled_from([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 2, 8]), 0.125, 6.0, 0.0, -2.0, False, "4"),
    "interpolate": _either(st.booleans(), 1, "no"),
    "weights_in_rom": _either(st.booleans(), 0, None),
    "weight_ram": _either(st.sampled_from(["block", "huge"]), "ultra", "BLOCK", 1),
    "stacked_projections": _either(st.booleans(), 1, "false"),
    "datapath": _either(st.sampled_from(DATAPATHS), "systolic", "Serial", None),
    "circulant_mode": _either(st.sampled_from(CIRCULANT_MODES), "FFT", "time", None, 1),
    "cores": _either(st.integers(1, 3), 0, -1, 17, "2", 2.0),
    "core_mode": _either(st.sampled_from(["programs", "layers", "helpers"]), "threads", "Helpers", None, 2),
    # a helper core's share (set per core by Config.helper_config): only the defaults are a design's own
    "row_slices": _either(st.just(1), 0, -1, 17, "2", 1.0),
    "row_slice": _either(st.just(0), -1, 1, "0", None),
    # delta mode: built on the array datapath with one core; refused by the flow elsewhere
    "delta_threshold": _either(st.sampled_from([0, 0.0, 0.05, 0.25]), -0.1, float("nan"), float("inf"), "0.1", None),
    "delta_threshold_h": _either(st.sampled_from([None, 0, 0.0, 0.1]), -1, float("nan"), "0", True),
    "max_input_size": _either(st.sampled_from([0, 16, 24, 32]), -1, 3, "24", 24.0, True),
    "max_hidden_size": _either(st.sampled_from([0, 16, 24, 32]), -4, 2, "16", None),
    "max_layers": _either(st.sampled_from([0, 2, 3, 4]), -1, 1.5, "2", False),
    "weight_source": _either(st.sampled_from(["onchip", "flash"]), "spi", "Flash", None, 1),
    "time_steps": _either(st.sampled_from([1, 2, 4, 64]), 0, 65, -1, 2.0, "4", None),
    "seed": _either(st.integers(0, 3), -1, 1.0, "0"),
    "name": _either(st.just("raw"), 3, None),
}
assert set(RAW) == set(FIELDS)


@st.composite
def raw_fields(draw) -> tuple[dict, list]:
    """A valid draw with 1-3 fields replaced by raw values (or an unknown field added)."""
    f = draw(valid_fields())
    changed = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 19)) == 0:
            name = draw(st.sampled_from(["hiden_size", "q_bias", "lane"]))
            f[name] = 1
        else:
            name = draw(st.sampled_from(FIELDS))
            f[name] = draw(RAW[name])
        changed.append(name)
    return f, changed


@st.composite
def sim_case(draw, fields) -> dict:
    """Weights, a session and stalls for a config: seeded weights (scale 0.5-8, large ones saturate), inputs
    of three kinds (moderate, anywhere in q_state, the extremes only), runs of 1-3 steps, a reset and an
    initial state in a random order after a first run, input idle and output back-pressure 0-0.6, or the input
    paced at about a vector per step (:func:`input_idle`)."""
    return {
        "fields": fields,
        "weight_seed": draw(st.integers(0, 2**16)),
        "scale": draw(st.sampled_from([0.5, 1.0, 3.0, 8.0])),
        "session_seed": draw(st.integers(0, 2**16)),
        "inputs": draw(st.sampled_from(["moderate", "full", "extremes"])),
        "steps": draw(st.lists(st.integers(1, MAX_STEPS), min_size=4, max_size=4)),
        "order": draw(st.permutations(["run", "reset", "state"])),
        "idle": draw(st.sampled_from([0.0, 0.2, 0.6, "paced"])),
        "backpressure": draw(st.sampled_from([0.0, 0.3, 0.6])),
        "stall_seed": draw(st.integers(0, 255)),
    }


def input_idle(cfg: Config, case: dict) -> float:
    """The drawn input idle probability; "paced": a vector's words over about one step's ideal cycles (the
    next input then fills the FIFO near the end of a step)."""
    if case["idle"] == "paced":
        return min(0.95, max(0.0, 1 - cfg.input_size / cfg.ideal_cycles_per_step))
    return case["idle"]


def make_session(cfg: Config, case: dict) -> list[tuple]:
    """reset, run, then (run | reset + run | state + run) in the drawn order."""
    rng = np.random.default_rng(case["session_seed"])
    qs = cfg.q_state

    def seq(t):
        shape = (t, cfg.input_size)
        if case["inputs"] == "moderate":
            return quantize(rng.uniform(-1.2, 1.2, size=shape), qs)
        if case["inputs"] == "full":
            return rng.integers(qs.min_raw, qs.max_raw + 1, size=shape)
        return rng.choice([qs.min_raw, qs.max_raw, 0], size=shape)

    shape = (cfg.num_layers, cfg.hidden_size)
    h0 = rng.integers(qs.min_raw, qs.max_raw + 1, size=shape)
    if cfg.cores > 1 and cfg.core_mode == "layers" and cfg.cell == "qrnn" and cfg.qrnn_window == 2:
        for group in cfg.core_layer_groups()[1:]:  # that h is the next core's x_(t-1): no command writes it
            h0[group.start - 1] = 0
    c0 = rng.integers(cfg.q_cell.min_raw, cfg.q_cell.max_raw + 1, size=shape) if cfg.cell in CELL_STATE else None
    steps = iter(case["steps"])
    ops: list[tuple] = [("reset",), ("run", seq(next(steps)))]
    for kind in case["order"]:
        if kind == "reset":
            ops.append(("reset",))
        elif kind == "state":
            ops.append(("state", h0, c0))
        ops.append(("run", seq(next(steps))))
    return ops


def check_case(cfg: Config, case: dict) -> None:
    """Simulate the case in Amaranth; every output word equal to the golden model's, every step counted."""
    if cfg.cores > 1 and cfg.core_mode == "programs":
        check_programs_case(cfg, case)
        return
    weights = random_weights(cfg, seed=case["weight_seed"], scale=case["scale"])
    ops = make_session(cfg, case)
    # run-time dimensions: on the design of the largest config (its registers reset to that one's layout)
    hardware = cfg.at_max() if cfg.runtime_dims else None
    got, counters = run_session(
        cfg,
        weights,
        ops,
        "amaranth",
        idle=input_idle(cfg, case),
        backpressure=case["backpressure"],
        seed=case["stall_seed"],
        hardware=hardware,
    )
    want = golden_session(cfg, weights, ops)
    runs = [op[1] for op in ops if op[0] == "run"]
    assert len(got) == len(want) == len(counters) == len(runs)
    done = 0
    for i, (g, w, x) in enumerate(zip(got, want, runs)):
        assert g.shape == w.shape == (len(x), cfg.hidden_size)
        np.testing.assert_array_equal(g, w, err_msg=f"run {i} of the session")
        done += len(x)
        assert counters[i]["steps"] == done, f"run {i}: step counter {counters[i]['steps']}, expected {done}"
        # the analytic cycle model (issue 18) on the serial datapath: every step costs the same counted cycles
        # (stalls are waiting cycles, a reset is not counted); the array's first step of a run is longer and its
        # prefetch follows the input stalls (test_cycle_model compares its steady state instead)
        # (batched steps: the model is a full batch's, and a session's batches follow its stalls and run lengths:
        # test_time_steps compares it with full batches)
        serial = hardware is None and cfg.datapath == "serial" and cfg.time_steps == 1
        model = cycles_per_step(cfg) if serial else None
        if model is not None and cfg.weight_source == "onchip":
            assert counters[i]["cycles"] == model * done, f"run {i}: {counters[i]['cycles']} cycles, model {model}/step"
        elif model is not None:
            # streamed weights: a step's flash request is raised when the step starts, so a wait for input in its
            # load (a waiting cycle, not counted) lets the stream run ahead: at most a counted cycle less per wait
            cycles, waits = counters[i]["cycles"], counters[i]["wait_cycles"]
            assert model * done - waits <= cycles <= model * done, (
                f"run {i}: {cycles} cycles, {waits} waits, model {model}"
            )


def check_programs_case(cfg: Config, case: dict) -> None:
    """A multi-programming design of ``cfg.cores`` copies of the config, each core its own weights and its own
    session (the drawn session with core-specific inputs, run on every core at once): every output word of
    every core equal to that core's golden model, every core's steps counted."""
    one = cfg.replace(cores=1, core_mode=Config.core_mode)
    models = [(one, random_weights(one, seed=case["weight_seed"] + i, scale=case["scale"])) for i in range(cfg.cores)]
    sessions = [make_session(one, {**case, "session_seed": case["session_seed"] + i}) for i in range(cfg.cores)]
    ops: list[tuple] = []
    for per_core in zip(*sessions):
        kind = per_core[0][0]
        if kind == "run":
            ops.append(("run", {core: op[1] for core, op in enumerate(per_core)}))
        else:
            ops += [(kind, core, *op[1:]) for core, op in enumerate(per_core)]
    got, counters = run_programs_session(
        models, ops, "amaranth", idle=input_idle(cfg, case), backpressure=case["backpressure"], seed=case["stall_seed"]
    )
    want = programs_golden(models, ops)
    assert len(got) == len(want) == len(counters)
    done = np.zeros(cfg.cores, dtype=np.int64)
    for i, (g, w) in enumerate(zip(got, want)):
        assert sorted(g) == sorted(w) == list(range(cfg.cores))
        for core in range(cfg.cores):
            np.testing.assert_array_equal(g[core], w[core], err_msg=f"run {i}, core {core}")
            done[core] += len(w[core])
        assert counters[i]["core_steps"] == list(done), f"run {i}: steps {counters[i]['core_steps']}, expected {done}"


def _describe(cfg: Config) -> str:
    variant = cfg.cell
    if cfg.cell == "gru":
        variant += "-after" if cfg.gru_reset_after else "-before"
    if cfg.cell == "qrnn":
        variant += f"-w{cfg.qrnn_window}"
    cores = f" {cfg.cores} cores ({cfg.core_mode})" if cfg.cores > 1 else ""
    rt = " run-time dims" if cfg.runtime_dims else ""
    return f"{variant} {cfg.datapath} {'circulant' if cfg.circulant else 'dense'}{cores}{rt}"


def _run_valid(case: dict) -> None:
    cfg = Config(**case["fields"])  # the draw satisfies every rule: a ConfigError here is a failure
    note(f"config:\n{cfg.to_toml()}")
    note(f"case: { {k: v for k, v in case.items() if k != 'fields'} }")
    event(_describe(cfg))
    check_case(cfg, case)


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_IDS)
@CI
@given(data=st.data())
def test_random_config_bit_exact(variant, data):
    _run_valid(data.draw(valid_fields(variant).flatmap(sim_case), label="case"))


@CI_RUNTIME
@given(case=st.sampled_from(VARIANTS).flatmap(lambda v: valid_fields(v, runtime=True)).flatmap(sim_case))
def test_random_runtime_dims_bit_exact(case):
    """Run-time dimensions (issue 12) in every CI run: a model on the design of its largest config, loading
    its own layout by ``SET_PARAM`` (the general draw gives them to a few configs in a hundred)."""
    assert Config(**case["fields"]).runtime_dims
    _run_valid(case)


@CI_STREAMED
@given(case=st.sampled_from(STREAMED_VARIANTS).flatmap(lambda v: valid_fields(v, streamed=True)).flatmap(sim_case))
def test_random_streamed_weights_bit_exact(case):
    """Weights streamed from the simulated flash (issue 13) in every CI run (the general draw gives them to about
    one serial config in eight)."""
    assert Config(**case["fields"]).weight_source == "flash"
    _run_valid(case)


@pytest.mark.slow
@SLOW
@given(case=valid_fields().flatmap(sim_case))
def test_random_config_bit_exact_slow(case):
    _run_valid(case)


@pytest.mark.parametrize("cell,seed", [("lstm", 2), ("sru", 0)])
def test_gate_sums_wider_than_int64(cell, seed):
    """Regression, found by the random draw: with q_act Q0.31 and q_cell Q1.30 the golden model's aligned
    gate sums (LSTM/SRU c' = f*c at 61 fraction bits + i*g at 62) passed 63 bits and wrapped in int64, while
    the hardware adds exactly (golden ``_sum_narrow`` now forms such sums in Python integers)."""
    cfg = preset("tiny").replace(
        cell=cell,
        input_size=2,
        hidden_size=2,
        block_size=1,
        lanes=1,
        pe_cols=1,
        q_act="Q0.31",
        q_cell="Q1.30",
        q_state="Q0.31",
        q_weight="Q1.6",
        q_pre="Q4.27",
    )
    check_case(
        cfg,
        {
            "weight_seed": seed,
            "scale": 8.0,
            "session_seed": seed,
            "inputs": "extremes",
            "steps": [1, 1, 1, 1],
            "order": ["state", "run", "reset"],
            "idle": 0.0,
            "backpressure": 0.0,
            "stall_seed": 0,
        },
    )


# ----------------------------------------------------------------------------- raw fields: valid or one-line error
def _normalized(fname: str, raw):
    """The value a Config field holds for ``raw`` (Q formats parsed, integer ranges as floats)."""
    if fname in Q_FIELDS:
        try:
            return QFormat.parse(raw)
        except (TypeError, ValueError):
            return raw
    # as Config.__post_init__: integers of the float fields become floats
    floats = ("sigmoid_range", "tanh_range", "delta_threshold", "delta_threshold_h")
    if fname in floats and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    return raw


def _run_raw(drawn) -> None:
    (fields, changed), case = drawn
    note(f"fields: {fields}\nchanged: {changed}")
    try:
        cfg = Config.from_dict(fields)
    except ConfigError as exc:
        msg = str(exc)
        event(f"ConfigError on {exc.field}")
        assert "\n" not in msg and msg.strip() == msg, f"not one line: {msg!r}"
        assert exc.field in fields, f"names {exc.field!r}, not a field given"
        assert msg.startswith(f"config field {exc.field!r} = "), msg
        assert exc.rule and msg.endswith(exc.rule)
        if exc.field in FIELDS:
            want = _normalized(exc.field, fields[exc.field])
            same = exc.value == want or (isinstance(want, float) and math.isnan(want) and math.isnan(exc.value))
            assert type(exc.value) is type(want) and same, (exc.value, want)
        else:
            assert exc.field in changed and "not a config field" in exc.rule
        return
    except Exception as exc:  # anything but ConfigError is a bug of the config rules
        raise AssertionError(f"Config raised {type(exc).__name__}, not ConfigError: {exc}") from exc
    event("valid")
    assert Config.from_toml(cfg.to_toml()) == cfg
    note(f"config:\n{cfg.to_toml()}")
    if cfg.fft_mode and cfg.datapath != "serial":  # the FFT datapath is built on the serial datapath only
        with pytest.raises(ConfigError, match="FFT-domain datapath is built for datapath = 'serial' only"):
            check_case(cfg, case)
        return
    if cfg.fft_mode and cfg.weight_ram == "huge" and cfg.q_spectrum.width > 8:  # half a bin per SPRAM word
        with pytest.raises(ConfigError, match="SPRAM needs 8 bits or fewer"):
            check_case(cfg, case)
        return
    if cfg.delta_mode and (cfg.datapath != "array" or cfg.cores > 1):  # delta gateware: array, one core
        with pytest.raises(ConfigError, match="delta mode is built for datapath = 'array' with one core only"):
            check_case(cfg, case)
        return
    check_case(cfg, case)


_raw_cases = raw_fields().flatmap(lambda fc: st.tuples(st.just(fc), sim_case(fc[0])))


@CI_RAW
@given(drawn=_raw_cases)
def test_raw_fields_valid_or_one_line_error(drawn):
    _run_raw(drawn)


@pytest.mark.slow
@SLOW_RAW
@given(drawn=_raw_cases)
def test_raw_fields_valid_or_one_line_error_slow(drawn):
    _run_raw(drawn)


# ----------------------------------------------------------------------------- soak: long runs in Verilator
def _soak(tmp_path, runs: tuple[int, int, int]) -> None:
    """``sum(runs)`` steps of lstm-small in Verilator through the cocotb flow in three runs (the state written
    between the last two), random input idle cycles and output back-pressure: bit-exact, every step's H words
    there once (counted), state carried over runs."""
    cfg = preset("lstm-small")
    weights = random_weights(cfg, seed=2000)
    rng = np.random.default_rng(7)

    def seq(t):
        return quantize(rng.uniform(-1.5, 1.5, size=(t, cfg.input_size)), cfg.q_state)

    h0 = quantize(rng.uniform(-0.8, 0.8, size=(1, cfg.hidden_size)), cfg.q_state)
    c0 = quantize(rng.uniform(-1.5, 1.5, size=(1, cfg.hidden_size)), cfg.q_cell)
    a, b, c = runs
    ops = [("reset",), ("run", seq(a)), ("run", seq(b)), ("state", h0, c0), ("run", seq(c))]
    got, counters = run_session(cfg, weights, ops, "verilator", cache_dir=tmp_path, idle=0.3, backpressure=0.4, seed=11)
    want = golden_session(cfg, weights, ops)
    assert [g.shape for g in got] == [w.shape for w in want] == [(n, cfg.hidden_size) for n in runs]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert sum(g.size for g in got) == sum(runs) * cfg.hidden_size
    assert [c["steps"] for c in counters] == [a, a + b, a + b + c]
    assert counters[-1]["wait_cycles"] > 0, "the stalls must have reached the accelerator"
    # the state is really carried and the outputs are not trivial
    assert len(np.unique(np.concatenate(got), axis=0)) > 0.95 * sum(runs)


@pytest.mark.slow  # suite budget: CI's Verilator sessions are the per-design tests
@pytest.mark.cocotb
def test_soak_lstm_small_verilator(tmp_path, monkeypatch):
    """CI budget: 600 steps (about 30 s of simulation on one core), Verilator's own C++ optimization."""
    monkeypatch.delenv("RNNACCEL_VERILATOR_OPT", raising=False)
    _soak(tmp_path, (210, 180, 210))


@pytest.mark.slow
@pytest.mark.cocotb
def test_soak_lstm_small_verilator_long(tmp_path, monkeypatch):
    """2000 steps."""
    monkeypatch.delenv("RNNACCEL_VERILATOR_OPT", raising=False)
    _soak(tmp_path, (700, 600, 700))
