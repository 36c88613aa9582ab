#!/usr/bin/env bash
# TPC-DS q72 (DataFusion's query text, sql-tests/tpcds/queries/q72.sql) on TPC-DS data that
# DuckDB's tpcds extension generates (PyPI, in .venv): heatsql at P = 1 on every core against
# single-process DataFusion in the same process, and heatsql at P = 2 (one core each) under a
# per-rank memory limit. Release build.
#
#   bash scripts/bench-tpcds.sh [SF] [ROUNDS] [LIMIT]      (defaults: 1, 3, 4G)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[bench-tpcds] %s\n' "$*" >&2; }
sf="${1:-1}" rounds="${2:-3}" limit="${3:-4G}"
bash scripts/setup.sh
. scripts/env.sh
if ! .venv/bin/python -c "import duckdb, duckdb_ext" 2>/dev/null; then
  say "installing duckdb and its tpcds extension into .venv (benchmark only)"
  .venv/bin/pip install -q "duckdb==1.4.4" "duckdb-ext-tpcds==1.4.4.20260205"
fi
build_release --bin heatsql-bench-query
data="target/bench-data/tpcds-sf$sf"
say "TPC-DS SF $sf into $data (once)"
.venv/bin/python benches/python/tpcds_gen.py "$sf" "$data" 100000 >/dev/null
bin=target/release/heatsql-bench-query
say "q72: heatsql P=1 on $(nproc) cores and DataFusion in the same process"
HEATSQL_THREADS="$(nproc)" mpirun --bind-to none -n 1 "$bin" "$data" sql-tests/tpcds/queries/q72.sql "$rounds"
say "q72: heatsql P=2 on one core each, memory limit $limit per rank"
HEATSQL_THREADS=1 mpirun --bind-to core --oversubscribe -n 2 -x "HEATSQL_BENCH_MEMORY_LIMIT=$limit" \
  "$bin" "$data" sql-tests/tpcds/queries/q72.sql "$rounds" --no-datafusion
