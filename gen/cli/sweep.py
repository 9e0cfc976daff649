"""``rnnaccel sweep SPEC.toml -o OUT`` (many designs of one model, measured: simulation, real builds, one table)
and ``rnnaccel fit MODEL --board B -o OUT`` (the fastest design of a model that fits a board).

Wired into :mod:`rnnaccel.cli.main` with :func:`add_parser`; the work is done by :mod:`rnnaccel.explore`.
"""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "cmd_sweep", "add_fit_parser", "cmd_fit"]

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
  data = "test.npz"             # each point's golden accuracy (a model
                                # directory base with head.npz)
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


FIT_DESCRIPTION = """\
Find the fastest design of a model that fits a board. The model's arithmetic
(cell, block size, Q formats, tables, modes) is kept; the design's own fields
vary: the array datapath's PE grid (up to 4 x 4) and stacked projection
memories, the serial datapath's lanes and (iCE40) weight memory. Every
candidate is simulated for its cycles per step; designs with more MAC
multipliers than the device's DSPs are dropped; the rest are built, fewest
cycles first, until no unbuilt one could beat the best time per step at Fmax
(or --max-builds); the winner is built again at a PLL clock 5% under its Fmax.
Writes OUT as a model directory with the chosen config (and the model's
weights) ready for rnnaccel build OUT --board B --freq F, and OUT/fit.json
with every candidate's figures. Work (tables, builds) goes to OUT/fit-work
(or --work), so a second run reuses it.
"""


def add_fit_parser(subparsers) -> argparse.ArgumentParser:
    s = subparsers.add_parser(
        "fit",
        help="find the fastest design of a model that fits a board (simulation to rank, real builds to confirm)",
        description=FIT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("model", help="model directory")
    s.add_argument("--board", required=True, help="icebreaker, ulx3s (85F), ulx3s-45f, ... or module:Class")
    s.add_argument("-o", "--output", required=True, help="model directory to write with the chosen design")
    s.add_argument(
        "--vary",
        action="append",
        metavar="FIELD=V1,V2",
        help="also vary an arithmetic field (changes the results: e.g. interpolate=false,true); repeatable",
    )
    s.add_argument("--jobs", "-j", type=int, default=1, metavar="N", help="local worker processes (default 1)")
    s.add_argument("--dask", metavar="ADDRESS", help="Dask scheduler (tcp://HOST:8786) or local:N")
    s.add_argument("--max-builds", type=int, default=12, metavar="N", help="builds at most (default 12)")
    s.add_argument("--work", metavar="DIR", help="work folder (default OUT/fit-work)")
    s.add_argument("--no-confirm", action="store_true", help="skip the build at the PLL clock")
    s.add_argument("--data", metavar="D.npz", help="measure each candidate's golden accuracy (the model's head.npz)")
    s.add_argument("--min-accuracy", type=float, metavar="A", help="drop candidates below this accuracy (0..1)")
    s.add_argument(
        "--build-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a build after this long (a candidate that does not route can take hours); the next is built",
    )
    s.add_argument(
        "--max-dsp-share",
        type=float,
        default=1.0,
        metavar="F",
        help="drop designs whose MAC multipliers take more than this share of the device's DSPs (a routing "
        "margin; default 1)",
    )
    s.add_argument("--force", action="store_true", help="overwrite a model directory at OUT")
    s.set_defaults(func=cmd_fit)
    return s


def _parse_vary(items) -> dict:
    from .common import CLIError, parse_set

    out = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"--vary takes FIELD=V1,V2, not {item!r}")
        name, values = item.split("=", 1)
        parsed = [parse_set([f"{name}={v.strip()}"])[name.strip()] for v in values.split(",") if v.strip()]
        if not parsed:
            raise CLIError(f"--vary {name}: give at least one value")
        out[name.strip()] = parsed
    return out


def cmd_fit(args) -> int:
    from pathlib import Path

    from .common import CLIError
    from ..explore.fit import FitError, fit_model, write_fit
    from ..explore.sweep import SweepError, sigterm_interrupts
    from ..numeric.config import FIELDS
    from ..numeric.model import CONFIG_FILE

    if args.jobs < 1:
        raise CLIError(f"--jobs must be 1 or more, not {args.jobs}")
    if args.max_builds < 1:
        raise CLIError(f"--max-builds must be 1 or more, not {args.max_builds}")
    vary = _parse_vary(args.vary)
    for name in vary:
        if name not in FIELDS:
            raise CLIError(f"--vary {name}: not a config field")
    out = Path(args.output)
    if (out / CONFIG_FILE).exists() and not args.force:
        raise CLIError(f"{out} already holds a model; pass --force to overwrite it")
    if not (Path(args.model) / CONFIG_FILE).is_file():
        raise CLIError(f"{args.model}: not a model directory (no {CONFIG_FILE})")
    from ..boards.platforms import BoardError, get_platform

    try:
        get_platform(args.board)
    except BoardError as exc:
        raise CLIError(str(exc)) from None
    if args.build_timeout is not None and not args.build_timeout > 0:
        raise CLIError(f"--build-timeout must be a positive number of seconds, not {args.build_timeout:g}")
    work = Path(args.work) if args.work else out / "fit-work"
    restore_sigterm = sigterm_interrupts()  # SIGTERM stops the whole fit like Ctrl-C, between its sweeps too
    try:
        res = fit_model(
            args.model,
            args.board,
            work,
            vary=vary,
            jobs=args.jobs,
            dask=args.dask,
            max_builds=args.max_builds,
            confirm=not args.no_confirm,
            data=args.data,
            min_accuracy=args.min_accuracy,
            build_timeout=args.build_timeout,
            max_dsp_share=args.max_dsp_share,
        )
    except (FitError, SweepError) as exc:
        raise CLIError(str(exc)) from None
    finally:
        restore_sigterm()
    path = write_fit(res, args.model, out, args.board)
    c = res.chosen
    print(
        f"{res.candidates} candidates, {res.simulated} simulated, {res.built} built, {len(res.pruned)} pruned "
        "(fit.json lists why)"
    )
    print(f"chosen: {c['label']}")
    print(
        f"  {c['cycles_per_step']} cycles per step ({c['mac_utilization']:.1%} of the multipliers busy), "
        f"Fmax {c['fmax_mhz']} MHz: {c['us_per_step_fmax']:.2f} us per step; {c['logic']}/{c['logic_available']} "
        f"logic, {c['dsp']}/{c['dsp_available']} DSP, {c['bram']}/{c['bram_available']} block RAM"
    )
    for r in res.ranking[1:4]:
        print(f"  runner-up: {r['us_per_step_fmax']:.2f} us per step at {r['fmax_mhz']} MHz: {r['label']}")
    if res.freq_mhz:
        print(
            f"confirmed at {res.freq_mhz:g} MHz (PLL), timing met: {c['cycles_per_step'] / res.freq_mhz:.2f} us per "
            f"step; its bitstream is in {res.confirm['build_dir']}/build"
        )
    if c.get("accuracy") is not None:
        print(f"  golden accuracy on {args.data}: {c['accuracy']:.2%}")
    for note in res.notes:
        print(f"note: {note}")
    print(f"wrote {out}/ and {path}")
    freq = f" --freq {res.freq_mhz:g}" if res.freq_mhz else ""
    print(f"next: rnnaccel build {out} --board {args.board}{freq}")
    return 0
