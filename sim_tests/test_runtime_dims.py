"""Run-time dimensions (issue 12, item 2): one design, generated for maximum sizes, runs smaller models.

* the config rules and :func:`rnnaccel.layout.runtime.model_on_design` (which models fit, one-line errors);
* every cell variant: smaller models (and the largest) on one design in the Amaranth simulator, bit-exact
  against each model's own golden model, with stalls; the design's registers reset to another layout, so
  every parameter the session loads by ``SET_PARAM`` is exercised;
* the generated Verilog in Icarus and Verilator; the command line (``run --hardware``, ``generate``).

The random-config test draws run-time dimensions too (``test_random_runtime_dims_bit_exact``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnaccel.flow.backends import run_session
from rnnaccel.interface.session import golden_session, param_commands
from rnnaccel.layout.runtime import DoesNotFit, model_on_design, param_limits, param_names, param_values
from rnnaccel.numeric.config import CELL_VARIANTS, Config, ConfigError
from rnnaccel.numeric.fixedpoint import QFormat
from rnnaccel.numeric.model import random_weights, save_model

from cli_helpers import one_line_error, run_cli
from sessions import assert_full_session_matches, full_session

VARIANTS = CELL_VARIANTS


def design(variant: str, **changes) -> Config:
    """A 2x2-PE design generated for a 12x12 one-layer model, able to run up to 20 x 24 x 2."""
    fields = dict(
        input_size=12,
        hidden_size=12,
        num_layers=1,
        block_size=4,
        lanes=4,
        pe_rows=2,
        pe_cols=2,
        weights_in_rom=False,
        max_input_size=24 if variant == "sru" else 20,
        max_hidden_size=24,
        max_layers=2,
    )
    return Config(**{**fields, **VARIANTS[variant], **changes})


def model(variant: str, input_size: int, hidden_size: int, num_layers: int, **changes) -> Config:
    shape = dict(input_size=input_size, hidden_size=hidden_size, num_layers=num_layers, block_size=4, lanes=4)
    return Config(**{**shape, **VARIANTS[variant], **changes})


SERIAL_VARIANTS = [v for v in sorted(VARIANTS) if VARIANTS[v]["cell"] != "gru"]  # the serial datapath's cells


def serial_design(variant: str, **changes) -> Config:
    """A serial design (k = 4, 4 lanes unless changed) generated for a 12x12 one-layer model, able to run up to
    20 x 24 x 2."""
    fields = dict(datapath="serial", lanes=4, pe_rows=1, pe_cols=1)
    return design(variant, **{**fields, **changes})


def serial_model(variant: str, input_size: int, hidden_size: int, num_layers: int) -> Config:
    return model(variant, input_size, hidden_size, num_layers, datapath="serial", lanes=4, pe_rows=1, pe_cols=1)


# ------------------------------------------------------------------ rules
def test_config_rules_one_line():
    with pytest.raises(ConfigError, match="'max_hidden_size' = 8: must be 0 .* or at least 16"):
        Config(max_hidden_size=8, weights_in_rom=False)
    with pytest.raises(ConfigError, match="'weights_in_rom' = True: a design with run-time dimensions"):
        Config(max_hidden_size=32)
    serial = dict(datapath="serial", block_size=4, lanes=4, pe_cols=1, max_layers=2, weights_in_rom=False)
    assert Config(**serial).runtime_dims  # the serial datapath has them too (direct mode, on-chip weights)
    with pytest.raises(ConfigError, match="'circulant_mode' = 'fft': run-time dimensions .* 'direct' only"):
        Config(**serial, circulant_mode="fft")
    with pytest.raises(ConfigError, match="'cores' = 2: run-time dimensions"):
        Config(**{**serial, "datapath": "array", "pe_cols": 2}, cores=2, num_layers=2)
    with pytest.raises(ConfigError, match="'max_input_size' = 10: the largest model .* multiple of the tile"):
        Config(cell="qrnn", input_size=8, hidden_size=8, max_input_size=10, weights_in_rom=False)
    cfg = Config(max_hidden_size=32, weights_in_rom=False)
    assert cfg.runtime_dims and cfg.at_max().hidden_size == 32 and cfg.at_max().input_size == cfg.input_size
    assert Config.from_toml(cfg.to_toml()) == cfg
    assert "max_" not in Config().to_toml()  # configs without the fields keep their bytes and hash


def test_model_on_design_fits_and_errors():
    hw = design("lstm")
    run = model_on_design(model("lstm", 8, 20, 2), hw)
    assert (run.input_size, run.hidden_size, run.num_layers) == (8, 20, 2)
    assert (run.pe_rows, run.pe_cols, run.weights_in_rom) == (2, 2, False)  # the design's, not the model's
    cases = [
        (model("lstm", 21, 8, 1), "input_size = 21 exceeds the design's max_input_size = 20"),
        (model("lstm", 8, 25, 1), "hidden_size = 25 exceeds the design's max_hidden_size = 24"),
        (model("lstm", 8, 8, 3), "num_layers = 3 exceeds the design's max_layers = 2"),
        (model("gru-after", 8, 8, 1), "cell = 'gru' differs from the design's 'lstm'"),
        (model("lstm", 8, 8, 1, q_state="Q2.13"), "q_state = Q2.13 differs"),
        (model("lstm", 8, 8, 1, block_size=2, lanes=2), "block_size = 2 differs"),
    ]
    for m, msg in cases:
        with pytest.raises(DoesNotFit) as exc:
            model_on_design(m, hw)
        assert msg in str(exc.value) and "\n" not in str(exc.value), str(exc.value)
    fixed = Config(input_size=12, hidden_size=12, block_size=4, lanes=4)
    with pytest.raises(DoesNotFit, match="without run-time dimensions"):
        model_on_design(model("lstm", 8, 12, 1), fixed)
    # an SRU's layer 0 gains a projection when input and hidden sizes differ: its gates must match the design's
    with pytest.raises(DoesNotFit, match="layer 0 of the model has gates"):
        model_on_design(model("sru", 8, 12, 1), design("sru"))


def test_parameters_within_their_registers():
    hw = design("qrnn-w2")
    limits = param_limits(hw)
    assert list(limits) == param_names(hw)
    for shape in [(4, 4, 1), (8, 24, 2), (20, 24, 2), (12, 4, 2)]:
        values = param_values(model_on_design(model("qrnn-w2", *shape), hw), hw)
        assert list(values) == param_names(hw)
        assert all(0 <= values[n] <= limits[n] for n in values), shape
    cmds = param_commands(model_on_design(model("qrnn-w2", 8, 8, 1), hw))
    assert [c[1] for c in cmds] == list(range(len(param_names(hw))))  # sel = index, every parameter
    assert param_commands(Config()) == []


# ------------------------------------------------------------------ bit-exact
SHAPES = [(12, 12, 1), (8, 20, 2), (20, 24, 2), (4, 4, 1)]


@pytest.mark.parametrize(
    "datapath,variant", [("array", v) for v in sorted(VARIANTS)] + [("serial", v) for v in SERIAL_VARIANTS]
)
def test_smaller_models_on_one_design_bit_exact(datapath, variant):
    """Smaller models (and the largest) on one design, both datapaths (the serial one's cells), bit-exact."""
    make_design, make, seed = (design, model, 10) if datapath == "array" else (serial_design, serial_model, 20)
    hw = make_design(variant)
    for i, (n_in, n_hid, n_layers) in enumerate(SHAPES):
        if variant == "sru":
            n_in = n_hid  # no s projection: the design has none
        if variant == "qrnn-w2" and n_layers > 1:
            n_hid = 4 * -(-n_hid // 4)
        m = make(variant, n_in, n_hid, n_layers)
        weights = random_weights(m, seed=seed + i)
        ops = full_session(m, seed=i)
        got, counters = run_session(m, weights, ops, "amaranth", idle=0.2, backpressure=0.3, seed=i, hardware=hw)
        assert_full_session_matches(got, golden_session(m, weights, ops), counters)


@pytest.mark.parametrize("variant", ["lstm", "gru-after", "rnn"])
def test_fewer_layers_with_recurrent_plans_ahead(variant):
    """Regression (found by scripts/bench_adaptive.py): on a two-layer design the recurrent plans run ahead
    (``U1`` before layer 0's gate phase, which runs beside it); a one-layer model skips ``U1``, and the gate
    phase must still wait until ``U0`` has issued its last read of h0 (with 8 row rounds here, a gate phase
    started at once overwrote h0 under ``U0``'s later rounds)."""
    hw = Config(
        input_size=8, hidden_size=32, num_layers=1, block_size=4, lanes=4, pe_rows=2, pe_cols=2,
        weights_in_rom=False, max_layers=2, **VARIANTS[variant],
    )  # fmt: skip
    m = model(variant, 8, 32, 1)
    weights = random_weights(m, seed=3)
    ops = full_session(m, seed=3)
    got, counters = run_session(m, weights, ops, "amaranth", hardware=hw)
    assert_full_session_matches(got, golden_session(m, weights, ops), counters)


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])  # suite budget
def test_smaller_model_on_generated_verilog(simulator, tmp_path):
    hw = design("gru-before")
    m = model("gru-before", 8, 20, 2)
    weights = random_weights(m, seed=3)
    ops = full_session(m, seed=5)
    got, counters = run_session(
        m, weights, ops, simulator, cache_dir=tmp_path, idle=0.25, backpressure=0.3, seed=2, hardware=hw
    )
    assert_full_session_matches(got, golden_session(m, weights, ops), counters)


