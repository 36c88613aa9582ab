#!/usr/bin/env bash
# TPC-H SQL benchmark (the 22 queries, tpchgen data): heatsql at P = 1 versus plain DataFusion (same run, same files), and
# heatsql at P = 2 versus P = 1. Release build; arguments: [SF] [ROUNDS].
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
build_release
sf="${1:-1}"
rounds="${2:-3}"
report="$(mktemp)"
for p in 1 2; do
  mpirun --oversubscribe -n "$p" target/release/heatsql-bench-sql "$sf" "$rounds" "$report"
done
python3 - "$report" <<'PY'
import sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().split("\n") if l]
t = {(int(p), q): (float(a), float(b)) for p, q, a, b in rows}
print("\nquery                  P=1 heatsql/datafusion   P=2/P=1 heatsql time")
for q in dict.fromkeys(q for _, q in t):
    one, two = t.get((1, q)), t.get((2, q))
    if one and two:
        print(f"{q:<22} {one[0] / one[1]:>10.2f}               {two[0] / one[0]:>8.2f}")
PY
rm -f "$report"
