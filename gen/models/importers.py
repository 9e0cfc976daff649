"""Import trained recurrent models (PyTorch, ONNX) as rnnaccel model directories.

Two readers turn a file into a :class:`DenseModel` (float64, dense gate
matrices in rnnaccel's gate order, which is PyTorch's), and
:func:`to_model` turns that into a :class:`~rnnaccel.numeric.config.Config` and the
``weights.npz`` arrays of :mod:`rnnaccel.numeric.model`, projecting every matrix onto
the nearest block-circulant one (:func:`rnnaccel.numeric.circulant.project`) and
measuring how much of its energy (squared Frobenius norm) survives.

Supported sources
-----------------
PyTorch (:func:`read_torch`)
    ``torch.save`` of a whole ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (tanh) or
    of their cells, or of any torch.nn container holding exactly one of them,
    or a state_dict (also nested in a checkpoint dict, also with a key prefix
    such as ``rnn.``). A state_dict does not say which cell it is; it is
    inferred from the shapes (rows of ``weight_ih_l0`` = 4H LSTM, 3H GRU,
    H RNN), and a plain RNN needs ``cell="rnn"`` to confirm its nonlinearity
    is tanh. Rejected: bidirectional (``_reverse`` keys), ``proj_size``
    (``weight_hr`` keys), relu RNNs, layers of different sizes.

    Files are read with ``torch.load(weights_only=True)``, torch's restricted
    unpickler, which builds tensors and containers but runs no code from the
    file. Whole modules need their classes allowlisted: classes defined in
    ``torch.nn`` are (they are what a whole ``nn.LSTM`` or ``nn.Sequential``
    pickle refers to). A file that refers to anything else (a model class of
    your own, or something malicious) needs full unpickling,
    ``weights_only=False``, which can run arbitrary code from the file: it is
    only done with ``trust_pickle=True``.

ONNX (:func:`read_onnx`)
    The ``LSTM``, ``GRU`` and ``RNN`` operators (W, R, B constant), forward
    direction, default activations, no clip, no peepholes, ``input_forget=0``;
    several operators in sequence (each reading the previous one's Y through
    reshaping operators only) are the layers. ONNX gate orders are converted:
    LSTM i o f c -> i f g o, GRU z r h -> r z n; ``B = [Wb, Rb]`` gives the
    input-side bias b and the recurrent-side bias c; GRU
    ``linear_before_reset=1`` is the reset-after GRU (PyTorch's), 0 the
    reset-before one. The graph may hold only those operators plus the
    shape plumbing around them (Transpose, Squeeze, Shape, Expand, ...).

Biases follow PyTorch: ``b = b_ih`` (added to ``W x``), ``c = b_hh`` (added to
``U h``); for the reset-after GRU c_n stays inside ``r * (U_n h + c_n)``,
which the weight layout keeps separate.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..numeric.circulant import expand, project
from ..numeric.config import gate_names, Config
from ..numeric.model import ModelError, Weights

__all__ = [
    "ModelImportError",
    "DenseLayer",
    "DenseModel",
    "MatrixEnergy",
    "ImportResult",
    "read_model",
    "read_torch",
    "read_onnx",
    "torch_to_dense",
    "detect_format",
    "build_config",
    "to_model",
    "import_model",
    "range_report",
    "SHAPE_FIELDS",
    "FORMATS",
    "exact_weight_format",
    "EXACT_WEIGHT_BITS",
]

FORMATS = ("auto", "torch", "onnx")
IMPORT_CELLS = ("lstm", "gru", "rnn")
#: Config fields the imported model decides (not settable with --set).
SHAPE_FIELDS = ("cell", "input_size", "hidden_size", "num_layers", "gru_reset_after", "block_size")
_GATE_COUNT = {4: "lstm", 3: "gru", 1: "rnn"}
_TORCH_NAME = {"lstm": "nn.LSTM", "gru": "nn.GRU", "rnn": "nn.RNN"}


class ModelImportError(ModelError):
    """A model file that cannot be imported (unreadable, unsupported layer or option)."""


@dataclass
class DenseLayer:
    """One layer, dense and float64: W (G, H, C), U (G, H, H), b and c (G, H); gates in rnnaccel order."""

    W: np.ndarray
    U: np.ndarray
    b: np.ndarray
    c: np.ndarray


@dataclass
class DenseModel:
    """A stack of recurrent layers read from a file."""

    cell: str
    input_size: int
    hidden_size: int
    layers: list[DenseLayer]
    gru_reset_after: bool = True
    source: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def num_layers(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class MatrixEnergy:
    """How much of a matrix's energy (squared Frobenius norm) the block-circulant projection kept."""

    name: str
    total: float
    kept: float
    entries: int
    stored: int

    @property
    def fraction(self) -> float:
        return 1.0 if self.total == 0 else self.kept / self.total

    def line(self) -> str:
        if self.total == 0:
            return f"{self.name}: all zero, nothing to keep"
        return f"{self.name}: {100 * self.fraction:.1f}% of energy kept"


