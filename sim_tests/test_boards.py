"""Board integration: every board top elaborates for its platform without a toolchain (do_build=False),
reports are parsed, user errors are one line; and one real bitstream is built with the YoWASP tools."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from rnnaccel import cli
from rnnaccel.boards import build as board_build
from rnnaccel.boards.platforms import BOARDS, BoardError, get_platform
from rnnaccel.boards.pll import plan_pll
from rnnaccel.boards.top import BoardTop
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.model import random_weights

#: nextpnr ``--report`` files captured from real builds (YoWASP nextpnr 0.11): lstm-small-ice40 on the
#: iCEBreaker (12 MHz) and tiny on the ULX3S-85F (25 MHz)
DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    "board,freq,name",
    [
        ("icebreaker", None, "tiny"),
        ("icebreaker", 24.0, "tiny"),
        ("icebreaker", None, "lstm-small-ice40"),
        ("icebreaker", None, "lstm512-ice40"),
        ("ulx3s", None, "tiny"),
        ("ulx3s", 50.0, "tiny"),
        ("ulx3s", None, "lstm-small"),
        ("ulx3s-45f", None, "tiny"),
    ],
)
def test_board_top_elaborates_without_toolchain(board, freq, name, tmp_path):
    cfg = preset(name)
    platform = get_platform(board)
    top = BoardTop(
        cfg, random_weights(cfg) if cfg.weights_in_rom else None, pll=plan_pll(platform, freq, tmp_path / "pll")
    )
    plan = platform.build(top, name="rnnaccel", do_build=False)
    assert "rnnaccel.il" in plan.files
    constraints = plan.files.get("rnnaccel.pcf") or plan.files.get("rnnaccel.lpf")
    assert "uart" in constraints
    if freq:
        assert "rnnaccel_pll" in plan.files["rnnaccel.il"]
        # iCE40: the oscillator pad feeds the PLL directly (an SB_IO on it would block the PLL site)
        pll = plan.files["rnnaccel_pll.v"]
        assert ("SB_PLL40_PAD" in pll) == (board == "icebreaker")
        assert abs(top.achieved_mhz - freq) < 0.5
    else:
        assert top.achieved_mhz == platform.default_clk_frequency / 1e6


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_streamed_weights_board_top(board):
    """weight_source = 'flash': the accelerator's stream comes from the flash reader on the board's flash pins (the
    pins in the constraints, no simulated flash in the design)."""
    cfg = preset("lstm-small-ice40").replace(weight_source="flash")
    platform = get_platform(board)
    plan = platform.build(BoardTop(cfg, random_weights(cfg)), name="rnnaccel", do_build=False)
    il, constraints = plan.files["rnnaccel.il"], plan.files.get("rnnaccel.pcf") or plan.files.get("rnnaccel.lpf")
    assert "spi_flash" in constraints
    assert ".weight_source.reader" in il  # the FlashSource's reader, in place of the simulated flash
    assert "\\image" not in il  # the simulated flash's memory (the stream image) is not built
    if board == "ulx3s":
        assert "USRMCLK" in il  # the ECP5's configuration clock pin


@pytest.mark.slow  # suite budget (about 2 minutes); the figures are in the closing note of issue 13
def test_real_bitstream_streamed_weights_icebreaker(tmp_path):
    """lstm-small-ice40 with its weights streamed from the flash: fits the iCE40UP5K and meets 12 MHz; the stream
    image is written beside the bitstream with its offset."""
    cfg = preset("lstm-small-ice40").replace(weight_source="flash")
    report = board_build.build_board(cfg, random_weights(cfg), "icebreaker", tmp_path, progress=lambda m: None)
    assert report["timing_met"], report
    assert report["utilization"]["spram"]["used"] == 0
    image = report["flash_image"]
    assert image["offset"] == 0x100000 and Path(image["file"]).stat().st_size == image["bytes"] > 0


def test_runtime_weights_board_top(tmp_path):
    cfg = preset("tiny").replace(weights_in_rom=False)
    plan = get_platform("icebreaker").build(BoardTop(cfg, None), name="rnnaccel", do_build=False)
    assert "rnnaccel.il" in plan.files


def test_platform_lookup_errors():
    assert set(BOARDS) >= {"icebreaker", "ulx3s"}
    with pytest.raises(BoardError, match="unknown board 'ice'"):
        get_platform("ice")
    with pytest.raises(BoardError, match="cannot import"):
        get_platform("no_such_module:Board")
    with pytest.raises(BoardError, match="has no platform class"):
        get_platform("amaranth_boards.icebreaker:Nope")
    p = get_platform("amaranth_boards.icebreaker:ICEBreakerPlatform")
    assert p.device == "iCE40UP5K"


def test_parse_nextpnr_report():
    raw = {
        "utilization": {
            "ICESTORM_LC": {"used": 4000, "available": 5280},
            "ICESTORM_DSP": {"used": 7, "available": 8},
            "ICESTORM_RAM": {"used": 20, "available": 30},
            "SB_IO": {"used": 5, "available": 96},
        },
        "fmax": {"clk": {"achieved": 31.5, "constraint": 12.0}},
    }
    rep = board_build.parse_nextpnr_report(raw, {"logic": 5280, "dsp": 8, "bram": 30, "spram": 4}, 12.0)
    assert rep["utilization"]["logic"] == {"used": 4000, "available": 5280}
    assert rep["utilization"]["spram"] == {"used": 0, "available": 4}
    assert rep["fmax_mhz"] == 31.5 and rep["timing_met"]
    assert not board_build.parse_nextpnr_report(raw, {}, 40.0)["timing_met"]


def _captured(name: str) -> dict:
    return json.loads((DATA / f"nextpnr_report_{name}.json").read_text())


def test_critical_path_of_a_captured_ice40_report():
    raw = _captured("lstm-small-ice40_icebreaker")
    rep = board_build.parse_nextpnr_report(raw, {"logic": 5280, "dsp": 8, "bram": 30, "spram": 4}, 12.0)
    path = rep["critical_path"]
    assert path["clock"] == "cd_sync.clk"
    # the segments add up to the period of the Fmax nextpnr reports for the clock (delays rounded to 1 ps)
    assert 1000.0 / path["delay_ns"] == pytest.approx(raw["fmax"]["cd_sync.clk"]["achieved"], rel=1e-4)
    assert path["logic_ns"] + path["routing_ns"] < path["delay_ns"]  # plus clock-to-out and setup
    # a path through the host link: ten LUTs, no carry chain, eleven nets
    assert path["start_net"] == "link.engine.tx_idx[0]"
    assert path["start"].startswith("link.engine.tx_idx") and path["end"].startswith("link.uart_tx.shreg")
    assert (path["logic_levels"], path["carry_cells"], path["routing_hops"]) == (10, 0, 11)
    assert path["sources"] == []  # only Yosys' techmap library is named on these nets


def test_critical_path_of_a_captured_ecp5_report():
    raw = _captured("tiny_ulx3s")
    path = board_build.critical_path(raw)
    assert path["clock"] == "$glbnet$cd_sync.clk"
    assert 1000.0 / path["delay_ns"] == pytest.approx(raw["fmax"][path["clock"]]["achieved"], rel=1e-4)
    # the tanh unit's interpolation: carry chains (each chain one level, its further cells counted apart)
    assert path["start_net"] == "link.engine.accel.gate_4_update.tanh_g.prod4[6]"
    assert path["end"] == "link.engine.accel.gate_4_update.tanh_g.o_data_TRELLIS_FF_Q_2.LSR"
    assert (path["logic_levels"], path["carry_cells"], path["routing_hops"]) == (9, 24, 10)
    assert [s.rsplit("/", 1)[-1] for s in path["sources"]] == [
        "pipeline.py:53",
        "fixedpoint.py:195",
        "activation.py:206",
        "fixedpoint.py:207",
    ]
    summary = board_build.format_report(
        {
            "board": "ulx3s",
            "device": "LFE5U-85F",
            "preset": "tiny",
            "config_hash": "0",
            "build_seconds": 1.0,
            "utilization": {},
            "fmax_mhz": 69.09,
            "target_mhz": 25.0,
            "timing_met": True,
            "critical_path": path,
            "cycles_per_step": 114,
            "ideal_cycles_per_step": 64,
        }
    )
    assert "critical path: 14.47 ns" in summary and "9 logic levels + 24 carry cells, 10 routing hops" in summary
    assert "tanh_g.prod4[6]" in summary and "activation.py:206" in summary


def test_critical_path_picks_the_slowest_clock():
    def path(clock, delays):
        segs = [
            {
                "type": "clk-to-q",
                "delay": delays[0],
                "from": {"cell": f"{clock}_a", "port": "Q"},
                "to": {"cell": f"{clock}_a", "port": "Q"},
            },
            {
                "type": "routing",
                "delay": delays[1],
                "net": f"{clock}_net",
                "sources": ["/share/x.v:1", "top.py:3"],
                "from": {"cell": f"{clock}_a", "port": "Q"},
                "to": {"cell": f"{clock}_b", "port": "D"},
            },
            {
                "type": "setup",
                "delay": delays[2],
                "from": {"cell": f"{clock}_b", "port": "D"},
                "to": {"cell": f"{clock}_b", "port": "D"},
            },
        ]
        return {"from": f"posedge {clock}", "to": f"posedge {clock}", "path": segs}

    raw = {
        "fmax": {"fast": {"achieved": 200.0}, "slow": {"achieved": 100.0}},
        "critical_paths": [
            path("fast", [1.0, 3.0, 1.0]),
            path("slow", [2.0, 7.0, 1.0]),
            {"from": "<async>", "to": "posedge slow", "path": path("x", [9, 9, 9])["path"]},
        ],
    }
    got = board_build.critical_path(raw)
    assert (got["clock"], got["delay_ns"], got["start"], got["end"]) == ("slow", 10.0, "slow_a.Q", "slow_b.D")
    assert (got["logic_levels"], got["routing_hops"], got["sources"]) == (0, 1, ["top.py:3"])
    # reports without paths (nextpnr before 0.4) give none, and the summary leaves the line out
    assert board_build.critical_path({"fmax": raw["fmax"]}) is None
    assert board_build.format_critical_path(None) == []


def test_bracket_identifiers_are_renamed():
    """Amaranth's array views (``\\o_acc[12]`` beside the port ``\\o_acc``) get names that cannot read as bit
    selects; bit selects themselves (``\\o_acc [441:408]``, with a space) and strings stay as they are."""
    text = (
        "  wire width 34 signed \\o_acc[12]\n  wire width 544 output 6 \\o_acc\n  wire \\o_acc_12_\n"
        '  wire width 4 \\v[0][1]\n  attribute \\src "x[3] \\y[1]"\n'
        "connect \\o_acc[12] \\o_acc [441:408]\nconnect \\v[0][1] \\v_0_1_\n"
    )
    out = board_build.rename_bracket_identifiers(text)
    assert out == (
        "  wire width 34 signed \\o_acc_12_1\n  wire width 544 output 6 \\o_acc\n  wire \\o_acc_12_\n"
        '  wire width 4 \\v_0_1_1\n  attribute \\src "x[3] \\y[1]"\n'
        "connect \\o_acc_12_1 \\o_acc [441:408]\nconnect \\v_0_1_1 \\v_0_1_\n"
    )


def test_missing_programmer(monkeypatch):
    monkeypatch.setattr(board_build, "which", lambda name: None)
    with pytest.raises(BoardError, match="iceprog not found"):
        board_build.program_board(get_platform("icebreaker"), None, "icebreaker")
    with pytest.raises(BoardError, match="openFPGALoader not found"):
        board_build.program_board(get_platform("ulx3s"), None, "ulx3s")


def test_cli_build_and_infer_errors(tmp_path, capsys):
    assert cli.main(["new", "--preset", "tiny", "-o", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    assert cli.main(["build", str(tmp_path / "m"), "--board", "nosuchboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown board" in err[0]
    np.save(tmp_path / "x.npy", np.zeros((2, 8), np.float32))
    assert (
        cli.main(
            [
                "infer",
                str(tmp_path / "m"),
                "--port",
                str(tmp_path / "ttyNONE"),
                "--inputs",
                str(tmp_path / "x.npy"),
                "-o",
                str(tmp_path / "y.npy"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnaccel: error:") and "ttyNONE" in err[0]


@pytest.mark.slow  # suite budget (2.5 min): CI keeps the ECP5 synthesis checks (test_synth) and the iCE40 build
def test_real_bitstream_ulx3s_meets_timing(tmp_path):
    """A real bitstream with the YoWASP tools: the tiny preset on the ULX3S-85F at its 25 MHz clock."""
    cfg = preset("tiny")
    report = board_build.build_board(cfg, random_weights(cfg), "ulx3s", tmp_path, progress=lambda m: None)
    assert report["timing_met"], report
    assert (tmp_path / "build" / "rnnaccel.bit").stat().st_size > 100_000
    assert report["utilization"]["dsp"]["used"] >= cfg.multipliers
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["fmax_mhz"] == report["fmax_mhz"]
    _check_critical_path(saved)


def _check_critical_path(report: dict):
    """The worst path is in report.json: its delay is the slowest clock's period, with endpoints and levels."""
    path = report["critical_path"]
    assert 1000.0 / path["delay_ns"] == pytest.approx(report["fmax_mhz"], rel=1e-3), path
    assert path["start"] and path["end"] and path["start_net"], path
    assert path["logic_levels"] >= 1 and path["routing_hops"] >= 1, path


