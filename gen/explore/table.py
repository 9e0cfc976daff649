"""The results table of a sweep: ``results.csv`` (appended a row at a time, so a killed sweep loses only the
points that were running) and ``results.parquet`` (written when the sweep ends).

A row is keyed by its task's key (:mod:`rnnaccel.explore.points`); when a key appears twice (a ``failed``
point run again) the last row counts. Rows whose status is final (:data:`FINAL`) are not run again.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

__all__ = ["ResultsTable", "TableError", "FINAL", "STATUSES", "TEXT_COLUMNS"]

#: Every status a row may have; ``failed`` rows are run again by the next sweep over the same folder.
STATUSES = ("ok", "nofit", "invalid", "failed")
#: Statuses that are not run again.
FINAL = ("ok", "nofit", "invalid")
#: Columns kept as text when read back (the rest are parsed as numbers or booleans where they look so).
TEXT_COLUMNS = {
    "key", "point", "label", "board", "status", "message", "design_hash", "critical_path", "build_dir", "worker",
}  # fmt: skip


class TableError(ValueError):
    """A results folder that holds another sweep's table."""


def _parse(value: str) -> Any:
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


class ResultsTable:
    """``folder/results.csv`` with ``columns``: read back on resume (``restart`` starts it afresh)."""

    def __init__(self, folder: str | Path, columns: list[str], restart: bool = False):
        self.folder = Path(folder)
        self.path = self.folder / "results.csv"
        self.columns = list(columns)
        self.rows: dict[str, dict] = {}
        if self.path.exists() and not restart:
            self._read()
        else:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(self.columns)

    def _read(self) -> None:
        dropped = 0
        with open(self.path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header != self.columns:
                raise TableError(
                    f"{self.path} holds a sweep with other columns ({', '.join(header or ['none'])}); "
                    "give another output folder, or --restart to replace it"
                )
            for values in reader:
                # a row cut short by a kill (the last line), or not a row: dropped, its point runs again
                if len(values) != len(self.columns):
                    dropped += 1
                    continue
                row = {c: (v if c in TEXT_COLUMNS else _parse(v)) for c, v in zip(self.columns, values)}
                if row["status"] in STATUSES and row["key"]:
                    self.rows[row["key"]] = row
                else:
                    dropped += 1
        if dropped:  # rewrite the file with the whole rows only
            self._rewrite()

    def done(self, retry_failed: bool = True) -> set[str]:
        """Keys not to run again: final rows (and failed ones too unless ``retry_failed``)."""
        final = FINAL if retry_failed else STATUSES
        return {k for k, r in self.rows.items() if r["status"] in final}

    def add(self, row: dict) -> None:
        """Append ``row`` (columns it lacks are empty) and flush it to disk."""
        unknown = set(row) - set(self.columns)
        if unknown:
            raise ValueError(f"row has columns the table does not: {sorted(unknown)}")
        full = {c: row.get(c) for c in self.columns}
        self.rows[full["key"]] = full
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(self._cells(full))
            f.flush()
            os.fsync(f.fileno())

    def retire(self, keys: set[str]) -> int:
        """Move the rows whose key is not in ``keys`` (measured by other generator code, other settings: the
        sweep no longer makes them) out of ``results.csv`` into ``results.superseded.csv``, appended there, so
        that the table, the Parquet file and the fronts hold this sweep's rows only; the number moved."""
        old = [k for k in self.rows if k not in keys]
        if not old:
            return 0
        aside = self.folder / "results.superseded.csv"
        new_file = not aside.exists()
        with open(aside, "a", newline="") as f:
            w = csv.writer(f)
            if new_file:
                w.writerow(self.columns)
            for k in old:
                w.writerow(self._cells(self.rows[k]))
            f.flush()
            os.fsync(f.fileno())
        for k in old:
            del self.rows[k]
        self._rewrite()
        return len(old)

    def _rewrite(self) -> None:
        """The CSV rewritten from the rows held (a new file, then renamed over the old)."""
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(self.columns)
            for row in self.rows.values():
                w.writerow(self._cells(row))
        os.replace(tmp, self.path)

    def _cells(self, row: dict) -> list:
        """``row`` as a CSV line's cells, in the table's column order (None: empty)."""
        return ["" if row[c] is None else row[c] for c in self.columns]

    def ordered(self) -> list[dict]:
        """The rows in the spec's order (point, then board)."""
        return sorted(self.rows.values(), key=lambda r: (r["index"] if r["index"] is not None else -1, r["board"]))

    def write_parquet(self, path: str | Path | None = None) -> Path | None:
        """``results.parquet`` beside the CSV (None when pyarrow is not installed)."""
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            return None
        rows = self.ordered()
        columns = {}
        for c in self.columns:
            values = [r.get(c) for r in rows]
            if c not in TEXT_COLUMNS:
                kinds = {type(v) for v in values if v is not None}
                if kinds == {int, float}:
                    values = [None if v is None else float(v) for v in values]
                elif len(kinds) > 1:
                    values = [None if v is None else str(v) for v in values]
            columns[c] = values
        out = Path(path) if path else self.folder / "results.parquet"
        pq.write_table(pa.table(columns), out)
        return out
