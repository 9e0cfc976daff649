"""The analytic cycle model (:mod:`rnnaccel.explore.cycle_model`, issue 18) against the Amaranth simulator.

Serial datapath: the random-config test checks it on every serial config it draws (cycles = model x steps, for
every run of its sessions); here the corner cases by hand: lanes from 1 to k, block sizes 4 to 16, SPRAM
packing, stacks, sizes that are not multiples of k, and small RNN layers whose tile rows are shorter than their
gate phases (the issue holds the lanes: lead of two rows).

Array datapath: :func:`test_array_model_on_the_random_config_draw` takes the random-config test's own draw
(:func:`test_random_config.valid_fields`, every cell variant) and compares every steady-state step (steps 2 to 8,
one after the other: a step may alternate between two lengths) with the simulator; a config the model declines
(:func:`~rnnaccel.explore.cycle_model.array_steps` None: with two input buffers, a step shorter than the input
FIFO's refill) is a hypothesis
event (``--hypothesis-show-statistics`` shows how many), not compared. Models run on a design with run-time
dimensions: :func:`test_array_model_with_runtime_dimensions_equals_simulation`.

Batched steps (``time_steps`` > 1): :func:`test_batched_model_on_the_random_config_draw` takes the random-config
test's streamed draw with T forced and compares two full batches (the random-config sessions' batches follow
their stalls, so that test does not compare them).
"""

from __future__ import annotations

import pytest

from rnnaccel.flow.sim_amaranth import step_cycles
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from rnnaccel.explore.cycle_model import array_steps, cycles_per_step, modelled
from rnnaccel.numeric.config import Config
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
    "2-layer sru 8 x 8 (highway x)": dict(cell="sru", num_layers=2, input_size=8, hidden_size=8),
    "sru 12 x 8 (s projection)": dict(cell="sru", input_size=12, hidden_size=8),
    "2-layer qrnn window 2 (shifts)": dict(cell="qrnn", qrnn_window=2, num_layers=2, input_size=8, hidden_size=8),
}


@pytest.mark.parametrize("changes", CASES.values(), ids=CASES.keys())
def test_serial_model_equals_simulation(changes):
    cfg = BASE.replace(**changes)
    sim = step_cycles(cfg, random_weights(cfg), 2)
    assert sim[0] == sim[1], "a serial step does not depend on the one before"
    assert cycles_per_step(cfg) == sim[-1]


SERIAL_RUNTIME_CASES = {
    "lstm 8x16x2 on 16x16x2": (dict(cell="lstm"), 8, 16, 2),
    "lstm 16x8x1 on 16x16x2 (one layer of two)": (dict(cell="lstm"), 16, 8, 1),
    "qrnn window 2 8x8x1 on 16x16x2 (the shift skipped)": (dict(cell="qrnn", qrnn_window=2), 8, 8, 1),
    "qrnn window 2 8x16x2 on 16x16x2": (dict(cell="qrnn", qrnn_window=2), 8, 16, 2),
    "sru 12x12x1 on 16x16x2": (dict(cell="sru"), 12, 12, 1),
}


@pytest.mark.parametrize("fields, n_in, n_hid, layers", SERIAL_RUNTIME_CASES.values(), ids=SERIAL_RUNTIME_CASES.keys())
def test_serial_model_with_runtime_dimensions_equals_simulation(fields, n_in, n_hid, layers):
    """A model run on a larger serial design: every layer's own wait_out, the step ending with the run's last
    layer (a window-2 QRNN's last layer skips the shift for a next layer it does not have)."""
    from rnnaccel.layout.runtime import model_on_design

    sizes = dict(max_input_size=16, max_hidden_size=16, max_layers=2)
    design = BASE.replace(**fields, input_size=12, hidden_size=12, num_layers=1, weights_in_rom=False, **sizes)
    run = model_on_design(BASE.replace(**fields, input_size=n_in, hidden_size=n_hid, num_layers=layers), design)
    assert modelled(run)
    sim = step_cycles(run, random_weights(run), 2)
    assert cycles_per_step(run) == sim[-1]


def test_unmodelled_designs_return_none():
    fft = BASE.replace(circulant_mode="fft", q_spectrum=QFormat(12, 6))
    delta = preset("tiny").replace(delta_threshold=0.01)
    for cfg in (fft, delta, preset("lstm-small").replace(cores=2, core_mode="layers", num_layers=2)):
        assert not modelled(cfg) and cycles_per_step(cfg) is None


ARRAY_CASES = {
    "lstm-small": ("lstm-small", {}),
    "lstm-small 1 PE": ("lstm-small", dict(pe_rows=1, pe_cols=1)),
    "gru-small": ("gru-small", {}),
    "gru reset-before": ("tiny", dict(cell="gru", gru_reset_after=False)),
    "sru (two ahead)": ("tiny", dict(cell="sru")),
    "qrnn window 2": ("tiny", dict(cell="qrnn")),
    "2-layer lstm (recurrent ahead)": ("tiny", dict(num_layers=2)),
    "stacked projections": ("tiny", dict(stacked_projections=True)),
    "qrnn window 1 (two ahead)": ("tiny", dict(cell="qrnn", qrnn_window=1)),
    "sru stacked (two ahead)": ("tiny", dict(cell="sru", stacked_projections=True)),
    "2-layer sru (three input buffers)": ("tiny", dict(cell="sru", num_layers=2)),
    "qrnn window 1 16 x 8 (alternates)": ("lstm-small", dict(cell="qrnn", qrnn_window=1, input_size=16, hidden_size=8)),
    "sru 32 x 8 (loads paced by the FIFO)": ("lstm-small", dict(cell="sru", input_size=32, hidden_size=8)),
}


