"""scripts/bench_boards.py's table logic on made-up reports (no builds, no simulation, no timing)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import bench_boards  # noqa: E402

from rnnaccel.numeric.config import PRESETS  # noqa: E402


def _report(fmax: float, clock: float, met: bool = True) -> dict:
    return {
        "target_mhz": clock,
        "fmax_mhz": fmax,
        "timing_met": met,
        "device": "LFE5U-85F",
        "ideal_cycles_per_step": 1000,
        "utilization": {
            "logic": {"used": 9000, "available": 83640},
            "ff": {"used": 4000, "available": 0},
            "dsp": {"used": 150, "available": 156},
            "bram": {"used": 100, "available": 208},
            "spram": {"used": 0, "available": 0},
        },
        "critical_path": {
            "delay_ns": 20.0,
            "logic_levels": 7,
            "carry_cells": 12,
            "routing_hops": 9,
            "start": "a_FF.Q",
            "end": "b_FF.DI",
            "start_net": "accel.mvu.acc[3]",
            "sources": ["/x/hw/mvu.py:10", "hw/pe.py:20"],
        },
    }


def _cpu(seq: float, call: float) -> dict:
    return {"sequence_us": seq, "per_call_us": call, "threads": 2, "seq_len": 64, "repeats": 20, "torch": "2.x"}


def test_every_board_preset_is_a_preset_and_in_one_family():
    assert set(bench_boards.BOARD_PRESETS) <= set(PRESETS)
    families = [n for names in bench_boards.FAMILIES.values() for n in names]
    assert sorted(families) == sorted(bench_boards.BOARD_PRESETS)


def test_row_times_and_ratios():
    row = bench_boards.make_row(
        "p", "ulx3s", _report(fmax=50.0, clock=25.0), [1100, 1200, 1200], _cpu(seq=40.0, call=120.0), {"yosys": "0.70"}
    )
    assert row["cycles_per_step"] == 1200  # the last (steady) step
    assert row["us_per_step_at_clock"] == pytest.approx(48.0)  # 1200 cycles at 25 MHz
    assert row["us_per_step_at_fmax"] == pytest.approx(24.0)
    assert row["ratio_at_clock"] == pytest.approx({"sequence": 1.2, "per_call": 0.4})
    assert row["ratio_at_fmax"] == pytest.approx({"sequence": 0.6, "per_call": 0.2})
    assert row["utilization"]["dsp"] == {"used": 150, "available": 156}
    # a build without an Fmax (no clock constrained) has no time at Fmax, and says so in the table
    none = bench_boards.make_row("q", "ulx3s", _report(fmax=0.0, clock=25.0, met=False), [500], _cpu(1.0, 2.0))
    assert none["us_per_step_at_fmax"] is None and none["ratio_at_fmax"] == {"sequence": None, "per_call": None}
    cells = [c.strip() for c in bench_boards.format_table([none]).splitlines()[2].strip("|").split("|")]
    assert (cells[7], cells[9], cells[10], cells[13]) == ("25 (0.0, NOT met)", "20.0", "-", "-, -")


def test_table_cells():
    rows = [
        bench_boards.make_row(
            "lstm512-ecp5", "ulx3s", _report(fmax=52.34, clock=50.0), [16198], _cpu(seq=57.0, call=310.0)
        )
    ]
    table = bench_boards.format_table(rows).splitlines()
    assert len(table) == 3 and table[0].count("|") == table[2].count("|") == 15
    cells = [c.strip() for c in table[2].strip("|").split("|")]
    assert cells[:8] == [
        "lstm512-ecp5",
        "ulx3s",
        "9000 / 83640",
        "4000",
        "150 / 156",
        "100 / 208",
        "-",
        "50 (52.3, met)",
    ]
    assert cells[8] == "16198 (1000)"
    assert cells[9:] == ["324", "309", "57.0, 310", "5.68, 1.05", "5.43, 0.998"]
    paths = bench_boards.format_paths(rows).splitlines()
    assert "20.00 (50.0)" in paths[2] and "7 + 12" in paths[2] and "`accel.mvu.acc[3]`" in paths[2]
    assert "mvu.py:10, pe.py:20" in paths[2]


def test_docs_section_is_rewritten_and_merged():
    old = bench_boards.make_row("lstm-small", "ulx3s", _report(60.0, 50.0), [612], _cpu(1.0, 90.0))
    other = bench_boards.make_row("lstm512-ecp5", "ulx3s", _report(40.0, 40.0), [16198], _cpu(57.0, 300.0))
    text = f"# Boards\n\nbefore\n\n{bench_boards.BEGIN}\nstale\n{bench_boards.END}\n\nafter\n"
    once = bench_boards.rewrite_docs(text, [old], list(bench_boards.BOARD_PRESETS))
    assert once.startswith("# Boards\n\nbefore\n\n") and once.endswith("\n\nafter\n") and "stale" not in once
    assert "| lstm-small |" in once and "lstm512-ecp5" not in once
    # a later run of another preset keeps the recorded row, in the order of BOARD_PRESETS
    twice = bench_boards.rewrite_docs(once, [other], list(bench_boards.BOARD_PRESETS))
    assert twice.index("| lstm-small |") < twice.index("| lstm512-ecp5 |")
    # and a run of the same preset replaces its row
    newer = bench_boards.make_row("lstm-small", "ulx3s", _report(70.0, 50.0), [600], _cpu(1.0, 90.0))
    third = bench_boards.rewrite_docs(twice, [newer], list(bench_boards.BOARD_PRESETS))
    assert third.count("| lstm-small | ulx3s | 9000 / 83640 |") == 1  # its row in the main table
    assert "600 (1000)" in third and "612 (1000)" not in third
    assert bench_boards.rewrite_docs(third, [newer], list(bench_boards.BOARD_PRESETS)) == third
    with pytest.raises(ValueError, match="no section marked"):
        bench_boards.rewrite_docs("# Boards\n", [old], [])


def test_docs_have_the_marked_section():
    text = bench_boards.DOCS.read_text()
    assert text.count(bench_boards.BEGIN) == 1 and text.count(bench_boards.END) == 1


def test_freq_arguments():
    assert bench_boards._parse_freqs(["lstm-small=60", "lstm512-ice40=0"]) == {
        "lstm-small": 60.0,
        "lstm512-ice40": None,
    }
    with pytest.raises(SystemExit, match="PRESET=MHZ"):
        bench_boards._parse_freqs(["tiny=10"])
