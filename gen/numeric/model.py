"""Model directories: ``rnnaccel.toml`` (the config) + ``weights.npz`` (float weights).

Layout of ``weights.npz`` (float32), for each layer ``l`` and with G the
number of gates (:func:`rnnaccel.numeric.config.gate_names`), H the hidden size, C the
layer's input-matrix columns (input size, or hidden size after layer 0, times
the QRNN window), k the block size and ``ceil`` rounding up:

=================  ================================  ===================================
key                shape                             meaning
=================  ================================  ===================================
``layer{l}.W``     (G, ceil(H/k), ceil(C/k), k)      input weights, circulant defining
                                                     vectors per k x k block
``layer{l}.b``     (G, H)                            input-side bias
``layer{l}.U``     (G, ceil(H/k), ceil(H/k), k)      recurrent weights (LSTM, GRU, RNN)
``layer{l}.c``     (G, H)                            recurrent-side bias (LSTM, GRU, RNN)
=================  ================================  ===================================

Block (i, j) of gate g expands to ``B[r][c] = W[g, i, j, (r - c) mod k]``
(:func:`rnnaccel.numeric.circulant.expand`); with k = 1 the array is the dense matrix.
The file always holds float defining vectors; with ``circulant_mode = 'fft'``
the design stores their spectra, quantized from these floats
(:func:`quantize_weights`).
Rows and columns past H and C (padding) are ignored. Gate order is PyTorch's:
LSTM i, f, g, o; GRU r, z, n; RNN h; SRU x, f, r (+ s, the highway
projection, when input and hidden sizes differ); QRNN z, f, o with the
window's inputs stacked as ``[x_t, x_{t-1}]``.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import fft
from .circulant import expand
from .config import Config, ConfigError, ceil_div
from .fixedpoint import quantize, to_float

__all__ = [
    "Weights",
    "ModelError",
    "weight_shapes",
    "random_weights",
    "save_model",
    "load_model",
    "quantize_weights",
    "QuantizedWeights",
    "dense_matrices",
    "spectral_matrices",
    "effective_vectors",
    "CONFIG_FILE",
    "WEIGHTS_FILE",
]

CONFIG_FILE = "rnnaccel.toml"
WEIGHTS_FILE = "weights.npz"


class ModelError(ValueError):
    """A model directory that cannot be used (missing file, wrong shape, bad values)."""


Weights = dict[str, np.ndarray]


def weight_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """The expected array shape of every key of ``weights.npz``."""
    k, h = cfg.block_size, cfg.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(cfg.num_layers):
        g = len(cfg.layer_gates(layer))
        c = cfg.layer_cols(layer)
        shapes[f"layer{layer}.W"] = (g, ceil_div(h, k), ceil_div(c, k), k)
        shapes[f"layer{layer}.b"] = (g, h)
        if cfg.has_recurrent_matrix:
            shapes[f"layer{layer}.U"] = (g, ceil_div(h, k), ceil_div(h, k), k)
            shapes[f"layer{layer}.c"] = (g, h)
    return shapes


def random_weights(cfg: Config, seed: int | None = None, scale: float = 1.0) -> Weights:
    """Seeded random weights in PyTorch's default range, U(-1/sqrt(H), 1/sqrt(H)) times ``scale``.

    The range is for the expanded dense matrix, so circulant and dense models
    of the same size see inputs of the same magnitude.
    """
    rng = np.random.default_rng(cfg.seed if seed is None else seed)
    bound = scale / np.sqrt(cfg.hidden_size)
    out: Weights = {}
    for key, shape in weight_shapes(cfg).items():
        out[key] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    return out


def check_weights(cfg: Config, weights: Weights) -> None:
    """Raise :class:`ModelError` naming every key that is missing, extra, misshapen or not finite."""
    expected = weight_shapes(cfg)
    problems = []
    for key, shape in expected.items():
        if key not in weights:
            problems.append(f"{key} is missing (expected shape {shape})")
        elif tuple(np.shape(weights[key])) != shape:
            problems.append(f"{key} has shape {tuple(np.shape(weights[key]))}, the config needs {shape}")
        elif not np.all(np.isfinite(weights[key])):
            problems.append(f"{key} holds NaN or infinite values")
    for key in sorted(set(weights) - set(expected)):
        problems.append(f"{key} is not used by a {cfg.num_layers}-layer {cfg.cell} model")
    if problems:
        raise ModelError("weights do not match the config: " + "; ".join(problems))


def save_model(directory: str | Path, cfg: Config, weights: Weights) -> Path:
    """Write ``rnnaccel.toml`` and ``weights.npz`` into ``directory`` (created if needed)."""
    check_weights(cfg, weights)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cfg.save(directory / CONFIG_FILE)
    _write_npz(directory / WEIGHTS_FILE, {k: np.asarray(weights[k], dtype=np.float32) for k in sorted(weights)})
    return directory


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like np.savez, but byte-reproducible: sorted keys and a fixed timestamp in the zip."""
    import io

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def load_model(directory: str | Path) -> tuple[Config, Weights]:
    """Read and check a model directory; errors name the file and the problem."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelError(f"model directory {str(directory)!r} does not exist")
    cfg_path = directory / CONFIG_FILE
    if not cfg_path.is_file():
        raise ModelError(f"{cfg_path} is missing (a model directory holds {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        cfg = Config.load(cfg_path)
    except ConfigError as exc:
        raise ModelError(f"{cfg_path}: {exc}") from None
    except (TypeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{cfg_path}: {exc}") from None
    w_path = directory / WEIGHTS_FILE
    if not w_path.is_file():
        raise ModelError(f"{w_path} is missing")
    try:
        with np.load(w_path, allow_pickle=False) as data:
            weights = {k: np.asarray(data[k]) for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        raise ModelError(f"{w_path} is not a readable .npz archive of arrays") from None
    try:
        check_weights(cfg, weights)
    except ModelError as exc:
        raise ModelError(f"{w_path}: {exc}") from None
    return cfg, weights


@dataclass(frozen=True)
class LayerMatrices:
    """Matrices of one layer: W (G, H, C), b (G, H), U (G, H, H) or None, c (G, H) or None, dense and cropped.

    In FFT mode (``circulant_mode = 'fft'``) ``SW`` and ``SU`` hold the raw
    ``q_spectrum`` weight spectra, packed (G, H/k, C/k, k), as the hardware
    stores them; the integer model computes with those (its W and U are None).
    """

    W: np.ndarray | None
    b: np.ndarray
    U: np.ndarray | None
    c: np.ndarray | None
    SW: np.ndarray | None = None
    SU: np.ndarray | None = None


def _expand_gates(vectors: np.ndarray, rows: int, cols: int) -> np.ndarray:
    return np.stack([expand(v)[:rows, :cols] for v in vectors])


def dense_matrices(cfg: Config, weights: Weights) -> list[LayerMatrices]:
    """Expand every layer's circulant weights to dense, cropped gate matrices (same dtype)."""
    if isinstance(weights, QuantizedWeights) and weights.spectra:
        raise ValueError(
            "these quantized weights are spectra (circulant_mode = 'fft'), not defining vectors: "
            "use spectral_matrices, or effective_vectors for their time-domain equivalent"
        )
    out = []
    h = cfg.hidden_size
    for layer in range(cfg.num_layers):
        c = cfg.layer_cols(layer)
        W = _expand_gates(weights[f"layer{layer}.W"], h, c)
        U = _expand_gates(weights[f"layer{layer}.U"], h, h) if cfg.has_recurrent_matrix else None
        out.append(
            LayerMatrices(
                W=W,
                b=np.asarray(weights[f"layer{layer}.b"]),
                U=U,
                c=np.asarray(weights[f"layer{layer}.c"]) if cfg.has_recurrent_matrix else None,
            )
        )
    return out