@pytest.mark.parametrize("name, changes", ARRAY_CASES.values(), ids=ARRAY_CASES.keys())
def test_array_model_equals_simulation(name, changes):
    cfg = preset(name).replace(**changes)
    sim = step_cycles(cfg, random_weights(cfg), 6)
    assert array_steps(cfg, 6) == sim[1:]
    assert cycles_per_step(cfg) == pytest.approx(sum(sim[-2:]) / 2)  # a steady step may alternate (period 2)


#: run-time dimensions: (cell fields, the model's input, hidden, layers) run on a design for up to 32 x 32 x 2
RUNTIME_CASES = {
    "lstm 16x16x1 (ahead plan skipped)": (dict(cell="lstm"), 16, 16, 1),
    "lstm 8x16x2": (dict(cell="lstm"), 8, 16, 2),
    "gru reset-before 16x8x1": (dict(cell="gru", gru_reset_after=False), 16, 8, 1),
    "sru 16x16x1 (alternates)": (dict(cell="sru"), 16, 16, 1),
    "qrnn window 2 8x16x2": (dict(cell="qrnn", qrnn_window=2), 8, 16, 2),
    "rnn 32x32x2": (dict(cell="rnn"), 32, 32, 2),
}


@pytest.mark.parametrize("fields, n_in, n_hid, layers", RUNTIME_CASES.values(), ids=RUNTIME_CASES.keys())
def test_array_model_with_runtime_dimensions_equals_simulation(fields, n_in, n_hid, layers):
    """A model run on a larger design (its own layout, the design's program): the step ends with the run's last
    layer, a recurrent plan ahead of a layer the run does not have is skipped."""
    from rnnaccel.layout.runtime import model_on_design

    base = preset("lstm-small")
    design = base.replace(**fields, weights_in_rom=False, max_input_size=32, max_hidden_size=32, max_layers=2)
    run = model_on_design(base.replace(**fields, input_size=n_in, hidden_size=n_hid, num_layers=layers), design)
    assert modelled(run)
    sim = step_cycles(run, random_weights(run), 6)
    assert array_steps(run, 6) == sim[1:]


#: the random-config test's own draw (its module is a sibling in sim_tests)
_DRAW = settings(max_examples=4, deadline=None, derandomize=True, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip


def _variants():
    from test_random_config import VARIANT_IDS, VARIANTS

    return list(zip(VARIANTS, VARIANT_IDS))


@pytest.mark.parametrize("variant", [v for v, _ in _variants()], ids=[i for _, i in _variants()])
@_DRAW
@given(data=st.data())
def test_array_model_on_the_random_config_draw(variant, data):
    from test_random_config import valid_fields

    fields = data.draw(valid_fields(variant), label="fields")
    cfg = Config(**fields)
    if cfg.datapath != "array" or not modelled(cfg):
        event("not an array design the model covers")
        return
    model = array_steps(cfg, 8)
    if model is None:
        event("declined: step shorter than the input FIFO's refill")
        return
    event("compared")
    sim = step_cycles(cfg, random_weights(cfg), 8)
    assert model == sim[1:], cfg.to_toml()


_BATCHED_VARIANTS = [{"cell": "sru"}, {"cell": "qrnn", "qrnn_window": 1}, {"cell": "qrnn", "qrnn_window": 2}]


@pytest.mark.parametrize("variant", _BATCHED_VARIANTS, ids=["sru", "qrnn-1", "qrnn-2"])
@settings(_DRAW, max_examples=3)
@given(data=st.data())
def test_batched_model_on_the_random_config_draw(variant, data):
    """Batched steps (``time_steps`` > 1, weights streamed from the simulated flash) on the random-config test's
    own streamed draw, T forced: the model's full batch equals the simulator's, step for step, over two full
    batches with the input always there (the random-config sessions' batches follow their stalls and run
    lengths, so that test leaves batched configs to this one)."""
    from test_random_config import valid_fields

    from rnnaccel.numeric.config import ConfigError

    fields = data.draw(valid_fields(variant, streamed=True), label="fields")
    fields["time_steps"] = data.draw(st.sampled_from([2, 3, 4, 16]), label="time_steps")
    try:
        cfg = Config(**fields)
    except ConfigError as exc:
        event(f"refused: {str(exc).split(':')[0]}")
        return
    model = cycles_per_step(cfg)
    if model is None:
        event("declined by the model")
        return
    event("compared")
    T = cfg.time_steps
    sim = step_cycles(cfg, random_weights(cfg, seed=1), 2 * T)
    assert sim[T:] == [sim[-1]] * T, sim  # the second batch: every step the same share
    assert round(sim[-1], 2) == model, cfg.to_toml()
