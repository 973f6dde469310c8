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

from .errors import SpecError, shown

FORMATS = {".csv": "csv", ".json": "json", ".parquet": "parquet"}


def check_output(path, flag: str = "--out", folder: bool = False, suffixes=None) -> None:
    """Refuse, before any work starts, an output that cannot be written: a folder where a file is wanted (or a
    file where a folder is), a path below a regular file, a place this process cannot create files in, or a
    suffix outside `suffixes`. Missing parent folders are fine (they are created when writing)."""
    text = str(path)
    if not text or "\0" in text:
        raise SpecError(f"{flag}: give a {'folder' if folder else 'file'} name")
    target = Path(text)
    if suffixes and target.suffix.lower() not in suffixes:
        choices = ", ".join(suffixes[:-1]) + " or " + suffixes[-1] if len(suffixes) > 1 else suffixes[0]
        raise SpecError(f"{flag} {shown(text)}: unknown format {shown(target.suffix or '(none)')}; use {choices}")
    try:
        if folder and target.exists() and not target.is_dir():
            raise SpecError(f"{flag} {shown(text)}: is a file, not a folder")
        if not folder and target.is_dir():
            raise SpecError(f"{flag} {shown(text)}: is a folder; give a file name")
        if not folder and target.exists() and not os.access(target, os.W_OK):
            raise SpecError(f"{flag} {shown(text)}: the file is not writable")
        probe = target if folder else target.parent
        probe = probe if str(probe) else Path(".")
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise SpecError(f"{flag} {shown(text)}: {shown(str(probe))} is a file, not a folder")
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".write-test-")  # the only reliable test (root, read-only fs)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise SpecError(f"{flag} {shown(text)}: cannot write there ({exc.strerror or exc})") from None


def write_atomic(path: str, text: str | bytes) -> None:
    """Write via a temporary file in the same folder, so a reader never sees half a file. Text gets a final
    newline; bytes (a figure) are written as they are."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise SpecError(f"cannot write {shown(str(path))}: {exc.strerror or exc}") from None
    try:
        if isinstance(text, bytes):
            with os.fdopen(fd, "wb") as fh:
                fh.write(text)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text if text.endswith("\n") else text + "\n")
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; outputs are ordinary files
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SpecError(f"cannot write {shown(str(path))}: {exc.strerror or exc}") from None
        raise


def abort(writer, path) -> None:
    """Close a streaming writer and delete its file: what an error (not Ctrl-C) after the sweep started does,
    so that no half-written output is left behind."""
    try:
        writer.close()
    except Exception:  # noqa: BLE001 - the original error is the one to report
        pass
    Path(path).unlink(missing_ok=True)


def _plain(value):
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _number(value: float) -> str:
    """A CSV number: 12 significant digits; NaN and infinity as an empty field."""
    return "%.12g" % value if math.isfinite(value) else ""


def _csv_text(value) -> str:
    s = str(value)
    return '"' + s.replace('"', '""') + '"' if any(ch in s for ch in ',"\n\r') else s


class CsvWriter:
    def __init__(self, path: Path, columns: list):
        self.fh = open(path, "w", newline="", encoding="utf-8")
        self.columns = columns
        self.written = 0
        csv.writer(self.fh, lineterminator="\n").writerow(columns)

    def write(self, block: dict) -> None:
        """One %-format per row, applied to the whole block in C: a column constant over the block (the model,
        a workload value, the slow axes of a grid) is formatted once into the row template, the others are
        interleaved into one tuple. A Python loop per row, or numpy's per-element string ops, would cost more
        than evaluating the design points."""
        n = len(block["time_s"])
        if n:
            template, columns = [], []
            for c in self.columns:
                values = block.get(c)
                if values is None:
                    template.append("")
                    continue
                values = np.asarray(values)
                if values.dtype == object or values.dtype.kind in "USb":
                    texts = values if values.dtype.kind != "b" else np.where(values, "True", "False")
                    if (texts == texts[0]).all():
                        template.append(_csv_text(texts[0]).replace("%", "%%"))
                    else:
                        template.append("%s")
                        columns.append([_csv_text(v) for v in texts])
                    continue
                floats = values.astype(np.float64)
                if (floats == floats[0]).all():  # (never true for NaN: such a column takes the path below)
                    template.append(_number(floats[0]).replace("%", "%%"))
                elif np.isfinite(floats).all():
                    template.append("%.12g")
                    columns.append(floats)
                else:
                    template.append("%s")
                    columns.append([_number(v) for v in floats.tolist()])
            row = ",".join(template) + "\n"
            if columns and all(isinstance(col, np.ndarray) for col in columns):  # all numbers: one C-level tolist
                self.fh.write((row * n) % tuple(np.stack(columns, axis=1).ravel().tolist()))
            elif columns:
                flat = np.empty((n, len(columns)), dtype=object)
                for j, col in enumerate(columns):
                    flat[:, j] = col.tolist() if isinstance(col, np.ndarray) else col
                self.fh.write((row * n) % tuple(flat.ravel().tolist()))
            else:
                self.fh.write(row * n)
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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return {"csv": CsvWriter, "json": JsonWriter, "parquet": ParquetWriter}[fmt](target, columns)
    except OSError as exc:
        raise SpecError(f"--out {shown(path)}: cannot write there ({exc.strerror or exc})") from None

