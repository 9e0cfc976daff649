"""``rnnaccel retrain``: retraining with the hardware's exact arithmetic, from the command line and the API.

A. Classification from a projected import (a PyTorch LSTM + linear head on a
   toy task, ``rnnaccel import -k 4``): retraining recovers accuracy, keeps
   the best validation epoch, the accuracy it measures is the golden model's,
   the output directory holds rnnaccel.toml, weights.npz and head.npz, and the
   same seed gives byte-identical files.
B. ``evaluate`` on the retrained model agrees with ``run`` plus the head.
C. Per-step regression (Y targets): a readout trained jointly, MSE falls,
   ``evaluate`` reports the same MSE as the golden model plus the readout.
   For every cell (and the serial datapath) the accuracy retrain measures is
   the golden model's.
D. Every bad input is one ``rnnaccel: error:`` line, exit status 2, nothing written.
E. The retrained model exported and run in Verilator: bit-exact with the golden model.

Lines starting with ``REPORT`` (visible with ``-s``) give the measured numbers.
"""

from __future__ import annotations

import contextlib
import io
import json
import time

import numpy as np
import pytest

import torch  # the models extra is part of the test set-up: missing it is a failure

from cli_helpers import one_line_error, run_cli
from rnnaccel import cli
from rnnaccel.numeric.config import preset
from rnnaccel.accuracy.evaluate import last_states, load_head, readout_mse
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.numeric.model import load_model, random_weights, save_model
from rnnaccel.accuracy.retrain import DataError, load_task_data, retrain, task_data
from shared import CELL_VARIANT_IDS, CELL_VARIANTS, report

I, H, T, NC = 8, 8, 10, 3
FREQS = np.array([0.05, 0.15, 0.3])


def toy(n, rng, t=T):
    """3-class frequency task: 8 noisy channels of one sinusoid (random phase per channel); variable lengths."""
    y = rng.integers(0, NC, n)
    ph = rng.uniform(0, 2 * np.pi, (n, 1, I))
    x = np.sin(2 * np.pi * FREQS[y][:, None, None] * np.arange(t)[None, :, None] + ph)
    x = x + 0.2 * rng.normal(size=x.shape)
    lengths = rng.integers(t - 3, t + 1, n)
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
    return x.astype(np.float32), y, lengths


def quiet_cli(argv):
    """rnnaccel's main with stdout and stderr captured (usable from module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A dense PyTorch LSTM + head trained on the toy task, imported with k = 4, retrained for 6 epochs."""
    d = tmp_path_factory.mktemp("retrain")
    t0 = time.time()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(0)
        X, y, L = toy(192, rng)
        Xv, yv, Lv = toy(96, rng)
        np.savez(d / "train.npz", X=X, y=y, lengths=L)
        np.savez(d / "val.npz", X=Xv, y=yv, lengths=Lv)
        torch.manual_seed(0)
        lstm, lin = torch.nn.LSTM(I, H, batch_first=True), torch.nn.Linear(H, NC)
        opt = torch.optim.Adam(list(lstm.parameters()) + list(lin.parameters()), lr=2e-2)
        xt, yt = torch.as_tensor(X), torch.as_tensor(y)
        for _ in range(12):
            for b in range(0, len(X), 32):
                out, _ = lstm(xt[b : b + 32])
                logits = lin(out[torch.arange(out.shape[0]), torch.as_tensor(L[b : b + 32] - 1)])
                loss = torch.nn.functional.cross_entropy(logits, yt[b : b + 32])
                opt.zero_grad()
                loss.backward()
                opt.step()
        torch.save(
            {
                **{f"rnn.{k}": v for k, v in lstm.state_dict().items()},
                **{f"head.{k}": v for k, v in lin.state_dict().items()},
            },
            d / "dense.pt",
        )
        code, out, err = quiet_cli(["import", d / "dense.pt", "-o", d / "proj", "-k", "4"])
        assert code == 0, err
        t1 = time.time()
        code, rout, rerr = quiet_cli(
            [
                "retrain",
                d / "proj",
                "--data",
                d / "train.npz",
                "--val",
                d / "val.npz",
                "-o",
                d / "r",
                "--epochs",
                "6",
                "--lr",
                "2e-2",
                "--batch",
                "32",
                "--seed",
                "3",
                "--json",
                d / "r.json",
            ]
        )
        assert code == 0, rerr
        seconds = time.time() - t1
    finally:
        torch.set_num_threads(threads)
    report(f"retrain fixture: dense training + import {t1 - t0:.1f} s, retrain 6 epochs {seconds:.1f} s")
    return {"dir": d, "import_out": out, "out": rout, "err": rerr, "seconds": seconds}


