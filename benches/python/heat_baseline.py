"""Heat (helmholtz-analytics/heat 1.9, mpi4py) baseline of heatsql-bench-report, under mpirun.

mpirun -n P python heat_baseline.py OP FILE ROUNDS K [INIT] -> rank 0 prints one JSON line
(the keys of heatsql-bench-scaling). Heat has no Parquet reader, so each rank reads a
contiguous range of row groups with pyarrow (the ones heatsql would give it) and
wraps it with ht.array(..., is_split=0), balanced as Heat's loaders leave arrays: that is the
load. The compute step is what Heat's
users would call:

  load    nothing (x.sum() as the check)
  pca     ht.decomposition.PCA(n_components=K) (its default solver, hierarchical) + transform
  svd     ht.linalg.svd(x) (U, S, V of the tall-skinny array)
  kmeans  ht.cluster.KMeans(n_clusters=K, init=the centroids in INIT, max_iter=20, tol=0)
  dmd     ht.decomposition.DMD(svd_solver='full', svd_rank=K).fit(x)
  matmul  ht.matmul(x, x) (both split by rows)
"""

import json
import resource
import sys
import time

import heat as ht
import numpy as np
import pyarrow.parquet as pq
import torch
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
op, path, rounds, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
init_path = sys.argv[5] if len(sys.argv) > 5 else None


def my_row_groups(pf):
    """heatsql's rule: row group i covering rows [s, s + n) of N goes to rank floor(P (s + n/2) / N)."""
    counts = [pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)]
    total, groups, start = sum(counts), [], 0
    for i, n in enumerate(counts):
        if min(size - 1, int(size * (start + n / 2) // max(total, 1))) == rank:
            groups.append(i)
        start += n
    return groups


def load():
    pf = pq.ParquetFile(path)
    table = pf.read_row_groups(my_row_groups(pf))
    cols = [c.to_numpy() for c in table.columns]
    local = np.column_stack(cols) if table.num_rows else np.zeros((0, len(cols)))
    x = ht.array(torch.from_numpy(np.ascontiguousarray(local)), is_split=0)
    x.balance_()  # Heat's own loaders give balanced arrays; some of its algorithms need them
    return x


def compute(x):
    if op == "load":
        return float(x.sum().item())
    if op == "pca":
        model = ht.decomposition.PCA(n_components=k)
        model.fit(x)
        model.transform(x)
        ratio = model.explained_variance_ratio_  # None for the hierarchical solver
        return float(ratio.sum().item()) if ratio is not None else float("nan")
    if op == "svd":
        u, s, v = ht.linalg.svd(x)
        return float(s[0].item())
    if op == "kmeans":
        init = ht.array(np.column_stack([c.to_numpy() for c in pq.read_table(init_path).columns]))
        km = ht.cluster.KMeans(n_clusters=k, init=init, max_iter=20, tol=0.0)
        km.fit(x)
        return float(km.inertia_) if km.inertia_ is not None else float("nan")
    if op == "dmd":
        dmd = ht.decomposition.DMD(svd_solver="full", svd_rank=k)
        dmd.fit(x)
        return float(dmd.rom_eigenvalues_.abs().max().item())
    if op == "matmul":
        return float(ht.matmul(x, x).sum().item())
    raise SystemExit(f"heat_baseline.py: unknown operation '{op}'")


load_s, compute_s, check = [], [], float("nan")
for _ in range(rounds):
    comm.Barrier()
    t = time.perf_counter()
    x = load()
    comm.Barrier()
    load_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    check = compute(x)
    comm.Barrier()
    compute_s.append(time.perf_counter() - t)
    del x
peaks = comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, root=0)
meta = pq.ParquetFile(path).metadata
if rank == 0:
    print(
        json.dumps(
            {
                "system": f"Heat {ht.__version__}",
                "op": op,
                "ranks": size,
                "threads": torch.get_num_threads(),
                "rows": meta.num_rows,
                "cols": meta.num_columns,
                "load_s": load_s,
                "compute_s": compute_s,
                "peak_rss_bytes": peaks,
                "check": check if check == check else None,  # NaN is not JSON
                "bytes": meta.num_rows * meta.num_columns * 8,
            }
        )
    )
