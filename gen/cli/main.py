"""The ``rnnaccel`` command line.

Every user error (missing or malformed file, wrong shape, NaN, unknown preset,
missing simulator) ends in a one-line ``rnnaccel: error: ...`` on stderr and
exit status 2; a traceback means a bug in rnnaccel.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .common import CLIError, load_inputs, parse_set, writable_output
from ..numeric.config import FIELDS, PRESETS, Config, ConfigError, preset
from ..numeric.fixedpoint import to_float

__all__ = ["main", "CLIError"]


def _config_from_args(args) -> Config:
    try:
        cfg = preset(args.preset)
    except KeyError as exc:
        raise CLIError(exc.args[0]) from None
    changes = parse_set(getattr(args, "set", None))
    if getattr(args, "seed", None) is not None:
        changes["seed"] = args.seed
    if changes:
        data = cfg.to_dict()
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise CLIError(f"--set {unknown[0]}: not a config field (fields: {', '.join(sorted(FIELDS))})")
        data.update(changes)
        cfg = Config.from_dict(data)
    return cfg


# ----------------------------------------------------------------------------
# commands
# ----------------------------------------------------------------------------


def cmd_new(args) -> int:
    from ..numeric.model import CONFIG_FILE, random_weights, save_model

    cfg = _config_from_args(args)
    out = Path(args.output)
    if (out / CONFIG_FILE).exists() and not args.force:
        raise CLIError(f"{out} already holds a model; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} exists and is not a directory")
    save_model(out, cfg, random_weights(cfg, scale=args.scale))
    print(
        f"wrote {out}/ ({cfg.name}: {cfg.num_layers}-layer {cfg.cell}, input {cfg.input_size}, "
        f"hidden {cfg.hidden_size}, k={cfg.block_size}, seed {cfg.seed})"
    )
    return 0


BACKEND_NAMES = ("golden", "float", "amaranth", "icarus", "verilator")


def _model_for_backend(cfg, weights, backend: str):
    from ..numeric.golden import FloatModel, IntegerModel

    if backend == "golden":
        return IntegerModel(cfg, weights)
    return FloatModel(cfg, weights)


def _hardware_config(path: str, model):
    """The design config of ``--hardware`` (a generated folder, a model directory or a TOML file), checked
    against the model (:func:`rnnaccel.layout.runtime.model_on_design`): a one-line error when it does not fit."""
    from ..layout.runtime import DoesNotFit, model_on_design
    from ..numeric.config import Config, ConfigError

    p = Path(path)
    toml = p / "rnnaccel.toml" if p.is_dir() else p
    if not toml.is_file():
        raise CLIError(f"--hardware {path}: no rnnaccel.toml there (give the folder rnnaccel generate wrote)")
    try:
        hw = Config.load(toml)
    except ConfigError as exc:
        raise CLIError(f"--hardware {toml}: {exc}") from None
    try:
        model_on_design(model, hw)
    except DoesNotFit as exc:
        raise CLIError(f"the model does not fit the design of {path}: {exc}") from None
    return hw


def cmd_run(args) -> int:
    from ..numeric.golden import InputError
    from ..numeric.model import load_model

    if args.backend not in BACKEND_NAMES:
        raise CLIError(f"unknown backend {args.backend!r} (known: {', '.join(BACKEND_NAMES)})")
    cfg, weights = load_model(args.model)
    hardware = _hardware_config(args.hardware, cfg) if args.hardware else None
    x = load_inputs(args.inputs)
    if x.ndim not in (2, 3) or x.shape[-1] != cfg.input_size:
        raise CLIError(
            f"{args.inputs}: shape {x.shape}; the model needs (T, {cfg.input_size}) or (N, T, {cfg.input_size})"
        )
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = np.argwhere(~np.isfinite(x))[0]
        raise CLIError(f"{args.inputs}: NaN or infinite value at index {tuple(int(i) for i in bad)}")
    x = x.astype(np.float64)
    out_path = writable_output(args.output)
    if args.report:
        writable_output(args.report)
    q = cfg.q_state
    outside = int(np.count_nonzero((x > q.max_value) | (x < q.min_value)))
    if outside and args.backend != "float":
        print(
            f"warning: {outside} of {x.size} inputs lie outside {q}'s range [{q.min_value:g}, {q.max_value:g}] "
            f"and saturate (largest |x| {float(np.max(np.abs(x))):.4g}); choose a wider q_state with "
            f"rnnaccel quantize --calibrate",
            file=sys.stderr,
        )
    if args.backend in ("golden", "float"):
        model = _model_for_backend(cfg, weights, args.backend)
        try:
            y = model.run(x)
        except InputError as exc:
            raise CLIError(str(exc)) from None
        report = None
    else:
        from ..flow.backends import run_backend
        from ..flow.rtl import CocotbFailure

        try:
            y, report = run_backend(
                cfg, weights, x, args.backend, waves=args.waves, cache_dir=args.cache, hardware=hardware
            )
        except CocotbFailure as exc:
            raise CLIError(f"{args.backend} simulation failed: {str(exc).splitlines()[0]}") from None
    if args.backend != "float":
        y = y.astype(np.int64) if args.raw else to_float(y, cfg.q_state).astype(np.float32)
    elif args.raw:
        raise CLIError("--raw needs an integer backend (golden or a simulator), not float")
    else:
        y = y.astype(np.float32)
    np.save(out_path, y)
    print(
        f"wrote {args.output} {y.shape} {'raw q_state integers ' + str(cfg.q_state) if args.raw else 'float32'}"
        f" ({args.backend} backend)"
    )
    if report is not None:
        import json

        if args.report:
            Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(
            f"cycles: {report['total_cycles']} total, {report['cycles_per_step']:.1f} per step "
            f"(ideal {report['ideal_cycles_per_step']}, utilization {100 * report['utilization']:.1f}%)"
        )
        if "skipped_tiles" in report:  # delta mode
            print(
                f"delta: {report['skipped_tiles']} column units skipped (zero delta); "
                f"{report['effective_macs_per_step']:.0f} of {report['dense_macs_per_step']} MACs per step done"
            )
    elif args.report:
        raise CLIError("--report needs a simulator backend (amaranth, icarus, verilator)")
    return 0


def _fft_info(cfg: Config) -> list[str]:
    """The FFT mode's formats (only in FFT mode)."""
    if not cfg.fft_mode:
        return []
    return [
        f"circulant mode: fft (spectra {cfg.q_spectrum}, twiddles Q1.14; spectral accumulator "
        f"{cfg.fft_acc_width} bits, inverse transform {cfg.fft_out_width} bits, frac {cfg.fft_acc_frac}; "
        + ("gateware: hw/serial_fft.py)" if cfg.datapath == "serial" else "no gateware on the array datapath)")
    ]