# ----------------------------------------------------------------------------
# A. classification from a projected import
# ----------------------------------------------------------------------------


def test_projected_import_says_retrain(work):
    lines = [ln for ln in work["import_out"].splitlines() if "rnnaccel retrain" in ln]
    assert len(lines) == 1, work["import_out"]
    assert "% of the weights' energy" in lines[0] and "k = 4" in lines[0]
    assert (work["dir"] / "proj" / "head.npz").is_file()  # the linear readout beside the LSTM came along


def test_retrain_recovers_and_keeps_the_best_epoch(work):
    d = work["dir"]
    assert sorted(p.name for p in (d / "r").iterdir()) == ["head.npz", "rnnaccel.toml", "weights.npz"]
    rep = json.loads((d / "r.json").read_text())
    hist = rep["history"]
    assert [h["epoch"] for h in hist] == list(range(7)) and rep["selected_on"] == "validation"
    accs = [h["accuracy"] for h in hist]
    best = max(range(7), key=lambda e: (accs[e], -hist[e]["score_loss"]))
    assert rep["best_epoch"] == best
    # the accuracy measured during training is the golden model's, with the saved head
    cfg, w = load_model(d / "r")
    head = load_head(d / "r", cfg.hidden_size)
    val = load_task_data(d / "val.npz", cfg.input_size)
    gold = IntegerModel(cfg, w).run_float(val.X)
    golden_acc = float(np.mean(head.predict(last_states(gold, val.lengths)) == val.y))
    assert golden_acc == accs[best] == rep["golden_metric"]
    # the configuration is the projected model's, unchanged; the weights are new
    cfg0, w0 = load_model(d / "proj")
    assert cfg == cfg0 and cfg.block_size == 4
    assert any(not np.array_equal(w[k], w0[k]) for k in w)
    report(
        f"toy task, LSTM {I}->{H}, k=4: validation accuracy {100 * accs[0]:.1f}% projected -> "
        f"{100 * accs[best]:.1f}% retrained (epoch {best}); {work['seconds']:.1f} s for 6 epochs"
    )
    assert accs[best] >= accs[0] + 0.2  # a real recovery, not noise
    assert "golden integer model" in work["out"] and "retrain" in work["err"]  # the progress bar is on stderr


def test_same_seed_same_bytes(work, tmp_path):
    d = work["dir"]
    args = [
        "retrain",
        d / "proj",
        "--data",
        d / "train.npz",
        "--val",
        d / "val.npz",
        "--epochs",
        "6",
        "--lr",
        "2e-2",
        "--batch",
        "32",
        "--seed",
        "3",
    ]
    code, _, err = quiet_cli(args + ["-o", tmp_path / "again"])
    assert code == 0, err
    for name in ("weights.npz", "head.npz", "rnnaccel.toml"):
        assert (tmp_path / "again" / name).read_bytes() == (d / "r" / name).read_bytes(), name
    code, _, err = quiet_cli(args[:-1] + ["4", "--epochs", "1", "-o", tmp_path / "other"])
    assert code == 0, err
    assert (tmp_path / "other" / "weights.npz").read_bytes() != (d / "r" / "weights.npz").read_bytes()
    # no --force: refused, nothing changed; with --force: overwritten
    before = (tmp_path / "again" / "weights.npz").read_bytes()
    code, _, err = quiet_cli(args[:-1] + ["4", "--epochs", "1", "-o", tmp_path / "again"])
    assert code == 2
    one_line_error(err, "already holds a model", "--force")
    assert (tmp_path / "again" / "weights.npz").read_bytes() == before
    code, _, err = quiet_cli(args[:-1] + ["4", "--epochs", "1", "-o", tmp_path / "again", "--force"])
    assert code == 0, err
    assert (tmp_path / "again" / "weights.npz").read_bytes() != before