@dataclass
class ImportResult:
    cfg: Config
    weights: Weights
    energies: list[MatrixEnergy]
    model: DenseModel
    #: how q_weight was chosen, when the import chose it (k = 1 without an explicit format)
    weight_format_note: str | None = None

    @property
    def total_fraction(self) -> float:
        total = sum(e.total for e in self.energies)
        return 1.0 if total == 0 else sum(e.kept for e in self.energies) / total


def _first_line(exc: BaseException, limit: int = 160) -> str:
    """``Type: first line of the message``, ANSI codes removed, shortened (for one-line errors)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip().splitlines()
    msg = text[0].strip() if text else ""
    msg = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


def _finite(name: str, arr: np.ndarray, where: str) -> np.ndarray:
    if not np.all(np.isfinite(arr)):
        raise ModelImportError(f"{where}: {name} holds NaN or infinite values")
    return arr


# ============================================================================
# format detection
# ============================================================================


def detect_format(path: str | Path) -> str:
    """``torch`` or ``onnx`` from the extension, else from the first bytes (zip/pickle = torch)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".onnx":
        return "onnx"
    if ext in (".pt", ".pth", ".pkl", ".ckpt", ".bin", ".tar"):
        return "torch"
    with open(p, "rb") as fh:
        head = fh.read(4)
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        return "torch"
    return "unknown"


def read_model(path: str | Path, fmt: str = "auto", cell: str | None = None, trust_pickle: bool = False) -> DenseModel:
    """Read a PyTorch or ONNX file (``fmt`` auto, torch or onnx)."""
    p = Path(path)
    if not p.exists():
        raise ModelImportError(f"model file {str(p)!r} does not exist")
    if not p.is_file():
        raise ModelImportError(f"{p} is not a file")
    if fmt not in FORMATS:
        raise ModelImportError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if cell is not None and cell not in IMPORT_CELLS:
        raise ModelImportError(f"--cell {cell!r}: importable cells are {', '.join(IMPORT_CELLS)}")
    if fmt == "auto":
        fmt = detect_format(p)
    if fmt == "torch":
        return read_torch(p, cell=cell, trust_pickle=trust_pickle)
    if fmt == "onnx":
        return read_onnx(p, cell=cell)
    # unknown content: try ONNX (protobuf has no magic number), then say what it is not
    try:
        return read_onnx(p, cell=cell)
    except _NotOnnx:
        raise ModelImportError(f"{p}: neither a PyTorch file (torch.save) nor an ONNX model") from None


# ============================================================================
# PyTorch
# ============================================================================


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ModelImportError("reading PyTorch files needs torch: pip install 'rnnaccel[models]'") from None
    return torch


def _torch_nn_class(name: str):
    """Resolve a global a pickle refers to, only if it is a torch.nn.Module subclass defined in torch.nn."""
    torch = _import_torch()
    if not name.startswith("torch.nn.") or "." not in name:
        return None
    mod_name, _, attr = name.rpartition(".")
    try:
        mod = importlib.import_module(mod_name)
    except ImportError:
        return None
    obj = getattr(mod, attr, None)
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        return obj
    return None


def _torch_load(path: Path, trust_pickle: bool):
    """Load with torch's restricted unpickler; full unpickling only when trusted. Returns (obj, how)."""
    import pickle

    torch = _import_torch()
    nn = torch.nn
    base = [nn.LSTM, nn.GRU, nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell]
    try:
        with torch.serialization.safe_globals(base):
            return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
    except pickle.UnpicklingError as exc:
        if "Weights only load failed" not in str(exc):
            raise ModelImportError(f"{path}: not a readable PyTorch file ({_first_line(exc)})") from None
    except Exception as exc:  # torch raises many types for files that are not its own
        raise ModelImportError(f"{path}: not a readable PyTorch file ({_first_line(exc)})") from None
    # the file refers to classes: allow those defined in torch.nn, nothing else without trust
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        names = []
    if not names and not trust_pickle:
        raise ModelImportError(
            f"{path}: not a readable PyTorch file (the restricted unpickler refused it and its "
            f"globals cannot be listed); pass --trust-pickle only if it is a torch.save file you "
            "trust"
        )
    classes = [_torch_nn_class(n) for n in names]
    foreign = [n for n, c in zip(names, classes) if c is None]
    if names and not foreign:
        try:
            with torch.serialization.safe_globals(base + classes):
                return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
        except Exception as exc:
            if not trust_pickle:
                raise ModelImportError(
                    f"{path}: not loadable with torch.load(weights_only=True) "
                    f"({_first_line(exc)}); pass --trust-pickle only if you trust the file"
                ) from None
    if not trust_pickle:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "") if foreign else "unknown globals"
        raise ModelImportError(
            f"{path}: refers to {shown}, outside torch.nn; loading it means full unpickling, which can run "
            f"code from the file: pass --trust-pickle only if you trust it, or save the module's state_dict() instead"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=False), "full unpickling (trusted)"
    except Exception as exc:
        raise ModelImportError(f"{path}: could not be unpickled ({_first_line(exc)})") from None


_KEY = re.compile(
    r"^(?P<prefix>.*?)(?P<kind>weight_ih|weight_hh|bias_ih|bias_hh|weight_hr)"
    r"(?P<layer>_l\d+)?(?P<rev>_reverse)?$"
)


