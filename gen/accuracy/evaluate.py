"""Side-by-side evaluation of a model directory in every arithmetic rnnaccel has.

For one model directory and a batch of sequences, :func:`evaluate` runs

=======================  ======================================================
``dense float``          an optional dense reference (``--dense REF``: another
                         model directory, or a PyTorch file read by
                         :mod:`rnnaccel.models.importers` with k = 1), float64
``float``                :class:`~rnnaccel.numeric.golden.FloatModel` of the model's
                         own (circulant) float weights, exact sigmoid/tanh
``float, Q weights``     the same with weights and biases quantized to
                         ``q_weight`` / ``q_pre`` (isolates weight quantization
                         from the rest of the fixed-point arithmetic)
``golden``               :class:`~rnnaccel.numeric.golden.IntegerModel`, the bit-exact
                         specification of the hardware
``rtl <backend>``        optionally, the generated hardware in a simulator
                         (``amaranth``, ``icarus``, ``verilator``) on the first
                         few sequences, compared with the golden model bit for
                         bit on the same sequences
=======================  ======================================================

and reports for each the hidden-state deviation from ``float`` (max and mean
absolute difference over the valid steps of every sequence) and, when the
model has a classifier head and labels are given, the accuracy.

Classifier head
---------------
A model directory may hold ``head.npz`` beside ``rnnaccel.toml`` and
``weights.npz``: a linear readout of the last layer's hidden state at the
last valid step of each sequence, ``logits = W h + b``, with ``W`` (classes,
H) and ``b`` (classes,) float32 and, optionally, ``classes`` (the label names,
a string array). It runs on the host in float (the accelerator streams the
hidden states out; the argmax of nine numbers does not need hardware), on the
dequantized output of whichever arithmetic produced ``h``. Training code
writes it with :func:`save_head`; the rest of rnnaccel (``generate``, ``run``)
ignores the file.

A head may instead be a per-step *readout* for regression (``kind`` =
``"readout"`` in ``head.npz``, written by ``rnnaccel retrain`` on ``Y``
targets): ``W`` (outputs, H), ``b`` (outputs,) applied to the hidden state
at every valid step, compared with targets ``Y`` (N, T, outputs) by the mean
squared error. A ``head.npz`` without ``kind`` is a classifier.

Variable-length sequences are zero-padded at the end to a common length T,
with their true ``lengths``; every arithmetic runs the padded batch (outputs
up to step ``lengths[n] - 1`` do not depend on later inputs), and the readout
and deviations use only the valid steps. The RTL backend runs each sequence
for its true length only (reset, then ``lengths[n]`` steps).
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..numeric.config import Config
from ..numeric.fixedpoint import quantize, to_float
from ..numeric.golden import FloatModel, InputError, IntegerModel
from ..numeric.model import ModelError, Weights, load_model

__all__ = [
    "HEAD_FILE",
    "Head",
    "Reference",
    "save_head",
    "load_head",
    "check_head",
    "last_states",
    "valid_mask",
    "hidden_states",
    "ARITHMETICS",
    "evaluate",
    "format_table",
    "plot_report",
    "load_reference",
    "write_json",
    "classify",
    "readout_mse",
    "HEAD_KINDS",
]

HEAD_FILE = "head.npz"

#: Arithmetics of :func:`hidden_states`.
ARITHMETICS = ("float", "float-qweights", "golden")


# ----------------------------------------------------------------------------
# The classifier head
# ----------------------------------------------------------------------------

#: Kinds of head: a classifier of the last valid hidden state, or a per-step regression readout.
HEAD_KINDS = ("classifier", "readout")


@dataclass(frozen=True)
class Head:
    """Linear readout ``logits = h @ W.T + b`` of the last hidden state (or of every step).

    Attributes
    ----------
    W : ndarray (classes, H)
    b : ndarray (classes,)
    classes : tuple of str or None
        Label names, in index order.
    kind : str
        ``classifier`` (argmax of the logits at the last valid step) or
        ``readout`` (regression outputs at every step).
    """

    W: np.ndarray
    b: np.ndarray
    classes: tuple[str, ...] | None = None
    kind: str = "classifier"

    @property
    def is_classifier(self) -> bool:
        return self.kind == "classifier"

    @property
    def num_classes(self) -> int:
        return int(self.W.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.W.shape[1])

    def logits(self, h: np.ndarray) -> np.ndarray:
        return np.asarray(h, np.float64) @ self.W.astype(np.float64).T + self.b.astype(np.float64)

    def predict(self, h: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(h), axis=-1)


def check_head(head: Head, hidden_size: int | None = None, where: str = HEAD_FILE) -> Head:
    """Raise :class:`~rnnaccel.numeric.model.ModelError` for a head of the wrong shape or with non-finite values."""
    W, b = np.asarray(head.W), np.asarray(head.b)
    if W.ndim != 2 or W.shape[0] < 1:
        raise ModelError(f"{where}: W has shape {W.shape}, a classifier head needs (classes, hidden)")
    if b.shape != (W.shape[0],):
        raise ModelError(f"{where}: b has shape {b.shape}, W has {W.shape[0]} classes so b needs ({W.shape[0]},)")
    if hidden_size is not None and W.shape[1] != hidden_size:
        raise ModelError(
            f"{where}: W has shape {W.shape}, reading {W.shape[1]} hidden units; the model's hidden "
            f"size is {hidden_size}"
        )
    if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
        raise ModelError(f"{where}: holds NaN or infinite values")
    if head.classes is not None and len(head.classes) != W.shape[0]:
        raise ModelError(f"{where}: {len(head.classes)} class names for {W.shape[0]} classes")
    if head.kind not in HEAD_KINDS:
        raise ModelError(f"{where}: kind {head.kind!r} is not one of {', '.join(HEAD_KINDS)}")
    return head


def save_head(directory: str | Path, W, b, classes=None, kind: str = "classifier") -> Path:
    """Write ``head.npz`` into a model directory (W (classes, H), b (classes,), optional class names).

    ``kind="readout"`` writes a per-step regression readout (a ``kind`` array
    marks it; classifier heads are written without one, as before).
    """
    W = np.asarray(W, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    names = None if classes is None else tuple(str(c) for c in classes)
    check_head(Head(W, b, names, kind))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {"W": W, "b": b}
    if names is not None:
        arrays["classes"] = np.array(names, dtype=np.str_)
    if kind != "classifier":
        arrays["kind"] = np.array(kind, dtype=np.str_)
    path = directory / HEAD_FILE
    from ..numeric.model import _write_npz  # byte-reproducible npz writer

    _write_npz(path, arrays)
    return path


def load_head(directory: str | Path, hidden_size: int | None = None) -> Head | None:
    """The model directory's ``head.npz`` (checked), or None when it has none."""
    path = Path(directory) / HEAD_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        raise ModelError(f"{path} is not a readable .npz archive of arrays") from None
    missing = [k for k in ("W", "b") if k not in arrays]
    if missing:
        raise ModelError(
            f"{path}: has no {missing[0]} array (a head holds W (classes, H), b (classes,) and optionally classes)"
        )
    W, b = arrays["W"], arrays["b"]
    classes = tuple(str(c) for c in np.ravel(arrays["classes"])) if "classes" in arrays else None
    kind = str(np.ravel(arrays["kind"])[0]) if "kind" in arrays and np.size(arrays["kind"]) == 1 else "classifier"
    if "kind" in arrays and np.size(arrays["kind"]) != 1:
        raise ModelError(f"{path}: kind must be one string ({', '.join(HEAD_KINDS)})")
    if W.dtype.kind != "f" or b.dtype.kind != "f":
        raise ModelError(f"{path}: W and b must be float arrays")
    return check_head(Head(W, b, classes, kind), hidden_size, str(path))


