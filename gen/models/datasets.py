"""Real sequence data for examples and accuracy tests: the UCR/UEA sets that ship inside sktime.

The ``sktime`` wheel carries a few classification sets of the UCR/UEA archive
as ``.ts`` files (``sktime/datasets/data/<Name>/<Name>_TRAIN.ts`` and
``_TEST.ts``): JapaneseVowels, BasicMotions, GunPoint, ItalyPowerDemand,
ArrowHead, OSULeaf, ... This module reads them **from the installed package
only**; it never calls sktime's download functions, so it works offline. Install
with ``pip install 'rnnaccel[examples]'``.

:func:`load_dataset` returns both splits as :class:`Split` objects: ``X``
(N, T, C) float32, each sequence zero-padded at the end to the longest length
of the two splits, ``lengths`` (N,), ``y`` (N,) int64 class indices into
``classes`` (the label names in the order of the file's ``@classLabel``
header). A model reads sequence n for ``lengths[n]`` steps; outputs at later
(padding) steps are ignored (:func:`rnnaccel.accuracy.evaluate.last_states`).

The files are parsed with sktime's own reader
(``sktime.datasets.load_from_tsfile``, ``nested_univ`` data type, which takes
unequal lengths); :func:`parse_ts` is a small reader of the same format used
when that function is missing from the installed sktime (and checked against
it in the tests).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DatasetError",
    "Split",
    "Dataset",
    "INSTALL_HINT",
    "data_dir",
    "dataset_names",
    "dataset_files",
    "load_dataset",
    "load_split",
    "parse_ts",
    "pad_sequences",
]

INSTALL_HINT = "pip install 'rnnaccel[examples]'"


class DatasetError(ValueError):
    """A data set that cannot be found or read (sktime missing, unknown name, malformed file)."""


@dataclass(frozen=True)
class Split:
    """One split of a data set.

    Attributes
    ----------
    X : ndarray, float32, (N, T, C)
        Sequences, zero-padded at the end to T steps.
    lengths : ndarray, int64, (N,)
        True length of each sequence (1 <= lengths[n] <= T).
    y : ndarray, int64, (N,)
        Class index of each sequence (into ``classes``).
    classes : tuple of str
        Label names, index order.
    """

    X: np.ndarray
    lengths: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.X.shape[0])

    @property
    def channels(self) -> int:
        return int(self.X.shape[2])

    def subset(self, index) -> "Split":
        """The sequences at ``index`` (slice, integer array or mask); padding is kept."""
        return Split(X=self.X[index], lengths=self.lengths[index], y=self.y[index], classes=self.classes)


@dataclass(frozen=True)
class Dataset:
    name: str
    train: Split
    test: Split

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes

    def describe(self) -> str:
        tr, te = self.train, self.test
        return (
            f"{self.name}: {len(tr)} train / {len(te)} test sequences, {tr.channels} channels, "
            f"lengths {int(min(tr.lengths.min(), te.lengths.min()))}..{tr.X.shape[1]}, {len(self.classes)} classes"
        )


# ----------------------------------------------------------------------------
# finding the files
# ----------------------------------------------------------------------------


def data_dir() -> Path:
    """``sktime/datasets/data`` inside the installed sktime (found without importing sktime)."""
    try:
        spec = importlib.util.find_spec("sktime")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(
            f"the UCR/UEA data sets come from the sktime package, which is not installed: {INSTALL_HINT}"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "datasets" / "data"
        if path.is_dir():
            return path
    raise DatasetError(
        f"sktime is installed but has no datasets/data folder (looked in {', '.join(spec.submodule_search_locations)})"
    )


def _all_sets() -> list[str]:
    root = data_dir()
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (p / f"{p.name}_TRAIN.ts").is_file() and (p / f"{p.name}_TEST.ts").is_file()
    )


def dataset_names() -> list[str]:
    """Names of the classification sets (``@classLabel true``) with both splits in the installed sktime."""
    root = data_dir()
    return [n for n in _all_sets() if _class_names(_header(root / n / f"{n}_TRAIN.ts")) is not None]


def dataset_files(name: str) -> dict[str, Path]:
    """``{"train": path, "test": path}`` of a classification set, by name (case-insensitive)."""
    match = [n for n in _all_sets() if n.lower() == str(name).lower()]
    if not match:
        raise DatasetError(
            f"unknown data set {name!r} (classification sets in the installed sktime: {', '.join(dataset_names())})"
        )
    n = match[0]
    root = data_dir() / n
    if _class_names(_header(root / f"{n}_TRAIN.ts")) is None:
        raise DatasetError(f"{n} is not a classification set (its .ts files hold target values, not class labels)")
    return {"train": root / f"{n}_TRAIN.ts", "test": root / f"{n}_TEST.ts"}


# ----------------------------------------------------------------------------
# reading .ts files
# ----------------------------------------------------------------------------


def _header(path: Path) -> dict[str, str]:
    """The ``@key value`` lines before ``@data`` (keys lower-cased)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith(("#", "%")):
                continue
            if not line.startswith("@"):
                break
            key, _, value = line[1:].partition(" ")
            key = key.lower()
            if key == "data":
                break
            out[key] = value.strip()
    return out


def _class_names(header: dict[str, str]) -> list[str] | None:
    value = header.get("classlabel", "")
    parts = value.split()
    if not parts or parts[0].lower() != "true":
        return None
    return parts[1:]


