"""The serial datapath (``datapath = 'serial'``): config rules, fused projections in the golden model,
the weight layout, and the whole accelerator bit-exact in the Amaranth simulator."""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.numeric.circulant import circulant_index, expand
from rnnaccel.numeric.config import ConfigError, preset
from rnnaccel.numeric.fixedpoint import align, narrow, quantize, saturate
from rnnaccel.numeric.golden import IntegerModel, fused_projection, projection
from rnnaccel.interface.session import golden_session
from rnnaccel.layout.image import (
    bank_packing,
    bank_words,
    bias_words,
    serial_col_blocks,
    serial_weight_address,
    serial_weight_image,
)
from rnnaccel.numeric.model import dense_matrices, quantize_weights, random_weights
from rnnaccel.flow.sim_amaranth import run_session_amaranth

from sessions import assert_full_session_matches, full_session

SERIAL = preset("tiny").replace(datapath="serial", lanes=2, pe_cols=1, name="serial")

#: (id, changes on SERIAL): both cells, 1 and 2 layers, 1..k lanes, odd sizes, SPRAM packing of 8- and 4-bit weights
SERIAL_CASES = [
    ("lstm-k4-L2", {}),
    ("lstm-k4-L1", {"lanes": 1}),
    ("lstm-k4-L4-odd", {"lanes": 4, "input_size": 5, "hidden_size": 6}),
    ("lstm-2layer-k8-L2", {"block_size": 8, "input_size": 20, "hidden_size": 12, "num_layers": 2}),
    ("rnn-2layer-k8-L4", {"cell": "rnn", "block_size": 8, "lanes": 4, "hidden_size": 12, "num_layers": 2}),
    # SRU and QRNN: the input projection alone; the SRU's x highway (input = hidden) on a second vector read
    # port, its fourth projection (the scaled highway) on layer 0 otherwise; a window-2 QRNN's shift phases
    ("sru-2layer-k4-L2", {"cell": "sru", "input_size": 8, "hidden_size": 8, "num_layers": 2}),
    ("sru-s-2layer-k8-L4", {"cell": "sru", "block_size": 8, "lanes": 4, "hidden_size": 12, "num_layers": 2}),
    ("qrnn-w2-2layer-k4-L2", {"cell": "qrnn", "qrnn_window": 2, "input_size": 8, "hidden_size": 8, "num_layers": 2}),
    ("qrnn-w1-k8-L8", {"cell": "qrnn", "qrnn_window": 1, "block_size": 8, "lanes": 8}),
    ("lstm-spram-q8", {"weights_in_rom": False, "weight_ram": "huge"}),
    (
        "lstm-spram-q4-2layer",
        {"weights_in_rom": False, "weight_ram": "huge", "q_weight": "Q1.2", "lanes": 4, "num_layers": 2},
    ),
]


def _cfg(changes):
    return SERIAL.replace(**changes)


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "changes,field",
    [
        ({"cell": "gru"}, "cell"),
        ({"cell": "sru", "circulant_mode": "fft"}, "cell"),
        ({"block_size": 2, "lanes": 2}, "block_size"),
        ({"block_size": 1, "lanes": 1}, "block_size"),
        ({"block_size": 12, "lanes": 4}, "block_size"),
        ({"lanes": 3}, "lanes"),
        ({"lanes": 8}, "lanes"),
        ({"pe_rows": 2}, "pe_rows"),
        ({"pe_cols": 2}, "pe_cols"),
        ({"weights_in_rom": False, "weight_ram": "huge", "q_weight": "Q1.2", "lanes": 2}, "lanes"),
        ({"datapath": "systolic"}, "datapath"),
    ],
)
def test_serial_config_rules(changes, field):
    with pytest.raises(ConfigError) as info:
        SERIAL.replace(**changes)
    assert info.value.field == field


def test_array_rule_points_to_serial():
    with pytest.raises(ConfigError, match="serial"):
        preset("tiny").replace(lanes=2)


def test_lstm512_ice40_preset_is_serial():
    cfg = preset("lstm512-ice40")
    assert cfg.datapath == "serial" and cfg.fused_projections and cfg.multipliers == 4
    assert cfg.weight_bytes == 128 * 1024
    assert cfg.ideal_cycles_per_step == 4 * 512 * 1024 // 4
    assert cfg.bias_width == cfg.q_pre.width + 1
    # the accumulator holds 1024 products and the fused bias
    assert cfg.max_terms == 1024
    assert cfg.acc_width >= cfg.q_weight.width + cfg.q_state.width + 10 + 1