# ----------------------------------------------------------------------------
# B. evaluate == run + head
# ----------------------------------------------------------------------------


def test_evaluate_agrees_with_run_plus_head(work, tmp_path, capsys):
    d = work["dir"]
    val = load_task_data(d / "val.npz", I)
    np.save(tmp_path / "xv.npy", val.X)
    code, _, err = run_cli(["run", d / "r", "--inputs", tmp_path / "xv.npy", "-o", tmp_path / "h.npy"], capsys)
    assert code == 0, err
    head = load_head(d / "r", H)
    pred = head.predict(last_states(np.load(tmp_path / "h.npy").astype(np.float64), val.lengths))
    code, out, err = run_cli(["evaluate", d / "r", "--data", d / "val.npz", "--json", tmp_path / "e.json"], capsys)
    assert code == 0, err
    rows = {r["arithmetic"]: r for r in json.loads((tmp_path / "e.json").read_text())["rows"]}
    assert rows["golden"]["correct"] == int(np.sum(pred == val.y))
    assert f"{100 * rows['golden']['accuracy']:.2f}%" in out


# ----------------------------------------------------------------------------
# C. regression
# ----------------------------------------------------------------------------


def _regression_data(n, rng):
    x = rng.uniform(-1, 1, size=(n, T, 4))
    Y = np.zeros((n, T, 2))
    Y[:, :, 0] = 0.6 * x[:, :, 0]
    Y[:, 1:, 1] = 0.5 * x[:, :-1, 1]  # needs one step of memory
    return x, Y


def test_regression_readout(tmp_path, capsys):
    cfg = preset("tiny").replace(input_size=4, name="reg")
    save_model(tmp_path / "m", cfg, random_weights(cfg, seed=1))
    rng = np.random.default_rng(5)
    x, Y = _regression_data(96, rng)
    np.savez(tmp_path / "train.npz", X=x, Y=Y)
    xt, Yt = _regression_data(32, rng)
    np.savez(tmp_path / "test.npz", X=xt, Y=Yt)
    code, out, err = run_cli(
        [
            "retrain",
            tmp_path / "m",
            "--data",
            tmp_path / "train.npz",
            "-o",
            tmp_path / "r",
            "--epochs",
            "8",
            "--lr",
            "3e-2",
            "--json",
            tmp_path / "r.json",
        ],
        capsys,
    )
    assert code == 0, err
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["task"] == "regress" and rep["selected_on"] == "training"
    mses = [h["mse"] for h in rep["history"]]
    assert rep["history"][rep["best_epoch"]]["mse"] == min(mses)
    assert min(mses) < 0.5 * mses[0]
    head = load_head(tmp_path / "r", 8)
    assert head.kind == "readout" and head.W.shape == (2, 8)
    cfg2, w2 = load_model(tmp_path / "r")
    gold = IntegerModel(cfg2, w2).run_float(xt)
    want = readout_mse(head, gold, Yt, np.ones(Yt.shape[:2], bool))
    code, out, err = run_cli(
        ["evaluate", tmp_path / "r", "--data", tmp_path / "test.npz", "--json", tmp_path / "e.json"], capsys
    )
    assert code == 0, err
    rows = {r["arithmetic"]: r for r in json.loads((tmp_path / "e.json").read_text())["rows"]}
    assert rows["golden"]["mse"] == pytest.approx(want, rel=1e-12)
    assert "mse" in out and rows["golden"]["accuracy"] is None
    report(f"regression readout, tiny LSTM: training mse {mses[0]:.4f} -> {min(mses):.4f}; test golden mse {want:.4f}")
    # a classifier's labels against a readout head, and targets against a classifier head: one-line errors
    np.savez(tmp_path / "lab.npz", X=xt, y=np.zeros(len(xt), np.int64))
    code, _, err = run_cli(["evaluate", tmp_path / "r", "--data", tmp_path / "lab.npz"], capsys)
    assert code == 2
    one_line_error(err, "regression readout")


