#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the demo under mpirun.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
. scripts/env.sh
ranks="${HEATSQL_DEMO_RANKS:-2}"
echo "[demo] building (first build takes several minutes)" >&2
cargo build -q --example dndarray_demo -p heatsql
echo "[demo] mpirun -n $ranks target/debug/examples/dndarray_demo $*" >&2
exec mpirun --oversubscribe -n "$ranks" target/debug/examples/dndarray_demo "$@"