class QuantizedWeights(dict):
    """Raw integer weights of one design: matrices in ``q_weight`` (or spectra in ``q_spectrum``), biases in ``q_pre``.

    A ``dict`` of the same keys and shapes as the float :data:`Weights`, typed so
    that every consumer can tell integers from floats: :func:`quantize_weights`
    returns one unchanged, so a design quantized once (``rnnaccel.flow.rtl.generate``
    does it) is never quantized again by the components and images it feeds.
    With ``spectra`` (FFT mode) W and U hold packed weight spectra
    (:mod:`rnnaccel.numeric.fft`) in ``q_weight``'s place, same shapes.
    """

    def __init__(self, arrays: dict, q_weight, q_pre, spectra: bool = False):
        super().__init__(arrays)
        self.q_weight, self.q_pre, self.spectra = q_weight, q_pre, spectra

    def matches(self, cfg: Config) -> bool:
        """Quantized with ``cfg``'s formats (and its circulant mode)."""
        return self.q_weight == cfg.weight_format and self.q_pre == cfg.q_pre and self.spectra == cfg.fft_mode


def quantize_weights(cfg: Config, weights: Weights) -> QuantizedWeights:
    """Raw integers: matrices in ``q_weight``, biases in ``q_pre`` (already quantized weights pass through).

    FFT mode: W and U become their packed spectra (:func:`rnnaccel.numeric.fft.weight_spectra`
    of the float defining vectors) in ``q_spectrum``.
    """
    if isinstance(weights, QuantizedWeights):
        if not weights.matches(cfg):
            raise ValueError(
                f"weights quantized to {weights.q_weight}/{weights.q_pre}"
                f"{' (spectra)' if weights.spectra else ''}, the config needs "
                f"{cfg.weight_format}/{cfg.q_pre}{' (spectra)' if cfg.fft_mode else ''}"
            )
        return weights
    out: Weights = {}
    for key, value in weights.items():
        kind = key.rsplit(".", 1)[1]
        if kind not in ("W", "U"):
            out[key] = quantize(value, cfg.q_pre)
        elif cfg.fft_mode:
            out[key] = quantize(fft.weight_spectra(value), cfg.q_spectrum)
        else:
            out[key] = quantize(value, cfg.q_weight)
    return QuantizedWeights(out, cfg.weight_format, cfg.q_pre, spectra=cfg.fft_mode)


