"""Element-wise gate logic of every cell type: projections in, new state out.

:class:`GateUnit` takes one hidden element per cycle: the gate projections
``xp`` (input side) and ``hp`` (recurrent side), both raw ``q_pre``, and the
element's state, and computes the cell's update bit for bit as the golden
model does (:func:`rnnaccel.numeric.golden.lstm_update`, :func:`~rnnaccel.numeric.golden.gru_gates`,
:func:`~rnnaccel.numeric.golden.gru_candidate_pre`, :func:`~rnnaccel.numeric.golden.gru_update`,
:func:`~rnnaccel.numeric.golden.gru_reset_hidden`, :func:`~rnnaccel.numeric.golden.sru_update`,
:func:`~rnnaccel.numeric.golden.qrnn_update`, :func:`~rnnaccel.numeric.golden.rnn_update`).

Every product is exact and registered (a plain ``*`` of two registers, so
synthesis maps it to a DSP); sums are aligned exactly to the finest fraction
and narrowed once with :func:`rnnaccel.numeric.fixedpoint.hw_narrow`. A term
``(ONE - a) * v`` is computed as ``(v << fa) - a * v``: the same integer, one
multiplier shared with nothing and no extra stage for ``ONE - a``.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..numeric.config import Config
from ..numeric.fixedpoint import hw_narrow, hw_saturate
from .activation import ActivationUnit, _latency
from .pipeline import Stage

__all__ = ["GateUnit", "PHASES", "gate_variant", "gate_latency"]

#: Phases of a gate unit: ``update`` (every cell) and ``reset`` (reset-before GRU: r * h).
PHASES = ("update", "reset")


def _hw_sum_narrow(terms, q):
    """Hardware twin of the golden model's ``_sum_narrow``: align exactly, add, narrow once."""
    top = max(frac for _, frac in terms)
    total = sum(value << (top - frac) for value, frac in terms)
    return hw_narrow(total, top, q)


def gate_variant(cfg: Config, phase: str = "update") -> str:
    """``lstm``, ``gru_after``, ``gru_before``, ``gru_reset``, ``sru``, ``qrnn`` or ``rnn``: the element-wise
    computation of ``cfg``'s cell in ``phase`` (the table above)."""
    if cfg.cell == "gru":
        if phase == "reset":
            return "gru_reset"
        return "gru_after" if cfg.gru_reset_after else "gru_before"
    return cfg.cell


#: Enabled cycles of the gate unit's input register: every input (projections, states, valid) is registered
#: once before any arithmetic, so the memories that feed it end at a register instead of running through
#: the pre-activation add and saturation (issue 15: that path limited the ECP5 presets).
INPUT_LATENCY = 1


def gate_latency(cfg: Config, phase: str = "update") -> int:
    """Enabled cycles from ``i_valid`` to ``o_valid`` of the gate unit of ``cfg`` in ``phase``: the input
    register (:data:`INPUT_LATENCY`) and the cell's arithmetic (the table of :class:`GateUnit`)."""
    a = _latency(cfg)
    return (
        INPUT_LATENCY
        + {
            "lstm": 2 * a + 5,
            "gru_after": 2 * a + 5,
            "gru_before": a + 3,
            "gru_reset": a + 3,
            "sru": 2 * a + 4,
            "qrnn": a + 4,
            "rnn": a + 2,
        }[gate_variant(cfg, phase)]
    )


