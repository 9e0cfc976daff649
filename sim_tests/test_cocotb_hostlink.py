"""Tier 2: the generated Verilog of HostLink (UART, frame engine, accelerator) in Icarus and
Verilator, driven through its UART pins by the host driver (:class:`rnnaccel.boards.driver.Accelerator`
over a cocotb byte transport); the session's hidden states must equal the golden model's bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cocotb_support import CASE_ENV, run_cocotb, write_case, write_verilog
from rnnaccel.interface.protocol import encode_info
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.interface.session import golden_session, save_session
from rnnaccel.hw.hostlink import HostLink
from rnnaccel.numeric.model import random_weights
from shared import report

pytestmark = pytest.mark.cocotb

TB_DIR = Path(__file__).parent / "cocotb_tb"


def _session(cfg, seed):
    rng = np.random.default_rng(seed)

    def seq(t):
        return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)

    h0 = quantize(rng.uniform(-0.8, 0.8, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
    c0 = quantize(rng.uniform(-1.5, 1.5, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
    return [("reset",), ("run", seq(3)), ("state", h0, c0), ("run", seq(2))]


# suite budget: CI runs the board-level Verilog in Verilator; the slow tier in Icarus too (every host-link block
# also runs in Icarus in CI through the multi-core link test)
@pytest.mark.parametrize("simulator", [pytest.param("icarus", marks=pytest.mark.slow), "verilator"])
def test_host_link_through_uart_pins(simulator, tmp_path):
    """One build, two cocotb tests: the driver's session (bit-exact against the golden model), then a seeded
    program of requests and damaged traffic (``link_model.random_program``), every answer byte for byte as the
    Python model of the device says."""
    cfg = preset("tiny").replace(weights_in_rom=False)
    weights_seed = 17
    weights = random_weights(cfg, seed=weights_seed)
    clk_freq = 100_000_000
    link = HostLink(cfg, clk_freq=clk_freq, baud=25_000_000, timeout_cycles=600)
    top = "hostlink"
    source = write_verilog(link, tmp_path / f"{top}.v", top)
    ops = _session(cfg, seed=6)
    cfg.save(tmp_path / "rnnaccel.toml")
    save_session(tmp_path / "session.npz", ops)
    result, program_result = tmp_path / "result.npz", tmp_path / "program.npz"
    case = write_case(
        tmp_path / "case.json",
        {
            "config": str(tmp_path / "rnnaccel.toml"),
            "session": str(tmp_path / "session.npz"),
            "result": str(result),
            "program_result": str(program_result),
            "divisor": link.divisor,
            "clk_freq": clk_freq,
            "buffer_bytes": link.info.buffer_bytes,
            "timeout_cycles": link.info.timeout_cycles,
            "design_hash": link.info.design_hash,
            "info": encode_info(link.info).hex(),
            "weights_seed": weights_seed,
            "seed": 23,
            "actions": 40,
        },
    )
    ran, _ = run_cocotb(
        [source],
        top,
        "hostlink_tb",
        simulator,
        tmp_path / "build",
        extra_env={CASE_ENV: str(case)},
        python_paths=[TB_DIR],
    )
    assert ran == 2
    want = golden_session(cfg, weights, ops)
    with np.load(result) as res:
        for i, w in enumerate(want):
            np.testing.assert_array_equal(res[f"out{i}"], w)
        assert int(res["steps"]) == 5 and int(res["rejected"]) == 0 and int(res["status"]) == 2
    with np.load(program_result) as res:
        report(
            f"link program in {simulator}: {int(res['requests'])} valid requests, {int(res['damaged'])} damaged frames"
        )
        assert int(res["requests"]) > 15 and int(res["damaged"]) > 3
