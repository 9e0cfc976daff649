"""A sweep's points as designs: each point's config and weights, its label, and the tasks (point x board).

:func:`make_tasks` runs in the process that drives the sweep: it builds every point's config (a point the
config rules refuse becomes an ``invalid`` row, with the rule, and is not run), its weights, and one
:class:`Task` per board (one without a board when the spec builds nothing). A task's ``key`` names what
it measures (the design hash: config, ROM weights, target family, generator code; the board and clock;
the simulated steps), so a repeated point is recognised in the results table and not run again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..numeric.config import Config, ConfigError, preset
from ..numeric.model import ModelError, Weights, check_weights, random_weights
from .spec import SweepSpec

__all__ = ["Task", "Invalid", "make_tasks", "point_label", "point_text", "BaseModel"]


@dataclass
class Task:
    """One measurement: a point's design on one board (``board`` None: simulation only)."""

    key: str
    index: int  # the point's position in the spec's order
    point: dict[str, Any]
    cfg: Config
    weights: Weights
    board: str | None
    freq_mhz: float | None
    cycles: bool
    steps: int
    max_ideal_cycles: int
    design_hash: str
    build_cache: str | None = None  # the folder builds go to (``<build key>/`` each)
    data: Any = None  # the spec's data set (:class:`rnnaccel.accuracy.retrain.TaskData`) and ...
    head: Any = None  # ... the base's head (:class:`rnnaccel.accuracy.evaluate.Head`): accuracy / MSE
    retrain: dict[str, Any] | None = None  # the spec's retraining settings, with ...
    train: Any = None  # ... the training set (:class:`rnnaccel.accuracy.retrain.TaskData`)
    family: str | None = None  # the board's FPGA family (a retrained design's hash is made in the worker)
    models_dir: str | None = None  # where a retrained point's model directory goes (``<key>/``)
    build_timeout: float | None = None  # seconds a build may take (the spec's; not part of the key)


@dataclass
class Invalid:
    """A point the config rules refuse (or whose weights cannot be made): a row, never run."""

    key: str
    index: int
    point: dict[str, Any]
    message: str


def point_text(point: dict[str, Any]) -> str:
    """The point as JSON (the table's ``point`` column): stable, sorted by axis order."""
    return json.dumps(point, separators=(",", ":"))


def point_label(point: dict[str, Any]) -> str:
    """A short label for tables and plots: ``lanes=4 block_size=8``."""
    return " ".join(f"{k}={v}" for k, v in point.items())


class BaseModel:
    """The spec's base, loaded once: the base config and what gives a point its weights."""

    def __init__(self, spec: SweepSpec):
        self.spec = spec
        self.dense = None
        self.weights: Weights | None = None
        if spec.base_kind == "preset":
            cfg = preset(spec.base)
        elif spec.base_kind == "model":
            from ..numeric.model import load_model

            cfg, self.weights = load_model(spec.base)
        else:
            from ..models.importers import build_config, read_model

            self.dense = read_model(spec.base)
            cfg = build_config(self.dense, preset("tiny"), None)
        if spec.fixed:
            cfg = cfg.replace(**spec.fixed)
        self.cfg = cfg

    def design(self, point: dict[str, Any]) -> tuple[Config, Weights]:
        """The point's config and weights (:class:`ConfigError` / :class:`ModelError` when refused)."""
        cfg = self.cfg.replace(**point) if point else self.cfg
        kind = self.spec.base_kind
        if kind == "preset":
            return cfg, random_weights(cfg)
        if kind == "import":
            from ..models.importers import to_model

            return cfg, to_model(self.dense, cfg)[0]
        return cfg, self._model_weights(cfg)

    def _model_weights(self, cfg: Config) -> Weights:
        """A model directory's weights on the point's config: as stored when the shapes agree, else the
        stored model expanded to dense and projected onto the point's block size."""
        base = self.cfg
        shape = ("cell", "input_size", "hidden_size", "num_layers", "gru_reset_after")
        changed = [f for f in shape if getattr(cfg, f) != getattr(base, f)]
        if changed:
            raise ModelError(f"{changed[0]} comes from the base model directory; it cannot be swept")
        if cfg.block_size == base.block_size:
            check_weights(cfg, self.weights)
            return self.weights
        from ..models.importers import IMPORT_CELLS, DenseLayer, DenseModel, to_model
        from ..numeric.circulant import expand

        if cfg.cell not in IMPORT_CELLS:
            raise ModelError(f"block_size of a {cfg.cell} model directory cannot be swept (it is not re-projected)")
        layers = []
        for layer in range(base.num_layers):
            w = self.weights
            h, c = base.hidden_size, base.layer_cols(layer)
            dense_w = np.stack([expand(v)[:h, :c] for v in np.asarray(w[f"layer{layer}.W"], np.float64)])
            dense_u = np.stack([expand(v)[:h, :h] for v in np.asarray(w[f"layer{layer}.U"], np.float64)])
            layers.append(DenseLayer(W=dense_w, U=dense_u, b=w[f"layer{layer}.b"], c=w[f"layer{layer}.c"]))
        dense = DenseModel(base.cell, base.input_size, base.hidden_size, layers, base.gru_reset_after)
        return to_model(dense, cfg)[0]


