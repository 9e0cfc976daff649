"""``rnnaccel sweep`` (issue 18): specs, points, the results table and its resumption, executors, Pareto fronts.

Cycles per step in a sweep come from the Amaranth simulator; each test checks them against a direct
:func:`rnnaccel.flow.sim_amaranth.step_cycles` run of the same config. Real builds are not run here (the board
tests build one bitstream per family); the build columns are checked on a made-up report.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnaccel.explore.evaluate import evaluate_task, failure_status, report_fields
from rnnaccel.explore.pareto import fronts, non_dominated
from rnnaccel.explore.points import BaseModel, make_tasks
from rnnaccel.explore.spec import SweepSpecError, load_spec, parse_spec
from rnnaccel.explore.sweep import run_sweep
from rnnaccel.explore.table import ResultsTable, TableError
from rnnaccel.flow.sim_amaranth import step_cycles
from rnnaccel.explore.cycle_model import cycles_per_step
from rnnaccel.numeric.circulant import expand, project
from rnnaccel.numeric.config import preset
from rnnaccel.numeric.model import random_weights, save_model

from cli_helpers import one_line_error
from cli_helpers import run_cli as run

#: Two tiny LSTM designs (8x8, k = 4 and k = 8), simulation only: about a second each.
TINY = {"base": {"preset": "tiny"}, "axes": {"block_size,lanes": [[4, 4], [8, 8]]}, "run": {"steps": 3}}


def _rows(folder: Path) -> list[dict]:
    with open(folder / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- spec


def test_spec_expands_axes_in_order_with_linked_fields():
    spec = parse_spec({"base": {"preset": "tiny", "set": {"seed": 5}},
                       "axes": {"pe_cols": [1, 2], "block_size,lanes": [[4, 4], [8, 8]]}})  # fmt: skip
    assert spec.fields == ["pe_cols", "block_size", "lanes"]
    assert spec.points() == [
        {"pe_cols": 1, "block_size": 4, "lanes": 4},
        {"pe_cols": 1, "block_size": 8, "lanes": 8},
        {"pe_cols": 2, "block_size": 4, "lanes": 4},
        {"pe_cols": 2, "block_size": 8, "lanes": 8},
    ]
    cols = spec.columns()
    assert cols[cols.index("point") + 1 : cols.index("point") + 4] == ["pe_cols", "block_size", "lanes"]
    assert spec.boards == () and spec.cycles and spec.steps == 3
    assert BaseModel(spec).cfg.seed == 5


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"axes": {"lanes": [1]}}, "[base] is missing"),
        ({"base": {"preset": "tiny", "model": "x"}, "axes": {"lanes": [1]}}, "exactly one of"),
        ({"base": {"preset": "nope"}, "axes": {"lanes": [1]}}, "unknown preset 'nope'"),
        ({"base": {"model": "no/such/dir"}, "axes": {"lanes": [1]}}, "no such model directory"),
        ({"base": {"preset": "tiny"}}, "[axes] is missing"),
        ({"base": {"preset": "tiny"}, "axes": {"lane": [1]}}, "'lane' is not a config field"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": []}}, "non-empty list"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1, 1]}}, "lists a value twice"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1], "block_size,lanes": [[4, 4]]}}, "on two axes"),
        ({"base": {"preset": "tiny"}, "axes": {"block_size,lanes": [4, 8]}}, "each value is a list of 2"),
        ({"base": {"preset": "tiny", "set": {"x": 1}}, "axes": {"lanes": [1]}}, "'x' is not a config field"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "run": {"board": ["x"]}}, "no key 'board'"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "run": {"boards": ["zx81"]}}, "unknown board 'zx81'"),
        (
            {
                "base": {"preset": "tiny"},
                "axes": {"lanes": [1]},
                "run": {"boards": ["ulx3s"], "freq": {"icebreaker": 24}},
            },
            "not in boards",
        ),  # fmt: skip
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "run": {"steps": 0}}, "steps must be"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "run": {"build_timeout": 0}}, "build_timeout must be"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "run": {"build_timeout": "1h"}}, "build_timeout must"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "run": {"cycles": False}}, "measures nothing"),
        ({"base": {"preset": "tiny"}, "axes": {"lanes": [1]}, "other": {}}, "unknown table [other]"),
    ],
)
def test_spec_errors_name_the_problem(data, needle):
    with pytest.raises(SweepSpecError) as exc:
        parse_spec(data, source="s.toml")
    assert needle in str(exc.value) and str(exc.value).startswith("s.toml: ")


def test_load_spec_reads_toml_and_resolves_paths(tmp_path):
    save_model(tmp_path / "m", preset("tiny"), random_weights(preset("tiny")))
    (tmp_path / "s.toml").write_text('[base]\nmodel = "m"\n[axes]\npe_cols = [1, 2]\n')
    spec = load_spec(tmp_path / "s.toml")
    assert spec.base_kind == "model" and spec.base == str((tmp_path / "m").resolve())
    (tmp_path / "bad.toml").write_text("[base\n")
    with pytest.raises(SweepSpecError, match="not valid TOML"):
        load_spec(tmp_path / "bad.toml")


# ---------------------------------------------------------------------------- points and weights


def test_model_directory_base_reprojects_a_swept_block_size(tmp_path):
    cfg4 = preset("tiny")
    w4 = random_weights(cfg4)
    save_model(tmp_path / "m", cfg4, w4)
    spec = parse_spec({"base": {"model": str(tmp_path / "m")}, "axes": {"block_size,lanes": [[4, 4], [8, 8]]}})
    base = BaseModel(spec)
    cfg, w = base.design({"block_size": 4, "lanes": 4})
    assert cfg == cfg4 and all(np.array_equal(w[k], w4[k]) for k in w4)  # stored weights, as they are
    cfg8, w8 = base.design({"block_size": 8, "lanes": 8})
    dense = expand(np.asarray(w4["layer0.U"][0], np.float64))[:8, :8]
    np.testing.assert_allclose(w8["layer0.U"][0], project(dense, 8), rtol=1e-6)
    with pytest.raises(ValueError, match="hidden_size comes from the base model"):
        base.design({"hidden_size": 16})


def test_invalid_points_become_rows_and_valid_ones_tasks(tmp_path):
    spec = parse_spec({"base": {"preset": "tiny"}, "axes": {"lanes": [4, 3]}})
    tasks, invalid = make_tasks(spec)
    assert [t.point for t in tasks] == [{"lanes": 4}] and [b.point for b in invalid] == [{"lanes": 3}]
    assert "config field 'lanes' = 3" in invalid[0].message
    # the same design on another run has the same key; another design has another
    again, _ = make_tasks(spec)
    assert again[0].key == tasks[0].key and again[0].design_hash == tasks[0].design_hash
    other, _ = make_tasks(parse_spec({"base": {"preset": "tiny", "set": {"seed": 9}}, "axes": {"lanes": [4]}}))
    assert other[0].key != tasks[0].key


# ---------------------------------------------------------------------------- running, the table, resuming


def _expected_cycles(point):
    cfg = preset("tiny").replace(**point)
    return cfg, step_cycles(cfg, random_weights(cfg), 3)


def test_sweep_measures_cycles_and_resumes(tmp_path):
    spec = parse_spec(TINY)
    out = tmp_path / "out"
    res = run_sweep(spec, out, jobs=2, progress=False, plots=False)
    assert (res.tasks, res.ran, res.reused, res.invalid, res.counts) == (2, 2, 0, 0, {"ok": 2})
    by_k = {r["block_size"]: r for r in res.rows}
    for k in (4, 8):
        cfg, per_step = _expected_cycles({"block_size": k, "lanes": k})
        row = by_k[k]
        assert row["cycles_per_step"] == per_step[-1] and row["first_step_cycles"] == per_step[0]
        assert row["ideal_cycles_per_step"] == cfg.ideal_cycles_per_step
        assert row["mac_utilization"] == round(cfg.ideal_cycles_per_step / per_step[-1], 4)
        assert row["weight_bytes"] == cfg.weight_bytes and row["multipliers"] == cfg.multipliers
    # the same sweep again: nothing runs
    res2 = run_sweep(spec, out, jobs=2, progress=False, plots=False)
    assert (res2.ran, res2.reused) == (0, 2)
    # a sweep killed while writing its second row: the cut line is dropped and only that point runs again
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    (out / "results.csv").write_text("".join(lines[:2]) + lines[2][:30])
    res3 = run_sweep(spec, out, jobs=1, progress=False, plots=False)
    assert (res3.ran, res3.reused) == (1, 1)
    assert sorted(r["status"] for r in _rows(out)) == ["ok", "ok"]
    # the Parquet file holds the same rows
    import pyarrow.parquet as pq

    table = pq.read_table(out / "results.parquet").to_pylist()
    assert [(r["block_size"], r["cycles_per_step"]) for r in table] == [
        (r["block_size"], r["cycles_per_step"]) for r in res3.rows
    ]
    assert (out / "pareto.csv").exists()


def test_sweep_limit_runs_part_and_the_rest_later(tmp_path):
    spec = parse_spec(TINY)
    res = run_sweep(spec, tmp_path, limit=1, progress=False, plots=False)
    assert (res.ran, res.counts) == (1, {"ok": 1})
    res = run_sweep(spec, tmp_path, progress=False, plots=False)
    assert (res.ran, res.reused, res.counts) == (1, 1, {"ok": 2})


def test_rows_of_other_generator_code_are_set_aside(tmp_path):
    """A row whose key the sweep no longer makes (the generator code changed: the design hash did) leaves
    results.csv for results.superseded.csv, kept whole; its point runs again and the outputs hold only rows
    of this run's code."""
    spec = parse_spec(TINY)
    run_sweep(spec, tmp_path, limit=1, progress=False, plots=False)
    (row,) = _rows(tmp_path)
    text = (tmp_path / "results.csv").read_text()
    (tmp_path / "results.csv").write_text(text.replace(row["key"], "00000000deadbeef"))
    res = run_sweep(spec, tmp_path, progress=False, plots=False)
    assert (res.superseded, res.reused, res.ran, res.counts) == (1, 0, 2, {"ok": 2})
    assert "00000000deadbeef" not in {r["key"] for r in _rows(tmp_path)} and len(_rows(tmp_path)) == 2
    with open(tmp_path / "results.superseded.csv", newline="") as f:
        (old,) = list(csv.DictReader(f))
    assert old["key"] == "00000000deadbeef" and old["cycles_per_step"] == str(row["cycles_per_step"])
    import pyarrow.parquet as pq

    assert sorted(r["key"] for r in pq.read_table(tmp_path / "results.parquet").to_pylist()) == sorted(
        r["key"] for r in _rows(tmp_path)
    )
    assert run_sweep(spec, tmp_path, progress=False, plots=False).superseded == 0


