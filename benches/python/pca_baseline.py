"""Baseline for heatsql-bench-pca: pyarrow load + scikit-learn PCA(svd_solver='full').

python3 pca_baseline.py FILE K ROUNDS -> one line with the medians (after a warm-up round)
of the load (read_table + a 2-D float64 array) and the fit + transform, and the peak RSS.
"""

import resource
import statistics
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.decomposition import PCA

path, k, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load_t, fit_t = [], []
for _ in range(rounds):
    t = time.perf_counter()
    table = pq.read_table(path)
    x = np.column_stack([c.to_numpy() for c in table.columns])
    load_t.append(time.perf_counter() - t)
    del table
    t = time.perf_counter()
    scores = PCA(n_components=k, svd_solver="full").fit_transform(x)
    fit_t.append(time.perf_counter() - t)
    del x, scores
load, fit = statistics.median(load_t[1:]), statistics.median(fit_t[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(
    f"baseline pyarrow + scikit-learn PCA(full): load {load:.3f} s, fit {fit:.3f} s, "
    f"end to end {load + fit:.3f} s; peak RSS {peak / 1e9:.2f} GB"
)
