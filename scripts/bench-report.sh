#!/usr/bin/env bash
# The one-command benchmark and scaling report (#10): generates the datasets, runs load and
# every table function under mpirun at P = 1 and 2 (strong and weak scaling), the Python
# baselines (numpy, scikit-learn, PyDMD) in the same run, measures the machine's GEMM rate and
# memory bandwidth, and writes results.json, results.md and PNG plots (release build).
#
#   bash scripts/bench-report.sh [--ranks 1,2,4] [--rows N] [--heat] [--docs] [OPTIONS]
#
# --heat    also runs Heat 1.9 (mpi4py) at every P, from a Python 3.12 venv (.venv-heat) it
#           creates (Heat 1.9 needs Python >= 3.12 and the full torch wheel, about 5 GB).
# --docs    copies the report into docs/benchmarks.md and docs/benchmarks/*.png.
# Every other option goes to heatsql-bench-report (`--help` lists them); output in
# target/bench-report/ unless --out says otherwise.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
say() { printf '[bench-report] %s\n' "$*" >&2; }
args=() heat="" docs="" out="$root/target/bench-report"
while [ $# -gt 0 ]; do
  case "$1" in
    --heat) heat=yes ;;
    --docs) docs=yes ;;
    --out) out="$2"; args+=("$1" "$2"); shift ;;
    *) args+=("$1") ;;
  esac
  shift
done
if ! .venv/bin/python -c "import numpy, pyarrow, sklearn, pydmd, threadpoolctl" 2>/dev/null; then
  say "installing numpy, pyarrow, scikit-learn, PyDMD and threadpoolctl into .venv (baselines only)"
  .venv/bin/pip install -q numpy pyarrow scikit-learn pydmd threadpoolctl
fi
if [ -n "$heat" ]; then
  py312=""
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
status=0
target/release/heatsql-bench-report "${args[@]}" || status=$?
if [ -n "$docs" ] && [ -f "$out/results.md" ]; then
  mkdir -p docs/benchmarks
  cp "$out"/*.png "$out/results.json" docs/benchmarks/
  sed 's|](\([a-z_]*\.png\))|](benchmarks/\1)|' "$out/results.md" > docs/benchmarks.md
  # The SQL benchmark's sections (scripts/bench-sql.sh --docs) stay.
  for section in docs/benchmarks/tpch_sf*.md; do
    [ -f "$section" ] || continue
    name="$(basename "$section" .md)"
    printf '\n<!-- %s -->\n%s\n<!-- /%s -->\n' "${name/_/-}" "$(cat "$section")" "${name/_/-}" >> docs/benchmarks.md
  done
  say "docs/benchmarks.md and docs/benchmarks/ updated"
fi
exit "$status"