# ----------------------------------------------------------------------------
# Running the arithmetics
# ----------------------------------------------------------------------------


def valid_mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(N, T) True where step t < lengths[n]."""
    return np.arange(steps)[None, :] < np.asarray(lengths)[:, None]


def last_states(y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Hidden state at each sequence's last valid step: y (N, T, H) -> (N, H)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    return y[np.arange(y.shape[0]), lengths - 1]


def hidden_states(cfg: Config, weights: Weights, X: np.ndarray, arithmetic: str = "golden") -> np.ndarray:
    """The last layer's hidden states (N, T, H) as float64, from the zero state, in one arithmetic.

    ``float``: FloatModel of the float weights; ``float-qweights``: FloatModel
    with quantized weights and biases; ``golden``: IntegerModel, dequantized.
    """
    if arithmetic == "float":
        return FloatModel(cfg, weights).run(X)
    if arithmetic == "float-qweights":
        return FloatModel(cfg, weights, quantized_params=True).run(X)
    if arithmetic == "golden":
        return IntegerModel(cfg, weights).run_float(X)
    raise ValueError(f"unknown arithmetic {arithmetic!r} (known: {', '.join(ARITHMETICS)})")


def classify(
    cfg: Config, weights: Weights, head: Head, X: np.ndarray, lengths: np.ndarray, arithmetic: str = "golden"
) -> np.ndarray:
    """Predicted class of each sequence: the head on the last valid hidden state."""
    return head.predict(last_states(hidden_states(cfg, weights, X, arithmetic), lengths))


def readout_mse(head: Head, y: np.ndarray, targets: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error of a per-step readout of hidden states y (N, T, H) against targets (N, T, outputs),
    over the valid steps (mask (N, T)) and every output."""
    err = head.logits(y) - np.asarray(targets, np.float64)
    return float(np.mean(err[mask] ** 2)) if mask.any() else 0.0


