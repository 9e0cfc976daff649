"""``rnnaccel retrain``: train a model directory again with the hardware's exact arithmetic.

Wired into :mod:`rnnaccel.cli.main` with :func:`add_parser`; the work is done by
:func:`rnnaccel.accuracy.retrain.retrain`. Every user error is a
:class:`rnnaccel.cli.common.CLIError`, :class:`rnnaccel.numeric.model.ModelError` or
:class:`rnnaccel.accuracy.retrain.DataError`, which ``rnnaccel``'s ``main`` prints as
one ``rnnaccel: error: ...`` line with exit status 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_parser", "cmd_retrain"]

DESCRIPTION = """\
Retrain a model directory (a projected import, rnnaccel import -k K, or any
existing model) on your data, with the accelerator's exact arithmetic in the
forward pass: every tensor class quantized where the integer model narrows,
the same sigmoid/tanh tables, and the circulant defining vectors as the only
weight parameters. What training measures is what the golden model and the
hardware compute, bit for bit.

DATA (--data, --val) is an .npz archive with
  X        (N, T, input) float sequences
  y        (N,) integer class labels: classification of the last hidden state
           (at each sequence's last valid step) by a linear head trained jointly
  or Y     (N, T, outputs) float targets: per-step regression through a linear
           readout (mean squared error)
  lengths  optional (N,) true lengths of zero-padded sequences
  classes  optional label names (strings), index order

The head starts from DIR/head.npz when it fits the task, else from a seeded
initialisation. After every epoch the model is scored on --val (or on the
training data without it); the best epoch is kept. OUT receives
rnnaccel.toml (DIR's configuration, unchanged), weights.npz and head.npz,
which rnnaccel evaluate OUT --data TEST.npz reads. The same data, options
and --seed give byte-identical weights.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``retrain`` subcommand (``subparsers`` from ``ArgumentParser.add_subparsers``)."""
    s = subparsers.add_parser(
        "retrain",
        help="retrain a model directory with the hardware's exact arithmetic "
        "(recovers accuracy after rnnaccel import -k K)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("model", help="model directory to start from (rnnaccel.toml, weights.npz, optional head.npz)")
    s.add_argument("--data", required=True, metavar="TRAIN.npz", help="training data: X and y (or Y)")
    s.add_argument("-o", "--output", required=True, help="model directory to write")
    s.add_argument("--val", metavar="VAL.npz", help="validation data choosing the best epoch (default: training data)")
    s.add_argument(
        "--epochs",
        type=int,
        default=100,
        metavar="N",
        help="training epochs (default 100; a small set needs more: 300 for GunPoint's 50 sequences)",
    )
    s.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate, cosine schedule (default 1e-2)")
    s.add_argument("--batch", type=int, default=32, metavar="B", help="sequences per batch (default 32)")
    s.add_argument(
        "--seed", type=int, default=0, metavar="S", help="seed of the batch order and of a new head (default 0)"
    )
    s.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="torch threads (default 1: these matrices are small, more threads mostly add contention)",
    )
    s.add_argument("--json", metavar="R.json", help="write the settings and the per-epoch history as JSON")
    s.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    s.set_defaults(func=cmd_retrain)
    return s


def cmd_retrain(args) -> int:
    from .common import CLIError
    from ..accuracy.evaluate import load_head
    from ..numeric.model import CONFIG_FILE, load_model

    for name, value, low in (("--epochs", args.epochs, 1), ("--batch", args.batch, 1), ("--threads", args.threads, 1)):
        if value < low:
            raise CLIError(f"{name} must be {low} or more, not {value}")
    if not args.lr > 0 or args.lr == float("inf"):
        raise CLIError(f"--lr must be a positive number, not {args.lr}")
    cfg, weights = load_model(args.model)
    head = load_head(args.model, cfg.hidden_size)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} exists and is not a directory")
    if (out / CONFIG_FILE).exists() and not args.force:
        raise CLIError(f"{out} already holds a model; pass --force to overwrite it")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise CLIError("retraining needs torch: pip install 'rnnaccel[models]'") from None
    from ..accuracy.retrain import golden_metric, load_task_data, retrain

    train = load_task_data(args.data, cfg.input_size)
    val = load_task_data(args.val, cfg.input_size) if args.val else None
    print(
        f"model {args.model}: {cfg.num_layers}-layer {cfg.cell}, input {cfg.input_size}, hidden {cfg.hidden_size}, "
        f"k={cfg.block_size}, weights {cfg.q_weight} ({cfg.weight_bytes} bytes)"
    )
    print(
        f"data: {len(train)} training sequences ({args.data})"
        + (f", {len(val)} validation sequences ({args.val})" if val is not None else ", no validation set")
        + f"; {'classification' if train.task == 'classify' else 'per-step regression'}"
    )
    res = retrain(
        cfg,
        weights,
        train,
        val,
        head=head,
        epochs=args.epochs,
        lr=args.lr,
        batch=args.batch,
        seed=args.seed,
        threads=args.threads,
        arithmetic="exact",
        progress=True,
        log=lambda msg: print(msg, flush=True),
    )
    best, start = res.best, res.history[0]
    sel = val if val is not None else train
    golden = golden_metric(res.cfg, res.weights, res.head, sel)
    if res.task == "classify":
        print(
            f"{res.selected_on} accuracy: {100 * start.accuracy:.2f}% at the start, {100 * best.accuracy:.2f}% "
            f"after epoch {best.epoch} (kept); golden integer model {100 * golden:.2f}%"
        )
    else:
        print(
            f"{res.selected_on} mse: {start.mse:.4g} at the start, {best.mse:.4g} after epoch {best.epoch} (kept); "
            f"golden integer model {golden:.4g}"
        )
    res.save(out)
    if args.json:
        summary = res.summary()
        summary.update(
            model=str(args.model),
            data=str(args.data),
            val=args.val,
            epochs=args.epochs,
            lr=args.lr,
            batch=args.batch,
            seed=args.seed,
            threads=args.threads,
            output=str(out),
            golden_metric=golden,
        )
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {args.json}")
    print(f"wrote {out}/ (rnnaccel.toml, weights.npz, head.npz); next: rnnaccel evaluate {out} --data TEST.npz")
    return 0