# ----------------------------------------------------------------------------- golden
def test_fused_projection_is_one_narrowing():
    cfg = _cfg({})
    w = random_weights(cfg, seed=3, scale=2.0)
    m = dense_matrices(cfg, quantize_weights(cfg, w))[0]
    rng = np.random.default_rng(0)
    x = quantize(rng.uniform(-1, 1, size=(50, cfg.input_size)), cfg.q_state)
    h = quantize(rng.uniform(-1, 1, size=(50, cfg.hidden_size)), cfg.q_state)
    got = fused_projection(cfg, m.W, m.U, x, h, m.b, m.c)
    acc = (
        np.einsum("ghc,nc->ngh", m.W, x)
        + np.einsum("ghc,nc->ngh", m.U, h)
        + align(m.b + m.c, cfg.q_pre.frac, cfg.acc_frac)[None]
    )
    np.testing.assert_array_equal(got, narrow(acc, cfg.acc_frac, cfg.q_pre))
    # the array's two narrowings round differently somewhere (so the serial golden really is its own rule)
    two = saturate(projection(cfg, m.W, x, m.b) + projection(cfg, m.U, h, m.c), cfg.q_pre)
    assert (two != got).any()
    assert np.abs(two - got).max() <= 1


def test_integer_model_uses_fused_projection():
    cfg = _cfg({"cell": "rnn"})
    w = random_weights(cfg, seed=5)
    m = dense_matrices(cfg, quantize_weights(cfg, w))[0]
    x = quantize(np.random.default_rng(1).uniform(-1, 1, size=(1, cfg.input_size)), cfg.q_state)
    model = IntegerModel(cfg, w)
    y = model.run_raw(x[None])[0]
    pre = fused_projection(cfg, m.W, m.U, x, np.zeros((1, cfg.hidden_size), np.int64), m.b, m.c)
    from rnnaccel.numeric.golden import rnn_update

    np.testing.assert_array_equal(y, rnn_update(cfg, pre))


