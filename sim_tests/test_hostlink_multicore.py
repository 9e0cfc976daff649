"""The host link of a multi-core design (issue 14): addressed frames, INFO's core records, the driver's
``core`` arguments and programs sessions, in the Amaranth simulator.

A 2-core ``programs`` design (the tiny LSTM in ROM beside a GRU with another input size whose weights are
loaded over the link) and a 2-core ``layers`` design (a 2-layer tiny stack) run sessions through
:class:`rnnaccel.boards.driver.LinkClient` over an :class:`~rnnaccel.boards.driver.AmaranthTransport`
(byte streams into the :class:`FrameEngine`; one test through a :class:`HostLink`'s UART pins), bit for bit
against :func:`~rnnaccel.interface.multicore.programs_golden` and the stack's golden model. A frame naming
a core that does not exist is answered NAK CORE and changes nothing.
"""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
from amaranth.hdl import UnusedElaboratable

from rnnaccel.boards.driver import AmaranthTransport, DeviceError, LinkClient, MismatchError, programs_design_hash
from rnnaccel.flow.rtl import design_hash
from rnnaccel.hw.hostlink import FrameEngine, HostLink
from rnnaccel.interface import protocol
from rnnaccel.interface.multicore import BROADCAST, programs_golden
from rnnaccel.interface.protocol import (
    ALL_CORES,
    CORE_FLAG,
    NAK,
    SYNC,
    Cmd,
    Error,
    decode_info,
    encode_addressed,
    encode_frame,
    encode_info,
    encode_run,
    parse_frame,
)
from rnnaccel.interface.session import golden_session
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.numeric.model import random_weights

TIMEOUT = 300
TINY = preset("tiny")
LSTM_W = random_weights(TINY, seed=3)
GRU = TINY.replace(cell="gru", input_size=4, weights_in_rom=False)
GRU_W = random_weights(GRU, seed=5)
MODELS = [(TINY, LSTM_W), (GRU, GRU_W)]
PROGRAMS = TINY.replace(cores=2, core_mode="programs")
STACK = TINY.replace(num_layers=2, cores=2, core_mode="layers")
STACK_W = random_weights(STACK, seed=4)


def seq(cfg, t, rng):
    return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)


