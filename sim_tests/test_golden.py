"""The golden model against PyTorch, independent NumPy references, itself, and its error bound.

A. FloatModel vs ``torch.nn.LSTM/GRU/RNN`` (float64) and vs direct NumPy
   implementations of SRU, QRNN and reset-before GRU.
B. Statefulness and input checking of IntegerModel and FloatModel.
C. The one-step bound of :mod:`rnnaccel.numeric.bounds` (teacher forcing), and the
   free-running integer-vs-float error (measured, not asserted).

Lines starting with ``REPORT`` (visible with ``-s``) give the measured numbers.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from rnnaccel.numeric.bounds import float_step_bound, lut_error
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import QFormat, quantize, to_float
from rnnaccel.numeric.golden import FloatModel, InputError, IntegerModel
from rnnaccel.numeric.model import dense_matrices, random_weights

import torch  # the models extra is part of the test set-up: missing it is a failure
from shared import report

TINY = preset("tiny")


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def make_cfg(cell, layers=1, k=4, inp=8, hid=8, **kw):
    return TINY.replace(cell=cell, num_layers=layers, block_size=k, lanes=k, input_size=inp, hidden_size=hid, **kw)


# ============================================================================
# A. Float model vs PyTorch and vs independent NumPy references
# ============================================================================

SHAPES = [(1, 5, 7), (4, 8, 8), (4, 6, 10)]  # (k, input, hidden)


def torch_module(cfg, w):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cfg.cell]
    kw = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
    mod = cls(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, batch_first=True, **kw).double()
    mats = dense_matrices(cfg, {k: np.asarray(v, np.float64) for k, v in w.items()})
    h = cfg.hidden_size
    with torch.no_grad():
        for layer, m in enumerate(mats):
            g = m.W.shape[0]
            getattr(mod, f"weight_ih_l{layer}").copy_(torch.from_numpy(m.W.reshape(g * h, -1)))
            getattr(mod, f"bias_ih_l{layer}").copy_(torch.from_numpy(m.b.ravel()))
            getattr(mod, f"weight_hh_l{layer}").copy_(torch.from_numpy(m.U.reshape(g * h, h)))
            getattr(mod, f"bias_hh_l{layer}").copy_(torch.from_numpy(m.c.ravel()))
    return mod


@pytest.mark.parametrize("init", [False, True], ids=["zero", "h0"])
@pytest.mark.parametrize("k,inp,hid", SHAPES)
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_float_vs_torch(cell, layers, k, inp, hid, init):
    cfg = make_cfg(cell, layers, k, inp, hid, seed=layers * 100 + k * 10 + inp)
    w = random_weights(cfg, scale=1.5)
    rng = np.random.default_rng(cfg.seed + 1)
    n, t = 3, 11
    x = rng.normal(size=(n, t, inp))
    mod = torch_module(cfg, w)
    model = FloatModel(cfg, w)
    xt = torch.from_numpy(x)
    if init:
        h0 = rng.uniform(-0.9, 0.9, size=(layers, n, hid))
        c0 = rng.uniform(-2, 2, size=(layers, n, hid))
        if cell == "lstm":
            want, _ = mod(xt, (torch.from_numpy(h0), torch.from_numpy(c0)))
            model.set_state(h=h0, c=c0)
        else:
            want, _ = mod(xt, torch.from_numpy(h0))
            model.set_state(h=h0)
    else:
        want, _ = mod(xt)
    got = model.run(x)
    diff = float(np.max(np.abs(got - want.detach().numpy())))
    report(f"torch {cell} layers={layers} k={k} in={inp} hid={hid} init={init}: max diff {diff:.3g}")
    assert got.shape == (n, t, hid)
    assert diff <= 1e-5


def ref_numpy(cfg, w, x, h0=None, c0=None):
    """Direct float implementation of BRIEF section 3 (SRU, QRNN, GRU reset-before), loop over time."""
    mats = dense_matrices(cfg, {k: np.asarray(v, np.float64) for k, v in w.items()})
    n, t, _ = x.shape
    H = cfg.hidden_size
    seq = x
    for layer, m in enumerate(mats):
        h = np.zeros((n, H)) if h0 is None else h0[layer].copy()
        c = np.zeros((n, H)) if c0 is None else c0[layer].copy()
        outs = np.zeros((n, t, H))
        for s in range(t):
            xs = seq[:, s]
            if cfg.cell == "sru":
                W = m.W  # (G, H, C)
                xtil = xs @ W[0].T + m.b[0]
                f = _sig(xs @ W[1].T + m.b[1])
                r = _sig(xs @ W[2].T + m.b[2])
                c = f * c + (1 - f) * xtil
                highway = xs @ W[3].T + m.b[3] if W.shape[0] == 4 else xs
                h = r * np.tanh(c) + (1 - r) * highway
            elif cfg.cell == "qrnn":
                if cfg.qrnn_window == 2:
                    # before the first step, a layer's previous input is the initial h of the layer below
                    if s > 0:
                        prev = seq[:, s - 1]
                    elif layer > 0 and h0 is not None:
                        prev = np.broadcast_to(h0[layer - 1], xs.shape)
                    else:
                        prev = np.zeros_like(xs)
                    xw = np.concatenate([xs, prev], axis=1)
                else:
                    xw = xs
                z = np.tanh(xw @ m.W[0].T + m.b[0])
                f = _sig(xw @ m.W[1].T + m.b[1])
                o = _sig(xw @ m.W[2].T + m.b[2])
                c = f * c + (1 - f) * z
                h = o * c
            elif cfg.cell == "gru" and not cfg.gru_reset_after:
                r = _sig(xs @ m.W[0].T + m.b[0] + h @ m.U[0].T + m.c[0])
                z = _sig(xs @ m.W[1].T + m.b[1] + h @ m.U[1].T + m.c[1])
                nn = np.tanh(xs @ m.W[2].T + m.b[2] + (r * h) @ m.U[2].T + m.c[2])
                h = (1 - z) * nn + z * h
            else:
                raise AssertionError(cfg.cell)
            outs[:, s] = h
        seq = outs
    return seq


REF_CASES = [
    ("sru", {}, 8, 8),
    ("sru", {}, 6, 10),
    ("sru", {}, 5, 7),
    ("qrnn", {"qrnn_window": 1}, 6, 10),
    ("qrnn", {"qrnn_window": 2}, 8, 12),
    ("qrnn", {"qrnn_window": 2}, 8, 8),
    ("gru", {"gru_reset_after": False}, 6, 10),
    ("gru", {"gru_reset_after": False}, 8, 8),
]


@pytest.mark.parametrize("init", [False, True], ids=["zero", "h0"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("cell,extra,inp,hid", REF_CASES)
def test_float_vs_numpy_reference(cell, extra, inp, hid, k, layers, init):
    cfg = make_cfg(cell, layers, k, inp, hid, seed=7 + inp + k, **extra)
    if cell == "sru":
        assert (len(cfg.gates) == 4) == (inp != hid)
    w = random_weights(cfg, scale=1.5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 9, inp))
    model = FloatModel(cfg, w)
    h0 = c0 = None
    if init:
        h0 = rng.uniform(-0.9, 0.9, size=(layers, 2, hid))
        c0 = rng.uniform(-2, 2, size=(layers, 2, hid)) if cell != "gru" else None
        model.set_state(h=h0, c=c0)
        if cell == "sru" or (cell == "qrnn" and extra.get("qrnn_window") != 2):
            h0 = None  # h is not an input of the step for SRU and window-1 QRNN
    got = model.run(x)
    want = ref_numpy(cfg, w, x, h0, c0)
    diff = float(np.max(np.abs(got - want)))
    report(f"numpy-ref {cell} {extra} k={k} in={inp} hid={hid} layers={layers} init={init}: max diff {diff:.3g}")
    assert diff <= 1e-9


# ============================================================================
# B. Statefulness and input checking
# ============================================================================

STATE_CFGS = {
    "lstm": dict(cell="lstm"),
    "gru": dict(cell="gru"),
    "gru-before": dict(cell="gru", gru_reset_after=False),
    "sru": dict(cell="sru", input_size=6, hidden_size=10),
    "qrnn2": dict(cell="qrnn", qrnn_window=2),
    "rnn": dict(cell="rnn"),
    "lstm-fused": dict(cell="lstm", datapath="serial", pe_cols=1),
    "rnn-fused": dict(cell="rnn", datapath="serial", pe_cols=1),
}


def _state_model(kind, name):
    cfg = TINY.replace(num_layers=2, **STATE_CFGS[name])
    w = random_weights(cfg, seed=11)
    return cfg, w, (IntegerModel if kind == "int" else FloatModel)


def _same(a, b, kind):
    if kind == "int":
        assert a.dtype.kind == "i" and np.array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(STATE_CFGS))
@pytest.mark.parametrize("kind", ["int", "float"])
def test_streaming_reset_batch(kind, name):
    cfg, w, cls = _state_model(kind, name)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 12, cfg.input_size))
    whole = cls(cfg, w).run(x)
    # two chunks (stateful streaming)
    m = cls(cfg, w)
    chunks = np.concatenate([m.run(x[:, :5]), m.run(x[:, 5:])], axis=1)
    _same(chunks, whole, kind)
    # one step at a time
    m2 = cls(cfg, w)
    _same(np.concatenate([m2.run(x[:, s : s + 1]) for s in range(12)], axis=1), whole, kind)
    # reset, then run == fresh model
    m.reset()
    _same(m.run(x), whole, kind)
    # batch == each sequence alone, with 2-D input (T, in)
    for i in range(3):
        single = cls(cfg, w).run(x[i])
        assert single.shape == (12, cfg.hidden_size)
        _same(single, whole[i], kind)
    # carried state for 3 sequences refuses 2 without reset
    with pytest.raises(InputError):
        m.run(x[:2])


@pytest.mark.parametrize("name", ["lstm", "gru", "sru", "qrnn2", "rnn"])
@pytest.mark.parametrize("kind", ["int", "float"])
def test_initial_state(kind, name):
    cfg, w, cls = _state_model(kind, name)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(2, 8, cfg.input_size))
    L, H = cfg.num_layers, cfg.hidden_size
    h0 = rng.uniform(-0.9, 0.9, size=(L, 2, H))
    has_c = cfg.cell in ("lstm", "sru", "qrnn")
    c0 = rng.uniform(-1.5, 1.5, size=(L, 2, H)) if has_c else None
    m = cls(cfg, w)
    m.set_state(h=h0, c=c0)
    y = m.run(x)
    plain = cls(cfg, w).run(x)
    assert not np.array_equal(y, plain)
    # the state was honoured: it is what the model holds before running
    m.set_state(h=h0, c=c0)
    q_h = cfg.q_state if kind == "int" else None
    for layer in range(L):
        got_h = m.state[layer]["h"]
        if kind == "int":
            np.testing.assert_allclose(to_float(got_h, q_h), h0[layer], atol=cfg.q_state.lsb / 2)
        else:
            np.testing.assert_array_equal(got_h, h0[layer])
    # same result when split: first step from the state, then the rest
    first = m.run(x[:, :1])
    rest = m.run(x[:, 1:])
    _same(np.concatenate([first, rest], axis=1), y, kind)
    # a 2-D (layers, H) state applies to every sequence
    m.set_state(h=h0[:, 0], c=None if c0 is None else c0[:, 0])
    y2 = m.run(x)
    m1 = cls(cfg, w)
    m1.set_state(h=h0[:, :1], c=None if c0 is None else c0[:, :1])
    _same(y2[0], m1.run(x[0]), kind)
    if has_c:
        # c matters for cells that carry it
        m.set_state(h=h0, c=None)
        assert not np.array_equal(m.run(x), y)
    else:
        with pytest.raises(InputError):
            m.set_state(h=h0, c=h0)
    with pytest.raises(InputError):
        m.set_state(h=np.zeros((L + 1, 2, H)))


@pytest.mark.parametrize("kind", ["int", "float"])
def test_input_errors(kind):
    cfg, w, cls = _state_model(kind, "lstm")
    m = cls(cfg, w)
    with pytest.raises(InputError):
        m.run(np.zeros((4, cfg.input_size + 1)))
    with pytest.raises(InputError):
        m.run(np.zeros((2, 4, cfg.input_size - 1)))
    bad = np.zeros((2, 4, cfg.input_size))
    bad[1, 2, 3] = np.nan
    with pytest.raises(InputError):
        m.run(bad)
    bad[1, 2, 3] = np.inf
    with pytest.raises(InputError):
        m.run(bad)
    for shape in [(cfg.input_size,), (1, 2, 3, cfg.input_size), ()]:
        with pytest.raises(InputError):
            m.run(np.zeros(shape))
    with pytest.raises(InputError):
        m.run(np.array([["a"] * cfg.input_size]))
    # the model is still usable and fresh after the refusals
    x = np.random.default_rng(0).normal(size=(3, cfg.input_size))
    _same(m.run(x), cls(cfg, w).run(x), kind)


# ============================================================================
# C. One-step error bound (teacher forcing) and free-running error
# ============================================================================

VARIANTS = {
    "lstm": dict(cell="lstm"),
    "gru-after": dict(cell="gru", gru_reset_after=True),
    "gru-before": dict(cell="gru", gru_reset_after=False),
    "sru": dict(cell="sru"),
    "qrnn": dict(cell="qrnn"),
    "rnn": dict(cell="rnn"),
}

# numeric formats varied over the cases: (q_state, q_cell, q_pre, q_act, table_entries, interpolate)
FORMATS = [
    (QFormat(16, 12), QFormat(16, 11), QFormat(16, 11), QFormat(16, 14), 256, True),
    (QFormat(12, 8), QFormat(12, 7), QFormat(14, 9), QFormat(12, 10), 64, True),
    (QFormat(16, 12), QFormat(16, 11), QFormat(16, 11), QFormat(16, 14), 512, False),
    (QFormat(14, 11), QFormat(16, 11), QFormat(16, 10), QFormat(10, 8), 128, True),
]


def _dequant_state(cfg, st):
    out = {"h": to_float(st["h"], cfg.q_state)}
    if "c" in st:
        out["c"] = to_float(st["c"], cfg.q_cell)
    if "xprev" in st:
        out["xprev"] = to_float(st["xprev"], cfg.q_state)
    return out


def _bound_case(name, case):
    rng = np.random.default_rng(1000 * list(VARIANTS).index(name) + case)
    fmt = FORMATS[case % len(FORMATS)]
    k = int(rng.choice([1, 2, 4]))
    extra = dict(VARIANTS[name])
    if extra["cell"] == "qrnn":
        extra["qrnn_window"] = int(rng.choice([1, 2]))
    inp = int(rng.integers(1, 13))
    hid = int(rng.integers(1, 13))
    if extra["cell"] == "sru" and case % 2 == 0:
        inp = hid  # both SRU forms: highway x and highway projection
    lanes = k if k > 1 else int(rng.choice([1, 2, 4]))
    if extra.get("datapath") == "serial":  # fused projections: circulant blocks of 4 or 8, fewer lanes
        k = int(rng.choice([4, 8]))
        lanes = int(rng.choice([1, 2, 4]))
    if extra.get("qrnn_window") == 2:  # the config wants whole tiles of [x_t, x_t-1]
        inp, hid = lanes * int(rng.integers(1, 4)), lanes * int(rng.integers(1, 4))
    cfg = TINY.replace(
        num_layers=int(rng.integers(1, 4)),
        block_size=k,
        lanes=lanes,
        input_size=inp,
        hidden_size=hid,
        q_state=fmt[0],
        q_cell=fmt[1],
        q_pre=fmt[2],
        q_act=fmt[3],
        table_entries=fmt[4],
        interpolate=fmt[5],
        seed=case,
        **extra,
    )
    w = random_weights(cfg, seed=case, scale=float(rng.uniform(0.5, 2.0)))
    n, t = 3, 14
    x = rng.uniform(-2.0, 2.0, size=(n, t, inp))
    return cfg, w, x


@pytest.mark.parametrize("name", list(VARIANTS))
def test_step_error_bound(name):
    worst, checked = 0.0, 0
    tight = []
    for case in range(20):
        cfg, w, x = _bound_case(name, case)
        im = IntegerModel(cfg, w)
        fm = FloatModel(cfg, w, quantized_params=True)
        im.set_state(batch=x.shape[0])
        for s in range(x.shape[1]):
            before = copy.deepcopy(im.state)
            xq_t = quantize(x[:, s], cfg.q_state)
            im.run_raw(xq_t[:, None])
            for layer in range(cfg.num_layers):
                v_raw = xq_t if layer == 0 else im.state[layer - 1]["h"]
                v = to_float(v_raw, cfg.q_state)
                h_f, new_f, b = float_step_bound(fm, layer, v, _dequant_state(cfg, before[layer]))
                assert b.saturation_free(), (cfg, b.saturating())
                err_h = np.abs(to_float(im.state[layer]["h"], cfg.q_state) - h_f)
                assert np.all(err_h <= b.h), (name, case, s, layer, float(np.max(err_h / b.h)))
                ratio = err_h / b.h
                worst = max(worst, float(ratio.max()))
                tight.append(float(err_h.max() / b.h.max()))
                if b.c is not None:
                    err_c = np.abs(to_float(im.state[layer]["c"], cfg.q_cell) - new_f["c"])
                    assert np.all(err_c <= b.c), (name, case, s, layer)
                    worst = max(worst, float((err_c / b.c).max()))
                checked += err_h.size
    report(
        f"bound {name}: max elementwise err/bound {worst:.3f}; max over steps of max(err)/max(bound) "
        f"{max(tight):.3f} (median {np.median(tight):.3f}); {checked} elements checked"
    )
    assert checked > 0
    assert worst > 0.01, "bound absurdly loose (>100x)"


@pytest.mark.parametrize("fi", range(len(FORMATS)))
def test_lut_error_covers_every_input(fi):
    """lut_error bounds the table at every representable input (the tail and both ends too)."""
    from rnnaccel.numeric import lut

    q_state, q_cell, q_pre, q_act, entries, interp = FORMATS[fi]
    cfg = TINY.replace(
        q_state=q_state, q_cell=q_cell, q_pre=q_pre, q_act=q_act, table_entries=entries, interpolate=interp
    )
    for q_in in (q_pre, q_cell):
        raw = np.arange(q_in.min_raw, q_in.max_raw + 1, dtype=np.int64)
        for fn in ("sigmoid", "tanh"):
            got = lut.lookup(cfg, fn, raw, q_in.frac) * cfg.q_act.lsb
            err = np.abs(got - lut.float_fn(fn)(raw * q_in.lsb)).max()
            assert err <= lut_error(cfg, fn, q_in)
            assert lut_error(cfg, fn, q_in) <= 2 * err  # the tail term is not absurd


FREE_CFGS = {
    "tiny": dict(),
    "lstm-small": dict(input_size=32, hidden_size=32, pe_rows=2, pe_cols=2),
}


@pytest.mark.parametrize("size", list(FREE_CFGS))
@pytest.mark.parametrize("name", list(VARIANTS))
def test_free_running_error(name, size):
    cfg = TINY.replace(**{**FREE_CFGS[size], **VARIANTS[name]})
    w = random_weights(cfg, seed=3)
    x = np.random.default_rng(4).normal(size=(4, 50, cfg.input_size))
    yi = IntegerModel(cfg, w).run_float(x)
    yf = FloatModel(cfg, w, quantized_params=False).run(x)
    err = np.abs(yi - yf)
    report(
        f"free-running {name} {size}: max abs err {err.max():.3g} (mean {err.mean():.3g}, "
        f"step 1 {err[:, 0].max():.3g}, last 10 steps {err[:, -10:].max():.3g})"
    )
    assert np.all(np.isfinite(err))