def test_table_of_another_sweep_is_refused(tmp_path):
    run_sweep(parse_spec(TINY), tmp_path, limit=0, progress=False, plots=False)
    other = parse_spec({"base": {"preset": "tiny"}, "axes": {"pe_cols": [1]}})
    with pytest.raises(TableError, match="other columns"):
        ResultsTable(tmp_path, other.columns())
    res = run_sweep(other, tmp_path, restart=True, progress=False, plots=False)
    assert res.counts == {"ok": 1}


def test_sweep_on_a_dask_local_cluster_gives_the_same_rows(tmp_path):
    spec = parse_spec(TINY)  # dask distributed comes with the explore extra, which setup.sh installs
    res = run_sweep(spec, tmp_path, dask="local:2", progress=False, plots=False)
    assert res.counts == {"ok": 2}
    for row in res.rows:
        _, per_step = _expected_cycles({"block_size": row["block_size"], "lanes": row["lanes"]})
        assert row["cycles_per_step"] == per_step[-1]
    assert len({r["worker"] for r in res.rows}) >= 1


def _tagged(tag: str) -> list[int]:
    """Processes whose environment carries ``RNNACCEL_TEST_TAG=tag`` (a sweep started by a test and its workers
    and tools, which inherit the environment)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if f"RNNACCEL_TEST_TAG={tag}".encode() in env.read_bytes().split(b"\0"):
                found.append(int(env.parent.name))
        except OSError:  # gone, or not ours to read
            pass
    return found


def _start_sweep(tmp_path, jobs: int):
    """The CLI on four tiny points, stopped once its first row is in; (process, output folder, tag)."""
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\npreset = "tiny"\n[axes]\npe_cols = [1, 2]\npe_rows = [1, 2]\n')
    out = tmp_path / "out"
    tag = f"{os.getpid()}-{tmp_path.name}"
    cmd = [sys.executable, "-m", "rnnaccel.cli", "sweep", str(spec), "-o", str(out), "--no-plots", "-j", str(jobs)]
    with open(tmp_path / "log.txt", "w") as log:  # a file, not a pipe: orphans holding a pipe would block a read
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "RNNACCEL_TEST_TAG": tag},
        )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (out / "results.csv").exists() and len(_rows(out)) >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    return proc, spec, out, tag


def _wait_gone(tag: str, seconds: float = 15.0) -> list[int]:
    deadline = time.time() + seconds
    while (left := _tagged(tag)) and time.time() < deadline:
        time.sleep(0.1)
    return left


def test_killed_sweep_resumes_without_redoing_points(tmp_path):
    """The CLI killed (SIGKILL, its own process only) after its first row: its workers stop by themselves (no
    orphaned runs), and the next run does only the points not in the table."""
    proc, spec, out, tag = _start_sweep(tmp_path, jobs=2)
    assert len(_tagged(tag)) >= 3  # the CLI and its two workers
    proc.kill()
    proc.wait()
    left = _wait_gone(tag)
    for pid in left:  # the assertion below fails; do not leave them running
        os.kill(pid, signal.SIGKILL)
    assert left == [], "worker processes outlived the killed sweep"
    done_before = {r["key"] for r in _rows(out) if r["status"] == "ok"}
    assert 1 <= len(done_before) < 4
    res = run_sweep(load_spec(spec), out, progress=False, plots=False)
    assert res.reused == len(done_before) and res.ran == 4 - len(done_before)
    assert res.counts == {"ok": 4} and len({r["key"] for r in _rows(out)}) == 4


def test_sigterm_ends_a_sweep_like_ctrl_c(tmp_path):
    """SIGTERM to the CLI: it says it was interrupted, stops its workers, keeps the table and writes the Parquet."""
    proc, spec, out, tag = _start_sweep(tmp_path, jobs=1)
    proc.terminate()
    assert proc.wait(timeout=60) == 130
    printed = (tmp_path / "log.txt").read_text()
    assert "interrupted: run the same command again to resume" in printed, printed
    left = _wait_gone(tag)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "worker processes outlived the stopped sweep"
    assert (out / "results.parquet").is_file() and 1 <= len(_rows(out)) < 4


# ---------------------------------------------------------------------------- builds (made-up report), failures


def test_build_columns_and_time_per_step_from_a_report(tmp_path, monkeypatch):
    spec = parse_spec({"base": {"preset": "tiny"}, "axes": {"lanes": [4]}, "run": {"boards": ["icebreaker"]}})
    (task,), _ = make_tasks(spec, build_cache=str(tmp_path))
    report = {
        "utilization": {
            "logic": {"used": 3000, "available": 5280},
            "dsp": {"used": 4, "available": 8},
            "bram": {"used": 10, "available": 30},
            "spram": {"used": 0, "available": 4},
        },  # fmt: skip
        "fmax_mhz": 40.0,
        "target_mhz": 12.0,
        "timing_met": True,
        "critical_path": {"delay_ns": 25.0, "start": "a", "end": "b"},
        "cycles_per_step": 90.0,
    }
    import rnnaccel.boards.build as build

    monkeypatch.setattr(build, "build_board_cached", lambda *a, **k: (report, tmp_path / "b"))
    row = evaluate_task(task)
    _, per_step = _expected_cycles({"lanes": 4})
    assert row["status"] == "ok" and row["cycles_per_step"] == per_step[-1]  # the simulated steady state
    assert (row["logic"], row["dsp"], row["bram"], row["spram"], row["ff"]) == (3000, 4, 10, 0, None)
    assert row["us_per_step_fmax"] == round(per_step[-1] / 40.0, 4)
    assert row["us_per_step_target"] == round(per_step[-1] / 12.0, 4)
    assert row["critical_path"] == "25.00 ns: a -> b"

    def no_fit(*a, **k):
        raise build.BoardError("the design does not fit the icebreaker (iCE40UP5K): 6000 ICESTORM_LC of 5280. Use ...")

    monkeypatch.setattr(build, "build_board_cached", no_fit)
    row = evaluate_task(task)
    assert row["status"] == "nofit" and "6000 ICESTORM_LC of 5280" in row["message"]
    assert report_fields({})["logic"] == 0


def test_build_timeout_stops_the_tools(tmp_path):
    """A real build given 3 s (yosys alone takes longer): BuildTimeout, no tool of it left running, and the
    sweep's task carries the spec's limit to the build and makes the timeout a failed row."""
    import rnnaccel.boards.build as build

    cfg = preset("tiny")
    with pytest.raises(build.BuildTimeout, match="time limit of 3 s"):
        build.build_board(cfg, random_weights(cfg), "icebreaker", tmp_path / "b", progress=lambda m: None, timeout=3)
    folder = str((tmp_path / "b" / "build").resolve())
    left = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if os.readlink(proc / "cwd") == folder:
                left.append(proc.name)
        except OSError:
            pass
    assert left == [], "a tool of the stopped build is still running"
    spec = parse_spec(
        {"base": {"preset": "tiny"}, "axes": {"lanes": [4]}, "run": {"boards": ["icebreaker"], "build_timeout": 3}}
    )
    (task,), _ = make_tasks(spec, build_cache=str(tmp_path / "cache"))
    assert task.build_timeout == 3.0
    row = evaluate_task(task)
    assert row["status"] == "failed" and "time limit of 3 s" in row["message"]


def test_failure_status_takes_the_tools_last_line():
    exc = RuntimeError("the icebreaker build failed (CalledProcessError: ...); logs in x\nInfo: a\nERROR: no route\n")
    assert failure_status(exc) == ("failed", "ERROR: no route")
    assert failure_status(ValueError("one line")) == ("failed", "one line")


# ---------------------------------------------------------------------------- Pareto fronts


def test_non_dominated_keeps_exactly_the_front():
    rows = [
        {"t": 10, "a": 1, "id": "slow-small"},
        {"t": 5, "a": 2, "id": "mid"},
        {"t": 6, "a": 3, "id": "dominated by mid"},
        {"t": 1, "a": 9, "id": "fast-big"},
        {"t": 5, "a": 2, "id": "mid twin"},
    ]
    assert [r["id"] for r in non_dominated(rows, ["t", "a"])] == ["slow-small", "mid", "fast-big", "mid twin"]


def test_fronts_per_board_use_build_measures_when_built():
    def row(board, us, logic, dsp, bram, label, status="ok"):
        return {"board": board, "status": status, "cycles_per_step": us * 10, "us_per_step_fmax": us,
                "logic": logic, "dsp": dsp, "bram": bram, "label": label}  # fmt: skip

    rows = [
        row("icebreaker", 10, 1000, 2, 5, "a"),
        row("icebreaker", 5, 2000, 4, 5, "b"),
        row("icebreaker", 12, 1200, 2, 6, "c"),
        row("icebreaker", 1, 100, 1, 1, "broken", status="failed"),
        row("ulx3s", 1, 9000, 20, 30, "d"),
    ]
    f = fronts(rows)
    assert [r["label"] for r in f["icebreaker"]["all"]] == ["b", "a"]
    assert [r["label"] for r in f["icebreaker"]["time-logic"]] == ["a", "b"]
    assert [r["label"] for r in f["ulx3s"]["all"]] == ["d"]


# ---------------------------------------------------------------------------- CLI


def test_cli_sweep_prints_the_front_and_writes_the_files(tmp_path, capsys):
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\npreset = "tiny"\n[axes]\n"block_size,lanes" = [[4, 4], [8, 8]]\n')
    code, out, err = run(["sweep", spec, "-o", tmp_path / "out"], capsys)
    assert code == 0, err
    assert "2 points" in out and "2 run now" in out and "Pareto front, simulation only" in out
    for name in ("results.csv", "results.parquet", "pareto.csv", "pareto_sim.png"):
        assert (tmp_path / "out" / name).exists(), name
    code, out, _ = run(["sweep", spec, "-o", tmp_path / "out", "--no-plots"], capsys)
    assert code == 0 and "0 run now, 2 from earlier runs" in out


def test_cli_sweep_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(["sweep", tmp_path / "missing.toml", "-o", tmp_path / "o"], capsys)
    assert code == 2
    one_line_error(err, "does not exist")
    spec = tmp_path / "s.toml"
    spec.write_text('[base]\npreset = "tiny"\n[axes]\nlanes = "4"\n')
    code, _, err = run(["sweep", spec, "-o", tmp_path / "o"], capsys)
    assert code == 2
    one_line_error(err, "non-empty list")
    spec.write_text('[base]\npreset = "tiny"\n[axes]\nlanes = [4]\n')
    code, _, err = run(["sweep", spec, "-o", tmp_path / "o", "--jobs", "0"], capsys)
    assert code == 2
    one_line_error(err, "--jobs")
    code, _, err = run(["sweep", spec, "-o", tmp_path / "o", "--dask", "local:x"], capsys)
    assert code == 2
    one_line_error(err, "local:N")


# ---------------------------------------------------------------------------- rnnaccel fit


def test_fit_candidates_keep_the_arithmetic():
    from rnnaccel.explore.fit import candidates
    from rnnaccel.layout.runtime import ARITHMETIC_FIELDS

    base = preset("tiny")
    points = candidates(base, "ice40")
    cfgs = [base.replace(**p) for p in points]
    assert len({c.hash for c in cfgs}) == len(cfgs)
    assert any(c == base for c in cfgs), "the model's own design is a candidate"
    assert {c.datapath for c in cfgs} == {"array", "serial"}
    assert {c.lanes for c in cfgs if c.datapath == "serial"} == {1, 2, 4}
    for c in cfgs:
        assert all(getattr(c, f) == getattr(base, f) for f in ARITHMETIC_FIELDS)
    varied = candidates(base, "ice40", {"interpolate": [False, True]})
    assert len(varied) == 2 * len(points)


def _fake_build(cfg, weights, board, cache_dir, *, freq_mhz=None, progress=None, **_):
    """A stand-in for nextpnr: logic grows with the multipliers, Fmax falls a little with them; over 5280 cells
    does not fit (the real flow is measured by the fit itself, docs/sweep.md)."""
    from rnnaccel.boards.platforms import BoardError

    logic = 900 + 330 * cfg.multipliers + (400 if cfg.datapath == "array" else 0)
    if logic > 5280:
        raise BoardError(f"the design does not fit the icebreaker (iCE40UP5K): {logic} ICESTORM_LC of 5280.")
    fmax = 36.0 - 0.5 * cfg.multipliers
    target = freq_mhz or 12.0
    report = {
        "utilization": {
            "logic": {"used": logic, "available": 5280},
            "dsp": {"used": cfg.multipliers, "available": 8},
            "bram": {"used": 6, "available": 30},
        },  # fmt: skip
        "fmax_mhz": fmax,
        "target_mhz": target,
        "timing_met": fmax >= target,
    }
    return report, Path(cache_dir) / f"{cfg.hash}-{target:g}"


def test_fit_picks_the_fastest_fitting_design(tmp_path, monkeypatch, capsys):
    import rnnaccel.boards.build as build
    from rnnaccel.explore.fit import fit_model, write_fit
    from rnnaccel.numeric.model import load_model

    monkeypatch.setattr(build, "build_board_cached", _fake_build)
    base = preset("tiny")
    save_model(tmp_path / "m", base, random_weights(base))
    res = fit_model(tmp_path / "m", "icebreaker", tmp_path / "work", jobs=0, progress=False, echo=lambda _m: None)
    # brute force over the simulated candidates: every one within 8 DSPs, built by the fake
    sim = [r for r in _rows(tmp_path / "work" / "simulation") if r["status"] == "ok"]
    best = None
    for r in sim:
        cfg = base.replace(**{f: _value(r[f]) for f in ("datapath", "pe_rows", "pe_cols", "lanes",
                                                         "stacked_projections", "weight_ram")})  # fmt: skip
        if cfg.multipliers > 8 or 900 + 330 * cfg.multipliers + (400 if cfg.datapath == "array" else 0) > 5280:
            continue
        t = int(r["cycles_per_step"]) / (36.0 - 0.5 * cfg.multipliers)
        best = min(best or (t, r["label"]), (t, r["label"]))
    assert res.chosen["label"] == best[1] and res.chosen["us_per_step_fmax"] == pytest.approx(best[0], abs=1e-3)
    assert any("MAC multipliers > 8 DSPs" in p for p in res.pruned)
    # the build table collects every round's rows (each round is a sweep of its own candidates)
    assert len(_rows(tmp_path / "work" / "builds-table")) == res.built >= 2
    assert not (tmp_path / "work" / "builds-table" / "results.superseded.csv").exists()
    assert res.freq_mhz == int(res.chosen["fmax_mhz"] * 0.95 * 2) / 2 and res.confirm["timing_met"]
    path = write_fit(res, tmp_path / "m", tmp_path / "out", "icebreaker")
    cfg, w = load_model(tmp_path / "out")
    assert cfg == res.cfg and all(np.array_equal(w[k], v) for k, v in load_model(tmp_path / "m")[1].items())
    assert '"freq_mhz"' in path.read_text()
    # a routing margin: at most half the DSPs on MAC multipliers (the same work folder: nothing simulated again)
    half = fit_model(
        tmp_path / "m", "icebreaker", tmp_path / "work", jobs=0, progress=False, echo=lambda _m: None,
        max_dsp_share=0.5, confirm=False,
    )  # fmt: skip
    assert (
        half.cfg.multipliers
        <= 4
        < max(
            base.replace(**{f: _value(r[f]) for f in ("datapath", "pe_rows", "pe_cols", "lanes")}).multipliers
            for r in sim
        )
    )
    assert any("MAC multipliers > 0.5 of 8 DSPs" in p for p in half.pruned)


def _value(text):
    return {"True": True, "False": False}.get(text, int(text) if text.isdigit() else text)


def test_cli_fit_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(["fit", tmp_path / "nothing", "--board", "icebreaker", "-o", tmp_path / "o"], capsys)
    assert code == 2
    one_line_error(err, "not a model directory")
    save_model(tmp_path / "m", preset("tiny"), random_weights(preset("tiny")))
    code, _, err = run(["fit", tmp_path / "m", "--board", "zx81", "-o", tmp_path / "o"], capsys)
    assert code == 2
    one_line_error(err, "unknown board 'zx81'")
    code, _, err = run(
        ["fit", tmp_path / "m", "--board", "icebreaker", "-o", tmp_path / "o", "--vary", "nope=1"], capsys
    )
    assert code == 2
    one_line_error(err, "--vary nope")
    code, _, err = run(["fit", tmp_path / "m", "--board", "icebreaker", "-o", tmp_path / "m"], capsys)
    assert code == 2
    one_line_error(err, "already holds a model")
    code, _, err = run(
        ["fit", tmp_path / "m", "--board", "icebreaker", "-o", tmp_path / "o", "--build-timeout", "0"], capsys
    )
    assert code == 2
    one_line_error(err, "--build-timeout must be a positive number")
    code, _, err = run(
        ["fit", tmp_path / "m", "--board", "icebreaker", "-o", tmp_path / "o", "--max-dsp-share", "0"], capsys
    )
    assert code == 2
    one_line_error(err, "max_dsp_share must be in (0, 1]")


# ---------------------------------------------------------------------------- accuracy on a data set


def _classifier_model(folder: Path) -> tuple[Path, Path]:
    """A tiny LSTM with a random 3-class head, and 24 sequences labelled by its own golden model (the base
    design scores 100%)."""
    from rnnaccel.accuracy.evaluate import classify, load_head, save_head

    cfg = preset("tiny")
    weights = random_weights(cfg)
    save_model(folder / "m", cfg, weights)
    rng = np.random.default_rng(1)
    save_head(folder / "m", rng.normal(size=(3, cfg.hidden_size)), rng.normal(size=3) * 0.1)
    X = rng.uniform(-1, 1, size=(24, 6, cfg.input_size))
    lengths = np.full(24, 6)
    y = classify(cfg, weights, load_head(folder / "m"), X, lengths)
    np.savez(folder / "d.npz", X=X, y=y)
    return folder / "m", folder / "d.npz"


def test_sweep_measures_golden_accuracy_per_point(tmp_path):
    from rnnaccel.accuracy.evaluate import classify, load_head

    model, data = _classifier_model(tmp_path)
    spec = parse_spec(
        {
            "base": {"model": str(model)},
            "axes": {"table_entries,interpolate": [[256, True], [16, False]]},
            "run": {"data": str(data), "cycles": False},
        },  # fmt: skip
    )
    res = run_sweep(spec, tmp_path / "out", jobs=0, progress=False, plots=False)
    assert res.counts == {"ok": 2}
    d = np.load(data)
    base = BaseModel(spec)
    for row in res.rows:
        cfg, w = base.design({"table_entries": row["table_entries"], "interpolate": row["interpolate"]})
        want = float(np.mean(classify(cfg, w, load_head(model), d["X"], np.full(24, 6)) == d["y"]))
        assert row["accuracy"] == pytest.approx(want, abs=1e-6)
        # not simulated (cycles = false): the analytic model's figure
        assert row["cycles_from"] == "model" and row["cycles_per_step"] == cycles_per_step(cfg)
    assert [r["accuracy"] for r in res.rows if r["table_entries"] == 256] == [1.0]  # tiny's own arithmetic
    with pytest.raises(SweepSpecError, match="head.npz"):
        parse_spec({"base": {"preset": "tiny"}, "axes": {"lanes": [4]}, "run": {"data": str(data)}})


def test_sweep_retrains_each_point_before_measuring_it(tmp_path):
    """[run] retrain: each point is retrained on its own arithmetic (here 16 table entries, no interpolation,
    which costs the tiny classifier accuracy) and its row measures the retrained model, which is written to
    OUT/models/<key>/; the same sweep again reuses every row."""
    from rnnaccel.accuracy.evaluate import classify, load_head
    from rnnaccel.accuracy.retrain import load_task_data, retrain
    from rnnaccel.numeric.model import load_model

    model, data = _classifier_model(tmp_path)
    run = {"data": str(data), "cycles": False, "retrain": {"data": str(data), "epochs": 2, "lr": 0.01, "seed": 3}}
    spec = parse_spec({"base": {"model": str(model)}, "axes": {"table_entries,interpolate": [[16, False]]},
                       "run": run})  # fmt: skip
    assert spec.columns()[-3:] == ["retrain_best_epoch", "retrain_seconds", "model_dir"]
    res = run_sweep(spec, tmp_path / "out", jobs=0, progress=False, plots=False)
    assert res.counts == {"ok": 1}, res.rows
    (row,) = res.rows
    d = np.load(data)
    cfg, w = BaseModel(spec).design({"table_entries": 16, "interpolate": False})
    want = retrain(cfg, w, load_task_data(data, cfg.input_size), None, head=load_head(model), epochs=2, lr=0.01,
                   batch=32, seed=3, threads=1, progress=False)  # fmt: skip
    assert row["retrain_best_epoch"] == want.best_epoch
    saved = Path(row["model_dir"])
    assert saved == (tmp_path / "out" / "models" / row["key"]).resolve()
    cfg2, w2 = load_model(saved)
    for name in w2:
        assert np.array_equal(np.asarray(w2[name]), np.asarray(want.weights[name])), name
    acc = float(np.mean(classify(cfg2, w2, load_head(saved), d["X"], np.full(24, 6)) == d["y"]))
    assert row["accuracy"] == pytest.approx(acc, abs=1e-6)
    # the same point without retraining is another row (another key), measured on the imported weights
    plain = parse_spec({"base": {"model": str(model)},
                        "axes": {"table_entries,interpolate": [[16, False]]},
                        "run": {"data": str(data), "cycles": False}})  # fmt: skip
    (plain_row,) = run_sweep(plain, tmp_path / "plain", jobs=0, progress=False, plots=False).rows
    assert plain_row["key"] != row["key"]
    plain_pred = classify(cfg, w, load_head(model), d["X"], np.full(24, 6))
    assert plain_row["accuracy"] == pytest.approx(float(np.mean(plain_pred == d["y"])), abs=1e-6)
    assert run_sweep(spec, tmp_path / "out", jobs=0, progress=False, plots=False).reused == 1
    with pytest.raises(SweepSpecError, match="retrain needs data"):
        parse_spec({"base": {"model": str(model)}, "axes": {"lanes": [4]},
                    "run": {"retrain": {"data": str(data)}}})  # fmt: skip
    with pytest.raises(SweepSpecError, match="retrain.epochs"):
        parse_spec({"base": {"model": str(model)}, "axes": {"lanes": [4]},
                    "run": {"data": str(data), "retrain": {"data": str(data), "epochs": 0}}})  # fmt: skip


def test_cycle_model_in_the_table(tmp_path):
    """A serial point's row has the analytic model's cycles beside the simulated ones (equal); a point too
    large to simulate takes the model's."""
    spec = parse_spec(
        {"base": {"preset": "lstm-small-ice40"}, "axes": {"lanes": [2, 4]}, "run": {"max_ideal_cycles": 3000}}
    )
    res = run_sweep(spec, tmp_path, jobs=0, progress=False, plots=False)
    by_lanes = {r["lanes"]: r for r in res.rows}
    assert by_lanes[4]["cycles_from"] == "simulation" and by_lanes[2]["cycles_from"] == "model"
    assert by_lanes[4]["cycles_per_step"] == by_lanes[4]["model_cycles_per_step"] == 2162  # docs/boards.md
    cfg2 = preset("lstm-small-ice40").replace(lanes=2)
    assert (
        by_lanes[2]["cycles_per_step"]
        == by_lanes[2]["model_cycles_per_step"]
        == step_cycles(cfg2, random_weights(cfg2), 2)[-1]
    )


def test_fit_stops_when_its_sweep_is_interrupted(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM during fit's simulation sweep ends the fit (the CLI: exit 130), not a ranking of the
    candidates simulated so far followed by builds."""
    import rnnaccel.explore.fit as fit
    from rnnaccel.explore.sweep import SweepResult

    calls = []

    def interrupted(spec, out, **kw):
        calls.append(spec.boards)
        return SweepResult(folder=Path(out), tasks=1, invalid=0, reused=0, ran=0, interrupted=True)

    monkeypatch.setattr(fit, "run_sweep", interrupted)
    base = preset("tiny")
    save_model(tmp_path / "m", base, random_weights(base))
    with pytest.raises(KeyboardInterrupt):
        fit.fit_model(tmp_path / "m", "icebreaker", tmp_path / "work", jobs=0, progress=False, echo=lambda _m: None)
    assert calls == [()]  # the simulation sweep only: no build round started
