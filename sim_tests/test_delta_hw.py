"""Delta-network mode on the array datapath (issue 19): bit-exact against the golden model's delta mode.

The accelerator built with delta mode (``cfg.delta_mode``, or ``delta=True`` with thresholds of 0) runs
seeded sessions of slowly varying inputs in the Amaranth simulator with random stalls; its outputs
must equal the integer golden model's, and its ``skipped`` counter (column tiles with a zero delta)
the units (circulant: k-segments, dense: columns) the golden model's references did not change in:
``WorkStats``' skipped block columns.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.flow.sim_amaranth import run_session_amaranth
from rnnaccel.flow.toolchain import require_gateware
from rnnaccel.interface.session import golden_session
from rnnaccel.layout.image import plans
from rnnaccel.numeric.config import ConfigError, preset
from rnnaccel.numeric.delta import reference_keys
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.numeric.model import random_weights


def slow_session(cfg, seed: int = 0) -> list[tuple]:
    """Slowly varying inputs (a random walk; one stretch repeated exactly), split over calls, a reset and a state."""
    rng = np.random.default_rng(seed)

    def seq(t, repeat=False):
        start = rng.uniform(-0.8, 0.8, size=(1, cfg.input_size))
        steps = rng.normal(scale=0.04, size=(t, cfg.input_size))
        steps[0] = 0
        if repeat:
            steps[:] = 0
        return quantize(np.clip(start + np.cumsum(steps, axis=0), -1.5, 1.5), cfg.q_state)

    h0 = quantize(rng.uniform(-0.6, 0.6, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
    c0 = (
        quantize(rng.uniform(-1, 1, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
        if cfg.cell in ("lstm", "sru", "qrnn")
        else None
    )
    return [
        ("reset",),
        ("run", seq(4)),
        ("run", seq(3, repeat=True)),
        ("reset",),
        ("run", seq(2)),
        ("state", h0, c0),
        ("run", seq(3)),
    ]


def expected_skips(cfg, weights, ops) -> tuple[int, int, int]:
    """(units skipped, their MACs, WorkStats' count) of the session, from the golden model's references: a
    unit of a matrix's columns (circulant: a k-segment, WorkStats' block column; dense: one column) is
    skipped in a step when none of its references changed."""
    model = IntegerModel(cfg, weights, delta=True)
    T = cfg.block_size  # the unit: k columns, or 1
    by_key = {(p.layer, p.name): p for p in plans(cfg)}
    tiles = macs = 0
    for kind, *args in ops:
        if kind == "reset":
            model.reset()
        elif kind == "state":
            model.set_state_raw(*args)
        else:
            for x in np.asarray(args[0], dtype=np.int64):
                before = model.state if model.state is not None else model.zero_state(1)
                before = [{k: v.copy() for k, v in st.items()} for st in before]
                model.run_raw(x[None])
                for layer, st in enumerate(model.state):
                    for name, rows, cols in cfg.matrices(layer):
                        ref = reference_keys(name)[0]
                        changed = np.zeros(cols, bool)
                        changed[: st[ref].shape[1]] = (st[ref] != before[layer][ref])[0]
                        plan = by_key[(layer, name)]
                        skipped = int((~changed.reshape(plan.cols // T, T).any(axis=1)).sum())
                        tiles += skipped
                        macs += skipped * T * rows
    return tiles, macs, model.stats.block_cols_skipped


def check_delta_session(cfg, seed=0, delta=None, stalls=True, weights_seed=7):
    weights = random_weights(cfg, seed=weights_seed)
    ops = slow_session(cfg, seed=seed)
    kw = {"idle": 0.2, "backpressure": 0.3, "seed": seed} if stalls else {}
    got, counters = run_session_amaranth(cfg, weights, ops, delta=delta, **kw)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    tiles, macs, block = expected_skips(cfg, weights, ops)
    assert counters[-1]["steps"] == 12
    assert counters[-1]["skipped"] == tiles
    assert counters[-1]["skipped_macs"] == macs
    assert tiles == block
    return counters, tiles


# (id, changes): every cell and variant the array supports, dense and circulant
CELLS = [
    ("lstm-k4-1x2", {"cell": "lstm"}),
    (
        "lstm-dense-L3-2x2",
        {"cell": "lstm", "block_size": 1, "lanes": 3, "hidden_size": 7, "input_size": 5, "pe_rows": 2, "pe_cols": 2},
    ),
    ("gru-after-k4-2x1", {"cell": "gru", "pe_rows": 2, "pe_cols": 1}),
    ("gru-after-dense-L4-1x1-2layer", {"cell": "gru", "block_size": 1, "lanes": 4, "pe_cols": 1, "num_layers": 2}),
    ("gru-before-k4-1x2-2layer", {"cell": "gru", "gru_reset_after": False, "num_layers": 2}),
    (
        "gru-before-dense-L2-2x3",
        {"cell": "gru", "gru_reset_after": False, "block_size": 1, "lanes": 2, "pe_rows": 2, "pe_cols": 3},
    ),
    ("sru-k4-1x2", {"cell": "sru"}),
    (
        "sru-proj-dense-L4-2x1",
        {"cell": "sru", "input_size": 12, "block_size": 1, "lanes": 4, "pe_rows": 2, "pe_cols": 1},
    ),
    ("qrnn-w2-k4-2x2-2layer", {"cell": "qrnn", "num_layers": 2, "pe_rows": 2, "pe_cols": 2}),
    (
        "qrnn-w1-dense-L4-1x1",
        {"cell": "qrnn", "qrnn_window": 1, "block_size": 1, "lanes": 4, "pe_cols": 1, "hidden_size": 6},
    ),
    (
        "rnn-k8-1x1-2layer",
        {"cell": "rnn", "num_layers": 2, "block_size": 8, "lanes": 8, "pe_cols": 1, "hidden_size": 12},
    ),
    ("rnn-dense-L1-1x1", {"cell": "rnn", "block_size": 1, "lanes": 1, "pe_cols": 1}),
]

#: (id, delta_threshold, delta_threshold_h): small thresholds skip some columns, large ones most
THRESHOLDS = [("small", 0.03, None), ("large", 0.5, 0.25)]


@pytest.mark.parametrize("th_id,th,th_h", THRESHOLDS, ids=[t[0] for t in THRESHOLDS])
@pytest.mark.parametrize("case_id,changes", CELLS, ids=[c[0] for c in CELLS])
def test_delta_bit_exact_with_stalls(case_id, changes, th_id, th, th_h):
    cfg = preset("tiny").replace(**changes, delta_threshold=th, delta_threshold_h=th_h)
    require_gateware(cfg)
    _, tiles = check_delta_session(cfg, seed=3)
    assert tiles > 0


@pytest.mark.parametrize(
    "case_id,changes",
    [CELLS[0], CELLS[3], CELLS[5], CELLS[8]],
    ids=[CELLS[i][0] for i in (0, 3, 5, 8)],
)
def test_threshold_zero_is_exact(case_id, changes):
    """The delta hardware at threshold 0 (built with ``delta=True``) gives the normal golden model's outputs
    bit for bit (``cfg.delta_mode`` is off, so the golden session is the normal one); it skips only the
    tiles whose values did not change at all (the golden model's count)."""
    cfg = preset("tiny").replace(**changes)
    assert not cfg.delta_mode
    check_delta_session(cfg, seed=5, delta=True)


def test_skipped_columns_cost_no_cycles():
    """An input held constant with a threshold the hidden states stay under: every matrix sweep is empty
    after the first step, so a step costs its delta passes, one cycle per row round, latency and the gate
    phases, far below the dense schedule; the counters see every tile skipped."""
    cfg = preset("tiny").replace(cell="gru", pe_rows=2, pe_cols=1, delta_threshold=0.05, delta_threshold_h=4.0)
    weights = random_weights(cfg, seed=1)
    x = quantize(np.full((6, cfg.input_size), 0.4), cfg.q_state)
    ops = [("reset",), ("run", x[:2]), ("run", x[2:])]
    got, counters = run_session_amaranth(cfg, weights, ops)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    dense_got, dense = run_session_amaranth(cfg.replace(delta_threshold=0, delta_threshold_h=None), weights, ops)
    ps = plans(cfg)
    tiles_per_step = sum(p.bc for p in ps)
    # steps 3-6: nothing changes (step 1 propagates x; h moves by less than 4.0 from 0)
    assert counters[1]["skipped"] - counters[0]["skipped"] == 4 * tiles_per_step
    delta_step = (counters[1]["cycles"] - counters[0]["cycles"]) / 4
    dense_step = (dense[1]["cycles"] - dense[0]["cycles"]) / 4
    # the recurrent plan is on the step's critical path (the input projection runs under the gate phase):
    # its sweep is replaced by the delta pass (rounds_c + 1), one cycle per row round (pe_rows with the
    # serializer's gap) and one more cycle of latency
    u = ps[1]
    assert delta_step <= dense_step - u.sweep_cycles + u.rounds_c + 2 + u.rounds_r * cfg.pe_rows
    assert delta_step < 0.75 * dense_step


def test_reset_and_state_clear_references_and_memories():
    """After a reset (and with an initial state) the golden model starts from zero references and memories:
    the hardware does too (a run whose first input equals the last one before the reset is still propagated)."""
    cfg = preset("tiny").replace(cell="lstm", delta_threshold=0.02)
    weights = random_weights(cfg, seed=2)
    x = quantize(np.full((3, cfg.input_size), -0.3), cfg.q_state)
    h0 = np.zeros((cfg.num_layers, cfg.hidden_size), np.int64)
    ops = [("reset",), ("run", x), ("reset",), ("run", x), ("state", h0, h0), ("run", x)]
    got, _ = run_session_amaranth(cfg, weights, ops, idle=0.3, seed=1)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[0], got[1])


