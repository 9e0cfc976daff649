"""The rnnaccel command line: the happy paths and every bad input gets one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from rnnaccel.flow import toolchain
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.numeric.model import load_model


from cli_helpers import one_line_error
from cli_helpers import run_cli as run


@pytest.fixture
def model(tmp_path, capsys):
    code, out, _ = run(["new", "--preset", "tiny", "-o", tmp_path / "m"], capsys)
    assert code == 0 and "wrote" in out
    return tmp_path / "m"


def test_new_writes_seeded_model(tmp_path, capsys):
    run(["new", "--preset", "lstm-small", "-o", tmp_path / "a", "--seed", "3"], capsys)
    run(["new", "--preset", "lstm-small", "-o", tmp_path / "b", "--seed", "3"], capsys)
    cfg_a, w_a = load_model(tmp_path / "a")
    cfg_b, w_b = load_model(tmp_path / "b")
    assert cfg_a == cfg_b == preset("lstm-small").replace(seed=3)
    for k in w_a:
        np.testing.assert_array_equal(w_a[k], w_b[k])


def test_new_set_overrides_and_refuses_overwrite(tmp_path, capsys):
    code, _, _ = run(
        [
            "new",
            "--preset",
            "tiny",
            "-o",
            tmp_path / "g",
            "--set",
            "cell=gru",
            "--set",
            "gru_reset_after=false",
            "--set",
            "q_weight=Q0.7",
        ],
        capsys,
    )
    assert code == 0
    cfg, _ = load_model(tmp_path / "g")
    assert cfg.cell == "gru" and cfg.gru_reset_after is False and str(cfg.q_weight) == "Q0.7"
    code, _, err = run(["new", "--preset", "tiny", "-o", tmp_path / "g"], capsys)
    assert code == 2
    one_line_error(err, "--force")


def test_run_golden_matches_model_and_raw(model, tmp_path, capsys):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 5, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert run(["run", model, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npy"], capsys)[0] == 0
    assert run(["run", model, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "r.npy", "--raw"], capsys)[0] == 0
    cfg, w = load_model(model)
    raw = np.load(tmp_path / "r.npy")
    np.testing.assert_array_equal(raw, IntegerModel(cfg, w).run(x))
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, (raw * 2.0**-cfg.q_state.frac).astype(np.float32))


def test_run_amaranth_backend_and_report(model, tmp_path, capsys):
    x = np.random.default_rng(1).uniform(-1, 1, (3, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(
        [
            "run",
            model,
            "--inputs",
            tmp_path / "x.npy",
            "-o",
            tmp_path / "y.npy",
            "--raw",
            "--backend",
            "amaranth",
            "--report",
            tmp_path / "r.json",
        ],
        capsys,
    )
    assert code == 0, err
    cfg, w = load_model(model)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), IntegerModel(cfg, w).run(x))
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["steps"] == 3 and rep["ideal_cycles_per_step"] == cfg.ideal_cycles_per_step
    assert rep["cycles_per_step"] >= cfg.ideal_cycles_per_step and 0 < rep["utilization"] <= 1
    assert "per step" in out


def test_info(model, capsys):
    code, out, _ = run(["info", model], capsys)
    assert code == 0
    assert "weight memory" in out and "ideal cycles per step" in out and "sigmoid table" in out
    code, out, _ = run(["info", "--preset", "lstm512-ice40"], capsys)
    assert "131072 bytes" in out and "2097152 bytes" in out
    # serial datapath: 4 lanes, so each 2048 x 512 matrix takes 2048 * 512 / 4 cycles
    assert "serial datapath: 4 lanes" in out and out.count("262144 cycles") == 2
    assert "fused projections" in out and "weights from" not in out
    # the steady state from the cycle model, the simulator's figure (sim_tests/test_cycle_model.py)
    assert "cycles per step, steady state (cycle model): 525414 (99.8% of the ideal)" in out
    # a serial SRU streaming its weights in batches of 4 steps
    sets = ["--set", "cell=sru", "--set", "weight_source=flash", "--set", "time_steps=4"]
    code, out, _ = run(["info", "--preset", "lstm-small-ice40", *sets], capsys)
    assert code == 0 and "input projections (W x + b" in out and "batch of up to 4 time steps" in out
    code, out, _ = run(["info", "--preset", "lstm-small", "--set", "cores=2", "--set", "core_mode=helpers"], capsys)
    assert code == 0 and "cycles per step: not modelled for this design" in out


def test_generate_is_byte_identical(model, tmp_path, capsys):
    assert run(["generate", model, "-o", tmp_path / "g1"], capsys)[0] == 0
    assert run(["generate", model, "-o", tmp_path / "g2"], capsys)[0] == 0
    files = sorted(p.relative_to(tmp_path / "g1") for p in (tmp_path / "g1").rglob("*") if p.is_file())
    assert {"rnnaccel_top.v", "manifest.json", "rnnaccel.h", "rnnaccel.toml"} <= {str(f) for f in files}
    for f in files:
        assert (tmp_path / "g1" / f).read_bytes() == (tmp_path / "g2" / f).read_bytes(), f
    man = json.loads((tmp_path / "g1" / "manifest.json").read_text())
    cfg, _ = load_model(model)
    assert man["config_hash"] == cfg.hash and man["ideal_cycles_per_step"] == cfg.ideal_cycles_per_step
    names = {p["name"] for p in man["ports"]}
    assert {
        "clk",
        "rst",
        "i_x__payload",
        "i_x__valid",
        "i_x__ready",
        "o_h__payload",
        "i_cmd__payload",
        "status",
        "cycles",
    } <= names
    header = (tmp_path / "g1" / "rnnaccel.h").read_text()
    assert "#define RNNACCEL_Q_STATE_FRAC 12" in header and "RNNACCEL_ROUND_SHIFT" in header


def test_c_header_rounding_matches_fixedpoint(model, tmp_path, capsys):
    """Compile the generated header's NARROW macro and compare with rnnaccel.numeric.fixedpoint.narrow."""
    import shutil

    from rnnaccel.numeric.fixedpoint import QFormat, narrow

    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (gcc is part of the base image)"
    run(["generate", model, "-o", tmp_path / "g"], capsys)
    values = list(range(-70000, 70001, 37)) + [-(2**40), 2**40 - 1]
    src = tmp_path / "t.c"
    src.write_text(
        '#include <stdio.h>\n#include <math.h>\n#include "rnnaccel.h"\nint main(void){\n'
        "long long v[] = {" + ",".join(f"{v}LL" for v in values) + "};\n"
        f'for (unsigned i = 0; i < {len(values)}; i++) printf("%lld\\n", (long long)'
        "RNNACCEL_NARROW(v[i], 18, 11, RNNACCEL_Q_PRE_MIN, RNNACCEL_Q_PRE_MAX));\nreturn 0;}\n"
    )
    exe = tmp_path / "t"
    subprocess.run([cc, "-I", str(tmp_path / "g"), str(src), "-o", str(exe), "-lm"], check=True)
    got = [int(line) for line in subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()]
    assert got == narrow(np.array(values), 18, QFormat(16, 11)).tolist()


