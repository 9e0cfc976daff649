"""scripts/logic_depth.py on a made-up Yosys netlist (no synthesis)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import logic_depth  # noqa: E402

IN, OUT = "input", "output"


def _cell(kind: str, **ports) -> dict:
    dirs = {
        "SB_LUT4": {"I0": IN, "I1": IN, "I2": IN, "I3": IN, "O": OUT},
        "SB_CARRY": {"I0": IN, "I1": IN, "CI": IN, "CO": OUT},
        "SB_DFFE": {"C": IN, "D": IN, "E": IN, "Q": OUT},
    }[kind]
    conns = {p: [ports.get(p, "0")] for p in dirs}
    return {"type": kind, "port_directions": dirs, "connections": conns}


def _netlist() -> dict:
    """a.Q -> three LUTs -> b.D; a.Q -> two carry cells -> one LUT -> b.E; c.Q -> c.D directly."""
    cells = {
        "a": _cell("SB_DFFE", C=1, Q=2),
        "l1": _cell("SB_LUT4", I0=2, O=3),
        "l2": _cell("SB_LUT4", I0=3, I1=2, O=4),
        "l3": _cell("SB_LUT4", I2=4, O=5),
        "k1": _cell("SB_CARRY", I0=2, CO=6),
        "k2": _cell("SB_CARRY", CI=6, CO=7),
        "l4": _cell("SB_LUT4", I3=7, O=8),
        "b": _cell("SB_DFFE", C=1, D=5, E=8, Q=9),
        "c": _cell("SB_DFFE", C=1, D=10, Q=10),
    }
    names = {"clk": 1, "top.a": 2, "top.u.x": 3, "top.u.y": 4, "top.u.z": 5, "top.u.b": 9, "top.c": 10}
    return {
        "modules": {
            "rnnaccel": {
                "attributes": {"top": "1"},
                "cells": cells,
                "netnames": {n: {"bits": [b], "hide_name": 0} for n, b in names.items()},
            }
        }
    }


def test_levels_and_carries_of_each_end_point(tmp_path):
    path = tmp_path / "rnnaccel.json"
    path.write_text(json.dumps(_netlist()))
    ends = {e[3]: e for e in logic_depth.analyse(logic_depth._load(tmp_path))}
    # b.D: three LUT levels from a's output; its path traced start first
    assert ends["top.u.b.D"][1:3] == (3, 0)
    assert ends["top.u.b.D"][4] == "top.a"
    assert ends["top.u.b.D"][5] == ["top.a", "top.u.x", "top.u.y", "top.u.z"]
    # b.E: one LUT behind two carry cells
    assert ends["top.u.b.E"][1:3] == (1, 2)
    # c.D is a register straight into a register: no logic, not listed
    assert not any(label.startswith("top.c") for label in ends)


def test_report_groups_by_module(tmp_path, capsys):
    (tmp_path / "rnnaccel.json").write_text(json.dumps(_netlist()))
    logic_depth.main([str(tmp_path), "--min-levels", "3", "--top", "1", "--trace", "1"])
    out = capsys.readouterr().out
    assert "2 end points behind logic" in out
    assert "1 end points at 3 levels or more" in out and "top.u" in out
    assert "top.u.b.D (3 levels, 0 carry cells):" in out
