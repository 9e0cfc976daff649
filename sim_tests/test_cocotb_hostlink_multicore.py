"""Tier 2: the generated Verilog of a 2-core programs HostLink (the tiny LSTM in ROM beside a GRU whose
weights go over the link) in Icarus, driven through its UART pins by the host driver; the programs
session's outputs must equal :func:`rnnaccel.interface.multicore.programs_golden` bit for bit, and a frame
for a missing core is answered NAK CORE."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cocotb_support import CASE_ENV, run_cocotb, write_case, write_verilog
from rnnaccel.hw.hostlink import HostLink
from rnnaccel.interface.multicore import programs_golden
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights

pytestmark = pytest.mark.cocotb

TB_DIR = Path(__file__).parent / "cocotb_tb"


def test_programs_host_link_through_uart_pins_icarus(tmp_path):
    lstm = preset("tiny")
    gru = lstm.replace(cell="gru", input_size=4, weights_in_rom=False)
    seeds = [3, 5]
    models = [(lstm, random_weights(lstm, seed=seeds[0])), (gru, random_weights(gru, seed=seeds[1]))]
    clk_freq = 100_000_000
    link = HostLink(
        lstm.replace(cores=2, core_mode="programs"),
        clk_freq=clk_freq,
        baud=25_000_000,
        models=models,
        timeout_cycles=600,
    )
    top = "hostlink_mc"
    source = write_verilog(link, tmp_path / f"{top}.v", top)
    rng = np.random.default_rng(11)

    def seq(cfg, t):
        return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)

    arrays = {
        "x0a": seq(lstm, 2),
        "x1a": seq(gru, 3),
        "g0": quantize(rng.uniform(-0.8, 0.8, size=(1, gru.hidden_size)), gru.q_state),
        "x1b": seq(gru, 1),
        "x0b": seq(lstm, 2),
    }
    np.savez(tmp_path / "session.npz", **arrays)
    paths = []
    for i, (cfg, _) in enumerate(models):
        cfg.save(tmp_path / f"core{i}.toml")
        paths.append(str(tmp_path / f"core{i}.toml"))
    result = tmp_path / "result.npz"
    case = write_case(
        tmp_path / "case.json",
        {
            "configs": paths,
            "weights_seeds": seeds,
            "session": str(tmp_path / "session.npz"),
            "result": str(result),
            "divisor": link.divisor,
            "clk_freq": clk_freq,
            "buffer_bytes": link.info.buffer_bytes,
            "timeout_cycles": link.info.timeout_cycles,
        },
    )
    ran, _ = run_cocotb(
        [source],
        top,
        "hostlink_multicore_tb",
        "icarus",
        tmp_path / "build",
        extra_env={CASE_ENV: str(case)},
        python_paths=[TB_DIR],
    )
    assert ran == 1
    a = arrays
    ops = [
        ("reset", 0),
        ("reset", 1),
        ("run", {0: a["x0a"], 1: a["x1a"]}),
        ("state", 1, a["g0"], None),
        ("run", {1: a["x1b"], 0: a["x0b"]}),
    ]
    want = programs_golden(models, ops)
    with np.load(result) as res:
        for i, out in enumerate(want):
            for core, y in out.items():
                np.testing.assert_array_equal(res[f"out{i}_{core}"], y)
        assert list(res["steps"]) == [4, 4]
