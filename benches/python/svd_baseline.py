"""Baseline for heatsql-bench-svd: pyarrow load + numpy's SVD (LAPACK gesdd, U, S, Vt).

python3 svd_baseline.py FILE ROUNDS -> one line with the medians (after a warm-up round) of
the load (read_table + a 2-D float64 array) and np.linalg.svd(x, full_matrices=False), the
BLAS threads, and the peak RSS.
"""

import resource
import statistics
import sys
import time

import numpy as np
import pyarrow.parquet as pq

path, rounds = sys.argv[1], int(sys.argv[2])
load_t, svd_t = [], []
for _ in range(rounds):
    t = time.perf_counter()
    table = pq.read_table(path)
    x = np.column_stack([c.to_numpy() for c in table.columns])
    load_t.append(time.perf_counter() - t)
    del table
    t = time.perf_counter()
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    svd_t.append(time.perf_counter() - t)
    del x, u, vt
load, fit = statistics.median(load_t[1:]), statistics.median(svd_t[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
try:
    from threadpoolctl import threadpool_info

    threads = max(i.get("num_threads", 1) for i in threadpool_info())
except Exception:  # threadpoolctl comes with scikit-learn; not essential
    threads = "?"
print(
    f"baseline pyarrow + numpy svd (full_matrices=False, {threads} BLAS threads): load {load:.3f} s, "
    f"svd {fit:.3f} s, end to end {load + fit:.3f} s; peak RSS {peak / 1e9:.2f} GB; sigma1 {s[0]:.6f}"
)
