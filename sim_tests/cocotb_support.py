"""Shared helpers for cocotb tests of the generated Verilog (Icarus and Verilator).

Usage from a pytest test::

    from cocotb_support import write_case, run_cocotb, write_verilog

    src = write_verilog(ActivationStream(cfg, "tanh", 16, 11), tmp_path / "act.v", "act")
    case = write_case(tmp_path / "case.json", {"config": cfg.to_dict(), "fn": "tanh", ...})
    run_cocotb([src], "act", "activation_tb", "icarus", tmp_path / "build",
               extra_env={CASE_ENV: str(case)}, python_paths=[TB_DIR])

* :func:`write_verilog` converts a component deterministically
  (``emit_src=False``: no source paths, byte-identical for the same design).
* :func:`run_cocotb` builds and runs with :mod:`cocotb_tools.runner`. A
  simulator that is not installed is an error (:class:`rnnaccel.flow.toolchain.ToolMissing`),
  never a skip; any failing or missing cocotb test raises
  :class:`CocotbFailure` with the tail of the simulation log, so the pytest
  test fails.
* Test data travels by file: the pytest side writes a JSON file
  (:func:`write_case`) and passes its path in the environment variable
  :data:`CASE_ENV`; the cocotb module reads it back with :func:`read_case`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from rnnaccel.flow.rtl import SIMULATORS, CocotbFailure, write_verilog
from rnnaccel.flow.rtl import run_cocotb as _run_cocotb

__all__ = ["SIMULATORS", "CASE_ENV", "CocotbFailure", "write_verilog", "write_case", "read_case", "run_cocotb"]

#: Environment variable holding the path of the JSON test case.
CASE_ENV = "RNNACCEL_TB_CASE"


def write_case(path: str | os.PathLike, case: Mapping[str, Any]) -> Path:
    """Write a JSON test case (plain data: numbers, strings, lists, dicts) for a cocotb module."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(case, sort_keys=True))
    return path


def read_case() -> dict[str, Any]:
    """In a cocotb module: the JSON test case named by :data:`CASE_ENV`."""
    try:
        where = os.environ[CASE_ENV]
    except KeyError:
        raise RuntimeError(f"{CASE_ENV} is not set: run this cocotb module through run_cocotb()") from None
    return json.loads(Path(where).read_text())


def run_cocotb(
    sources: Sequence[str | os.PathLike],
    toplevel: str,
    test_module: str,
    simulator: str,
    build_dir: str | os.PathLike,
    *,
    extra_env: Mapping[str, str] | None = None,
    python_paths: Sequence[str | os.PathLike] = (),
    testcase: str | None = None,
    seed: int = 0,
    waves: bool = False,
) -> tuple[int, Path]:
    """:func:`rnnaccel.flow.rtl.run_cocotb` with this folder on the simulator's Python path
    (so cocotb modules can ``from cocotb_support import read_case``). Always rebuilds."""
    return _run_cocotb(
        sources,
        toplevel,
        test_module,
        simulator,
        build_dir,
        extra_env=extra_env,
        python_paths=[*python_paths, Path(__file__).parent],
        testcase=testcase,
        seed=seed,
        waves=waves,
        rebuild=True,
    )
