"""``rnnaccel sweep SPEC.toml -o OUT``: many designs of one model, measured (simulation, real builds), one table.

Wired into :mod:`rnnaccel.cli.main` with :func:`add_parser`; the work is done by :mod:`rnnaccel.explore`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "cmd_sweep"]

DESCRIPTION = """\
Sweep config fields of one base design and measure every combination: cycles
per step from the Amaranth simulator and, for each board of the spec, a real
build (yosys + nextpnr: Fmax, logic, DSP, block RAM). Results go to
OUT/results.csv (one row per point and board, appended as they arrive) and
OUT/results.parquet, the Pareto fronts per board to OUT/pareto.csv and
OUT/pareto_<board>.png. Run the same command again to resume a sweep that was
stopped: the points OUT already holds are not run again (failed ones are);
builds are cached in OUT/builds (or --build-cache) by design, board, clock
and tool versions.

The spec (TOML):

  [base]
  preset = "lstm-small-ice40"   # or model = "DIR", or import = "model.onnx"
  set = { seed = 3 }            # optional fixed changes
  [axes]                        # every combination of these values
  pe_cols = [1, 2, 4]
  "block_size,lanes" = [[4, 4], [8, 8]]   # linked: one value each
  [run]
  boards = ["icebreaker"]       # builds; omit for simulation only
  freq = { icebreaker = 24 }    # MHz (default: the board's oscillator)
  cycles = true                 # simulate (default true)
  steps = 3                     # steps simulated; the last is reported
  max_ideal_cycles = 20000      # do not simulate points above this
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    s = subparsers.add_parser(
        "sweep",
        help="sweep config fields: cycles from simulation, resources and Fmax from real builds, Pareto fronts",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("spec", help="sweep spec (TOML)")
    s.add_argument("-o", "--output", required=True, help="results folder (resumed when it holds this sweep)")
    s.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    s.add_argument(
        "--dask",
        metavar="ADDRESS",
        help="run on a Dask distributed cluster: its scheduler (tcp://HOST:8786) or local:N (a LocalCluster of N "
        "worker processes here)",
    )
    s.add_argument("--build-cache", metavar="DIR", help="build folder shared by sweeps (default OUT/builds)")
    s.add_argument("--restart", action="store_true", help="discard OUT's results and run every point")
    s.add_argument("--limit", type=int, metavar="N", help="run at most N new points this time")
    s.add_argument("--no-plots", action="store_true", help="do not draw the Pareto plots")
    s.set_defaults(func=cmd_sweep)
    return s


def _fmt(v, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def cmd_sweep(args) -> int:
    from .common import CLIError
    from ..explore.pareto import fronts
    from ..explore.spec import SweepSpecError, load_spec
    from ..explore.sweep import SweepError, run_sweep
    from ..explore.table import TableError

    if args.jobs < 1:
        raise CLIError(f"--jobs must be 1 or more, not {args.jobs}")
    if args.limit is not None and args.limit < 0:
        raise CLIError(f"--limit must be 0 or more, not {args.limit}")
    try:
        spec = load_spec(args.spec)
    except SweepSpecError as exc:
        raise CLIError(str(exc)) from None
    n_points = len(spec.points())
    print(
        f"sweep {args.spec}: {n_points} points ({' x '.join(f'{k} {len(v)}' for k, v in spec.axes.items())}) of "
        f"{spec.base_kind} {spec.base}; "
        + (f"builds for {', '.join(spec.boards)}" if spec.boards else "no builds")
        + (f", cycles from {spec.steps} simulated steps" if spec.cycles else "")
    )
    try:
        res = run_sweep(
            spec,
            args.output,
            jobs=args.jobs,
            dask=args.dask,
            restart=args.restart,
            build_cache=args.build_cache,
            limit=args.limit,
            plots=not args.no_plots,
        )
    except (SweepError, TableError) as exc:
        raise CLIError(str(exc)) from None
    counts = ", ".join(f"{n} {s}" for s, n in sorted(res.counts.items()))
    print(
        f"{res.ran} run now, {res.reused} from earlier runs, {res.invalid} invalid points; table: {counts} "
        f"({res.seconds:.0f} s)"
    )
    for board, board_fronts in fronts(res.rows).items():
        front = board_fronts["all"]
        built = front and front[0].get("us_per_step_fmax") is not None
        print(f"Pareto front, {board or 'simulation only'} ({len(front)} points):")
        for r in front:
            if built:
                print(
                    f"  {_fmt(r['us_per_step_fmax'], 2):>9s} us/step at {_fmt(r['fmax_mhz'])} MHz, "
                    f"{r['cycles_per_step']} cycles, {r['logic']} logic, {r['dsp']} DSP, {r['bram']} BRAM: {r['label']}"
                )
            else:
                print(
                    f"  {_fmt(r['cycles_per_step'], 0):>9s} cycles/step, {r['multipliers']} multipliers, "
                    f"{r['weight_bytes']} weight bytes: {r['label']}"
                )
    for path in res.files:
        print(f"wrote {path}")
    if res.interrupted:
        print("interrupted: run the same command again to resume")
        return 130
    return 1 if res.counts.get("failed") else 0
