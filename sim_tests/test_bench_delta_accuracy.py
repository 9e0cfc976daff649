"""scripts/bench_delta_accuracy.py (delta mode on JapaneseVowels): a smoke run on subsets, no simulation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import sktime  # noqa: F401  (the examples extra is part of the test set-up: missing it is a failure, not a skip)


def test_bench_delta_accuracy_quick(tmp_path, capsys):
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_delta_accuracy.py"
    spec = importlib.util.spec_from_file_location("bench_delta_accuracy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = ["--quick", "--sim-sequences", "0", "--thresholds", "0", "0.2", "--out", str(tmp_path)]
    assert mod.main(argv) == 0
    assert "| model | threshold |" in capsys.readouterr().out
    rows = json.loads((tmp_path / "delta_accuracy.json").read_text())["rows"]
    assert [r["threshold"] for r in rows] == [0, 0.2]
    assert rows[1]["skip_cols"] > rows[0]["skip_cols"] and rows[1]["macs_per_step"] < rows[0]["macs_per_step"]
    assert rows[0]["dense_macs_per_step"] == 3072  # 4 matrices of 48 x 16 (input 12 padded to the 8 lanes)
