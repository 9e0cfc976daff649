"""Retraining a model directory with the hardware's arithmetic: what ``rnnaccel retrain`` runs.

A model whose weights were projected onto block-circulant ones (``rnnaccel
import -k K``) or quantized to narrow formats has lost accuracy; training its
circulant defining vectors again, with the accelerator's arithmetic in the
forward pass, gets it back. :func:`retrain` is that loop, the one the
``retrain`` command, ``scripts/example_vowels.py`` and
``scripts/example_gunpoint.py`` call:

* the model is :class:`rnnaccel.models.train.CirculantRNN` with ``fake_quant=True,
  table_activations=True`` in float64 (``arithmetic="exact"``, the default):
  every tensor class is quantized where the integer model narrows, sigmoid
  and tanh are the accelerator's tables, and the parameters are the defining
  vectors themselves, so what training sees is, bit for bit, what
  :class:`rnnaccel.numeric.golden.IntegerModel` (and the hardware) computes;
  ``arithmetic="float"`` trains the same circulant parameters in float32 with
  exact sigmoid/tanh (a fast warm start);
* a linear head is trained jointly: a classifier of the last layer's hidden
  state at each sequence's last valid step (cross entropy, labels ``y``), or
  a per-step readout (mean squared error, targets ``Y``), written as
  ``head.npz`` (:mod:`rnnaccel.accuracy.evaluate`). In exact mode the head is applied
  with float32-rounded parameters, as the saved ``head.npz`` holds them, so
  the accuracy measured during training is the golden model's;
* Adam with a cosine learning-rate schedule, gradient-norm clipping at 5,
  batches of sequences of similar length (sorted, chunked, the chunks in a
  seeded random order); after every epoch the model is scored on the
  validation set (or the training set when there is none) and the best epoch
  (highest accuracy, then lowest loss; for regression the lowest mean squared
  error) is kept, the starting model counting as epoch 0;
* deterministic: the same data, settings and seed give byte-identical
  ``weights.npz`` (no global random state is used; torch runs with
  ``threads`` threads, 1 by default).

Data (:func:`load_task_data`, :func:`task_data`): ``X`` (N, T, input)
numbers, either ``y`` (N,) integer class labels or ``Y`` (N, T, outputs)
float targets, optionally ``lengths`` (N,) (zero-padded sequences; outputs
after a sequence's end are ignored) and ``classes`` (label names). Every
problem (wrong shape, NaN, labels out of range, an empty set) is a
:class:`DataError` with a one-line message.
"""

from __future__ import annotations

import copy
import math
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..numeric.config import Config
from .evaluate import HEAD_FILE, Head, last_states, readout_mse, save_head, valid_mask
from ..numeric.golden import InputError
from ..numeric.model import Weights, save_model

__all__ = [
    "DataError",
    "TaskData",
    "task_data",
    "load_task_data",
    "EpochRecord",
    "RetrainResult",
    "retrain",
    "ARITHMETICS",
    "length_batches",
    "fit",
    "golden_metric",
]

#: Training arithmetics of :func:`retrain`.
ARITHMETICS = ("exact", "float")


class DataError(InputError):
    """Training or evaluation data that cannot be used (one-line message)."""


# ----------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskData:
    """Sequences and their targets, checked.

    Attributes
    ----------
    X : ndarray float64 (N, T, input)
    lengths : ndarray int64 (N,)
    y : ndarray int64 (N,) or None
        Class labels (classification).
    Y : ndarray float64 (N, T, outputs) or None
        Per-step targets (regression).
    classes : tuple of str or None
        Label names, when the data names them.
    source : str
        Where the data came from (for messages).
    """

    X: np.ndarray
    lengths: np.ndarray
    y: np.ndarray | None = None
    Y: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    source: str = "data"

    @property
    def task(self) -> str:
        """``classify`` (labels y) or ``regress`` (targets Y)."""
        return "classify" if self.y is not None else "regress"

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def num_outputs(self) -> int:
        """Classes (from the names, else the largest label + 1) or regression outputs."""
        if self.y is not None:
            return len(self.classes) if self.classes is not None else int(self.y.max()) + 1
        return int(self.Y.shape[2])

    def subset(self, index) -> "TaskData":
        return TaskData(
            X=self.X[index],
            lengths=self.lengths[index],
            y=None if self.y is None else self.y[index],
            Y=None if self.Y is None else self.Y[index],
            classes=self.classes,
            source=self.source,
        )


