"""One task of a sweep, run in a worker process (local pool or Dask worker): simulate, build, one table row.

:func:`evaluate_task` never raises for a problem of the point itself: a design that does not fit the board
is a ``nofit`` row, a tool that fails is a ``failed`` row whose ``message`` is the failing tool's last line,
so one bad point does not stop a sweep. Its row holds every :data:`~rnnaccel.explore.spec.RESULT_COLUMNS`
entry the task measured (the others are empty).
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from .points import Task, point_label, point_text

__all__ = ["evaluate_task", "report_fields", "failure_status", "base_row", "accuracy_fields"]


def base_row(task_key: str, index: int, point: dict[str, Any], board: str | None) -> dict[str, Any]:
    """The columns every row has: key, point (JSON and one column per axis), label, board."""
    return {
        "key": task_key,
        "index": index,
        "point": point_text(point),
        **point,
        "label": point_label(point),
        "board": board or "",
    }


def report_fields(report: dict) -> dict[str, Any]:
    """The table's build columns from a ``report.json`` (:func:`rnnaccel.boards.build.build_board`)."""
    util = report.get("utilization", {})

    def used(kind):
        return util.get(kind, {}).get("used", 0)

    def avail(kind):
        return util.get(kind, {}).get("available", 0)

    path = report.get("critical_path") or {}
    crit = ""
    if path:
        crit = f"{path.get('delay_ns', 0):.2f} ns: {path.get('start', '?')} -> {path.get('end', '?')}"
    return {
        "target_mhz": report.get("target_mhz"),
        "fmax_mhz": report.get("fmax_mhz"),
        "timing_met": bool(report.get("timing_met")),
        "logic": used("logic"),
        "logic_available": avail("logic"),
        "ff": used("ff") if "ff" in util else None,
        "dsp": used("dsp"),
        "dsp_available": avail("dsp"),
        "bram": used("bram"),
        "bram_available": avail("bram"),
        "spram": used("spram") if "spram" in util else None,
        "critical_path": crit,
    }


