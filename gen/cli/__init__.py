"""The ``rnnaccel`` command line: one module per group of commands, :mod:`.common` for what they share."""

from .main import main

__all__ = ["main"]
