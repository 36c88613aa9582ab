#!/usr/bin/env bash
# heatsql's benchmarks, one command (#26): each NAME installs what is missing (scripts/setup.sh,
# its Python baselines into .venv), builds the release binaries (build_release, scripts/env.sh)
# and runs heatsql under mpirun against a baseline measured in the same run.
#
#   bash scripts/bench.sh NAME [ARGS...]
#   bash scripts/bench.sh --help           the names, one line each, and every name's usage
#   bash scripts/bench.sh NAME --help      NAME's usage (`usage` below)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

names=(report sql tpcds load pca kmeans svd dmd matmul)
declare -A about=(
  [report]="the scaling report: load and every table function at several P, baselines, plots"
  [sql]="TPC-H, the 22 queries: heatsql at P = 1 and 2 versus DataFusion and DuckDB"
  [tpcds]="TPC-DS q72: heatsql at P = 1 versus DataFusion, at P = 2 under a memory limit"
  [load]="Parquet → DNDarray load at P = 1 and 2 versus a plain Parquet read"
  [pca]="Parquet → PCA at P = 1 and 2 versus pyarrow + scikit-learn PCA(full)"
  [kmeans]="k-means (20 iterations) at P = 1 and 2 versus pyarrow + scikit-learn KMeans"
  [svd]="truncated SVD at P = 1 and 2 versus pyarrow + numpy's SVD"
  [dmd]="exact DMD (rank 16) at P = 1 and 2 versus pyarrow + PyDMD"
  [matmul]="ring matmul versus libtorch's GEMM; P = 2 × 1 thread versus P = 1 × all cores"
)

# NAME's usage: its command line (first line), then what it runs and writes.
usage() {
  case "$1" in
    report) cat <<'EOF'
