#!/usr/bin/env bash
# The README's second command (and CI's): install what is missing, check formatting and lints,
# build, and run every test. The MPI tests launch mpirun at P = 1, 2, 3 and 4 and print one
# "[mpi] P=…" line per run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh --tests
. scripts/env.sh
step() { printf '\n[test] %s\n' "$*" >&2; }
step "python baselines compile"
python3 -m py_compile benches/python/*.py
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy -D warnings"
cargo clippy -q --workspace --all-targets -- -D warnings
step "cargo build"
cargo build -q --workspace --all-targets
step "cargo test (the MPI tests run mpirun -n 1..4)"
cargo test -q --workspace -- --nocapture --test-threads=2
step "engine checks, function checks and the .slt suite again with the CPU kernels off (libtorch only)"
HEATSQL_CPU_KERNELS=0 cargo test -q --workspace --test engine --test functions --test slt -- --nocapture --test-threads=2
step "demo under mpirun -n 2"
mpirun --oversubscribe -n 2 target/debug/examples/dndarray_demo 20000 >/dev/null
step "all tests passed"
