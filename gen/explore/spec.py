"""A sweep's specification (``SPEC.toml``) and its points: the base design, the axes, the boards, the objectives.

A spec names one base, the config fields to vary and what to measure::

    [base]
    preset = "lstm-small-ice40"     # or: model = "DIR" (a model directory), import = "model.onnx" (or .pt)
    set = { seed = 3 }              # optional: fixed changes to the base before the axes

    [axes]                          # every combination of the values (Cartesian product, in this order)
    pe_cols = [1, 2, 4]
    "block_size,lanes" = [[4, 4], [8, 8]]   # linked fields: one value of each per entry

    [run]
    boards = ["icebreaker"]         # real builds (yosys + nextpnr) for each board; [] or absent: none
    freq = { icebreaker = 24 }      # MHz per board (default: the board's oscillator)
    cycles = true                   # cycles per step from the Amaranth simulator (default true)
    steps = 3                       # time steps simulated; the last one (the steady state) is reported
    max_ideal_cycles = 20000        # points whose ideal cycles per step exceed this are not simulated
    build_timeout = 1800            # optional: seconds a build may take; then its tools are stopped (a failed row)
    data = "test.npz"               # optional: each point's accuracy (golden integer model, the base's head.npz)
    retrain = { data = "train.npz", epochs = 20 }   # optional: retrain each point first (with data)

``retrain`` (needs ``data``): each point's weights and head are retrained on its own arithmetic before they are
measured (:func:`rnnaccel.accuracy.retrain.retrain`, exact arithmetic, what ``rnnaccel retrain`` runs; keys
``data`` (required), ``epochs`` (20), ``lr`` (0.002), ``batch`` (32), ``seed`` (0); the epoch with the best
training accuracy is kept), and the simulation and the builds use the retrained weights; each point's
retrained model directory is written to ``OUT/models/<row key>/``.

Relative paths are taken from the spec file's folder. Weights of a point: a preset base gets seeded random
weights of the point's config (what ``rnnaccel new`` writes); a model directory keeps its weights, and when
an axis changes the block size they are expanded to dense and projected onto the new block size (as
``rnnaccel import -k`` does); an imported file is read once and projected for each point.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..numeric.config import FIELDS

__all__ = ["SweepSpec", "SweepSpecError", "load_spec", "parse_spec", "BASE_KINDS", "RESULT_COLUMNS"]

#: The base kinds of ``[base]``: exactly one of them.
BASE_KINDS = ("preset", "model", "import")

#: The table's measured columns, in order (the axis columns follow ``point``); none is a config field.
RESULT_COLUMNS = (
    "key",
    "index",
    "point",
    "label",
    "board",
    "status",
    "message",
    "design_hash",
    "cycles_per_step",
    "cycles_from",
    "model_cycles_per_step",
    "first_step_cycles",
    "ideal_cycles_per_step",
    "mac_utilization",
    "accuracy",
    "mse",
    "multipliers",
    "weight_bytes",
    "target_mhz",
    "fmax_mhz",
    "timing_met",
    "us_per_step_fmax",
    "us_per_step_target",
    "logic",
    "logic_available",
    "ff",
    "dsp",
    "dsp_available",
    "bram",
    "bram_available",
    "spram",
    "critical_path",
    "build_dir",
    "seconds",
    "worker",
)

_RUN_KEYS = {"boards", "freq", "cycles", "steps", "max_ideal_cycles", "build_timeout", "data", "retrain"}
_RETRAIN_KEYS = {"data": None, "epochs": 20, "lr": 2e-3, "batch": 32, "seed": 0}
#: Columns a sweep with ``retrain`` adds after :data:`RESULT_COLUMNS`.
RETRAIN_COLUMNS = ["retrain_best_epoch", "retrain_seconds", "model_dir"]


class SweepSpecError(ValueError):
    """A spec that cannot be run: one line naming the file, the key and the rule."""


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked spec (see the module docstring)."""

    base_kind: str
    base: str  # a preset name, or an absolute path (model directory, model file)
    fixed: dict[str, Any]
    axes: dict[str, tuple]
    boards: tuple[str, ...] = ()
    freq: dict[str, float] = field(default_factory=dict)
    cycles: bool = True
    steps: int = 3
    max_ideal_cycles: int = 20000
    build_timeout: float | None = None  # seconds a build may take (None: no limit); not part of a row's key
    data: str | None = None  # an .npz of sequences and labels (or targets): each point's golden accuracy
    retrain: dict[str, Any] | None = None  # the retraining settings (data: an absolute path), or None
    source: str = ""

    @property
    def fields(self) -> list[str]:
        """The config fields the axes set, in order (a linked axis ``"block_size,lanes"`` gives two)."""
        return [f for name in self.axes for f in name.split(",")]

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the axes' values (field -> value), the first axis varying slowest."""
        names = list(self.axes)
        out = []
        for values in itertools.product(*(self.axes[n] for n in names)):
            point: dict[str, Any] = {}
            for name, value in zip(names, values):
                fields = name.split(",")
                point.update(zip(fields, value) if len(fields) > 1 else [(name, value)])
            out.append(point)
        return out

    def columns(self) -> list[str]:
        """The results table's columns: :data:`RESULT_COLUMNS` with the axes' fields after ``point``."""
        cols = list(RESULT_COLUMNS) + (RETRAIN_COLUMNS if self.retrain else [])
        at = cols.index("point") + 1
        return cols[:at] + self.fields + cols[at:]


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check ``path`` (:class:`SweepSpecError` on any problem)."""
    p = Path(path)
    if not p.is_file():
        raise SweepSpecError(f"sweep spec {str(path)!r} does not exist")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SweepSpecError(f"{path}: not valid TOML ({exc})") from None
    return parse_spec(data, p.resolve().parent, source=str(p))


def _fail(source: str, msg: str):
    raise SweepSpecError(f"{source}: {msg}")


def parse_spec(data: dict, folder: str | Path = ".", source: str = "spec") -> SweepSpec:
    """A :class:`SweepSpec` from the TOML's tables; relative paths from ``folder``."""
    unknown = sorted(set(data) - {"base", "axes", "run"})
    if unknown:
        _fail(source, f"unknown table [{unknown[0]}] (a spec has [base], [axes] and [run])")
    base = data.get("base")
    if not isinstance(base, dict):
        _fail(source, "[base] is missing: give preset = NAME, model = DIR or import = FILE")
    bad = sorted(set(base) - set(BASE_KINDS) - {"set"})
    if bad:
        _fail(source, f"[base] has no key {bad[0]!r} (keys: {', '.join(BASE_KINDS)}, set)")
    kinds = [k for k in BASE_KINDS if k in base]
    if len(kinds) != 1:
        _fail(source, f"[base] needs exactly one of {', '.join(BASE_KINDS)}, not {len(kinds)}")
    kind = kinds[0]
    value = base[kind]
    if not isinstance(value, str) or not value:
        _fail(source, f"[base] {kind} must be a non-empty string")
    if kind == "preset":
        from ..numeric.config import PRESETS

        if value not in PRESETS:
            _fail(source, f"[base] unknown preset {value!r} (known: {', '.join(PRESETS)})")
    else:
        path = Path(value) if Path(value).is_absolute() else Path(folder) / value
        if kind == "model" and not path.is_dir():
            _fail(source, f"[base] model {value!r}: no such model directory")
        if kind == "import" and not path.is_file():
            _fail(source, f"[base] import {value!r}: no such file")
        value = str(path.resolve())
    fixed = base.get("set", {})
    if not isinstance(fixed, dict):
        _fail(source, "[base] set must be a table of config fields, e.g. set = { seed = 3 }")
    for name in fixed:
        if name not in FIELDS:
            _fail(source, f"[base] set: {name!r} is not a config field")

    axes_in = data.get("axes")
    if not isinstance(axes_in, dict) or not axes_in:
        _fail(source, "[axes] is missing or empty: name the config fields to vary, e.g. lanes = [1, 2, 4]")
    axes: dict[str, tuple] = {}
    seen: set[str] = set()
    for name, values in axes_in.items():
        fields = [f.strip() for f in name.split(",")]
        for f in fields:
            if f not in FIELDS:
                _fail(source, f"[axes] {f!r} is not a config field (fields: {', '.join(sorted(FIELDS))})")
            if f in seen:
                _fail(source, f"[axes] {f!r} is on two axes")
            seen.add(f)
        if not isinstance(values, list) or not values:
            _fail(source, f"[axes] {name} must be a non-empty list of values")
        if len(fields) > 1:
            # linked fields ("block_size,lanes" = [[4, 4], [8, 8]]): one value of each per entry
            if not all(isinstance(v, list) and len(v) == len(fields) for v in values):
                _fail(source, f"[axes] {name!r} links {len(fields)} fields: each value is a list of {len(fields)}")
            values = [tuple(v) for v in values]
        if len({repr(v) for v in values}) != len(values):
            _fail(source, f"[axes] {name} lists a value twice")
        axes[",".join(fields)] = tuple(values)

    run = data.get("run", {})
    if not isinstance(run, dict):
        _fail(source, "[run] must be a table")
    bad = sorted(set(run) - _RUN_KEYS)
    if bad:
        _fail(source, f"[run] has no key {bad[0]!r} (keys: {', '.join(sorted(_RUN_KEYS))})")
    boards = run.get("boards", [])
    if isinstance(boards, str):
        boards = [boards]
    if not isinstance(boards, list) or not all(isinstance(b, str) and b for b in boards):
        _fail(source, "[run] boards must be a list of board names")
    if len(set(boards)) != len(boards):
        _fail(source, "[run] boards lists a board twice")
    if boards:
        from ..boards.platforms import BOARDS

        for b in boards:
            if b not in BOARDS and ":" not in b:
                _fail(source, f"[run] unknown board {b!r} (known: {', '.join(BOARDS)}; or module:Class)")
    freq = run.get("freq", {})
    if not isinstance(freq, dict):
        _fail(source, "[run] freq must be a table of board = MHz")
    for b, f in freq.items():
        if b not in boards:
            _fail(source, f"[run] freq names board {b!r}, which is not in boards")
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1000:
            _fail(source, f"[run] freq.{b} must be a clock in MHz, not {f!r}")
    cycles = run.get("cycles", True)
    if not isinstance(cycles, bool):
        _fail(source, "[run] cycles must be true or false")
    steps = run.get("steps", 3)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 64:
        _fail(source, f"[run] steps must be an integer from 1 to 64, not {steps!r}")
    limit = run.get("max_ideal_cycles", 20000)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        _fail(source, f"[run] max_ideal_cycles must be a positive integer, not {limit!r}")
    timeout = run.get("build_timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        _fail(source, f"[run] build_timeout must be a positive number of seconds, not {timeout!r}")
    data_path = run.get("data")
    if data_path is not None:
        if not isinstance(data_path, str) or not data_path:
            _fail(source, "[run] data must be the path of an .npz (X and y or Y)")
        dp = Path(data_path) if Path(data_path).is_absolute() else Path(folder) / data_path
        if not dp.is_file():
            _fail(source, f"[run] data {data_path!r}: no such file")
        if kind != "model" or not (Path(value) / "head.npz").is_file():
            _fail(source, "[run] data needs a model directory base with a head.npz (rnnaccel retrain writes one)")
        data_path = str(dp.resolve())
    retrain = run.get("retrain")
    if retrain is not None:
        if not isinstance(retrain, dict):
            _fail(source, '[run] retrain must be a table: retrain = { data = "train.npz", epochs = 20 }')
        bad = sorted(set(retrain) - set(_RETRAIN_KEYS))
        if bad:
            _fail(source, f"[run] retrain has no key {bad[0]!r} (keys: {', '.join(_RETRAIN_KEYS)})")
        if data_path is None:
            _fail(source, "[run] retrain needs data (the set each retrained point is measured on)")
        retrain = {**_RETRAIN_KEYS, **retrain}
        tp = retrain["data"]
        if not isinstance(tp, str) or not tp:
            _fail(source, "[run] retrain.data must be the path of an .npz of training sequences")
        tp = Path(tp) if Path(tp).is_absolute() else Path(folder) / tp
        if not tp.is_file():
            _fail(source, f"[run] retrain.data {retrain['data']!r}: no such file")
        retrain["data"] = str(tp.resolve())
        for name, ok in (("epochs", lambda v: isinstance(v, int) and 1 <= v <= 10000),
                         ("batch", lambda v: isinstance(v, int) and v >= 1),
                         ("seed", lambda v: isinstance(v, int) and v >= 0),
                         ("lr", lambda v: isinstance(v, (int, float)) and 0 < v < 1)):  # fmt: skip
            v = retrain[name]
            if isinstance(v, bool) or not ok(v):
                _fail(source, f"[run] retrain.{name} cannot be {v!r}")
        retrain["lr"] = float(retrain["lr"])
    if not boards and not cycles and data_path is None:
        _fail(source, "[run] measures nothing: give boards to build, cycles = true or data")
    return SweepSpec(
        base_kind=kind,
        base=value,
        fixed=dict(fixed),
        axes=axes,
        boards=tuple(boards),
        freq={b: float(f) for b, f in freq.items()},
        cycles=cycles,
        steps=steps,
        max_ideal_cycles=limit,
        build_timeout=None if timeout is None else float(timeout),
        data=data_path,
        retrain=retrain,
        source=source,
    )