def parse_ts(path: str | Path) -> tuple[list[np.ndarray], list[str]]:
    """A small reader of classification ``.ts`` files: (list of (T_i, C) float64 arrays, list of labels).

    Handles what the UCR/UEA classification files use: ``#`` comments,
    ``@`` header lines, then one case per line, dimensions separated by
    ``:``, values by ``,``, the class label last. Time stamps (``(t, v)``
    pairs) are not supported; missing values (``?``) become NaN.
    """
    path = Path(path)
    header = _header(path)
    if header.get("timestamps", "false").lower() == "true":
        raise DatasetError(f"{path}: time-stamped .ts files are not supported")
    labelled = _class_names(header) is not None
    xs: list[np.ndarray] = []
    ys: list[str] = []
    in_data = False
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line or line.startswith(("#", "%")):
                continue
            if not in_data:
                if line.lower().startswith("@data"):
                    in_data = True
                continue
            parts = line.split(":")
            if labelled:
                ys.append(parts[-1].strip())
                parts = parts[:-1]
            try:
                dims = [
                    np.array([np.nan if v.strip() == "?" else float(v) for v in p.split(",")], dtype=np.float64)
                    for p in parts
                ]
            except ValueError:
                raise DatasetError(f"{path}:{lineno}: not a line of comma-separated numbers") from None
            if len({d.size for d in dims}) != 1:
                raise DatasetError(f"{path}:{lineno}: dimensions of different lengths")
            xs.append(np.stack(dims, axis=1))
    if not in_data:
        raise DatasetError(f"{path}: no @data line, not a .ts file")
    return xs, ys


def _read_with_sktime(path: Path) -> tuple[list[np.ndarray], list[str]] | None:
    """sktime's reader (nested_univ: one pandas Series per case and dimension); None if it is missing."""
    try:
        from sktime.datasets import load_from_tsfile
    except ImportError:
        return None
    try:
        X, y = load_from_tsfile(str(path), return_data_type="nested_univ")
    except Exception as exc:  # sktime raises its own types for malformed files
        msg = str(exc).strip().splitlines()
        raise DatasetError(
            f"{path}: sktime could not read it ({type(exc).__name__}: {msg[0] if msg else ''})"
        ) from None
    xs = []
    for i in range(len(X)):
        cols = [np.asarray(X.iloc[i, c], dtype=np.float64) for c in range(X.shape[1])]
        if len({c.size for c in cols}) != 1:
            raise DatasetError(f"{path}: case {i} has dimensions of different lengths")
        xs.append(np.stack(cols, axis=1))
    return xs, [str(v) for v in np.asarray(y)]


def pad_sequences(xs: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, T, C) float32 zero-padded at the end, and the lengths (N,) int64."""
    lengths = np.array([x.shape[0] for x in xs], dtype=np.int64)
    t = int(lengths.max()) if length is None else int(length)
    if lengths.max() > t:
        raise ValueError(f"a sequence has {lengths.max()} steps, more than the padded length {t}")
    out = np.zeros((len(xs), t, xs[0].shape[1]), dtype=np.float32)
    for i, x in enumerate(xs):
        out[i, : x.shape[0]] = x
    return out, lengths


def _read(path: Path) -> tuple[list[np.ndarray], list[str]]:
    got = _read_with_sktime(path)
    return got if got is not None else parse_ts(path)


def load_dataset(name: str, dtype=np.float32) -> Dataset:
    """Both splits of a UCR/UEA set shipped with sktime (see the module docs)."""
    files = dataset_files(name)
    raw = {split: _read(path) for split, path in files.items()}
    header = _header(files["train"])
    classes = _class_names(header)
    labels = [lab for _, ys in raw.values() for lab in ys]
    # sktime's reader lower-cases labels; the header keeps the file's spelling and order
    if (
        classes is None
        or len({c.lower() for c in classes}) != len(classes)
        or not {v.lower() for v in labels} <= {c.lower() for c in classes}
    ):
        classes = sorted(set(labels), key=lambda s: (0, float(s), s) if _is_number(s) else (1, 0.0, s))
    index = {c.lower(): i for i, c in enumerate(classes)}
    channels = {x.shape[1] for xs, _ in raw.values() for x in xs}
    if len(channels) != 1:
        raise DatasetError(f"{name}: cases have different numbers of dimensions {sorted(channels)}")
    length = max(x.shape[0] for xs, _ in raw.values() for x in xs)
    splits = {}
    for split, (xs, ys) in raw.items():
        if any(not np.all(np.isfinite(x)) for x in xs):
            raise DatasetError(f"{files[split]}: has missing values, which rnnaccel's examples do not handle")
        X, lengths = pad_sequences(xs, length)
        y = np.array([index[v.lower()] for v in ys], dtype=np.int64)
        splits[split] = Split(X=X.astype(dtype), lengths=lengths, y=y, classes=tuple(classes))
    return Dataset(name=files["train"].parent.name, train=splits["train"], test=splits["test"])


def load_split(name: str, split: str = "test") -> Split:
    """One split (``train`` or ``test``) of :func:`load_dataset`."""
    if split not in ("train", "test"):
        raise DatasetError(f"split must be 'train' or 'test', not {split!r}")
    return getattr(load_dataset(name), split)


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True