def failure_status(exc: BaseException) -> tuple[str, str]:
    """(status, message) of a build that raised: ``nofit`` when nextpnr found the design too large for the
    device, else ``failed``; the message is the error's last non-empty line (the tool's own, when the
    error carries its log)."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if "does not fit" in lines[0]:
        return "nofit", lines[0][:300]
    return "failed", (lines[-1] if len(lines) > 1 else lines[0])[:300]


def accuracy_fields(task: Task) -> dict[str, Any]:
    """The point's golden integer model on the spec's data with the base's head: ``accuracy`` (labels) or
    ``mse`` (per-step targets), as ``rnnaccel evaluate`` computes them."""
    from ..accuracy.evaluate import classify, hidden_states, readout_mse, valid_mask

    d, head = task.data, task.head
    if d.y is not None:
        pred = classify(task.cfg, task.weights, head, d.X, d.lengths)
        return {"accuracy": round(float(np.mean(pred == d.y)), 6)}
    y = hidden_states(task.cfg, task.weights, d.X)
    return {"mse": float(readout_mse(head, y, d.Y, valid_mask(d.lengths, d.X.shape[1])))}


def _retrained(task: Task, row: dict[str, Any]) -> Task:
    """``task`` with its weights and head retrained on the spec's training set (exact arithmetic, the epoch of
    best training accuracy), the model directory written to ``models_dir/<key>/``; fills the row's retraining
    columns and its design hash (the weights may be in the design)."""
    from dataclasses import replace

    from ..accuracy.evaluate import save_head
    from ..accuracy.retrain import retrain
    from ..flow.rtl import design_hash
    from ..numeric.model import save_model

    r = task.retrain
    res = retrain(
        task.cfg,
        task.weights,
        task.train,
        None,
        head=task.head,
        epochs=r["epochs"],
        lr=r["lr"],
        batch=r["batch"],
        seed=r["seed"],
        threads=1,
        progress=False,
    )
    folder = None
    if task.models_dir:
        folder = Path(task.models_dir) / task.key
        save_model(folder, res.cfg, res.weights)
        h = res.head
        save_head(folder, h.W, h.b, h.classes, h.kind)
    dh = design_hash(res.cfg, res.weights, task.family)
    row.update(
        retrain_best_epoch=res.best_epoch,
        retrain_seconds=round(res.seconds, 1),
        model_dir=str(folder) if folder else None,
        design_hash=dh,
    )
    return replace(task, cfg=res.cfg, weights=res.weights, head=res.head, design_hash=dh)


def evaluate_task(task: Task) -> dict[str, Any]:
    """Measure ``task``: cycles per step in the Amaranth simulator (steady state: the mean of the steps after the
    first),
    then the board build (through the build cache ``task.build_cache``); one row."""
    t0 = time.time()
    cfg = task.cfg
    row = base_row(task.key, task.index, task.point, task.board)
    row.update(
        {
            "status": "ok",
            "message": "",
            "design_hash": task.design_hash,
            "ideal_cycles_per_step": cfg.ideal_cycles_per_step,
            "multipliers": cfg.multipliers,
            "weight_bytes": cfg.weight_bytes,
            "worker": f"{socket.gethostname()}:{os.getpid()}",
        }
    )
    from .cycle_model import cycles_per_step

    try:
        if task.retrain:  # every measurement below uses the retrained weights (and head)
            task = _retrained(task, row)
            cfg = task.cfg
    except Exception as exc:  # noqa: BLE001 - a point that cannot be retrained is a failed row, not a dead sweep
        row.update(status="failed", message=f"retrain: {type(exc).__name__}: {exc}".splitlines()[0][:300])
        row["seconds"] = round(time.time() - t0, 1)
        return row
    model = cycles_per_step(cfg)
    row["model_cycles_per_step"] = model
    cycles, source = None, None
    try:
        if task.data is not None:
            row.update(accuracy_fields(task))
        if task.cycles:
            if cfg.ideal_cycles_per_step > task.max_ideal_cycles:
                row["message"] = f"not simulated: {cfg.ideal_cycles_per_step} ideal cycles per step (max_ideal_cycles)"
                if model is not None:
                    cycles, source = model, "model"
            else:
                from ..flow.sim_amaranth import step_cycles

                per_step = step_cycles(cfg, task.weights, task.steps)
                # the steady state: the mean of the steps after the first (a design may alternate between two
                # step lengths: three steps give one whole period)
                steady = per_step[1:] or per_step
                mean = sum(steady) / len(steady)
                cycles, source = (int(mean) if mean == int(mean) else round(mean, 2)), "simulation"
                row["first_step_cycles"] = per_step[0]
        if task.board:
            from ..boards.build import build_board_cached

            report, folder = build_board_cached(
                cfg,
                task.weights,
                task.board,
                task.build_cache,
                freq_mhz=task.freq_mhz,
                progress=lambda _msg: None,
                timeout=task.build_timeout,
            )
            row.update(report_fields(report))
            row["build_dir"] = str(folder)
            if cycles is None and model is not None:
                cycles, source = model, "model"
            if cycles is None and report.get("cycles_per_step"):
                cycles, source = report["cycles_per_step"], "build report"
    except Exception as exc:  # noqa: BLE001 - any failure of the point becomes its row
        row["status"], row["message"] = failure_status(exc)
    if cycles is None and model is not None and not task.cycles:
        cycles, source = model, "model"
    if cycles is not None:
        row["cycles_per_step"], row["cycles_from"] = cycles, source
        row["mac_utilization"] = round(cfg.ideal_cycles_per_step / cycles, 4) if cycles else None
        if row.get("fmax_mhz"):
            row["us_per_step_fmax"] = round(cycles / row["fmax_mhz"], 4)
        if row.get("target_mhz"):
            row["us_per_step_target"] = round(cycles / row["target_mhz"], 4)
    row["seconds"] = round(time.time() - t0, 2)
    return row
