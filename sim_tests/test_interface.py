"""The command interface (rnnaccel.interface.commands) agrees with the gateware's command layout."""

from __future__ import annotations

import pytest
from amaranth.hdl import Const

from rnnaccel.numeric.config import preset
from rnnaccel.interface.session import OP
from rnnaccel.hw.sequencer import command_layout
from rnnaccel.interface.commands import Op, command_fields, pack_command


@pytest.mark.parametrize("name", ["tiny", "lstm-small", "lstm512-ice40"])
def test_pack_command_matches_the_gateware_layout(name):
    cfg = preset(name)
    layout = command_layout(cfg)
    assert [(n, f.width) for n, f in layout] == list(command_fields(cfg).items())
    data_bits = command_fields(cfg)["data"]
    for op, sel, addr, data in [
        (Op.WRITE_WEIGHT, 3, 0xABCDE, (1 << data_bits) - 1),
        (Op.WRITE_VEC, 0xFFFF, 1, 5),
        (Op.RESET_STATE, 0, 0, 0),
        (Op.CLEAR_COUNTERS, 1, (1 << 24) - 1, 1 << 31),
    ]:
        view = layout.const({"op": op, "sel": sel, "addr": addr, "data": data})
        assert Const.cast(view).value == pack_command(op, sel, addr, data)
    assert OP == {op.name: int(op) for op in Op}


def test_pack_command_rejects_fields_that_do_not_fit():
    with pytest.raises(ValueError, match="sel"):
        pack_command(Op.WRITE_VEC, 1 << 16)
    with pytest.raises(ValueError, match="addr"):
        pack_command(Op.WRITE_VEC, 0, 1 << 24)
    with pytest.raises(ValueError, match="data"):
        pack_command(Op.WRITE_VEC, 0, 0, -1)
