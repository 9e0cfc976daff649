"""Batched time steps (``time_steps``, issue 13; Sung and Park): a weight fetched once per batch of up to T steps.

The config rules; sessions bit-exact with the golden model (which does not change: integer accumulation is exact)
in the Amaranth simulator, with input gaps and output back-pressure, over sequences whose lengths are not
multiples of T and are split across calls (a batch is as many steps as the input stream holds when it starts);
the generated Verilog in Icarus and Verilator; the steps counter and the cycles of full batches.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.explore.cycle_model import cycles_per_step
from rnnaccel.flow.backends import run_session
from rnnaccel.flow.sim_amaranth import run_session_amaranth, step_cycles
from rnnaccel.interface.session import golden_session
from rnnaccel.numeric.config import ConfigError, preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights

from sessions import assert_full_session_matches, full_session

#: the serial SRU of tiny (8 x 8, k = 4, 2 lanes) with its weights streamed from the simulated flash
BASE = preset("tiny").replace(
    cell="sru", datapath="serial", lanes=2, pe_cols=1, weight_source="flash", weights_in_rom=True, name="batched"
)

#: (changes on BASE): the SRU with its x highway (input = hidden) and with its s projection (padded sizes), the
#: QRNN with windows 1 and 2; 1 to 3 layers; batches of 2, 3, 4, 5 and 16
CASES = {
    "sru-T4": dict(time_steps=4),
    "sru-T3-2layer": dict(time_steps=3, num_layers=2),
    "sru-s-T5-2layer-odd": dict(time_steps=5, input_size=5, hidden_size=6, num_layers=2, lanes=4),
    "qrnn1-T16-k8-L8": dict(cell="qrnn", qrnn_window=1, time_steps=16, block_size=8, lanes=8, hidden_size=12),
    "qrnn1-T2-3layer-L1": dict(cell="qrnn", qrnn_window=1, time_steps=2, lanes=1, num_layers=3, input_size=7),
    # a window-2 QRNN: [x_t; x_{t-1}] (h for layer 2+) carried across batches and chained inside one
    "qrnn2-T4-2layer": dict(cell="qrnn", qrnn_window=2, time_steps=4, num_layers=2, input_size=12),
    "qrnn2-T3-3layer-L4": dict(cell="qrnn", qrnn_window=2, time_steps=3, num_layers=3, lanes=4, hidden_size=4),
}


def _long_session(cfg, seed):
    """Runs of 7, 1 and 18 steps: partial batches, a one-step call, and more steps than the longest batch."""
    rng = np.random.default_rng(seed)

    def seq(t):
        return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)

    return [("reset",), ("run", seq(7)), ("run", seq(1)), ("run", seq(18))]


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    "changes,field",
    [
        ({"time_steps": 0}, "time_steps"),
        ({"time_steps": 65}, "time_steps"),
        ({"time_steps": 4, "weight_source": "onchip"}, "weight_source"),
        ({"time_steps": 4, "cell": "lstm"}, "cell"),
        ({"time_steps": 4, "cell": "rnn"}, "cell"),
    ],
)
def test_time_steps_rules(changes, field):
    with pytest.raises(ConfigError) as info:
        BASE.replace(**changes)
    assert info.value.field == field


def test_time_steps_written_only_when_set():
    assert "time_steps" not in BASE.to_dict()
    cfg = BASE.replace(time_steps=4)
    assert cfg.to_dict()["time_steps"] == 4
    assert type(cfg).from_dict(cfg.to_dict()) == cfg


# ----------------------------------------------------------------------------- bit-exact sessions
@pytest.mark.parametrize("name", CASES)
def test_batched_sessions_bit_exact_with_stalls(name):
    cfg = BASE.replace(**CASES[name])
    weights = random_weights(cfg, seed=11)
    ops = full_session(cfg, seed=5)
    got, counters = run_session_amaranth(cfg, weights, ops, idle=0.3, backpressure=0.3, seed=2)
    assert_full_session_matches(got, golden_session(cfg, weights, ops), counters)
    ops = _long_session(cfg, 3)
    got, counters = run_session_amaranth(cfg, weights, ops, idle=0.1, backpressure=0.2, seed=4)
    want = golden_session(cfg, weights, ops)
    assert [g.shape[0] for g in got] == [w.shape[0] for w in want] == [7, 1, 18]
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert [c["steps"] for c in counters] == [7, 8, 26]


@pytest.mark.cocotb
@pytest.mark.parametrize(
    "simulator,name", [("icarus", "sru-T3-2layer"), ("icarus", "sru-s-T5-2layer-odd"), ("verilator", "qrnn1-T16-k8-L8")]
)
def test_batched_verilog_bit_exact(simulator, name, tmp_path):
    """The generated Verilog (the accelerator and the flash model holding the stream) in Icarus and Verilator."""
    cfg = BASE.replace(**CASES[name])
    weights = random_weights(cfg, seed=17)
    ops = full_session(cfg, seed=6)
    got, counters = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path, idle=0.2, backpressure=0.2, seed=5)
    assert_full_session_matches(got, golden_session(cfg, weights, ops), counters)


# ----------------------------------------------------------------------------- batches and cycles
def test_full_batches_share_one_weight_fetch():
    """With the input always there, steps come in batches of T (the steps counter moves by T at once) and a
    weight-bound design runs each step in fewer cycles than with T = 1 (each weight streamed once per batch;
    the figures are scripts/bench_time_steps.py's)."""
    cfg = BASE.replace(input_size=16, hidden_size=16, lanes=4)
    weights = random_weights(cfg, seed=1)
    one = step_cycles(cfg, weights, 2)
    four = step_cycles(cfg.replace(time_steps=4), weights, 8)
    assert len(four) == 8 and len(set(four)) == 1, four  # two whole batches, the same length
    assert four[0] < one[-1]


def test_host_link_run_fills_its_batches():
    """A RUN through the host link's frame engine (its walker feeds a 16-bit word every two cycles, slower than the
    load): bit-exact, and the batches fill (the load waits up to ``BATCH_GAP`` cycles for the next step), so a
    weight-bound design spends far fewer counted cycles than with T = 1."""
    from rnnaccel.boards.driver import AmaranthTransport, LinkClient
    from rnnaccel.flow.rtl import design_hash
    from rnnaccel.hw.hostlink import FrameEngine

    cfg1 = BASE.replace(input_size=16, hidden_size=16, lanes=4)
    weights = random_weights(cfg1, seed=3)
    rng = np.random.default_rng(1)
    ops = [("reset",), ("run", quantize(rng.uniform(-1, 1, size=(12, cfg1.input_size)), cfg1.q_state))]
    cycles = {}
    for T in (1, 4):
        cfg = cfg1.replace(time_steps=T)
        eng = FrameEngine(cfg, weights, timeout_cycles=4000, clk_freq=1_000_000, design_hash=design_hash(cfg, weights))
        dev = LinkClient(AmaranthTransport(eng), cfg)
        got = dev.session(ops)
        np.testing.assert_array_equal(got[0], golden_session(cfg, weights, ops)[0])
        counters = dev.counters()
        assert counters["steps"] == 12 and not counters["error"]
        cycles[T] = counters["cycles"]
    assert cycles[4] < 0.5 * cycles[1], cycles


@pytest.mark.parametrize("timing", [None, {"bytes_per_cycle": 1, "latency": 3}], ids=["flash", "1"])
@pytest.mark.parametrize("name", ["sru-T3-2layer", "sru-s-T5-2layer-odd", "qrnn1-T16-k8-L8", "qrnn2-T3-3layer-L4"])
def test_cycle_model_equals_simulation(name, timing):
    """The analytic model of a full batch (issue 18's cycle model) against the simulator's full batches."""
    cfg = BASE.replace(**CASES[name])
    T = cfg.time_steps
    sim = step_cycles(cfg, random_weights(cfg, seed=1), 2 * T, weight_timing=timing)
    assert len(set(sim)) == 1, sim  # two full batches of the same length
    assert round(sim[-1], 2) == cycles_per_step(cfg, timing)
