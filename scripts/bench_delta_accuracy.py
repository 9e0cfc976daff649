#!/usr/bin/env python3
"""Delta-network mode (issue 19) on a real data set: accuracy, skipped work and measured cycles against the threshold.

The EdgeDRNN comparison: a GRU classifier (hidden 16, 2 layers, dense: k = 1,
one PE of 8 lanes = 8 multipliers) trained on JapaneseVowels (UCR/UEA, shipped
in sktime: 12 LPC cepstrum channels, 7 to 29 steps, 270 training and 370 test
utterances of 9 speakers). Steps, all seeded:

1. train a float ``torch.nn.GRU`` (2 layers) + ``nn.Linear`` head on the
   training split (the hidden state at each sequence's last valid step), with
   :func:`rnnaccel.accuracy.retrain.fit`, and save it (``dense.pt``);
2. import it exactly (:func:`rnnaccel.models.importers.import_model`, what
   ``rnnaccel import dense.pt`` runs: k = 1, 16-bit weights, default state
   formats) onto the array datapath of 1 x 1 PEs of 8 lanes;
3. for each threshold (inputs and hidden states alike): the integer golden
   model in delta mode (:class:`rnnaccel.numeric.golden.IntegerModel`) on the
   whole test split: accuracy, and the share of matrix columns it skipped
   (:class:`rnnaccel.numeric.delta.WorkStats`, counted over each sequence's
   valid steps only: padding is not counted);
4. optionally (``--retrain-epochs N``) retrain the imported model and head with
   the threshold in the training forward (exact arithmetic: fake-quantized
   weights and states, the activation tables and delta mode,
   :func:`rnnaccel.accuracy.retrain.retrain`), then measure it again;
5. run ``--sim-sequences`` test sequences (a seeded choice) in the Amaranth
   simulator on the delta gateware (bit-exact against the golden model,
   checked): cycles per step over all their steps, each sequence from a reset
   (so its first step, where every input differs from the zero reference, is
   counted), and over the steps after the first (``steady``); the dense
   schedule (delta mode off) for reference.

Input 12 (the data set's channels) unless ``--input-size 16``: the inputs are
padded with zero channels, which never change and so are always skipped in
delta mode (the dense schedule pays for them).

    .venv/bin/python scripts/bench_delta_accuracy.py                      # about 4 minutes on one core
    .venv/bin/python scripts/bench_delta_accuracy.py --retrain-epochs 20  # also delta-aware retraining, ~8 min
    .venv/bin/python scripts/bench_delta_accuracy.py --quick              # smoke test

Needs torch and sktime (``pip install 'rnnaccel[models,examples]'``) and
Amaranth. Results: ``docs/delta.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

THRESHOLDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
EDGEDRNN_CYCLES = 190


T_START = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T_START:6.1f}s] {msg}", flush=True)


def load(name: str, input_size: int | None, quick: bool):
    """(Xtr, ytr, Ltr, Xte, yte, Lte, classes), float64, inputs zero-padded to ``input_size`` channels."""
    from rnnaccel.models.datasets import load_dataset

    ds = load_dataset(name)
    log(ds.describe())
    tr, te = ds.train, ds.test
    if quick:
        tr, te = tr.subset(np.arange(0, len(tr), 9)), te.subset(np.arange(0, len(te), 9))
    out = []
    for s in (tr, te):
        X = s.X.astype(np.float64)
        if input_size and input_size > X.shape[2]:
            X = np.concatenate([X, np.zeros(X.shape[:2] + (input_size - X.shape[2],))], axis=2)
        out += [X, np.asarray(s.y), np.asarray(s.lengths)]
    return (*out, list(ds.classes))


def train_float(Xtr, ytr, Ltr, n_classes, hidden, layers, epochs, lr, batch, seed, path: Path):
    """The float GRU classifier in PyTorch, saved as ``path`` (keys ``rnn.*``, ``head.*``)."""
    import torch

    from rnnaccel.accuracy.retrain import fit

    torch.manual_seed(seed)
    gru = torch.nn.GRU(Xtr.shape[2], hidden, num_layers=layers, batch_first=True)
    head = torch.nn.Linear(hidden, n_classes)
    X = torch.as_tensor(Xtr, dtype=torch.float32)
    y = torch.as_tensor(ytr)

    def loss(idx):
        t = int(Ltr[idx].max())
        out, _ = gru(X[torch.as_tensor(idx), :t])
        last = out[torch.arange(len(idx)), torch.as_tensor(Ltr[idx] - 1)]
        return torch.nn.functional.cross_entropy(head(last), y[torch.as_tensor(idx)])

    def on_epoch(epoch, mean):
        if epoch == epochs or epoch % max(1, epochs // 4) == 0:
            log(f"  float GRU: epoch {epoch}/{epochs}, loss {mean:.4f}")

    fit(
        loss,
        list(gru.parameters()) + list(head.parameters()),
        Ltr,
        epochs=epochs,
        lr=lr,
        batch=batch,
        rng=np.random.default_rng(seed),
        on_epoch=on_epoch,
    )
    torch.save(
        {
            **{f"rnn.{k}": v for k, v in gru.state_dict().items()},
            **{f"head.{k}": v for k, v in head.state_dict().items()},
        },
        path,
    )


def measure(cfg, weights, head, X, y, L) -> dict:
    """Golden-model accuracy on (X, y, L) and the skipped share over valid steps (delta mode, ``cfg``'s threshold)."""
    from rnnaccel.accuracy.evaluate import last_states
    from rnnaccel.numeric.golden import IntegerModel

    m = IntegerModel(cfg, weights, delta=True)
    h = m.run_float(X)
    acc = float(np.mean(head.predict(last_states(h, L)) == y))
    s = m.stats
    n, t = X.shape[:2]
    cols_per_step = s.cols / (n * t)  # every matrix column of every layer, one sequence and step
    valid = np.arange(t)[:, None] < L[None, :]  # (T, N)
    skipped = np.stack([p["cols_skipped"] for p in s.per_step])  # (T, N)
    macs = np.stack([p["macs"] for p in s.per_step])
    steps = int(valid.sum())
    return {
        "accuracy": acc,
        "skip_cols": float(skipped[valid].sum() / (steps * cols_per_step)),
        "macs_per_step": float(macs[valid].sum() / steps),
        "dense_macs_per_step": s.dense_macs_per_step,
    }


def simulate(cfg, weights, X, L, index, delta: bool) -> dict:
    """Cycles per step of the sequences ``index`` in the Amaranth simulator, each from a reset; checked bit-exact."""
    from rnnaccel.flow.sim_amaranth import run_session_amaranth
    from rnnaccel.interface.session import golden_session
    from rnnaccel.numeric.fixedpoint import quantize

    ops = []
    for i in index:
        xq = quantize(X[i, : L[i]], cfg.q_state)
        ops += [("reset",), ("run", xq[:1]), ("run", xq[1:])]
    got, counters = run_session_amaranth(cfg, weights, ops, delta=delta)
    want = golden_session(cfg, weights, ops)
    assert len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want)), (
        "the gateware differs from the golden model"
    )
    total = steady = 0
    prev = {k: 0 for k in counters[0]}
    for j in range(len(index)):
        first, rest = counters[2 * j], counters[2 * j + 1]
        total += rest["cycles"] - prev["cycles"]
        steady += rest["cycles"] - first["cycles"]
        prev = rest
    steps = int(sum(L[i] for i in index))
    return {
        "cycles_per_step": total / steps,
        "steady_cycles_per_step": steady / (steps - len(index)),
        "sim_steps": steps,
    }


