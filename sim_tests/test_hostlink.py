"""Host link in the Amaranth simulator: CRC, UART, frame engine and host driver.

Sessions go through :class:`rnnaccel.boards.driver.LinkClient` over an
:class:`~rnnaccel.boards.driver.AmaranthTransport`: bit by bit through a
:class:`HostLink`'s UART pins (4 clocks per bit) in one test, byte by byte
into the :class:`FrameEngine` in the others (the same gateware minus the
UART, ten times faster to simulate). Results must equal the golden model's
bit for bit; every malformed frame must be answered with its NAK and change
nothing.
"""

from __future__ import annotations

import gc
import struct
import warnings

import numpy as np
import pytest
from amaranth.hdl import Module, UnusedElaboratable
from amaranth.sim import Simulator

from rnnaccel.interface import protocol
from rnnaccel.boards.driver import (
    LinkClient,
    AmaranthTransport,
    DeviceError,
    LinkError,
    MismatchError,
    PortError,
    infer,
)
from rnnaccel.interface.protocol import NAK, SYNC, Cmd, Error, LinkLayout, crc16, encode_frame, parse_frame
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize, to_float
from rnnaccel.numeric.golden import IntegerModel
from rnnaccel.interface.session import OP, GoldenExecutor, execute, golden_session, state_commands, weight_commands
from rnnaccel.hw.hostlink import FrameEngine, HostLink
from rnnaccel.hw.uart import UARTRx, UARTTx, uart_divisor
from rnnaccel.numeric.model import random_weights, save_model
from rnnaccel.flow.rtl import design_hash

CFG = preset("tiny")
WEIGHTS = random_weights(CFG, seed=3)
TIMEOUT = 300  # device inter-byte timeout (cycles) of the byte-stream tests


def open_engine(cfg=CFG, weights=WEIGHTS, **kw):
    eng = FrameEngine(
        cfg,
        weights if cfg.weights_in_rom else None,
        timeout_cycles=TIMEOUT,
        clk_freq=1_000_000,
        design_hash=design_hash(cfg, weights),
        **kw,
    )
    tr = AmaranthTransport(eng)
    return LinkClient(tr, cfg), tr


def seq(cfg, t, rng):
    return quantize(rng.uniform(-1.2, 1.2, size=(t, cfg.input_size)), cfg.q_state)


