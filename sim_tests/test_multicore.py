"""Multi-core designs (issue 14): config fields, MultiCore in the Amaranth simulator against the golden model.

A. ``cores`` / ``core_mode``: one-line ConfigErrors, TOML bytes unchanged by default.
B. programs (multi-programming): 2-3 independent cores with different cells and sizes, streams at once,
   random input idle and output back-pressure, bit-exact against one golden model per core.
C. layers (layer pipeline): stacks of every cell over 2-3 cores, L = N and L > N, random stalls on the
   host streams and on every link between cores, bit-exact against the stack's ordinary golden model.
D. a command for a core that does not exist: error bit, nothing changed.
E. helpers (helper cores): every core a row slice of every layer, the h slices exchanged after each
   layer; every cell but the reset-before GRU, 2-4 cores, stalls on the host streams, bit-exact against
   the stack's golden model in the Amaranth simulator and (Icarus) the generated Verilog.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnnaccel.flow.backends import run_programs_session, run_session
from rnnaccel.flow.sim_multicore import run_layers_amaranth, run_programs_amaranth
from rnnaccel.flow.toolchain import require_gateware
from rnnaccel.interface.multicore import (
    BROADCAST,
    helper_models,
    layer_models,
    layer_state_commands,
    layers_golden,
    multicore_command_fields,
    pack_multicore_command,
    programs_golden,
)
from rnnaccel.numeric.config import Config, ConfigError, preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import check_weights, random_weights

TINY = preset("tiny")


# ----------------------------------------------------------------------------- A. config
@pytest.mark.parametrize(
    "changes, field, words",
    [
        ({"cores": 0}, "cores", "between 1 and 16"),
        ({"cores": 17}, "cores", "between 1 and 16"),
        ({"cores": "2"}, "cores", "integer"),
        ({"core_mode": "threads"}, "core_mode", "must be one of programs, layers, helpers"),
        ({"core_mode": "helpers", "cores": 2, "gru_reset_after": False, "cell": "gru"}, "core_mode", "r*h"),
        ({"core_mode": "helpers", "cores": 4}, "core_mode", "must be a multiple of 16"),
        ({"core_mode": "helpers", "cores": 2, "datapath": "serial", "pe_cols": 1}, "core_mode", "'array'"),
        ({"core_mode": "helpers", "cores": 2, "row_slices": 2}, "row_slices", "leave it 1"),
        ({"row_slices": 2, "row_slice": 2}, "row_slice", "between 0 and row_slices - 1"),
        ({"row_slices": 17}, "row_slices", "between 1 and 16"),
        ({"row_slices": 2, "cores": 2}, "cores", "is one core"),
        ({"row_slices": 4}, "row_slices", "must be a multiple of 16"),
        ({"core_mode": "layers", "cores": 3, "num_layers": 2}, "cores", "at most num_layers (2)"),
    ],
)
def test_core_fields_one_line_errors(changes, field, words):
    with pytest.raises(ConfigError) as info:
        TINY.replace(**changes)
    msg = str(info.value)
    assert info.value.field == field and words in msg and "\n" not in msg


def test_core_fields_written_only_when_not_default():
    assert "cores" not in TINY.to_toml() and "core_mode" not in TINY.to_toml()
    assert TINY.replace(cores=1, core_mode="programs").hash == TINY.hash
    two = TINY.replace(cores=2)
    assert "cores = 2" in two.to_toml() and "core_mode" not in two.to_toml()
    lay = TINY.replace(num_layers=3, cores=2, core_mode="layers")
    assert 'core_mode = "layers"' in lay.to_toml()
    assert Config.from_toml(lay.to_toml()) == lay and len({TINY.hash, two.hash, lay.hash}) == 3


def test_layer_groups_and_core_configs():
    cfg = TINY.replace(cell="gru", input_size=5, num_layers=5, cores=3, core_mode="layers")
    assert cfg.core_layer_groups() == [range(0, 2), range(2, 4), range(4, 5)]
    subs = layer_models(cfg, random_weights(cfg, 1))
    assert [(c.num_layers, c.input_size, c.cores) for c, _ in subs] == [(2, 5, 1), (2, 8, 1), (1, 8, 1)]
    for c, w in subs:
        check_weights(c, w)
    assert TINY.replace(num_layers=2).core_layer_groups() == [range(0, 2)]


def test_one_core_flow_refuses_several_cores():
    """The one-core entry points refuse several cores in one line; run_session, generate and build take them."""
    with pytest.raises(ConfigError, match="this entry point takes one core"):
        require_gateware(TINY.replace(cores=2))
    require_gateware(TINY.replace(cores=2), multicore=True)
    with pytest.raises(ConfigError, match="one core of a helpers design"):
        require_gateware(TINY.replace(row_slices=2, row_slice=1))


def test_programs_design_refuses_an_ordinary_session():
    cfg = TINY.replace(cores=2)
    with pytest.raises(ValueError, match="run_programs_session"):
        run_session(cfg, random_weights(cfg, 0), [("reset",)], "amaranth")


def test_multicore_command_word_packing():
    cfgs = [TINY, TINY.replace(block_size=1, lanes=3)]
    fields = multicore_command_fields(cfgs)
    assert list(fields) == ["op", "sel", "addr", "data", "core"]
    below = 4 + 16 + 24 + fields["data"]
    assert pack_multicore_command(cfgs, 2, 3, 1, 5, 7) == 3 | 1 << 4 | 5 << 20 | 7 << 44 | 2 << below
    with pytest.raises(ValueError, match="core"):
        pack_multicore_command(cfgs, 256, 0)
    with pytest.raises(ValueError, match="does not fit"):
        pack_multicore_command(cfgs, 0, 0, data=1 << fields["data"])


# ----------------------------------------------------------------------------- sessions
def _seq(rng, cfg, t):
    return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)


def _state(rng, cfg, zero_layers=()):
    h = quantize(rng.uniform(-0.8, 0.8, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
    h[list(zero_layers)] = 0
    c = (
        quantize(rng.uniform(-1.5, 1.5, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
        if cfg.cell in ("lstm", "sru", "qrnn")
        else None
    )
    return h, c


def programs_session(cfgs, seed=0):
    """Every core at once (twice: state carried), one core alone after a reset, then initial states."""
    rng = np.random.default_rng(seed)
    n = len(cfgs)
    ops = [("reset", i) for i in range(n)]
    ops.append(("run", {i: _seq(rng, c, 3 + i % 2) for i, c in enumerate(cfgs)}))
    ops.append(("run", {i: _seq(rng, c, 2) for i, c in enumerate(cfgs)}))
    ops += [("reset", n - 1), ("run", {n - 1: _seq(rng, cfgs[-1], 2)})]
    ops.append(("state", 0, *_state(rng, cfgs[0])))
    ops.append(("run", {i: _seq(rng, c, 2) for i, c in enumerate(cfgs)}))
    return ops


def layers_session(cfg, seed=0):
    rng = np.random.default_rng(seed)
    ends = [g.start - 1 for g in cfg.core_layer_groups()[1:]] if cfg.cell == "qrnn" and cfg.qrnn_window == 2 else []
    return [
        ("reset",),
        ("run", _seq(rng, cfg, 4)),
        ("run", _seq(rng, cfg, 2)),
        ("reset",),
        ("run", _seq(rng, cfg, 2)),
        ("state", *_state(rng, cfg, ends)),
        ("run", _seq(rng, cfg, 3)),
    ]


def _assert_programs_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert sorted(g) == sorted(w)
        for core in w:
            np.testing.assert_array_equal(g[core], w[core], err_msg=f"core {core}")


# ----------------------------------------------------------------------------- B. programs
PROGRAM_CASES = [
    ("lstm+gru", [("tiny", {}), ("tiny", {"cell": "gru", "input_size": 5, "hidden_size": 12})]),
    (
        "sru+qrnn2+rnn",
        [
            ("tiny", {"cell": "sru", "hidden_size": 12}),
            ("tiny", {"cell": "qrnn"}),
            ("tiny", {"cell": "rnn", "num_layers": 2, "pe_rows": 2}),
        ],
    ),
    (
        "grubefore+lstm2-ram+serial",
        [
            ("tiny", {"cell": "gru", "gru_reset_after": False, "block_size": 1, "lanes": 3}),
            ("tiny", {"num_layers": 2, "weights_in_rom": False}),
            (
                "tiny",
                {
                    "cell": "rnn",
                    "datapath": "serial",
                    "pe_cols": 1,
                    "block_size": 4,
                    "lanes": 2,
                    "input_size": 8,
                    "hidden_size": 8,
                },
            ),
        ],
    ),
]


@pytest.mark.parametrize("name, specs", PROGRAM_CASES, ids=[c[0] for c in PROGRAM_CASES])
def test_programs_bit_exact_with_stalls(name, specs):
    cfgs = [preset(p).replace(**ch) for p, ch in specs]
    models = [(c, random_weights(c, 10 + i)) for i, c in enumerate(cfgs)]
    ops = programs_session(cfgs, seed=len(name))
    got, info = run_programs_amaranth(models, ops, idle=0.3, backpressure=0.3, seed=7)
    _assert_programs_equal(got, programs_golden(models, ops))
    # the first run streams every core at once: their output windows overlap in time
    when = info["runs"][0]["when"]
    assert len(when) == len(cfgs)
    assert max(w[0] for w in when.values()) < min(w[-1] for w in when.values())
    assert info["runs"][-1]["status"] & 0b110 == 0b010  # idle, no error


# ----------------------------------------------------------------------------- C. layers
LAYER_CASES = [
    ("lstm-L2-N2", {"num_layers": 2, "cores": 2}),
    ("lstm-L3-N2-2x2", {"num_layers": 3, "cores": 2, "pe_rows": 2, "pe_cols": 2}),
    ("gru-after-L3-N3", {"cell": "gru", "num_layers": 3, "cores": 3, "input_size": 5}),
    ("gru-before-L3-N2", {"cell": "gru", "gru_reset_after": False, "num_layers": 3, "cores": 2}),
    ("sru-L2-N2-proj", {"cell": "sru", "num_layers": 2, "cores": 2, "input_size": 12}),
    ("qrnn2-L3-N2", {"cell": "qrnn", "num_layers": 3, "cores": 2}),
    ("qrnn1-L2-N2", {"cell": "qrnn", "qrnn_window": 1, "num_layers": 2, "cores": 2}),
    ("rnn-L5-N3", {"cell": "rnn", "num_layers": 5, "cores": 3}),
    ("lstm-serial-L2-N2", {"num_layers": 2, "cores": 2, "datapath": "serial", "pe_cols": 1, "lanes": 2}),
]


@pytest.mark.parametrize("name, changes", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layers_bit_exact_with_stalls(name, changes):
    cfg = TINY.replace(core_mode="layers", **changes)
    w = random_weights(cfg, 3)
    ops = layers_session(cfg, seed=len(name))
    got, info = run_layers_amaranth(cfg, w, ops, idle=0.25, backpressure=0.3, link_stall=0.3, seed=5)
    want = layers_golden(cfg, w, ops)
    assert len(got) == len(want)
    for g, ww in zip(got, want):
        np.testing.assert_array_equal(g, ww)
    assert info["runs"][-1]["core_steps"] == [11] * cfg.cores
    assert info["runs"][-1]["status"] & 0b110 == 0b010


def test_layers_direct_links_no_stalls():
    cfg = TINY.replace(cell="gru", num_layers=2, cores=2, core_mode="layers")
    w = random_weights(cfg, 4)
    ops = layers_session(cfg, seed=1)
    got, _ = run_layers_amaranth(cfg, w, ops, link_depth=0)
    for g, ww in zip(got, layers_golden(cfg, w, ops)):
        np.testing.assert_array_equal(g, ww)


def test_layers_qrnn2_boundary_state_refused():
    cfg = TINY.replace(cell="qrnn", num_layers=2, cores=2, core_mode="layers")
    h = np.ones((2, 8), dtype=np.int64)
    with pytest.raises(ValueError, match="x_\\(t-1\\), which no command writes"):
        layer_state_commands(cfg, h, None)
    h[0] = 0
    assert all(core in (0, 1) for core, *_ in layer_state_commands(cfg, h, None))


# ----------------------------------------------------------------------------- D. missing core
def test_command_for_missing_core_sets_error_and_changes_nothing():
    from amaranth.sim import Simulator

    from rnnaccel.hw.multicore import MultiCore
    from rnnaccel.interface.commands import OP

    cfg = TINY
    w = random_weights(cfg, 2)
    dut = MultiCore([(cfg, w), (cfg, w)], "programs")
    x = _seq(np.random.default_rng(0), cfg, 2)
    seen = {}

    async def bench(ctx):
        async def command(core, op, sel=0, addr=0, data=0):
            ctx.set(dut.i_cmd.payload, {"core": core, "op": op, "sel": sel, "addr": addr, "data": data})
            ctx.set(dut.i_cmd.valid, 1)
            await ctx.tick().until(dut.i_cmd.ready)
            ctx.set(dut.i_cmd.valid, 0)
            for _ in range(40):
                await ctx.tick()

        await command(BROADCAST, OP["RESET_STATE"])
        await command(2, OP["WRITE_VEC"], 0, 0, 1234)  # no core 2
        seen["status"] = ctx.get(dut.status)
        out = []
        ctx.set(dut.o_h.ready, 1)
        for v in x.reshape(-1):
            ctx.set(dut.i_x.payload, {"core": 1, "data": int(v)})
            ctx.set(dut.i_x.valid, 1)
            await ctx.tick().until(dut.i_x.ready)
        ctx.set(dut.i_x.valid, 0)
        while len(out) < x.size:
            if ctx.get(dut.o_h.valid):
                out.append((int(ctx.get(dut.o_h.payload.core)), int(ctx.get(dut.o_h.payload.data))))
            await ctx.tick()
        seen["out"] = out
        await command(0, OP["CLEAR_COUNTERS"])
        seen["cleared"] = ctx.get(dut.status)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["status"] & 0b100 and seen["status"] & 0b010
    assert {c for c, _ in seen["out"]} == {1}
    want = programs_golden([(cfg, w), (cfg, w)], [("reset", 1), ("run", {1: x})])[0][1]
    np.testing.assert_array_equal(np.array([v for _, v in seen["out"]]).reshape(want.shape), want)
    assert not seen["cleared"] & 0b100


# ----------------------------------------------------------------------------- D. the generated Verilog
# Verilator in the slow tier: the MultiCore Verilog in Verilator is covered in CI by test_cocotb_multicore.py
SIMULATORS = ["icarus", pytest.param("verilator", marks=pytest.mark.slow)]


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_layers_verilog_bit_exact(simulator, tmp_path):
    """A layer pipeline through the ordinary flow (``run_session``) on the generated Verilog: two cores,
    run-time weights loaded by commands, an initial state, random idle and back-pressure."""
    cfg = TINY.replace(cell="gru", num_layers=3, cores=2, core_mode="layers", weights_in_rom=False)
    w = random_weights(cfg, 8)
    ops = layers_session(cfg, seed=3)
    got, counters = run_session(cfg, w, ops, simulator, cache_dir=tmp_path, idle=0.3, backpressure=0.3, seed=4)
    want = layers_golden(cfg, w, ops)
    assert len(got) == len(want) == 4
    for g, ww in zip(got, want):
        np.testing.assert_array_equal(g, ww)
    assert [c["steps"] for c in counters] == [4, 6, 8, 11]  # the last core's step counter (a reset keeps it)


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", SIMULATORS)
def test_programs_verilog_bit_exact(simulator, tmp_path):
    """Multi-programming on the generated Verilog: an LSTM in ROM and a GRU loaded by commands, the two
    streams interleaved at random, every core's outputs and step counter checked."""
    cfgs = [TINY, TINY.replace(cell="gru", input_size=5, hidden_size=12, weights_in_rom=False)]
    models = [(c, random_weights(c, 20 + i)) for i, c in enumerate(cfgs)]
    ops = programs_session(cfgs, seed=9)
    got, counters = run_programs_session(models, ops, simulator, cache_dir=tmp_path, idle=0.2, backpressure=0.3, seed=6)
    _assert_programs_equal(got, programs_golden(models, ops))
    assert counters[0]["core_steps"] == [3, 4] and counters[1]["core_steps"] == [5, 6]


