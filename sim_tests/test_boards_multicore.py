"""Board builds of multi-core designs (issue 14), without the toolchain: the board top of a ``layers``
config and of a ``programs`` design elaborates for a board, ``rnnaccel build`` takes a layers model
directory and several one-core ones, the report's cycles per step are measured on the MultiCore."""

from __future__ import annotations

import pytest

from rnnaccel import cli
from rnnaccel.boards import build as board_build
from rnnaccel.boards.platforms import BoardError, get_platform
from rnnaccel.boards.top import BoardTop
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.model import random_weights, save_model

TINY = preset("tiny")
STACK = TINY.replace(num_layers=2, cores=2, core_mode="layers")


@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_multicore_board_tops_elaborate(board):
    platform = get_platform(board)
    plan = platform.build(BoardTop(STACK, random_weights(STACK, 1)), name="rnnaccel", do_build=False)
    assert "rnnaccel.il" in plan.files and "core1" in plan.files["rnnaccel.il"]
    gru = TINY.replace(cell="gru")
    models = [(TINY, random_weights(TINY, 2)), (gru, random_weights(gru, 3))]
    cfg = board_build.programs_config(models)
    assert (cfg.cores, cfg.core_mode) == (2, "programs")
    plan = get_platform(board).build(BoardTop(cfg, None, models=models), name="rnnaccel", do_build=False)
    assert "rnnaccel.il" in plan.files
    assert board_build.build_key(cfg, None, board, models=models) != board_build.build_key(
        cfg, None, board, models=models[::-1]
    )


def test_programs_config_checks():
    with pytest.raises(BoardError, match="two or more"):
        board_build.programs_config([(TINY, None)])
    with pytest.raises(BoardError, match="cores = 2"):
        board_build.programs_config([(TINY, None), (STACK, None)])


def test_measured_multicore_cycles_per_step():
    layers = board_build.measured_step_report(STACK, random_weights(STACK, 1))
    one = board_build.measured_cycles_per_step(TINY, random_weights(TINY, 1))
    # two one-layer cores in a pipeline: about one core's step each, the latency about two
    assert 0.8 * one < layers["cycles_per_step"] < 1.3 * one
    assert layers["latency_cycles"] > layers["cycles_per_step"]
    gru = TINY.replace(cell="gru")
    models = [(TINY, random_weights(TINY, 2)), (gru, random_weights(gru, 3))]
    prog = board_build.measured_step_report(board_build.programs_config(models), None, models)
    assert len(prog["core_cycles_per_step"]) == 2 and prog["cycles_per_step"] == max(prog["core_cycles_per_step"])


def test_cli_build_takes_multicore_models(tmp_path, capsys):
    stack = save_model(tmp_path / "stack", STACK, random_weights(STACK, 1))
    a = save_model(tmp_path / "a", TINY, random_weights(TINY, 2))
    b = save_model(tmp_path / "b", TINY.replace(cell="gru"), random_weights(TINY.replace(cell="gru"), 3))
    prog = TINY.replace(cores=2)
    p = save_model(tmp_path / "p", prog, random_weights(prog, 4))
    # past the config checks: the board lookup is the first error
    for args in ([str(stack)], [str(a), str(b)]):
        assert cli.main(["build", *args, "--board", "nosuchboard"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "unknown board" in err[0], err
    assert cli.main(["build", str(p), "--board", "ulx3s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one model per core" in err[0]
    assert cli.main(["build", str(a), str(stack), "--board", "ulx3s"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "one-core models" in err[0]
