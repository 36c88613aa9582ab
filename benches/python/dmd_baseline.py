"""Baseline for heatsql-bench-dmd: pyarrow load + PyDMD's exact DMD, rank 16.

python3 dmd_baseline.py ROWS_FILE COLUMNS_FILE ROUNDS -> for each file one line with the load
(read_table + the snapshot matrix, one snapshot per column as PyDMD wants it) and the median
(after a warm-up round) of DMD(svd_rank=16, exact=True).fit, with the BLAS threads and |lambda_1|.
"""

import statistics
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from pydmd import DMD

rows_file, cols_file, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    from threadpoolctl import threadpool_info

    threads = max(i.get("num_threads", 1) for i in threadpool_info())
except Exception:
    threads = "?"


def run(label, path, snapshots_as_rows):
    t = time.perf_counter()
    table = pq.read_table(path)
    cols = [c.to_numpy() for name, c in zip(table.column_names, table.columns) if name != "k"]
    x = np.column_stack(cols)
    if snapshots_as_rows:
        x = np.ascontiguousarray(x.T)  # features x snapshots
    load = time.perf_counter() - t
    del table, cols
    fits = []
    for _ in range(rounds):
        t = time.perf_counter()
        dmd = DMD(svd_rank=16, exact=True)
        dmd.fit(x)
        fits.append(time.perf_counter() - t)
    top = max(abs(dmd.eigs))
    print(
        f"baseline PyDMD {label} rank 16 ({threads} BLAS threads): load {load:.3f} s, "
        f"fit {statistics.median(fits[1:]):.3f} s; |lambda_1| {top:.6f}"
    )


run("rows", rows_file, True)
run("columns", cols_file, False)
