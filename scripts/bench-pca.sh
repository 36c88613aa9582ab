#!/usr/bin/env bash
# Parquet → PCA end to end: heatsql at P = 1 and 2 versus pyarrow + scikit-learn PCA(full) on
# the same file, in the same run (release build). Usage:
#   bash scripts/bench-pca.sh [ROWS [COLS [K [ROUNDS]]]]    (default 2,000,000 × 32, k = 8, 4)
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
bin=target/release/heatsql-bench-pca
rows="${1:-2000000}" cols="${2:-32}" k="${3:-8}" rounds="${4:-4}"
file=""
for p in 1 2; do
  # The API calls (load, fit, scores timed apart), then the SQL call, each in fresh processes.
  for mode in api sql; do
    out="$(mpirun --oversubscribe -n "$p" "$bin" "$rows" "$cols" "$k" "$rounds" "$mode")"
    echo "$out" | grep -v '^file '
    file="$(echo "$out" | sed -n 's/^file //p')"
  done
done
.venv/bin/python benches/python/pca_baseline.py "$file" "$k" "$rounds"