def session_ops(cfg, seed):
    """A reset, a run, an initial state, a second run."""
    rng = np.random.default_rng(seed)
    h0 = quantize(rng.uniform(-0.8, 0.8, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_state)
    c0 = quantize(rng.uniform(-1.5, 1.5, size=(cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
    return [("reset",), ("run", seq(cfg, 3, rng)), ("state", h0, c0), ("run", seq(cfg, 2, rng))]


def assert_session(dev, cfg, weights, ops):
    got = dev.session(ops)
    want = golden_session(cfg, weights, ops)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    return got


def read_frame(tr, timeout_cycles=5000):
    """The next frame the device sends (raw, for tests that send malformed bytes)."""
    t = timeout_cycles * tr.period
    head = tr.read(4, t)
    assert len(head) == 4 and head[0] == SYNC, f"no response frame (got {head.hex()})"
    n = head[2] | head[3] << 8
    return parse_frame(head + tr.read(n + 2, t))


def expect_nak(tr, frame_bytes, code, request):
    tr.reset_input_buffer()
    tr.write(frame_bytes)
    resp = read_frame(tr)
    assert resp.cmd == NAK and resp.error == code and resp.request == request, (resp, code)


# ----------------------------------------------------------------------------- CRC and protocol


def test_crc_is_ccitt_false_with_zero_residue():
    p = protocol.CRC.algorithm
    assert (p.crc_width, p.polynomial, p.initial_crc, p.reflect_input, p.reflect_output, p.xor_output) == (
        16,
        0x1021,
        0xFFFF,
        False,
        False,
        0,
    )
    assert crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value
    frame = encode_frame(Cmd.RUN, bytes(range(40)))
    assert crc16(frame[1:]) == 0  # CRC sent high byte first: zero residue
    assert protocol.CRC.residue() == 0


def test_crc_gateware_matches_host():
    """The gateware CRC (``protocol.CRC.create()``, as the receiver and transmitter use it) equals ``crc16``."""
    dut = protocol.CRC.create()
    rng = np.random.default_rng(1)
    messages = [b"", b"\x00", b"\xff" * 3, b"123456789"] + [rng.bytes(int(n)) for n in rng.integers(1, 40, 12)]

    async def bench(ctx):
        for msg in messages:
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            ctx.set(dut.valid, 1)
            for b in msg:
                ctx.set(dut.data, b)
                await ctx.tick()
            ctx.set(dut.valid, 0)
            assert ctx.get(dut.crc) == crc16(msg), msg

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


def test_protocol_encodings_round_trip():
    lay = LinkLayout(CFG)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # built for its INFO block only
        info = FrameEngine(CFG, WEIGHTS, timeout_cycles=10).info
        gc.collect()
    assert protocol.decode_info(protocol.encode_info(info)) == info
    assert info.config_hash == CFG.hash and info.max_steps == 512 // 16 and info.buffer_bytes == 512
    c = protocol.Counters(123456, 7, 9, 2, 3)
    assert protocol.decode_counters(protocol.encode_counters(c)) == c
    x = np.array([[-32768, -1, 0, 1, 32767, 5, -5, 100]])
    payload = protocol.encode_run(x, 2)
    assert payload[:2] == b"\x00\x80" and protocol.decode_run(payload, 1, 8, 2).tolist() == x.tolist()
    # weight bursts carry exactly the weight commands, each burst within the buffer
    cfg = CFG.replace(weights_in_rom=False)
    cmds = weight_commands(cfg, WEIGHTS)
    bursts = protocol.weight_bursts(lay, cmds, 64)
    back = []
    for b in bursts:
        assert len(b) <= 64
        sel, addr = int.from_bytes(b[:2], "little"), int.from_bytes(b[2:5], "little")
        wb = lay.weight_bytes(sel)
        for i in range(5, len(b), wb):
            back.append((OP["WRITE_WEIGHT"], sel, addr, int.from_bytes(b[i : i + wb], "little")))
            addr += 1
    assert back == cmds
    with pytest.raises(protocol.FrameError):
        parse_frame(encode_frame(Cmd.PING, b"ab")[:-1] + b"\x00")


# ----------------------------------------------------------------------------- UART


@pytest.mark.parametrize("divisor", [4, 7])
def test_uart_loopback(divisor):
    m = Module()
    m.submodules.tx = tx = UARTTx(divisor)
    m.submodules.rx = rx = UARTRx(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    data = [int(v) for v in np.random.default_rng(divisor).integers(0, 256, 24)] + [0x00, 0xFF, SYNC]
    got = []

    async def send(ctx):
        for b in data:
            ctx.set(tx.i_data.payload, b)
            ctx.set(tx.i_data.valid, 1)
            await ctx.tick().until(tx.i_data.ready)
        ctx.set(tx.i_data.valid, 0)

    async def receive(ctx):
        ctx.set(rx.o_data.ready, 1)
        while len(got) < len(data):
            _, _, valid, payload, ferr, ovr = await ctx.tick().sample(
                rx.o_data.valid, rx.o_data.payload, rx.framing_error, rx.overrun
            )
            assert not ferr and not ovr
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send)
    sim.add_testbench(receive)
    sim.run_until(len(data) * (10 * divisor + 4) * 1e-6 + 1e-4)
    assert got == data


def test_uart_rx_drops_bad_stop_bit_and_recovers():
    d = 4
    dut = UARTRx(d)
    got, errors = [], []

    async def line(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(8)
        for byte, stop in ((0x55, 0), (0xA3, 1), (0x0F, 1)):
            for bit in [0] + [(byte >> i) & 1 for i in range(8)] + [stop]:
                ctx.set(dut.rx, bit)
                await ctx.tick().repeat(d)
            ctx.set(dut.rx, 1)
            await ctx.tick().repeat(2 * d)

    async def watch(ctx):
        ctx.set(dut.o_data.ready, 1)
        while True:
            _, _, valid, payload, ferr = await ctx.tick().sample(
                dut.o_data.valid, dut.o_data.payload, dut.framing_error
            )
            if valid:
                got.append(payload)
            if ferr:
                errors.append(len(got))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(line)
    sim.add_testbench(watch, background=True)
    sim.run()
    assert got == [0xA3, 0x0F] and errors == [0]


def test_parameter_checks():
    assert uart_divisor(12e6, 115200) == 104
    with pytest.raises(ValueError, match="off by"):
        uart_divisor(1e6, 300_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)  # the half-built components below
        with pytest.raises(ValueError, match="divisor"):
            UARTTx(1)
        with pytest.raises(TypeError, match="cfg"):
            HostLink("tiny", 12e6)
        with pytest.raises(ValueError, match="buffer_bytes"):
            FrameEngine(CFG, WEIGHTS, buffer_bytes=8)
        with pytest.raises(ValueError, match="design_hash must be 16"):
            FrameEngine(CFG, WEIGHTS, design_hash="abc")
        with pytest.raises(ValueError, match="shorter than two bytes"):
            HostLink(CFG, 4e6, 1e6, WEIGHTS, timeout_cycles=40)
        gc.collect()


# ----------------------------------------------------------------------------- sessions


def test_session_through_uart_pins():
    """The real UART: the driver's bytes go bit by bit into the rx pin, responses come off the tx pin."""
    link = HostLink(
        CFG,
        clk_freq=4_000_000,
        baud=1_000_000,
        weights=WEIGHTS,
        timeout_cycles=400,
        design_hash=design_hash(CFG, WEIGHTS),
    )
    assert link.divisor == 4
    tr = AmaranthTransport(link)
    dev = LinkClient(tr, CFG)
    assert dev.device.config_hash == CFG.hash and dev.device.baud == 1_000_000
    dev.check_weights(WEIGHTS)
    assert dev.ping(b"\xa5\x00\xff") == b"\xa5\x00\xff"
    assert_session(dev, CFG, WEIGHTS, session_ops(CFG, seed=5))
    counters = dev.counters()
    assert counters["steps"] == 5 and counters["idle"] and not counters["error"] and counters["rejected"] == 0
    assert counters["wait_cycles"] > counters["cycles"] > 0  # the UART is the bottleneck


def test_session_byte_stream_and_counters():
    dev, tr = open_engine()
    ops = session_ops(CFG, seed=8)
    assert_session(dev, CFG, WEIGHTS, ops)
    c = dev.counters()
    assert c["steps"] == 5 and c["cycles"] >= 5 * CFG.ideal_cycles_per_step
    dev.clear_counters()
    assert dev.counters() == {**c, "cycles": 0, "wait_cycles": 0, "steps": 0}
    # state carries across calls: the same run again continues from the carried state
    golden = GoldenExecutor(CFG, WEIGHTS)
    execute(ops, golden)
    model = golden.model
    x = ops[1][1]
    np.testing.assert_array_equal(dev.run(x), model.run_raw(x))
    y = dev.run_float(to_float(x, CFG.q_state))
    np.testing.assert_array_equal(y, to_float(model.run_raw(x), CFG.q_state))


def test_long_run_split_across_frames():
    dev, tr = open_engine(buffer_bytes=64)  # 4 steps per RUN frame
    assert dev.device.max_steps == 4
    rng = np.random.default_rng(2)
    ops = [("reset",), ("run", seq(CFG, 10, rng))]
    assert_session(dev, CFG, WEIGHTS, ops)
    assert dev.counters()["steps"] == 10


# ----------------------------------------------------------------------------- malformed input


def test_malformed_frames_are_rejected_and_change_nothing():
    dev, tr = open_engine()
    lay = LinkLayout(CFG)
    rng = np.random.default_rng(4)
    x = seq(CFG, 3, rng)
    dev.reset()
    run_frame = encode_frame(Cmd.RUN, protocol.encode_run(x, 2))
    expect_nak(tr, run_frame[:-1] + bytes([run_frame[-1] ^ 0x10]), Error.CRC, Cmd.RUN)
    corrupted = bytearray(run_frame)
    corrupted[10] ^= 0x01  # a payload bit
    expect_nak(tr, bytes(corrupted), Error.CRC, Cmd.RUN)
    expect_nak(tr, encode_frame(0x09, b"x"), Error.COMMAND, 0x09)
    expect_nak(tr, encode_frame(0x42, b"x"), Error.CORE, 0x42)  # INFO addressed to core 0x78: none
    expect_nak(tr, encode_frame(Cmd.PING, bytes(600)), Error.LENGTH, Cmd.PING)  # overruns the buffer
    expect_nak(tr, encode_frame(Cmd.INFO, b"\x00"), Error.LENGTH, Cmd.INFO)
    expect_nak(tr, encode_frame(Cmd.RUN, protocol.encode_run(x, 2)[:-2]), Error.LENGTH, Cmd.RUN)  # partial step
    expect_nak(tr, encode_frame(Cmd.RUN, b""), Error.LENGTH, Cmd.RUN)
    expect_nak(tr, encode_frame(Cmd.WRITE_WEIGHTS, bytes(5 + 4)), Error.ROM, Cmd.WRITE_WEIGHTS)
    # state records: a good record first, then a bad one; the frame is rejected as a whole
    h = np.full((1, CFG.hidden_size), 1000)
    good = state_commands(CFG, h, None)[:1]
    for bad in [
        (OP["WRITE_VEC"], 0, lay.vector_rows, 5),  # row beyond the vector banks
        (OP["WRITE_VEC"], lay.vector_sels, 0, 5),  # bank/lane selector
        (OP["WRITE_C"], 0, lay.cell_words, 5),  # cell-state address
        (OP["WRITE_C"], 1, 0, 5),  # WRITE_C has no selector
        (OP["WRITE_WEIGHT"], 0, 0, 5),  # not a state command
        (OP["RESET_STATE"], 0, 0, 0),
    ]:
        expect_nak(
            tr,
            encode_frame(Cmd.WRITE_STATE, protocol.encode_state_records(lay, good + [bad])),
            Error.RANGE,
            Cmd.WRITE_STATE,
        )
    expect_nak(
        tr, encode_frame(Cmd.WRITE_STATE, protocol.encode_state_records(lay, good)[:-1]), Error.LENGTH, Cmd.WRITE_STATE
    )
    with pytest.raises(DeviceError, match="rejected WRITE_STATE: field out of range") as info:
        dev.write_commands([(OP["WRITE_C"], 0, 999, 1)])
    assert info.value.code == Error.RANGE
    # nothing above reached the accelerator: the run sees the zero state
    np.testing.assert_array_equal(dev.run(x), golden_session(CFG, WEIGHTS, [("reset",), ("run", x)])[0])
    c = dev.counters()
    assert c["steps"] == 3 and not c["error"] and c["rejected"] == 17


def test_truncated_frame_times_out_then_link_works():
    dev, tr = open_engine()
    frame = encode_frame(Cmd.RUN, protocol.encode_run(seq(CFG, 2, np.random.default_rng(0)), 2))
    for cut in (frame[:-3], frame[:2], frame[:1], bytes([SYNC, Cmd.PING]) + struct.pack("<H", 60000) + b"abc"):
        t0 = tr.cycles
        expect_nak(tr, cut, Error.TIMEOUT, cut[1] if len(cut) > 1 else 0)
        assert tr.cycles - t0 >= TIMEOUT
        assert dev.info().config_hash == CFG.hash
    assert_session(dev, CFG, WEIGHTS, session_ops(CFG, seed=1))
    assert dev.counters()["rejected"] == 4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_garbage_then_valid_frame(seed):
    dev, tr = open_engine()
    rng = np.random.default_rng(seed)
    garbage = bytes(int(v) for v in rng.integers(0, 256, 48))
    garbage = garbage[:8] + bytes([SYNC]) + garbage[8:30] + bytes([SYNC, Cmd.RUN]) + garbage[30:]
    tr.write(garbage)
    # no pause: the driver's frame may be swallowed by a frame that started in the garbage;
    # the driver then waits, resynchronizes and resends
    assert dev.info().config_hash == CFG.hash
    tr.write(garbage)
    dev.resync()
    assert dev.ping(b"ok") == b"ok"
    assert_session(dev, CFG, WEIGHTS, session_ops(CFG, seed=seed))


def test_narrow_formats_sign_extension_and_range_checks():
    """14-bit q_state and q_cell in 2-byte words: outputs sign-extended, values beyond the format rejected."""
    cfg = CFG.replace(q_state="Q3.10", q_cell="Q3.10")
    weights = random_weights(cfg, seed=12)
    dev, tr = open_engine(cfg, weights)
    lay = LinkLayout(cfg)
    x = np.zeros((1, cfg.input_size), dtype=np.int64)
    for word in (0x2000, -0x2001):  # one past the 14-bit range on either side
        payload = protocol.encode_run(x, 2)[:-2] + int(word).to_bytes(2, "little", signed=True)
        expect_nak(tr, encode_frame(Cmd.RUN, payload), Error.RANGE, Cmd.RUN)
    for rec in [(OP["WRITE_VEC"], 0, 0, 0x4000), (OP["WRITE_C"], 0, 0, 0xC000)]:
        expect_nak(
            tr, encode_frame(Cmd.WRITE_STATE, protocol.encode_state_records(lay, [rec])), Error.RANGE, Cmd.WRITE_STATE
        )
    ops = session_ops(cfg, seed=3)
    out = assert_session(dev, cfg, weights, ops)
    assert (np.concatenate(out) < 0).any()  # negative outputs came back sign-extended
    assert dev.counters()["steps"] == 5


# ----------------------------------------------------------------------------- run-time weights


def test_weight_reload_between_inferences():
    cfg = CFG.replace(weights_in_rom=False)
    wa, wb = random_weights(cfg, seed=21), random_weights(cfg, seed=22)
    dev, tr = open_engine(cfg)
    assert not dev.device.weights_in_rom
    x = seq(cfg, 3, np.random.default_rng(6))
    ops = [("reset",), ("run", x)]
    dev.load_weights(wa)
    ya = assert_session(dev, cfg, wa, ops)[0]
    dev.load_weights(wb)
    yb = assert_session(dev, cfg, wb, ops)[0]
    assert not np.array_equal(ya, yb)
    # rejected bursts write nothing: past the end of a bank, a bad bank selector, a word too wide
    lay = LinkLayout(cfg)
    depth = lay.weight_depth(0)
    for payload, code in [
        ((0).to_bytes(2, "little") + (depth - 1).to_bytes(3, "little") + bytes(2), Error.RANGE),
        ((lay.weight_banks + 1).to_bytes(2, "little") + bytes(3) + bytes(1), Error.RANGE),
        (bytes(3), Error.LENGTH),
    ]:
        expect_nak(tr, encode_frame(Cmd.WRITE_WEIGHTS, payload), code, Cmd.WRITE_WEIGHTS)
    assert_session(dev, cfg, wb, ops)


# ----------------------------------------------------------------------------- driver


def test_driver_errors(tmp_path):
    with pytest.raises(PortError, match="cannot open serial port '/dev/ttyNOPE0'") as info:
        LinkClient("/dev/ttyNOPE0", CFG)
    assert "\n" not in str(info.value) and isinstance(info.value, LinkError)
    with pytest.raises(PortError, match="cannot open serial port"):
        infer(_model_dir(tmp_path, CFG, WEIGHTS), "/dev/ttyNOPE0", np.zeros((2, CFG.input_size)))
    eng = FrameEngine(CFG, WEIGHTS, timeout_cycles=TIMEOUT, clk_freq=1_000_000, design_hash=design_hash(CFG, WEIGHTS))
    with pytest.raises(MismatchError, match="config"):
        LinkClient(AmaranthTransport(eng), CFG.replace(hidden_size=12))
    dev = LinkClient(AmaranthTransport(eng))  # no config: run works from INFO alone
    with pytest.raises(MismatchError, match="other weights"):
        LinkClient(AmaranthTransport(eng), CFG).check_weights(random_weights(CFG, seed=4))
    with pytest.raises(TypeError, match="raw q_state integers"):
        dev.run(np.zeros((2, CFG.input_size)))
    with pytest.raises(ValueError, match="shape"):
        dev.run(np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="lie in"):
        dev.run(np.full((1, CFG.input_size), 1 << 20))
    with pytest.raises(LinkError, match="needs the model's config"):
        dev.set_state(np.zeros((1, CFG.hidden_size), dtype=np.int64))
    with pytest.raises(DeviceError, match="rejected WRITE_WEIGHTS: weights are in ROM") as info:
        LinkClient(AmaranthTransport(eng), CFG).load_weights(WEIGHTS)
    assert info.value.code == Error.ROM and info.value.command == Cmd.WRITE_WEIGHTS
    x = seq(CFG, 2, np.random.default_rng(3))
    dev.reset()
    np.testing.assert_array_equal(dev.run(x), golden_session(CFG, WEIGHTS, [("reset",), ("run", x)])[0])


def _model_dir(tmp_path, cfg, weights):
    return save_model(tmp_path / "model", cfg, weights)


@pytest.mark.parametrize("rom", [True, False])
def test_infer_matches_golden(tmp_path, rom):
    cfg = CFG.replace(weights_in_rom=rom)
    weights = random_weights(cfg, seed=9)
    model = _model_dir(tmp_path, cfg, weights)
    eng = FrameEngine(
        cfg, weights if rom else None, timeout_cycles=TIMEOUT, clk_freq=1_000_000, design_hash=design_hash(cfg, weights)
    )
    x = np.random.default_rng(5).uniform(-1, 1, size=(2, 3, cfg.input_size))
    y = infer(model, AmaranthTransport(eng), x)
    want = IntegerModel(cfg, weights).run_float(x)  # batched golden: every sequence from the zero state
    assert y.dtype == np.float32 and y.shape == (2, 3, cfg.hidden_size)
    np.testing.assert_array_equal(y, want.astype(np.float32))
    raw = infer(model, AmaranthTransport(eng), x[0], raw=True)
    want = golden_session(cfg, weights, [("reset",), ("run", quantize(x[0], cfg.q_state))])[0]
    np.testing.assert_array_equal(raw, want)


@pytest.mark.parametrize("changes", [{"datapath": "serial", "lanes": 2, "pe_cols": 1}, {}], ids=["serial", "array"])
def test_spram_weights_through_the_link_with_reload(changes):
    """SPRAM weight banks (16-bit words packing two weights) behind the link, on the serial datapath
    (lstm512-ice40's, smaller) and the array: weights loaded at run time, reloaded between two
    inferences, state commands, results bit-exact."""
    cfg = preset("tiny").replace(weights_in_rom=False, weight_ram="huge", **changes)
    assert LinkLayout(cfg).weight_bits(0) == 16
    wa, wb = random_weights(cfg, seed=31), random_weights(cfg, seed=32)
    dev, tr = open_engine(cfg, None)
    dev.load_weights(wa)
    ops = session_ops(cfg, seed=4)
    ya = assert_session(dev, cfg, wa, ops)
    dev.load_weights(wb)
    yb = assert_session(dev, cfg, wb, ops)
    assert not np.array_equal(np.concatenate(ya), np.concatenate(yb))
    dev.check_weights(wb)


@pytest.mark.parametrize("datapath", ["array", "serial"])
def test_runtime_dims_two_models_through_one_link(tmp_path, datapath):
    """Run-time dimensions (issue 12) on the board path: one FrameEngine built for a design with max_* fields;
    two other models (smaller, another layer count) inferred through it one after the other, each loading its
    layout (SET_PARAM records) and weights, bit-exact; a model that does not fit, or a wrong design, refused.
    Both datapaths (the serial one: the iCE40 presets')."""
    from rnnaccel.layout.runtime import model_on_design
    from rnnaccel.numeric.config import Config

    base = CFG if datapath == "array" else CFG.replace(datapath="serial", lanes=2, pe_rows=1, pe_cols=1)
    hw = base.replace(weights_in_rom=False, max_input_size=12, max_hidden_size=16, max_layers=2)
    eng = FrameEngine(hw, None, timeout_cycles=TIMEOUT, clk_freq=1_000_000, design_hash=design_hash(hw, None))
    tr = AmaranthTransport(eng)
    for i, (n_in, n_hid, n_layers) in enumerate([(4, 12, 2), (12, 16, 1), (8, 8, 1)]):
        m = base.replace(input_size=n_in, hidden_size=n_hid, num_layers=n_layers)
        weights = random_weights(m, seed=20 + i)
        model = save_model(tmp_path / f"m{i}", m, weights)
        x = np.random.default_rng(i).uniform(-1, 1, size=(2, 3, n_in))
        y = infer(model, tr, x, raw=True, hardware=hw)
        want = np.stack([golden_session(m, weights, [("reset",), ("run", quantize(s, m.q_state))])[0] for s in x])
        np.testing.assert_array_equal(y, want)
        # the state commands go by the model's own layout too (the weights infer loaded are still there)
        with LinkClient(tr, m, hardware=hw) as dev:
            h0 = np.random.default_rng(7).integers(-900, 900, size=(n_layers, n_hid))
            c0 = np.random.default_rng(8).integers(-900, 900, size=(n_layers, n_hid))
            ops = [("state", h0, c0), ("run", quantize(x[0], m.q_state))]
            run = model_on_design(m, hw)
            np.testing.assert_array_equal(dev.session(ops)[0], golden_session(run, weights, ops)[0])
    too_big = base.replace(hidden_size=20)
    with pytest.raises(MismatchError, match="hidden_size = 20 exceeds the design's max_hidden_size = 16"):
        LinkClient(tr, too_big, hardware=hw)
    other = Config(**{**hw.to_dict(), "max_layers": 3})
    with pytest.raises(MismatchError, match="the device runs config"):
        LinkClient(tr, base, hardware=other)
