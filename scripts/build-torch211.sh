#!/usr/bin/env bash
# Builds the GPU check's binaries against libtorch 2.11 (the PyTorch of the lent GPU machines:
# torch 2.11.0+cu130 in /opt/torch/.venv, no cargo, no network), for scripts/gpu-check.sh with
# HEATSQL_GPU_CHECK_PREBUILT=1 there.
#
#   bash scripts/build-torch211.sh [OUT]        (default OUT: target/torch211/carry)
#
# tch 0.24 is the release for torch 2.11 (the workspace uses tch 0.26 for torch 2.13). Two tch
# versions cannot share one dependency resolve (both torch-sys declare `links = "tch"`), so this
# builds a copy of the committed sources (git archive HEAD) with tch/torch-sys pinned to 0.24, in
# its own target directory, against the headers and libraries of the no-deps torch 2.11.0 wheel
# from PyPI (nothing from pytorch.org). OUT receives the stripped release binaries
# (heatsql, heatsql-function-checks, the pca/svd/kmeans/matmul benchmarks), the OpenMPI
# libraries they link and `env.sh`, which points them at the machine's libtorch and at those
# libraries. Check OUT's size against what may travel before a lease (`du -sh OUT`).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
base="$root/target/torch211"
out="${1:-$base/carry}"
say() { printf '[torch211] %s\n' "$*" >&2; }

bash scripts/setup.sh
# shellcheck source=scripts/env.sh
. scripts/env.sh

# 1. libtorch 2.11: the wheel's lib/ and include/ (about 1 GB unpacked).
if [ ! -f "$base/torch/lib/libtorch_cpu.so" ]; then
  say "downloading torch==2.11.0 (no dependencies) from PyPI"
  mkdir -p "$base/wheel"
  .venv/bin/pip download -q --no-deps --python-version 3.11 --only-binary=:all: -d "$base/wheel" "torch==2.11.0"
  (cd "$base" && unzip -q -o wheel/torch-2.11.0-*.whl 'torch/lib/*' 'torch/include/*' 'torch/version.py')
fi

# 2. The committed sources with tch 0.24.
rm -rf "$base/src"
mkdir -p "$base/src"
git archive HEAD | tar -x -C "$base/src"
sed -i 's/^tch = "0\.26"/tch = "0.24"/; s/^torch-sys = "0\.26"/torch-sys = "0.24"/' "$base/src/Cargo.toml"
grep -q '^tch = "0.24"' "$base/src/Cargo.toml" || { say "Cargo.toml no longer pins tch 0.26; update this script"; exit 1; }
ln -sfn "$base/torch" "$base/src/.torch"

# 3. Release build, own target directory (a cold build takes about half an hour).
bins=(heatsql heatsql-function-checks heatsql-bench-pca heatsql-bench-svd heatsql-bench-kmeans heatsql-bench-matmul)
say "building ${bins[*]} against libtorch 2.11"
(cd "$base/src" && LIBTORCH="$base/torch" CARGO_TARGET_DIR="$base/target" \
  cargo build -q --release -p heatsql -p heatsql-checks -p heatsql-benches $(printf -- '--bin %s ' "${bins[@]}"))

# 4. What travels: stripped binaries, the OpenMPI libraries they link, an env.sh.
rm -rf "$out"
mkdir -p "$out/bin" "$out/lib"
for b in "${bins[@]}"; do
  cp "$base/target/release/$b" "$out/bin/"
  strip "$out/bin/$b"
done
ldd "$out/bin/heatsql" | awk '/=> \// {print $3}' | grep -E 'libmpi|libopen-|libhwloc|libevent|libudev|libpmix' | while read -r lib; do
  cp -L "$lib" "$out/lib/"
done
mkdir -p "$out/fixtures"
cp -r heatsql/tests/fixtures/. "$out/fixtures/"
cat > "$out/env.sh" <<'EOF'
# Sourced on the GPU machine: the machine's libtorch 2.11 and CUDA libraries, the carried
# OpenMPI libraries. The binaries' rpath names the build machine's wheel, which is absent here.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
torch_dir="$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
# libtorch, and the CUDA runtime libraries the binaries link directly (libcudart, libcupti),
# which PyPI's torch keeps in site-packages/nvidia/*/lib.
nvidia="$(ls -d "$torch_dir"/../nvidia/*/lib 2>/dev/null | tr '\n' ':')"
export LD_LIBRARY_PATH="$torch_dir/lib:$nvidia$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$here/bin:$PATH"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
EOF
du -sh "$out"/bin/* "$out" >&2
size_mb=$(du -sm "$out" | cut -f1)
if [ "$size_mb" -gt 64 ]; then
  say "warning: $out is ${size_mb} MiB, more than the 64 MiB a lent machine's call may carry; the binaries that link DataFusion are about 133 MB each stripped (measured 2026-12-08), carry fewer or smaller ones"
fi
say "done: $out (P = 1 runs without mpirun as a singleton; P > 1 needs an mpirun of the same OpenMPI)"