def _multiply_info(cfg: Config) -> list[str]:
    """Multiplies per step of both circulant modes, counted from the schedule (rnnaccel.numeric.fft)."""
    from ..numeric.fft import block_multiplies, step_multiplies, transform_multiplies

    m = step_multiplies(cfg)
    per = f"{cfg.block_size}^2 per block" if cfg.circulant else "dense: one per weight"
    lines = [
        f"multiplies per step, direct: {m['direct']} ({per})"
        + ("  <- this config" if not cfg.fft_mode and m["fft"] is not None else "")
    ]
    if m["fft"] is not None:
        k = cfg.block_size
        lines.append(
            f"multiplies per step, fft: {m['fft']} ({m['forward_transforms']} forward + "
            f"{m['inverse_transforms']} inverse transforms x {transform_multiplies(k)}, {m['blocks']} "
            f"blocks x {block_multiplies(k)}; {m['direct'] / m['fft']:.2f}x fewer; with 3-multiply "
            f"complex products {m['fft_3mult']}, {m['direct'] / m['fft_3mult']:.2f}x)"
            + ("  <- this config" if cfg.fft_mode else "")
        )
    return lines


def _cycle_info(cfg: Config) -> list[str]:
    """The steady-state cycles per step from the analytic cycle model (and the array datapath's loop bound)."""
    from ..explore.cycle_model import cycles_per_step, modelled

    ideal = cfg.ideal_cycles_per_step
    if not modelled(cfg) or (cfg.time_steps > 1 and ideal * cfg.time_steps > 200_000):
        # (a batch is modelled cycle by cycle in Python: a large one would take long)
        return ["cycles per step: not modelled for this design (measure: rnnaccel run ... --report R.json)"]
    model = cycles_per_step(cfg)
    if model is None:
        return ["cycles per step: not modelled (a step shorter than the input FIFO's refill; rnnaccel run --report)"]
    line = f"cycles per step, steady state (cycle model): {model} ({100 * ideal / model:.1f}% of the ideal)"
    if cfg.datapath == "array":
        from ..hw.array import loop_bound

        bound = loop_bound(cfg)
        if bound:
            line += f"; the recurrence bounds a step from below at {bound}"
    return [line]


