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
cargo build -q --release -p heatsql-benches
bin=target/release/heatsql-bench-kmeans
rows="${1:-2000000}" cols="${2:-16}" k="${3:-8}" rounds="${4:-4}"
files=""
for p in 1 2; do
  out="$(mpirun --oversubscribe -n "$p" "$bin" "$rows" "$cols" "$k" "$rounds")"
  echo "$out" | grep -v '^file '
  files="$(echo "$out" | sed -n 's/^file //p')"
done
# shellcheck disable=SC2086
.venv/bin/python benches/python/kmeans_baseline.py $files "$rounds"
