"""The generated Verilog of ActivationStream in Icarus and Verilator (cocotb), bit-exact
with rnnaccel.numeric.lut.lookup for every raw input of a small config, under idle
insertion and back-pressure. The cocotb side is sim_tests/cocotb_tb/activation_tb.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from cocotb_support import CASE_ENV, run_cocotb, write_case, write_verilog
from rnnaccel.numeric.config import Config
from rnnaccel.hw.activation import ActivationStream

pytestmark = pytest.mark.cocotb

TB_DIR = Path(__file__).parent / "cocotb_tb"

#: A small config whose q_pre (Q3.8, 12 bits) is swept exhaustively: 4096 inputs.
SMALL = Config(q_pre="Q3.8", q_cell="Q4.7", q_state="Q3.8", q_act="Q1.14", table_entries=128, interpolate=True)


# both tables in Icarus; in Verilator tanh in CI and sigmoid in the slow tier (suite budget: every
# whole-accelerator Verilator test runs both tables too)
@pytest.mark.parametrize(
    "simulator,fn",
    [
        pytest.param("icarus", "sigmoid", id="icarus-sigmoid"),
        pytest.param("icarus", "tanh", id="icarus-tanh"),
        pytest.param("verilator", "sigmoid", id="verilator-sigmoid", marks=pytest.mark.slow),
        pytest.param("verilator", "tanh", id="verilator-tanh", marks=pytest.mark.slow),
    ],
)
def test_activation_stream(simulator, fn, tmp_path):
    cfg, q = SMALL, SMALL.q_pre
    dut = ActivationStream(cfg, fn, q.width, q.frac)
    top = f"activation_{fn}"
    source = write_verilog(dut, tmp_path / f"{top}.v", top)
    case = write_case(
        tmp_path / "case.json",
        {
            "config": cfg.to_dict(),
            "fn": fn,
            "in_width": q.width,
            "in_frac": q.frac,
            "latency": dut.latency,
            "values": list(range(q.min_raw, q.max_raw + 1)),
            "seed": cfg.seed,
        },
    )
    ran, _ = run_cocotb(
        [source],
        top,
        "activation_tb",
        simulator,
        tmp_path / f"build-{simulator}-{fn}",
        extra_env={CASE_ENV: str(case)},
        python_paths=[TB_DIR],
    )
    assert ran == 6