def _info_text(cfg: Config) -> str:
    from ..numeric import lut

    lines = [
        f"model: {cfg.name}  ({cfg.num_layers}-layer {cfg.cell}"
        + (f", reset_{'after' if cfg.gru_reset_after else 'before'}" if cfg.cell == "gru" else "")
        + (f", window {cfg.qrnn_window}" if cfg.cell == "qrnn" else "")
        + f", input {cfg.input_size}, hidden {cfg.hidden_size})",
        f"config hash: {cfg.hash}",
        f"weights: {'circulant k=' + str(cfg.block_size) if cfg.circulant else 'dense'}; "
        + (
            f"PE grid {cfg.pe_rows}x{cfg.pe_cols}, {cfg.lanes} lanes/PE, {cfg.multipliers} multipliers; tile {cfg.tile}"
            if cfg.datapath == "array"
            else f"serial datapath: {cfg.lanes} lanes on {cfg.block_size}-blocks, one-word memories, "
            + (
                "fused projections (W x + U h + b + c, narrowed once)"
                if cfg.fused_projections
                else "input projections (W x + b, narrowed once)"
            )
        ),
        f"formats: weight {cfg.q_weight}, state {cfg.q_state}, cell {cfg.q_cell}, pre {cfg.q_pre}, "
        f"act {cfg.q_act}, accumulator {cfg.acc_width} bits (frac {cfg.acc_frac})",
        *_fft_info(cfg),
        "matrices (padded rows x cols, cycles per sweep):",
    ]
    for layer in range(cfg.num_layers):
        gates = ",".join(cfg.layer_gates(layer))
        for name, r, c in cfg.matrices(layer):
            lines.append(f"  layer {layer} {name} [{gates}]: {r} x {c}, {cfg.mvu_cycles(r, c)} cycles")
    saved = 100.0 * (1 - cfg.weight_words() / cfg.dense_weight_words())
    lines.append(
        f"weight memory: {cfg.weight_words()} words = {cfg.weight_bytes} bytes "
        f"(dense: {cfg.dense_weight_words()} words = {cfg.dense_weight_bytes} bytes; {saved:.1f}% saved)"
    )
    if cfg.weight_source != "onchip":
        lines.append(
            f"weights from the {cfg.weight_source}: streamed once per "
            + (f"batch of up to {cfg.time_steps} time steps" if cfg.time_steps > 1 else "time step")
            + " (rnnaccel build writes weights_flash.bin; scripts/bench_time_steps.py)"
        )
    lines.append(f"ideal cycles per step: {cfg.ideal_cycles_per_step}")
    lines += _cycle_info(cfg)
    lines += _multiply_info(cfg)
    for fn in lut.FUNCTIONS:
        err = lut.table_error(cfg, fn)
        rng = cfg.sigmoid_range if fn == "sigmoid" else cfg.tanh_range
        lines.append(
            f"{fn} table: {err['stored_words']} words over [-{rng:g}, {rng:g}), "
            f"{'interpolated' if cfg.interpolate else 'nearest'}; max abs error {err['max_abs']:.2e}, "
            f"mean {err['mean_abs']:.2e}"
        )
    return "\n".join(lines)


