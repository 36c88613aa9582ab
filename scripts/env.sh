# Sourced by the scripts: the environment heatsql's commands run in.
# OpenMPI as root needs explicit permission; containers often lack the cross-memory attach
# that OpenMPI's shared-memory transport tries first.
export OMPI_ALLOW_RUN_AS_ROOT=1
export OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export CARGO_TERM_COLOR=never
# rustup's cargo, when the shell did not put it on PATH.
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then . "$HOME/.cargo/env"; fi

# The release binaries of the benchmarks and the shell. Always the same package set: cargo
# unifies dependency features over the packages it builds, so `-p heatsql-benches` alone would
# rebuild datafusion in release (about 25 minutes) next to the set the other scripts built.
# Arguments name the binaries a script needs (`build_release --bin heatsql-bench-sql`; each of
# the ~15 binaries takes a minute or two to link); without them every binary is built.
build_release() {
  local targets=("$@")
  [ ${#targets[@]} -eq 0 ] && targets=(--bins)
  cargo build -q --release -p heatsql-benches -p heatsql -p heatsql-sql-tests -p heatsql-engine "${targets[@]}"
}
