"""Tier 2 end to end: cocotb drives the generated Verilog of the whole accelerator in Icarus and
Verilator, with random idle cycles on the input stream and back-pressure on the output stream;
hidden states must equal the golden model's bit for bit over sessions that split a sequence
across two calls, reset in between and start from an initial state.

CI runs every case in Icarus and a representative subset in Verilator (its C++ builds take
~20 s each); ``-m slow`` (or ``bash scripts/test.sh -m ""``) runs the full matrix in both.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from rnnaccel.flow.backends import run_session
from rnnaccel.interface.session import golden_session
from rnnaccel.numeric.model import random_weights

from shared import report
from sessions import (
    E2E_CASES,
    assert_full_session_matches,
    case_config,
    full_session,
    input_projection_saturates,
    saturating_session,
)

# Suite budget: CI runs every case in Icarus and one in Verilator (the array datapath; the serial, FFT,
# multi-core, host-link and delta designs each have their own Verilator test in CI); the slow tier runs the
# whole matrix in Verilator too
VERILATOR_CI = {"lstm-2layer-k4-2x2"}


def _params():
    out = []
    for case_id, name, changes in E2E_CASES:
        out.append(pytest.param("icarus", name, changes, id=f"icarus-{case_id}", marks=pytest.mark.cocotb))
        marks = [pytest.mark.cocotb] + ([] if case_id in VERILATOR_CI else [pytest.mark.slow])
        out.append(pytest.param("verilator", name, changes, id=f"verilator-{case_id}", marks=marks))
    return out


@pytest.mark.parametrize("simulator,name,changes", _params())
def test_generated_verilog_bit_exact(simulator, name, changes, tmp_path):
    cfg = case_config(name, changes)
    weights = random_weights(cfg, seed=21)
    ops = full_session(cfg, seed=9)
    got, counters = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path, idle=0.25, backpressure=0.3, seed=4)
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)


#: Icarus in CI, Verilator in the slow tier (suite budget)
SIMULATORS = ["icarus", pytest.param("verilator", marks=pytest.mark.slow)]


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_saturation_and_runtime_weights(simulator, tmp_path):
    cfg = case_config(
        "tiny", {"cell": "lstm", "q_pre": "Q2.11", "q_cell": "Q1.11", "q_state": "Q1.12", "weights_in_rom": False}
    )
    weights = random_weights(cfg, seed=4, scale=8.0)
    ops = saturating_session(cfg, seed=1)
    got, _ = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path)
    np.testing.assert_array_equal(got[0], golden_session(cfg, weights, ops)[0])
    assert input_projection_saturates(cfg, weights, ops[1][1]), "the case must overflow q_pre"


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", SIMULATORS)  # SPRAM in Verilator in CI: the serial ice40 case, lstm512
def test_spram_weight_banks_as_on_ice40(simulator, tmp_path):
    """Weight banks in SB_SPRAM256KA primitives (the Verilog elaborated for iCE40, simulated with Yosys'
    model of the primitive): weights loaded at run time through the command port, results bit-exact."""
    cfg = case_config("tiny", {"weights_in_rom": False, "weight_ram": "huge", "pe_rows": 2})
    weights = random_weights(cfg, seed=6)
    ops = full_session(cfg, seed=2)
    got, _ = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path, family="ice40", idle=0.1, backpressure=0.1)
    for g, w in zip(got, golden_session(cfg, weights, ops)):
        np.testing.assert_array_equal(g, w)
    text = next(tmp_path.rglob("rnnaccel_top.v")).read_text()
    assert text.count("SB_SPRAM256KA") >= cfg.pe_rows * cfg.pe_cols


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "simulator,name,changes",
    [
        ("icarus", "tiny", {"cell": "gru", "weights_in_rom": False}),
        ("verilator", "tiny", {"cell": "lstm", "pe_rows": 2, "block_size": 2, "lanes": 2, "hidden_size": 6}),
        ("icarus", "tiny", {"cell": "sru", "datapath": "serial", "lanes": 2, "pe_cols": 1}),
    ],
)
def test_dsp_registers_as_on_ecp5(simulator, name, changes, tmp_path):
    """The PEs' products in the output registers of MULT18X18D primitives (the Verilog elaborated for ECP5,
    simulated with rnnaccel's model of the primitive), array and serial datapaths: bit-exact, one
    primitive per lane."""
    cfg = case_config(name, changes)
    weights = random_weights(cfg, seed=8)
    ops = full_session(cfg, seed=4)
    got, counters = run_session(
        cfg, weights, ops, simulator, cache_dir=tmp_path, family="ecp5", idle=0.2, backpressure=0.2, seed=2
    )
    assert_full_session_matches(got, golden_session(cfg, weights, ops), counters)
    text = next(tmp_path.rglob("rnnaccel_top.v")).read_text()
    lanes = cfg.lanes if cfg.datapath == "serial" else cfg.pe_rows * cfg.pe_cols * cfg.tile
    assert len(re.findall(r"^\s*MULT18X18D\b", text, re.M)) == lanes
    assert "REG_OUTPUT_CLK" in text


_ONE_PE_STACKED = {"pe_rows": 1, "pe_cols": 1, "stacked_projections": True, "table_entries": 512, "interpolate": False}


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "simulator,name,changes",
    [
        # the one-PE array shape lstm-small-ice40 had before it moved to the serial datapath
        ("icarus", "lstm-small", _ONE_PE_STACKED),
        pytest.param("verilator", "lstm-small", _ONE_PE_STACKED, marks=pytest.mark.slow),  # suite budget
        ("icarus", "tiny", {"cell": "gru", "gru_reset_after": False, "num_layers": 2, "stacked_projections": True}),
        ("icarus", "tiny", {"cell": "sru", "input_size": 12, "num_layers": 2, "stacked_projections": True}),
    ],
)
def test_stacked_projections_as_on_ice40(simulator, name, changes, tmp_path):
    """Stacked projection memories (G reads per element), Verilog elaborated for iCE40: bit-exact."""
    cfg = case_config(name, changes)
    assert cfg.stacked_projections
    weights = random_weights(cfg, seed=13)
    ops = full_session(cfg, seed=7)
    got, counters = run_session(
        cfg, weights, ops, simulator, cache_dir=tmp_path, family="ice40", idle=0.2, backpressure=0.2, seed=3
    )
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "simulator,changes,family",
    [
        ("icarus", {}, None),
        pytest.param(  # suite budget
            "verilator", {"num_layers": 2, "block_size": 8, "hidden_size": 12, "lanes": 4}, None, marks=pytest.mark.slow
        ),
        ("icarus", {"weights_in_rom": False, "weight_ram": "huge"}, "ice40"),
        ("verilator", {"weights_in_rom": False, "weight_ram": "huge", "cell": "rnn", "num_layers": 2}, "ice40"),
    ],
)
def test_serial_datapath_verilog_bit_exact(simulator, changes, family, tmp_path):
    """The serial datapath's Verilog (generic, and elaborated for iCE40 with SPRAM primitives): bit-exact."""
    cfg = case_config("tiny", {"datapath": "serial", "lanes": 2, "pe_cols": 1, **changes})
    weights = random_weights(cfg, seed=17)
    ops = full_session(cfg, seed=6)
    got, counters = run_session(
        cfg, weights, ops, simulator, cache_dir=tmp_path, family=family, idle=0.2, backpressure=0.2, seed=5
    )
    want = golden_session(cfg, weights, ops)
    assert_full_session_matches(got, want, counters)
    if family == "ice40":
        assert "SB_SPRAM256KA" in next(tmp_path.rglob("rnnaccel_top.v")).read_text()


