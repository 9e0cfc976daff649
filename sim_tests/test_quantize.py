"""rnnaccel.models.quantize: choosing Q formats from weights and calibration inputs.

A. The saturation count and format fitting follow the one rounding rule exactly.
B. Chosen formats hold every observed value (no saturation on the calibration
   data, float and integer runs) and are the tightest that do.
C. Forced formats and widths are honoured; a too-narrow forced format reports
   saturations; rules that would break are backed off and reported.
D. The counting integer run is the golden integer model bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.numeric.config import ConfigError, preset
from rnnaccel.numeric.fixedpoint import QFormat, quantize
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.numeric.model import random_weights
from rnnaccel.models.quantize import (
    CLASSES,
    calibrate,
    choose_formats,
    count_saturations,
    fit_format,
    format_report,
    integer_saturations,
)
from shared import CELL_VARIANT_IDS, CELL_VARIANTS, report

TINY = preset("tiny")

VARIANTS, VARIANT_IDS = CELL_VARIANTS, CELL_VARIANT_IDS


def make(cell, layers=2, scale=2.0, **kw):
    cfg = TINY.replace(cell=cell, num_layers=layers, **kw)
    w = random_weights(cfg, seed=3, scale=scale)
    x = np.random.default_rng(4).normal(size=(12, 10, cfg.input_size)) * 2.0
    return cfg, w, x


# ============================================================================
# A. the rule
# ============================================================================


def test_count_saturations_matches_quantize_clip():
    q = QFormat(6, 3)
    x = np.arange(-5, 5, 1 / 32)
    scaled = np.floor(x * 8 + 0.5)
    assert count_saturations(x, q) == int(np.count_nonzero(scaled != quantize(x, q)))
    # the exact edges: max_value + lsb/2 rounds up out of range, -2^m - lsb/2 rounds to -2^m (inside)
    assert count_saturations([q.max_value + q.lsb / 2], q) == 1
    assert count_saturations([q.max_value + q.lsb / 2 - 1e-9], q) == 0
    assert count_saturations([q.min_value - q.lsb / 2], q) == 0
    assert count_saturations([q.min_value - q.lsb / 2 - 1e-9], q) == 1


def test_fit_format_is_tightest():
    q, ok = fit_format(-0.3, 2.9, 8)
    assert ok and q == QFormat(8, 5)  # Q2.5: [-4, 3.97]
    q, ok = fit_format(-4.0, 1.0, 8)
    assert ok and q == QFormat(8, 5)  # -4 is exactly the minimum
    q, ok = fit_format(-0.05, 0.07, 8, min_int_bits=None)
    assert ok and q.int_bits < 0 and count_saturations([0.07], QFormat(8, q.frac + 1)) == 1
    q, ok = fit_format(0, 1000.0, 8)
    assert not ok and q == QFormat(8, 0)


# ============================================================================
# B. chosen formats hold the calibration data
# ============================================================================


@pytest.mark.parametrize("cell,kw", VARIANTS, ids=VARIANT_IDS)
def test_chosen_formats_hold_calibration_without_saturation(cell, kw):
    cfg, w, x = make(cell, **kw)
    new, rep = choose_formats(cfg, w, x)
    report(cell, kw, "\n" + format_report(rep))
    cal = calibrate(cfg, w, x)
    for cls in CLASSES:
        r = rep["classes"][cls]
        q = getattr(new, cls)
        assert r["format"] == str(q)
        assert r["saturations"] == 0, (cls, r)
        assert r["integer_saturations"] in (0, None), (cls, r)
        arr = cal.array(cls)
        if arr.size:
            assert r["observed_max"] == pytest.approx(np.abs(arr).max())
            assert count_saturations(arr, q) == 0
            # tightest: one more fraction bit at the same width would saturate (unless a rule stops it)
            if not any(n.startswith(cls) for n in rep["notes"]):
                if cls in ("q_weight", "q_state", "q_cell", "q_pre") and (cls == "q_weight" or q.int_bits > 0):
                    assert count_saturations(arr, QFormat(q.width, q.frac + 1)) > 0, cls
    # widths kept
    for cls in CLASSES:
        assert getattr(new, cls).width == getattr(cfg, cls).width
    # the chosen config runs in the integer model
    IntegerModel(new, w).run(x)


def test_chosen_formats_beat_defaults_on_small_ranges():
    """Small weights and inputs: the formats gain fraction bits over the defaults."""
    cfg, w, x = make("lstm", layers=1, scale=0.3)
    new, rep = choose_formats(cfg, w, x * 0.1)
    assert new.q_weight.frac > cfg.q_weight.frac
    assert new.q_weight.int_bits < 0  # Q-m.n allowed for weights
    assert new.q_state.frac > cfg.q_state.frac
    assert all(r["saturations"] == 0 for r in rep["classes"].values())


def test_without_calibration():
    cfg, w, _ = make("gru", layers=1)
    new, rep = choose_formats(cfg, w)
    assert new.q_state == cfg.q_state and new.q_cell == cfg.q_cell
    assert new.q_pre.min_value <= -cfg.sigmoid_range  # holds the tables' input range
    assert rep["classes"]["q_pre"]["saturations"] == 0
    assert rep["classes"]["q_state"]["integer_saturations"] is None
    assert any("no calibration" in n for n in rep["notes"])


# ============================================================================
# C. forcing, widths, back-offs
# ============================================================================


def test_forced_formats_are_honoured():
    cfg, w, x = make("lstm")
    new, rep = choose_formats(cfg, w, x, q_state="Q4.11", force={"q_cell": QFormat(16, 10), "weight": "Q1.6"})
    assert new.q_state == QFormat(16, 11)
    assert new.q_cell == QFormat(16, 10)
    assert new.q_weight == QFormat(8, 6)
    for cls in ("q_state", "q_cell", "q_weight"):
        assert rep["classes"][cls]["forced"] and rep["classes"][cls]["source"] == "forced"
    assert not rep["classes"]["q_pre"]["forced"]


def test_widths_are_honoured():
    cfg, w, x = make("sru", hidden_size=12)
    new, rep = choose_formats(cfg, w, x, widths={"q_weight": 6, "q_state": 12, "q_act": 12, "q_cell": 14})
    assert (new.q_weight.width, new.q_state.width, new.q_act.width, new.q_cell.width) == (6, 12, 12, 14)
    assert new.q_act == QFormat(12, 10)
    assert rep["classes"]["q_state"]["saturations"] == 0


def test_too_narrow_forced_format_reports_saturations():
    cfg, w, x = make("lstm")
    new, rep = choose_formats(cfg, w, x, q_state="Q0.7")
    r = rep["classes"]["q_state"]
    assert new.q_state == QFormat(8, 7)
    assert r["saturations"] > 0 and r["integer_saturations"] > 0
    new, rep = choose_formats(cfg, w, x, q_cell="Q0.11", q_pre="Q1.11")
    assert rep["classes"]["q_cell"]["saturations"] > 0 and rep["classes"]["q_cell"]["integer_saturations"] > 0
    assert rep["classes"]["q_pre"]["saturations"] > 0 and rep["classes"]["q_pre"]["integer_saturations"] > 0


def test_forced_format_breaking_a_rule_raises():
    cfg, w, x = make("lstm")
    with pytest.raises(ConfigError, match="q_pre"):
        choose_formats(cfg, w, x, q_pre="Q0.20", widths={"q_pre": 21})


def test_table_rule_back_off_is_reported():
    cfg, w, x = make("lstm")
    new, rep = choose_formats(cfg, w, x, widths={"q_pre": 8})
    # fitting 8 bits gives Q4.3; the tables need at least 5 fraction bits (tanh step 2*4/256)
    assert new.q_pre == QFormat(8, 5)
    assert any("q_pre" in n and "backed off" in n for n in rep["notes"])
    assert rep["classes"]["q_pre"]["saturations"] > 0


def test_accumulator_rule_back_off_is_reported():
    cfg, w, x = make("lstm")
    new, rep = choose_formats(cfg, w, x * 1.5, widths={"q_weight": 4, "q_state": 7})
    assert new.q_pre.frac == new.acc_frac < 11
    assert any("accumulator" in n for n in rep["notes"])
    IntegerModel(new, w).run(x)


def test_bad_arguments():
    cfg, w, x = make("rnn")
    with pytest.raises(ValueError, match="tensor class"):
        choose_formats(cfg, w, x, widths={"q_bogus": 8})
    with pytest.raises(ValueError, match="calibration inputs"):
        choose_formats(cfg, w, x[..., :3])


# ============================================================================
# D. the counting integer run is the golden integer model
# ============================================================================


@pytest.mark.parametrize("cell,kw", VARIANTS, ids=VARIANT_IDS)
def test_counting_run_is_bit_exact(cell, kw):
    cfg, w, x = make(cell, scale=3.0, **kw)
    cfg = cfg.replace(q_state=QFormat(12, 9), q_pre=QFormat(12, 8), q_cell=QFormat(12, 8))
    counts, out = integer_saturations(cfg, w, x * 2)
    np.testing.assert_array_equal(out, IntegerModel(cfg, w).run(x * 2))
    assert counts["q_state"] > 0 and counts["q_pre"] > 0


def test_integer_run_saturation_widens_the_format():
    """LSTM calibration: pre-activations reach 7.9969 in float, a few LSBs more in the integer run.

    Fitting the float range gives Q3.12, which the integer run overflows once;
    the format is widened to Q4.11 and the report says so.
    """
    cfg, w, x = make("lstm")
    new, rep = choose_formats(cfg, w, x)
    assert 7.99 < rep["classes"]["q_pre"]["observed_max"] < 8.0
    assert new.q_pre == QFormat(16, 11)
    assert rep["classes"]["q_pre"]["integer_saturations"] == 0
    assert any(n.startswith("q_pre: the integer run saturated 1 value(s) in Q3.12") for n in rep["notes"])
    _, rep2 = choose_formats(cfg, w, x, count_integer=False)
    assert rep2["classes"]["q_pre"]["format"] == "Q3.12" and rep2["classes"]["q_pre"]["integer_saturations"] is None


# ============================================================================
# E. the FFT circulant mode (issue 16): q_spectrum
# ============================================================================


@pytest.mark.parametrize(
    "cell,kw", [VARIANTS[0], VARIANTS[2], VARIANTS[4]], ids=[VARIANT_IDS[0], VARIANT_IDS[2], VARIANT_IDS[4]]
)
def test_fft_mode_chooses_q_spectrum(cell, kw):
    from rnnaccel.numeric import fft

    cfg, w, x = make(cell, circulant_mode="fft", **kw)
    new, rep = choose_formats(cfg, w, x)
    report(cell, kw, "fft mode\n" + format_report(rep))
    spectra = np.concatenate([fft.weight_spectra(v).ravel() for key, v in w.items() if key.endswith((".W", ".U"))])
    r = rep["classes"]["q_spectrum"]
    assert r["format"] == str(new.q_spectrum) and new.q_spectrum.width == cfg.q_spectrum.width
    assert r["observed_max"] == pytest.approx(np.abs(spectra).max()) and r["values"] == spectra.size
    assert r["saturations"] == 0 and r["integer_saturations"] == 0
    assert rep["classes"]["q_weight"]["integer_saturations"] is None  # not stored in FFT mode
    assert count_saturations(spectra, QFormat(new.q_spectrum.width, new.q_spectrum.frac + 1)) > 0  # tightest
    assert new.q_pre.frac <= new.fft_acc_frac
    IntegerModel(new, w).run(x)


def test_direct_mode_keeps_q_spectrum():
    cfg, w, x = make("lstm")
    new, rep = choose_formats(cfg, w, x)
    assert new.q_spectrum == cfg.q_spectrum and "circulant_mode" not in new.to_toml()
    assert "direct" in rep["classes"]["q_spectrum"]["source"]
    assert rep["classes"]["q_spectrum"]["integer_saturations"] is None
    forced, _ = choose_formats(cfg, w, x, spectrum="Q0.7")
    assert forced.q_spectrum == QFormat(8, 7)


def test_fft_mode_accumulator_back_off():
    """FFT mode aligns biases to q_spectrum.frac + q_state.frac: a q_pre finer than that is backed off."""
    cfg, w, x = make("lstm", circulant_mode="fft")
    new, rep = choose_formats(cfg, w, x * 1.5, widths={"q_spectrum": 6, "q_state": 8})
    assert new.q_pre.frac == new.fft_acc_frac < 11
    assert any("q_spectrum.frac" in n for n in rep["notes"])
    IntegerModel(new, w).run(x)


@pytest.mark.parametrize("mode", ["direct", "fft"])
@pytest.mark.parametrize(
    "cell,kw",
    VARIANTS
    + [
        ("lstm", {"datapath": "serial", "lanes": 2, "pe_cols": 1}),
        ("rnn", {"datapath": "serial", "lanes": 2, "pe_cols": 1}),
    ],
    ids=VARIANT_IDS + ["lstm-serial", "rnn-serial"],
)
def test_counting_run_is_bit_exact_both_modes(cell, kw, mode):
    """The counting run mirrors golden in FFT mode, and with fused projections (serial datapath) in both modes."""
    cfg, w, x = make(cell, scale=3.0, circulant_mode=mode, **kw)
    cfg = cfg.replace(q_state=QFormat(12, 9), q_pre=QFormat(12, 8), q_cell=QFormat(12, 8), q_spectrum=QFormat(8, 6))
    counts, out = integer_saturations(cfg, w, x * 2)
    np.testing.assert_array_equal(out, IntegerModel(cfg, w).run(x * 2))
    assert counts["q_state"] > 0 and counts["q_pre"] > 0
