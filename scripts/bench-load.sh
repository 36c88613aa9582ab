#!/usr/bin/env bash
# Parquet → DNDarray load benchmark at P = 1 and 2 (release build; ROWS and COLS optional).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
cargo build -q --release -p heatsql-benches
for p in 1 2; do
  mpirun --oversubscribe -n "$p" target/release/heatsql-bench-load "$@"
done
