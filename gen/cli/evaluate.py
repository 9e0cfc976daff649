"""``rnnaccel evaluate``: one model directory in every arithmetic, side by side.

Wired into :mod:`rnnaccel.cli.main` with :func:`add_parser`; the work is done by
:mod:`rnnaccel.accuracy.evaluate` (and :mod:`rnnaccel.models.datasets` for named data sets).
Every user error is a :class:`rnnaccel.cli.common.CLIError`,
:class:`rnnaccel.numeric.model.ModelError` or :class:`rnnaccel.numeric.golden.InputError`,
which ``rnnaccel``'s ``main`` prints as one ``rnnaccel: error: ...`` line with
exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

__all__ = ["add_parser", "cmd_evaluate", "load_data"]

RTL_BACKENDS = ("amaranth", "icarus", "verilator")

DESCRIPTION = """\
Evaluate a model directory on a batch of sequences in every arithmetic:
the dense float reference (with --dense), the model's float weights
(circulant when k > 1), float with quantized weights, the bit-exact integer
golden model, and optionally the generated hardware in a simulator on the
first few sequences (--rtl-backend), with a bit-exact verdict against the
golden model on the same sequences.

Metric: with labels and a classifier head (DIR/head.npz: W (classes, hidden),
b (classes,), applied to the last layer's hidden state at each sequence's
last valid step), the accuracy of each arithmetic; with targets Y and a
per-step readout (a head.npz of kind readout, from rnnaccel retrain on Y),
the mean squared error; always, the hidden-state deviation from the float
row (max and mean |dh| over valid steps).