# ------------------------------------------------------------------ bad input: one line, exit 2


def test_bad_inputs(model, tmp_path, capsys):
    np.save(tmp_path / "wide.npy", np.zeros((4, 9), np.float32))
    nan = np.zeros((4, 8), np.float32)
    nan[2, 5] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    inf = np.zeros((1, 4, 8), np.float32)
    inf[0, 1, 1] = np.inf
    np.save(tmp_path / "inf.npy", inf)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    np.save(tmp_path / "ok.npy", np.zeros((2, 8), np.float32))
    cases = [
        (["run", model, "--inputs", tmp_path / "wide.npy", "-o", tmp_path / "y.npy"], ["(4, 9)", "8"]),
        (["run", model, "--inputs", tmp_path / "nan.npy", "-o", tmp_path / "y.npy"], ["NaN", "(2, 5)"]),
        (["run", model, "--inputs", tmp_path / "inf.npy", "-o", tmp_path / "y.npy"], ["infinite"]),
        (["run", model, "--inputs", tmp_path / "junk.npy", "-o", tmp_path / "y.npy"], ["junk.npy"]),
        (["run", model, "--inputs", tmp_path / "none.npy", "-o", tmp_path / "y.npy"], ["does not exist"]),
        (["run", tmp_path / "nodir", "--inputs", tmp_path / "ok.npy", "-o", tmp_path / "y.npy"], ["does not exist"]),
        (["run", model, "--inputs", tmp_path / "ok.npy", "-o", tmp_path / "y.npy", "--backend", "spice"], ["spice"]),
        (["new", "--preset", "huge", "-o", tmp_path / "h"], ["huge", "tiny"]),
        (["new", "--preset", "tiny", "-o", tmp_path / "h", "--set", "hidden_size=-1"], ["hidden_size", "-1"]),
        (["new", "--preset", "tiny", "-o", tmp_path / "h", "--set", "colour=blue"], ["colour"]),
        (["info"], ["model directory"]),
        (["generate", tmp_path / "nodir", "-o", tmp_path / "g"], ["does not exist"]),
    ]
    for argv, needles in cases:
        code, _, err = run(argv, capsys)
        assert code == 2, argv
        one_line_error(err, *needles)


