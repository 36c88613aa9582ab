#!/usr/bin/env bash
# Exact DMD, rank 16: heatsql at P = 1 (the node's cores as threads) and P = 2 (one thread per
# rank) versus pyarrow + PyDMD on the same files, in the same run (release build).
# Usage: bash scripts/bench-dmd.sh [ROUNDS [SNAPSHOTS FEATURES POINTS STEPS]]
# (default 4 rounds; 20,000 × 256 rows layout, 1,000,000 × 100 columns layout).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
if ! .venv/bin/python -c "import pydmd, pyarrow, threadpoolctl" 2>/dev/null; then
  echo "[bench] installing PyDMD, pyarrow and threadpoolctl into .venv (baseline only)" >&2
  .venv/bin/pip install -q pydmd pyarrow threadpoolctl
fi
build_release
bin=target/release/heatsql-bench-dmd
args=("$@")
out=""
for p in 1 2; do
  if [ "$p" = 1 ]; then
    o="$(mpirun --oversubscribe --bind-to none -n 1 "$bin" "${args[@]}")"
  else
    o="$(HEATSQL_THREADS=1 mpirun --oversubscribe -n 2 "$bin" "${args[@]}")"
  fi
  echo "$o" | grep -v '^files '
  files="$(echo "$o" | sed -n 's/^files //p')"
  out="$out$o"$'\n'
done
# shellcheck disable=SC2086
base="$(.venv/bin/python benches/python/dmd_baseline.py $files "${1:-4}")"
echo "$base"
for layout in rows columns; do
  py="$(echo "$base" | sed -n "s/^baseline PyDMD $layout .* fit \([0-9.]*\) s.*/\1/p")"
  for p in 1 2; do
    hs="$(echo "$out" | sed -n "s/^heatsql P=$p dmd $layout .* fit \([0-9.]*\) s.*/\1/p")"
    python3 -c "print(f'$layout P = $p: PyDMD fit / heatsql fit = {$py / $hs:.2f}× (target ≥ 2)')"
  done
done
