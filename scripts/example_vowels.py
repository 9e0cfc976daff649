#!/usr/bin/env python3
"""Worked example: a real classifier, compressed, quantized and run on the generated hardware.

JapaneseVowels (UCR/UEA, shipped inside sktime: 9 speakers, 12 LPC cepstrum
channels, 7 to 29 steps per utterance; 270 training and 370 test sequences):

1. train a float LSTM classifier (nn.LSTM + nn.Linear on the hidden state at
   the last valid step) on the training split, seeded, on the CPU;
2. for each block size k: project every weight matrix onto the nearest
   block-circulant one (``init_from_dense``), fine-tune the circulant model
   (``CirculantRNN``) and its head in float;
3. for 8- and 16-bit weights: choose every Q format from the weights and a
   float calibration run over the training split (``choose_formats``), then
   fine-tune with the hardware's arithmetic in the forward pass
   (``fake_quant`` + ``table_activations``, bit-exact with the integer model);
   measure test accuracy with the integer golden model;
4. write a table (markdown + JSON) and a plot of accuracy against weight
   memory (``Config.weight_bytes``);
5. export the smallest model within ``--tolerance`` percentage points of the
   float model as a model directory with its head, generate its Verilog and run
   it in a simulator on a few test sequences: bit-exact verdict against the
   golden model (``rnnaccel.evaluate``).

    .venv/bin/python scripts/example_vowels.py                 # the full run (a few minutes on 2 cores)
    .venv/bin/python scripts/example_vowels.py --quick --out /tmp/v   # smoke test (tiny model, subsets)

Needs the extras ``models`` (torch) and ``examples`` (sktime, matplotlib):
``pip install 'rnnaccel[models,examples]'``; the RTL step needs Icarus
(``apt-get install iverilog``) or ``--rtl-backend amaranth``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

T0 = time.time()


def log(msg: str) -> None:
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/vowels", help="output folder (default out/vowels)")
    p.add_argument("--quick", action="store_true", help="smoke test: small model, subsets, one epoch or two")
    p.add_argument("--hidden", type=int, help="LSTM hidden size (default 64; 16 with --quick)")
    p.add_argument("--ks", default="1,2,4,8,16", help="block sizes (default 1,2,4,8,16)")
    p.add_argument("--bits", default="8,16", help="weight widths (default 8,16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="dense training epochs (default 100; 25 with --quick)")
    p.add_argument("--finetune-epochs", type=int, help="circulant float fine-tuning epochs (default 100; 3 quick)")
    p.add_argument("--qat-epochs", type=int, help="quantization-aware fine-tuning epochs (default 5; 1 quick)")
    p.add_argument("--tolerance", type=float, default=1.0,
                   help="accuracy loss (percentage points vs the dense float model) allowed for the exported model")
    p.add_argument("--rtl-backend", default="icarus", choices=["icarus", "verilator", "amaranth", "none"])
    p.add_argument("--rtl-sequences", type=int, help="test sequences to simulate, the shortest ones (default 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: these matrices are tiny, more threads only add contention)")
    args = p.parse_args(argv)
    q = args.quick
    args.hidden = args.hidden or (16 if q else 64)
    args.epochs = args.epochs if args.epochs is not None else (25 if q else 100)
    args.finetune_epochs = args.finetune_epochs if args.finetune_epochs is not None else (3 if q else 100)
    args.qat_epochs = args.qat_epochs if args.qat_epochs is not None else (1 if q else 5)
    args.rtl_sequences = args.rtl_sequences or 2
    args.ks = [int(v) for v in args.ks.split(",")]
    args.bits = [int(v) for v in args.bits.split(",")]
    return args


# ----------------------------------------------------------------------------
# training helpers
# ----------------------------------------------------------------------------

def batches(lengths: np.ndarray, size: int, rng: np.random.Generator):
    """Index batches of similar lengths (sorted, chunked, chunk order shuffled): less padding to run."""
    order = np.argsort(lengths + rng.uniform(0, 0.5, size=len(lengths)), kind="stable")
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    rng.shuffle(chunks)
    return chunks


def fit(forward, params, X, L, y, epochs: int, lr: float, batch: int, rng, what: str, torch):
    """Adam with a cosine learning rate; ``forward(x, lengths) -> logits``. Returns the last epoch's loss."""
    if epochs <= 0:
        return float("nan")
    opt = torch.optim.Adam(params, lr=lr)
    steps_total = epochs * math.ceil(len(y) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps_total) / steps_total)))
    loss_fn = torch.nn.CrossEntropyLoss()
    for epoch in range(epochs):
        total, count = 0.0, 0
        for idx in batches(L, batch, rng):
            t = int(L[idx].max())
            logits = forward(X[torch.as_tensor(idx), :t], L[idx])
            loss = loss_fn(logits, torch.as_tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
            count += len(idx)
        if epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 4) == 0:
            log(f"  {what}: epoch {epoch + 1}/{epochs}, loss {total / count:.4f}")
    return total / count


