#!/usr/bin/env python3
"""Resources and Fmax of the quad-SPI flash reader on its own, on the boards.

Two numbers per configuration:

* Yosys (``synth_ice40`` / ``synth_ecp5``) on :class:`rnnaccel.hw.flash.FlashReader` alone, its pins
  as top-level ports (``scripts/synth_report.py``);
* a full board build (YoWASP yosys + nextpnr, the board's pins through :class:`~rnnaccel.hw.flash.FlashSource`)
  of :class:`FlashDemo`: the source streaming from 1 MiB, every word XOR-folded into a register whose
  parity drives LED 0, so nothing is optimized away. nextpnr's report gives the logic cells and Fmax.

Usage::

    python scripts/flash_report.py [--board icebreaker|ulx3s ...] [--width 16] [--divider 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from amaranth.hdl import Module, Signal
from amaranth.lib import io, wiring

from rnnaccel.hw.flash import FlashReader, FlashSource

__all__ = ["FlashDemo", "build_demo", "main"]


class FlashDemo(wiring.Component):
    """The flash source on a board, streaming from ``addr``; its words XOR-folded into LED 0."""

    def __init__(self, width: int = 16, addr: int = 1 << 20, **reader_args):
        self.width = width
        self.addr = addr
        self.reader_args = reader_args
        super().__init__({})

    def elaborate(self, platform):
        m = Module()
        m.submodules.src = src = FlashSource(self.width, **self.reader_args)
        fold = Signal(self.width)
        m.d.comb += [
            src.start.valid.eq(~src.busy),
            src.start.payload.addr.eq(self.addr),
            src.start.payload.count.eq(0),
            src.o.ready.eq(1),
        ]
        with m.If(src.o.valid):
            m.d.sync += fold.eq(fold ^ src.o.payload)
        led = platform.request("led", 0, dir="-")
        m.submodules.led = buf = io.Buffer("o", led)
        m.d.comb += buf.o.eq(fold.xor())
        return m


def build_demo(board: str, out_dir: Path, width: int = 16, divider: int = 1) -> dict:
    """Build :class:`FlashDemo` for ``board``; nextpnr's utilization and Fmax (``boards.build`` format)."""
    from rnnaccel.boards.build import parse_nextpnr_report
    from rnnaccel.boards.platforms import device_totals, get_platform, toolchain_env

    platform = get_platform(board)
    env = toolchain_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        t0 = time.time()
        platform.build(
            FlashDemo(width, divider=divider, clk_hz=platform.default_clk_frequency),
            name="flash",
            build_dir=str(out_dir),
            nextpnr_opts="--report nextpnr_report.json --timing-allow-fail",
        )
        seconds = time.time() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    raw = json.loads((out_dir / "nextpnr_report.json").read_text())
    report = parse_nextpnr_report(raw, device_totals(platform), platform.default_clk_frequency / 1e6)
    report["build_seconds"] = round(seconds, 1)
    bit = out_dir / ("flash.bin" if getattr(platform, "family", "") == "ice40" else "flash.bit")
    if bit.is_file():
        report["bitstream_bytes"] = bit.stat().st_size
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", action="append", help="icebreaker (default), ulx3s, ...")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--divider", type=int, default=1)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", help="build folder (default: a temporary one)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synth_report import synth_report

    result = {"width": args.width, "divider": args.divider, "yosys": {}, "boards": {}}
    for family in ("ice40", "ecp5"):
        r = synth_report(FlashReader(args.width, divider=args.divider), family, top_name="flash_reader")
        result["yosys"][family] = {k: r[k] for k in ("luts", "ffs", "carries", "brams", "cells")}
        print(f"yosys {family}: {result['yosys'][family]}")
    for board in args.board or ["icebreaker"]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(args.keep or tmp) / board
            out.mkdir(parents=True, exist_ok=True)
            rep = build_demo(board, out, args.width, args.divider)
        result["boards"][board] = rep
        util = rep["utilization"]
        print(
            f"{board}: logic {util['logic']['used']}/{util['logic']['available']}, "
            f"Fmax {rep['fmax_mhz']:.1f} MHz (target {rep['target_mhz']:g}), built in {rep['build_seconds']} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