# ----------------------------------------------------------------------------- generate (issue 14)
def test_generate_multicore_layers_and_programs(tmp_path, capsys):
    """``rnnaccel generate`` of a layers config and of several model directories: the MultiCore's Verilog
    (byte-identical to what the simulators run, and from run to run), per-core memory images, configs and
    headers equal to the one-core generate's, and a manifest with the addressed command word."""
    import json

    from cli_helpers import one_line_error, run_cli
    from rnnaccel.flow.rtl import accelerator_verilog, programs_verilog
    from rnnaccel.numeric.model import save_model

    lay = TINY.replace(num_layers=3, cores=2, core_mode="layers", weights_in_rom=False)
    w = random_weights(lay, seed=4)
    save_model(tmp_path / "lay", lay, w)
    code, out, _ = run_cli(["generate", tmp_path / "lay", "-o", tmp_path / "g_lay"], capsys)
    assert code == 0 and "2 cores (layers" in out
    g = tmp_path / "g_lay"
    assert (g / "rnnaccel_top.v").read_text() == accelerator_verilog(lay, w)
    m = json.loads((g / "manifest.json").read_text())
    assert m["mode"] == "layers" and [c["core"] for c in m["cores"]] == [0, 1]
    fields = m["command_fields"]
    assert set(fields) == {"op", "sel", "addr", "data", "core"}
    assert fields["core"]["offset"] == 44 + fields["data"]["width"] and fields["data"]["offset"] == 44
    assert [c["config"]["num_layers"] for c in m["cores"]] == [2, 1]
    assert Config.load(g / "rnnaccel.toml") == lay
    for i, (ci, wi) in enumerate(layer_models(lay, w)):
        save_model(tmp_path / f"one{i}", ci, wi)
        run_cli(["generate", tmp_path / f"one{i}", "-o", tmp_path / f"g_one{i}"], capsys)
        for f in sorted((tmp_path / f"g_one{i}" / "mem").iterdir()):
            assert (g / f"core{i}" / "mem" / f.name).read_bytes() == f.read_bytes(), f
        assert Config.load(g / f"core{i}" / "rnnaccel.toml") == ci
        assert (g / f"core{i}" / "rnnaccel.h").is_file()
    run_cli(["generate", tmp_path / "lay", "-o", tmp_path / "g_lay2"], capsys)
    assert (tmp_path / "g_lay2" / "rnnaccel_top.v").read_bytes() == (g / "rnnaccel_top.v").read_bytes()

    a, b = TINY, TINY.replace(cell="gru", hidden_size=4)
    models = [(a, random_weights(a, seed=1)), (b, random_weights(b, seed=2))]
    for i, (c, wi) in enumerate(models):
        save_model(tmp_path / f"p{i}", c, wi)
    code, out, _ = run_cli(["generate", tmp_path / "p0", tmp_path / "p1", "-o", tmp_path / "g_prog"], capsys)
    assert code == 0 and "2 cores (programs)" in out
    assert (tmp_path / "g_prog" / "rnnaccel_top.v").read_text() == programs_verilog(models)
    m = json.loads((tmp_path / "g_prog" / "manifest.json").read_text())
    assert m["mode"] == "programs" and m["streams"]["o_h"]["words_per_step"] == [8, 4]
    assert [c["config"]["cell"] for c in m["cores"]] == ["lstm", "gru"]
    code, _, err = run_cli(["generate", tmp_path / "lay", tmp_path / "p0", "-o", tmp_path / "bad"], capsys)
    assert code != 0
    one_line_error(err, "cores = 2", "one-core models")