def hash_head(head) -> str:
    """A short hash of a head's arrays (its accuracy depends on them)."""
    h = hashlib.sha256()
    for arr in (head.W, head.b):
        h.update(np.ascontiguousarray(np.asarray(arr, np.float64)).tobytes())
    return h.hexdigest()[:16]


def _key(*parts) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:16]


def make_tasks(
    spec: SweepSpec, build_cache: str | None = None, models_dir: str | None = None
) -> tuple[list[Task], list[Invalid]]:
    """Every point's tasks (point x board, in the spec's order) and the points that cannot be designs;
    ``models_dir``: where retrained points' model directories go (with ``[run] retrain``)."""
    from ..flow.rtl import design_hash

    base = BaseModel(spec)
    families = {}
    if spec.boards:
        from ..boards.platforms import family_of, get_platform

        families = {b: family_of(get_platform(b)) for b in spec.boards}
    data = head = None
    data_key = ""
    if spec.data:
        from ..accuracy.evaluate import load_head
        from ..accuracy.retrain import load_task_data

        data = load_task_data(spec.data, base.cfg.input_size)
        head = load_head(spec.base, base.cfg.hidden_size)
        data_key = hashlib.sha256(open(spec.data, "rb").read()).hexdigest()[:16] + str(hash_head(head))
    train = None
    if spec.retrain:
        from ..accuracy.retrain import load_task_data

        train = load_task_data(spec.retrain["data"], base.cfg.input_size)
        settings = json.dumps({k: v for k, v in spec.retrain.items() if k != "data"}, sort_keys=True)
        data_key += "retrain" + hashlib.sha256(open(spec.retrain["data"], "rb").read()).hexdigest()[:16] + settings
    tasks, invalid = [], []
    for index, point in enumerate(spec.points()):
        try:
            cfg, weights = base.design(point)
        except (ConfigError, ModelError, ValueError, TypeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            invalid.append(Invalid(_key("invalid", spec.base, point_text(point)), index, point, message))
            continue
        for board in spec.boards or (None,):
            family = families.get(board)
            dh = design_hash(cfg, weights, family)
            freq = spec.freq.get(board) if board else None
            key = _key(dh, board or "-", freq or 0, spec.cycles, spec.steps, spec.max_ideal_cycles, data_key)
            tasks.append(
                Task(
                    key=key,
                    index=index,
                    point=point,
                    cfg=cfg,
                    weights=weights,
                    board=board,
                    freq_mhz=freq,
                    cycles=spec.cycles,
                    steps=spec.steps,
                    max_ideal_cycles=spec.max_ideal_cycles,
                    design_hash=dh,
                    build_cache=build_cache,
                    data=data,
                    head=head,
                    retrain=spec.retrain,
                    train=train,
                    family=family,
                    models_dir=models_dir,
                    build_timeout=spec.build_timeout,
                )
            )
    return tasks, invalid