def table(rows: list[dict]) -> str:
    out = [
        "| model | threshold | test accuracy | vs first row | skipped columns | MACs/step | cycles/step | "
        "steady cycles/step | vs EdgeDRNN 190 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cyc = r.get("cycles_per_step")
        out.append(
            f"| {r['model']} | {r['threshold']:g} | {100 * r['accuracy']:.2f}% | "
            f"{100 * (r['accuracy'] - r['ref_accuracy']):+.2f} | {100 * r['skip_cols']:.1f}% | "
            f"{r['macs_per_step']:.0f} | "
            + (
                f"{cyc:.1f} | {r['steady_cycles_per_step']:.1f} | {EDGEDRNN_CYCLES / cyc:.2f}x |"
                if cyc is not None
                else "- | - | - |"
            )
        )
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="JapaneseVowels")
    ap.add_argument("--input-size", type=int, default=None, help="zero-pad the inputs to this many channels")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=100, help="float training epochs")
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--thresholds", type=float, nargs="+", default=list(THRESHOLDS), help="the first is the accuracy reference"
    )
    ap.add_argument("--retrain-epochs", type=int, default=0, help="delta-aware retraining epochs per threshold > 0")
    ap.add_argument("--retrain-lr", type=float, default=2e-3)
    ap.add_argument("--retrain-thresholds", type=float, nargs="+", default=None, help="default: all above 0")
    ap.add_argument("--sim-sequences", type=int, default=8, help="test sequences simulated (0: no simulation)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/delta_accuracy")
    ap.add_argument("--quick", action="store_true", help="smoke test: subsets, few epochs, 2 sequences simulated")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.sim_sequences = min(args.epochs, 5), min(args.sim_sequences, 2)
        args.retrain_epochs = min(args.retrain_epochs, 1)

    import torch

    from rnnaccel.accuracy.evaluate import Head, load_reference
    from rnnaccel.accuracy.retrain import retrain, task_data
    from rnnaccel.models.importers import import_model
    from rnnaccel.numeric.config import Config

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Xtr, ytr, Ltr, Xte, yte, Lte, classes = load(args.dataset, args.input_size, args.quick)
    log(
        f"inputs: {Xtr.shape[2]} channels, |x| <= {max(np.abs(Xtr).max(), np.abs(Xte).max()):.2f}; "
        f"{len(Xtr)} training, {len(Xte)} test sequences"
    )
    log(
        f"training the float GRU: {Xtr.shape[2]} -> {args.layers} x {args.hidden} -> {len(classes)}, "
        f"{args.epochs} epochs"
    )
    train_float(
        Xtr,
        ytr,
        Ltr,
        len(classes),
        args.hidden,
        args.layers,
        args.epochs,
        args.lr,
        args.batch,
        args.seed,
        out / "dense.pt",
    )
    base = Config(
        name=f"{args.dataset.lower()}-gru", cell="gru", block_size=1, lanes=8, pe_rows=1, pe_cols=1, seed=args.seed
    )
    imp = import_model(out / "dense.pt", base, name=base.name)
    cfg, weights = imp.cfg, imp.weights
    ref_head = load_reference(out / "dense.pt", cfg).head
    head = Head(ref_head.W.astype(np.float32), ref_head.b.astype(np.float32), classes)
    log(
        f"imported: {cfg.cell}, input {cfg.input_size}, hidden {cfg.hidden_size}, {cfg.num_layers} layers, "
        f"k = {cfg.block_size}, {cfg.pe_rows} x {cfg.pe_cols} PEs of {cfg.lanes} lanes, weights {cfg.q_weight}, "
        f"states {cfg.q_state}"
    )
    from rnnaccel.accuracy.evaluate import classify

    float_acc = float(np.mean(classify(cfg, weights, head, Xte, Lte, "float") == yte))
    log(f"float test accuracy {100 * float_acc:.2f}%")

    rng = np.random.default_rng(args.seed)
    sim_index = np.sort(rng.choice(len(Xte), size=min(args.sim_sequences, len(Xte)), replace=False))
    if args.sim_sequences:
        log(f"simulated test sequences: {sim_index.tolist()} ({int(Lte[sim_index].sum())} steps)")

    rows: list[dict] = []
    ref_acc = None

    def row(model: str, th: float, c, w, h):
        nonlocal ref_acc
        r = {"model": model, "threshold": th, **measure(c, w, h, Xte, yte, Lte)}
        if ref_acc is None:
            ref_acc = r["accuracy"]
        r["ref_accuracy"] = ref_acc
        if args.sim_sequences:
            r.update(simulate(c, w, Xte, Lte, sim_index, delta=True))
        rows.append(r)
        sim = f", {r['cycles_per_step']:.1f} cycles/step" if "cycles_per_step" in r else ""
        log(
            f"{model} threshold {th:g}: accuracy {100 * r['accuracy']:.2f}%, "
            f"skipped {100 * r['skip_cols']:.1f}% of columns{sim}"
        )

    for th in args.thresholds:
        row("imported", th, cfg.replace(delta_threshold=th), weights, head)
    retrain_th = args.retrain_thresholds or [t for t in args.thresholds if t > 0]
    if args.retrain_epochs:
        train = task_data(Xtr, y=ytr, lengths=Ltr, classes=classes, source=f"{args.dataset} training split")
        for th in retrain_th:
            c = cfg.replace(delta_threshold=th)
            res = retrain(
                c,
                weights,
                train,
                head=head,
                epochs=args.retrain_epochs,
                lr=args.retrain_lr,
                batch=args.batch,
                seed=args.seed,
                threads=args.threads,
                progress=False,
                log=log,
                desc=f"retrain at {th:g}",
            )
            row(f"retrained at {th:g}", th, c, res.weights, res.head)
    dense = None
    if args.sim_sequences:
        dense = simulate(cfg, weights, Xte, Lte, sim_index, delta=False)
        log(f"dense schedule (delta off): {dense['cycles_per_step']:.1f} cycles/step")

    print()
    print(table(rows))
    if dense:
        print(
            f"\ndense schedule (delta mode off): {dense['cycles_per_step']:.1f} cycles/step "
            f"(steady {dense['steady_cycles_per_step']:.1f}); float model {100 * float_acc:.2f}%"
        )
    with open(out / "delta_accuracy.json", "w") as fh:
        json.dump(
            {
                "args": vars(args),
                "float_accuracy": float_acc,
                "sim_index": sim_index.tolist(),
                "rows": rows,
                "dense_schedule": dense,
            },
            fh,
            indent=2,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
