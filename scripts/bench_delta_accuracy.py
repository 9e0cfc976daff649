#!/usr/bin/env python3
"""Delta-network mode (issue 19) on a real data set: the threshold chosen on a validation split, then measured.

The EdgeDRNN comparison: a GRU classifier (hidden 16, 2 layers, dense: k = 1,
one PE of 8 lanes = 8 multipliers) on JapaneseVowels (UCR/UEA, shipped in
sktime: 12 LPC cepstrum channels, 7 to 29 steps, 270 training and 370 test
utterances of 9 speakers; the class is the speaker). For each seed of
``--seeds`` (every random choice below takes it):

1. split the 270 training utterances into a training part and a validation
   part, stratified by class (``--val-fraction`` of each speaker's
   utterances, 0.2: 6 of each speaker's 30, 54 in all; :func:`split_train_val`);
2. train a float ``torch.nn.GRU`` (2 layers) + ``nn.Linear`` head on the
   training part (:func:`rnnaccel.accuracy.retrain.fit`, a fixed number of
   epochs) and import it exactly (:func:`rnnaccel.models.importers.import_model`,
   what ``rnnaccel import dense.pt`` runs: k = 1, 16-bit weights, default state
   formats) onto the array datapath of 1 x 1 PEs of 8 lanes: the **dense
   model**, whose integer golden model
   (:class:`rnnaccel.numeric.golden.IntegerModel`) at threshold 0 gives the
   reference validation accuracy;
3. for each candidate threshold (inputs and hidden states alike,
   ``--candidates``): retrain the dense model and head with the threshold in
   the training forward (exact arithmetic: fake-quantized weights and states,
   the activation tables and delta mode, :func:`rnnaccel.accuracy.retrain.retrain`)
   on the training part, keeping the epoch with the best validation accuracy
   (then loss; epoch 0, the dense model unchanged, counts), and measure its
   validation accuracy with the golden model in delta mode
   (``--epoch-select training`` keeps the epoch with the best training
   accuracy instead, so that the validation part is used once per
   candidate, for the threshold only);
4. choose the threshold on validation only, by one of two rules
   (``--rule``): *accuracy* (:func:`select_threshold`, the default): the
   largest candidate whose validation accuracy is within ``--budget`` points
   (1) of the dense model's, 0 (the dense model) when none is; *speed*
   (:func:`select_by_speed`): the smallest candidate whose cycles per step on
   ``--val-sim-sequences`` validation sequences (a seeded choice per seed) in
   the Amaranth simulator are below ``--cycle-target`` (180: EdgeDRNN's 190
   less a margin for the test sequences being other sequences), candidates
   tried in ascending order and the larger ones not retrained; the accuracy
   cost is then whatever the test split shows;
5. only then measure the test split (all 370 utterances, golden model): the
   accuracy of the dense model at threshold 0 and of the chosen model at the
   chosen threshold, and the share of matrix columns skipped
   (:class:`rnnaccel.numeric.delta.WorkStats`, over each sequence's valid steps);
6. cycles per step: ``--sim-sequences`` test utterances (one seeded choice,
   ``--sim-seed``, the same for every seed) in the Amaranth simulator on the
   delta gateware, bit-exact against the golden model (checked), each from a
   reset (its first step is counted; ``steady`` leaves it out); at threshold
   0, at the chosen threshold, and the dense schedule (delta mode off).

Then the per-seed table and the summary over seeds: mean and worst test
accuracy change, the chosen thresholds, skipped share and cycles per step.
Writes ``OUT/delta_accuracy.json``, and per seed ``OUT/seed<S>/dense.pt`` and
the chosen model directory ``OUT/seed<S>/chosen/`` (``rnnaccel.toml``,
``weights.npz``, ``head.npz``).

Input 12 (the data set's channels) unless ``--input-size 16``: the inputs are
padded with zero channels, which never change and so are always skipped in
delta mode (the dense schedule pays for them).

    .venv/bin/python scripts/bench_delta_accuracy.py --sim-sequences 8   # 3 seeds, about 17 min on one core
    .venv/bin/python scripts/bench_delta_accuracy.py --rule speed --seeds 0 1 2 3 4   # about 1 hour
    .venv/bin/python scripts/bench_delta_accuracy.py --quick             # smoke test (no meaningful numbers)

Needs torch and sktime (``pip install 'rnnaccel[models,examples]'``) and
Amaranth. Results: ``docs/delta.md``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: Candidate thresholds (0, the dense model, is always a candidate).
CANDIDATES = (0.05, 0.08, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2)
#: The speed rule's grid, tried in ascending order (finer where the 190-cycle line was expected: 0.06-0.08).
SPEED_CANDIDATES = (0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1, 0.12, 0.14, 0.16, 0.18, 0.2)
EDGEDRNN_CYCLES = 190
#: Tolerance of the accuracy comparisons (accuracies are ratios of small integers).
EPS = 1e-9


T_START = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T_START:6.1f}s] {msg}", flush=True)


# ----------------------------------------------------------------------------
# The protocol's two rules
# ----------------------------------------------------------------------------


def split_train_val(y, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into ``y``, sorted and disjoint, covering every index; stratified by class.

    Each class with n members gives ``round(fraction * n)`` of them (at least
    1 and at most n - 1 when n >= 2; none when n = 1) to validation, chosen by
    a permutation seeded with ``seed`` (the classes in sorted order).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"the validation fraction must be between 0 and 1 (exclusive), not {fraction!r}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n = len(members)
        k = 0 if n < 2 else min(max(int(np.floor(fraction * n + 0.5)), 1), n - 1)
        val.append(rng.permutation(members)[:k])
    val_index = np.sort(np.concatenate(val)).astype(np.int64)
    train_index = np.setdiff1d(np.arange(len(y)), val_index).astype(np.int64)
    return train_index, val_index


def select_by_speed(val_cycles: dict[float, float], target: float) -> float:
    """The smallest threshold whose cycles per step on the validation sequences are below ``target``; 0 (the
    dense model, which then misses the target) when no candidate reaches it."""
    ok = [t for t, c in val_cycles.items() if c < target]
    return float(min(ok, default=0.0))


def select_threshold(val_accuracy: dict[float, float], reference: float, budget: float) -> float:
    """The largest threshold whose validation accuracy is at least ``reference - budget`` (accuracies and
    budget as fractions: 1 point = 0.01); 0 (the dense model) when no candidate qualifies."""
    ok = [t for t, a in val_accuracy.items() if a >= reference - budget - EPS]
    return float(max(ok, default=0.0))


# ----------------------------------------------------------------------------
# Data, training, measuring
# ----------------------------------------------------------------------------


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
    path.parent.mkdir(parents=True, exist_ok=True)
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
    correct = int(np.sum(head.predict(last_states(h, L)) == y))
    s = m.stats
    n, t = X.shape[:2]
    cols_per_step = s.cols / (n * t)  # every matrix column of every layer, one sequence and step
    valid = np.arange(t)[:, None] < L[None, :]  # (T, N)
    skipped = np.stack([p["cols_skipped"] for p in s.per_step])  # (T, N)
    macs = np.stack([p["macs"] for p in s.per_step])
    steps = int(valid.sum())
    return {
        "accuracy": correct / n,
        "correct": correct,
        "count": int(n),
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


# ----------------------------------------------------------------------------
# One seed
# ----------------------------------------------------------------------------


def run_seed(seed: int, args, data, sim_index, out: Path) -> dict:
    """The whole protocol for one seed (module docs, steps 1-6); a JSON-able record."""
    from rnnaccel.accuracy.evaluate import Head, load_reference, save_head
    from rnnaccel.accuracy.retrain import retrain, task_data
    from rnnaccel.models.importers import import_model
    from rnnaccel.numeric.config import Config
    from rnnaccel.numeric.model import save_model

    Xtr, ytr, Ltr, Xte, yte, Lte, classes = data
    tr_i, va_i = split_train_val(ytr, args.val_fraction, seed)
    log(f"seed {seed}: {len(tr_i)} training, {len(va_i)} validation utterances (stratified by class)")
    Xa, ya, La = Xtr[tr_i], ytr[tr_i], Ltr[tr_i]
    Xv, yv, Lv = Xtr[va_i], ytr[va_i], Ltr[va_i]
    val_sim_index = np.array([], dtype=np.int64)
    if args.rule == "speed":  # the validation sequences whose simulated cycles choose the threshold
        rng = np.random.default_rng([args.sim_seed, seed])
        val_sim_index = np.sort(rng.choice(len(va_i), size=min(args.val_sim_sequences, len(va_i)), replace=False))
        log(f"seed {seed}: simulated validation sequences: {va_i[val_sim_index].tolist()} (training-split indices)")

    sdir = out / f"seed{seed}"
    log(
        f"seed {seed}: training the float GRU: {Xtr.shape[2]} -> {args.layers} x {args.hidden} -> {len(classes)}, "
        f"{args.epochs} epochs"
    )
    train_float(
        Xa, ya, La, len(classes), args.hidden, args.layers, args.epochs, args.lr, args.batch, seed, sdir / "dense.pt"
    )
    base = Config(
        name=f"{args.dataset.lower()}-gru", cell="gru", block_size=1, lanes=8, pe_rows=1, pe_cols=1, seed=seed
    )
    imp = import_model(sdir / "dense.pt", base, name=base.name)
    cfg, weights = imp.cfg, imp.weights
    ref_head = load_reference(sdir / "dense.pt", cfg).head
    head = Head(ref_head.W.astype(np.float32), ref_head.b.astype(np.float32), classes)

    dense_val = measure(cfg, weights, head, Xv, yv, Lv)
    ref = dense_val["accuracy"]
    log(f"seed {seed}: dense model (golden, threshold 0): validation accuracy {100 * ref:.2f}%")

    train = task_data(Xa, y=ya, lengths=La, classes=classes, source=f"{args.dataset} training part")
    val = task_data(Xv, y=yv, lengths=Lv, classes=classes, source=f"{args.dataset} validation part")
    candidates, models = [], {0.0: (cfg, weights, head)}
    for th in args.candidates:
        c = cfg.replace(delta_threshold=th)
        imported_val = measure(c, weights, head, Xv, yv, Lv)
        rec = {"threshold": th, "imported_val_accuracy": imported_val["accuracy"]}
        if args.retrain_epochs:
            res = retrain(
                c,
                weights,
                train,
                val if args.epoch_select == "validation" else None,
                head=head,
                epochs=args.retrain_epochs,
                lr=args.retrain_lr,
                batch=args.batch,
                seed=seed,
                threads=args.threads,
                progress=False,
                log=log,
                desc=f"seed {seed}: retrain at {th:g}",
            )
            w, h = res.weights, res.head
            rec.update(best_epoch=res.best_epoch, epoch_selected_on=res.selected_on, seconds=round(res.seconds, 1))
            if res.selected_on == "validation":
                rec["retrain_val_accuracy"] = res.best.accuracy
        else:
            w, h = weights, head
        v = measure(c, w, h, Xv, yv, Lv)
        rec.update(
            val_accuracy=v["accuracy"],
            val_correct=v["correct"],
            val_skip_cols=v["skip_cols"],
            val_macs_per_step=v["macs_per_step"],
        )
        if "retrain_val_accuracy" in rec and abs(rec["retrain_val_accuracy"] - v["accuracy"]) > EPS:
            log(f"note: retraining scored {rec['retrain_val_accuracy']:.4f}, the golden model {v['accuracy']:.4f}")
        if args.rule == "speed":
            vs = simulate(c, w, Xv, Lv, val_sim_index, delta=True)
            rec.update(val_cycles_per_step=vs["cycles_per_step"], val_sim_steps=vs["sim_steps"])
        candidates.append(rec)
        models[th] = (c, w, h)
        log(
            f"seed {seed}: threshold {th:g}: validation accuracy {100 * v['accuracy']:.2f}% "
            f"(imported {100 * imported_val['accuracy']:.2f}%), skipped {100 * v['skip_cols']:.1f}% of columns"
            + (f", {rec['val_cycles_per_step']:.1f} cycles/step" if "val_cycles_per_step" in rec else "")
        )
        if args.rule == "speed" and rec["val_cycles_per_step"] < args.cycle_target:
            break  # the smallest threshold that is fast enough: the larger ones are not tried

    if args.rule == "speed":
        chosen = select_by_speed({r["threshold"]: r["val_cycles_per_step"] for r in candidates}, args.cycle_target)
        how = f"the smallest under {args.cycle_target:g} cycles/step on {len(val_sim_index)} validation sequences"
    else:
        chosen = select_threshold({r["threshold"]: r["val_accuracy"] for r in candidates}, ref, args.budget / 100)
        how = f"dense {100 * ref:.2f}%, budget {args.budget:g} points"
    log(f"seed {seed}: chosen threshold {chosen:g} (on validation; {how})")

    # Only now the test split: threshold 0 (the dense model) and the chosen threshold.
    dense_test = measure(cfg, weights, head, Xte, yte, Lte)
    c, w, h = models[chosen]
    chosen_test = measure(c, w, h, Xte, yte, Lte) if chosen else dict(dense_test)
    change = (chosen_test["correct"] - dense_test["correct"]) / dense_test["count"]
    log(
        f"seed {seed}: test accuracy {100 * chosen_test['accuracy']:.2f}% at {chosen:g} against "
        f"{100 * dense_test['accuracy']:.2f}% at 0 ({100 * change:+.2f} points)"
    )
    if chosen:
        save_model(sdir / "chosen", c, w)
        save_head(sdir / "chosen", h.W, h.b, h.classes, h.kind)

    sim = {}
    if len(sim_index):
        sim["threshold_0"] = simulate(cfg, weights, Xte, Lte, sim_index, delta=True)
        sim["chosen"] = simulate(c, w, Xte, Lte, sim_index, delta=True) if chosen else dict(sim["threshold_0"])
        sim["dense_schedule"] = simulate(cfg, weights, Xte, Lte, sim_index, delta=False)
        log(
            f"seed {seed}: cycles/step: {sim['chosen']['cycles_per_step']:.1f} at {chosen:g}, "
            f"{sim['threshold_0']['cycles_per_step']:.1f} at 0, dense schedule "
            f"{sim['dense_schedule']['cycles_per_step']:.1f}"
        )
    cycles = sim["chosen"]["cycles_per_step"] if sim else None
    return {
        "seed": seed,
        "train_index": tr_i.tolist(),
        "val_index": va_i.tolist(),
        "val_sim_index": va_i[val_sim_index].tolist(),
        "dense_val_accuracy": ref,
        "candidates": candidates,
        "chosen_threshold": chosen,
        "test": {"threshold_0": dense_test, "chosen": chosen_test},
        "test_accuracy_change": change,
        "sim": sim,
        "goal_met": None if cycles is None else bool(change >= -args.budget / 100 - EPS and cycles < EDGEDRNN_CYCLES),
    }


# ----------------------------------------------------------------------------
# Tables
# ----------------------------------------------------------------------------


def summarize(seeds: list[dict]) -> dict:
    """Mean and worst over seeds."""
    change = np.array([s["test_accuracy_change"] for s in seeds])
    skip = np.array([s["test"]["chosen"]["skip_cols"] for s in seeds])
    out = {
        "seeds": [s["seed"] for s in seeds],
        "chosen_thresholds": [s["chosen_threshold"] for s in seeds],
        "test_accuracy_change_mean": float(change.mean()),
        "test_accuracy_change_min": float(change.min()),
        "dense_test_accuracy_mean": float(np.mean([s["test"]["threshold_0"]["accuracy"] for s in seeds])),
        "chosen_test_accuracy_mean": float(np.mean([s["test"]["chosen"]["accuracy"] for s in seeds])),
        "skip_cols_mean": float(skip.mean()),
        "skip_cols_min": float(skip.min()),
        "cycles_per_step_mean": None,
        "cycles_per_step_max": None,
        "goal_met_all": None,
    }
    if all(s["sim"] for s in seeds):
        cyc = np.array([s["sim"]["chosen"]["cycles_per_step"] for s in seeds])
        out.update(
            cycles_per_step_mean=float(cyc.mean()),
            cycles_per_step_max=float(cyc.max()),
            goal_met_all=all(s["goal_met"] for s in seeds),
        )
    return out


def candidate_table(s: dict) -> str:
    out = [
        f"seed {s['seed']} (validation: {len(s['val_index'])} utterances, dense model "
        f"{100 * s['dense_val_accuracy']:.2f}%; chosen: {s['chosen_threshold']:g})",
        "",
        "| threshold | validation accuracy, imported | validation accuracy, retrained | best epoch | "
        "skipped columns (validation) | MACs/step (validation) | cycles/step (validation, simulated) |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in s["candidates"]:
        cyc = f"{r['val_cycles_per_step']:.1f}" if "val_cycles_per_step" in r else "-"
        mark = "**" if r["threshold"] == s["chosen_threshold"] else ""
        out.append(
            f"| {mark}{r['threshold']:g}{mark} | {100 * r['imported_val_accuracy']:.2f}% | "
            f"{100 * r['val_accuracy']:.2f}% | {r.get('best_epoch', '-')} | {100 * r['val_skip_cols']:.1f}% | "
            f"{r['val_macs_per_step']:.0f} | {cyc} |"
        )
    return "\n".join(out)


def seed_table(seeds: list[dict], summary: dict) -> str:
    out = [
        "| seed | chosen threshold | test accuracy at 0 | test accuracy at chosen | change (points) | "
        "skipped columns | MACs/step | cycles/step at 0 | cycles/step at chosen | steady | dense schedule | "
        "EdgeDRNN 190 / ours |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in seeds:
        d, c, sim = s["test"]["threshold_0"], s["test"]["chosen"], s["sim"]
        cyc = (
            f"{sim['threshold_0']['cycles_per_step']:.1f} | {sim['chosen']['cycles_per_step']:.1f} | "
            f"{sim['chosen']['steady_cycles_per_step']:.1f} | {sim['dense_schedule']['cycles_per_step']:.1f} | "
            f"{EDGEDRNN_CYCLES / sim['chosen']['cycles_per_step']:.2f}x |"
            if sim
            else "- | - | - | - | - |"
        )
        out.append(
            f"| {s['seed']} | {s['chosen_threshold']:g} | {100 * d['accuracy']:.2f}% | {100 * c['accuracy']:.2f}% | "
            f"{100 * s['test_accuracy_change']:+.2f} | {100 * c['skip_cols']:.1f}% | {c['macs_per_step']:.0f} | " + cyc
        )
    m = summary
    cyc = (
        f"cycles/step at the chosen threshold: mean {m['cycles_per_step_mean']:.1f}, "
        f"worst {m['cycles_per_step_max']:.1f}"
        if m["cycles_per_step_mean"] is not None
        else "no simulation"
    )
    out += [
        "",
        f"over seeds {m['seeds']}: chosen thresholds {m['chosen_thresholds']}; test accuracy change mean "
        f"{100 * m['test_accuracy_change_mean']:+.2f}, worst {100 * m['test_accuracy_change_min']:+.2f} points; "
        f"skipped columns mean {100 * m['skip_cols_mean']:.1f}%; {cyc}; goal met on every seed: {m['goal_met_all']}",
    ]
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
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--val-fraction", type=float, default=0.2, help="of each class's training utterances")
    ap.add_argument("--budget", type=float, default=1.0, help="validation accuracy loss allowed, points")
    ap.add_argument(
        "--rule",
        choices=("accuracy", "speed"),
        default="accuracy",
        help="accuracy: the largest candidate within --budget of the dense model's validation accuracy; speed: "
        "the smallest candidate under --cycle-target cycles/step on --val-sim-sequences simulated validation "
        "sequences (candidates tried in ascending order, stopping there)",
    )
    ap.add_argument("--cycle-target", type=float, default=180.0, help="cycles/step the speed rule asks for")
    ap.add_argument("--val-sim-sequences", type=int, default=8, help="validation sequences simulated (speed rule)")
    ap.add_argument("--candidates", type=float, nargs="+", default=None, help="thresholds > 0 to try")
    ap.add_argument("--retrain-epochs", type=int, default=50, help="delta-aware retraining epochs (0: none)")
    ap.add_argument("--retrain-lr", type=float, default=2e-3)
    ap.add_argument(
        "--epoch-select",
        choices=("validation", "training"),
        default="validation",
        help="the data the retraining epoch is chosen on (accuracy, then loss)",
    )
    ap.add_argument("--sim-sequences", type=int, default=8, help="test sequences simulated (0: no simulation)")
    ap.add_argument("--sim-seed", type=int, default=0, help="seed of the choice of simulated test sequences")
    ap.add_argument("--out", default="out/delta_accuracy")
    ap.add_argument("--quick", action="store_true", help="smoke test: subsets, few epochs, 2 sequences simulated")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    if args.candidates is None:
        args.candidates = list(CANDIDATES if args.rule == "accuracy" else SPEED_CANDIDATES)
    if args.rule == "speed" and args.val_sim_sequences < 1:
        ap.error("--rule speed simulates validation sequences: --val-sim-sequences must be at least 1")
    if any(not t > 0 for t in args.candidates):
        ap.error(f"--candidates must be positive thresholds (0 is always a candidate), not {args.candidates}")
    args.candidates = sorted(set(args.candidates))
    if args.quick:
        args.epochs, args.sim_sequences = min(args.epochs, 5), min(args.sim_sequences, 2)
        args.retrain_epochs = min(args.retrain_epochs, 1)
        args.val_sim_sequences = min(args.val_sim_sequences, 2)

    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load(args.dataset, args.input_size, args.quick)
    Xtr, _, _, Xte, _, Lte, _ = data
    log(
        f"inputs: {Xtr.shape[2]} channels, |x| <= {max(np.abs(Xtr).max(), np.abs(Xte).max()):.2f}; "
        f"{len(Xtr)} training, {len(Xte)} test sequences"
    )
    rng = np.random.default_rng(args.sim_seed)
    sim_index = np.sort(rng.choice(len(Xte), size=min(args.sim_sequences, len(Xte)), replace=False))
    if args.sim_sequences:
        log(f"simulated test sequences: {sim_index.tolist()} ({int(Lte[sim_index].sum())} steps)")

    seeds = [run_seed(s, args, data, sim_index, out) for s in args.seeds]
    summary = summarize(seeds)
    print()
    for s in seeds:
        print(candidate_table(s))
        print()
    print(seed_table(seeds, summary))
    with open(out / "delta_accuracy.json", "w") as fh:
        json.dump(
            {
                "args": vars(args),
                "protocol": {
                    "split": f"stratified by class, {args.val_fraction:g} of each class's training utterances",
                    "rule": (
                        "largest candidate whose validation accuracy >= the dense model's - budget (0 if none)"
                        if args.rule == "accuracy"
                        else f"smallest candidate under {args.cycle_target:g} cycles/step on "
                        f"{args.val_sim_sequences} simulated validation sequences (0 if none)"
                    ),
                    "budget_points": args.budget,
                    "retraining_epoch_selected_on": args.epoch_select,
                },
                "sim_index": sim_index.tolist(),
                "seeds": seeds,
                "summary": summary,
            },
            fh,
            indent=2,
        )
    log(f"wrote {out / 'delta_accuracy.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
