"""The worked examples: a real classifier, compressed, retrained and run on the generated hardware.

``scripts/example_vowels.py`` (JapaneseVowels) and ``scripts/example_gunpoint.py``
(GunPoint) both call :func:`main` with their data set and defaults; the steps
are the command line's, through the same functions:

1. train a dense float classifier in PyTorch (``nn.LSTM`` + ``nn.Linear`` on
   the hidden state at each sequence's last valid step) and save it with
   ``torch.save`` (``dense.pt``), as a user would;
2. import it exactly (:func:`rnnaccel.models.importers.import_model`, what
   ``rnnaccel import dense.pt`` runs: k = 1, 16-bit weights fitted to the
   largest weight) and check that the integer golden model keeps the float
   model's accuracy;
3. for each block size k and weight width: import it projected onto
   block-circulant weights (``rnnaccel import -k K --q-weight Qm.n``) with the
   dense head, measure the accuracy before retraining, retrain with the
   hardware's exact arithmetic (:func:`rnnaccel.accuracy.retrain.retrain`, what
   ``rnnaccel retrain`` runs) and measure the golden model's test accuracy;
4. tabulate float, projected and retrained accuracy against weight bytes
   (markdown, JSON, a plot);
5. export the smallest model within ``--tolerance`` points of the dense float
   model with its head, generate its Verilog and run it in a simulator on the
   shortest test sequences: bit-exact verdict against the golden model
   (:func:`rnnaccel.accuracy.evaluate.evaluate`).

With ``--modes direct,fft`` step 3 also imports every k that is a power of two,
4 or more, in the FFT circulant mode (``circulant_mode = "fft"``: weights stored
as fixed-point spectra in ``q_spectrum``, :mod:`rnnaccel.numeric.fft`), retrains it
from the same projection with the exact FFT forward and reports the golden
model's test accuracy in an extra column. The configuration is otherwise the
direct model's (the 2 x 2 PE grid, the same formats), so the column compares
the two arithmetics alone. Steps 4 and 5 keep to the direct models: the FFT
gateware exists only on the serial datapath (``hw/serial_fft.py``), the array
datapath the examples generate refuses the mode.

The training and test splits are also written as ``train.npz`` and
``test.npz`` (X, y, lengths, classes), the files ``rnnaccel retrain --data``
and ``rnnaccel evaluate --data`` read.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "ExampleSpec",
    "MODES",
    "parse_args",
    "main",
    "fft_block",
    "spectrum_format",
    "frame_sequences",
    "markdown_table",
    "plot_sweep",
    "save_npz_split",
]


@dataclass(frozen=True)
class ExampleSpec:
    """A data set and the defaults of its worked example."""

    dataset: str
    out: str
    hidden: int
    frame: int = 1  # samples per step: a univariate series read as frames of this many samples
    epochs: int = 100  # dense training
    lr: float = 1e-2
    batch: int = 32
    retrain_epochs: int = 100
    retrain_lr: float = 1e-2
    retrain_batch: int = 32
    quick_hidden: int = 16
    quick_per_class_train: int = 10
    quick_per_class_test: int = 6
    description: str = ""


def parse_args(spec: ExampleSpec, argv=None, doc: str | None = None):
    p = argparse.ArgumentParser(
        description=(doc or spec.description).split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", default=spec.out, help=f"output folder (default {spec.out})")
    p.add_argument("--quick", action="store_true", help="smoke test: small model, subsets, few epochs")
    p.add_argument(
        "--hidden", type=int, help=f"LSTM hidden size (default {spec.hidden}; {spec.quick_hidden} with --quick)"
    )
    p.add_argument(
        "--frame",
        type=int,
        default=spec.frame,
        help=f"samples per time step (default {spec.frame}): T steps become T/frame steps of frame x channels inputs",
    )
    p.add_argument("--ks", default="1,2,4,8,16", help="block sizes (default 1,2,4,8,16)")
    p.add_argument("--bits", default="8,16", help="weight widths (default 8,16)")
    p.add_argument(
        "--modes",
        default="direct",
        help="circulant arithmetics (default direct): direct,fft also retrains every k that is a power of two, "
        "4 or more, in circulant_mode = 'fft' (spectra of the same width as the weights) for the table's FFT column",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help=f"dense training epochs (default {spec.epochs}; 25 with --quick)")
    p.add_argument("--lr", type=float, default=spec.lr, help=f"dense training learning rate (default {spec.lr:g})")
    p.add_argument(
        "--retrain-epochs",
        type=int,
        help=f"retraining epochs per model (default {spec.retrain_epochs}; 2 with --quick)",
    )
    p.add_argument(
        "--retrain-lr",
        type=float,
        default=spec.retrain_lr,
        help=f"retraining learning rate (default {spec.retrain_lr:g})",
    )
    p.add_argument("--batch", type=int, default=spec.batch, help=f"dense training batch (default {spec.batch})")
    p.add_argument(
        "--retrain-batch", type=int, default=spec.retrain_batch, help=f"retraining batch (default {spec.retrain_batch})"
    )
    p.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="accuracy loss (percentage points vs the dense float model) allowed for the exported model",
    )
    p.add_argument("--rtl-backend", default="icarus", choices=["icarus", "verilator", "amaranth", "none"])
    p.add_argument("--rtl-sequences", type=int, help="test sequences to simulate, the shortest ones (default 2)")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: these matrices are tiny, more threads only add contention)",
    )
    args = p.parse_args(argv)
    q = args.quick
    args.hidden = args.hidden or (spec.quick_hidden if q else spec.hidden)
    args.epochs = args.epochs if args.epochs is not None else (25 if q else spec.epochs)
    args.retrain_epochs = args.retrain_epochs if args.retrain_epochs is not None else (2 if q else spec.retrain_epochs)
    args.rtl_sequences = args.rtl_sequences or 2
    args.ks = [int(v) for v in args.ks.split(",")]
    args.bits = [int(v) for v in args.bits.split(",")]
    args.modes = [v.strip() for v in args.modes.split(",") if v.strip()]
    bad = [m for m in args.modes if m not in MODES]
    if bad or "direct" not in args.modes:
        p.error(
            f"--modes {','.join(args.modes)}: give direct or direct,fft (the FFT column sits beside the direct models, "
            "which the selection and the RTL step use)"
        )
    return args


#: Circulant arithmetics of ``--modes``.
MODES = ("direct", "fft")


def fft_block(k: int) -> bool:
    """Whether ``circulant_mode = 'fft'`` takes block size ``k`` (a power of two, 4 or more)."""
    return k >= 4 and k & (k - 1) == 0


def spectrum_format(weights, bits: int):
    """The ``bits``-bit format holding every part of the circulant matrices' spectra, as ``rnnaccel quantize`` fits
    ``q_spectrum`` (the largest |real or imaginary part| of :func:`rnnaccel.numeric.fft.weight_spectra`)."""
    from ..models.quantize import fit_format
    from ..numeric.fft import weight_spectra

    parts = np.concatenate([np.ravel(weight_spectra(v)) for key, v in weights.items() if key.endswith((".W", ".U"))])
    q, _ = fit_format(float(parts.min()), float(parts.max()), bits, min_int_bits=None)
    return q


def frame_sequences(X: np.ndarray, lengths: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, C) -> (N, ceil(T/frame), frame*C): each step reads ``frame`` consecutive samples (zero-padded)."""
    if frame == 1:
        return X, lengths
    n, t, c = X.shape
    steps = -(-t // frame)
    pad = np.zeros((n, steps * frame, c), dtype=X.dtype)
    pad[:, :t] = X
    return pad.reshape(n, steps, frame * c), -(-np.asarray(lengths) // frame)


def save_npz_split(path: Path, X, y, lengths, classes) -> None:
    """The split as the ``rnnaccel retrain/evaluate --data`` archive: X, y, lengths, classes."""
    np.savez(
        path,
        X=np.asarray(X, np.float32),
        y=np.asarray(y, np.int64),
        lengths=np.asarray(lengths, np.int64),
        classes=np.array(classes, dtype=np.str_),
    )


def main(spec: ExampleSpec, argv=None, doc: str | None = None) -> int:
    """Run the worked example of ``spec`` (see the scripts' docstrings); the exit status."""
    t_start = time.time()
    args = parse_args(spec, argv, doc)
    prog = f"example_{spec.dataset.lower()}"
    try:
        import torch  # noqa: F401  (the phases import it again; here only to fail early in one line)
    except ImportError:
        print(f"{prog}: error: needs torch: pip install 'rnnaccel[models,examples]'", file=sys.stderr)
        return 2
    from ..models.datasets import DatasetError

    run = _Example(spec, args, t_start)
    try:
        run.load_data()
    except DatasetError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    run.train_dense()
    run.exact_import()
    for k in args.ks:
        for bits in args.bits:
            run.sweep_point(k, bits)
    run.pick()
    return run.export_and_evaluate()


class _Example:
    """The phases of :func:`main`, sharing the arguments, the data, the log and the results so far."""

    def __init__(self, spec: ExampleSpec, args, t_start: float):
        import torch

        self.spec, self.args, self.t_start = spec, args, t_start
        self.name = spec.dataset
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        self.rng = np.random.default_rng(args.seed)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}
        self.models: dict[tuple[int, int], tuple] = {}

    def log(self, msg: str) -> None:
        print(f"[{time.time() - self.t_start:6.1f}s] {msg}", flush=True)

    def acc_of(self, pred) -> float:
        return float(np.mean(pred == self.yte))

    # ------------------------------------------------------------------ data
    def load_data(self) -> None:
        """The data set (``--quick``: a class-balanced subset), framed, saved, and the training task."""
        from ..models.datasets import load_dataset
        from .retrain import task_data

        args, spec, out = self.args, self.spec, self.out
        ds = self.ds = load_dataset(self.name)
        train, test = ds.train, ds.test
        self.log(ds.describe())
        if args.quick:  # a class-balanced training subset and the first test sequences of each class

            def balanced(split, n):
                return split.subset(
                    np.sort(np.concatenate([np.flatnonzero(split.y == c)[:n] for c in range(len(ds.classes))]))
                )

            train, test = balanced(train, spec.quick_per_class_train), balanced(test, spec.quick_per_class_test)
            self.log(f"--quick: {len(train)} training and {len(test)} test sequences")
        self.Xtr, self.Ltr = frame_sequences(train.X.astype(np.float64), train.lengths, args.frame)
        self.Xte, self.Lte = frame_sequences(test.X.astype(np.float64), test.lengths, args.frame)
        self.ytr, self.yte = train.y, test.y
        if args.frame > 1:
            self.log(
                f"each step reads a frame of {args.frame} samples: {train.X.shape[1]} samples -> "
                f"{self.Xtr.shape[1]} steps of {self.Xtr.shape[2]} inputs"
            )
        save_npz_split(out / "train.npz", self.Xtr, self.ytr, self.Ltr, ds.classes)
        save_npz_split(out / "test.npz", self.Xte, self.yte, self.Lte, ds.classes)
        self.train_data = task_data(
            self.Xtr, y=self.ytr, lengths=self.Ltr, classes=ds.classes, source=f"{self.name} training split"
        )
        self.channels = self.Xtr.shape[2]

    # ---------------------------------------------------------- dense float
    def train_dense(self) -> None:
        """The dense float LSTM and its head, trained in PyTorch; saved as ``dense.pt``."""
        import torch

        from ..numeric.config import Config
        from .evaluate import Head, load_reference
        from .retrain import fit

        args, out = self.args, self.out
        Xtr, Ltr, H, n_classes = self.Xtr, self.Ltr, args.hidden, len(self.ds.classes)
        t0 = time.time()
        self.log(
            f"training the dense float LSTM in PyTorch: {self.channels} -> {H} hidden -> {n_classes} classes, "
            f"{args.epochs} epochs"
        )
        lstm = torch.nn.LSTM(self.channels, H, batch_first=True)
        head = torch.nn.Linear(H, n_classes)
        Xtr_t = torch.as_tensor(Xtr, dtype=torch.float32)
        ytr_t = torch.as_tensor(self.ytr)

        def dense_logits(x, lengths):
            y, _ = lstm(x)
            return head(y[torch.arange(y.shape[0]), torch.as_tensor(np.asarray(lengths) - 1)])

        def dense_loss(idx):
            t = int(Ltr[idx].max())
            return torch.nn.functional.cross_entropy(
                dense_logits(Xtr_t[torch.as_tensor(idx), :t], Ltr[idx]), ytr_t[torch.as_tensor(idx)]
            )

        def dense_epoch(epoch, loss):
            if epoch == args.epochs or epoch % max(1, args.epochs // 4) == 0:
                self.log(f"  dense: epoch {epoch}/{args.epochs}, loss {loss:.4f}")

        fit(
            dense_loss,
            list(lstm.parameters()) + list(head.parameters()),
            Ltr,
            epochs=args.epochs,
            lr=args.lr,
            batch=args.batch,
            rng=self.rng,
            on_epoch=dense_epoch,
        )
        with torch.no_grad():
            logits = dense_logits(torch.as_tensor(self.Xte, dtype=torch.float32), self.Lte)
            self.torch_acc = self.acc_of(logits.argmax(-1).numpy())
        torch.save(
            {
                **{f"rnn.{k}": v for k, v in lstm.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()},
            },
            out / "dense.pt",
        )
        self.timings["dense training"] = time.time() - t0
        self.base = Config(name=self.name.lower(), pe_rows=2, pe_cols=2, seed=args.seed)
        dense_head = load_reference(out / "dense.pt", self.base).head
        self.dense_head = Head(dense_head.W.astype(np.float32), dense_head.b.astype(np.float32), self.ds.classes)

    # ------------------------------------------- the exact import (k = 1)
    def exact_import(self) -> None:
        """The dense model imported exactly (k = 1): float and golden accuracy; the sweep's first row."""
        from ..models.importers import import_model
        from ..numeric.model import save_model
        from .evaluate import classify, save_head

        out, head, Xte, Lte = self.out, self.dense_head, self.Xte, self.Lte
        exact = self.exact = import_model(out / "dense.pt", self.base, name=f"{self.name.lower()}-dense")
        self.dense_acc = self.acc_of(classify(exact.cfg, exact.weights, head, Xte, Lte, "float"))
        self.exact_golden = self.acc_of(classify(exact.cfg, exact.weights, head, Xte, Lte, "golden"))
        save_model(out / "dense", exact.cfg, exact.weights)
        save_head(out / "dense", head.W, head.b, self.ds.classes)
        self.log(
            f"dense float LSTM: test accuracy {100 * self.dense_acc:.2f}% (PyTorch {100 * self.torch_acc:.2f}%), "
            f"{4 * exact.cfg.dense_weight_words()} bytes of float32 weights"
        )
        same = "the same as" if self.exact_golden == self.dense_acc else "NOT the same as"
        self.log(
            f"exact import (k = 1, {exact.cfg.q_weight} weights): golden test accuracy "
            f"{100 * self.exact_golden:.2f}% ({same} float)"
        )
        self.dense_w_all = np.concatenate([np.ravel(v) for k, v in exact.weights.items() if k.endswith((".W", ".U"))])
        self.rows = [
            {
                "k": "dense",
                "bits": 32,
                "weight_bytes": 4 * exact.cfg.dense_weight_words(),
                "projected_float_acc": None,
                "projected_golden_acc": None,
                "retrained_acc": None,
                "float_acc": self.dense_acc,
            }
        ]

    # ------------------------------------------------- k sweep x weight bits
    def sweep_point(self, k: int, bits: int) -> None:
        """Block size ``k`` with ``bits``-bit weights: projected, retrained, measured; one row of the table."""
        from ..models.importers import import_model
        from ..models.quantize import fit_format
        from .evaluate import classify

        args, out, Xte, Lte = self.args, self.out, self.Xte, self.Lte
        t0 = time.time()
        q_weight, _ = fit_format(float(self.dense_w_all.min()), float(self.dense_w_all.max()), bits, min_int_bits=0)
        imp = import_model(out / "dense.pt", self.base, k, name=f"{self.name.lower()}-k{k}-w{bits}", q_weight=q_weight)
        cfg, w_proj = imp.cfg, imp.weights
        proj_float = self.acc_of(classify(cfg, w_proj, self.dense_head, Xte, Lte, "float"))
        proj_golden = self.acc_of(classify(cfg, w_proj, self.dense_head, Xte, Lte, "golden"))
        self.log(
            f"k={k} {bits}-bit ({cfg.q_weight}): {cfg.weight_bytes} weight bytes; projected: "
            f"{100 * imp.total_fraction:.1f}% of energy, test accuracy {100 * proj_float:.2f}% float, "
            f"{100 * proj_golden:.2f}% golden"
        )
        measured, res = self.retrain_point(cfg, w_proj, f"  k={k} {bits}-bit retrain")
        seconds = time.time() - t0
        row = {
            "k": k,
            "bits": bits,
            "q_weight": str(cfg.q_weight),
            "weight_bytes": cfg.weight_bytes,
            "saved_vs_float32": 1 - cfg.weight_bytes / (4 * cfg.dense_weight_words()),
            "saved_vs_dense_same_bits": 1 - cfg.weight_bytes / math.ceil(cfg.dense_weight_words() * bits / 8),
            "energy_kept": imp.total_fraction,
            "projected_float_acc": proj_float,
            "projected_golden_acc": proj_golden,
            **measured,
            "seconds": round(seconds, 1),
        }
        self.rows.append(row)
        res.save(out / "models" / f"k{k}_w{bits}")
        self.models[(k, bits)] = (cfg, res.weights, res.head)
        self.log(
            f"k={k} {bits}-bit: retrained {args.retrain_epochs} epochs (best epoch {res.best.epoch}, training "
            f"accuracy {100 * res.best.accuracy:.2f}%): golden test accuracy {100 * measured['retrained_acc']:.2f}% "
            f"(float {100 * measured['retrained_float_acc']:.2f}%); {seconds:.1f} s"
        )
        self.timings[f"k={k} {bits}-bit"] = seconds
        if "fft" in args.modes and fft_block(k):
            self.fft_point(k, bits, row, q_weight, res.weights)

    def retrain_point(self, cfg, w_proj, desc: str):
        """Retrain a projected model with the exact forward: (measurements, :class:`RetrainResult`).

        The golden model's test accuracy, and the checks that what training
        measured in torch is the golden model's: the training accuracy of the
        starting model (epoch 0) and of the kept epoch, each against the golden
        model on the training set.
        """
        from .evaluate import classify
        from .retrain import retrain

        args, Xte, Lte, Xtr, Ltr = self.args, self.Xte, self.Lte, self.Xtr, self.Ltr
        res = retrain(
            cfg,
            w_proj,
            self.train_data,
            head=self.dense_head,
            epochs=args.retrain_epochs,
            lr=args.retrain_lr,
            batch=args.retrain_batch,
            seed=args.seed,
            threads=args.threads,
            progress=False,
            desc=desc,
        )
        best = res.best
        measured = {
            "retrained_acc": self.acc_of(classify(cfg, res.weights, res.head, Xte, Lte, "golden")),
            "retrained_float_acc": self.acc_of(classify(cfg, res.weights, res.head, Xte, Lte, "float")),
            "best_epoch": best.epoch,
            "train_acc_best_epoch": best.accuracy,
            "train_acc_golden": float(np.mean(classify(cfg, res.weights, res.head, Xtr, Ltr, "golden") == self.ytr)),
            "train_acc_start": res.history[0].accuracy,
            "train_acc_start_golden": float(
                np.mean(classify(cfg, w_proj, self.dense_head, Xtr, Ltr, "golden") == self.ytr)
            ),
        }
        for when in ("start", "best_epoch"):
            torch_acc = measured[f"train_acc_{when}"]
            golden = measured["train_acc_start_golden" if when == "start" else "train_acc_golden"]
            if torch_acc != golden:
                self.log(
                    f"WARNING: {desc.strip()}: training accuracy at the {when.replace('_', ' ')} "
                    f"{100 * torch_acc:.2f}% in torch, {100 * golden:.2f}% in the golden model"
                )
        return measured, res

    def fft_point(self, k: int, bits: int, row: dict, q_weight, direct_weights) -> None:
        """The same projection in ``circulant_mode = 'fft'``, retrained with the exact FFT forward: ``row["fft"]``.

        ``q_spectrum`` is the ``bits``-bit format holding the spectra of the
        retrained direct model ``direct_weights`` (what ``rnnaccel quantize``
        fits to a trained model; the projection's own spectra are several times
        smaller than the trained ones). The model directory is
        ``models/k{k}_w{bits}_fft``.
        """
        from ..models.importers import import_model
        from .evaluate import classify

        args, out = self.args, self.out
        t0 = time.time()
        imp = import_model(
            out / "dense.pt",
            self.base,
            k,
            name=f"{self.name.lower()}-k{k}-w{bits}-fft",
            q_weight=q_weight,
            circulant_mode="fft",
            q_spectrum=spectrum_format(direct_weights, bits),
        )
        cfg, w_proj = imp.cfg, imp.weights
        proj_golden = self.acc_of(classify(cfg, w_proj, self.dense_head, self.Xte, self.Lte, "golden"))
        self.log(
            f"k={k} {bits}-bit FFT (spectra {cfg.q_spectrum}): {cfg.weight_bytes} weight bytes; projected: "
            f"test accuracy {100 * proj_golden:.2f}% golden"
        )
        measured, res = self.retrain_point(cfg, w_proj, f"  k={k} {bits}-bit FFT retrain")
        seconds = time.time() - t0
        row["fft"] = {
            "q_spectrum": str(cfg.q_spectrum),
            "weight_bytes": cfg.weight_bytes,
            "projected_golden_acc": proj_golden,
            **measured,
            "seconds": round(seconds, 1),
        }
        res.save(out / "models" / f"k{k}_w{bits}_fft")
        self.log(
            f"k={k} {bits}-bit FFT: retrained {args.retrain_epochs} epochs (best epoch {res.best.epoch}, training "
            f"accuracy {100 * res.best.accuracy:.2f}%): golden test accuracy {100 * measured['retrained_acc']:.2f}% "
            f"(direct {100 * row['retrained_acc']:.2f}%); {seconds:.1f} s"
        )
        self.timings[f"k={k} {bits}-bit fft"] = seconds

    # ------------------------------------------------------ pick, report
    def pick(self) -> None:
        """The selected row: the smallest weight memory within the tolerance, else the most accurate."""
        args, rows, dense_acc = self.args, self.rows, self.dense_acc
        compressed = [r for r in rows if r["k"] != "dense" and r["k"] > 1]
        ok = [r for r in compressed if r["retrained_acc"] >= dense_acc - args.tolerance / 100]
        if ok:
            best_row = min(ok, key=lambda r: (r["weight_bytes"], -r["retrained_acc"]))
            self.why = f"smallest weight memory within {args.tolerance:g} points of the dense float model"
        else:
            pool = compressed or rows[1:]
            best_row = max(pool, key=lambda r: (r["retrained_acc"], -r["weight_bytes"]))
            self.why = f"no compressed model within {args.tolerance:g} points: the most accurate"
        for r in rows:
            r["selected"] = r is best_row
        self.best_row = best_row
        self.log(
            f"selected k={best_row['k']} {best_row['bits']}-bit ({self.why}): {best_row['weight_bytes']} bytes, "
            f"{100 * best_row['retrained_acc']:.2f}% vs dense float {100 * dense_acc:.2f}%"
        )
        self.table = markdown_table(rows, dense_acc)
        plot_sweep(rows, dense_acc, self.out / "accuracy_vs_memory.png", f"{self.name} LSTM: accuracy vs weight memory")

    # ---------------------------------------- export, Verilog, RTL simulation
    def export_and_evaluate(self) -> int:
        """The selected model saved, its Verilog generated and simulated against the golden model; results."""
        from ..flow.rtl import generate
        from ..numeric.model import save_model
        from .evaluate import evaluate, format_table, load_head, load_reference, plot_report, save_head, write_json

        args, out, best_row = self.args, self.out, self.best_row
        cfg_b, w_b, head_b = self.models[(best_row["k"], best_row["bits"])]
        best_dir = out / "best"
        save_model(best_dir, cfg_b, w_b)
        save_head(best_dir, head_b.W, head_b.b, self.ds.classes)
        t0 = time.time()
        self.log(f"generating Verilog for {best_dir} -> {out / 'best_rtl'}")
        generate(cfg_b, w_b, out / "best_rtl", progress=lambda m: self.log(f"  {m}"))
        self.timings["generate"] = time.time() - t0
        t0 = time.time()
        backend = None if args.rtl_backend == "none" else args.rtl_backend
        shortest = np.argsort(self.Lte, kind="stable")[: args.rtl_sequences]
        ev = evaluate(
            cfg_b,
            w_b,
            self.Xte,
            self.Lte,
            self.yte,
            head=load_head(best_dir, args.hidden),
            dense=load_reference(out / "dense", cfg_b),
            rtl_backend=backend,
            rtl_sequences=shortest,
            log=lambda m: self.log(f"  {m}"),
        )
        self.timings["evaluate + rtl"] = time.time() - t0
        ev["data"]["source"] = f"{self.name} test split{' (quick subset)' if args.quick else ''}"
        ev["model"]["directory"] = str(best_dir)
        write_json(ev, out / "best_eval.json")
        plot_report(ev, out / "best_eval.png")
        print()
        print(format_table(ev))
        print()
        print(self.table)
        self.timings["total"] = time.time() - self.t_start
        self.write_results(ev, best_dir, format_table(ev))
        rtl = ev.get("rtl")
        if rtl is not None:
            print(
                f"verdict: {rtl['verdict']} ({rtl['backend']} vs golden on {rtl['sequences']} test sequences, "
                f"{rtl['steps']} steps)"
            )
            return 0 if rtl["bit_exact"] else 1
        return 0

    def write_results(self, ev: dict, best_dir: Path, ev_table: str) -> None:
        """``results.json`` and ``results.md``."""
        args, out, best_row, exact = self.args, self.out, self.best_row, self.exact
        H, dense_acc = args.hidden, self.dense_acc
        result = {
            "dataset": self.ds.describe(),
            "quick": args.quick,
            "seed": args.seed,
            "hidden": H,
            "frame": args.frame,
            "inputs_per_step": self.channels,
            "modes": args.modes,
            "epochs": {"dense": args.epochs, "retrain": args.retrain_epochs},
            "lr": {"dense": args.lr, "retrain": args.retrain_lr},
            "dense_float_acc": dense_acc,
            "dense_torch_acc": self.torch_acc,
            "exact_import": {
                "q_weight": str(exact.cfg.q_weight),
                "golden_acc": self.exact_golden,
                "float_acc": dense_acc,
                "same": self.exact_golden == dense_acc,
            },
            "rows": self.rows,
            "selected": {"k": best_row["k"], "bits": best_row["bits"], "why": self.why, "directory": str(best_dir)},
            "rtl": ev.get("rtl"),
            "timings_s": {k: round(v, 1) for k, v in self.timings.items()},
            "torch_threads": args.threads,
        }
        (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
        (out / "results.md").write_text(
            f"# {self.name}: accuracy vs weight memory\n\n{self.ds.describe()}; LSTM hidden {H}"
            + (f"; frames of {args.frame} samples per step" if args.frame > 1 else "")
            + f"; seed {args.seed}{'; --quick' if args.quick else ''}; modes {','.join(args.modes)}.\n\n"
            f"Dense float: {100 * dense_acc:.2f}% (PyTorch {100 * self.torch_acc:.2f}%); exact import (k = 1, "
            f"{exact.cfg.q_weight}): golden {100 * self.exact_golden:.2f}%.\n\n{self.table}\n\nSelected: "
            f"k={best_row['k']}, {best_row['bits']}-bit weights ({self.why}).\n\n```\n{ev_table}\n```\n\n"
            "Timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in self.timings.items()) + "\n"
        )
        self.log(
            f"wrote {out}/results.md, results.json, accuracy_vs_memory.png, best_eval.json, best_eval.png; "
            f"model {best_dir}/, Verilog {out / 'best_rtl'}/"
        )


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown_table(rows, dense_acc) -> str:
    """One line per (k, bits): weight bytes, savings, accuracy projected and retrained, loss vs dense float.

    When a row holds an FFT-mode model (``row["fft"]``, ``--modes direct,fft``)
    three columns follow: its spectrum format, its retrained golden accuracy
    and the difference from the direct model of the same row.
    """
    fft = any(r.get("fft") for r in rows)
    head = (
        "| k | weight bits | weight bytes | saved vs dense float32 | saved vs dense, same bits | "
        "energy kept | projected, float (%) | projected, golden (%) | retrained, golden (%) | "
        "loss vs dense float (points) |"
    )
    rule = "|---|---|---|---|---|---|---|---|---|---|"
    if fft:
        head += " FFT spectra | FFT retrained, golden (%) | FFT vs direct (points) |"
        rule += "---|---|---|"
    lines = [head, rule]
    for r in rows:
        if r["k"] == "dense":
            line = (
                f"| dense float | 32 (float) | {r['weight_bytes']} | - | - | - | {_pct(r['float_acc'])} | - | - | - |"
            )
        else:
            loss = 100 * (dense_acc - r["retrained_acc"])
            mark = " **(selected)**" if r.get("selected") else ""
            line = (
                f"| {r['k']} | {r['bits']} ({r['q_weight']}) | {r['weight_bytes']}{mark} | "
                f"{100 * r['saved_vs_float32']:.1f}% | {100 * r['saved_vs_dense_same_bits']:.1f}% | "
                f"{100 * r['energy_kept']:.1f}% | {_pct(r['projected_float_acc'])} | "
                f"{_pct(r['projected_golden_acc'])} | {_pct(r['retrained_acc'])} | {loss:+.1f} |"
            )
        if fft:
            f = r.get("fft")
            if f:
                line += (
                    f" {f['q_spectrum']} | {_pct(f['retrained_acc'])} | "
                    f"{100 * (f['retrained_acc'] - r['retrained_acc']):+.1f} |"
                )
            else:
                line += " - | - | - |"
        lines.append(line)
    return "\n".join(lines)


def plot_sweep(rows, dense_acc, path: Path, title: str) -> None:
    """Accuracy against weight bytes (log scale): retrained and projected, per weight width."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(7, 4.5))
    dense = rows[0]
    ax.scatter(
        [dense["weight_bytes"]], [100 * dense_acc], marker="*", s=180, color="black", zorder=3, label="dense float32"
    )
    ax.axhline(100 * dense_acc, color="black", lw=0.6, ls=":")
    styles = {8: ("o", "#4c72b0"), 16: ("s", "#dd8452")}
    for bits in sorted({r["bits"] for r in rows if r["k"] != "dense"}):
        rs = sorted([r for r in rows if r["k"] != "dense" and r["bits"] == bits], key=lambda r: r["weight_bytes"])
        marker, color = styles.get(bits, ("^", "#55a868"))
        xs = [r["weight_bytes"] for r in rs]
        ax.plot(
            xs,
            [100 * r["retrained_acc"] for r in rs],
            marker=marker,
            color=color,
            label=f"{bits}-bit weights, retrained (golden)",
        )
        ax.scatter(
            xs,
            [100 * r["projected_golden_acc"] for r in rs],
            marker=marker,
            facecolors="none",
            edgecolors=color,
            label=f"{bits}-bit, projected, before retraining",
        )
        fs = [r for r in rs if r.get("fft")]
        if fs:
            ax.plot(
                [r["fft"]["weight_bytes"] for r in fs],
                [100 * r["fft"]["retrained_acc"] for r in fs],
                marker="x",
                ls="--",
                color=color,
                label=f"{bits}-bit spectra (FFT mode), retrained (golden)",
            )
        for r in rs:
            ax.annotate(
                f"k={r['k']}",
                (r["weight_bytes"], 100 * r["retrained_acc"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=color,
            )
        if any(r.get("selected") for r in rs):
            r = next(r for r in rs if r.get("selected"))
            ax.scatter(
                [r["weight_bytes"]],
                [100 * r["retrained_acc"]],
                s=260,
                facecolors="none",
                edgecolors="red",
                label="exported",
                zorder=4,
            )
    ax.set_xscale("log")
    ticks = [
        t
        for t in (64, 128, 256, 512, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5)
        if min(r["weight_bytes"] for r in rows) / 2 <= t <= 2 * max(r["weight_bytes"] for r in rows)
    ]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weight memory (bytes, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100.5)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
