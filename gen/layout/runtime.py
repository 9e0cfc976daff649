"""Run-time dimensions (issue 12): the layout constants a design with ``max_*`` fields reads from registers.

A design generated for maximum sizes (:meth:`rnnaccel.numeric.config.Config.at_max`) runs a smaller
model of the same cell and number formats in that model's **own compact layout**: the same layout
functions (:func:`rnnaccel.layout.image.plans`, :func:`~rnnaccel.layout.image.vector_slots`) computed
for the smaller config give its weight-bank words, bias rows and vector rows, and the constants the
sequencer and the MVU would otherwise bake in become registers, loaded by ``SET_PARAM`` commands
(``sel`` = the parameter's index in :func:`param_names`, ``data`` = its value) and reset to the
generating model's values. The memories keep the maximum model's sizes, so every smaller layout fits
(:func:`check_fits` proves it parameter by parameter and memory by memory).

Parameters (array datapath), in ``sel`` order:

* ``input_size``, ``hidden_size``, ``layers``: the words the loader takes per step, the elements a gate
  phase walks (and the words the last layer pushes), the layer after which a step ends;
* ``segs_h``: tile rows of one gate's projections (``padded(H) / T``), where the projection writes wrap;
* ``x0_half``, ``x0_half_bank``, ``x0_half_row``: a window-2 QRNN's input slot halves (the loader's copy
  of x_t into x_{t-1});
* per layer l of the maximum: ``c_base{l}`` (its first cell-state word), ``copy_row{l}`` (a window-2
  QRNN's copy target: the row of the h slot's second half) and ``copy_bank``, shared;
* per vector slot but ``x0`` (always at row 0): ``slot_{name}``, its first row;
* per plan p of the maximum: ``plan{p}_wbase``, ``_rr``, ``_rc``, ``_br``, ``_bbase``, ``_vbase``,
  ``_gap``: the fields of :class:`~rnnaccel.layout.image.MatrixPlan` the MVU dispatches on.

Parameters (serial datapath, :mod:`rnnaccel.hw.serial`), in ``sel`` order:

* ``input_size``, ``hidden_size``, ``layers`` as above; ``rows`` (tile rows, ``padded(H) / k``) and ``hp``
  (``padded(H)``: a gate's bias rows);
* per layer l of the maximum: ``wbase{l}`` (its first packed weight word), ``bbase{l}`` (its first bias word),
  ``c_base{l}``, ``nj_last{l}`` (its column blocks less one), ``pass_last{l}`` (a pass's last column,
  ``n_j * k - 1``), ``row_words{l}`` (the packed weight words of a gate's row group, ``n_j * k / pack``);
* per vector slot but ``x0``: ``slot_{name}``, its first word.

Values of layers a smaller model does not have are 0 (never read).
"""

from __future__ import annotations

from ..numeric.config import Config, ceil_div
from .image import (
    bank_packing,
    bias_rows,
    plans,
    serial_col_blocks,
    serial_layer_bases,
    vector_depth,
    vector_slots,
    weight_bank_depth,
)

__all__ = [
    "PLAN_FIELDS",
    "SERIAL_LAYER_FIELDS",
    "ARITHMETIC_FIELDS",
    "DoesNotFit",
    "param_names",
    "param_values",
    "param_limits",
    "param_bits",
    "model_on_design",
]

#: Per-plan parameters, in order.
PLAN_FIELDS = ("wbase", "rr", "rc", "br", "bbase", "vbase", "gap")

#: Config fields that define a model's arithmetic (the golden model's): a model runs on a design only when
#: they are equal. The others (the PE grid, lanes, memories, datapath) are the design's, taken from it.
ARITHMETIC_FIELDS = (
    "cell",
    "gru_reset_after",
    "qrnn_window",
    "block_size",
    "q_weight",
    "q_state",
    "q_cell",
    "q_pre",
    "q_act",
    "table_entries",
    "sigmoid_range",
    "tanh_range",
    "interpolate",
    "circulant_mode",
    "delta_threshold",
    "delta_threshold_h",
)


class DoesNotFit(ValueError):
    """A model that the design cannot run; the message names the size or field and the limit."""


def _qrnn2(cfg: Config) -> bool:
    return cfg.cell == "qrnn" and cfg.qrnn_window == 2