DATA is one of:
  X.npy            (N, T, input) or (T, input) floats; --labels Y.npy gives
                   class indices (N,), --lengths L.npy the true lengths of
                   zero-padded sequences (default: all T steps)
  D.npz            arrays X and optionally y (labels) or Y (N, T, outputs)
                   per-step regression targets, lengths and classes (the
                   layout rnnaccel retrain --data reads)
  NAME[:SPLIT]     a UCR/UEA classification set shipped inside sktime, e.g.
                   JapaneseVowels (test split) or JapaneseVowels:train; the
                   labels come with it (needs pip install 'rnnaccel[examples]')
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``evaluate`` subcommand (``subparsers`` from ``ArgumentParser.add_subparsers``)."""
    s = subparsers.add_parser(
        "evaluate",
        help="compare float, quantized, golden and RTL arithmetic on data "
        "(accuracy with a classifier head, else hidden-state deviation)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("model", help="model directory (rnnaccel.toml, weights.npz, optional head.npz)")
    s.add_argument("--data", required=True, metavar="DATA", help="X.npy, D.npz or a data set name[:train|test]")
    s.add_argument("--labels", metavar="Y.npy", help="class indices (N,) for X.npy data")
    s.add_argument("--lengths", metavar="L.npy", help="true lengths (N,) of zero-padded X.npy sequences")
    s.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N sequences")
    s.add_argument(
        "--dense",
        metavar="REF",
        help="dense reference: a model directory (its own head.npz is used) or a PyTorch/ONNX file "
        "(a PyTorch state_dict may hold one linear readout beside the RNN)",
    )
    s.add_argument("--rtl-backend", choices=RTL_BACKENDS, help="also run the hardware in this simulator")
    s.add_argument(
        "--rtl-sequences", type=int, default=2, metavar="N", help="sequences to simulate with --rtl-backend (default 2)"
    )
    s.add_argument("--plot", metavar="OUT.png", help="bar chart of accuracy and deviation per arithmetic")
    s.add_argument("--json", metavar="R.json", help="write the report as JSON")
    s.add_argument("--cache", help="simulator build cache folder (default ~/.cache/rnnaccel)")
    s.set_defaults(func=cmd_evaluate)
    return s


def _npy(path: str, what: str) -> np.ndarray:
    from .common import load_inputs

    return load_inputs(path, what)


def load_data(spec: str, labels: str | None = None, lengths: str | None = None):
    """(X, lengths or None, labels or None, classes or None, description, targets or None) for ``--data``.

    An ``.npz`` holds ``X`` and optionally ``y`` (labels) or ``Y`` (per-step
    regression targets), ``lengths`` and ``classes``: the layout
    ``rnnaccel retrain --data`` reads.
    """
    from .common import CLIError

    p = Path(spec)
    if p.suffix.lower() == ".npz":
        if labels or lengths:
            raise CLIError("--labels and --lengths are for .npy data; an .npz holds them as arrays y and lengths")
        if not p.is_file():
            raise CLIError(f"data file {spec!r} does not exist")
        try:
            with np.load(p, allow_pickle=False) as d:
                if "X" not in d.files:
                    raise CLIError(f"{spec}: has no array X (arrays: {', '.join(d.files) or 'none'})")
                X = np.asarray(d["X"])
                y = np.asarray(d["y"]) if "y" in d.files else None
                Y = np.asarray(d["Y"]) if "Y" in d.files else None
                L = np.asarray(d["lengths"]) if "lengths" in d.files else None
                names = tuple(str(c) for c in np.ravel(d["classes"])) if "classes" in d.files else None
        except (ValueError, OSError, EOFError):
            raise CLIError(f"{spec}: not a readable .npz archive of arrays") from None
        if y is not None and Y is not None:
            raise CLIError(f"{spec}: holds both y (class labels) and Y (regression targets); give one")
        return X, L, y, names, f"{spec}", Y
    if p.suffix.lower() == ".npy" or p.exists() or "/" in spec or "\\" in spec:
        X = _npy(spec, "data")
        y = _npy(labels, "labels") if labels else None
        L = _npy(lengths, "lengths") if lengths else None
        return X, L, y, None, f"{spec}", None
    # a data set name
    from ..models.datasets import DatasetError, load_dataset

    if labels or lengths:
        raise CLIError(f"--labels and --lengths are for .npy data; the data set {spec!r} brings its own")
    name, _, split = spec.partition(":")
    split = split or "test"
    if split not in ("train", "test"):
        raise CLIError(f"--data {spec}: the split must be train or test, not {split!r}")
    try:
        ds = load_dataset(name)
    except DatasetError as exc:
        raise CLIError(f"--data {spec!r} is not a file and not a usable data set name: {exc}") from None
    part = getattr(ds, split)
    return part.X, part.lengths, part.y, part.classes, f"{ds.name} ({split} split)", None


def cmd_evaluate(args) -> int:
    from .common import CLIError
    from ..accuracy.evaluate import evaluate, format_table, load_head, load_reference, plot_report, write_json
    from ..numeric.model import load_model

    cfg, weights = load_model(args.model)
    head = load_head(args.model, cfg.hidden_size)
    X, lengths, labels, classes, described, targets = load_data(args.data, args.labels, args.lengths)
    if X.dtype.kind not in "fiu":
        raise CLIError(f"{args.data}: inputs must be numbers, not dtype {X.dtype}")
    if X.ndim not in (2, 3) or X.shape[-1] != cfg.input_size:
        raise CLIError(
            f"{args.data}: shape {X.shape}; the model needs (T, {cfg.input_size}) or (N, T, {cfg.input_size})"
        )
    if classes is not None and head is not None and head.is_classifier:
        if head.num_classes != len(classes):
            raise CLIError(f"{described} has {len(classes)} classes, the model's head {head.num_classes}")
        if head.classes is not None and [c.lower() for c in head.classes] != [c.lower() for c in classes]:
            raise CLIError(f"the head's classes {list(head.classes)} are not the data set's {list(classes)}")
    if classes is not None and head is None and targets is None and not str(args.data).lower().endswith(".npz"):
        labels = None  # a named data set without a head: deviations only
        print(f"note: {args.model} has no head.npz (classifier head): reporting hidden-state deviations only")
    if args.limit is not None:
        if args.limit < 1:
            raise CLIError(f"--limit must be 1 or more, not {args.limit}")
        if X.ndim == 3:
            X = X[: args.limit]
            lengths = None if lengths is None else np.asarray(lengths)[: args.limit]
            labels = None if labels is None else np.asarray(labels)[: args.limit]
            targets = None if targets is None else np.asarray(targets)[: args.limit]
    dense = load_reference(args.dense, cfg) if args.dense else None
    if args.rtl_sequences < 1:
        raise CLIError(f"--rtl-sequences must be 1 or more, not {args.rtl_sequences}")
    print(f"evaluating {args.model} on {described}")
    try:
        report = evaluate(
            cfg,
            weights,
            X,
            lengths=lengths,
            labels=labels,
            head=head,
            dense=dense,
            rtl_backend=args.rtl_backend,
            rtl_sequences=args.rtl_sequences,
            cache_dir=args.cache,
            log=lambda msg: print(f"[evaluate] {msg}", flush=True),
            targets=targets,
        )
    except _cocotb_failure() as exc:
        raise CLIError(f"{args.rtl_backend} simulation failed: {str(exc).splitlines()[0]}") from None
    report["data"]["source"] = described
    report["model"]["directory"] = str(args.model)
    print(format_table(report))
    if args.json:
        write_json(report, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        plot_report(report, args.plot)
        print(f"wrote {args.plot}")
    rtl = report.get("rtl")
    return 1 if rtl is not None and not rtl["bit_exact"] else 0


def _cocotb_failure():
    try:
        from ..flow.rtl import CocotbFailure
    except ImportError:  # pragma: no cover
        return ()
    return CocotbFailure