def test_weights_not_matching_config(model, tmp_path, capsys):
    cfg, w = load_model(model)
    cfg.replace(hidden_size=12).save(model / "rnnaccel.toml")
    np.save(tmp_path / "ok.npy", np.zeros((2, 8), np.float32))
    code, _, err = run(["run", model, "--inputs", tmp_path / "ok.npy", "-o", tmp_path / "y.npy"], capsys)
    assert code == 2
    one_line_error(err, "layer0.W", "shape")
    (model / "rnnaccel.toml").write_text("[rnnaccel]\ncell = 'lstm'\nhidden_size = 'x'\n")
    code, _, err = run(["info", model], capsys)
    assert code == 2
    one_line_error(err, "hidden_size")
    (model / "rnnaccel.toml").write_text("this is = = not toml")
    code, _, err = run(["info", model], capsys)
    assert code == 2
    one_line_error(err, "TOML")


def test_missing_simulator(model, tmp_path, capsys, monkeypatch):
    np.save(tmp_path / "ok.npy", np.zeros((2, 8), np.float32))
    real_which = toolchain.shutil.which

    def which(name, path=None):
        return None if name in ("iverilog", "verilator") else real_which(name, path=path)

    monkeypatch.setattr(toolchain.shutil, "which", which)
    for sim, tool in (("icarus", "iverilog"), ("verilator", "verilator")):
        code, _, err = run(
            [
                "run",
                model,
                "--inputs",
                tmp_path / "ok.npy",
                "-o",
                tmp_path / "y.npy",
                "--backend",
                sim,
                "--cache",
                tmp_path / "cache",
            ],
            capsys,
        )
        assert code == 2
        one_line_error(err, tool, "not found")


def test_console_script_entry_point(tmp_path):
    exe = [sys.executable, "-m", "rnnaccel.cli", "presets"]
    out = subprocess.run(exe, capture_output=True, text=True, check=True).stdout
    assert "lstm512-ice40" in out


def test_run_output_path_errors_are_one_line(model, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 8), np.float32))
    for out, words in ((tmp_path / "missing" / "y.npy", ("does not exist",)), (tmp_path, ("is a directory",))):
        code, _, err = run(["run", model, "--inputs", tmp_path / "x.npy", "-o", out], capsys)
        assert code == 2
        one_line_error(err, *words)
    code, _, err = run(
        [
            "run",
            model,
            "--inputs",
            tmp_path / "x.npy",
            "-o",
            tmp_path / "y.npy",
            "--backend",
            "amaranth",
            "--report",
            tmp_path / "nope" / "r.json",
        ],
        capsys,
    )
    assert code == 2
    one_line_error(err, "does not exist")


def test_run_counts_inputs_outside_q_state(model, tmp_path, capsys):
    cfg, w = load_model(model)
    x = np.zeros((3, 8))
    x[0, 0], x[2, 5] = 1e6, -1e6
    np.save(tmp_path / "x.npy", x)
    code, _, err = run(["run", model, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npy", "--raw"], capsys)
    assert code == 0
    assert f"2 of 24 inputs lie outside {cfg.q_state}" in err and "saturate" in err
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), IntegerModel(cfg, w).run(x))
    code, _, err = run(["run", model, "--inputs", tmp_path / "x.npy", "-o", tmp_path / "y.npy"], capsys)
    assert code == 0 and "2 of 24" in err
    np.save(tmp_path / "ok.npy", np.full((3, 8), 0.5))
    code, _, err = run(["run", model, "--inputs", tmp_path / "ok.npy", "-o", tmp_path / "y.npy"], capsys)
    assert code == 0 and "outside" not in err


def test_quantize_overwrites_only_with_force(model, tmp_path, capsys):
    out = tmp_path / "q"
    assert run(["quantize", model, "-o", out, "--pin", "state=Q2.13"], capsys)[0] == 0
    cfg, _ = load_model(out)
    assert str(cfg.q_state) == "Q2.13"
    code, _, err = run(["quantize", model, "-o", out], capsys)
    assert code == 2
    one_line_error(err, "already holds a model", "--force")
    assert run(["quantize", model, "-o", out, "--force"], capsys)[0] == 0


@pytest.mark.parametrize("name", ["lstm-small", "lstm512-ice40", "gru-small"])
def test_generate_quantizes_the_weights_once(name, tmp_path, monkeypatch):
    """One quantization per design: the gateware, the memory images and the manifest share one
    QuantizedWeights (rnnaccel.numeric.model.quantize counted: one call per weight array)."""
    from rnnaccel.numeric import model as model_mod
    from rnnaccel.numeric.model import random_weights
    from rnnaccel.flow.rtl import generate

    cfg = preset(name)
    weights = random_weights(cfg, seed=2)
    calls = []
    real = model_mod.quantize
    monkeypatch.setattr(model_mod, "quantize", lambda *a, **k: calls.append(1) or real(*a, **k))
    generate(cfg, weights, tmp_path / "out", progress=lambda *_: None)
    assert len(calls) == len(weights)