#: Per-layer parameters of the serial datapath, in order.
SERIAL_LAYER_FIELDS = ("wbase", "bbase", "c_base", "nj_last", "pass_last", "row_words")


def param_names(cfg: Config) -> list[str]:
    """The design's parameters in ``sel`` order (from the maximum config: same list for every model it runs)."""
    hw = cfg.at_max()
    if hw.datapath == "serial":
        names = ["input_size", "hidden_size", "layers", "rows", "hp"]
        names += [f"{f}{layer}" for layer in range(hw.num_layers) for f in SERIAL_LAYER_FIELDS]
        return names + [f"slot_{name}" for name in vector_slots(hw) if name != "x0"]
    names = ["input_size", "hidden_size", "layers", "segs_h"]
    if _qrnn2(hw):
        names += ["x0_half", "x0_half_bank", "x0_half_row", "copy_bank"]
    for layer in range(hw.num_layers):
        names.append(f"c_base{layer}")
        if _qrnn2(hw):
            names.append(f"copy_row{layer}")
    names += [f"slot_{name}" for name in vector_slots(hw) if name != "x0"]
    for p in plans(hw):
        names += [f"plan{p.index}_{f}" for f in PLAN_FIELDS]
    return names


def _mvu_gap(cfg: Config, rounds_c: int) -> int:
    # as rnnaccel.hw.mvu.plan_gaps: cycles the serializer needs after a row round shorter than pe_rows
    return max(0, cfg.pe_rows - rounds_c * cfg.tile)


