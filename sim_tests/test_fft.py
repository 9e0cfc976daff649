"""The FFT form of circulant blocks (issue 16): the fixed-point transforms, their bounds, the mode's config rules,
the golden model against float, and the counted multiplies.

A. Twiddles and packing: exact trivial twiddles, pinned words, packing round trips, weight spectra = numpy.
B. The transforms: the vectorized rfft/irfft equal a literal Python-int transcription of the documented
   stage rules (wide values too); rfft and irfft against numpy.fft within the derived bounds
   (:func:`rnnaccel.numeric.bounds.fft_forward_error`, ``fft_inverse_error``; hypothesis over k, formats
   and data); the round trip irfft(rfft(x)) ~ x within the bound; the spectral multiply-accumulate is
   exact.
C. Config: ``circulant_mode`` and ``q_spectrum`` rules, serialization that leaves direct configs' bytes
   alone, and the flow refusing to build the FFT mode (no gateware yet).
D. The golden model in FFT mode: one-step error bound (teacher forcing) against the float model with the
   stored parameters and with the float weights, every cell; measured free-running error.
E. Multiplies per step counted from the schedule (lstm512: >= 5x fewer in FFT mode).

Lines starting with ``REPORT`` (visible with ``-s``) give the measured numbers.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnaccel.numeric import fft
from rnnaccel.numeric.bounds import fft_forward_error, fft_inverse_error, float_step_bound
from rnnaccel.numeric.config import Config, ConfigError, PRESETS, preset
from rnnaccel.numeric.fixedpoint import QFormat, quantize, round_shift, saturate, to_float
from rnnaccel.numeric.golden import FloatModel, IntegerModel
from rnnaccel.numeric.model import quantize_weights, random_weights
from shared import report

TINY = preset("tiny")
SIZES = [4, 8, 16, 32, 64, 256]
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True, database=None)


# ============================================================================
# A. twiddles, packing, weight spectra
# ============================================================================


def test_twiddles_are_the_one_rule_and_trivial_ones_exact():
    for k in SIZES:
        cos, sin = fft.twiddles(k)
        m = np.arange(k // 2)
        np.testing.assert_array_equal(cos, quantize(np.cos(2 * np.pi * m / k), fft.TWIDDLE))
        np.testing.assert_array_equal(sin, quantize(np.sin(2 * np.pi * m / k), fft.TWIDDLE))
        assert (cos[0], sin[0]) == (1 << 14, 0) and (cos[k // 4], sin[k // 4]) == (0, 1 << 14)
        err = fft.twiddle_errors(k)
        assert err[0] == err[k // 4] == 0.0
        assert np.all(err <= fft.TWIDDLE.lsb / np.sqrt(2))
    # pinned words of k = 16 (W^1, W^2, W^3): a change of the table is a change of the specification
    cos, sin = fft.twiddles(16)
    assert cos[1:4].tolist() == [15137, 11585, 6270] and sin[1:4].tolist() == [6270, 11585, 15137]


def test_bit_reverse():
    assert fft.bit_reverse(8).tolist() == [0, 4, 2, 6, 1, 5, 3, 7]
    for k in SIZES:
        rev = fft.bit_reverse(k)
        assert sorted(rev.tolist()) == list(range(k)) and np.array_equal(rev[rev], np.arange(k))


def test_packing_round_trips():
    rng = np.random.default_rng(0)
    for k in SIZES:
        p = rng.integers(-1000, 1000, size=(3, k))
        re, im = fft.unpack(p)
        assert re.shape == (3, k)
        np.testing.assert_array_equal(re[:, 1:], re[:, :0:-1])  # Hermitian: X[k-m] = conj X[m]
        np.testing.assert_array_equal(im[:, 1:], -im[:, :0:-1])
        assert np.all(im[:, 0] == 0) and np.all(im[:, k // 2] == 0)
        np.testing.assert_array_equal(fft.pack(re, im), p)
        np.testing.assert_array_equal(fft.pack_half(*fft.unpack_half(p)), p)
    assert fft.pack_half(np.array([1, 2, 3]), np.array([0, 9, 0])).tolist() == [1, 3, 2, 9]


def test_weight_spectra_are_the_dft_and_invert():
    rng = np.random.default_rng(1)
    for k in SIZES:
        w = rng.normal(size=(2, 3, k))
        spec = np.fft.fft(w, axis=-1)
        re, im = fft.unpack(fft.weight_spectra(w))
        np.testing.assert_allclose(re + 1j * im, spec, atol=1e-12)
        np.testing.assert_allclose(fft.spectra_vectors(fft.weight_spectra(w)), w, atol=1e-12)
    with pytest.raises(ValueError, match="power of two"):
        fft.weight_spectra(np.zeros(6))


# ============================================================================
# B. the transforms
# ============================================================================


def ref_rfft_wide(x: list[int]) -> list[int]:
    """Literal transcription of the forward stage rule of rnnaccel.numeric.fft's docs, in Python ints."""
    k = len(x)
    L = k.bit_length() - 1
    cos, sin = (list(map(int, t)) for t in fft.twiddles(k))
    rev = fft.bit_reverse(k)
    re = [x[int(rev[i])] << L for i in range(k)]
    im = [0] * k
    h = 1
    while h < k:
        for g in range(0, k, 2 * h):
            for j in range(h):
                m = j * (k // (2 * h))
                c, d = cos[m], sin[m]
                a, b = g + j, g + j + h
                tr = c * re[b] + d * im[b]  # (c - i d)(br + i bi)
                ti = c * im[b] - d * re[b]
                ar, ai = re[a] << 14, im[a] << 14
                re[a], re[b] = (ar + tr + (1 << 14)) >> 15, (ar - tr + (1 << 14)) >> 15
                im[a], im[b] = (ai + ti + (1 << 14)) >> 15, (ai - ti + (1 << 14)) >> 15
        h *= 2
    out = [re[0], re[k // 2]]
    for m in range(1, k // 2):
        out += [re[m], im[m]]
    return out


def ref_irfft(p: list[int]) -> list[int]:
    """Literal transcription of the inverse stage rule, in Python ints."""
    k = len(p)
    re = [0] * k
    im = [0] * k
    re[0], re[k // 2] = p[0], p[1]
    for m in range(1, k // 2):
        re[m], im[m] = p[2 * m], p[2 * m + 1]
        re[k - m], im[k - m] = p[2 * m], -p[2 * m + 1]
    rev = fft.bit_reverse(k)
    re, im = [re[int(i)] for i in rev], [im[int(i)] for i in rev]
    cos, sin = (list(map(int, t)) for t in fft.twiddles(k))
    h = 1
    while h < k:
        for g in range(0, k, 2 * h):
            for j in range(h):
                m = j * (k // (2 * h))
                c, d = cos[m], sin[m]
                a, b = g + j, g + j + h
                ur = (c * re[b] - d * im[b] + (1 << 13)) >> 14  # (c + i d)(br + i bi), rounded half up
                ui = (c * im[b] + d * re[b] + (1 << 13)) >> 14
                re[a], re[b] = re[a] + ur, re[a] - ur
                im[a], im[b] = im[a] + ui, im[a] - ui
        h *= 2
    return re


@pytest.mark.parametrize("k", SIZES)
def test_transforms_equal_the_literal_stage_rules(k):
    rng = np.random.default_rng(k)
    q = QFormat(16, 12)
    x = rng.integers(q.min_raw, q.max_raw + 1, size=(4, k))
    x[0] = q.max_raw
    x[1] = q.min_raw
    got = fft.rfft_wide(x)
    for row in range(len(x)):
        assert got[row].tolist() == ref_rfft_wide([int(v) for v in x[row]])
    np.testing.assert_array_equal(fft.rfft(x, q), saturate(round_shift(got, fft.stages(k)), q))
    p = rng.integers(-(1 << 40), 1 << 40, size=(3, k))
    y = fft.irfft(p)
    for row in range(len(p)):
        assert y[row].tolist() == ref_irfft([int(v) for v in p[row]])


@pytest.mark.parametrize("k", [4, 16, 256])
def test_wide_values_are_exact_python_integers(k):
    """Values past int64 (fmt near 32 bits, many blocks) are computed in Python integers, exactly."""
    rng = np.random.default_rng(3)
    p = [int(v) << 50 for v in rng.integers(-(1 << 12), 1 << 12, size=k)]
    y = fft.irfft(np.array(p, dtype=object)[None])[0]
    assert [int(v) for v in y] == ref_irfft(p)
    S = rng.integers(-(1 << 31), 1 << 31, size=(2, 3, k))
    X = rng.integers(-(1 << 31), 1 << 31, size=(1, 3, k))
    got = fft.spectral_mac(S, X)
    assert got.dtype == object
    np.testing.assert_array_equal(got, ref_mac(S, X))


def ref_mac(S: np.ndarray, X: np.ndarray) -> np.ndarray:
    """sum_j S_j X_j bin by bin with Python ints: real bins 0 and k/2, complex products elsewhere."""
    g, cb, k = S.shape
    out = np.zeros((X.shape[0], g, k), dtype=object)
    for n in range(X.shape[0]):
        for gi in range(g):
            for j in range(cb):
                s, x = [int(v) for v in S[gi, j]], [int(v) for v in X[n, j]]
                out[n, gi, 0] += s[0] * x[0]
                out[n, gi, 1] += s[1] * x[1]
                for m in range(1, k // 2):
                    sr, si, xr, xi = s[2 * m], s[2 * m + 1], x[2 * m], x[2 * m + 1]
                    out[n, gi, 2 * m] += sr * xr - si * xi
                    out[n, gi, 2 * m + 1] += sr * xi + si * xr
    return out


def test_spectral_mac_is_exact():
    rng = np.random.default_rng(4)
    for k in (4, 16):
        S = rng.integers(-128, 128, size=(3, 5, k))
        X = rng.integers(-(1 << 15), 1 << 15, size=(2, 5, k))
        got = fft.spectral_mac(S, X)
        assert got.dtype == np.int64 and got.shape == (2, 3, k)
        np.testing.assert_array_equal(got, ref_mac(S, X).astype(np.int64))
    # leading axes of the spectra (gates, row blocks) are kept after N
    S = rng.integers(-128, 128, size=(2, 3, 4, 8))
    X = rng.integers(-1000, 1000, size=(5, 4, 8))
    assert fft.spectral_mac(S, X).shape == (5, 2, 3, 8)


@st.composite
def _state_formats(draw):
    width = draw(st.integers(4, 32))
    return QFormat(width, width - 1 - draw(st.integers(0, min(6, width - 1))))


def _modulus_error(packed_int, q: QFormat, exact: np.ndarray) -> np.ndarray:
    re, im = fft.unpack_half(packed_int * q.lsb)
    return np.abs(re + 1j * im - exact)


@given(
    k=st.sampled_from(SIZES),
    q=_state_formats(),
    seed=st.integers(0, 2**32 - 1),
    kind=st.sampled_from(["uniform", "small", "extremes", "sparse"]),
)
@SETTINGS
def test_rfft_within_the_derived_bound(k, q, seed, kind):
    """|rfft(x) - numpy.fft.rfft(x) / k| <= fft_forward_error per bin (where the narrowing cannot saturate)."""
    rng = np.random.default_rng(seed)
    shape = (16, k)
    if kind == "uniform":
        x = rng.integers(q.min_raw, q.max_raw + 1, size=shape)
    elif kind == "small":
        x = rng.integers(-(1 << min(q.width - 1, 6)), 1 << min(q.width - 1, 6), size=shape)
    elif kind == "extremes":
        x = rng.choice([q.min_raw, q.max_raw, 0], size=shape)
    else:
        x = rng.integers(q.min_raw, q.max_raw + 1, size=shape) * (rng.random(shape) < 0.1)
    got = fft.rfft(x, q)
    exact = np.fft.rfft(x * q.lsb, axis=-1) / k
    xmax = np.abs(x * q.lsb).max(axis=-1)
    bound = fft_forward_error(k, q, xmax)
    inside = (np.abs(exact.real) + bound <= q.max_value) & (np.abs(exact.imag) + bound <= q.max_value)
    err = _modulus_error(got, q, exact)
    slack = 1e-12 * xmax[:, None]  # numpy's float64 FFT
    assert np.all((err <= bound + slack)[inside]), float(np.max((err / bound)[inside]))
    assert inside.mean() > 0.25


@given(k=st.sampled_from(SIZES), bits=st.integers(2, 44), seed=st.integers(0, 2**32 - 1))
@SETTINGS
def test_irfft_within_the_derived_bound(k, bits, seed):
    """|irfft(P) - k numpy.fft.irfft(P)| <= fft_inverse_error (raw units: 0 fraction bits)."""
    rng = np.random.default_rng(seed)
    p = rng.integers(-(1 << bits), 1 << bits, size=(8, k))
    re, im = fft.unpack_half(p.astype(np.float64))
    exact = np.fft.irfft(re + 1j * im, n=k, axis=-1) * k
    got = fft.irfft(p).astype(np.float64)
    ymax = np.abs(exact).max(axis=-1)
    bound = fft_inverse_error(k, 0, ymax)
    err = np.abs(got - exact).max(axis=-1)
    assert np.all(err <= bound + 1e-12 * ymax + 1e-9), (err, bound)  # + numpy's float64 error


def _round_trip_bound(k, q, xmax):
    e_x = fft_forward_error(k, q, xmax)
    weights = np.full(k // 2 + 1, 2.0)
    weights[0] = weights[-1] = 1.0
    total = (e_x * weights).sum(axis=-1)
    return total + fft_inverse_error(k, q.frac, xmax + total)


@pytest.mark.parametrize("k", SIZES)
def test_round_trip_within_the_bound(k):
    """irfft(rfft(x)) returns x (the forward's 1/k and the unscaled inverse cancel) within the derived bound."""
    q = QFormat(16, 12)
    rng = np.random.default_rng(k)
    x = rng.integers(q.min_raw // 2, q.max_raw // 2, size=(200, k))
    y = fft.irfft(fft.rfft(x, q))
    err = np.abs(y - x).max(axis=-1) * q.lsb
    bound = _round_trip_bound(k, q, np.abs(x).max(axis=-1) * q.lsb)
    assert np.all(err <= bound)
    report(f"fft round trip k={k}: max err {err.max() / q.lsb:.0f} LSB, bound {bound.max() / q.lsb:.1f} LSB")
    # an impulse of k a and a constant come back exactly (their spectra and every stage are exact)
    impulse = np.zeros(k, dtype=np.int64)
    impulse[0] = 3 * k
    for v in (impulse, np.full(k, -77)):
        np.testing.assert_array_equal(fft.irfft(fft.rfft(v[None], q)), v[None])


def test_fft_product_is_the_circulant_product():
    """rfft, spectral MAC, irfft compute the block-circulant product whose DFT is the stored spectrum."""
    from rnnaccel.numeric.circulant import expand

    rng = np.random.default_rng(5)
    k, rb, cb = 16, 3, 4
    qs, qx = QFormat(10, 8), QFormat(16, 12)
    w = rng.normal(scale=0.2, size=(rb, cb, k))
    S = quantize(fft.weight_spectra(w), qs)
    x = rng.integers(-4000, 4000, size=(6, cb * k))
    X = fft.rfft(x.reshape(6, cb, k), qx)
    y = fft.irfft(fft.spectral_mac(S, X)).reshape(6, rb * k) * 2.0 ** -(qs.frac + qx.frac)
    weff = fft.spectra_vectors(S * qs.lsb)
    want = np.einsum("rc,nc->nr", expand(weff), x * qx.lsb)
    err = np.abs(y - want).max()
    assert err < 40 * qx.lsb, err


# ============================================================================
# C. config rules, serialization, the flow
# ============================================================================


def _fft_cfg(**kw):
    return TINY.replace(circulant_mode="fft", **kw)


@pytest.mark.parametrize("k", [4, 8, 16, 32, 256])
def test_fft_mode_accepts_power_of_two_blocks(k):
    cfg = _fft_cfg(block_size=k, lanes=k)
    assert cfg.fft_mode and cfg.fft_stages == k.bit_length() - 1
    serial = TINY.replace(datapath="serial", block_size=16, lanes=4, pe_cols=1, circulant_mode="fft")
    assert serial.fft_mode and serial.fused_projections


@pytest.mark.parametrize("k", [1, 2, 3, 6, 12, 24])
def test_fft_mode_refuses_other_blocks(k):
    with pytest.raises(ConfigError) as info:
        _fft_cfg(block_size=k, lanes=k if k > 1 else 4)
    err = info.value
    assert err.field == "circulant_mode" and err.value == "fft" and "\n" not in str(err)
    assert "power of two, 4 or more" in str(err) and f"block_size {k}" in str(err)


@pytest.mark.parametrize("bad", ["FFT", "time", "", 1, None, True])
def test_circulant_mode_values(bad):
    with pytest.raises(ConfigError) as info:
        TINY.replace(circulant_mode=bad)
    assert info.value.field == "circulant_mode" and "\n" not in str(info.value)


@pytest.mark.parametrize("bad", ["Q3", "3.12", "Q40.2", 8, None])
def test_q_spectrum_malformed(bad):
    with pytest.raises(ConfigError) as info:
        TINY.replace(q_spectrum=bad)
    assert info.value.field == "q_spectrum"


def test_fft_accumulator_rules():
    # biases align to the inverse's fs + fx fraction bits
    with pytest.raises(ConfigError) as info:
        _fft_cfg(q_spectrum="Q7.0", q_state="Q7.8")
    assert info.value.field == "q_pre" and "q_spectrum.frac + q_state.frac" in str(info.value)
    TINY.replace(q_spectrum="Q7.0", q_state="Q7.8", q_pre="Q7.8")  # direct mode: the weight rule instead
    # the spectral accumulator stays within 62 bits
    with pytest.raises(ConfigError) as info:
        _fft_cfg(q_spectrum=QFormat(32, 20), q_state=QFormat(32, 20))
    assert info.value.field == "q_spectrum" and "62" in str(info.value)
    cfg = preset("lstm512-ice40").replace(circulant_mode="fft", q_spectrum="Q-1.8")
    # 8 + 16 bits, 2 x 64 terms per bin; the inverse grows by 4 stages + 1
    assert (cfg.fft_acc_frac, cfg.fft_blocks, cfg.fft_acc_width, cfg.fft_out_width) == (20, 64, 32, 38)
    assert cfg.weight_bytes == preset("lstm512-ice40").weight_bytes == 131072  # k words per block, 8 bits


def test_direct_configs_do_not_write_the_new_fields():
    for cfg in [Config(), *PRESETS.values()]:
        text = cfg.to_toml()
        assert "circulant_mode" not in text and "q_spectrum" not in text
        assert Config.from_toml(text) == cfg
    assert Config().hash == "ccf4fefb837dbe56"  # unchanged by issue 16 (the digests pin the presets')
    odd = Config(q_spectrum="Q0.7")
    assert 'q_spectrum = "Q0.7"' in odd.to_toml() and "circulant_mode" not in odd.to_toml()
    assert Config.from_toml(odd.to_toml()) == odd and odd.hash != Config().hash


def test_fft_configs_round_trip(tmp_path):
    cfg = _fft_cfg(q_spectrum="Q-1.8", block_size=8, lanes=8)
    text = cfg.to_toml()
    assert 'circulant_mode = "fft"' in text and 'q_spectrum = "Q-1.8"' in text
    again = Config.from_toml(text)
    assert again == cfg and again.hash == cfg.hash != cfg.replace(circulant_mode="direct").hash
    # the default spectrum format is written too in FFT mode, so a later default cannot change the meaning
    assert 'q_spectrum = "Q2.5"' in _fft_cfg().to_toml()
    cfg.save(tmp_path / "c.toml")
    assert Config.load(tmp_path / "c.toml") == cfg


def test_flow_refuses_the_fft_mode_on_the_array(tmp_path):
    """FFT gateware exists on the serial datapath only: on the array datapath generate, the Verilog and the
    Amaranth simulation raise a one-line ConfigError (the serial FFT datapath: sim_tests/test_fft_datapath.py)."""
    from rnnaccel.flow.backends import run_session
    from rnnaccel.flow.rtl import accelerator_verilog, generate

    cfg = _fft_cfg()
    w = random_weights(cfg, seed=0)
    x = quantize(np.zeros((2, cfg.input_size)), cfg.q_state)
    calls = [
        lambda: generate(cfg, w, tmp_path / "g", progress=lambda *_: None),
        lambda: accelerator_verilog(cfg, w),
        lambda: run_session(cfg, w, [("reset",), ("run", x)], "amaranth"),
    ]
    for call in calls:
        with pytest.raises(ConfigError) as info:
            call()
        msg = str(info.value)
        assert info.value.field == "circulant_mode" and "\n" not in msg
        assert "FFT-domain datapath is built for datapath = 'serial' only" in msg
    assert not (tmp_path / "g").exists()


def test_cli_info_and_generate(tmp_path, capsys):
    from rnnaccel.cli.main import main

    assert main(["info", "--preset", "lstm512-ice40", "--set", "circulant_mode=fft", "--set", "q_spectrum=Q-1.8"]) == 0
    out = capsys.readouterr().out
    assert "circulant mode: fft (spectra Q-1.8" in out
    assert "multiplies per step, direct: 2097152" in out and "multiplies per step, fft: 253440" in out
    assert main(["new", "-o", str(tmp_path / "m"), "--preset", "tiny", "--set", "circulant_mode=fft"]) == 0
    assert main(["generate", str(tmp_path / "m"), "-o", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FFT-domain datapath is built for datapath = 'serial' only" in err


# ============================================================================
# D. the golden model in FFT mode against float
# ============================================================================

BOUND_VARIANTS = {
    "lstm": dict(cell="lstm"),
    "gru-after": dict(cell="gru", gru_reset_after=True),
    "gru-before": dict(cell="gru", gru_reset_after=False),
    "sru": dict(cell="sru"),
    "qrnn": dict(cell="qrnn"),
    "rnn": dict(cell="rnn"),
    "lstm-serial": dict(cell="lstm", datapath="serial"),
}

# (q_state, q_cell, q_pre, q_act, table_entries, interpolate, q_spectrum width)
FORMATS = [
    (QFormat(16, 12), QFormat(16, 11), QFormat(16, 11), QFormat(16, 14), 256, True, 8),
    (QFormat(12, 8), QFormat(12, 7), QFormat(14, 9), QFormat(12, 10), 64, True, 10),
    (QFormat(16, 12), QFormat(16, 11), QFormat(16, 11), QFormat(16, 14), 512, False, 12),
    (QFormat(14, 11), QFormat(16, 11), QFormat(16, 10), QFormat(10, 8), 128, True, 6),
]


def _spectrum_format(cfg, w, width):
    from rnnaccel.models.quantize import fit_format

    spec = np.concatenate([fft.weight_spectra(v).ravel() for key, v in w.items() if key.endswith((".W", ".U"))])
    q, ok = fit_format(float(spec.min()), float(spec.max()), width, min_int_bits=None)
    assert ok
    return q


def _bound_case(name, case):
    rng = np.random.default_rng(7000 + 100 * list(BOUND_VARIANTS).index(name) + case)
    fmt = FORMATS[case % len(FORMATS)]
    k = int(rng.choice([4, 8, 16]))
    extra = dict(BOUND_VARIANTS[name])
    lanes = k
    if extra.get("datapath") == "serial":
        lanes = int(rng.choice([1, 2, 4]))
        extra["pe_cols"] = 1
    if extra["cell"] == "qrnn":
        extra["qrnn_window"] = int(rng.choice([1, 2]))
    inp, hid = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    if extra["cell"] == "sru" and case % 2 == 0:
        inp = hid
    if extra.get("qrnn_window") == 2:
        inp, hid = k * int(rng.integers(1, 3)), k * int(rng.integers(1, 3))
    cfg = TINY.replace(
        num_layers=int(rng.integers(1, 3)),
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
        circulant_mode="fft",
        **extra,
    )
    w = random_weights(cfg, seed=case, scale=float(rng.uniform(0.5, 2.0)))
    cfg = cfg.replace(q_spectrum=_spectrum_format(cfg, w, fmt[6]))
    x = rng.uniform(-2.0, 2.0, size=(3, 8, inp))
    return cfg, w, x


def _dequant_state(cfg, st):
    out = {"h": to_float(st["h"], cfg.q_state)}
    if "c" in st:
        out["c"] = to_float(st["c"], cfg.q_cell)
    if "xprev" in st:
        out["xprev"] = to_float(st["xprev"], cfg.q_state)
    return out


@pytest.mark.parametrize("params", ["quantized", "float"])
@pytest.mark.parametrize("name", list(BOUND_VARIANTS))
def test_fft_step_error_bound(name, params):
    """Teacher forcing: from the same state, |integer step - float step| <= the derived bound, elementwise.

    ``quantized``: the float model holds the circulant blocks the stored spectra realize (the bound covers
    the transforms' rounding and twiddles); ``float``: the float weights (the bound adds the spectrum and
    bias quantization)."""
    worst, tight, checked = 0.0, [], 0
    for case in range(8):
        cfg, w, x = _bound_case(name, case)
        im = IntegerModel(cfg, w)
        fm = FloatModel(cfg, w, quantized_params=params == "quantized")
        im.set_state(batch=x.shape[0])
        for s in range(x.shape[1]):
            before = copy.deepcopy(im.state)
            xq = quantize(x[:, s], cfg.q_state)
            im.run_raw(xq[:, None])
            for layer in range(cfg.num_layers):
                v = to_float(xq if layer == 0 else im.state[layer - 1]["h"], cfg.q_state)
                h_f, new_f, b = float_step_bound(fm, layer, v, _dequant_state(cfg, before[layer]))
                assert b.saturation_free(), (cfg, b.saturating())
                err = np.abs(to_float(im.state[layer]["h"], cfg.q_state) - h_f)
                assert np.all(err <= b.h), (name, case, s, layer, float(np.max(err / b.h)))
                worst = max(worst, float(np.max(err / b.h)))
                tight.append(float(err.max() / b.h.max()))
                if b.c is not None:
                    err_c = np.abs(to_float(im.state[layer]["c"], cfg.q_cell) - new_f["c"])
                    assert np.all(err_c <= b.c), (name, case, s, layer)
                    worst = max(worst, float(np.max(err_c / b.c)))
                checked += err.size
    report(
        f"fft bound {name} ({params} params): max elementwise err/bound {worst:.3f}; max over steps of "
        f"max(err)/max(bound) {max(tight):.3f} (median {np.median(tight):.3f}); {checked} elements"
    )
    assert worst > 0.02, "bound absurdly loose (>50x)"


def test_fft_projection_bound_lstm512():
    """The 512x512 LSTM (k = 16, fused projections) with formats chosen by quantize: the pre-activation's
    error against float, FFT against direct mode, measured and bounded (the REPORT line gives the numbers)."""
    from rnnaccel.models.quantize import choose_formats
    from rnnaccel.numeric.bounds import projection_error
    from rnnaccel.numeric.golden import fft_projection, fused_projection

    base = preset("lstm512-ice40")
    w = random_weights(base, seed=5)
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(2, 3, 512))
    x_f, h_f = rng.normal(size=(4, 512)), rng.uniform(-1, 1, size=(4, 512))
    lines = []
    for mode in ("direct", "fft"):
        cfg, _ = choose_formats(base.replace(circulant_mode=mode), w, calib)
        x, h = quantize(x_f, cfg.q_state), quantize(h_f, cfg.q_state)
        mi = IntegerModel(cfg, w).mats[0]
        if cfg.fft_mode:
            raw = fft_projection(cfg, [(mi.SW, x), (mi.SU, h)], mi.b + mi.c)
        else:
            raw = fused_projection(cfg, mi.W, mi.U, x, h, mi.b, mi.c)
        pre = to_float(raw, cfg.q_pre)
        for params in ("quantized", "float"):
            m = FloatModel(cfg, w, quantized_params=params == "quantized").mats[0]
            xs, hs = to_float(x, cfg.q_state), to_float(h, cfg.q_state)
            want = np.einsum("ghc,nc->ngh", m.W, xs) + np.einsum("ghc,nc->ngh", m.U, hs) + m.b + m.c
            checks = []
            bound = projection_error(cfg, [(m.W, m.SW, xs, None), (m.U, m.SU, hs, None)], 2, params, checks)
            err = np.abs(pre - want)
            assert np.all(err <= bound) and not any(np.any(v + e > q.max_value) for _, v, e, q in checks)
            lsb = cfg.q_pre.lsb
            rms = math.sqrt(np.mean(err**2)) / lsb
            lines.append(
                f"{mode} {params}: max {err.max() / lsb:.2f} LSB (rms {rms:.2f}), bound {bound.max() / lsb:.1f} LSB"
            )
        if mode == "fft":
            assert cfg.q_spectrum.width == 8
    report(f"lstm512 pre-activation error vs float, in LSB of q_pre: {'; '.join(lines)}")


@pytest.mark.parametrize("name", ["lstm", "gru-before", "lstm-serial"])
def test_fft_free_running_error(name):
    """Measured, not asserted: free-running integer FFT mode against float (float weights), beside direct mode."""
    extra = dict(BOUND_VARIANTS[name])
    if extra.get("datapath") == "serial":
        extra.update(lanes=4, pe_cols=1)
    cfg = TINY.replace(input_size=32, hidden_size=32, block_size=8, lanes=extra.pop("lanes", 8), **extra)
    w = random_weights(cfg, seed=3)
    x = np.random.default_rng(4).normal(size=(4, 40, cfg.input_size))
    from rnnaccel.models.quantize import fit_format

    wmax = max(float(np.abs(v).max()) for key, v in w.items() if key.endswith((".W", ".U")))
    cfg = cfg.replace(q_weight=fit_format(-wmax, wmax, 8, min_int_bits=None)[0])  # both modes: 8 bits, fitted
    yf = FloatModel(cfg, w).run(x)
    fcfg = cfg.replace(circulant_mode="fft", q_spectrum=_spectrum_format(cfg, w, 8))
    e_fft = np.abs(IntegerModel(fcfg, w).run_float(x) - yf)
    e_dir = np.abs(IntegerModel(cfg, w).run_float(x) - yf)
    report(
        f"free-running {name} k=8, 8-bit {fcfg.q_spectrum} spectra / {cfg.q_weight} weights: fft max "
        f"{e_fft.max():.3g} (mean {e_fft.mean():.3g}), direct max "
        f"{e_dir.max():.3g} (mean {e_dir.mean():.3g})"
    )
    assert np.all(np.isfinite(e_fft))


def test_quantize_weights_stores_spectra():
    cfg = _fft_cfg(q_spectrum="Q0.7")
    w = random_weights(cfg, seed=2)
    qw = quantize_weights(cfg, w)
    assert qw.spectra and qw.matches(cfg) and not qw.matches(cfg.replace(circulant_mode="direct"))
    np.testing.assert_array_equal(qw["layer0.W"], quantize(fft.weight_spectra(w["layer0.W"]), cfg.q_spectrum))
    assert qw["layer0.W"].shape == w["layer0.W"].shape
    np.testing.assert_array_equal(qw["layer0.b"], quantize(w["layer0.b"], cfg.q_pre))
    with pytest.raises(ValueError, match="quantized to"):
        quantize_weights(cfg.replace(circulant_mode="direct"), qw)
    from rnnaccel.numeric.model import dense_matrices

    with pytest.raises(ValueError, match="spectra"):
        dense_matrices(cfg, qw)


# ============================================================================
# E. counted multiplies
# ============================================================================


def test_transform_and_block_multiplies():
    # 4 real multiplies per twiddle other than 1 and -i: k=4 none; k=8 W^1, W^3; k=16: 2 x 2 + 6
    assert [fft.transform_multiplies(k) for k in (4, 8, 16, 32)] == [0, 8, 40, 136]
    assert fft.block_multiplies(16) == 30 and fft.block_multiplies(16, 3) == 23 and fft.block_multiplies(4) == 6


def test_lstm512_multiplies_per_step():
    """The issue's goal: >= 5x fewer multiplier operations per step than direct mode at k = 16."""
    m = fft.step_multiplies(preset("lstm512-ice40"))
    assert m["direct"] == 4 * 512 * 1024 == 2097152  # k^2 per block, 8192 blocks
    assert (m["forward_transforms"], m["inverse_transforms"], m["blocks"]) == (64, 128, 8192)
    assert m["fft"] == (64 + 128) * 40 + 8192 * 30 == 253440
    assert m["fft_3mult"] == (64 + 128) * 40 + 8192 * 23 == 196096
    assert m["direct"] / m["fft"] >= 5
    report(
        f"lstm512 multiplies per step: direct {m['direct']}, fft {m['fft']} ({m['direct'] / m['fft']:.2f}x), "
        f"3-multiply complex products {m['fft_3mult']} ({m['direct'] / m['fft_3mult']:.2f}x)"
    )
    # the array datapath inverse-transforms W x and U h separately; GRU reset-before transforms r*h too
    arr = fft.step_multiplies(TINY)  # 8x8 LSTM, k = 4: W 32x8, U 32x8
    assert (arr["forward_transforms"], arr["inverse_transforms"], arr["blocks"]) == (4, 16, 32)
    gru = fft.step_multiplies(TINY.replace(cell="gru", gru_reset_after=False))
    assert (gru["forward_transforms"], gru["inverse_transforms"]) == (6, 12)
    assert fft.step_multiplies(TINY.replace(block_size=1, lanes=4))["fft"] is None