def task_data(
    X, y=None, Y=None, lengths=None, classes=None, input_size: int | None = None, source: str = "data"
) -> TaskData:
    """Check arrays and return :class:`TaskData`; :class:`DataError` names the first problem."""
    X = np.asarray(X)
    if X.dtype.kind not in "fiu":
        raise DataError(f"{source}: X must hold numbers, not dtype {X.dtype}")
    want = f"(N, T, {input_size})" if input_size is not None else "(N, T, input)"
    if X.ndim != 3:
        raise DataError(f"{source}: X has shape {X.shape}; retraining needs sequences {want}")
    n, t, c = X.shape
    if n == 0 or t == 0:
        raise DataError(f"{source}: X has shape {X.shape}: an empty set (no sequences or no steps)")
    if input_size is not None and c != input_size:
        raise DataError(
            f"{source}: X has shape {X.shape}; the model reads {input_size} inputs per step, so X needs {want}"
        )
    if not np.all(np.isfinite(X)):
        bad = np.argwhere(~np.isfinite(X))[0]
        raise DataError(f"{source}: X holds a NaN or infinite value at index {tuple(int(i) for i in bad)}")
    if lengths is None:
        lengths = np.full(n, t, dtype=np.int64)
    else:
        lengths = np.asarray(lengths)
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
            raise DataError(
                f"{source}: lengths must be {n} integers (one per sequence), not shape "
                f"{lengths.shape} dtype {lengths.dtype}"
            )
        if lengths.min() < 1 or lengths.max() > t:
            raise DataError(
                f"{source}: lengths must be between 1 and {t} (the padded length), not "
                f"{int(lengths.min())}..{int(lengths.max())}"
            )
        lengths = lengths.astype(np.int64)
    if y is not None and Y is not None:
        raise DataError(f"{source}: holds both y (class labels) and Y (regression targets); give one")
    if y is None and Y is None:
        raise DataError(f"{source}: no targets: give y (N,) integer class labels or Y (N, T, outputs) float targets")
    names = None
    if classes is not None:
        names = tuple(str(v) for v in np.ravel(classes))
        if not names:
            raise DataError(f"{source}: classes is empty")
    if y is not None:
        y = np.asarray(y)
        if y.ndim != 1 or y.shape[0] != n:
            raise DataError(f"{source}: y has shape {y.shape}, X holds {n} sequences: y needs ({n},) class labels")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)):
                raise DataError(f"{source}: y holds NaN or infinite values")
            if not np.all(y == np.round(y)):
                raise DataError(
                    f"{source}: y must be integer class labels, not fractional values "
                    f"(for regression targets name the array Y, shape (N, T, outputs))"
                )
        elif y.dtype.kind not in "iu":
            raise DataError(f"{source}: y must be integer class labels, not dtype {y.dtype}")
        y = y.astype(np.int64)
        if y.min() < 0:
            raise DataError(f"{source}: labels out of range: y holds {int(y.min())}; class labels are 0, 1, 2, ...")
        if names is not None and y.max() >= len(names):
            raise DataError(
                f"{source}: labels out of range: y holds {int(y.max())}, classes names "
                f"{len(names)} (labels 0..{len(names) - 1})"
            )
    else:
        Y = np.asarray(Y)
        if Y.dtype.kind not in "fiu":
            raise DataError(f"{source}: Y must hold numbers, not dtype {Y.dtype}")
        if Y.ndim != 3 or Y.shape[:2] != (n, t) or Y.shape[2] == 0:
            raise DataError(
                f"{source}: Y has shape {Y.shape}; per-step targets need ({n}, {t}, outputs) like X {X.shape}"
            )
        if not np.all(np.isfinite(Y)):
            bad = np.argwhere(~np.isfinite(Y))[0]
            raise DataError(f"{source}: Y holds a NaN or infinite value at index {tuple(int(i) for i in bad)}")
        Y = Y.astype(np.float64)
        if names is not None:
            raise DataError(f"{source}: classes names labels, but the targets are Y (regression)")
    return TaskData(X=X.astype(np.float64), lengths=lengths, y=y, Y=Y, classes=names, source=source)


