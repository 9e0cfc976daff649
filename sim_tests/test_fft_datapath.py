"""The FFT circulant mode on the serial datapath (``datapath = 'serial'``, ``circulant_mode = 'fft'``):
the spectra layout, the whole accelerator bit-exact against the golden model (Amaranth simulator with
random stalls; Icarus and Verilator through cocotb), its cycles, the refusals and the artefacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnaccel.flow.backends import run_session
from rnnaccel.flow.sim_amaranth import run_session_amaranth
from rnnaccel.flow.toolchain import require_gateware
from rnnaccel.hw.fft import ForwardFFT, InverseFFT
from rnnaccel.interface.session import golden_session, weight_commands
from rnnaccel.interface.commands import OP
from rnnaccel.layout.image import (
    SerialFFTLayout,
    bank_packing,
    bias_rows,
    bias_word_bits,
    bias_words,
    layout_of,
    memory_image,
    serial_col_blocks,
    serial_layer_bases,
    weight_bank_depth,
)
from rnnaccel.numeric.config import ConfigError, preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import quantize_weights, random_weights

from sessions import assert_full_session_matches, full_session, saturating_session

FFT = preset("tiny").replace(
    datapath="serial", lanes=2, pe_cols=1, circulant_mode="fft", q_spectrum="Q3.5", name="serial-fft"
)

#: (id, changes on FFT): both cells, 1-2 layers, k 4/8/16, odd sizes, ROM / run-time / SPRAM weights
FFT_CASES = [
    ("lstm-k4-rom", {}),
    ("lstm-k4-odd-runtime", {"input_size": 5, "hidden_size": 6, "weights_in_rom": False}),
    ("rnn-2layer-k8-rom", {"cell": "rnn", "block_size": 8, "input_size": 20, "hidden_size": 12, "num_layers": 2}),
    (
        "lstm-2layer-k8-runtime",
        {"block_size": 8, "lanes": 4, "input_size": 12, "hidden_size": 16, "num_layers": 2, "weights_in_rom": False},
    ),
    ("lstm-k16-rom", {"block_size": 16, "lanes": 4, "input_size": 20, "hidden_size": 16}),
    ("lstm-spram-q8", {"weights_in_rom": False, "weight_ram": "huge", "q_spectrum": "Q2.5"}),
    (
        "rnn-2layer-spram-q4",
        {"cell": "rnn", "weights_in_rom": False, "weight_ram": "huge", "q_spectrum": "Q1.2", "lanes": 4},
    ),
]


def _cfg(changes):
    return FFT.replace(**changes)


# ----------------------------------------------------------------------------- layout
@pytest.mark.parametrize(
    "changes", [{}, {"weight_ram": "huge", "weights_in_rom": False, "q_spectrum": "Q1.2", "lanes": 4}]
)
def test_spectra_bank_holds_bins_in_beat_order(changes):
    """The weight bank is per layer, tile row, gate, column block the block's packed spectrum; a memory word
    holds whole bins (two words in block RAM), so the MAC's beat b of a layer is at word ``base + b / bins``."""
    cfg = _cfg({"num_layers": 2, "hidden_size": 12, **changes})
    assert isinstance(layout_of(cfg), SerialFFTLayout)
    pack = bank_packing(cfg)
    assert pack == (4 if changes else 2)
    qw = quantize_weights(cfg, random_weights(cfg, seed=3))
    words = memory_image(cfg, qw).weight_banks[0][0]
    assert len(words) == weight_bank_depth(cfg)
    ws, k = cfg.q_spectrum.width, cfg.block_size
    for layer in range(cfg.num_layers):
        spectra = np.concatenate([qw[f"layer{layer}.W"], qw[f"layer{layer}.U"]], axis=2)  # (G, R, NJ, k)
        G, R, NJ, _ = spectra.shape
        assert NJ == serial_col_blocks(cfg, layer)
        base = serial_layer_bases(cfg)[layer][0] // pack
        beat = 0
        for i in range(R):
            for g in range(G):
                for j in range(NJ):
                    for b in range(k // 2):
                        word = words[base + beat // (pack // 2)]
                        sub = (beat % (pack // 2)) * 2
                        got = [(word >> (ws * (sub + q))) & ((1 << ws) - 1) for q in range(2)]
                        got = [v - (1 << ws) if v >> (ws - 1) else v for v in got]
                        assert got == list(spectra[g, i, j, 2 * b : 2 * b + 2])
                        beat += 1


def test_bias_pairs_are_exact_sums():
    cfg = _cfg({"hidden_size": 6})
    qw = quantize_weights(cfg, random_weights(cfg, seed=2))
    words = bias_words(cfg, qw)
    bw = cfg.bias_width
    assert bias_word_bits(cfg) == 2 * bw and len(words) == bias_rows(cfg) == 4 * cfg.padded(6) // 2
    full = np.zeros((4, cfg.padded(6)), np.int64)
    full[:, :6] = qw["layer0.b"] + qw["layer0.c"]
    k, half = cfg.block_size, cfg.block_size // 2
    for g in range(4):
        for i in range(cfg.padded(6) // k):
            for n in range(half):
                w = words[(g * cfg.padded(6) + i * k) // 2 + n]
                lo, hi = w & ((1 << bw) - 1), w >> bw
                lo, hi = (v - (1 << bw) if v >> (bw - 1) else v for v in (lo, hi))
                assert (lo, hi) == (full[g, i * k + n], full[g, i * k + n + half])


def test_runtime_weight_commands_use_the_fft_layout():
    cfg = _cfg({"weights_in_rom": False})
    w = random_weights(cfg, seed=1)
    img = memory_image(cfg, w)
    cmds = weight_commands(cfg, w)
    wr = [c for c in cmds if c[0] == OP["WRITE_WEIGHT"]]
    assert [c[3] for c in wr if c[1] == 0] == list(img.weight_banks[0][0])
    assert [c[3] for c in wr if c[1] == 1] == list(img.bias_words)


# ----------------------------------------------------------------------------- hardware (Amaranth simulator)
@pytest.mark.parametrize("case_id,changes", FFT_CASES, ids=[c[0] for c in FFT_CASES])
def test_fft_session_bit_exact_with_stalls(case_id, changes):
    cfg = _cfg(changes)
    weights = random_weights(cfg, seed=11)
    ops = full_session(cfg, seed=5)
    got, counters = run_session_amaranth(cfg, weights, ops, idle=0.25, backpressure=0.35, seed=2)
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_fft_saturating_session_bit_exact(cell):
    """Large weights and inputs at the extremes: the pre-activations saturate after the inverse transform."""
    cfg = _cfg({"cell": cell, "q_pre": "Q2.9", "q_state": "Q1.10", "q_cell": "Q2.9", "block_size": 8})
    weights = random_weights(cfg, seed=4, scale=8.0)
    ops = saturating_session(cfg, seed=1)
    got, _ = run_session_amaranth(cfg, weights, ops, idle=0.1, backpressure=0.1, seed=1)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _cycles_per_step(cfg, steps=2):
    x = quantize(np.random.default_rng(0).uniform(-1, 1, size=(steps, cfg.input_size)), cfg.q_state)
    _, counters = run_session_amaranth(cfg, random_weights(cfg, seed=1), [("reset",), ("run", x)])
    assert counters[0]["wait_cycles"] == 0
    return counters[0]["cycles"] / steps


def test_fft_mac_takes_a_bin_a_cycle():
    """One more input block adds, per step, its load (k words), one forward transform (its period) and
    exactly its MAC beats (k/2 per row block and gate): the spectral MAC has no bubble (as long as a row
    block's ``NJ k/2`` beats are no fewer than the inverse transform's period, 19 cycles for k = 8)."""
    base = _cfg({"block_size": 8, "lanes": 2, "hidden_size": 16, "input_size": 32})
    wide = base.replace(input_size=40)
    assert serial_col_blocks(base, 0) * 4 >= InverseFFT.from_config(base).period
    k, G, R = 8, 4, 2
    fwd = ForwardFFT.from_config(base)
    diff = _cycles_per_step(wide) - _cycles_per_step(base)
    assert diff == k + fwd.period + R * G * k // 2


def test_fft_faster_than_direct():
    """Same config in both modes: the FFT mode takes fewer cycles per step (here k = 16, 4 lanes)."""
    cfg = _cfg({"block_size": 16, "lanes": 4, "input_size": 32, "hidden_size": 32})
    fft_cycles = _cycles_per_step(cfg)
    direct = _cycles_per_step(cfg.replace(circulant_mode="direct"))
    assert fft_cycles < direct
    # the MAC's beats are a lower bound: G * R * NJ * k/2
    assert fft_cycles >= 4 * 2 * 4 * 8


# ----------------------------------------------------------------------------- refusals and artefacts
def test_fft_refused_where_not_built():
    arr = preset("tiny").replace(block_size=4, lanes=4, circulant_mode="fft")
    with pytest.raises(ConfigError, match="built for datapath = 'serial' only") as info:
        require_gateware(arr)
    assert "\n" not in str(info.value)
    wide = _cfg({"weights_in_rom": False, "weight_ram": "huge", "q_spectrum": "Q4.11", "lanes": 4})
    with pytest.raises(ConfigError, match="SPRAM needs 8 bits or fewer"):
        require_gateware(wide)
    require_gateware(_cfg({}))


def test_generate_fft_design(tmp_path):
    from rnnaccel.flow.rtl import generate

    cfg = _cfg({"hidden_size": 6})
    w = random_weights(cfg, seed=4)
    manifest = generate(cfg, w, tmp_path, progress=lambda msg: None)
    assert manifest["circulant_mode"] == "fft" and manifest["datapath"] == "serial"
    spectra = manifest["fft"]["spectra"]
    assert spectra["format"] == str(cfg.q_spectrum) and spectra["words_per_memory_word"] == 2
    assert "Hermitian" in spectra["packing"]
    assert manifest["fft"]["multiplies_per_step"]["fft"] > 0
    assert json.loads((tmp_path / "manifest.json").read_text())["fft"]["accumulator"]["width"] == cfg.fft_acc_width
    bias = (tmp_path / "mem" / "bias.hex").read_text().split()
    assert [int(v, 16) for v in bias] == bias_words(cfg, w)
    text = (tmp_path / "rnnaccel_top.v").read_text()
    assert "module rnnaccel_top" in text
    inv = InverseFFT.from_config(cfg)
    assert inv.width <= cfg.fft_out_width


# ----------------------------------------------------------------------------- generated Verilog (cocotb)
@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_fft_generated_verilog_bit_exact(simulator, tmp_path):
    """Run-time weights through the command port, two layers, k = 8: Icarus and Verilator bit-exact."""
    cfg = _cfg({"block_size": 8, "input_size": 10, "hidden_size": 8, "num_layers": 2, "weights_in_rom": False})
    weights = random_weights(cfg, seed=21)
    ops = full_session(cfg, seed=9)
    got, counters = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path, idle=0.25, backpressure=0.3, seed=4)
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)


@pytest.mark.cocotb
def test_fft_spram_as_on_ice40(tmp_path):
    """The Verilog elaborated for iCE40 (SB_SPRAM256KA weight bank, no read enable: the held MAC beat re-reads
    its address), Icarus: bit-exact."""
    cfg = _cfg({"weights_in_rom": False, "weight_ram": "huge", "q_spectrum": "Q2.5"})
    weights = random_weights(cfg, seed=6)
    ops = full_session(cfg, seed=2)
    got, counters = run_session(
        cfg, weights, ops, "icarus", cache_dir=tmp_path, family="ice40", idle=0.1, backpressure=0.1
    )
    assert_full_session_matches(got, golden_session(cfg, weights, ops), counters)
    assert "SB_SPRAM256KA" in next(tmp_path.rglob("rnnaccel_top.v")).read_text()
