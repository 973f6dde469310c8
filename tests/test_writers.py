"""Sweep row writers: the block-at-once CSV formatting gives what csv.writer would, row for row."""
import csv

import numpy as np

from simulator.writers import CsvWriter


def test_csv_block_formatting_equals_a_row_loop(tmp_path):
    n = 7
    block = {"model": np.array(["sd15"] * n, dtype=object), "batch": np.full(n, 4),
             "compute.fp16": np.geomspace(1e14, 2e15, n), "time_s": np.linspace(0.1, 1.3, n),
             "stage_x_s": np.array([1.0, np.nan, 2.0, np.inf, 3.0, 4.0, 5.0]),
             "fits": np.array([True, False] * 3 + [True]), "odd": np.array(["a,b", 'q"', "x", "x", "x", "x", "%s"],
                                                                           dtype=object)}
    columns = list(block) + ["missing"]
    path = tmp_path / "b.csv"
    w = CsvWriter(path, columns)
    w.write(block)
    w.write({k: v[:0] for k, v in block.items()})  # an empty block writes nothing
    w.close()
    with open(path, newline="") as fh:
        got = list(csv.reader(fh))
    assert got[0] == columns and len(got) == n + 1 and w.written == n

    def expect(c, v):
        if c in ("model", "odd"):
            return v
        if c == "fits":
            return str(bool(v))
        return "%.12g" % v if np.isfinite(v) else ""
    for i, row in enumerate(got[1:]):
        assert row == [expect(c, block[c][i]) for c in block] + [""], i


def test_constant_text_with_a_percent_sign_is_kept():
    import io
    w = CsvWriter.__new__(CsvWriter)
    w.fh, w.columns, w.written = io.StringIO(), ["model", "time_s"], 0
    w.write({"model": np.array(["50%"] * 2, dtype=object), "time_s": np.array([1.0, 2.0])})
    assert w.fh.getvalue() == "50%,1\n50%,2\n"