def test_serial_datapath_refuses_delta():
    cfg = preset("lstm-small-ice40").replace(delta_threshold=0.05)
    with pytest.raises(ConfigError, match="delta mode is built for datapath = 'array' with one core only"):
        require_gateware(cfg)
    require_gateware(preset("tiny").replace(delta_threshold=0.05))


@pytest.mark.slow
@pytest.mark.parametrize("stacked", [False, True])
@pytest.mark.parametrize("case_id,changes", CELLS, ids=[c[0] for c in CELLS])
def test_delta_all_cells_runtime_weights_slow(case_id, changes, stacked):
    """Every cell with run-time weights and per-gate or stacked projection memories, three thresholds."""
    for th in (0.01, 0.1, 1.0):
        cfg = preset("tiny").replace(**changes, delta_threshold=th, weights_in_rom=False, stacked_projections=stacked)
        check_delta_session(cfg, seed=11)


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])  # suite budget
def test_delta_cocotb(simulator, tmp_path):
    """The generated Verilog of a delta-mode GRU in Icarus and Verilator: bit-exact, the skipped counter."""
    from rnnaccel.flow.backends import run_session

    cfg = preset("tiny").replace(cell="gru", num_layers=2, pe_rows=2, pe_cols=1, delta_threshold=0.05)
    weights = random_weights(cfg, seed=7)
    ops = slow_session(cfg, seed=2)
    got, counters = run_session(cfg, weights, ops, simulator, cache_dir=tmp_path, idle=0.2, backpressure=0.2, seed=3)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    tiles, macs, block = expected_skips(cfg, weights, ops)
    assert counters[-1]["skipped"] == tiles == block > 0
    assert counters[-1]["skipped_macs"] == macs
