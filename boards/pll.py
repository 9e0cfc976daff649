"""Clock planning for a board build: a PLL's Verilog from the toolchain's own calculators.

:func:`plan_pll` runs ``icepll`` (iCE40) or ``ecppll`` (ECP5) when a build asks
for a clock other than the board's oscillator, and returns a :class:`PLL`
that :class:`~rnnaccel.boards.top.BoardTop` instantiates (the board top runs
no tools).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..flow.toolchain import which
from .platforms import BoardError

__all__ = ["PLL", "plan_pll", "pll_verilog"]


@dataclass(frozen=True)
class PLL:
    """A PLL module ``rnnaccel_pll`` (clock_in -> clock_out, locked): its Verilog and the clock it makes."""

    verilog: str
    achieved_mhz: float


def plan_pll(platform, freq_mhz: float | None, workdir: str | Path) -> PLL | None:
    """The PLL that makes ``freq_mhz`` from ``platform``'s oscillator, or None when none is needed."""
    default_hz = platform.default_clk_frequency
    if not freq_mhz or abs(freq_mhz * 1e6 - default_hz) <= 1:
        return None
    text, achieved = pll_verilog(getattr(platform, "family", ""), default_hz / 1e6, freq_mhz, Path(workdir))
    return PLL(text, achieved)


def pll_verilog(family: str, in_mhz: float, out_mhz: float, workdir: Path) -> tuple[str, float]:
    """Verilog of a PLL module ``rnnaccel_pll`` (clock_in -> clock_out, locked) from icepll / ecppll.

    Returns (verilog text, achieved MHz).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    family = family.lower()
    if family == "ice40":
        # SB_PLL40_PAD: the board oscillator is on the PLL's own pad (pin 35 of the iCEBreaker's UP5K),
        # which then feeds only the PLL (an SB_IO on that pad blocks the PLL site)
        cmd = [
            "yowasp-icepll",
            "-i",
            f"{in_mhz:g}",
            "-o",
            f"{out_mhz:g}",
            "-p",
            "-m",
            "-n",
            "rnnaccel_pll",
            "-f",
            "pll.v",
        ]
    elif family == "ecp5":
        cmd = [
            "yowasp-ecppll",
            "-i",
            f"{in_mhz:g}",
            "-o",
            f"{out_mhz:g}",
            "-n",
            "rnnaccel_pll",
            "--clkin_name",
            "clock_in",
            "--clkout0_name",
            "clock_out",
            "-f",
            "pll.v",
        ]
    else:
        raise BoardError(f"no PLL support for the {family} family: build at the board's clock (omit --freq)")
    exe = which(cmd[0])
    if exe is None:
        raise BoardError(f"{cmd[0]} not found: install the boards extra (pip install 'rnnaccel[boards]')")
    proc = subprocess.run([exe, *cmd[1:]], cwd=workdir, capture_output=True, text=True)
    path = workdir / "pll.v"
    if proc.returncode != 0 or not path.is_file():
        raise BoardError(f"{cmd[0]} cannot make {out_mhz:g} MHz from {in_mhz:g} MHz: {proc.stderr.strip()[:200]}")
    text = path.read_text()
    found = re.search(r"Achieved output frequency:\s*([\d.]+)", text) or re.search(
        r"clkout0 frequency:\s*([\d.]+)", proc.stdout + proc.stderr
    )
    achieved = float(found.group(1)) if found else out_mhz
    return text, achieved
