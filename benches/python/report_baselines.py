"""Single-process baselines of heatsql-bench-report: what a user would otherwise run.

python3 report_baselines.py OP FILE ROUNDS K [INIT] -> one JSON line (the same keys as
heatsql-bench-scaling): every round's load seconds (pyarrow read_table + a 2-D float64 array)
and compute seconds, the first round a warm-up, the peak RSS, a check value and the library
versions. The libraries use every core (their BLAS / OpenMP defaults).

  load    pyarrow only (compute 0)
  pca     scikit-learn PCA(n_components=K) (svd_solver 'auto': covariance_eigh on tall data) + transform
  svd     numpy.linalg.svd(x, full_matrices=False)
  kmeans  scikit-learn KMeans from the centroids in INIT, exactly 20 Lloyd iterations (tol=0)
  dmd     PyDMD DMD(svd_rank=K, exact=True) on the table (state points as rows, snapshots as columns)
  matmul  x @ x (numpy, BLAS)
"""

import json
import resource
import sys
import time

import numpy as np
import pyarrow.parquet as pq

op, path, rounds, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
init_path = sys.argv[5] if len(sys.argv) > 5 else None


def load(p):
    table = pq.read_table(p)
    return np.column_stack([c.to_numpy() for c in table.columns])


def threads():
    try:
        from threadpoolctl import threadpool_info

        return max(i.get("num_threads", 1) for i in threadpool_info())
    except Exception:
        return 0


versions = {"numpy": np.__version__}
if op == "pca":
    import sklearn
    from sklearn.decomposition import PCA

    versions["scikit-learn"] = sklearn.__version__

    def compute(x):
        model = PCA(n_components=k)
        model.fit_transform(x)
        compute.name = f"scikit-learn {sklearn.__version__} PCA ({model._fit_svd_solver})"
        return float(model.explained_variance_ratio_.sum())

elif op == "svd":

    def compute(x):
        s = np.linalg.svd(x, full_matrices=False)[1]
        return float(s[0])

    compute.name = f"numpy {np.__version__} svd (gesdd)"
elif op == "kmeans":
    import sklearn
    from sklearn.cluster import KMeans

    init = load(init_path)
    versions["scikit-learn"] = sklearn.__version__

    def compute(x):
        km = KMeans(n_clusters=len(init), init=init, n_init=1, max_iter=20, tol=0.0, algorithm="lloyd").fit(x)
        return float(km.inertia_)

    compute.name = f"scikit-learn {sklearn.__version__} KMeans (lloyd, 20 iterations)"
elif op == "dmd":
    import pydmd
    from pydmd import DMD

    from importlib.metadata import version

    versions["pydmd"] = getattr(pydmd, "__version__", None) or version("pydmd")

    def compute(x):
        dmd = DMD(svd_rank=k, exact=True)
        dmd.fit(x)
        return float(np.max(np.abs(dmd.eigs)))

    compute.name = f"PyDMD {versions['pydmd']} DMD (exact)"
elif op == "matmul":

    def compute(x):
        return float((x @ x).sum())

    compute.name = f"numpy {np.__version__} matmul (BLAS)"
elif op == "load":

    def compute(x):
        return float(x.sum())

    compute.name = "pyarrow read_table + numpy array"
else:
    sys.exit(f"report_baselines.py: unknown operation '{op}'")

load_s, compute_s, check = [], [], float("nan")
for _ in range(rounds):
    t = time.perf_counter()
    x = load(path)
    load_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    check = compute(x)
    compute_s.append(time.perf_counter() - t if op != "load" else 0.0)
    del x
if op == "load":
    import pyarrow

    compute.name = f"pyarrow {pyarrow.__version__} read_table + numpy array"
rows, cols = pq.ParquetFile(path).metadata.num_rows, pq.ParquetFile(path).metadata.num_columns
print(
    json.dumps(
        {
            "system": compute.name,
            "op": op,
            "ranks": 1,
            "threads": threads(),
            "rows": rows,
            "cols": cols,
            "load_s": load_s,
            "compute_s": compute_s,
            "peak_rss_bytes": [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024],
            "check": check if check == check else None,  # NaN is not JSON
            "bytes": rows * cols * 8,
            "versions": versions,
        }
    )
)
