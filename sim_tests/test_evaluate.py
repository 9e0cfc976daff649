"""``rnnaccel evaluate``, classifier heads, the sktime data sets and the worked example.

A. Heads: save/load round trip; wrong shapes, NaN, missing arrays are one ModelError each.
B. evaluate() on a small synthetic model: every arithmetic, padding handled
   by the true lengths, accuracy with a head, deviations without one; the
   dense reference from a model directory and from a PyTorch state_dict
   holding an nn.LSTM and its nn.Linear readout.
C. The RTL path: the Amaranth simulator on 2 sequences is bit-exact with the
   golden model and gives the same predictions.
D. The command (wired here into a copy of ``rnnaccel``'s parser, as
   ``rnnaccel.cli.main`` will): the happy path writes the table, JSON and plot;
   every bad input is one ``rnnaccel: error:`` line and exit 2.
E. rnnaccel.models.datasets: JapaneseVowels from the installed sktime (the
   ``examples`` extra is part of the test set-up: missing it is a failure),
   sktime's reader and the small parser agree, the errors.
F. scripts/example_vowels.py --quick end to end (under 60 s), and a reduced
   scripts/example_gunpoint.py --quick whose test.npz the evaluate command reads.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sktime  # noqa: F401  (the examples extra is part of the test set-up; missing it is a failure)
import torch

from cli_helpers import one_line_error, run_cli
from rnnaccel.models import datasets
from rnnaccel.numeric.config import preset
from rnnaccel.accuracy.evaluate import (
    HEAD_FILE,
    Head,
    evaluate,
    format_table,
    last_states,
    load_head,
    load_reference,
    plot_report,
    save_head,
    write_json,
)
from rnnaccel.numeric.golden import FloatModel, InputError, IntegerModel
from rnnaccel.numeric.fixedpoint import QFormat
from rnnaccel.numeric.model import ModelError, load_model, random_weights, save_model
from shared import report

ROOT = Path(__file__).resolve().parent.parent
TINY = preset("tiny")


# ----------------------------------------------------------------------------
# fixtures
# ----------------------------------------------------------------------------


def synthetic(n=8, t=6, seed=3, cfg=TINY):
    """Variable-length sequences zero-padded to t, a random head, labels = float predictions (mostly)."""
    rng = np.random.default_rng(seed)
    weights = random_weights(cfg, seed=seed, scale=2.0)
    lengths = rng.integers(2, t + 1, size=n)
    lengths[0] = t
    X = rng.uniform(-1.5, 1.5, size=(n, t, cfg.input_size))
    X[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
    head = Head(
        rng.normal(size=(3, cfg.hidden_size)).astype(np.float32), rng.normal(size=3).astype(np.float32), ("a", "b", "c")
    )
    y_float = FloatModel(cfg, weights).run(X)
    labels = head.predict(last_states(y_float, lengths))
    labels[-1] = (labels[-1] + 1) % 3  # one wrong label: float accuracy (n - 1) / n
    return weights, X, lengths, head, labels


@pytest.fixture
def model_dir(tmp_path):
    weights, X, lengths, head, labels = synthetic()
    d = tmp_path / "m"
    save_model(d, TINY, weights)
    save_head(d, head.W, head.b, head.classes)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "len.npy", lengths)
    np.save(tmp_path / "y.npy", labels)
    return d


# ----------------------------------------------------------------------------
# A. heads
# ----------------------------------------------------------------------------


def test_head_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(4, 8)), rng.normal(size=4)
    path = save_head(tmp_path, W, b, ["w", "x", "y", "z"])
    assert path.name == HEAD_FILE
    h = load_head(tmp_path, 8)
    np.testing.assert_array_equal(h.W, W.astype(np.float32))
    np.testing.assert_array_equal(h.b, b.astype(np.float32))
    assert h.classes == ("w", "x", "y", "z") and h.num_classes == 4 and h.hidden_size == 8
    assert save_head(tmp_path / "again", W, b, ["w", "x", "y", "z"]).read_bytes() == path.read_bytes()
    hidden = rng.normal(size=(5, 8))
    np.testing.assert_array_equal(h.predict(hidden), np.argmax(hidden @ h.W.T.astype(np.float64) + h.b, axis=1))
    assert load_head(tmp_path / "nothing") is None


@pytest.mark.parametrize(
    "arrays, needle",
    [
        ({"W": np.zeros((3, 8), np.float32), "b": np.zeros(3, np.float32)}, "hidden size is 16"),
        ({"W": np.zeros((3, 16), np.float32), "b": np.zeros(4, np.float32)}, "b has shape (4,)"),
        ({"W": np.full((3, 16), np.nan, np.float32), "b": np.zeros(3, np.float32)}, "NaN"),
        ({"b": np.zeros(3, np.float32)}, "no W array"),
        ({"W": np.zeros(16, np.float32), "b": np.zeros(3, np.float32)}, "(classes, hidden)"),
        ({"W": np.zeros((3, 16), np.int32), "b": np.zeros(3, np.int32)}, "float arrays"),
    ],
    ids=["width", "bias", "nan", "missing", "vector", "ints"],
)
def test_head_errors(tmp_path, arrays, needle):
    np.savez(tmp_path / HEAD_FILE, **arrays)
    with pytest.raises(ModelError, match=None) as info:
        load_head(tmp_path, 16)
    assert needle in str(info.value)
    (tmp_path / HEAD_FILE).write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="not a readable"):
        load_head(tmp_path, 16)


# ----------------------------------------------------------------------------
# B. evaluate on a synthetic model
# ----------------------------------------------------------------------------


def test_evaluate_every_arithmetic_with_head():
    weights, X, lengths, head, labels = synthetic()
    rep = evaluate(TINY, weights, X, lengths, labels, head)
    rows = {r["arithmetic"]: r for r in rep["rows"]}
    assert list(rows) == ["float", "float-qweights", "golden"]
    n = len(labels)
    assert rows["float"]["accuracy"] == (n - 1) / n and rows["float"]["max_abs_dev"] == 0.0
    assert rows["float"]["agreement"] == 1.0
    # the golden row is the IntegerModel, read at each sequence's last valid step
    gold = IntegerModel(TINY, weights).run_float(X)
    pred = head.predict(last_states(gold, lengths))
    assert rows["golden"]["correct"] == int(np.sum(pred == labels))
    # ... and the padded batch gives what each sequence alone, at its true length, gives
    for i in range(n):
        alone = IntegerModel(TINY, weights).run_float(X[i, : lengths[i]])
        np.testing.assert_array_equal(alone[-1], last_states(gold, lengths)[i])
    y_float = FloatModel(TINY, weights).run(X)
    valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
    assert rows["golden"]["max_abs_dev"] == pytest.approx(np.abs(gold - y_float)[valid].max())
    assert 0 < rows["golden"]["mean_abs_dev"] <= rows["golden"]["max_abs_dev"] < 0.05
    assert rows["float-qweights"]["max_abs_dev"] > 0
    text = format_table(rep)
    assert "golden (integer)" in text and "float (circulant k=4)" in text and "accuracy" in text
    report(
        "synthetic tiny LSTM:",
        "; ".join(f"{r['name']}: acc {r['accuracy']:.3f} max|dh| {r['max_abs_dev']:.2e}" for r in rep["rows"]),
    )


def test_evaluate_without_head_reports_deviations(tmp_path):
    weights, X, lengths, _, labels = synthetic()
    rep = evaluate(TINY, weights, X, lengths)
    assert rep["head"] is None and not rep["data"]["labels"]
    for r in rep["rows"]:
        assert r["accuracy"] is None and r["agreement"] is None and r["max_abs_dev"] is not None
    assert "-" in format_table(rep)
    write_json(rep, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["rows"][2]["name"] == "golden (integer)"
    plot_report(rep, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(InputError, match="no classifier head"):
        evaluate(TINY, weights, X, lengths, labels)


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda X, L, y: (X[..., :5], L, y), "the model needs"),
        (lambda X, L, y: (X, L[:3], y), "lengths must be 8 integers"),
        (lambda X, L, y: (X, L + 10, y), "lengths must be between 1 and 6"),
        (lambda X, L, y: (X, L, y[:5]), "labels have shape (5,)"),
        (lambda X, L, y: (X, L, y + 3), "class indices 0..2"),
        (lambda X, L, y: (np.where(X == X.max(), np.nan, X), L, y), "NaN"),
    ],
    ids=["width", "lengths-count", "lengths-range", "labels-count", "labels-range", "nan"],
)
def test_evaluate_input_errors(change, needle):
    weights, X, lengths, head, labels = synthetic()
    X2, L2, y2 = change(X, lengths, labels)
    with pytest.raises(InputError) as info:
        evaluate(TINY, weights, X2, L2, y2, head)
    assert needle in str(info.value)


def test_dense_reference_model_dir_and_torch_state_dict(tmp_path):
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(8, 8, batch_first=True).double()
    linear = torch.nn.Linear(8, 3).double()
    torch.save(
        {
            **{f"rnn.{k}": v for k, v in lstm.state_dict().items()},
            **{f"readout.{k}": v for k, v in linear.state_dict().items()},
        },
        tmp_path / "dense.pt",
    )
    weights, X, lengths, head, labels = synthetic()
    ref = load_reference(tmp_path / "dense.pt", TINY)
    assert ref.cfg.block_size == 1 and ref.head is not None and ref.head.num_classes == 3
    assert any("linear readout 'readout'" in n for n in ref.notes)
    with torch.no_grad():
        out, _ = lstm(torch.as_tensor(X))
        want = linear(out[torch.arange(len(X)), torch.as_tensor(lengths) - 1]).argmax(-1).numpy()
    rep = evaluate(TINY, weights, X, lengths, labels, head, dense=ref)
    dense_row = rep["rows"][0]
    assert dense_row["name"] == "dense float"
    assert dense_row["correct"] == int(np.sum(want == labels))
    # a model directory as the reference: its own head
    save_model(tmp_path / "dref", ref.cfg, ref.weights)
    save_head(tmp_path / "dref", ref.head.W, ref.head.b)
    ref2 = load_reference(tmp_path / "dref", TINY)
    rep2 = evaluate(TINY, weights, X, lengths, labels, head, dense=ref2)
    assert rep2["rows"][0]["correct"] == dense_row["correct"]
    with pytest.raises(ModelError, match="does not exist"):
        load_reference(tmp_path / "missing.pt", TINY)


# ----------------------------------------------------------------------------
# C. RTL (Amaranth simulator)
# ----------------------------------------------------------------------------


def test_rtl_amaranth_two_sequences_bit_exact():
    weights, X, lengths, head, labels = synthetic(n=4, t=5)
    t0 = time.time()
    rep = evaluate(TINY, weights, X, lengths, labels, head, rtl_backend="amaranth", rtl_sequences=2)
    rtl = rep["rtl"]
    assert rtl["bit_exact"] and rtl["mismatches"] == 0 and rtl["sequences"] == 2
    assert rtl["steps"] == int(lengths[:2].sum()) and rtl["words"] == rtl["steps"] * TINY.hidden_size
    assert rtl["cycles_per_step"] >= TINY.ideal_cycles_per_step
    row = rep["rows"][-1]
    assert row["arithmetic"] == "rtl-amaranth" and row["sequences"] == 2
    assert row["accuracy"] == row["golden_accuracy_same_sequences"]
    assert "BIT-EXACT" in format_table(rep)
    # chosen sequences by index
    rep = evaluate(TINY, weights, X, lengths, labels, head, rtl_backend="amaranth", rtl_sequences=[3])
    assert rep["rtl"]["indices"] == [3] and rep["rtl"]["bit_exact"]
    report(
        f"evaluate rtl amaranth: {rtl['steps']} steps, {rtl['cycles_per_step']:.1f} cycles/step, "
        f"{time.time() - t0:.1f} s for both runs"
    )


# ----------------------------------------------------------------------------
# D. the command
# ----------------------------------------------------------------------------


def test_cli_happy_path(model_dir, capsys):
    d = model_dir.parent
    code, out, err = run_cli(
        [
            "evaluate",
            model_dir,
            "--data",
            d / "x.npy",
            "--labels",
            d / "y.npy",
            "--lengths",
            d / "len.npy",
            "--rtl-backend",
            "amaranth",
            "--rtl-sequences",
            "2",
            "--json",
            d / "r.json",
            "--plot",
            d / "p.png",
        ],
        capsys,
    )
    assert code == 0, err
    assert "verdict: BIT-EXACT (amaranth vs golden, 2 sequence(s)" in out
    assert "golden (integer)" in out and "87.50%" in out  # float: 7 of 8 labels
    rep = json.loads((d / "r.json").read_text())
    assert [r["arithmetic"] for r in rep["rows"]] == ["float", "float-qweights", "golden", "rtl-amaranth"]
    assert rep["rtl"]["bit_exact"] and rep["data"]["source"].endswith("x.npy")
    assert (d / "p.png").read_bytes()[:4] == b"\x89PNG"
    # an .npz with X, y and lengths is the same data
    np.savez(d / "data.npz", X=np.load(d / "x.npy"), y=np.load(d / "y.npy"), lengths=np.load(d / "len.npy"))
    code, out2, _ = run_cli(["evaluate", model_dir, "--data", d / "data.npz", "--limit", "8"], capsys)
    assert code == 0 and "87.50%" in out2


def test_cli_errors(model_dir, capsys):
    d = model_dir.parent
    np.save(d / "x5.npy", np.zeros((2, 3, 5)))
    np.save(d / "lab.npy", np.array([0, 1]))
    np.save(d / "nohead_x.npy", np.zeros((2, 3, 8)))
    save_model(d / "nohead", TINY, random_weights(TINY))
    cases = [
        (["--data", d / "missing.npy"], ["data file", "missing.npy", "does not exist"]),
        (["--data", d / "x5.npy"], ["shape (2, 3, 5)", "(N, T, 8)"]),
        (["--data", d / "x.npy", "--labels", d / "lab.npy"], ["labels have shape (2,)"]),
        (["--data", d / "x.npy", "--labels", d / "nope.npy"], ["labels file", "does not exist"]),
        (["--data", "NoSuchSet"], ["not a usable data set name", "JapaneseVowels"]),
        (["--data", "JapaneseVowels"], ["shape (370, 29, 12)", "(N, T, 8)"]),
        (["--data", "JapaneseVowels:valid"], ["split must be train or test"]),
        (["--data", d / "x.npy", "--rtl-sequences", "0", "--rtl-backend", "amaranth"], ["--rtl-sequences"]),
        (["--data", d / "x.npy", "--dense", d / "nothing.pt"], ["does not exist"]),
        (["--data", d / "missing.npz"], ["does not exist"]),
    ]
    for extra, needles in cases:
        code, _, err = run_cli(["evaluate", model_dir, *extra], capsys)
        assert code == 2, (extra, err)
        one_line_error(err, *needles)
    code, _, err = run_cli(["evaluate", d / "nohead", "--data", d / "nohead_x.npy", "--labels", d / "lab.npy"], capsys)
    assert code == 2
    one_line_error(err, "no classifier head")
    code, _, err = run_cli(["evaluate", d / "missing_model", "--data", d / "x.npy"], capsys)
    assert code == 2
    one_line_error(err, "does not exist")
    (model_dir / HEAD_FILE).write_bytes(b"garbage")
    code, _, err = run_cli(["evaluate", model_dir, "--data", d / "x.npy"], capsys)
    assert code == 2
    one_line_error(err, HEAD_FILE)


# ----------------------------------------------------------------------------
# E. data sets
# ----------------------------------------------------------------------------


def test_japanese_vowels_from_installed_sktime():
    t0 = time.time()
    ds = datasets.load_dataset("JapaneseVowels")
    tr, te = ds.train, ds.test
    assert (len(tr), len(te)) == (270, 370)
    assert tr.X.shape == (270, 29, 12) and te.X.shape == (370, 29, 12) and tr.X.dtype == np.float32
    assert ds.classes == tuple(str(i) for i in range(1, 10))
    np.testing.assert_array_equal(np.bincount(tr.y), [30] * 9)
    np.testing.assert_array_equal(np.bincount(te.y), [31, 35, 88, 44, 29, 24, 40, 50, 29])
    assert tr.lengths.min() == 7 and te.lengths.max() == 29
    for split in (tr, te):  # zero padding after each sequence's end, data before it
        mask = np.arange(29)[None, :] < split.lengths[:, None]
        assert np.all(split.X[~mask] == 0) and np.all(np.abs(split.X[mask]).sum(-1) > 0)
    # sktime's reader and the small parser agree
    xs, ys = datasets.parse_ts(datasets.dataset_files("japanesevowels")["test"])
    X, L = datasets.pad_sequences(xs, 29)
    np.testing.assert_array_equal(X, te.X)
    np.testing.assert_array_equal(L, te.lengths)
    assert [ds.classes[i] for i in te.y] == ys
    assert "JapaneseVowels" in datasets.dataset_names()
    report(f"JapaneseVowels loaded in {time.time() - t0:.1f} s: {ds.describe()}")


def test_dataset_errors(monkeypatch):
    with pytest.raises(datasets.DatasetError, match="unknown data set 'NoSuch'"):
        datasets.load_dataset("NoSuch")
    if "Tecator" in {p.name for p in datasets.data_dir().iterdir()}:
        with pytest.raises(datasets.DatasetError, match="not a classification set"):
            datasets.load_dataset("Tecator")
    with pytest.raises(datasets.DatasetError, match="split must be"):
        datasets.load_split("JapaneseVowels", "dev")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sktime" else real(name, *a))
    with pytest.raises(datasets.DatasetError) as info:
        datasets.load_dataset("JapaneseVowels")
    assert "pip install 'rnnaccel[examples]'" in str(info.value) and "\n" not in str(info.value)


def test_parse_ts_small_file(tmp_path):
    p = tmp_path / "t.ts"
    p.write_text(
        "# comment\n% other comment\n@problemName t\n@timeStamps false\n@missing false\n"
        "@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true up down\n@data\n"
        "1,2,3:4,5,6:up\n7,8:9,10:down\n"
    )
    xs, ys = datasets.parse_ts(p)
    assert ys == ["up", "down"]
    np.testing.assert_array_equal(xs[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(xs[1], [[7, 9], [8, 10]])
    X, L = datasets.pad_sequences(xs)
    assert X.shape == (2, 3, 2) and L.tolist() == [3, 2] and X[1, 2].tolist() == [0, 0]
    p.write_text("@classLabel true a\n@data\n1,x:a\n")
    with pytest.raises(datasets.DatasetError, match="comma-separated numbers"):
        datasets.parse_ts(p)


# ----------------------------------------------------------------------------
# F. the worked example
# ----------------------------------------------------------------------------


def test_example_vowels_quick(tmp_path, capsys):
    """The worked example end to end on subsets, both circulant modes: every k and width retrained in direct
    mode, k = 4, 8, 16 also in FFT mode (the table's FFT column); torch's training accuracy is the golden
    model's in both; the selected (direct) model's Verilog is bit-exact in Icarus."""
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "example_vowels.py"),
            "--quick",
            "--modes",
            "direct,fft",
            "--out",
            str(tmp_path / "v"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.time() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "v" / "results.json").read_text())
    assert res["quick"] and res["rtl"]["bit_exact"] and res["modes"] == ["direct", "fft"]
    ks = sorted({r["k"] for r in res["rows"] if r["k"] != "dense"})
    assert ks == [1, 2, 4, 8, 16]
    for r in res["rows"][1:]:
        # the retraining forward pass in torch is the integer model: the same training accuracy, at the start
        # (the projected model) and at the kept epoch
        assert r["train_acc_golden"] == r["train_acc_best_epoch"], r
        assert r["train_acc_start_golden"] == r["train_acc_start"], r
        assert r["weight_bytes"] > 0 and 0 < r["energy_kept"] <= 1
        if r["k"] == 1:
            assert r["energy_kept"] == pytest.approx(1.0)
        # the FFT column: k a power of two, 4 or more
        f = r.get("fft")
        assert (f is not None) == (r["k"] >= 4), r
        if f is None:
            continue
        assert f["train_acc_golden"] == f["train_acc_best_epoch"], f
        assert f["train_acc_start_golden"] == f["train_acc_start"], f
        for key in ("projected_golden_acc", "retrained_acc", "retrained_float_acc"):
            assert 0 <= f[key] <= 1, (key, f)
        q = QFormat.parse(f["q_spectrum"])
        assert q.width == r["bits"] and f["weight_bytes"] == r["weight_bytes"]  # spectra: the same storage
        cfg, _ = load_model(tmp_path / "v" / "models" / f"k{r['k']}_w{r['bits']}_fft")
        assert cfg.fft_mode and cfg.q_spectrum == q and cfg.block_size == r["k"]
    table = (tmp_path / "v" / "results.md").read_text()
    assert "FFT retrained, golden (%)" in table
    fft16 = next(r["fft"] for r in res["rows"][1:] if r["k"] == 16 and r["bits"] == 8)
    assert f"| {fft16['q_spectrum']} | {100 * fft16['retrained_acc']:.1f} |" in table
    # the FFT model evaluated from the command line beside the dense reference: the script's golden accuracy
    code, out, err = run_cli(
        [
            "evaluate",
            tmp_path / "v" / "models" / "k16_w8_fft",
            "--data",
            tmp_path / "v" / "test.npz",
            "--dense",
            tmp_path / "v" / "dense.pt",
            "--json",
            tmp_path / "e.json",
        ],
        capsys,
    )
    assert code == 0, err
    golden = next(r for r in json.loads((tmp_path / "e.json").read_text())["rows"] if r["arithmetic"] == "golden")
    assert golden["accuracy"] == fft16["retrained_acc"]
    assert f"weights spectra {fft16['q_spectrum']}" in out  # FFT mode names the stored spectra's format
    for name in (
        "results.md",
        "accuracy_vs_memory.png",
        "best_eval.json",
        "best_eval.png",
        "best/head.npz",
        "best/weights.npz",
        "best_rtl/rnnaccel_top.v",
        "dense/head.npz",
        "dense.pt",
        "train.npz",
        "test.npz",
        "models/k4_w8/head.npz",
        "models/k16_w8_fft/head.npz",
    ):
        assert (tmp_path / "v" / name).is_file(), name
    assert "verdict: BIT-EXACT" in proc.stdout
    report(
        f"example_vowels.py --quick: {seconds:.1f} s; selected k={res['selected']['k']} "
        f"{res['selected']['bits']}-bit; timings {res['timings_s']}"
    )


def test_example_gunpoint_quick(tmp_path, capsys):
    """The GunPoint example (univariate, read in frames of 5 samples), reduced: k in {1, 4}, 8-bit, no RTL.
    Its train.npz and test.npz are what rnnaccel retrain and evaluate read."""
    t0 = time.time()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "example_gunpoint.py"),
            "--quick",
            "--ks",
            "1,4",
            "--bits",
            "8",
            "--epochs",
            "10",
            "--retrain-epochs",
            "2",
            "--rtl-backend",
            "none",
            "--out",
            str(tmp_path / "g"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.time() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads((tmp_path / "g" / "results.json").read_text())
    assert res["frame"] == 5 and res["inputs_per_step"] == 5
    assert [(r["k"], r["bits"]) for r in res["rows"][1:]] == [(1, 8), (4, 8)]
    for r in res["rows"][1:]:
        assert r["train_acc_golden"] == r["train_acc_best_epoch"], r
    with np.load(tmp_path / "g" / "test.npz") as d:
        assert d["X"].shape == (20, 30, 5) and list(d["classes"]) == ["1", "2"]
    # the exported model evaluated from the command line on the script's test.npz: the script's golden accuracy
    code, out, err = run_cli(
        [
            "evaluate",
            tmp_path / "g" / "models" / "k4_w8",
            "--data",
            tmp_path / "g" / "test.npz",
            "--json",
            tmp_path / "e.json",
        ],
        capsys,
    )
    assert code == 0, err
    golden = next(r for r in json.loads((tmp_path / "e.json").read_text())["rows"] if r["arithmetic"] == "golden")
    assert golden["accuracy"] == res["rows"][2]["retrained_acc"]
    report(f"example_gunpoint.py --quick (k 1,4; 8-bit; no RTL): {seconds:.1f} s")
