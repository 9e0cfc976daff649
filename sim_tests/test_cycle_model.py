"""The analytic cycle model (:mod:`rnnaccel.hw.cycle_model`, issue 18) against the Amaranth simulator.

The random-config test checks it on every serial config it draws; these are the corner cases by hand: lanes
from 1 to k, block sizes 4 to 16, SPRAM packing, stacks, sizes that are not multiples of k, and small RNN
layers whose tile rows are shorter than their gate phases (the issue holds the lanes: lead of two rows).
"""

from __future__ import annotations

import pytest

from rnnaccel.flow.sim_amaranth import step_cycles
from rnnaccel.hw.cycle_model import cycles_per_step, modelled
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import QFormat
from rnnaccel.numeric.model import random_weights

BASE = preset("lstm-small-ice40")
SPRAM = dict(weights_in_rom=False, weight_ram="huge", q_weight=QFormat(8, 7))

CASES = {
    "lstm-small-ice40": {},
    "lanes 1": dict(lanes=1, input_size=8, hidden_size=8),
    "k 8, lanes 8": dict(block_size=8, lanes=8),
    "k 16, lanes 2": dict(block_size=16, lanes=2, input_size=16, hidden_size=16),
    "SPRAM, 2 weights a word": dict(SPRAM, block_size=8, lanes=4, input_size=16, hidden_size=16),
    "SPRAM, 4 weights a word": dict(
        SPRAM, q_weight=QFormat(4, 3), block_size=16, lanes=4, input_size=16, hidden_size=16
    ),  # fmt: skip
    "3-layer rnn, 5 x 12": dict(cell="rnn", num_layers=3, input_size=5, hidden_size=12, lanes=1),
    "rnn 4 x 4 (holds)": dict(cell="rnn", input_size=4, hidden_size=4),
    "2-layer lstm 8 x 8": dict(num_layers=2, input_size=8, hidden_size=8),
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_serial_model_equals_simulation(changes):
    cfg = BASE.replace(**changes)
    sim = step_cycles(cfg, random_weights(cfg), 2)
    assert sim[0] == sim[1], "a serial step does not depend on the one before"
    assert cycles_per_step(cfg) == sim[-1]


def test_unmodelled_designs_return_none():
    for cfg in (preset("lstm-small"), preset("tiny"), BASE.replace(circulant_mode="fft", q_spectrum=QFormat(12, 6))):
        assert not modelled(cfg) and cycles_per_step(cfg) is None
