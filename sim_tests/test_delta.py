"""Delta-network mode, numeric half (issue 19): rnnaccel.numeric.delta, the golden models and the training forward.

A. Threshold 0 in delta mode is the normal golden model bit for bit, for every
   cell and variant (hypothesis over small configs: k, layers, sizes, formats,
   the serial datapath, the FFT mode); the memories always hold exactly
   ``M v_ref``.
B. Hand-checked thresholding (strictly greater, raw threshold = floor) and
   accumulation (the memories, the read through the normal narrowing; with an
   exact hidden side, delta mode on x is the normal model on the references).
C. Counters: skipped columns and block columns, effective MACs, normal-mode
   dense counts.
D. Reset and streaming; set_state clears the references.
E. Config: validation, TOML only when not default, raw thresholds.
F. The training forward: hardware-exact forward in delta mode == IntegerModel
   bit for bit; float forward == FloatModel; gradients flow.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnaccel.numeric.config import Config, ConfigError
from rnnaccel.numeric.delta import WorkStats, propagate, raw_threshold
from rnnaccel.numeric.fixedpoint import QFormat, align, narrow, quantize, to_float
from rnnaccel.numeric.golden import FloatModel, IntegerModel
from rnnaccel.numeric.model import random_weights
from rnnaccel.models.train import CirculantRNN
from shared import CELL_VARIANT_IDS, CELL_VARIANTS

BASE = Config(input_size=8, hidden_size=8, block_size=4, lanes=4, pe_rows=1, pe_cols=2)


def make(cell, layers=2, k=4, **kw):
    base = dict(cell=cell, num_layers=layers, block_size=k, lanes=k if k > 1 else 4)
    base.update(kw)
    return BASE.replace(**base)


def walk(cfg, n=3, t=12, step=0.15, seed=1, scale=1.0):
    """A slowly changing input: a random walk (N, T, input)."""
    rng = np.random.default_rng(seed)
    return scale * np.cumsum(rng.normal(size=(n, t, cfg.input_size)) * step, axis=1)


def assert_memories_exact(cfg, model):
    """Every memory equals its matrix times its reference, exactly (direct mode)."""
    for layer, st_ in enumerate(model.state):
        m = model.mats[layer]
        for name, _, _ in cfg.matrices(layer):
            gates = {"W": slice(None), "U": slice(None), "Urz": slice(0, 2), "Un": slice(2, 3)}[name]
            mat = (m.W if name == "W" else m.U)[gates]
            want = np.einsum("ghc,nc->ngh", mat.astype(np.int64), st_[f"ref_{name}"])
            np.testing.assert_array_equal(st_[f"acc_{name}"], want)


# ============================================================================
# A. threshold 0 == the normal golden model
# ============================================================================


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("cell,kw", CELL_VARIANTS, ids=CELL_VARIANT_IDS)
def test_threshold_zero_is_the_normal_model(cell, kw, layers, k):
    cfg = make(cell, layers, k, **kw)
    w = random_weights(cfg, seed=3, scale=3.0)  # saturating projections and states included
    x = walk(cfg, scale=4.0)
    normal = IntegerModel(cfg, w)
    delta = IntegerModel(cfg, w, delta=True)
    assert not normal.delta and delta.delta
    np.testing.assert_array_equal(delta.run(x), normal.run(x))
    for a, b in zip(delta.state, normal.state):
        for key in b:
            np.testing.assert_array_equal(a[key], b[key])
    assert_memories_exact(cfg, delta)
    np.testing.assert_array_equal(FloatModel(cfg, w, delta=True).run(x), FloatModel(cfg, w).run(x))


def _variant(draw_cell, data):
    cell, kw = draw_cell
    kw = dict(kw)
    k = data.draw(st.sampled_from([1, 2, 4]), label="k")
    serial = cell in ("lstm", "rnn") and k == 4 and data.draw(st.booleans(), label="serial")
    fft = k == 4 and not (cell == "qrnn" and kw.get("qrnn_window") == 2) and data.draw(st.booleans(), label="fft")
    hidden = kw.pop("hidden_size", data.draw(st.sampled_from([4, 6, 8]), label="hidden"))
    inp = data.draw(st.sampled_from([4, 8]), label="input")
    if cell == "qrnn" and kw.get("qrnn_window") == 2:
        inp, hidden = 8, 8
    if cell == "sru" and "hidden_size" in dict(draw_cell[1]):
        hidden = inp + 4
    cfg = dict(
        cell=cell,
        input_size=inp,
        hidden_size=hidden,
        num_layers=data.draw(st.integers(1, 2), label="L"),
        block_size=k,
        lanes=k if k > 1 else data.draw(st.sampled_from([1, 4]), label="lanes"),
        **kw,
    )
    if serial:
        cfg.update(datapath="serial", lanes=2, pe_cols=1)
    if fft:
        cfg.update(circulant_mode="fft", q_spectrum=QFormat(8, 5))
    if data.draw(st.booleans(), label="narrow formats"):
        cfg.update(q_state=QFormat(10, 6), q_weight=QFormat(6, 5))
    return Config(**cfg)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(variant=st.sampled_from(CELL_VARIANTS), data=st.data())
def test_threshold_zero_bit_identical_hypothesis(variant, data):
    cfg = _variant(variant, data)
    seed = data.draw(st.integers(0, 1000), label="seed")
    scale = data.draw(st.sampled_from([0.5, 2.0, 4.0]), label="scale")
    w = random_weights(cfg, seed=seed, scale=scale)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2, 7, cfg.input_size)) * scale
    x[:, 3] = x[:, 2]  # a step without change: everything skipped on x
    normal, delta = IntegerModel(cfg, w), IntegerModel(cfg, w, delta=True)
    np.testing.assert_array_equal(delta.run(x), normal.run(x))
    if not cfg.fft_mode:
        assert_memories_exact(cfg, delta)


# ============================================================================
# B. hand-checked thresholding and accumulation
# ============================================================================


def test_propagate_is_strictly_greater_and_updates_only_propagated():
    vec = np.array([[5, -3, 10, -7, 4]])
    ref = np.array([[0, 0, 8, 0, 0]])
    d, new = propagate(vec, ref, 4)
    np.testing.assert_array_equal(d, [[5, 0, 0, -7, 0]])  # |4| == threshold: not propagated
    np.testing.assert_array_equal(new, [[5, 0, 8, -7, 0]])
    d, new = propagate(vec, ref, 0)
    np.testing.assert_array_equal(d, vec - ref)
    np.testing.assert_array_equal(new, vec)


def test_raw_threshold_is_the_float_test_on_quantized_values():
    cfg = Config(delta_threshold=0.01, delta_threshold_h=2.0**-10)
    assert cfg.q_state.frac == 12
    assert cfg.delta_threshold_raw == 40 == raw_threshold(cfg, False)  # floor(40.96)
    assert cfg.delta_threshold_h_raw == 4 == raw_threshold(cfg, True)
    d = np.arange(-100, 101)
    for t in (0.01, 2.0**-10, 0.0):
        raw = Config(delta_threshold=t).delta_threshold_raw
        np.testing.assert_array_equal(np.abs(d) > raw, np.abs(to_float(d, cfg.q_state)) > t)


def _hand_rnn(th_x, th_h=0.0):
    """1-layer dense RNN, input 2, hidden 2, weights exact in Q1.6; lanes 1 (no padding)."""
    cfg = Config(
        cell="rnn",
        input_size=2,
        hidden_size=2,
        block_size=1,
        lanes=1,
        pe_cols=1,
        delta_threshold=th_x,
        delta_threshold_h=th_h,
    )
    w = {
        "layer0.W": np.array([[[[1.0], [0.5]], [[0.0], [-1.0]]]], np.float32),  # (G, H, C, 1)
        "layer0.b": np.array([[0.25, 0.0]], np.float32),
        "layer0.U": np.array([[[[0.5], [0.0]], [[0.0], [0.5]]]], np.float32),
        "layer0.c": np.zeros((1, 2), np.float32),
    }
    return cfg, w


def test_hand_checked_accumulation():
    cfg, w = _hand_rnn(th_x=2.0**-8, th_h=0.0)  # raw input threshold 16 (Q3.12)
    assert cfg.delta_threshold_raw == 16
    m = IntegerModel(cfg, w)
    assert m.delta
    xs = np.array([[1000, 0], [1010, 0], [1020, 40], [1020, 40], [0, 0]])
    refs = [[1000, 0], [1000, 0], [1020, 40], [1020, 40], [0, 0]]
    Wr = quantize(w["layer0.W"][0, :, :, 0], cfg.q_weight)  # [[64, 32], [0, -64]]
    np.testing.assert_array_equal(Wr, [[64, 32], [0, -64]])
    prev_acc = np.zeros(2, np.int64)
    for t, (x, ref) in enumerate(zip(xs, refs)):
        h_prev = m.state[0]["h"][0].copy() if m.state is not None else np.zeros(2, np.int64)
        m.run_raw(x[None])
        st_ = m.state[0]
        np.testing.assert_array_equal(st_["ref_W"][0], ref)
        acc = st_["acc_W"][0, 0]
        np.testing.assert_array_equal(acc, Wr @ np.array(ref))
        # the memory grew by W * delta only
        np.testing.assert_array_equal(acc - prev_acc, Wr @ (np.array(ref) - np.array(refs[t - 1] if t else [0, 0])))
        prev_acc = acc
        # the gate reads it through the normal narrowing (bias aligned to acc_frac)
        xp = narrow(
            acc + align(quantize(w["layer0.b"][0], cfg.q_pre), cfg.q_pre.frac, cfg.acc_frac), cfg.acc_frac, cfg.q_pre
        )
        np.testing.assert_array_equal(st_["ref_U"][0], h_prev)  # hidden threshold 0: h propagates exactly
        assert xp.shape == (2,)
    # a skipped step changes nothing on the input side: steps 0/1 and 2/3 have the same x-projection memory
    assert m.stats.per_step[1]["cols_skipped"][0] >= 2 and m.stats.per_step[3]["cols_skipped"][0] >= 2


@pytest.mark.parametrize(
    "cell,kw", [("lstm", {}), ("gru", {"gru_reset_after": True}), ("gru", {"gru_reset_after": False}), ("rnn", {})]
)
def test_delta_on_x_is_the_normal_model_on_the_references(cell, kw):
    """With an exact hidden side, the delta model on x equals the normal model fed the input references."""
    cfg = make(cell, 1, 4, delta_threshold=0.05, delta_threshold_h=0.0, **kw)
    w = random_weights(cfg, seed=2)
    x = walk(cfg, n=2, t=15)
    xq = quantize(x, cfg.q_state)
    ref = np.zeros_like(xq[:, 0])
    refs = []
    for t in range(xq.shape[1]):
        _, ref = propagate(xq[:, t], ref, cfg.delta_threshold_raw)
        refs.append(ref)
    refs = np.stack(refs, axis=1)
    assert not np.array_equal(refs, xq)
    got = IntegerModel(cfg, w).run_raw(xq)
    np.testing.assert_array_equal(got, IntegerModel(cfg.replace(delta_threshold=0.0), w).run_raw(refs))


def test_reset_before_gru_thresholds_r_times_h():
    cfg = make("gru", 1, 4, gru_reset_after=False, delta_threshold=0.0, delta_threshold_h=0.05)
    w = random_weights(cfg, seed=4)
    m = IntegerModel(cfg, w)
    m.run(walk(cfg, n=1, t=10))
    st_ = m.state[0]
    assert set(st_) >= {"ref_W", "ref_Urz", "ref_Un", "acc_W", "acc_Urz", "acc_Un"}
    assert st_["acc_Urz"].shape == (1, 2, 8) and st_["acc_Un"].shape == (1, 1, 8)
    assert_memories_exact(cfg, m)
    assert m.stats.by_matrix[(0, "Un")]["cols_skipped"] > 0


def test_error_grows_with_threshold_and_everything_skips_at_the_top():
    cfg = make("gru", 2, 4)
    w = random_weights(cfg, seed=1)
    x = walk(cfg, n=2, t=30, step=0.05)
    exact = IntegerModel(cfg, w).run_float(x)
    errs, skips = [], []
    for t in (0.0, 0.01, 0.05, 0.2):
        m = IntegerModel(cfg.replace(delta_threshold=t), w, delta=True)
        errs.append(np.abs(m.run_float(x) - exact).max())
        skips.append(m.stats.skip_fraction)
    assert errs[0] == 0 and errs[-1] > 0
    assert skips == sorted(skips) and skips[-1] > 0.5
    big = IntegerModel(cfg.replace(delta_threshold=15.9), w)
    big.run(x)
    assert big.stats.macs == 0 and big.stats.skip_fraction == 1.0


# ============================================================================
# C. counters
# ============================================================================


def test_counters_of_circulant_block_columns():
    cfg = make("rnn", 1, 4, delta_threshold=0.0, delta_threshold_h=15.9)  # hidden side never propagates
    m = IntegerModel(cfg, random_weights(cfg, seed=0))
    x = np.zeros((3, 8), np.int64)
    x[0] = 100  # step 0: every column changes
    x[1] = x[0]
    x[1, 5] = 101  # step 1: one column, in block column 1
    x[2] = x[1]  # step 2: nothing
    m.run_raw(x)
    (_, rows_w, cols_w), (_, rows_u, cols_u) = cfg.matrices(0)
    assert (rows_w, cols_w, rows_u, cols_u) == (8, 8, 8, 8)
    ps = m.stats.per_step
    assert [int(p["cols_skipped"][0]) for p in ps] == [0 + 8, 7 + 8, 8 + 8]
    assert [int(p["block_cols_skipped"][0]) for p in ps] == [0 + 2, 1 + 2, 2 + 2]
    assert [int(p["macs"][0]) for p in ps] == [8 * 8, 8 * 4, 0]
    s = m.stats
    assert s.steps == 3 and s.dense_macs == 3 * 128 and s.macs == 96
    assert s.cols == 48 and s.cols_skipped == 8 + 15 + 16 and s.block_cols == 12 and s.block_cols_skipped == 9
    assert s.by_matrix[(0, "U")]["macs"] == 0
    assert s.mac_fraction == 96 / 384 and s.macs_per_step == 32 and s.dense_macs_per_step == 128
    d = s.as_dict()
    assert d["by_matrix"]["layer0.W"]["macs"] == 96 and d["skip_fraction"] == 39 / 48


def test_dense_columns_are_skipped_one_by_one():
    cfg = make("rnn", 1, 1, lanes=4, delta_threshold=0.0, delta_threshold_h=15.9)
    m = IntegerModel(cfg, random_weights(cfg, seed=0))
    x = np.zeros((2, 8), np.int64)
    x[0] = 100
    x[1] = x[0]
    x[1, 5] = 101
    m.run_raw(x)
    assert [int(p["macs"][0]) for p in m.stats.per_step] == [8 * 8, 8 * 1]
    assert [int(p["block_cols_skipped"][0]) for p in m.stats.per_step] == [8, 7 + 8]


def test_normal_mode_counts_dense_work_and_stats_clear():
    for cell, kw in CELL_VARIANTS:
        cfg = make(cell, 2, 4, **kw)
        m = IntegerModel(cfg, random_weights(cfg, seed=0))
        m.run(walk(cfg, n=2, t=3))
        dense = sum(r * c for layer in range(cfg.num_layers) for _, r, c in cfg.matrices(layer))
        assert m.stats.macs == m.stats.dense_macs == 6 * dense and m.stats.cols_skipped == 0
        assert m.stats.dense_macs_per_step == dense
        m.reset()
        assert m.stats.steps == 6  # counters survive a reset ...
        m.stats.clear()
        assert m.stats.steps == 0 and m.stats.per_step == [] and m.stats.macs == 0


def test_work_stats_alone():
    cfg = make("lstm", 1, 4)
    s = WorkStats(cfg)
    s.begin_step(2)
    s.record(0, "W", np.array([[0, 0, 0, 0, 1, 0, 0, 0], [0] * 8]), 2)
    np.testing.assert_array_equal(s.per_step[0]["macs"], [32 * 4, 0])
    np.testing.assert_array_equal(s.per_step[0]["block_cols_skipped"], [1, 2])


# ============================================================================
# D. reset, streaming, set_state
# ============================================================================


@pytest.mark.parametrize("cell,kw", CELL_VARIANTS, ids=CELL_VARIANT_IDS)
def test_reset_clears_references_and_streaming_continues_them(cell, kw):
    cfg = make(cell, 2, 4, delta_threshold=0.05, delta_threshold_h=0.02, **kw)
    w = random_weights(cfg, seed=6)
    x = walk(cfg, n=2, t=16)
    whole = IntegerModel(cfg, w).run(x)
    m = IntegerModel(cfg, w)
    np.testing.assert_array_equal(np.concatenate([m.run(x[:, :7]), m.run(x[:, 7:])], axis=1), whole)
    assert any(np.any(v != 0) for k, v in m.state[0].items() if k.startswith("ref_"))
    m.reset()
    np.testing.assert_array_equal(m.run(x), whole)  # from zero references and memories
    m.set_state(h=np.zeros((cfg.num_layers, cfg.hidden_size)), batch=2)
    for layer in m.state:
        assert all(not np.any(v) for k, v in layer.items() if k.startswith(("ref_", "acc_")))
    np.testing.assert_array_equal(m.run(x), whole)


def test_initial_state_propagates_as_a_change_from_zero():
    cfg = make("gru", 1, 4, delta_threshold=0.05)
    w = random_weights(cfg, seed=6)
    h0 = np.linspace(-0.5, 0.5, cfg.hidden_size)[None]
    m = IntegerModel(cfg, w)
    m.set_state(h=h0)
    m.run(walk(cfg, n=1, t=1)[0])
    np.testing.assert_array_equal(
        m.state[0]["ref_U"][0],
        np.where(np.abs(quantize(h0[0], cfg.q_state)) > cfg.delta_threshold_h_raw, quantize(h0[0], cfg.q_state), 0),
    )


# ============================================================================
# E. config
# ============================================================================


@pytest.mark.parametrize(
    "field, bad, rule",
    [
        ("delta_threshold", -0.1, "0 or more"),
        ("delta_threshold", float("nan"), "finite"),
        ("delta_threshold", float("inf"), "finite"),
        ("delta_threshold", 16.0, "span of q_state"),
        ("delta_threshold", "0.1", "number"),
        ("delta_threshold", None, "number"),
        ("delta_threshold", True, "number"),
        ("delta_threshold_h", -1, "0 or more"),
        ("delta_threshold_h", "x", "number"),
        ("delta_threshold_h", False, "number"),
        ("delta_threshold_h", 1e9, "span"),
    ],
)
def test_threshold_validation(field, bad, rule):
    with pytest.raises(ConfigError) as info:
        Config(**{field: bad})
    assert info.value.field == field and rule in info.value.rule and "\n" not in str(info.value)


def test_thresholds_in_toml_only_when_set():
    base = Config()
    assert "delta" not in base.to_toml()
    assert base.delta_threshold == 0.0 and base.delta_threshold_h is None and not base.delta_mode
    a = Config(delta_threshold=1)  # ints are numbers
    assert a.delta_threshold == 1.0 and isinstance(a.delta_threshold, float) and a.delta_mode
    assert "delta_threshold = 1.0" in a.to_toml() and "delta_threshold_h" not in a.to_toml()
    b = Config(delta_threshold_h=0.0)
    assert "delta_threshold_h = 0.0" in b.to_toml() and not b.delta_mode
    c = Config(delta_threshold_h=0.25)
    assert c.delta_mode and c.delta_threshold_hidden == 0.25 and c.delta_threshold_raw == 0
    for cfg in (a, b, c, Config(delta_threshold=0.01, delta_threshold_h=0.02, circulant_mode="fft")):
        again = Config.from_toml(cfg.to_toml())
        assert again == cfg and again.hash == cfg.hash
    assert len({base.hash, a.hash, b.hash, c.hash}) == 4


# ============================================================================
# F. the training forward
# ============================================================================


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("cell,kw", CELL_VARIANTS, ids=CELL_VARIANT_IDS)
def test_train_forward_exact_mode_equals_golden_delta(cell, kw, layers, k):
    cfg = make(cell, layers, k, delta_threshold=0.04, delta_threshold_h=0.02, **kw)
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=5, scale=3.0)
    assert mod.delta
    x = walk(cfg, n=3, t=10, scale=3.0)
    y, state = mod(x)
    gold = IntegerModel(cfg, mod.to_weights())
    np.testing.assert_array_equal(y.detach().numpy(), gold.run_float(x))
    assert gold.stats.skip_fraction > 0.05
    for a, b in zip(state, gold.state):  # the references agree too
        for key in a:
            if key.startswith("ref_"):
                np.testing.assert_array_equal(torch.round(a[key].detach() * 2.0**cfg.q_state.frac).numpy(), b[key])
    # continuing from the returned state streams like the golden model
    y2, _ = mod(x, state)
    np.testing.assert_array_equal(y2.detach().numpy(), gold.run_float(x))


@pytest.mark.parametrize(
    "cfg_kw",
    [
        dict(cell="lstm", datapath="serial", lanes=2, pe_cols=1),
        dict(cell="gru", circulant_mode="fft", q_spectrum=QFormat(8, 5)),
    ],
    ids=["serial", "fft"],
)
def test_train_forward_exact_delta_serial_and_fft(cfg_kw):
    cfg_kw = dict(cfg_kw)
    cfg = make(cfg_kw.pop("cell"), 2, 4, delta_threshold=0.03, **cfg_kw)
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=8, scale=2.0)
    x = walk(cfg, n=2, t=10, scale=2.0)
    np.testing.assert_array_equal(mod(x)[0].detach().numpy(), IntegerModel(cfg, mod.to_weights()).run_float(x))


@pytest.mark.parametrize("cell,kw", CELL_VARIANTS, ids=CELL_VARIANT_IDS)
def test_train_float_forward_equals_float_model_in_delta_mode(cell, kw):
    cfg = make(cell, 2, 4, delta_threshold=0.05, delta_threshold_h=0.02, **kw)
    mod = CirculantRNN(cfg).reset_parameters(seed=3)
    x = walk(cfg, n=2, t=10)
    fm = FloatModel(cfg, mod.to_weights())
    np.testing.assert_allclose(mod(x)[0].detach().numpy(), fm.run(x), atol=1e-12)
    assert fm.stats.skip_fraction > 0
    off = CirculantRNN(cfg, delta=False).reset_parameters(seed=3)
    np.testing.assert_allclose(
        off(x)[0].detach().numpy(), FloatModel(cfg, mod.to_weights(), delta=False).run(x), atol=1e-12
    )


@pytest.mark.parametrize("quant", [False, True])
def test_delta_gradients_reach_every_parameter(quant):
    cfg = make("gru", 2, 4, delta_threshold=0.05)
    mod = CirculantRNN(cfg, fake_quant=quant, table_activations=quant).reset_parameters(seed=1)
    x = torch.tensor(walk(cfg, n=2, t=8), requires_grad=True)
    y, _ = mod(x)
    y.square().sum().backward()
    for name, p in mod.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), name
    assert torch.any(x.grad != 0)


# ============================================================================
# G. the benchmark script
# ============================================================================


def test_bench_delta_script_runs(tmp_path, capsys):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_delta.py"
    spec = importlib.util.spec_from_file_location("bench_delta", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "d.json"
    assert mod.main(["--sequences", "2", "--steps", "20", "--thresholds", "0", "0.1", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "skip blk" in text and "not cycles" in text
    res = json.loads(out.read_text())["results"]
    for rows in res.values():
        assert rows[0]["max_err"] == 0 and rows[1]["skip_cols"] > rows[0]["skip_cols"]
        assert rows[0]["dense_macs_per_step"] == 3072
