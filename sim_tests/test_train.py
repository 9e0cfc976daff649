"""rnnaccel.models.train: the PyTorch circulant module against the golden models, and retraining after projection.

A. Float forward (no quantization, true sigmoid/tanh) equals FloatModel for
   every cell and variant, 1-2 layers, k in {1, 4}.
B. fake_quant + table_activations equals IntegerModel.run_float bit for bit
   (every cell, saturating inputs and weights included; the serial
   datapath's fused projections too; the FFT circulant mode, issue 16, too);
   the torch table lookup equals rnnaccel.numeric.lut.lookup on every raw
   input of small formats.
C. Gradients reach every defining vector and bias (float and quantized modes).
D. Weights round trips (from_weights/to_weights, export, init_from_dense with
   k = 1 reproduces PyTorch's nn.LSTM/GRU/RNN).
E. A seeded toy task: dense nn.LSTM -> projection to k = 8 (accuracy drops)
   -> fine-tuning the circulant module recovers it; the exported model then
   runs in the integer golden model.

Lines starting with ``REPORT`` (visible with ``-s``) give the measured numbers.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import torch  # the models extra is part of the test set-up: missing it is a failure

from rnnaccel.numeric import lut  # noqa: E402
from rnnaccel.numeric.config import Config, preset  # noqa: E402
from rnnaccel.numeric.fixedpoint import QFormat, quantize, to_float  # noqa: E402
from rnnaccel.numeric.golden import FloatModel, IntegerModel  # noqa: E402
from rnnaccel.numeric.model import load_model, random_weights  # noqa: E402
from rnnaccel.models.train import CirculantRNN, dense_to_weights, expand, fake_quantize, init_from_dense, lookup  # noqa: E402
from shared import CELL_VARIANT_IDS, CELL_VARIANTS, report  # noqa: E402

TINY = preset("tiny")

VARIANTS, VARIANT_IDS = CELL_VARIANTS, CELL_VARIANT_IDS


def make_cfg(cell, layers, k, **kw):
    base = dict(cell=cell, num_layers=layers, block_size=k, lanes=k if k > 1 else 4, input_size=8, hidden_size=8)
    base.update(kw)
    return TINY.replace(**base)


def inputs(cfg, n=3, t=6, scale=1.5, seed=1):
    return np.random.default_rng(seed).normal(size=(n, t, cfg.input_size)) * scale


# ============================================================================
# A. float forward == FloatModel
# ============================================================================


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("cell,kw", VARIANTS, ids=VARIANT_IDS)
def test_float_forward_matches_float_model(cell, kw, layers, k):
    cfg = make_cfg(cell, layers, k, **kw)
    mod = CirculantRNN(cfg).reset_parameters(seed=3, scale=1.5)
    x = inputs(cfg)
    y, state = mod(x)
    want = FloatModel(cfg, mod.to_weights()).run(x)
    assert y.shape == (3, 6, cfg.hidden_size)
    np.testing.assert_allclose(y.detach().numpy(), want, atol=1e-5, rtol=0)
    # the final state continues the sequence like the golden model's carried state
    x2 = inputs(cfg, seed=2)
    y2, _ = mod(x2, state)
    gm = FloatModel(cfg, mod.to_weights())
    gm.run(x)
    np.testing.assert_allclose(y2.detach().numpy(), gm.run(x2), atol=1e-5, rtol=0)


def test_expand_matches_circulant_expand():
    from rnnaccel.numeric.circulant import expand as np_expand

    v = np.random.default_rng(0).normal(size=(3, 2, 5))
    got = expand(torch.from_numpy(v), 6, 10).numpy()
    np.testing.assert_array_equal(got, np_expand(v)[:6, :10])


# ============================================================================
# B. the hardware's arithmetic
# ============================================================================

SMALL_TABLE_CFGS = [
    TINY.replace(q_pre=QFormat(10, 6), q_cell=QFormat(10, 6), q_act=QFormat(10, 8), table_entries=64),
    TINY.replace(
        q_pre=QFormat(10, 6), q_cell=QFormat(10, 6), q_act=QFormat(10, 8), table_entries=64, interpolate=False
    ),
    TINY.replace(
        q_pre=QFormat(12, 8),
        q_cell=QFormat(12, 8),
        q_act=QFormat(9, 7),
        table_entries=32,
        sigmoid_range=4.0,
        tanh_range=2.0,
    ),
    TINY.replace(q_pre=QFormat(9, 5), q_cell=QFormat(9, 5), table_entries=64),  # shift 0 for sigmoid
]


@pytest.mark.parametrize("fn", ["sigmoid", "tanh"])
@pytest.mark.parametrize("ci", range(len(SMALL_TABLE_CFGS)))
def test_torch_lookup_equals_lut_lookup_exhaustively(ci, fn):
    cfg = SMALL_TABLE_CFGS[ci]
    q = cfg.q_pre
    raw = np.arange(q.min_raw, q.max_raw + 1, dtype=np.int64)
    want = lut.lookup(cfg, fn, raw, q.frac)
    got = lookup(cfg, fn, torch.from_numpy(raw), q.frac).numpy()
    np.testing.assert_array_equal(got, want)


def test_fake_quantize_is_the_one_rule():
    q = QFormat(6, 3)
    x = np.concatenate([np.arange(-6, 6, 1 / 16), [-4.0625, -4.0626, 3.9375, 3.93749]])
    got = fake_quantize(torch.from_numpy(x), q).numpy()
    np.testing.assert_array_equal(got, to_float(quantize(x, q), q))
    # straight through inside the range, no gradient where it saturates
    t = torch.tensor([0.3, 10.0, -10.0], dtype=torch.float64, requires_grad=True)
    fake_quantize(t, q).sum().backward()
    np.testing.assert_array_equal(t.grad.numpy(), [1.0, 0.0, 0.0])


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [1, 4])
@pytest.mark.parametrize("cell,kw", VARIANTS, ids=VARIANT_IDS)
def test_quantized_forward_is_bit_exact_with_integer_model(cell, kw, layers, k):
    cfg = make_cfg(cell, layers, k, **kw)
    # large weights and inputs: projections, pre-activations, states and inputs saturate
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=5, scale=3.0)
    x = inputs(cfg, n=4, t=8, scale=4.0, seed=7)
    y, _ = mod(x)
    want = IntegerModel(cfg, mod.to_weights()).run_float(x)
    np.testing.assert_array_equal(y.detach().numpy(), want)


@pytest.mark.parametrize("ci", range(len(SMALL_TABLE_CFGS)))
@pytest.mark.parametrize("cell", ["lstm", "gru", "sru"])
def test_quantized_forward_bit_exact_other_formats_and_tables(cell, ci):
    base = SMALL_TABLE_CFGS[ci]
    cfg = base.replace(cell=cell, q_state=QFormat(10, 6), q_weight=QFormat(6, 5), num_layers=2)
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=ci, scale=2.0)
    x = inputs(cfg, n=3, t=6, scale=3.0, seed=ci)
    np.testing.assert_array_equal(mod(x)[0].detach().numpy(), IntegerModel(cfg, mod.to_weights()).run_float(x))


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_serial_datapath_fused_projection_bit_exact(cell):
    """datapath = 'serial': W x + U h + (b + c) accumulated together and narrowed once, as the golden model."""
    cfg = make_cfg(cell, 2, 4, datapath="serial", lanes=2, pe_cols=1)
    assert cfg.fused_projections
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=6, scale=3.0)
    x = inputs(cfg, n=4, t=8, scale=4.0, seed=3)
    y = mod(x)[0].detach().numpy()
    np.testing.assert_array_equal(y, IntegerModel(cfg, mod.to_weights()).run_float(x))
    # ... and differs from narrowing the two projections separately (the array datapath) somewhere
    arr = CirculantRNN(cfg.replace(datapath="array", lanes=4), fake_quant=True, table_activations=True)
    arr.load_weights(mod.to_weights())
    assert not np.array_equal(arr(x)[0].detach().numpy(), y)
    mf = CirculantRNN(cfg).reset_parameters(seed=6)
    np.testing.assert_allclose(mf(x)[0].detach().numpy(), FloatModel(cfg, mf.to_weights()).run(x), atol=1e-12)


def test_quantized_parameters_rounded_like_the_export():
    """float64 parameters are rounded to float32 (what weights.npz stores) before quantizing."""
    cfg = make_cfg("lstm", 1, 4)
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=2)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            # just below a rounding tie of q_weight / q_pre in float64, exactly on it in float32
            s = 2.0 ** (cfg.q_weight.frac if name.endswith((".W", ".U")) else cfg.q_pre.frac)
            p.copy_(torch.floor(p * s) / s + 0.5 / s - 1e-12)
    assert any(not torch.equal(a.float().double(), a) for a in mod.parameters())
    x = inputs(cfg)
    np.testing.assert_array_equal(mod(x)[0].detach().numpy(), IntegerModel(cfg, mod.to_weights()).run_float(x))


# ---------------------------------------------------------------------------- FFT mode (issue 16)

FFT_KW = dict(circulant_mode="fft", q_spectrum=QFormat(8, 5))


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("k", [4, 8])
@pytest.mark.parametrize("cell,kw", VARIANTS, ids=VARIANT_IDS)
def test_fft_mode_forward_is_bit_exact_with_integer_model(cell, kw, layers, k):
    """circulant_mode = 'fft': the hardware-exact forward is the golden model's FFT arithmetic bit for bit
    (large weights and inputs: spectra, input spectra, projections and states saturate)."""
    cfg = make_cfg(cell, layers, k, **{**kw, **FFT_KW})
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=5, scale=3.0)
    x = inputs(cfg, n=4, t=8, scale=4.0, seed=7)
    y, state = mod(x)
    want = IntegerModel(cfg, mod.to_weights()).run_float(x)
    np.testing.assert_array_equal(y.detach().numpy(), want)
    # ... and differs from the direct mode's arithmetic somewhere
    direct = CirculantRNN(cfg.replace(circulant_mode="direct"), fake_quant=True, table_activations=True)
    assert not np.array_equal(direct.load_weights(mod.to_weights())(x)[0].detach().numpy(), want)
    # the carried state continues like the golden model's
    x2 = inputs(cfg, n=4, t=3, scale=4.0, seed=8)
    gm = IntegerModel(cfg, mod.to_weights())
    gm.run(x)
    np.testing.assert_array_equal(mod(x2, state)[0].detach().numpy(), gm.run_float(x2))


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_fft_mode_serial_fused_bit_exact(cell):
    """FFT mode on the serial datapath: [W | U] over [x; h] in one spectral accumulation, one inverse per row block."""
    cfg = make_cfg(cell, 2, 16, datapath="serial", lanes=4, pe_cols=1, input_size=20, hidden_size=24, **FFT_KW)
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=6, scale=2.0)
    x = inputs(cfg, n=3, t=6, scale=3.0, seed=3)
    np.testing.assert_array_equal(mod(x)[0].detach().numpy(), IntegerModel(cfg, mod.to_weights()).run_float(x))


def test_fft_mode_spectra_rounded_like_the_export():
    """The spectra training sees are the ones quantize_weights stores for the exported float32 weights."""
    from rnnaccel.models.train import spectrum_ste
    from rnnaccel.numeric.model import quantize_weights

    cfg = make_cfg("gru", 1, 8, **FFT_KW)
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=4)
    with torch.no_grad():
        for p in mod.parameters():
            p.add_(1e-12)  # float64 values the float32 export rounds away
    stored = quantize_weights(cfg, mod.to_weights())
    for key in ("W", "U"):
        p = getattr(mod.layers[0], key)
        raw, vectors = spectrum_ste(p.to(torch.float32).to(torch.float64), cfg.q_spectrum)
        np.testing.assert_array_equal(raw, stored[f"layer0.{key}"])
        # the stand-in vectors are the ones whose DFT is the stored spectrum
        from rnnaccel.numeric import fft

        np.testing.assert_allclose(vectors.detach().numpy(), fft.spectra_vectors(raw * cfg.q_spectrum.lsb), atol=1e-12)
    x = inputs(cfg)
    np.testing.assert_array_equal(mod(x)[0].detach().numpy(), IntegerModel(cfg, mod.to_weights()).run_float(x))


@pytest.mark.parametrize(
    "cell,kw", [VARIANTS[0], VARIANTS[2], VARIANTS[4]], ids=[VARIANT_IDS[0], VARIANT_IDS[2], VARIANT_IDS[4]]
)
def test_fft_mode_gradients_reach_every_parameter(cell, kw):
    cfg = make_cfg(cell, 2, 4, **{**kw, **FFT_KW})
    mod = CirculantRNN(cfg, fake_quant=True, table_activations=True).reset_parameters(seed=3)
    y, _ = mod(inputs(cfg))
    (y**2).sum().backward()
    for name, p in mod.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_fft_mode_float_forward_is_the_float_model():
    """Without fake_quant the FFT mode trains the same float product (exact arithmetic has no mode)."""
    cfg = make_cfg("lstm", 1, 4, **FFT_KW)
    mod = CirculantRNN(cfg).reset_parameters(seed=3)
    x = inputs(cfg)
    np.testing.assert_allclose(mod(x)[0].detach().numpy(), FloatModel(cfg, mod.to_weights()).run(x), atol=1e-12)


def test_table_activations_without_fake_quant_reads_the_tables():
    cfg = make_cfg("rnn", 1, 4)
    mod = CirculantRNN(cfg, table_activations=True).reset_parameters(seed=1)
    x = inputs(cfg, n=1, t=1)
    y = mod(x)[0].detach().numpy()[0, 0]
    m = FloatModel(cfg, mod.to_weights()).mats[0]
    pre = m.W[0] @ x[0, 0] + m.b[0] + m.c[0]
    want = lut.lookup(cfg, "tanh", quantize(pre, cfg.q_pre), cfg.q_pre.frac) * cfg.q_act.lsb
    np.testing.assert_array_equal(y, want)


# ============================================================================
# C. gradients
# ============================================================================


@pytest.mark.parametrize("quant", [False, True], ids=["float", "fakequant-tables"])
@pytest.mark.parametrize("cell,kw", VARIANTS, ids=VARIANT_IDS)
def test_gradients_reach_every_parameter(cell, kw, quant):
    cfg = make_cfg(cell, 2, 4, **kw)
    mod = CirculantRNN(cfg, fake_quant=quant, table_activations=quant).reset_parameters(seed=4, scale=0.5)
    x = inputs(cfg, n=4, t=5, scale=0.5)
    y, _ = mod(x)
    (y**2).sum().backward()
    for name, p in mod.named_parameters():
        assert p.grad is not None, name
        assert torch.all(torch.isfinite(p.grad)), name
        assert p.grad.abs().sum() > 0, name
        if name.endswith((".W", ".U")):
            # every defining vector of every gate and block gets a gradient
            assert (p.grad.abs().sum(-1) > 0).float().mean() > 0.9, name


def test_table_activation_gradient_is_the_true_derivative():
    from rnnaccel.models.train import table_activation

    cfg = TINY
    x = torch.linspace(-6, 6, 101, dtype=torch.float64, requires_grad=True)
    table_activation(cfg, "sigmoid", x, cfg.q_pre).sum().backward()
    s = torch.sigmoid(x.detach())
    np.testing.assert_allclose(x.grad.numpy(), (s * (1 - s)).numpy(), rtol=1e-12)


# ============================================================================
# D. weights in and out
# ============================================================================


def test_weights_round_trip_and_export(tmp_path):
    cfg = make_cfg("gru", 2, 4, gru_reset_after=False)
    w = random_weights(cfg, seed=9)
    mod = CirculantRNN.from_weights(cfg, w)
    back = mod.to_weights()
    assert set(back) == set(w)
    for key in w:
        assert back[key].dtype == np.float32
        np.testing.assert_array_equal(back[key], w[key])
    mod.export(tmp_path / "m")
    cfg2, w2 = load_model(tmp_path / "m")
    assert cfg2 == cfg
    for key in w:
        np.testing.assert_array_equal(w2[key], w[key])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_init_from_dense_k1_reproduces_pytorch(cell):
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell]
    torch.manual_seed(0)
    ref = cls(6, 10, num_layers=2, batch_first=True).double()

    def param(name, i):
        return getattr(ref, f"{name}_l{i}").detach().numpy()

    layers = [
        {"W": param("weight_ih", i), "b": param("bias_ih", i), "U": param("weight_hh", i), "c": param("bias_hh", i)}
        for i in range(2)
    ]
    cfg = Config(cell=cell, input_size=6, hidden_size=10, num_layers=2, block_size=1, lanes=4)
    mod = init_from_dense(cfg, layers)
    x = torch.from_numpy(inputs(cfg, n=2, t=5))
    want, _ = ref(x)
    got, state = mod(x)
    # float32 storage of the weights (as weights.npz) limits the agreement
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), atol=1e-6)


def test_init_from_dense_projects_each_gate():
    from rnnaccel.numeric.circulant import project

    cfg = make_cfg("qrnn", 1, 4, qrnn_window=2, hidden_size=10)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3 * 10, 16))
    w = dense_to_weights(cfg, [(W, None)])
    assert w["layer0.W"].shape == (3, 3, 4, 4)
    np.testing.assert_allclose(w["layer0.W"][1], project(W[10:20], 4), rtol=1e-6)
    np.testing.assert_array_equal(w["layer0.b"], 0)
    with pytest.raises(ValueError, match="shape"):
        dense_to_weights(cfg, [(W[:, :8], None)])


# ============================================================================
# E. retraining recovers accuracy after projection
# ============================================================================

I, H, T, NC = 8, 32, 24, 3
FREQS = np.array([0.05, 0.12, 0.2])


def _toy(n, rng):
    """3-class frequency task: 8 noisy channels of one sinusoid (random phase and amplitude per channel)."""
    y = rng.integers(0, NC, n)
    t = np.arange(T)
    ph = rng.uniform(0, 2 * np.pi, (n, 1, I))
    amp = rng.uniform(0.5, 1.5, (n, 1, I))
    x = amp * np.sin(2 * np.pi * FREQS[y][:, None, None] * t[None, :, None] + ph) + 0.3 * rng.normal(size=(n, T, I))
    return torch.from_numpy(x), torch.from_numpy(y)


def _train(run, params, head, x, y, epochs, lr=1e-2, batch=64):
    opt = torch.optim.Adam(list(params) + list(head.parameters()), lr=lr)
    for _ in range(epochs):
        perm = torch.randperm(x.shape[0])
        for b in range(0, x.shape[0], batch):
            idx = perm[b : b + batch]
            loss = torch.nn.functional.cross_entropy(head(run(x[idx])[:, -1]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def _accuracy(run, head, x, y) -> float:
    with torch.no_grad():
        return float((head(torch.as_tensor(run(x))[:, -1]).argmax(1) == y).double().mean()) * 100


def test_retraining_recovers_accuracy_after_projection(tmp_path):
    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        rng = np.random.default_rng(0)
        xtr, ytr = _toy(1024, rng)
        xte, yte = _toy(512, rng)

        dense = torch.nn.LSTM(I, H, batch_first=True).double()
        head = torch.nn.Linear(H, NC).double()
        _train(lambda x: dense(x)[0], dense.parameters(), head, xtr, ytr, epochs=15)
        acc_dense = _accuracy(lambda x: dense(x)[0], head, xte, yte)

        layers = [
            {
                "W": dense.weight_ih_l0.detach().numpy(),
                "b": dense.bias_ih_l0.detach().numpy(),
                "U": dense.weight_hh_l0.detach().numpy(),
                "c": dense.bias_hh_l0.detach().numpy(),
            }
        ]
        cfg = Config(cell="lstm", input_size=I, hidden_size=H, block_size=8, lanes=8, pe_rows=1, pe_cols=2)
        circ = init_from_dense(cfg, layers)
        acc_proj = _accuracy(lambda x: circ(x)[0], head, xte, yte)

        _train(lambda x: circ(x)[0], circ.parameters(), head, xtr, ytr, epochs=5)
        acc_retrained = _accuracy(lambda x: circ(x)[0], head, xte, yte)

        # the exported model on the accelerator's arithmetic (golden integer model)
        circ.export(tmp_path / "toy")
        cfg2, w2 = load_model(tmp_path / "toy")
        acc_int = _accuracy(lambda x: IntegerModel(cfg2, w2).run_float(x.numpy()), head, xte, yte)
        quant = CirculantRNN.from_weights(cfg2, w2, fake_quant=True, table_activations=True)
        acc_fq = _accuracy(lambda x: quant(x)[0], head, xte, yte)
    finally:
        torch.set_num_threads(threads)
    elapsed = time.time() - t0
    report(
        f"toy 3-class frequency task, LSTM {I}->{H}, T={T}: dense {acc_dense:.1f}% | projected k=8 "
        f"{acc_proj:.1f}% | retrained k=8 {acc_retrained:.1f}% | integer golden {acc_int:.1f}% "
        f"(fake-quant module {acc_fq:.1f}%) | weights {cfg.weight_words()} vs {cfg.dense_weight_words()} words "
        f"| {elapsed:.1f} s"
    )
    assert acc_dense >= 90
    assert acc_proj <= acc_dense - 20
    assert acc_retrained >= acc_dense - 5
    assert acc_retrained >= acc_proj + 20
    assert acc_fq == acc_int  # the fake-quant module is the integer model
    assert acc_int >= acc_retrained - 5


def test_fft_mode_retraining_with_the_exact_forward(tmp_path):
    """FFT mode (issue 16): projected to k = 8 and quantized (8-bit spectra), the model is retrained through
    the hardware-exact FFT forward; it recovers the dense accuracy and the exported model gives the same
    accuracy in the integer golden model (its FFT arithmetic is what training ran)."""
    from rnnaccel.models.quantize import choose_formats

    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(1)
        rng = np.random.default_rng(1)
        xtr, ytr = _toy(1024, rng)
        xte, yte = _toy(512, rng)
        dense = torch.nn.LSTM(I, H, batch_first=True).double()
        head = torch.nn.Linear(H, NC).double()
        _train(lambda x: dense(x)[0], dense.parameters(), head, xtr, ytr, epochs=15)
        acc_dense = _accuracy(lambda x: dense(x)[0], head, xte, yte)
        layers = [
            {
                "W": dense.weight_ih_l0.detach().numpy(),
                "b": dense.bias_ih_l0.detach().numpy(),
                "U": dense.weight_hh_l0.detach().numpy(),
                "c": dense.bias_hh_l0.detach().numpy(),
            }
        ]
        base = Config(
            cell="lstm", input_size=I, hidden_size=H, block_size=8, lanes=8, pe_rows=1, pe_cols=2, circulant_mode="fft"
        )
        w = dense_to_weights(base, layers)
        cfg, _ = choose_formats(base, w, xtr[:128].numpy())
        assert cfg.fft_mode and cfg.q_spectrum.width == 8
        acc_proj = _accuracy(lambda x: IntegerModel(cfg, w).run_float(x.numpy()), head, xte, yte)
        exact = CirculantRNN.from_weights(cfg, w, fake_quant=True, table_activations=True)
        _train(lambda x: exact(x)[0], exact.parameters(), head, xtr, ytr, epochs=6)
        acc_fq = _accuracy(lambda x: exact(x)[0], head, xte, yte)
        exact.export(tmp_path / "fft")
        cfg2, w2 = load_model(tmp_path / "fft")
        assert cfg2 == cfg
        acc_int = _accuracy(lambda x: IntegerModel(cfg2, w2).run_float(x.numpy()), head, xte, yte)
    finally:
        torch.set_num_threads(threads)
    report(
        f"toy task, FFT mode k=8 ({cfg.q_spectrum} spectra): dense {acc_dense:.1f}% | projected, integer FFT "
        f"{acc_proj:.1f}% | retrained through the exact FFT forward {acc_fq:.1f}% | exported, integer golden "
        f"{acc_int:.1f}% | {time.time() - t0:.1f} s"
    )
    assert acc_fq == acc_int
    assert acc_int >= acc_dense - 5
    assert acc_int >= acc_proj + 10