def cmd_generate(args) -> int:
    from ..numeric.model import load_model
    from ..flow.rtl import generate

    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} exists and is not a directory")
    say = lambda msg: print(f"[generate] {msg}")  # noqa: E731
    loaded = [load_model(d) for d in args.model]
    if len(loaded) > 1:  # a multi-programming design: one one-core model per core
        from ..flow.rtl import generate_multicore

        for d, (c, _) in zip(args.model, loaded):
            if c.cores != 1:
                raise CLIError(f"{d}: cores = {c.cores}; a programs design takes one-core models, one per core")
        manifest = generate_multicore(out, models=loaded, progress=say)
        print(f"design hash {manifest['design_hash']}; {len(loaded)} cores (programs), one model each")
        return 0
    cfg, weights = loaded[0]
    if cfg.cores > 1 and cfg.core_mode == "programs":
        raise CLIError(
            f"{args.model[0]}: a programs design of {cfg.cores} cores runs one model per core: "
            f"give {cfg.cores} model directories of one core each"
        )
    manifest = generate(cfg, weights, out, progress=say)
    if cfg.cores > 1:
        what = "layers of one stack" if cfg.core_mode == "layers" else "helpers: each a slice of every layer's rows"
        print(f"design hash {manifest['design_hash']}; {cfg.cores} cores ({what})")
        return 0
    print(
        f"design hash {manifest['design_hash']}; ideal {manifest['ideal_cycles_per_step']} cycles per step; "
        f"weights {manifest['weight_bytes']} bytes ({'ROM' if cfg.weights_in_rom else 'loaded at run time'})"
    )
    if cfg.runtime_dims:
        rt = manifest["runtime_dimensions"]
        print(
            f"run-time dimensions: runs any {cfg.cell} model with input <= {rt['max_input_size']}, hidden <= "
            f"{rt['max_hidden_size']}, layers <= {rt['max_layers']} and this design's arithmetic "
            f"({', '.join(rt['same_as_design'])}): rnnaccel run MODEL --hardware {out}"
        )
    return 0


def cmd_demo(args) -> int:
    """The main job on a built-in default: new model, generate, simulate, compare, report."""
    import time

    from ..flow.backends import run_session
    from ..numeric.fixedpoint import quantize
    from ..interface.session import golden_session
    from ..numeric.model import load_model, random_weights, save_model
    from ..flow.rtl import CocotbFailure, generate

    if args.steps < 1:
        raise CLIError(f"--steps must be 1 or more, not {args.steps}")

    t0 = time.time()
    cfg = _config_from_args(args)
    out = Path(args.output)
    model_dir, gen_dir = out / "model", out / "rtl"
    print(
        f"[1/4] model: {cfg.name}, {cfg.num_layers}-layer {cfg.cell}, input {cfg.input_size}, hidden "
        f"{cfg.hidden_size}, "
        f"k={cfg.block_size}, PE grid {cfg.pe_rows}x{cfg.pe_cols} ({cfg.multipliers} multipliers), seed {cfg.seed} "
        f"-> {model_dir}/"
    )
    save_model(model_dir, cfg, random_weights(cfg))
    cfg, weights = load_model(model_dir)
    print(f"[2/4] generating Verilog -> {gen_dir}/")
    manifest = generate(cfg, weights, gen_dir, progress=lambda msg: print(f"      {msg}"))
    rng = np.random.default_rng(cfg.seed)
    x = quantize(rng.uniform(-1, 1, size=(args.steps, cfg.input_size)), cfg.q_state)
    half = args.steps // 2
    ops = [("reset",), ("run", x[:half]), ("run", x[half:])] if half else [("reset",), ("run", x)]
    print(
        f"[3/4] simulating {args.steps} steps in {args.simulator} (cocotb"
        + ("; the sequence is fed in two calls, state carried over)" if half else ")")
    )
    try:
        outs, counters = run_session(cfg, weights, ops, args.simulator, cache_dir=args.cache, progress=True)
    except CocotbFailure as exc:
        raise CLIError(f"{args.simulator} simulation failed: {str(exc).splitlines()[0]}") from None
    want = golden_session(cfg, weights, ops)
    got_all, want_all = np.concatenate(outs), np.concatenate(want)
    mismatches = int(np.sum(got_all != want_all))
    cycles, steps = counters[-1]["cycles"], counters[-1]["steps"]
    per_step = cycles / max(1, steps)
    print(f"[4/4] comparing {got_all.size} hidden-state words with the golden model")
    verdict = "BIT-EXACT" if mismatches == 0 else f"MISMATCH in {mismatches} of {got_all.size} words"
    print()
    print(f"verdict: {verdict} ({args.simulator} vs golden, {steps} steps, {cfg.hidden_size} words per step)")
    print(
        f"cycles: {cycles} total, {per_step:.1f} per step; ideal {cfg.ideal_cycles_per_step} per step "
        f"(utilization {100 * cfg.ideal_cycles_per_step / per_step:.1f}%)"
    )
    print(
        f"weights: {manifest['weight_bytes']} bytes circulant vs {manifest['dense_weight_bytes']} dense; "
        f"Verilog {gen_dir / 'rnnaccel_top.v'}; {time.time() - t0:.1f} s"
    )
    return 0 if mismatches == 0 else 1


