"""Config: every validation rule, serialization, hash and derived quantities."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from rnnaccel.numeric.config import CELLS, PRESETS, Config, ConfigError, preset
from rnnaccel.numeric.fixedpoint import QFormat


def assert_config_error(field: str, value, **changes) -> ConfigError:
    """Build Config(**changes); it must raise ConfigError naming ``field`` and ``value``."""
    with pytest.raises(ConfigError) as info:
        Config(**changes)
    err = info.value
    msg = str(err)
    assert err.field == field, msg
    assert repr(field) in msg, msg
    if isinstance(value, QFormat):
        assert err.value == value, msg
        assert repr(value) in msg or str(value) in msg, msg
    else:
        assert err.value == value and type(err.value) is type(value), msg
        assert repr(value) in msg, msg
    assert err.rule and err.rule in msg
    assert isinstance(err, ValueError)  # callers may catch ValueError
    return err


def test_default_config_is_valid():
    cfg = Config()
    assert cfg.cell == "lstm" and cfg.block_size == cfg.lanes


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_named(name):
    cfg = preset(name)
    assert cfg.name == name
    assert Config(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)}) == cfg


# ------------------------------------------------------------------ types
INT_FIELDS = [
    "input_size",
    "hidden_size",
    "num_layers",
    "qrnn_window",
    "block_size",
    "pe_rows",
    "pe_cols",
    "lanes",
    "table_entries",
    "cores",
    "row_slices",
    "row_slice",
    "max_input_size",
    "max_hidden_size",
    "max_layers",
    "time_steps",
    "seed",
]
BOOL_FIELDS = ["gru_reset_after", "interpolate", "weights_in_rom", "stacked_projections"]


def test_type_fields_cover_the_dataclass():
    types = {f.name: f.type for f in dataclasses.fields(Config)}
    assert {n for n, t in types.items() if t in ("int", int)} == set(INT_FIELDS)
    assert {n for n, t in types.items() if t in ("bool", bool)} == set(BOOL_FIELDS)
    assert {n for n, t in types.items() if t in ("float", float)} == {"sigmoid_range", "tanh_range", "delta_threshold"}
    assert {n for n, t in types.items() if t in ("str", str)} == {
        "cell",
        "name",
        "weight_ram",
        "datapath",
        "circulant_mode",
        "core_mode",
        "weight_source",
    }


def test_hidden_size_string_is_refused():
    err = assert_config_error("hidden_size", "8", hidden_size="8")
    assert "integer" in err.rule


@pytest.mark.parametrize("field", INT_FIELDS)
@pytest.mark.parametrize("bad", ["8", 8.0, True, None])
def test_int_fields_refuse_other_types(field, bad):
    err = assert_config_error(field, bad, **{field: bad})
    assert "integer" in err.rule


def test_interpolate_one_is_refused():
    err = assert_config_error("interpolate", 1, interpolate=1)
    assert "true or false" in err.rule


@pytest.mark.parametrize("field", BOOL_FIELDS)
@pytest.mark.parametrize("bad", [1, 0, "true", None])
def test_bool_fields_refuse_other_types(field, bad):
    err = assert_config_error(field, bad, **{field: bad})
    assert "true or false" in err.rule


@pytest.mark.parametrize("field", ["sigmoid_range", "tanh_range"])
@pytest.mark.parametrize("bad", ["8", True, None])
def test_float_fields_refuse_other_types(field, bad):
    err = assert_config_error(field, bad, **{field: bad})
    assert "number" in err.rule


@pytest.mark.parametrize("field", ["sigmoid_range", "tanh_range"])
def test_float_fields_accept_ints(field):
    cfg = Config(**{field: 8})
    assert getattr(cfg, field) == 8.0 and isinstance(getattr(cfg, field), float)


@pytest.mark.parametrize("field, bad", [("name", 5), ("name", None), ("cell", 3)])
def test_str_fields_refuse_other_types(field, bad):
    err = assert_config_error(field, bad, **{field: bad})
    assert "string" in err.rule


# ------------------------------------------------------------------ values
def test_unknown_cell():
    err = assert_config_error("cell", "lstmx", cell="lstmx")
    for cell in CELLS:
        assert cell in err.rule


@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_is_accepted(cell):
    assert Config(cell=cell).cell == cell


def test_negative_hidden_size():
    err = assert_config_error("hidden_size", -8, hidden_size=-8)
    assert "1 or more" in err.rule


@pytest.mark.parametrize(
    "field", ["input_size", "hidden_size", "num_layers", "block_size", "pe_rows", "pe_cols", "lanes"]
)
@pytest.mark.parametrize("bad", [0, -1])
def test_positive_fields(field, bad):
    changes = {field: bad}
    if field == "block_size":
        changes["lanes"] = 4  # keep lanes valid; block_size is checked first anyway
    err = assert_config_error(field, bad, **changes)
    assert "1 or more" in err.rule


@pytest.mark.parametrize("field, limit", [("input_size", 4096), ("hidden_size", 4096), ("num_layers", 16)])
def test_size_upper_limits(field, limit):
    Config(**{field: limit}, **({"block_size": 4} if field != "num_layers" else {}))
    err = assert_config_error(field, limit + 1, **{field: limit + 1})
    assert f"at most {limit}" in err.rule


def test_block_size_upper_limit():
    assert Config(block_size=256, lanes=256).block_size == 256
    err = assert_config_error("block_size", 512, block_size=512, lanes=512)
    assert "at most 256" in err.rule


@pytest.mark.parametrize("window", [0, 3, -1])
def test_qrnn_window(window):
    err = assert_config_error("qrnn_window", window, qrnn_window=window, cell="qrnn")
    assert "1 or 2" in err.rule


def test_qrnn_window_one_and_two():
    assert Config(cell="qrnn", qrnn_window=1).layer_cols(0) == 16
    assert Config(cell="qrnn", qrnn_window=2).layer_cols(0) == 32


def test_lanes_must_equal_block_size_for_circulant():
    err = assert_config_error("lanes", 8, block_size=4, lanes=8)
    assert "block_size (4)" in err.rule


def test_dense_lanes_limit():
    assert Config(block_size=1, lanes=64).tile == 64
    assert Config(block_size=1, lanes=3).tile == 3  # dense: lanes is free up to 64
    err = assert_config_error("lanes", 65, block_size=1, lanes=65)
    assert "at most 64" in err.rule


def test_negative_seed():
    err = assert_config_error("seed", -1, seed=-1)
    assert "0 or more" in err.rule


@pytest.mark.parametrize("field", ["q_act", "q_state", "q_cell", "q_pre"])
def test_q_formats_need_integer_bits(field):
    bad = QFormat(8, 8)  # no integer bits, not even for values in [-1, 1)
    changes = {field: bad}
    if field == "q_state":
        changes["q_pre"] = QFormat(16, 11)
    err = assert_config_error(field, bad, **changes)
    assert "integer bits" in err.rule


def test_q_pre_more_fraction_bits_than_accumulator():
    cfg = Config()
    assert cfg.acc_frac == 18
    bad = QFormat(32, 20)
    err = assert_config_error("q_pre", bad, q_pre=bad)
    assert "more than the accumulator's 18" in err.rule
    # exactly acc_frac fraction bits is fine
    assert Config(q_pre=QFormat(24, 18)).q_pre.frac == 18


def test_q_pre_wider_than_accumulator(monkeypatch):
    """The width rule cannot fire with the current acc_width (see the next test),
    so the accumulator is shrunk to check that the rule names field and value."""
    monkeypatch.setattr(Config, "acc_width", property(lambda self: 20))
    bad = QFormat(24, 11)
    err = assert_config_error("q_pre", bad, q_pre=bad)
    assert "wider than the 20-bit accumulator" in err.rule


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("pre_width", [2, 8, 16, 24, 32])
def test_accumulator_always_holds_q_pre(name, pre_width):
    """acc_width includes the aligned bias, so q_pre always fits (the width rule is a backstop)."""
    cfg = preset(name)
    frac = min(pre_width - 1, cfg.acc_frac)
    try:
        cfg = cfg.replace(q_pre=QFormat(pre_width, frac))
    except ConfigError as exc:
        assert exc.field != "q_pre" or "wider" not in exc.rule
        return
    assert cfg.q_pre.width < cfg.acc_width


def test_accumulator_width_limit():
    bad = QFormat(32, 6)
    err = assert_config_error("q_weight", bad, q_weight=bad, q_state=QFormat(32, 12))
    assert "62 bits" in err.rule


@pytest.mark.parametrize("entries", [0, 2, 3, 100, 131072])
def test_table_entries_power_of_two(entries):
    err = assert_config_error("table_entries", entries, table_entries=entries)
    assert "power of two" in err.rule


@pytest.mark.parametrize("field", ["sigmoid_range", "tanh_range"])
@pytest.mark.parametrize("bad", [3.0, 6.0, 0.0, -8.0, 0.3])
def test_ranges_power_of_two(field, bad):
    err = assert_config_error(field, bad, **{field: bad})
    assert "power of two" in err.rule


@pytest.mark.parametrize("field", ["sigmoid_range", "tanh_range"])
@pytest.mark.parametrize("good", [0.5, 1.0, 2.0, 16.0])
def test_ranges_accept_powers_of_two(field, good):
    assert getattr(Config(**{field: good}), field) == good


def test_table_step_finer_than_q_pre():
    # sigmoid: step 16 / 65536 = 2**-12, finer than q_pre's 2**-11
    err = assert_config_error("sigmoid_range", 8.0, table_entries=65536)
    assert "finer than the resolution of q_pre" in err.rule
    # tanh alone: step 1 / 4096 = 2**-12
    err = assert_config_error("tanh_range", 0.5, tanh_range=0.5, table_entries=4096)
    assert "q_pre" in err.rule
    # a step equal to the resolution is fine
    assert Config(table_entries=32768, tanh_range=8.0).table_shift("sigmoid", 11) == 0


def test_table_step_finer_than_q_cell():
    q_cell = QFormat(16, 4)
    err = assert_config_error("tanh_range", 4.0, q_cell=q_cell, table_entries=4096, sigmoid_range=16.0)
    assert "q_cell" in err.rule and "Q11.4" in err.rule
    # q_cell only feeds tanh, and only in cells that have a cell state
    Config(cell="gru", q_cell=q_cell, table_entries=4096, sigmoid_range=16.0)


# ------------------------------------------------------------------ Q strings
def test_q_strings_are_parsed():
    cfg = Config(q_weight="Q1.6", q_pre="Q4.11")
    assert cfg.q_weight == QFormat(8, 6) and cfg.q_pre == QFormat(16, 11)


@pytest.mark.parametrize("field", ["q_weight", "q_state", "q_cell", "q_pre", "q_act", "q_spectrum"])
@pytest.mark.parametrize("bad", ["Q3", "Q3.40", "3.12", 16])
def test_malformed_q_strings(field, bad):
    err = assert_config_error(field, bad, **{field: bad})
    assert "Q3.12" in err.rule or "width" in err.rule


# ------------------------------------------------------------------ serialization
def test_from_dict_unknown_field():
    data = Config().to_dict()
    data["hiden_size"] = 8
    with pytest.raises(ConfigError) as info:
        Config.from_dict(data)
    msg = str(info.value)
    assert info.value.field == "hiden_size" and "'hiden_size'" in msg and "8" in msg
    assert "hidden_size" in info.value.rule  # lists the known fields


def test_from_dict_validates():
    with pytest.raises(ConfigError, match="'lstmx'"):
        Config.from_dict({"cell": "lstmx"})


def test_from_toml_errors():
    with pytest.raises(ConfigError, match="not valid TOML"):
        Config.from_toml("this is = = not toml")
    with pytest.raises(ConfigError, match=r"\[rnnaccel\]"):
        Config.from_toml("[other]\nx = 1\n")
    with pytest.raises(ConfigError, match="'hidden_size' = '8'"):
        Config.from_toml('[rnnaccel]\nhidden_size = "8"\n')


ALL_CONFIGS = {
    "default": Config(),
    **PRESETS,
    "gru-before": Config(cell="gru", gru_reset_after=False),
    "dense": Config(block_size=1, lanes=8, sigmoid_range=4.0, tanh_range=2.0, interpolate=False),
    "qrnn": Config(cell="qrnn", qrnn_window=1, num_layers=2, q_pre="Q5.10", seed=7),
    "fft": Config(circulant_mode="fft", q_spectrum="Q-1.8", block_size=8, lanes=8),
}


@pytest.mark.parametrize("name", sorted(ALL_CONFIGS))
def test_toml_round_trip(name, tmp_path):
    cfg = ALL_CONFIGS[name]
    text = cfg.to_toml()
    assert "[rnnaccel]" in text
    again = Config.from_toml(text)
    assert again == cfg and again.hash == cfg.hash
    path = tmp_path / f"{name}.toml"
    cfg.save(path)
    loaded = Config.load(path)
    assert loaded == cfg
    assert loaded.to_toml() == text
    for qf in ("q_weight", "q_state", "q_cell", "q_pre", "q_act", "q_spectrum"):
        assert isinstance(getattr(loaded, qf), QFormat)
    assert isinstance(loaded.sigmoid_range, float)


def test_to_dict_writes_q_strings():
    d = Config().to_dict()
    assert d["q_weight"] == "Q1.6" and d["q_pre"] == "Q4.11" and d["q_act"] == "Q1.14"
    assert Config.from_dict(d) == Config()


def test_hash_is_stable():
    h = Config().hash
    assert len(h) == 16 and int(h, 16) >= 0
    assert Config().hash == h
    assert Config.from_toml(Config().to_toml()).hash == h
    # same in another interpreter (no dependence on PYTHONHASHSEED or object ids)
    out = subprocess.run(
        [sys.executable, "-c", "from rnnaccel.numeric.config import Config; print(Config().hash)"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    assert out.stdout.strip() == h


CHANGES = {
    "cell": "gru",
    "input_size": 32,
    "hidden_size": 32,
    "num_layers": 2,
    "gru_reset_after": False,
    "qrnn_window": 1,
    "block_size": 8,
    "pe_rows": 2,
    "pe_cols": 1,
    "lanes": 8,
    "q_weight": QFormat(8, 7),
    "q_state": QFormat(16, 13),
    "q_cell": QFormat(16, 10),
    "q_pre": QFormat(16, 10),
    "q_act": QFormat(16, 15),
    "table_entries": 512,
    "sigmoid_range": 16.0,
    "tanh_range": 8.0,
    "interpolate": False,
    "weights_in_rom": False,
    "weight_ram": "huge",
    "stacked_projections": True,
    "datapath": "serial",
    "seed": 1,
    "name": "other",
    "circulant_mode": "fft",
    "q_spectrum": QFormat(8, 7),
    "delta_threshold": 0.01,
    "delta_threshold_h": 0.02,
    "cores": 2,
    "core_mode": "layers",
    "row_slices": 2,
    "row_slice": 1,
    "max_input_size": 32,
    "max_hidden_size": 32,
    "max_layers": 2,
    "weight_source": "flash",
    "time_steps": 4,
}


def test_changes_cover_every_field():
    assert set(CHANGES) == {f.name for f in dataclasses.fields(Config)}


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_hash_changes_with_every_field(field):
    base = Config()
    changes = {field: CHANGES[field]}
    if field in ("block_size", "lanes"):
        changes = {"block_size": 8, "lanes": 8}
    if field == "weight_ram":
        changes = {"weight_ram": "huge", "weights_in_rom": False}
    if field == "datapath":
        changes = {"datapath": "serial", "pe_cols": 1, "lanes": 2}
    if field.startswith("row_slice"):  # a helper core's share: slice 1 of 2
        changes = {"row_slices": 2, "row_slice": 1} if field == "row_slice" else {"row_slices": 2}
    if field == "weight_source":  # the serial datapath, weights fixed at generation
        base = base.replace(datapath="serial", pe_cols=1, lanes=2)
    if field == "time_steps":  # a serial SRU streaming its weights
        base = base.replace(cell="sru", datapath="serial", pe_cols=1, lanes=2, weight_source="flash")
    if field.startswith("max_"):  # run-time dimensions load each model's weights: compare at the same setting
        base = base.replace(weights_in_rom=False)
    changed = base.replace(**changes)
    assert changed != base
    assert changed.hash != base.hash


def test_hashes_of_presets_differ():
    hashes = {cfg.hash for cfg in ALL_CONFIGS.values()}
    assert len(hashes) == len(ALL_CONFIGS)


# ------------------------------------------------------------------ derived values
def test_lstm512_ice40_weight_bytes():
    cfg = preset("lstm512-ice40")
    assert cfg.weight_bytes == 131072 == 128 * 1024
    assert cfg.dense_weight_bytes == 2 * 1024 * 1024
    assert cfg.dense_weight_bytes // cfg.weight_bytes == cfg.block_size
    assert cfg.weight_words() == 4 * 512 * 512 * 2 // 16


def _ideal(cfg: Config) -> int:
    """Independent count: gates x padded hidden rows, times padded input cols (+ recurrent)."""
    t = cfg.block_size if cfg.block_size > 1 else cfg.lanes
    pad = lambda n: -(-n // t) * t  # noqa: E731
    gates = {"lstm": 4, "gru": 3, "qrnn": 3, "rnn": 1}
    macs = 0
    for layer in range(cfg.num_layers):
        n_in = cfg.input_size if layer == 0 else cfg.hidden_size
        g = gates.get(cfg.cell) or (4 if n_in != cfg.hidden_size else 3)
        cols = n_in * cfg.qrnn_window if cfg.cell == "qrnn" else n_in
        rows = g * pad(cfg.hidden_size)
        macs += rows * pad(cols)
        if cfg.cell in ("lstm", "gru", "rnn"):
            macs += rows * pad(cfg.hidden_size)
    mult = cfg.lanes * cfg.pe_rows * cfg.pe_cols
    return -(-macs // mult)


IDEAL_CONFIGS = {
    **ALL_CONFIGS,
    "sru-wide": Config(cell="sru", input_size=24, hidden_size=12, num_layers=2),
    "rnn-odd": Config(cell="rnn", input_size=10, hidden_size=6, block_size=1, lanes=4, pe_rows=3),
}


@pytest.mark.parametrize("name", sorted(IDEAL_CONFIGS))
def test_ideal_cycles_per_step(name):
    cfg = IDEAL_CONFIGS[name]
    macs = sum(r * c for layer in range(cfg.num_layers) for _, r, c in cfg.matrices(layer))
    assert cfg.ideal_cycles_per_step == -(-macs // cfg.multipliers)
    assert cfg.ideal_cycles_per_step == _ideal(cfg)


def test_ideal_cycles_lstm512():
    cfg = preset("lstm512-ice40")
    assert cfg.multipliers == 4  # the serial datapath: 4 lanes on k = 16 blocks
    assert cfg.ideal_cycles_per_step == (2048 * 512 * 2) // 4


def test_lstm512_ecp5_is_the_same_model_on_the_array():
    ice, ecp = preset("lstm512-ice40"), preset("lstm512-ecp5")
    same = ("cell", "input_size", "hidden_size", "num_layers", "block_size", "q_weight", "q_state", "q_cell", "q_pre")
    assert all(getattr(ice, f) == getattr(ecp, f) for f in same)
    assert ecp.weight_bytes == ice.weight_bytes == 128 * 1024
    assert ecp.datapath == "array" and ecp.weights_in_rom and ecp.weight_ram == "block"
    # 4x2 PEs of 16 lanes: 128 lane multipliers, 28 of the ULX3S-85F's 156 left for the gate unit
    assert ecp.multipliers == 128 and ecp.stacked_projections
    # 128 x 32 tiles per matrix over 4 x 2 PEs: 32 x 16 rounds of 16 cycles, two matrices, no idle PE
    assert [ecp.mvu_cycles(r, c) for _, r, c in ecp.matrices(0)] == [32 * 16 * 16] * 2
    assert ecp.ideal_cycles_per_step == (2048 * 512 * 2) // 128 == 2 * 32 * 16 * 16


def test_unknown_preset():
    with pytest.raises(KeyError) as info:
        preset("nope")
    msg = str(info.value)
    assert "'nope'" in msg
    for name in PRESETS:
        assert name in msg


def test_weight_ram_rules():
    with pytest.raises(ConfigError) as exc:
        Config(weight_ram="flash")
    assert "weight_ram" in str(exc.value) and "flash" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        Config(weight_ram="huge", weights_in_rom=True)
    assert "weights_in_rom" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        Config(weight_ram="huge", weights_in_rom=False, block_size=1, lanes=4)
    assert "block_size" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        Config(weight_ram="huge", weights_in_rom=False, q_weight="Q2.9")
    assert "16" in str(exc.value)
    assert Config(weight_ram="huge", weights_in_rom=False).weight_ram == "huge"