def gather_last(y, lengths, torch):
    idx = torch.as_tensor(np.asarray(lengths) - 1)
    return y[torch.arange(y.shape[0]), idx]


# ----------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------

def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        print("example_vowels: error: needs torch: pip install 'rnnaccel[models,examples]'", file=sys.stderr)
        return 2
    from rnnaccel.config import Config
    from rnnaccel.datasets import DatasetError, load_dataset
    from rnnaccel.evaluate import (Head, classify, evaluate, format_table, load_head, load_reference, plot_report,
                                   save_head, write_json)
    from rnnaccel.model import save_model
    from rnnaccel.quantize import choose_formats
    from rnnaccel.rtl import generate
    from rnnaccel.train import CirculantRNN, dense_to_weights

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    # ------------------------------------------------------------------ data
    try:
        ds = load_dataset("JapaneseVowels")
    except DatasetError as exc:
        print(f"example_vowels: error: {exc}", file=sys.stderr)
        return 2
    train, test = ds.train, ds.test
    log(ds.describe())
    if args.quick:  # a class-balanced training subset and the first test sequences
        def balanced(split, n):
            return split.subset(np.sort(np.concatenate([np.flatnonzero(split.y == c)[:n]
                                                        for c in range(len(ds.classes))])))

        train, test = balanced(train, 10), balanced(test, 6)
        log(f"--quick: {len(train)} training and {len(test)} test sequences")
    Xtr, Ltr, ytr = train.X.astype(np.float64), train.lengths, train.y
    Xte, Lte, yte = test.X.astype(np.float64), test.lengths, test.y
    n_classes, channels, H = len(ds.classes), train.channels, args.hidden

    def acc_of(pred):
        return float(np.mean(pred == yte))

    # ---------------------------------------------------------- dense float
    t0 = time.time()
    log(f"training the dense float LSTM: {channels} -> {H} hidden -> {n_classes} classes, {args.epochs} epochs")
    lstm = torch.nn.LSTM(channels, H, batch_first=True)
    head = torch.nn.Linear(H, n_classes)
    Xtr_t32 = torch.as_tensor(Xtr, dtype=torch.float32)

    def dense_forward(x, lengths):
        y, _ = lstm(x)
        return head(gather_last(y, lengths, torch))

    fit(dense_forward, list(lstm.parameters()) + list(head.parameters()), Xtr_t32, Ltr, ytr, args.epochs,
        lr=1e-2, batch=32, rng=rng, what="dense", torch=torch)
    dense_layers = [{"W": lstm.weight_ih_l0.detach().numpy(), "b": lstm.bias_ih_l0.detach().numpy(),
                     "U": lstm.weight_hh_l0.detach().numpy(), "c": lstm.bias_hh_l0.detach().numpy()}]
    head_W, head_b = head.weight.detach().numpy().copy(), head.bias.detach().numpy().copy()
    base = Config(name="vowels", cell="lstm", input_size=channels, hidden_size=H, block_size=1, lanes=4,
                  pe_rows=2, pe_cols=2, seed=args.seed)
    dense_w = dense_to_weights(base, dense_layers)
    dense_head = Head(head_W, head_b, ds.classes)
    dense_acc = acc_of(classify(base, dense_w, dense_head, Xte, Lte, "float"))
    with torch.no_grad():
        torch_acc = acc_of(dense_forward(torch.as_tensor(Xte, dtype=torch.float32), Lte).argmax(-1).numpy())
    timings["dense training"] = time.time() - t0
    log(f"dense float LSTM: test accuracy {100 * dense_acc:.2f}% (PyTorch {100 * torch_acc:.2f}%), "
        f"{4 * base.dense_weight_words()} bytes of float32 weights")
    # the dense reference, two ways: a model directory with its head, and a PyTorch state_dict
    dense_cfg, _ = choose_formats(base.replace(name="vowels-dense"), dense_w, calib_x=Xtr, widths={"q_weight": 16})
    save_model(out / "dense", dense_cfg, dense_w)
    save_head(out / "dense", head_W, head_b, ds.classes)
    torch.save({**{f"rnn.{k}": v for k, v in lstm.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()}}, out / "dense.pt")

    # ------------------------------------------------- k sweep x weight bits
    rows = [{"k": "dense", "bits": 32, "weight_bytes": 4 * base.dense_weight_words(), "saved_vs_float32": 0.0,
             "saved_vs_dense_same_bits": 0.0, "projected_acc": None, "float_acc": dense_acc, "ptq_acc": None,
             "golden_acc": None, "qat_torch_acc": None, "formats": None}]
    models: dict[tuple[int, int], tuple] = {}
    for k in args.ks:
        t0 = time.time()
        cfg_k = base.replace(name=f"vowels-k{k}", block_size=k, lanes=k if k > 1 else 4)
        w_proj = dense_to_weights(cfg_k, dense_layers)
        proj_acc = acc_of(classify(cfg_k, w_proj, dense_head, Xte, Lte, "float"))
        log(f"k={k}: projected onto block-circulant weights, float test accuracy {100 * proj_acc:.2f}% "
            f"(before fine-tuning)")
        model = CirculantRNN.from_weights(cfg_k, w_proj, dtype=torch.float32)
        khead = torch.nn.Linear(H, n_classes)
        with torch.no_grad():
            khead.weight.copy_(torch.as_tensor(head_W))
            khead.bias.copy_(torch.as_tensor(head_b))

        def circ_forward(x, lengths, model=model, khead=khead):
            y, _ = model(x)
            return khead(gather_last(y, lengths, torch))

        if k > 1:
            fit(circ_forward, list(model.parameters()) + list(khead.parameters()), Xtr_t32, Ltr, ytr,
                args.finetune_epochs, lr=1e-2, batch=32, rng=rng, what=f"k={k} float fine-tuning", torch=torch)
        w_ft = model.to_weights()
        fhead = Head(khead.weight.detach().numpy().copy(), khead.bias.detach().numpy().copy(), ds.classes)
        float_acc = acc_of(classify(cfg_k, w_ft, fhead, Xte, Lte, "float"))
        log(f"k={k}: float test accuracy {100 * float_acc:.2f}%" + (" (fine-tuned)" if k > 1 else " (dense)"))

        for bits in args.bits:
            cfg_q, report = choose_formats(cfg_k.replace(name=f"vowels-k{k}-w{bits}"), w_ft, calib_x=Xtr,
                                           widths={"q_weight": bits})
            ptq_acc = acc_of(classify(cfg_q, w_ft, fhead, Xte, Lte, "golden"))
            qmodel = CirculantRNN.from_weights(cfg_q, w_ft, fake_quant=True, table_activations=True,
                                               dtype=torch.float64)
            qhead = torch.nn.Linear(H, n_classes).to(torch.float64)
            with torch.no_grad():
                qhead.weight.copy_(torch.as_tensor(fhead.W, dtype=torch.float64))
                qhead.bias.copy_(torch.as_tensor(fhead.b, dtype=torch.float64))
            Xtr_t64 = torch.as_tensor(Xtr, dtype=torch.float64)

            def q_forward(x, lengths, qmodel=qmodel, qhead=qhead):
                y, _ = qmodel(x)
                return qhead(gather_last(y, lengths, torch))

            fit(q_forward, list(qmodel.parameters()) + list(qhead.parameters()), Xtr_t64, Ltr, ytr,
                args.qat_epochs, lr=5e-4, batch=64, rng=rng, what=f"k={k} {bits}-bit QAT", torch=torch)
            w_q = qmodel.to_weights()
            qh = Head(qhead.weight.detach().numpy().astype(np.float32),
                      qhead.bias.detach().numpy().astype(np.float32), ds.classes)
            golden_acc = acc_of(classify(cfg_q, w_q, qh, Xte, Lte, "golden"))
            with torch.no_grad():
                torch_pred = q_forward(torch.as_tensor(Xte, dtype=torch.float64), Lte).argmax(-1).numpy()
            qat_torch_acc = acc_of(torch_pred)
            dense_bytes_same = math.ceil(cfg_q.dense_weight_words() * bits / 8)
            row = {"k": k, "bits": bits, "weight_bytes": cfg_q.weight_bytes,
                   "saved_vs_float32": 1 - cfg_q.weight_bytes / (4 * cfg_q.dense_weight_words()),
                   "saved_vs_dense_same_bits": 1 - cfg_q.weight_bytes / dense_bytes_same,
                   "projected_acc": proj_acc, "float_acc": float_acc, "ptq_acc": ptq_acc, "golden_acc": golden_acc,
                   "qat_torch_acc": qat_torch_acc,
                   "formats": {c: str(getattr(cfg_q, c)) for c in ("q_weight", "q_state", "q_cell", "q_pre", "q_act")},
                   "saturations": {c: r["integer_saturations"] for c, r in report["classes"].items()}}
            rows.append(row)
            models[(k, bits)] = (cfg_q, w_q, qh)
            save_model(out / "models" / f"k{k}_w{bits}", cfg_q, w_q)
            save_head(out / "models" / f"k{k}_w{bits}", qh.W, qh.b, ds.classes)
            log(f"k={k} {bits}-bit weights ({cfg_q.q_weight}): {cfg_q.weight_bytes} bytes, golden test accuracy "
                f"{100 * golden_acc:.2f}% (before QAT {100 * ptq_acc:.2f}%; QAT forward in torch "
                f"{100 * qat_torch_acc:.2f}%)")
        timings[f"k={k}"] = time.time() - t0

    # ------------------------------------------------------ pick, report
    compressed = [r for r in rows if r["k"] != "dense" and r["k"] > 1]
    ok = [r for r in compressed if r["golden_acc"] >= dense_acc - args.tolerance / 100]
    if ok:
        best = min(ok, key=lambda r: (r["weight_bytes"], -r["golden_acc"]))
        why = f"smallest weight memory within {args.tolerance:g} points of the dense float model"
    else:
        pool = compressed or rows[1:]
        best = max(pool, key=lambda r: (r["golden_acc"], -r["weight_bytes"]))
        why = f"no compressed model within {args.tolerance:g} points: the most accurate"
    for r in rows:
        r["selected"] = r is best
    log(f"selected k={best['k']} {best['bits']}-bit ({why}): {best['weight_bytes']} bytes, "
        f"{100 * best['golden_acc']:.2f}% vs dense float {100 * dense_acc:.2f}%")

    table = markdown_table(rows, dense_acc)
    plot_sweep(rows, dense_acc, out / "accuracy_vs_memory.png")

    # ---------------------------------------- export, Verilog, RTL simulation
    cfg_b, w_b, best_head = models[(best["k"], best["bits"])]
    best_dir = out / "best"
    save_model(best_dir, cfg_b, w_b)
    save_head(best_dir, best_head.W, best_head.b, ds.classes)
    t0 = time.time()
    log(f"generating Verilog for {best_dir} -> {out / 'best_rtl'}")
    generate(cfg_b, w_b, out / "best_rtl", progress=lambda m: log(f"  {m}"))
    timings["generate"] = time.time() - t0
    t0 = time.time()
    backend = None if args.rtl_backend == "none" else args.rtl_backend
    # the shortest test sequences: Icarus runs a k = 16 design at well under a thousand cycles a second
    shortest = np.argsort(Lte, kind="stable")[: args.rtl_sequences]
    ev = evaluate(cfg_b, w_b, Xte, Lte, yte, head=load_head(best_dir, H), dense=load_reference(out / "dense", cfg_b),
                  rtl_backend=backend, rtl_sequences=shortest, log=lambda m: log(f"  {m}"))
    timings["evaluate + rtl"] = time.time() - t0
    ev["data"]["source"] = f"JapaneseVowels test split{' (quick subset)' if args.quick else ''}"
    ev["model"]["directory"] = str(best_dir)
    write_json(ev, out / "best_eval.json")
    plot_report(ev, out / "best_eval.png")
    print()
    print(format_table(ev))
    print()
    print(table)
    timings["total"] = time.time() - T0

    result = {"dataset": ds.describe(), "quick": args.quick, "seed": args.seed, "hidden": H,
              "epochs": {"dense": args.epochs, "finetune": args.finetune_epochs, "qat": args.qat_epochs},
              "dense_float_acc": dense_acc, "dense_torch_acc": torch_acc, "rows": rows,
              "selected": {"k": best["k"], "bits": best["bits"], "why": why, "directory": str(best_dir)},
              "rtl": ev.get("rtl"), "timings_s": {k: round(v, 1) for k, v in timings.items()},
              "torch_threads": args.threads}
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "results.md").write_text(
        f"# JapaneseVowels: accuracy vs weight memory\n\n{ds.describe()}; LSTM hidden {H}; seed {args.seed}"
        f"{'; --quick' if args.quick else ''}.\n\n{table}\n\nSelected: k={best['k']}, {best['bits']}-bit weights "
        f"({why}).\n\n```\n{format_table(ev)}\n```\n\nTimings (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()) + "\n")
    log(f"wrote {out}/results.md, results.json, accuracy_vs_memory.png, best_eval.json, best_eval.png; "
        f"model {best_dir}/, Verilog {out / 'best_rtl'}/")
    rtl = ev.get("rtl")
    if rtl is not None:
        print(f"verdict: {rtl['verdict']} ({rtl['backend']} vs golden on {rtl['sequences']} test sequences, "
              f"{rtl['steps']} steps)")
        return 0 if rtl["bit_exact"] else 1
    return 0


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def markdown_table(rows, dense_acc) -> str:
    lines = ["| k | weight bits | weight bytes | saved vs dense float32 | saved vs dense, same bits | "
             "float, projected (%) | float, fine-tuned (%) | golden before QAT (%) | golden after QAT (%) | "
             "loss vs dense float (points) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["k"] == "dense":
            lines.append(f"| dense float | 32 (float) | {r['weight_bytes']} | - | - | - | {_pct(r['float_acc'])} "
                         f"| - | - | - |")
            continue
        loss = 100 * (dense_acc - r["golden_acc"])
        mark = " **(selected)**" if r.get("selected") else ""
        lines.append(f"| {r['k']} | {r['bits']} | {r['weight_bytes']}{mark} | {100 * r['saved_vs_float32']:.1f}% | "
                     f"{100 * r['saved_vs_dense_same_bits']:.1f}% | {_pct(r['projected_acc'])} | "
                     f"{_pct(r['float_acc'])} | {_pct(r['ptq_acc'])} | {_pct(r['golden_acc'])} | {loss:+.1f} |")
    return "\n".join(lines)


def plot_sweep(rows, dense_acc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    dense = rows[0]
    ax.scatter([dense["weight_bytes"]], [100 * dense_acc], marker="*", s=180, color="black", zorder=3,
               label="dense float32")
    ax.axhline(100 * dense_acc, color="black", lw=0.6, ls=":")
    styles = {8: ("o", "#4c72b0"), 16: ("s", "#dd8452")}
    for bits in sorted({r["bits"] for r in rows if r["k"] != "dense"}):
        rs = sorted([r for r in rows if r["k"] != "dense" and r["bits"] == bits], key=lambda r: r["weight_bytes"])
        marker, color = styles.get(bits, ("^", "#55a868"))
        xs = [r["weight_bytes"] for r in rs]
        ax.plot(xs, [100 * r["golden_acc"] for r in rs], marker=marker, color=color,
                label=f"{bits}-bit weights, golden (after QAT)")
        ax.scatter(xs, [100 * r["ptq_acc"] for r in rs], marker=marker, facecolors="none", edgecolors=color,
                   label=f"{bits}-bit, before QAT")
        for r in rs:
            ax.annotate(f"k={r['k']}", (r["weight_bytes"], 100 * r["golden_acc"]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7, color=color)
        if any(r.get("selected") for r in rs):
            r = next(r for r in rs if r.get("selected"))
            ax.scatter([r["weight_bytes"]], [100 * r["golden_acc"]], s=260, facecolors="none", edgecolors="red",
                       label="exported", zorder=4)
    ax.set_xscale("log")
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    ticks = [t for t in (64, 128, 256, 512, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5)
             if min(r["weight_bytes"] for r in rows) / 2 <= t <= 2 * max(r["weight_bytes"] for r in rows)]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("weight memory (bytes, log scale)")
    ax.set_ylabel("test accuracy (%)")
    accs = [100 * r["golden_acc"] for r in rows if r["golden_acc"] is not None] + [100 * dense_acc]
    ax.set_ylim(max(0, min(accs) - 5), 100.5)
    ax.set_title("JapaneseVowels LSTM: accuracy vs weight memory")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
