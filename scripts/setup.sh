#!/usr/bin/env bash
# Idempotent setup used by both README commands and by CI:
#   1. OpenMPI (dev + runtime), libclang and a TrueType font (the report's plots) from apt, when missing;
#   2. a project-local venv holding torch==2.13.0 from PyPI (libtorch for tch), when missing;
#   3. the `.torch` link that .cargo/config.toml points LIBTORCH at.
# It never downloads from pytorch.org. Safe to run any number of times.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

say() { printf '[setup] %s\n' "$*" >&2; }

# --- 1. system packages -------------------------------------------------------------------
apt_pkgs=(libopenmpi-dev openmpi-bin libclang-dev pkg-config fonts-dejavu-core)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} from apt"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  say "apt packages present"
fi

# --- 2. libtorch from PyPI into a project-local venv --------------------------------------
# tch only needs torch's shared libraries, not its Python side nor the CUDA math wheels, so a
# no-deps install (about 1.3 GB) is enough.
venv="$root/.venv"
torch_version="2.13.0"
if [ ! -x "$venv/bin/python" ]; then
  say "creating venv $venv"
  python3 -m venv "$venv"
fi
torch_dir="$("$venv/bin/python" - <<'PY'
import sysconfig, os
print(os.path.join(sysconfig.get_paths()["purelib"], "torch"))
PY
)"
have=""
if [ -f "$torch_dir/../torch-$torch_version.dist-info/METADATA" ] || ls -d "$torch_dir"/../torch-"$torch_version"*.dist-info >/dev/null 2>&1; then
  have=yes
fi
if [ -z "$have" ] || [ ! -f "$torch_dir/lib/libtorch_cpu.so" ]; then
  say "installing torch==$torch_version (libraries only) into $venv"
  "$venv/bin/pip" install -q --no-deps "torch==$torch_version" \
    "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
else
  say "torch $torch_version present"
fi
# --- 3. test tools (with --tests): moto's S3 server for the object-store tests -------------
if [ "${1:-}" = "--tests" ]; then
  if [ ! -x "$venv/bin/moto_server" ]; then
    say "installing moto (S3 test server) into $venv"
    "$venv/bin/pip" install -q "moto[s3]==5.2.5" flask flask-cors
  else
    say "moto present"
  fi
fi

# A stable path for .cargo/config.toml (LIBTORCH = ".torch", relative to the workspace root).
ln -sfn "$torch_dir" "$root/.torch"
say "LIBTORCH -> $(readlink "$root/.torch")"
