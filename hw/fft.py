"""The arithmetic blocks of the FFT circulant mode (``circulant_mode = 'fft'``), bit-exact to its numeric module.

* :class:`ForwardFFT`: the real FFT of one k-word segment (:func:`~rnnaccel.numeric.fft.rfft`):
  k ``q_state`` words in, the packed Hermitian spectrum ``DFT(x) / k`` out,
  in ``q_state``, one bin (two packed words) per beat.
* :class:`SpectralMAC`: ``P = sum_j S_j X_j`` bin by bin over the column blocks
  of a row block (:func:`~rnnaccel.numeric.fft.spectral_mac`), exact, four
  registered multipliers, one bin per beat.
* :class:`InverseFFT`: the unscaled inverse (:func:`~rnnaccel.numeric.fft.irfft`):
  the packed accumulator in, k real outputs at ``fs + f`` fraction bits out,
  two per beat.

The two transforms are one iterative in-place radix-2 engine (decimation in
time, input in bit-reversed order): **one butterfly per cycle**, four
registered multipliers (one complex twiddle product; for k = 4 every twiddle
is 1 or -i and the products are shifts and negations), twiddles from a ROM of
k/2 words. The butterflies of a segment follow a static schedule computed
here (:func:`butterfly_schedule`, a ROM in the gateware): L stages of k/2
butterflies, a butterfly issued once both of its operands are written back
(:data:`ISSUE_DISTANCE` cycles after their butterflies), bubbles where none
is ready, the last stage in natural order so its results leave as they are
computed (no output buffer). The working memory is two banks of k/2 complex
words split by the parity of the position (a butterfly's two positions differ
in one bit, so its two reads and two writes fall in different banks: two
simple dual-port memories). Stage 1 reads the input buffer (two segments,
ping-pong) instead, so a segment is loaded while the one before is computed
and segments run back to back: one every :attr:`period` cycles.

Every block has the same stream handshake: an input beat moves when
``i_valid & i_ready``; an output beat is held on ``o_data`` while ``o_valid``
is high and ``o_ready`` low (the datapath stalls as a whole behind it). A
transform's loader is independent of that stall. Each block's ``latency``
(cycles from the last input beat of a segment to its first output beat, with
the block idle and never stalled) and ``period`` (cycles per segment back to
back) are properties, tested by measurement.
"""

from __future__ import annotations

import dataclasses
import functools

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..numeric import fft
from ..numeric.config import Config
from ..numeric.fixedpoint import QFormat, hw_narrow, hw_round_shift
from .pipeline import Stage

__all__ = [
    "ISSUE_DISTANCE",
    "ENGINE_LATENCY",
    "Butterfly",
    "butterfly_schedule",
    "ForwardFFT",
    "SpectralMAC",
    "InverseFFT",
]

#: Cycles from a butterfly's issue (its reads) to the first cycle its results can be read back.
ISSUE_DISTANCE = 6
#: Cycles from fetching a butterfly of the last stage to its output beat (``o_valid``).
ENGINE_LATENCY = ISSUE_DISTANCE + 1

_FT = fft.TWIDDLE.frac  # 14
_TW = fft.TWIDDLE.width  # 16


@dataclasses.dataclass(frozen=True)
class Butterfly:
    """One radix-2 butterfly: ``stage`` s (1 .. L), ``index`` i (0 .. k/2 - 1), positions ``a``, ``b`` and twiddle m.

    Stage s pairs positions ``a = g 2h + j`` and ``b = a + h`` (``h = 2**(s-1)``,
    ``i = g h + j``) with twiddle ``W_k^m``, ``m = j k / 2h``
    (:func:`rnnaccel.numeric.fft.stage_twiddles`).
    """

    stage: int
    index: int
    a: int
    b: int
    twiddle: int


