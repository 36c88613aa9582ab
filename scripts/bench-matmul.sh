#!/usr/bin/env bash
# Distributed matmul (ring, both operands split by rows) versus libtorch's local GEMM in the same
# run at P = 1, then P = 2 × 1 thread versus P = 1 × 2 threads (release build).
# Usage: bash scripts/bench-matmul.sh [N [ROUNDS]]   (default 4096, 4 rounds)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
build_release
bin=target/release/heatsql-bench-matmul
n="${1:-4096}" rounds="${2:-4}"
cores="$(nproc)"
p1="$(HEATSQL_THREADS="$cores" mpirun --oversubscribe --bind-to none -n 1 "$bin" "$n" "$rounds")"
echo "$p1"
p2="$(HEATSQL_THREADS=1 mpirun --oversubscribe -n 2 "$bin" "$n" "$rounds")"
echo "$p2"
t1="$(echo "$p1" | sed -n 's/.*ring matmul [^:]*: \([0-9.]*\) s.*/\1/p')"
t2="$(echo "$p2" | sed -n 's/.*ring matmul [^:]*: \([0-9.]*\) s.*/\1/p')"
echo "P = 2 × 1 thread versus P = 1 × $cores threads: $(python3 -c "print(f'{$t1 / $t2:.3f}')") (time at P = 1 / time at P = 2)"
