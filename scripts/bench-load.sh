#!/usr/bin/env bash
# Parquet → DNDarray load benchmark at P = 1 and 2 (release build). Usage:
#   bash scripts/bench-load.sh [ROWS [COLS [ROUNDS]]]     (default 2,000,000 × 32, 6 rounds)
# Two measurements (benches/src/bin/load.rs explains them):
#   warm  — every round in one process (the baseline reuses memory earlier rounds faulted in);
#   fresh — one measurement per process, rounds as separate mpirun launches, interleaved.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
build_release
bin=target/release/heatsql-bench-load
rows="${1:-2000000}" cols="${2:-32}" rounds="${3:-6}"
echo "== warm: all rounds in one process"
for p in 1 2; do
  mpirun --oversubscribe -n "$p" "$bin" "$rows" "$cols" "$rounds"
done
echo "== fresh: one measurement per process"
lines="$(mktemp)"
trap 'rm -f "$lines"' EXIT
for _ in $(seq "$rounds"); do
  mpirun --oversubscribe -n 1 "$bin" "$rows" "$cols" --once baseline >>"$lines"
  for p in 1 2; do
    mpirun --oversubscribe -n "$p" "$bin" "$rows" "$cols" --once load >>"$lines"
  done
  mpirun --oversubscribe -n 2 "$bin" "$rows" "$cols" --once own >>"$lines"
done
"$bin" --summarize <"$lines"