@dataclass
class Reference:
    """A dense reference model: config (k = 1), float weights, optional head, where it came from."""

    cfg: Config
    weights: Weights
    head: Head | None
    source: str
    notes: tuple[str, ...] = ()


def _torch_head(path: Path, hidden: int, trust_pickle: bool = False) -> tuple[Head | None, str]:
    """A linear readout saved beside the RNN in a PyTorch file: exactly one ``*.weight`` (C, H) + ``*.bias`` (C,)."""
    from ..models.importers import _KEY, _flatten, _torch_load

    try:
        import torch
    except ImportError:
        return None, "torch is not installed"
    try:
        obj, _ = _torch_load(path, trust_pickle=trust_pickle)
    except ModelError as exc:
        return None, str(exc)
    state = obj.state_dict() if isinstance(obj, torch.nn.Module) else obj
    if not isinstance(state, dict):
        return None, "not a state_dict"
    flat = _flatten(dict(state))
    found = []
    for key, value in flat.items():
        if not key.endswith("weight") or _KEY.match(key) or not isinstance(value, torch.Tensor):
            continue
        bias = flat.get(key[: -len("weight")] + "bias")
        if (
            value.ndim == 2
            and value.shape[1] == hidden
            and isinstance(bias, torch.Tensor)
            and tuple(bias.shape) == (value.shape[0],)
        ):
            found.append((key, value, bias))
    if len(found) != 1:
        return None, (
            f"{len(found)} linear layers reading {hidden} hidden units"
            if found
            else f"no linear layer reading {hidden} hidden units"
        )
    key, W, b = found[0]
    head = Head(W.detach().to(torch.float64).numpy(), b.detach().to(torch.float64).numpy())
    name = key[: -len(".weight")] if key.endswith(".weight") else key
    return check_head(head, hidden, f"{path} [{key}]"), f"linear readout {name!r} ({W.shape[0]} classes)"


def load_reference(ref: str | Path, like: Config) -> Reference:
    """``--dense REF``: a model directory (with its own head, if any) or a PyTorch/ONNX file (k = 1, exact).

    A PyTorch file may hold a linear readout beside the recurrent module
    (a ``state_dict`` with exactly one ``*.weight`` (classes, H) and
    ``*.bias``); it becomes the reference's head.
    """
    path = Path(ref)
    if path.is_dir():
        cfg, weights = load_model(path)
        return Reference(cfg, weights, load_head(path, cfg.hidden_size), f"model directory {path}")
    if not path.exists():
        raise ModelError(f"dense reference {str(path)!r} does not exist (a model directory or a PyTorch/ONNX file)")
    from ..models.importers import build_config, read_model, to_model

    dense = read_model(path)
    base = like.replace(weight_ram="block", weights_in_rom=True, circulant_mode="direct")  # k = 1: no FFT form
    cfg = build_config(dense, base, block_size=1)
    weights, _ = to_model(dense, cfg)
    notes = list(dense.notes)
    head = None
    if path.suffix.lower() != ".onnx":
        head, how = _torch_head(path, cfg.hidden_size)
        notes.append(f"classifier: {how}")
    return Reference(cfg, weights, head, f"{dense.source or 'file'} {path}", tuple(notes))


