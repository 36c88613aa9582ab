#!/usr/bin/env bash
# Truncated SVD (k of a tall-skinny table): heatsql at P = 1 (the node's cores as threads) and
# P = 2 (one thread per rank) versus pyarrow + numpy's SVD on the same file, in the same run
# (release build). Usage: bash scripts/bench-svd.sh [ROWS [COLS [K [ROUNDS]]]]
# (default 2,000,000 × 32, k = 8, 4 rounds).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
if ! .venv/bin/python -c "import numpy, pyarrow, threadpoolctl" 2>/dev/null; then
  echo "[bench] installing numpy, pyarrow and threadpoolctl into .venv (baseline only)" >&2
  .venv/bin/pip install -q numpy pyarrow threadpoolctl
fi
build_release
bin=target/release/heatsql-bench-svd
rows="${1:-2000000}" cols="${2:-32}" k="${3:-8}" rounds="${4:-4}"
file="" out=""
for p in 1 2; do
  if [ "$p" = 1 ]; then
    o="$(mpirun --oversubscribe --bind-to none -n 1 "$bin" "$rows" "$cols" "$k" "$rounds")"
  else
    o="$(HEATSQL_THREADS=1 mpirun --oversubscribe -n 2 "$bin" "$rows" "$cols" "$k" "$rounds")"
  fi
  echo "$o" | grep -v '^file '
  file="$(echo "$o" | sed -n 's/^file //p')"
  out="$out$o"$'\n'
done
base="$(.venv/bin/python benches/python/svd_baseline.py "$file" "$rounds")"
echo "$base"
# Ratios: numpy's time / heatsql's time (higher is better; the issue's target is ≥ 10).
np_svd="$(echo "$base" | sed -n 's/.* svd \([0-9.]*\) s.*/\1/p')"
np_e2e="$(echo "$base" | sed -n 's/.*end to end \([0-9.]*\) s.*/\1/p')"
for p in 1 2; do
  api="$(echo "$out" | sed -n "s/^heatsql P=$p API svd tsqr (U, Σ, V) \([0-9.]*\) s.*/\1/p")"
  sql="$(echo "$out" | sed -n "s/^heatsql P=$p SQL svd.*output => 'u') end to end \([0-9.]*\) s.*/\1/p")"
  python3 -c "print(f'P = $p: numpy svd / heatsql svd tsqr (U, Σ, V) = {$np_svd / $api:.1f}×; end to end (load + U, Σ, V): numpy / heatsql SQL = {$np_e2e / $sql:.1f}×')"
done