def load_task_data(path: str | Path, input_size: int | None = None) -> TaskData:
    """Read an ``.npz`` with ``X`` and ``y`` or ``Y`` (optionally ``lengths``, ``classes``) and check it."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {str(path)!r} does not exist")
    try:
        d = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise DataError(f"{path}: not a readable .npz archive of arrays (X and y or Y)") from None
    if not hasattr(d, "files"):
        raise DataError(f"{path}: a single array (.npy); give an .npz with arrays X and y (or Y)")
    try:
        with d:
            arrays = {k: np.asarray(d[k]) for k in d.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile):
        raise DataError(f"{path}: not a readable .npz archive of arrays (X and y or Y)") from None
    if "X" not in arrays:
        raise DataError(f"{path}: has no array X (arrays: {', '.join(sorted(arrays)) or 'none'})")
    known = {"X", "y", "Y", "lengths", "classes"}
    extra = sorted(set(arrays) - known)
    if extra:
        raise DataError(
            f"{path}: unknown array {extra[0]!r} (an .npz holds X, y or Y, and optionally lengths and classes)"
        )
    return task_data(
        arrays["X"],
        arrays.get("y"),
        arrays.get("Y"),
        arrays.get("lengths"),
        arrays.get("classes"),
        input_size=input_size,
        source=str(path),
    )


# ----------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------


def length_batches(lengths: np.ndarray, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches of similar lengths (sorted with a little noise, chunked, chunk order shuffled)."""
    order = np.argsort(np.asarray(lengths) + rng.uniform(0, 0.5, size=len(lengths)), kind="stable")
    chunks = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


def fit(
    step_loss: Callable,
    params,
    lengths: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch: int,
    rng: np.random.Generator,
    clip: float = 5.0,
    on_epoch: Callable[[int, float], None] | None = None,
) -> None:
    """Adam with a cosine learning rate over length-sorted batches.

    ``step_loss(index) -> loss`` computes the mean loss of the sequences at
    ``index`` (a numpy index array); ``on_epoch(epoch, mean loss)`` runs after
    each epoch (1-based). Used by :func:`retrain` and by the examples' dense
    float training.
    """
    import torch

    params = [p for p in params if p.requires_grad]
    if epochs <= 0:
        return
    opt = torch.optim.Adam(params, lr=lr)
    steps_total = epochs * math.ceil(len(lengths) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps_total) / steps_total))
    )
    for epoch in range(1, epochs + 1):
        total, count = 0.0, 0
        for idx in length_batches(lengths, batch, rng):
            loss = step_loss(idx)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        if on_epoch is not None:
            on_epoch(epoch, total / max(1, count))


@dataclass(frozen=True)
class EpochRecord:
    """One epoch: training loss (mean over batches), and the score on the selection set."""

    epoch: int
    train_loss: float | None
    score_loss: float
    accuracy: float | None
    mse: float | None
    seconds: float


