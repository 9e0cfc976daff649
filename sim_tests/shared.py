"""Small helpers the test modules share: the REPORT line and the list of every cell variant."""

from __future__ import annotations


def report(*args):
    """A measured figure for the log (``pytest -s`` or ``--durations`` readers grep ``REPORT``)."""
    print("REPORT", *args)


#: (cell, extra config): every cell type and variant, on any base config
CELL_VARIANTS = [
    ("lstm", {}),
    ("gru", {"gru_reset_after": True}),
    ("gru", {"gru_reset_after": False}),
    ("sru", {}),  # input == hidden: highway is x
    ("sru", {"hidden_size": 12}),  # input != hidden: 4th projection s
    ("qrnn", {"qrnn_window": 1}),
    ("qrnn", {"qrnn_window": 2}),
    ("rnn", {}),
]
CELL_VARIANT_IDS = [f"{c}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'default'}" for c, kw in CELL_VARIANTS]