class GateUnit(wiring.Component):
    """Pipelined element-wise update of one RNN cell, bit-exact with the golden model.

    One element per enabled cycle. For each cell (A is the activation
    latency, 6 with interpolation and 3 without, so 6 in the default config;
    ``hw`` is the SRU highway, ``x`` when G = 3 and the fourth projection when G = 4). Every input is
    registered first (:data:`INPUT_LATENCY`, one cycle), then the arithmetic takes the latency in the
    table; :attr:`latency` is their sum (the default column: 1 + the table's):

    =======================  ===============================================  =======  =======
    cell / variant           computes                                         table    default
    =======================  ===============================================  =======  =======
    LSTM                     c' = f c + i g; h' = o tanh(c')                  2A + 5   18
    GRU reset-after          n = tanh(xp_n + r hp_n); h' = (1-z) n + z h      2A + 5   18
    GRU reset-before update  n = tanh(xp_n + hp_n); h' = (1-z) n + z h        A + 3    10
    GRU reset-before reset   rh = r h                                         A + 3    10
    SRU (G = 3 or 4)         c' = f c + (1-f) x~; h' = r tanh(c') + (1-r) hw  2A + 4   17
    QRNN                     c' = f c + (1-f) z; h' = o c'                    A + 4    11
    RNN                      h' = tanh(xp + hp)                               A + 2    9
    =======================  ===============================================  =======  =======

    Parameters
    ----------
    cfg : Config
        The cell type (``cfg.cell``, ``cfg.gru_reset_after``), the formats and
        the table settings.
    phase : str
        ``"update"`` (every cell) or ``"reset"`` (reset-before GRU only:
        ``o_h = gru_reset_hidden(r, h)``, the vector the candidate's
        recurrent product multiplies).
    layer : int
        Layer whose gates the unit serves: ``G = len(cfg.layer_gates(layer))``
        (an SRU whose input size differs from its hidden size has a fourth
        projection on layer 0, the scaled highway).

    Members
    -------
    en : In(1)
        Clock enable (initially 1): when 0 nothing moves.
    i_valid : In(1)
        The inputs carry an element.
    i_xp, i_hp : In(data.ArrayLayout(signed(cfg.q_pre.width), G))
        Input and recurrent projections of each gate, raw ``q_pre``, in the
        order of ``cfg.layer_gates(layer)``. ``i_hp`` is unused by SRU and
        QRNN; for the reset-before GRU update phase ``i_hp[2]`` is the
        projection of ``r * h``.
    i_c : In(signed(cfg.q_cell.width))
        Cell state (LSTM, SRU, QRNN).
    i_h : In(signed(cfg.q_state.width))
        Hidden state (GRU).
    i_x : In(signed(cfg.q_state.width))
        The layer input element (SRU highway when G = 3).
    o_valid : Out(1)
        ``i_valid`` delayed by :attr:`latency` enabled cycles.
    o_h : Out(signed(cfg.q_state.width))
        New hidden state h' (``r * h`` in phase ``"reset"``).
    o_c : Out(signed(cfg.q_cell.width))
        New cell state c' (LSTM, SRU, QRNN; 0 otherwise).

    Raises
    ------
    TypeError
        If ``cfg`` is not a Config or ``phase``/``layer`` has the wrong type.
    ValueError
        If ``phase`` is unknown or not available for the cell, or ``layer``
        is out of range.
    """

    def __init__(self, cfg: Config, phase: str = "update", layer: int = 0):
        if not isinstance(cfg, Config):
            raise TypeError(f"cfg must be an rnnaccel Config, not {cfg!r}")
        if not isinstance(phase, str):
            raise TypeError(f"phase must be a string, not {phase!r}")
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {', '.join(map(repr, PHASES))}, not {phase!r}")
        if phase == "reset" and not (cfg.cell == "gru" and not cfg.gru_reset_after):
            raise ValueError(
                f"phase {phase!r} exists only for the reset-before GRU "
                f"(cell='gru', gru_reset_after=False), not cell={cfg.cell!r}"
                + (f" with gru_reset_after={cfg.gru_reset_after!r}" if cfg.cell == "gru" else "")
            )
        if not isinstance(layer, int) or isinstance(layer, bool):
            raise TypeError(f"layer must be an integer, not {layer!r}")
        if not 0 <= layer < cfg.num_layers:
            raise ValueError(f"layer must be between 0 and {cfg.num_layers - 1} (num_layers), not {layer!r}")
        self._cfg, self._phase, self._layer = cfg, phase, layer
        self._gates = cfg.layer_gates(layer)
        pre = data.ArrayLayout(signed(cfg.q_pre.width), len(self._gates))
        super().__init__(
            {
                "en": In(1, init=1),
                "i_valid": In(1),
                "i_xp": In(pre),
                "i_hp": In(pre),
                "i_c": In(signed(cfg.q_cell.width)),
                "i_h": In(signed(cfg.q_state.width)),
                "i_x": In(signed(cfg.q_state.width)),
                "o_valid": Out(1),
                "o_h": Out(signed(cfg.q_state.width)),
                "o_c": Out(signed(cfg.q_cell.width)),
            }
        )

    @property
    def cfg(self) -> Config:
        return self._cfg

    @property
    def phase(self) -> str:
        return self._phase

    @property
    def layer(self) -> int:
        return self._layer

    @property
    def gates(self) -> tuple[str, ...]:
        """Gate names, in the order of ``i_xp`` / ``i_hp``."""
        return self._gates

    @property
    def variant(self) -> str:
        """``lstm``, ``gru_after``, ``gru_before``, ``gru_reset``, ``sru``, ``qrnn`` or ``rnn``."""
        return gate_variant(self._cfg, self._phase)

    @property
    def latency(self) -> int:
        """Enabled cycles from ``i_valid`` to ``o_valid`` (see the table above)."""
        return gate_latency(self._cfg, self._phase)

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        fa, fp, fc, fx = cfg.q_act.frac, cfg.q_pre.frac, cfg.q_cell.frac, cfg.q_state.frac
        a_lat = _latency(cfg)
        p = Stage(m, self.en)
        # the input register (INPUT_LATENCY); the table's cycle numbers t below count from its output
        xp = [p.reg(self.i_xp[g], name=f"in_xp{g}") for g in range(len(self._gates))]
        hp = [p.reg(self.i_hp[g], name=f"in_hp{g}") for g in range(len(self._gates))]
        i_c, i_h, i_x = (p.reg(v, name=n) for v, n in ((self.i_c, "in_c"), (self.i_h, "in_h"), (self.i_x, "in_x")))

        def act(name, fn, value, q_in):
            unit = ActivationUnit(cfg, fn, q_in.width, q_in.frac)
            m.submodules[name] = unit
            m.d.comb += [unit.en.eq(self.en), unit.i_valid.eq(1), unit.i_data.eq(value)]
            return unit.o_data

        def pre_add(g, name):
            return p.reg(hw_saturate(xp[g] + hp[g], cfg.q_pre), name=name)

        h_out, c_out = None, None
        variant = self.variant

        if variant == "lstm":
            pre = [pre_add(g, f"pre_{name}") for g, name in enumerate("ifgo")]  # t = 1
            i = act("sig_i", "sigmoid", pre[0], cfg.q_pre)  # t = 1 + A
            f = act("sig_f", "sigmoid", pre[1], cfg.q_pre)
            g = act("tanh_g", "tanh", pre[2], cfg.q_pre)
            o = act("sig_o", "sigmoid", pre[3], cfg.q_pre)
            c = p.delay(i_c, 1 + a_lat, name="c")
            fc_prod = p.reg(f * c, name="fc_prod")  # t = 2 + A
            ig_prod = p.reg(i * g, name="ig_prod")
            c_new = p.reg(
                _hw_sum_narrow([(fc_prod, fa + fc), (ig_prod, 2 * fa)], cfg.q_cell), name="c_new"
            )  # t = 3 + A
            tc = act("tanh_c", "tanh", c_new, cfg.q_cell)  # t = 3 + 2A
            o_d = p.delay(o, 2 + a_lat, name="o")
            oh_prod = p.reg(o_d * tc, name="oh_prod")  # t = 4 + 2A
            h_out = hw_narrow(oh_prod, 2 * fa, cfg.q_state)  # out: 5 + 2A
            c_out = p.delay(c_new, 1 + a_lat, name="c_new")

        elif variant == "gru_after":
            pre_r, pre_z = pre_add(0, "pre_r"), pre_add(1, "pre_z")  # t = 1
            r = act("sig_r", "sigmoid", pre_r, cfg.q_pre)  # t = 1 + A
            z = act("sig_z", "sigmoid", pre_z, cfg.q_pre)
            hp_n = p.delay(hp[2], 1 + a_lat, name="hp_n")
            xp_n = p.delay(xp[2], 2 + a_lat, name="xp_n")
            rh_prod = p.reg(r * hp_n, name="rhn_prod")  # t = 2 + A
            n_pre = p.reg(_hw_sum_narrow([(xp_n, fp), (rh_prod, fa + fp)], cfg.q_pre), name="n_pre")  # t = 3 + A
            n = act("tanh_n", "tanh", n_pre, cfg.q_pre)  # t = 3 + 2A
            z_d = p.delay(z, 2 + a_lat, name="z")
            h_d = p.delay(i_h, 3 + 2 * a_lat, name="h")
            h_out = self._gru_mix(p, z_d, n, h_d)  # out: 5 + 2A

        elif variant == "gru_before":
            pre_z, pre_n = pre_add(1, "pre_z"), pre_add(2, "pre_n")  # t = 1
            z = act("sig_z", "sigmoid", pre_z, cfg.q_pre)  # t = 1 + A
            n = act("tanh_n", "tanh", pre_n, cfg.q_pre)
            h_d = p.delay(i_h, 1 + a_lat, name="h")
            h_out = self._gru_mix(p, z, n, h_d)  # out: 3 + A

        elif variant == "gru_reset":
            pre_r = pre_add(0, "pre_r")  # t = 1
            r = act("sig_r", "sigmoid", pre_r, cfg.q_pre)  # t = 1 + A
            h_d = p.delay(i_h, 1 + a_lat, name="h")
            rh_prod = p.reg(r * h_d, name="rh_prod")  # t = 2 + A
            h_out = hw_narrow(rh_prod, fa + fx, cfg.q_state)  # out: 3 + A

        elif variant == "sru":
            f = act("sig_f", "sigmoid", xp[1], cfg.q_pre)  # t = A
            r = act("sig_r", "sigmoid", xp[2], cfg.q_pre)
            xt = p.delay(xp[0], a_lat, name="xt")
            c = p.delay(i_c, a_lat, name="c")
            fc_prod = p.reg(f * c, name="fc_prod")  # t = 1 + A
            fx_prod = p.reg(f * xt, name="fxt_prod")
            xt_d = p.delay(xt, 1, name="xt_late")
            c_new = p.reg(
                _hw_sum_narrow([(fc_prod, fa + fc), ((xt_d << fa) - fx_prod, fa + fp)], cfg.q_cell), name="c_new"
            )  # t = 2 + A
            tc = act("tanh_c", "tanh", c_new, cfg.q_cell)  # t = 2 + 2A
            if len(self._gates) == 4:
                highway, hw_frac = xp[3], fp
            else:
                highway, hw_frac = i_x, fx
            hw = p.delay(highway, 2 + 2 * a_lat, name="highway")
            r_d = p.delay(r, 2 + a_lat, name="r")
            rt_prod = p.reg(r_d * tc, name="rtc_prod")  # t = 3 + 2A
            rh_prod = p.reg(r_d * hw, name="rhw_prod")
            hw_d = p.delay(hw, 1, name="highway_late")
            h_out = _hw_sum_narrow(
                [(rt_prod, 2 * fa), ((hw_d << fa) - rh_prod, fa + hw_frac)], cfg.q_state
            )  # out: 4 + 2A
            c_out = p.delay(c_new, 1 + a_lat, name="c_new")

        elif variant == "qrnn":
            z = act("tanh_z", "tanh", xp[0], cfg.q_pre)  # t = A
            f = act("sig_f", "sigmoid", xp[1], cfg.q_pre)
            o = act("sig_o", "sigmoid", xp[2], cfg.q_pre)
            c = p.delay(i_c, a_lat, name="c")
            fc_prod = p.reg(f * c, name="fc_prod")  # t = 1 + A
            fz_prod = p.reg(f * z, name="fz_prod")
            z_d = p.delay(z, 1, name="z")
            c_new = p.reg(
                _hw_sum_narrow([(fc_prod, fa + fc), ((z_d << fa) - fz_prod, 2 * fa)], cfg.q_cell), name="c_new"
            )  # t = 2 + A
            o_d = p.delay(o, 2, name="o")
            oc_prod = p.reg(o_d * c_new, name="oc_prod")  # t = 3 + A
            h_out = hw_narrow(oc_prod, fa + fc, cfg.q_state)  # out: 4 + A
            c_out = p.delay(c_new, 1, name="c_new")

        else:  # rnn
            pre = pre_add(0, "pre_h")  # t = 1
            t = act("tanh_h", "tanh", pre, cfg.q_pre)  # t = 1 + A
            h_out = hw_narrow(t, fa, cfg.q_state)  # out: 2 + A

        with m.If(self.en):
            m.d.sync += [
                self.o_h.eq(h_out),
                self.o_c.eq(Const(0) if c_out is None else c_out),
            ]
        m.d.comb += self.o_valid.eq(p.delay(self.i_valid, self.latency, name="valid"))
        return m

    def _gru_mix(self, p, z, n, h):
        """h' = (1 - z) n + z h with (1 - z) n = (n << fa) - z n; two cycles (products, output)."""
        cfg = self._cfg
        fa, fx = cfg.q_act.frac, cfg.q_state.frac
        zn_prod = p.reg(z * n, name="zn_prod")
        zh_prod = p.reg(z * h, name="zh_prod")
        n_d = p.delay(n, 1, name="n")
        return _hw_sum_narrow([((n_d << fa) - zn_prod, 2 * fa), (zh_prod, fa + fx)], cfg.q_state)
