"""``rnnaccel fit``: the fastest design of one model that fits a board, found by simulation and confirmed by builds.

The search keeps the model's arithmetic (:data:`rnnaccel.layout.runtime.ARITHMETIC_FIELDS`: cell, block
size, Q formats, tables, modes) and varies the design's own fields, which change speed and resources but not
what a step computes on a given datapath:

* the **array** datapath: the PE grid (``pe_rows`` x ``pe_cols`` up to the model's tile grid, at most
  :data:`MAX_GRID` each) and ``stacked_projections``;
* the **serial** datapath: ``lanes`` (powers of two dividing the block size) and, on iCE40, the weight memory
  (``weight_ram`` block RAM or SPRAM).

The two datapaths round the projections differently (the serial one narrows ``W x + U h`` once, the array
narrows each), so a design on the other datapath than the model's has its own golden model: the report says
so. ``vary`` adds arithmetic fields to the space on request (e.g. ``interpolate = [false, true]``).

Steps:

1. every candidate's config (those the config rules or the gateware refuse are dropped);
2. cycles per step of each in the Amaranth simulator (a sweep, :func:`rnnaccel.explore.sweep.run_sweep`;
   the ideal cycles per step, a lower bound, stand in for designs too large to simulate quickly); designs
   whose MAC multipliers exceed the device's DSPs (or ``max_dsp_share`` of them) are dropped (:func:`device_dsps`);
3. builds in rounds of ``jobs`` candidates, fewest cycles first; a candidate is pruned when even at
   ``fmax_headroom`` times the best Fmax seen so far its time per step could not beat the best fitting
   design's (cycles / Fmax); at most ``max_builds`` builds;
4. the winner is built again at a PLL clock just under its Fmax (``confirm``; 5% under, lowered again while
   timing fails) and written as a model directory ready for ``rnnaccel build DIR --board B --freq F``.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..layout.runtime import ARITHMETIC_FIELDS
from ..numeric.config import Config, ConfigError
from .points import point_label
from .spec import SweepSpec
from .sweep import run_sweep

__all__ = ["FitResult", "FitError", "candidates", "fit_model", "write_fit", "DESIGN_FIELDS", "MAX_GRID"]

#: The design fields the search sets on every candidate (the table's columns, in order).
DESIGN_FIELDS = ("datapath", "pe_rows", "pe_cols", "lanes", "stacked_projections", "weight_ram")
#: Largest PE grid side tried.
MAX_GRID = 4


class FitError(RuntimeError):
    """No candidate, or none that fits the board."""


@dataclass
class FitResult:
    cfg: Config  # the chosen design's config
    chosen: dict  # its sweep row (at the board's oscillator clock)
    ranking: list[dict]  # fitting rows, fastest first (time per step at Fmax)
    candidates: int
    simulated: int
    built: int
    pruned: list[str] = field(default_factory=list)  # labels of candidates never built, with the reason
    confirm: dict | None = None  # the build at the PLL clock: report fields
    freq_mhz: float | None = None
    notes: list[str] = field(default_factory=list)


def _pow2_dividing(k: int) -> list[int]:
    return [1 << e for e in range(k.bit_length()) if k % (1 << e) == 0]


def candidates(cfg: Config, family: str, vary: dict[str, list] | None = None) -> list[dict[str, Any]]:
    """The design points of ``cfg`` (see the module docstring): dicts of :data:`DESIGN_FIELDS` (plus ``vary``'s
    fields), each a valid config with gateware, no two alike."""
    from ..flow.toolchain import require_gateware

    designs: list[dict[str, Any]] = []
    rows, cols = cfg.tile_grid(cfg.hidden_size, max(cfg.layer_cols(0), cfg.hidden_size))
    k = cfg.block_size
    for pr in range(1, min(MAX_GRID, rows) + 1):
        for pc in range(1, min(MAX_GRID, cols) + 1):
            for stacked in (False, True):
                designs.append(
                    {
                        "datapath": "array",
                        "pe_rows": pr,
                        "pe_cols": pc,
                        "lanes": k if k > 1 else cfg.lanes,
                        "stacked_projections": stacked,
                        "weight_ram": "block",
                    }  # fmt: skip
                )
    rams = ("block", "huge") if family == "ice40" else ("block",)
    for lanes in _pow2_dividing(k):
        for ram in rams:
            designs.append(
                {
                    "datapath": "serial",
                    "pe_rows": 1,
                    "pe_cols": 1,
                    "lanes": lanes,
                    "stacked_projections": False,
                    "weight_ram": ram,
                }  # fmt: skip
            )
    extra = [dict(zip(vary, values)) for values in itertools.product(*vary.values())] if vary else [{}]
    out, seen = [], set()
    for d in designs:
        for e in extra:
            point = {**d, **e}
            try:
                c = cfg.replace(**point)
                require_gateware(c)
            except (ConfigError, ValueError, TypeError):
                continue
            if c.hash not in seen:
                seen.add(c.hash)
                out.append(point)
    return out


def device_dsps(board: str) -> int | None:
    from ..boards.platforms import device_totals, get_platform

    return device_totals(get_platform(board)).get("dsp")


def fit_model(
    model_dir: str | Path,
    board: str,
    work: str | Path,
    *,
    vary: dict[str, list] | None = None,
    jobs: int = 1,
    dask: str | None = None,
    max_builds: int = 12,
    fmax_headroom: float = 1.25,
    confirm: bool = True,
    build_cache: str | Path | None = None,
    data: str | Path | None = None,
    min_accuracy: float | None = None,
    build_timeout: float | None = None,
    max_dsp_share: float = 1.0,
    echo: Callable[[str], None] = print,
    progress: bool = True,
) -> FitResult:
    """Search (see the module docstring); ``work`` holds the sweep's table and builds (resumable). With ``data``
    (an .npz the model's ``head.npz`` classifies) every candidate's golden accuracy is measured and those below
    ``min_accuracy`` are dropped. ``build_timeout``: seconds a build may take; a build stopped at the limit is a
    failed candidate (the next one is built), as one that does not route. ``max_dsp_share``: designs whose MAC
    multipliers take more than this share of the device's DSPs are dropped before any build (a routing margin:
    on the ULX3S-85F the 512x512 LSTM's 3 x 3 PE grids, 144 of 156, did not route in 25 minutes)."""
    from ..boards.platforms import family_of, get_platform
    from ..numeric.model import load_model

    base, _ = load_model(model_dir)
    for f in vary or {}:
        if f in ("cell", "input_size", "hidden_size", "num_layers", "block_size", "gru_reset_after"):
            raise FitError(f"--vary {f}: the model's shape is fixed (a fit keeps the weights)")
    if data is not None:
        if not (Path(model_dir) / "head.npz").is_file():
            raise FitError(f"--data needs a head.npz in {model_dir} (rnnaccel retrain writes one)")
        if not Path(data).is_file():
            raise FitError(f"data file {str(data)!r} does not exist")
        data = str(Path(data).resolve())
    elif min_accuracy is not None:
        raise FitError("--min-accuracy needs --data")
    family = family_of(get_platform(board))
    points = candidates(base, family, vary)
    if not points:
        raise FitError("no design of this model has gateware (check the config with rnnaccel info)")
    if not 0 < max_dsp_share <= 1:
        raise FitError(f"max_dsp_share must be in (0, 1], not {max_dsp_share:g}")
    fields = list(points[0])
    axis = ",".join(fields)

    def spec(pts, boards: tuple[str, ...]) -> SweepSpec:
        return SweepSpec(
            base_kind="model",
            base=str(Path(model_dir).resolve()),
            fixed={},
            axes={axis: tuple(tuple(p[f] for f in fields) for p in pts)},
            boards=boards,
            cycles=True,
            steps=3,
            max_ideal_cycles=20000,
            build_timeout=build_timeout,
            data=data if not boards else None,
            source="fit",
        )

    work = Path(work)
    echo(f"fit: {len(points)} candidate designs of {base.name} ({base.cell}, {base.input_size}x{base.hidden_size}, "
         f"k={base.block_size}) for {board}")  # fmt: skip
    sim = run_sweep(spec(points, ()), work / "simulation", jobs=jobs, dask=dask, progress=progress, plots=False)
    _stop_if_interrupted(sim)
    rows = {r["label"]: r for r in sim.rows if r["status"] == "ok"}
    estimated = []
    for p in points:
        r = rows.get(point_label(p))
        if r is not None and r.get("cycles_per_step") is None:
            estimated.append(point_label(p))
    dsps = device_dsps(board)
    pruned: list[str] = []
    ranked = []
    for p in points:
        label = point_label(p)
        r = rows.get(label)
        if r is None:
            pruned.append(f"{label}: refused ({_status(sim.rows, label)})")
            continue
        if min_accuracy is not None and r.get("accuracy") is not None and r["accuracy"] < min_accuracy:
            pruned.append(f"{label}: accuracy {r['accuracy']:.4f} < {min_accuracy}")
            continue
        if dsps is not None and r["multipliers"] > max_dsp_share * dsps:
            share = f"{dsps}" if r["multipliers"] > dsps else f"{max_dsp_share:g} of {dsps}"
            pruned.append(f"{label}: {r['multipliers']} MAC multipliers > {share} DSPs")
            continue
        cycles = r.get("cycles_per_step") or r["ideal_cycles_per_step"]
        ranked.append((cycles, r["ideal_cycles_per_step"], label, p))
    ranked.sort(key=lambda t: (t[0], t[1], t[2]))
    best_time = math.inf
    best_fmax = 0.0
    built_rows: list[dict] = []
    i = 0
    while i < len(ranked) and len(built_rows) < max_builds:
        batch = []
        while i < len(ranked) and len(batch) < max(1, jobs) and len(built_rows) + len(batch) < max_builds:
            cycles, _, label, p = ranked[i]
            i += 1
            if best_fmax and cycles / (best_fmax * fmax_headroom) >= best_time:
                pruned.append(f"{label}: {cycles} cycles cannot beat {best_time:.2f} us even at "
                              f"{best_fmax * fmax_headroom:.1f} MHz")  # fmt: skip
                continue
            batch.append(p)
        if not batch:
            continue
        res = run_sweep(spec(batch, (board,)), work / "builds-table", jobs=jobs, dask=dask, progress=progress,
                        build_cache=build_cache or work / "builds", plots=False, set_aside=False)  # fmt: skip
        _stop_if_interrupted(res)
        labels = {point_label(p) for p in batch}
        for r in res.rows:
            if r["label"] not in labels:
                continue
            built_rows.append(r)
            if r["status"] == "ok" and r.get("us_per_step_fmax") is not None:
                best_fmax = max(best_fmax, r["fmax_mhz"])
                best_time = min(best_time, r["us_per_step_fmax"])
            echo(f"  {_row_line(r)}")
    for _, _, label, _ in ranked[i:]:
        pruned.append(f"{label}: not built (--max-builds {max_builds})")
    fitting = sorted(
        (r for r in built_rows if r["status"] == "ok" and r.get("us_per_step_fmax") is not None),
        key=lambda r: (r["us_per_step_fmax"], r["logic"]),
    )
    if not fitting:
        raise FitError(
            f"none of the {len(built_rows)} designs built fits the {board}: "
            + "; ".join(f"{r['label']}: {r['status']} {r['message']}" for r in built_rows[:3])
        )
    for r in fitting:  # the golden model's figures come from the simulation sweep
        sim_row = rows.get(r["label"], {})
        r["accuracy"], r["mse"] = sim_row.get("accuracy"), sim_row.get("mse")
    chosen = fitting[0]
    point = {f: chosen[f] for f in fields}
    cfg = base.replace(**point)
    result = FitResult(
        cfg=cfg,
        chosen=chosen,
        ranking=fitting,
        candidates=len(points),
        simulated=sum(1 for r in sim.rows if r.get("cycles_per_step") is not None),
        built=len(built_rows),
        pruned=pruned,
    )
    if cfg.datapath != base.datapath:
        result.notes.append(
            f"the chosen design is on the {cfg.datapath} datapath, the model's config on the {base.datapath} one: "
            "their projections round differently, so the design's golden model (its config) is the reference"
        )
    if estimated:
        result.notes.append(
            f"{len(estimated)} candidates were ranked by their ideal cycles (too large to simulate, no cycle model)"
        )
    if confirm:
        _confirm(result, cfg, model_dir, board, work, build_cache, echo)
    return result


def _stop_if_interrupted(res) -> None:
    """A sweep of the fit stopped by Ctrl-C or SIGTERM stops the fit (the sweep kept its rows: a second run
    resumes); ranking and building on a part of the candidates would choose from the wrong set."""
    if res.interrupted:
        raise KeyboardInterrupt


def _status(rows: list[dict], label: str) -> str:
    for r in rows:
        if r["label"] == label:
            return f"{r['status']}: {r['message']}"
    return "not run"


def _row_line(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['label']}: {r['status']} {r['message']}"
    return (
        f"{r['label']}: {r['cycles_per_step']} cycles, {r['fmax_mhz']} MHz, {r['us_per_step_fmax']:.2f} us/step, "
        f"{r['logic']}/{r['logic_available']} logic, {r['dsp']} DSP, {r['bram']} BRAM"
    )


def _confirm(result: FitResult, cfg: Config, model_dir, board: str, work: Path, build_cache, echo) -> None:
    """Build the chosen design at a PLL clock 5% under its Fmax (0.5 MHz steps), lowering it while timing fails."""
    from ..boards.build import build_board_cached
    from ..numeric.model import load_model

    _, weights = load_model(model_dir)
    freq = math.floor(result.chosen["fmax_mhz"] * 0.95 * 2) / 2
    for _ in range(3):
        echo(f"fit: confirming {result.chosen['label']} at {freq:g} MHz")
        report, folder = build_board_cached(cfg, weights, board, build_cache or work / "builds", freq_mhz=freq,
                                            progress=lambda _m: None)  # fmt: skip
        if report.get("timing_met"):
            from .evaluate import report_fields

            result.confirm = {**report_fields(report), "build_dir": str(folder)}
            result.freq_mhz = freq
            return
        freq = math.floor(freq * 0.95 * 2) / 2
    result.notes.append("timing was not met at three PLL clocks under the Fmax; build at the oscillator's clock")


def write_fit(result: FitResult, model_dir: str | Path, out: str | Path, board: str) -> Path:
    """The chosen design as a model directory (its config, the model's weights) and ``fit.json`` beside it."""
    from ..numeric.model import load_model, save_model

    _, weights = load_model(model_dir)
    out = Path(out)
    save_model(out, result.cfg, weights)
    cycles = result.chosen["cycles_per_step"]
    data = {
        "board": board,
        "model": str(model_dir),
        "chosen": result.chosen,
        "freq_mhz": result.freq_mhz,
        "us_per_step_at_freq": round(cycles / result.freq_mhz, 4) if result.freq_mhz else None,
        "confirm": result.confirm,
        "ranking": result.ranking,
        "pruned": result.pruned,
        "candidates": result.candidates,
        "simulated": result.simulated,
        "built": result.built,
        "notes": result.notes,
        "arithmetic_fields_kept": [f for f in ARITHMETIC_FIELDS],
    }
    path = out / "fit.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path
