"""The generated Verilog of MultiCore (issue 14) in Icarus and Verilator: both modes bit-exact with the golden
model, with input idle, output back-pressure and (layer pipeline) random stalls on the links between cores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cocotb_support import CASE_ENV, run_cocotb, write_case, write_verilog
from rnnaccel.hw.multicore import MultiCore
from rnnaccel.interface.commands import OP
from rnnaccel.interface.multicore import BROADCAST, layer_models, layers_golden, programs_golden
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights

pytestmark = pytest.mark.cocotb

TB_DIR = Path(__file__).parent / "cocotb_tb"
TINY = preset("tiny")


def _pack(layout, **fields) -> int:
    word = 0
    for name, value in fields.items():
        f = layout[name]
        word |= (int(value) & ((1 << f.width) - 1)) << f.offset
    return word


def _case(mode):
    rng = np.random.default_rng(3)
    if mode == "programs":
        a, b = TINY, TINY.replace(cell="gru", input_size=5, hidden_size=12)
        models = [(a, random_weights(a, 1)), (b, random_weights(b, 2))]
        xs = {i: quantize(rng.uniform(-1, 1, (4, c.input_size)), c.q_state) for i, (c, _) in enumerate(models)}
        want = programs_golden(models, [("run", xs)])[0]
        dut = MultiCore(models, "programs")
        order = [(i, int(v)) for i in xs for v in xs[i].reshape(-1)]
        rng.shuffle(order)  # the two streams interleaved word by word (each in its own order)
        per = {i: iter(int(v) for v in xs[i].reshape(-1)) for i in xs}
        inputs = [(i, next(per[i])) for i, _ in order]
    else:
        cfg = TINY.replace(num_layers=3, cores=2, core_mode="layers", cell="gru")
        w = random_weights(cfg, 4)
        x = quantize(rng.uniform(-1, 1, (5, cfg.input_size)), cfg.q_state)
        want = {1: layers_golden(cfg, w, [("reset",), ("run", x)])[0]}
        dut = MultiCore(layer_models(cfg, w), "layers", link_stalls=True)
        inputs = [(0, int(v)) for v in x.reshape(-1)]
    return dut, inputs, want


@pytest.mark.parametrize(
    "simulator,mode",
    [
        ("icarus", "programs"),
        ("icarus", "layers"),
        # suite budget: Verilator in the slow tier (CI runs the multi-core host link in Icarus and Verilator)
        pytest.param("verilator", "programs", marks=pytest.mark.slow),
        pytest.param("verilator", "layers", marks=pytest.mark.slow),
    ],
)
def test_multicore_verilog(simulator, mode, tmp_path):
    dut, inputs, want = _case(mode)
    cmd_layout = dut.i_cmd.payload.shape()
    word_layout = dut.i_x.payload.shape()
    commands = [
        _pack(cmd_layout, op=OP["RESET_STATE"], core=BROADCAST),
        _pack(cmd_layout, op=OP["CLEAR_COUNTERS"], core=BROADCAST),
        _pack(cmd_layout, op=OP["RESET_STATE"], core=dut.n_cores - 1),
    ]
    top = "multicore"
    source = write_verilog(dut, tmp_path / f"{top}.v", top)
    case = write_case(
        tmp_path / "case.json",
        {
            "commands": commands,
            "inputs": [_pack(word_layout, core=c, data=v) for c, v in inputs],
            "expected": {str(k): v.reshape(-1).tolist() for k, v in want.items()},
            "data_bits": word_layout["data"].width,
            "link_bits": 2 * (dut.n_cores - 1) if mode == "layers" else 0,
            "idle": 0.3,
            "backpressure": 0.3,
            "link_stall": 0.3,
            "seed": 11,
            "cycle_limit": 20000,
        },
    )
    ran, _ = run_cocotb(
        [source],
        top,
        "multicore_tb",
        simulator,
        tmp_path / "build",
        extra_env={CASE_ENV: str(case)},
        python_paths=[TB_DIR],
    )
    assert ran == 1
