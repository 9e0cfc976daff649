# amaranth: UnusedElaboratable=no
"""Tier 1: the FFT-mode arithmetic blocks (:mod:`rnnaccel.hw.fft`) against :mod:`rnnaccel.numeric.fft`, bit for bit.

* :class:`ForwardFFT` against ``rfft``: k = 4 .. 32, several ``q_state``
  formats, random segments and extremes (all max / min, alternating max and
  min, which saturates bin k/2), back to back, with random idle input cycles
  and random output stalls; latency and period measured; a hypothesis test.
* :class:`SpectralMAC` against ``spectral_mac``: row blocks of 1 .. 5 column
  blocks back to back, full-range operands and the extreme that needs the
  whole accumulator, idle cycles and stalls; latency measured.
* :class:`InverseFFT` against ``irfft``: full-range packed inputs (the growth
  through every stage), idle cycles and stalls, latency and period measured.
* The three chained (forward -> MAC -> inverse) against
  ``golden.fft_accumulate`` for a config's row blocks.
* :func:`butterfly_schedule`: every butterfly once, dependencies respected.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnaccel.hw.fft import ISSUE_DISTANCE, ForwardFFT, InverseFFT, SpectralMAC, butterfly_schedule
from rnnaccel.numeric import fft, golden
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.fixedpoint import QFormat

SIZES = [4, 8, 16, 32]
FORMATS = [QFormat(16, 12), QFormat(8, 5), QFormat(12, 0), QFormat(4, 6)]


def simulate(top, bench):
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def run_stream(dut, beats, n_out, *, rng=None, idle=0.0, stall=0.0, max_cycles=20000):
    """Drive ``beats`` (dicts of member -> value) into ``dut``, collect ``n_out`` output beats.

    Each cycle the input is idle with probability ``idle`` and ``o_ready`` low
    with probability ``stall``. Returns (outputs, transfer cycles of the inputs,
    cycles of the outputs): outputs as (word0, word1, index, first, last).
    """
    outs, t_in, t_out = [], [], []

    async def bench(ctx):
        i = cycle = 0
        while len(outs) < n_out:
            assert cycle < max_cycles, "the block stopped"
            drive = i < len(beats) and not (rng is not None and rng.random() < idle)
            ready = not (rng is not None and rng.random() < stall)
            ctx.set(dut.i_valid, int(drive))
            if drive:
                for name, value in beats[i].items():
                    ctx.set(getattr(dut, name), value)
            ctx.set(dut.o_ready, int(ready))
            if drive and ctx.get(dut.i_ready):
                t_in.append(cycle)
                i += 1
            if ready and ctx.get(dut.o_valid):
                d = ctx.get(dut.o_data)
                outs.append((d[0], d[1], ctx.get(dut.o_index), ctx.get(dut.o_first), ctx.get(dut.o_last)))
                t_out.append(cycle)
            await ctx.tick()
            cycle += 1

    simulate(dut, bench)
    return outs, t_in, t_out


def check_order(outs, half):
    idx = [o[2] for o in outs]
    assert idx == list(range(half)) * (len(outs) // half)
    assert [o[3] for o in outs] == [int(i == 0) for i in idx]
    assert [o[4] for o in outs] == [int(i == half - 1) for i in idx]


def silence(*components):
    """Components built for their interface only (their ``from_config`` is in hw/fft.py, outside this file's pragma)."""
    for c in components:
        c._MustUse__silence = True


def fft_cfg(k: int):
    return preset("tiny").replace(block_size=k, lanes=k, circulant_mode="fft")


def rand_raw(rng, q, size):
    return rng.integers(q.min_raw, q.max_raw + 1, size=size)


def extremes(lo, hi, k):
    alt = np.array([hi, lo] * (k // 2))
    return np.array([[hi] * k, [lo] * k, alt, -alt.clip(-hi, hi), [lo] + [0] * (k - 1), [hi] + [lo] * (k - 1)])


# ------------------------------------------------------------------ forward
def run_forward(k, q, x, **kw):
    dut = ForwardFFT(k, q)
    outs, t_in, t_out = run_stream(dut, [{"i_data": int(v)} for v in x.ravel()], x.shape[0] * k // 2, **kw)
    check_order(outs, k // 2)
    got = np.array([o[:2] for o in outs], dtype=np.int64).reshape(x.shape)
    return dut, got, t_in, t_out


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("q", FORMATS, ids=str)
def test_forward_matches_rfft(k, q):
    rng = np.random.default_rng(k * 1000 + q.width * 10 + q.frac)
    x = np.concatenate([rand_raw(rng, q, (6, k)), extremes(q.min_raw, q.max_raw, k)])
    _, got, _, _ = run_forward(k, q, x, rng=rng, idle=0.3, stall=0.3)
    np.testing.assert_array_equal(got, fft.rfft(x, q))


def test_forward_saturates_like_rfft():
    # alternating max / min: X(k/2) / k is max + 1/2, which rounds up and saturates
    q, k = QFormat(8, 7), 8
    x = extremes(q.min_raw, q.max_raw, k)[2:3]
    _, got, _, _ = run_forward(k, q, x)
    want = fft.rfft(x, q)
    assert want[0, 1] == q.max_raw and fft.rfft_wide(x)[0, 1] > q.max_raw << fft.stages(k)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("k", SIZES)
def test_forward_latency_and_period(k):
    q = QFormat(16, 12)
    rng = np.random.default_rng(k)
    n = 4
    x = rand_raw(rng, q, (n, k))
    dut, got, t_in, t_out = run_forward(k, q, x)
    np.testing.assert_array_equal(got, fft.rfft(x, q))
    half = k // 2
    assert t_out[0] - t_in[k - 1] == dut.latency
    firsts = t_out[::half]
    assert np.diff(firsts).tolist() == [dut.period] * (n - 1)  # back to back: one segment per period
    assert t_out[half - 1] - t_out[0] + 1 == dut.output_cycles
    assert dut.period == len(butterfly_schedule(k)) and dut.multipliers == (0 if k == 4 else 4)
    assert dut.work_width == q.width + fft.stages(k) + 1


@settings(max_examples=12, deadline=None)
@given(
    k=st.sampled_from([4, 8, 16]),
    width=st.integers(3, 18),
    frac=st.integers(0, 20),
    seed=st.integers(0, 2**32 - 1),
)
def test_forward_hypothesis(k, width, frac, seed):
    q = QFormat(width, frac)
    rng = np.random.default_rng(seed)
    x = rand_raw(rng, q, (2, k))
    x[1, rng.integers(k)] = q.min_raw
    _, got, _, _ = run_forward(k, q, x, rng=rng, idle=0.2, stall=0.2)
    np.testing.assert_array_equal(got, fft.rfft(x, q))


# ------------------------------------------------------------------ spectral MAC
def acc_width(ws, wx, blocks):
    """``Config.fft_acc_width`` for these widths and column blocks."""
    return ws + wx + max(1, int(np.ceil(np.log2(2 * blocks)))) + 1


def run_mac(k, ws, wx, blocks, S, X, **kw):
    """Row blocks r with ``blocks[r]`` column blocks: ``S[r]``, ``X[r]`` (cb, k). Returns (dut, P (rows, k), times)."""
    dut = SpectralMAC(k, ws, wx, acc_width(ws, wx, max(blocks)))
    beats = []
    for r, cb in enumerate(blocks):
        for j in range(cb):
            for i in range(k // 2):
                beats.append(
                    {
                        "i_first": int(j == 0),
                        "i_last": int(j == cb - 1),
                        "i_s": [int(S[r][j, 2 * i]), int(S[r][j, 2 * i + 1])],
                        "i_x": [int(X[r][j, 2 * i]), int(X[r][j, 2 * i + 1])],
                    }
                )
    outs, t_in, t_out = run_stream(dut, beats, len(blocks) * k // 2, **kw)
    check_order(outs, k // 2)
    got = np.array([o[:2] for o in outs], dtype=object).reshape(len(blocks), k)
    return dut, got, t_in, t_out


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("ws,wx", [(8, 16), (6, 8), (16, 12)])
def test_mac_matches_spectral_mac(k, ws, wx):
    rng = np.random.default_rng(k * 100 + ws + wx)
    qs, qx = QFormat(ws, 0), QFormat(wx, 0)
    blocks = [1, 3, 2, 5, 4]
    S = [rand_raw(rng, qs, (cb, k)) for cb in blocks]
    X = [rand_raw(rng, qx, (cb, k)) for cb in blocks]
    # the extremes: most negative everywhere (the largest sums) and max times min
    S[3][:], X[3][:] = qs.min_raw, qx.min_raw
    S[4][:], X[4][:] = qs.max_raw, qx.min_raw
    S[4][:, 3::2] = qs.min_raw
    _, got, _, _ = run_mac(k, ws, wx, blocks, S, X, rng=rng, idle=0.3, stall=0.3)
    for r in range(len(blocks)):
        np.testing.assert_array_equal(got[r], fft.spectral_mac(S[r], X[r][None])[0])


def test_mac_latency_and_back_to_back():
    k, ws, wx = 8, 8, 16
    rng = np.random.default_rng(7)
    blocks = [2, 2, 1]
    S = [rand_raw(rng, QFormat(ws, 0), (cb, k)) for cb in blocks]
    X = [rand_raw(rng, QFormat(wx, 0), (cb, k)) for cb in blocks]
    dut, got, t_in, t_out = run_mac(k, ws, wx, blocks, S, X)
    for r in range(len(blocks)):
        np.testing.assert_array_equal(got[r], fft.spectral_mac(S[r], X[r][None])[0])
    assert t_in == list(range(len(t_in)))  # one beat per cycle
    # the outputs are the beats of each row block's last column block, LATENCY cycles later
    half, ends = k // 2, np.cumsum(blocks) * (k // 2)
    last_beats = [t_in[end - half + i] for end in ends for i in range(half)]
    assert [o - i for o, i in zip(t_out, last_beats)] == [dut.latency] * len(t_out)
    assert dut.latency == SpectralMAC.LATENCY == 4


def test_mac_from_config():
    cfg = fft_cfg(8)
    dut = SpectralMAC.from_config(cfg)
    silence(dut)
    assert dut.acc_width == cfg.fft_acc_width and dut.k == 8 and dut.period == 4
    assert dut.i_s.shape().elem_shape.width == cfg.q_spectrum.width
    assert dut.i_x.shape().elem_shape.width == cfg.q_state.width


# ------------------------------------------------------------------ inverse
def run_inverse(k, A, P, **kw):
    dut = InverseFFT(k, A)
    half = k // 2
    beats = [{"i_data": [int(P[s, 2 * i]), int(P[s, 2 * i + 1])]} for s in range(P.shape[0]) for i in range(half)]
    outs, t_in, t_out = run_stream(dut, beats, P.shape[0] * half, **kw)
    check_order(outs, half)
    got = np.zeros(P.shape, dtype=object)
    for n, (y0, y1, i, _, _) in enumerate(outs):
        got[n // half, i], got[n // half, i + half] = y0, y1
    return dut, got, t_in, t_out


@pytest.mark.parametrize("k", SIZES)
@pytest.mark.parametrize("A", [6, 21, 34, 44])
def test_inverse_matches_irfft(k, A):
    rng = np.random.default_rng(k * 100 + A)
    lo, hi = -(1 << (A - 1)), (1 << (A - 1)) - 1
    P = np.concatenate([rng.integers(lo, hi + 1, size=(6, k)), extremes(lo, hi, k)]).astype(object)
    _, got, _, _ = run_inverse(k, A, P, rng=rng, idle=0.3, stall=0.3)
    want = fft.irfft(P)
    np.testing.assert_array_equal(got, want)
    assert max(abs(int(v)) for v in want.ravel()).bit_length() < A + fft.stages(k) + 1  # fits the output width


@pytest.mark.parametrize("k", SIZES)
def test_inverse_latency_and_period(k):
    A, n = 30, 4
    rng = np.random.default_rng(k + 1)
    P = rng.integers(-(1 << (A - 1)), 1 << (A - 1), size=(n, k))
    dut, got, t_in, t_out = run_inverse(k, A, P)
    np.testing.assert_array_equal(got, fft.irfft(P))
    half = k // 2
    assert t_out[0] - t_in[half - 1] == dut.latency
    assert np.diff(t_out[::half]).tolist() == [dut.period] * (n - 1)
    assert dut.width == A + fft.stages(k) + 1 and dut.o_data.shape().elem_shape.width == dut.width


# ------------------------------------------------------------------ the chain
@pytest.mark.parametrize("k", [8, 16])
def test_chain_matches_golden(k):
    """Forward -> MAC -> inverse for every row block of a config's matrix, as ``golden.fft_accumulate``."""
    cfg = fft_cfg(k)
    rng = np.random.default_rng(k)
    rb, cb = 3, 2
    S = rand_raw(rng, cfg.q_spectrum, (1, rb, cb, k))
    x = rand_raw(rng, cfg.q_state, (1, cb * k))
    want = golden.fft_accumulate(cfg, [(S, x)])[0, 0].reshape(rb, k)

    fwd, mac, inv = ForwardFFT.from_config(cfg), SpectralMAC.from_config(cfg), InverseFFT.from_config(cfg)
    top = Module()
    top.submodules += [fwd, mac, inv]
    top.d.comb += [
        inv.i_valid.eq(mac.o_valid),
        inv.i_data.eq(mac.o_data),
        mac.o_ready.eq(inv.i_ready),
    ]
    # the forward spectra X_j go to a testbench memory; the MAC reads them (with S) per row block
    half = k // 2
    got = np.zeros((rb, k), dtype=object)

    async def bench(ctx):
        spectra = np.zeros((cb, k), dtype=np.int64)
        words = [int(v) for v in x[0]]
        beats = [(r, j, i) for r in range(rb) for j in range(cb) for i in range(half)]
        n_in = n_x = n_mac = n_out = 0
        for _ in range(3000):
            if n_out == rb * half:
                break
            ctx.set(fwd.i_valid, int(n_in < len(words)))
            if n_in < len(words):
                ctx.set(fwd.i_data, words[n_in])
                n_in += ctx.get(fwd.i_ready)
            if ctx.get(fwd.o_valid):
                d = ctx.get(fwd.o_data)
                i = ctx.get(fwd.o_index)
                spectra[n_x // half, 2 * i : 2 * i + 2] = [d[0], d[1]]
                n_x += 1
            feed = n_x == cb * half and n_mac < len(beats)
            ctx.set(mac.i_valid, int(feed))
            if feed:
                r, j, i = beats[n_mac]
                ctx.set(mac.i_first, int(j == 0))
                ctx.set(mac.i_last, int(j == cb - 1))
                ctx.set(mac.i_s, [int(S[0, r, j, 2 * i]), int(S[0, r, j, 2 * i + 1])])
                ctx.set(mac.i_x, [int(spectra[j, 2 * i]), int(spectra[j, 2 * i + 1])])
                n_mac += ctx.get(mac.i_ready)
            if ctx.get(inv.o_valid):
                d = ctx.get(inv.o_data)
                i = ctx.get(inv.o_index)
                got[n_out // half, i], got[n_out // half, i + half] = d[0], d[1]
                n_out += 1
            await ctx.tick()
        assert n_out == rb * half

    simulate(top, bench)
    np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ schedule and interface
@pytest.mark.parametrize("k", SIZES + [64])
def test_schedule_is_a_valid_transform_order(k):
    sched = butterfly_schedule(k)
    L = fft.stages(k)
    issued = [bf for bf in sched if bf is not None]
    assert sorted((bf.stage, bf.index) for bf in issued) == [(s, i) for s in range(1, L + 1) for i in range(k // 2)]
    assert [bf.index for bf in issued if bf.stage == L] == list(range(k // 2))
    for s in range(1, L + 1):
        assert [bf.twiddle for bf in issued if bf.stage == s and bf.index < (1 << (s - 1))] == list(
            fft.stage_twiddles(k, s)
        )
    written = {}
    for t, bf in enumerate(sched):
        if bf is None:
            continue
        if bf.stage > 1:
            for pos in (bf.a, bf.b):
                assert written[pos][0] == bf.stage - 1 and t - written[pos][1] >= ISSUE_DISTANCE
        written[bf.a] = written[bf.b] = (bf.stage, t)
    assert [sum(bf is not None for bf in sched[: k // 2])] == [k // 2]  # stage 1 first


def test_interfaces_and_checks():
    cfg = fft_cfg(16)
    fwd, inv = ForwardFFT.from_config(cfg), InverseFFT.from_config(cfg)
    silence(fwd, inv)
    assert fwd.q == cfg.q_state and fwd.k == 16 and fwd.stages == 4
    assert inv.acc_width == cfg.fft_acc_width and inv.width == cfg.fft_acc_width + 5 <= cfg.fft_out_width
    assert fwd.o_data.shape().elem_shape.width == cfg.q_state.width
    with pytest.raises(ValueError, match="power of two"):
        ForwardFFT(12, QFormat(8, 4))
    with pytest.raises(TypeError, match="q must be a QFormat"):
        ForwardFFT(8, 8)
    with pytest.raises(ValueError, match="acc_width"):
        InverseFFT(8, 1)
    with pytest.raises(ValueError, match="state_width"):
        SpectralMAC(8, 8, True, 20)
    with pytest.raises(TypeError, match="cfg must be a Config"):
        SpectralMAC.from_config("tiny")
