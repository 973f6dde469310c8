"""Streaming row writers for sweep results: CSV, JSON (an array of objects) and Parquet (needs pyarrow).

Rows arrive as blocks of columns (numpy arrays). Each writer leaves a valid file after every block, so an
interrupted sweep keeps what it computed: CSV rows are flushed, the JSON array and the Parquet footer are
closed by `close()`, which the caller runs on Ctrl-C too.
"""
from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import SpecError

FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


def write_atomic(path: str, text: str) -> None:
    """Write via a temporary file in the same folder, so a reader never sees half a file."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; outputs are ordinary files
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _plain(value):
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _csv_text(value) -> str:
    s = str(value)
    return f'"{s}"' if any(ch in s for ch in ',"\n') else s


class CsvWriter:
    def __init__(self, path: Path, columns: list):
        self.fh = open(path, "w", newline="", encoding="utf-8")
        self.columns = columns
        self.written = 0
        csv.writer(self.fh, lineterminator="\n").writerow(columns)

    def write(self, block: dict) -> None:
        """Format whole columns with numpy (a Python loop per row would dominate large sweeps)."""
        n = len(block["time_s"])
        text = None
        for c in self.columns:
            values = block.get(c)
            if values is None:
                column = np.full(n, "", dtype="<U1")
            elif values.dtype == object:
                column = np.array([_csv_text(v) for v in values])
            elif values.dtype == bool:
                column = np.where(values, "True", "False")
            else:
                column = np.char.mod("%.12g", values.astype(np.float64))
                column[~np.isfinite(values.astype(np.float64))] = ""
            text = column if text is None else np.char.add(np.char.add(text, ","), column)
        if n:
            self.fh.write("\n".join(text.tolist()) + "\n")
        self.fh.flush()
        self.written += n

    def close(self) -> None:
        self.fh.close()


class JsonWriter:
    def __init__(self, path: Path, columns: list):
        self.fh = open(path, "w", encoding="utf-8")
        self.columns = columns
        self.first = True
        self.written = 0
        self.fh.write("[")

    def write(self, block: dict) -> None:
        n = len(block["time_s"])
        present = [c for c in self.columns if c in block]
        for i in range(n):
            row = {c: _plain(block[c][i]) for c in present}
            self.fh.write(("\n" if self.first else ",\n") + json.dumps(row))
            self.first = False
            self.written += 1
        self.fh.flush()

    def close(self) -> None:
        self.fh.write("\n]\n")
        self.fh.close()


class ParquetWriter:
    def __init__(self, path: Path, columns: list):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise SpecError("writing .parquet needs pyarrow (pip install pyarrow); use .csv or .json") from None
        self.pa, self.pq, self.path, self.columns = pa, pq, path, columns
        self.writer = None
        self.written = 0

    def write(self, block: dict) -> None:
        pa = self.pa
        n = len(block["time_s"])
        arrays = []
        for c in self.columns:
            values = block.get(c)
            if values is None:
                arrays.append(pa.nulls(n, pa.float64() if c != "model" else pa.string()))
            elif values.dtype == object:
                arrays.append(pa.array([str(v) for v in values], pa.string()))
            else:
                arrays.append(pa.array(values.astype(np.float64) if values.dtype.kind in "iuf" else values))
        table = pa.Table.from_arrays(arrays, names=self.columns)
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(str(self.path), table.schema)
        self.writer.write_table(table.cast(self.writer.schema))
        self.written += n

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def open_writer(path: str, columns: list):
    target = Path(path)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise SpecError(f"--out {path}: unknown format '{target.suffix}'; use .csv, .json or .parquet")
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise SpecError("writing .parquet needs pyarrow (pip install pyarrow); use .csv or .json") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    return {"csv": CsvWriter, "json": JsonWriter, "parquet": ParquetWriter}[fmt](target, columns)