# ------------------------------------------------------------------ serial datapath
def test_serial_parameters():
    """The serial datapath's parameters: per layer its bases and column blocks, each slot's first word."""
    hw = serial_design("lstm")
    names = param_names(hw)
    assert names[:5] == ["input_size", "hidden_size", "layers", "rows", "hp"]
    assert "nj_last1" in names and "slot_hn" in names and not any(n.startswith("plan") for n in names)
    v = param_values(model_on_design(serial_model("lstm", 8, 20, 2), hw), hw)
    # 20 hidden -> 20 padded (k = 4): 5 tile rows; layer 0 reads [x; h] = 2 + 5 blocks, layer 1 [h0; h1] 5 + 5
    assert (v["rows"], v["hp"], v["nj_last0"], v["nj_last1"], v["pass_last1"]) == (5, 20, 6, 9, 39)
    assert (v["c_base1"], v["bbase1"]) == (20, 4 * 20)
    # a gate's row group reads n_j blocks of k words: layer 0 is 5 rows x 4 gates x 7 blocks x 4
    assert v["row_words0"] == 7 * 4 and v["wbase1"] == 5 * 4 * 7 * 4
    limits = param_limits(hw)
    assert all(0 <= v[n] <= limits[n] for n in v)
    assert param_values(model_on_design(serial_model("lstm", 4, 4, 1), hw), hw)["nj_last1"] == 0  # no layer 1


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["verilator", pytest.param("icarus", marks=pytest.mark.slow)])  # suite budget
def test_smaller_model_on_serial_verilog(simulator, tmp_path):
    spram = dict(weight_ram="huge", q_weight=QFormat(8, 6), lanes=2)  # two weights a word: 2 lanes at k = 4
    hw = serial_design("qrnn-w2", **spram)
    m = serial_model("qrnn-w2", 8, 20, 2).replace(**spram, weights_in_rom=False)
    weights = random_weights(m, seed=4)
    ops = full_session(m, seed=6)
    got, counters = run_session(
        m, weights, ops, simulator, cache_dir=tmp_path, idle=0.25, backpressure=0.3, seed=3, hardware=hw
    )
    assert_full_session_matches(got, golden_session(m, weights, ops), counters)