# ----------------------------------------------------------------------------- E. helpers
HELPER_CASES = [
    ("lstm-L1-N2", {"cores": 2}),
    ("lstm-L2-N2-2x2", {"num_layers": 2, "cores": 2, "pe_rows": 2, "pe_cols": 2}),
    ("gru-after-L2-N2-x5", {"cell": "gru", "num_layers": 2, "cores": 2, "input_size": 5}),
    ("sru-L2-N2-proj", {"cell": "sru", "num_layers": 2, "cores": 2, "input_size": 12}),
    ("sru-L1-N2-highway", {"cell": "sru", "cores": 2}),
    ("qrnn2-L3-N2-stacked", {"cell": "qrnn", "num_layers": 3, "cores": 2, "stacked_projections": True}),
    ("qrnn1-L2-N2", {"cell": "qrnn", "qrnn_window": 1, "num_layers": 2, "cores": 2}),
    ("rnn-L2-N4-h16", {"cell": "rnn", "num_layers": 2, "cores": 4, "hidden_size": 16}),
    ("lstm-dense-L2-N2", {"num_layers": 2, "cores": 2, "block_size": 1, "lanes": 2, "pe_rows": 2, "pe_cols": 1}),
    ("gru-N3-h24-ram", {"cell": "gru", "cores": 3, "hidden_size": 24, "weights_in_rom": False}),
]