bash scripts/bench.sh report [--ranks 1,2,4] [--rows N] [--heat] [--docs] [OPTIONS]
  Generates the datasets, runs load and every table function under mpirun at each P (strong and
  weak scaling), the Python baselines (numpy, scikit-learn, PyDMD) in the same run, measures the
  machine's GEMM rate and memory bandwidth, and writes results.json, results.md and PNG plots
  into target/bench-report/ unless --out DIR says otherwise.
  --heat  also runs Heat 1.9 (mpi4py) at every P, from a Python 3.12 venv (.venv-heat) it
          creates (Heat 1.9 needs Python >= 3.12 and the full torch wheel, about 5 GB).
  --docs  copies the report into docs/benchmarks.md and docs/benchmarks/*.png (the TPC-H
          sections that `bench.sh sql --docs` wrote stay).
  Every other option goes to heatsql-bench-report (listed here once it is built).
EOF
      ;;
    sql) cat <<'EOF'
bash scripts/bench.sh sql [SF] [ROUNDS] [--docs] [--memory-limit SIZE]   (defaults: 1, 3)
  TPC-H, the 22 queries (tpchgen data, row groups of 100,000 rows), in one run on the same files
  and cores: single-process DataFusion (defaults, every core) and heatsql at P = 1 on every core
  in one process; heatsql at P = 1 on one core and at P = 2 on one core each (mpirun --bind-to
  core); DuckDB (PyPI, in .venv) on every core. Per query medians after a warm-up, peak RSS per
  rank; writes target/bench-sql/tpch-sf<SF>.tsv, tpch_sf<SF>.md and tpch_sf<SF>.png.
  --memory-limit SIZE  heatsql's memory limit per rank (HEATSQL_BENCH_MEMORY_LIMIT)
  --docs               also writes docs/benchmarks/tpch_sf<SF>.md and .png and puts the section
                       into docs/benchmarks.md (between <!-- tpch-sf<SF> --> markers, kept by
                       `bench.sh report --docs`)
EOF
      ;;
    tpcds) cat <<'EOF'
bash scripts/bench.sh tpcds [SF] [ROUNDS] [LIMIT]   (defaults: 1, 3, 4G)
  TPC-DS q72 (DataFusion's query text, sql-tests/tpcds/queries/q72.sql) on TPC-DS data that
  DuckDB's tpcds extension generates (PyPI, in .venv) into target/bench-data/tpcds-sf<SF>:
  heatsql at P = 1 on every core against single-process DataFusion in the same process, and
  heatsql at P = 2 (one core each) under a memory limit of LIMIT per rank.
EOF
      ;;
    load) cat <<'EOF'
bash scripts/bench.sh load [ROWS [COLS [ROUNDS]]]   (defaults: 2,000,000 × 32, 6 rounds)
  Parquet → DNDarray load at P = 1 and 2; two measurements (benches/src/bin/load.rs explains them):
  warm  — every round in one process (the baseline reuses memory earlier rounds faulted in);
  fresh — one measurement per process, rounds as separate mpirun launches, interleaved.
EOF
      ;;
    pca) cat <<'EOF'
bash scripts/bench.sh pca [ROWS [COLS [K [ROUNDS]]]]   (defaults: 2,000,000 × 32, k = 8, 4 rounds)
  Parquet → PCA end to end: heatsql at P = 1 and 2 (the API calls, then the SQL call, each in
  fresh processes) versus pyarrow + scikit-learn PCA(full) on the same file, in the same run.
EOF
      ;;
    kmeans) cat <<'EOF'
bash scripts/bench.sh kmeans [ROWS [COLS [K [ROUNDS]]]]   (defaults: 2,000,000 × 16, k = 8, 4 rounds)
  k-means end to end: heatsql at P = 1 and 2 versus pyarrow + scikit-learn KMeans on the same
  file from the same initial centroids, exactly 20 iterations, in the same run; then both on
  one thread.
EOF
      ;;
    svd) cat <<'EOF'
bash scripts/bench.sh svd [ROWS [COLS [K [ROUNDS]]]]   (defaults: 2,000,000 × 32, k = 8, 4 rounds)
  Truncated SVD (k of a tall-skinny table): heatsql at P = 1 (the node's cores as threads) and
  P = 2 (one thread per rank) versus pyarrow + numpy's SVD on the same file, in the same run;
  prints numpy's time / heatsql's time.
EOF
      ;;
    dmd) cat <<'EOF'
bash scripts/bench.sh dmd [ROUNDS [SNAPSHOTS FEATURES POINTS STEPS]]   (defaults: 4 rounds; 20,000 × 256, 1,000,000 × 100)
  Exact DMD, rank 16: heatsql at P = 1 (the node's cores as threads) and P = 2 (one thread per
  rank) versus pyarrow + PyDMD on the same files (a rows layout, SNAPSHOTS × FEATURES, and a
  columns layout, POINTS × STEPS), in the same run; prints PyDMD fit / heatsql fit.
EOF
      ;;
    matmul) cat <<'EOF'
bash scripts/bench.sh matmul [N [ROUNDS]]   (defaults: 4096, 4 rounds)
  Distributed matmul (ring, both operands split by rows) versus libtorch's local GEMM in the
  same run at P = 1, then P = 2 × 1 thread versus P = 1 × all cores as threads.
EOF
      ;;
    *) return 1 ;;
  esac
}

help() {
  echo "Usage: bash scripts/bench.sh NAME [ARGS...]    (bash scripts/bench.sh NAME --help: NAME's usage)"
  echo
  local n
  for n in "${names[@]}"; do printf '  %-7s %s\n' "$n" "${about[$n]}"; done
  printf '\nUsage per name (details: bash scripts/bench.sh NAME --help):\n'
  for n in "${names[@]}"; do usage "$n" | sed -n 1p; done
}

say() { printf '[bench-%s] %s\n' "$name" "$*" >&2; }

# Installs PACKAGES into .venv when its Python cannot import MODULES ("numpy, pyarrow").
need_py() {
  local modules="$1"; shift
  .venv/bin/python -c "import $modules" 2>/dev/null && return 0
  say "installing $* into .venv (benchmark baselines only)"
  .venv/bin/pip install -q "$@"
}

py() { .venv/bin/python "$@"; }
# The Python baseline of NAME (benches/python/NAME_baseline.py) with ARGS.
baseline() { py "benches/python/$1_baseline.py" "${@:2}"; }

# mpirun as the benchmarks launch it (more ranks than cores is allowed).
mpi() { mpirun --oversubscribe "$@"; }
# P ranks: P = 1 unbound, so its rank's threads (node cores / ranks per node, or HEATSQL_THREADS)
# use every core; P > 1 under mpirun's default binding (a core per rank for P <= 2).
mpi_at() {
  local p="$1"; shift
  if [ "$p" = 1 ]; then mpi --bind-to none -n 1 "$@"; else mpi -n "$p" "$@"; fi
}

# Runs "$@", prints its output less the `KEY VALUE` line that names its data file(s), keeps
# VALUE in $data and appends the whole output to $runs.
data="" runs=""
capture() {
  local key="$1" o; shift
  o="$("$@")"
  echo "$o" | grep -v "^$key "
  data="$(echo "$o" | sed -n "s/^$key //p")"
  runs="$runs$o"$'\n'
}

# capture KEY of heatsql at P = 1 (the node's cores as threads), then at P = 2 (one thread per
# rank), both running ARGS.
cores_then_ranks() {
  capture "$1" mpi_at 1 "${@:2}"
  HEATSQL_THREADS=1 capture "$1" mpi_at 2 "${@:2}"
}

# A / B with DIGITS decimals.
ratio() { python3 -c "print(f'{$1 / $2:.$3f}')"; }

bench_report() {
  local args=() heat="" docs="" out="$root/target/bench-report" status=0 py312="" c section sec
  while [ $# -gt 0 ]; do
    case "$1" in
      --heat) heat=yes ;;
      --docs) docs=yes ;;
      --out) out="$2"; args+=("$1" "$2"); shift ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  need_py "numpy, pyarrow, sklearn, pydmd, threadpoolctl" numpy pyarrow scikit-learn pydmd threadpoolctl
  if [ -n "$heat" ]; then
    for c in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
      if command -v "$c" >/dev/null 2>&1; then py312="$(command -v "$c")"; break; fi
    done
    if [ -z "$py312" ]; then
      say "Heat 1.9 needs Python >= 3.12 and none was found (python3.12 on PATH or under ~/.pyenv)"
      exit 1
    fi
    if [ ! -x .venv-heat/bin/python ]; then
      say "creating .venv-heat with $py312"
      "$py312" -m venv .venv-heat
    fi
    if ! .venv-heat/bin/python -c "import heat, mpi4py, pyarrow" 2>/dev/null; then
      say "installing heat==1.9.0, mpi4py and pyarrow into .venv-heat (pulls the full torch wheel)"
      .venv-heat/bin/pip install -q "heat==1.9.0" mpi4py pyarrow
    fi
    args+=(--heat "$root/.venv-heat/bin/python")
  fi
  build_release
  "$bin" "${args[@]}" || status=$?
  if [ -n "$docs" ] && [ -f "$out/results.md" ]; then
    mkdir -p docs/benchmarks
    cp "$out"/*.png "$out/results.json" docs/benchmarks/
    sed 's|](\([a-z_]*\.png\))|](benchmarks/\1)|' "$out/results.md" > docs/benchmarks.md
    # The SQL benchmark's sections (bench.sh sql --docs) stay.
    for section in docs/benchmarks/tpch_sf*.md; do
      [ -f "$section" ] || continue
      sec="$(basename "$section" .md)"
      printf '\n<!-- %s -->\n%s\n<!-- /%s -->\n' "${sec/_/-}" "$(cat "$section")" "${sec/_/-}" >> docs/benchmarks.md
    done
    say "docs/benchmarks.md and docs/benchmarks/ updated"
  fi
  exit "$status"
}

bench_sql() {
  local sf=1 rounds=3 docs="" limit="" pos=0 envs=() cores report md png header
  while [ $# -gt 0 ]; do
    case "$1" in
      --docs) docs=yes ;;
      --memory-limit) limit="$2"; shift ;;
      *) if [ $pos -eq 0 ]; then sf="$1"; else rounds="$1"; fi; pos=$((pos + 1)) ;;
    esac
    shift
  done
  need_py "duckdb, matplotlib" "duckdb==1.4.4" matplotlib
  build_release --bin heatsql-bench-sql
  cores="$(nproc)"
  report="$root/target/bench-sql/tpch-sf$sf.tsv"
  mkdir -p "$(dirname "$report")"
  rm -f "$report"
  if [ -n "$limit" ]; then envs+=(-x "HEATSQL_BENCH_MEMORY_LIMIT=$limit"); fi
  say "heatsql P=1 on $cores cores, and DataFusion in the same process"
  HEATSQL_THREADS="$cores" mpirun --bind-to none -n 1 "${envs[@]}" "$bin" "$sf" "$rounds" "$report" "heatsql P=1 all cores"
  say "heatsql P=1 on one core"
  HEATSQL_THREADS=1 mpirun --bind-to core -n 1 "${envs[@]}" "$bin" "$sf" "$rounds" "$report" "heatsql P=1 one core" --no-datafusion
  say "heatsql P=2 on one core each"
  HEATSQL_THREADS=1 mpi --bind-to core -n 2 "${envs[@]}" "$bin" "$sf" "$rounds" "$report" "heatsql P=2 one core each" --no-datafusion
  say "DuckDB on $cores cores"
  py benches/python/duckdb_tpch.py "target/bench-data/tpch-sf$sf" sql-tests/tpch/queries "$rounds" "$cores" "$report" duckdb
  md="$root/target/bench-sql/tpch_sf$sf.md"
  png="$root/target/bench-sql/tpch_sf$sf.png"
  header="## TPC-H SF $sf ($(date -u '+%Y-%m-%d'), commit \`$(git rev-parse --short HEAD)\`, $cores cores, $(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1048576)) GiB${limit:+, memory limit $limit per rank})

\`bash scripts/bench.sh sql $sf $rounds${limit:+ --memory-limit $limit}\`: seconds per query, the median of $((rounds - 1)) rounds after a warm-up, on the same Parquet files (row groups of 100,000 rows) and the same machine in one run. DataFusion runs in-process with its defaults, heatsql P=1 on every core in the same process (partitions per rank = cores); P=1 one core and P=2 one core each run under \`mpirun --bind-to core\`. Results of heatsql and DataFusion are compared (floats to 1e-9)."
  py benches/python/sql_report.py "$report" "$sf" "$md" "$png" "$header"
  cat "$md"
  if [ -n "$docs" ]; then
    mkdir -p docs/benchmarks
    cp "$md" "$png" docs/benchmarks/
    py - "$sf" <<'PY'
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
}

bench_tpcds() {
  local sf="${1:-1}" rounds="${2:-3}" limit="${3:-4G}" q=sql-tests/tpcds/queries/q72.sql data
  need_py "duckdb, duckdb_ext" "duckdb==1.4.4" "duckdb-ext-tpcds==1.4.4.20260205"
  build_release --bin heatsql-bench-query
  data="target/bench-data/tpcds-sf$sf"
  say "TPC-DS SF $sf into $data (once)"
  py benches/python/tpcds_gen.py "$sf" "$data" 100000 >/dev/null
  say "q72: heatsql P=1 on $(nproc) cores and DataFusion in the same process"
  HEATSQL_THREADS="$(nproc)" mpirun --bind-to none -n 1 "$bin" "$data" "$q" "$rounds"
  say "q72: heatsql P=2 on one core each, memory limit $limit per rank"
  HEATSQL_THREADS=1 mpi --bind-to core -n 2 -x "HEATSQL_BENCH_MEMORY_LIMIT=$limit" \
    "$bin" "$data" "$q" "$rounds" --no-datafusion
}

bench_load() {
  local rows="${1:-2000000}" cols="${2:-32}" rounds="${3:-6}" p
  build_release
  echo "== warm: all rounds in one process"
  for p in 1 2; do
    mpi -n "$p" "$bin" "$rows" "$cols" "$rounds"
  done
  echo "== fresh: one measurement per process"
  lines="$(mktemp)" # global: the EXIT trap runs after this function returned
  trap 'rm -f "$lines"' EXIT
  for _ in $(seq "$rounds"); do
    mpi -n 1 "$bin" "$rows" "$cols" --once baseline >>"$lines"
    for p in 1 2; do
      mpi -n "$p" "$bin" "$rows" "$cols" --once load >>"$lines"
    done
    mpi -n 2 "$bin" "$rows" "$cols" --once own >>"$lines"
  done
  "$bin" --summarize <"$lines"
}

bench_pca() {
  local rows="${1:-2000000}" cols="${2:-32}" k="${3:-8}" rounds="${4:-4}" p mode
  need_py "sklearn, pyarrow" scikit-learn pyarrow
  build_release
  for p in 1 2; do
    # The API calls (load, fit, scores timed apart), then the SQL call, each in fresh processes.
    for mode in api sql; do
      capture file mpi -n "$p" "$bin" "$rows" "$cols" "$k" "$rounds" "$mode"
    done
  done
  baseline pca "$data" "$k" "$rounds"
}

bench_kmeans() {
  local rows="${1:-2000000}" cols="${2:-16}" k="${3:-8}" rounds="${4:-4}" p
  need_py "sklearn, pyarrow" scikit-learn pyarrow
  build_release
  # P = 1 runs unbound so its rank uses the node's cores (threads = cores / ranks per node), as
  # scikit-learn does; P = 2 binds one rank per core. Then both on one thread per process.
  for p in 1 2; do
    capture file mpi_at "$p" "$bin" "$rows" "$cols" "$k" "$rounds"
  done
  # shellcheck disable=SC2086
  baseline kmeans $data "$rounds"
  echo "[bench] one thread each (heatsql P = 1 bound to a core, scikit-learn with OMP_NUM_THREADS=1):"
  HEATSQL_THREADS=1 mpi -n 1 "$bin" "$rows" "$cols" "$k" "$rounds" | grep '^heatsql'
  # shellcheck disable=SC2086
  OMP_NUM_THREADS=1 baseline kmeans $data "$rounds"
}

bench_svd() {
  local rows="${1:-2000000}" cols="${2:-32}" k="${3:-8}" rounds="${4:-4}" base np_svd np_e2e p api sql a e
  need_py "numpy, pyarrow, threadpoolctl" numpy pyarrow threadpoolctl
  build_release
  cores_then_ranks file "$bin" "$rows" "$cols" "$k" "$rounds"
  base="$(baseline svd "$data" "$rounds")"
  echo "$base"
  # Ratios: numpy's time / heatsql's time (higher is better; the issue's target is ≥ 10).
  np_svd="$(echo "$base" | sed -n 's/.* svd \([0-9.]*\) s.*/\1/p')"
  np_e2e="$(echo "$base" | sed -n 's/.*end to end \([0-9.]*\) s.*/\1/p')"
  for p in 1 2; do
    api="$(echo "$runs" | sed -n "s/^heatsql P=$p API svd tsqr (U, Σ, V) \([0-9.]*\) s.*/\1/p")"
    sql="$(echo "$runs" | sed -n "s/^heatsql P=$p SQL svd.*output => 'u') end to end \([0-9.]*\) s.*/\1/p")"
    a="$(ratio "$np_svd" "$api" 1)"
    e="$(ratio "$np_e2e" "$sql" 1)"
    echo "P = $p: numpy svd / heatsql svd tsqr (U, Σ, V) = ${a}×; end to end (load + U, Σ, V): numpy / heatsql SQL = ${e}×"
  done
}