def _class_args(items, kind: str) -> dict:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"--{kind} takes CLASS=VALUE, not {item!r}")
        key, value = (x.strip() for x in item.split("=", 1))
        name = key if key.startswith("q_") else f"q_{key}"
        if name not in ("q_weight", "q_state", "q_cell", "q_pre", "q_act", "q_spectrum"):
            raise CLIError(f"--{kind} {key}: the classes are weight, state, cell, pre, act, spectrum")
        if kind == "width":
            try:
                out[name] = int(value)
            except ValueError:
                raise CLIError(f"--width {item}: the width must be an integer") from None
        else:
            out[name] = value
    return out


def cmd_quantize(args) -> int:
    import json

    from ..numeric.model import CONFIG_FILE, load_model, save_model
    from ..models.quantize import choose_formats, format_report

    cfg, weights = load_model(args.model)
    out = Path(args.output)
    if (out / CONFIG_FILE).exists() and not args.force:
        raise CLIError(f"{out} already holds a model; pass --force to overwrite it")
    calib = None
    if args.calibrate:
        calib = load_inputs(args.calibrate)
        if calib.ndim not in (2, 3) or calib.shape[-1] != cfg.input_size:
            raise CLIError(
                f"{args.calibrate}: shape {calib.shape}; the model needs (T, {cfg.input_size}) or "
                f"(N, T, {cfg.input_size})"
            )
        if not np.all(np.isfinite(calib)):
            raise CLIError(f"{args.calibrate}: NaN or infinite values")
        calib = calib.astype(np.float64)
        if calib.ndim == 2:
            calib = calib[None]
    widths = _class_args(args.width, "width")
    forced = _class_args(args.pin, "pin")
    new_cfg, report = choose_formats(
        cfg, weights, calib_x=calib, widths=widths or None, force=forced or None, headroom=args.headroom
    )
    save_model(out, new_cfg, weights)
    print(format_report(report))
    if args.report:
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}/")
    return 0


