#!/usr/bin/env bash
# TPC-H SQL benchmark (the 22 queries, tpchgen data, row groups of 100,000 rows), in one run on
# the same files and cores:
#   * single-process DataFusion (default configuration, every core) and heatsql at P = 1 on every
#     core (partitions per rank = cores), in one process;
#   * heatsql at P = 1 on one core and at P = 2 on one core each (mpirun --bind-to core);
#   * DuckDB (PyPI, in .venv) on every core.
# Per query medians after a warm-up, peak RSS per rank. Release build.
#
#   bash scripts/bench-sql.sh [SF] [ROUNDS] [--docs] [--memory-limit SIZE]
#
# --docs writes docs/benchmarks/tpch_sf<SF>.md and .png and puts the section into
# docs/benchmarks.md (between <!-- tpch-sf<SF> --> markers, kept by bench-report --docs).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
say() { printf '[bench-sql] %s\n' "$*" >&2; }
sf=1 rounds=3 docs="" limit=""
pos=0
while [ $# -gt 0 ]; do
  case "$1" in
    --docs) docs=yes ;;
    --memory-limit) limit="$2"; shift ;;
    *) if [ $pos -eq 0 ]; then sf="$1"; else rounds="$1"; fi; pos=$((pos + 1)) ;;
  esac
  shift
done
bash scripts/setup.sh
. scripts/env.sh
if ! .venv/bin/python -c "import duckdb, matplotlib" 2>/dev/null; then
  say "installing duckdb and matplotlib into .venv (benchmark only)"
  .venv/bin/pip install -q "duckdb==1.4.4" matplotlib
fi
build_release --bin heatsql-bench-sql
cores="$(nproc)"
report="$root/target/bench-sql/tpch-sf$sf.tsv"
mkdir -p "$(dirname "$report")"
rm -f "$report"
envs=()
[ -n "$limit" ] && envs+=(-x "HEATSQL_BENCH_MEMORY_LIMIT=$limit")
bin=target/release/heatsql-bench-sql
say "heatsql P=1 on $cores cores, and DataFusion in the same process"
HEATSQL_THREADS="$cores" mpirun --bind-to none -n 1 "${envs[@]}" "$bin" "$sf" "$rounds" "$report" "heatsql P=1 all cores"
say "heatsql P=1 on one core"
HEATSQL_THREADS=1 mpirun --bind-to core -n 1 "${envs[@]}" "$bin" "$sf" "$rounds" "$report" "heatsql P=1 one core" --no-datafusion
say "heatsql P=2 on one core each"
HEATSQL_THREADS=1 mpirun --bind-to core --oversubscribe -n 2 "${envs[@]}" "$bin" "$sf" "$rounds" "$report" "heatsql P=2 one core each" --no-datafusion
say "DuckDB on $cores cores"
.venv/bin/python benches/python/duckdb_tpch.py "target/bench-data/tpch-sf$sf" sql-tests/tpch/queries "$rounds" "$cores" "$report" duckdb
md="$root/target/bench-sql/tpch_sf$sf.md"
png="$root/target/bench-sql/tpch_sf$sf.png"
header="## TPC-H SF $sf ($(date -u '+%Y-%m-%d'), commit \`$(git rev-parse --short HEAD)\`, $cores cores, $(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1048576)) GiB${limit:+, memory limit $limit per rank})

\`bash scripts/bench-sql.sh $sf $rounds${limit:+ --memory-limit $limit}\`: seconds per query, the median of $((rounds - 1)) rounds after a warm-up, on the same Parquet files (row groups of 100,000 rows) and the same machine in one run. DataFusion runs in-process with its defaults, heatsql P=1 on every core in the same process (partitions per rank = cores); P=1 one core and P=2 one core each run under \`mpirun --bind-to core\`. Results of heatsql and DataFusion are compared (floats to 1e-9)."
.venv/bin/python benches/python/sql_report.py "$report" "$sf" "$md" "$png" "$header"
cat "$md"
if [ -n "$docs" ]; then
  mkdir -p docs/benchmarks
  cp "$md" "$png" docs/benchmarks/
  .venv/bin/python - "$sf" <<'PY'
import re, sys
sf = sys.argv[1]
path = "docs/benchmarks.md"
text = open(path).read()
section = open(f"docs/benchmarks/tpch_sf{sf}.md").read()
begin, end = f"<!-- tpch-sf{sf} -->", f"<!-- /tpch-sf{sf} -->"
block = f"{begin}\n{section}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
else:
    text = text.rstrip("\n") + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
  say "docs/benchmarks.md updated (TPC-H SF $sf)"
fi