# ----------------------------------------------------------------------------
# evaluate
# ----------------------------------------------------------------------------


def _check_data(cfg: Config, X, lengths, labels, head: Head | None, targets=None):
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise InputError(f"inputs must be numbers, not {X.dtype}")
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3 or X.shape[-1] != cfg.input_size:
        raise InputError(
            f"inputs have shape {X.shape}; the model needs (T, {cfg.input_size}) or (N, T, {cfg.input_size})"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise InputError(f"inputs have shape {X.shape}: no sequences or no steps")
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise InputError(f"inputs hold a NaN or infinite value at index {tuple(int(i) for i in bad)}")
    n, t, _ = X.shape
    if lengths is None:
        lengths = np.full(n, t, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
        raise InputError(
            f"lengths must be {n} integers (one per sequence), not shape {lengths.shape} dtype {lengths.dtype}"
        )
    if lengths.min() < 1 or lengths.max() > t:
        raise InputError(
            f"lengths must be between 1 and {t} (the padded length), not {int(lengths.min())}..{int(lengths.max())}"
        )
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or labels.shape[0] != n:
            raise InputError(f"labels have shape {labels.shape}, the inputs hold {n} sequences: need ({n},)")
        if labels.dtype.kind not in "iu":
            if labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
                labels = labels.astype(np.int64)
            else:
                raise InputError(f"labels must be integer class indices, not dtype {labels.dtype}")
        if head is None:
            raise InputError(
                f"labels were given but the model has no classifier head ({HEAD_FILE}: W (classes, "
                f"hidden), b (classes,)); without labels evaluate reports hidden-state deviations"
            )
        if not head.is_classifier:
            raise InputError(
                f"labels were given but the model's {HEAD_FILE} is a per-step regression readout; "
                f"give targets Y (N, T, {head.num_classes}) instead"
            )
        if labels.min() < 0 or labels.max() >= head.num_classes:
            raise InputError(
                f"labels must be class indices 0..{head.num_classes - 1} (the head has "
                f"{head.num_classes} classes), found {int(labels.min())}..{int(labels.max())}"
            )
        labels = labels.astype(np.int64)
    if targets is not None:
        if labels is not None:
            raise InputError("give class labels y or regression targets Y, not both")
        targets = np.asarray(targets)
        if targets.dtype.kind not in "fiu":
            raise InputError(f"targets Y must be numbers, not dtype {targets.dtype}")
        if targets.ndim != 3 or targets.shape[:2] != (n, t):
            raise InputError(f"targets Y have shape {targets.shape}; the inputs need ({n}, {t}, outputs)")
        if not np.all(np.isfinite(targets)):
            raise InputError("targets Y hold NaN or infinite values")
        if head is None or head.is_classifier:
            raise InputError(
                f"targets Y were given but the model has no regression readout ({HEAD_FILE} with kind "
                f"'readout', written by rnnaccel retrain on Y targets)"
            )
        if targets.shape[2] != head.num_classes:
            raise InputError(f"targets Y have {targets.shape[2]} outputs, the model's readout {head.num_classes}")
        targets = targets.astype(np.float64)
    return X.astype(np.float64), lengths.astype(np.int64), labels, targets


def _row(
    name: str,
    arithmetic: str,
    y: np.ndarray,
    ref: np.ndarray | None,
    mask: np.ndarray,
    lengths,
    head,
    labels,
    ref_pred,
    seconds: float,
    targets=None,
    **extra,
) -> dict:
    row = {"name": name, "arithmetic": arithmetic, "sequences": int(y.shape[0]), "seconds": round(seconds, 3)}
    if ref is not None and ref.shape == y.shape:
        d = np.abs(y - ref)[mask]
        row["max_abs_dev"] = float(d.max()) if d.size else 0.0
        row["mean_abs_dev"] = float(d.mean()) if d.size else 0.0
    else:
        row["max_abs_dev"] = row["mean_abs_dev"] = None
    row["accuracy"] = row["correct"] = row["agreement"] = row["mse"] = None
    if head is not None and not head.is_classifier:
        if targets is not None:
            row["mse"] = readout_mse(head, y, targets, mask)
    elif head is not None:
        pred = head.predict(last_states(y, lengths))
        if labels is not None:
            row["correct"] = int(np.sum(pred == labels))
            row["accuracy"] = row["correct"] / len(labels)
        if ref_pred is not None:
            row["agreement"] = float(np.mean(pred == ref_pred[: len(pred)]))
        row["_pred"] = pred
    row.update(extra)
    return row


def _rtl(
    cfg: Config, weights: Weights, X: np.ndarray, lengths: np.ndarray, backend: str, index: np.ndarray, cache_dir, log
) -> tuple[np.ndarray, dict]:
    """The sequences at ``index``, each for its true length, in a simulator; compared with the golden session."""
    from ..flow.backends import run_session
    from ..interface.session import golden_session

    n = len(index)
    ops: list[tuple] = []
    for i in index:
        ops += [("reset",), ("run", quantize(X[i, : lengths[i]], cfg.q_state))]
    steps = int(lengths[index].sum())
    log(f"rtl: {n} sequence(s), {steps} steps in {backend}")
    t0 = time.time()
    outs, counters = run_session(cfg, weights, ops, backend, cache_dir=cache_dir, progress=False)
    seconds = time.time() - t0
    want = golden_session(cfg, weights, ops)
    got_all, want_all = np.concatenate(outs), np.concatenate(want)
    mismatches = int(np.sum(got_all != want_all)) if got_all.shape == want_all.shape else int(want_all.size)
    y = np.zeros((n, X.shape[1], cfg.hidden_size))
    for i, out in enumerate(outs):
        y[i, : out.shape[0]] = to_float(out, cfg.q_state)
    info = {
        "backend": backend,
        "sequences": n,
        "indices": [int(i) for i in index],
        "steps": steps,
        "words": int(want_all.size),
        "mismatches": mismatches,
        "bit_exact": mismatches == 0,
        "verdict": "BIT-EXACT" if mismatches == 0 else f"MISMATCH in {mismatches} of {want_all.size} words",
        "seconds": round(seconds, 3),
        "ideal_cycles_per_step": cfg.ideal_cycles_per_step,
    }
    if counters:
        total, csteps = int(counters[-1]["cycles"]), int(counters[-1]["steps"])
        per = total / max(1, csteps)
        info.update(
            {"cycles": total, "cycles_per_step": per, "utilization": cfg.ideal_cycles_per_step / per if total else 0.0}
        )
    return y, info


def _dense_row(cfg, dense: Reference, X, head, labels, targets, mask, lengths, y_float, pred_float, log) -> dict:
    """The dense float reference's row (its own head when it fits the data's task)."""
    if dense.cfg.input_size != cfg.input_size:
        raise InputError(f"the dense reference reads {dense.cfg.input_size} inputs, the model {cfg.input_size}")
    if dense.head is not None and head is not None and dense.head.num_classes != head.num_classes:
        raise InputError(
            f"the dense reference's head has {dense.head.num_classes} classes, the model's {head.num_classes}"
        )
    t0 = time.time()
    log("dense float reference")
    y_dense = hidden_states(dense.cfg, dense.weights, X, "float")
    same_shape = dense.cfg.hidden_size == cfg.hidden_size
    dhead = dense.head
    if dhead is not None and (
        labels is not None
        and not dhead.is_classifier
        or targets is not None
        and (dhead.is_classifier or dhead.num_classes != targets.shape[2])
    ):
        dhead = None  # a reference head of another kind than the data's task
    return _row(
        "dense float",
        "dense-float",
        y_dense,
        y_float if same_shape else None,
        mask,
        lengths,
        dhead,
        labels,
        pred_float,
        time.time() - t0,
        targets=targets,
        source=dense.source,
        notes=list(dense.notes),
        weight_bytes_float32=4 * dense.cfg.dense_weight_words(),
    )


def _rtl_row(cfg, weights, X, lengths, labels, targets, head, mask, ys: dict, backend, sequences, cache_dir, log):
    """The RTL backend's row on the selected sequences, with the golden model's figures on the same ones;
    (row, the RTL run's summary)."""
    n = X.shape[0]
    if np.ndim(sequences) == 0:
        if int(sequences) < 1:
            raise InputError(f"--rtl-sequences must be 1 or more, not {sequences}")
        index = np.arange(min(int(sequences), n))
    else:
        index = np.asarray(sequences, dtype=np.int64).ravel()
        if index.size == 0 or index.min() < 0 or index.max() >= n:
            raise InputError(f"RTL sequence indices must be in 0..{n - 1}, not {index.tolist()}")
    y_rtl, rtl = _rtl(cfg, weights, X, lengths, backend, index, cache_dir, log)
    sub_labels = labels[index] if labels is not None else None
    pred_float, y_gold = ys["pred_float"], ys["golden"]
    row = _row(
        f"rtl {backend}",
        f"rtl-{backend}",
        y_rtl,
        ys["float"][index],
        mask[index],
        lengths[index],
        head,
        sub_labels,
        None if pred_float is None else pred_float[index],
        rtl["seconds"],
        targets=None if targets is None else targets[index],
        verdict=rtl["verdict"],
    )
    if head is not None and not head.is_classifier and targets is not None:
        row["golden_mse_same_sequences"] = readout_mse(head, y_gold[index], targets[index], mask[index])
    if head is not None and head.is_classifier and sub_labels is not None:
        gold_pred = head.predict(last_states(y_gold[index], lengths[index]))
        row["golden_accuracy_same_sequences"] = float(np.mean(gold_pred == sub_labels))
    return row, rtl


def evaluate(
    cfg: Config,
    weights: Weights,
    X,
    lengths=None,
    labels=None,
    head: Head | None = None,
    dense: Reference | None = None,
    rtl_backend: str | None = None,
    rtl_sequences=2,
    cache_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
    targets=None,
) -> dict:
    """Run every arithmetic on ``X`` (N, T, input) and return the report (a JSON-able dict after
    :func:`write_json`; rows keep their predictions under ``_pred``).

    ``rtl_sequences`` is how many sequences (the first ones) the RTL backend
    runs, or the indices of the sequences to run. ``targets`` (N, T, outputs)
    are regression targets for a readout head (each row then has ``mse``).

    Raises :class:`~rnnaccel.numeric.golden.InputError` for inputs, lengths or labels
    that do not fit the model and head.
    """
    log = log or (lambda msg: None)
    if head is not None:
        check_head(head, cfg.hidden_size)
    X, lengths, labels, targets = _check_data(cfg, X, lengths, labels, head, targets)
    n, t, _ = X.shape
    mask = valid_mask(lengths, t)
    rows = []
    if head is not None and not head.is_classifier:
        pred_head = None
    else:
        pred_head = head

    t0 = time.time()
    log(f"float: {n} sequences x {t} steps")
    y_float = hidden_states(cfg, weights, X, "float")
    pred_float = pred_head.predict(last_states(y_float, lengths)) if pred_head is not None else None
    float_row = _row(
        _float_name(cfg),
        "float",
        y_float,
        y_float,
        mask,
        lengths,
        head,
        labels,
        pred_float,
        time.time() - t0,
        targets=targets,
    )

    if dense is not None:
        rows.append(_dense_row(cfg, dense, X, head, labels, targets, mask, lengths, y_float, pred_float, log))
    rows.append(float_row)

    ys = {}
    for arithmetic, name, what in (
        ("float-qweights", f"float, Q weights ({cfg.weight_format})", "float with quantized weights"),
        ("golden", "golden (integer)", "golden (integer)"),
    ):
        t0 = time.time()
        log(what)
        ys[arithmetic] = y = hidden_states(cfg, weights, X, arithmetic)
        rows.append(
            _row(
                name, arithmetic, y, y_float, mask, lengths, head, labels, pred_float, time.time() - t0, targets=targets
            )
        )
    y_gold = ys["golden"]

    rtl = None
    if rtl_backend is not None:
        ys = {"float": y_float, "golden": y_gold, "pred_float": pred_float}
        row, rtl = _rtl_row(
            cfg, weights, X, lengths, labels, targets, head, mask, ys, rtl_backend, rtl_sequences, cache_dir, log
        )
        rows.append(row)

    return {
        "model": _model_info(cfg),
        "data": {
            "sequences": n,
            "padded_steps": t,
            "valid_steps": int(lengths.sum()),
            "labels": labels is not None,
            "targets": targets is not None,
        },
        "head": None
        if head is None
        else {"classes": head.num_classes, "kind": head.kind, "names": list(head.classes) if head.classes else None},
        "rows": rows,
        "rtl": rtl,
    }


def _float_name(cfg: Config) -> str:
    return f"float (circulant k={cfg.block_size})" if cfg.circulant else "float (dense k=1)"


def _model_info(cfg: Config) -> dict:
    return {
        "name": cfg.name,
        "cell": cfg.cell,
        "input_size": cfg.input_size,
        "hidden_size": cfg.hidden_size,
        "num_layers": cfg.num_layers,
        "block_size": cfg.block_size,
        "config_hash": cfg.hash,
        "formats": {q: str(getattr(cfg, q)) for q in ("q_weight", "q_state", "q_cell", "q_pre", "q_act")}
        | ({"q_spectrum": str(cfg.q_spectrum)} if cfg.fft_mode else {}),  # FFT mode stores spectra
        "weight_bytes": cfg.weight_bytes,
        "dense_weight_bytes": cfg.dense_weight_bytes,
        "dense_float32_bytes": 4 * cfg.dense_weight_words(),
        "saved_vs_dense_same_width": 1 - cfg.weight_words() / cfg.dense_weight_words(),
        "saved_vs_dense_float32": 1 - cfg.weight_bytes / (4 * cfg.dense_weight_words()),
    }


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _sci(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _stored_format(model: dict) -> str:
    """The format of the stored weight words of a report's model: spectra in FFT mode, else the weights'."""
    spectrum = model["formats"].get("q_spectrum")
    return f"spectra {spectrum}" if spectrum else model["formats"]["q_weight"]


def format_table(report: dict) -> str:
    """The report as a text table, one line per arithmetic, then the RTL verdict."""
    m = report["model"]
    head = report["head"]
    readout = head is not None and head.get("kind", "classifier") == "readout"
    regression = report["data"].get("targets", False)
    lines = [
        f"model: {m['num_layers']}-layer {m['cell']}, input {m['input_size']}, hidden {m['hidden_size']}, "
        f"k={m['block_size']}, weights {_stored_format(m)}: {m['weight_bytes']} bytes "
        f"(dense float32 {m['dense_float32_bytes']}; {100 * m['saved_vs_dense_float32']:.1f}% saved)",
        f"data: {report['data']['sequences']} sequences, {report['data']['valid_steps']} steps"
        + (
            ""
            if head is None
            else f"; readout: {head['classes']} outputs per step"
            if readout
            else f"; head: {head['classes']} classes"
        )
        + ("; regression targets" if regression else "" if report["data"]["labels"] else "; no labels"),
    ]
    width = max(24, *(len(r["name"]) for r in report["rows"]))
    if regression:
        lines.append(f"{'arithmetic':{width}}  {'seqs':>5}  {'mse':>9}  {'max|dh|':>9}  {'mean|dh|':>9}  {'time':>7}")
        for r in report["rows"]:
            lines.append(
                f"{r['name']:{width}}  {r['sequences']:>5}  {_sci(r.get('mse')):>9}  "
                f"{_sci(r['max_abs_dev']):>9}  {_sci(r['mean_abs_dev']):>9}  {r['seconds']:>6.2f}s"
            )
        lines.append("mse: readout vs targets Y over valid steps; dh: hidden-state deviation from the float row")
    else:
        lines.append(
            f"{'arithmetic':{width}}  {'seqs':>5}  {'accuracy':>8}  {'agree':>7}  {'max|dh|':>9}  "
            f"{'mean|dh|':>9}  {'time':>7}"
        )
        for r in report["rows"]:
            lines.append(
                f"{r['name']:{width}}  {r['sequences']:>5}  {_pct(r['accuracy']):>8}  "
                f"{_pct(r['agreement']):>7}  {_sci(r['max_abs_dev']):>9}  {_sci(r['mean_abs_dev']):>9}  "
                f"{r['seconds']:>6.2f}s"
            )
        lines.append("dh: hidden-state deviation from the float row over valid steps; agree: same prediction as float")
    for r in report["rows"]:
        for note in r.get("notes", []):
            lines.append(f"note ({r['name']}): {note}")
    rtl = report.get("rtl")
    if rtl:
        line = (
            f"verdict: {rtl['verdict']} ({rtl['backend']} vs golden, {rtl['sequences']} sequence(s), "
            f"{rtl['steps']} steps, {rtl['words']} words)"
        )
        if "cycles" in rtl:
            line += (
                f"; {rtl['cycles_per_step']:.1f} cycles/step, ideal {rtl['ideal_cycles_per_step']} "
                f"({100 * rtl['utilization']:.1f}%)"
            )
        lines.append(line)
    return "\n".join(lines)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def write_json(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(_jsonable(report), indent=2) + "\n")


def plot_report(report: dict, path: str | Path) -> None:
    """Bar charts (matplotlib, Agg): accuracy per arithmetic (with labels) and hidden-state deviation."""
    try:
        import matplotlib
    except ImportError:
        raise ModelError("plotting needs matplotlib: pip install 'rnnaccel[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = report["rows"]
    names = [r["name"] + (f"\n({r['sequences']} seq)" if r["arithmetic"].startswith("rtl") else "") for r in rows]
    has_acc = any(r["accuracy"] is not None for r in rows)
    has_mse = not has_acc and any(r.get("mse") is not None for r in rows)
    ncols = 2 if has_acc or has_mse else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 0.6 * len(rows) + 2.2), squeeze=False)
    axes = axes[0]
    colors = ["#4c72b0" if not r["arithmetic"].startswith("rtl") else "#c44e52" for r in rows]
    ypos = np.arange(len(rows))[::-1]
    if has_acc:
        ax = axes[0]
        acc = [100 * r["accuracy"] if r["accuracy"] is not None else 0.0 for r in rows]
        ax.barh(ypos, acc, color=colors)
        for y, a, r in zip(ypos, acc, rows):
            ax.text(a, y, f" {a:.2f}%" if r["accuracy"] is not None else " n/a", va="center", fontsize=8)
        ax.set_yticks(ypos, names, fontsize=8)
        lo = min([a for a, r in zip(acc, rows) if r["accuracy"] is not None] or [0])
        ax.set_xlim(max(0.0, lo - 10), 105)
        ax.set_xlabel("accuracy (%)")
        ax.set_title("task accuracy")
    elif has_mse:
        ax = axes[0]
        mse = [r["mse"] if r.get("mse") is not None else 0.0 for r in rows]
        ax.barh(ypos, mse, color=colors)
        for y, v, r in zip(ypos, mse, rows):
            ax.text(v, y, f" {v:.3g}" if r.get("mse") is not None else " n/a", va="center", fontsize=8)
        ax.set_yticks(ypos, names, fontsize=8)
        ax.set_xlabel("mean squared error")
        ax.set_title("regression readout")
    ax = axes[-1]
    mx = [r["max_abs_dev"] if r["max_abs_dev"] else np.nan for r in rows]
    mean = [r["mean_abs_dev"] if r["mean_abs_dev"] else np.nan for r in rows]
    ax.barh(ypos + 0.2, mx, height=0.4, color="#dd8452", label="max |dh|")
    ax.barh(ypos - 0.2, mean, height=0.4, color="#55a868", label="mean |dh|")
    ax.set_xscale("log")
    ax.set_yticks(ypos, names if not (has_acc or has_mse) else [""] * len(rows), fontsize=8)
    ax.set_xlabel("hidden-state deviation from float")
    ax.set_title("deviation (float row: 0)")
    ax.legend(fontsize=8, loc="lower right")
    m = report["model"]
    fig.suptitle(
        f"{m['cell']} {m['input_size']}->{m['hidden_size']}, k={m['block_size']}, weights "
        f"{_stored_format(m)} ({m['weight_bytes']} B)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