# ------------------------------------------------------------------ command line
def test_cli_run_on_hardware_and_errors(tmp_path, capsys):
    hw = design("lstm")
    save_model(tmp_path / "big", hw, random_weights(hw, seed=1))
    code, out, _ = run_cli(["generate", tmp_path / "big", "-o", tmp_path / "big_rtl"], capsys)
    assert code == 0 and "runs any lstm model with input <= 20, hidden <= 24, layers <= 2" in out
    manifest = json.loads((tmp_path / "big_rtl" / "manifest.json").read_text())
    rt = manifest["runtime_dimensions"]
    assert (rt["max_input_size"], rt["max_hidden_size"], rt["max_layers"]) == (20, 24, 2)
    assert [p["name"] for p in rt["params"]] == param_names(hw)
    # byte-identical Verilog from the same config
    run_cli(["generate", tmp_path / "big", "-o", tmp_path / "again"], capsys)
    assert (tmp_path / "big_rtl" / "rnnaccel_top.v").read_bytes() == (
        tmp_path / "again" / "rnnaccel_top.v"
    ).read_bytes()

    small = model("lstm", 8, 16, 2)
    save_model(tmp_path / "small", small, random_weights(small, seed=2))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 8))
    np.save(tmp_path / "x.npy", x)
    args = ["run", tmp_path / "small", "--inputs", tmp_path / "x.npy", "--raw"]
    code, out, _ = run_cli(
        args + ["--backend", "amaranth", "--hardware", tmp_path / "big_rtl", "-o", tmp_path / "y.npy"], capsys
    )
    assert code == 0, out
    code, _, _ = run_cli(args + ["--backend", "golden", "-o", tmp_path / "g.npy"], capsys)
    assert code == 0
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), np.load(tmp_path / "g.npy"))

    big = model("lstm", 8, 32, 1)
    save_model(tmp_path / "wide", big, random_weights(big, seed=2))
    code, _, err = run_cli(
        [
            "run",
            tmp_path / "wide",
            "--inputs",
            tmp_path / "x.npy",
            "--backend",
            "icarus",
            "--hardware",
            tmp_path / "big_rtl",
            "-o",
            tmp_path / "z.npy",
        ],
        capsys,
    )
    assert code != 0
    one_line_error(err, "does not fit", "hidden_size = 32 exceeds the design's max_hidden_size = 24")
    code, _, err = run_cli(
        args + ["--backend", "golden", "--hardware", tmp_path / "nothing", "-o", tmp_path / "z.npy"], capsys
    )
    assert code != 0
    one_line_error(err, "no rnnaccel.toml")
