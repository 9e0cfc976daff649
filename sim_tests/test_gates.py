# amaranth: UnusedElaboratable=no
"""GateUnit of every cell type and variant in the Amaranth simulator, bit-exact
against the golden update functions of rnnaccel.numeric.golden, with random clock
enable stalls and input gaps; hypothesis varies the Q formats and tables."""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnnaccel.numeric import golden
from rnnaccel.numeric.config import Config
from rnnaccel.numeric.fixedpoint import QFormat, saturate
from rnnaccel.hw.gates import GateUnit

# id -> (config changes, phase, layer)
VARIANTS = {
    "lstm": (dict(cell="lstm"), "update", 0),
    "gru-after": (dict(cell="gru", gru_reset_after=True), "update", 0),
    "gru-before": (dict(cell="gru", gru_reset_after=False), "update", 0),
    "gru-before-reset": (dict(cell="gru", gru_reset_after=False), "reset", 0),
    "sru-g3": (dict(cell="sru"), "update", 0),
    "sru-g4": (dict(cell="sru", input_size=8), "update", 0),
    "qrnn": (dict(cell="qrnn"), "update", 0),
    "rnn": (dict(cell="rnn"), "update", 0),
}

#: Latencies for the default config (interpolating tables, activation latency 6), with the one-cycle input
#: register (hw/gates.py INPUT_LATENCY).
DEFAULT_LATENCY = {
    "lstm": 18,
    "gru-after": 18,
    "gru-before": 10,
    "gru-before-reset": 10,
    "sru-g3": 17,
    "sru-g4": 17,
    "qrnn": 11,
    "rnn": 9,
}


def draw(rng: np.random.Generator, q: QFormat, shape) -> np.ndarray:
    """Raw values of ``q``: a mix of the full range, the saturation edges, zero and small values."""
    n = int(np.prod(shape))
    full = rng.integers(q.min_raw, q.max_raw + 1, n)
    edge = np.where(rng.random(n) < 0.5, q.min_raw + rng.integers(0, 4, n), q.max_raw - rng.integers(0, 4, n))
    tiny = rng.integers(-8, 9, n)
    few = rng.integers(-(6 << q.frac), (6 << q.frac) + 1, n)  # |value| < 6: the tables' active range
    pick = rng.integers(0, 4, n)
    out = np.choose(pick, [full, edge, tiny, few])
    return np.clip(out, q.min_raw, q.max_raw).reshape(shape).astype(np.int64)


