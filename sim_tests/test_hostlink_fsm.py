"""The host link as a state machine: command orders, damaged traffic, recovery.

Regression tests first: the orders that once lost a RUN (a PING left the
echo source wired to the payload reader, so the next payload walk stalled and
the device answered nothing any more). Then a hypothesis
``RuleBasedStateMachine`` sends random sequences of every request and of
damaged traffic to the :class:`FrameEngine` in the Amaranth simulator and
checks every answer, byte for byte, against the Python model of the device
(``link_model.py``); a seeded program does the same through the UART pins of
a :class:`HostLink` (and, in ``test_cocotb_hostlink.py``, in Verilator).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from link_model import DAMAGE_KINDS, REQUEST_KINDS, LinkExerciser, random_program
from rnnaccel.boards.driver import LinkClient, AmaranthTransport
from rnnaccel.interface.protocol import Cmd, LinkLayout, encode_frame, encode_run
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import quantize
from rnnaccel.interface.session import golden_session
from rnnaccel.hw.hostlink import FrameEngine, HostLink
from rnnaccel.numeric.model import random_weights
from shared import report

CFG = preset("tiny")
RAM_CFG = CFG.replace(weights_in_rom=False)
WEIGHTS = random_weights(CFG, seed=3)
TIMEOUT = 300
MAX_STEPS = LinkLayout(CFG).max_steps(LinkLayout(CFG).default_buffer())  # most steps in one RUN frame


def engine(cfg, weights=WEIGHTS):
    return FrameEngine(cfg, weights if cfg.weights_in_rom else None, timeout_cycles=TIMEOUT, clk_freq=1_000_000)


def open_device(cfg, weights=WEIGHTS):
    """The driver on a fresh engine, without resends (a lost answer must fail, not be retried away)."""
    tr = AmaranthTransport(engine(cfg, weights))
    dev = LinkClient(tr, cfg, retries=0)
    if not cfg.weights_in_rom:
        dev.load_weights(weights)
    return dev, tr


def inputs(cfg, steps, seed):
    return quantize(np.random.default_rng(seed).uniform(-1.2, 1.2, size=(steps, cfg.input_size)), cfg.q_state)


# ----------------------------------------------------------------------------- the orders that failed

ORDERS = {
    "ping-run": [("ping", b"ok"), ("run", 3)],
    "run-ping-run": [("run", 3), ("ping", b"ok"), ("run", 3)],
    "ping0-run": [("ping", b""), ("run", 3)],
    "ping1-run": [("ping", b"a"), ("run", 2)],
    "ping3-run": [("ping", b"abc"), ("run", 2)],
    "ping4-run": [("ping", b"abcd"), ("run", 2)],
    "ping-state-run": [("ping", b"xyz"), ("state",), ("run", 2)],
    "ping-weights-run": [("ping", b"\xa5\x00"), ("weights",), ("run", 2)],
    "info-run": [("info",), ("run", 3)],
    "counters-run": [("counters",), ("run", 3)],
    "ping-reset-run": [("ping", b"ok"), ("reset",), ("run", 3)],
}


ORDER_CASES = [
    (order, rom) for order in ORDERS for rom in (True, False) if not (rom and ("weights",) in ORDERS[order])
]  # WRITE_WEIGHTS needs weights in RAM


@pytest.mark.parametrize("order, rom", ORDER_CASES, ids=[f"{o}-{'rom' if r else 'ram'}" for o, r in ORDER_CASES])
def test_command_orders(order, rom):
    """Each order on a fresh device: every answer arrives, RUN outputs equal the golden model's."""
    cfg = CFG if rom else RAM_CFG
    dev, _ = open_device(cfg)
    ops, got = [], []
    rng = np.random.default_rng(7)
    for step in ORDERS[order]:
        if step[0] == "ping":
            assert dev.ping(step[1]) == step[1]
        elif step[0] == "run":
            x = inputs(cfg, step[1], int(rng.integers(1 << 30)))
            got.append(dev.run(x))
            ops.append(("run", x))
        elif step[0] == "info":
            assert dev.info().config_hash == cfg.hash
        elif step[0] == "counters":
            assert dev.counters()["idle"]
        elif step[0] == "reset":
            dev.reset()
            ops.append(("reset",))
        elif step[0] == "state":
            h = quantize(rng.uniform(-0.5, 0.5, (cfg.num_layers, cfg.hidden_size)), cfg.q_state)
            c = quantize(rng.uniform(-0.5, 0.5, (cfg.num_layers, cfg.hidden_size)), cfg.q_cell)
            dev.set_state(h, c)
            ops.append(("state", h, c))
        elif step[0] == "weights":
            dev.load_weights(WEIGHTS)
    want = golden_session(cfg, WEIGHTS, ops)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
    c = dev.counters()
    assert c["rejected"] == 0 and c["steps"] == sum(len(op[1]) for op in ops if op[0] == "run")


def test_orders_through_uart_pins():
    """PING then RUN, twice, through a HostLink's UART pins (the real receiver and transmitter)."""
    link = HostLink(CFG, clk_freq=1_000_000, baud=250_000, weights=WEIGHTS, timeout_cycles=200)
    dev = LinkClient(AmaranthTransport(link), CFG, retries=0)
    x1, x2 = inputs(CFG, 2, 1), inputs(CFG, 2, 2)
    assert dev.ping(b"ok") == b"ok"
    y1 = dev.run(x1)
    assert dev.ping(b"") == b""
    y2 = dev.run(x2)
    want = golden_session(CFG, WEIGHTS, [("run", x1), ("run", x2)])
    np.testing.assert_array_equal(y1, want[0])
    np.testing.assert_array_equal(y2, want[1])