bench_dmd() {
  local base layout p py_fit hs r
  need_py "pydmd, pyarrow, threadpoolctl" pydmd pyarrow threadpoolctl
  build_release
  cores_then_ranks files "$bin" "$@"
  # shellcheck disable=SC2086
  base="$(baseline dmd $data "${1:-4}")"
  echo "$base"
  for layout in rows columns; do
    py_fit="$(echo "$base" | sed -n "s/^baseline PyDMD $layout .* fit \([0-9.]*\) s.*/\1/p")"
    for p in 1 2; do
      hs="$(echo "$runs" | sed -n "s/^heatsql P=$p dmd $layout .* fit \([0-9.]*\) s.*/\1/p")"
      r="$(ratio "$py_fit" "$hs" 2)"
      echo "$layout P = $p: PyDMD fit / heatsql fit = ${r}× (target ≥ 2)"
    done
  done
}

bench_matmul() {
  local n="${1:-4096}" rounds="${2:-4}" cores p1 p2 t1 t2 r
  build_release
  cores="$(nproc)"
  p1="$(HEATSQL_THREADS="$cores" mpi_at 1 "$bin" "$n" "$rounds")"
  echo "$p1"
  p2="$(HEATSQL_THREADS=1 mpi_at 2 "$bin" "$n" "$rounds")"
  echo "$p2"
  t1="$(echo "$p1" | sed -n 's/.*ring matmul [^:]*: \([0-9.]*\) s.*/\1/p')"
  t2="$(echo "$p2" | sed -n 's/.*ring matmul [^:]*: \([0-9.]*\) s.*/\1/p')"
  r="$(ratio "$t1" "$t2" 3)"
  echo "P = 2 × 1 thread versus P = 1 × $cores threads: $r (time at P = 1 / time at P = 2)"
}

name="${1:-}"
case "$name" in
  "") help; exit 2 ;;
  -h | --help | help) help; exit 0 ;;
esac
if ! usage "$name" >/dev/null; then
  echo "bench.sh: unknown benchmark '$name'" >&2
  help >&2
  exit 2
fi
shift
for arg in "$@"; do
  case "$arg" in
    -h | --help)
      usage "$name"
      if [ "$name" = report ]; then
        if [ -x target/release/heatsql-bench-report ]; then
          echo
          target/release/heatsql-bench-report --help
        else
          echo "  (not built yet: bash scripts/bench.sh report builds it)"
        fi
      fi
      exit 0
      ;;
  esac
done
bin="target/release/heatsql-bench-$name"
[ "$name" != tpcds ] || bin=target/release/heatsql-bench-query

bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh
"bench_$name" "$@"
