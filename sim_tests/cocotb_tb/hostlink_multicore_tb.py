"""cocotb test of the generated Verilog of a 2-core programs HostLink: the host driver talks to the UART
pins (the transport of :mod:`hostlink_tb`), runs a programs session with addressed frames and checks that a
frame for a missing core is NAKed CORE; the outputs go to a result file the pytest side compares with
:func:`rnnaccel.interface.multicore.programs_golden`."""

from __future__ import annotations

import numpy as np

import cocotb
from cocotb.task import bridge

from cocotb_support import read_case
from hostlink_tb import start
from rnnaccel.boards.driver import DeviceError, LinkClient
from rnnaccel.interface.protocol import Error
from rnnaccel.numeric.config import Config
from rnnaccel.numeric.model import random_weights

CASE = read_case()


def programs_ops(arrays) -> list[tuple]:
    """The session the pytest side wrote the arrays of (the same structure on both sides)."""
    a = arrays
    return [
        ("reset", 0),
        ("reset", 1),
        ("run", {0: a["x0a"], 1: a["x1a"]}),
        ("state", 1, a["g0"], None),
        ("run", {1: a["x1b"], 0: a["x0b"]}),
    ]


@cocotb.test()
async def programs_session_over_uart(dut):
    cfgs = [Config.load(p) for p in CASE["configs"]]
    with np.load(CASE["session"]) as f:
        ops = programs_ops({k: f[k] for k in f.files})
    transport = await start(dut)

    def host():
        dev = LinkClient(transport, cfgs)
        for core, (cfg, seed) in enumerate(zip(cfgs, CASE["weights_seeds"])):
            if not cfg.weights_in_rom:
                dev.load_weights(random_weights(cfg, seed=seed), core=core)
        outs = dev.programs_session(ops)
        try:
            dev.reset(core=2)
            code = 0
        except DeviceError as exc:
            code = int(exc.code)
        return outs, code, [dev.counters(c)["steps"] for c in range(2)], dev.device

    outs, code, steps, info = await bridge(host)()
    assert info.mode == "programs" and info.n_cores == 2
    assert code == Error.CORE
    assert transport.framing_errors == 0
    result = {f"out{i}_{core}": y for i, out in enumerate(outs) for core, y in out.items()}
    np.savez(CASE["result"], steps=np.array(steps), **result)
