"""Baseline for heatsql-bench-kmeans: pyarrow load + scikit-learn KMeans from the same initial
centroids, exactly 20 Lloyd iterations (max_iter=20, tol=0, n_init=1).

python3 kmeans_baseline.py FILE INIT ROUNDS -> one line with the medians (after a warm-up
round) of the load and of the fit, and the inertia.
"""

import statistics
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_info

path, init_path, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
init = np.column_stack([c.to_numpy() for c in pq.read_table(init_path).columns])
load_t, fit_t = [], []
for _ in range(rounds):
    t = time.perf_counter()
    table = pq.read_table(path)
    x = np.column_stack([c.to_numpy() for c in table.columns])
    load_t.append(time.perf_counter() - t)
    del table
    t = time.perf_counter()
    km = KMeans(n_clusters=len(init), init=init, n_init=1, max_iter=20, tol=0.0, algorithm="lloyd").fit(x)
    fit_t.append(time.perf_counter() - t)
load, fit = statistics.median(load_t[1:]), statistics.median(fit_t[1:])
threads = max((p.get("num_threads", 1) for p in threadpool_info() if p.get("user_api") == "openmp"), default=1)
print(
    f"baseline pyarrow + scikit-learn KMeans (same init, {km.n_iter_} iterations, {threads} OpenMP threads): load {load:.3f} s, "
    f"fit {fit:.3f} s, end to end {load + fit:.3f} s; inertia {km.inertia_:.6e}"
)
