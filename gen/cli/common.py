"""What every ``rnnaccel`` subcommand module shares: the one-line user error and input parsing.

:mod:`rnnaccel.cli.main` (the parser and most commands) and the command modules
(``cli_import``, ``cli_evaluate``, ``cli_retrain``) import from here, never
from each other's upward: the parser imports the command modules, not the
other way round.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["CLIError", "load_inputs", "parse_set", "writable_output"]


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def load_inputs(path: str, what: str = "input") -> np.ndarray:
    """One numeric .npy array, or a one-line :class:`CLIError` naming the problem."""
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"{what} file {path!r} does not exist")
    try:
        x = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise CLIError(f"{path}: not a readable .npy array") from None
    if not isinstance(x, np.ndarray):
        raise CLIError(
            f"{path}: holds several arrays (an .npz); give one .npy array of shape (T, input) or (N, T, input)"
        )
    if x.dtype.kind not in "fiu":
        raise CLIError(f"{path}: {what}s must be numbers, not dtype {x.dtype}")
    return x


def parse_set(items: list[str]) -> dict:
    import tomllib

    out = {}
    for item in items or []:
        if "=" not in item:
            raise CLIError(f"--set takes FIELD=VALUE, not {item!r}")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value  # a bare string such as lstm or Q3.12
    return out


def writable_output(path) -> Path:
    """``path`` as a Path if a file can be written there (its folder exists and is writable), else a CLIError."""
    p = Path(path)
    folder = p.parent if str(p.parent) else Path(".")
    if p.is_dir():
        raise CLIError(f"output {str(path)!r} is a directory; give a file name")
    if not folder.is_dir():
        raise CLIError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise CLIError(f"cannot write {str(path)!r}: permission denied")
    return p