# ----------------------------------------------------------------------------- the state machine


class LinkMachine(RuleBasedStateMachine):
    """Random orders of every request and of damaged traffic, each answer checked against the model."""

    cfg = CFG
    totals = {"requests": 0, "damaged": 0, "runs": 0}

    def __init__(self):
        super().__init__()
        eng = engine(self.cfg)
        self.ex = LinkExerciser(AmaranthTransport(eng), self.cfg, WEIGHTS, eng.info)
        assert eng.info.max_steps == MAX_STEPS

    @initialize()
    def load(self):
        if not self.cfg.weights_in_rom:
            self.ex.load_weights(3)

    # requests come in short runs drawn as a list, so every request kind follows every other one often
    # (the lost RUN needed a PING right before it)
    @rule(kinds=st.lists(st.sampled_from(REQUEST_KINDS), min_size=1, max_size=4), seed=st.integers(0, 1 << 30))
    def requests(self, kinds, seed):
        rng = np.random.default_rng(seed)
        for kind in kinds:
            self.ex.do(kind, rng)
            LinkMachine.totals["runs"] += kind.startswith("run")

    # a RUN of its own as well: the requests' draw alone gave as few as 3 RUNs in 4 sequences after an unrelated
    # change (Hypothesis draws constants from the project's source, so derandomized draws move with the code)
    @rule(longest=st.booleans(), seed=st.integers(0, 1 << 30))
    def run(self, longest, seed):
        self.ex.do("run_longest" if longest else "run", np.random.default_rng(seed))
        LinkMachine.totals["runs"] += 1

    @rule(kind=st.sampled_from(DAMAGE_KINDS), seed=st.integers(0, 1 << 30))
    def damage(self, kind, seed):
        self.ex.damage(kind, np.random.default_rng(seed))

    @invariant()
    def nothing_pending(self):
        assert not self.ex.tr._rx and not self.ex.tr._tx

    def teardown(self):
        self.ex.check_alive()
        LinkMachine.totals["requests"] += self.ex.requests
        LinkMachine.totals["damaged"] += self.ex.damaged


class RamLinkMachine(LinkMachine):
    cfg = RAM_CFG


def _run_machine(machine, examples, steps):
    machine.totals.update(requests=0, damaged=0, runs=0)
    case = machine.TestCase
    case.settings = settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    case("runTest").runTest()
    report(
        f"link state machine {machine.__name__}: {examples} sequences, {machine.totals['requests']} valid "
        f"requests, {machine.totals['damaged']} damaged frames, {machine.totals['runs']} RUNs"
    )
    assert machine.totals["requests"] > examples and machine.totals["damaged"] >= examples
    assert machine.totals["runs"] >= examples


@pytest.mark.parametrize("machine", [LinkMachine, RamLinkMachine], ids=["rom", "ram"])
def test_link_state_machine(machine):
    """CI budget: a fixed set of sequences (derandomized), about half a minute per design (3 sequences of the
    RAM design hold no RUN)."""
    _run_machine(machine, examples=4, steps=30)


@pytest.mark.slow
@pytest.mark.parametrize("machine", [LinkMachine, RamLinkMachine], ids=["rom", "ram"])
def test_link_state_machine_long(machine):
    """Thousands of requests and damaged frames."""
    _run_machine(machine, examples=60, steps=40)


def test_random_program_through_uart_pins():
    """The same checks through the UART pins: every answer byte for byte, the device never hung."""
    link = HostLink(RAM_CFG, clk_freq=1_000_000, baud=500_000, timeout_cycles=100)
    ex = LinkExerciser(AmaranthTransport(link), RAM_CFG, WEIGHTS, link.info)
    ex.load_weights(3)
    random_program(ex, np.random.default_rng(11), 20)
    report(f"UART pins: {ex.requests} valid requests, {ex.damaged} damaged frames")
    assert ex.requests > 8 and ex.damaged >= 3


def test_busy_device_drops_bytes_and_answers_after_quiet():
    """Bytes sent while the device answers are dropped (UART); after a quiet line a request is answered."""
    link = HostLink(CFG, clk_freq=1_000_000, baud=250_000, weights=WEIGHTS, timeout_cycles=200)
    tr = AmaranthTransport(link)
    ex = LinkExerciser(tr, CFG, WEIGHTS, link.info)
    x = ex.inputs(np.random.default_rng(0), 4)
    # a RUN and, straight behind it, a second request and garbage that arrive while the RUN executes
    tr.write(encode_frame(Cmd.RUN, encode_run(x, ex.lay.word_bytes)) + encode_frame(Cmd.PING, b"lost") + b"\xa5\x06")
    tr.pause(tr.period * 8_000)
    tr.reset_input_buffer()
    tr.pause(tr.period * 1000)
    # whatever the device made of the leftovers, after a quiet line it answers a request (retry-free driver)
    dev = LinkClient(tr, CFG, retries=0)
    assert dev.ping(b"alive") == b"alive"
    c = dev.counters()
    assert c["idle"] and not c["error"] and c["steps"] == 4
