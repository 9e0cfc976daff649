"""``rnnaccel import``: a trained PyTorch or ONNX model as a model directory.

Wired into :mod:`rnnaccel.cli.main` with :func:`add_parser`; the work is done by
:mod:`rnnaccel.models.importers`. Errors are :class:`rnnaccel.cli.common.CLIError` (bad
options, output directory) or :class:`rnnaccel.numeric.model.ModelError` (the file),
which ``rnnaccel``'s ``main`` prints as one ``rnnaccel: error: ...`` line
with exit status 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "cmd_import"]

#: (option, config field, help)
_FORMAT_OPTIONS = (
    ("--q-weight", "q_weight", "weight format, e.g. Q1.6"),
    ("--q-state", "q_state", "input and hidden-state format, e.g. Q3.12"),
    ("--q-cell", "q_cell", "LSTM cell-state format"),
    ("--q-pre", "q_pre", "pre-activation and bias format"),
    ("--q-act", "q_act", "sigmoid/tanh output format"),
)

DESCRIPTION = """\
Import a trained recurrent model and write a model directory (rnnaccel.toml +
weights.npz; and head.npz, a classifier head, when a PyTorch file holds one
linear layer reading the hidden state beside the recurrent module).
Sources: PyTorch nn.LSTM, nn.GRU, nn.RNN (tanh) saved whole with
torch.save, or their state_dict (the cell is inferred from the shapes; a plain
RNN state_dict needs --cell rnn, since it does not record its nonlinearity);
ONNX LSTM, GRU, RNN operators (forward, default activations, stacked
operators = layers). Bidirectional, proj_size, relu, peephole, clipped and
mismatched-size models are refused.

The config is --preset-like (default tiny) with the model's cell, sizes and
layers, block size K (lanes = K when K > 1) and the options below.

By default K = 1: the weights are kept exactly (dense) and, without
--q-weight, stored in the 16-bit format fitted to the largest weight, so the
imported model computes what the trained one does up to that rounding and
the fixed-point arithmetic. With -k K > 1 every weight matrix is replaced by
the nearest block-circulant one and the share of each matrix's energy
(squared Frobenius norm) that survives is printed. That projection changes
the model: its accuracy is typically far below the original's until it is
retrained on data with rnnaccel retrain DIR --data TRAIN.npz -o OUT.