def state(cfg, rng, cell=True):
    h = quantize(rng.uniform(-0.8, 0.8, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
    c = quantize(rng.uniform(-1.5, 1.5, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell) if cell else None
    return h, c


def programs_engine(**kw):
    eng = FrameEngine(
        PROGRAMS,
        models=MODELS,
        timeout_cycles=TIMEOUT,
        clk_freq=1_000_000,
        design_hash=programs_design_hash(MODELS),
        **kw,
    )
    tr = AmaranthTransport(eng)
    dev = LinkClient(tr, [TINY, GRU])
    dev.load_weights(GRU_W, core=1)
    return dev, tr


def layers_engine(cfg=STACK, weights=STACK_W):
    eng = FrameEngine(
        cfg,
        weights if cfg.weights_in_rom else None,
        timeout_cycles=TIMEOUT,
        clk_freq=1_000_000,
        design_hash=design_hash(cfg, weights),
    )
    tr = AmaranthTransport(eng)
    dev = LinkClient(tr, cfg)
    if not cfg.weights_in_rom:
        dev.load_weights(weights)
    return dev, tr


def assert_programs(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert sorted(g) == sorted(w)
        for core in w:
            np.testing.assert_array_equal(g[core], w[core])


def read_frame(tr, timeout_cycles=5000):
    t = timeout_cycles * tr.period
    head = tr.read(4, t)
    assert len(head) == 4 and head[0] == SYNC, f"no response frame (got {head.hex()})"
    n = head[2] | head[3] << 8
    return parse_frame(head + tr.read(n + 2, t))


def exchange(tr, frame_bytes):
    tr.reset_input_buffer()
    tr.write(frame_bytes)
    return read_frame(tr)


# ----------------------------------------------------------------------------- protocol


def info_of(*args, **kw):
    """INFO of an engine built for its INFO block only (never elaborated)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        info = FrameEngine(*args, timeout_cycles=TIMEOUT, **kw).info
        gc.collect()
    return info


def test_addressed_frame_bytes_and_info_records():
    assert ALL_CORES == BROADCAST and CORE_FLAG == 0x40
    # RESET_STATE addressed to core 1; RUN of one 2-byte word to core 0; the NAK for a missing core
    assert encode_addressed(Cmd.RESET_STATE, 1).hex(" ") == "a5 43 01 00 01 " + encode_addressed(Cmd.RESET_STATE, 1)[
        -2:
    ].hex(" ")
    assert encode_addressed(Cmd.RUN, 0, b"\x34\x12")[:7] == bytes([0xA5, 0x46, 0x03, 0x00, 0x00, 0x34, 0x12])
    assert encode_frame(NAK, bytes([Error.CORE, 0x46]))[:6] == bytes([0xA5, 0xFF, 0x02, 0x00, 0x08, 0x46])
    with pytest.raises(ValueError, match="byte"):
        encode_addressed(Cmd.RUN, 256)
    # a one-core INFO stays the 43 bytes of protocol version 1
    one = info_of(TINY, LSTM_W)
    assert len(encode_info(one)) == 43 and one.mode == "single" and one.n_cores == 1
    assert decode_info(encode_info(one)).core_infos[0].config_hash == TINY.hash
    info = info_of(PROGRAMS, models=MODELS)
    assert len(encode_info(info)) == 43 + 2 + 2 * 20
    assert decode_info(encode_info(info)) == info
    assert info.mode == "programs" and info.config_hash == TINY.hash
    assert [c.config_hash for c in info.cores] == [TINY.hash, GRU.replace(cores=1).hash]
    assert [c.input_size for c in info.cores] == [8, 4] and [c.weights_in_rom for c in info.cores] == [True, False]
    lay = info_of(STACK, STACK_W)
    assert lay.mode == "layers" and lay.config_hash == STACK.hash and lay.num_layers == 2 and lay.n_cores == 2


# ----------------------------------------------------------------------------- programs


def test_programs_session_bit_exact_and_counters_per_core():
    dev, tr = programs_engine()
    assert dev.device.mode == "programs" and dev.n_cores == 2
    dev.check_weights([LSTM_W, GRU_W])
    rng = np.random.default_rng(1)
    h0, c0 = state(TINY, rng)
    g0, _ = state(GRU, rng, cell=False)
    ops = [
        ("reset", 0),
        ("reset", 1),
        ("run", {0: seq(TINY, 3, rng), 1: seq(GRU, 2, rng)}),
        ("state", 1, g0, None),
        ("run", {1: seq(GRU, 2, rng)}),
        ("state", 0, h0, c0),
        ("run", {1: seq(GRU, 1, rng), 0: seq(TINY, 2, rng)}),
    ]
    assert_programs(dev.programs_session(ops), programs_golden(MODELS, ops))
    c0_, c1_, both = dev.counters(0), dev.counters(1), dev.counters(ALL_CORES)
    assert (c0_["steps"], c1_["steps"]) == (5, 5) and both["steps"] == 5  # ALL_CORES: the last core's steps
    assert both["cycles"] >= max(c0_["cycles"], c1_["cycles"]) > 0 and both["idle"] and not both["error"]
    assert dev.counters() == {**c0_, "rejected": 0}  # unaddressed: core 0 of a programs design
    dev.clear_counters(1)
    assert dev.counters(1)["steps"] == 0 and dev.counters(0)["steps"] == 5
    # run_cores continues each core's state, as the golden model does
    x = {0: seq(TINY, 1, rng), 1: seq(GRU, 2, rng)}
    want = programs_golden(MODELS, ops + [("run", x)])[-1]
    got = dev.run_cores(x)
    for core in x:
        np.testing.assert_array_equal(got[core], want[core])


def test_missing_core_is_nak_core_and_changes_nothing():
    dev, tr = programs_engine()
    rng = np.random.default_rng(7)
    x0, x1 = seq(TINY, 2, rng), seq(GRU, 2, rng)
    ops = [("reset", 0), ("reset", 1), ("run", {0: x0, 1: x1})]
    dev.programs_session(ops)
    before = [dev.counters(0), dev.counters(1)]
    run0 = encode_run(seq(TINY, 1, rng), 2)
    bad = [
        encode_addressed(Cmd.RUN, 2, run0),  # no core 2
        encode_addressed(Cmd.RESET_STATE, 7),
        encode_addressed(Cmd.READ_COUNTERS, 2),
        encode_addressed(Cmd.PING, 0xFE, b"hi"),
        encode_addressed(Cmd.RUN, ALL_CORES, run0),  # a programs RUN needs one core
        encode_addressed(Cmd.WRITE_STATE, ALL_CORES, bytes(8)),  # records are in one core's layout
        encode_addressed(Cmd.WRITE_WEIGHTS, 3, bytes(7)),
    ]
    for frame in bad:
        resp = exchange(tr, frame)
        assert resp.cmd == NAK and resp.error == Error.CORE and resp.request == frame[1], (frame.hex(), resp)
    # an addressed frame without its core byte is a LENGTH error
    resp = exchange(tr, encode_frame(Cmd.RESET_STATE | CORE_FLAG))
    assert resp.error == Error.LENGTH and resp.request == 0x43
    with pytest.raises(DeviceError, match="RUN for core 2: no such core") as info:
        dev.run(seq(TINY, 1, rng), core=2)
    assert info.value.code == Error.CORE and info.value.core == 2
    after = [dev.counters(0), dev.counters(1)]
    for b, a in zip(before, after):
        assert {**a, "rejected": 0} == {**b, "rejected": 0}
    assert after[0]["rejected"] == len(bad) + 2
    # the state was not touched: the next run continues from where the session left it
    x = {0: seq(TINY, 2, rng), 1: seq(GRU, 1, rng)}
    want = programs_golden(MODELS, ops + [("run", x)])[-1]
    got = dev.run_cores(x)
    for core in x:
        np.testing.assert_array_equal(got[core], want[core])
    # INFO, PING and counters addressed to every core are fine
    assert dev.ping(b"ok") == b"ok"
    assert decode_info(exchange(tr, encode_addressed(Cmd.INFO, ALL_CORES)).payload) == dev.device


def test_programs_driver_checks_models():
    eng = FrameEngine(PROGRAMS, models=MODELS, timeout_cycles=TIMEOUT, clk_freq=1_000_000)
    with pytest.raises(MismatchError, match="cores run configs"):
        LinkClient(AmaranthTransport(eng), [TINY, TINY])
    # core 0's config alone: a one-core client of core 0 (unaddressed frames go there)
    dev = LinkClient(AmaranthTransport(eng), TINY)
    x = seq(TINY, 2, np.random.default_rng(2))
    dev.reset()
    np.testing.assert_array_equal(dev.run(x), golden_session(TINY, LSTM_W, [("reset",), ("run", x)])[0])


# ----------------------------------------------------------------------------- layers


@pytest.mark.parametrize("rom", [True, False])
def test_layers_session_bit_exact(rom):
    cfg = STACK.replace(weights_in_rom=rom)
    weights = random_weights(cfg, seed=4)
    dev, tr = layers_engine(cfg, weights)
    assert dev.device.mode == "layers" and dev.n_cores == 2 and dev.device.input_size == cfg.input_size
    if rom:
        dev.check_weights(weights)
    rng = np.random.default_rng(3)
    h0, c0 = state(cfg, rng)
    ops = [("reset",), ("run", seq(cfg, 3, rng)), ("state", h0, c0), ("run", seq(cfg, 2, rng))]
    got = dev.session(ops)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    c = dev.counters()  # the pipeline: cycles with some core busy, the last core's steps
    assert c["steps"] == 5 and c["cycles"] >= max(dev.counters(0)["cycles"], dev.counters(1)["cycles"])
    assert dev.counters(0)["steps"] == dev.counters(1)["steps"] == 5
    # a RUN addressed to any core of a layers design runs the pipeline; a missing core is NAK CORE
    x = seq(cfg, 1, rng)
    want = golden_session(cfg, weights, ops + [("run", x)])[-1]
    np.testing.assert_array_equal(dev.run(x, core=1), want)
    with pytest.raises(DeviceError, match="no such core") as info:
        dev.run(x, core=2)
    assert info.value.code == Error.CORE
    # WRITE_STATE needs one core: unaddressed on a layers design it is NAK CORE
    resp = exchange(tr, encode_frame(Cmd.WRITE_STATE, bytes(8)))
    assert resp.error == Error.CORE and resp.request == Cmd.WRITE_STATE
    assert dev.counters()["steps"] == 6


def test_layers_through_uart_pins():
    link = HostLink(STACK, clk_freq=4_000_000, baud=1_000_000, weights=STACK_W, timeout_cycles=400)
    dev = LinkClient(AmaranthTransport(link), STACK)
    rng = np.random.default_rng(5)
    ops = [("reset",), ("run", seq(STACK, 2, rng))]
    np.testing.assert_array_equal(dev.session(ops)[0], golden_session(STACK, STACK_W, ops)[0])
    assert dev.counters()["steps"] == 2


def test_one_core_design_takes_addressed_frames_for_core_0():
    eng = FrameEngine(TINY, LSTM_W, timeout_cycles=TIMEOUT, clk_freq=1_000_000)
    tr = AmaranthTransport(eng)
    dev = LinkClient(tr, TINY)
    rng = np.random.default_rng(9)
    x = seq(TINY, 2, rng)
    h0, c0 = state(TINY, rng)
    dev.set_state(h0, c0, core=0)
    ops = [("state", h0, c0), ("run", x)]
    np.testing.assert_array_equal(dev.run(x, core=0), golden_session(TINY, LSTM_W, ops)[0])
    resp = exchange(tr, encode_addressed(Cmd.READ_COUNTERS, ALL_CORES))
    assert resp.cmd == (Cmd.READ_COUNTERS | CORE_FLAG | protocol.ACK_FLAG)
    assert protocol.decode_counters(resp.payload).steps == 2
    with pytest.raises(DeviceError, match="no such core"):
        dev.reset(core=1)
    assert dev.counters()["steps"] == 2


def test_infer_several_models_on_a_programs_board(tmp_path):
    """``rnnaccel infer DIR0 DIR1 --inputs X0 X1 -o Y0 Y1`` (boards.driver.infer_programs): model i on core i,
    core 1's weights loaded, each sequence from its core's zero state, bit-exact; mismatches in one line."""
    from rnnaccel.boards.driver import infer_programs
    from rnnaccel.numeric.model import save_model

    dirs = [save_model(tmp_path / f"m{i}", c, w) for i, (c, w) in enumerate(MODELS)]
    eng = FrameEngine(
        PROGRAMS, models=MODELS, timeout_cycles=TIMEOUT, clk_freq=1_000_000, design_hash=programs_design_hash(MODELS)
    )
    tr = AmaranthTransport(eng)
    rng = np.random.default_rng(4)
    xs = [rng.uniform(-1, 1, size=(2, 3, TINY.input_size)), rng.uniform(-1, 1, size=(2, GRU.input_size))]
    got = infer_programs(dirs, tr, xs, raw=True)
    for (cfg, w), x, y in zip(MODELS, xs, got):
        batch = x if x.ndim == 3 else x[None]
        want = np.stack([golden_session(cfg, w, [("reset",), ("run", quantize(s, cfg.q_state))])[0] for s in batch])
        np.testing.assert_array_equal(y, want if x.ndim == 3 else want[0])
    with pytest.raises(ValueError, match="2 models but 1 input sets"):
        infer_programs(dirs, tr, xs[:1])
    with pytest.raises(MismatchError, match="cores run configs"):
        infer_programs(dirs[::-1], tr, xs[::-1])


# ----------------------------------------------------------------------------- helpers


def test_helpers_session_bit_exact_weights_over_the_link():
    """A 2-layer tiny LSTM on 2 helper cores, weights loaded over the link (each core its row slice, addressed
    WRITE_WEIGHTS), the initial state written once to every core (WRITE_STATE to ALL_CORES)."""
    cfg = TINY.replace(num_layers=2, cores=2, core_mode="helpers", weights_in_rom=False)
    weights = random_weights(cfg, seed=6)
    dev, tr = layers_engine(cfg, weights)
    info = dev.device
    assert info.mode == "helpers" and dev.n_cores == 2 and info.hidden_size == cfg.hidden_size
    assert [c.config_hash for c in info.core_infos] == [cfg.helper_config(i).hash for i in range(2)]
    rng = np.random.default_rng(8)
    h0, c0 = state(cfg, rng)
    ops = [("reset",), ("run", seq(cfg, 3, rng)), ("state", h0, c0), ("run", seq(cfg, 2, rng))]
    got = dev.session(ops)
    want = golden_session(cfg, weights, ops)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert dev.counters()["steps"] == 5 and dev.counters(0)["steps"] == dev.counters(1)["steps"] == 5
    # weights need one core: unaddressed WRITE_WEIGHTS on a helpers design is NAK CORE, and nothing changes
    resp = exchange(tr, encode_frame(Cmd.WRITE_WEIGHTS, bytes(8)))
    assert resp.error == Error.CORE and resp.request == Cmd.WRITE_WEIGHTS
    x = seq(cfg, 2, rng)
    np.testing.assert_array_equal(dev.run(x), golden_session(cfg, weights, ops + [("run", x)])[-1])