@pytest.mark.slow
def test_real_bitstream_icebreaker_meets_timing(tmp_path):
    """A real bitstream with the YoWASP tools: the lstm-small model shape (lstm-small-ice40) on the
    iCEBreaker's iCE40UP5K at its 12 MHz clock (serial datapath), multipliers in DSPs, memories in block RAM.
    Slow tier (suite budget): CI builds lstm512-ice40 (the same serial datapath, its weights in SPRAM) for the
    UP5K; the ECP5 build of tiny is in the slow tier too (test_synth checks the ECP5 mapping in CI)."""
    cfg = preset("lstm-small-ice40")
    report = board_build.build_board(cfg, random_weights(cfg), "icebreaker", tmp_path, progress=lambda m: None)
    assert report["timing_met"], report
    assert report["target_mhz"] == 12.0
    assert (tmp_path / "build" / "rnnaccel.bin").stat().st_size > 100_000
    util = report["utilization"]
    for kind in ("logic", "dsp", "bram"):
        assert util[kind]["used"] <= util[kind]["available"]
    assert util["dsp"]["used"] >= cfg.multipliers
    assert report["cycles_per_step"] > cfg.ideal_cycles_per_step
    _check_critical_path(report)


def test_real_bitstream_lstm512_fits_the_up5k(tmp_path):
    """lstm512-ice40 (512x512 LSTM, k = 16, 128 KiB of weights) on the iCEBreaker: the weights fill the
    four SPRAMs, everything else fits in the block RAMs, DSPs and logic, and timing is met at 12 MHz."""
    cfg = preset("lstm512-ice40")
    report = board_build.build_board(cfg, None, "icebreaker", tmp_path, progress=lambda m: None)
    assert report["timing_met"], report
    util = report["utilization"]
    for kind in ("logic", "dsp", "bram", "spram"):
        assert util[kind]["used"] <= util[kind]["available"], (kind, util[kind])
    assert util["spram"]["used"] == 4
    assert util["dsp"]["used"] >= cfg.multipliers
    assert (tmp_path / "build" / "rnnaccel.bin").stat().st_size > 100_000
    assert report["target_mhz"] == 12.0
    _check_critical_path(json.loads((tmp_path / "report.json").read_text()))


def test_overflow_is_reported_as_a_fit_error(tmp_path):
    log = tmp_path / "rnnaccel.tim"
    log.write_text(
        "Info: Device utilisation:\n"
        "Info: \t         ICESTORM_LC:    7823/   5280   148%\n"
        "Info: \t        ICESTORM_RAM:      29/     30    96%\n"
        "Info: \t        ICESTORM_DSP:      22/      8   275%\n"
        "ERROR: Unable to place cell 'x', no BELs remaining to implement cell type 'ICESTORM_DSP'\n"
    )
    assert board_build.overflowing_resources(log) == ["7823 ICESTORM_LC of 5280", "22 ICESTORM_DSP of 8"]
    assert board_build.overflowing_resources(tmp_path / "missing.tim") == []
