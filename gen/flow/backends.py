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

__all__ = ["BACKENDS", "run_session", "run_programs_session", "run_backend", "default_cache"]

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
    hardware: Config | None = None,
):
    """Execute a session; returns (outputs, counters) where counters is one dict per ``run`` (None for golden).

    ``hardware``: run on the design generated for that config (run-time dimensions, issue 12) instead of
    ``cfg``'s own: the session loads ``cfg``'s layout (:func:`rnnaccel.layout.runtime.model_on_design`,
    which raises :class:`~rnnaccel.layout.runtime.DoesNotFit` when the model does not fit).

    ``family`` (RTL simulators only): simulate the Verilog elaborated for an FPGA family, vendor
    primitives included (their models come from Yosys' cell library). A ``layers`` config of several
    cores runs on its :class:`~rnnaccel.hw.multicore.MultiCore` (counters: ``cycles`` with some core
    busy and the last core's ``steps``); a ``programs`` design runs programs sessions
    (:func:`run_programs_session`).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    if cfg.cores > 1 and cfg.core_mode == "programs":
        raise ValueError(
            "a programs design runs one model per core: run_programs_session(models, ops, backend), "
            "not an ordinary session"
        )
    if hardware is not None:
        from ..layout.runtime import model_on_design

        cfg = model_on_design(cfg, hardware)
    else:
        hardware = cfg
    if backend == "golden":
        return golden_session(cfg, weights, ops), None
    stalls = dict(idle=idle, backpressure=backpressure, seed=seed, waves=waves, progress=progress)
    total_steps = sum(len(op[1]) for op in ops if op[0] == "run")
    if backend == "amaranth":
        if cfg.cores > 1:
            from .sim_multicore import run_layers_amaranth

            outs, info = run_layers_amaranth(
                cfg, weights, ops, idle=idle, backpressure=backpressure, seed=seed, vcd=waves
            )
            return outs, _multicore_counters(info)
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
                cfg,
                weights,
                ops,
                idle=idle,
                backpressure=backpressure,
                seed=seed,
                vcd=waves,
                progress=tick,
                hardware=None if hardware is cfg else hardware,
            )
        finally:
            if bar is not None:
                bar.close()
    from .rtl import cached_verilog

    cache = Path(cache_dir) if cache_dir else default_cache()
    src = cached_verilog(hardware, weights if hardware.weights_in_rom else None, cache, family)
    if cfg.cores > 1:
        from ..interface.multicore import stack_models

        job = {"mode": cfg.core_mode, "models": stack_models(cfg, weights), "stack": cfg, "ops": ops}
        res = _run_cocotb(
            src, "rnnaccel.flow.cocotb_multicore", {"job": job}, backend, ops, total_steps, **stalls, family=family
        )
        return [res[f"out{i}"] for i in range(_n_runs(ops))], _counters(res, ops)
    files = {"config": cfg, "session": ops, "weights": None if cfg.weights_in_rom else weights}
    res = _run_cocotb(src, "rnnaccel.flow.cocotb_top", files, backend, ops, total_steps, **stalls, family=family)
    return [res[f"out{i}"] for i in range(_n_runs(ops))], _counters(res, ops)


def run_programs_session(
    models: list[tuple[Config, dict]],
    ops: list[tuple],
    backend: str,
    *,
    cache_dir: str | os.PathLike | None = None,
    idle: float = 0.0,
    backpressure: float = 0.0,
    seed: int = 0,
    waves: str | None = None,
    progress: bool = False,
):
    """Execute a programs session (:mod:`rnnaccel.interface.multicore`) on a multi-programming design,
    core i holding ``models[i]``; returns (one ``{core: (T, H)}`` per ``run``, counters per ``run``:
    ``cycles`` with some core busy and each core's ``steps``; None for golden)."""
    from ..interface.multicore import check_programs_session, programs_golden

    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    check_programs_session(ops, len(models))
    if backend == "golden":
        return programs_golden(models, ops), None
    stalls = dict(idle=idle, backpressure=backpressure, seed=seed, waves=waves, progress=progress)
    if backend == "amaranth":
        from .sim_multicore import run_programs_amaranth

        outs, info = run_programs_amaranth(models, ops, idle=idle, backpressure=backpressure, seed=seed, vcd=waves)
        return outs, [{"cycles": int(r["cycles"]), "core_steps": list(r["core_steps"])} for r in info["runs"]]
    from .rtl import cached_programs_verilog

    cache = Path(cache_dir) if cache_dir else default_cache()
    src = cached_programs_verilog(models, cache)
    job = {"mode": "programs", "models": models, "stack": None, "ops": ops}
    total_steps = sum(len(x) for op in ops if op[0] == "run" for x in op[1].values())
    res = _run_cocotb(src, "rnnaccel.flow.cocotb_multicore", {"job": job}, backend, ops, total_steps, **stalls)
    outs = []
    for i in range(_n_runs(ops)):
        cores = [int(c) for c in res[f"out{i}_cores"]]
        outs.append({c: res[f"out{i}_core{c}"] for c in cores})
    counters = [
        {"cycles": int(res["cycles"][i]), "core_steps": [int(v) for v in res["core_steps"][i]]}
        for i in range(_n_runs(ops))
    ]
    return outs, counters


def _n_runs(ops) -> int:
    return sum(1 for op in ops if op[0] == "run")


def _multicore_counters(info: dict) -> list[dict]:
    """A layer pipeline's counters per run: cycles with some core busy, steps of the last core."""
    return [{"cycles": int(r["cycles"]), "steps": int(r["core_steps"][-1])} for r in info["runs"]]


def _counters(res, ops) -> list[dict]:
    keys = [k for k in ("cycles", "wait_cycles", "steps", "skipped", "skipped_macs") if k in res]
    return [{k: int(res[k][i]) for k in keys} for i in range(_n_runs(ops))]


def _run_cocotb(
    src, module, files, simulator, ops, total_steps, *, idle, backpressure, seed, waves, progress, family=None
) -> dict:
    """Build ``src`` (cached beside it) and run the cocotb ``module`` on ``files`` (config, session, weights,
    or a multi-core ``job``); returns the result file's arrays."""
    import pickle

    from .rtl import primitive_models, primitives_used, run_cocotb

    sources = [src]
    used = primitives_used(family, Path(src).read_text()) if family else []
    if used:
        sources.append(primitive_models(family, used, src.parent / "primitives.v"))
    build_dir = src.parent / simulator
    rebuild = not (build_dir / "results.xml").exists() or bool(waves)
    with tempfile.TemporaryDirectory(prefix="rnnaccel-run-") as tmp:
        tmp = Path(tmp)
        env = {
            "RNNACCEL_RESULT": str(tmp / "result.npz"),
            "RNNACCEL_PROGRESS": str(tmp / "progress"),
            "RNNACCEL_IDLE": str(idle),
            "RNNACCEL_BACKPRESSURE": str(backpressure),
            "RNNACCEL_STALL_SEED": str(seed),
        }
        if "job" in files:  # a file this process writes for the simulator it starts
            (tmp / "job.pickle").write_bytes(pickle.dumps(files["job"]))
            env["RNNACCEL_JOB"] = str(tmp / "job.pickle")
        else:
            files["config"].save(tmp / "rnnaccel.toml")
            save_session(tmp / "session.npz", files["session"])
            env["RNNACCEL_CONFIG"] = str(tmp / "rnnaccel.toml")
            env["RNNACCEL_SESSION"] = str(tmp / "session.npz")
            if files["weights"] is not None:
                np.savez(tmp / "weights.npz", **{k: np.asarray(v) for k, v in files["weights"].items()})
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
                    module,
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
            return {k: res[k] for k in res.files}


def run_backend(
    cfg: Config,
    weights,
    x: np.ndarray,
    backend: str,
    *,
    waves: str | None = None,
    cache_dir: str | None = None,
    progress: bool = True,
    hardware: Config | None = None,
):
    """Run float inputs (T, input) or (N, T, input) through a backend.

    Every sequence starts from the zero state. Returns (raw q_state hidden
    states of the same leading shape, report dict). ``hardware``: the design's config when it is not the
    model's own (run-time dimensions, :func:`run_session`).
    """
    x = np.asarray(x, dtype=np.float64)
    single = x.ndim == 2
    xb = x[None] if single else x
    ops = sessions_for_batch(quantize(xb, cfg.q_state))
    t0 = time.time()
    outs, counters = run_session(
        cfg, weights, ops, backend, cache_dir=cache_dir, waves=waves, progress=progress, hardware=hardware
    )
    wall = time.time() - t0
    y = np.stack(outs)
    report = {
        "backend": backend,
        "sequences": int(xb.shape[0]),
        "steps": int(xb.shape[0] * xb.shape[1]),
        "ideal_cycles_per_step": cfg.ideal_cycles_per_step,
        "wall_seconds": round(wall, 3),
        "config_hash": cfg.hash,
        **({"hardware_hash": hardware.hash} if hardware is not None else {}),
    }
    if counters is not None:
        total = int(counters[-1]["cycles"])
        steps = int(counters[-1]["steps"])
        report.update(
            {
                "total_cycles": total,
                **({"wait_cycles": int(counters[-1]["wait_cycles"])} if "wait_cycles" in counters[-1] else {}),
                "cycles_per_step": total / max(1, steps),
                "utilization": cfg.ideal_cycles_per_step / (total / max(1, steps)) if total else 0.0,
            }
        )
        if "skipped" in counters[-1]:  # delta mode: column tiles skipped (zero delta), effective MACs
            dense = sum(r * c for layer in range(cfg.num_layers) for _, r, c in cfg.matrices(layer))
            skipped_macs = int(counters[-1]["skipped_macs"])
            report.update(
                {
                    "skipped_tiles": int(counters[-1]["skipped"]),
                    "skipped_macs": skipped_macs,
                    "dense_macs_per_step": dense,
                    "effective_macs_per_step": (dense * steps - skipped_macs) / max(1, steps),
                }
            )
    return (y[0] if single else y), report
