#!/usr/bin/env bash
# k-means end to end: heatsql at P = 1 and 2 versus pyarrow + scikit-learn KMeans on the same
# file from the same initial centroids, exactly 20 iterations, in the same run (release build).
# Usage: bash scripts/bench-kmeans.sh [ROWS [COLS [K [ROUNDS]]]]   (default 2,000,000 × 16, k = 8, 4)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
if ! .venv/bin/python -c "import sklearn, pyarrow" 2>/dev/null; then
  echo "[bench] installing scikit-learn and pyarrow into .venv (baseline only)" >&2
  .venv/bin/pip install -q scikit-learn pyarrow
fi
build_release
bin=target/release/heatsql-bench-kmeans
rows="${1:-2000000}" cols="${2:-16}" k="${3:-8}" rounds="${4:-4}"
files=""
# P = 1 runs unbound so its rank uses the node's cores (threads = cores / ranks per node), as
# scikit-learn does; P = 2 binds one rank per core. Then both on one thread per process.
run() { mpirun --oversubscribe "$@" "$bin" "$rows" "$cols" "$k" "$rounds"; }
for p in 1 2; do
  if [ "$p" = 1 ]; then out="$(run --bind-to none -n 1)"; else out="$(run -n "$p")"; fi
  echo "$out" | grep -v '^file '
  files="$(echo "$out" | sed -n 's/^file //p')"
done
# shellcheck disable=SC2086
.venv/bin/python benches/python/kmeans_baseline.py $files "$rounds"
echo "[bench] one thread each (heatsql P = 1 bound to a core, scikit-learn with OMP_NUM_THREADS=1):"
HEATSQL_THREADS=1 run -n 1 | grep '^heatsql'
# shellcheck disable=SC2086
OMP_NUM_THREADS=1 .venv/bin/python benches/python/kmeans_baseline.py $files "$rounds"