Trust: PyTorch files are read with torch.load(weights_only=True), the
restricted unpickler, allowing only classes defined in torch.nn (enough for
whole nn.LSTM/GRU/RNN modules and torch.nn containers); it runs no code from
the file. A file that refers to other classes (your own model class) needs
full unpickling (weights_only=False), which can execute arbitrary code
embedded in the file: it is done only with --trust-pickle, so use that only
on files you trust, or save model.state_dict() instead. ONNX files are
protobuf and are parsed without running code.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``import`` subcommand (``subparsers`` from ``ArgumentParser.add_subparsers``)."""
    from ..numeric.config import PRESETS

    s = subparsers.add_parser(
        "import",
        help="import a trained PyTorch or ONNX LSTM/GRU/RNN as a model directory",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("model", help="torch.save file (.pt/.pth: whole module or state_dict) or ONNX model (.onnx)")
    s.add_argument("-o", "--output", required=True, help="model directory to write")
    s.add_argument(
        "--block-size",
        "-k",
        type=int,
        metavar="K",
        default=1,
        help="circulant block size (default 1: dense, the weights kept exactly); K > 1 projects every "
        "matrix onto block-circulant form, which needs rnnaccel retrain for accuracy",
    )
    s.add_argument(
        "--preset-like",
        default="tiny",
        metavar="NAME",
        help=f"preset giving every other setting: {', '.join(PRESETS)} (default tiny)",
    )
    s.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="override a config field (repeatable; not the model's cell, sizes, layers or block size)",
    )
    for flag, fld, text in _FORMAT_OPTIONS:
        s.add_argument(
            flag,
            dest=fld,
            metavar="Qm.n",
            help=text
            + (
                " (default: with K = 1 the 16-bit format fitted to the largest weight, with K > 1 the preset's)"
                if fld == "q_weight"
                else " (default: the preset's)"
            ),
        )
    s.add_argument("--table-entries", type=int, metavar="N", help="entries of each activation table (power of two)")
    s.add_argument("--sigmoid-range", type=float, metavar="R", help="sigmoid table range [-R, R) (power of two)")
    s.add_argument("--tanh-range", type=float, metavar="R", help="tanh table range [-R, R) (power of two)")
    s.add_argument("--no-interpolate", action="store_true", help="nearest table entry instead of interpolation")
    s.add_argument(
        "--format",
        default="auto",
        choices=["auto", "torch", "onnx"],
        help="file format (default: from the extension, else the content)",
    )
    s.add_argument(
        "--cell",
        choices=["lstm", "gru", "rnn"],
        help="confirm the cell type (needed for a plain-RNN state_dict; checked against the file)",
    )
    s.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow full unpickling (torch.load weights_only=False) of a PyTorch file that refers to "
        "classes outside torch.nn: this can run arbitrary code from the file; only for files you trust",
    )
    s.add_argument("--force", action="store_true", help="overwrite an existing model directory")
    s.set_defaults(func=cmd_import)
    return s


def _changes(args) -> dict:
    from .common import CLIError, parse_set
    from ..numeric.config import FIELDS
    from ..models.importers import SHAPE_FIELDS

    changes = parse_set(getattr(args, "set", None))
    known = set(FIELDS)
    for key in changes:
        if key not in known:
            raise CLIError(f"--set {key}: not a config field (fields: {', '.join(sorted(known))})")
        if key in SHAPE_FIELDS:
            hint = "use --block-size" if key == "block_size" else "it comes from the imported model"
            raise CLIError(f"--set {key}: {hint}")
    opts = {fld: getattr(args, fld) for _, fld, _ in _FORMAT_OPTIONS}
    opts.update(table_entries=args.table_entries, sigmoid_range=args.sigmoid_range, tanh_range=args.tanh_range)
    if args.no_interpolate:
        opts["interpolate"] = False
    for key, value in opts.items():
        if value is None:
            continue
        if key in changes:
            raise CLIError(f"{key} is given both with --set and with its own option")
        changes[key] = value
    return changes


def cmd_import(args) -> int:
    from .common import CLIError
    from ..numeric.config import preset
    from ..accuracy.evaluate import HEAD_FILE, save_head
    from ..models.importers import detect_format, import_model, range_report
    from ..numeric.model import CONFIG_FILE, save_model

    try:
        base = preset(args.preset_like)
    except KeyError as exc:
        raise CLIError(f"--preset-like: {exc.args[0]}") from None
    if args.block_size < 1:
        raise CLIError(f"--block-size must be 1 or more, not {args.block_size}")
    changes = _changes(args)
    src = Path(args.model)
    changes.setdefault("name", src.stem or "imported")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise CLIError(f"{out} exists and is not a directory")
    if (out / CONFIG_FILE).exists() and not args.force:
        raise CLIError(f"{out} already holds a model; pass --force to overwrite it")

    res = import_model(
        src, base, args.block_size, fmt=args.format, cell=args.cell, trust_pickle=args.trust_pickle, **changes
    )
    cfg, model = res.cfg, res.model
    shape = (
        f"{cfg.num_layers}-layer {cfg.cell}"
        + (f" (reset-{'after' if cfg.gru_reset_after else 'before'})" if cfg.cell == "gru" else "")
        + f", input {cfg.input_size}, hidden {cfg.hidden_size}"
    )
    print(f"read {src}: {model.source}; {shape}")
    for note in model.notes:
        print(f"note: {note}")
    k = cfg.block_size
    dense = sum(e.entries for e in res.energies)
    stored = sum(e.stored for e in res.energies)
    if k == 1:
        print(f"dense weights (k = 1): {dense} weights kept exactly (100.0% of energy)")
        if res.weight_format_note:
            print(f"quantization: {res.weight_format_note}")
    else:
        print(f"block-circulant projection, k = {k}:")
        for e in res.energies:
            print(f"  {e.line()}")
        print(
            f"  total: {100 * res.total_fraction:.1f}% of energy kept "
            f"({len(res.energies)} matrices, {dense} weights -> {stored} stored)"
        )
        print(
            f"warning: the k = {k} projection kept {100 * res.total_fraction:.1f}% of the weights' energy and "
            f"changes what the model computes; accuracy needs retraining: rnnaccel retrain {out} --data TRAIN.npz "
            f"-o {out}-retrained"
        )
    for line in range_report(cfg, res.weights):
        print(f"quantization: {line}")
    head, how = None, ""
    if detect_format(src) == "torch" if args.format == "auto" else args.format == "torch":
        from ..accuracy.evaluate import _torch_head

        head, how = _torch_head(src, cfg.hidden_size, trust_pickle=args.trust_pickle)
    save_model(out, cfg, res.weights)
    stale = out / HEAD_FILE
    if head is not None:
        save_head(out, head.W, head.b, head.classes)
        print(
            f"classifier head: {how} -> {out / HEAD_FILE} (a classifier of the last hidden state; evaluate and "
            f"retrain use it)"
        )
    elif stale.exists():
        stale.unlink()  # a head of the model this directory held before (--force)
    print(
        f"wrote {out}/ ({cfg.name}: {shape}, k={k}, {cfg.lanes} lanes, PE grid {cfg.pe_rows}x{cfg.pe_cols}; "
        f"settings of preset {args.preset_like})"
    )
    return 0
