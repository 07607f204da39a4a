#!/usr/bin/env bash
# Build llama-cpp-python for a CPU baseline, not for the build machine.
#
# llama.cpp defaults to GGML_NATIVE=ON, which compiles for whatever the build machine has (AMX tile
# instructions on a recent Xeon): the library then dies with SIGILL on any other CPU, and a venv or
# wheel copied to another host is a time bomb. We pin an explicit baseline instead: x86-64 with
# AVX2 + FMA + F16C + BMI2 (Intel Haswell 2013+, AMD Zen 2017+). No AVX-512, no AMX, no VNNI.
#
# The wheel is cached under a directory named by the version and the baseline, so that a cached
# build made with other flags (uv's own cache ignores CMAKE_ARGS) can never be picked up.
# Usage: llama_portable.sh PYTHON VERSION [native|avx512]  -> prints the wheel's path
# `native` builds for this machine's CPU, `avx512` for an explicit AVX-512 set: only for
# `make bench-models`, which measures what the portable baseline costs. Never install those.
set -euo pipefail
python=$1
version=$2
target=${3:-portable}
case "$target-$(uname -m)" in
  native-*)
    baseline="native-$(grep -m1 '^flags' /proc/cpuinfo | sha1sum | cut -c1-12)"
    flags="-DGGML_NATIVE=ON"
    ;;
  avx512-x86_64)  # the explicit AVX-512 set (no AMX), for the same benchmark only
    baseline="x86-64-avx512"
    flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    flags="$flags -DGGML_AVX512=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    ;;
  portable-x86_64)
    baseline="x86-64-avx2"
    flags="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
    flags="$flags -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF"
    flags="$flags -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    ;;
  *)
    baseline="$(uname -m)-generic"
    flags="-DGGML_NATIVE=OFF"
    ;;
esac
cache="${TETHER_WHEEL_CACHE:-$HOME/.cache/tether/wheels}/llama-cpp-python-$version-$baseline"
wheel=$(ls "$cache"/llama_cpp_python-"$version"-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  echo "models: building llama-cpp-python $version for $baseline (once; ~5-8 min on 2 cores)" >&2
  tmp=$(mktemp -d)
  CMAKE_ARGS="$flags" FORCE_CMAKE=1 "$python" -m pip wheel -q --no-deps --no-cache-dir \
    --no-binary llama-cpp-python -w "$tmp" "llama-cpp-python==$version" >&2
  mkdir -p "$cache"
  mv "$tmp"/llama_cpp_python-*.whl "$cache"/
  rm -rf "$tmp"
  wheel=$(ls "$cache"/llama_cpp_python-"$version"-*.whl | head -n 1)
fi
echo "$wheel"