def _flatten(obj, prefix: str = "", depth: int = 0, out: dict | None = None) -> dict:
    """Nested dicts of tensors/arrays -> {dotted key: value} (checkpoints nest state_dicts)."""
    out = {} if out is None else out
    if isinstance(obj, dict) and depth < 4:
        for k, v in obj.items():
            _flatten(v, f"{prefix}{k}." if isinstance(v, dict) else f"{prefix}{k}", depth + 1, out)
    else:
        out[prefix] = obj
    return out


def _to_numpy(value, key: str, where: str) -> np.ndarray:
    torch = _import_torch()
    if isinstance(value, torch.Tensor):
        if value.is_complex() or not (value.is_floating_point()):
            raise ModelImportError(f"{where}: {key} has dtype {value.dtype}, not a floating-point tensor")
        return value.detach().to("cpu", torch.float64).numpy()
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return value.astype(np.float64)
    raise ModelImportError(f"{where}: {key} is a {type(value).__name__}, not a tensor")


def torch_to_dense(
    state: dict, cell: str | None = None, where: str = "state_dict", cell_known: bool = False
) -> DenseModel:
    """A PyTorch RNN state_dict (keys ``weight_ih_l0`` ...) as a :class:`DenseModel`.

    ``cell`` confirms or names the cell; ``cell_known`` says it comes from the
    module itself (then a plain RNN is known to be tanh).
    """
    prefix, keys, notes = _torch_group(_flatten(dict(state)), where)
    where_k = where + (f" [{prefix.rstrip('.')}]" if prefix else "")
    if any(k.endswith("_reverse") for k in keys):
        raise ModelImportError(f"{where_k}: bidirectional (has _reverse weights); rnnaccel runs forward layers only")
    if any(k.startswith("weight_hr") for k in keys):
        raise ModelImportError(f"{where_k}: an LSTM with proj_size (has weight_hr weights); rnnaccel needs proj_size=0")
    is_cell = "weight_ih" in keys and not any(k.startswith("weight_ih_l") for k in keys)
    if is_cell:
        layers_idx = [0]
        name = lambda kind, layer: kind  # noqa: E731
    else:
        layers_idx = sorted(int(k.split("_l")[1]) for k in keys if k.startswith("weight_ih_l"))
        if layers_idx != list(range(len(layers_idx))):
            raise ModelImportError(f"{where_k}: layers {layers_idx} are not numbered 0..{len(layers_idx) - 1}")
        name = lambda kind, layer: f"{kind}_l{layer}"  # noqa: E731
    inferred, input_size, hidden = _torch_shape(keys, name, cell, cell_known, where_k)
    layers = [_torch_layer(keys, name, layer, inferred, input_size, hidden, where_k) for layer in layers_idx]
    extra = sorted(
        k
        for k in keys
        if k not in {name(kd, layer) for layer in layers_idx for kd in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    )
    if extra:
        raise ModelImportError(f"{where_k}: unexpected keys {', '.join(extra)}")
    return DenseModel(
        cell=inferred, input_size=input_size, hidden_size=hidden, layers=layers, gru_reset_after=True, notes=notes
    )


def _torch_group(flat: dict, where: str) -> tuple[str, dict, list[str]]:
    """The one recurrent module's entries of a flat state_dict: (key prefix, its entries, notes)."""
    groups: dict[str, dict[str, object]] = {}
    for key, value in flat.items():
        m = _KEY.match(key)
        if m:
            groups.setdefault(m["prefix"], {})[key[len(m["prefix"]) :]] = value
    groups = {p: g for p, g in groups.items() if any(k.startswith("weight_ih") for k in g)}
    if not groups:
        shown = ", ".join(list(flat)[:4]) + (", ..." if len(flat) > 4 else "")
        raise ModelImportError(
            f"{where}: no weight_ih_l0 key, not the state_dict of an nn.LSTM, nn.GRU or nn.RNN "
            f"(keys: {shown or 'none'})"
        )
    if len(groups) > 1:
        raise ModelImportError(
            f"{where}: holds {len(groups)} recurrent modules "
            f"({', '.join(p.rstrip('.') or '<root>' for p in groups)}); "
            f"rnnaccel imports one stack: save that module's state_dict"
        )
    prefix, keys = next(iter(groups.items()))
    notes = []
    ignored = [k for k in flat if not (k.startswith(prefix) and k[len(prefix) :] in keys)]
    if ignored:
        notes.append(
            f"imported the recurrent weights under {prefix.rstrip('.')!r}; ignored {len(ignored)} other "
            f"entr{'y' if len(ignored) == 1 else 'ies'} "
            f"({', '.join(ignored[:3])}{', ...' if len(ignored) > 3 else ''})"
        )
    return prefix, keys, notes


def _torch_shape(keys: dict, name, cell: str | None, cell_known: bool, where_k: str) -> tuple[str, int, int]:
    """(cell type, input size, hidden size) from layer 0's matrices; ``cell`` must agree."""
    hh0 = name("weight_hh", 0)
    if hh0 not in keys:
        raise ModelImportError(f"{where_k}: {hh0} is missing")
    w_ih0 = _to_numpy(keys[name("weight_ih", 0)], name("weight_ih", 0), where_k)
    w_hh0 = _to_numpy(keys[hh0], hh0, where_k)
    if w_ih0.ndim != 2 or w_hh0.ndim != 2:
        raise ModelImportError(
            f"{where_k}: weight_ih/weight_hh must be matrices, not shapes {w_ih0.shape}, {w_hh0.shape}"
        )
    hidden = w_hh0.shape[1]
    rows = w_hh0.shape[0]
    if hidden == 0 or rows % hidden or rows // hidden not in _GATE_COUNT:
        raise ModelImportError(f"{where_k}: {hh0} has shape {w_hh0.shape}; an nn.LSTM/GRU/RNN has (4H|3H|H, H)")
    inferred = _GATE_COUNT[rows // hidden]
    if cell is not None and cell != inferred:
        raise ModelImportError(
            f"{where_k}: the weights are those of an {_TORCH_NAME[inferred]} "
            f"({rows} = {rows // hidden} x {hidden} rows), not of a {cell}"
        )
    if inferred == "rnn" and not cell_known and cell is None:
        raise ModelImportError(
            f"{where_k}: looks like an nn.RNN, but a state_dict does not record its nonlinearity: "
            f"pass --cell rnn to confirm it is tanh (relu is not supported)"
        )
    return inferred, w_ih0.shape[1], hidden


def _torch_layer(keys: dict, name, layer: int, cell: str, input_size: int, hidden: int, where_k: str) -> DenseLayer:
    """Layer ``layer``'s matrices and biases (missing biases: zeros, ``bias=False``), shapes checked."""
    g = next(n for n, c in _GATE_COUNT.items() if c == cell)  # gates stacked in the matrices
    c_in = input_size if layer == 0 else hidden
    mats = {}
    for kind, shape in (
        ("weight_ih", (g * hidden, c_in)),
        ("weight_hh", (g * hidden, hidden)),
        ("bias_ih", (g * hidden,)),
        ("bias_hh", (g * hidden,)),
    ):
        key = name(kind, layer)
        if key not in keys:
            if kind.startswith("bias"):
                mats[kind] = np.zeros(shape)  # bias=False
                continue
            raise ModelImportError(f"{where_k}: {key} is missing")
        arr = _finite(key, _to_numpy(keys[key], key, where_k), where_k)
        if arr.shape != shape:
            if kind == "weight_ih" and layer > 0 and arr.ndim == 2 and arr.shape[0] == shape[0]:
                raise ModelImportError(
                    f"{where_k}: layer {layer} reads {arr.shape[1]} inputs, but layer "
                    f"{layer - 1} has hidden size {hidden}: mismatched layer sizes"
                )
            raise ModelImportError(
                f"{where_k}: {key} has shape {tuple(arr.shape)}, expected {shape} "
                f"(a {_TORCH_NAME[cell]} with input {input_size}, hidden {hidden}); "
                f"mismatched layer sizes are not supported"
            )
        mats[kind] = arr
    return DenseLayer(
        W=mats["weight_ih"].reshape(g, hidden, c_in),
        U=mats["weight_hh"].reshape(g, hidden, hidden),
        b=mats["bias_ih"].reshape(g, hidden),
        c=mats["bias_hh"].reshape(g, hidden),
    )


def _module_to_dense(mod, cell: str | None, where: str) -> DenseModel:
    torch = _import_torch()
    nn = torch.nn
    rnn_types = (nn.RNNBase, nn.RNNCellBase)
    notes = []
    if isinstance(mod, rnn_types):
        rnn, label = mod, ""
    else:
        found = [(n, m) for n, m in mod.named_modules() if isinstance(m, rnn_types)]
        kind = f"{type(mod).__module__}.{type(mod).__name__}"
        if not found:
            raise ModelImportError(f"{where}: holds a {kind} module with no nn.LSTM, nn.GRU or nn.RNN inside")
        if len(found) > 1:
            raise ModelImportError(
                f"{where}: a {kind} holding {len(found)} recurrent modules "
                f"({', '.join(n for n, _ in found)}); rnnaccel imports one stack"
            )
        label, rnn = found[0]
        others = [f"{n}: {type(m).__name__}" for n, m in mod.named_children() if n != label.split(".")[0]]
        notes.append(
            f"imported the recurrent module {label!r} of the {type(mod).__name__}"
            + (f"; not imported: {', '.join(others)}" if others else "")
        )
    tname = type(rnn).__name__
    at = f"{where}" + (f" [{label}]" if label else "")
    if isinstance(rnn, nn.RNNBase):
        mode = rnn.mode
        if mode == "RNN_RELU":
            raise ModelImportError(f"{at}: an nn.RNN with nonlinearity='relu'; rnnaccel's RNN cell is tanh")
        if rnn.bidirectional:
            raise ModelImportError(f"{at}: a bidirectional {tname}; rnnaccel runs forward layers only")
        if getattr(rnn, "proj_size", 0):
            raise ModelImportError(f"{at}: an LSTM with proj_size={rnn.proj_size}; rnnaccel needs proj_size=0")
        mcell = {"LSTM": "lstm", "GRU": "gru", "RNN_TANH": "rnn"}.get(mode)
        if mcell is None:
            raise ModelImportError(f"{at}: unsupported recurrent mode {mode!r}")
    else:
        if isinstance(rnn, nn.RNNCell) and rnn.nonlinearity != "tanh":
            raise ModelImportError(
                f"{at}: an nn.RNNCell with nonlinearity={rnn.nonlinearity!r}; rnnaccel's RNN cell is tanh"
            )
        mcell = {"LSTMCell": "lstm", "GRUCell": "gru", "RNNCell": "rnn"}.get(tname)
        if mcell is None:
            raise ModelImportError(f"{at}: unsupported recurrent cell {tname}")
    if cell is not None and cell != mcell:
        raise ModelImportError(f"{at}: the file holds an {tname}, not a {cell}")
    model = torch_to_dense(rnn.state_dict(), cell=mcell, where=at, cell_known=True)
    model.notes = notes + model.notes
    model.source = f"PyTorch {tname} module"
    return model


def read_torch(path: str | Path, cell: str | None = None, trust_pickle: bool = False) -> DenseModel:
    """Read a ``torch.save`` file: a whole recurrent module or a state_dict (see the module docstring)."""
    torch = _import_torch()
    path = Path(path)
    obj, how = _torch_load(path, trust_pickle)
    where = str(path)
    if isinstance(obj, torch.nn.Module):
        model = _module_to_dense(obj, cell, where)
    elif isinstance(obj, dict):
        model = torch_to_dense(obj, cell=cell, where=where)
        model.source = "PyTorch state_dict"
    else:
        raise ModelImportError(f"{where}: holds a {type(obj).__name__}, not an nn.LSTM/GRU/RNN module or state_dict")
    model.source += f" ({how})"
    return model


# ============================================================================
# ONNX
# ============================================================================


class _NotOnnx(ModelImportError):
    """The file is not an ONNX protobuf at all."""


_RNN_OPS = {"LSTM": "lstm", "GRU": "gru", "RNN": "rnn"}
#: ONNX gate order -> rnnaccel (PyTorch) gate order: index into the ONNX gates.
_ONNX_PERM = {"lstm": [0, 2, 3, 1], "gru": [1, 0, 2], "rnn": [0]}
_DEFAULT_ACTS = {"lstm": ["sigmoid", "tanh", "tanh"], "gru": ["sigmoid", "tanh"], "rnn": ["tanh"]}
#: operators that only move data around (allowed between the input and the layers)
_LAYOUT_OPS = {"Transpose", "Squeeze", "Unsqueeze", "Reshape", "Identity", "Dropout", "Flatten"}
#: operators allowed anywhere else (shapes, initial states, output concatenation)
_PLUMBING_OPS = _LAYOUT_OPS | {
    "Constant",
    "ConstantOfShape",
    "Shape",
    "Gather",
    "Concat",
    "Expand",
    "Cast",
    "Slice",
    "Size",
    "Range",
    "Tile",
    "Split",
}


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ModelImportError("reading ONNX files needs onnx: pip install 'rnnaccel[models]'") from None
    return onnx


def read_onnx(path: str | Path, cell: str | None = None) -> DenseModel:
    """Read the LSTM/GRU/RNN operators of an ONNX model (see the module docstring)."""
    g = _OnnxGraph(Path(path))
    mcell = g.cell_type(cell)
    layers, hidden, input_size, reset_after = [], None, None, None
    for li, ni in enumerate(g.rnn_nodes):
        layer, attrs, c_in, h = g.layer(ni, mcell)
        g.check_stacking(li, ni, c_in, h, hidden)
        if li == 0:
            input_size, hidden = c_in, h
        if mcell == "gru":
            lbr = bool(attrs.get("linear_before_reset", 0))
            if reset_after is not None and lbr != reset_after:
                raise ModelImportError(f"{g.where}: GRU layers mix linear_before_reset=0 and 1")
            reset_after = lbr
        layers.append(layer)
    notes = []
    if mcell == "gru":
        notes.append(f"GRU linear_before_reset={int(reset_after)}: reset-{'after' if reset_after else 'before'} GRU")
    opset = next((o.version for o in g.model.opset_import if o.domain in ("", "ai.onnx")), "?")
    return DenseModel(
        cell=mcell,
        input_size=input_size,
        hidden_size=hidden,
        layers=layers,
        gru_reset_after=True if reset_after is None else reset_after,
        source=f"ONNX {mcell.upper()} operators (opset {opset})",
        notes=notes,
    )


class _OnnxGraph:
    """An ONNX graph read for :func:`read_onnx`: its constants, producers, inputs and recurrent operators."""

    def __init__(self, path: Path):
        onnx = _import_onnx()
        from onnx import numpy_helper

        self.where = where = str(path)
        try:
            self.model = onnx.load(str(path))
        except Exception as exc:  # DecodeError, missing external data, ...
            raise _NotOnnx(f"{where}: not a readable ONNX model ({_first_line(exc)})") from None
        graph = self.graph = self.model.graph
        if not graph.node and not graph.input:
            raise _NotOnnx(f"{where}: not an ONNX model (empty graph)")
        consts: dict[str, np.ndarray] = {}
        for init in graph.initializer:
            try:
                consts[init.name] = numpy_helper.to_array(init)
            except Exception as exc:
                raise ModelImportError(f"{where}: initializer {init.name!r} unreadable ({_first_line(exc)})") from None
        producer: dict[str, tuple[int, int]] = {}
        for i, node in enumerate(graph.node):
            for j, out in enumerate(node.output):
                if out:
                    producer[out] = (i, j)
            if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
                for a in node.attribute:
                    if a.name == "value":
                        consts[node.output[0]] = numpy_helper.to_array(a.t)
        self.consts, self.producer = consts, producer
        self.graph_inputs = {i.name for i in graph.input} - set(consts)
        self.rnn_nodes = self._rnn_nodes()

    def _rnn_nodes(self) -> list[int]:
        """Indices of the recurrent operators; anything but them and plumbing is refused."""
        rnn_nodes = []
        for i, node in enumerate(self.graph.node):
            op = node.op_type
            if node.domain not in ("", "ai.onnx"):
                raise ModelImportError(
                    f"{self.where}: unsupported operator {node.domain}.{op} (node {node.name or i!r}); "
                    f"rnnaccel imports LSTM, GRU and RNN operators only"
                )
            if op in _RNN_OPS:
                rnn_nodes.append(i)
            elif op not in _PLUMBING_OPS:
                raise ModelImportError(
                    f"{self.where}: unsupported operator {op} (node {node.name or str(i)!r}); rnnaccel "
                    "imports "
                    f"LSTM, GRU and RNN operators and the reshaping between them only"
                )
        if not rnn_nodes:
            raise ModelImportError(f"{self.where}: no LSTM, GRU or RNN operator in the graph")
        return rnn_nodes

    def cell_type(self, cell: str | None) -> str:
        """The one cell type of the recurrent operators (``cell``, when given, must match)."""
        ops = {self.graph.node[i].op_type for i in self.rnn_nodes}
        if len(ops) > 1:
            raise ModelImportError(
                f"{self.where}: mixes {', '.join(sorted(ops))} operators; rnnaccel layers are all one cell type"
            )
        mcell = _RNN_OPS[ops.pop()]
        if cell is not None and cell != mcell:
            raise ModelImportError(f"{self.where}: the graph holds {mcell.upper()} operators, not {cell}")
        return mcell

    def const(self, name: str, what: str, node) -> np.ndarray:
        """The constant behind tensor ``name`` (through Identity nodes)."""
        seen = 0
        while name not in self.consts and name in self.producer and seen < 16:
            src = self.graph.node[self.producer[name][0]]
            if src.op_type != "Identity":
                break
            name, seen = src.input[0], seen + 1
        if name not in self.consts:
            raise ModelImportError(
                f"{self.where}: {node.op_type} node {node.name!r}: {what} is not a constant "
                f"(weights computed in the graph or fed as inputs are not supported)"
            )
        return np.asarray(self.consts[name])

    def source(self, name: str):
        """Follow layout operators back from a tensor: ('input',) / ('rnn', node index, output) / ('other', op)."""
        for _ in range(64):
            if name in self.graph_inputs:
                return ("input", name)
            if name not in self.producer:
                return ("other", "constant" if name in self.consts else "unknown")
            i, j = self.producer[name]
            node = self.graph.node[i]
            if node.op_type in _RNN_OPS:
                return ("rnn", i, j)
            if node.op_type not in _LAYOUT_OPS:
                return ("other", node.op_type)
            name = node.input[0]
        return ("other", "deep chain")

    def zero_state(self, name: str, what: str, node) -> None:
        """An initial state must be zero (a constant) or fed at run time (a graph input)."""
        from onnx import numpy_helper

        where = self.where
        for _ in range(64):
            if name in self.consts:
                if np.any(np.asarray(self.consts[name]) != 0):
                    raise ModelImportError(
                        f"{where}: {node.op_type} node {node.name!r}: {what} is a non-zero "
                        "constant; "
                        f"rnnaccel starts from the zero state (or one written at run time)"
                    )
                return
            if name in self.graph_inputs or name not in self.producer:
                return
            src = self.graph.node[self.producer[name][0]]
            if src.op_type == "ConstantOfShape":
                for a in src.attribute:
                    if a.name == "value" and np.any(numpy_helper.to_array(a.t) != 0):
                        raise ModelImportError(
                            f"{where}: {node.op_type} node {node.name!r}: {what} is a non-zero "
                            f"constant; rnnaccel starts from the zero state"
                        )
                return
            if src.op_type not in _LAYOUT_OPS | {"Expand", "Cast", "Tile"}:
                raise ModelImportError(
                    f"{where}: {node.op_type} node {node.name!r}: {what} is computed by a "
                    f"{src.op_type}; rnnaccel starts from the zero state"
                )
            name = src.input[0]

    def _check_attributes(self, label: str, attrs: dict, mcell: str) -> int:
        """Refuse what rnnaccel's cells do not have; the hidden size."""
        where = self.where
        direction = attrs.get("direction", b"forward")
        direction = direction.decode() if isinstance(direction, bytes) else str(direction)
        if direction != "forward":
            raise ModelImportError(f"{where}: {label} has direction={direction}; rnnaccel runs forward layers only")
        if "clip" in attrs:
            raise ModelImportError(f"{where}: {label} has clip={attrs['clip']}; cell clipping is not supported")
        acts = [a.decode() if isinstance(a, bytes) else str(a) for a in attrs.get("activations", [])]
        if acts and [a.lower() for a in acts] != _DEFAULT_ACTS[mcell]:
            raise ModelImportError(
                f"{where}: {label} has activations {acts}; only the defaults "
                f"({', '.join(a.capitalize() for a in _DEFAULT_ACTS[mcell])}) are supported"
            )
        if attrs.get("input_forget", 0):
            raise ModelImportError(
                f"{where}: {label} has input_forget=1 (coupled input and forget gates); not supported"
            )
        if "hidden_size" not in attrs:
            raise ModelImportError(f"{where}: {label} has no hidden_size attribute")
        return int(attrs["hidden_size"])

    def layer(self, ni: int, mcell: str) -> tuple[DenseLayer, dict, int, int]:
        """Recurrent operator ``ni`` as a layer: (layer, attributes, input size, hidden size)."""
        from onnx import helper

        where, node = self.where, self.graph.node[ni]
        label = f"{node.op_type} node {node.name or str(ni)!r}"
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        h = self._check_attributes(label, attrs, mcell)
        inputs = list(node.input) + [""] * (8 - len(node.input))
        W = self.const(inputs[1], "W", node)
        R = self.const(inputs[2], "R", node)
        g = len(_ONNX_PERM[mcell])
        if W.ndim != 3 or W.shape[0] != 1 or W.shape[1] != g * h:
            raise ModelImportError(f"{where}: {label}: W has shape {W.shape}, expected (1, {g * h}, input)")
        if R.shape != (1, g * h, h):
            raise ModelImportError(f"{where}: {label}: R has shape {R.shape}, expected (1, {g * h}, {h})")
        if inputs[3]:
            B = self.const(inputs[3], "B", node)
            if B.shape != (1, 2 * g * h):
                raise ModelImportError(f"{where}: {label}: B has shape {B.shape}, expected (1, {2 * g * h})")
        else:
            B = np.zeros((1, 2 * g * h))
        if mcell == "lstm" and len(node.input) > 7 and inputs[7]:
            P = self.const(inputs[7], "P (peepholes)", node)
            if np.any(P != 0):
                raise ModelImportError(f"{where}: {label} has peephole weights P; rnnaccel's LSTM has no peepholes")
        if inputs[5]:
            self.zero_state(inputs[5], "initial_h", node)
        if mcell == "lstm" and inputs[6]:
            self.zero_state(inputs[6], "initial_c", node)
        c_in = W.shape[2]
        perm = _ONNX_PERM[mcell]
        Wd = _finite("W", W[0].astype(np.float64), where).reshape(g, h, c_in)[perm]
        Ud = _finite("R", R[0].astype(np.float64), where).reshape(g, h, h)[perm]
        Bd = _finite("B", B[0].astype(np.float64), where).reshape(2, g, h)
        return DenseLayer(W=Wd, U=Ud, b=Bd[0][perm], c=Bd[1][perm]), attrs, c_in, h

    def check_stacking(self, li: int, ni: int, c_in: int, h: int, hidden: int | None) -> None:
        """Layer 0 reads a graph input; every later one the previous operator's Y, with one hidden size."""
        where, node = self.where, self.graph.node[ni]
        label = f"{node.op_type} node {node.name or str(ni)!r}"
        src = self.source(node.input[0])
        if li == 0:
            if src[0] != "input":
                raise ModelImportError(
                    f"{where}: {label} does not read a graph input (its X comes from "
                    f"{src[1] if src[0] == 'other' else 'another recurrent operator'})"
                )
            return
        prev = self.rnn_nodes[li - 1]
        if src[:3] != ("rnn", prev, 0):
            raise ModelImportError(
                f"{where}: {label} does not read the output Y of the previous recurrent "
                f"operator; only a plain stack of layers is supported"
            )
        if h != hidden or c_in != hidden:
            raise ModelImportError(
                f"{where}: {label} has input {c_in}, hidden {h}, after a layer of hidden size "
                f"{hidden}: rnnaccel needs one hidden size for every layer (mismatched layer "
                "sizes)"
            )


# ============================================================================
# to a model directory
# ============================================================================


def build_config(model: DenseModel, base: Config, block_size: int | None = None, **changes) -> Config:
    """``base`` with the model's cell, sizes and layers, block size k (lanes = k when k > 1), then ``changes``.

    ``block_size`` None keeps the base's. Shape fields in ``changes`` are refused.
    """
    bad = sorted(set(changes) & set(SHAPE_FIELDS))
    if bad:
        raise ModelImportError(
            f"{bad[0]} comes from the imported model"
            + (" (use --block-size)" if bad[0] == "block_size" else "")
            + "; it cannot be set"
        )
    k = base.block_size if block_size is None else block_size
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise ModelImportError(f"block size must be 1 or more, not {k!r}")
    data = base.to_dict()
    data.update(
        cell=model.cell,
        input_size=model.input_size,
        hidden_size=model.hidden_size,
        num_layers=model.num_layers,
        block_size=k,
        lanes=k if k > 1 else base.lanes,
    )
    data["gru_reset_after"] = model.gru_reset_after if model.cell == "gru" else base.gru_reset_after
    if k == 1 and data.get("weight_ram") == "huge":
        data["weight_ram"] = "block"  # SPRAM packing is for circulant weights; dense banks use block RAM
    data.update(changes)
    return Config.from_dict(data)


def _project_gates(mats: np.ndarray, k: int, name: str) -> tuple[np.ndarray, MatrixEnergy]:
    """(G, H, C) dense -> (G, ceil(H/k), ceil(C/k), k) defining vectors and the energy kept."""
    g, h, c = mats.shape
    vecs = np.stack([project(m, k) for m in mats])
    back = np.stack([expand(v)[:h, :c] for v in vecs])
    total = float(np.sum(mats * mats))
    # the projection is orthogonal, so kept = total - residual; computed directly
    kept = float(np.sum(back * back))
    return vecs, MatrixEnergy(name=name, total=total, kept=kept, entries=g * h * c, stored=int(vecs.size))


def to_model(model: DenseModel, cfg: Config) -> tuple[Weights, list[MatrixEnergy]]:
    """The ``weights.npz`` arrays of ``cfg`` (float32) and the energy each projection kept."""
    if (cfg.cell, cfg.input_size, cfg.hidden_size, cfg.num_layers) != (
        model.cell,
        model.input_size,
        model.hidden_size,
        model.num_layers,
    ):
        raise ModelImportError("the config does not describe the imported model")
    if model.cell not in IMPORT_CELLS or len(gate_names(model.cell)) != model.layers[0].W.shape[0]:
        raise ModelImportError(f"cannot import a {model.cell} model")
    k = cfg.block_size
    weights: Weights = {}
    energies = []
    for layer, m in enumerate(model.layers):
        for key, mats in (("W", m.W), ("U", m.U)):
            vecs, energy = _project_gates(np.asarray(mats, np.float64), k, f"layer{layer} {key}")
            weights[f"layer{layer}.{key}"] = vecs.astype(np.float32)
            energies.append(energy)
        weights[f"layer{layer}.b"] = np.asarray(m.b, np.float32)
        weights[f"layer{layer}.c"] = np.asarray(m.c, np.float32)
    return weights, energies


def import_model(
    path: str | Path,
    base: Config,
    block_size: int | None = 1,
    *,
    fmt: str = "auto",
    cell: str | None = None,
    trust_pickle: bool = False,
    **changes,
) -> ImportResult:
    """Read ``path`` and build the config and weights (nothing is written).

    ``block_size`` 1 (the default) keeps the weights exactly; K > 1 projects
    them onto block-circulant form (retrain afterwards,
    :func:`rnnaccel.accuracy.retrain.retrain`); None takes ``base``'s block size.
    """
    model = read_model(path, fmt=fmt, cell=cell, trust_pickle=trust_pickle)
    cfg = build_config(model, base, block_size, **changes)
    weights, energies = to_model(model, cfg)
    note = None
    if cfg.block_size == 1 and "q_weight" not in changes:
        cfg, note = exact_weight_format(cfg, weights)
    return ImportResult(cfg=cfg, weights=weights, energies=energies, model=model, weight_format_note=note)


#: Width of the weight format an exact (k = 1) import chooses when none is given.
EXACT_WEIGHT_BITS = 16


def exact_weight_format(cfg: Config, weights: Weights, width: int = EXACT_WEIGHT_BITS) -> tuple[Config, str]:
    """``cfg`` with ``q_weight`` the ``width``-bit format with the most fraction bits holding every weight.

    What an exact import (k = 1, no ``--q-weight``) uses, so that only the
    rounding of 16-bit weights (and the fixed-point arithmetic) separates the
    imported model from the trained one. Returns (config, a line saying so).
    """
    from .quantize import fit_format

    vals = np.concatenate([np.ravel(v) for k, v in weights.items() if k.endswith((".W", ".U"))])
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (0.0, 0.0)
    q, holds = fit_format(lo, hi, width, min_int_bits=0)
    new = cfg.replace(q_weight=q)
    note = (
        f"weights: {q} ({width} bits) fitted to the largest weight ({max(abs(lo), abs(hi)):.4g})"
        + ("" if holds else ", which still saturates")
        + " to keep the k = 1 import exact (the preset's "
        f"{cfg.q_weight} otherwise; choose with --q-weight)"
    )
    return new, note


def range_report(cfg: Config, weights: Weights) -> list[str]:
    """Lines on how the float weights fit q_weight / q_pre (saturation warnings)."""
    lines = []
    for kinds, q, what in ((("W", "U"), cfg.q_weight, "weights"), (("b", "c"), cfg.q_pre, "biases")):
        vals = np.concatenate([np.ravel(v) for k, v in weights.items() if k.rsplit(".", 1)[1] in kinds])
        big = float(np.max(np.abs(vals))) if vals.size else 0.0
        out = int(np.sum((vals > q.max_value) | (vals < q.min_value)))
        line = f"{what}: max |value| {big:.4g}, {q} holds [{q.min_value:g}, {q.max_value:g}] in steps of {q.lsb:g}"
        if out:
            line += (
                f"; warning: {out} of {vals.size} stored values saturate (choose a wider format, e.g. "
                f"--q-{'weight' if what == 'weights' else 'pre'})"
            )
        lines.append(line)
    return lines
