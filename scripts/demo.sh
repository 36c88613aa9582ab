#!/usr/bin/env bash
# The README's first command: install what is missing, build the heatsql shell, and run the
# demo job examples/demo.sql under mpirun (2 ranks; HEATSQL_DEMO_RANKS=N for another count).
# The demo generates its own small dataset under target/demo/ (emptied first).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
ranks="${HEATSQL_DEMO_RANKS:-2}"
echo "[demo] building heatsql (the first build takes several minutes)" >&2
# Every binary of the workspace, not `-p heatsql`: cargo unifies dependency features over the
# packages it builds, so selecting one package would compile DataFusion a second time next to
# what scripts/test.sh built.
cargo build -q --workspace --bins
rm -rf target/demo
echo "[demo] mpirun -n $ranks target/debug/heatsql --echo -f examples/demo.sql" >&2
exec mpirun --oversubscribe -n "$ranks" target/debug/heatsql --echo -f examples/demo.sql "$@"
