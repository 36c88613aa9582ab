#!/usr/bin/env bash
# Idempotent setup used by both README commands and by CI:
#   1. OpenMPI (dev + runtime), libclang and a TrueType font (the report's plots) from apt, when missing;
#   2. a project-local venv holding torch==2.13.0 from PyPI (libtorch for tch), when missing;
#      with --cuda (or HEATSQL_CUDA=1, or when nvidia-smi lists a GPU) also the CUDA libraries
#      that torch needs (several GB; HEATSQL_CUDA=0 never installs them);
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
# --- 2b. CUDA libraries (with --cuda, or HEATSQL_CUDA=1, or a GPU listed by nvidia-smi) -------
# The lean install above has libtorch_cuda.so but not the CUDA libraries it needs (cuBLAS,
# cuDNN, NCCL, …). These are the wheels torch itself requires on Linux, read from its metadata
# (so they follow the torch version): several GB. The binaries load the CUDA backend at start-up
# when it and these libraries are present (engine::cuda), so the same build serves both.
want_cuda=""
for a in "$@"; do [ "$a" = "--cuda" ] && want_cuda=yes; done
case "${HEATSQL_CUDA:-auto}" in
  1|yes|true|on) want_cuda=yes ;;
  0|no|false|off) want_cuda="" ;;
  *) if [ -z "$want_cuda" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
       say "nvidia-smi lists a GPU: installing the CUDA libraries (HEATSQL_CUDA=0 to skip)"
       want_cuda=yes
     fi ;;
esac
if [ -n "$want_cuda" ]; then
  marker="$venv/.heatsql-cuda-$torch_version"
  if [ -f "$marker" ]; then
    say "CUDA libraries for torch $torch_version present"
  else
    mapfile -t cuda_reqs < <("$venv/bin/python" - "$torch_dir" "$torch_version" <<'PY'
import glob, os, re, sys
torch_dir, version = sys.argv[1], sys.argv[2]
meta = glob.glob(os.path.join(torch_dir, "..", f"torch-{version}*.dist-info", "METADATA"))
for line in open(meta[0], encoding="utf-8"):
    if not line.startswith("Requires-Dist:"):
        continue
    req, _, marker = line[len("Requires-Dist:"):].strip().partition(";")
    name = re.split(r"[\[<>=!~ ]", req.strip(), maxsplit=1)[0].lower()
    if 'platform_system == "Linux"' in marker and (name.startswith("nvidia-") or name == "cuda-toolkit"):
        print(req.strip())
PY
)
    if [ "${#cuda_reqs[@]}" -eq 0 ]; then
      say "torch $torch_version names no CUDA libraries; nothing to install"
    else
      say "installing the CUDA libraries torch $torch_version needs (several GB): ${cuda_reqs[*]}"
      # With their dependencies (the extras of cuda-toolkit are wheels of their own), which are
      # NVIDIA's library wheels only; torch itself is not touched.
      # (pip's notes that torch's Python dependencies are absent are expected: only its
      # libraries are used; they go to a log.)
      if ! "$venv/bin/pip" install -q "${cuda_reqs[@]}" 2> "$venv/pip-cuda.log"; then
        cat "$venv/pip-cuda.log" >&2
        exit 1
      fi
    fi
    missing_libs="$(ldd "$torch_dir/lib/libtorch_cuda.so" 2>/dev/null | awk '/not found/ {print $1}' | tr '\n' ' ')"
    if [ -n "$missing_libs" ]; then
      say "warning: libtorch_cuda.so still misses: $missing_libs"
    else
      touch "$marker"
      say "CUDA libraries installed: libtorch_cuda.so resolves every library it needs"
    fi
  fi
fi

# --- 3. test tools (with --tests): moto's S3 server for the object-store tests -------------
want_tests=""
for a in "$@"; do [ "$a" = "--tests" ] && want_tests=yes; done
if [ -n "$want_tests" ]; then
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