@dataclass
class RetrainResult:
    """What :func:`retrain` returns: the best epoch's weights and head, and the history."""

    cfg: Config
    weights: Weights
    head: Head
    task: str
    arithmetic: str
    best_epoch: int
    selected_on: str
    history: list[EpochRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def best(self) -> EpochRecord:
        return next(r for r in self.history if r.epoch == self.best_epoch)

    def save(self, directory: str | Path) -> Path:
        """Write ``rnnaccel.toml``, ``weights.npz`` and ``head.npz`` into ``directory``."""
        save_model(directory, self.cfg, self.weights)
        save_head(directory, self.head.W, self.head.b, self.head.classes, self.head.kind)
        return Path(directory)

    def summary(self) -> dict:
        """JSON-able settings, best epoch and history."""
        return {
            "task": self.task,
            "arithmetic": self.arithmetic,
            "best_epoch": self.best_epoch,
            "selected_on": self.selected_on,
            "seconds": round(self.seconds, 2),
            "notes": list(self.notes),
            "history": [r.__dict__ for r in self.history],
        }


def _head_start(
    task: str, outputs: int, hidden: int, head: Head | None, classes, rng: np.random.Generator, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Initial head (W, b, class names): the given head when it fits the task, else seeded uniform."""
    kind = "classifier" if task == "classify" else "readout"
    if head is not None:
        if head.kind == kind and head.num_classes == outputs and head.hidden_size == hidden:
            names = classes if classes is not None else head.classes
            return np.asarray(head.W, np.float64), np.asarray(head.b, np.float64), names
        what = f"{head.kind} with {head.num_classes} {'classes' if head.is_classifier else 'outputs'}"
        notes.append(
            f"the model's {HEAD_FILE} ({what}) does not fit this task ({kind} with {outputs} "
            f"{'classes' if task == 'classify' else 'outputs'}): a new head is trained"
        )
    else:
        notes.append(f"no {HEAD_FILE} in the model: a new {kind} head is trained")
    bound = 1.0 / math.sqrt(hidden)  # PyTorch's nn.Linear range
    W = rng.uniform(-bound, bound, size=(outputs, hidden))
    b = rng.uniform(-bound, bound, size=outputs)
    return W, b, classes


def _resolve_outputs(train: TaskData, val: TaskData | None, head: Head | None) -> int:
    if train.task == "regress":
        if val is not None and val.task != "regress":
            raise DataError(f"{val.source}: holds class labels y, the training data regression targets Y")
        if val is not None and val.Y.shape[2] != train.Y.shape[2]:
            raise DataError(f"{val.source}: Y has {val.Y.shape[2]} outputs, the training data {train.Y.shape[2]}")
        return train.num_outputs
    if val is not None and val.task != "classify":
        raise DataError(f"{val.source}: holds regression targets Y, the training data class labels y")
    if train.classes is not None:
        outputs, why = len(train.classes), f"{train.source} names {len(train.classes)} classes"
    elif head is not None and head.is_classifier:
        outputs, why = head.num_classes, f"the model's {HEAD_FILE} has {head.num_classes} classes"
        if train.y.max() >= outputs:
            raise DataError(
                f"{train.source}: labels out of range: y holds {int(train.y.max())}, but {why} "
                f"(labels 0..{outputs - 1})"
            )
    else:
        outputs, why = train.num_outputs, f"the training labels are 0..{train.num_outputs - 1}"
    if val is not None:
        if val.classes is not None and train.classes is not None and val.classes != train.classes:
            raise DataError(
                f"{val.source}: classes {list(val.classes)} are not the training data's {list(train.classes)}"
            )
        if val.y.max() >= outputs:
            raise DataError(f"{val.source}: labels out of range: y holds {int(val.y.max())}, but {why}")
    if outputs < 2:
        raise DataError(f"{train.source}: every label is 0: a classifier needs two classes or more")
    return outputs


def retrain(
    cfg: Config,
    weights: Weights,
    train: TaskData,
    val: TaskData | None = None,
    *,
    head: Head | None = None,
    epochs: int = 100,
    lr: float = 1e-2,
    batch: int = 32,
    seed: int = 0,
    threads: int | None = 1,
    arithmetic: str = "exact",
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    desc: str = "retrain",
) -> RetrainResult:
    """Train ``weights`` (circulant defining vectors and biases) and a linear head on ``train``.

    See the module docs. ``head`` is the starting head (used when it fits the
    task and size; otherwise a seeded new one). ``threads`` sets torch's
    thread count for the run (restored afterwards; None leaves it).
    Returns the best epoch's weights and head (:class:`RetrainResult`).
    Raises :class:`DataError` for data that does not fit the model.
    """
    import torch

    _check_retrain_args(cfg, train, val, arithmetic, epochs, batch, lr)
    log = log or (lambda msg: None)
    t_start = time.time()
    notes: list[str] = []
    outputs = _resolve_outputs(train, val, head)
    rng = np.random.default_rng(seed)
    W0, b0, names = _head_start(train.task, outputs, cfg.hidden_size, head, train.classes, rng, notes)
    for note in notes:
        log(f"note: {note}")
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        tr = _Trainer(cfg, weights, train, val, W0, b0, arithmetic, batch)
        log(
            f"{desc}: {len(train)} training sequences, {tr.task}, {outputs} "
            f"{'classes' if tr.task == 'classify' else 'outputs'}; {arithmetic} arithmetic; start: {tr.where} "
            f"{'accuracy' if tr.task == 'classify' else 'mse'} {tr.fmt(tr.best_rec)}"
        )
        tr.run(epochs, lr, rng, progress, desc)
        new_weights, W_out, b_out = tr.best()
    finally:
        torch.set_num_threads(old_threads)
    task = train.task
    out_head = Head(
        W_out, b_out, names if task == "classify" else None, "classifier" if task == "classify" else "readout"
    )
    result = RetrainResult(
        cfg=cfg,
        weights=new_weights,
        head=out_head,
        task=task,
        arithmetic=arithmetic,
        best_epoch=tr.best_rec.epoch,
        selected_on=tr.where,
        history=tr.history,
        notes=notes,
        seconds=time.time() - t_start,
    )
    log(
        f"{desc}: best epoch {tr.best_rec.epoch} of {epochs} on {tr.where} data ({tr.fmt(tr.best_rec)}), "
        f"{result.seconds:.1f} s"
    )
    return result


def _check_retrain_args(cfg: Config, train: TaskData, val, arithmetic: str, epochs, batch, lr) -> None:
    """:func:`retrain`'s arguments: a ValueError (or DataError for data of the wrong width) naming the first bad one."""
    if arithmetic not in ARITHMETICS:
        raise ValueError(f"arithmetic must be one of {', '.join(ARITHMETICS)}, not {arithmetic!r}")
    for name, value in (("epochs", epochs), ("batch", batch)):
        if int(value) != value or value < (0 if name == "epochs" else 1):
            raise ValueError(f"{name} must be a whole number {'0' if name == 'epochs' else '1'} or more, not {value}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"the learning rate must be positive, not {lr}")
    for data in (train, val):
        if data is not None and data.X.shape[2] != cfg.input_size:
            raise DataError(
                f"{data.source}: X has shape {data.X.shape}; the model reads {cfg.input_size} inputs "
                f"per step, so X needs (N, T, {cfg.input_size})"
            )


class _Trainer:
    """One :func:`retrain` run: the torch model and head, the loss, the selection score and the best epoch."""

    def __init__(self, cfg: Config, weights, train: TaskData, val, W0, b0, arithmetic: str, batch: int):
        import torch

        from ..models.train import CirculantRNN

        self.torch, self.train, self.val, self.batch = torch, train, val, batch
        self.task = train.task
        self.exact = arithmetic == "exact"
        dtype = self.dtype = torch.float64 if self.exact else torch.float32
        self.model = CirculantRNN.from_weights(
            cfg, weights, fake_quant=self.exact, table_activations=self.exact, dtype=dtype
        )
        self.hW = torch.nn.Parameter(torch.as_tensor(W0, dtype=dtype))
        self.hb = torch.nn.Parameter(torch.as_tensor(b0, dtype=dtype))
        self.tr = self.tensors(train)
        self.sel = val if val is not None else train
        self.sel_t = self.tensors(val) if val is not None else self.tr
        self.where = "validation" if val is not None else "training"
        self.metric = "acc" if self.task == "classify" else "mse"
        self.history: list[EpochRecord] = []
        t0 = time.time()
        s_loss, s_acc, s_mse = self.score()
        self.best_rec = EpochRecord(0, None, s_loss, s_acc, s_mse, round(time.time() - t0, 3))
        self.history.append(self.best_rec)
        self.best_state = self.snapshot()

    def head_params(self):
        if self.exact:  # what head.npz will hold: float32
            t = self.torch
            return self.hW.to(t.float32).to(self.dtype), self.hb.to(t.float32).to(self.dtype)
        return self.hW, self.hb

    def tensors(self, data: TaskData):
        t = self.torch
        return (
            t.as_tensor(data.X, dtype=self.dtype),
            None if data.y is None else t.as_tensor(data.y),
            None if data.Y is None else t.as_tensor(data.Y, dtype=self.dtype),
        )

    def outputs_of(self, x, lengths):
        """(logits (n, C) for the last valid steps, or per-step outputs (n, T, O)); x cut to max length."""
        t = self.torch
        y, _ = self.model(x)
        Wh, bh = self.head_params()
        if self.task == "classify":
            idx = t.as_tensor(np.asarray(lengths) - 1)
            return y[t.arange(y.shape[0]), idx] @ Wh.T + bh
        return y @ Wh.T + bh

    def loss_of(self, out, data_t, idx, lengths, steps):
        t = self.torch
        if self.task == "classify":
            return t.nn.functional.cross_entropy(out, data_t[1][t.as_tensor(idx)])
        target = data_t[2][t.as_tensor(idx), :steps]
        mask = t.as_tensor(valid_mask(lengths, steps), dtype=self.dtype)[..., None]
        return (((out - target) ** 2) * mask).sum() / (mask.sum() * target.shape[-1])

    def step_loss(self, idx):
        lengths = self.train.lengths[idx]
        steps = int(lengths.max())
        x = self.tr[0][self.torch.as_tensor(idx), :steps]
        return self.loss_of(self.outputs_of(x, lengths), self.tr, idx, lengths, steps)

    def score(self) -> tuple[float, float | None, float | None]:
        """(loss, accuracy, mse) of the current model on the selection set (no gradients)."""
        sel, total, correct = self.sel, 0.0, 0
        with self.torch.no_grad():
            order = np.argsort(sel.lengths, kind="stable")
            chunk = max(self.batch, 256)  # no gradients: large batches, few torch calls
            for i in range(0, len(order), chunk):
                idx = order[i : i + chunk]
                lengths = sel.lengths[idx]
                steps = int(lengths.max())
                out = self.outputs_of(self.sel_t[0][self.torch.as_tensor(idx), :steps], lengths)
                loss = float(self.loss_of(out, self.sel_t, idx, lengths, steps))
                if self.task == "classify":
                    total += loss * len(idx)
                    correct += int((out.argmax(-1).numpy() == sel.y[idx]).sum())
                else:  # the batch's mean over its valid steps, weighted back to a sum
                    total += loss * float(lengths.sum())
        if self.task == "classify":
            return total / len(sel), correct / len(sel), None
        mse = total / float(sel.lengths.sum())
        return mse, None, mse

    def snapshot(self):
        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return copy.deepcopy(state), self.hW.detach().clone(), self.hb.detach().clone()

    def better(self, a: EpochRecord, b: EpochRecord | None) -> bool:
        if b is None:
            return True
        if self.task == "classify":
            return (a.accuracy, -a.score_loss) > (b.accuracy, -b.score_loss)
        return a.mse < b.mse

    def fmt(self, rec: EpochRecord) -> str:
        return f"{100 * rec.accuracy:.2f}%" if self.task == "classify" else f"{rec.mse:.4g}"

    def run(self, epochs: int, lr: float, rng, progress: bool, desc: str) -> None:
        """Train ``epochs`` epochs, scoring after each and keeping the best (a tqdm bar with ``progress``)."""
        bar = None
        if progress and epochs > 0:
            try:
                from tqdm import tqdm

                bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=True, dynamic_ncols=True)
            except ImportError:  # the bar is a convenience
                bar = None
        clock = {"t": time.time()}

        def on_epoch(epoch: int, mean_loss: float) -> None:
            s_loss, s_acc, s_mse = self.score()
            rec = EpochRecord(epoch, mean_loss, s_loss, s_acc, s_mse, round(time.time() - clock["t"], 3))
            clock["t"] = time.time()
            self.history.append(rec)
            if self.better(rec, self.best_rec):
                self.best_rec, self.best_state = rec, self.snapshot()
            if bar is not None:
                bar.set_postfix_str(
                    f"loss {mean_loss:.4f}, {'val' if self.val is not None else 'train'} {self.metric} "
                    f"{self.fmt(rec)} (best {self.fmt(self.best_rec)} @ {self.best_rec.epoch})",
                    refresh=False,
                )
                bar.update(1)

        params = list(self.model.parameters()) + [self.hW, self.hb]
        try:
            fit(
                self.step_loss,
                params,
                self.train.lengths,
                epochs=epochs,
                lr=lr,
                batch=self.batch,
                rng=rng,
                on_epoch=on_epoch,
            )
        finally:
            if bar is not None:
                bar.close()

    def best(self):
        """The best epoch's (weights, head W, head b), the model left at that epoch."""
        sd, bW, bb = self.best_state
        self.model.load_state_dict(sd)
        t = self.torch
        return self.model.to_weights(), bW.to(t.float32).numpy().copy(), bb.to(t.float32).numpy().copy()


def golden_metric(cfg: Config, weights: Weights, head: Head, data: TaskData, arithmetic: str = "golden") -> float:
    """Accuracy (classification) or mean squared error (regression) of a model and head on ``data`` in one
    arithmetic of :func:`rnnaccel.accuracy.evaluate.hidden_states` (default: the integer golden model)."""
    from .evaluate import hidden_states

    y = hidden_states(cfg, weights, data.X, arithmetic)
    if data.task == "classify":
        return float(np.mean(head.predict(last_states(y, data.lengths)) == data.y))
    return readout_mse(head, y, data.Y, valid_mask(data.lengths, data.X.shape[1]))