def _butterflies(k: int, s: int) -> list[Butterfly]:
    L = fft.stages(k)
    h = 1 << (s - 1)
    out = []
    for i in range(k // 2):
        j = i & (h - 1)
        a = ((i >> (s - 1)) << s) | j
        out.append(Butterfly(s, i, a, a + h, j << (L - s)))
    return out


@functools.lru_cache(maxsize=None)
def butterfly_schedule(k: int, distance: int = ISSUE_DISTANCE) -> tuple[Butterfly | None, ...]:
    """The issue order of one k-point transform's butterflies on a one-butterfly-per-cycle engine.

    Greedy list scheduling, one slot per cycle: the first ready butterfly, lower
    stages first, then by index; ``None`` is a bubble. A butterfly of stage
    s > 1 is ready ``distance`` cycles after both butterflies of stage s - 1
    that write its positions were issued (stage 1 reads the input buffer).
    The last stage is issued in natural order (its results are the output).
    In place, a position is read and rewritten by one butterfly per stage, so
    issuing later stages early never overwrites a value still to be read.
    """
    L = fft.stages(k)
    pending = [bf for s in range(1, L + 1) for bf in _butterflies(k, s)]
    written = {}  # position -> (stage, issue cycle) of its last writer
    out: list[Butterfly | None] = []
    next_out = 0
    while pending:
        t = len(out)
        pick = None
        for bf in pending:
            if bf.stage == L and bf.index != next_out:
                continue
            if bf.stage == 1 or all(
                written.get(p, (0, 0))[0] == bf.stage - 1 and written[p][1] + distance <= t for p in (bf.a, bf.b)
            ):
                pick = bf
                break
        out.append(pick)
        if pick is not None:
            pending.remove(pick)
            written[pick.a] = written[pick.b] = (pick.stage, t)
            next_out += pick.stage == L
    return tuple(out)


def _bit_reverse(value, bits: int):
    return Cat(*(value[j] for j in reversed(range(bits)))) if bits > 0 else Const(0, 1)


def _pair(shape) -> data.ArrayLayout:
    return data.ArrayLayout(shape, 2)


class _Radix2Engine(wiring.Component):
    """The iterative in-place radix-2 engine shared by :class:`ForwardFFT` and :class:`InverseFFT`.

    Pipeline of a butterfly (one per cycle): fetch (schedule ROM) -> issue
    (read addresses of the banks, the input buffer, the twiddle ROM) -> data
    -> operand registers -> product registers (4 multipliers) -> twiddle
    product ``W b`` -> results -> write-back, or the output register on the
    last stage. Subclasses give the input buffer, the stage-1 operands, the
    twiddle words, the butterfly's combination and the output.
    """

    #: Input beats per segment (set by each subclass).
    IN_BEATS = 0

    def __init__(self, k: int, work_width: int, members: dict):
        self._k = fft.check_size(k)
        self._L = fft.stages(k)
        self._ww = work_width
        self._schedule = butterfly_schedule(self._k)
        super().__init__(
            {
                "i_valid": In(1),
                "i_ready": Out(1),
                **members,
                "o_valid": Out(1),
                "o_ready": In(1, init=1),
                "o_index": Out(range(self._k // 2)),
                "o_first": Out(1),
                "o_last": Out(1),
            }
        )

    @property
    def k(self) -> int:
        """Transform size."""
        return self._k

    @property
    def stages(self) -> int:
        """Radix-2 stages, ``log2 k``."""
        return self._L

    @property
    def work_width(self) -> int:
        """Width of each real or imaginary part in the working memory."""
        return self._ww

    @property
    def schedule(self) -> tuple[Butterfly | None, ...]:
        """The butterflies of a segment in issue order (:func:`butterfly_schedule`; ``None``: a bubble)."""
        return self._schedule

    @property
    def period(self) -> int:
        """Cycles per segment back to back (the schedule's length: ``L k / 2`` butterflies plus its bubbles)."""
        return len(self._schedule)

    @property
    def latency(self) -> int:
        """Cycles from the last input beat of a segment (block idle) to its first output beat."""
        first = next(t for t, bf in enumerate(self._schedule) if bf is not None and bf.stage == self._L)
        return 1 + first + ENGINE_LATENCY

    @property
    def output_cycles(self) -> int:
        """Cycles from a segment's first output beat to its last (k/2 beats; more if the last stage has bubbles)."""
        last = [t for t, bf in enumerate(self._schedule) if bf is not None and bf.stage == self._L]
        return last[-1] - last[0] + 1

    @property
    def multipliers(self) -> int:
        """Registered multipliers (``*``) of the engine: 4, none for k = 4 (twiddles 1 and -i only)."""
        return 0 if self._trivial_only else 4

    @property
    def _trivial_only(self) -> bool:
        return bool(all(fft.trivial_twiddle(self._k, range(self._k // 2))))

    # -- hooks ------------------------------------------------------------
    def _twiddle_words(self) -> list[tuple[int, int]]:
        """``(c, d)`` per m: the engine forms ``(c br + d bi, c bi - d br)``."""
        raise NotImplementedError

    def _input_buffer(self, m, accept, ld_par, ld_cnt):
        raise NotImplementedError

    def _stage1_read(self, m, p, en, a_pos, par):
        """Issue stage: read the input buffer; returns a callable giving the stage-1 operands one cycle later."""
        raise NotImplementedError

    def _combine(self, ar, ai, tr, ti):
        """``(a', b')`` as ((re, im), (re, im)) expressions from ``a`` and ``t = W b``."""
        raise NotImplementedError

    def _output(self, m, a2, b2, index):
        """The output beat's two words from the last stage's results."""
        raise NotImplementedError

    # -- the engine ---------------------------------------------------------
    def _product(self, tw, x):
        if not self._trivial_only:
            return tw * x
        # k = 4: tw is 0, 2**14 or -2**14
        big = x << _FT
        return Mux(tw == 0, 0, Mux(tw[_TW - 1], -big, big))

    def elaborate(self, platform):
        k, L, ww = self._k, self._L, self._ww
        half = k // 2
        sched = self._schedule
        N = len(sched)
        m = Module()

        en = Signal()
        m.d.comb += en.eq(~(self.o_valid & ~self.o_ready))
        p = Stage(m, en)

        # ---- loader: fills the input buffer's halves in turn (not stalled by the output)
        full = [Signal(name="full0"), Signal(name="full1")]
        ld_par = Signal(name="ld_par")
        ld_cnt = Signal(range(self.IN_BEATS), name="ld_cnt")
        m.d.comb += self.i_ready.eq(~Mux(ld_par, full[1], full[0]))
        accept = Signal()
        m.d.comb += accept.eq(self.i_valid & self.i_ready)
        ld_done = Signal()
        m.d.comb += ld_done.eq(accept & (ld_cnt == self.IN_BEATS - 1))
        with m.If(accept):
            m.d.sync += ld_cnt.eq(Mux(ld_done, 0, ld_cnt + 1))
            with m.If(ld_done):
                m.d.sync += ld_par.eq(~ld_par)
        self._input_buffer(m, accept, ld_par, ld_cnt)

        # ---- schedule ROM: valid, first, last, free, a, b, m
        tw_bits = max(1, L - 1)
        layout = data.StructLayout(
            {
                "valid": 1,
                "first": 1,
                "last": 1,
                "free": 1,
                "a": unsigned(L),
                "b": unsigned(L),
                "tw": unsigned(tw_bits),
            }
        )
        last_first = max(t for t, bf in enumerate(sched) if bf is not None and bf.stage == 1)
        rows = []
        for t, bf in enumerate(sched):
            if bf is None:
                rows.append(0)
                continue
            fields = dict(
                valid=1, first=int(bf.stage == 1), last=int(bf.stage == L), free=int(t == last_first), a=bf.a, b=bf.b
            )
            fields["tw"] = bf.twiddle
            rows.append(layout.const(fields).as_value().value)
        m.submodules.schedule = rom = Memory(shape=unsigned(layout.size), depth=N, init=rows)
        rom_rd = rom.read_port(domain="sync")

        pc = Signal(range(N), name="pc")
        active = Signal(name="active")
        cmp_par = Signal(name="cmp_par")
        fetch = Signal()
        m.d.comb += fetch.eq(active | Mux(cmp_par, full[1], full[0]))
        m.d.comb += [rom_rd.addr.eq(pc), rom_rd.en.eq(en)]
        with m.If(en & fetch):
            with m.If(pc == N - 1):
                m.d.sync += [pc.eq(0), active.eq(0), cmp_par.eq(~cmp_par)]
            with m.Else():
                m.d.sync += [pc.eq(pc + 1), active.eq(1)]

        # ---- issue: the fetched entry; memory and ROM read addresses
        fetched = p.reg(fetch, name="fetched")
        par0 = p.reg(cmp_par, name="seg_par")
        e = data.View(layout, rom_rd.data)
        v0 = fetched & e.valid
        pa0 = e.a.xor()  # bank of position a (b is in the other)

        bank_w = 2 * ww
        banks = []
        for n in range(2):
            mem = Memory(shape=unsigned(bank_w), depth=half, init=[])
            m.submodules[f"bank{n}"] = mem
            banks.append((mem.read_port(domain="sync"), mem.write_port()))
        for n, (rd, _) in enumerate(banks):
            mine_a = pa0 == n
            m.d.comb += [rd.addr.eq(Mux(mine_a, e.a[1:], e.b[1:])), rd.en.eq(en)]

        m.submodules.twiddles = tw_rom = Memory(
            shape=unsigned(2 * _TW),
            depth=half,
            init=[(c & 0xFFFF) | ((d & 0xFFFF) << _TW) for c, d in self._twiddle_words()],
        )
        tw_rd = tw_rom.read_port(domain="sync")
        m.d.comb += [tw_rd.addr.eq(e.tw), tw_rd.en.eq(en)]

        stage1 = self._stage1_read(m, p, en, e.a, par0)
        for n in range(2):
            with m.If(en & v0 & e.free & (par0 == n)):
                m.d.sync += full[n].eq(0)
        with m.If(ld_done):  # the loader never completes the half being freed (that one is full)
            for n in range(2):
                with m.If(ld_par == n):
                    m.d.sync += full[n].eq(1)

        # ---- data: route the bank words (or the input buffer's) into the operand registers
        v1 = p.reg(v0, name="v1")
        first1 = p.reg(e.first, name="first1")
        last1 = p.reg(e.last, name="last1")
        pa1 = p.reg(pa0, name="pa1")
        a1 = p.reg(e.a, name="a1")
        b1 = p.reg(e.b, name="b1")
        word_a = Mux(pa1, banks[1][0].data, banks[0][0].data)
        word_b = Mux(pa1, banks[0][0].data, banks[1][0].data)
        (fa_r, fa_i), (fb_r, fb_i) = stage1()
        sw = signed(ww)
        ar2 = p.reg(Mux(first1, fa_r, word_a[:ww].as_signed()), name="ar", shape=sw)
        ai2 = p.reg(Mux(first1, fa_i, word_a[ww:].as_signed()), name="ai", shape=sw)
        br2 = p.reg(Mux(first1, fb_r, word_b[:ww].as_signed()), name="br", shape=sw)
        bi2 = p.reg(Mux(first1, fb_i, word_b[ww:].as_signed()), name="bi", shape=sw)
        c2 = p.reg(tw_rd.data[:_TW].as_signed(), name="tw_c")
        d2 = p.reg(tw_rd.data[_TW:].as_signed(), name="tw_d")
        v2, last2, pa2, a2p, b2p = (
            p.reg(s, name=f"{n}2") for s, n in ((v1, "v"), (last1, "last"), (pa1, "pa"), (a1, "a"), (b1, "b"))
        )

        # ---- products (one DSP each), then W b
        pw = ww + _TW
        p_cr = p.reg(self._product(c2, br2), name="p_cr", shape=signed(pw))
        p_di = p.reg(self._product(d2, bi2), name="p_di", shape=signed(pw))
        p_ci = p.reg(self._product(c2, bi2), name="p_ci", shape=signed(pw))
        p_dr = p.reg(self._product(d2, br2), name="p_dr", shape=signed(pw))
        ar3, ai3 = p.reg(ar2, name="ar3"), p.reg(ai2, name="ai3")
        v3, last3, pa3, a3p, b3p = (
            p.reg(s, name=f"{n}3") for s, n in ((v2, "v"), (last2, "last"), (pa2, "pa"), (a2p, "a"), (b2p, "b"))
        )
        tr4 = p.reg(p_cr + p_di, name="t_re")
        ti4 = p.reg(p_ci - p_dr, name="t_im")
        ar4, ai4 = p.reg(ar3, name="ar4"), p.reg(ai3, name="ai4")
        v4, last4, pa4, a4p, b4p = (
            p.reg(s, name=f"{n}4") for s, n in ((v3, "v"), (last3, "last"), (pa3, "pa"), (a3p, "a"), (b3p, "b"))
        )

        # ---- results
        (xa_r, xa_i), (xb_r, xb_i) = self._combine(ar4, ai4, tr4, ti4)
        ra_r, ra_i = p.reg(xa_r, name="ra_re", shape=sw), p.reg(xa_i, name="ra_im", shape=sw)
        rb_r, rb_i = p.reg(xb_r, name="rb_re", shape=sw), p.reg(xb_i, name="rb_im", shape=sw)
        v5, last5, pa5, a5p, b5p = (
            p.reg(s, name=f"{n}5") for s, n in ((v4, "v"), (last4, "last"), (pa4, "pa"), (a4p, "a"), (b4p, "b"))
        )

        # ---- write-back (stages 1 .. L-1) or output (stage L; a = i there)
        for n, (_, wr) in enumerate(banks):
            mine_a = pa5 == n
            m.d.comb += [
                wr.addr.eq(Mux(mine_a, a5p[1:], b5p[1:])),
                wr.data.eq(Mux(mine_a, Cat(ra_r, ra_i), Cat(rb_r, rb_i))),
                wr.en.eq(en & v5 & ~last5),
            ]
        out0, out1 = self._output(m, (ra_r, ra_i), (rb_r, rb_i), a5p)
        index = a5p[: L - 1] if L > 1 else Const(0, 1)
        with m.If(en):
            m.d.sync += [
                self.o_valid.eq(v5 & last5),
                self.o_data[0].eq(out0),
                self.o_data[1].eq(out1),
                self.o_index.eq(index),
                self.o_first.eq(index == 0),
                self.o_last.eq(index == half - 1),
            ]
        return m


class ForwardFFT(_Radix2Engine):
    """The fixed-point real FFT of k-word segments, exactly :func:`rnnaccel.numeric.fft.rfft`.

    A segment is k words of ``q`` (``q_state``) in natural order, one per input
    beat; its packed spectrum ``DFT(x) / k`` (:func:`rnnaccel.numeric.fft.pack`)
    leaves as k/2 output beats, beat i carrying packed words ``2i`` and
    ``2i + 1`` (beat 0: ``Re X0, Re X(k/2)``; beat i: ``Re Xi, Im Xi``), each
    narrowed to ``q``. Working values have ``q.frac + L`` fraction bits and
    ``q.width + L + 1`` bits; every stage forms ``W b`` exactly and rounds
    ``a' = round_shift((a << 14) + W b, 15)``, ``b' = round_shift((a << 14) - W b, 15)``.

    An iterative in-place radix-2 engine (see the module docs): one butterfly
    per cycle, four multipliers ``q.width + L + 1`` x 16 bits (none for k = 4),
    a two-segment input buffer (2k words of ``q.width`` bits, in two banks by
    the input index's top bit: stage 1 reads ``x[rev(2i)]`` and
    ``x[rev(2i) + k/2]``), two working banks of k/2 complex words, a twiddle
    ROM of k/2 words and the schedule ROM.

    Timing: a segment takes :attr:`period` cycles (``L k / 2`` plus
    bubbles: 9, 19, 34, 80 for k = 4, 8, 16, 32), back to back as long as the
    next segment is loaded (k beats, loaded while the one before computes);
    its first output beat follows its last input beat by :attr:`latency`
    cycles (15, 23, 34, 72); its k/2 output beats come on consecutive cycles.

    Parameters
    ----------
    k : int
        Segment size, a power of two from 4 to 256.
    q : QFormat
        Format of the input words and of the packed spectrum (``cfg.q_state``).

    Members
    -------
    i_valid : In(1)
    i_ready : Out(1)
        The input half being loaded is free (low while both halves hold a
        segment waiting or in stage 1).
    i_data : In(signed(q.width))
        Word ``n`` of the segment, ``n = 0 .. k-1`` counted by the block.
    o_valid : Out(1)
    o_ready : In(1, init=1)
        Taken the beat on ``o_data``; while low with ``o_valid`` high the
        engine holds (the loader does not).
    o_data : Out(ArrayLayout(signed(q.width), 2))
        Packed words ``2 * o_index`` and ``2 * o_index + 1``.
    o_index : Out(range(k // 2))
        The beat's bin pair, 0 .. k/2 - 1 in order.
    o_first, o_last : Out(1)
        ``o_index`` is 0 / k/2 - 1.

    Raises
    ------
    ValueError
        If ``k`` is not a transform size.
    TypeError
        If ``q`` is not a :class:`~rnnaccel.numeric.fixedpoint.QFormat`.
    """

    def __init__(self, k: int, q: QFormat):
        if not isinstance(q, QFormat):
            raise TypeError(f"q must be a QFormat, not {q!r}")
        self._q = q
        k = fft.check_size(k)
        L = fft.stages(k)
        self.IN_BEATS = k
        super().__init__(k, q.width + L + 1, {"i_data": In(signed(q.width)), "o_data": Out(_pair(signed(q.width)))})

    @classmethod
    def from_config(cls, cfg: Config) -> "ForwardFFT":
        """The forward transform of ``cfg``: k = ``cfg.block_size``, ``q = cfg.q_state``."""
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        return cls(cfg.block_size, cfg.q_state)

    @property
    def q(self) -> QFormat:
        """Format of the input words and the packed output."""
        return self._q

    def _twiddle_words(self):
        cos, sin = fft.twiddles(self._k)
        return [(int(c), int(s)) for c, s in zip(cos, sin)]

    def _input_buffer(self, m, accept, ld_par, ld_cnt):
        L, w = self._L, self._q.width
        self._inbufs = []
        for n in range(2):
            mem = Memory(shape=signed(w), depth=self._k, init=[])
            m.submodules[f"input{n}"] = mem
            wr = mem.write_port()
            m.d.comb += [
                wr.addr.eq(Cat(ld_cnt[: L - 1], ld_par)),
                wr.data.eq(self.i_data),
                wr.en.eq(accept & (ld_cnt[L - 1] == n)),
            ]
            self._inbufs.append(mem.read_port(domain="sync"))

    def _stage1_read(self, m, p, en, a_pos, par):
        L = self._L
        idx = _bit_reverse(a_pos[1:], L - 1)  # stage 1, butterfly i = a / 2: x[rev(2i)] and x[rev(2i) + k/2]
        for rd in self._inbufs:
            m.d.comb += [rd.addr.eq(Cat(idx, par)), rd.en.eq(en)]
        zero = Const(0, signed(self._ww))
        return lambda: ((self._inbufs[0].data << L, zero), (self._inbufs[1].data << L, zero))

    def _combine(self, ar, ai, tr, ti):
        sa_r, sa_i = ar << _FT, ai << _FT
        return (
            (hw_round_shift(sa_r + tr, _FT + 1), hw_round_shift(sa_i + ti, _FT + 1)),
            (hw_round_shift(sa_r - tr, _FT + 1), hw_round_shift(sa_i - ti, _FT + 1)),
        )

    def _output(self, m, a2, b2, index):
        frac, q = self._q.frac + self._L, self._q
        # beat 0: X0 and X(k/2), both real; beat i: Re Xi, Im Xi (X(i + k/2) is the conjugate of X(k/2 - i))
        second = Mux(index == 0, b2[0], a2[1])
        return hw_narrow(a2[0], frac, q), hw_narrow(second, frac, q)


class InverseFFT(_Radix2Engine):
    """The unscaled inverse real FFT of packed spectra, exactly :func:`rnnaccel.numeric.fft.irfft`.

    Input: the packed accumulator of a row block (``acc_width``-bit words,
    ``fs + f`` fraction bits), k/2 beats, beat i carrying packed words ``2i``
    and ``2i + 1`` (as :class:`SpectralMAC` emits them). Output: the k real
    values ``y[n]`` at the same fraction bits, two per beat: beat i carries
    ``y[i]`` and ``y[i + k/2]`` (the last stage's butterfly i), i = 0 .. k/2 - 1
    in order. Every stage forms ``conj(W) b`` exactly, rounds it back
    ``u = round_shift(conj(W) b, 14)`` and adds ``a' = a + u``, ``b' = a - u``;
    values grow by up to a bit per stage: ``acc_width + L + 1`` bits
    (:attr:`width`, the working width).

    Stage 1 reads the Hermitian spectrum straight from the packed input:
    positions 2i and 2i + 1 hold bins ``m = rev(2i)`` and ``m + k/2``, i.e.
    packed pair m and the conjugate of pair ``k/2 - m`` (both real parts of
    pair 0 for m = 0), so the input buffer (two segments of k/2 pairs) has
    two read ports. The engine is that of :class:`ForwardFFT` (same
    :attr:`period` and :attr:`latency`), with ``acc_width + L + 1``-bit
    working values (the four multipliers are that many bits x 16).

    Parameters
    ----------
    k : int
        Transform size, a power of two from 4 to 256.
    acc_width : int
        Width of the packed input words (``cfg.fft_acc_width``), 2 or more.

    Members
    -------
    i_valid : In(1)
    i_ready : Out(1)
    i_data : In(ArrayLayout(signed(acc_width), 2))
        Packed words ``2i``, ``2i + 1`` of the spectrum, beat ``i = 0 .. k/2 - 1``
        counted by the block.
    o_valid : Out(1)
    o_ready : In(1, init=1)
    o_data : Out(ArrayLayout(signed(width), 2))
        ``y[o_index]`` and ``y[o_index + k/2]``.
    o_index : Out(range(k // 2))
    o_first, o_last : Out(1)

    Raises
    ------
    ValueError
        If ``k`` is not a transform size or ``acc_width`` is less than 2.
    """

    def __init__(self, k: int, acc_width: int):
        if not isinstance(acc_width, int) or isinstance(acc_width, bool) or acc_width < 2:
            raise ValueError(f"acc_width must be an int of 2 or more, not {acc_width!r}")
        self._acc_width = acc_width
        k = fft.check_size(k)
        ww = acc_width + fft.stages(k) + 1
        self.IN_BEATS = k // 2
        super().__init__(k, ww, {"i_data": In(_pair(signed(acc_width))), "o_data": Out(_pair(signed(ww)))})

    @classmethod
    def from_config(cls, cfg: Config) -> "InverseFFT":
        """The inverse transform of ``cfg``: k = ``cfg.block_size``, ``acc_width = cfg.fft_acc_width``."""
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        return cls(cfg.block_size, cfg.fft_acc_width)

    @property
    def acc_width(self) -> int:
        """Width of the packed input words."""
        return self._acc_width

    @property
    def width(self) -> int:
        """Width of the outputs (and working values): ``acc_width + L + 1``."""
        return self._ww

    def _twiddle_words(self):
        cos, sin = fft.twiddles(self._k)
        return [(int(c), -int(s)) for c, s in zip(cos, sin)]  # conj(W) = c + i d: (c br - d bi, c bi + d br)

    def _input_buffer(self, m, accept, ld_par, ld_cnt):
        A = self._acc_width
        m.submodules.input = mem = Memory(shape=unsigned(2 * A), depth=self._k, init=[])
        wr = mem.write_port()
        m.d.comb += [wr.addr.eq(Cat(ld_cnt, ld_par)), wr.data.eq(self.i_data.as_value()), wr.en.eq(accept)]
        self._inbufs = [mem.read_port(domain="sync"), mem.read_port(domain="sync")]

    def _stage1_read(self, m, p, en, a_pos, par):
        L, A = self._L, self._acc_width
        m1 = _bit_reverse(a_pos[1:], L - 1)  # bin of position 2i; position 2i + 1 holds bin m1 + k/2
        m2 = (-m1)[: L - 1] if L > 1 else Const(0, 1)  # k/2 - m1 mod k/2: its conjugate's pair
        rd_a, rd_b = self._inbufs
        m.d.comb += [rd_a.addr.eq(Cat(m1, par)), rd_b.addr.eq(Cat(m2, par)), rd_a.en.eq(en), rd_b.en.eq(en)]
        dc = p.reg(m1 == 0, name="bin0")

        def operands():
            pa0, pa1 = rd_a.data[:A].as_signed(), rd_a.data[A:].as_signed()
            pb0, pb1 = rd_b.data[:A].as_signed(), rd_b.data[A:].as_signed()
            zero = Const(0, signed(A))
            return (pa0, Mux(dc, zero, pa1)), (Mux(dc, pa1, pb0), Mux(dc, zero, -pb1))

        return operands

    def _combine(self, ar, ai, tr, ti):
        ur, ui = hw_round_shift(tr, _FT), hw_round_shift(ti, _FT)
        return (ar + ur, ai + ui), (ar - ur, ai - ui)

    def _output(self, m, a2, b2, index):
        return a2[0], b2[0]


class SpectralMAC(wiring.Component):
    """The spectral multiply-accumulate of a row block, exactly :func:`rnnaccel.numeric.fft.spectral_mac`.

    For each column block j a segment of k/2 beats: beat i carries packed
    words ``2i``, ``2i + 1`` of the weight spectrum ``S_j`` (``i_s``) and of
    the input spectrum ``X_j`` (``i_x``), i = 0 .. k/2 - 1 counted by the
    block. Beat 0 holds the real bins 0 and k/2 (two real products), beat
    ``i >= 1`` the complex bin i: ``(Sr Xr - Si Xi, Sr Xi + Si Xr)``. Four
    registered multipliers ``spectrum_width x state_width`` (one DSP each)
    feed a registered sum, added to the bin's accumulator, a memory of k/2
    pairs of ``acc_width`` bits read the cycle before (exact: the sum wraps at
    ``acc_width`` bits, which ``cfg.fft_acc_width`` makes never happen). A
    segment with ``i_first`` starts the sums (``acc = product``); one with
    ``i_last`` sends them out, one beat per input beat.

    Timing: one beat per cycle (a row block of ``cb`` column blocks takes
    ``cb k / 2`` beats, back to back with the next); an output beat follows
    its input beat by :attr:`latency` = 4 cycles.

    Parameters
    ----------
    k : int
        Segment size, a power of two from 4 to 256.
    spectrum_width : int
        Width of the weight spectra's words (``cfg.q_spectrum.width``).
    state_width : int
        Width of the input spectra's words (``cfg.q_state.width``).
    acc_width : int
        Width of the accumulators and outputs (``cfg.fft_acc_width``).

    Members
    -------
    i_valid : In(1)
    i_ready : Out(1)
        Low only while an output beat waits (``o_valid & ~o_ready``).
    i_first : In(1)
        This segment is the row block's first column block (hold it for the segment).
    i_last : In(1)
        This segment is its last column block: its beats leave as outputs.
    i_s : In(ArrayLayout(signed(spectrum_width), 2))
    i_x : In(ArrayLayout(signed(state_width), 2))
    o_valid : Out(1)
    o_ready : In(1, init=1)
    o_data : Out(ArrayLayout(signed(acc_width), 2))
        Packed words ``2 o_index``, ``2 o_index + 1`` of ``P = sum_j S_j X_j``.
    o_index : Out(range(k // 2))
    o_first, o_last : Out(1)
        ``o_index`` is 0 / k/2 - 1.

    Raises
    ------
    ValueError
        If ``k`` is not a transform size or a width is less than 2.
    """

    #: Cycles from an input beat to its output beat (operands, products, sums, accumulator).
    LATENCY = 4

    def __init__(self, k: int, spectrum_width: int, state_width: int, acc_width: int):
        for name, v in (("spectrum_width", spectrum_width), ("state_width", state_width), ("acc_width", acc_width)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 2:
                raise ValueError(f"{name} must be an int of 2 or more, not {v!r}")
        self._k = fft.check_size(k)
        self._ws, self._wx, self._wa = spectrum_width, state_width, acc_width
        super().__init__(
            {
                "i_valid": In(1),
                "i_ready": Out(1),
                "i_first": In(1),
                "i_last": In(1),
                "i_s": In(_pair(signed(spectrum_width))),
                "i_x": In(_pair(signed(state_width))),
                "o_valid": Out(1),
                "o_ready": In(1, init=1),
                "o_data": Out(_pair(signed(acc_width))),
                "o_index": Out(range(self._k // 2)),
                "o_first": Out(1),
                "o_last": Out(1),
            }
        )

    @classmethod
    def from_config(cls, cfg: Config) -> "SpectralMAC":
        """The MAC of ``cfg``: ``q_spectrum`` x ``q_state`` words into ``cfg.fft_acc_width`` bits."""
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be a Config, not {cfg!r}")
        return cls(cfg.block_size, cfg.q_spectrum.width, cfg.q_state.width, cfg.fft_acc_width)

    @property
    def k(self) -> int:
        return self._k

    @property
    def acc_width(self) -> int:
        return self._wa

    @property
    def latency(self) -> int:
        """:attr:`LATENCY`."""
        return self.LATENCY

    @property
    def period(self) -> int:
        """Cycles per column block: k/2 beats."""
        return self._k // 2

    def elaborate(self, platform):
        half, A = self._k // 2, self._wa
        m = Module()
        en = Signal()
        m.d.comb += [en.eq(~(self.o_valid & ~self.o_ready)), self.i_ready.eq(en)]
        p = Stage(m, en)

        cnt = Signal(range(half), name="bin")
        with m.If(self.i_valid & en):
            m.d.sync += cnt.eq(Mux(cnt == half - 1, 0, cnt + 1))

        # operands
        v1 = p.reg(self.i_valid, name="v1")
        first1, last1 = p.reg(self.i_first, name="first1"), p.reg(self.i_last, name="last1")
        bin1 = p.reg(cnt, name="bin1")
        sr, si = p.reg(self.i_s[0], name="s_re"), p.reg(self.i_s[1], name="s_im")
        xr, xi = p.reg(self.i_x[0], name="x_re"), p.reg(self.i_x[1], name="x_im")
        # products (one DSP each); beat 0: S0 X0 and S(k/2) X(k/2) are p_rr and p_ii
        p_rr, p_ii = p.reg(sr * xr, name="p_rr"), p.reg(si * xi, name="p_ii")
        p_ri, p_ir = p.reg(sr * xi, name="p_ri"), p.reg(si * xr, name="p_ir")
        v2, first2, last2, bin2 = (
            p.reg(s, name=f"{n}2") for s, n in ((v1, "v"), (first1, "first"), (last1, "last"), (bin1, "bin"))
        )
        dc = bin2 == 0
        sum_re = p.reg(Mux(dc, p_rr, p_rr - p_ii), name="sum_re")
        sum_im = p.reg(Mux(dc, p_ii, p_ri + p_ir), name="sum_im")
        v3, first3, last3, bin3 = (
            p.reg(s, name=f"{n}3") for s, n in ((v2, "v"), (first2, "first"), (last2, "last"), (bin2, "bin"))
        )

        # accumulators: read while the beat is in the products stage, written from the sum stage
        m.submodules.acc = mem = Memory(shape=unsigned(2 * A), depth=half, init=[])
        rd, wr = mem.read_port(domain="sync"), mem.write_port()
        m.d.comb += [rd.addr.eq(bin2), rd.en.eq(en)]
        old_re = Mux(first3, 0, rd.data[:A].as_signed())
        old_im = Mux(first3, 0, rd.data[A:].as_signed())
        new_re, new_im = Signal(signed(A), name="acc_re"), Signal(signed(A), name="acc_im")
        m.d.comb += [new_re.eq(old_re + sum_re), new_im.eq(old_im + sum_im)]
        m.d.comb += [wr.addr.eq(bin3), wr.data.eq(Cat(new_re, new_im)), wr.en.eq(en & v3)]
        with m.If(en):
            m.d.sync += [
                self.o_valid.eq(v3 & last3),
                self.o_data[0].eq(new_re),
                self.o_data[1].eq(new_im),
                self.o_index.eq(bin3),
                self.o_first.eq(bin3 == 0),
                self.o_last.eq(bin3 == half - 1),
            ]
        return m