def test_api_float_warm_start_and_errors():
    cfg = preset("tiny")
    rng = np.random.default_rng(2)
    X, y, L = toy(48, rng)
    data = task_data(X, y=y, lengths=L)
    res = retrain(cfg, random_weights(cfg, seed=0), data, epochs=2, lr=1e-2, arithmetic="float", progress=False)
    assert res.arithmetic == "float" and len(res.history) == 3 and res.head.kind == "classifier"
    assert res.head.W.dtype == np.float32 and res.weights["layer0.W"].dtype == np.float32
    with pytest.raises(DataError, match="reads 8 inputs"):
        retrain(cfg, random_weights(cfg), task_data(X[..., :5], y=y), epochs=1, progress=False)
    with pytest.raises(ValueError, match="arithmetic"):
        retrain(cfg, random_weights(cfg), data, arithmetic="fixed", progress=False)


@pytest.mark.parametrize(
    "cell,kw",
    CELL_VARIANTS + [("lstm", {"datapath": "serial", "lanes": 2, "pe_cols": 1})],
    ids=CELL_VARIANT_IDS + ["lstm-serial"],
)
def test_every_cell_measures_the_golden_accuracy(cell, kw):
    """For every cell (and the serial datapath), what retrain measures per epoch is the golden model's accuracy."""
    cfg = preset("tiny").replace(cell=cell, **kw)
    rng = np.random.default_rng(4)
    X, y, L = toy(24, rng)
    data = task_data(X, y=y, lengths=L)
    res = retrain(cfg, random_weights(cfg, seed=2, scale=2.0), data, epochs=2, lr=3e-2, batch=8, progress=False)
    gold = IntegerModel(cfg, res.weights).run_float(data.X)
    assert float(np.mean(res.head.predict(last_states(gold, data.lengths)) == data.y)) == res.best.accuracy


# ----------------------------------------------------------------------------
# D. errors
# ----------------------------------------------------------------------------


def _bad(d):
    rng = np.random.default_rng(1)
    X, y, L = toy(8, rng)
    nan = X.copy()
    nan[2, 3, 1] = np.nan
    cases = {
        "2-D X": (dict(X=X[:, 0], y=y), "(N, T, 8)"),
        "input width": (dict(X=X[..., :5], y=y), "reads 8 inputs"),
        "NaN in X": (dict(X=nan, y=y), "NaN"),
        "NaN in Y": (dict(X=X, Y=np.full((8, T, 2), np.nan)), "NaN"),
        "label too large": (dict(X=X, y=np.where(y == 0, 3, y)), "labels out of range"),
        "negative label": (dict(X=X, y=-y - 1), "labels out of range"),
        "empty": (dict(X=np.zeros((0, T, I), np.float32), y=np.zeros(0, np.int64)), "empty"),
        "no steps": (dict(X=np.zeros((4, 0, I), np.float32), y=np.zeros(4, np.int64)), "empty"),
        "y and Y": (dict(X=X, y=y, Y=np.zeros((8, T, 1))), "both"),
        "no targets": (dict(X=X), "no targets"),
        "y length": (dict(X=X, y=y[:5]), "y has shape (5,)"),
        "fractional y": (dict(X=X, y=y + 0.5), "integer class labels"),
        "Y shape": (dict(X=X, Y=np.zeros((8, T - 1, 2))), "Y has shape"),
        "lengths": (dict(X=X, y=y, lengths=L + 5), "lengths"),
        "unknown array": (dict(X=X, y=y, weights=y), "unknown array"),
        "string X": (dict(X=np.array([["a"]]), y=y), "numbers"),
    }
    out = {}
    for name, (arrays, needle) in cases.items():
        path = d / f"{name.replace(' ', '_')}.npz"
        np.savez(path, **arrays)
        out[name] = (["--data", path], needle)
    (d / "text.npz").write_text("not an archive\n")
    np.save(d / "one.npy", X)
    np.savez(d / "val_big.npz", X=X, y=np.full(8, 7))
    np.savez(d / "val_reg.npz", X=X, Y=np.zeros((8, T, 3)))
    np.savez(d / "good.npz", X=X, y=y, lengths=L)
    good = d / "good.npz"
    out.update(
        {
            "missing file": (["--data", d / "nope.npz"], "does not exist"),
            "not an npz": (["--data", d / "text.npz"], "not a readable .npz"),
            "an npy": (["--data", d / "one.npy"], ".npz"),
            "val label out of range": (["--data", good, "--val", d / "val_big.npz"], "labels out of range"),
            "val of another task": (["--data", good, "--val", d / "val_reg.npz"], "regression targets"),
            "epochs 0": (["--data", good, "--epochs", "0"], "--epochs"),
            "lr": (["--data", good, "--lr", "-1"], "--lr"),
            "batch": (["--data", good, "--batch", "0"], "--batch"),
        }
    )
    return out


