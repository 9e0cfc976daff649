"""Backends that execute sessions: golden, Amaranth simulator, Icarus, Verilator.

:func:`run_session` runs a list of host operations (:mod:`rnnaccel.interface.session`)
and returns one raw (T, H) array per ``run`` operation plus the cycle
counters; :func:`run_backend` is what ``rnnaccel run`` calls for a batch of
float sequences.

The RTL backends build once per design (config, plus weights when baked into
ROM) in a cache folder (``$RNNACCEL_CACHE`` or ``~/.cache/rnnaccel``):
``<design hash>/rnnaccel_top.v`` and ``<design hash>/<simulator>/``.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ..numeric.config import Config
from ..numeric.fixedpoint import quantize
from ..interface.session import golden_session, save_session, sessions_for_batch
from .toolchain import run_polling

__all__ = ["BACKENDS", "run_session", "run_backend", "default_cache"]

BACKENDS = ("golden", "amaranth", "icarus", "verilator")


def default_cache() -> Path:
    return Path(os.environ.get("RNNACCEL_CACHE", Path.home() / ".cache" / "rnnaccel"))


def _progress_bar(total: int, desc: str):
    try:
        from tqdm import tqdm
    except ImportError:  # progress is a convenience
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=False, disable=None)


def run_session(
    cfg: Config,
    weights,
    ops: list[tuple],
    backend: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    idle: float = 0.0,
    backpressure: float = 0.0,
    seed: int = 0,
    waves: str | None = None,
    progress: bool = False,
    family: str | None = None,
):
    """Execute a session; returns (outputs, counters) where counters is one dict per ``run`` (None for golden).

    ``family`` (RTL simulators only): simulate the Verilog elaborated for an FPGA family, vendor
    primitives included (their models come from Yosys' cell library).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if backend == "golden":
        return golden_session(cfg, weights, ops), None
    total_steps = sum(len(op[1]) for op in ops if op[0] == "run")
    if backend == "amaranth":
        from .sim_amaranth import run_session_amaranth

        bar = _progress_bar(total_steps, "amaranth sim") if progress else None
        H = cfg.hidden_size
        count = [0]

        def tick(n):
            count[0] += n
            if bar is not None and count[0] % H == 0:
                bar.update(1)

        try:
            return run_session_amaranth(
                cfg, weights, ops, idle=idle, backpressure=backpressure, seed=seed, vcd=waves, progress=tick
            )
        finally:
            if bar is not None:
                bar.close()
    return _run_cocotb_session(
        cfg,
        weights,
        ops,
        backend,
        cache_dir=cache_dir,
        idle=idle,
        backpressure=backpressure,
        seed=seed,
        waves=waves,
        progress=progress,
        total_steps=total_steps,
        family=family,
    )


def _run_cocotb_session(
    cfg, weights, ops, simulator, *, cache_dir, idle, backpressure, seed, waves, progress, total_steps, family=None
):
    from .rtl import cached_verilog, primitive_models, run_cocotb

    cache = Path(cache_dir) if cache_dir else default_cache()
    src = cached_verilog(cfg, weights, cache, family)
    sources = [src]
    if family:
        sources.append(primitive_models(family, ["SB_SPRAM256KA"], src.parent / "primitives.v"))
    build_dir = src.parent / simulator
    rebuild = not (build_dir / "results.xml").exists() or bool(waves)
    with tempfile.TemporaryDirectory(prefix="rnnaccel-run-") as tmp:
        tmp = Path(tmp)
        cfg.save(tmp / "rnnaccel.toml")
        save_session(tmp / "session.npz", ops)
        env = {
            "RNNACCEL_CONFIG": str(tmp / "rnnaccel.toml"),
            "RNNACCEL_SESSION": str(tmp / "session.npz"),
            "RNNACCEL_RESULT": str(tmp / "result.npz"),
            "RNNACCEL_PROGRESS": str(tmp / "progress"),
            "RNNACCEL_IDLE": str(idle),
            "RNNACCEL_BACKPRESSURE": str(backpressure),
            "RNNACCEL_STALL_SEED": str(seed),
        }
        if not cfg.weights_in_rom:
            np.savez(tmp / "weights.npz", **{k: np.asarray(v) for k, v in weights.items()})
            env["RNNACCEL_WEIGHTS"] = str(tmp / "weights.npz")
        bar = _progress_bar(total_steps, f"{simulator} sim") if progress else None
        shown = [0]

        def poll():
            if bar is None:
                return
            try:
                now = int((tmp / "progress").read_text() or 0)
            except (OSError, ValueError):
                now = shown[0]
            if now > shown[0]:
                bar.update(now - shown[0])
                shown[0] = now

        try:
            run_polling(
                lambda: run_cocotb(
                    sources,
                    "rnnaccel_top",
                    "rnnaccel.flow.cocotb_top",
                    simulator,
                    build_dir,
                    extra_env=env,
                    waves=bool(waves),
                    rebuild=rebuild,
                    seed=seed,
                ),
                poll,
                0.5,
            )
        finally:
            if bar is not None:
                bar.update(max(0, total_steps - shown[0]))
                bar.close()
        if waves:
            for cand in list(build_dir.glob("*.fst")) + list(build_dir.glob("*.vcd")):
                Path(waves).write_bytes(cand.read_bytes())
                break
        with np.load(tmp / "result.npz") as res:
            n_runs = sum(1 for op in ops if op[0] == "run")
            outs = [res[f"out{i}"] for i in range(n_runs)]
            counters = [
                {
                    "cycles": int(res["cycles"][i]),
                    "wait_cycles": int(res["wait_cycles"][i]),
                    "steps": int(res["steps"][i]),
                }
                for i in range(n_runs)
            ]
    return outs, counters


def run_backend(
    cfg: Config,
    weights,
    x: np.ndarray,
    backend: str,
    *,
    waves: str | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
):
    """Run float inputs (T, input) or (N, T, input) through a backend.

    Every sequence starts from the zero state. Returns (raw q_state hidden
    states of the same leading shape, report dict).
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 2
    xb = x[None] if single else x
    ops = sessions_for_batch(quantize(xb, cfg.q_state))
    t0 = time.time()
    outs, counters = run_session(cfg, weights, ops, backend, cache_dir=cache_dir, waves=waves, progress=progress)
    wall = time.time() - t0
    y = np.stack(outs)
    report = {
        "backend": backend,
        "sequences": int(xb.shape[0]),
        "steps": int(xb.shape[0] * xb.shape[1]),
        "ideal_cycles_per_step": cfg.ideal_cycles_per_step,
        "wall_seconds": round(wall, 3),
        "config_hash": cfg.hash,
    }
    if counters is not None:
        total = int(counters[-1]["cycles"])
        steps = int(counters[-1]["steps"])
        report.update(
            {
                "total_cycles": total,
                "wait_cycles": int(counters[-1]["wait_cycles"]),
                "cycles_per_step": total / max(1, steps),
                "utilization": cfg.ideal_cycles_per_step / (total / max(1, steps)) if total else 0.0,
            }
        )
    return (y[0] if single else y), report
