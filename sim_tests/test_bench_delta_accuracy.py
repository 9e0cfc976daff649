"""scripts/bench_delta_accuracy.py (delta mode on JapaneseVowels, threshold chosen on validation).

The protocol's rules (the stratified, seeded split; the threshold choice) on
their own, then a smoke run on subsets with two seeds and no simulation.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import sktime  # noqa: F401  (the examples extra is part of the test set-up: missing it is a failure, not a skip)


@pytest.fixture(scope="module")
def bench():
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_delta_accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_delta_accuracy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_split_is_stratified_disjoint_and_seeded(bench):
    y = np.repeat(np.arange(9), 30)  # JapaneseVowels' training split: 30 utterances of each of 9 speakers
    tr, va = bench.split_train_val(y, 0.2, seed=0)
    assert np.intersect1d(tr, va).size == 0
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(270))
    assert np.array_equal(np.bincount(y[va], minlength=9), np.full(9, 6))  # 6 of each speaker's 30
    tr2, va2 = bench.split_train_val(y, 0.2, seed=0)
    assert np.array_equal(va, va2) and np.array_equal(tr, tr2)
    assert not np.array_equal(va, bench.split_train_val(y, 0.2, seed=1)[1])


def test_split_small_classes(bench):
    y = np.array([0, 0, 1, 1, 1, 2])  # a class of one stays in training; every class of two or more gives one
    tr, va = bench.split_train_val(y, 0.1, seed=3)
    assert sorted(y[va].tolist()) == [0, 1]
    assert 5 in tr and np.intersect1d(tr, va).size == 0
    with pytest.raises(ValueError, match="between 0 and 1"):
        bench.split_train_val(y, 1.0, seed=0)


def test_select_threshold_rule(bench):
    val = {0.05: 0.96, 0.1: 0.95, 0.15: 0.949, 0.2: 0.90}
    assert bench.select_threshold(val, reference=0.96, budget=0.01) == 0.1  # 0.95 is exactly 1 point below
    assert bench.select_threshold(val, reference=0.94, budget=0.01) == 0.15  # the largest within, not the best
    assert bench.select_threshold({0.05: 0.99, 0.1: 0.80, 0.2: 0.99}, 0.99, 0.01) == 0.2  # not monotone: largest
    assert bench.select_threshold(val, reference=1.0, budget=0.01) == 0.0  # none within: the dense model
    assert bench.select_threshold({}, reference=0.5, budget=0.01) == 0.0


def test_bench_delta_accuracy_quick(bench, tmp_path, capsys):
    argv = ["--quick", "--sim-sequences", "0", "--seeds", "0", "1", "--candidates", "0.2", "0.05"]
    assert bench.main(argv + ["--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| seed | chosen threshold |" in printed and "| threshold | validation accuracy" in printed
    report = json.loads((tmp_path / "delta_accuracy.json").read_text())
    assert report["args"]["candidates"] == [0.05, 0.2]
    assert [s["seed"] for s in report["seeds"]] == [0, 1]
    n_train = 30  # --quick: every 9th of the 270 training utterances
    for s in report["seeds"]:
        tr, va = np.array(s["train_index"]), np.array(s["val_index"])
        assert np.intersect1d(tr, va).size == 0 and len(tr) + len(va) == n_train and len(va) > 0
        cands = {c["threshold"]: c for c in s["candidates"]}
        assert sorted(cands) == [0.05, 0.2]
        for c in cands.values():
            assert c["val_correct"] == round(c["val_accuracy"] * len(va))
            assert c["retrain_val_accuracy"] == pytest.approx(c["val_accuracy"])  # training scores like the golden
            assert 0 <= c["best_epoch"] <= 1 and c["epoch_selected_on"] == "validation"
        assert cands[0.2]["val_skip_cols"] > cands[0.05]["val_skip_cols"]
        chosen = bench.select_threshold({t: c["val_accuracy"] for t, c in cands.items()}, s["dense_val_accuracy"], 0.01)
        assert s["chosen_threshold"] == chosen
        d, c = s["test"]["threshold_0"], s["test"]["chosen"]
        assert d["count"] == c["count"] == 42  # every 9th of the 370 test utterances
        assert d["dense_macs_per_step"] == 3072  # 4 matrices of 48 x 16 (input 12 padded to the 8 lanes)
        assert s["test_accuracy_change"] == pytest.approx((c["correct"] - d["correct"]) / 42)
        assert s["sim"] == {} and s["goal_met"] is None
        if chosen:
            assert (tmp_path / f"seed{s['seed']}" / "chosen" / "weights.npz").is_file()
            assert c["skip_cols"] > d["skip_cols"]
    summary = report["summary"]
    changes = [s["test_accuracy_change"] for s in report["seeds"]]
    assert summary["test_accuracy_change_mean"] == pytest.approx(np.mean(changes))
    assert summary["test_accuracy_change_min"] == pytest.approx(min(changes))
    assert summary["chosen_thresholds"] == [s["chosen_threshold"] for s in report["seeds"]]
    assert summary["cycles_per_step_mean"] is None


def test_bench_delta_accuracy_deterministic(bench, tmp_path):
    """Two runs give the same report (but for timings); also the variant whose retraining epoch is chosen on the
    training part, which leaves the validation part to the threshold alone."""
    argv = ["--quick", "--sim-sequences", "0", "--seeds", "2", "--candidates", "0.1", "--epoch-select", "training"]
    runs = []
    for name in ("a", "b"):
        assert bench.main(argv + ["--out", str(tmp_path / name)]) == 0
        report = json.loads((tmp_path / name / "delta_accuracy.json").read_text())
        for s in report["seeds"]:
            for c in s["candidates"]:
                c.pop("seconds")
        report["args"].pop("out")
        runs.append(report)
    (cand,) = runs[0]["seeds"][0]["candidates"]
    assert cand["epoch_selected_on"] == "training" and "retrain_val_accuracy" not in cand
    assert runs[0]["protocol"]["retraining_epoch_selected_on"] == "training"
    assert runs[0] == runs[1]


def test_select_by_speed_rule(bench):
    cyc = {0.05: 240.0, 0.08: 179.9, 0.1: 181.0, 0.2: 150.0}
    assert bench.select_by_speed(cyc, target=180) == 0.08  # the smallest under the target, not the fastest
    assert bench.select_by_speed(cyc, target=150) == 0.0  # "below": 150.0 does not pass 150
    assert bench.select_by_speed({}, target=180) == 0.0


@pytest.mark.parametrize("target, tried, chosen", [(1000.0, [0.05], 0.05), (1.0, [0.05, 0.2], 0.0)])
def test_bench_delta_accuracy_speed_rule(bench, tmp_path, target, tried, chosen):
    """The speed rule simulates the validation sequences of each candidate in ascending order and stops at the
    first under the target (the larger candidates are not retrained); none under it chooses the dense model."""
    argv = ["--quick", "--rule", "speed", "--sim-sequences", "0", "--val-sim-sequences", "1", "--seeds", "0"]
    argv += ["--candidates", "0.2", "0.05", "--cycle-target", str(target), "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "delta_accuracy.json").read_text())
    (s,) = report["seeds"]
    assert [c["threshold"] for c in s["candidates"]] == tried
    for c in s["candidates"]:
        assert c["val_sim_steps"] > 0 and 0 < c["val_cycles_per_step"] < 1000  # measured, and below 1000
    assert s["chosen_threshold"] == chosen
    assert len(s["val_sim_index"]) == 1 and s["val_sim_index"][0] in s["val_index"]
    assert report["protocol"]["rule"].startswith("smallest candidate under")