def effective_vectors(cfg: Config, qweights: QuantizedWeights) -> Weights:
    """Float parameters the quantized weights stand for: biases dequantized, W and U as float defining vectors.

    Direct mode: the dequantized ``q_weight`` words. FFT mode: the real vectors
    whose DFT is exactly the dequantized stored spectrum
    (:func:`rnnaccel.numeric.fft.spectra_vectors`), i.e. the circulant blocks the
    spectra realize in exact arithmetic.
    """
    out: Weights = {}
    for key, value in qweights.items():
        if key.endswith((".W", ".U")):
            deq = to_float(value, cfg.weight_format)
            out[key] = fft.spectra_vectors(deq) if qweights.spectra else deq
        else:
            out[key] = to_float(value, cfg.q_pre)
    return out


def spectral_matrices(cfg: Config, qweights: QuantizedWeights) -> list[LayerMatrices]:
    """FFT mode: per layer the raw packed spectra ``SW``, ``SU`` (G, H/k, C/k, k) and the raw biases."""
    if not qweights.spectra:
        raise ValueError("spectral_matrices needs weights quantized in FFT mode (circulant_mode = 'fft')")
    out = []
    for layer in range(cfg.num_layers):
        rec = cfg.has_recurrent_matrix
        out.append(
            LayerMatrices(
                W=None,
                b=np.asarray(qweights[f"layer{layer}.b"]),
                U=None,
                c=np.asarray(qweights[f"layer{layer}.c"]) if rec else None,
                SW=np.asarray(qweights[f"layer{layer}.W"]),
                SU=np.asarray(qweights[f"layer{layer}.U"]) if rec else None,
            )
        )
    return out