@pytest.mark.parametrize("name, changes", HELPER_CASES, ids=[c[0] for c in HELPER_CASES])
def test_helpers_bit_exact_with_stalls(name, changes):
    cfg = TINY.replace(core_mode="helpers", **changes)
    w = random_weights(cfg, 6)
    ops = layers_session(cfg, seed=len(name))
    got, info = run_layers_amaranth(cfg, w, ops, idle=0.25, backpressure=0.3, seed=8)
    want = layers_golden(cfg, w, ops)
    assert len(got) == len(want)
    for g, ww in zip(got, want):
        np.testing.assert_array_equal(g, ww)
    assert info["runs"][-1]["core_steps"] == [11] * cfg.cores  # every core ran every step
    assert info["runs"][-1]["status"] & 0b110 == 0b010


def test_helper_core_configs_and_weights():
    """Each core: the whole model, its slice of every gate's rows (plans, weight tiles, biases)."""
    from rnnaccel.layout.image import bias_image, plans, weight_banks

    cfg = TINY.replace(hidden_size=16, cores=2, core_mode="helpers", pe_rows=2)
    w = random_weights(cfg, 1)
    cores = helper_models(cfg, w)
    assert [(c.row_slices, c.row_slice, c.row_hidden, c.row_offset, c.cores) for c, _ in cores] == [
        (2, 0, 8, 0, 1),
        (2, 1, 8, 8, 1),
    ]
    one = cfg.replace(cores=1, core_mode="programs")
    for c, _ in cores:
        assert [(p.rows, p.cols) for p in plans(c)] == [(r // 2, k) for r, k in ((p.rows, p.cols) for p in plans(one))]
    # the two cores' biases are the whole model's, gate by gate
    b0, b1, b = (bias_image(c, w).reshape(-1, 8) for c in (cores[0][0], cores[1][0], one))
    np.testing.assert_array_equal(np.concatenate([b0, b1], axis=1), b.reshape(-1, 16))
    assert not np.array_equal(weight_banks(cores[0][0], w)[0][0], weight_banks(cores[1][0], w)[0][0])
    assert "row_slices" not in cfg.to_toml() and "row_slices = 2" in cores[1][0].to_toml()


@pytest.mark.cocotb
@pytest.mark.parametrize("simulator", ["icarus", pytest.param("verilator", marks=pytest.mark.slow)])  # suite budget
def test_helpers_verilog_bit_exact(simulator, tmp_path):
    """Helper cores through the ordinary flow on the generated Verilog: run-time weights loaded into each
    core, an initial state broadcast, random idle and back-pressure."""
    cfg = TINY.replace(cell="lstm", num_layers=2, hidden_size=16, cores=2, core_mode="helpers", weights_in_rom=False)
    w = random_weights(cfg, 9)
    ops = layers_session(cfg, seed=2)
    got, counters = run_session(cfg, w, ops, simulator, cache_dir=tmp_path, idle=0.3, backpressure=0.3, seed=4)
    want = layers_golden(cfg, w, ops)
    assert len(got) == len(want) == 4
    for g, ww in zip(got, want):
        np.testing.assert_array_equal(g, ww)
    assert [c["steps"] for c in counters] == [4, 6, 8, 11]