@pytest.mark.slow  # suite budget (2-3 min): CI runs the serial datapath on SPRAM in Verilator at a smaller size
@pytest.mark.cocotb
def test_lstm512_ice40_bit_exact_in_verilator(tmp_path):
    """The full lstm512-ice40 preset, elaborated for iCE40 (its 128 KiB of weights in SB_SPRAM256KA models,
    loaded through the command port), two steps in Verilator: bit-exact, and the cycle count of a step (the
    analytic cycle model's)."""
    from rnnaccel.numeric.config import preset

    cfg = preset("lstm512-ice40")
    weights = random_weights(cfg, seed=1)
    x = np.random.default_rng(2).integers(-4096, 4096, size=(2, cfg.input_size))
    ops = [("reset",), ("run", x)]
    got, counters = run_session(cfg, weights, ops, "verilator", cache_dir=tmp_path, family="ice40")
    np.testing.assert_array_equal(got[0], golden_session(cfg, weights, ops)[0])
    per_step = counters[-1]["cycles"] / counters[-1]["steps"]
    report(f"lstm512-ice40 in Verilator: {per_step:.1f} cycles per step (ideal {cfg.ideal_cycles_per_step})")
    assert cfg.ideal_cycles_per_step <= per_step < 1.01 * cfg.ideal_cycles_per_step
    from rnnaccel.explore.cycle_model import cycles_per_step

    assert per_step == cycles_per_step(cfg)  # the analytic model (525414 when last measured)


def test_verilator_optimization_flag(monkeypatch):
    """RNNACCEL_VERILATOR_OPT sets every C++ part of a Verilator build; unset, Verilator's own; garbage is
    refused in one line (it would reach make's command line)."""
    from rnnaccel.flow.rtl import VERILATOR_MAKEFLAGS, VERILATOR_OPT_ENV, _verilator_makeflags

    monkeypatch.delenv(VERILATOR_OPT_ENV, raising=False)
    assert _verilator_makeflags() == VERILATOR_MAKEFLAGS
    monkeypatch.setenv(VERILATOR_OPT_ENV, "-O0")
    assert _verilator_makeflags().split()[1:] == ["OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"]
    monkeypatch.setenv(VERILATOR_OPT_ENV, "-O0 -DX=1")
    with pytest.raises(ValueError, match="RNNACCEL_VERILATOR_OPT"):
        _verilator_makeflags()
