"""Activation tables: pinned errors, exact symmetry, monotonicity, clamping,
table contents, and the scripts/lut_error.py report."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from rnnaccel.numeric import lut
from rnnaccel.numeric.config import Config
from rnnaccel.numeric.fixedpoint import QFormat, quantize

REPO = Path(__file__).resolve().parents[1]

DEFAULT = Config()
CONFIGS = {
    "default": DEFAULT,
    "no-interp": Config(interpolate=False),
    "small": Config(table_entries=32, sigmoid_range=4.0, tanh_range=2.0),
    "small-no-interp": Config(table_entries=32, sigmoid_range=4.0, tanh_range=2.0, interpolate=False),
    "fine": Config(table_entries=4096, q_act=QFormat(12, 11), interpolate=True),
    "narrow-pre": Config(q_pre=QFormat(11, 6), q_cell=QFormat(12, 7), table_entries=64),
}


def all_raw(q: QFormat) -> np.ndarray:
    return np.arange(q.min_raw, q.max_raw + 1, dtype=np.int64)


def one(cfg: Config) -> int:
    return 1 << cfg.q_act.frac


# ------------------------------------------------------------------ pinned errors
# measured for Config(): interp sigmoid 3.05e-4, tanh 6.71e-4; no interp 7.82e-3, 1.5625e-2
@pytest.mark.parametrize(
    "fn, interp, bound",
    [("sigmoid", True, 4e-4), ("tanh", True, 8e-4), ("sigmoid", False, 8e-3), ("tanh", False, 1.6e-2)],
)
def test_default_table_error_pinned(fn, interp, bound):
    cfg = DEFAULT.replace(interpolate=interp)
    err = lut.table_error(cfg, fn)
    assert err["max_abs"] < bound
    assert 0 < err["mean_abs"] < err["max_abs"]
    assert err["stored_words"] == 128 + (1 if interp else 0)
    # covers [-2R, 2R) at q_pre resolution (clipped to q_pre's range)
    rng = cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range
    expected_points = min(2 * int(2 * rng * 2**cfg.q_pre.frac) + 1, 2**cfg.q_pre.width)
    assert err["points"] == expected_points


def test_interpolation_helps_at_least_tenfold():
    for fn in lut.FUNCTIONS:
        on = lut.table_error(DEFAULT, fn)["max_abs"]
        off = lut.table_error(DEFAULT.replace(interpolate=False), fn)["max_abs"]
        assert on * 10 < off


def test_error_shrinks_with_entries():
    for fn in lut.FUNCTIONS:
        errs = [lut.table_error(DEFAULT.replace(table_entries=n), fn)["max_abs"] for n in (16, 64, 256)]
        assert errs[0] > errs[1] > errs[2]


# ------------------------------------------------------------------ table contents
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("fn", lut.FUNCTIONS)
def test_stored_words(name, fn):
    cfg = CONFIGS[name]
    words = lut.table(cfg, fn)
    n = cfg.table_entries // 2
    assert lut.half_entries(cfg) == n
    assert words.size == n + (1 if cfg.interpolate else 0)
    # q_act raw integers
    assert words.dtype.kind == "i"
    assert words.min() >= cfg.q_act.min_raw and words.max() <= cfg.q_act.max_raw
    # sampled where the module docstring says: step edges (interp) or midpoints
    rng = cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range
    step = 2 * rng / cfg.table_entries
    xs = np.arange(words.size) * step + (0 if cfg.interpolate else step / 2)
    assert np.array_equal(words, quantize(lut.float_fn(fn)(xs), cfg.q_act))
    assert np.all(np.diff(words) >= 0)


def test_default_words_spot_values():
    s = lut.table(DEFAULT, "sigmoid")
    t = lut.table(DEFAULT, "tanh")
    assert s[0] == 8192  # sigmoid(0) = 0.5 in Q1.14
    assert t[0] == 0
    assert s[-1] == int(np.floor(16384 / (1 + np.exp(-8.0)) + 0.5))
    assert t[-1] == int(np.floor(16384 * np.tanh(4.0) + 0.5))


def test_unknown_function():
    with pytest.raises(ValueError, match="relu"):
        lut.table(DEFAULT, "relu")
    with pytest.raises(ValueError, match="relu"):
        lut.float_fn("relu")


# ------------------------------------------------------------------ lookup properties
@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("fn", lut.FUNCTIONS)
def test_odd_symmetry_exact(name, fn):
    cfg = CONFIGS[name]
    raw = all_raw(cfg.q_pre)
    raw = raw[raw != cfg.q_pre.min_raw]  # -min_raw overflows q_pre
    if not cfg.interpolate:
        # without interpolation 0 reads the first midpoint sample f(step/2), like (0, step);
        # only -0 = 0 cannot mirror it
        raw = raw[raw != 0]
    pos = lut.lookup(cfg, fn, raw, cfg.q_pre.frac)
    neg = lut.lookup(cfg, fn, -raw, cfg.q_pre.frac)
    if fn == "tanh":
        assert np.array_equal(neg, -pos)
    else:
        assert np.array_equal(neg, one(cfg) - pos)


def test_zero_without_interpolation_reads_first_sample():
    cfg = DEFAULT.replace(interpolate=False)
    for fn in lut.FUNCTIONS:
        assert lut.lookup(cfg, fn, np.array([0]), cfg.q_pre.frac)[0] == lut.table(cfg, fn)[0]


def test_zero_with_interpolation_is_exact():
    assert lut.lookup(DEFAULT, "sigmoid", np.array([0]), 11)[0] == one(DEFAULT) // 2
    assert lut.lookup(DEFAULT, "tanh", np.array([0]), 11)[0] == 0


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("fn", lut.FUNCTIONS)
def test_monotonic_over_all_inputs(name, fn):
    cfg = CONFIGS[name]
    for q_in in (cfg.q_pre, cfg.q_cell):
        out = lut.lookup(cfg, fn, all_raw(q_in), q_in.frac)
        assert np.all(np.diff(out) >= 0), f"{fn} not monotonic for inputs {q_in}"
        assert out.min() >= cfg.q_act.min_raw and out.max() <= cfg.q_act.max_raw


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("fn", lut.FUNCTIONS)
def test_clamps_beyond_range(name, fn):
    cfg = CONFIGS[name]
    q = cfg.q_pre
    rng = cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range
    words = lut.table(cfg, fn)
    last = words[-1]
    r_raw = int(rng * 2**q.frac)
    raw = all_raw(q)
    beyond = raw[raw >= r_raw]
    assert beyond.size > 0
    out = lut.lookup(cfg, fn, beyond, q.frac)
    assert np.all(out == last)
    below = raw[raw <= -r_raw]
    out = lut.lookup(cfg, fn, below, q.frac)
    assert np.all(out == (-last if fn == "tanh" else one(cfg) - last))
    # just inside the range is still interpolated / looked up, never past the last word
    inside = lut.lookup(cfg, fn, np.array([r_raw - 1]), q.frac)[0]
    assert inside <= last


def test_interpolation_hits_words_at_step_edges():
    cfg = DEFAULT
    shift = cfg.table_shift("tanh", cfg.q_pre.frac)
    words = lut.table(cfg, "tanh")
    edges = np.arange(words.size - 1) << shift
    assert np.array_equal(lut.lookup(cfg, "tanh", edges, cfg.q_pre.frac), words[:-1])


def test_interpolation_midpoint_rounds_half_up():
    cfg = DEFAULT
    shift = cfg.table_shift("sigmoid", cfg.q_pre.frac)
    words = lut.table(cfg, "sigmoid")
    j = np.arange(words.size - 1)
    mid = (j << shift) + (1 << (shift - 1))
    want = words[j] + ((words[j + 1] - words[j] + 1) >> 1)
    assert np.array_equal(lut.lookup(cfg, "sigmoid", mid, cfg.q_pre.frac), want)


def test_lookup_with_cell_state_format():
    """The same table serves inputs with another fraction count (the LSTM's tanh(c))."""
    cfg = DEFAULT.replace(q_cell=QFormat(16, 10))
    raw = all_raw(cfg.q_cell)
    got = lut.lookup(cfg, "tanh", raw, cfg.q_cell.frac) * cfg.q_act.lsb
    want = np.tanh(raw * cfg.q_cell.lsb)
    assert np.abs(got - want).max() < 8e-4


# ------------------------------------------------------------------ the report script
def _load_script():
    spec = importlib.util.spec_from_file_location("lut_error_script", REPO / "scripts" / "lut_error.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lut_error_script_writes_plot(tmp_path, capsys):
    script = _load_script()
    out = tmp_path / "lut"
    assert script.main(["--out", str(out)]) == 0
    png = out / "lut_error.png"
    assert png.exists() and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = capsys.readouterr().out
    assert "hls4ml" in text and "sigmoid" in text and "tanh" in text


def test_lut_error_script_numbers():
    script = _load_script()
    rows = {(r["fn"], r["table"]): r for r in script.summary(DEFAULT)}
    for fn in lut.FUNCTIONS:
        for interp in (True, False):
            ref = lut.table_error(DEFAULT.replace(interpolate=interp), fn)
            row = rows[(fn, f"rnnaccel {'interp' if interp else 'no interp'}")]
            assert row["max_abs"] == pytest.approx(ref["max_abs"], abs=1e-15)
            assert row["mean_abs"] == pytest.approx(ref["mean_abs"], rel=1e-12)
            assert row["points"] == ref["points"]
        hls = rows[(fn, "hls4ml ap_fixed<18,8> trunc")]
        assert hls["words"] == 1024
        # a left-edge sample is off by up to step * max slope (sigmoid 1/64 * 1/4, tanh 1/128 * 1)
        assert 3e-3 < hls["max_abs"] < 1e-2
        assert rows[(fn, "rnnaccel interp")]["max_abs"] < hls["max_abs"] / 5


def test_hls4ml_style_indexing():
    script = _load_script()
    t = script.hls4ml_table("tanh", word=None)
    assert t.size == 1024
    # entry i is sampled at the left edge 2R(i - N/2)/N
    assert t[0] == np.tanh(-4.0) and t[512] == 0.0 and t[513] == np.tanh(8.0 / 1024)
    x = np.array([-100.0, -4.0, -4.0 + 8 / 1024 - 1e-9, 0.0, 8 / 1024, 3.999, 4.0, 100.0])
    got = script.hls4ml_lookup("tanh", x, np.arange(1024.0))
    assert got.tolist() == [0, 0, 0, 512, 513, 1023, 1023, 1023]
    w = script.hls4ml_table("sigmoid")
    assert np.all(w * 2**10 == np.floor(w * 2**10))  # 10 fraction bits
    assert np.all(w <= 1 / (1 + np.exp(-(16 * (np.arange(1024) - 512) / 1024))))  # truncated
