"""Tier 2: the generated Verilog of the MVU (MVUHarness) in Icarus and Verilator, bit-exact with
the golden projection, under idle insertion and back-pressure. Padded rows (beyond the hidden
size of a gate) are not part of the result and are not compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cocotb_support import CASE_ENV, run_cocotb, write_case, write_verilog
from mvu_ref import plan_expected, plan_vectors
from rnnaccel.numeric.config import preset
from mvu_harness import MVUHarness
from rnnaccel.numeric.model import random_weights

pytestmark = pytest.mark.cocotb

TB_DIR = Path(__file__).parent / "cocotb_tb"

CASES = {
    "circulant-k4-3x2-odd": preset("tiny").replace(hidden_size=10, input_size=6, pe_rows=3, pe_cols=2),
    "dense-L3-2x2": preset("tiny").replace(block_size=1, lanes=3, hidden_size=7, input_size=5, pe_rows=2, pe_cols=2),
}


# every case in Icarus; Verilator in the slow tier (suite budget: the whole accelerator's Verilog, MVU
# included, runs in Verilator in CI)
_RUNS = [pytest.param("icarus", c, id=f"icarus-{c}") for c in CASES] + [
    pytest.param("verilator", c, id=f"verilator-{c}", marks=pytest.mark.slow) for c in CASES
]


@pytest.mark.parametrize("simulator,case", _RUNS)
def test_mvu_harness(simulator, case, tmp_path):
    cfg = CASES[case]
    weights = random_weights(cfg, seed=13)
    plan_index = 1  # the recurrent matrix U: gates stacked, padding in rows and columns
    dut = MVUHarness(cfg, weights, plan_index)
    plan = dut.plan
    x = plan_vectors(cfg, plan, 3, seed=2)
    want = plan_expected(cfg, weights, plan, x)  # (n, gates, H)
    hp = cfg.padded(cfg.hidden_size)
    expected = np.zeros((3, plan.gates, hp), dtype=np.int64)
    care = np.zeros_like(expected)
    expected[:, :, : cfg.hidden_size] = want
    care[:, :, : cfg.hidden_size] = 1
    top = "mvu_harness"
    source = write_verilog(dut, tmp_path / f"{top}.v", top)
    case_file = write_case(
        tmp_path / "case.json",
        {
            "inputs": x.reshape(-1).tolist(),
            "expected": expected.reshape(-1).tolist(),
            "care": care.reshape(-1).tolist(),
            "seed": 7,
            "cycle_limit": 3 * (4 * plan.sweep_cycles + 8 * plan.rows + 8 * plan.cols + 200),
        },
    )
    ran, _ = run_cocotb(
        [source],
        top,
        "mvu_tb",
        simulator,
        tmp_path / "build",
        extra_env={CASE_ENV: str(case_file)},
        python_paths=[TB_DIR],
    )
    assert ran == 6
