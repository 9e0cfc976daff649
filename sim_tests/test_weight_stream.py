"""Weights streamed from the flash (``weight_source = 'flash'``, issue 13): the serial datapath without a weight
bank, fed by the simulated flash (:mod:`rnnaccel.hw.weight_source`).

* config rules: where streamed weights are built, one line each where not;
* the stream image: the bank's words in the fetch walker's order (checked against
  :func:`~rnnaccel.layout.image.serial_weight_address` element by element), bytes little endian;
* bit-exact sessions (state carried across calls, resets, an initial state) with random input gaps and output
  back-pressure in the Amaranth simulator, and on the generated Verilog in Icarus and Verilator;
* the analytic cycle model (:mod:`rnnaccel.explore.cycle_model`) equal to the simulator at bandwidths from an
  eighth of a byte to two words per cycle and several first-word latencies; at a word per cycle the stream costs
  only its first-word wait per layer over on-chip weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.explore.cycle_model import cycles_per_step
from rnnaccel.flow.backends import run_session
from rnnaccel.flow.sim_amaranth import run_session_amaranth, step_cycles
from rnnaccel.hw.accelerator import make_accelerator
from rnnaccel.hw.weight_source import SourcedAccelerator, flash_model_timing
from rnnaccel.interface.session import golden_session
from rnnaccel.layout.image import (
    memory_image,
    serial_col_blocks,
    serial_weight_address,
    weight_stream_bytes,
    weight_stream_layer_words,
    weight_stream_word_bits,
)
from rnnaccel.numeric.config import ConfigError, preset
from rnnaccel.numeric.model import random_weights

from sessions import assert_full_session_matches, full_session

FLASH = preset("tiny").replace(datapath="serial", lanes=2, pe_cols=1, weight_source="flash", name="flash")

CASES = {
    "lstm-k4-L2": {},
    "lstm-k4-L1-odd": {"lanes": 1, "input_size": 5, "hidden_size": 6},
    "rnn-2layer-k8-L4": {"cell": "rnn", "block_size": 8, "lanes": 4, "hidden_size": 12, "num_layers": 2},
    "lstm-2layer-k8-L8-q6": {"block_size": 8, "lanes": 8, "num_layers": 2, "hidden_size": 12, "q_weight": "Q2.4"},
}


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "changes,field",
    [
        ({"datapath": "array", "lanes": 4, "pe_cols": 2}, "datapath"),
        ({"circulant_mode": "fft", "q_spectrum": "Q4.8"}, "circulant_mode"),
        ({"cores": 2, "core_mode": "programs"}, "cores"),
        ({"weights_in_rom": False}, "weights_in_rom"),
        ({"weights_in_rom": False, "weight_ram": "huge"}, "weights_in_rom"),
        ({"weight_source": "sdram"}, "weight_source"),
    ],
)
def test_streamed_weight_rules(changes, field):
    with pytest.raises(ConfigError) as info:
        FLASH.replace(**changes)
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_weight_source_written_only_when_set():
    assert "weight_source" not in FLASH.replace(weight_source="onchip").to_toml()
    assert 'weight_source = "flash"' in FLASH.to_toml()
    assert FLASH.replace(weight_source="onchip").hash != FLASH.hash


# ----------------------------------------------------------------------------- the stream image
@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_stream_is_the_walkers_order(changes):
    cfg = FLASH.replace(**changes)
    image = memory_image(cfg, random_weights(cfg, seed=3))
    bank = image.weight_banks[0][0]
    nbytes = weight_stream_word_bits(cfg) // 8
    raw = np.frombuffer(weight_stream_bytes(cfg, image), dtype=np.uint8).reshape(-1, nbytes).astype(np.int64)
    words = sum(raw[:, b] << (8 * b) for b in range(nbytes))
    k, lanes = cfg.block_size, cfg.lanes
    want = [
        bank[serial_weight_address(cfg, layer, i, g, s, j, n)]
        for layer in range(cfg.num_layers)
        for i in range(cfg.padded(cfg.hidden_size) // k)
        for g in range(len(cfg.layer_gates(layer)))
        for s in range(k // lanes)
        for j in range(serial_col_blocks(cfg, layer))
        for n in range(k)
    ]
    assert words.tolist() == want
    assert len(want) == sum(weight_stream_layer_words(cfg, layer) for layer in range(cfg.num_layers))


def test_sourced_accelerator_offers_the_accelerators_members():
    dut = make_accelerator(FLASH, random_weights(FLASH, seed=1))
    assert isinstance(dut, SourcedAccelerator)
    assert "i_w" not in dut.signature.members and "o_wstart" not in dut.signature.members
    assert {"i_x", "o_h", "i_cmd", "status", "cycles", "steps", "phase"} <= set(dut.signature.members)
    assert dut.stream_words == dut.accelerator.stream_words > 0
    onchip = make_accelerator(FLASH.replace(weight_source="onchip"), random_weights(FLASH, seed=1))
    assert set(onchip.signature.members) == set(dut.signature.members)


# ----------------------------------------------------------------------------- bit-exact sessions
@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_streamed_session_bit_exact_with_stalls(changes):
    cfg = FLASH.replace(**changes)
    weights = random_weights(cfg, seed=11)
    ops = full_session(cfg, seed=5)
    got, counters = run_session_amaranth(cfg, weights, ops, idle=0.25, backpressure=0.35, seed=2)
    assert_full_session_matches(got, golden_session(cfg, weights, ops), counters)


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_streamed_verilog_bit_exact(simulator, tmp_path):
    """The generated Verilog (the accelerator and the flash model holding the stream) in Icarus and Verilator."""
    cfg = FLASH.replace(**CASES["rnn-2layer-k8-L4"])
    weights = random_weights(cfg, seed=17)
    ops = full_session(cfg, seed=6)
    got, counters = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path, idle=0.2, backpressure=0.2, seed=5)
    assert_full_session_matches(got, golden_session(cfg, weights, ops), counters)


# ----------------------------------------------------------------------------- cycles against the model
@pytest.mark.parametrize(
    "timing",
    [
        None,  # the board's flash: a quarter byte per cycle, 43 cycles to the first word
        {"bytes_per_cycle": 0.125, "latency": 3},
        {"bytes_per_cycle": 0.5, "latency": 0},
        {"bytes_per_cycle": 1, "latency": 7},
        {"bytes_per_cycle": 3, "latency": 1},
    ],
    ids=["flash", "1/8", "1/2", "1", "3"],
)
@pytest.mark.parametrize("name", ["lstm-k4-L2", "rnn-2layer-k8-L4", "lstm-2layer-k8-L8-q6"])
def test_cycle_model_equals_simulation(name, timing):
    cfg = FLASH.replace(**CASES[name])
    sim = step_cycles(cfg, random_weights(cfg, seed=1), 2, weight_timing=timing)
    assert sim[0] == sim[1], "a step does not depend on the one before"
    assert cycles_per_step(cfg, timing) == sim[1]


def test_a_word_per_cycle_costs_only_the_first_words():
    """With a word per cycle and no latency the stream keeps up with the lanes: a step takes the on-chip step's
    cycles plus one per layer (FILL waits a cycle for the first word from the source's FIFO, and ends the
    cycle after its last)."""
    cfg = FLASH.replace(**CASES["rnn-2layer-k8-L4"])
    onchip = cycles_per_step(cfg.replace(weight_source="onchip"))
    word = weight_stream_word_bits(cfg) // 8
    streamed = cycles_per_step(cfg, {"bytes_per_cycle": word, "latency": 0})
    assert (
        streamed == step_cycles(cfg, random_weights(cfg), 1, weight_timing={"bytes_per_cycle": word, "latency": 0})[0]
    )
    assert onchip < streamed <= onchip + 2 * cfg.num_layers


def test_flash_timing_is_the_readers():
    t = flash_model_timing()
    assert t["bytes_per_cycle"] == 0.25 and t["latency"] == 43