# ----------------------------------------------------------------------------- layout
@pytest.mark.parametrize("case_id,changes", SERIAL_CASES, ids=[c[0] for c in SERIAL_CASES])
def test_weight_image_read_as_the_lanes_read_it(case_id, changes):
    """Replay the lanes' reads (address walker, rotation, packing) in Python: the fused products equal the
    dense [W | U] the golden model multiplies (W alone for SRU and QRNN)."""
    cfg = _cfg(changes)
    w = random_weights(cfg, seed=9)
    qw = quantize_weights(cfg, w)
    words = bank_words(cfg, serial_weight_image(cfg, qw))
    pack, k, Ln, ws = bank_packing(cfg), cfg.block_size, cfg.lanes, cfg.q_weight.width
    Hp = cfg.padded(cfg.hidden_size)
    for layer in range(cfg.num_layers):
        G = len(cfg.layer_gates(layer))
        nj = serial_col_blocks(cfg, layer)
        mats = ["W", "U"] if cfg.has_recurrent_matrix else ["W"]
        dense = np.concatenate(
            [np.stack([expand(qw[f"layer{layer}.{name}"][g]) for g in range(G)]) for name in mats], axis=2
        )
        for i in range(Hp // k):
            for g in range(G):
                for s in range(k // Ln):
                    for j in range(nj):
                        shadow = []
                        for n in range(k // pack):
                            word = words[serial_weight_address(cfg, layer, i, g, s, j, n)]
                            for q in range(pack):
                                v = (word >> (q * ws)) & ((1 << ws) - 1)
                                shadow.append(v - (1 << ws) if v >> (ws - 1) else v)
                        for c in range(k):
                            for lane in range(Ln):
                                # the rotating register: lane l at cycle c holds shadow[(l - c) mod k]
                                got = shadow[int(circulant_index(lane, c, k))]
                                assert got == dense[g, i * k + s * Ln + lane, j * k + c]


def test_bias_words_are_exact_sums():
    cfg = _cfg({"hidden_size": 6})
    w = random_weights(cfg, seed=2, scale=4.0)
    qw = quantize_weights(cfg, w)
    words = bias_words(cfg, w)
    Hp, bw = cfg.padded(cfg.hidden_size), cfg.bias_width
    raw = [(v - (1 << bw)) if v >> (bw - 1) else v for v in words]
    want = np.zeros((4, Hp), np.int64)
    want[:, :6] = qw["layer0.b"] + qw["layer0.c"]
    assert raw == [int(v) for v in want.ravel()]


# ----------------------------------------------------------------------------- hardware (Amaranth simulator)
@pytest.mark.parametrize("case_id,changes", SERIAL_CASES, ids=[c[0] for c in SERIAL_CASES])
def test_serial_session_bit_exact_with_stalls(case_id, changes):
    cfg = _cfg(changes)
    weights = random_weights(cfg, seed=11)
    ops = full_session(cfg, seed=5)
    got, counters = run_session_amaranth(cfg, weights, ops, idle=0.25, backpressure=0.35, seed=2)
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)


def test_serial_passes_have_no_bubbles():
    """Wider inputs add exactly their multiplies (and their load): one column per cycle in every pass."""
    base = _cfg({"block_size": 8, "lanes": 2, "hidden_size": 16, "input_size": 8})
    wide = base.replace(input_size=24)
    per_step = []
    for cfg in (base, wide):
        x = np.zeros((3, cfg.input_size), dtype=np.int64)
        _, counters = run_session_amaranth(cfg, random_weights(cfg, seed=1), [("reset",), ("run", x)])
        assert counters[0]["wait_cycles"] == 0
        per_step.append(counters[0]["cycles"] / 3)
    G, Ln = 4, 2
    extra_macs = G * base.padded(base.hidden_size) * (24 - 8) // Ln
    assert per_step[1] - per_step[0] == extra_macs + (24 - 8)
    assert per_step[0] >= base.ideal_cycles_per_step


def test_serial_out_of_range_commands_set_error():
    from amaranth.sim import Simulator

    from rnnaccel.hw.accelerator import make_accelerator
    from rnnaccel.hw.sequencer import Op
    from rnnaccel.layout.image import bias_rows, vector_depth

    cfg = _cfg({"weights_in_rom": False})
    dut = make_accelerator(cfg)
    bad = [
        (Op.WRITE_VEC, 0, vector_depth(cfg), 1),
        (Op.WRITE_VEC, cfg.block_size, 0, 1),
        (Op.WRITE_C, 0, cfg.padded(cfg.hidden_size), 1),
        (Op.WRITE_WEIGHT, 0, dut.weight_depth, 1),
        (Op.WRITE_WEIGHT, 1, bias_rows(cfg), 1),
        (Op.WRITE_WEIGHT, 2, 0, 1),
        (9, 0, 0, 0),
    ]
    flags = []

    async def bench(ctx):
        for op, sel, addr, data in bad:
            ctx.set(dut.i_cmd.payload, {"op": Op.CLEAR_COUNTERS, "sel": 0, "addr": 0, "data": 0})
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick()
            assert not (ctx.get(dut.status) >> 2) & 1
            ctx.set(dut.i_cmd.payload, {"op": op, "sel": sel, "addr": addr, "data": data})
            await ctx.tick()
            ctx.set(dut.i_cmd.valid, 0)
            flags.append((ctx.get(dut.status) >> 2) & 1)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert flags == [1] * len(bad)


def test_generate_serial_design(tmp_path):
    """``rnnaccel generate`` for the serial datapath: Verilog, one weight bank, fused-bias words, manifest."""
    import json

    from rnnaccel.flow.rtl import generate

    cfg = _cfg({"hidden_size": 6})
    w = random_weights(cfg, seed=4)
    manifest = generate(cfg, w, tmp_path, progress=lambda msg: None)
    assert manifest["datapath"] == "serial" and manifest["plans"] == []
    assert manifest["program"] == [["load"], ["mac", 0], ["wait_out"], ["copy", 0]]
    assert json.loads((tmp_path / "manifest.json").read_text())["config_hash"] == cfg.hash
    assert sorted(p.name for p in (tmp_path / "mem").glob("weights_*.hex")) == ["weights_p0_q0.hex"]
    bias = (tmp_path / "mem" / "bias.hex").read_text().split()
    assert len(bias) == 4 * cfg.padded(6)
    assert [int(v, 16) for v in bias] == bias_words(cfg, w)
    text = (tmp_path / "rnnaccel_top.v").read_text()
    assert "module rnnaccel_top" in text
    generate(cfg, w, tmp_path / "again", progress=lambda msg: None)
    assert (tmp_path / "again" / "rnnaccel_top.v").read_text() == text  # byte-identical


def test_demo_refuses_zero_steps_and_golden_takes_empty_sequences(capsys):
    from cli_helpers import one_line_error, run_cli

    code, _, err = run_cli(["demo", "--steps", "0"], capsys)
    assert code != 0
    one_line_error(err, "--steps must be 1 or more")
    model = IntegerModel(SERIAL, random_weights(SERIAL, seed=1))
    assert model.run_raw(np.zeros((0, SERIAL.input_size), np.int64)).shape == (0, SERIAL.hidden_size)
    assert model.run_raw(np.zeros((2, 0, SERIAL.input_size), np.int64)).shape == (2, 0, SERIAL.hidden_size)
