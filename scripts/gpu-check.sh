#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, the table functions on CUDA and the pca, svd,
# kmeans and matmul benchmarks on the GPU beside the same runs on the CPU. Results go to DIR:
# info.txt (heatsql --info per rank), nvidia-smi.txt, function-checks-cuda-p{1,2}.txt, one
# bench-<name>-<device>-p<P>.txt per benchmark run, and summary.txt (one line per step).
#
#   bash scripts/gpu-check.sh DIR
#
# On an ordinary GPU node it installs what is missing (scripts/setup.sh --cuda: torch's CUDA
# libraries from PyPI) and builds first. HEATSQL_GPU_CHECK_PREBUILT=CARRY skips both and runs the
# binaries that scripts/build-torch211.sh gathered in CARRY (bin/, lib/, fixtures/, env.sh: a
# machine without cargo whose PyTorch is 2.11).
# Exit status: 0 when CUDA support loaded, a GPU was used and every function check passed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

out="${1:?usage: bash scripts/gpu-check.sh DIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
: > "$out/summary.txt"
log() { printf '[gpu-check] %s\n' "$*" | tee -a "$out/summary.txt" >&2; }

benches=(pca svd kmeans matmul)
carry="${HEATSQL_GPU_CHECK_PREBUILT:-}"
if [ -z "$carry" ]; then
  bash scripts/setup.sh --cuda
  # shellcheck source=scripts/env.sh
  . scripts/env.sh
  cargo build -q --workspace --bins
  build_release $(printf -- '--bin heatsql-bench-%s ' "${benches[@]}")
  debug=target/debug release=target/release fixtures=heatsql/tests/fixtures
else
  # shellcheck source=scripts/env.sh
  . scripts/env.sh
  # shellcheck disable=SC1091
  . "$carry/env.sh"
  debug="$carry/bin" release="$carry/bin" fixtures="$carry/fixtures"
fi

# P ranks on this node (the environment is inherited); P = 1 without mpirun when there is none
# (MPI then starts as a singleton).
launch() {
  local p="$1"
  shift
  if [ "$p" = 1 ] && ! command -v mpirun >/dev/null 2>&1; then
    "$@"
  else
    mpirun --oversubscribe --bind-to none -n "$p" "$@"
  fi
}

status=0
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (see nvidia-smi.txt)"
launch 2 "$debug/heatsql" --info > "$out/info.txt" 2>&1 || launch 1 "$debug/heatsql" --info > "$out/info.txt" 2>&1 || true
cat "$out/info.txt" >&2
if grep -q "CUDA support loaded" "$out/info.txt" && ! grep -q "GPUs 0," "$out/info.txt"; then
  log "CUDA support loaded; $(grep -o 'GPUs [0-9]*' "$out/info.txt" | head -1)"
else
  log "no usable GPU: $(head -1 "$out/info.txt")"
  status=1
fi

# 1. The function checks with every table function on CUDA (heatsql.device = 'cuda').
for p in 1 2; do
  f="$out/function-checks-cuda-p$p.txt"
  rm -rf "$out/scratch-p$p"
  if HEATSQL_DEVICE=cuda HEATSQL_THREADS=4 launch "$p" \
      "$debug/heatsql-function-checks" "$fixtures/pca" "$out/scratch-p$p" > "$f" 2>&1; then
    log "P=$p cuda: $(grep 'function checks at' "$f" | tail -1)"
  else
    log "P=$p cuda: FAILED: $(grep 'function checks at' "$f" | tail -1) (see $(basename "$f"))"
    status=1
  fi
done

# 2. The benchmarks at their default sizes, on the CPU and on the GPU, P = 1 and 2.
run_bench() {
  local name="$1" dev="$2" p="$3" f
  shift 3
  f="$out/bench-$name-$dev-p$p.txt"
  if HEATSQL_DEVICE="$dev" launch "$p" "$release/heatsql-bench-$name" "$@" > "$f" 2>&1; then
    log "bench $name $dev P=$p: $(grep '^heatsql' "$f" | head -1)"
  else
    log "bench $name $dev P=$p: FAILED (see $(basename "$f"))"
  fi
}
for dev in cpu cuda; do
  for p in 1 2; do
    run_bench pca "$dev" "$p" 2000000 32 8 4 api
    run_bench svd "$dev" "$p" 2000000 32 8 4
    run_bench kmeans "$dev" "$p" 2000000 16 8 4
    run_bench matmul "$dev" "$p" 4096 4
  done
done
log "results in $out"
exit "$status"