def cmd_build(args) -> int:
    import json

    from ..boards.build import build_board, format_report, programs_config
    from ..boards.platforms import BoardError
    from ..flow.toolchain import require_gateware
    from ..numeric.model import load_model

    loaded = [load_model(d) for d in args.model]
    models = None
    if len(loaded) > 1:  # a programs design: one model per core
        for d, (c, _) in zip(args.model, loaded):
            if c.cores != 1:
                raise CLIError(f"{d}: cores = {c.cores}; a programs build takes one-core models, one per core")
            require_gateware(c)
        models = loaded
        try:
            cfg, weights = programs_config(models), None
        except BoardError as exc:
            raise CLIError(str(exc).splitlines()[0]) from None
    else:
        cfg, weights = loaded[0]
        if cfg.cores > 1 and cfg.core_mode == "programs":
            raise CLIError(
                f"{args.model[0]}: a programs design of {cfg.cores} cores runs one model per core: "
                f"give {cfg.cores} model directories of one core each"
            )
        require_gateware(cfg, multicore=True)
    name = cfg.name if models is None else f"programs{len(models)}-{cfg.name}"
    out = Path(args.output) if args.output else Path("out") / "build" / f"{name}-{args.board.replace(':', '_')}"
    try:
        report = build_board(
            cfg,
            weights,
            args.board,
            out,
            freq_mhz=args.freq,
            baud=args.baud,
            program=args.program,
            progress=lambda msg: print(f"[build] {msg}", flush=True),
            models=models,
        )
    except BoardError as exc:
        raise CLIError(str(exc).splitlines()[0]) from None
    print(format_report(report))
    print(f"report: {out / 'report.json'}; bitstream: {report['bitstream']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["timing_met"] else 1


def cmd_infer(args) -> int:
    from ..boards.driver import LinkError, infer

    if not len(args.model) == len(args.inputs) == len(args.output):
        raise CLIError(
            f"{len(args.model)} model(s), {len(args.inputs)} --inputs and {len(args.output)} -o: give one input "
            f"file and one output file per model"
        )
    xs = [load_inputs(path) for path in args.inputs]
    for path, x in zip(args.inputs, xs):
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise CLIError(f"{path}: NaN or infinite values")
    if len(args.model) > 1:  # a multi-programming board: model i on core i
        from ..boards.driver import infer_programs

        if args.hardware:
            raise CLIError("--hardware takes one model (a design with run-time dimensions has one core)")
        try:
            ys = infer_programs(args.model, args.port, [x.astype(np.float64) for x in xs], baud=args.baud, raw=args.raw)
        except (LinkError, ValueError) as exc:
            raise CLIError(str(exc).splitlines()[0]) from None
    else:
        hardware = None
        if args.hardware:
            from ..numeric.model import load_model

            hardware = _hardware_config(args.hardware, load_model(args.model[0])[0])
        try:
            ys = [
                infer(
                    args.model[0], args.port, xs[0].astype(np.float64), baud=args.baud, raw=args.raw, hardware=hardware
                )
            ]
        except (LinkError, ValueError) as exc:
            raise CLIError(str(exc).splitlines()[0]) from None
    for core, (path, y) in enumerate(zip(args.output, ys)):
        np.save(path, y)
        where = f"core {core} of the board" if len(ys) > 1 else "board"
        print(f"wrote {path} {y.shape} ({'raw' if args.raw else 'float32'}, {where} on {args.port})")
    return 0


def cmd_info(args) -> int:
    from ..numeric.model import load_model

    if args.model is None and args.preset is None:
        raise CLIError("give a model directory or --preset NAME")
    if args.model is not None:
        cfg, _ = load_model(args.model)
    else:
        cfg = _config_from_args(args)
    print(_info_text(cfg))
    if args.toml:
        print()
        print(cfg.to_toml(), end="")
    return 0


def cmd_presets(args) -> int:
    for name, cfg in PRESETS.items():
        print(
            f"{name:15s} {cfg.num_layers}-layer {cfg.cell}, input {cfg.input_size}, hidden {cfg.hidden_size}, "
            f"k={cfg.block_size}, PEs {cfg.pe_rows}x{cfg.pe_cols}, {cfg.weight_bytes} weight bytes"
        )
    return 0


# ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rnnaccel", description="RNN inference accelerator generator")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("new", help="write a model directory with seeded random weights")
    s.add_argument("--preset", default="tiny", help=f"one of {', '.join(PRESETS)} (default tiny)")
    s.add_argument("-o", "--output", required=True, help="model directory to write")
    s.add_argument("--seed", type=int, help="seed for the weights (default: the preset's)")
    s.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field (repeatable)")
    s.add_argument("--scale", type=float, default=1.0, help="scale of the random weights (default 1)")
    s.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    s.set_defaults(func=cmd_new)

    s = sub.add_parser("run", help="run input sequences through a backend")
    s.add_argument("model", help="model directory")
    s.add_argument("--inputs", required=True, help=".npy of shape (T, input) or (N, T, input)")
    s.add_argument(
        "--backend",
        default="golden",
        help="golden (bit-exact NumPy), float (float64 reference), amaranth, icarus or verilator",
    )
    s.add_argument("-o", "--output", required=True, help=".npy to write hidden states to")
    s.add_argument("--raw", action="store_true", help="write raw q_state integers instead of floats")
    s.add_argument("--report", help="JSON report of cycle counts (simulator backends)")
    s.add_argument("--waves", help="waveform file to write (simulator backends)")
    s.add_argument("--cache", help="build cache folder (default ~/.cache/rnnaccel)")
    s.add_argument(
        "--hardware",
        metavar="DIR",
        help="run on the design generated for another config (DIR/rnnaccel.toml, with max_* fields: run-time "
        "dimensions); its Verilog is regenerated from that config, byte-identical",
    )
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("generate", help="write the Verilog, memory images, manifest and C header of a model")
    s.add_argument(
        "model",
        nargs="+",
        help="model directory (one core, or a layers or helpers config of several); several one-core model directories "
        "make a programs design, one model per core",
    )
    s.add_argument("-o", "--output", required=True, help="folder for the generated files")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("demo", help="main job on a default: new model, generate Verilog, simulate, compare with golden")
    s.add_argument("--preset", default="lstm-small", help="preset to use (default lstm-small)")
    s.add_argument("--set", action="append", metavar="FIELD=VALUE", help="override a config field")
    s.add_argument("--seed", type=int, help="seed for weights and inputs")
    s.add_argument("--simulator", default="icarus", choices=["icarus", "verilator"])
    s.add_argument("--steps", type=int, default=8, help="time steps to simulate (default 8)")
    s.add_argument("-o", "--output", default="out/demo", help="working folder (default out/demo)")
    s.add_argument("--cache", help="build cache folder (default ~/.cache/rnnaccel)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("info", help="print a model's config, sizes and weight memory")
    s.add_argument("model", nargs="?", help="model directory")
    s.add_argument("--preset", help="describe a preset instead of a model directory")
    s.add_argument("--set", action="append", metavar="FIELD=VALUE")
    s.add_argument("--toml", action="store_true", help="also print the config as TOML")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("build", help="build a bitstream for a board with the open toolchain (YoWASP)")
    s.add_argument(
        "model",
        nargs="+",
        help="model directory (one core, or a layers or helpers config of several); several one-core model "
        "directories make a programs design, one model per core",
    )
    s.add_argument("--board", required=True, help="icebreaker, ulx3s (85F), ulx3s-45f, ... or module:Class")
    s.add_argument("--freq", type=float, help="target clock in MHz (a PLL makes it; default: the board's oscillator)")
    s.add_argument("--baud", type=int, default=115200, help="UART baud rate of the host link (default 115200)")
    s.add_argument("-o", "--output", help="build folder (default out/build/<preset>-<board>)")
    s.add_argument("--json", help="also write the report here")
    s.add_argument("--program", action="store_true", help="flash the board after building (iceprog / openFPGALoader)")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("infer", help="run inputs on a flashed board over its UART host link")
    s.add_argument(
        "model",
        nargs="+",
        help="model directory (the one the bitstream was built from); several: a programs board, model i on core i",
    )
    s.add_argument("--port", required=True, help="serial port, e.g. /dev/ttyUSB0")
    s.add_argument(
        "--inputs", required=True, nargs="+", help=".npy of shape (T, input) or (N, T, input), one per model"
    )
    s.add_argument("-o", "--output", required=True, nargs="+", help=".npy to write, one per model")
    s.add_argument("--baud", type=int, default=115200)
    s.add_argument("--raw", action="store_true", help="write raw q_state integers")
    s.add_argument(
        "--hardware",
        metavar="DIR",
        help="the board runs a design with run-time dimensions generated for DIR/rnnaccel.toml (a model "
        "directory or the generate/build folder): load this model's sizes and weights into it",
    )
    s.set_defaults(func=cmd_infer)

    s = sub.add_parser("presets", help="list the named presets")
    s.set_defaults(func=cmd_presets)

    from .evaluate import add_parser as add_evaluate_parser
    from .importing import add_parser as add_import_parser
    from .retrain import add_parser as add_retrain_parser
    from .sweep import add_fit_parser
    from .sweep import add_parser as add_sweep_parser

    add_import_parser(sub)
    add_retrain_parser(sub)
    add_evaluate_parser(sub)
    add_sweep_parser(sub)
    add_fit_parser(sub)
    s = sub.add_parser("quantize", help="choose Q formats from the weights and calibration inputs")
    s.add_argument("model", help="model directory")
    s.add_argument("-o", "--output", required=True, help="model directory to write with the chosen formats")
    s.add_argument("--calibrate", metavar="X.npy", help="calibration inputs (T, input) or (N, T, input)")
    s.add_argument(
        "--width",
        action="append",
        metavar="CLASS=N",
        help="width of a tensor class (weight, state, cell, pre, act), e.g. weight=8",
    )
    s.add_argument("--pin", action="append", metavar="CLASS=Qm.n", help="pin a class to a format, e.g. state=Q2.13")
    s.add_argument("--headroom", type=float, default=1.0, help="multiply observed ranges by this (default 1)")
    s.add_argument("--report", help="JSON report of formats and saturation counts")
    s.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    s.set_defaults(func=cmd_quantize)
    return p


def main(argv: list[str] | None = None) -> int:
    from ..numeric.golden import InputError
    from ..numeric.model import ModelError
    from ..flow.toolchain import ToolMissing

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (CLIError, ModelError, ConfigError, InputError, ToolMissing) as exc:
        print(f"rnnaccel: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnaccel: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
