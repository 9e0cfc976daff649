"""Parameter checks shared by the host link's components (the package's leaf)."""

from __future__ import annotations

#: INFO's design hash when the flow gave none (:func:`rnnaccel.flow.rtl.design_hash` names a built design).
UNKNOWN_DESIGN = "0" * 16


def check_design_hash(value):
    if not (isinstance(value, str) and len(value) == 16 and all(ch in "0123456789abcdef" for ch in value)):
        raise ValueError(f"design_hash must be 16 lower-case hex digits, not {value!r}")


def check_int(name, value, minimum, maximum=None):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        rng = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise ValueError(f"{name} must be {rng}, not {value!r}")