def param_values(model: Config, hardware: Config | None = None) -> dict[str, int]:
    """The parameters of ``model``'s own layout, keyed as :func:`param_names` of ``hardware`` (default: the
    model's own limits). Layers and plans the model does not have are 0."""
    hw_cfg = hardware if hardware is not None else model
    out = dict.fromkeys(param_names(hw_cfg), 0)
    if model.datapath == "serial":
        out.update(_serial_values(model))
        return _known(out, hw_cfg)
    T, Pc = model.tile, model.pe_cols
    Hp = model.padded(model.hidden_size)
    slots = vector_slots(model)
    out.update(input_size=model.input_size, hidden_size=model.hidden_size, layers=model.num_layers, segs_h=Hp // T)
    if _qrnn2(model):
        half = slots["x0"].segments // 2
        out.update(x0_half=half, x0_half_bank=half % Pc, x0_half_row=half // Pc, copy_bank=(Hp // T) % Pc)
    for layer in range(model.num_layers):
        out[f"c_base{layer}"] = layer * Hp
        if _qrnn2(model):
            out[f"copy_row{layer}"] = slots[f"h{layer}"].base + (Hp // T) // Pc
    for name, slot in slots.items():
        if name != "x0":
            out[f"slot_{name}"] = slot.base
    for p in plans(model):
        for f, v in zip(
            PLAN_FIELDS,
            (p.weight_base, p.rounds_r, p.rounds_c, p.br, p.bias_base, slots[p.src].base, _mvu_gap(model, p.rounds_c)),
        ):
            out[f"plan{p.index}_{f}"] = v
    return _known(out, hw_cfg)


def _known(out: dict[str, int], hw_cfg: Config) -> dict[str, int]:
    unknown = sorted(set(out) - set(param_names(hw_cfg)))
    if unknown:  # a layout the hardware has no register for (a slot or plan it does not have)
        raise DoesNotFit(f"the design has no parameter {unknown[0]!r} (the model's layout differs from the design's)")
    return out


def _serial_values(model: Config) -> dict[str, int]:
    """The serial datapath's parameters of ``model``'s own layout (:mod:`rnnaccel.hw.serial`): the tile rows
    and padded hidden size; per layer its packed weight base, bias base, first cell-state word, column blocks
    less one, a pass's last column (``n_j * k - 1``) and a tile row's packed weight words per gate and row
    group (``n_j * k / pack``); each vector slot's first **word**."""
    k, pack = model.block_size, bank_packing(model)
    Hp = model.padded(model.hidden_size)
    out = dict(input_size=model.input_size, hidden_size=model.hidden_size, layers=model.num_layers)
    out.update(rows=Hp // k, hp=Hp)
    for layer, (wb, bb) in enumerate(serial_layer_bases(model)):
        nj = serial_col_blocks(model, layer)
        values = (wb // pack, bb, layer * Hp, nj - 1, nj * k - 1, nj * (k // pack))
        out.update({f"{f}{layer}": v for f, v in zip(SERIAL_LAYER_FIELDS, values)})
    for name, slot in vector_slots(model).items():
        if name != "x0":
            out[f"slot_{name}"] = slot.base * k
    return out


def param_limits(cfg: Config) -> dict[str, int]:
    """The largest value of each parameter on the design of ``cfg`` (its register holds ``0..limit``)."""
    hw = cfg.at_max()
    own = param_values(hw)
    lim = dict(own)
    Pc = hw.pe_cols
    for name in lim:
        if name.endswith("_gap"):
            lim[name] = hw.pe_rows
        elif name.endswith("_bank"):
            lim[name] = Pc - 1
    return lim


def param_bits(cfg: Config) -> dict[str, int]:
    """Register width of each parameter."""
    return {name: max(1, v.bit_length()) for name, v in param_limits(cfg).items()}


def model_on_design(model: Config, hardware: Config) -> Config:
    """The config that runs ``model`` on the design generated for ``hardware``: the design's config with the
    model's sizes, name and seed (its layout is then the model's own, tiled by the design's PE grid).

    Raises :class:`DoesNotFit` with one line naming the first arithmetic field that differs, the size above
    its limit or the memory too small."""
    for f in ARITHMETIC_FIELDS:
        if getattr(model, f) != getattr(hardware, f):
            raise DoesNotFit(
                f"the model's {f} = {_show(getattr(model, f))} differs from the design's "
                f"{_show(getattr(hardware, f))} (a design runs models of its own cell and arithmetic)"
            )
    if model.circulant_mode == "fft" and model.q_spectrum != hardware.q_spectrum:
        raise DoesNotFit(f"the model's q_spectrum = {model.q_spectrum} differs from the design's {hardware.q_spectrum}")
    sizes = {"input_size": model.input_size, "hidden_size": model.hidden_size, "num_layers": model.num_layers}
    if not hardware.runtime_dims:
        own = {f: getattr(hardware, f) for f in sizes}
        if sizes != own:
            raise DoesNotFit(
                f"the design was generated for input {hardware.input_size}, hidden {hardware.hidden_size}, "
                f"{hardware.num_layers} layer(s) without run-time dimensions (max_* fields): it runs that shape only"
            )
        return hardware.replace(name=model.name, seed=model.seed)
    hw = hardware.at_max()
    for f, what in (("input_size", "max_input_size"), ("hidden_size", "max_hidden_size"), ("num_layers", "max_layers")):
        if sizes[f] > getattr(hw, f):
            raise DoesNotFit(f"the model's {f} = {sizes[f]} exceeds the design's {what} = {getattr(hw, f)}")
    try:
        run = hardware.replace(**sizes, name=model.name, seed=model.seed)
    except ValueError as exc:
        raise DoesNotFit(f"the model's sizes do not make a valid config on this design: {exc}") from None
    for layer in range(run.num_layers):
        if run.layer_gates(layer) != hw.layer_gates(layer):
            raise DoesNotFit(
                f"layer {layer} of the model has gates {run.layer_gates(layer)}, the design's "
                f"{hw.layer_gates(layer)} (an SRU's extra projection exists when input and hidden sizes differ)"
            )
    x0 = lambda c: ceil_div(vector_slots(c)["x0"].segments, c.pe_cols)  # noqa: E731
    for what, need, have in (
        ("weight-bank words", weight_bank_depth(run), weight_bank_depth(hw)),
        ("bias rows", bias_rows(run), bias_rows(hw)),
        ("vector-bank rows", vector_depth(run), vector_depth(hw)),
        ("input-store rows", x0(run), x0(hw)),
    ):
        if need > have:
            raise DoesNotFit(f"the model needs {need} {what}, the design has {have}")
    values, limits = param_values(run, hardware), param_limits(hardware)
    for name, v in values.items():
        if v > limits[name]:
            raise DoesNotFit(
                f"the model's layout parameter {name} = {v} exceeds the design's register (max {limits[name]})"
            )
    return run


def _show(v) -> str:
    return str(v) if not isinstance(v, str) else repr(v)
