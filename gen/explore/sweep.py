"""Run a sweep: its tasks on a local process pool or a Dask cluster, the table kept as results come in.

:func:`run_sweep` makes the tasks (:func:`rnnaccel.explore.points.make_tasks`), leaves out those the
results folder already holds (so a sweep that was killed resumes where it stopped, and a point run
before is not run again), runs the rest on an executor and appends each row to ``results.csv`` the moment
it arrives. When it ends (or is interrupted) it writes ``results.parquet`` and the Pareto table and plots.

Executors: a local :class:`concurrent.futures.ProcessPoolExecutor` of ``jobs`` workers (spawned processes:
each imports rnnaccel afresh), or a Dask ``distributed`` cluster: ``dask="tcp://HOST:8786"`` (a running
scheduler; its workers need ``pip install rnnaccel[boards]`` and, for the build cache to be shared, a
``build_cache`` they can all reach) or ``dask="local:N"`` (a ``LocalCluster`` of N one-thread worker
processes on this machine).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .evaluate import base_row, evaluate_task
from .pareto import write_pareto
from .points import Task, make_tasks, point_label
from .spec import SweepSpec
from .table import ResultsTable

__all__ = ["run_sweep", "SweepResult", "SweepError", "sigterm_interrupts"]


class SweepError(RuntimeError):
    """A sweep that cannot start (an executor that cannot be reached, a folder holding another sweep)."""


@dataclass
class SweepResult:
    """What a :func:`run_sweep` call did."""

    folder: Path
    tasks: int  # measurements of the spec (points x boards), invalid points not included
    invalid: int
    reused: int  # found in the table, not run
    ran: int
    superseded: int = 0  # rows of other generator code or settings, moved to results.superseded.csv
    counts: dict[str, int] = field(default_factory=dict)  # status -> rows of the whole table
    interrupted: bool = False
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def _worker_init(parent: int) -> None:
    """A local worker leads a process group of its own (its yosys and nextpnr runs join it), so that the sweep
    can stop the whole group; a watchdog thread kills the group when the sweep process is gone (killed by
    SIGKILL, say), instead of leaving orphaned builds running."""
    os.setpgrp()

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os.killpg(0, signal.SIGKILL)

    threading.Thread(target=watch, name="rnnaccel-sweep-watchdog", daemon=True).start()


def _stop_workers(workers) -> None:
    """Kill the process groups of ``workers`` (multiprocessing processes started with :func:`_worker_init`)."""
    for proc in workers:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _local(tasks: list[Task], jobs: int) -> tuple[int, Iterator]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    def results():
        before = set(multiprocessing.active_children())
        pool = ProcessPoolExecutor(
            max_workers=jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        finished = False
        try:
            futures = {pool.submit(evaluate_task, t): t for t in tasks}
            for fut in as_completed(futures):
                yield futures[fut], fut.result
            finished = True
        finally:
            if not finished:  # interrupted (Ctrl-C, SIGTERM) or an error: the running builds are stopped too
                _stop_workers(set(multiprocessing.active_children()) - before)
            pool.shutdown(wait=finished, cancel_futures=True)

    return jobs, results()


def sigterm_interrupts() -> Callable[[], None]:
    """Make SIGTERM (``kill``, a batch system's time limit) end a sweep like Ctrl-C: the table is kept, the
    Parquet file and the Pareto fronts are written, the workers are stopped. Only from the main thread;
    returns the function that restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _inline(tasks: list[Task]) -> tuple[int, Iterator]:
    """Every task in this process, one after the other (``jobs = 0``: for debugging and tests)."""

    def results():
        for t in tasks:
            try:
                row = evaluate_task(t)
            except Exception as exc:  # noqa: BLE001 - re-raised by the getter, as a pool's future would
                yield t, _raiser(exc)
                continue
            yield t, lambda row=row: row

    return 1, results()


def _raiser(exc: BaseException):
    def get():
        raise exc

    return get


def _dask(tasks: list[Task], address: str) -> tuple[int, Iterator]:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise SweepError("--dask needs the dask distributed package: pip install 'rnnaccel[explore]'") from None
    cluster = None
    try:
        if address.startswith("local:"):
            n = int(address.split(":", 1)[1])
            if n < 1:
                raise ValueError
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(address, timeout="30s")
    except ValueError:
        raise SweepError(f"--dask {address!r}: give a scheduler address (tcp://HOST:PORT) or local:N") from None
    except OSError as exc:
        raise SweepError(f"--dask {address!r}: cannot reach the scheduler ({exc})") from None
    workers = sum(client.nthreads().values()) or 1

    def results():
        try:
            futures = {client.submit(evaluate_task, t, key=f"rnnaccel-{t.key}", pure=False): t for t in tasks}
            for fut in as_completed(list(futures)):
                yield futures[fut], fut.result
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    return workers, results()


def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    jobs: int = 1,
    dask: str | None = None,
    restart: bool = False,
    build_cache: str | Path | None = None,
    limit: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] = print,
    plots: bool = True,
    set_aside: bool = True,
) -> SweepResult:
    """Run ``spec`` into folder ``out`` (see the module docstring); ``jobs = 0`` runs the tasks in this process;
    ``limit``: run at most that many new tasks this time (the rest on the next call); ``set_aside``: move rows
    this spec does not make to ``results.superseded.csv`` (off for a folder that collects several specs' rows,
    as ``fit``'s build table does)."""
    t0 = time.time()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    table = ResultsTable(folder, spec.columns(), restart=restart)
    cache = str(Path(build_cache).resolve() if build_cache else (folder / "builds").resolve())
    tasks, invalid = make_tasks(spec, build_cache=cache, models_dir=str((folder / "models").resolve()))
    superseded = table.retire({t.key for t in tasks} | {b.key for b in invalid}) if set_aside else 0
    if superseded:
        echo(
            f"{superseded} rows of an earlier run measured other generator code or settings: moved to "
            f"{table.folder / 'results.superseded.csv'}; their points run again"
        )
    done = table.done()
    for bad in invalid:
        if bad.key not in done:
            table.add({**base_row(bad.key, bad.index, bad.point, None), "status": "invalid", "message": bad.message})
    todo = [t for t in tasks if t.key not in done]
    reused = len(tasks) - len(todo)
    if limit is not None:
        todo = todo[:limit]
    result = SweepResult(
        folder=folder, tasks=len(tasks), invalid=len(invalid), reused=reused, ran=0, superseded=superseded
    )
    if todo:
        if dask:
            workers, stream = _dask(todo, dask)
        elif jobs == 0:
            workers, stream = _inline(todo)
        else:
            workers, stream = _local(todo, jobs)
        bar = _bar(len(todo), progress)
        failed = 0
        restore_sigterm = sigterm_interrupts()
        try:
            for task, get in stream:
                try:
                    row = get()
                except Exception as exc:  # noqa: BLE001 - the worker itself died: a failed row, retried next time
                    row = {**base_row(task.key, task.index, task.point, task.board), "status": "failed",
                           "message": f"worker error: {type(exc).__name__}: {exc}"[:300]}  # fmt: skip
                table.add(row)
                result.ran += 1
                if row["status"] == "failed":
                    failed += 1
                    _write(
                        bar,
                        echo,
                        f"failed: {point_label(task.point)} on {task.board or 'simulation'}: {row['message']}",
                    )
                running = min(workers, len(todo) - result.ran)
                if bar is not None and not bar.disable:
                    bar.set_postfix_str(f"running {running}, failed {failed}")
                    bar.update(1)
                elif progress:  # no terminal (a log file, CI): one line a point
                    left = (time.time() - t0) / result.ran * (len(todo) - result.ran)
                    echo(
                        f"[{result.ran}/{len(todo)}] {point_label(task.point)}"
                        f"{' on ' + task.board if task.board else ''}: {_summary(row)}; {running} running, "
                        f"{failed} failed, about {left / 60:.0f} min left"
                    )
        except KeyboardInterrupt:
            result.interrupted = True
            _write(bar, echo, f"interrupted: {result.ran} of {len(todo)} new points done; run again to resume")
        finally:
            if bar is not None:
                bar.close()
            stream.close()
            restore_sigterm()
    result.rows = table.ordered()
    for r in result.rows:
        result.counts[r["status"]] = result.counts.get(r["status"], 0) + 1
    parquet = table.write_parquet()
    result.files = [table.path] + ([parquet] if parquet else []) + write_pareto(folder, result.rows, plots=plots)
    result.seconds = time.time() - t0
    return result


def _summary(row: dict) -> str:
    if row["status"] != "ok":
        return f"{row['status']} ({row.get('message') or ''})"[:160]
    parts = [f"{row['cycles_per_step']} cycles" if row.get("cycles_per_step") is not None else "no cycles"]
    if row.get("fmax_mhz") is not None:
        parts.append(f"{row['fmax_mhz']} MHz, {row['logic']} logic, {row['dsp']} DSP, {row['bram']} BRAM")
    if row.get("accuracy") is not None:
        parts.append(f"accuracy {row['accuracy']:.2%}")
    return ", ".join(parts)


def _bar(total: int, enabled: bool):
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc="sweep", unit="point", disable=None)


def _write(bar, echo, text: str) -> None:
    if bar is not None:
        bar.write(text)
    else:
        echo(text)
