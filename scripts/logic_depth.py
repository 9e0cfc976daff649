#!/usr/bin/env python3
"""Logic depth of every register and memory input of a synthesized design, grouped by module (issue 15).

nextpnr reports one critical path per clock. When a design's Fmax does not move after that path is cut, the
cause is usually a wall of paths of about the same depth; this script maps that wall before place and route.
It reads the Yosys JSON netlist of a build (``BUILD/build/rnnaccel.json``, written by ``rnnaccel build``),
walks the combinational cells from every start point (flip-flop outputs, memory and DSP outputs, pins) to every
end point (flip-flop D / enable / reset, memory and DSP inputs) and prints:

* the number of end points per LUT depth (LUT4 levels on the deepest path; carry cells counted apart),
* the modules with the most end points at ``--min-levels`` or more,
* the ``--top`` deepest end points with the start of their deepest path.

A LUT level costs about 2.5 ns on the iCE40UP5K (LUT and a routing hop), so the 48 MHz of issue 15 (20.8 ns, a
flip-flop's clock-to-out and setup included) allows about 7 levels, fewer with carry chains. Depth is not delay:
routing varies, and carry cells are fast (about 0.3 ns each). Nothing is asserted here.

    python scripts/logic_depth.py out/build/lstm-small-ice40-icebreaker
    python scripts/logic_depth.py BUILD --min-levels 8 --top 30
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
from pathlib import Path

#: combinational cells: type -> (LUT levels, carry cells) added by the cell
COMBINATIONAL = {
    "SB_LUT4": (1, 0),
    "SB_CARRY": (0, 1),
    "LUT4": (1, 0),  # ECP5
    "CCU2C": (1, 1),
    "PFUMX": (0, 0),
    "L6MUX21": (0, 0),
}
#: relative cost of a carry cell against a LUT level (to pick the deepest path)
CARRY_COST = 0.12

_SUFFIX = re.compile(r"(_SB_|_TRELLIS_|_LUT4_|\$).*$")


def _load(path: Path) -> dict:
    if path.is_dir():
        for cand in (path / "build" / "rnnaccel.json", path / "rnnaccel.json"):
            if cand.is_file():
                path = cand
                break
        else:
            raise SystemExit(f"no rnnaccel.json in {path} or {path}/build (run rnnaccel build first)")
    netlist = json.loads(path.read_text())
    tops = [m for m in netlist["modules"].values() if m.get("attributes", {}).get("top")]
    return tops[0] if tops else next(iter(netlist["modules"].values()))


def analyse(module: dict):
    """End points as (cost, levels, carries, end label, start label, the deepest path's nets)."""
    cells = module["cells"]
    names: dict[int, str] = {}
    for name, net in module.get("netnames", {}).items():
        for bit in net["bits"]:
            if isinstance(bit, int) and (bit not in names or (net.get("hide_name") == 0 and "$" in names[bit])):
                names[bit] = name if len(net["bits"]) == 1 else f"{name}[{net['bits'].index(bit)}]"
    driver: dict[int, str] = {}
    for cname, cell in cells.items():
        if cell["type"] in COMBINATIONAL:
            for port, bits in cell["connections"].items():
                if cell["port_directions"].get(port) == "output":
                    for b in bits:
                        if isinstance(b, int):
                            driver[b] = cname
    memo: dict[int, tuple] = {}
    prev: dict[int, int] = {}  # bit -> the input bit of its driver on the deepest path

    def arrival(bit) -> tuple:
        """(cost, levels, carries, start bit) of the deepest path ending at ``bit``."""
        if not isinstance(bit, int):
            return (0.0, 0, 0, None)
        if bit in memo:
            return memo[bit]
        cname = driver.get(bit)
        if cname is None:  # a start point: register, memory, DSP or pin output
            memo[bit] = (0.0, 0, 0, bit)
            return memo[bit]
        cell = cells[cname]
        memo[bit] = (0.0, 0, 0, bit)  # a combinational loop (none expected) ends here
        worst, via = (0.0, 0, 0, None), None
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for b in bits:
                    a = arrival(b)
                    if a[0] > worst[0] or worst[3] is None:
                        worst, via = a, b
        lv, ca = COMBINATIONAL[cell["type"]]
        memo[bit] = (worst[0] + lv + CARRY_COST * ca, worst[1] + lv, worst[2] + ca, worst[3])
        if isinstance(via, int):
            prev[bit] = via
        return memo[bit]

    def trace(bit) -> list[str]:
        """The nets of the deepest path ending at ``bit``, start first."""
        out = []
        while isinstance(bit, int):
            out.append(names.get(bit, f"bit {bit}"))
            bit = prev.get(bit)
        return out[::-1]

    ends = []
    for cname, cell in cells.items():
        if cell["type"] in COMBINATIONAL or cell["type"].startswith("$"):
            continue
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) != "input" or port in ("C", "CLK", "RCLK", "WCLK", "CLKA", "CLKB"):
                continue
            for b in bits:
                cost, lv, ca, start = arrival(b)
                if lv == 0 and ca == 0:
                    continue
                label = f"{_register_name(cname, cell, names)}.{port}"
                ends.append((cost, lv, ca, label, names.get(start, f"bit {start}"), trace(b)))
    return ends


def _register_name(cname: str, cell: dict, names: dict) -> str:
    """A readable name of a sequential cell: its output net's name where there is one."""
    for port, bits in cell["connections"].items():
        if cell["port_directions"].get(port) == "output" and bits and isinstance(bits[0], int) and bits[0] in names:
            return _SUFFIX.sub("", names[bits[0]].split("[")[0]) or cname
    return _SUFFIX.sub("", cname) or cname


def _module_of(label: str) -> str:
    path = label.rsplit(".", 2)[0]
    return path if path else "(top)"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", help="a build folder of rnnaccel build, or a Yosys JSON netlist")
    ap.add_argument("--min-levels", type=int, default=7, help="end points this deep are counted per module (7)")
    ap.add_argument("--top", type=int, default=20, help="deepest end points listed (20)")
    ap.add_argument("--trace", type=int, default=0, metavar="N", help="print the nets of the N deepest paths")
    args = ap.parse_args(argv)
    sys.setrecursionlimit(1_000_000)
    ends = analyse(_load(Path(args.build)))
    ends.sort(key=lambda e: -e[0])
    hist = collections.Counter(e[1] for e in ends)
    print(f"{len(ends)} end points behind logic; LUT levels of their deepest paths:")
    for lv in sorted(hist):
        print(f"  {lv:3d} levels: {hist[lv]}")
    deep = [e for e in ends if e[1] >= args.min_levels]
    per = collections.Counter(_module_of(e[3]) for e in deep)
    print(f"\n{len(deep)} end points at {args.min_levels} levels or more, by module:")
    for mod, n in per.most_common(15):
        worst = max(e[1] for e in deep if _module_of(e[3]) == mod)
        print(f"  {n:5d}  (up to {worst:2d} levels)  {mod}")
    print(f"\nthe {args.top} deepest end points (levels + carry cells, end <- start of the deepest path):")
    for _, lv, ca, end, start, _ in ends[: args.top]:
        print(f"  {lv:2d} + {ca:2d}  {end}  <-  {start}")
    for _, lv, ca, end, _, nets in ends[: args.trace]:
        print(f"\n{end} ({lv} levels, {ca} carry cells):")
        for net in nets:
            print(f"    {net}")


if __name__ == "__main__":
    main()
