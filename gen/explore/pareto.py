"""Pareto fronts of a sweep's rows, per board, as a table (``pareto.csv``) and plots (``pareto_<board>.png``).

Time per step is minimised against each resource: with builds, microseconds per step at Fmax against logic
cells / LUTs, DSPs and block RAM; without (simulation only), cycles per step against multipliers and weight
bytes. A row is on a front when no other row of its board is at least as good on both axes and better on
one. The ``all`` front is the same over every objective at once (the points no other point beats on all).
With a data set (``[run] data``) the golden model's accuracy (maximised) or readout MSE joins the objectives.
Only ``ok`` rows with the measures present take part.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

__all__ = ["non_dominated", "objectives", "fronts", "write_pareto"]

_LABELS = {
    "us_per_step_fmax": "time per step at Fmax (us)",
    "cycles_per_step": "cycles per step",
    "logic": "logic (LUT4 / LC)",
    "dsp": "DSP",
    "bram": "block RAM",
    "multipliers": "multipliers",
    "weight_bytes": "weight bytes",
    "accuracy": "accuracy (golden model)",
    "mse": "readout MSE (golden model)",
}


def _value(row: dict, key: str):
    return -row[key[1:]] if key.startswith("-") else row[key]


def non_dominated(rows: list[dict], keys: list[str]) -> list[dict]:
    """The rows no other row dominates on ``keys`` (minimised; ``-name``: ``name`` maximised); equal rows are
    all kept."""
    out = []
    for a in rows:
        va = [_value(a, k) for k in keys]
        beaten = False
        for b in rows:
            vb = [_value(b, k) for k in keys]
            if all(x <= y for x, y in zip(vb, va)) and any(x < y for x, y in zip(vb, va)):
                beaten = True
                break
        if not beaten:
            out.append(a)
    return out


def objectives(rows: list[dict]) -> tuple[str, list[str]]:
    """(time column, resource columns): the build's when every ok row of the set has a build, else the
    simulation's; then ``-accuracy`` (maximised) or ``mse`` when every row has it."""
    built = rows and all(r.get("us_per_step_fmax") is not None for r in rows)
    quality = []
    if rows and all(r.get("accuracy") is not None for r in rows):
        quality = ["-accuracy"]
    elif rows and all(r.get("mse") is not None for r in rows):
        quality = ["mse"]
    if built:
        return "us_per_step_fmax", ["logic", "dsp", "bram", *quality]
    return "cycles_per_step", ["multipliers", "weight_bytes", *quality]


def _usable(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and r.get("cycles_per_step") is not None]


def fronts(rows: list[dict]) -> dict[str, dict[str, list[dict]]]:
    """board -> front name (``all``, ``time-<resource>``) -> its rows, sorted by the resource (``all``: by time)."""
    out: dict[str, dict[str, list[dict]]] = {}
    for board in sorted({r.get("board") or "" for r in rows}):
        mine = _usable([r for r in rows if (r.get("board") or "") == board])
        if not mine:
            continue
        time_key, resources = objectives(mine)
        mine = [r for r in mine if all(r.get(k.lstrip("-")) is not None for k in [time_key, *resources])]
        board_fronts = {"all": sorted(non_dominated(mine, [time_key, *resources]), key=lambda r: r[time_key])}
        for res in resources:
            board_fronts[f"time-{res.lstrip('-')}"] = sorted(
                non_dominated(mine, [time_key, res]), key=lambda r: (_value(r, res), r[time_key])
            )
        out[board] = board_fronts
    return out


_UNITS = {"us_per_step_fmax": "us/step", "cycles_per_step": "cycles/step"}


def _point(row: dict) -> dict:
    """The row's swept fields (its ``point`` column: JSON in a table read back, a dict in a fresh row)."""
    p = row.get("point")
    if isinstance(p, str):
        try:
            p = json.loads(p)
        except ValueError:
            return {}
    return p if isinstance(p, dict) else {}


def write_pareto(folder: str | Path, rows: list[dict], plots: bool = True) -> list[Path]:
    """``pareto.csv`` (board, front, rank, label, key and the objectives) and, with matplotlib, one PNG per board
    (a panel per resource: every ok point, the front joined and labelled). Returns the files written."""
    folder = Path(folder)
    written = []
    all_fronts = fronts(rows)
    path = folder / "pareto.csv"
    cols = ["board", "front", "rank", "label", "key", "cycles_per_step", "us_per_step_fmax", "fmax_mhz",
            "logic", "dsp", "bram", "multipliers", "weight_bytes", "accuracy", "mse"]  # fmt: skip
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for board, board_fronts in all_fronts.items():
            for name, members in board_fronts.items():
                for rank, r in enumerate(members):
                    w.writerow([board or "-", name, rank] + ["" if r.get(c) is None else r.get(c) for c in cols[3:]])
    written.append(path)
    if not plots:
        return written
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    for board, board_fronts in all_fronts.items():
        mine = _usable([r for r in rows if (r.get("board") or "") == board])
        time_key, resources = objectives(mine)
        # the front's points numbered by time per step (the same number in every panel), listed under the
        # panels with the fields that differ between this board's points
        on_front = {r["key"]: r for res in resources for r in board_fronts.get(f"time-{res.lstrip('-')}", [])}
        numbered = sorted(on_front.values(), key=lambda r: (r[time_key], r.get("label") or ""))
        number = {r["key"]: i + 1 for i, r in enumerate(numbered)}
        points = {r["key"]: _point(r) for r in mine}
        varying = [f for f in dict.fromkeys(f for p in points.values() for f in p)
                   if len({repr(p.get(f)) for p in points.values()}) > 1]  # fmt: skip
        fig, axes = plt.subplots(1, len(resources), figsize=(5.5 * len(resources), 4.5), squeeze=False)
        for ax, res in zip(axes[0], (r.lstrip("-") for r in resources)):
            pts = [r for r in mine if r.get(res) is not None and r.get(time_key) is not None]
            ax.scatter([r[res] for r in pts], [r[time_key] for r in pts], s=14, color="0.7", label="points")
            front = board_fronts.get(f"time-{res}", [])
            ax.step([r[res] for r in front], [r[time_key] for r in front], where="post", color="C0", lw=1.2)
            ax.scatter([r[res] for r in front], [r[time_key] for r in front], s=24, color="C0", label="Pareto front")
            for r in front:
                ax.annotate(str(number[r["key"]]), (r[res], r[time_key]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")  # fmt: skip
            ax.set_xlabel(_LABELS.get(res, res))
            ax.set_ylabel(_LABELS.get(time_key, time_key))
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"rnnaccel sweep: {board or 'simulation only'} ({len(mine)} points)")
        fig.tight_layout()
        lines = []
        for r in numbered:
            fields = " ".join(f"{f}={points[r['key']].get(f)}" for f in varying) or r.get("label", "")
            lines.append(f"{number[r['key']]}: {fields}  ({r[time_key]:.4g} {_UNITS.get(time_key, '')})")
        fig.text(0.01, 0.0, "Pareto front:\n" + "\n".join(lines), fontsize=7, va="top", family="monospace")
        png = folder / f"pareto_{board or 'sim'}.png"
        fig.savefig(png, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(png)
    return written