BAD = [
    "2-D X",
    "input width",
    "NaN in X",
    "NaN in Y",
    "label too large",
    "negative label",
    "empty",
    "no steps",
    "y and Y",
    "no targets",
    "y length",
    "fractional y",
    "Y shape",
    "lengths",
    "unknown array",
    "string X",
    "missing file",
    "not an npz",
    "an npy",
    "val label out of range",
    "val of another task",
    "epochs 0",
    "lr",
    "batch",
]


@pytest.fixture(scope="module")
def bad_cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    cfg = preset("tiny")
    save_model(d / "m", cfg, random_weights(cfg, seed=0))
    from rnnaccel.accuracy.evaluate import save_head

    save_head(d / "m", np.zeros((NC, H)), np.zeros(NC))  # a 3-class head: label 3 is out of range
    return d, _bad(d)


@pytest.mark.parametrize("name", BAD)
def test_bad_input_one_line_error(name, bad_cases, capsys):
    d, cases = bad_cases
    extra, needle = cases[name]
    out = d / f"out-{name.replace(' ', '_')}"
    code, _, err = run_cli(["retrain", d / "m", "-o", out, *extra], capsys)
    assert code == 2, err
    one_line_error(err, needle)
    assert not (out / "rnnaccel.toml").exists()


def test_missing_model_and_file_output(tmp_path, capsys):
    rng = np.random.default_rng(1)
    X, y, _ = toy(4, rng)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    code, _, err = run_cli(
        ["retrain", tmp_path / "nomodel", "--data", tmp_path / "d.npz", "-o", tmp_path / "o"], capsys
    )
    assert code == 2
    one_line_error(err, "does not exist")
    save_model(tmp_path / "m", preset("tiny"), random_weights(preset("tiny")))
    (tmp_path / "f").write_text("x")
    code, _, err = run_cli(["retrain", tmp_path / "m", "--data", tmp_path / "d.npz", "-o", tmp_path / "f"], capsys)
    assert code == 2
    one_line_error(err, "not a directory")


# ----------------------------------------------------------------------------
# E. Verilator
# ----------------------------------------------------------------------------


@pytest.mark.cocotb
def test_retrained_model_bit_exact_in_verilator(work, tmp_path, capsys):
    """The retrained export in Verilator (evaluate --rtl-backend verilator): bit-exact with the golden model,
    the same predictions; exit status 0."""
    d = work["dir"]
    t0 = time.time()
    code, out, err = run_cli(
        [
            "evaluate",
            d / "r",
            "--data",
            d / "val.npz",
            "--rtl-backend",
            "verilator",
            "--rtl-sequences",
            "3",
            "--cache",
            tmp_path / "cache",
            "--json",
            tmp_path / "e.json",
        ],
        capsys,
    )
    assert code == 0, out + err
    assert "verdict: BIT-EXACT (verilator vs golden, 3 sequence(s)" in out
    rep = json.loads((tmp_path / "e.json").read_text())
    val = load_task_data(d / "val.npz", I)
    assert rep["rtl"]["bit_exact"] and rep["rtl"]["mismatches"] == 0
    assert rep["rtl"]["words"] == int(val.lengths[:3].sum()) * H
    rtl = rep["rows"][-1]
    assert rtl["arithmetic"] == "rtl-verilator" and rtl["accuracy"] == rtl["golden_accuracy_same_sequences"]
    report(
        f"retrained k=4 model in Verilator: 3 sequences ({rep['rtl']['steps']} steps) bit-exact, "
        f"{time.time() - t0:.1f} s including the build"
    )