def make_inputs(cfg: Config, dut: GateUnit, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = len(dut.gates)
    return {
        "i_xp": draw(rng, cfg.q_pre, (n, g)),
        "i_hp": draw(rng, cfg.q_pre, (n, g)),
        "i_c": draw(rng, cfg.q_cell, (n,)),
        "i_h": draw(rng, cfg.q_state, (n,)),
        "i_x": draw(rng, cfg.q_state, (n,)),
    }


def expected(cfg: Config, dut: GateUnit, ins: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(h', c') from the golden update functions, elements as one batch of hidden size N."""
    xp, hp = ins["i_xp"].T[None], ins["i_hp"].T[None]  # (1, G, N)
    c, h, x = ins["i_c"][None], ins["i_h"][None], ins["i_x"][None]  # (1, N)
    zero = np.zeros_like(c)
    v = dut.variant
    if v == "lstm":
        h_new, c_new = golden.lstm_update(cfg, saturate(xp + hp, cfg.q_pre), c)
    elif v in ("gru_after", "gru_before"):
        r, z = golden.gru_gates(cfg, xp, hp)
        n_pre = golden.gru_candidate_pre(cfg, xp[:, 2], hp[:, 2], r if v == "gru_after" else None)
        h_new, c_new = golden.gru_update(cfg, n_pre, z, h), zero
    elif v == "gru_reset":
        r, _ = golden.gru_gates(cfg, xp, hp)
        h_new, c_new = golden.gru_reset_hidden(cfg, r, h), zero
    elif v == "sru":
        hw, hw_frac = (xp[:, 3], cfg.q_pre.frac) if xp.shape[1] == 4 else (x, cfg.q_state.frac)
        h_new, c_new = golden.sru_update(cfg, xp, c, hw, hw_frac)
    elif v == "qrnn":
        h_new, c_new = golden.qrnn_update(cfg, xp, c)
    else:
        h_new, c_new = golden.rnn_update(cfg, saturate(xp + hp, cfg.q_pre)), zero
    return h_new[0], c_new[0]


def run_gate(dut: GateUnit, ins: dict[str, np.ndarray], *, seed: int, stall: float, gap: float):
    """Feed one element per enabled cycle (with random stalls and gaps); collect (h', c').

    One testbench drives and samples; each element must come out exactly
    ``dut.latency`` enabled edges after it went in.
    """
    rng = random.Random(seed)
    n = len(ins["i_c"])
    rows = [{name: (arr[k].tolist() if arr.ndim == 2 else int(arr[k])) for name, arr in ins.items()} for k in range(n)]
    got: list[tuple[int, int]] = []

    async def bench(ctx):
        k, edge = 0, 0
        entered: list[int] = []
        for _ in range(4 * n + 8 * dut.latency + 100):
            if len(got) == n:
                return
            en = int(rng.random() >= stall)
            push = k < n and rng.random() >= gap
            ctx.set(dut.en, en)
            ctx.set(dut.i_valid, int(push))
            if push:
                for name, value in rows[k].items():
                    ctx.set(getattr(dut, name), value)
            *_, o_valid, o_h, o_c = await ctx.tick().sample(dut.o_valid, dut.o_h, dut.o_c)
            if en:
                if o_valid:
                    assert edge - entered[len(got)] == dut.latency, "latency differs from dut.latency"
                    got.append((o_h, o_c))
                if push:
                    entered.append(edge)
                    k += 1
                edge += 1
        raise AssertionError(f"only {len(got)} of {n} elements came out")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    arr = np.array(got, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def check(cfg: Config, phase: str, layer: int, *, n: int, seed: int, stall: float = 0.2, gap: float = 0.1):
    dut = GateUnit(cfg, phase, layer)
    ins = make_inputs(cfg, dut, n, seed)
    want_h, want_c = expected(cfg, dut, ins)
    got_h, got_c = run_gate(dut, ins, seed=seed, stall=stall, gap=gap)
    for what, got, want in (("h", got_h, want_h), ("c", got_c, want_c)):
        bad = np.nonzero(got != want)[0]
        assert bad.size == 0, (
            f"{dut.variant}: {bad.size} of {n} {what}' differ; first at element {bad[0]}: got {got[bad[0]]}, "
            f"want {want[bad[0]]}, inputs { {k: v[bad[0]].tolist() for k, v in ins.items()} }"
        )


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_default_config(variant):
    changes, phase, layer = VARIANTS[variant]
    cfg = Config().replace(**changes)
    assert GateUnit(cfg, phase, layer).latency == DEFAULT_LATENCY[variant]
    check(cfg, phase, layer, n=400, seed=sum(map(ord, variant)))


@pytest.mark.parametrize("variant", ["lstm", "gru-after", "sru-g4", "qrnn"])
def test_no_interpolation_narrow_formats(variant):
    """Tables without interpolation, an activation format without room for ONE, 10-12 bit state."""
    changes, phase, layer = VARIANTS[variant]
    cfg = Config(
        q_state="Q3.8", q_cell="Q3.8", q_pre="Q4.6", q_act="Q0.11", interpolate=False, table_entries=64
    ).replace(**changes)
    check(cfg, phase, layer, n=300, seed=3, stall=0.3, gap=0.0)


_Q_PRE = ["Q3.8", "Q4.11", "Q5.6"]
_Q_CELL = ["Q4.7", "Q3.12", "Q2.9"]
_Q_STATE = ["Q3.8", "Q2.13", "Q5.10"]
_Q_ACT = ["Q1.8", "Q0.11", "Q1.14"]


@settings(max_examples=20, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    variant=st.sampled_from(list(VARIANTS)),
    q_pre=st.sampled_from(_Q_PRE),
    q_cell=st.sampled_from(_Q_CELL),
    q_state=st.sampled_from(_Q_STATE),
    q_act=st.sampled_from(_Q_ACT),
    entries=st.sampled_from([16, 64, 256]),
    sigmoid_range=st.sampled_from([4.0, 8.0]),
    tanh_range=st.sampled_from([2.0, 4.0]),
    interpolate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_formats_hypothesis(
    variant, q_pre, q_cell, q_state, q_act, entries, sigmoid_range, tanh_range, interpolate, seed
):
    changes, phase, layer = VARIANTS[variant]
    # every combination of these choices is a valid config (the tables are never finer than the inputs)
    cfg = Config(
        q_pre=q_pre,
        q_cell=q_cell,
        q_state=q_state,
        q_act=q_act,
        table_entries=entries,
        sigmoid_range=sigmoid_range,
        tanh_range=tanh_range,
        interpolate=interpolate,
        **changes,
    )
    check(cfg, phase, layer, n=120, seed=seed, stall=0.2, gap=0.1)


# --------------------------------------------------------------------------
# parameters and ports
# --------------------------------------------------------------------------


def test_parameter_checks():
    with pytest.raises(TypeError, match=r"'lstm'"):
        GateUnit("lstm")
    with pytest.raises(ValueError, match=r"'forward'"):
        GateUnit(Config(), "forward")
    with pytest.raises(ValueError, match=r"'reset'.*cell='lstm'"):
        GateUnit(Config(), "reset")
    with pytest.raises(ValueError, match=r"gru_reset_after=True"):
        GateUnit(Config(cell="gru"), "reset")
    with pytest.raises(TypeError, match=r"'0'"):
        GateUnit(Config(), "update", "0")
    with pytest.raises(ValueError, match=r"not 1"):
        GateUnit(Config(), "update", 1)


def test_sru_gate_count_by_layer():
    cfg = Config(cell="sru", input_size=8, hidden_size=16, num_layers=2)
    assert GateUnit(cfg, layer=0).gates == ("x", "f", "r", "s")
    assert GateUnit(cfg, layer=1).gates == ("x", "f", "r")
    assert len(GateUnit(cfg, layer=0).i_xp) == 4


def test_verilog_deterministic_with_registered_products():
    cfg = Config()
    texts = [verilog.convert(GateUnit(cfg), name="gates", emit_src=False) for _ in range(2)]
    assert texts[0] == texts[1]
    # three gate products, and an interpolation product in each activation unit whose remainder is
    # wider than SHIFT_ADD_MAX_BITS (narrower ones are shift-and-add); each a plain multiply of two
    # registers into a register (DSP-mappable)
    from rnnaccel.hw.activation import SHIFT_ADD_MAX_BITS

    units = [("sigmoid", cfg.q_pre.frac)] * 3 + [("tanh", cfg.q_pre.frac), ("tanh", cfg.q_cell.frac)]
    interp_muls = sum(cfg.table_shift(fn, frac) > SHIFT_ADD_MAX_BITS for fn, frac in units)
    assert interp_muls == 3  # sigmoid over [-8, 8): 7-bit remainder; tanh over [-4, 4): 6 bits
    products = re.findall(r"^\s*assign .+ = \$signed\(.+\) \* \$signed\(.+\);$", texts[0], re.M)
    assert len(products) == 3 + interp_muls
    assert len(re.findall(r"reg \[31:0\] rom \[128:0\];", texts[0])) == 5
